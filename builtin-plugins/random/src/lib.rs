//! `random`: Oort's built-in random source plugin, with eKuiper's random
//! source properties. Every `interval` ms it emits `pattern` as JSON with
//! each integer field increased by a random value in `[0, seed)` (float
//! fields by a random float in the same range); with `deduplicate: N > 0`
//! a message equal to one of the previous N is skipped.
//!
//! `interval: 0` is an Oort extension (eKuiper rejects it): no pacing, each
//! `read` returns as many messages as the host asks for, so the source runs
//! as fast as the rule consumes (load tests, benchmarks).

use std::collections::hash_map::RandomState;
use std::collections::VecDeque;
use std::hash::{BuildHasher, Hasher};
use std::time::{Duration, Instant};

use oort_plugin_sdk::serde_json::{Map, Number, Value};

#[cfg(not(feature = "contract-0-1"))]
const NAME: &str = "random";
/// The same source on `oort:connector@0.1.0` (the contract benchmark).
#[cfg(feature = "contract-0-1")]
const NAME: &str = "random_v1";
use oort_plugin_sdk::{
    prop, Batch, Context, Error, Message, PluginInfo, Props, ReadOutcome, Source,
};

const SCHEMA: &str = r#"{"interval":"int (ms, default 1000; 0: unpaced)","seed":"int > 0 (default 1)","pattern":"object (default {\"count\":50})","deduplicate":"int >= 0 (default 0)"}"#;

struct Config {
    interval: Duration,
    seed: u64,
    pattern: Map<String, Value>,
    deduplicate: usize,
}

fn config(props: &Props) -> Result<Config, Error> {
    let interval = prop::<i64>(props, "interval")?.unwrap_or(1000);
    if interval < 0 {
        return Err(Error::config(format!(
            "interval must be positive (or 0: unpaced), got {interval}"
        )));
    }
    let seed = prop::<i64>(props, "seed")?.unwrap_or(1);
    if seed <= 0 {
        return Err(Error::config(format!("seed must be positive, got {seed}")));
    }
    let pattern = match props.get("pattern") {
        None | Some(Value::Null) => {
            let mut m = Map::new();
            m.insert("count".into(), Value::from(50));
            m
        }
        Some(Value::Object(m)) => m.clone(),
        Some(other) => {
            return Err(Error::config(format!(
                "pattern must be a JSON object, got {other}"
            )))
        }
    };
    let deduplicate = prop::<i64>(props, "deduplicate")?.unwrap_or(0);
    if deduplicate < 0 {
        return Err(Error::config(format!(
            "deduplicate must not be negative, got {deduplicate}"
        )));
    }
    Ok(Config {
        interval: Duration::from_millis(interval as u64),
        seed: seed as u64,
        pattern,
        deduplicate: deduplicate as usize,
    })
}

/// splitmix64: small, fast, good enough for test data.
struct Rng(u64);

impl Rng {
    fn from_host() -> Self {
        // RandomState is seeded from wasi:random, which every plugin may use.
        let mut h = RandomState::new().build_hasher();
        h.write_u64(0x5eed);
        Rng(h.finish())
    }
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// One entry of the pattern, prepared once: its key written as JSON with
/// the colon (`"id":`) and how its value is made.
struct Field {
    key: Vec<u8>,
    kind: FieldKind,
}

enum FieldKind {
    /// An integer: the base plus a random value in `[0, seed)`.
    Int(i64),
    /// A float: the base plus a random float in `[0, seed)`; the original
    /// JSON when the sum is not a finite number.
    Float(f64, Vec<u8>),
    /// Anything else, written as given.
    Fixed(Vec<u8>),
}

fn fields(pattern: &Map<String, Value>) -> Vec<Field> {
    // Serialising a string or a `Value` into a Vec cannot fail.
    let json = |v: &Value| oort_plugin_sdk::serde_json::to_vec(v).unwrap_or_default();
    pattern
        .iter()
        .map(|(k, v)| {
            let mut key = oort_plugin_sdk::serde_json::to_vec(k).unwrap_or_default();
            key.push(b':');
            let kind = match v {
                Value::Number(n) if n.is_i64() || n.is_u64() => {
                    FieldKind::Int(n.as_i64().unwrap_or(0))
                }
                Value::Number(n) => FieldKind::Float(n.as_f64().unwrap_or(0.0), json(v)),
                _ => FieldKind::Fixed(json(v)),
            };
            Field { key, kind }
        })
        .collect()
}

struct Random {
    cfg: Config,
    fields: Vec<Field>,
    rng: Rng,
    next_due: Instant,
    recent: VecDeque<Vec<u8>>,
}

impl Random {
    fn generate(&mut self) -> Vec<u8> {
        let mut buf = Vec::new();
        self.generate_into(&mut buf);
        buf
    }

