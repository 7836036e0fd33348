//! Compiling one expression: columns bound to sources and slot hints,
//! functions resolved, aggregate and analytic calls put in their tables.

use super::*;

impl Compiler<'_> {
    pub(super) fn src_by_name(&self, q: &str) -> Option<usize> {
        self.srcs
            .iter()
            .position(|s| s.alias.as_deref() == Some(q))
            .or_else(|| self.srcs.iter().position(|s| s.name == q))
    }

    pub(super) fn col(&mut self, src: usize, name: &str) -> CExpr {
        let info = &self.srcs[src];
        let hint = info
            .typed()
            .and_then(|cols| cols.iter().position(|c| c.name == name))
            .map(SlotHint::new)
            .unwrap_or_default();
        if let Some(u) = self.used.get_mut(src) {
            if !u.iter().any(|n| n == name) {
                u.push(name.to_string());
            }
        }
        CExpr::Col {
            src,
            name: Arc::from(name),
            hint,
        }
    }

    pub(super) fn column(
        &mut self,
        qualifier: Option<&str>,
        name: &str,
    ) -> Result<CExpr, SqlError> {
        if let Some(q) = qualifier {
            if let Some(src) = self.src_by_name(q) {
                return Ok(self.col(src, name));
            }
            // `a.b` where `a` is not a source: nested field of column `a`.
            let base = self.column(None, q)?;
            return Ok(CExpr::Field {
                expr: Box::new(base),
                name: Arc::from(name),
            });
        }
        if self.srcs.len() == 1 {
            if let Some(cols) = self.srcs[0].typed() {
                if !cols.iter().any(|c| c.name == name) {
                    return Err(plan_err(format!("unknown field {name}")));
                }
            }
            return Ok(self.col(0, name));
        }
        let typed: Vec<usize> = (0..self.srcs.len())
            .filter(|i| {
                self.srcs[*i]
                    .typed()
                    .is_some_and(|cols| cols.iter().any(|c| c.name == name))
            })
            .collect();
        match typed.as_slice() {
            [one] => return Ok(self.col(*one, name)),
            [_, _, ..] => return Err(plan_err(format!("ambiguous field {name}"))),
            [] => {}
        }
        let schemaless: Vec<usize> = (0..self.srcs.len())
            .filter(|i| self.srcs[*i].typed().is_none())
            .collect();
        match schemaless.as_slice() {
            [] => Err(plan_err(format!("unknown field {name}"))),
            [one] => Ok(self.col(*one, name)),
            many => Ok(CExpr::ColAny {
                name: Arc::from(name),
                srcs: many.to_vec().into_boxed_slice(),
                hint: SlotHint::default(),
            }),
        }
    }

    pub(super) fn compile(&mut self, e: &Expr, place: Place) -> Result<CExpr, SqlError> {
        let b = |c: CExpr| Box::new(c);
        Ok(match e {
            Expr::Literal(l) => CExpr::Lit(lit_value(l)),
            Expr::Column { qualifier, name } => self.column(qualifier.as_deref(), name)?,
            Expr::Wildcard => CExpr::RowObject,
            Expr::Field { expr, name } => CExpr::Field {
                expr: b(self.compile(expr, place)?),
                name: Arc::from(name.as_str()),
            },
            Expr::Index { expr, index } => CExpr::Index {
                expr: b(self.compile(expr, place)?),
                index: b(self.compile(index, place)?),
            },
            Expr::Slice { expr, from, to } => CExpr::Slice {
                expr: b(self.compile(expr, place)?),
                from: from
                    .as_deref()
                    .map(|x| self.compile(x, place).map(b))
                    .transpose()?,
                to: to
                    .as_deref()
                    .map(|x| self.compile(x, place).map(b))
                    .transpose()?,
            },
            Expr::Binary { op, left, right } => CExpr::Bin {
                op: *op,
                l: b(self.compile(left, place)?),
                r: b(self.compile(right, place)?),
            },
            Expr::Unary { op, expr } => {
                let inner = self.compile(expr, place)?;
                match (op, &inner) {
                    (UnaryOp::Neg, CExpr::Lit(Value::Int(i))) => {
                        CExpr::Lit(Value::Int(i.wrapping_neg()))
                    }
                    (UnaryOp::Neg, CExpr::Lit(Value::Float(f))) => CExpr::Lit(Value::Float(-f)),
                    (UnaryOp::Neg, _) => CExpr::Neg(b(inner)),
                    (UnaryOp::Not, _) => CExpr::Not(b(inner)),
                }
            }
            Expr::Between {
                expr,
                low,
                high,
                negated,
            } => CExpr::Between {
                expr: b(self.compile(expr, place)?),
                low: b(self.compile(low, place)?),
                high: b(self.compile(high, place)?),
                negated: *negated,
            },
            Expr::Like {
                expr,
                pattern,
                negated,
            } => {
                let pat = match pattern.as_ref() {
                    Expr::Literal(Literal::Str(p)) => {
                        LikePat::Static(like_regex(p).map_err(plan_err)?)
                    }
                    other => LikePat::Dynamic(b(self.compile(other, place)?)),
                };
                CExpr::Like {
                    expr: b(self.compile(expr, place)?),
                    pat,
                    negated: *negated,
                }
            }
            Expr::InList {
                expr,
                list,
                negated,
            } => {
                let array_expr = list.len() == 1 && !matches!(list[0], Expr::Literal(_));
                CExpr::In {
                    expr: b(self.compile(expr, place)?),
                    list: list
                        .iter()
                        .map(|x| self.compile(x, place))
                        .collect::<Result<_, _>>()?,
                    array_expr,
                    negated: *negated,
                }
            }
            Expr::IsNull { expr, negated } => CExpr::IsNull {
                expr: b(self.compile(expr, place)?),
                negated: *negated,
            },
            Expr::Case {
                operand,
                whens,
                else_,
            } => CExpr::Case {
                operand: operand
                    .as_deref()
                    .map(|x| self.compile(x, place).map(b))
                    .transpose()?,
                whens: whens
                    .iter()
                    .map(|(w, t)| Ok((self.compile(w, place)?, self.compile(t, place)?)))
                    .collect::<Result<_, SqlError>>()?,
                else_: else_
                    .as_deref()
                    .map(|x| self.compile(x, place).map(b))
                    .transpose()?,
            },
            Expr::Call { .. } => self.call(e, place)?,
        })
    }

    pub(super) fn call(&mut self, e: &Expr, place: Place) -> Result<CExpr, SqlError> {
        let Expr::Call {
            name,
            args,
            over,
            filter,
        } = e
        else {
            return Err(plan_err("internal: not a call"));
        };
        let name = name.as_str();
        let n = args.len();
        let no_args = |what: &str| -> Result<(), SqlError> {
            if n != 0 {
                return Err(plan_err(format!(
                    "validate function {what} error: Expect 0 arguments but found {n}."
                )));
            }
            Ok(())
        };
        if over.is_some() && AKind::from_name(name).is_none() && name != "row_number" {
            return Err(plan_err(format!("function {name} does not support OVER")));
        }
        if over.as_ref().is_some_and(|o| !o.order_by.is_empty()) && name != "row_number" {
            return Err(plan_err(format!(
                "function {name} does not support ORDER BY in OVER (only row_number() does)"
            )));
        }
        if filter.is_some() && !is_agg_name(name) {
            return Err(plan_err(format!("function {name} does not support FILTER")));
        }
        match name {
            "window_start" => {
                no_args(name)?;
                return Ok(CExpr::WindowStart);
            }
            "window_end" => {
                no_args(name)?;
                return Ok(CExpr::WindowEnd);
            }
            "event_time" | "window_trigger" => {
                no_args(name)?;
                return Ok(CExpr::EventTime);
            }
            "row_number" => {
                no_args(name)?;
                self.uses_row_number = true;
                if let Some(o) = over {
                    if !matches!(place, Place::Select | Place::Order) {
                        return Err(plan_err(
                            "row_number() OVER (...) is numbered after HAVING: use it in SELECT or ORDER BY only",
                        ));
                    }
                    if o.when.is_some() {
                        return Err(plan_err(
                            "function row_number does not support WHEN in OVER",
                        ));
                    }
                    let key = Expr::Call {
                        name: String::new(),
                        args: vec![],
                        over: Some(o.clone()),
                        filter: None,
                    };
                    match &self.row_number_over {
                        Some((k, _)) if *k == key => {}
                        Some(_) => {
                            return Err(plan_err(
                                "only one row_number() OVER (...) is allowed in a query",
                            ))
                        }
                        None => {
                            let partition = o
                                .partition_by
                                .iter()
                                .map(|p| self.compile(p, Place::Select))
                                .collect::<Result<Vec<_>, _>>()?;
                            let order = o
                                .order_by
                                .iter()
                                .map(|s| Ok((self.compile(&s.expr, Place::Select)?, s.desc)))
                                .collect::<Result<Vec<_>, SqlError>>()?;
                            self.row_number_over = Some((key, RowNumberOver { partition, order }));
                        }
                    }
                }
                return Ok(CExpr::RowNumber);
            }
            "rule_id" => {
                no_args(name)?;
                return Ok(CExpr::RuleId);
            }
            "rule_start" => {
                no_args(name)?;
                return Ok(CExpr::RuleStart);
            }
            "get_keyed_state" => {
                let [key, ty, default] = args.as_slice() else {
                    return Err(plan_err(format!(
                        "validate function {name} error: Expect 3 arguments but found {n}."
                    )));
                };
                match ty {
                    Expr::Literal(Literal::Str(t)) if !KEYED_STATE_TYPES.contains(&t.as_str()) => {
                        return Err(plan_err(format!(
                            "validate function {name} error: expect one of following value for the 2nd parameter: bigint, float, string, boolean, datetime"
                        )))
                    }
                    Expr::Literal(Literal::Int(_) | Literal::Float(_) | Literal::Bool(_)) => {
                        return Err(plan_err(format!(
                            "validate function {name} error: Expect string type for parameter 2"
                        )))
                    }
                    _ => {}
                }
                return Ok(CExpr::KeyedState {
                    key: Box::new(self.compile(key, place)?),
                    ty: Box::new(self.compile(ty, place)?),
                    default: Box::new(self.compile(default, place)?),
                });
            }
            "delay" => {
                let [ms, value] = args.as_slice() else {
                    return Err(plan_err(format!(
                        "validate function {name} error: Expect 2 arguments but found {n}."
                    )));
                };
                if let Expr::Literal(Literal::Str(_) | Literal::Bool(_)) = ms {
                    return Err(plan_err(format!(
                        "validate function {name} error: Expect number - float or int type for parameter 1"
                    )));
                }
                if let Expr::Literal(Literal::Int(i)) = ms {
                    if *i > MAX_DELAY_MS {
                        return Err(plan_err(format!(
                            "validate function {name} error: {i} ms is longer than the longest delay, {MAX_DELAY_MS} ms"
                        )));
                    }
                }
                return Ok(CExpr::Delay {
                    ms: Box::new(self.compile(ms, place)?),
                    value: Box::new(self.compile(value, place)?),
                });
            }
            "meta" | "mqtt" => {
                let [arg] = args.as_slice() else {
                    return Err(plan_err(format!(
                        "validate function {name} error: Expect 1 arguments but found {n}."
                    )));
                };
                return match arg {
                    Expr::Wildcard if name == "meta" => Ok(CExpr::MetaAll),
                    Expr::Column { name: key, .. } => {
                        let key = if name == "mqtt" {
                            key.to_ascii_lowercase()
                        } else {
                            key.clone()
                        };
                        Ok(CExpr::Meta(Arc::from(key.as_str())))
                    }
                    Expr::Literal(Literal::Str(key)) => Ok(CExpr::Meta(Arc::from(key.as_str()))),
                    _ => Err(plan_err(format!(
                        "validate function {name} error: Expect meta reference type but got {}",
                        ek_string(arg, None)
                    ))),
                };
            }
            "last_hit_count" | "last_hit_time" => {
                no_args(name)?;
                let count = name == "last_hit_count";
                let snap = if count {
                    self.hit_snap.0
                } else {
                    self.hit_snap.1
                };
                if snap {
                    let (kind, sname) = if count {
                        (AKind::HitCount, "last_hit_count")
                    } else {
                        (AKind::HitTime, "last_hit_time")
                    };
                    return Ok(self.analytic_slot(e, kind, sname, vec![], vec![], None));
                }
                let update = place == Place::Select;
                return Ok(if count {
                    CExpr::HitCount { update }
                } else {
                    CExpr::HitTime { update }
                });
            }
            "last_agg_hit_count" | "last_agg_hit_time" => {
                no_args(name)?;
                let count = name == "last_agg_hit_count";
                let in_having = if count {
                    self.agg_hit_in_having.0
                } else {
                    self.agg_hit_in_having.1
                };
                let update = place == Place::Select && !in_having;
                return Ok(if count {
                    CExpr::AggHitCount { update }
                } else {
                    CExpr::AggHitTime { update }
                });
            }
            "changed_cols" | "unnest" => {
                return Err(plan_err(format!(
                    "function {name} can only be used as a whole select field"
                )))
            }
            _ => {}
        }
        if let Some(kind) = AKind::from_name(name) {
            if matches!(place, Place::AggArg) {
                return Err(plan_err(format!(
                    "invalid argument for func {name}: analytic function is not allowed in an aggregate"
                )));
            }
            let (min, max) = kind.arity();
            if kind.is_acc() && n != 1 && n != 3 {
                return Err(plan_err(format!(
                    "validate function {name} error: Expect 1/3 arguments but found {n}."
                )));
            }
            if n < min || max.is_some_and(|m| n > m) {
                return Err(plan_err(match max {
                    Some(m) if m == min => {
                        format!("validate function {name} error: Expect {min} arguments but found {n}.")
                    }
                    Some(m) => format!(
                        "validate function {name} error: Expect {min} to {m} arguments but found {n}."
                    ),
                    None => format!(
                        "validate function {name} error: At least has {min} argument but found {n}."
                    ),
                }));
            }
            if kind == AKind::Lag {
                if let Some(Expr::Literal(Literal::Int(i))) = args.get(1) {
                    if *i < 0 {
                        return Err(plan_err(
                            "validate function lag error: the index should not be a nagtive integer",
                        ));
                    }
                }
            }
            let cargs = args
                .iter()
                .map(|a| self.compile(a, Place::AnalyticArg))
                .collect::<Result<Vec<_>, _>>()?;
            let (partition, when) = match over {
                Some(o) => (
                    o.partition_by
                        .iter()
                        .map(|p| self.compile(p, Place::AnalyticArg))
                        .collect::<Result<Vec<_>, _>>()?,
                    o.when
                        .as_deref()
                        .map(|w| self.compile(w, Place::AnalyticArg))
                        .transpose()?,
                ),
                None => (vec![], None),
            };
            let static_name = oort_static_name(name);
            return Ok(self.analytic_slot(e, kind, static_name, cargs, partition, when));
        }
        if let Some(func) = oort_functions::aggregate(name).filter(|_| !engine_fn(name)) {
            match place {
                Place::Where if !self.has_window => {
                    return Err(plan_err(format!(
                        "aggregate function {name} is not allowed in WHERE without a window"
                    )))
                }
                Place::Dim => {
                    return Err(plan_err(format!(
                        "Not allowed to call aggregate functions in GROUP BY clause: {}.",
                        ek_string(e, None)
                    )))
                }
                Place::AggArg => {
                    return Err(plan_err(format!(
                        "invalid argument for func {name}: aggregate argument is not allowed"
                    )))
                }
                Place::WinFilter | Place::Trigger | Place::On | Place::AnalyticArg => {
                    return Err(plan_err(format!(
                        "aggregate function {name} is not allowed here"
                    )))
                }
                _ => {}
            }
            oort_functions::check_call(name, &literal_args(args))
                .map_err(|e| plan_err(e.to_string()))?;
            if let Some(i) = self.aggs.iter().position(|(x, _)| x == e) {
                return Ok(CExpr::Agg(i));
            }
            let mut cargs = Vec::with_capacity(n);
            for a in args {
                cargs.push(match a {
                    Expr::Wildcard if func.name == "count" => CExpr::Lit(Value::Bool(true)),
                    other => self.compile(other, Place::AggArg)?,
                });
            }
            let consts = literal_args(args);
            // Constant parameters are validated once, here.
            (func.new)(&consts).map_err(|e| plan_err(e.to_string()))?;
            let cfilter = filter
                .as_deref()
                .map(|f| self.compile(f, Place::AggArg))
                .transpose()?;
            self.aggs.push((
                e.clone(),
                AggDef {
                    func,
                    args: cargs,
                    consts,
                    filter: cfilter,
                    with_row: oort_functions::needs_row(name),
                },
            ));
            return Ok(CExpr::Agg(self.aggs.len() - 1));
        }
        if let Some(f) = oort_functions::scalar(name) {
            oort_functions::check_call(name, &literal_args(args))
                .map_err(|e| plan_err(e.to_string()))?;
            let cargs = args
                .iter()
                .map(|a| self.compile(a, place))
                .collect::<Result<Vec<_>, _>>()?;
            return Ok(CExpr::Call {
                f: f.call,
                args: cargs.into_boxed_slice(),
            });
        }
        Err(plan_err(format!("function {name} not found")))
    }

    pub(super) fn analytic_slot(
        &mut self,
        e: &Expr,
        kind: AKind,
        name: &'static str,
        args: Vec<CExpr>,
        partition: Vec<CExpr>,
        when: Option<CExpr>,
    ) -> CExpr {
        // Hit snapshots are one per counter, whatever the call looks like.
        let same = |x: &Expr, d: &AnalyticDef| match kind {
            AKind::HitCount | AKind::HitTime => d.kind == kind,
            _ => x == e,
        };
        if let Some(i) = self.analytic.iter().position(|(x, d)| same(x, d)) {
            return CExpr::Analytic(i);
        }
        self.analytic.push((
            e.clone(),
            AnalyticDef {
                kind,
                name,
                args,
                partition,
                when,
            },
        ));
        CExpr::Analytic(self.analytic.len() - 1)
    }
}

/// A call's arguments for plan-time checks: literals as values, anything
/// else `NULL` (the [`oort_functions::AggregateFunc::new`] convention).
fn literal_args(args: &[Expr]) -> Vec<Value> {
    args.iter()
        .map(|a| match a {
            Expr::Literal(l) => lit_value(l),
            _ => Value::Null,
        })
        .collect()
}
