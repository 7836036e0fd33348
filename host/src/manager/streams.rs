//! Streams and tables: `CREATE`/`DROP`/`DESCRIBE`/`SHOW` statements, stored
//! as their SQL text, and eKuiper's describe document.

use oort_core::schema::unknown_key_message;
use oort_sql::ast::{Column, DataType, Statement, StreamDef, StreamKind};
use serde_json::{json, Map, Value as Json};

use super::Manager;
use crate::error::{code, AppError, AppResult};
use crate::store::ns;

#[derive(Clone, Debug)]
pub struct StreamEntry {
    pub def: StreamDef,
    pub sql: String,
}

pub fn parse_def(sql: &str) -> AppResult<StreamDef> {
    match oort_sql::parser::parse_statement(sql)? {
        Statement::CreateStream(d) => Ok(d),
        _ => Err(AppError::bad_code(
            code::STREAM_TABLE,
            "expected a CREATE STREAM or CREATE TABLE statement",
        )),
    }
}

/// The connector type of a stream: `TYPE`, else `mqtt` (streams) / `file` (tables).
/// A lookup table (`KIND="lookup"`): looked up per row, never read.
pub fn is_lookup(def: &StreamDef) -> bool {
    def.kind == StreamKind::Table
        && def
            .options
            .kind
            .as_deref()
            .is_some_and(|k| k.eq_ignore_ascii_case("lookup"))
}

pub fn source_type(def: &StreamDef) -> String {
    match def.options.type_.as_deref() {
        Some(t) if !t.is_empty() => t.to_string(),
        _ => match def.kind {
            StreamKind::Stream => "mqtt".into(),
            StreamKind::Table => "file".into(),
        },
    }
}

fn kind_word(k: StreamKind) -> &'static str {
    match k {
        StreamKind::Stream => "Stream",
        StreamKind::Table => "Table",
    }
}

/// Result of executing a stream statement.
pub enum StmtResult {
    Text(String),
    Json(Json),
}

impl Manager {
    pub(super) fn map(
        &self,
        kind: StreamKind,
    ) -> &parking_lot::RwLock<std::collections::BTreeMap<String, StreamEntry>> {
        match kind {
            StreamKind::Stream => &self.inner.streams,
            StreamKind::Table => &self.inner.tables,
        }
    }

