//! `influx2`: eKuiper's InfluxDB 2.x sink as an Oort plugin. Each batch is one
//! `POST {addr}/api/v2/write?org=...&bucket=...&precision=...` of line
//! protocol (one point per row) with `Authorization: Token ...`, through
//! `wasi:http` under the plugin's outbound grant.
//!
//! Properties (eKuiper's): `addr` (required), `token`, `org` (required),
//! `bucket` (required), `measurement` (required), `precision`
//! (`ns|us|ms|s`, default `ms`), `tags` (name -> text with `{{.field}}`),
//! `fields` (default: every column), `tsFieldName` (default: now),
//! `useLineProtocol` and `batchSize` (accepted: every write is line protocol,
//! one request per batch of the rule). eKuiper's TLS file properties and
//! `insecureSkipVerify: true` are refused: HTTPS is verified by the host.

use oort_plugin_sdk::{
    export_sink, prop, Context, Error, Message, PluginInfo, Props, Sink, WriteFailure,
};
use tsdb_common::{addr, query, refuse_unsupported, required, WriteOptions};

const SCHEMA: &str = r#"{"addr":"string, http(s)://host:8086 (required)","token":"string","org":"string (required)","bucket":"string (required)","measurement":"string (required)","precision":"ns|us|ms|s (default ms)","tags":"object: tag -> text with {{.field}}","fields":"list of columns (default all)","tsFieldName":"column holding the time in precision units (default now)","useLineProtocol":"bool (accepted; always line protocol)","batchSize":"int (accepted; one request per batch)"}"#;

struct Influx2 {
    url: String,
    token: Option<String>,
    opts: WriteOptions,
}

fn config(props: &Props) -> Result<Influx2, Error> {
    refuse_unsupported(props)?;
    let base = addr(props)?;
    let org = required(props, "org")?;
    let bucket = required(props, "bucket")?;
    let opts = WriteOptions::parse(props, true)?;
    prop::<bool>(props, "useLineProtocol")?;
    prop::<i64>(props, "batchSize")?;
    let token = prop::<String>(props, "token")?.filter(|t| !t.is_empty());
    let q = query(&[
        ("org", &org),
        ("bucket", &bucket),
        ("precision", opts.precision.as_str()),
    ]);
    Ok(Influx2 {
        url: format!("{base}/api/v2/write?{q}"),
        token,
        opts,
    })
}

impl Sink for Influx2 {
    fn describe() -> PluginInfo {
        PluginInfo::new("influx2", env!("CARGO_PKG_VERSION"))
            .description("Writes rows to InfluxDB 2.x as line protocol (eKuiper's influx2 sink).")
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
                let token = self.token.as_ref().map(|t| format!("Token {t}"));
                let auth: Vec<(&str, &str)> = token
                    .iter()
                    .map(|t| ("Authorization", t.as_str()))
                    .collect();
                tsdb_common::post(&self.url, &auth, body, "influx2 write").map(|_| ())
            },
        )
    }
}

export_sink!(Influx2);
