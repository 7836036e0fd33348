//! Result columns as Oort values, per driver: PostgreSQL by column type
//! (binary protocol; NUMERIC decoded here), MySQL/MariaDB by column type
//! (text protocol), SQLite by storage class.

use std::sync::Arc;

use oort_core::{ConnectorError, Row, Schema, Value};

use super::db::lite_error;

/// Rows of one result, sharing one schema.
fn rows_of(names: Vec<Arc<str>>, values: Vec<Vec<Value>>) -> Vec<Row> {
    let schema = Arc::new(Schema::new(names));
    values
        .into_iter()
        .map(|v| Row::new(schema.clone(), v))
        .collect()
}

pub(super) fn pg_rows(rows: &[tokio_postgres::Row]) -> Result<Vec<Row>, ConnectorError> {
    let Some(first) = rows.first() else {
        return Ok(Vec::new());
    };
    let names: Vec<Arc<str>> = first
        .columns()
        .iter()
        .map(|c| Arc::from(c.name()))
        .collect();
    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        let mut vals = Vec::with_capacity(names.len());
        for (i, c) in r.columns().iter().enumerate() {
            vals.push(pg_value(r, i, c.type_()).map_err(|e| {
                ConnectorError::InvalidData(format!(
                    "sql: column {} ({}): {e}",
                    c.name(),
                    c.type_()
                ))
            })?);
        }
        out.push(vals);
    }
    Ok(rows_of(names, out))
}

fn pg_value(
    r: &tokio_postgres::Row,
    i: usize,
    ty: &tokio_postgres::types::Type,
) -> Result<Value, String> {
    use tokio_postgres::types::Type;
    let e = |e: tokio_postgres::Error| e.to_string();
    let v = match *ty {
        Type::BOOL => r.try_get::<_, Option<bool>>(i).map_err(e)?.map(Value::Bool),
        Type::INT2 => r
            .try_get::<_, Option<i16>>(i)
            .map_err(e)?
            .map(|x| Value::Int(x.into())),
        Type::INT4 => r
            .try_get::<_, Option<i32>>(i)
            .map_err(e)?
            .map(|x| Value::Int(x.into())),
        Type::INT8 => r.try_get::<_, Option<i64>>(i).map_err(e)?.map(Value::Int),
        Type::OID => r
            .try_get::<_, Option<u32>>(i)
            .map_err(e)?
            .map(|x| Value::Int(x.into())),
        Type::FLOAT4 => r
            .try_get::<_, Option<f32>>(i)
            .map_err(e)?
            .map(|x| Value::Float(x.into())),
        Type::FLOAT8 => r.try_get::<_, Option<f64>>(i).map_err(e)?.map(Value::Float),
        Type::NUMERIC => r
            .try_get::<_, Option<PgNumeric>>(i)
            .map_err(e)?
            .map(|n| Value::Float(n.0)),
        Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::NAME | Type::UNKNOWN => r
            .try_get::<_, Option<String>>(i)
            .map_err(e)?
            .map(|s| Value::Str(s.into())),
        Type::JSON | Type::JSONB => r
            .try_get::<_, Option<serde_json::Value>>(i)
            .map_err(e)?
            .map(|j| Value::from_json(&j)),
        Type::BYTEA => r
            .try_get::<_, Option<Vec<u8>>>(i)
            .map_err(e)?
            .map(|b| Value::Bytes(b.into())),
        Type::TIMESTAMP => r
            .try_get::<_, Option<chrono::NaiveDateTime>>(i)
            .map_err(e)?
            .map(|t| Value::Datetime(t.and_utc().timestamp_millis())),
        Type::TIMESTAMPTZ => r
            .try_get::<_, Option<chrono::DateTime<chrono::Utc>>>(i)
            .map_err(e)?
            .map(|t| Value::Datetime(t.timestamp_millis())),
        Type::DATE => r
            .try_get::<_, Option<chrono::NaiveDate>>(i)
            .map_err(e)?
            .map(|d| {
                Value::Datetime(
                    d.and_time(chrono::NaiveTime::MIN)
                        .and_utc()
                        .timestamp_millis(),
                )
            }),
        _ => {
            return Err(format!(
                "type {ty} is not read by Oort: cast it in the query (col::text)"
            ))
        }
    };
    Ok(v.unwrap_or(Value::Null))
}

/// PostgreSQL's binary NUMERIC, read as a float.
struct PgNumeric(f64);

impl<'a> tokio_postgres::types::FromSql<'a> for PgNumeric {
    fn from_sql(
        _ty: &tokio_postgres::types::Type,
        raw: &'a [u8],
    ) -> Result<Self, Box<dyn std::error::Error + Sync + Send>> {
        let word = |i: usize| -> Result<i16, String> {
            raw.get(i * 2..i * 2 + 2)
                .map(|b| i16::from_be_bytes([b[0], b[1]]))
                .ok_or_else(|| "short numeric".to_string())
        };
        let ndigits = word(0)?;
        let weight = word(1)?;
        let sign = word(2)? as u16;
        if sign == 0xC000 {
            return Ok(PgNumeric(f64::NAN));
        }
        let mut v = 0f64;
        for d in 0..ndigits.max(0) as usize {
            let digit = f64::from(word(4 + d)?);
            v += digit * 10000f64.powi(i32::from(weight) - d as i32);
        }
        Ok(PgNumeric(if sign == 0x4000 { -v } else { v }))
    }

