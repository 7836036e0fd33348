//! `file` source: reads DATASOURCE (a file, or every file of a folder) under
//! `path` as `json` (an array of objects or one object), `lines` (one JSON
//! object per line) or `csv`, and emits the rows. `interval` 0 reads once and
//! ends with EOF; otherwise the files are read again every `interval`.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use oort_core::codec::json::JsonDecoder;
use oort_core::codec::Decoder;
use oort_core::{
    ConnectorEnv, ConnectorError, ConnectorInfo, Props, Row, Schema, Source, SourceContext,
    SourceFactory, SourceMsg, Value,
};
use serde::Deserialize;

use crate::util::{de, parse_config, sleep_or_cancel};

/// Rows per emitted batch when there is no `sendInterval`.
const BATCH: usize = 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FileType {
    Json,
    Lines,
    Csv,
}

fn default_path() -> String {
    "data".into()
}

fn default_file_type() -> String {
    "json".into()
}

fn default_delimiter() -> String {
    ",".into()
}

#[derive(Debug, Deserialize)]
struct Conf {
    #[serde(default = "default_path")]
    path: String,
    #[serde(rename = "filetype", default = "default_file_type")]
    file_type: String,
    #[serde(default, deserialize_with = "de::duration")]
    interval: Duration,
    #[serde(rename = "sendinterval", default, deserialize_with = "de::duration")]
    send_interval: Duration,
    #[serde(rename = "hasheader", default, deserialize_with = "de::bool_lenient")]
    has_header: bool,
    #[serde(default = "default_delimiter")]
    delimiter: String,
    #[serde(default, deserialize_with = "de::string_list")]
    columns: Vec<String>,
    #[serde(
        rename = "ignorestartlines",
        default,
        deserialize_with = "de::u64_lenient"
    )]
    ignore_start_lines: u64,
    #[serde(
        rename = "ignoreendlines",
        default,
        deserialize_with = "de::u64_lenient"
    )]
    ignore_end_lines: u64,
    #[serde(
        rename = "actionafterread",
        default,
        deserialize_with = "de::u64_lenient"
    )]
    action_after_read: u64,
    #[serde(rename = "moveto", default)]
    move_to: String,
    #[serde(default)]
    decompression: String,
}

/// Factory of `file` sources.
#[derive(Debug, Clone, Copy, Default)]
pub struct FileSourceFactory;

impl SourceFactory for FileSourceFactory {
    fn kind(&self) -> &str {
        "file"
    }

    fn info(&self) -> ConnectorInfo {
        super::info::source()
    }

    fn create(
        &self,
        env: &ConnectorEnv,
        datasource: &str,
        props: &Props,
    ) -> Result<Box<dyn Source>, ConnectorError> {
        let c: Conf = parse_config("file", props)?;
        let file_type = match c.file_type.to_ascii_lowercase().as_str() {
            "json" => FileType::Json,
            "lines" => FileType::Lines,
            "csv" => FileType::Csv,
            other => {
                return Err(ConnectorError::Config(format!(
                    "file: invalid property fileType {other:?}: expected json, lines or csv"
                )))
            }
        };
        let delimiter = if c.delimiter.is_empty() {
            ",".to_string()
        } else {
            c.delimiter
        };
        if file_type == FileType::Csv && delimiter.len() != 1 {
            return Err(ConnectorError::Config(format!(
                "file: invalid property delimiter {delimiter:?}: csv needs a one-byte delimiter"
            )));
        }
        if c.action_after_read > 2 {
            return Err(ConnectorError::Config(format!(
                "file: invalid property actionAfterRead {}: expected 0 (keep), 1 (delete) or 2 (move)",
                c.action_after_read
            )));
        }
        if c.action_after_read == 2 && c.move_to.is_empty() {
            return Err(ConnectorError::config(
                "file: property moveTo is required when actionAfterRead is 2",
            ));
        }
        if !c.decompression.is_empty() {
            return Err(ConnectorError::Config(format!(
                "file: invalid property decompression {:?}: compressed files are not supported",
                c.decompression
            )));
        }
        let base = env.resolve(&c.path);
        let target = if datasource.trim().is_empty() {
            base
        } else {
            base.join(datasource.trim())
        };
        let allowed = super::allowed(env);
        let target = super::confine(&allowed, "path (with DATASOURCE)", &target)?;
        let move_to = if c.move_to.is_empty() {
            None
        } else {
            Some(super::confine(
                &allowed,
                "moveTo",
                &env.resolve(&c.move_to),
            )?)
        };
        Ok(Box::new(FileSource {
            target,
            reader: FileReader {
                file_type,
                has_header: c.has_header,
                delimiter: delimiter.as_bytes().first().copied().unwrap_or(b','),
                columns: c.columns,
                ignore_start: c.ignore_start_lines as usize,
                ignore_end: c.ignore_end_lines as usize,
            },
            interval: c.interval,
            send_interval: c.send_interval,
            action_after_read: c.action_after_read,
            move_to,
            allowed,
        }))
    }

