//! Starting and stopping a rule's runtime: checking a definition against
//! the catalogue and the connectors (`prepare`), the stream hubs a rule
//! reads (shared or its own), wiring hubs, query and sink nodes together
//! (`launch`), and stopping them (`halt`).

use super::*;

impl Manager {
    /// Checks a rule against the catalogue and its connectors' `validate`
    /// without building anything.
    pub(super) fn prepare(&self, def: &RuleDef) -> AppResult<Prepared> {
        self.prepare_with(def, false)
    }

    /// [`Manager::prepare`]; `build: true` creates the sink instances (as
    /// many as `concurrency`) instead of validating them, for `launch`,
    /// which runs what was built: each connector is built once per start.
    pub(super) fn prepare_with(&self, def: &RuleDef, build: bool) -> AppResult<Prepared> {
        let sql = def.sql.as_deref().unwrap_or_default();
        let select: Select = oort_sql::parser::parse_select(sql).map_err(|e| {
            // eKuiper's wording, which names the SQL (cut when long).
            let shown: String = sql.chars().take(200).collect();
            let cut = if shown.len() < sql.len() { "..." } else { "" };
            AppError::from(e).context(&format!("invalid rule json: parse SQL {shown}{cut} error"))
        })?;
        let opts = def.options().map_err(|e| AppError::bad(e.to_string()))?;
        self.register_inline(def)?;
        let qopts = QueryOptions {
            send_nil_field: opts.send_nil_field,
            send_error: opts.send_error,
            is_event_time: opts.is_event_time,
            late_tolerance_ms: opts.late_tolerance.as_millis() as i64,
            rule_id: def.id.clone(),
            send_meta: opts.send_meta_to_sink,
            host: Some(self.inner.rule_host.clone()),
        };
        let plan = engine::compile(&select, self.inner.as_ref(), &qopts)?;
        for i in 0..def.routes.len() {
            route(def, i)?;
        }
        let sources: Vec<String> = plan.sources().iter().map(|s| s.name.clone()).collect();
        // Validate each source's connector and props without IO.
        for name in &sources {
            let entry = self
                .stream_entry(name)
                .ok_or_else(|| AppError::bad(format!("stream {name} not found")))?;
            if streams::is_lookup(&entry.def) {
                let spec = self.lookup_spec(name, &entry)?;
                spec.factory
                    .validate(&self.inner.env, &spec.datasource, &spec.props)
                    .map_err(|e| AppError::bad(format!("table {name}: {e}")))?;
                continue;
            }
            let spec = self.hub_spec(name, &entry)?;
            spec.factory
                .validate(&self.inner.env, &spec.datasource, &spec.props)
                .map_err(|e| AppError::bad(format!("stream {name}: {e}")))?;
        }
        let mut sinks = Vec::new();
        for (i, a) in def
            .actions()
            .map_err(|e| AppError::bad(e.to_string()))?
            .into_iter()
            .enumerate()
        {
            let factory = self.inner.registry.sink(&a.kind).ok_or_else(|| {
                AppError::bad(format!(
                    "sink type {} not found; available: {}",
                    a.kind,
                    self.inner.registry.sink_kinds().join(", ")
                ))
            })?;
            let props = crate::connections::resolve_sink(&self.inner.conf, &a.kind, &a.props)?;
            let delimited = props
                .get("format")
                .and_then(Json::as_str)
                .is_some_and(|f| f.eq_ignore_ascii_case("delimited"));
            if delimited && props.get("delimiter").and_then(Json::as_str) == Some("") {
                return Err(AppError::bad(format!(
                    "action {i} ({}): delimiter must not be empty for format delimited",
                    a.kind
                )));
            }
            let mut common = SinkCommon::from_props(&props)
                .map_err(|e| AppError::bad(format!("action {} ({}): {e}", i, a.kind)))?;
            common.yield_to(&factory.info());
            common.proto = self
                .sink_proto(&common)
                .map_err(|e| AppError::bad(format!("action {i} ({}): {e}", a.kind)))?;
            if !sink::config::has_key(&props, "bufferLength") {
                common.buffer_length =
                    (opts.buffer_length as u64).clamp(1, sink::config::MAX_BUFFER_LENGTH);
            }
            sink::prepare(&def.id, &a.kind, &props, &common, factory.as_ref())
                .map_err(|e| AppError::bad(format!("action {} ({}): {e}", i, a.kind)))?;
            if !common.resend_destination.trim().is_empty() && !factory.resend_destination() {
                return Err(AppError::bad(format!(
                    "action {i} ({}): resendDestination is not supported by the {} sink",
                    a.kind, a.kind
                )));
            }
            let failed = |e: ConnectorError| AppError::bad(format!("action {i} ({}): {e}", a.kind));
            let mut built = Vec::new();
            if build {
                for _ in 0..common.concurrency.max(1) {
                    built.push(factory.create(&self.inner.env, &props).map_err(failed)?);
                }
            } else {
                factory.validate(&self.inner.env, &props).map_err(failed)?;
            }
            sinks.push(PreparedSink {
                kind: a.kind,
                props,
                common,
                factory,
                built,
            });
        }
        Ok(Prepared {
            plan,
            sources,
            sinks,
        })
    }

