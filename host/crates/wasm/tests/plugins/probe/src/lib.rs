const NAME: &str = "probe";
mod imp;
oort_plugin_sdk::export_sink!(imp::Probe);