    fn emits_rows(&self) -> bool {
        true
    }
}

/// A running `file` source.
pub struct FileSource {
    target: PathBuf,
    reader: FileReader,
    interval: Duration,
    send_interval: Duration,
    action_after_read: u64,
    move_to: Option<PathBuf>,
    /// Checked again before each read: the target may have been replaced
    /// by a symlink since the rule was created.
    allowed: oort_core::paths::AllowedDirs,
}

/// Parses file contents into rows.
pub(crate) struct FileReader {
    pub file_type: FileType,
    pub has_header: bool,
    pub delimiter: u8,
    pub columns: Vec<String>,
    pub ignore_start: usize,
    pub ignore_end: usize,
}

/// What one file gave: rows, and messages for records that failed.
#[derive(Default)]
pub(crate) struct Parsed {
    pub rows: Vec<Row>,
    pub errors: Vec<String>,
}

impl FileReader {
    /// Drops `ignoreStartLines` / `ignoreEndLines` lines.
    fn trim_lines<'a>(&self, text: &'a str) -> std::borrow::Cow<'a, str> {
        if self.ignore_start == 0 && self.ignore_end == 0 {
            return std::borrow::Cow::Borrowed(text);
        }
        let lines: Vec<&str> = text.lines().collect();
        let end = lines.len().saturating_sub(self.ignore_end);
        let start = self.ignore_start.min(end);
        std::borrow::Cow::Owned(lines[start..end].join("\n"))
    }

    pub fn parse(&self, name: &str, bytes: &[u8]) -> Parsed {
        let mut p = Parsed::default();
        let text = match std::str::from_utf8(bytes) {
            Ok(t) => t,
            Err(e) => {
                p.errors.push(format!("file {name} is not UTF-8: {e}"));
                return p;
            }
        };
        match self.file_type {
            FileType::Json => {
                let mut d = JsonDecoder::new();
                if let Err(e) = d.decode(text.trim().as_bytes(), &mut p.rows) {
                    p.errors.push(format!("file {name}: {e}"));
                }
            }
            FileType::Lines => {
                let text = self.trim_lines(text);
                let mut d = JsonDecoder::new();
                for (i, line) in text.lines().enumerate() {
                    let line = line.trim();
                    if line.is_empty() {
                        continue;
                    }
                    if let Err(e) = d.decode(line.as_bytes(), &mut p.rows) {
                        p.errors.push(format!("file {name} line {}: {e}", i + 1));
                    }
                }
            }
            FileType::Csv => self.parse_csv(name, &self.trim_lines(text), &mut p),
        }
        p
    }

    fn parse_csv(&self, name: &str, text: &str, p: &mut Parsed) {
        let mut r = csv::ReaderBuilder::new()
            .delimiter(self.delimiter)
            .has_headers(false)
            .flexible(true)
            .trim(csv::Trim::Fields)
            .from_reader(text.as_bytes());
        let mut records = r.records();
        let cols: Vec<Arc<str>> = if self.has_header {
            match records.next() {
                Some(Ok(h)) => h.iter().map(Arc::from).collect(),
                Some(Err(e)) => {
                    p.errors.push(format!("file {name}: bad csv header: {e}"));
                    return;
                }
                None => {
                    p.errors.push(format!("file {name}: header not found"));
                    return;
                }
            }
        } else {
            self.columns.iter().map(|c| Arc::from(c.as_str())).collect()
        };
        let mut cache: Option<Arc<Schema>> = None;
        for rec in records {
            let rec = match rec {
                Ok(r) => r,
                Err(e) => {
                    p.errors.push(format!("file {name}: {e}"));
                    continue;
                }
            };
            let n = if cols.is_empty() {
                rec.len()
            } else {
                cols.len().min(rec.len())
            };
            let schema = match &cache {
                Some(s) if s.len() == n => s.clone(),
                _ => {
                    let names: Vec<Arc<str>> = if cols.is_empty() {
                        // eKuiper names headerless csv columns cols0, cols1, ...
                        (0..n)
                            .map(|i| Arc::from(format!("cols{i}").as_str()))
                            .collect()
                    } else {
                        cols[..n].to_vec()
                    };
                    let s = Arc::new(Schema::new(names));
                    cache = Some(s.clone());
                    s
                }
            };
            let values: Vec<Value> = rec.iter().take(n).map(Value::str).collect();
            p.rows.push(Row::new(schema, values));
        }
    }
}

