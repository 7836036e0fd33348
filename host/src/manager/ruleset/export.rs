//! Export: the whole configuration, or only what some rules need, as an
//! import document.

use super::*;

impl Manager {
    /// Stored conf keys of one `sources`/`sinks`/`connections` type.
    fn stored_conf(&self, kind: &str, typ: &str) -> AppResult<BTreeMap<String, Map<String, Json>>> {
        let mut out = BTreeMap::new();
        for (k, v) in self
            .inner
            .store
            .list(&format!("{}:{kind}.{typ}", ns::CONF))?
        {
            if let Ok(Json::Object(m)) = serde_json::from_str::<Json>(&v) {
                out.insert(k, m);
            }
        }
        Ok(out)
    }

    /// Adds schema `name` to the document's `Schema` section (eKuiper's
    /// `protobuf_<name>` key, `{"type","name","content"}` as a string).
    fn export_schema(&self, doc: &mut Document, name: &str) {
        let Ok(d) = self.inner.schemas.describe(name) else {
            return;
        };
        let entry = serde_json::json!({"type": "protobuf", "name": name, "content": d["content"]});
        doc.unsupported
            .entry(Section::Schema)
            .or_default()
            .insert(format!("protobuf_{name}"), Json::String(entry.to_string()));
    }

    /// The schema name of a `schema.Message` id.
    fn schema_name(id: &str) -> Option<&str> {
        id.trim()
            .split_once('.')
            .map(|(n, _)| n)
            .filter(|n| !n.is_empty())
    }

    /// Everything (`rule_ids == None`) or what the listed rules need.
    pub async fn export_document(
        &self,
        plugins: Option<&PluginManager>,
        rule_ids: Option<&[String]>,
    ) -> AppResult<Document> {
        let mut doc = Document::default();
        let installed = |kind: PluginKind, name: &str| -> Option<PluginEntry> {
            let info = plugins?.get(kind, name)?;
            if info.builtin {
                return None;
            }
            Some(PluginEntry {
                name: info.name,
                file: info.file,
                sha256: Some(info.package_sha256).filter(|s| !s.is_empty()),
                grants: Some(info.operator_grants).filter(|g| !g.is_empty()),
            })
        };
        let Some(ids) = rule_ids else {
            for (name, e) in self.inner.streams.read().iter() {
                doc.streams.insert(name.clone(), e.sql.clone());
            }
            for (name, e) in self.inner.tables.read().iter() {
                doc.tables.insert(name.clone(), e.sql.clone());
            }
            for (id, r) in self.inner.rules.lock().await.iter() {
                doc.rules.insert(id.clone(), r.json.clone());
            }
            for (nsname, key, value) in self.inner.store.list_prefix(&format!("{}:", ns::CONF))? {
                let Some((kind, typ)) = nsname
                    .strip_prefix(&format!("{}:", ns::CONF))
                    .and_then(|r| r.split_once('.'))
                else {
                    continue;
                };
                let section = match kind {
                    "sources" => &mut doc.source_config,
                    "sinks" => &mut doc.sink_config,
                    "connections" => &mut doc.connection_config,
                    _ => continue,
                };
                if let Ok(Json::Object(m)) = serde_json::from_str::<Json>(&value) {
                    section.entry(typ.to_string()).or_default().insert(key, m);
                }
            }
            for name in self.inner.schemas.list() {
                self.export_schema(&mut doc, &name);
            }
            if let Some(pm) = plugins {
                for kind in [PluginKind::Source, PluginKind::Sink] {
                    for name in pm.list(kind) {
                        if let Some(e) = installed(kind, &name) {
                            doc.wasm_plugins
                                .insert(format!("{}_{name}", kind.plural()), e);
                        }
                    }
                }
            }
            return Ok(doc);
        };

        let mut selectors: BTreeSet<String> = BTreeSet::new();
        let collect_selector = |props: &Map<String, Json>, sel: &mut BTreeSet<String>| {
            if let Some(Json::String(s)) = props.get("connectionSelector") {
                if !s.is_empty() {
                    sel.insert(s.clone());
                }
            }
        };
        let rules = self.inner.rules.lock().await;
        for id in ids {
            let r = rules
                .get(id)
                .ok_or_else(|| AppError::not_found(format!("Rule {id} is not found.")))?;
            doc.rules.insert(id.clone(), r.json.clone());
            for s in &r.sources {
                let (entry, is_table) = match self.inner.streams.read().get(s) {
                    Some(e) => (Some(e.clone()), false),
                    None => (self.inner.tables.read().get(s).cloned(), true),
                };
                let Some(entry) = entry else { continue };
                if is_table {
                    doc.tables.insert(s.clone(), entry.sql.clone());
                } else {
                    doc.streams.insert(s.clone(), entry.sql.clone());
                }
                let typ = streams::source_type(&entry.def);
                if let Some(p) = installed(PluginKind::Source, &typ) {
                    doc.wasm_plugins.insert(format!("sources_{typ}"), p);
                }
                if let Some(n) = entry
                    .def
                    .options
                    .schema_id
                    .as_deref()
                    .and_then(Self::schema_name)
                {
                    self.export_schema(&mut doc, n);
                }
                if let Some(ck) = entry
                    .def
                    .options
                    .conf_key
                    .as_deref()
                    .filter(|k| !k.is_empty())
                {
                    let stored = self.stored_conf("sources", &typ)?;
                    if let Some((k, props)) = stored
                        .into_iter()
                        .find(|(k, _)| k == ck || k.eq_ignore_ascii_case(ck))
                    {
                        collect_selector(&props, &mut selectors);
                        doc.source_config
                            .entry(typ.clone())
                            .or_default()
                            .insert(k, props);
                    }
                }
            }
            for a in r.def.actions().map_err(|e| AppError::bad(e.to_string()))? {
                if let Some(p) = installed(PluginKind::Sink, &a.kind) {
                    doc.wasm_plugins.insert(format!("sinks_{}", a.kind), p);
                }
                collect_selector(&a.props, &mut selectors);
                let schema_id = a
                    .props
                    .iter()
                    .find(|(k, _)| k.eq_ignore_ascii_case("schemaId"))
                    .and_then(|(_, v)| v.as_str());
                if let Some(n) = schema_id.and_then(Self::schema_name) {
                    self.export_schema(&mut doc, n);
                }
                if let Some(Json::String(rid)) = a.props.get("resourceId") {
                    let stored = self.stored_conf("sinks", &a.kind)?;
                    if let Some(props) = stored.get(rid) {
                        collect_selector(props, &mut selectors);
                        doc.sink_config
                            .entry(a.kind.clone())
                            .or_default()
                            .insert(rid.clone(), props.clone());
                    }
                }
            }
        }
        drop(rules);
        if !selectors.is_empty() {
            let prefix = format!("{}:connections.", ns::CONF);
            for (nsname, key, value) in self.inner.store.list_prefix(&prefix)? {
                let Some(typ) = nsname.strip_prefix(&prefix) else {
                    continue;
                };
                let wanted =
                    selectors.contains(&key) || selectors.contains(&format!("{typ}.{key}"));
                if !wanted {
                    continue;
                }
                if let Ok(Json::Object(m)) = serde_json::from_str::<Json>(&value) {
                    doc.connection_config
                        .entry(typ.to_string())
                        .or_default()
                        .insert(key, m);
                }
            }
        }
        Ok(doc)
    }
}
