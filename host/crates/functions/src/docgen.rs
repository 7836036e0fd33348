//! `docs/sql-functions.md`, generated from the registry so that it cannot
//! drift: a test compares the file with [`render`] (and rewrites it when
//! `OORT_UPDATE_DOCS=1`).

use crate::{aggregates, FAMILIES};

fn arity(min: usize, max: Option<usize>) -> String {
    match max {
        Some(m) if m == min => min.to_string(),
        Some(m) => format!("{min} to {m}"),
        None => format!("{min} or more"),
    }
}

/// Functions the engine runs itself (they need the row, the window or the
/// rule), by name and arguments.
const ENGINE: &[(&str, &str, &str)] = &[
    (
        "lag",
        "1 to 4",
        "value of an earlier row: `lag(x [, n [, default [, ignoreNull]]])`",
    ),
    (
        "latest",
        "1 to 2",
        "the last non-NULL value: `latest(x [, default])`",
    ),
    (
        "changed_col",
        "2",
        "the value when it changed, else NULL: `changed_col(ignoreNull, x)`",
    ),
    (
        "had_changed",
        "2 or more",
        "whether any value changed: `had_changed(ignoreNull, x, ...)`",
    ),
    (
        "acc_sum, acc_min, acc_max, acc_count, acc_avg",
        "1 or 3",
        "running aggregates: `acc_x(v)` or `acc_x(v, begin, reset)`",
    ),
    ("window_start, window_end", "0", "the window's bounds (ms)"),
    (
        "event_time, window_trigger",
        "0",
        "the event's (or the window's trigger) time (ms)",
    ),
    ("row_number", "0", "the row's number in its window"),
    (
        "last_hit_count, last_hit_time, last_agg_hit_count, last_agg_hit_time",
        "0",
        "counters of rows that passed WHERE (or HAVING)",
    ),
    (
        "changed_cols",
        "3 or more",
        "the columns that changed: `changed_cols(prefix, ignoreNull, col, ...)`",
    ),
    (
        "meta, mqtt",
        "1",
        "a source metadata field (`meta(topic)`, `meta(*)`)",
    ),
    ("unnest", "1", "one output row per array element"),
    ("rule_id", "0", "the rule's id"),
    ("rule_start", "0", "when the rule started (unix ms)"),
    (
        "get_keyed_state",
        "3",
        "external keyed state: `get_keyed_state(key, type, default)` (`store.extStateType`)",
    ),
    (
        "delay",
        "2",
        "holds the rule `ms` (at most 60,000) and returns the value: `delay(ms, value)`",
    ),
    (
        "extract",
        "1",
        "one output row with the object's keys as columns",
    ),
];

/// One function as `GET /metadata/functions` lists it.
#[derive(Debug, Clone)]
pub struct FuncMeta {
    pub name: String,
    /// The family (`Mathematical`, `String`, ..., `Aggregate`, `Analytic`).
    pub family: &'static str,
    pub aggregate: bool,
    /// How many arguments: `1`, `1 to 3`, `2 or more`.
    pub args: String,
    /// What the engine-run functions do (the registry has no text for the others).
    pub hint: Option<&'static str>,
}

/// Every function the engine accepts, by family then name: the same list as
/// the page [`render`] writes.
pub fn catalogue() -> Vec<FuncMeta> {
    let mut out = Vec::new();
    for (family, funcs) in FAMILIES {
        let mut fs: Vec<_> = funcs.iter().collect();
        fs.sort_by_key(|f| f.name);
        out.extend(fs.into_iter().map(|f| FuncMeta {
            name: f.name.to_string(),
            family,
            aggregate: false,
            args: arity(f.min_args, f.max_args),
            hint: None,
        }));
    }
    let mut aggs: Vec<_> = aggregates().iter().collect();
    aggs.sort_by_key(|f| f.name);
    out.extend(aggs.into_iter().map(|f| FuncMeta {
        name: f.name.to_string(),
        family: "Aggregate",
        aggregate: true,
        args: arity(f.min_args, f.max_args),
        hint: None,
    }));
    for (names, args, what) in ENGINE {
        out.extend(names.split(", ").map(|n| FuncMeta {
            name: n.to_string(),
            family: "Analytic",
            aggregate: false,
            args: args.to_string(),
            hint: Some(what),
        }));
    }
    out
}

/// The page.
pub fn render() -> String {
    let mut out = String::from(
        "# SQL functions\n\n\
         Generated from Oort's function registry by a test (`oort-functions`, `docgen.rs`):\n\
         it lists exactly what the engine accepts. Names are case-insensitive; calls are\n\
         checked (argument counts, literal argument types) when a rule is created, with\n\
         eKuiper's messages. Behaviour, NULL handling and the differences from eKuiper are in\n\
         [sql.md](sql.md).\n\n\
         Regenerate after adding a function: `OORT_UPDATE_DOCS=1 cargo test -p oort-functions docgen`.\n",
    );
    for (family, funcs) in FAMILIES {
        out.push_str(&format!(
            "\n## {family}\n\n| Function | Arguments |\n|---|---|\n"
        ));
        let mut fs: Vec<_> = funcs.iter().collect();
        fs.sort_by_key(|f| f.name);
        for f in fs {
            out.push_str(&format!(
                "| `{}` | {} |\n",
                f.name,
                arity(f.min_args, f.max_args)
            ));
        }
    }
    out.push_str("\n## Aggregate\n\n| Function | Arguments |\n|---|---|\n");
    let mut aggs: Vec<_> = aggregates().iter().collect();
    aggs.sort_by_key(|f| f.name);
    for f in aggs {
        out.push_str(&format!(
            "| `{}` | {} |\n",
            f.name,
            arity(f.min_args, f.max_args)
        ));
    }
    out.push_str(
        "\n## Analytic, window and row functions\n\n\
         Run by the engine (analytic functions before WHERE, `OVER (PARTITION BY ... WHEN ...)`).\n\n\
         | Function | Arguments | What |\n|---|---|---|\n",
    );
    for (names, args, what) in ENGINE {
        let names: Vec<String> = names.split(", ").map(|n| format!("`{n}`")).collect();
        out.push_str(&format!("| {} | {args} | {what} |\n", names.join(", ")));
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_catalogue_has_every_registered_function_once() {
        let cat = super::catalogue();
        for n in crate::names() {
            assert_eq!(
                cat.iter().filter(|f| f.name == n).count(),
                1,
                "{n} listed once"
            );
        }
        assert!(cat.iter().any(|f| f.name == "lag" && f.hint.is_some()));
        assert!(cat.iter().any(|f| f.name == "avg" && f.aggregate));
    }

    #[test]
    fn docgen_sql_functions_md_matches_the_registry() {
        let path =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../docs/sql-functions.md");
        let want = super::render();
        if std::env::var("OORT_UPDATE_DOCS").as_deref() == Ok("1") {
            std::fs::write(&path, &want).expect("write docs/sql-functions.md");
            return;
        }
        let got = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            got == want,
            "docs/sql-functions.md is not what the registry gives: run OORT_UPDATE_DOCS=1 cargo test -p oort-functions docgen"
        );
    }
}
