//! Walks the parsed tree against a value, with Go's `text/template` execution
//! rules: a missing map key is an invalid value (printed `<no value>`), a nil
//! interface met in a field chain is an error, pipeline results holding nil
//! are treated as invalid (Go's "dig into the interface"), variables are
//! scoped to the control structure that declared them.

use super::funcs::{self, Kind};
use super::helpers;
use super::parse::{Arg, Cmd, Node, Parsed, Pipe};
use crate::gofmt;
use crate::value::Value;

/// Template calls deeper than this fail (Go's limit is 100,000).
const MAX_DEPTH: usize = 1000;

pub(super) struct Exec<'t> {
    pub tpl: &'t Parsed,
    /// `$`: the data the template (or the called `{{template}}`) started with.
    pub root: Val,
    /// Variables in scope other than `$`, innermost last.
    pub vars: Vec<(&'t str, Option<Value>)>,
    pub depth: usize,
}

pub(super) enum Flow {
    Normal,
    Break,
    Continue,
}

/// The most one rendering may write (checked between nodes, so one node
/// may pass it by what a single print makes: printf bounds its widths).
pub(super) const MAX_OUTPUT: usize = 64 << 20;

/// A value as the evaluator sees it: `None` is Go's invalid value.
type Val = Option<Value>;

fn is_fast_json(pipe: &Pipe) -> bool {
    matches!(
        pipe.cmds.as_slice(),
        [Cmd::Call(f, args)] if (f.name == "json" || f.name == "toJson")
            && matches!(args.as_slice(), [Arg::Dot])
    ) && pipe.vars.is_empty()
}

impl<'t> Exec<'t> {
    pub fn walk(&mut self, out: &mut String, dot: &Val, nodes: &'t [Node]) -> Result<Flow, String> {
        for n in nodes {
            if out.len() > MAX_OUTPUT {
                return Err(format!("template output exceeds {} MiB", MAX_OUTPUT >> 20));
            }
            match n {
                Node::Text(t) => out.push_str(t),
                Node::Action(pipe) => {
                    if is_fast_json(pipe) {
                        helpers::write_json(out, dot.as_ref().unwrap_or(&Value::Null));
                        continue;
                    }
                    let v = self.pipe(dot, pipe)?;
                    if pipe.vars.is_empty() {
                        print(out, &v);
                    }
                }
                Node::If { pipe, then, els } => {
                    let mark = self.vars.len();
                    let v = self.pipe(dot, pipe)?;
                    let branch = if v.as_ref().is_some_and(funcs::truth) {
                        then
                    } else {
                        els
                    };
                    let flow = self.walk(out, dot, branch)?;
                    self.vars.truncate(mark);
                    if !matches!(flow, Flow::Normal) {
                        return Ok(flow);
                    }
                }
                Node::With { pipe, body, els } => {
                    let mark = self.vars.len();
                    let v = self.pipe(dot, pipe)?;
                    let flow = if v.as_ref().is_some_and(funcs::truth) {
                        self.walk(out, &v, body)?
                    } else {
                        self.walk(out, dot, els)?
                    };
                    self.vars.truncate(mark);
                    if !matches!(flow, Flow::Normal) {
                        return Ok(flow);
                    }
                }
                Node::Range { pipe, body, els } => {
                    let flow = self.range(out, dot, pipe, body, els)?;
                    if !matches!(flow, Flow::Normal) {
                        return Ok(flow);
                    }
                }
                Node::Call { name, pipe } => {
                    let Some(body) = self.tpl.defines.get(name) else {
                        return Err(format!("no such template {name:?}"));
                    };
                    if self.depth >= MAX_DEPTH {
                        return Err(format!("exceeded maximum template depth ({MAX_DEPTH})"));
                    }
                    let new_dot = match pipe {
                        Some(p) => self.pipe(dot, p)?,
                        None => None,
                    };
                    // A called template sees only `$` (its own dot).
                    let saved = std::mem::take(&mut self.vars);
                    let saved_root = std::mem::replace(&mut self.root, new_dot.clone());
                    self.depth += 1;
                    let r = self.walk(out, &new_dot, body);
                    self.depth -= 1;
                    self.vars = saved;
                    self.root = saved_root;
                    r?;
                }
                Node::Break => return Ok(Flow::Break),
                Node::Continue => return Ok(Flow::Continue),
            }
        }
        Ok(Flow::Normal)
    }

    fn range(
        &mut self,
        out: &mut String,
        dot: &Val,
        pipe: &'t Pipe,
        body: &'t [Node],
        els: &'t [Node],
    ) -> Result<Flow, String> {
        let mark = self.vars.len();
        let v = self.cmds(dot, pipe)?;
        let mut ran = false;
        let mut each =
            |this: &mut Self, out: &mut String, k: Value, e: Value| -> Result<bool, String> {
                ran = true;
                match (pipe.vars.as_slice(), pipe.assign) {
                    ([], _) => {}
                    ([v], false) => this.vars.push((v, Some(e.clone()))),
                    ([i, v], false) => {
                        this.vars.push((i, Some(k)));
                        this.vars.push((v, Some(e.clone())));
                    }
                    ([v], true) => this.set(v, Some(e.clone())),
                    ([i, v], true) => {
                        this.set(i, Some(k));
                        this.set(v, Some(e.clone()));
                    }
                    _ => {}
                }
                let flow = this.walk(out, &Some(e), body)?;
                this.vars.truncate(mark);
                Ok(!matches!(flow, Flow::Break))
            };
        match &v {
            Some(Value::Array(a)) => {
                for (i, e) in a.iter().enumerate() {
                    if !each(self, out, Value::Int(i as i64), e.clone())? {
                        break;
                    }
                }
            }
            Some(Value::Object(m)) => {
                for (k, e) in m.iter() {
                    if !each(self, out, Value::Str(k.clone()), e.clone())? {
                        break;
                    }
                }
            }
            None | Some(Value::Null) => {}
            Some(other) => {
                let mut s = String::new();
                gofmt::write_v(&mut s, other);
                return Err(format!("range can't iterate over {s}"));
            }
        }
        if !ran {
            let flow = self.walk(out, dot, els)?;
            self.vars.truncate(mark);
            return Ok(flow);
        }
        Ok(Flow::Normal)
    }

