//! What the API reads about rules: lists, definitions, status, topology,
//! and which rules use a stream, a connector or a shared connection.

use super::*;

/// What [`Manager::visit_metrics`] reports.
pub enum RuleMetric<'a> {
    /// The rule's state: 1 running, 0 stopped, -1 stopped by an error.
    State(i64),
    /// One metric of one node of a running rule.
    Node(&'a rt::NodeRef, &'a str, Json),
    /// The latency histogram of one sink node of a running rule.
    Latency(&'a rt::NodeRef, crate::runtime::metrics::LatencySnapshot),
}

impl Manager {
    /// `GET /rules`: id, name, status, sorted by id.
    pub async fn list_rules(&self) -> Vec<Json> {
        let rules = self.inner.rules.lock().await;
        rules
            .iter()
            .map(|(id, r)| {
                let status = match r.status.state() {
                    rt::RuleState::Failed(m) => format!("stopped: {m}"),
                    _ => r.status.state_name().to_string(),
                };
                json!({
                    "id": id,
                    "name": r.def.name.clone().filter(|n| !n.is_empty()).unwrap_or_else(|| id.clone()),
                    "status": status,
                    "version": r.def.version.clone().unwrap_or_default(),
                    "trace": false,
                    "tags": r.def.tags,
                })
            })
            .collect()
    }

    pub async fn rule_json(&self, id: &str) -> AppResult<String> {
        self.inner
            .rules
            .lock()
            .await
            .get(id)
            .map(|r| r.json.clone())
            .ok_or_else(|| AppError::not_found(format!("Rule {id} is not found.")))
    }

    pub async fn rule_status(&self, id: &str) -> AppResult<Map<String, Json>> {
        let rules = self.inner.rules.lock().await;
        let r = rules
            .get(id)
            .ok_or_else(|| AppError::not_found(format!("Rule {id} is not found.")))?;
        let (start, stop) = r.status.times();
        let mut m = Map::new();
        m.insert("status".into(), r.status.state_name().into());
        m.insert("message".into(), r.status.message().into());
        m.insert("lastStartTimestamp".into(), start.into());
        m.insert("lastStopTimestamp".into(), stop.into());
        m.insert("nextStartTimestamp".into(), 0.into());
        if let Some(run) = &r.running {
            run.write_metrics(&mut m);
        }
        Ok(m)
    }