    /// One message's JSON, appended to `buf`: the pattern's entries in
    /// order, written straight from [`Field`]s (no map, no key copies).
    fn generate_into(&mut self, buf: &mut Vec<u8>) {
        buf.push(b'{');
        for (i, f) in self.fields.iter().enumerate() {
            if i > 0 {
                buf.push(b',');
            }
            buf.extend_from_slice(&f.key);
            // Writing into a Vec cannot fail.
            match &f.kind {
                FieldKind::Int(base) => {
                    let x = base.saturating_add(self.rng.below(self.cfg.seed) as i64);
                    let _ = oort_plugin_sdk::serde_json::to_writer(&mut *buf, &x);
                }
                FieldKind::Float(base, original) => {
                    let r = (self.rng.next() >> 11) as f64 / (1u64 << 53) as f64;
                    match Number::from_f64(base + r * self.cfg.seed as f64) {
                        Some(n) => {
                            let _ = oort_plugin_sdk::serde_json::to_writer(&mut *buf, &n);
                        }
                        None => buf.extend_from_slice(original),
                    }
                }
                FieldKind::Fixed(json) => buf.extend_from_slice(json),
            }
        }
        buf.push(b'}');
    }

    /// `interval: 0`: up to `max` messages at once. When every one of them
    /// was a duplicate, naps for `wait` rather than spin.
    /// Messages are written straight into the packed batch.
    fn unpaced(&mut self, max: u32, wait: Duration) -> Batch {
        let mut out = Batch::new();
        let mut scratch = Vec::new();
        for _ in 0..max {
            if self.cfg.deduplicate == 0 {
                out.push_with(|buf| self.generate_into(buf));
                continue;
            }
            scratch.clear();
            self.generate_into(&mut scratch);
            if !self.duplicate(&scratch) {
                out.push(&scratch);
            }
        }
        if out.is_empty() {
            std::thread::sleep(wait);
        }
        out
    }

    /// True when `payload` repeats one of the last `deduplicate` messages.
    fn duplicate(&mut self, payload: &[u8]) -> bool {
        let n = self.cfg.deduplicate;
        if n == 0 {
            return false;
        }
        if self.recent.iter().any(|p| p == payload) {
            return true;
        }
        self.recent.push_back(payload.to_vec());
        while self.recent.len() > n {
            self.recent.pop_front();
        }
        false
    }
}

impl Source for Random {
    fn describe() -> PluginInfo {
        PluginInfo::new(NAME, env!("CARGO_PKG_VERSION"))
            .description(
                "Generates JSON messages from a pattern whose numeric fields are randomised.",
            )
            .properties_schema(SCHEMA)
    }

    fn validate(props: &Props) -> Result<(), Error> {
        config(props).map(|_| ())
    }

    fn open(_ctx: &Context, props: Props, _resume: Option<String>) -> Result<Self, Error> {
        let cfg = config(&props)?;
        Ok(Random {
            next_due: Instant::now() + cfg.interval,
            fields: fields(&cfg.pattern),
            cfg,
            rng: Rng::from_host(),
            recent: VecDeque::new(),
        })
    }

    fn read(&mut self, max_messages: u32, wait: Duration) -> Result<ReadOutcome, Error> {
        if self.cfg.interval.is_zero() {
            return Ok(ReadOutcome::Batch(self.unpaced(max_messages, wait)));
        }
        let now = Instant::now();
        if now < self.next_due {
            let nap = (self.next_due - now).min(wait);
            std::thread::sleep(nap);
        }
        let mut out = Vec::new();
        // Emit one message per elapsed tick, at most `max_messages`.
        while Instant::now() >= self.next_due && (out.len() as u32) < max_messages {
            self.next_due += self.cfg.interval;
            let payload = self.generate();
            if !self.duplicate(&payload) {
                out.push(Message::new(payload));
            }
        }
        // After a long stall do not burst: restart the schedule from now.
        if Instant::now() >= self.next_due + self.cfg.interval * 4 {
            self.next_due = Instant::now() + self.cfg.interval;
        }
        Ok(ReadOutcome::Messages(out))
    }
}

#[cfg(not(feature = "contract-0-1"))]
oort_plugin_sdk::export_source!(Random);
#[cfg(feature = "contract-0-1")]
oort_plugin_sdk::export_source_v1!(Random);

#[cfg(test)]
mod tests {
    use super::*;

