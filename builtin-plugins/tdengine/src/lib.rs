//! `tdengine`: eKuiper's TDengine sink as an Oort plugin, over TDengine's
//! REST API (taosAdapter) instead of the native driver: each batch is one
//! multi-table `INSERT INTO ...;` posted to `http://{host}:{port}/rest/sql/{database}`
//! with HTTP Basic credentials, through `wasi:http` under the plugin's
//! outbound grant.
//!
//! Properties (eKuiper's): `host` (default `localhost`; `ip` is its
//! deprecated name), `port` (the REST port, default 6041), `user` (default
//! `root`), `password` (default `taosdata`), `database`, `table` and
//! `tsFieldName` (required), `provideTs`, `fields`, `sTable` and
//! `tagFields`. `table` and `sTable` may hold `{{.column}}` references.

use oort_plugin_sdk::serde_json::Value;
use oort_plugin_sdk::{
    export_sink, prop, Context, Error, Message, PluginInfo, Props, Sink, WriteFailure,
};
use tsdb_common::taos::InsertOptions;
use tsdb_common::{basic_auth, refuse_unsupported, required};

const SCHEMA: &str = r#"{"host":"string (default localhost)","port":"int, the REST port (default 6041)","user":"string (default root)","password":"string (default taosdata)","database":"string (required)","table":"string with {{.column}} (required)","tsFieldName":"string (required)","provideTs":"bool (default false: now)","fields":"list of columns (default all)","sTable":"string with {{.column}}","tagFields":"list of columns (required with sTable)"}"#;

struct Taos {
    url: String,
    auth: String,
    opts: InsertOptions,
}

fn config(props: &Props) -> Result<Taos, Error> {
    refuse_unsupported(props)?;
    let host = prop::<String>(props, "host")?
        .filter(|h| !h.is_empty())
        .or(prop::<String>(props, "ip")?.filter(|h| !h.is_empty()))
        .unwrap_or_else(|| "localhost".into());
    let port = prop::<u16>(props, "port")?
        .filter(|p| *p != 0)
        .unwrap_or(6041);
    let user = prop::<String>(props, "user")?.unwrap_or_else(|| "root".into());
    let password = prop::<String>(props, "password")?.unwrap_or_else(|| "taosdata".into());
    let db = required(props, "database")?;
    if !db.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return Err(Error::config(format!(
            "database {db:?} is not a plain name (letters, digits and _)"
        )));
    }
    let host = if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]")
    } else {
        host
    };
    Ok(Taos {
        url: format!("http://{host}:{port}/rest/sql/{db}"),
        auth: basic_auth(&user, &password),
        opts: InsertOptions::parse(props)?,
    })
}

impl Sink for Taos {
    fn describe() -> PluginInfo {
        PluginInfo::new("tdengine", env!("CARGO_PKG_VERSION"))
            .description(
                "Inserts rows into TDengine through its REST API (eKuiper's tdengine sink).",
            )
            .properties_schema(SCHEMA)
            .outbound("http://*:*")
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
            |p, out| self.opts.rows(p, out),
            |body| {
                let mut sql = b"INSERT INTO ".to_vec();
                sql.extend_from_slice(body.trim_ascii_end());
                sql.push(b';');
                let answer = tsdb_common::post(
                    &self.url,
                    &[("Authorization", &self.auth)],
                    sql,
                    "tdengine insert",
                )?;
                // taosAdapter answers 200 with {"code": N, "desc": ...} on a bad statement.
                let v: Value =
                    oort_plugin_sdk::serde_json::from_slice(&answer).unwrap_or(Value::Null);
                match v.get("code").and_then(Value::as_i64) {
                    Some(0) | None => Ok(()),
                    Some(code) => Err(Error::invalid_data(format!(
                        "tdengine insert: code {code}: {}",
                        v.get("desc").and_then(Value::as_str).unwrap_or("")
                    ))),
                }
            },
        )
    }
}

export_sink!(Taos);
