//! The rule JSON users post (eKuiper's format), parsed and validated.

use std::time::Duration;

use oort_core::Props;
use serde::Deserialize;
use serde_json::Value as Json;

/// A rule as posted; unknown keys are ignored as eKuiper does.
#[derive(Debug, Clone, Deserialize, Default)]
pub struct RuleDef {
    #[serde(default)]
    pub id: String,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub sql: Option<String>,
    #[serde(default)]
    pub graph: Option<Json>,
    #[serde(default)]
    pub actions: Vec<serde_json::Map<String, Json>>,
    #[serde(default)]
    pub options: Option<serde_json::Map<String, Json>>,
    #[serde(default)]
    pub triggered: Option<bool>,
    #[serde(default)]
    pub tags: Vec<String>,
    #[serde(default)]
    pub version: Option<String>,
    /// Per action, the condition a result row must meet to reach it (a
    /// graph's `switch` cases); empty or `None`: every row.
    #[serde(skip)]
    pub routes: Vec<Option<String>>,
    /// Streams a graph defines inline (name, CREATE statement), private to
    /// the rule.
    #[serde(skip)]
    pub inline_streams: Vec<(String, String)>,
}

/// Options of a rule after defaults (eKuiper v2 defaults).
#[derive(Debug, Clone)]
pub struct RuleOptions {
    pub is_event_time: bool,
    pub late_tolerance: Duration,
    pub buffer_length: usize,
    pub send_nil_field: bool,
    pub send_error: bool,
    /// Each row carries its event's metadata as `__meta` (`sendMetaToSink`).
    pub send_meta_to_sink: bool,
    pub qos: u8,
    /// How often a `qos` >= 1 rule takes a checkpoint (eKuiper: 5 minutes).
    pub checkpoint_interval: Duration,
    pub restart: RestartStrategy,
}

impl Default for RuleOptions {
    fn default() -> Self {
        RuleOptions {
            is_event_time: false,
            late_tolerance: Duration::from_secs(1),
            buffer_length: 1024,
            send_nil_field: false,
            send_error: false,
            send_meta_to_sink: false,
            qos: 0,
            checkpoint_interval: Duration::from_secs(300),
            restart: RestartStrategy::default(),
        }
    }
}

/// One action: connector type and its props.
#[derive(Debug, Clone)]
pub struct Action {
    pub kind: String,
    pub props: Props,
}

#[derive(Debug, thiserror::Error)]
pub enum RuleDefError {
    #[error("invalid rule json: {0}")]
    Json(String),
    #[error("Missing rule id.")]
    MissingId,
    #[error("RuleId is not consistent with rule id.")]
    IdMismatch,
    #[error("{0}")]
    InvalidId(String),
    #[error("invalid rule json: Missing rule actions.")]
    MissingActions,
    #[error("invalid rule json: Rule should have either sql or graph.")]
    NoSql,
    #[error("invalid rule json: Rule cannot have both sql and graph.")]
    Both,
    #[error("invalid rule json: graph: {0}")]
    Graph(String),
    #[error("invalid rule options: {0}")]
    Options(String),
    #[error("invalid rule json: action {0}")]
    Action(String),
}

/// Checks an id against eKuiper's rule: `^[a-zA-Z0-9_\-]+$`.
pub fn validate_id(id: &str) -> Result<(), String> {
    if id.is_empty()
        || !id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        return Err(format!(
            "id '{id}' contains invalid characters: only alphanumeric, hyphens and underscores are allowed"
        ));
    }
    Ok(())
}

