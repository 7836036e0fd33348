//! A query's windows and aggregation: rows into windows (processing and
//! event time), timers, closing a window into aggregate rows and groups.

use super::*;

impl State {
    /// A row entering a processing-time window.
    pub(super) fn window_in(&mut self, plan: &Plan, t: Tuple, out: &mut Vec<Output>) {
        let now = t.ts;
        if let Some(w) = &mut self.win {
            w.init(now);
            if w.deadline().is_some_and(|d| d <= now) {
                self.tick(plan, now, out);
            }
        }
        self.window_add(plan, t, out);
    }

    /// Filters a row and adds it to the window (both time modes).
    pub(super) fn window_add(&mut self, plan: &Plan, t: Tuple, out: &mut Vec<Output>) {
        let Some(spec) = &plan.window else {
            return;
        };
        if !self.pre_filter(plan, &t, out) {
            return;
        }
        if let Some(f) = &spec.filter {
            let op = plan.ops.win_filter;
            self.count_in(op);
            let r = {
                let ctx = mk_ctx(plan, &self.hits, Some(&t), &[], None, false, 1, (0, 0));
                f.eval_cond(&ctx)
            };
            match r {
                Err(e) => {
                    self.exception(plan, op, format!("run Where error: {e}"), out);
                    return;
                }
                Ok(false) => return,
                Ok(true) => self.count_out(op),
            }
        }
        let wop = plan.ops.window;
        self.count_in(wop);
        if let Some(st) = &spec.state {
            // Which condition applies depends on the partition's window
            // being open; a condition that fails to evaluate is false.
            let (key, cond) = {
                let ctx = mk_ctx(plan, &self.hits, Some(&t), &[], None, false, 1, (0, 0));
                let key = oort_core::key::Key(
                    st.partition
                        .iter()
                        .map(|p| p.eval(&ctx).unwrap_or(Value::Null))
                        .collect(),
                );
                let open = self
                    .win
                    .as_ref()
                    .and_then(|w| w.state.as_ref())
                    .is_some_and(|s| s.is_open(&key));
                let c = match (&st.emit, open) {
                    (Some(e), true) => e,
                    _ => &st.begin,
                };
                (key, c.eval_cond(&ctx).unwrap_or(false))
            };
            let r = self
                .win
                .as_mut()
                .and_then(|w| w.state.as_mut())
                .map(|s| s.push(key, t, cond));
            match r {
                Some(Ok(Some((content, range)))) => self.finish(plan, content, range, out),
                Some(Err(e)) => self.exception(plan, wop, e, out),
                _ => {}
            }
            return;
        }
        let triggered = match &spec.trigger {
            None => true,
            Some(tr) => {
                let r = {
                    let ctx = mk_ctx(plan, &self.hits, Some(&t), &[], None, false, 1, (0, 0));
                    tr.eval_cond(&ctx)
                };
                let ok = r.unwrap_or(false);
                if ok {
                    let (c, tm) = spec.trigger_updates;
                    if c {
                        self.hits.count.set(self.hits.count.get() + 1);
                    }
                    if tm {
                        self.hits.time.set(t.ts);
                    }
                }
                ok
            }
        };
        let Some(w) = &mut self.win else {
            return;
        };
        let emission = if let Some(inc) = &mut w.inc {
            let r = {
                let ctx = mk_ctx(plan, &self.hits, Some(&t), &[], None, false, 1, (0, 0));
                inc.add(plan, &t, &ctx, &mut self.buf)
            };
            w.push_inc(t.ts);
            if let Err(e) = r {
                self.exception(plan, wop, format!("run Select error: {e}"), out);
            }
            None
        } else if let Some(si) = &mut self.slide {
            {
                let ctx = mk_ctx(plan, &self.hits, Some(&t), &[], None, false, 1, (0, 0));
                si.add(plan, &ctx, &mut self.buf);
            }
            let e = w.push(t, triggered);
            let mut failed = None;
            for x in w.expired.drain(..) {
                let ctx = mk_ctx(plan, &self.hits, Some(&x), &[], None, false, 1, (0, 0));
                if let Err(err) = si.remove(plan, &ctx, &mut self.buf) {
                    failed.get_or_insert(err);
                }
            }
            if let Some(err) = failed {
                self.exception(plan, wop, format!("run Select error: {err}"), out);
            }
            e
        } else {
            w.push(t, triggered)
        };
        if let Some((content, range)) = emission {
            self.finish(plan, content, range, out);
        }
    }