    fn accepts(ty: &tokio_postgres::types::Type) -> bool {
        *ty == tokio_postgres::types::Type::NUMERIC
    }
}

pub(super) fn my_rows(
    cols: &[mysql_async::Column],
    rows: Vec<mysql_async::Row>,
) -> Result<Vec<Row>, ConnectorError> {
    let names: Vec<Arc<str>> = cols
        .iter()
        .map(|c| Arc::from(c.name_str().as_ref()))
        .collect();
    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        let raw = r.unwrap();
        let mut vals = Vec::with_capacity(cols.len());
        for (c, v) in cols.iter().zip(raw) {
            vals.push(my_value(c, v).map_err(|e| {
                ConnectorError::InvalidData(format!("sql: column {}: {e}", c.name_str()))
            })?);
        }
        out.push(vals);
    }
    Ok(rows_of(names, out))
}

/// A MySQL text-protocol value by its column type.
fn my_value(c: &mysql_async::Column, v: mysql_async::Value) -> Result<Value, String> {
    use mysql_async::consts::{ColumnFlags, ColumnType as T};
    let bytes = match v {
        mysql_async::Value::NULL => return Ok(Value::Null),
        mysql_async::Value::Bytes(b) => b,
        mysql_async::Value::Int(i) => return Ok(Value::Int(i)),
        mysql_async::Value::UInt(u) => return Ok(Value::Int(u as i64)),
        mysql_async::Value::Float(f) => return Ok(Value::Float(f.into())),
        mysql_async::Value::Double(f) => return Ok(Value::Float(f)),
        other => {
            return Ok(Value::Str(
                other.as_sql(true).trim_matches('\'').to_string().into(),
            ))
        }
    };
    let text = || String::from_utf8_lossy(&bytes).into_owned();
    let binary = c.flags().contains(ColumnFlags::BINARY_FLAG) && c.character_set() == 63;
    Ok(match c.column_type() {
        T::MYSQL_TYPE_TINY
        | T::MYSQL_TYPE_SHORT
        | T::MYSQL_TYPE_LONG
        | T::MYSQL_TYPE_LONGLONG
        | T::MYSQL_TYPE_INT24
        | T::MYSQL_TYPE_YEAR => {
            let s = text();
            match s.parse::<i64>() {
                Ok(i) => Value::Int(i),
                Err(_) => s
                    .parse::<f64>()
                    .map(Value::Float)
                    .map_err(|_| format!("bad integer {s:?}"))?,
            }
        }
        T::MYSQL_TYPE_FLOAT
        | T::MYSQL_TYPE_DOUBLE
        | T::MYSQL_TYPE_DECIMAL
        | T::MYSQL_TYPE_NEWDECIMAL => {
            let s = text();
            Value::Float(s.parse::<f64>().map_err(|_| format!("bad number {s:?}"))?)
        }
        T::MYSQL_TYPE_DATETIME | T::MYSQL_TYPE_TIMESTAMP | T::MYSQL_TYPE_DATE => {
            let s = text();
            let t = chrono::NaiveDateTime::parse_from_str(&s, "%Y-%m-%d %H:%M:%S%.f")
                .or_else(|_| {
                    chrono::NaiveDate::parse_from_str(&s, "%Y-%m-%d")
                        .map(|d| d.and_time(chrono::NaiveTime::MIN))
                })
                .map_err(|_| format!("bad datetime {s:?}"))?;
            Value::Datetime(t.and_utc().timestamp_millis())
        }
        T::MYSQL_TYPE_JSON => {
            let j: serde_json::Value =
                serde_json::from_slice(&bytes).map_err(|e| format!("bad JSON: {e}"))?;
            Value::from_json(&j)
        }
        T::MYSQL_TYPE_BIT => Value::Int(bytes.iter().fold(0i64, |a, b| (a << 8) | i64::from(*b))),
        T::MYSQL_TYPE_TINY_BLOB
        | T::MYSQL_TYPE_MEDIUM_BLOB
        | T::MYSQL_TYPE_LONG_BLOB
        | T::MYSQL_TYPE_BLOB
        | T::MYSQL_TYPE_STRING
        | T::MYSQL_TYPE_VAR_STRING
        | T::MYSQL_TYPE_VARCHAR
            if binary =>
        {
            Value::Bytes(bytes.into())
        }
        _ => Value::Str(text().into()),
    })
}

pub(super) fn lite_rows(c: &rusqlite::Connection, sql: &str) -> Result<Vec<Row>, ConnectorError> {
    let mut st = c.prepare(sql).map_err(lite_error)?;
    let names: Vec<Arc<str>> = st.column_names().into_iter().map(Arc::from).collect();
    let n = names.len();
    let mut rows = st.query([]).map_err(lite_error)?;
    let mut out = Vec::new();
    while let Some(r) = rows.next().map_err(lite_error)? {
        let mut vals = Vec::with_capacity(n);
        for i in 0..n {
            use rusqlite::types::ValueRef;
            vals.push(match r.get_ref(i).map_err(lite_error)? {
                ValueRef::Null => Value::Null,
                ValueRef::Integer(x) => Value::Int(x),
                ValueRef::Real(f) => Value::Float(f),
                ValueRef::Text(t) => Value::Str(String::from_utf8_lossy(t).into()),
                ValueRef::Blob(b) => Value::Bytes(b.into()),
            });
        }
        out.push(vals);
    }
    Ok(rows_of(names, out))
}
