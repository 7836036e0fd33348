//! Builds the syntax tree of a Go template from its tokens, with the checks Go
//! makes when parsing (undefined variables and functions, misplaced `else`,
//! `end`, `break`...) plus ours: a form we do not support is refused here,
//! naming it, so no template is ever silently wrong at run time.

use std::collections::HashMap;

use super::funcs::{self, Func};
use super::lex::{Tok, Token};
use super::TemplateError;
use crate::value::Value;

#[derive(Debug)]
pub(super) enum Node {
    Text(String),
    /// `{{pipeline}}`: printed unless it declares or assigns variables.
    Action(Pipe),
    If {
        pipe: Pipe,
        then: Vec<Node>,
        els: Vec<Node>,
    },
    Range {
        pipe: Pipe,
        body: Vec<Node>,
        els: Vec<Node>,
    },
    With {
        pipe: Pipe,
        body: Vec<Node>,
        els: Vec<Node>,
    },
    /// `{{template "name" pipeline}}`.
    Call {
        name: String,
        pipe: Option<Pipe>,
    },
    Break,
    Continue,
}

#[derive(Debug)]
pub(super) struct Pipe {
    /// Variables declared (`:=`) or assigned (`=`) by the pipeline.
    pub vars: Vec<String>,
    pub assign: bool,
    pub cmds: Vec<Cmd>,
}

#[derive(Debug)]
pub(super) enum Cmd {
    /// A function call: the function and its arguments.
    Call(Func, Vec<Arg>),
    /// A single operand.
    Operand(Arg),
}

#[derive(Debug)]
pub(super) enum Arg {
    Dot,
    Nil,
    Lit(Value),
    /// `.a.b` on dot.
    Field(Vec<String>),
    /// `$x.a.b`.
    Var(String, Vec<String>),
    /// `(pipeline).a.b`.
    Sub(Box<Pipe>, Vec<String>),
    /// A niladic function used as an operand (`{{list}}`).
    Func(Func),
}

pub(super) struct Parsed {
    pub root: Vec<Node>,
    pub defines: HashMap<String, Vec<Node>>,
}

pub(super) fn parse(tokens: Vec<Token>) -> Result<Parsed, TemplateError> {
    let mut p = Parser {
        toks: tokens,
        pos: 0,
        vars: vec!["$".to_string()],
        range_depth: 0,
        nesting: 0,
        defines: HashMap::new(),
    };
    let (root, end) = p.list()?;
    match end {
        Stop::Eof => {}
        other => return Err(TemplateError(format!("unexpected {}", other.name()))),
    }
    Ok(Parsed {
        root,
        defines: p.defines,
    })
}

struct Parser {
    toks: Vec<Token>,
    pos: usize,
    /// Variables in scope (compile-time check of `$x`).
    vars: Vec<String>,
    range_depth: usize,
    /// Control structures and definitions around the current position:
    /// `{{define}}` is only allowed at the top level, as in Go.
    nesting: usize,
    defines: HashMap<String, Vec<Node>>,
}

/// What ended a list of nodes.
enum Stop {
    Eof,
    End,
    Else,
    /// `{{else if pipeline}}` / `{{else with pipeline}}`: the keyword.
    ElseIf(String),
}

impl Stop {
    fn name(&self) -> &'static str {
        match self {
            Stop::Eof => "end of template",
            Stop::End => "{{end}}",
            Stop::Else | Stop::ElseIf(_) => "{{else}}",
        }
    }
}

fn err<T>(msg: impl Into<String>) -> Result<T, TemplateError> {
    Err(TemplateError(msg.into()))
}