    pub(super) fn tick(&mut self, plan: &Plan, now: i64, out: &mut Vec<Output>) {
        let mut ems = Vec::new();
        if let Some(w) = &mut self.win {
            w.tick(now, &mut ems);
        }
        for (content, range) in ems {
            self.finish(plan, content, range, out);
        }
    }

    /// One window emission.
    pub(super) fn finish(
        &mut self,
        plan: &Plan,
        content: Content,
        range: WinRange,
        out: &mut Vec<Output>,
    ) {
        self.count_out(plan.ops.window);
        let agg_hits = (self.hits.agg_count.get(), self.hits.agg_time.get());
        match content {
            Content::Rows(rows) => self.finish_rows(plan, rows, Some(range), agg_hits, out),
            Content::Slide => {
                let Some(si) = &self.slide else { return };
                if let Some(e) = si.error() {
                    let e = format!("run Select error: {e}");
                    self.exception(plan, Some(plan.ops.project), e, out);
                    return;
                }
                let groups = si.groups();
                self.count_in(plan.ops.aggregate);
                self.count_out(plan.ops.aggregate);
                let firsts: Vec<Option<Tuple>> = groups
                    .iter()
                    .map(|(i, _)| self.win.as_ref().and_then(|w| w.row(*i)).cloned())
                    .collect();
                let gs: Vec<Group> = groups
                    .into_iter()
                    .zip(&firsts)
                    .map(|((_, aggs), first)| Group {
                        first: first.as_ref(),
                        aggs,
                    })
                    .collect();
                self.emit_groups(plan, gs, Some(range), agg_hits, out);
            }
            Content::Groups(groups) => {
                self.count_in(plan.ops.aggregate);
                self.count_out(plan.ops.aggregate);
                let empty_accs;
                let mut gs: Vec<Group> = groups
                    .iter()
                    .map(|g| Group {
                        first: Some(&g.first),
                        aggs: agg::results(&g.accs),
                    })
                    .collect();
                if gs.is_empty() && plan.dims.is_empty() {
                    empty_accs = match agg::new_accs(plan) {
                        Ok(a) => a,
                        Err(e) => {
                            self.exception(plan, Some(plan.ops.project), e, out);
                            return;
                        }
                    };
                    gs.push(Group {
                        first: None,
                        aggs: agg::results(&empty_accs),
                    });
                }
                self.emit_groups(plan, gs, Some(range), agg_hits, out);
            }
        }
    }

    /// Aggregates over `rows` (indices into `all`).
    pub(super) fn aggregate(
        &mut self,
        plan: &Plan,
        all: &[Tuple],
        rows: &[usize],
        win: Option<WinRange>,
    ) -> Result<Vec<Value>, String> {
        let mut accs = agg::new_accs(plan)?;
        for i in rows {
            let Some(t) = all.get(*i) else { continue };
            let ctx = mk_ctx(plan, &self.hits, Some(t), &[], win, false, 1, (0, 0));
            agg::feed(&plan.aggs, &mut accs, &ctx, &mut self.buf)?;
        }
        Ok(agg::results(&accs))
    }

