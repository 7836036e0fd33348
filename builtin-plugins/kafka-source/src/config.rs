//! The source's properties (eKuiper's names) and its offsets' text form.

use kafka_common::{brokers, security, Security};
use oort_plugin_sdk::{prop, Error, Props, DATASOURCE_KEY};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Start {
    Latest,
    Earliest,
}

#[derive(Debug, Clone)]
pub(crate) struct Config {
    pub(crate) brokers: Vec<String>,
    pub(crate) security: Security,
    pub(crate) topic: String,
    pub(crate) partition: i32,
    pub(crate) group: Option<String>,
    pub(crate) max_bytes: i32,
    pub(crate) start: Start,
}

pub(crate) fn config(props: &Props) -> Result<Config, Error> {
    let security = security(props)?;
    let brokers = brokers(props)?;
    let topic = prop::<String>(props, DATASOURCE_KEY)?
        .filter(|t| !t.trim().is_empty())
        .ok_or_else(|| Error::config("the topic (the stream's DATASOURCE) is required"))?;
    let group = prop::<String>(props, "groupID")?.filter(|g| !g.is_empty());
    let partition = prop::<i64>(props, "partition")?.unwrap_or(0);
    if !(0..=i32::MAX as i64).contains(&partition) {
        return Err(Error::config(format!(
            "partition {partition}: must be >= 0"
        )));
    }
    if group.is_some() && partition != 0 {
        return Err(Error::config(
            "partition and groupID cannot be combined: with a groupID every partition of the topic is read",
        ));
    }
    let max_bytes = prop::<i64>(props, "maxBytes")?.unwrap_or(1_000_000);
    if !(1..=(64 << 20)).contains(&max_bytes) {
        return Err(Error::config(format!(
            "maxBytes {max_bytes}: use 1 to {}",
            64 << 20
        )));
    }
    let start = match prop::<String>(props, "startOffset")?
        .unwrap_or_default()
        .to_ascii_lowercase()
        .as_str()
    {
        "" if group.is_some() => Start::Earliest,
        "" | "latest" => Start::Latest,
        "earliest" => Start::Earliest,
        s => {
            return Err(Error::config(format!(
                "startOffset {s:?}: use latest or earliest"
            )))
        }
    };
    Ok(Config {
        brokers,
        security,
        topic,
        partition: partition as i32,
        group,
        max_bytes: max_bytes as i32,
        start,
    })
}

/// One partition being read.
#[derive(Debug, Clone)]
pub(crate) struct Part {
    pub(crate) index: i32,
    pub(crate) leader: i32,
    /// Next offset to fetch.
    pub(crate) fetch: i64,
    /// Next offset after the last message returned by `read`.
    pub(crate) delivered: i64,
}

/// `p:o,p:o` (next offset per partition).
pub(crate) fn format_offsets(parts: &[Part]) -> String {
    parts
        .iter()
        .map(|p| format!("{}:{}", p.index, p.delivered))
        .collect::<Vec<_>>()
        .join(",")
}

pub(crate) fn parse_offsets(s: &str) -> Result<Vec<(i32, i64)>, Error> {
    s.split(',')
        .filter(|x| !x.is_empty())
        .map(|x| {
            let (p, o) = x.split_once(':').ok_or(())?;
            Ok((p.parse().map_err(|_| ())?, o.parse().map_err(|_| ())?))
        })
        .collect::<Result<Vec<_>, ()>>()
        .map_err(|_| {
            Error::config(format!(
                "stored offset {s:?} is not partition:offset[,...]: delete the rule's checkpoint or recreate the rule"
            ))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn props(v: serde_json::Value) -> Props {
        v.as_object().cloned().unwrap_or_default()
    }

    #[test]
    fn offsets_round_trip_and_a_bad_one_is_a_config_error() {
        let parts = vec![
            Part {
                index: 0,
                leader: 1,
                fetch: 9,
                delivered: 7,
            },
            Part {
                index: 2,
                leader: 1,
                fetch: 3,
                delivered: 3,
            },
        ];
        let s = format_offsets(&parts);
        assert_eq!(s, "0:7,2:3");
        assert_eq!(parse_offsets(&s).unwrap(), vec![(0, 7), (2, 3)]);
        assert!(parse_offsets("seven").is_err());
    }

    #[test]
    fn properties_are_checked_by_name() {
        let ok = props(serde_json::json!({"brokers": "127.0.0.1:9092", DATASOURCE_KEY: "t"}));
        let c = config(&ok).unwrap();
        assert_eq!((c.partition, c.start), (0, Start::Latest));
        let mut g = ok.clone();
        g.insert("groupID".into(), "g".into());
        assert_eq!(config(&g).unwrap().start, Start::Earliest);
        g.insert("partition".into(), 2.into());
        assert!(config(&g).unwrap_err().message.contains("groupID"));
        let mut s = ok.clone();
        s.insert("startOffset".into(), "middle".into());
        assert!(config(&s).unwrap_err().message.contains("startOffset"));
        let none = props(serde_json::json!({"brokers": "127.0.0.1:9092"}));
        assert!(config(&none).unwrap_err().message.contains("DATASOURCE"));
    }
}
