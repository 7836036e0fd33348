//! Values as hash keys: GROUP BY dimensions, PARTITION BY, lookup-table
//! keys and their caches. Equality is strict by default (`1` and `1.0`
//! differ); [`Key::lookup`] normalises numbers for lookups.

use std::hash::{Hash, Hasher};

use crate::value::Value;

/// A hashable key made of values (GROUP BY dimensions, PARTITION BY).
/// Equality is strict: `1` and `1.0` are different keys.
#[derive(Clone, Debug)]
pub struct Key(pub Vec<Value>);

pub fn hash_value<H: Hasher>(v: &Value, h: &mut H) {
    match v {
        Value::Null => 0u8.hash(h),
        Value::Bool(b) => {
            1u8.hash(h);
            b.hash(h)
        }
        Value::Int(i) => {
            2u8.hash(h);
            i.hash(h)
        }
        Value::Float(f) => {
            3u8.hash(h);
            let f = if *f == 0.0 { 0.0 } else { *f };
            f.to_bits().hash(h)
        }
        Value::Str(s) => {
            4u8.hash(h);
            s.hash(h)
        }
        Value::Bytes(b) => {
            5u8.hash(h);
            b.hash(h)
        }
        Value::Array(a) => {
            6u8.hash(h);
            a.len().hash(h);
            for x in a.iter() {
                hash_value(x, h);
            }
        }
        Value::Object(o) => {
            7u8.hash(h);
            o.len().hash(h);
            for (k, x) in o.iter() {
                k.hash(h);
                hash_value(x, h);
            }
        }
        Value::Datetime(t) => {
            8u8.hash(h);
            t.hash(h)
        }
    }
}

/// Strict structural equality (no int/float coercion).
pub fn strict_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Null, Value::Null) => true,
        (Value::Bool(x), Value::Bool(y)) => x == y,
        (Value::Int(x), Value::Int(y)) => x == y,
        (Value::Float(x), Value::Float(y)) => x == y || (x.is_nan() && y.is_nan()),
        (Value::Str(x), Value::Str(y)) => x == y,
        (Value::Bytes(x), Value::Bytes(y)) => x == y,
        (Value::Datetime(x), Value::Datetime(y)) => x == y,
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y.iter()).all(|(p, q)| strict_eq(p, q))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .zip(y.iter())
                    .all(|((k1, v1), (k2, v2))| k1 == k2 && strict_eq(v1, v2))
        }
        _ => false,
    }
}

impl Hash for Key {
    fn hash<H: Hasher>(&self, state: &mut H) {
        for v in &self.0 {
            hash_value(v, state);
        }
    }
}

impl PartialEq for Key {
    fn eq(&self, other: &Self) -> bool {
        self.0.len() == other.0.len() && self.0.iter().zip(&other.0).all(|(a, b)| strict_eq(a, b))
    }
}

impl Eq for Key {}

impl Key {
    /// A lookup key: a float with an integral value becomes that integer,
    /// so a row's `1.0` finds the table row keyed `1`.
    pub fn lookup(values: &[Value]) -> Key {
        Key(values
            .iter()
            .map(|v| match v {
                Value::Float(f) if f.fract() == 0.0 && f.abs() < 9.0e15 => Value::Int(*f as i64),
                other => other.clone(),
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_strict_and_lookup_keys_normalise_numbers() {
        let a = Key(vec![Value::Int(1), Value::str("x")]);
        let b = Key(vec![Value::Int(1), Value::str("x")]);
        let c = Key(vec![Value::Float(1.0), Value::str("x")]);
        assert_eq!(a, b);
        assert_ne!(a, c);
        let mut set = std::collections::HashSet::new();
        set.insert(a.clone());
        assert!(set.contains(&b));
        assert!(!set.contains(&c));
        assert_eq!(Key::lookup(&c.0), a);
        assert_ne!(Key::lookup(&[Value::Float(1.5)]), Key(vec![Value::Int(1)]));
        assert_ne!(Key::lookup(&[Value::str("1")]), Key(vec![Value::Int(1)]));
    }
}
