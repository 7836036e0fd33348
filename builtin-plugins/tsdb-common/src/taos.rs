//! eKuiper's TDengine sink options and its `INSERT` statements: for each row
//! `table (ts, col, ...) [USING sTable TAGS (...)] VALUES (...)`, the rows of
//! a batch joined into one multi-table `INSERT INTO ...;`, sent to the REST
//! endpoint (`/rest/sql/<database>`). Unlike eKuiper, values are escaped and
//! table and column names are checked, so a row cannot change the statement.

use oort_plugin_sdk::serde_json::{Map, Value};
use oort_plugin_sdk::{prop, Error, Props};

use crate::{required, Template};

/// The statement options.
#[derive(Debug, Clone)]
pub struct InsertOptions {
    table: Template,
    s_table: Option<Template>,
    tag_fields: Vec<String>,
    fields: Vec<String>,
    ts_field: String,
    provide_ts: bool,
}

impl InsertOptions {
    pub fn parse(props: &Props) -> Result<InsertOptions, Error> {
        let table = Template::parse("table", &required(props, "table")?)?;
        let ts_field = required(props, "tsFieldName")?;
        let s_table = match prop::<String>(props, "sTable")?.filter(|s| !s.is_empty()) {
            Some(s) => Some(Template::parse("sTable", &s)?),
            None => None,
        };
        let tag_fields = prop::<Vec<String>>(props, "tagFields")?.unwrap_or_default();
        if s_table.is_some() && tag_fields.is_empty() {
            return Err(Error::config("tagFields is required when sTable is set"));
        }
        Ok(InsertOptions {
            table,
            s_table,
            tag_fields,
            fields: prop::<Vec<String>>(props, "fields")?.unwrap_or_default(),
            ts_field,
            provide_ts: prop::<bool>(props, "provideTs")?.unwrap_or(false),
        })
    }

    /// The statements of one message (a row or an array of rows), each
    /// followed by a space; `encode` output for [`crate::write_batch`].
    pub fn rows(&self, payload: &[u8], out: &mut String) -> Result<usize, Error> {
        crate::each_row(payload, |row| self.row(row, out))
    }

    fn row(&self, row: &Map<String, Value>, out: &mut String) -> Result<(), Error> {
        let mut keys: Vec<&str> = vec![self.ts_field.as_str()];
        let mut vals = Vec::new();
        if self.provide_ts {
            let v = row.get(&self.ts_field).ok_or_else(|| {
                Error::invalid_data(format!("timestamp field not found: {}", self.ts_field))
            })?;
            let ts = v.as_i64().ok_or_else(|| {
                Error::invalid_data(format!("timestamp field can not convert to int64: {v}"))
            })?;
            vals.push(ts.to_string());
        } else {
            vals.push("now".to_string());
        }
        let columns: Vec<(&str, &Value)> = if self.fields.is_empty() {
            row.iter().map(|(k, v)| (k.as_str(), v)).collect()
        } else {
            self.fields
                .iter()
                .filter_map(|f| row.get(f).map(|v| (f.as_str(), v)))
                .collect()
        };
        for (k, v) in columns {
            if v.is_null() || k == self.ts_field {
                continue;
            }
            keys.push(k);
            vals.push(literal(v));
        }
        for k in &keys {
            name(k, "column")?;
        }
        let table = self.table.render(row);
        name(&table, "table")?;
        out.push_str(&table);
        out.push_str(" (");
        out.push_str(&keys.join(","));
        out.push(')');
        if let Some(st) = &self.s_table {
            let st = st.render(row);
            name(&st, "sTable")?;
            out.push_str(" USING ");
            out.push_str(&st);
            out.push_str(" TAGS (");
            let tags: Vec<String> = self
                .tag_fields
                .iter()
                .map(|t| row.get(t).map_or_else(|| "NULL".to_string(), literal))
                .collect();
            out.push_str(&tags.join(","));
            out.push(')');
        }
        out.push_str(" VALUES (");
        out.push_str(&vals.join(","));
        out.push_str(") ");
        Ok(())
    }
}

/// A table or column name as TDengine takes it unquoted (`db.table` allowed).
fn name(s: &str, what: &str) -> Result<(), Error> {
    let ok = !s.is_empty()
        && s.len() <= 192
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.');
    if ok {
        Ok(())
    } else {
        Err(Error::invalid_data(format!(
            "{what} name {s:?} is not a plain name (letters, digits, _ and .)"
        )))
    }
}

/// A SQL literal: numbers and booleans as they are, strings (and nested
/// values as their JSON text) single-quoted with `'` and `\` escaped.
fn literal(v: &Value) -> String {
    match v {
        Value::Null => "NULL".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => quote(s),
        other => quote(&other.to_string()),
    }
}

fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('\'');
    for c in s.chars() {
        if c == '\'' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('\'');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use oort_plugin_sdk::serde_json::json;

    fn opts(p: Value) -> Result<InsertOptions, Error> {
        InsertOptions::parse(p.as_object().unwrap())
    }

    #[test]
    fn rows_become_escaped_inserts_with_tags() {
        let o = opts(
            json!({"table": "d_{{.dev}}", "sTable": "meters", "tagFields": ["loc"],
            "tsFieldName": "ts", "provideTs": true, "fields": ["current", "note"]}),
        )
        .unwrap();
        let mut out = String::new();
        o.rows(
            br#"[{"ts": 1700000000000, "dev": "1001", "loc": "it's", "current": 10.3, "note": "a\\b"},
                 {"ts": 1700000000001, "dev": "1002", "current": 9}]"#,
            &mut out,
        )
        .unwrap();
        assert_eq!(
            out,
            "d_1001 (ts,current,note) USING meters TAGS ('it\\'s') VALUES (1700000000000,10.3,'a\\\\b') \
             d_1002 (ts,current) USING meters TAGS (NULL) VALUES (1700000000001,9) "
        );
    }

    #[test]
    fn now_without_provide_ts_and_names_are_checked() {
        let o = opts(json!({"table": "t_{{.dev}}", "tsFieldName": "ts"})).unwrap();
        let mut out = String::new();
        o.rows(br#"{"dev": "a", "v": true, "m": {"x": 1}}"#, &mut out)
            .unwrap();
        assert_eq!(out, "t_a (ts,dev,v,m) VALUES (now,'a',true,'{\"x\":1}') ");
        let e = o
            .rows(br#"{"dev": "a; DROP", "v": 1}"#, &mut out)
            .unwrap_err();
        assert!(e.message.contains("table name"), "{e:?}");
        let e = o.rows(br#"{"dev": "a", "v x": 1}"#, &mut out).unwrap_err();
        assert!(e.message.contains("column name"), "{e:?}");
    }

    #[test]
    fn required_options_are_named() {
        let e = opts(json!({"tsFieldName": "ts"})).unwrap_err();
        assert!(e.message.contains("table is required"), "{e:?}");
        let e = opts(json!({"table": "t"})).unwrap_err();
        assert!(e.message.contains("tsFieldName is required"), "{e:?}");
        let e = opts(json!({"table": "t", "tsFieldName": "ts", "sTable": "s"})).unwrap_err();
        assert!(e.message.contains("tagFields is required"), "{e:?}");
    }
}
