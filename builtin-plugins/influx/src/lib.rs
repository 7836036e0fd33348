//! `influx`: eKuiper's InfluxDB 1.x sink as an Oort plugin. Each batch is one
//! `POST {addr}/write?db=...&precision=...` of line protocol (one point per
//! row), through `wasi:http` under the plugin's outbound grant.
//!
//! Properties (eKuiper's): `addr` (required), `username`, `password`,
//! `database` (required), `measurement` (required), `precision`
//! (`ns|us|ms|s`, default `ms`), `tags` (name -> text with `{{.field}}`),
//! `fields` (default: every column), `tsFieldName` (default: now). eKuiper's
//! TLS file properties and `insecureSkipVerify: true` are refused: HTTPS is
//! verified by the host with the system's roots.

use oort_plugin_sdk::{
    export_sink, prop, Context, Error, Message, PluginInfo, Props, Sink, WriteFailure,
};
use tsdb_common::{addr, basic_auth, query, refuse_unsupported, required, WriteOptions};

const SCHEMA: &str = r#"{"addr":"string, http(s)://host:8086 (required)","username":"string","password":"string","database":"string (required)","measurement":"string (required)","precision":"ns|us|ms|s (default ms)","tags":"object: tag -> text with {{.field}}","fields":"list of columns (default all)","tsFieldName":"column holding the time in precision units (default now)"}"#;

struct Influx {
    url: String,
    auth: Option<String>,
    opts: WriteOptions,
}

fn config(props: &Props) -> Result<Influx, Error> {
    refuse_unsupported(props)?;
    let base = addr(props)?;
    let db = required(props, "database")?;
    let opts = WriteOptions::parse(props, true)?;
    let user = prop::<String>(props, "username")?.unwrap_or_default();
    let password = prop::<String>(props, "password")?.unwrap_or_default();
    let auth = (!user.is_empty()).then(|| basic_auth(&user, &password));
    let q = query(&[("db", &db), ("precision", opts.precision.as_str())]);
    Ok(Influx {
        url: format!("{base}/write?{q}"),
        auth,
        opts,
    })
}

impl Sink for Influx {
    fn describe() -> PluginInfo {
        PluginInfo::new("influx", env!("CARGO_PKG_VERSION"))
            .description("Writes rows to InfluxDB 1.x as line protocol (eKuiper's influx sink).")
            .properties_schema(SCHEMA)
            .outbound("http://*:*")
            .outbound("https://*:*")
    }

    fn validate(props: &Props) -> Result<(), Error> {
        config(props).map(|_| ())
    }

    fn open(_ctx: &Context, props: Props) -> Result<Self, Error> {
        config(&props)
    }

    fn write(&mut self, batch: Vec<Message>) -> Result<(), WriteFailure> {
        tsdb_common::write_batch(
            &batch,
            |p, out| self.opts.lines(p, out),
            |body| {
                let auth: Vec<(&str, &str)> = self
                    .auth
                    .iter()
                    .map(|a| ("Authorization", a.as_str()))
                    .collect();
                tsdb_common::post(&self.url, &auth, body, "influx write").map(|_| ())
            },
        )
    }
}

export_sink!(Influx);
