//! [`PropTemplate`]: a sink property that may be a Go template (eKuiper's
//! dynamic properties), shared by native and WebAssembly sinks.

use std::borrow::Cow;
use std::sync::Arc;

use super::Template;
use crate::connector::ConnectorError;
use crate::value::Value;

/// A property that may be a Go template, such as `devices/{{.id}}` (eKuiper's
/// dynamic properties). A value with `{{` is compiled once, at sink creation,
/// by the one template engine ([`oort_core::template`]), so a bad template or
/// an unsupported form fails the rule naming the property; any other value is
/// a literal that costs nothing to "render".
///
/// eKuiper renders dynamic properties against the rule's result before
/// `dataField`, `fields` and `dataTemplate` apply: a row object with
/// `sendSingle`, else the array of row objects (then `{{index . 0 "id"}}`
/// reads the first row, and `{{.id}}` is an error, as in Go). Callers pass
/// [`oort_core::SinkItem::data`], which the runtime fills accordingly.
#[derive(Debug, Clone)]
pub struct PropTemplate {
    prop: Arc<str>,
    kind: PropKind,
}

#[derive(Debug, Clone)]
enum PropKind {
    Literal(String),
    Template(Arc<Template>),
}

impl PropTemplate {
    /// Parses `text`; `prop` names the property in error messages.
    pub fn parse(prop: &str, text: &str) -> Result<PropTemplate, ConnectorError> {
        let kind = if text.contains("{{") {
            let t = Template::parse(text).map_err(|e| {
                ConnectorError::Config(format!("property {prop}: invalid template {text:?}: {e}"))
            })?;
            match t.as_literal() {
                Some(l) => PropKind::Literal(l.to_string()),
                None => PropKind::Template(Arc::new(t)),
            }
        } else {
            PropKind::Literal(text.to_string())
        };
        Ok(PropTemplate {
            prop: Arc::from(prop),
            kind,
        })
    }

    /// The text when it has no template action.
    pub fn static_text(&self) -> Option<Cow<'_, str>> {
        match &self.kind {
            PropKind::Literal(s) => Some(Cow::Borrowed(s.as_str())),
            PropKind::Template(_) => None,
        }
    }

    /// Renders against the result row (an object, or an array of rows).
    /// A template that fails on this data (a field of a non-object, `index`
    /// out of range...) is [`ConnectorError::InvalidData`] naming the property.
    pub fn render(&self, data: &Value) -> Result<String, ConnectorError> {
        let mut out = String::new();
        self.render_into(data, &mut out)?;
        Ok(out)
    }

    /// [`PropTemplate::render`] appending to `out`.
    pub fn render_into(&self, data: &Value, out: &mut String) -> Result<(), ConnectorError> {
        match &self.kind {
            PropKind::Literal(s) => {
                out.push_str(s);
                Ok(())
            }
            PropKind::Template(t) => t
                .render_into(data, out)
                .map_err(|e| ConnectorError::InvalidData(format!("property {}: {e}", self.prop))),
        }
    }
}
