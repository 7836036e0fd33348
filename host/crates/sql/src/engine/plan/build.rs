//! Planning a whole SELECT: sources, joins, WHERE placement, windows,
//! GROUP BY, HAVING, ORDER BY, the projection and the operator names.

use super::*;

/// Compiles a SELECT.
pub(crate) fn build(
    select: &Select,
    catalog: &dyn Catalog,
    opts: &QueryOptions,
) -> Result<Plan, SqlError> {
    // ---- sources
    let mut infos = Vec::with_capacity(1 + select.joins.len());
    for item in std::iter::once(&select.from).chain(select.joins.iter().map(|j| &j.source)) {
        let def = catalog
            .lookup(&item.name)
            .ok_or_else(|| plan_err(format!("stream {} not found", item.name)))?;
        if infos.iter().any(|s: &SrcInfo| s.name == item.name) {
            return Err(plan_err(format!("stream {} is used twice", item.name)));
        }
        infos.push(SrcInfo {
            name: item.name.clone(),
            alias: item.alias.clone(),
            def,
        });
    }
    if let Some(first) = infos.first().filter(|s| s.is_lookup()) {
        return Err(plan_err(format!(
            "lookup table {} can only be joined (JOIN {} ON ...), not read in FROM",
            first.name, first.name
        )));
    }
    let stream_srcs: Vec<usize> = (0..infos.len())
        .filter(|i| infos[*i].def.kind == StreamKind::Stream)
        .collect();
    let has_window = select.window.is_some();
    if stream_srcs.len() > 1 && !has_window {
        return Err(plan_err(
            "a time window or count window is required to join multiple streams",
        ));
    }
    if has_window && stream_srcs.is_empty() {
        return Err(plan_err("cannot run window for TABLE sources"));
    }
    if !select.group_by.is_empty() && !has_window {
        return Err(plan_err("select stmt group by should be used with window"));
    }
    if let Some(w) = &select.window {
        let state = matches!(w.kind, WindowKind::State { .. });
        if !w.partition_by.is_empty() && !state {
            return Err(plan_err(
                "OVER (PARTITION BY) is only supported by state windows",
            ));
        }
        // eKuiper ignores other GROUP BY dimensions of a state window.
        if state && !select.group_by.is_empty() {
            return Err(plan_err(
                "GROUP BY dimensions beside STATEWINDOW are not supported (eKuiper ignores them): partition with STATEWINDOW(...) OVER (PARTITION BY ...)",
            ));
        }
        if w.trigger.is_some() && !matches!(w.kind, WindowKind::Sliding { .. }) {
            return Err(plan_err(
                "OVER (WHEN ...) is only supported by sliding windows",
            ));
        }
    }

    // ---- aliases
    let mut aliases = Aliases {
        names: vec![],
        exprs: vec![],
    };
    for f in &select.fields {
        if let SelectItem::Expr {
            expr,
            alias: Some(a),
            ..
        } = f
        {
            if aliases.find(a).is_some() {
                return Err(plan_err(format!("duplicate alias {a}")));
            }
            aliases.names.push(a.as_str());
            aliases.exprs.push(expr);
        }
    }
    let mut budget = MAX_EXPANDED_NODES;
    let mut expand = |e: &Expr, own: Option<usize>| -> Result<Expr, SqlError> {
        let mut stack: Vec<usize> = own.into_iter().collect();
        aliases.expand(e, &mut stack, &mut budget)
    };

    let where_ = select
        .where_
        .as_ref()
        .map(|w| expand(w, None))
        .transpose()?;
    let having = select
        .having
        .as_ref()
        .map(|h| expand(h, None))
        .transpose()?;
    let order: Vec<(Expr, bool)> = select
        .order_by
        .iter()
        .map(|o| Ok((expand(&o.expr, None)?, o.desc)))
        .collect::<Result<_, SqlError>>()?;
    let dims: Vec<Expr> = select
        .group_by
        .iter()
        .map(|d| expand(d, None))
        .collect::<Result<_, _>>()?;
    let win_filter = select
        .window
        .as_ref()
        .and_then(|w| w.filter.as_deref())
        .map(|f| expand(f, None))
        .transpose()?;
    let trigger = select
        .window
        .as_ref()
        .and_then(|w| w.trigger.as_deref())
        .map(|f| expand(f, None))
        .transpose()?;
    let state_exprs = match select.window.as_ref().map(|w| (&w.kind, &w.partition_by)) {
        Some((WindowKind::State { begin, emit }, part)) => Some((
            expand(begin, None)?,
            emit.as_deref().map(|e| expand(e, None)).transpose()?,
            part.iter()
                .map(|p| expand(p, None))
                .collect::<Result<Vec<_>, _>>()?,
        )),
        _ => None,
    };
    let ons: Vec<Option<Expr>> = select
        .joins
        .iter()
        .map(|j| j.on.as_ref().map(|o| expand(o, None)).transpose())
        .collect::<Result<_, _>>()?;
    // Select fields, expanded with their own alias on the stack.
    let mut alias_idx = 0usize;
    let mut fields_expanded: Vec<Option<Expr>> = Vec::with_capacity(select.fields.len());
    for f in &select.fields {
        match f {
            SelectItem::Expr { expr, alias, .. } => {
                let own = alias.as_ref().map(|_| {
                    alias_idx += 1;
                    alias_idx - 1
                });
                fields_expanded.push(Some(expand(expr, own)?));
            }
            _ => fields_expanded.push(None),
        }
    }

    // ---- where WHERE runs
    let where_has_agg = where_.as_ref().is_some_and(has_aggregate);
    let pushable = match &select.window {
        None => true,
        Some(w) => {
            matches!(
                w.kind,
                WindowKind::Tumbling { .. }
                    | WindowKind::Hopping { .. }
                    | WindowKind::Session { .. }
            ) && !opts.is_event_time
                && select.joins.is_empty()
                && !where_has_agg
        }
    };
    let (pre_where, post_where, sep_win_filter) = if !has_window {
        (where_, None, None)
    } else if pushable {
        (and(where_, win_filter), None, None)
    } else {
        (None, where_, win_filter)
    };

    let mut c = Compiler {
        srcs: &infos,
        analytic: vec![],
        aggs: vec![],
        used: vec![vec![]; infos.len()],
        hit_snap: (false, false),
        agg_hit_in_having: (false, false),
        has_window,
        uses_row_number: false,
        row_number_over: None,
    };
    if let Some(w) = pre_where.as_ref().or(post_where.as_ref()) {
        c.hit_snap = (
            calls_named(w, "last_hit_count"),
            calls_named(w, "last_hit_time"),
        );
    }
    if let Some(h) = &having {
        c.agg_hit_in_having = (
            calls_named(h, "last_agg_hit_count"),
            calls_named(h, "last_agg_hit_time"),
        );
    }
    let pre_filter_updates = pre_where
        .as_ref()
        .map(|w| {
            (
                calls_named(w, "last_hit_count"),
                calls_named(w, "last_hit_time"),
            )
        })
        .unwrap_or_default();
    let trigger_updates = trigger
        .as_ref()
        .map(|w| {
            (
                calls_named(w, "last_hit_count"),
                calls_named(w, "last_hit_time"),
            )
        })
        .unwrap_or_default();
    let having_updates = c.agg_hit_in_having;

    let pre_filter = pre_where
        .as_ref()
        .map(|w| c.compile(w, Place::Where))
        .transpose()?;
    let post_filter = post_where
        .as_ref()
        .map(|w| c.compile(w, Place::Where))
        .transpose()?;
    let cdims = dims
        .iter()
        .map(|d| c.compile(d, Place::Dim))
        .collect::<Result<Vec<_>, _>>()?;
    let chaving = having
        .as_ref()
        .map(|h| c.compile(h, Place::Having))
        .transpose()?;
    let corder = order
        .iter()
        .map(|(e, d)| Ok((c.compile(e, Place::Order)?, *d)))
        .collect::<Result<Vec<_>, SqlError>>()?;
    let cwin_filter = sep_win_filter
        .as_ref()
        .map(|f| c.compile(f, Place::WinFilter))
        .transpose()?;
    let ctrigger = trigger
        .as_ref()
        .map(|f| c.compile(f, Place::Trigger))
        .transpose()?;
    let cstate = match &state_exprs {
        Some((b, e, p)) => Some(super::StateSpec {
            begin: c.compile(b, Place::Trigger)?,
            emit: e
                .as_ref()
                .map(|x| c.compile(x, Place::Trigger))
                .transpose()?,
            partition: p
                .iter()
                .map(|x| c.compile(x, Place::Dim))
                .collect::<Result<Vec<_>, _>>()?,
        }),
        None => None,
    };
    let first_name = infos.first().map(|s| s.name.clone()).unwrap_or_default();
    let mut joins = Vec::with_capacity(select.joins.len());
    for (i, (j, on)) in select.joins.iter().zip(&ons).enumerate() {
        if j.kind != JoinKind::Cross && on.is_none() {
            return Err(plan_err(format!(
                "join with {} requires an ON condition",
                j.source.name
            )));
        }
        let src = i + 1;
        if infos.get(src).is_some_and(SrcInfo::is_lookup) {
            joins.push(lookup_join(&mut c, j, on.as_ref(), src, &first_name)?);
            continue;
        }
        let index = match (infos.get(src), on.as_ref()) {
            (Some(i), Some(on))
                if i.def.kind == StreamKind::Table
                    && matches!(j.kind, JoinKind::Inner | JoinKind::Left) =>
            {
                table_index(&mut c, on, src)?
            }
            _ => None,
        };
        joins.push(JoinSpec {
            kind: j.kind,
            src,
            on: on.as_ref().map(|o| c.compile(o, Place::On)).transpose()?,
            lookup: None,
            index,
        });
    }

    // ---- projection
    let default_stream = infos.first().map(|s| s.name.clone());
    let mut items = Vec::with_capacity(select.fields.len());
    let mut unnamed = 0usize;
    let mut wildcard_all: Vec<bool> = vec![false; infos.len()];
    let mut is_agg = false;
    let mut n_changed = 0usize;
    let mut n_unnest = 0usize;
    for (f, exp) in select.fields.iter().zip(&fields_expanded) {
        match f {
            SelectItem::Wildcard { except, replace } => {
                wildcard_all.iter_mut().for_each(|w| *w = true);
                let mut rep = Vec::with_capacity(replace.len());
                for (e, name) in replace {
                    let ex = expand(e, None)?;
                    is_agg |= has_aggregate(&ex);
                    let label = format!("expr: {}", ek_string(e, default_stream.as_deref()));
                    rep.push((
                        Arc::from(name.as_str()),
                        c.compile(&ex, Place::Select)?,
                        label,
                    ));
                }
                items.push(ProjItem::Wildcard {
                    except: except.clone(),
                    replace: rep,
                });
            }
            SelectItem::QualifiedWildcard(q) => {
                let src = c
                    .src_by_name(q)
                    .ok_or_else(|| plan_err(format!("stream {q} not found")))?;
                wildcard_all[src] = true;
                items.push(ProjItem::SrcWildcard(src));
            }
            SelectItem::Expr {
                expr,
                alias,
                invisible,
            } => {
                let Some(ex) = exp else {
                    return Err(plan_err("internal: select field not expanded"));
                };
                let text = ek_string(expr, default_stream.as_deref());
                let label = match alias {
                    Some(a) => format!("alias: {a} expr: {text}"),
                    None => format!("expr: {text}"),
                };
                match ex {
                    Expr::Call { name, args, .. } if name == "changed_cols" => {
                        if args.len() < 3 {
                            return Err(plan_err(format!(
                                "validate function changed_cols error: At least has 3 argument but found {}.",
                                args.len()
                            )));
                        }
                        let prefix = c.compile(&args[0], Place::Select)?;
                        let ignore_null = c.compile(&args[1], Place::Select)?;
                        let mut cols = Vec::new();
                        let mut star = false;
                        for a in &args[2..] {
                            match a {
                                Expr::Wildcard => {
                                    star = true;
                                    wildcard_all.iter_mut().for_each(|w| *w = true);
                                }
                                other => {
                                    let n = default_name(other)
                                        .unwrap_or_else(|| ek_string(other, None));
                                    cols.push((
                                        Arc::from(n.as_str()),
                                        c.compile(other, Place::Select)?,
                                    ));
                                }
                            }
                        }
                        items.push(ProjItem::ChangedCols {
                            id: n_changed,
                            prefix,
                            ignore_null,
                            cols,
                            star,
                            label,
                        });
                        n_changed += 1;
                    }
                    Expr::Call { name, args, .. } if name == "unnest" || name == "extract" => {
                        let [arg] = args.as_slice() else {
                            return Err(plan_err(format!(
                                "validate function {name} error: Expect 1 arguments but found {}.",
                                args.len()
                            )));
                        };
                        n_unnest += 1;
                        if n_unnest > 1 {
                            return Err(plan_err(
                                "only one set-returning function (unnest, extract) is allowed in SELECT",
                            ));
                        }
                        let nm = alias.clone().unwrap_or_else(|| name.clone());
                        items.push(ProjItem::Unnest {
                            name: Arc::from(nm.as_str()),
                            expr: c.compile(arg, Place::Select)?,
                            label,
                            extract: name == "extract",
                        });
                    }
                    _ => {
                        is_agg |= has_aggregate(ex);
                        let nm = match alias {
                            Some(a) => a.clone(),
                            None => match default_name(expr) {
                                Some(n) => n,
                                None => {
                                    unnamed += 1;
                                    format!("kuiper_field_{}", unnamed - 1)
                                }
                            },
                        };
                        items.push(ProjItem::Expr {
                            name: Arc::from(nm.as_str()),
                            expr: c.compile(ex, Place::Select)?,
                            invisible: *invisible,
                            label,
                        });
                    }
                }
            }
        }
    }
    if opts.send_meta {
        // eKuiper's rule: one source, no GROUP BY (window or dimensions).
        if !select.joins.is_empty() || !select.group_by.is_empty() || select.window.is_some() {
            return Err(plan_err(
                "Invalid option sendMetaToSink, it can not be applied to window",
            ));
        }
        items.push(ProjItem::Expr {
            name: Arc::from(META_KEY),
            expr: CExpr::MetaAll,
            invisible: false,
            label: META_KEY.to_string(),
        });
    }
    let static_names: Option<Vec<Arc<str>>> = items
        .iter()
        .map(|it| match it {
            ProjItem::Expr {
                name, invisible, ..
            } => Some((!invisible).then(|| name.clone())),
            _ => None,
        })
        .collect::<Option<Vec<_>>>()
        .map(|v| v.into_iter().flatten().collect());
    let static_schema = static_names.map(|names| {
        // Later fields with the same name win; keep the first position.
        let mut uniq: Vec<Arc<str>> = Vec::with_capacity(names.len());
        for n in names {
            if !uniq.contains(&n) {
                uniq.push(n);
            }
        }
        Arc::new(Schema::new(uniq))
    });
    let passthrough = infos.len() == 1
        && matches!(items.as_slice(), [ProjItem::Wildcard { except, replace }] if except.is_empty() && replace.is_empty());
    let proj = Projection {
        items,
        static_schema,
        passthrough,
        has_unnest: n_unnest > 0,
        changed_cols: n_changed,
    };

    // ---- window
    let window = match &select.window {
        Some(w) => {
            let (kind, align) = window_kind(w)?;
            Some(WindowSpec {
                kind,
                align_ms: align,
                day_unit: w.unit == Some(TimeUnit::Dd),
                filter: cwin_filter,
                trigger: ctrigger,
                trigger_updates,
                state: cstate,
            })
        }
        None => None,
    };
    let has_dims = !cdims.is_empty();
    let needs_rows = !(is_agg || has_dims) || c.uses_row_number || post_filter.is_some();
    let incremental = match &window {
        Some(w) => {
            matches!(w.kind, WinKind::Tumbling { .. } | WinKind::Session { .. })
                && !opts.is_event_time
                && joins.is_empty()
                && !needs_rows
        }
        None => false,
    };

    // Sliding windows update their aggregates as rows come and go when
    // every aggregate can take a row back and nothing needs the rows.
    let slide_incremental = match &window {
        Some(w) => {
            matches!(w.kind, WinKind::Sliding { delay: 0, .. })
                && joins.is_empty()
                && !needs_rows
                && is_agg
                && c.aggs.iter().all(|(_, a)| {
                    !a.with_row && (a.func.new)(&a.consts).is_ok_and(|acc| acc.removable())
                })
        }
        None => false,
    };

    // ---- runtime per source
    let mut srcs = Vec::with_capacity(infos.len());
    for (i, info) in infos.iter().enumerate() {
        let o = &info.def.options;
        let retain = match o.retain_size {
            Some(n) if n > 0 => usize::try_from(n).unwrap_or(MAX_RETAIN_SIZE),
            _ => match o.type_.as_deref() {
                None | Some("file") => MAX_RETAIN_SIZE,
                _ => 1,
            },
        };
        let validator = match info.typed() {
            Some(cols) if o.strict_validation => {
                if wildcard_all[i] {
                    Validator::new(cols, None)
                } else {
                    Validator::new(cols, Some(&c.used[i]))
                }
            }
            _ => None,
        };
        srcs.push(SrcRuntime {
            kind: info.def.kind,
            retain,
            validator,
            timestamp: o.timestamp.as_deref().map(Arc::from),
        });
    }

    // ---- operator names
    let mut ops = Ops::default();
    // Lookup tables are not source nodes (eKuiper numbers ops after the rest).
    let mut idx = infos.iter().filter(|s| !s.is_lookup()).count() + 1;
    let mut push = |ops: &mut Ops, kind: &str, same: bool| -> usize {
        if same {
            idx -= 1;
        }
        ops.names.push(format!("op_{idx}_{kind}"));
        idx += 1;
        ops.names.len() - 1
    };
    let real_analytic = c
        .analytic
        .iter()
        .any(|(_, d)| !matches!(d.kind, AKind::HitCount | AKind::HitTime));
    if real_analytic {
        ops.analytic = Some(push(&mut ops, "analytic", false));
    }
    // Scan tables are aligned with the streams; lookup tables are not read.
    let has_tables = infos
        .iter()
        .any(|s| s.def.kind == StreamKind::Table && !s.is_lookup());
    // eKuiper names the operator `lookup` when every join is a lookup.
    let join_op = if !joins.is_empty() && joins.iter().all(|j| j.lookup.is_some()) {
        "lookup"
    } else {
        "join"
    };
    if window.is_none() {
        if !joins.is_empty() {
            if has_tables {
                push(&mut ops, "join_aligner", false);
            }
            ops.join = Some(push(&mut ops, join_op, false));
        }
        if pre_filter.is_some() {
            ops.pre_filter = Some(push(&mut ops, "filter", false));
        }
    } else {
        if pre_filter.is_some() {
            ops.pre_filter = Some(push(&mut ops, "filter", false));
        }
        if let Some(w) = &window {
            if w.filter.is_some() {
                ops.win_filter = Some(push(&mut ops, "windowFilter", false));
                ops.window = Some(push(&mut ops, "window", true));
            } else {
                ops.window = Some(push(&mut ops, "window", false));
            }
        }
        if !joins.is_empty() {
            if has_tables {
                push(&mut ops, "join_aligner", false);
            }
            ops.join = Some(push(&mut ops, join_op, false));
        }
        if post_filter.is_some() {
            if where_has_agg {
                push(&mut ops, "agg_func", false);
            }
            ops.post_filter = Some(push(&mut ops, "filter", false));
        }
        if has_dims {
            ops.aggregate = Some(push(&mut ops, "aggregate", false));
        }
    }
    if chaving.is_some() {
        ops.having = Some(push(&mut ops, "having", false));
    }
    if c.uses_row_number && window.is_some() {
        ops.window_func = Some(push(&mut ops, "windowFunc", false));
    }
    if !corder.is_empty() {
        ops.order = Some(push(&mut ops, "order", false));
    }
    ops.project = push(&mut ops, "project", false);
    if proj.has_unnest {
        ops.projectset = Some(push(&mut ops, "projectset", false));
    }

    let sources = infos
        .iter()
        .map(|s| SourceRef {
            name: s.name.clone(),
            kind: s.def.kind,
            lookup: s.is_lookup(),
        })
        .collect();
    Ok(Plan {
        sources,
        srcs,
        opts: opts.clone(),
        analytic: c.analytic.into_iter().map(|(_, d)| d).collect(),
        aggs: c.aggs.into_iter().map(|(_, d)| d).collect(),
        pre_filter,
        pre_filter_updates,
        post_filter,
        post_filter_has_agg: where_has_agg,
        window,
        joins,
        dims: cdims,
        having: chaving,
        having_updates,
        order: corder,
        row_number_over: c.row_number_over.map(|(_, r)| r),
        limit: select
            .limit
            .map(|l| usize::try_from(l).unwrap_or(usize::MAX)),
        proj,
        is_agg,
        incremental,
        slide_incremental,
        ops,
    })
}