impl RuleDef {
    /// Parses and validates in eKuiper's order. `path_id` is the id in the URL for PUT.
    pub fn parse(body: &str, path_id: Option<&str>) -> Result<RuleDef, RuleDefError> {
        let def: RuleDef =
            serde_json::from_str(body).map_err(|e| RuleDefError::Json(e.to_string()))?;
        if def.id.is_empty() {
            match path_id {
                Some(_) => {}
                None => return Err(RuleDefError::MissingId),
            }
        }
        let mut def = def;
        if let Some(p) = path_id {
            if def.id.is_empty() {
                def.id = p.to_string();
            } else if def.id != p {
                return Err(RuleDefError::IdMismatch);
            }
        }
        validate_id(&def.id).map_err(RuleDefError::InvalidId)?;
        match (&def.sql, &def.graph) {
            (Some(_), Some(_)) => return Err(RuleDefError::Both),
            // A graph runs as the SQL and actions it compiles to; the rule
            // keeps its graph (the stored JSON is the one posted).
            (None, Some(g)) => {
                if !def.actions.is_empty() {
                    return Err(RuleDefError::Graph(
                        "a graph rule takes its actions from its sink nodes: remove actions".into(),
                    ));
                }
                let c = super::graph::compile(g, &def.id).map_err(RuleDefError::Graph)?;
                def.sql = Some(c.sql);
                def.actions = c.actions;
                def.routes = c.routes;
                def.inline_streams = c.inline;
            }
            (None, None) => return Err(RuleDefError::NoSql),
            _ => {}
        }
        if def.sql.as_deref().is_some_and(|s| s.trim().is_empty()) {
            return Err(RuleDefError::NoSql);
        }
        if def.actions.is_empty() {
            return Err(RuleDefError::MissingActions);
        }
        def.actions()?;
        def.options()?;
        Ok(def)
    }

    pub fn triggered(&self) -> bool {
        self.triggered.unwrap_or(true)
    }

    pub fn actions(&self) -> Result<Vec<Action>, RuleDefError> {
        let mut out = Vec::new();
        for a in &self.actions {
            if a.len() != 1 {
                return Err(RuleDefError::Action(format!(
                    "must have exactly one sink type, found {}",
                    a.len()
                )));
            }
            for (k, v) in a {
                let props = match v {
                    Json::Object(m) => m.clone(),
                    Json::Null => Props::new(),
                    other => {
                        return Err(RuleDefError::Action(format!(
                            "{k}: properties must be an object, found {other}"
                        )))
                    }
                };
                out.push(Action {
                    kind: k.clone(),
                    props,
                });
            }
        }
        Ok(out)
    }