    fn ns(kind: StreamKind) -> &'static str {
        match kind {
            StreamKind::Stream => ns::STREAMS,
            StreamKind::Table => ns::TABLES,
        }
    }

    /// Runs any stream/table statement (`POST /streams` and `/tables`).
    pub async fn exec_stream_sql(&self, sql: &str) -> AppResult<StmtResult> {
        let stmt = oort_sql::parser::parse_statement(sql)?;
        match stmt {
            Statement::CreateStream(def) => {
                let name = def.name.clone();
                let kind = def.kind;
                self.create_stream(def, sql, false).await?;
                Ok(StmtResult::Text(format!(
                    "{} {name} is created.",
                    kind_word(kind)
                )))
            }
            Statement::Drop { kind, name } => {
                self.drop_stream(kind, &name, false).await?;
                Ok(StmtResult::Text(format!(
                    "{} {name} is dropped.",
                    kind_word(kind)
                )))
            }
            Statement::Describe { kind, name } => Ok(StmtResult::Json(self.describe(kind, &name)?)),
            Statement::Show { kind } => Ok(StmtResult::Json(json!(self.list(kind)))),
            Statement::Select(_) => Err(AppError::bad_code(
                code::STREAM_TABLE,
                "a SELECT statement belongs in a rule, not in /streams",
            )),
        }
    }

    pub async fn create_stream(&self, def: StreamDef, sql: &str, replace: bool) -> AppResult<()> {
        super::rule_def::validate_id(&def.name).map_err(AppError::bad)?;
        let kind = def.kind;
        let name = def.name.clone();
        // Either namespace holding the name blocks a create.
        if !replace
            && (self.inner.streams.read().contains_key(&name)
                || self.inner.tables.read().contains_key(&name))
        {
            return Err(AppError::bad_code(
                code::STREAM_TABLE,
                format!("{} {name} already exists", kind.to_string().to_lowercase()),
            ));
        }
        let typ = source_type(&def);
        let lookup = is_lookup(&def);
        if lookup && self.inner.registry.lookup(&typ).is_none() {
            return Err(AppError::bad_code(
                code::STREAM_TABLE,
                format!(
                    "lookup source type {typ} not found; available: {}",
                    self.inner.registry.lookup_kinds().join(", ")
                ),
            ));
        }
        if !lookup && self.inner.registry.source(&typ).is_none() {
            return Err(AppError::bad_code(
                code::STREAM_TABLE,
                format!(
                    "source type {typ} not found; available: {}",
                    self.inner.registry.source_kinds().join(", ")
                ),
            ));
        }
        if def.options.conf_key.is_some() || def.options.extra.is_some() {
            crate::connections::resolve_source(
                &self.inner.conf,
                &typ,
                def.options.conf_key.as_deref(),
                def.options.extra.as_deref(),
            )
            .map_err(|e| AppError::bad_code(code::STREAM_TABLE, e.to_string()))?;
        }
        // The source's validate runs (no IO), so a stream whose properties
        // its connector refuses is never stored.
        let probe = StreamEntry {
            def: def.clone(),
            sql: sql.to_string(),
        };
        if lookup {
            self.check_lookup(&name, &probe)?;
        } else {
            self.check_source(&name, kind, &typ, &probe)?;
        }
        if replace {
            if let Some(old) = self.map(kind).read().get(&name) {
                if old.def.options.shared != def.options.shared {
                    return Err(AppError::bad_code(
                        code::STREAM_TABLE,
                        format!("cannot change SHARED of {kind} {name}"),
                    ));
                }
            }
        }
        let mut ops = vec![crate::store::Op::Put {
            ns: Self::ns(kind).into(),
            key: name.clone(),
            value: sql.to_string(),
        }];
        let changed = self
            .map(kind)
            .read()
            .get(&name)
            .is_some_and(|e| e.sql != sql);
        if changed {
            // Offsets of the old definition mean nothing to the new one.
            ops.push(crate::store::Op::Delete {
                ns: ns::CHECKPOINTS.into(),
                key: name.clone(),
            });
        }
        self.inner.store.apply(&ops)?;
        self.map(kind).write().insert(
            name,
            StreamEntry {
                def,
                sql: sql.to_string(),
            },
        );
        Ok(())
    }

    /// A stream's (or scan table's) source: its FORMAT and its connector's
    /// `validate`; unknown property keys are logged with the closest one.
    fn check_source(
        &self,
        name: &str,
        kind: StreamKind,
        typ: &str,
        probe: &StreamEntry,
    ) -> AppResult<()> {
        let spec = self
            .hub_spec(name, probe)
            .map_err(|e| AppError::bad_code(code::STREAM_TABLE, e.to_string()))?;
        // FORMAT is checked here, not first at a rule start; a source that
        // emits rows ignores it, but an unsupported one is still refused.
        if let Err(e) = oort_core::codec::decoder(&spec.format, &spec.decode) {
            if !spec.factory.emits_rows()
                || matches!(e, oort_core::codec::CodecError::Unsupported(..))
            {
                return Err(AppError::bad_code(
                    code::STREAM_TABLE,
                    format!("{kind} {name}: {e}"),
                ));
            }
        }
        spec.factory
            .validate(&self.inner.env, &spec.datasource, &spec.props)
            .map_err(|e| AppError::bad_code(code::STREAM_TABLE, format!("{kind} {name}: {e}")))?;
        let info = spec.factory.info();
        for (k, near) in info.unknown_keys(&spec.props, &["format", "delimiter", "key"]) {
            let msg = unknown_key_message("source property", &k, near.as_deref());
            tracing::warn!(stream = %name, source = %typ, "{msg}");
        }
        Ok(())
    }

    /// A lookup table's connector `validate` and its `lookup` cache
    /// property; unknown keys are logged with the closest one.
    fn check_lookup(&self, name: &str, probe: &StreamEntry) -> AppResult<()> {
        let spec = self
            .lookup_spec(name, probe)
            .map_err(|e| AppError::bad_code(code::STREAM_TABLE, e.to_string()))?;
        spec.factory
            .validate(&self.inner.env, &spec.datasource, &spec.props)
            .map_err(|e| AppError::bad_code(code::STREAM_TABLE, format!("Table {name}: {e}")))?;
        let info = spec.factory.info();
        for (k, near) in info.unknown_keys(&spec.props, &["format", "key"]) {
            let msg = unknown_key_message("lookup property", &k, near.as_deref());
            tracing::warn!(table = %name, source = %spec.typ, "{msg}");
        }
        for msg in &spec.warnings {
            tracing::warn!(table = %name, source = %spec.typ, "{msg}");
        }
        Ok(())
    }

    /// `PUT /streams/{name}`: the statement's name must match the path.
    pub async fn replace_stream(
        &self,
        kind: StreamKind,
        name: &str,
        sql: &str,
    ) -> AppResult<String> {
        let def = parse_def(sql)?;
        if def.name != name {
            return Err(AppError::bad_code(
                code::STREAM_TABLE,
                format!("the name in the statement ({}) must be {name}", def.name),
            ));
        }
        if def.kind != kind {
            return Err(AppError::bad_code(
                code::STREAM_TABLE,
                format!(
                    "expected a CREATE {} statement",
                    kind.to_string().to_uppercase()
                ),
            ));
        }
        self.create_stream(def, sql, true).await?;
        Ok(format!("{} {name} is replaced.", kind_word(kind)))
    }

    pub async fn drop_stream(&self, kind: StreamKind, name: &str, force: bool) -> AppResult<()> {
        if !self.map(kind).read().contains_key(name) {
            return Err(AppError::not_found(format!("{kind} {name} is not found")));
        }
        let users = self.rules_using(name).await;
        if !users.is_empty() && !force {
            return Err(AppError::bad_code(
                code::STREAM_TABLE,
                format!(
                    "{kind} {name} has been referenced by other rules: {}",
                    users.join(", ")
                ),
            ));
        }
        self.inner.store.apply(&[
            crate::store::Op::Delete {
                ns: Self::ns(kind).into(),
                key: name.into(),
            },
            // A stream created again under this name starts afresh.
            crate::store::Op::Delete {
                ns: ns::CHECKPOINTS.into(),
                key: name.into(),
            },
        ])?;
        self.map(kind).write().remove(name);
        Ok(())
    }

    pub fn list(&self, kind: StreamKind) -> Vec<String> {
        self.map(kind).read().keys().cloned().collect()
    }

    /// `GET /streamdetails`: name, type, format.
    pub fn details(&self, kind: StreamKind, table_kind: Option<&str>) -> Json {
        let m = self.map(kind).read();
        let v: Vec<Json> = m
            .iter()
            .filter(|(_, e)| match table_kind {
                Some(k @ ("scan" | "lookup")) => {
                    e.def.options.kind.as_deref().unwrap_or("scan") == k
                }
                _ => true,
            })
            .map(|(n, e)| {
                json!({
                    "name": n,
                    "type": e.def.options.type_.clone().unwrap_or_else(|| "mqtt".into()).to_lowercase(),
                    "format": e.def.options.format.clone().unwrap_or_else(|| "json".into()).to_lowercase(),
                })
            })
            .collect();
        Json::Array(v)
    }

    pub fn list_tables(&self, table_kind: Option<&str>) -> Vec<String> {
        self.inner
            .tables
            .read()
            .iter()
            .filter(|(_, e)| match table_kind {
                Some(k @ ("scan" | "lookup")) => {
                    e.def.options.kind.as_deref().unwrap_or("scan") == k
                }
                _ => true,
            })
            .map(|(n, _)| n.clone())
            .collect()
    }

    pub fn describe(&self, kind: StreamKind, name: &str) -> AppResult<Json> {
        let m = self.map(kind).read();
        let e = m
            .get(name)
            .ok_or_else(|| AppError::not_found(format!("{kind} {name} is not found")))?;
        Ok(describe_json(&e.def))
    }

    pub fn stream_schema(&self, kind: StreamKind, name: &str) -> AppResult<Json> {
        let m = self.map(kind).read();
        let e = m
            .get(name)
            .ok_or_else(|| AppError::not_found(format!("{kind} {name} is not found")))?;
        let mut out = Map::new();
        for c in &e.def.columns {
            out.insert(c.name.clone(), schema_type(&c.ty));
        }
        Ok(Json::Object(out))
    }
}

