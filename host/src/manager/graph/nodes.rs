//! The graph's nodes as SQL: operators, windows, switches and inline
//! source streams.

use std::collections::HashMap;

use serde_json::{Map, Value as Json};

use super::{node_err, str_prop, Node, Parts, Switch};

/// eKuiper's stream options as a graph's inline source node spells them
/// (props keys, matched case-insensitively) and as `WITH (...)` names them.
const INLINE_OPTIONS: [(&str, &str); 12] = [
    ("datasource", "DATASOURCE"),
    ("key", "KEY"),
    ("format", "FORMAT"),
    ("confKey", "CONF_KEY"),
    ("strictValidation", "STRICT_VALIDATION"),
    ("timestamp", "TIMESTAMP"),
    ("timestampFormat", "TIMESTAMP_FORMAT"),
    ("shared", "SHARED"),
    ("schemaid", "SCHEMAID"),
    ("retainSize", "RETAIN_SIZE"),
    ("kind", "KIND"),
    ("delimiter", "DELIMITER"),
];

/// A source node that defines its stream inline (no `sourceName`): the
/// rule-private stream's name and CREATE statement.
pub(super) fn inline_stream(
    rule_id: &str,
    name: &str,
    n: &Node,
) -> Result<(String, String), String> {
    let p = &n.props;
    let table = match p
        .get("sourceType")
        .and_then(Json::as_str)
        .unwrap_or("stream")
    {
        "stream" => false,
        "table" => true,
        other => {
            return Err(node_err(
                name,
                format!("sourceType {other}: expected stream or table"),
            ))
        }
    };
    let typ = n.node_type.trim();
    if typ.is_empty()
        || !typ
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        return Err(node_err(
            name,
            format!("nodeType {typ:?} is not a connector type"),
        ));
    }
    let mut opts = vec![format!("TYPE=\"{typ}\"")];
    let mut schema = (None, None);
    for (k, v) in p {
        if k == "sourceType" {
            continue;
        }
        let text = match v {
            Json::String(s) => s.clone(),
            Json::Bool(b) => b.to_string(),
            Json::Number(x) => x.to_string(),
            Json::Null => continue,
            other => {
                return Err(node_err(
                    name,
                    format!("property {k} must be a string, number or boolean, found {other}"),
                ))
            }
        };
        if text.contains(['"', '\\']) {
            return Err(node_err(
                name,
                format!("property {k}: quotes and backslashes are not allowed"),
            ));
        }
        match k.as_str() {
            "schemaName" => schema.0 = Some(text),
            "schemaMessage" => schema.1 = Some(text),
            _ => match INLINE_OPTIONS
                .iter()
                .find(|(key, _)| key.eq_ignore_ascii_case(k))
            {
                Some((_, opt)) => opts.push(format!("{opt}=\"{text}\"")),
                None => {
                    let known: Vec<&str> = INLINE_OPTIONS.iter().map(|(k, _)| *k).collect();
                    let hint = oort_core::schema::closest(k, &known)
                        .map(|c| format!(" (did you mean {c}?)"))
                        .unwrap_or_default();
                    return Err(node_err(
                        name,
                        format!(
                            "unknown stream property {k}{hint}: an inline source takes {}",
                            known.join(", ")
                        ),
                    ));
                }
            },
        }
    }
    if let (Some(s), Some(m)) = schema {
        if !opts.iter().any(|o| o.starts_with("SCHEMAID=")) {
            opts.push(format!("SCHEMAID=\"{s}.{m}\""));
        }
    }
    let stream = format!("{rule_id}__{name}");
    let sql = format!(
        "CREATE {} {} () WITH ({})",
        if table { "TABLE" } else { "STREAM" },
        quote_ident(&stream),
        opts.join(", ")
    );
    Ok((stream, sql))
}