    pub fn options(&self) -> Result<RuleOptions, RuleDefError> {
        let mut o = RuleOptions::default();
        let Some(m) = &self.options else {
            return Ok(o);
        };
        let bad = |k: &str, v: &Json, want: &str| {
            RuleDefError::Options(format!("{k} must be {want}, found {v}"))
        };
        for (k, v) in m {
            match k.as_str() {
                "isEventTime" => {
                    o.is_event_time = v.as_bool().ok_or_else(|| bad(k, v, "a boolean"))?
                }
                "sendNilField" => {
                    o.send_nil_field = v.as_bool().ok_or_else(|| bad(k, v, "a boolean"))?
                }
                "sendError" => o.send_error = v.as_bool().ok_or_else(|| bad(k, v, "a boolean"))?,
                "sendMetaToSink" => {
                    o.send_meta_to_sink = v.as_bool().ok_or_else(|| bad(k, v, "a boolean"))?
                }
                // Not run by Oort yet: refused when asked for.
                "debug" => {
                    if v.as_bool().ok_or_else(|| bad(k, v, "a boolean"))? {
                        return Err(RuleDefError::Options(
                            "option debug is not supported per rule: run the server with OORT_LOG=debug".into(),
                        ));
                    }
                }
                "bufferLength" => {
                    o.buffer_length = int_in(k, v, 1, limits::MAX_BUFFER_LENGTH)? as usize;
                }
                // One query instance per rule; a sink's own `concurrency`
                // runs parallel writers.
                "concurrency" => {
                    let n = int_in(k, v, 0, limits::MAX_CONCURRENCY)?;
                    if n > 1 {
                        return Err(RuleDefError::Options(format!(
                            "option concurrency {n} is not supported: a rule runs one query instance; set concurrency on an action to run parallel writers"
                        )));
                    }
                }
                "qos" => {
                    let n = v.as_i64().ok_or_else(|| bad(k, v, "0 or 1"))?;
                    if n == 2 {
                        return Err(RuleDefError::Options(
                            "option qos 2 (exactly once) is not supported: use 1 (at least once, duplicates possible after a crash)".into(),
                        ));
                    }
                    if !(0..=1).contains(&n) {
                        return Err(bad(k, v, "0 or 1"));
                    }
                    o.qos = n as u8;
                }
                "lateTolerance" => {
                    o.late_tolerance = duration_in(k, v, Duration::ZERO, limits::MAX_DURATION)?
                }
                "checkpointInterval" => {
                    o.checkpoint_interval = duration_in(
                        k,
                        v,
                        limits::MIN_CHECKPOINT_INTERVAL,
                        limits::MAX_CHECKPOINT_INTERVAL,
                    )?;
                }
                "restartStrategy" => {
                    o.restart = restart_strategy(v)?;
                }
                // eKuiper options Oort does not run: refused, never ignored.
                "cron"
                | "duration"
                | "cronDatetimeRange"
                | "logFilename"
                | "planOptimizeStrategy"
                | "disableBufferFullDiscard"
                | "enableSaveStateBeforeStop"
                | "forceExitTimeout"
                | "experiment"
                // eKuiper's internal edge-controller hook.
                | "notifySub" => {
                    if !is_unset(v) {
                        return Err(RuleDefError::Options(format!(
                            "option {k} is not supported by Oort (docs/rules.md lists the options it runs)"
                        )));
                    }
                }
                // Unknown: a warning naming the closest known option.
                other => {
                    let near = oort_core::schema::closest(other, KNOWN_OPTIONS);
                    tracing::warn!(
                        rule = %self.id,
                        "{}",
                        oort_core::schema::unknown_key_message("rule option", other, near)
                    );
                }
            }
        }
        Ok(o)
    }
}

/// The options Oort runs (eKuiper's names).
const KNOWN_OPTIONS: &[&str] = &[
    "isEventTime",
    "lateTolerance",
    "concurrency",
    "bufferLength",
    "sendMetaToSink",
    "sendNilField",
    "sendError",
    "qos",
    "checkpointInterval",
    "restartStrategy",
    "debug",
];

/// An option left at "off": null, false, 0, "" or an empty list/object.
fn is_unset(v: &Json) -> bool {
    match v {
        Json::Null => true,
        Json::Bool(b) => !b,
        Json::Number(n) => n.as_f64() == Some(0.0),
        Json::String(s) => s.is_empty(),
        Json::Array(a) => a.is_empty(),
        Json::Object(o) => o.is_empty(),
    }
}

/// Ranges of the numeric rule options (docs/rules.md, "Limits").
pub mod limits {
    use std::time::Duration;

    /// `bufferLength`: a queue of this many events (rule input) or
    /// emissions (each sink) per node.
    pub const MAX_BUFFER_LENGTH: i64 = 1 << 20;
    /// `concurrency`.
    pub const MAX_CONCURRENCY: i64 = 1024;
    /// `restartStrategy.attempts`.
    pub const MAX_RESTART_ATTEMPTS: i64 = 1_000_000;
    /// `lateTolerance`, `restartStrategy.delay` / `maxDelay`: 366 days.
    pub const MAX_DURATION: Duration = Duration::from_secs(366 * 86_400);
    /// `checkpointInterval`: from 10 ms to one day.
    pub const MIN_CHECKPOINT_INTERVAL: Duration = Duration::from_millis(10);
    pub const MAX_CHECKPOINT_INTERVAL: Duration = Duration::from_secs(86_400);
    /// `restartStrategy.multiplier`.
    pub const MAX_MULTIPLIER: f64 = 100.0;
}