    pub(super) fn stream_entry(&self, name: &str) -> Option<StreamEntry> {
        if let Some(s) = self.inner.streams.read().get(name) {
            return Some(s.clone());
        }
        if let Some(s) = self.inner.tables.read().get(name) {
            return Some(s.clone());
        }
        self.inner.inline.read().get(name).map(|(_, s)| s.clone())
    }

    /// Registers the streams `def` defines inline (a graph's source nodes),
    /// replacing those an earlier version of the rule defined.
    pub(super) fn register_inline(&self, def: &RuleDef) -> AppResult<()> {
        let mut parsed = Vec::with_capacity(def.inline_streams.len());
        for (name, sql) in &def.inline_streams {
            let d = streams::parse_def(sql)
                .map_err(|e| AppError::bad(format!("inline source {name}: {e}")))?;
            parsed.push((
                name.clone(),
                StreamEntry {
                    def: d,
                    sql: sql.clone(),
                },
            ));
        }
        let mut inline = self.inner.inline.write();
        inline.retain(|_, (owner, _)| owner != &def.id);
        for (name, e) in parsed {
            inline.insert(name, (def.id.clone(), e));
        }
        Ok(())
    }

    /// Forgets the inline streams of rule `id`.
    pub(super) fn drop_inline(&self, id: &str) {
        self.inner
            .inline
            .write()
            .retain(|_, (owner, _)| owner != id);
    }

    pub(super) fn hub_spec(&self, name: &str, entry: &StreamEntry) -> AppResult<HubSpec> {
        let o = &entry.def.options;
        let typ = streams::source_type(&entry.def);
        let factory = self.inner.registry.source(&typ).ok_or_else(|| {
            AppError::bad(format!(
                "source type {typ} not found for stream {name}; available: {}",
                self.inner.registry.source_kinds().join(", ")
            ))
        })?;
        let mut props = crate::connections::resolve_source(
            &self.inner.conf,
            &typ,
            o.conf_key.as_deref(),
            o.extra.as_deref(),
        )
        .map_err(|e| AppError::bad(format!("stream {name}: {e}")))?;
        let format = o.format.clone().unwrap_or_else(|| "json".into());
        let proto = self.proto_of(name, &format, o.schema_id.as_deref())?;
        // eKuiper's decoder property: whole numbers of a schemaless stream
        // stay integers instead of floats.
        let int64_key = props
            .keys()
            .find(|k| k.eq_ignore_ascii_case("useInt64ForWholeNumber"))
            .cloned();
        let use_int64 = match int64_key.and_then(|k| props.remove(&k)) {
            None | Some(Json::Null) => false,
            Some(Json::Bool(b)) => b,
            Some(Json::String(t)) if t.eq_ignore_ascii_case("true") => true,
            Some(Json::String(t)) if t.eq_ignore_ascii_case("false") || t.is_empty() => false,
            Some(other) => {
                return Err(AppError::bad(format!(
                    "stream {name}: invalid property useInt64ForWholeNumber: expected true or false, got {other}"
                )))
            }
        };
        props.insert("format".into(), Json::String(format.clone()));
        if let Some(d) = &o.delimiter {
            props.insert("delimiter".into(), Json::String(d.clone()));
        }
        if let Some(k) = &o.key {
            props.insert("key".into(), Json::String(k.clone()));
        }
        Ok(HubSpec {
            name: name.to_string(),
            env: self.inner.env.clone(),
            factory,
            datasource: o.datasource.clone().unwrap_or_default(),
            props,
            format,
            decode: DecodeOptions {
                delimiter: o.delimiter.clone(),
                columns: entry.def.columns.iter().map(|c| c.name.clone()).collect(),
                proto,
                keep_integers: use_int64 || !entry.def.columns.is_empty(),
            },
            checkpoint: None,
        })
    }