/// A switch node's props: `cases` (conditions) and `stopAtFirstMatch`.
pub(super) fn switch_cases(name: &str, p: &Map<String, Json>) -> Result<Switch, String> {
    let cases = p
        .get("cases")
        .and_then(Json::as_array)
        .filter(|c| !c.is_empty())
        .ok_or_else(|| node_err(name, "property cases (a list of conditions) is required"))?
        .iter()
        .map(|c| {
            c.as_str()
                .map(str::trim)
                .filter(|c| !c.is_empty())
                .map(str::to_string)
                .ok_or_else(|| node_err(name, "each case is a condition (a string)"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let stop_at_first_match = match p.get("stopAtFirstMatch") {
        None | Some(Json::Null) => false,
        Some(Json::Bool(b)) => *b,
        Some(other) => {
            return Err(node_err(
                name,
                format!("stopAtFirstMatch must be a boolean, found {other}"),
            ))
        }
    };
    for k in p.keys() {
        if !matches!(k.as_str(), "cases" | "stopAtFirstMatch") {
            return Err(node_err(
                name,
                format!("unknown switch property {k} (cases, stopAtFirstMatch)"),
            ));
        }
    }
    Ok(Switch {
        cases,
        stop_at_first_match,
    })
}

impl Switch {
    /// The condition of case `i` on a result row.
    pub(super) fn route(&self, i: usize) -> String {
        let mut cond = format!("({})", self.cases[i]);
        if self.stop_at_first_match {
            for earlier in &self.cases[..i] {
                cond.push_str(&format!(" AND NOT coalesce(({earlier}), false)"));
            }
        }
        cond
    }
}

/// The stream or table a source node names.
pub(super) fn source_name(name: &str, n: &Node) -> Result<String, String> {
    let p = &n.props;
    match p.get("sourceName").and_then(Json::as_str) {
        Some(s) if !s.trim().is_empty() => {
            match p.get("sourceType").and_then(Json::as_str).unwrap_or("stream") {
                "stream" | "table" => Ok(quote_ident(s.trim())),
                other => Err(node_err(name, format!("sourceType {other}: expected stream or table"))),
            }
        }
        _ => Err(node_err(
            name,
            "a source node must name a stream or table (props sourceType and sourceName); streams defined inline in a graph are not supported yet: create the stream first",
        )),
    }
}

pub(super) fn quote_ident(s: &str) -> String {
    if s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        s.to_string()
    } else {
        format!("`{}`", s.replace('`', ""))
    }
}

pub(super) fn operator(
    name: &str,
    n: &Node,
    parts: &mut Parts,
    sources: &HashMap<&str, String>,
) -> Result<(), String> {
    let p = &n.props;
    match n.node_type.as_str() {
        "function" => parts.computed.push(str_prop(name, p, "expr")?.to_string()),
        "aggfunc" => {
            parts.computed.push(str_prop(name, p, "expr")?.to_string());
            parts.aggregated = true;
        }
        "filter" => {
            let e = format!("({})", str_prop(name, p, "expr")?);
            if parts.aggregated {
                parts.havings.push(e);
            } else if parts.window.is_none() {
                parts.pre_window.push(e);
            } else {
                parts.wheres.push(e);
            }
        }
        "pick" => {
            let fields = p
                .get("fields")
                .and_then(Json::as_array)
                .ok_or_else(|| node_err(name, "property fields (a list) is required"))?;
            let fields: Vec<String> = fields
                .iter()
                .map(|f| f.as_str().map(str::to_string).ok_or_else(|| node_err(name, "fields holds expressions as strings")))
                .collect::<Result<_, _>>()?;
            if fields.is_empty() {
                return Err(node_err(name, "fields is empty"));
            }
            parts.pick = Some(fields);
        }
        "window" => {
            if parts.window.is_some() {
                return Err(node_err(name, "a second window"));
            }
            parts.window = Some(window(name, p)?);
        }
        "groupby" => {
            let dims = p
                .get("dimensions")
                .and_then(Json::as_array)
                .ok_or_else(|| node_err(name, "property dimensions (a list) is required"))?;
            for d in dims {
                parts.dims.push(
                    d.as_str()
                        .ok_or_else(|| node_err(name, "dimensions holds expressions as strings"))?
                        .to_string(),
                );
            }
        }
        "orderby" => {
            let sorts = p
                .get("sorts")
                .and_then(Json::as_array)
                .ok_or_else(|| node_err(name, "property sorts (a list) is required"))?;
            for s in sorts {
                let field = s
                    .get("field")
                    .and_then(Json::as_str)
                    .ok_or_else(|| node_err(name, "each sort needs a field"))?;
                let dir = match s.get("order").and_then(Json::as_str).unwrap_or("asc") {
                    o if o.eq_ignore_ascii_case("asc") => "ASC",
                    o if o.eq_ignore_ascii_case("desc") => "DESC",
                    o => return Err(node_err(name, format!("order {o}: expected asc or desc"))),
                };
                parts.order.push(format!("{field} {dir}"));
            }
        }
        "join" => {
            if parts.from.is_some() {
                return Err(node_err(name, "a second join"));
            }
            let from = str_prop(name, p, "from")?;
            let from_name = sources
                .get(from)
                .cloned()
                .unwrap_or_else(|| quote_ident(from));
            parts.from = Some(from_name);
            let joins = p
                .get("joins")
                .and_then(Json::as_array)
                .ok_or_else(|| node_err(name, "property joins (a list) is required"))?;
            for j in joins {
                let right = j
                    .get("name")
                    .and_then(Json::as_str)
                    .ok_or_else(|| node_err(name, "each join needs a name"))?;
                let right_name = sources
                    .get(right)
                    .cloned()
                    .unwrap_or_else(|| quote_ident(right));
                let kind = j.get("type").and_then(Json::as_str).unwrap_or("inner");
                let kw = match kind.to_ascii_lowercase().as_str() {
                    "inner" => "INNER JOIN",
                    "left" => "LEFT JOIN",
                    "right" => "RIGHT JOIN",
                    "full" => "FULL JOIN",
                    "cross" => "CROSS JOIN",
                    other => return Err(node_err(name, format!("join type {other}: expected inner, left, right, full or cross"))),
                };
                match j.get("on").and_then(Json::as_str) {
                    Some(on) if !on.trim().is_empty() => {
                        parts.joins.push(format!("{kw} {right_name} ON {on}"))
                    }
                    _ => parts.joins.push(format!("{kw} {right_name}")),
                }
            }
        }
        "script" => {
            return Err(node_err(
                name,
                "nodeType script is not supported: Oort has no JavaScript engine (use SQL functions or a WebAssembly plugin)",
            ))
        }
        other => {
            return Err(node_err(
                name,
                format!("operator nodeType {other} is not supported (function, aggfunc, filter, pick, window, groupby, orderby, join)"),
            ))
        }
    }
    Ok(())
}

/// A window node as SQL: `TUMBLINGWINDOW(ss, 10)`...
fn window(name: &str, p: &Map<String, Json>) -> Result<String, String> {
    let typ = str_prop(name, p, "type")?.to_ascii_lowercase();
    let int = |k: &str| -> Result<Option<i64>, String> {
        match p.get(k) {
            None | Some(Json::Null) => Ok(None),
            Some(v) => v
                .as_i64()
                .or_else(|| v.as_str().and_then(|s| s.trim().parse().ok()))
                .filter(|n| *n > 0)
                .map(Some)
                .ok_or_else(|| node_err(name, format!("{k} must be a positive integer"))),
        }
    };
    let size = int("size")?;
    let interval = int("interval")?;
    let unit = p.get("unit").and_then(Json::as_str).unwrap_or("ss");
    if !["dd", "hh", "mi", "ss", "ms"]
        .iter()
        .any(|u| u.eq_ignore_ascii_case(unit))
    {
        return Err(node_err(
            name,
            format!("unit {unit}: expected dd, hh, mi, ss or ms"),
        ));
    }
    let need =
        |v: Option<i64>, k: &str| v.ok_or_else(|| node_err(name, format!("{typ} needs {k}")));
    Ok(match typ.as_str() {
        "tumblingwindow" => format!("TUMBLINGWINDOW({unit}, {})", need(size, "size")?),
        "hoppingwindow" => format!(
            "HOPPINGWINDOW({unit}, {}, {})",
            need(size, "size")?,
            need(interval, "interval")?
        ),
        "slidingwindow" => format!("SLIDINGWINDOW({unit}, {})", need(size, "size")?),
        "sessionwindow" => format!(
            "SESSIONWINDOW({unit}, {}, {})",
            need(size, "size")?,
            need(interval, "interval")?
        ),
        "countwindow" => match interval {
            Some(i) => format!("COUNTWINDOW({}, {i})", need(size, "size")?),
            None => format!("COUNTWINDOW({})", need(size, "size")?),
        },
        other => {
            return Err(node_err(
                name,
                format!("window type {other} is not supported: tumblingwindow, hoppingwindow, slidingwindow, sessionwindow or countwindow"),
            ))
        }
    })
}
