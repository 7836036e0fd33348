//! What the file source and sink declare: traits, default conf keys
//! (eKuiper's `sources/file.yaml`) and property schemas.

use oort_core::{ConnectorInfo, PropSpec};
use serde_json::json;

const SOURCE_DEFAULT: &str = "default:\n  fileType: json\n  path: data\n  interval: 0\n  sendInterval: 0\n  hasHeader: false\n  ignoreStartLines: 0\n  ignoreEndLines: 0\n";

pub(super) fn source() -> ConnectorInfo {
    ConnectorInfo {
        bounded: true,
        default_conf: Some(SOURCE_DEFAULT),
        datasource_hint: Some("A file or folder under path"),
        properties: vec![
            PropSpec::new(
                "path",
                "string",
                "Folder of the files (relative: under the data dir)",
            )
            .default(json!("data")),
            PropSpec::new("fileType", "string", "How a file is read")
                .default(json!("json"))
                .values(&["json", "csv", "lines"]),
            PropSpec::new(
                "interval",
                "duration",
                "Read the file again after this long; 0: once",
            )
            .default(json!(0)),
            PropSpec::new("sendInterval", "duration", "Pause between two rows").default(json!(0)),
            PropSpec::new("hasHeader", "bool", "csv: the first line names the columns")
                .default(json!(false)),
            PropSpec::new("delimiter", "string", "csv: the column separator").default(json!(",")),
            PropSpec::new(
                "columns",
                "list_string",
                "csv without header: the column names",
            ),
            PropSpec::new("ignoreStartLines", "int", "Lines skipped at the start")
                .default(json!(0)),
            PropSpec::new("ignoreEndLines", "int", "Lines skipped at the end").default(json!(0)),
            PropSpec::new(
                "actionAfterRead",
                "int",
                "0: keep the file, 1: delete it, 2: move it to moveTo",
            )
            .default(json!(0))
            .values(&["0", "1", "2"]),
            PropSpec::new(
                "moveTo",
                "string",
                "Where read files go (actionAfterRead 2)",
            ),
            PropSpec::new("decompression", "string", "Not supported: refused when set"),
        ],
        ..ConnectorInfo::new("Reads JSON, CSV or line files from a folder")
    }
}

pub(super) fn sink() -> ConnectorInfo {
    ConnectorInfo {
        properties: vec![
            PropSpec::new(
                "path",
                "string",
                "File to write (relative: under the data dir); may be a template",
            )
            .default(json!("cache"))
            .dynamic(),
            PropSpec::new("fileType", "string", "File layout")
                .default(json!("lines"))
                .values(&["lines", "json", "csv"]),
            PropSpec::new(
                "rollingInterval",
                "duration",
                "Start a new file after this long",
            )
            .default(json!(0)),
            PropSpec::new(
                "rollingCount",
                "int",
                "Start a new file after this many items",
            )
            .default(json!(1_000_000)),
            PropSpec::new(
                "rollingSize",
                "int",
                "Start a new file after this many bytes",
            )
            .default(json!(0)),
            PropSpec::new(
                "checkInterval",
                "duration",
                "How often rollingInterval is checked",
            )
            .default(json!(300_000)),
            PropSpec::new(
                "rollingNamePattern",
                "string",
                "Where the timestamp goes in a rolled file's name",
            )
            .values(&["prefix", "suffix", "none"]),
            PropSpec::new("rollingHook", "string", "Not supported: refused when set"),
        ],
        ..ConnectorInfo::new("Writes results to files, rolling them by time, count or size")
    }
}
