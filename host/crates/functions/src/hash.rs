//! Hash functions `md5`, `sha1`, `sha256`, `sha384`, `sha512`, `crc32`: the
//! lower-case hex digest of the argument's text (bytes are hashed as they are);
//! `partition(key, n)`, Oort's own: the key's partition among `n`, for
//! spreading keyed work over several instances (`docs/scale-out.md`).

use md5::Md5;
use oort_core::Value;
use sha1::Sha1;
use sha2::{Digest, Sha256, Sha384, Sha512};

use crate::util::{arg, int_strict, text, vstring, FnResult};
use crate::FnError;
use crate::ScalarFunc;

macro_rules! f {
    ($name:literal, $call:expr) => {
        ScalarFunc {
            name: $name,
            min_args: 1,
            max_args: Some(1),
            call: $call,
        }
    };
}

pub(crate) static FUNCS: &[ScalarFunc] = &[
    f!("md5", md5_fn),
    f!("sha1", sha1_fn),
    f!("sha256", sha256_fn),
    f!("sha384", sha384_fn),
    f!("sha512", sha512_fn),
    f!("crc32", crc32_fn),
    ScalarFunc {
        name: "partition",
        min_args: 2,
        max_args: Some(2),
        call: partition_fn,
    },
];

/// Largest partition count (a topic per partition: beyond this it is a
/// mistake, not a fleet).
pub const MAX_PARTITIONS: i64 = 65_536;

fn with_bytes(args: &[Value], op: fn(&[u8]) -> String) -> FnResult {
    match arg(args, 0) {
        Value::Null => Ok(Value::Null),
        Value::Bytes(b) => Ok(vstring(op(b))),
        other => Ok(vstring(op(text(other).as_bytes()))),
    }
}

fn digest<D: Digest>(data: &[u8]) -> String {
    hex::encode(D::digest(data))
}

fn md5_fn(args: &[Value]) -> FnResult {
    with_bytes(args, digest::<Md5>)
}
fn sha1_fn(args: &[Value]) -> FnResult {
    with_bytes(args, digest::<Sha1>)
}
fn sha256_fn(args: &[Value]) -> FnResult {
    with_bytes(args, digest::<Sha256>)
}
fn sha384_fn(args: &[Value]) -> FnResult {
    with_bytes(args, digest::<Sha384>)
}
fn sha512_fn(args: &[Value]) -> FnResult {
    with_bytes(args, digest::<Sha512>)
}
/// Like Go's `%x` of the IEEE checksum: no zero padding.
fn crc32_fn(args: &[Value]) -> FnResult {
    with_bytes(args, |b| format!("{:x}", crc32fast::hash(b)))
}

/// `partition(key, n)`: the IEEE CRC-32 of the key's text (bytes as they
/// are) modulo `n`, an int in `0..n`; the same in every instance and release,
/// and computable outside Oort (Python: `zlib.crc32(key.encode()) % n`).
/// NULL key (or count): NULL.
fn partition_fn(args: &[Value]) -> FnResult {
    if arg(args, 0).is_null() || arg(args, 1).is_null() {
        return Ok(Value::Null);
    }
    let n = int_strict("partition", arg(args, 1))?;
    if !(1..=MAX_PARTITIONS).contains(&n) {
        return Err(FnError::call(
            "partition",
            format!("the partition count must be 1 to {MAX_PARTITIONS}, got {n}"),
        ));
    }
    let h = match arg(args, 0) {
        Value::Bytes(b) => crc32fast::hash(b),
        other => crc32fast::hash(text(other).as_bytes()),
    };
    Ok(Value::Int(i64::from(h) % n))
}

#[cfg(test)]
mod tests {
    use crate::scalar;
    use oort_core::Value;
    use std::sync::Arc;

    fn call(name: &str, args: &[Value]) -> Value {
        let f = scalar(name).unwrap_or_else(|| panic!("no function {name}"));
        (f.call)(args).unwrap()
    }

    #[test]
    fn digests() {
        let x = [Value::str("The quick brown fox jumps over the lazy dog")];
        let cases = [
            ("md5", "9e107d9d372bb6826bd81d3542a419d6"),
            ("sha1", "2fd4e1c67a2d28fced849ee1bb76e7391b93eb12"),
            ("sha256", "d7a8fbb307d7809469ca9abcb0082e4f8d5651e46d3cdb762d02d0bf37c9e592"),
            ("sha384", "ca737f1014a48f4c0b6dd43cb177b0afd9e5169367544c494011e3317dbf9a509cb1e5dc1e85a941bbee3d7f2afbc9b1"),
            ("sha512", "07e547d9586f6a73f73fbac0435ed76951218fb7d0c8d788a309d785436bbb642e93a252a954f23912547d1e8a3b5ed6e1bfd7097821233fa0538f3db854fee6"),
            ("crc32", "414fa339"),
        ];
        for (name, want) in cases {
            assert_eq!(call(name, &x), Value::str(want), "{name}");
            assert_eq!(call(name, &[Value::Null]), Value::Null, "{name}(nil)");
        }
        // Bytes hash as raw content; numbers hash their text.
        let raw = Value::Bytes(Arc::from(&b"abc"[..]));
        assert_eq!(call("md5", &[raw]), call("md5", &[Value::str("abc")]));
        assert_eq!(
            call("crc32", &[Value::Int(1)]),
            call("crc32", &[Value::str("1")])
        );
        // No zero padding, like Go's %x.
        assert_eq!(call("crc32", &[Value::str("")]), Value::str("0"));
    }

    #[test]
    fn partition_is_crc32_modulo_n() {
        // Python: zlib.crc32(b"d7") == 4176812371, % 4 == 3.
        assert_eq!(
            call("partition", &[Value::str("d7"), Value::Int(4)]),
            Value::Int(3)
        );
        // Numbers partition by their text, like the string of the same digits.
        assert_eq!(
            call("partition", &[Value::Int(42), Value::Int(8)]),
            call("partition", &[Value::str("42"), Value::Int(8)])
        );
        assert_eq!(
            call("partition", &[Value::Null, Value::Int(3)]),
            Value::Null
        );
        // Every key lands in 0..n, and the keys spread over all partitions.
        let mut seen = [0u32; 4];
        for i in 0..1000 {
            let Value::Int(p) = call("partition", &[Value::str(&format!("d{i}")), Value::Int(4)])
            else {
                panic!("not an int")
            };
            seen[p as usize] += 1;
        }
        assert!(seen.iter().all(|&c| c > 200), "{seen:?}");
        let f = scalar("partition").unwrap();
        for bad in [
            Value::Int(0),
            Value::Int(-1),
            Value::Int(70_000),
            Value::str("4"),
        ] {
            assert!(
                (f.call)(&[Value::str("k"), bad.clone()]).is_err(),
                "{bad:?}"
            );
        }
    }
}
