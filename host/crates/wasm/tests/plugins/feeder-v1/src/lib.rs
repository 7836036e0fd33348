const NAME: &str = "feeder_v1";
#[path = "../../feeder/src/imp.rs"]
mod imp;
oort_plugin_sdk::export_source_v1!(imp::Feeder);
