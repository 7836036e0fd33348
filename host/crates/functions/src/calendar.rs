//! Zone and calendar functions beside [`crate::time`]: `convert_tz`,
//! `date_diff`, `from_days`; and the byte transforms `compress` and
//! `decompress` (zlib, gzip, flate, zstd, through `oort_core::compression`,
//! the sinks' own).

use chrono::{DateTime, Utc};
use oort_core::compression::Compression;
use oort_core::Value;

use crate::time::{time_arg, zone_code, zone_offset_at};
use crate::util::{any_null, int_strict, vstring};
use crate::{FnError, ScalarFunc};

pub(crate) static FUNCS: &[ScalarFunc] = &[
    ScalarFunc {
        name: "convert_tz",
        min_args: 2,
        max_args: Some(2),
        call: convert_tz,
    },
    ScalarFunc {
        name: "date_diff",
        min_args: 2,
        max_args: Some(2),
        call: date_diff,
    },
    ScalarFunc {
        name: "from_days",
        min_args: 1,
        max_args: Some(1),
        call: from_days,
    },
    ScalarFunc {
        name: "compress",
        min_args: 2,
        max_args: Some(2),
        call: compress,
    },
    ScalarFunc {
        name: "decompress",
        min_args: 2,
        max_args: Some(2),
        call: decompress,
    },
];

/// The most `decompress` gives back.
const DECOMPRESS_LIMIT: usize = 16 << 20;

/// The instant of a date-time seen in another zone, as RFC 3339 text with
/// that zone's offset (`2022-04-13T14:22:32.233+08:00`): Oort's date-times
/// carry no zone, so the zone is kept in the text.
fn convert_tz(args: &[Value]) -> Result<Value, FnError> {
    if any_null(args) {
        return Ok(Value::Null);
    }
    let ms = time_arg("convert_tz", &args[0])?;
    let name = match &args[1] {
        Value::Str(s) => s.to_string(),
        other => crate::util::to_string_all(other),
    };
    let code = zone_code(&name)
        .ok_or_else(|| FnError::call("convert_tz", format!("unknown time zone {name}")))?;
    let t = DateTime::<Utc>::from_timestamp_millis(ms)
        .ok_or_else(|| FnError::call("convert_tz", format!("time {ms} is out of range")))?
        .with_timezone(&zone_offset_at(code, ms));
    Ok(vstring(t.format("%Y-%m-%dT%H:%M:%S%.3f%:z").to_string()))
}

/// `date2 - date1` in nanoseconds, as eKuiper (a Go duration).
fn date_diff(args: &[Value]) -> Result<Value, FnError> {
    if any_null(args) {
        return Ok(Value::Null);
    }
    let a = time_arg("date_diff", &args[0])?;
    let b = time_arg("date_diff", &args[1])?;
    b.checked_sub(a)
        .and_then(|d| d.checked_mul(1_000_000))
        .map(Value::Int)
        .ok_or_else(|| FnError::call("date_diff", "the difference overflows"))
}

/// Day `n` counted from 1970-01-01 (day 1), as `yyyy-MM-dd` in the
/// configured zone; day 0 is NULL. eKuiper's, not MySQL's (which counts
/// from year 0).
fn from_days(args: &[Value]) -> Result<Value, FnError> {
    if any_null(args) {
        return Ok(Value::Null);
    }
    let n = int_strict("from_days", &args[0])?;
    if n == 0 {
        return Ok(Value::Null);
    }
    let ms = n
        .checked_sub(1)
        .and_then(|d| d.checked_mul(86_400_000))
        .ok_or_else(|| FnError::call("from_days", format!("day {n} is out of range")))?;
    let t = crate::time::local(ms)
        .ok_or_else(|| FnError::call("from_days", format!("day {n} is out of range")))?;
    Ok(vstring(t.format("%Y-%m-%d").to_string()))
}

fn method(name: &'static str, v: &Value) -> Result<Compression, FnError> {
    let m = match v {
        Value::Str(s) => s.to_string(),
        other => crate::util::to_string_all(other),
    };
    match Compression::parse(&m) {
        Ok(Some(c)) => Ok(c),
        _ => Err(FnError::call(
            name,
            format!(
                "unsupported {}: {m}",
                if name == "compress" {
                    "compressor"
                } else {
                    "decompressor"
                }
            ),
        )),
    }
}

