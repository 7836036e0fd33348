//! The transform stage, in eKuiper's order (`internal/topo/node/transform_op.go`,
//! `doTransform`, and `internal/topo/transform/template.go`, `TransItem`):
//! `dataTemplate` is rendered first, against the result row (sendSingle) or
//! the array of rows; then `dataField` picks a field of that (of the first
//! row for an array), then `fields`/`excludeFields` select keys. When a
//! template is followed by `dataField` or `fields`, its text must be JSON
//! (eKuiper decodes it back, and fails the same way).
//!
//! Without a template or `dataField`, `fields`/`excludeFields` work on rows:
//! a per-schema projection (kept while rows share one `Arc<Schema>`), no
//! per-row map. A listed field a row lacks is `null`, as eKuiper writes it.

use std::sync::Arc;

use oort_core::{Map, Row, Schema, Value};

use super::config::SinkCommon;
use super::template::Template;

/// `fields` or `excludeFields`.
#[derive(Debug, Clone)]
enum Select {
    All,
    Fields(Vec<Arc<str>>),
    Exclude(Vec<Arc<str>>),
}

/// A cached plan: the input schema (kept alive so its pointer identifies
/// it), the output schema, and the input slot of each output field.
type Plan = (Arc<Schema>, Arc<Schema>, Vec<Option<usize>>);

/// Key selection for rows (cached per schema) and for maps.
pub struct Projection {
    select: Select,
    cache: Option<Plan>,
}

impl Projection {
    pub fn new(common: &SinkCommon) -> Projection {
        let arcs = |v: &[String]| v.iter().map(|s| Arc::<str>::from(s.as_str())).collect();
        let select = if !common.fields.is_empty() {
            Select::Fields(arcs(&common.fields))
        } else if !common.exclude_fields.is_empty() {
            Select::Exclude(arcs(&common.exclude_fields))
        } else {
            Select::All
        };
        Projection {
            select,
            cache: None,
        }
    }

    pub fn is_all(&self) -> bool {
        matches!(self.select, Select::All)
    }

    fn plan(&mut self, s: &Arc<Schema>) -> (&Arc<Schema>, &[Option<usize>]) {
        let hit = self
            .cache
            .as_ref()
            .is_some_and(|(input, _, _)| Arc::ptr_eq(input, s));
        if !hit {
            let (names, slots): (Vec<Arc<str>>, Vec<Option<usize>>) = match &self.select {
                Select::All => s
                    .names()
                    .iter()
                    .enumerate()
                    .map(|(i, n)| (n.clone(), Some(i)))
                    .unzip(),
                Select::Fields(f) => f.iter().map(|n| (n.clone(), s.slot(n))).unzip(),
                Select::Exclude(ex) => s
                    .names()
                    .iter()
                    .enumerate()
                    .filter(|(_, n)| !ex.contains(*n))
                    .map(|(i, n)| (n.clone(), Some(i)))
                    .unzip(),
            };
            self.cache = Some((s.clone(), Arc::new(Schema::new(names)), slots));
        }
        match &self.cache {
            Some((_, out, slots)) => (out, slots),
            None => unreachable!("cache was just filled"),
        }
    }

    /// The selected keys of a row, as a row of the projected schema.
    pub fn row(&mut self, r: &Row) -> Row {
        let (schema, slots) = self.plan(&r.schema);
        let values = slots
            .iter()
            .map(|s| {
                s.and_then(|i| r.values.get(i).cloned())
                    .unwrap_or(Value::Null)
            })
            .collect();
        Row::new(schema.clone(), values)
    }

    fn map(&self, m: &Map) -> Map {
        match &self.select {
            Select::All => m.clone(),
            Select::Fields(f) => f
                .iter()
                .map(|k| (k.clone(), m.get(k.as_ref()).cloned().unwrap_or(Value::Null)))
                .collect(),
            Select::Exclude(ex) => m
                .iter()
                .filter(|(k, _)| !ex.contains(*k))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        }
    }

    /// Selects keys of a row object or of each object of an array.
    pub fn value(&self, v: Value) -> Value {
        match (&self.select, v) {
            (Select::All, v) => v,
            (_, Value::Object(m)) => Value::Object(Arc::new(self.map(&m))),
            (_, Value::Array(a)) => Value::Array(Arc::new(
                a.iter()
                    .map(|x| match x {
                        Value::Object(m) => Value::Object(Arc::new(self.map(m))),
                        other => other.clone(),
                    })
                    .collect(),
            )),
            (_, other) => other,
        }
    }
}

/// The result of the map-based transforms (template and/or `dataField`).
pub enum Transformed {
    /// A template's text, used as the payload as it is.
    Text(String),
    /// A value to encode with the sink's format.
    Value(Value),
}

/// `dataTemplate` -> `dataField` -> `fields`/`excludeFields` on row maps.
pub struct ValueTransform {
    template: Option<Template>,
    data_field: Option<String>,
    pub projection: Projection,
}

impl ValueTransform {
    pub fn new(common: &SinkCommon, template: Option<Template>) -> ValueTransform {
        ValueTransform {
            template,
            data_field: (!common.data_field.is_empty()).then(|| common.data_field.clone()),
            projection: Projection::new(common),
        }
    }