impl FileSource {
    /// The files to read: the target itself, or the files of a folder, sorted.
    async fn files(&self) -> Result<Vec<PathBuf>, String> {
        let target = self
            .allowed
            .check(&self.target)
            .map_err(|e| super::refusal(&self.allowed, &e))?;
        let md = tokio::fs::metadata(&target)
            .await
            .map_err(|e| format!("cannot read {}: {e}", self.target.display()))?;
        if !md.is_dir() {
            return Ok(vec![target]);
        }
        let mut out = Vec::new();
        // Entries that are symlinks are not files here (file_type does not
        // follow them), so a link out of the folder is never read.
        let mut rd = tokio::fs::read_dir(&target)
            .await
            .map_err(|e| format!("cannot list {}: {e}", self.target.display()))?;
        while let Ok(Some(e)) = rd.next_entry().await {
            if e.file_type().await.map(|t| t.is_file()).unwrap_or(false) {
                out.push(e.path());
            }
        }
        out.sort();
        Ok(out)
    }

    async fn after_read(&self, file: &Path) {
        let r = match self.action_after_read {
            1 => tokio::fs::remove_file(file).await,
            2 => match (&self.move_to, file.file_name()) {
                (Some(dir), Some(name)) => match tokio::fs::create_dir_all(dir).await {
                    Ok(()) => tokio::fs::rename(file, dir.join(name)).await,
                    Err(e) => Err(e),
                },
                _ => Ok(()),
            },
            _ => Ok(()),
        };
        if let Err(e) = r {
            tracing::warn!(file = %file.display(), "file source: action after read failed: {e}");
        }
    }