fn bytes_arg<'a>(name: &'static str, v: &'a Value) -> Result<&'a [u8], FnError> {
    match v {
        Value::Str(s) => Ok(s.as_bytes()),
        Value::Bytes(b) => Ok(b),
        other => Err(FnError::call(
            name,
            format!(
                "require string or bytea parameter, but got {}",
                crate::util::go_v(other)
            ),
        )),
    }
}

fn compress(args: &[Value]) -> Result<Value, FnError> {
    if args[0].is_null() {
        return Ok(Value::Null);
    }
    let data = bytes_arg("compress", &args[0])?;
    let m = method("compress", &args[1])?;
    m.compress(data)
        .map(|b| Value::Bytes(b.into()))
        .map_err(|e| FnError::call("compress", e.to_string()))
}

fn decompress(args: &[Value]) -> Result<Value, FnError> {
    if args[0].is_null() {
        return Ok(Value::Null);
    }
    let data = bytes_arg("decompress", &args[0])?;
    let m = method("decompress", &args[1])?;
    m.decompress(data, DECOMPRESS_LIMIT)
        .map(|b| Value::Bytes(b.into()))
        .map_err(|e| FnError::call("decompress", e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(x: &str) -> Value {
        Value::str(x)
    }

    #[test]
    fn zones_with_daylight_saving() {
        let _g = crate::time::tests::tz("UTC");
        // 2022-04-13 06:22:32.233 UTC (eKuiper's test).
        let t = Value::Datetime(1_649_830_952_233);
        assert_eq!(
            convert_tz(&[t.clone(), s("Asia/Shanghai")]).unwrap(),
            s("2022-04-13T14:22:32.233+08:00")
        );
        // Berlin is on summer time in April, winter time in January.
        assert_eq!(
            convert_tz(&[t.clone(), s("Europe/Berlin")]).unwrap(),
            s("2022-04-13T08:22:32.233+02:00")
        );
        assert_eq!(
            convert_tz(&[Value::Datetime(1_642_000_000_000), s("Europe/Berlin")]).unwrap(),
            s("2022-01-12T16:06:40.000+01:00")
        );
        assert_eq!(
            convert_tz(&[t.clone(), s("UTC")]).unwrap(),
            s("2022-04-13T06:22:32.233+00:00")
        );
        let e = convert_tz(&[t, s("Unknown")]).unwrap_err().to_string();
        assert!(e.contains("unknown time zone Unknown"), "{e}");
        let e = convert_tz(&[Value::Bool(true), s("UTC")])
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("unsupported type to convert to timestamp"),
            "{e}"
        );
    }

    #[test]
    fn differences_and_days() {
        let _g = crate::time::tests::tz("UTC");
        assert_eq!(
            date_diff(&[s("2019-01-01 00:00:00"), s("2019-01-02 00:00:00")]).unwrap(),
            Value::Int(86_400_000_000_000)
        );
        assert_eq!(
            date_diff(&[Value::Int(2000), Value::Int(1000)]).unwrap(),
            Value::Int(-1_000_000_000)
        );
        assert_eq!(from_days(&[Value::Int(100)]).unwrap(), s("1970-04-10"));
        assert_eq!(from_days(&[Value::Int(1)]).unwrap(), s("1970-01-01"));
        assert_eq!(from_days(&[Value::Int(0)]).unwrap(), Value::Null);
        assert!(from_days(&[Value::Float(1.5)]).is_err());
    }

    #[test]
    fn compress_round_trips() {
        for m in ["zlib", "gzip", "flate", "zstd"] {
            let c = compress(&[s("hello world"), s(m)]).unwrap();
            let Value::Bytes(b) = &c else {
                panic!("bytes expected from {m}")
            };
            assert_ne!(b.as_ref(), b"hello world");
            assert_eq!(
                decompress(&[c.clone(), s(m)]).unwrap(),
                Value::Bytes(b"hello world".to_vec().into()),
                "{m}"
            );
        }
        let e = compress(&[s("foo"), s("bar")]).unwrap_err().to_string();
        assert!(e.contains("unsupported compressor: bar"), "{e}");
        let e = decompress(&[Value::Int(1), s("zlib")])
            .unwrap_err()
            .to_string();
        assert!(e.contains("require string or bytea parameter"), "{e}");
        assert!(decompress(&[s("not compressed"), s("gzip")]).is_err());
    }
}