    /// Every rule's state and each metric of a running rule's nodes, for
    /// `GET /metrics`.
    pub async fn visit_metrics(&self, f: &mut (dyn FnMut(&str, RuleMetric<'_>) + Send)) {
        let rules = self.inner.rules.lock().await;
        for (id, r) in rules.iter() {
            let code = match r.status.state() {
                rt::RuleState::Running => 1,
                rt::RuleState::Stopped => 0,
                rt::RuleState::Failed(_) => -1,
            };
            f(id, RuleMetric::State(code));
            if let Some(run) = &r.running {
                run.visit_metrics(&mut |node, metric, v| f(id, RuleMetric::Node(node, metric, v)));
                run.visit_latency(&mut |node, h| f(id, RuleMetric::Latency(node, h)));
            }
        }
    }

    pub async fn all_status(&self) -> Json {
        let rules = self.inner.rules.lock().await;
        let mut m = Map::new();
        for (id, r) in rules.iter() {
            let mut exceptions = 0u64;
            let mut last = String::new();
            if let Some(run) = &r.running {
                let mut mm = Map::new();
                run.write_metrics(&mut mm);
                for (k, v) in &mm {
                    if k.ends_with("_exceptions_total") {
                        exceptions += v.as_u64().unwrap_or(0);
                    }
                    if k.ends_with("_last_exception") && v.as_str().is_some_and(|s| !s.is_empty()) {
                        last = v.as_str().unwrap_or_default().to_string();
                    }
                }
            }
            m.insert(
                id.clone(),
                json!({"status": r.status.state_name(), "last_exception": last, "exceptions_total": exceptions}),
            );
        }
        Json::Object(m)
    }

    /// eKuiper's `GET /rules/{id}/explain`: the logical plan of the rule's
    /// SELECT, one JSON line per node (see `oort_sql::engine::explain`).
    pub async fn rule_explain(&self, id: &str) -> AppResult<String> {
        let def = {
            let rules = self.inner.rules.lock().await;
            rules.get(id).map(|r| r.def.clone())
        }
        .ok_or_else(|| AppError::not_found(format!("Rule {id} is not found.")))?;
        let Some(sql) = def.sql.as_deref() else {
            return Err(AppError::bad(format!(
                "rule {id} is a graph rule: explain shows the plan of a rule's sql"
            )));
        };
        let select = oort_sql::parser::parse_select(sql)
            .map_err(|e| AppError::bad(format!("rule {id}: {e}")))?;
        Ok(oort_sql::engine::explain(&select))
    }

    pub async fn rule_topo(&self, id: &str) -> AppResult<Json> {
        let rules = self.inner.rules.lock().await;
        let r = rules
            .get(id)
            .ok_or_else(|| AppError::not_found(format!("Rule {id} is not found.")))?;
        match &r.running {
            Some(run) => Ok(run.topo()),
            None => {
                // Not running: plan it to show the topology it would have.
                drop(rules);
                let def = {
                    let rules = self.inner.rules.lock().await;
                    rules.get(id).map(|r| r.def.clone())
                };
                let def =
                    def.ok_or_else(|| AppError::not_found(format!("Rule {id} is not found.")))?;
                let p = self.prepare(&def)?;
                let sources: Vec<String> =
                    p.sources.iter().map(|s| format!("source_{s}")).collect();
                let ops = p.plan.op_names();
                let sinks: Vec<String> = p
                    .sinks
                    .iter()
                    .enumerate()
                    .map(|(i, s)| format!("sink_{}_{i}", s.kind))
                    .collect();
                Ok(topo_json(&sources, &ops, &sinks))
            }
        }
    }

    /// Rules whose streams (`source == true`) or actions use connector type `typ`.
    pub async fn rules_using_connector(&self, source: bool, typ: &str) -> Vec<String> {
        let rules = self.inner.rules.lock().await;
        rules
            .iter()
            .filter(|(_, r)| {
                if source {
                    r.sources.iter().any(|s| {
                        self.stream_entry(s)
                            .is_some_and(|e| streams::source_type(&e.def) == typ)
                    })
                } else {
                    r.def.actions.iter().any(|a| a.keys().any(|k| k == typ))
                }
            })
            .map(|(id, _)| id.clone())
            .collect()
    }

    /// Restarts a rule only when it is running (plugin upgrades).
    pub async fn restart_if_running(&self, id: &str) -> AppResult<()> {
        if self.is_running(id).await {
            self.restart_rule(id).await?;
        }
        Ok(())
    }

    /// Running rules' uses of connection profiles: `(rule id, "stream <name>"
    /// or "action <i> (<type>)", canonical selector)`.
    pub async fn running_selectors(&self) -> Vec<(String, String, String)> {
        let running: Vec<(String, RuleDef, Vec<String>)> = {
            let rules = self.inner.rules.lock().await;
            rules
                .iter()
                // A rule stopped by an error keeps its task handle but
                // holds no connection.
                .filter(|(_, r)| {
                    r.running.is_some()
                        && r.status.state() == crate::runtime::rule::RuleState::Running
                })
                .map(|(id, r)| (id.clone(), r.def.clone(), r.sources.clone()))
                .collect()
        };
        let mut out = Vec::new();
        for (id, def, sources) in running {
            for name in sources {
                let Some(entry) = self.stream_entry(&name) else {
                    continue;
                };
                if let Ok(spec) = self.hub_spec(&name, &entry) {
                    if let Some(sel) = crate::connections::selector_in(&spec.props) {
                        out.push((id.clone(), format!("stream {name}"), sel));
                    }
                }
            }
            for (i, a) in def.actions().unwrap_or_default().into_iter().enumerate() {
                if let Ok(props) =
                    crate::connections::resolve_sink(&self.inner.conf, &a.kind, &a.props)
                {
                    if let Some(sel) = crate::connections::selector_in(&props) {
                        out.push((id.clone(), format!("action {i} ({})", a.kind), sel));
                    }
                }
            }
        }
        out
    }

    /// Rules that read a stream or table.
    pub(super) async fn rules_using(&self, name: &str) -> Vec<String> {
        self.inner
            .rules
            .lock()
            .await
            .iter()
            .filter(|(_, r)| r.sources.iter().any(|s| s == name))
            .map(|(id, _)| id.clone())
            .collect()
    }
}

pub(super) fn topo_json(sources: &[String], ops: &[String], sinks: &[String]) -> Json {
    let mut edges = Map::new();
    let first: Vec<Json> = match ops.first() {
        Some(o) => vec![o.clone().into()],
        None => sinks.iter().map(|s| s.clone().into()).collect(),
    };
    for s in sources {
        edges.insert(s.clone(), Json::Array(first.clone()));
    }
    for w in ops.windows(2) {
        edges.insert(w[0].clone(), Json::Array(vec![w[1].clone().into()]));
    }
    if let Some(l) = ops.last() {
        edges.insert(
            l.clone(),
            Json::Array(sinks.iter().map(|s| s.clone().into()).collect()),
        );
    }
    json!({"sources": sources, "edges": edges})
}

pub(super) fn rule_sources(def: &RuleDef) -> Vec<String> {
    let Some(sql) = def.sql.as_deref() else {
        return Vec::new();
    };
    match oort_sql::parser::parse_select(sql) {
        Ok(s) => {
            let mut v = vec![s.from.name.clone()];
            v.extend(s.joins.iter().map(|j| j.source.name.clone()));
            v
        }
        Err(_) => Vec::new(),
    }
}
