//! `file` sink: writes each item's payload to `path` (a template) as `lines`
//! (one payload per line), `json` (a JSON array of payloads) or `csv` (a
//! header line once when `hasHeader`, then the delimited payloads). Files roll
//! after `rollingCount` items, `rollingSize` bytes or `rollingInterval`; with
//! `rollingNamePattern` prefix/suffix each new file's name gets the creation
//! time in unix ms, otherwise a new file replaces the old one (as eKuiper).

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ahash::AHashMap;
use async_trait::async_trait;
use oort_core::{
    ConnectorEnv, ConnectorError, ConnectorInfo, Props, Sink, SinkContext, SinkFactory, SinkItem,
    Value,
};
use parking_lot::Mutex;
use serde::Deserialize;
use tokio_util::sync::CancellationToken;

use super::source::FileType;
use crate::util::{de, parse_config, PropTemplate};

fn default_path() -> String {
    "cache".into()
}
fn default_file_type() -> String {
    "lines".into()
}
fn default_delimiter() -> String {
    ",".into()
}
fn default_rolling_count() -> u64 {
    1_000_000
}
fn default_check_interval() -> Duration {
    Duration::from_secs(300)
}
fn default_format() -> String {
    "json".into()
}

#[derive(Debug, Deserialize)]
struct Conf {
    #[serde(default = "default_path")]
    path: String,
    #[serde(rename = "filetype", default = "default_file_type")]
    file_type: String,
    #[serde(rename = "hasheader", default, deserialize_with = "de::bool_lenient")]
    has_header: bool,
    #[serde(default = "default_delimiter")]
    delimiter: String,
    #[serde(rename = "rollinginterval", default, deserialize_with = "de::duration")]
    rolling_interval: Duration,
    #[serde(
        rename = "rollingcount",
        default = "default_rolling_count",
        deserialize_with = "de::u64_lenient"
    )]
    rolling_count: u64,
    #[serde(rename = "rollingsize", default, deserialize_with = "de::u64_lenient")]
    rolling_size: u64,
    #[serde(
        rename = "checkinterval",
        default = "default_check_interval",
        deserialize_with = "de::duration"
    )]
    check_interval: Duration,
    #[serde(rename = "rollingnamepattern", default)]
    rolling_name_pattern: String,
    #[serde(default = "default_format")]
    format: String,
    #[serde(default, deserialize_with = "de::string_list")]
    fields: Vec<String>,
    #[serde(default)]
    compression: String,
    #[serde(default)]
    encryption: String,
    #[serde(rename = "rollinghook", default)]
    rolling_hook: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum NamePattern {
    None,
    Prefix,
    Suffix,
}

/// Factory of `file` sinks.
#[derive(Debug, Clone, Copy, Default)]
pub struct FileSinkFactory;

impl SinkFactory for FileSinkFactory {
    fn kind(&self) -> &str {
        "file"
    }

    fn info(&self) -> ConnectorInfo {
        super::info::sink()
    }