    /// Rows of an emission (window content, or joined/aggregated rows of one
    /// event): join, WHERE, grouping, then HAVING/ORDER/projection.
    pub(super) fn finish_rows(
        &mut self,
        plan: &Plan,
        mut rows: Vec<Tuple>,
        range: Option<WinRange>,
        agg_hits: (i64, i64),
        out: &mut Vec<Output>,
    ) {
        if !plan.joins.is_empty() && plan.window.is_some() {
            self.count_in(plan.ops.join);
            match join::join(
                plan,
                &rows,
                &self.tables,
                &self.indexes,
                &self.lookups,
                &self.hits,
                range,
            ) {
                Ok(j) => rows = j,
                Err(e) => {
                    self.exception(plan, plan.ops.join, e, out);
                    return;
                }
            }
            if rows.is_empty() {
                return;
            }
            self.count_out(plan.ops.join);
        }
        if let Some(f) = &plan.post_filter {
            let op = plan.ops.post_filter;
            self.count_in(op);
            let where_aggs = if plan.post_filter_has_agg {
                let all: Vec<usize> = (0..rows.len()).collect();
                match self.aggregate(plan, &rows, &all, range) {
                    Ok(a) => a,
                    Err(e) => {
                        self.exception(plan, op, format!("run Where error: {e}"), out);
                        return;
                    }
                }
            } else {
                Vec::new()
            };
            let mut keep = Vec::with_capacity(rows.len());
            for t in &rows {
                let ctx = mk_ctx(
                    plan,
                    &self.hits,
                    Some(t),
                    &where_aggs,
                    range,
                    false,
                    1,
                    agg_hits,
                );
                match f.eval_cond(&ctx) {
                    Ok(b) => keep.push(b),
                    Err(e) => {
                        self.exception(plan, op, format!("run Where error: {e}"), out);
                        return;
                    }
                }
            }
            let mut it = keep.into_iter();
            rows.retain(|_| it.next().unwrap_or(false));
            if rows.is_empty() {
                return;
            }
            self.count_out(op);
        }
        let grouped = !plan.dims.is_empty() || plan.is_agg;
        if grouped {
            let groups: Vec<Vec<usize>> = if plan.dims.is_empty() {
                vec![(0..rows.len()).collect()]
            } else {
                self.count_in(plan.ops.aggregate);
                let hits = &self.hits;
                let r = agg::group_rows(plan, &rows, |t| {
                    mk_ctx(plan, hits, Some(t), &[], range, false, 1, (0, 0))
                });
                match r {
                    Ok(g) => {
                        self.count_out(plan.ops.aggregate);
                        g
                    }
                    Err(e) => {
                        self.exception(
                            plan,
                            plan.ops.aggregate,
                            format!("run Group By error: {e}"),
                            out,
                        );
                        return;
                    }
                }
            };
            let mut gs = Vec::with_capacity(groups.len());
            for g in &groups {
                let aggs = if plan.aggs.is_empty() {
                    Vec::new()
                } else {
                    match self.aggregate(plan, &rows, g, range) {
                        Ok(a) => a,
                        Err(e) => {
                            self.exception(
                                plan,
                                Some(plan.ops.project),
                                format!("run Select error: {e}"),
                                out,
                            );
                            return;
                        }
                    }
                };
                gs.push(Group {
                    first: g.first().and_then(|i| rows.get(*i)),
                    aggs,
                });
            }
            self.emit_groups(plan, gs, range, agg_hits, out);
            return;
        }
        // One output row per input row.
        let aggs = if plan.aggs.is_empty() {
            Vec::new()
        } else {
            let all: Vec<usize> = (0..rows.len()).collect();
            match self.aggregate(plan, &rows, &all, range) {
                Ok(a) => a,
                Err(e) => {
                    self.exception(
                        plan,
                        Some(plan.ops.project),
                        format!("run Select error: {e}"),
                        out,
                    );
                    return;
                }
            }
        };
        if let Some(h) = &plan.having {
            let op = plan.ops.having;
            self.count_in(op);
            let r = {
                let ctx = mk_ctx(
                    plan,
                    &self.hits,
                    rows.first(),
                    &aggs,
                    range,
                    true,
                    1,
                    agg_hits,
                );
                h.eval_cond(&ctx)
            };
            match r {
                Err(e) => {
                    self.exception(plan, op, format!("run Having error: {e}"), out);
                    return;
                }
                Ok(false) => return,
                Ok(true) => {
                    self.count_out(op);
                    self.update_agg_hits(plan, range, rows.first());
                }
            }
        }
        let mut numbers: Option<Vec<i64>> = None;
        if let (Some(w), Some(_)) = (&plan.row_number_over, range) {
            let op = plan.ops.window_func;
            self.count_in(op);
            let r = number_window(
                w,
                rows.iter()
                    .map(|t| mk_ctx(plan, &self.hits, Some(t), &aggs, range, false, 1, agg_hits)),
            );
            match r {
                Ok((perm, nums)) => {
                    rows = permute(rows, &perm);
                    numbers = Some(nums);
                }
                Err(e) => {
                    self.exception(plan, op, e, out);
                    return;
                }
            }
            self.count_out(op);
        }
        let number = |i: usize| {
            numbers
                .as_ref()
                .and_then(|n| n.get(i).copied())
                .unwrap_or(i as i64 + 1)
        };
        let mut order: Vec<usize> = (0..rows.len()).collect();
        if !plan.order.is_empty() {
            let op = plan.ops.order;
            self.count_in(op);
            let mut keys = Vec::with_capacity(rows.len());
            for (i, t) in rows.iter().enumerate() {
                let ctx = mk_ctx(
                    plan,
                    &self.hits,
                    Some(t),
                    &aggs,
                    range,
                    false,
                    number(i),
                    agg_hits,
                );
                let mut k = Vec::with_capacity(plan.order.len());
                for (e, _) in &plan.order {
                    match e.eval(&ctx) {
                        Ok(v) => k.push(v),
                        Err(e) => {
                            self.exception(plan, op, format!("run Order By error: {e}"), out);
                            return;
                        }
                    }
                }
                keys.push(k);
            }
            if let Err(e) = sort_by_keys(&plan.order, &mut order, &keys) {
                self.exception(plan, op, format!("run Order By error: {e}"), out);
                return;
            }
            self.count_out(op);
        }
        let op = Some(plan.ops.project);
        self.count_in(op);
        let mut out_rows = Vec::with_capacity(rows.len());
        for (n, i) in order.iter().enumerate() {
            if plan.limit.is_some_and(|l| n >= l) {
                break;
            }
            let Some(t) = rows.get(*i) else { continue };
            let r = {
                let ctx = mk_ctx(
                    plan,
                    &self.hits,
                    Some(t),
                    &aggs,
                    range,
                    false,
                    number(*i),
                    agg_hits,
                );
                project::project(
                    plan,
                    &ctx,
                    &mut self.changed,
                    &mut self.cache,
                    &mut out_rows,
                )
            };
            if let Err(e) = r {
                self.exception(plan, op, e, out);
                return;
            }
        }
        self.count_out(op);
        if let Some(l) = plan.limit {
            out_rows.truncate(l);
        }
        if plan.proj.has_unnest {
            self.count_in(plan.ops.projectset);
            self.count_out(plan.ops.projectset);
            if plan.window.is_none() && plan.joins.is_empty() {
                for row in out_rows {
                    out.push(Output::Rows(vec![row]));
                }
                return;
            }
        }
        out.push(Output::Rows(out_rows));
    }