fn int_in(k: &str, v: &Json, min: i64, max: i64) -> Result<i64, RuleDefError> {
    let n = v
        .as_i64()
        .ok_or_else(|| RuleDefError::Options(format!("{k} must be an integer, found {v}")))?;
    if n < min || n > max {
        return Err(RuleDefError::Options(format!(
            "{k} must be between {min} and {max}, found {n}"
        )));
    }
    Ok(n)
}

fn duration_in(k: &str, v: &Json, min: Duration, max: Duration) -> Result<Duration, RuleDefError> {
    let d = oort_core::duration::duration_from_json(v)
        .map_err(|e| RuleDefError::Options(format!("{k}: {e}")))?;
    if d < min || d > max {
        return Err(RuleDefError::Options(format!(
            "{k} must be between {} ms and {} ms, found {v}",
            min.as_millis(),
            max.as_millis()
        )));
    }
    Ok(d)
}

/// `restartStrategy` (eKuiper 1.x's, which v2 kept only `attempts` of):
/// a rule stopped by an error is started again up to `attempts` times, after
/// `delay`, growing by `multiplier` up to `maxDelay`, each spread by
/// `jitterFactor`.
#[derive(Debug, Clone, PartialEq)]
pub struct RestartStrategy {
    pub attempts: u32,
    pub delay: Duration,
    pub multiplier: f64,
    pub max_delay: Duration,
    pub jitter: f64,
}

impl Default for RestartStrategy {
    fn default() -> Self {
        RestartStrategy {
            attempts: 0,
            delay: Duration::from_millis(1000),
            multiplier: 2.0,
            max_delay: Duration::from_millis(30_000),
            jitter: 0.1,
        }
    }
}

impl RestartStrategy {
    pub fn backoff(&self) -> oort_core::backoff::Backoff {
        oort_core::backoff::Backoff::with(self.delay, self.max_delay, self.multiplier, self.jitter)
    }
}