    fn set(&mut self, name: &str, v: Val) {
        if let Some(slot) = self.vars.iter_mut().rev().find(|(n, _)| *n == name) {
            slot.1 = v;
        }
    }

    /// Evaluates a pipeline and binds its variables.
    fn pipe(&mut self, dot: &Val, pipe: &'t Pipe) -> Result<Val, String> {
        let v = self.cmds(dot, pipe)?;
        for name in &pipe.vars {
            if pipe.assign {
                self.set(name, v.clone());
            } else {
                self.vars.push((name, v.clone()));
            }
        }
        Ok(v)
    }

    /// Evaluates a pipeline's commands (a nil result becomes invalid).
    fn cmds(&mut self, dot: &Val, pipe: &'t Pipe) -> Result<Val, String> {
        let mut last: Option<Val> = None;
        for cmd in &pipe.cmds {
            let v = match cmd {
                Cmd::Operand(a) => self.arg(dot, a)?,
                Cmd::Call(f, args) => self.call(dot, f, args, last.take())?,
            };
            last = Some(match v {
                Some(Value::Null) => None,
                v => v,
            });
        }
        Ok(last.flatten())
    }

    fn call(
        &mut self,
        dot: &Val,
        f: &funcs::FuncDef,
        args: &'t [Arg],
        piped: Option<Val>,
    ) -> Result<Val, String> {
        match f.kind {
            Kind::And | Kind::Or => {
                let want = matches!(f.kind, Kind::Or);
                let mut v: Val = None;
                for a in args {
                    v = self.arg(dot, a)?;
                    if v.as_ref().is_some_and(funcs::truth) == want {
                        return Ok(v);
                    }
                }
                if let Some(p) = piped {
                    v = p;
                }
                Ok(v)
            }
            Kind::Plain(func) => {
                let mut vals = Vec::with_capacity(args.len() + 1);
                for a in args {
                    vals.push(self.arg(dot, a)?.unwrap_or(Value::Null));
                }
                if let Some(p) = piped {
                    vals.push(p.unwrap_or(Value::Null));
                }
                func(&vals).map(Some).map_err(|e| {
                    if e.starts_with("error calling") || e.starts_with(f.name) {
                        e
                    } else {
                        format!("error calling {}: {e}", f.name)
                    }
                })
            }
        }
    }

    fn arg(&mut self, dot: &Val, a: &'t Arg) -> Result<Val, String> {
        match a {
            Arg::Dot => Ok(dot.clone()),
            Arg::Nil => Ok(Some(Value::Null)),
            Arg::Lit(v) => Ok(Some(v.clone())),
            Arg::Field(path) => chain(dot.as_ref(), path),
            Arg::Var(name, path) => {
                let v = if name == "$" {
                    self.root.as_ref()
                } else {
                    self.vars
                        .iter()
                        .rev()
                        .find(|(n, _)| *n == name.as_str())
                        .map(|(_, v)| v.as_ref())
                        .ok_or_else(|| format!("undefined variable: {name}"))?
                };
                chain(v, path)
            }
            Arg::Sub(pipe, path) => {
                let v = self.cmds(dot, pipe)?;
                chain(v.as_ref(), path)
            }
            Arg::Func(f) => self.call(dot, f, &[], None),
        }
    }
}

/// `.a.b.c` from `v`: a missing key gives invalid; a field of invalid is
/// invalid; a field of nil or of a non-map is an error.
fn chain(mut v: Option<&Value>, path: &[String]) -> Result<Val, String> {
    for name in path {
        v = match v {
            None => None,
            Some(Value::Object(m)) => m.get(name.as_str()),
            Some(Value::Null) => {
                return Err(format!("nil pointer evaluating interface {{}}.{name}"))
            }
            Some(other) => {
                return Err(format!(
                    "can't evaluate field {name} in type {}",
                    gofmt::type_name(other)
                ))
            }
        };
    }
    Ok(v.cloned())
}

fn print(out: &mut String, v: &Val) {
    match v {
        None | Some(Value::Null) => out.push_str("<no value>"),
        Some(Value::Str(s)) => out.push_str(s),
        Some(v) => gofmt::write_v(out, v),
    }
}

/// Runs `tpl` on `data`, appending to `out`.
pub(super) fn run(tpl: &Parsed, data: &Value, out: &mut String) -> Result<(), String> {
    let dot = Some(data.clone());
    let mut ex = Exec {
        tpl,
        root: dot.clone(),
        vars: Vec::new(),
        depth: 0,
    };
    ex.walk(out, &dot, &tpl.root).map(|_| ())
}