    pub(super) fn update_agg_hits(
        &mut self,
        plan: &Plan,
        range: Option<WinRange>,
        first: Option<&Tuple>,
    ) {
        let (c, tm) = plan.having_updates;
        if c {
            self.hits.agg_count.set(self.hits.agg_count.get() + 1);
        }
        if tm {
            if let Some(t) = range.map(|r| r.trigger).or(first.map(|t| t.ts)) {
                self.hits.agg_time.set(t);
            }
        }
    }

    /// HAVING, ORDER BY, projection and LIMIT over groups.
    pub(super) fn emit_groups(
        &mut self,
        plan: &Plan,
        gs: Vec<Group>,
        range: Option<WinRange>,
        agg_hits: (i64, i64),
        out: &mut Vec<Output>,
    ) {
        let mut gs = gs;
        if let Some(h) = &plan.having {
            let op = plan.ops.having;
            self.count_in(op);
            let mut keep = Vec::with_capacity(gs.len());
            for (i, g) in gs.iter().enumerate() {
                let ctx = mk_ctx(
                    plan,
                    &self.hits,
                    g.first,
                    &g.aggs,
                    range,
                    true,
                    i as i64 + 1,
                    agg_hits,
                );
                match h.eval_cond(&ctx) {
                    Ok(b) => keep.push(b),
                    Err(e) => {
                        self.exception(plan, op, format!("run Having error: {e}"), out);
                        return;
                    }
                }
            }
            let mut it = keep.into_iter();
            gs.retain(|_| it.next().unwrap_or(false));
            if gs.is_empty() {
                return;
            }
            self.count_out(op);
            let first = gs.first().and_then(|g| g.first);
            self.update_agg_hits(plan, range, first);
        }
        let mut numbers: Option<Vec<i64>> = None;
        if let (Some(w), Some(_)) = (&plan.row_number_over, range) {
            let op = plan.ops.window_func;
            self.count_in(op);
            let r = number_window(
                w,
                gs.iter().enumerate().map(|(i, g)| {
                    mk_ctx(
                        plan,
                        &self.hits,
                        g.first,
                        &g.aggs,
                        range,
                        true,
                        i as i64 + 1,
                        agg_hits,
                    )
                }),
            );
            match r {
                Ok((perm, nums)) => {
                    gs = permute(gs, &perm);
                    numbers = Some(nums);
                }
                Err(e) => {
                    self.exception(plan, op, e, out);
                    return;
                }
            }
            self.count_out(op);
        }
        let number = |i: usize| {
            numbers
                .as_ref()
                .and_then(|n| n.get(i).copied())
                .unwrap_or(i as i64 + 1)
        };
        let mut order: Vec<usize> = (0..gs.len()).collect();
        if !plan.order.is_empty() {
            let op = plan.ops.order;
            self.count_in(op);
            let mut keys = Vec::with_capacity(gs.len());
            for (i, g) in gs.iter().enumerate() {
                let ctx = mk_ctx(
                    plan,
                    &self.hits,
                    g.first,
                    &g.aggs,
                    range,
                    true,
                    number(i),
                    agg_hits,
                );
                let mut k = Vec::with_capacity(plan.order.len());
                for (e, _) in &plan.order {
                    match e.eval(&ctx) {
                        Ok(v) => k.push(v),
                        Err(e) => {
                            self.exception(plan, op, format!("run Order By error: {e}"), out);
                            return;
                        }
                    }
                }
                keys.push(k);
            }
            if let Err(e) = sort_by_keys(&plan.order, &mut order, &keys) {
                self.exception(plan, op, format!("run Order By error: {e}"), out);
                return;
            }
            self.count_out(op);
        }
        let op = Some(plan.ops.project);
        self.count_in(op);
        let mut rows = Vec::with_capacity(gs.len());
        for (n, i) in order.iter().enumerate() {
            if plan.limit.is_some_and(|l| n >= l) {
                break;
            }
            let Some(g) = gs.get(*i) else { continue };
            let r = {
                let ctx = mk_ctx(
                    plan,
                    &self.hits,
                    g.first,
                    &g.aggs,
                    range,
                    true,
                    number(*i),
                    agg_hits,
                );
                project::project(plan, &ctx, &mut self.changed, &mut self.cache, &mut rows)
            };
            if let Err(e) = r {
                self.exception(plan, op, e, out);
                return;
            }
        }
        self.count_out(op);
        if let Some(l) = plan.limit {
            rows.truncate(l);
        }
        if plan.proj.has_unnest {
            self.count_in(plan.ops.projectset);
            self.count_out(plan.ops.projectset);
        }
        out.push(Output::Rows(rows));
    }

