//! eKuiper's graph rules (`"graph": {"nodes": {...}, "topo": {...}}`)
//! compiled onto the SQL runtime: the graph is read node by node into one
//! `SELECT` (sources and `join` give FROM and JOIN, `filter` gives WHERE,
//! or HAVING after an `aggfunc`; `window` and `groupby` give GROUP BY,
//! `function` and `aggfunc` computed fields, `pick` the select list,
//! `orderby` ORDER BY) and its sink nodes become the rule's actions. The
//! rule then plans, runs and reports exactly as the same rule written in
//! SQL. A source node may name a stream or table (`sourceName`) or define
//! one inline (`nodeType` the connector, props the stream options): an
//! inline one becomes a stream private to the rule, named
//! `<rule>__<node>`. A `switch` node ending the chain routes result rows: each case's
//! sinks become actions with a route (the case's condition, and with
//! `stopAtFirstMatch` the earlier cases' negation) that the rule checks per
//! row. What has no SQL form here is refused naming the node: `script`
//! (no JavaScript engine), a switch followed by operators, and graphs whose
//! operators do not form one chain.

use std::collections::{BTreeMap, HashMap};

use serde_json::{Map, Value as Json};

/// The most nodes a graph may have.
const MAX_NODES: usize = 256;

/// A graph rule as SQL and actions.
#[derive(Debug)]
pub struct Compiled {
    pub sql: String,
    pub actions: Vec<Map<String, Json>>,
    /// Per action: the condition a result row must meet to reach it (the
    /// sinks of a `switch` case), `None` for every row.
    pub routes: Vec<Option<String>>,
    /// Streams and tables the graph defines inline: name and CREATE
    /// statement.
    pub inline: Vec<(String, String)>,
}

/// A `switch` node ending the chain.
struct Switch {
    cases: Vec<String>,
    stop_at_first_match: bool,
}

fn err(m: impl Into<String>) -> String {
    m.into()
}

fn node_err(name: &str, m: impl std::fmt::Display) -> String {
    format!("node {name}: {m}")
}

fn str_prop<'a>(name: &str, props: &'a Map<String, Json>, key: &str) -> Result<&'a str, String> {
    props
        .get(key)
        .and_then(Json::as_str)
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| node_err(name, format!("property {key} (a string) is required")))
}

struct Node<'a> {
    kind: &'a str,
    node_type: String,
    props: Map<String, Json>,
}

/// The graph's parts, in the order SQL needs them.
#[derive(Default)]
struct Parts {
    from: Option<String>,
    joins: Vec<String>,
    /// Filters before the window node (the window's FILTER (WHERE ...), so
    /// they drop rows before count and sliding windows too).
    pre_window: Vec<String>,
    wheres: Vec<String>,
    havings: Vec<String>,
    window: Option<String>,
    dims: Vec<String>,
    /// `function`/`aggfunc` expressions, in graph order.
    computed: Vec<String>,
    pick: Option<Vec<String>>,
    order: Vec<String>,
    aggregated: bool,
}

