const NAME: &str = "feeder";
mod imp;
oort_plugin_sdk::export_source!(imp::Feeder);