    // ------------------------------------------------------------ event time

    /// A row of an event-time rule: rows wait for the watermark, late ones
    /// are dropped; windows fire as the watermark passes their ends.
    pub(super) fn event_time_in(
        &mut self,
        plan: &Plan,
        source: usize,
        t: Tuple,
        out: &mut Vec<Output>,
    ) {
        if self.evt.watermark.is_some_and(|w| t.ts < w) {
            // Late: an emitted window (or row) already covers this time.
            return;
        }
        if self.evt.stream_max.len() < plan.srcs.len() {
            self.evt.stream_max.resize(plan.srcs.len(), None);
        }
        if let Some(m) = self.evt.stream_max.get_mut(source) {
            *m = Some(m.map_or(t.ts, |x| x.max(t.ts)));
        }
        // Until every stream has sent an event, nothing is released.
        let min = plan
            .srcs
            .iter()
            .zip(&self.evt.stream_max)
            .filter(|(s, _)| s.kind == StreamKind::Stream)
            .map(|(_, m)| *m)
            .try_fold(i64::MAX, |acc, m| m.map(|m| acc.min(m)));
        let pos = self.evt.pending.partition_point(|x| x.ts <= t.ts);
        self.evt.pending.insert(pos, t);
        let Some(min) = min else {
            return;
        };
        let wm = min.saturating_sub(plan.opts.late_tolerance_ms);
        // Release rows up to the watermark in time order.
        let n = self.evt.pending.partition_point(|x| x.ts <= wm);
        let ready: Vec<Tuple> = self.evt.pending.drain(..n).collect();
        for r in ready {
            let ts = r.ts;
            self.evt.watermark = Some(ts);
            if plan.window.is_some() {
                if let Some(w) = &mut self.win {
                    w.init(ts);
                }
                self.tick(plan, ts, out);
                if let Some(r) = self.with_analytic(plan, r, out) {
                    self.window_add(plan, r, out);
                }
            } else if let Some(r) = self.with_analytic(plan, r, out) {
                self.row_in(plan, r, out);
            }
        }
        if self.win.as_ref().is_some_and(|w| w.is_inited()) {
            self.tick(plan, wm, out);
        }
        if self.evt.watermark.is_none_or(|w| w < wm) && plan.window.is_some() {
            self.evt.watermark = Some(wm);
        }
    }
}

