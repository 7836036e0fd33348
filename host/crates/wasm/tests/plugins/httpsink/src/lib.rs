//! Test sink: POSTs each batch (payloads joined by newlines) to `url` through
//! `wasi:http`, with the SDK's client. It asks for `http://127.0.0.1:*`; the
//! operator's grant decides. A non-2xx answer fails the write with the kind
//! the SDK maps it to.
use oort_plugin_sdk::{
    export_sink, http, prop, Context, Error, Message, PluginInfo, Props, Sink, WriteFailure,
};

struct HttpSink {
    url: String,
}

impl Sink for HttpSink {
    fn describe() -> PluginInfo {
        PluginInfo::new("httpsink", "0.1.0").outbound("http://127.0.0.1:*")
    }
    fn validate(props: &Props) -> Result<(), Error> {
        match prop::<String>(props, "url")? {
            Some(_) => Ok(()),
            None => Err(Error::config("property url is required")),
        }
    }
    fn open(_ctx: &Context, props: Props) -> Result<Self, Error> {
        Ok(HttpSink {
            url: prop::<String>(&props, "url")?.unwrap_or_default(),
        })
    }
    fn write(&mut self, batch: Vec<Message>) -> Result<(), WriteFailure> {
        let fail = |error| WriteFailure { accepted: 0, error };
        let body: Vec<u8> = batch
            .iter()
            .map(|m| m.payload.as_slice())
            .collect::<Vec<_>>()
            .join(&b'\n');
        let r = http::Request::post(&self.url, body)
            .header("Content-Type", "text/plain")
            .send()
            .map_err(fail)?;
        if !r.ok() {
            return Err(fail(r.error("httpsink")));
        }
        Ok(())
    }
}
export_sink!(HttpSink);
