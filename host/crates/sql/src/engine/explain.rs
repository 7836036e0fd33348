//! `GET /rules/{id}/explain`: the logical plan of a rule's SELECT in
//! eKuiper's explain format: one JSON object per plan node,
//! `{"op":"<Type>_<id>","info":"..."}`, children indented by a tab under
//! their parent, from the projection down to the data sources. Expressions
//! are printed as eKuiper's AST prints them ([`super::display`]).

use crate::ast::{JoinKind, Select, SelectItem, Window, WindowKind};

use super::display::ek_string;

struct Node {
    kind: &'static str,
    info: String,
    children: Vec<Node>,
}

fn node(kind: &'static str, info: String, child: Option<Node>) -> Node {
    Node {
        kind,
        info,
        children: child.into_iter().collect(),
    }
}

/// The plan of `sel`, as eKuiper's explain text.
pub fn explain(sel: &Select) -> String {
    let ds = (sel.joins.is_empty()).then_some(sel.from.name.as_str());
    let e = |x: &crate::ast::Expr| ek_string(x, ds);
    // Sources (a join's right sides beside the first).
    let source = |name: &str| node("DataSourcePlan", format!("StreamName: {name}"), None);
    let mut plan = source(&sel.from.name);
    if sel.window.is_none() && !sel.joins.is_empty() {
        plan = join(sel, plan, &e);
    }
    if let Some(w) = &sel.window {
        if let Some(f) = &w.filter {
            plan = node(
                "FilterPlan",
                format!("Condition:{{ {} }}", e(f)),
                Some(plan),
            );
        }
        if let Some(c) = &sel.where_ {
            if sel.joins.is_empty() {
                plan = node(
                    "FilterPlan",
                    format!("Condition:{{ {} }}", e(c)),
                    Some(plan),
                );
            }
        }
        plan = node("WindowPlan", window_info(w, &e), Some(plan));
        if !sel.joins.is_empty() {
            plan = join(sel, plan, &e);
            if let Some(c) = &sel.where_ {
                plan = node(
                    "FilterPlan",
                    format!("Condition:{{ {} }}", e(c)),
                    Some(plan),
                );
            }
        }
    } else if let Some(c) = &sel.where_ {
        plan = node(
            "FilterPlan",
            format!("Condition:{{ {} }}", e(c)),
            Some(plan),
        );
    }
    if !sel.group_by.is_empty() {
        let dims: Vec<String> = sel.group_by.iter().map(&e).collect();
        plan = node(
            "AggregatePlan",
            format!("Dimension:{{ {} }}", dims.join(", ")),
            Some(plan),
        );
    }
    if let Some(h) = &sel.having {
        plan = node(
            "HavingPlan",
            format!("Condition:{{ {} }}", e(h)),
            Some(plan),
        );
    }
    if !sel.order_by.is_empty() {
        let keys: Vec<String> = sel
            .order_by
            .iter()
            .map(|o| format!("{} {}", e(&o.expr), if o.desc { "DESC" } else { "ASC" }))
            .collect();
        plan = node(
            "OrderPlan",
            format!("SortFields:[ {} ]", keys.join(", ")),
            Some(plan),
        );
    }
    let fields: Vec<String> = sel
        .fields
        .iter()
        .filter_map(|f| match f {
            SelectItem::Wildcard { .. } => Some("*".to_string()),
            SelectItem::QualifiedWildcard(s) => Some(format!("{s}.*")),
            SelectItem::Expr {
                invisible: true, ..
            } => None,
            SelectItem::Expr { expr, alias, .. } => Some(match alias {
                Some(a) => format!("$$alias.{a}"),
                None => e(expr),
            }),
        })
        .collect();
    let mut info = format!("Fields:[ {} ]", fields.join(", "));
    if let Some(n) = sel.limit {
        info.push_str(&format!(", Limit:{n}"));
    }
    plan = node("ProjectPlan", info, Some(plan));
    let mut out = String::new();
    let mut id = 0;
    write(&plan, 0, &mut id, &mut out);
    out.trim_end().to_string()
}

fn join(sel: &Select, left: Node, e: &dyn Fn(&crate::ast::Expr) -> String) -> Node {
    let mut children = vec![left];
    let mut parts = Vec::new();
    for j in &sel.joins {
        children.push(node(
            "DataSourcePlan",
            format!("StreamName: {}", j.source.name),
            None,
        ));
        let kind = match j.kind {
            JoinKind::Inner => "INNER_JOIN",
            JoinKind::Left => "LEFT_JOIN",
            JoinKind::Right => "RIGHT_JOIN",
            JoinKind::Full => "FULL_JOIN",
            JoinKind::Cross => "CROSS_JOIN",
        };
        let on = j.on.as_ref().map(e).unwrap_or_default();
        parts.push(format!("{{ joinType:{kind}, expr:{on} }}"));
    }
    Node {
        kind: "JoinPlan",
        info: format!("Joins:[ {} ]", parts.join(", ")),
        children,
    }
}