    /// True when a row map is needed (a template or `dataField`).
    pub fn needs_maps(&self) -> bool {
        self.template.is_some() || self.data_field.is_some()
    }

    /// Applies the transforms to a row object or an array of row objects.
    pub fn apply(&self, v: Value) -> Result<Transformed, String> {
        let v = match &self.template {
            Some(t) => {
                let text = t.render(&v)?;
                if self.data_field.is_none() && self.projection.is_all() {
                    return Ok(Transformed::Text(text));
                }
                match serde_json::from_str::<serde_json::Value>(&text) {
                    Ok(j) => Value::from_json(&j),
                    Err(e) => {
                        return Err(format!(
                            "dataTemplate output is not JSON, which dataField/fields need: {e}"
                        ))
                    }
                }
            }
            None => v,
        };
        let v = match &self.data_field {
            Some(f) => pick_data_field(&v, f),
            None => v,
        };
        Ok(Transformed::Value(self.projection.value(v)))
    }
}

/// eKuiper's `dataField`: the field of a row object, or of the first row of
/// an array.
fn pick_data_field(v: &Value, field: &str) -> Value {
    let get = |m: &Map| m.get(field).cloned().unwrap_or(Value::Null);
    match v {
        Value::Object(m) => get(m),
        Value::Array(a) => match a.first() {
            Some(Value::Object(m)) => get(m),
            _ => Value::Null,
        },
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn common(v: serde_json::Value) -> SinkCommon {
        SinkCommon::from_props(v.as_object().unwrap()).unwrap()
    }

    fn row(schema: &Arc<Schema>, vals: &[i64]) -> Row {
        Row::new(
            schema.clone(),
            vals.iter().map(|v| Value::Int(*v)).collect(),
        )
    }

    #[test]
    fn projection_is_planned_once_per_schema() {
        let s = Arc::new(Schema::from_strs(&["a", "b", "c"]));
        let mut p = Projection::new(&common(serde_json::json!({"fields": ["c", "a", "z"]})));
        let r1 = p.row(&row(&s, &[1, 2, 3]));
        let r2 = p.row(&row(&s, &[4, 5, 6]));
        assert!(Arc::ptr_eq(&r1.schema, &r2.schema), "one output schema");
        assert!(r1.schema.same_names(&["c", "a", "z"]));
        assert_eq!(r2.values, vec![Value::Int(6), Value::Int(4), Value::Null]);
        // Another schema: a new plan.
        let s2 = Arc::new(Schema::from_strs(&["z"]));
        let r3 = p.row(&row(&s2, &[9]));
        assert_eq!(r3.values, vec![Value::Null, Value::Null, Value::Int(9)]);

        let mut p = Projection::new(&common(serde_json::json!({"excludeFields": "b"})));
        let r = p.row(&row(&s, &[1, 2, 3]));
        assert!(r.schema.same_names(&["a", "c"]));
        assert_eq!(r.values, vec![Value::Int(1), Value::Int(3)]);
    }

    #[test]
    fn template_comes_before_data_field_and_fields() {
        let c = common(serde_json::json!({
            "dataTemplate": r#"{"wrapped":{"x":{{.a}},"y":{{.b}}}}"#,
            "dataField": "wrapped",
            "fields": ["y"]
        }));
        let t = ValueTransform::new(&c, Some(Template::compile(&c.data_template).unwrap()));
        let v = Value::from_json(&serde_json::json!({"a": 1, "b": 2}));
        match t.apply(v).unwrap() {
            Transformed::Value(v) => assert_eq!(v.to_json(), serde_json::json!({"y": 2})),
            Transformed::Text(s) => panic!("text {s}"),
        }
        // A template alone: its text as is.
        let c = common(serde_json::json!({"dataTemplate": "a={{.a}}"}));
        let t = ValueTransform::new(&c, Some(Template::compile(&c.data_template).unwrap()));
        let v = Value::from_json(&serde_json::json!({"a": 1}));
        assert!(matches!(t.apply(v).unwrap(), Transformed::Text(s) if s == "a=1"));
        // Not JSON but fields must apply: an error, not a guess.
        let c = common(serde_json::json!({"dataTemplate": "a={{.a}}", "fields": ["a"]}));
        let t = ValueTransform::new(&c, Some(Template::compile(&c.data_template).unwrap()));
        let v = Value::from_json(&serde_json::json!({"a": 1}));
        assert!(t.apply(v).is_err());
    }

    #[test]
    fn data_field_of_an_array_reads_the_first_row() {
        let c = common(serde_json::json!({"dataField": "d"}));
        let t = ValueTransform::new(&c, None);
        let v = Value::from_json(&serde_json::json!([{"d": [{"k": 1}]}, {"d": 2}]));
        match t.apply(v).unwrap() {
            Transformed::Value(v) => assert_eq!(v.to_json(), serde_json::json!([{"k": 1}])),
            Transformed::Text(s) => panic!("text {s}"),
        }
    }
}