fn schema_type(t: &DataType) -> Json {
    match t {
        DataType::Array(inner) => json!({"type": "array", "items": schema_type(inner)}),
        DataType::Struct(cols) => {
            let mut p = Map::new();
            for c in cols {
                p.insert(c.name.clone(), schema_type(&c.ty));
            }
            json!({"type": "struct", "properties": p})
        }
        other => json!({"type": other.to_string()}),
    }
}

fn field_json(c: &Column) -> Json {
    let mut m = Map::new();
    m.insert("Name".into(), c.name.clone().into());
    m.insert("FieldType".into(), type_json(&c.ty));
    Json::Object(m)
}

fn type_json(t: &DataType) -> Json {
    match t {
        DataType::Array(inner) => json!({"Type": "array", "ElementType": type_json(inner)}),
        DataType::Struct(cols) => {
            json!({"Type": "struct", "Fields": cols.iter().map(field_json).collect::<Vec<_>>()})
        }
        other => Json::String(other.to_string()),
    }
}

/// eKuiper's describe document.
pub fn describe_json(def: &StreamDef) -> Json {
    let o = &def.options;
    let mut opts = Map::new();
    let mut put = |k: &str, v: &Option<String>| {
        if let Some(v) = v {
            if !v.is_empty() {
                opts.insert(k.into(), Json::String(v.clone()));
            }
        }
    };
    put("datasource", &o.datasource);
    put("key", &o.key);
    put("format", &o.format);
    put("confKey", &o.conf_key);
    put("type", &o.type_);
    put("timestamp", &o.timestamp);
    put("timestampFormat", &o.timestamp_format);
    put("schemaid", &o.schema_id);
    put("version", &o.version);
    put("extra", &o.extra);
    put("kind", &o.kind);
    put("delimiter", &o.delimiter);
    if o.strict_validation {
        opts.insert("strictValidation".into(), true.into());
    }
    if o.shared {
        opts.insert("shared".into(), true.into());
    }
    if o.temp {
        opts.insert("temp".into(), true.into());
    }
    if let Some(r) = o.retain_size {
        opts.insert("retainSize".into(), r.into());
    }
    let fields = if def.columns.is_empty() {
        Json::Null
    } else {
        Json::Array(def.columns.iter().map(field_json).collect())
    };
    json!({
        "Name": def.name,
        "StreamFields": fields,
        "Options": opts,
        "StreamType": if def.kind == StreamKind::Stream { 0 } else { 1 },
        "Statement": null,
    })
}