fn window_info(w: &Window, e: &dyn Fn(&crate::ast::Expr) -> String) -> String {
    let (kind, mut fields) = match &w.kind {
        WindowKind::Tumbling { size_ms } => {
            ("TUMBLING_WINDOW", vec![format!("length:{size_ms}ms")])
        }
        WindowKind::Hopping { size_ms, hop_ms } => (
            "HOPPING_WINDOW",
            vec![
                format!("length:{size_ms}ms"),
                format!("interval:{hop_ms}ms"),
            ],
        ),
        WindowKind::Sliding { size_ms, delay_ms } => (
            "SLIDING_WINDOW",
            vec![format!("length:{size_ms}ms"), format!("delay:{delay_ms}ms")],
        ),
        WindowKind::Session { max_ms, timeout_ms } => (
            "SESSION_WINDOW",
            vec![
                format!("length:{max_ms}ms"),
                format!("interval:{timeout_ms}ms"),
            ],
        ),
        WindowKind::Count { size, every } => (
            "COUNT_WINDOW",
            vec![format!("length:{size}"), format!("interval:{every}")],
        ),
        WindowKind::State { begin, emit } => (
            "STATE_WINDOW",
            vec![
                format!("begin:{}", e(begin)),
                format!("emit:{}", emit.as_ref().map(|x| e(x)).unwrap_or_default()),
            ],
        ),
    };
    if let Some(t) = &w.trigger {
        fields.push(format!("trigger:{}", e(t)));
    }
    if !w.partition_by.is_empty() {
        let p: Vec<String> = w.partition_by.iter().map(e).collect();
        fields.push(format!("partition:[ {} ]", p.join(", ")));
    }
    format!("{{ {}, windowType:{kind} }}", fields.join(", "))
}

/// Writes `n` at `depth` tabs, then its children one level deeper.
fn write(n: &Node, depth: usize, id: &mut usize, out: &mut String) {
    let line = serde_json::json!({"op": format!("{}_{id}", n.kind), "info": n.info});
    *id += 1;
    for _ in 0..depth {
        out.push('\t');
    }
    out.push_str(&line.to_string());
    out.push('\n');
    for c in &n.children {
        write(c, depth + 1, id, out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parser::parse_select;

    #[test]
    fn a_filtered_projection() {
        let s = parse_select("SELECT a, b * 2 AS c FROM demo WHERE a > 20 LIMIT 3").unwrap();
        assert_eq!(
            explain(&s),
            "{\"op\":\"ProjectPlan_0\",\"info\":\"Fields:[ demo.a, $$alias.c ], Limit:3\"}\n\
             \t{\"op\":\"FilterPlan_1\",\"info\":\"Condition:{ binaryExpr:{ demo.a > 20 } }\"}\n\
             \t\t{\"op\":\"DataSourcePlan_2\",\"info\":\"StreamName: demo\"}"
        );
    }

    #[test]
    fn a_windowed_aggregate_with_a_join() {
        let s = parse_select(
            "SELECT d.id, avg(t.v) AS m FROM d INNER JOIN t ON d.id = t.id \
             GROUP BY d.id, TUMBLINGWINDOW(ss, 10) HAVING avg(t.v) > 1 ORDER BY m DESC",
        )
        .unwrap();
        let text = explain(&s);
        let ops: Vec<String> = text
            .lines()
            .map(|l| {
                let v: serde_json::Value = serde_json::from_str(l.trim_start()).unwrap();
                format!(
                    "{}{}",
                    "  ".repeat(l.len() - l.trim_start().len()),
                    v["op"].as_str().unwrap()
                )
            })
            .collect();
        assert_eq!(
            ops,
            [
                "ProjectPlan_0",
                "  OrderPlan_1",
                "    HavingPlan_2",
                "      AggregatePlan_3",
                "        JoinPlan_4",
                "          WindowPlan_5",
                "            DataSourcePlan_6",
                "          DataSourcePlan_7",
            ]
        );
        assert!(
            text.contains("length:10000ms, windowType:TUMBLING_WINDOW"),
            "{text}"
        );
        assert!(text.contains("joinType:INNER_JOIN"), "{text}");
    }
}