/// Compiles `graph` into SQL and actions, or says which node cannot be.
pub fn compile(graph: &Json, rule_id: &str) -> Result<Compiled, String> {
    let g = graph
        .as_object()
        .ok_or_else(|| err("graph must be an object with nodes and topo"))?;
    let nodes_json = g
        .get("nodes")
        .and_then(Json::as_object)
        .ok_or_else(|| err("graph.nodes (an object) is required"))?;
    if nodes_json.len() > MAX_NODES {
        return Err(format!("a graph has at most {MAX_NODES} nodes"));
    }
    let mut nodes: HashMap<&str, Node> = HashMap::new();
    for (name, n) in nodes_json {
        let o = n
            .as_object()
            .ok_or_else(|| node_err(name, "must be an object"))?;
        let kind = o
            .get("type")
            .and_then(Json::as_str)
            .ok_or_else(|| node_err(name, "type (source, operator or sink) is required"))?;
        if !matches!(kind, "source" | "operator" | "sink") {
            return Err(node_err(
                name,
                format!("unknown type {kind}: expected source, operator or sink"),
            ));
        }
        let node_type = o
            .get("nodeType")
            .and_then(Json::as_str)
            .ok_or_else(|| node_err(name, "nodeType is required"))?
            .to_string();
        let props = match o.get("props") {
            None | Some(Json::Null) => Map::new(),
            Some(Json::Object(p)) => p.clone(),
            Some(_) => return Err(node_err(name, "props must be an object")),
        };
        nodes.insert(
            name.as_str(),
            Node {
                kind,
                node_type,
                props,
            },
        );
    }
    let topo = g
        .get("topo")
        .and_then(Json::as_object)
        .ok_or_else(|| err("graph.topo (an object) is required"))?;
    let sources: Vec<&str> = topo
        .get("sources")
        .and_then(Json::as_array)
        .ok_or_else(|| err("graph.topo.sources (a list) is required"))?
        .iter()
        .map(|s| {
            s.as_str()
                .ok_or_else(|| err("graph.topo.sources holds node names"))
        })
        .collect::<Result<_, _>>()?;
    if sources.is_empty() {
        return Err(err("graph.topo.sources is empty"));
    }
    let mut edges: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    // A switch's outputs: one list of nodes per case.
    let mut case_edges: BTreeMap<&str, Vec<Vec<&str>>> = BTreeMap::new();
    if let Some(e) = topo.get("edges") {
        let e = e
            .as_object()
            .ok_or_else(|| err("graph.topo.edges must be an object"))?;
        for (from, to) in e {
            let list = to
                .as_array()
                .ok_or_else(|| node_err(from, "edges must be a list of node names"))?;
            let is_switch = nodes
                .get(from.as_str())
                .is_some_and(|n| n.kind == "operator" && n.node_type == "switch");
            if is_switch {
                let mut cases = Vec::with_capacity(list.len());
                let mut all = Vec::new();
                for c in list {
                    let targets = c.as_array().ok_or_else(|| {
                        node_err(from, "a switch's edges are one list of node names per case")
                    })?;
                    let mut out = Vec::with_capacity(targets.len());
                    for t in targets {
                        let t = t
                            .as_str()
                            .ok_or_else(|| node_err(from, "edges must be lists of node names"))?;
                        out.push(t);
                        all.push(t);
                    }
                    cases.push(out);
                }
                case_edges.insert(from.as_str(), cases);
                edges.insert(from.as_str(), all);
                continue;
            }
            let mut out = Vec::with_capacity(list.len());
            for t in list {
                match t {
                    Json::String(s) => out.push(s.as_str()),
                    Json::Array(_) => {
                        return Err(node_err(
                            from,
                            "only a switch node has one list of outputs per case",
                        ))
                    }
                    _ => return Err(node_err(from, "edges must be a list of node names")),
                }
            }
            edges.insert(from.as_str(), out);
        }
    }
    for (from, to) in &edges {
        for t in std::iter::once(from).chain(to.iter()) {
            if !nodes.contains_key(t) {
                return Err(format!(
                    "graph.topo.edges names node {t}, which is not in graph.nodes"
                ));
            }
        }
    }
    for s in &sources {
        match nodes.get(s) {
            Some(n) if n.kind == "source" => {}
            Some(_) => {
                return Err(node_err(
                    s,
                    "is listed in topo.sources but is not a source node",
                ))
            }
            None => {
                return Err(format!(
                    "graph.topo.sources names node {s}, which is not in graph.nodes"
                ))
            }
        }
    }

    let mut parts = Parts::default();
    let mut source_names: HashMap<&str, String> = HashMap::new();
    let mut inline = Vec::new();
    for s in &sources {
        let n = &nodes[s];
        let named = n
            .props
            .get("sourceName")
            .and_then(Json::as_str)
            .is_some_and(|x| !x.trim().is_empty());
        if named {
            source_names.insert(s, source_name(s, n)?);
        } else {
            let (name, sql) = inline_stream(rule_id, s, n)?;
            source_names.insert(s, quote_ident(&name));
            inline.push((name, sql));
        }
    }

    // Every source leads, through edges, to the same first operator (or
    // straight to sinks): that is where the chain starts.
    let mut firsts: Vec<&str> = Vec::new();
    let mut sinks: Vec<&str> = Vec::new();
    for s in &sources {
        for t in edges.get(s).map(Vec::as_slice).unwrap_or(&[]) {
            match nodes[t].kind {
                "sink" if !sinks.contains(t) => sinks.push(t),
                "operator" if !firsts.contains(t) => firsts.push(t),
                "sink" | "operator" => {}
                _ => return Err(node_err(s, format!("an edge to source node {t}"))),
            }
        }
    }
    if firsts.len() > 1 {
        return Err(format!(
            "the sources lead to several operators ({}): Oort runs a graph whose operators form one chain",
            firsts.join(", ")
        ));
    }
    // Without a join, one source; with one, the join names them.
    let mut current = firsts.first().copied();
    let mut seen: Vec<&str> = Vec::new();
    let mut switch: Option<(Switch, Vec<Vec<&str>>)> = None;
    while let Some(name) = current {
        if seen.contains(&name) {
            return Err(node_err(name, "is reached twice (a cycle)"));
        }
        seen.push(name);
        let n = &nodes[name];
        if n.node_type == "switch" {
            let cases = switch_cases(name, &n.props)?;
            let outs = case_edges.get(name).cloned().unwrap_or_default();
            if outs.len() != cases.cases.len() {
                return Err(node_err(
                    name,
                    format!(
                        "{} cases but {} output lists in topo.edges: one list per case",
                        cases.cases.len(),
                        outs.len()
                    ),
                ));
            }
            for t in outs.iter().flatten() {
                if nodes[t].kind != "sink" {
                    return Err(node_err(
                        name,
                        format!("case output {t} is not a sink: Oort runs a switch as the last step, its cases leading to sinks"),
                    ));
                }
            }
            switch = Some((cases, outs));
            break;
        }
        operator(name, n, &mut parts, &source_names)?;
        let next = edges.get(name).map(Vec::as_slice).unwrap_or(&[]);
        let ops: Vec<&str> = next
            .iter()
            .copied()
            .filter(|t| nodes[t].kind == "operator")
            .collect();
        for t in next {
            match nodes[t].kind {
                "sink" if !sinks.contains(t) => sinks.push(t),
                "source" => return Err(node_err(name, format!("an edge to source node {t}"))),
                _ => {}
            }
        }
        if ops.len() > 1 {
            return Err(node_err(
                name,
                format!("leads to several operators ({}): Oort runs a graph whose operators form one chain", ops.join(", ")),
            ));
        }
        if !ops.is_empty() && next.iter().any(|t| nodes[t].kind == "sink") {
            return Err(node_err(
                name,
                "leads to both sinks and operators: sinks may only follow the last operator",
            ));
        }
        current = ops.first().copied();
    }
    // Operators not on the chain would be silently dropped: refuse.
    for (name, n) in &nodes {
        if n.kind == "operator" && !seen.contains(name) {
            return Err(node_err(
                name,
                "is not on the path from the sources to the sinks",
            ));
        }
        let by_switch = switch
            .as_ref()
            .is_some_and(|(_, outs)| outs.iter().flatten().any(|t| t == name));
        if n.kind == "sink" && !sinks.contains(name) && !by_switch {
            return Err(node_err(name, "no edge leads to this sink"));
        }
    }
    if sinks.is_empty() && switch.is_none() {
        return Err(err("the graph has no sink node reached by an edge"));
    }
    if parts.from.is_none() {
        if sources.len() > 1 {
            return Err(err("several sources need a join node"));
        }
        parts.from = Some(source_names[sources[0]].clone());
    }
    if sources.len() > 1 && parts.joins.is_empty() {
        return Err(err("several sources need a join node"));
    }
    let sql = render(&parts);
    let action = |s: &str| {
        let n = &nodes[s];
        let mut a = Map::new();
        a.insert(n.node_type.clone(), Json::Object(n.props.clone()));
        a
    };
    let mut actions: Vec<Map<String, Json>> = sinks.iter().map(|s| action(s)).collect();
    let mut routes: Vec<Option<String>> = vec![None; actions.len()];
    if let Some((sw, outs)) = switch {
        // A sink in two cases gets a row once per matching case, as eKuiper's.
        for (i, targets) in outs.iter().enumerate() {
            let route = sw.route(i);
            for t in targets {
                actions.push(action(t));
                routes.push(Some(route.clone()));
            }
        }
    }
    Ok(Compiled {
        sql,
        actions,
        routes,
        inline,
    })
}

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
fn inline_stream(rule_id: &str, name: &str, n: &Node) -> Result<(String, String), String> {
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
fn switch_cases(name: &str, p: &Map<String, Json>) -> Result<Switch, String> {
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
    fn route(&self, i: usize) -> String {
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
fn source_name(name: &str, n: &Node) -> Result<String, String> {
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

fn quote_ident(s: &str) -> String {
    if s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        s.to_string()
    } else {
        format!("`{}`", s.replace('`', ""))
    }
}

fn operator(
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

fn render(p: &Parts) -> String {
    let mut select: Vec<String> = Vec::new();
    match &p.pick {
        // Computed fields stay usable by name in the pick, not output.
        Some(fields) => {
            for c in &p.computed {
                select.push(format!("{c} INVISIBLE"));
            }
            select.extend(fields.iter().cloned());
        }
        None => {
            if !p.aggregated {
                select.push("*".into());
            }
            select.extend(p.computed.iter().cloned());
        }
    }
    let mut sql = format!(
        "SELECT {} FROM {}",
        select.join(", "),
        p.from.as_deref().unwrap_or("")
    );
    for j in &p.joins {
        sql.push(' ');
        sql.push_str(j);
    }
    let mut wheres = p.wheres.clone();
    if p.window.is_none() {
        wheres.splice(0..0, p.pre_window.iter().cloned());
    }
    if !wheres.is_empty() {
        sql.push_str(" WHERE ");
        sql.push_str(&wheres.join(" AND "));
    }
    let mut group: Vec<String> = p.dims.clone();
    if let Some(w) = &p.window {
        if p.pre_window.is_empty() {
            group.push(w.clone());
        } else {
            group.push(format!("{w} FILTER (WHERE {})", p.pre_window.join(" AND ")));
        }
    }
    if !group.is_empty() {
        sql.push_str(" GROUP BY ");
        sql.push_str(&group.join(", "));
    }
    if !p.havings.is_empty() {
        sql.push_str(" HAVING ");
        sql.push_str(&p.havings.join(" AND "));
    }
    if !p.order.is_empty() {
        sql.push_str(" ORDER BY ");
        sql.push_str(&p.order.join(", "));
    }
    sql
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn src(name: &str) -> Json {
        json!({"type": "source", "nodeType": "mqtt", "props": {"sourceType": "stream", "sourceName": name}})
    }

    fn op(t: &str, props: Json) -> Json {
        json!({"type": "operator", "nodeType": t, "props": props})
    }

    fn sink(topic: &str) -> Json {
        json!({"type": "sink", "nodeType": "mqtt", "props": {"server": "tcp://127.0.0.1:1883", "topic": topic}})
    }

    #[test]
    fn a_chain_becomes_one_select() {
        let g = json!({
            "nodes": {
                "demo": src("demo"),
                "fn": op("function", json!({"expr": "log(temperature) as log_t"})),
                "f": op("filter", json!({"expr": "humidity > 30"})),
                "w": op("window", json!({"type": "tumblingwindow", "unit": "ss", "size": 10})),
                "g": op("groupby", json!({"dimensions": ["device"]})),
                "a": op("aggfunc", json!({"expr": "avg(log_t) as avg_t"})),
                "h": op("filter", json!({"expr": "avg_t > 1"})),
                "p": op("pick", json!({"fields": ["device", "avg_t", "window_end() as e"]})),
                "o": op("orderby", json!({"sorts": [{"field": "avg_t", "order": "desc"}]})),
                "out": sink("a"),
                "out2": sink("b")
            },
            "topo": {"sources": ["demo"], "edges": {
                "demo": ["fn"], "fn": ["f"], "f": ["w"], "w": ["g"], "g": ["a"], "a": ["h"],
                "h": ["p"], "p": ["o"], "o": ["out", "out2"]
            }}
        });
        let c = compile(&g, "r").unwrap();
        assert_eq!(
            c.sql,
            "SELECT log(temperature) as log_t INVISIBLE, avg(log_t) as avg_t INVISIBLE, device, avg_t, window_end() as e FROM demo GROUP BY device, TUMBLINGWINDOW(ss, 10) FILTER (WHERE (humidity > 30)) HAVING (avg_t > 1) ORDER BY avg_t DESC"
        );
        assert_eq!(c.actions.len(), 2);
        assert_eq!(c.actions[0]["mqtt"]["topic"], "a");
    }

    #[test]
    fn joins_name_their_sources() {
        let g = json!({
            "nodes": {
                "d1": src("device1"), "d2": src("device2"),
                "w": op("window", json!({"type": "countwindow", "size": 2})),
                "j": op("join", json!({"from": "d1", "joins": [{"name": "d2", "type": "inner", "on": "device1.id = device2.id"}]})),
                "out": sink("x")
            },
            "topo": {"sources": ["d1", "d2"], "edges": {"d1": ["w"], "d2": ["w"], "w": ["j"], "j": ["out"]}}
        });
        assert_eq!(
            compile(&g, "r").unwrap().sql,
            "SELECT * FROM device1 INNER JOIN device2 ON device1.id = device2.id GROUP BY COUNTWINDOW(2)"
        );
    }

    #[test]
    fn inline_sources_become_rule_private_streams() {
        let g = json!({
            "nodes": {
                "in": {"type": "source", "nodeType": "mqtt", "props": {"datasource": "t/in", "format": "json", "confKey": "b1", "shared": false, "sourceType": "stream"}},
                "o": sink("out"),
            },
            "topo": {"sources": ["in"], "edges": {"in": ["o"]}}
        });
        let c = compile(&g, "r1").unwrap();
        assert_eq!(c.sql, "SELECT * FROM r1__in");
        assert_eq!(
            c.inline,
            vec![(
                "r1__in".to_string(),
                "CREATE STREAM r1__in () WITH (TYPE=\"mqtt\", DATASOURCE=\"t/in\", FORMAT=\"json\", CONF_KEY=\"b1\", SHARED=\"false\")".to_string()
            )]
        );
    }

    #[test]
    fn a_switch_routes_rows_to_its_cases_sinks() {
        let g = json!({
            "nodes": {
                "s": src("demo"),
                "f": op("filter", json!({"expr": "t > 0"})),
                "sw": op("switch", json!({"cases": ["t > 30", "t > 20"], "stopAtFirstMatch": true})),
                "hot": sink("hot"),
                "warm": sink("warm"),
                "all": sink("all"),
            },
            "topo": {"sources": ["s"], "edges": {"s": ["f"], "f": ["sw"], "sw": [["hot", "all"], ["warm"]]}}
        });
        let c = compile(&g, "r").unwrap();
        assert_eq!(c.sql, "SELECT * FROM demo WHERE (t > 0)");
        assert_eq!(c.actions.len(), 3);
        assert_eq!(
            c.routes,
            vec![
                Some("(t > 30)".to_string()),
                Some("(t > 30)".to_string()),
                Some("(t > 20) AND NOT coalesce((t > 30), false)".to_string()),
            ]
        );
        assert_eq!(c.actions[2]["mqtt"]["topic"], json!("warm"));
    }

    #[test]
    fn what_has_no_sql_form_is_refused_naming_the_node() {
        let base = |nodes: Json, edges: Json| json!({"nodes": nodes, "topo": {"sources": ["s"], "edges": edges}});
        for (g, says) in [
            (
                base(
                    json!({"s": src("demo"), "x": op("script", json!({"script": "function exec(m){return m}"})), "o": sink("a")}),
                    json!({"s": ["x"], "x": ["o"]}),
                ),
                "node x: nodeType script",
            ),
            (
                base(
                    json!({"s": src("demo"), "x": op("switch", json!({"cases": ["a > 1"]})), "f": op("filter", json!({"expr": "a"})), "o": sink("a")}),
                    json!({"s": ["x"], "x": [["f"]], "f": ["o"]}),
                ),
                "node x: case output f is not a sink",
            ),
            (
                base(
                    json!({"s": src("demo"), "x": op("switch", json!({"cases": ["a > 1", "a < 0"]})), "o": sink("a")}),
                    json!({"s": ["x"], "x": [["o"]]}),
                ),
                "node x: 2 cases but 1 output lists",
            ),
            (
                base(
                    json!({"s": src("demo"), "x": op("switch", json!({"cases": []})), "o": sink("a")}),
                    json!({"s": ["x"], "x": [["o"]]}),
                ),
                "node x: property cases",
            ),
            (
                base(
                    json!({"s": src("demo"), "f": op("filter", json!({"expr": "a"})), "o": sink("a")}),
                    json!({"s": ["f"], "f": [["o"]]}),
                ),
                "only a switch node",
            ),
            (
                base(
                    json!({"s": {"type": "source", "nodeType": "mqtt", "props": {"datasorce": "t"}}, "o": sink("a")}),
                    json!({"s": ["o"]}),
                ),
                "node s: unknown stream property datasorce (did you mean datasource?)",
            ),
            (
                base(
                    json!({"s": {"type": "source", "nodeType": "mqtt", "props": {"datasource": "a\"b"}}, "o": sink("a")}),
                    json!({"s": ["o"]}),
                ),
                "node s: property datasource: quotes",
            ),
            (
                base(
                    json!({"s": src("demo"), "a": op("filter", json!({"expr": "x"})), "b": op("filter", json!({"expr": "y"})), "o": sink("a")}),
                    json!({"s": ["a", "b"], "a": ["o"], "b": ["o"]}),
                ),
                "several operators",
            ),
            (
                base(
                    json!({"s": src("demo"), "a": op("filter", json!({"expr": "x"})), "lost": op("pick", json!({"fields": ["a"]})), "o": sink("a")}),
                    json!({"s": ["a"], "a": ["o"]}),
                ),
                "node lost: is not on the path",
            ),
            (
                base(
                    json!({"s": src("demo"), "w": op("window", json!({"type": "statewindow"})), "o": sink("a")}),
                    json!({"s": ["w"], "w": ["o"]}),
                ),
                "node w: window type statewindow",
            ),
            (
                base(
                    json!({"s": src("demo"), "o": sink("a")}),
                    json!({"s": ["nowhere"]}),
                ),
                "node nowhere",
            ),
            (
                base(
                    json!({"s": src("demo"), "a": op("filter", json!({})), "o": sink("a")}),
                    json!({"s": ["a"], "a": ["o"]}),
                ),
                "node a: property expr",
            ),
        ] {
            let e = compile(&g, "r").unwrap_err();
            assert!(e.contains(says), "{says}: {e}");
        }
    }
}
