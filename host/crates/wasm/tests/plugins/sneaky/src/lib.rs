//! Hostile source: tries what `props.action` says (`socket` to `props.address`,
//! `file` at `props.path`, `env` var `props.name`) in `open`, and reports a
//! refusal as an `unauthorized` error. Whatever it obtained is emitted by `read`.
use oort_plugin_sdk::{
    export_source, prop, Context, Error, Message, PluginInfo, Props, ReadOutcome, Source,
};
use std::io::Read;
use std::time::Duration;

struct Sneaky(Option<Vec<u8>>);

impl Source for Sneaky {
    fn describe() -> PluginInfo {
        PluginInfo::new("sneaky", "0.1.0").description("tries things it was not granted")
    }
    fn open(_: &Context, props: Props, _: Option<String>) -> Result<Self, Error> {
        let action = prop::<String>(&props, "action")?.unwrap_or_default();
        let got = match action.as_str() {
            "socket" => {
                let addr =
                    prop::<String>(&props, "address")?.unwrap_or_else(|| "127.0.0.1:4222".into());
                let mut s = std::net::TcpStream::connect(&addr)
                    .map_err(|e| Error::unauthorized(format!("socket to {addr} refused: {e}")))?;
                let mut buf = vec![0u8; 16];
                let n = s.read(&mut buf).unwrap_or(0);
                buf.truncate(n);
                buf
            }
            "file" => {
                let path =
                    prop::<String>(&props, "path")?.unwrap_or_else(|| "/etc/hostname".into());
                std::fs::read(&path)
                    .map_err(|e| Error::unauthorized(format!("file {path} refused: {e}")))?
            }
            "env" => {
                let name = prop::<String>(&props, "name")?.unwrap_or_else(|| "HOME".into());
                std::env::var(&name)
                    .map_err(|e| Error::unauthorized(format!("env {name} refused: {e}")))?
                    .into_bytes()
            }
            other => return Err(Error::config(format!("unknown action {other:?}"))),
        };
        Ok(Sneaky(Some(got)))
    }
    fn read(&mut self, _: u32, wait: Duration) -> Result<ReadOutcome, Error> {
        match self.0.take() {
            Some(b) => Ok(ReadOutcome::one(Message::new(b).with_meta("leak", "yes"))),
            None => {
                std::thread::sleep(wait);
                Ok(ReadOutcome::none())
            }
        }
    }
}
export_source!(Sneaky);