    /// The protobuf message of a sink (`format: protobuf` with `schemaId`).
    fn sink_proto(
        &self,
        common: &SinkCommon,
    ) -> Result<Option<prost_reflect::MessageDescriptor>, String> {
        let id = common.schema_id.trim();
        match (
            common.format.eq_ignore_ascii_case("protobuf"),
            id.is_empty(),
        ) {
            (true, false) => self
                .inner
                .schemas
                .message(id)
                .map(Some)
                .map_err(|e| format!("invalid property schemaId: {e}")),
            (false, false) => {
                Err("invalid property schemaId: it is used with format protobuf only".into())
            }
            (_, true) => Ok(None),
        }
    }

    /// The protobuf message of a stream (FORMAT protobuf with SCHEMAID);
    /// SCHEMAID with another format is refused.
    fn proto_of(
        &self,
        name: &str,
        format: &str,
        schema_id: Option<&str>,
    ) -> AppResult<Option<prost_reflect::MessageDescriptor>> {
        let id = schema_id.map(str::trim).filter(|s| !s.is_empty());
        match (format.eq_ignore_ascii_case("protobuf"), id) {
            (true, Some(id)) => self
                .inner
                .schemas
                .message(id)
                .map(Some)
                .map_err(|e| AppError::bad(format!("stream {name}: SCHEMAID: {e}"))),
            (false, Some(_)) => Err(AppError::bad(format!(
                "stream {name}: SCHEMAID is used with FORMAT=\"protobuf\" only"
            ))),
            (_, None) => Ok(None),
        }
    }

    /// A lookup table's connector and props: conf keys resolved as for a
    /// source of its type, the `lookup` cache property taken out.
    pub(super) fn lookup_spec(&self, name: &str, entry: &StreamEntry) -> AppResult<LookupSpec> {
        let o = &entry.def.options;
        let typ = streams::source_type(&entry.def);
        let factory = self.inner.registry.lookup(&typ).ok_or_else(|| {
            AppError::bad(format!(
                "lookup source type {typ} not found for table {name}; available: {}",
                self.inner.registry.lookup_kinds().join(", ")
            ))
        })?;
        let mut props = crate::connections::resolve_source(
            &self.inner.conf,
            &typ,
            o.conf_key.as_deref(),
            o.extra.as_deref(),
        )
        .map_err(|e| AppError::bad(format!("table {name}: {e}")))?;
        let (conf, warnings) = LookupConf::take(&mut props)
            .map_err(|e| AppError::bad(format!("table {name}: {e}")))?;
        if let Some(f) = &o.format {
            props.insert("format".into(), Json::String(f.clone()));
        }
        if let Some(k) = &o.key {
            props.insert("key".into(), Json::String(k.clone()));
        }
        Ok(LookupSpec {
            typ,
            factory,
            datasource: o.datasource.clone().unwrap_or_default(),
            props,
            conf,
            warnings,
        })
    }

    /// Gets (or starts) the hub of a stream for one rule run; returns it and its key.
    pub(super) fn hub_for(&self, run_key: &str, name: &str) -> AppResult<(String, Arc<Hub>)> {
        let entry = self
            .stream_entry(name)
            .ok_or_else(|| AppError::bad(format!("stream {name} not found")))?;
        let typ = streams::source_type(&entry.def);
        // A source that ends (a file) replays per rule unless SHARED.
        let bounded = self
            .inner
            .registry
            .source(&typ)
            .is_some_and(|f| f.info().bounded);
        let shared = entry.def.options.shared || !bounded;
        let key = if shared {
            name.to_string()
        } else {
            format!("{name}#{run_key}")
        };
        if let Some(h) = self.inner.hubs.lock().get(&key) {
            return Ok((key, h.clone()));
        }
        // Starting a hub creates its source, which may call into a plugin
        // (`validate`): not under the hubs lock.
        let mut spec = self.hub_spec(name, &entry)?;
        if shared {
            spec.checkpoint = Some(self.checkpoint_spec(name));
        }
        let h = hub::start(spec).map_err(|e| AppError::bad(format!("stream {name}: {e}")))?;
        let mut hubs = self.inner.hubs.lock();
        if let Some(other) = hubs.get(&key) {
            // Another run started the same shared hub meanwhile: use that one.
            h.stop();
            return Ok((key, other.clone()));
        }
        hubs.insert(key.clone(), h.clone());
        Ok((key, h))
    }