    fn create(&self, env: &ConnectorEnv, props: &Props) -> Result<Box<dyn Sink>, ConnectorError> {
        let c: Conf = parse_config("file", props)?;
        let bad = |m: String| Err(ConnectorError::Config(format!("file: {m}")));
        let file_type = match c.file_type.to_ascii_lowercase().as_str() {
            "lines" => FileType::Lines,
            "json" => FileType::Json,
            "csv" => FileType::Csv,
            other => {
                return bad(format!(
                "invalid property fileType {other:?}: fileType must be one of json, csv or lines"
            ))
            }
        };
        if c.rolling_interval.is_zero() && c.rolling_count == 0 && c.rolling_size == 0 {
            return bad("one of rollingInterval, rollingCount, or rollingSize must be set".into());
        }
        let pattern = match c.rolling_name_pattern.as_str() {
            "" | "none" => NamePattern::None,
            "prefix" => NamePattern::Prefix,
            "suffix" => NamePattern::Suffix,
            other => {
                return bad(format!(
                    "invalid property rollingNamePattern {other:?}: rollingNamePattern must be one of prefix, suffix or none"
                ))
            }
        };
        if c.path.trim().is_empty() {
            return bad("property path must be set".into());
        }
        if file_type == FileType::Csv && !c.format.eq_ignore_ascii_case("delimited") {
            return bad("format must be delimited when fileType is csv".into());
        }
        for (k, v) in [
            ("compression", &c.compression),
            ("encryption", &c.encryption),
            ("rollingHook", &c.rolling_hook),
        ] {
            if !v.is_empty() {
                return bad(format!("property {k} {v:?} is not supported"));
            }
        }
        let path = PropTemplate::parse("path", c.path.trim())?;
        let allowed = super::allowed(env);
        // A fixed path is checked now; a templated one up to its first
        // template (its fixed directories), and each rendered path again
        // before a file is opened.
        let fixed = match path.static_text() {
            Some(t) => Some(t.into_owned()),
            None => c
                .path
                .trim()
                .split("{{")
                .next()
                .and_then(|head| head.rfind('/').map(|i| head[..=i].to_string()))
                .filter(|d| !d.is_empty()),
        };
        if let Some(f) = fixed {
            super::confine(&allowed, "path", &env.resolve(&f))?;
        }
        let delimiter = if c.delimiter.is_empty() {
            ",".to_string()
        } else {
            c.delimiter
        };
        let check = if c.rolling_interval.is_zero() {
            Duration::ZERO
        } else {
            c.check_interval
                .min(c.rolling_interval)
                .max(Duration::from_millis(10))
        };
        Ok(Box::new(FileSink {
            path,
            env: env.clone(),
            check_interval: check,
            state: Arc::new(Mutex::new(State {
                files: AHashMap::new(),
                header: if c.fields.is_empty() {
                    None
                } else {
                    Some(c.fields.join(&delimiter))
                },
                allowed,
                conf: Shape {
                    file_type,
                    has_header: c.has_header,
                    delimiter,
                    rolling_interval: c.rolling_interval,
                    rolling_count: c.rolling_count,
                    rolling_size: c.rolling_size,
                    pattern,
                },
            })),
            checker: None,
        }))
    }
}

/// What decides the file layout and rolling.
struct Shape {
    file_type: FileType,
    has_header: bool,
    delimiter: String,
    rolling_interval: Duration,
    rolling_count: u64,
    rolling_size: u64,
    pattern: NamePattern,
}

struct OpenFile {
    path: PathBuf,
    out: BufWriter<File>,
    start: Instant,
    count: u64,
    size: u64,
    written: bool,
    dirty: bool,
}

struct State {
    /// Open files by rendered (unrotated) path.
    files: AHashMap<String, OpenFile>,
    /// The csv header, from `fields` or the first item.
    header: Option<String>,
    /// Where files may be opened (checked again at each open).
    allowed: oort_core::paths::AllowedDirs,
    conf: Shape,
}

fn io_err(path: &Path, e: std::io::Error) -> ConnectorError {
    ConnectorError::Unavailable(format!("file sink: {}: {e}", path.display()))
}