impl Parser {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.pos).map(|t| &t.tok)
    }

    fn peek_spaced(&self) -> bool {
        self.toks.get(self.pos).is_some_and(|t| t.spaced)
    }

    fn next(&mut self) -> Option<Tok> {
        let t = self.toks.get(self.pos).map(|t| t.tok.clone());
        self.pos += 1;
        t
    }

    fn expect_close(&mut self, what: &str) -> Result<(), TemplateError> {
        match self.next() {
            Some(Tok::Close) => Ok(()),
            _ => err(format!("unexpected token in {what}; expected }}}}")),
        }
    }

    /// Parses nodes until `{{end}}`, `{{else...}}` or the end of input.
    fn list(&mut self) -> Result<(Vec<Node>, Stop), TemplateError> {
        let mut nodes = Vec::new();
        loop {
            match self.next() {
                None => return Ok((nodes, Stop::Eof)),
                Some(Tok::Text(t)) => nodes.push(Node::Text(t)),
                Some(Tok::Open) => {
                    if let Some(end) = self.action(&mut nodes)? {
                        return Ok((nodes, end));
                    }
                }
                Some(other) => return err(format!("unexpected {other:?}")),
            }
        }
    }

    /// One `{{...}}` after its opening; returns an `End` for end/else.
    fn action(&mut self, nodes: &mut Vec<Node>) -> Result<Option<Stop>, TemplateError> {
        if let Some(Tok::Ident(kw)) = self.peek() {
            let kw = kw.clone();
            match kw.as_str() {
                "end" => {
                    self.pos += 1;
                    self.expect_close("end")?;
                    return Ok(Some(Stop::End));
                }
                "else" => {
                    self.pos += 1;
                    if let Some(Tok::Ident(k)) = self.peek() {
                        let k = k.clone();
                        if k == "if" || k == "with" {
                            self.pos += 1;
                            return Ok(Some(Stop::ElseIf(k)));
                        }
                    }
                    self.expect_close("else")?;
                    return Ok(Some(Stop::Else));
                }
                "if" | "range" | "with" => {
                    self.pos += 1;
                    nodes.push(self.control(&kw)?);
                    return Ok(None);
                }
                "define" => {
                    if self.nesting > 0 {
                        return err("{{define}} is only allowed at the top level");
                    }
                    self.pos += 1;
                    self.define(false)?;
                    return Ok(None);
                }
                "block" => {
                    self.pos += 1;
                    let (name, pipe) = self.define(true)?;
                    nodes.push(Node::Call { name, pipe });
                    return Ok(None);
                }
                "template" => {
                    self.pos += 1;
                    let name = self.template_name("template")?;
                    let pipe = if self.peek() == Some(&Tok::Close) {
                        None
                    } else {
                        Some(self.pipeline("template", false)?)
                    };
                    self.expect_close("template")?;
                    nodes.push(Node::Call { name, pipe });
                    return Ok(None);
                }
                "break" | "continue" => {
                    self.pos += 1;
                    if self.range_depth == 0 {
                        return err(format!("{{{{{kw}}}}} outside {{{{range}}}}"));
                    }
                    self.expect_close(&kw)?;
                    nodes.push(if kw == "break" {
                        Node::Break
                    } else {
                        Node::Continue
                    });
                    return Ok(None);
                }
                _ => {}
            }
        }
        let pipe = self.pipeline("command", true)?;
        self.expect_close("command")?;
        nodes.push(Node::Action(pipe));
        Ok(None)
    }

    fn template_name(&mut self, ctx: &str) -> Result<String, TemplateError> {
        match self.next() {
            Some(Tok::Str(s)) => Ok(s),
            _ => err(format!(
                "unexpected name in {ctx}; expected a quoted string"
            )),
        }
    }

    /// `{{define "name"}}...{{end}}`, or a `block` (which also calls it).
    fn define(&mut self, block: bool) -> Result<(String, Option<Pipe>), TemplateError> {
        let ctx = if block { "block" } else { "define" };
        let name = self.template_name(ctx)?;
        let pipe = if block {
            Some(self.pipeline(ctx, false)?)
        } else {
            None
        };
        self.expect_close(ctx)?;
        // A template body has its own variables: only `$`.
        let saved_vars = std::mem::replace(&mut self.vars, vec!["$".to_string()]);
        let saved_range = std::mem::replace(&mut self.range_depth, 0);
        self.nesting += 1;
        let res = self.list();
        self.nesting -= 1;
        // Restored before the error check: the caller's state must be whole
        // even when the body fails (a range around us counts on it).
        self.vars = saved_vars;
        self.range_depth = saved_range;
        let (body, end) = res?;
        if !matches!(end, Stop::End) {
            return err(format!("unexpected {} in {ctx}", end.name()));
        }
        if self.defines.insert(name.clone(), body).is_some() {
            return err(format!("template {name:?} is defined twice"));
        }
        Ok((name, pipe))
    }

    fn control(&mut self, kw: &str) -> Result<Node, TemplateError> {
        let mark = self.vars.len();
        let pipe = self.pipeline(kw, false)?;
        if kw == "range" && pipe.vars.len() > 2 {
            return err("too many declarations in range");
        }
        if kw != "range" && pipe.vars.len() > 1 {
            return err(format!("too many declarations in {kw}"));
        }
        self.expect_close(kw)?;
        if kw == "range" {
            self.range_depth += 1;
        }
        self.nesting += 1;
        let res = self.list();
        self.nesting -= 1;
        if kw == "range" {
            self.range_depth -= 1;
        }
        let (body, end) = res?;
        let els = match end {
            Stop::End => Vec::new(),
            Stop::Else => {
                self.nesting += 1;
                let res = self.list();
                self.nesting -= 1;
                let (els, end2) = res?;
                if !matches!(end2, Stop::End) {
                    return err(format!(
                        "expected {{{{end}}}} in {kw}, found {}",
                        end2.name()
                    ));
                }
                els
            }
            Stop::ElseIf(k) => {
                if k != kw || kw == "range" {
                    return err(format!(
                        "{{{{else {k}}}}} inside {{{{{kw}}}}} is not supported"
                    ));
                }
                if k == "with" {
                    return err("{{else with}} is not supported (Go 1.23 syntax)");
                }
                // `{{else if p}}...{{end}}` is `{{else}}{{if p}}...{{end}}{{end}}`.
                vec![self.control(&k)?]
            }
            Stop::Eof => return err(format!("unexpected end of template in {{{{{kw}}}}}")),
        };
        self.vars.truncate(mark);
        Ok(match kw {
            "if" => Node::If {
                pipe,
                then: body,
                els,
            },
            "range" => Node::Range { pipe, body, els },
            _ => Node::With { pipe, body, els },
        })
    }

    /// A pipeline with optional declarations, up to (not including) `}}` or `)`.
    fn pipeline(&mut self, ctx: &str, allow_assign: bool) -> Result<Pipe, TemplateError> {
        let mut vars = Vec::new();
        let mut assign = false;
        // `$x :=`, `$x =`, `$i, $v :=` (range).
        if let Some(Tok::Var(_)) = self.peek() {
            let save = self.pos;
            let mut names = Vec::new();
            while let Some(Tok::Var(v)) = self.next() {
                if v == "$" && matches!(self.peek(), Some(Tok::Declare | Tok::Assign | Tok::Comma))
                {
                    return err("declaring or assigning $ is not supported");
                }
                names.push(v);
                match self.peek() {
                    Some(Tok::Comma) if ctx == "range" && names.len() < 2 => {
                        self.pos += 1;
                        continue;
                    }
                    Some(Tok::Declare) => {
                        self.pos += 1;
                        vars = names;
                        break;
                    }
                    Some(Tok::Assign) => {
                        if !allow_assign && ctx != "range" && ctx != "if" && ctx != "with" {
                            return err(format!("variable assignment in {ctx} is not allowed"));
                        }
                        self.pos += 1;
                        for n in &names {
                            if !self.vars.contains(n) {
                                return err(format!("undefined variable {n:?}"));
                            }
                        }
                        vars = names;
                        assign = true;
                        break;
                    }
                    _ => break,
                }
            }
            if vars.is_empty() {
                self.pos = save;
            }
        }
        let mut cmds = Vec::new();
        loop {
            let stage = cmds.len();
            cmds.push(self.command(stage)?);
            match self.peek() {
                Some(Tok::Pipe) => {
                    self.pos += 1;
                }
                Some(Tok::Close) | Some(Tok::RParen) => break,
                Some(t) => return err(format!("unexpected {t:?} in {ctx}")),
                None => return err(format!("unclosed action in {ctx}")),
            }
        }
        if !assign {
            self.vars.extend(vars.iter().cloned());
        }
        Ok(Pipe { vars, assign, cmds })
    }

    /// One command of a pipeline; `stage` > 0 receives the previous result.
    fn command(&mut self, stage: usize) -> Result<Cmd, TemplateError> {
        let mut args = Vec::new();
        loop {
            match self.peek() {
                Some(Tok::Pipe) | Some(Tok::Close) | Some(Tok::RParen) | None => break,
                _ => {}
            }
            if !args.is_empty() && !self.peek_spaced() && !matches!(self.peek(), Some(Tok::LParen))
            {
                return err("missing space between operands");
            }
            args.push(self.operand()?);
        }
        let piped = usize::from(stage > 0);
        match args.len() {
            0 => err("missing value for command"),
            _ => {
                let first = args.remove(0);
                // A function as an argument is called with no arguments.
                for a in &args {
                    if let Arg::Func(f) = a {
                        funcs::check_arity(f, 0)?;
                    }
                }
                match first {
                    Arg::Func(f) => {
                        funcs::check_arity(f, args.len() + piped)?;
                        Ok(Cmd::Call(f, args))
                    }
                    other if args.is_empty() && piped == 0 => {
                        if matches!(other, Arg::Nil) {
                            return err("nil is not a command");
                        }
                        Ok(Cmd::Operand(other))
                    }
                    other => err(format!(
                        "{} is not a function: it cannot take arguments{}",
                        describe(&other),
                        if piped > 0 { " or a piped value" } else { "" }
                    )),
                }
            }
        }
    }

    fn operand(&mut self) -> Result<Arg, TemplateError> {
        let term = match self.next() {
            Some(Tok::Dot) => Arg::Dot,
            Some(Tok::Field(f)) => Arg::Field(vec![f]),
            Some(Tok::Var(v)) => {
                if !self.vars.contains(&v) {
                    return err(format!("undefined variable {v:?}"));
                }
                Arg::Var(v, Vec::new())
            }
            Some(Tok::Str(s)) => Arg::Lit(Value::str(&s)),
            Some(Tok::Num(n)) => Arg::Lit(n),
            Some(Tok::LParen) => {
                let p = self.pipeline("parenthesized pipeline", false)?;
                match self.next() {
                    Some(Tok::RParen) => {}
                    _ => return err("unclosed left paren"),
                }
                Arg::Sub(Box::new(p), Vec::new())
            }
            Some(Tok::Ident(id)) => match id.as_str() {
                "true" => Arg::Lit(Value::Bool(true)),
                "false" => Arg::Lit(Value::Bool(false)),
                "nil" => Arg::Nil,
                name => match funcs::lookup(name)? {
                    Some(f) => Arg::Func(f),
                    None => return err(format!("function {name:?} not defined")),
                },
            },
            Some(t) => return err(format!("unexpected {t:?} in operand")),
            None => return err("unclosed action"),
        };
        // Field chains glued to the term: `.a.b`, `$x.a`, `(p).a`.
        let mut term = term;
        while let Some(Tok::Field(_)) = self.peek() {
            if self.peek_spaced() {
                break;
            }
            let Some(Tok::Field(f)) = self.next() else {
                break;
            };
            match &mut term {
                Arg::Field(path) | Arg::Var(_, path) | Arg::Sub(_, path) => path.push(f),
                Arg::Dot => term = Arg::Field(vec![f]),
                other => {
                    return err(format!(
                        "unexpected .{f} after {}: fields need a map",
                        describe(other)
                    ))
                }
            }
        }
        Ok(term)
    }
}

fn describe(a: &Arg) -> String {
    match a {
        Arg::Dot => ".".into(),
        Arg::Nil => "nil".into(),
        Arg::Lit(v) => format!("constant {v}"),
        Arg::Field(p) => format!(".{}", p.join(".")),
        Arg::Var(v, p) if p.is_empty() => v.clone(),
        Arg::Var(v, p) => format!("{v}.{}", p.join(".")),
        Arg::Sub(..) => "a parenthesized pipeline".into(),
        Arg::Func(f) => f.name().into(),
    }
}