    /// Builds a lookup table's connector and cache for one rule run.
    fn lookup_node(&self, name: &str) -> AppResult<Arc<LookupNode>> {
        let entry = self
            .stream_entry(name)
            .ok_or_else(|| AppError::bad(format!("table {name} not found")))?;
        let spec = self.lookup_spec(name, &entry)?;
        let source = spec
            .factory
            .create(&self.inner.env, &spec.datasource, &spec.props)
            .map_err(|e| AppError::bad(format!("table {name}: {e}")))?;
        Ok(Arc::new(LookupNode::new(
            name,
            source,
            spec.conf,
            self.inner.env.clock(),
        )))
    }

    /// Offsets of a shared hub: stored by stream name, read back at start.
    pub(super) fn checkpoint_spec(&self, name: &str) -> hub::CheckpointSpec {
        let resume = match self.inner.store.get(ns::CHECKPOINTS, name) {
            Ok(o) => o,
            Err(e) => {
                tracing::warn!(stream = %name, error = %e, "cannot read the stored offset; starting afresh");
                None
            }
        };
        let weak = Arc::downgrade(&self.inner);
        let persist: hub::PersistOffset = Arc::new(move |key: &str, offset: &str| {
            if let Some(inner) = weak.upgrade() {
                if let Err(e) = inner.store.put_deferred(ns::CHECKPOINTS, key, offset) {
                    tracing::warn!(stream = %key, error = %e, "cannot store the committed offset");
                }
            }
        });
        hub::CheckpointSpec {
            key: name.to_string(),
            resume,
            persist,
        }
    }

    /// Unsubscribes one rule run from its hubs; stops hubs nobody uses any more.
    pub(super) fn release_hubs(inner: &Inner, run_key: &str, hub_keys: &[String]) {
        let mut hubs = inner.hubs.lock();
        for key in hub_keys {
            if let Some(h) = hubs.get(key) {
                if h.unsubscribe(run_key) {
                    h.stop();
                    hubs.remove(key);
                }
            }
        }
    }

