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

mod nodes;
#[cfg(test)]
mod tests;

use nodes::{inline_stream, operator, quote_ident, source_name, switch_cases};

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
