//! `dataTemplate`: the Go `text/template` forms eKuiper users write,
//! translated to Handlebars. The API (`Template::compile`, `Template::render`)
//! is what the sink pipeline uses; the Go-template engine being written as
//! `oort_core::template::Template` will replace the body of this module.

use oort_core::{ConnectorError, Value};

/// A compiled `dataTemplate` (Go template syntax translated to Handlebars).
pub struct Template {
    hb: handlebars::Handlebars<'static>,
}

impl Template {
    pub fn compile(go_template: &str) -> Result<Template, ConnectorError> {
        let mut hb = handlebars::Handlebars::new();
        hb.register_escape_fn(handlebars::no_escape);
        hb.register_helper("json", Box::new(json_helper));
        hb.register_template_string("t", translate_go_template(go_template))
            .map_err(|e| ConnectorError::config(format!("invalid dataTemplate: {e}")))?;
        Ok(Template { hb })
    }

    pub fn render(&self, data: &Value) -> Result<String, String> {
        self.hb
            .render("t", &data.to_json())
            .map_err(|e| format!("dataTemplate: {e}"))
    }
}

fn json_helper(
    h: &handlebars::Helper,
    _: &handlebars::Handlebars,
    _: &handlebars::Context,
    _: &mut handlebars::RenderContext,
    out: &mut dyn handlebars::Output,
) -> handlebars::HelperResult {
    let v = h
        .param(0)
        .map(|p| p.value().to_string())
        .unwrap_or_default();
    out.write(&v)?;
    Ok(())
}

/// Translates the common Go `text/template` forms eKuiper users write into
/// Handlebars: `{{.a}}` -> `{{a}}`, `{{.a.b}}` -> `{{a.b}}`, `{{.}}` -> `{{this}}`,
/// `{{json .}}` -> `{{json this}}`, `{{index . 0 "a"}}` -> `{{this.[0].a}}`.
pub fn translate_go_template(t: &str) -> String {
    let mut out = String::with_capacity(t.len());
    let mut rest = t;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find("}}") else {
            out.push_str(&rest[start..]);
            return out;
        };
        let inner = after[..end]
            .trim()
            .trim_start_matches('-')
            .trim_end_matches('-')
            .trim();
        out.push_str("{{");
        out.push_str(&translate_action(inner));
        out.push_str("}}");
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    out
}

fn translate_action(inner: &str) -> String {
    let words: Vec<&str> = inner.split_whitespace().collect();
    if words.first() == Some(&"index") && words.len() >= 3 {
        let mut path = String::from("this");
        for w in &words[2..] {
            let w = w.trim_matches('"');
            if w.chars().all(|c| c.is_ascii_digit()) {
                path.push_str(&format!(".[{w}]"));
            } else {
                path.push('.');
                path.push_str(w);
            }
        }
        return path;
    }
    words
        .iter()
        .map(|w| {
            if *w == "." {
                "this".to_string()
            } else if let Some(p) = w.strip_prefix('.') {
                p.to_string()
            } else {
                w.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_templates_translate() {
        assert_eq!(translate_go_template("{{.a}}-{{ .b.c }}"), "{{a}}-{{b.c}}");
        assert_eq!(translate_go_template("{{json .}}"), "{{json this}}");
        assert_eq!(
            translate_go_template(r#"{{index . 0 "topic"}}"#),
            "{{this.[0].topic}}"
        );
        let t = Template::compile(r#"{"v":{{.a}},"t":"{{.name}}"}"#).unwrap();
        let data = Value::from_json(&serde_json::json!({"a": 1, "name": "x"}));
        assert_eq!(t.render(&data).unwrap(), r#"{"v":1,"t":"x"}"#);
    }
}