    fn props(json: &str) -> Props {
        oort_plugin_sdk::serde_json::from_str(json).expect("props object")
    }

    fn open(json: &str) -> Random {
        let ctx = Context::default();
        <Random as Source>::open(&ctx, props(json), None).expect("open")
    }

    fn count(out: ReadOutcome) -> usize {
        match out {
            ReadOutcome::Messages(m) => m.len(),
            ReadOutcome::Batch(b) => b.len(),
            ReadOutcome::EndOfStream => 0,
        }
    }

    #[test]
    fn interval_zero_is_accepted_and_negative_is_not() {
        assert!(config(&props(r#"{"interval": 0}"#)).is_ok());
        let e = config(&props(r#"{"interval": -1}"#))
            .err()
            .map(|e| e.message);
        assert!(e.is_some_and(|m| m.contains("interval must be positive")));
    }

    #[test]
    fn interval_zero_fills_every_read_at_once() {
        let mut r = open(r#"{"interval": 0, "seed": 1000, "pattern": {"v": 1}}"#);
        let t = Instant::now();
        for _ in 0..10 {
            assert_eq!(count(r.read(64, Duration::from_millis(200)).unwrap()), 64);
        }
        assert!(
            t.elapsed() < Duration::from_millis(500),
            "{:?}",
            t.elapsed()
        );
    }

    #[test]
    fn paced_reads_still_wait_for_the_interval() {
        let mut r = open(r#"{"interval": 50}"#);
        let t = Instant::now();
        let n = count(r.read(64, Duration::from_millis(200)).unwrap());
        assert_eq!(n, 1);
        assert!(
            t.elapsed() >= Duration::from_millis(40),
            "{:?}",
            t.elapsed()
        );
    }

    #[test]
    fn interval_zero_with_only_duplicates_naps_instead_of_spinning() {
        // seed 1: every message is the same; dedup 1 lets only the first through.
        let mut r = open(r#"{"interval": 0, "pattern": {"v": 1}, "deduplicate": 1}"#);
        assert_eq!(count(r.read(8, Duration::from_millis(30)).unwrap()), 1);
        let t = Instant::now();
        assert_eq!(count(r.read(8, Duration::from_millis(30)).unwrap()), 0);
        assert!(
            t.elapsed() >= Duration::from_millis(25),
            "{:?}",
            t.elapsed()
        );
    }

    #[test]
    fn messages_are_the_pattern_as_json_with_numbers_moved() {
        let mut r = open(
            r#"{"interval": 0, "seed": 1, "pattern": {"a": 1, "b": "x\"y", "big": 18446744073709551615, "c": {"d": [1, 2]}, "e": true, "f": 2.5}}"#,
        );
        let mut buf = Vec::new();
        r.generate_into(&mut buf);
        let v: Value = oort_plugin_sdk::serde_json::from_slice(&buf).expect("valid JSON");
        // seed 1: integers stay (a u64 beyond i64 counts from 0, as before),
        // floats move by less than 1.
        let f = v["f"].as_f64().expect("f is a number");
        assert!((2.5..3.5).contains(&f), "{f}");
        let mut rest = v.clone();
        rest.as_object_mut().map(|m| m.remove("f"));
        assert_eq!(
            rest,
            oort_plugin_sdk::serde_json::json!({"a": 1, "b": "x\"y", "c": {"d": [1, 2]}, "e": true, "big": 0})
        );
        // Keys in the pattern's order (sorted here, so either map order
        // agrees), compact, as serde_json writes a map.
        let text = String::from_utf8(buf).expect("UTF-8");
        assert!(
            text.starts_with(r#"{"a":1,"b":"x\"y","big":0,"c":{"d":[1,2]},"e":true,"f":"#),
            "{text}"
        );
    }
}