/// A join with a lookup table: INNER or LEFT, its ON a conjunction with at
/// least one `table.column = expression` (the lookup keys, as eKuiper
/// requires); the other conjuncts filter the looked-up rows.
fn lookup_join(
    c: &mut Compiler<'_>,
    j: &crate::ast::Join,
    on: Option<&Expr>,
    src: usize,
    default_stream: &str,
) -> Result<JoinSpec, SqlError> {
    let name = &j.source.name;
    if !matches!(j.kind, JoinKind::Inner | JoinKind::Left) {
        return Err(plan_err(format!(
            "lookup table {name} can only be used in an INNER or LEFT JOIN, not {}",
            format!("{:?}", j.kind).to_uppercase()
        )));
    }
    let Some(on) = on else {
        return Err(plan_err(format!(
            "join with lookup table {name} requires an ON condition"
        )));
    };
    let invalid = || {
        plan_err(format!(
            "join condition {} is invalid, at least one equi-join predicate is required",
            ek_string(on, Some(default_stream))
        ))
    };
    let mut conjuncts = Vec::new();
    flatten_and(on, &mut conjuncts);
    let mut keys: Vec<Arc<str>> = Vec::new();
    let mut vals = Vec::new();
    let mut rest: Option<Expr> = None;
    for e in conjuncts {
        let key_side = match e {
            Expr::Binary {
                op: BinaryOp::Eq,
                left,
                right,
            } => match (table_col(c, left, src), table_col(c, right, src)) {
                (Some(k), None) => Some((k, right.as_ref())),
                (None, Some(k)) => Some((k, left.as_ref())),
                _ => None,
            },
            _ => None,
        };
        match key_side {
            Some((k, val)) => {
                if keys.iter().any(|x| x.as_ref() == k) {
                    return Err(invalid());
                }
                keys.push(Arc::from(k));
                vals.push(c.compile(val, Place::On)?);
            }
            None => {
                rest = Some(match rest.take() {
                    None => e.clone(),
                    Some(r) => Expr::Binary {
                        op: BinaryOp::And,
                        left: Box::new(r),
                        right: Box::new(e.clone()),
                    },
                })
            }
        }
    }
    if keys.is_empty() {
        return Err(invalid());
    }
    Ok(JoinSpec {
        index: None,
        kind: j.kind,
        src,
        on: rest.as_ref().map(|r| c.compile(r, Place::On)).transpose()?,
        lookup: Some(LookupSpec { keys, vals }),
    })
}