/// eKuiper's window-function step for `row_number() OVER (...)` over the
/// rows (or groups) whose contexts `ctxs` gives: their new order and each
/// one's number (see [`number_rows`]). The partition key is eKuiper's text
/// (`%v,` per expression).
fn number_window<'a>(
    w: &plan::RowNumberOver,
    ctxs: impl Iterator<Item = Ctx<'a>>,
) -> Result<(Vec<usize>, Vec<i64>), String> {
    let mut parts = Vec::new();
    let mut keys = Vec::new();
    for ctx in ctxs {
        let mut part = String::new();
        for p in &w.partition {
            let v = p
                .eval(&ctx)
                .map_err(|e| format!("run partition By error: {e}"))?;
            part.push_str(&ops::go_fmt(&v));
            part.push(',');
        }
        let mut k = Vec::with_capacity(w.order.len());
        for (e, _) in &w.order {
            k.push(
                e.eval(&ctx)
                    .map_err(|e| format!("run Order By error: {e}"))?,
            );
        }
        parts.push(part);
        keys.push(k);
    }
    number_rows(&w.order, &parts, &keys).map_err(|e| format!("run Order By error: {e}"))
}

/// `v` in the order `perm` gives (a permutation of its indices).
fn permute<T>(v: Vec<T>, perm: &[usize]) -> Vec<T> {
    let mut taken: Vec<Option<T>> = v.into_iter().map(Some).collect();
    perm.iter()
        .filter_map(|i| taken.get_mut(*i).and_then(Option::take))
        .collect()
}