impl State {
    fn separator(&self) -> &'static [u8] {
        match self.conf.file_type {
            FileType::Json => b",",
            _ => b"\n",
        }
    }

    fn open(&self, path: &Path) -> Result<OpenFile, ConnectorError> {
        let real = match self.conf.pattern {
            NamePattern::None => path.to_path_buf(),
            p => {
                let now = oort_core::now_ms();
                let name = path
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                let new_name = if p == NamePattern::Prefix {
                    format!("{now}-{name}")
                } else {
                    match name.rfind('.') {
                        Some(i) if i > 0 => format!("{}-{now}{}", &name[..i], &name[i..]),
                        _ => format!("{name}-{now}"),
                    }
                };
                path.with_file_name(new_name)
            }
        };
        // One item's rendered path out of bounds drops that item only.
        let real = self.allowed.check(&real).map_err(|e| {
            ConnectorError::InvalidData(format!("file sink: {}", super::refusal(&self.allowed, &e)))
        })?;
        if let Some(dir) = real.parent() {
            if !dir.as_os_str().is_empty() {
                std::fs::create_dir_all(dir).map_err(|e| io_err(dir, e))?;
            }
        }
        let f = File::create(&real).map_err(|e| io_err(&real, e))?;
        let mut out = BufWriter::with_capacity(64 * 1024, f);
        let head: Vec<u8> = match self.conf.file_type {
            FileType::Json => b"[".to_vec(),
            FileType::Csv => match &self.header {
                Some(h) if self.conf.has_header => format!("{h}\n").into_bytes(),
                _ => Vec::new(),
            },
            FileType::Lines => Vec::new(),
        };
        out.write_all(&head).map_err(|e| io_err(&real, e))?;
        tracing::info!(file = %real.display(), "file sink: new file");
        Ok(OpenFile {
            path: real,
            out,
            start: Instant::now(),
            count: 0,
            size: head.len() as u64,
            written: false,
            dirty: true,
        })
    }

    fn close_file(&self, mut f: OpenFile) -> Result<(), ConnectorError> {
        if self.conf.file_type == FileType::Json {
            f.out.write_all(b"]").map_err(|e| io_err(&f.path, e))?;
        }
        f.out.flush().map_err(|e| io_err(&f.path, e))?;
        tracing::info!(file = %f.path.display(), "file sink: file rolled");
        Ok(())
    }

    fn roll(&mut self, key: &str) -> Result<(), ConnectorError> {
        match self.files.remove(key) {
            Some(f) => self.close_file(f),
            None => Ok(()),
        }
    }

    /// Picks the csv header and strips it from the payload when present.
    fn csv_body<'a>(&mut self, it: &'a SinkItem) -> &'a [u8] {
        let payload: &[u8] = &it.payload;
        if self.conf.file_type != FileType::Csv || !self.conf.has_header {
            return payload;
        }
        let first_line = payload
            .iter()
            .position(|b| *b == b'\n')
            .map(|i| (&payload[..i], &payload[i + 1..]));
        if self.header.is_none() {
            self.header = Some(match first_line {
                Some((h, _)) => String::from_utf8_lossy(h).into_owned(),
                None => header_from_data(&it.data, &self.conf.delimiter),
            });
        }
        match (first_line, &self.header) {
            (Some((h, rest)), Some(header)) if h == header.as_bytes() => rest,
            _ => payload,
        }
    }

    fn write(&mut self, key: &str, path: &Path, it: &SinkItem) -> Result<(), ConnectorError> {
        let body = self.csv_body(it);
        if !self.files.contains_key(key) {
            let f = self.open(path)?;
            self.files.insert(key.to_string(), f);
        }
        let sep = self.separator();
        let Some(f) = self.files.get_mut(key) else {
            return Ok(());
        };
        if f.written {
            f.out.write_all(sep).map_err(|e| io_err(&f.path, e))?;
            f.size += sep.len() as u64;
        }
        f.written = true;
        f.dirty = true;
        f.out.write_all(body).map_err(|e| io_err(&f.path, e))?;
        f.size += body.len() as u64;
        f.count += 1;
        let full = (self.conf.rolling_count > 0 && f.count >= self.conf.rolling_count)
            || (self.conf.rolling_size > 0 && f.size >= self.conf.rolling_size);
        if full {
            self.roll(key)?;
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<(), ConnectorError> {
        for f in self.files.values_mut() {
            if f.dirty {
                f.out.flush().map_err(|e| io_err(&f.path, e))?;
                f.dirty = false;
            }
        }
        Ok(())
    }

    fn roll_expired(&mut self) {
        let limit = self.conf.rolling_interval;
        let expired: Vec<String> = self
            .files
            .iter()
            .filter(|(_, f)| f.start.elapsed() >= limit)
            .map(|(k, _)| k.clone())
            .collect();
        for k in expired {
            if let Err(e) = self.roll(&k) {
                tracing::error!("{e}");
            }
        }
    }

    fn roll_all(&mut self) -> Result<(), ConnectorError> {
        let keys: Vec<String> = self.files.keys().cloned().collect();
        let mut first_err = None;
        for k in keys {
            if let Err(e) = self.roll(&k) {
                first_err.get_or_insert(e);
            }
        }
        first_err.map_or(Ok(()), Err)
    }
}

/// The csv header from a row's keys (sorted, as the delimited encoder writes them).
fn header_from_data(data: &Value, delimiter: &str) -> String {
    let row = match data {
        Value::Array(a) => a.first(),
        v => Some(v),
    };
    match row {
        Some(Value::Object(m)) => m
            .keys()
            .map(|k| k.as_ref())
            .collect::<Vec<_>>()
            .join(delimiter),
        _ => String::new(),
    }
}

/// A running `file` sink.
pub struct FileSink {
    path: PropTemplate,
    /// Resolves relative rendered paths against the data dir.
    env: ConnectorEnv,
    check_interval: Duration,
    state: Arc<Mutex<State>>,
    checker: Option<CancellationToken>,
}

impl FileSink {
    fn resolve(&self, rendered: &str) -> PathBuf {
        self.env.resolve(rendered)
    }
}

#[async_trait]
impl Sink for FileSink {
    async fn connect(&mut self, ctx: &SinkContext) -> Result<(), ConnectorError> {
        if !self.check_interval.is_zero() && self.checker.is_none() {
            let token = ctx.cancel.child_token();
            let state = self.state.clone();
            let every = self.check_interval;
            let t = token.clone();
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(every);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    tokio::select! {
                        _ = tick.tick() => state.lock().roll_expired(),
                        _ = t.cancelled() => return,
                    }
                }
            });
            self.checker = Some(token);
        }
        ctx.conn.connected();
        Ok(())
    }

    async fn collect(
        &mut self,
        _ctx: &SinkContext,
        items: &[SinkItem],
    ) -> Result<(), ConnectorError> {
        let static_key = self.path.static_text().map(|s| s.into_owned());
        let static_path = static_key.as_deref().map(|k| self.resolve(k));
        let mut st = self.state.lock();
        let mut result = Ok(());
        // An item whose path cannot be rendered or is refused is not written;
        // the others are, and the first such error is reported at the end.
        let mut invalid: Option<ConnectorError> = None;
        for it in items {
            let r = match (&static_key, &static_path) {
                (Some(k), Some(p)) => st.write(k, p, it),
                _ => match self.path.render(&it.data) {
                    Ok(k) => {
                        let p = self.resolve(&k);
                        st.write(&k, &p, it)
                    }
                    Err(e) => {
                        invalid.get_or_insert(e);
                        continue;
                    }
                },
            };
            match r {
                Ok(()) => {}
                Err(e @ ConnectorError::InvalidData(_)) => {
                    invalid.get_or_insert(e);
                }
                Err(e) => {
                    result = Err(e);
                    break;
                }
            }
        }
        let flushed = st.flush();
        result.and(flushed).and(invalid.map_or(Ok(()), Err))
    }

    async fn close(&mut self, _ctx: &SinkContext) -> Result<(), ConnectorError> {
        if let Some(t) = self.checker.take() {
            t.cancel();
        }
        self.state.lock().roll_all()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use oort_core::codec::json::decode_value;

    fn props(v: serde_json::Value) -> Props {
        v.as_object().cloned().unwrap()
    }

    fn item(data: &str, payload: &str) -> SinkItem {
        SinkItem {
            data: decode_value(data.as_bytes()).unwrap(),
            payload: Bytes::from(payload.to_string()),
        }
    }

    /// The factory in a context: `create` with that context.
    struct InEnv(ConnectorEnv);

    impl InEnv {
        fn create(&self, p: &Props) -> Result<Box<dyn Sink>, ConnectorError> {
            FileSinkFactory.create(&self.0, p)
        }
    }

    /// A context allowing the system temp dir (where the tests' files are).
    fn factory() -> InEnv {
        InEnv(
            ConnectorEnv::builder()
                .allowed_dirs(vec![std::env::temp_dir()])
                .build(),
        )
    }

    fn in_data_dir(dd: &str) -> InEnv {
        InEnv(ConnectorEnv::with_data_dir(dd))
    }

    fn ctx() -> SinkContext {
        SinkContext::new("r", CancellationToken::new())
    }

    #[tokio::test]
    async fn lines_and_json_files() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("sub/out.jsonl");
        let mut s = factory()
            .create(&props(
                serde_json::json!({"path": out.to_str().unwrap(), "sendSingle": true}),
            ))
            .unwrap();
        let c = ctx();
        s.connect(&c).await.unwrap();
        s.collect(
            &c,
            &[
                item(r#"{"a":1}"#, r#"{"a":1}"#),
                item(r#"{"a":2}"#, r#"{"a":2}"#),
            ],
        )
        .await
        .unwrap();
        // Visible before close.
        assert_eq!(
            std::fs::read_to_string(&out).unwrap(),
            "{\"a\":1}\n{\"a\":2}"
        );
        s.close(&c).await.unwrap();

        let out = dir.path().join("arr.json");
        let mut s = in_data_dir(dir.path().to_str().unwrap())
            .create(&props(
                serde_json::json!({"path": "arr.json", "fileType": "json"}),
            ))
            .unwrap();
        s.connect(&c).await.unwrap();
        s.collect(&c, &[item(r#"{"a":1}"#, r#"{"a":1}"#)])
            .await
            .unwrap();
        s.collect(&c, &[item(r#"{"a":2}"#, r#"{"a":2}"#)])
            .await
            .unwrap();
        s.close(&c).await.unwrap();
        let v: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
        assert_eq!(v, serde_json::json!([{"a":1},{"a":2}]));
    }

    #[tokio::test]
    async fn csv_header_once_and_rolling_by_count_with_suffix() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("o.csv");
        let mut s = factory()
            .create(&props(serde_json::json!({"path": out.to_str().unwrap(), "fileType": "csv",
                "format": "delimited", "hasHeader": true, "rollingCount": 2, "rollingNamePattern": "suffix"})))
            .unwrap();
        let c = ctx();
        s.connect(&c).await.unwrap();
        let items = [
            item(r#"{"a":1,"b":"x"}"#, "a,b\n1,x"),
            item(r#"{"a":2,"b":"y"}"#, "a,b\n2,y"),
            item(r#"{"a":3,"b":"z"}"#, "a,b\n3,z"),
        ];
        s.collect(&c, &items[..2]).await.unwrap();
        std::thread::sleep(Duration::from_millis(2));
        s.collect(&c, &items[2..]).await.unwrap();
        s.close(&c).await.unwrap();
        let mut files: Vec<PathBuf> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        files.sort();
        assert_eq!(files.len(), 2, "{files:?}");
        let name = files[0].file_name().unwrap().to_str().unwrap().to_string();
        assert!(name.starts_with("o-") && name.ends_with(".csv"), "{name}");
        assert_eq!(std::fs::read_to_string(&files[0]).unwrap(), "a,b\n1,x\n2,y");
        assert_eq!(std::fs::read_to_string(&files[1]).unwrap(), "a,b\n3,z");
    }

    #[tokio::test]
    async fn rolling_interval_and_templated_paths() {
        let dir = tempfile::tempdir().unwrap();
        let p = format!("{}/{{{{.dev}}}}.txt", dir.path().display());
        let mut s = factory()
            .create(&props(
                serde_json::json!({"path": p, "rollingInterval": "30ms",
                "rollingCount": 0, "rollingNamePattern": "prefix"}),
            ))
            .unwrap();
        let c = ctx();
        s.connect(&c).await.unwrap();
        s.collect(
            &c,
            &[item(r#"{"dev":"a"}"#, "1"), item(r#"{"dev":"b"}"#, "2")],
        )
        .await
        .unwrap();
        tokio::time::sleep(Duration::from_millis(120)).await;
        s.collect(&c, &[item(r#"{"dev":"a"}"#, "3")]).await.unwrap();
        s.close(&c).await.unwrap();
        let mut names: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(names.len(), 3, "{names:?}");
        assert_eq!(names.iter().filter(|n| n.ends_with("-a.txt")).count(), 2);
        assert_eq!(names.iter().filter(|n| n.ends_with("-b.txt")).count(), 1);
    }

    #[tokio::test]
    async fn a_path_that_fails_to_render_skips_only_its_item() {
        let dir = tempfile::tempdir().unwrap();
        let p = format!("{}/{{{{.dev | upper}}}}.txt", dir.path().display());
        let mut s = factory()
            .create(&props(serde_json::json!({ "path": p })))
            .unwrap();
        let c = ctx();
        s.connect(&c).await.unwrap();
        // `upper` of a number is an error in Go: that item is reported and
        // not written, the items around it are.
        let e = s
            .collect(
                &c,
                &[
                    item(r#"{"dev":"a"}"#, "1"),
                    item(r#"{"dev":5}"#, "2"),
                    item(r#"{"dev":"b"}"#, "3"),
                ],
            )
            .await
            .unwrap_err();
        assert!(
            matches!(&e, ConnectorError::InvalidData(m) if m.contains("path")),
            "{e}"
        );
        s.close(&c).await.unwrap();
        let read = |n: &str| std::fs::read_to_string(dir.path().join(n)).unwrap();
        assert_eq!(read("A.txt"), "1");
        assert_eq!(read("B.txt"), "3");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 2);
    }

    #[test]
    fn validates_props() {
        for bad in [
            serde_json::json!({"fileType": "xml"}),
            serde_json::json!({"fileType": "csv"}),
            serde_json::json!({"rollingCount": 0}),
            serde_json::json!({"rollingNamePattern": "middle"}),
            serde_json::json!({"rollingInterval": "x"}),
            serde_json::json!({"compression": "gzip"}),
            serde_json::json!({"path": "a/{{.x"}),
        ] {
            let e = factory().create(&props(bad.clone())).err();
            assert!(matches!(e, Some(ConnectorError::Config(_))), "{bad}");
        }
        let dir = tempfile::tempdir().unwrap();
        assert!(in_data_dir(dir.path().to_str().unwrap())
            .create(&Props::new())
            .is_ok());
    }

    #[tokio::test]
    async fn confined_to_the_data_dir_and_allowed_dirs() {
        let root = tempfile::tempdir().unwrap();
        let data = root.path().join("data");
        let outside = root.path().join("outside");
        std::fs::create_dir_all(&data).unwrap();
        std::fs::create_dir_all(&outside).unwrap();
        let dd = data.to_str().unwrap();
        let f = in_data_dir(dd);
        let create = |path: &str| {
            f.create(&props(
                serde_json::json!({"path": path, "sendSingle": true}),
            ))
        };
        for bad in [
            "../../../var/x".to_string(),
            "/etc/oort-x".to_string(),
            format!("{}/x", outside.display()),
            format!("{}/{{{{.dev}}}}.txt", outside.display()),
        ] {
            match create(&bad) {
                Err(ConnectorError::Config(m)) => assert!(
                    m.contains("property path") && m.contains("outside the allowed"),
                    "{m}"
                ),
                Err(e) => panic!("{bad}: {e}"),
                Ok(_) => panic!("{bad} accepted"),
            }
        }
        // A symlink out of the data dir, existing or as a parent of a new file.
        #[cfg(unix)]
        {
            std::os::unix::fs::symlink(&outside, data.join("link")).unwrap();
            assert!(create("link/new/out.txt").is_err());
        }
        // Relative paths resolve under the data dir; rendered paths are
        // checked before each file is opened: the escaping item is dropped
        // as invalid data, the others are written.
        let mut s = create("{{.dev}}.txt").unwrap();
        let c = ctx();
        s.connect(&c).await.unwrap();
        let r = s
            .collect(
                &c,
                &[
                    item(r#"{"dev":"../../outside/esc"}"#, "1"),
                    item(r#"{"dev":"ok"}"#, "2"),
                ],
            )
            .await;
        assert!(matches!(r, Err(ConnectorError::InvalidData(_))), "{r:?}");
        s.close(&c).await.unwrap();
        assert_eq!(std::fs::read_to_string(data.join("ok.txt")).unwrap(), "2");
        assert!(!outside.join("esc.txt").exists());
        // The operator's list opens another directory.
        let f = InEnv(
            ConnectorEnv::builder()
                .data_dir(dd)
                .allowed_dirs(vec![outside.clone()])
                .build(),
        );
        let p = props(serde_json::json!({"path": format!("{}/x", outside.display())}));
        assert!(f.create(&p).is_ok());
    }
}