    /// [`Self::launch`], with a panic turned into an error: whatever goes
    /// wrong, only this rule fails (marked stopped with the message).
    pub(super) fn launch_guarded(
        &self,
        def: &RuleDef,
        status: Arc<RuleStatus>,
    ) -> AppResult<Arc<RunningRule>> {
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            self.launch(def, status.clone())
        }))
        .unwrap_or_else(|p| {
            let what = p
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| p.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".into());
            tracing::error!(rule = %def.id, panic = %what, "rule start panicked");
            Err(AppError::Internal(format!(
                "rule {} could not start: internal error: {what}",
                def.id
            )))
        });
        if let Err(e) = &r {
            status.set_stopped(Some(e.to_string()));
        }
        r
    }

    pub(super) fn launch(
        &self,
        def: &RuleDef,
        status: Arc<RuleStatus>,
    ) -> AppResult<Arc<RunningRule>> {
        let p = self.prepare_with(def, true)?;
        let cancel = CancellationToken::new();
        // Whatever was started is stopped again if this returns early or panics.
        let cancel_on_failure = cancel.clone().drop_guard();
        let opts = def.options().map_err(|e| AppError::bad(e.to_string()))?;
        let (queue, rx) = RuleQueue::new(opts.buffer_length);
        let (fatal_tx, fatal_rx) = mpsc::channel::<String>(4);
        let checkpoints = opts.qos >= 1;
        let sink_wake = Arc::new(tokio::sync::Notify::new());
        let mut progress = Vec::new();
        let mut sinks = Vec::new();
        for (i, s) in p.sinks.into_iter().enumerate() {
            let PreparedSink {
                kind,
                props,
                common,
                factory,
                built: instances,
            } = s;
            let cache_dir = common
                .enable_cache
                .then(|| sink::cache::node_dir(&self.inner.data_dir, &def.id, &kind, i));
            let node = sink::start(
                SinkSpec {
                    rule_id: def.id.clone(),
                    kind: kind.clone(),
                    index: i,
                    sinks: instances,
                    consumes: factory.consumes(),
                    dynamic_props: factory.needs_rows(&props),
                    common,
                    progress: {
                        let p = Arc::new(SinkProgress::new(sink_wake.clone()));
                        progress.push(p.clone());
                        Some(p)
                    },
                    hold: checkpoints,
                    cache_dir,
                },
                cancel.child_token(),
                fatal_tx.clone(),
            )
            .map_err(|e| AppError::bad(format!("action {i} ({kind}): {e}")))?;
            let mut node = node;
            node.route = route(def, i)?;
            sinks.push(node);
        }
        let mut inputs = Vec::new();
        let run_key = format!(
            "{}#{}",
            def.id,
            RUN_SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        );
        let mut hub_keys = Vec::new();
        let plan_sources = p.plan.sources().to_vec();
        for (idx, s) in plan_sources.iter().enumerate() {
            if s.lookup {
                let node = match self.lookup_node(&s.name) {
                    Ok(n) => n,
                    Err(e) => {
                        cancel.cancel();
                        Self::release_hubs(&self.inner, &run_key, &hub_keys);
                        return Err(e);
                    }
                };
                inputs.push(Input {
                    stream: s.name.clone(),
                    kind: s.kind,
                    hub: None,
                    lookup: Some(node),
                    metrics: Arc::new(NodeMetrics::default()),
                    loads: false,
                });
                continue;
            }
            let (key, hub) = match self.hub_for(&run_key, &s.name) {
                Ok(h) => h,
                Err(e) => {
                    cancel.cancel();
                    Self::release_hubs(&self.inner, &run_key, &hub_keys);
                    return Err(e);
                }
            };
            hub.subscribe(Subscriber {
                rule_id: run_key.clone(),
                index: idx,
                queue: queue.clone(),
                checkpoint: checkpoints && s.kind == StreamKind::Stream,
            });
            hub_keys.push(key);
            // A scan table whose source ends (a file) loads before stream
            // events are joined; one fed as it goes (memory...) does not.
            let loads = s.kind == StreamKind::Table
                && self.stream_entry(&s.name).is_some_and(|e| {
                    self.inner
                        .registry
                        .source(&streams::source_type(&e.def))
                        .is_some_and(|f| f.info().bounded)
                });
            inputs.push(Input {
                stream: s.name.clone(),
                kind: s.kind,
                hub: Some(hub),
                lookup: None,
                metrics: Arc::new(NodeMetrics::default()),
                loads,
            });
        }
        drop(queue);
        cancel_on_failure.disarm();
        status.set_running();
        let running = Arc::new(rt::spawn(
            def.id.clone(),
            &p.plan,
            inputs,
            rx,
            sinks,
            fatal_rx,
            cancel,
            status,
            crate::runtime::tracker::TrackCfg {
                run_key: run_key.clone(),
                sinks: progress,
                wake: sink_wake,
                checkpoint: checkpoints.then_some(opts.checkpoint_interval),
            },
        ));
        // When the run ends (stopped, error, end of input), release its hubs.
        let weak = Arc::downgrade(&self.inner);
        let mut done = running.done.clone();
        tokio::spawn(async move {
            let _ = done.wait_for(|d| *d).await;
            if let Some(inner) = weak.upgrade() {
                Self::release_hubs(&inner, &run_key, &hub_keys);
            }
        });
        Ok(running)
    }

    /// Stops a running rule. `persist` records `triggered=false`.
    pub(super) async fn halt(&self, id: &str, persist: bool) {
        let running = {
            let mut rules = self.inner.rules.lock().await;
            rules.get_mut(id).and_then(|r| r.running.take())
        };
        if let Some(r) = running {
            r.cancel.cancel();
            let mut done = r.done.clone();
            let _ = tokio::time::timeout(std::time::Duration::from_secs(5), done.wait_for(|d| *d))
                .await;
        }
        if let Some(r) = self.inner.rules.lock().await.get(id) {
            if r.status.state_name() == "running" {
                r.status.set_stopped(None);
            }
        }
        if persist {
            let _ = self.set_triggered(id, false).await;
        }
    }
}

/// The compiled route of action `i` (a graph's `switch` case), if any.
fn route(def: &RuleDef, i: usize) -> AppResult<Option<oort_sql::engine::RowFilter>> {
    match def.routes.get(i).and_then(Option::as_deref) {
        None => Ok(None),
        Some(cond) => oort_sql::engine::RowFilter::compile(cond)
            .map(Some)
            .map_err(|e| AppError::bad(format!("action {i}: switch case {cond}: {e}"))),
    }
}