    /// Reads every file once; returns false when the consumer is gone.
    async fn read_all(&self, ctx: &SourceContext) -> Result<bool, ConnectorError> {
        let files = self.files().await.map_err(ConnectorError::Unavailable)?;
        for f in files {
            let name = f.display().to_string();
            let bytes = match tokio::fs::read(&f).await {
                Ok(b) => b,
                Err(e) => {
                    if !ctx
                        .emit(SourceMsg::Error(format!("cannot read {name}: {e}")))
                        .await
                    {
                        return Ok(false);
                    }
                    continue;
                }
            };
            let parsed = self.reader.parse(&name, &bytes);
            for e in parsed.errors {
                if !ctx.emit(SourceMsg::Error(e)).await {
                    return Ok(false);
                }
            }
            let mut meta = oort_core::Meta::new();
            meta.insert(Arc::from("file"), Value::str(&name));
            let meta = Some(Arc::new(meta));
            let json = !matches!(self.reader.file_type, FileType::Csv);
            if self.send_interval.is_zero() {
                let mut rows = parsed.rows;
                while !rows.is_empty() {
                    let rest = if rows.len() > BATCH {
                        rows.split_off(BATCH)
                    } else {
                        Vec::new()
                    };
                    if !ctx.emit(rows_msg(json, rows, meta.clone())).await {
                        return Ok(false);
                    }
                    rows = rest;
                }
            } else {
                for (i, row) in parsed.rows.into_iter().enumerate() {
                    if i > 0 && sleep_or_cancel(self.send_interval, &ctx.cancel).await {
                        return Ok(false);
                    }
                    if !ctx.emit(rows_msg(json, vec![row], meta.clone())).await {
                        return Ok(false);
                    }
                }
            }
            self.after_read(&f).await;
        }
        Ok(true)
    }
}

#[async_trait]
impl Source for FileSource {
    async fn run(&mut self, ctx: SourceContext) -> Result<(), ConnectorError> {
        ctx.conn.connected();
        loop {
            match self.read_all(&ctx).await {
                Ok(true) => {}
                Ok(false) => return Ok(()),
                // Watching with an interval: report and try again next time.
                Err(e) if !self.interval.is_zero() => {
                    if !ctx.emit(SourceMsg::Error(e.to_string())).await {
                        return Ok(());
                    }
                }
                Err(e) => return Err(e),
            }
            if self.interval.is_zero() {
                ctx.emit(SourceMsg::Eof).await;
                return Ok(());
            }
            if sleep_or_cancel(self.interval, &ctx.cancel).await {
                return Ok(());
            }
        }
    }
}