/// `restartStrategy`: every field checked against its range.
fn restart_strategy(v: &Json) -> Result<RestartStrategy, RuleDefError> {
    let Json::Object(m) = v else {
        return Err(RuleDefError::Options(format!(
            "restartStrategy must be an object, found {v}"
        )));
    };
    let mut r = RestartStrategy::default();
    for (k, f) in m {
        let name = format!("restartStrategy.{k}");
        match k.as_str() {
            "attempts" => {
                r.attempts = int_in(&name, f, 0, limits::MAX_RESTART_ATTEMPTS)? as u32;
            }
            "delay" => r.delay = duration_in(&name, f, Duration::ZERO, limits::MAX_DURATION)?,
            "maxDelay" => {
                r.max_delay = duration_in(&name, f, Duration::ZERO, limits::MAX_DURATION)?
            }
            "multiplier" => {
                r.multiplier = f
                    .as_f64()
                    .filter(|x| (1.0..=limits::MAX_MULTIPLIER).contains(x))
                    .ok_or_else(|| {
                        RuleDefError::Options(format!(
                            "{name} must be a number between 1 and {}, found {f}",
                            limits::MAX_MULTIPLIER
                        ))
                    })?;
            }
            "jitterFactor" => {
                r.jitter = f
                    .as_f64()
                    .filter(|x| (0.0..=1.0).contains(x))
                    .ok_or_else(|| {
                        RuleDefError::Options(format!(
                            "{name} must be a number between 0 and 1, found {f}"
                        ))
                    })?;
            }
            other => {
                return Err(RuleDefError::Options(format!(
                    "unknown option restartStrategy.{other}: use attempts, delay, multiplier, maxDelay or jitterFactor"
                )))
            }
        }
    }
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_oort_does_not_run_are_refused_by_name() {
        let opts = |o: &str| {
            RuleDef::parse(
                &format!(r#"{{"id":"a","sql":"x","actions":[{{"log":{{}}}}],"options":{o}}}"#),
                None,
            )
            .and_then(|d| d.options())
        };
        for (o, name) in [
            (r#"{"cron":"*/5 * * * *","duration":"1m"}"#, "cron"),
            (r#"{"duration":"1m"}"#, "duration"),
            (
                r#"{"cronDatetimeRange":[{"begin":"2024-01-01 00:00:00","end":"2024-02-01 00:00:00"}]}"#,
                "cronDatetimeRange",
            ),
            (
                r#"{"planOptimizeStrategy":{"enableIncrementalWindow":true}}"#,
                "planOptimizeStrategy",
            ),
            (
                r#"{"disableBufferFullDiscard":true}"#,
                "disableBufferFullDiscard",
            ),
            (
                r#"{"enableSaveStateBeforeStop":true}"#,
                "enableSaveStateBeforeStop",
            ),
            (r#"{"sendMetaToSink":"yes"}"#, "sendMetaToSink"),
            (r#"{"debug":true}"#, "debug"),
            (r#"{"concurrency":4}"#, "concurrency"),
            (r#"{"qos":2}"#, "qos 2"),
            (r#"{"notifySub":true}"#, "notifySub"),
            (
                r#"{"restartStrategy":{"attempts":1,"backoff":3}}"#,
                "restartStrategy.backoff",
            ),
        ] {
            let e = opts(o).unwrap_err().to_string();
            assert!(e.contains(name), "{o}: {e}");
        }
        // Off, or as Oort runs it: accepted.
        for o in [
            r#"{"cron":"","duration":"","sendMetaToSink":false,"debug":false,"concurrency":1}"#,
            r#"{"notifySub":false,"disableBufferFullDiscard":false,"qos":1}"#,
            r#"{"unknownThing":1,"sendEror":true}"#,
        ] {
            opts(o).unwrap_or_else(|e| panic!("{o}: {e}"));
        }
        let r = opts(r#"{"restartStrategy":{"attempts":3,"delay":"2s","multiplier":1.5,"maxDelay":10000,"jitterFactor":0.2}}"#)
            .unwrap()
            .restart;
        assert_eq!(
            r,
            RestartStrategy {
                attempts: 3,
                delay: Duration::from_secs(2),
                multiplier: 1.5,
                max_delay: Duration::from_secs(10),
                jitter: 0.2
            }
        );
    }

    #[test]
    fn validation_order_and_messages() {
        let e = RuleDef::parse(r#"{"sql":"select * from s","actions":[{"log":{}}]}"#, None)
            .unwrap_err();
        assert_eq!(e.to_string(), "Missing rule id.");
        let e = RuleDef::parse(r#"{"id":"r1","sql":"select * from s"}"#, None).unwrap_err();
        assert_eq!(e.to_string(), "invalid rule json: Missing rule actions.");
        let e =
            RuleDef::parse(r#"{"id":"r/1","sql":"x","actions":[{"log":{}}]}"#, None).unwrap_err();
        assert!(e.to_string().contains("invalid characters"));
        let e = RuleDef::parse(r#"{"id":"a","sql":"x","actions":[{"log":{}}]}"#, Some("b"))
            .unwrap_err();
        assert_eq!(e.to_string(), "RuleId is not consistent with rule id.");
        let e = RuleDef::parse(
            r#"{"id":"a","sql":"x","actions":[{"log":{}}],"options":{"bufferLength":-1}}"#,
            None,
        )
        .unwrap_err();
        assert!(e.to_string().contains("bufferLength"));
        let d = RuleDef::parse(
            r#"{"id":"a","sql":"x","actions":[{"log":{}}],"options":{"lateTolerance":"2s"}}"#,
            None,
        )
        .unwrap();
        assert_eq!(d.options().unwrap().late_tolerance, Duration::from_secs(2));
        assert!(d.triggered());
    }
}