fn flatten_and<'a>(e: &'a Expr, out: &mut Vec<&'a Expr>) {
    match e {
        Expr::Binary {
            op: BinaryOp::And,
            left,
            right,
        } => {
            flatten_and(left, out);
            flatten_and(right, out);
        }
        other => out.push(other),
    }
}

/// `name` when `e` is a column qualified with source `src`'s name or alias.
/// The hash-index keys of a join with scan table `src`: the ON conjuncts
/// `table.col = other.col` (both qualified, the other side another source)
/// or `table.col = literal`. `None` when there is none.
fn table_index(
    c: &mut Compiler<'_>,
    on: &Expr,
    src: usize,
) -> Result<Option<LookupSpec>, SqlError> {
    let mut conjuncts = Vec::new();
    flatten_and(on, &mut conjuncts);
    let mut keys: Vec<Arc<str>> = Vec::new();
    let mut vals = Vec::new();
    for e in conjuncts {
        let Expr::Binary {
            op: BinaryOp::Eq,
            left,
            right,
        } = e
        else {
            continue;
        };
        let other_side = |x: &Expr| match x {
            Expr::Column {
                qualifier: Some(q), ..
            } => c.src_by_name(q).is_some_and(|s| s != src),
            Expr::Literal(_) => true,
            _ => false,
        };
        let pair = match (table_col(c, left, src), table_col(c, right, src)) {
            (Some(k), None) if other_side(right) => Some((k, right.as_ref())),
            (None, Some(k)) if other_side(left) => Some((k, left.as_ref())),
            _ => None,
        };
        if let Some((k, val)) = pair {
            if keys.iter().any(|x| x.as_ref() == k) {
                continue;
            }
            keys.push(Arc::from(k));
            vals.push(c.compile(val, Place::On)?);
        }
    }
    Ok((!keys.is_empty()).then_some(LookupSpec { keys, vals }))
}

fn table_col<'e>(c: &Compiler<'_>, e: &'e Expr, src: usize) -> Option<&'e str> {
    match e {
        Expr::Column {
            qualifier: Some(q),
            name,
        } if c.src_by_name(q) == Some(src) => Some(name.as_str()),
        _ => None,
    }
}