/// Rows of a file: decoded from JSON text (json, lines) or not (csv).
fn rows_msg(json: bool, rows: Vec<Row>, meta: Option<Arc<oort_core::Meta>>) -> SourceMsg {
    if json {
        SourceMsg::JsonRows { rows, meta }
    } else {
        SourceMsg::Rows { rows, meta }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::sync::mpsc;
    use tokio_util::sync::CancellationToken;

    fn props(v: serde_json::Value) -> Props {
        v.as_object().cloned().unwrap()
    }

    /// A context allowing the system temp dir (where the tests' files are).
    fn temp_env() -> ConnectorEnv {
        ConnectorEnv::builder()
            .allowed_dirs(vec![std::env::temp_dir()])
            .build()
    }

    /// A context whose data dir is `dd`.
    fn data_env(dd: &str) -> ConnectorEnv {
        ConnectorEnv::with_data_dir(dd)
    }

    async fn run_once(ds: &str, p: Props) -> (Vec<Row>, Vec<String>, bool) {
        run_in(&temp_env(), ds, p).await
    }

    async fn run_in(env: &ConnectorEnv, ds: &str, p: Props) -> (Vec<Row>, Vec<String>, bool) {
        let mut s = FileSourceFactory.create(env, ds, &p).unwrap();
        let (tx, mut rx) = mpsc::channel(64);
        let ctx = SourceContext::new("r", CancellationToken::new(), tx);
        let task = tokio::spawn(async move { s.run(ctx).await });
        let mut rows = Vec::new();
        let mut errs = Vec::new();
        let mut eof = false;
        while let Some(m) = rx.recv().await {
            match m {
                SourceMsg::Rows { rows: r, .. } | SourceMsg::JsonRows { rows: r, .. } => {
                    rows.extend(r)
                }
                SourceMsg::Error(e) => errs.push(e),
                SourceMsg::Eof => eof = true,
                SourceMsg::Bytes { .. } | SourceMsg::BytesBatch(_) | SourceMsg::Offset(_) => {
                    panic!("file source emits rows and no offsets")
                }
            }
        }
        task.await.unwrap().unwrap();
        (rows, errs, eof)
    }

    #[tokio::test]
    async fn reads_json_lines_and_csv_from_the_data_dir() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        std::fs::create_dir_all(&data).unwrap();
        std::fs::write(
            data.join("a.json"),
            r#"[{"id":1,"t":20.5},{"id":2,"t":30}]"#,
        )
        .unwrap();
        std::fs::write(data.join("one.json"), r#"{"id":9}"#).unwrap();
        std::fs::write(data.join("l.txt"), "{\"a\":1}\n\nnot json\n{\"a\":2}\n").unwrap();
        std::fs::write(data.join("r.csv"), "skip me\na;b\n1;x\n2; y\ntrailer\n").unwrap();
        std::fs::write(data.join("nh.csv"), "1,2\n3,4\n").unwrap();
        let dd = dir.path().to_str().unwrap();

        let (rows, errs, eof) = run_in(&data_env(dd), "a.json", Props::new()).await;
        assert!(eof && errs.is_empty());
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[1].get("t"), Some(&Value::Int(30)));
        assert_eq!(rows[0].get("t"), Some(&Value::Float(20.5)));

        let (rows, _, _) = run_in(&data_env(dd), "one.json", Props::new()).await;
        assert_eq!(rows[0].get("id"), Some(&Value::Int(9)));

        let (rows, errs, _) = run_in(
            &data_env(dd),
            "l.txt",
            props(serde_json::json!({"fileType": "lines"})),
        )
        .await;
        assert_eq!(rows.len(), 2);
        assert_eq!(errs.len(), 1, "{errs:?}");
        assert_eq!(rows[1].get("a"), Some(&Value::Int(2)));

        let (rows, errs, _) = run_in(
            &data_env(dd),
            "r.csv",
            props(serde_json::json!({"fileType": "csv", "hasHeader": true,
                "delimiter": ";", "ignoreStartLines": 1, "ignoreEndLines": 1})),
        )
        .await;
        assert!(errs.is_empty(), "{errs:?}");
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[1].get("b"), Some(&Value::str("y")));
        assert_eq!(rows[0].get("a"), Some(&Value::str("1")));

        let (rows, _, _) = run_once(
            "nh.csv",
            props(serde_json::json!({"path": data.to_str().unwrap(), "fileType": "csv"})),
        )
        .await;
        assert_eq!(rows[1].get("cols1"), Some(&Value::str("4")));
        let (rows, _, _) = run_once(
            "nh.csv",
            props(serde_json::json!({"path": data.to_str().unwrap(), "fileType": "csv", "columns": ["x","y"]})),
        )
        .await;
        assert_eq!(rows[0].get("y"), Some(&Value::str("2")));
    }

    #[tokio::test]
    async fn folder_interval_send_interval_and_delete() {
        let dir = tempfile::tempdir().unwrap();
        let sub = dir.path().join("in");
        std::fs::create_dir_all(&sub).unwrap();
        std::fs::write(sub.join("1.json"), r#"[{"n":1},{"n":2}]"#).unwrap();
        std::fs::write(sub.join("2.json"), r#"[{"n":3}]"#).unwrap();
        let p = props(serde_json::json!({"path": dir.path().to_str().unwrap(),
            "sendInterval": "1ms", "actionAfterRead": 1}));
        let (rows, _, eof) = run_once("in", p).await;
        assert!(eof);
        let ns: Vec<i64> = rows
            .iter()
            .filter_map(|r| r.get("n").and_then(Value::as_i64))
            .collect();
        assert_eq!(ns, [1, 2, 3]);
        assert!(!sub.join("1.json").exists(), "deleted after read");

        // With an interval the file is read again until cancelled.
        std::fs::write(dir.path().join("x.json"), r#"{"n":1}"#).unwrap();
        let p = props(serde_json::json!({"path": dir.path().to_str().unwrap(), "interval": "5ms"}));
        let mut s = FileSourceFactory.create(&temp_env(), "x.json", &p).unwrap();
        let (tx, mut rx) = mpsc::channel(64);
        let cancel = CancellationToken::new();
        let ctx = SourceContext::new("r", cancel.clone(), tx);
        let task = tokio::spawn(async move { s.run(ctx).await });
        for _ in 0..3 {
            assert!(matches!(rx.recv().await, Some(SourceMsg::JsonRows { .. })));
        }
        cancel.cancel();
        task.await.unwrap().unwrap();
    }

    #[tokio::test]
    async fn missing_file_fails_the_run_and_bad_props_fail_create() {
        let dir = tempfile::tempdir().unwrap();
        let p =
            props(serde_json::json!({"path": dir.path().join("nonexistent").to_str().unwrap()}));
        let mut s = FileSourceFactory
            .create(&temp_env(), "nope.json", &p)
            .unwrap();
        let (tx, _rx) = mpsc::channel(4);
        let ctx = SourceContext::new("r", CancellationToken::new(), tx);
        assert!(matches!(
            s.run(ctx).await,
            Err(ConnectorError::Unavailable(_))
        ));
        for bad in [
            serde_json::json!({"fileType": "xml"}),
            serde_json::json!({"fileType": "csv", "delimiter": "::"}),
            serde_json::json!({"interval": "sometimes"}),
            serde_json::json!({"actionAfterRead": 2}),
        ] {
            let e = FileSourceFactory
                .create(&temp_env(), "a", &props(bad.clone()))
                .err();
            assert!(matches!(e, Some(ConnectorError::Config(_))), "{bad}");
        }
    }

    #[tokio::test]
    async fn confined_to_the_data_dir_and_allowed_dirs() {
        let root = tempfile::tempdir().unwrap();
        let data = root.path().join("data");
        let outside = root.path().join("outside");
        std::fs::create_dir_all(data.join("in")).unwrap();
        std::fs::create_dir_all(&outside).unwrap();
        std::fs::write(outside.join("secret.json"), r#"{"s":1}"#).unwrap();
        std::fs::write(data.join("in/ok.json"), r#"{"n":1}"#).unwrap();
        let dd = data.to_str().unwrap();
        // Only the data dir: no operator list.
        let env = data_env(dd);
        let refused = |ds: &str, extra: serde_json::Value| {
            let p = props(extra);
            match FileSourceFactory.create(&env, ds, &p) {
                Err(ConnectorError::Config(m)) => m,
                Err(e) => panic!("{ds}: wrong error {e}"),
                Ok(_) => panic!("{ds}: accepted"),
            }
        };
        let m = refused("../outside/secret.json", serde_json::json!({"path": "."}));
        assert!(
            m.contains("secret.json") && m.contains("outside the allowed"),
            "{m}"
        );
        refused("/etc/passwd", serde_json::json!({}));
        refused(
            "x.json",
            serde_json::json!({"path": outside.to_str().unwrap()}),
        );
        let m = refused(
            "ok.json",
            serde_json::json!({"path": "in", "actionAfterRead": 2, "moveTo": "/tmp"}),
        );
        assert!(m.contains("moveTo"), "{m}");
        // Relative paths resolve under the data dir.
        let p = props(serde_json::json!({"path": "in"}));
        assert!(FileSourceFactory.create(&env, "ok.json", &p).is_ok());
        // A symlink out of the data dir.
        #[cfg(unix)]
        {
            std::os::unix::fs::symlink(&outside, data.join("link")).unwrap();
            refused("link/secret.json", serde_json::json!({"path": "."}));
        }
        // The operator's list opens another directory.
        let env = ConnectorEnv::builder()
            .data_dir(dd)
            .allowed_dirs(vec![outside.clone()])
            .build();
        let p = props(serde_json::json!({"path": outside.to_str().unwrap()}));
        assert!(FileSourceFactory.create(&env, "secret.json", &p).is_ok());
        // Nothing allowed at all without a data dir or a list.
        assert!(FileSourceFactory
            .create(
                &ConnectorEnv::default(),
                "a.json",
                &props(serde_json::json!({"path": dd}))
            )
            .is_err());
    }
}
