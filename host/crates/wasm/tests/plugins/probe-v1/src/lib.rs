const NAME: &str = "probe_v1";
#[path = "../../probe/src/imp.rs"]
mod imp;
oort_plugin_sdk::export_sink_v1!(imp::Probe);
