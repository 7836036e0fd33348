//! Expression grammar: literals, columns, nested access (`a->b`, `a.b`,
//! `arr[i]`, `arr[a:b]`), operators with eKuiper's precedence, `[NOT]
//! BETWEEN/LIKE/IN`, `IS [NOT] NULL`, `CASE`, and function calls with their
//! optional `FILTER (WHERE ...)` and `OVER (PARTITION BY ... WHEN ...)`.
//!
//! Precedence, loosest first: `OR`; `AND`; prefix `NOT`; comparisons, `LIKE`,
//! `IN`, `BETWEEN`, `IS`; `+ - | ^`; `* / % &`; unary `-`; postfix access.

use sqlparser::tokenizer::Token;

use super::cursor::{is_kw, is_reserved, Cursor, PResult};
use super::window::is_window_function;
use crate::ast::{BinaryOp, Expr, Literal, Over, UnaryOp};

const PREC_OR: u8 = 1;
const PREC_AND: u8 = 2;
const PREC_NOT: u8 = 3;
const PREC_CMP: u8 = 4;
const PREC_ADD: u8 = 5;
const PREC_MUL: u8 = 6;
const PREC_UNARY: u8 = 7;

/// What an infix position holds.
enum Infix {
    Binary(BinaryOp),
    /// `[NOT] IN`, `[NOT] LIKE`, `[NOT] BETWEEN`; the flag is NOT.
    In(bool),
    Like(bool),
    Between(bool),
    Is,
}

impl Cursor {
    /// A full expression.
    pub(crate) fn parse_expr(&mut self) -> PResult<Expr> {
        let start = self.pos();
        let e = self.parse_prec(PREC_OR)?;
        self.check_height(e.depth(), start)?;
        Ok(e)
    }

    /// An expression whose operators all bind at least as tightly as `min`.
    fn parse_prec(&mut self, min: u8) -> PResult<Expr> {
        self.enter()?;
        let r = self.parse_prec_inner(min);
        self.leave();
        r
    }

    fn parse_prec_inner(&mut self, min: u8) -> PResult<Expr> {
        let start = self.pos();
        let mut lhs = self.parse_prefix()?;
        let mut height = lhs.depth();
        while let Some((infix, prec, width)) = self.peek_infix() {
            if prec < min {
                break;
            }
            for _ in 0..width {
                self.next();
            }
            lhs = match infix {
                Infix::Binary(op) => {
                    let rhs = self.parse_prec(prec + 1)?;
                    Expr::Binary {
                        op,
                        left: Box::new(lhs),
                        right: Box::new(rhs),
                    }
                }
                Infix::Like(negated) => {
                    let pattern = self.parse_prec(PREC_ADD)?;
                    Expr::Like {
                        expr: Box::new(lhs),
                        pattern: Box::new(pattern),
                        negated,
                    }
                }
                Infix::Between(negated) => {
                    let low = self.parse_prec(PREC_ADD)?;
                    self.expect_kw("AND", "AND in BETWEEN expression")?;
                    let high = self.parse_prec(PREC_ADD)?;
                    Expr::Between {
                        expr: Box::new(lhs),
                        low: Box::new(low),
                        high: Box::new(high),
                        negated,
                    }
                }
                Infix::In(negated) => {
                    let list = self.parse_in_list()?;
                    Expr::InList {
                        expr: Box::new(lhs),
                        list,
                        negated,
                    }
                }
                Infix::Is => {
                    let negated = self.eat_kw("NOT");
                    self.expect_kw("NULL", "NULL after IS")?;
                    Expr::IsNull {
                        expr: Box::new(lhs),
                        negated,
                    }
                }
            };
            // The chain is built iteratively; bound the tree it makes.
            height = self.height_after(height, &lhs, start)?;
        }
        Ok(lhs)
    }

    /// The operator at the cursor, its precedence and how many tokens it spans.
    fn peek_infix(&self) -> Option<(Infix, u8, usize)> {
        use BinaryOp::*;
        let bin = |op, prec| Some((Infix::Binary(op), prec, 1));
        match self.peek() {
            Token::Eq | Token::DoubleEq => bin(Eq, PREC_CMP),
            Token::Neq => bin(NotEq, PREC_CMP),
            Token::Lt => bin(Lt, PREC_CMP),
            Token::LtEq => bin(LtEq, PREC_CMP),
            Token::Gt => bin(Gt, PREC_CMP),
            Token::GtEq => bin(GtEq, PREC_CMP),
            Token::Plus => bin(Add, PREC_ADD),
            Token::Minus => bin(Sub, PREC_ADD),
            Token::Pipe => bin(BitOr, PREC_ADD),
            Token::Caret => bin(BitXor, PREC_ADD),
            Token::Mul => bin(Mul, PREC_MUL),
            Token::Div => bin(Div, PREC_MUL),
            Token::Mod => bin(Mod, PREC_MUL),
            Token::Ampersand => bin(BitAnd, PREC_MUL),
            t if is_kw(t, "OR") => bin(Or, PREC_OR),
            t if is_kw(t, "AND") => bin(And, PREC_AND),
            t if is_kw(t, "IN") => Some((Infix::In(false), PREC_CMP, 1)),
            t if is_kw(t, "LIKE") => Some((Infix::Like(false), PREC_CMP, 1)),
            t if is_kw(t, "BETWEEN") => Some((Infix::Between(false), PREC_CMP, 1)),
            t if is_kw(t, "IS") => Some((Infix::Is, PREC_CMP, 1)),
            t if is_kw(t, "NOT") => {
                let next = self.peek_nth(1);
                if is_kw(next, "IN") {
                    Some((Infix::In(true), PREC_CMP, 2))
                } else if is_kw(next, "LIKE") {
                    Some((Infix::Like(true), PREC_CMP, 2))
                } else if is_kw(next, "BETWEEN") {
                    Some((Infix::Between(true), PREC_CMP, 2))
                } else {
                    None
                }
            }
            _ => None,
        }
    }

    /// After `IN`: `(e, ...)` or a single (array) expression.
    fn parse_in_list(&mut self) -> PResult<Vec<Expr>> {
        if !self.eat(&Token::LParen) {
            return Ok(vec![self.parse_prec(PREC_UNARY)?]);
        }
        let mut list = Vec::new();
        loop {
            list.push(self.parse_expr()?);
            if self.eat(&Token::Comma) {
                continue;
            }
            self.expect(&Token::RParen, "\",\" or \")\" in IN list")?;
            return Ok(list);
        }
    }

    /// Prefix operators and primaries, followed by postfix access.
    fn parse_prefix(&mut self) -> PResult<Expr> {
        match self.peek().clone() {
            Token::Minus => {
                self.next();
                if let Token::Number(n, _) = self.peek().clone() {
                    let pos = self.pos();
                    self.next();
                    let lit = number_literal(&format!("-{n}"))
                        .ok_or_else(|| self.error_at(format!("invalid number -{n}"), pos))?;
                    return self.parse_postfix(Expr::Literal(lit));
                }
                let e = self.parse_prec(PREC_UNARY)?;
                Ok(Expr::Unary {
                    op: UnaryOp::Neg,
                    expr: Box::new(e),
                })
            }
            Token::Plus => {
                self.next();
                self.parse_prec(PREC_UNARY)
            }
            t if is_kw(&t, "NOT") => {
                self.next();
                let e = self.parse_prec(PREC_NOT)?;
                Ok(Expr::Unary {
                    op: UnaryOp::Not,
                    expr: Box::new(e),
                })
            }
            _ => {
                let e = self.parse_primary()?;
                self.parse_postfix(e)
            }
        }
    }

    fn parse_primary(&mut self) -> PResult<Expr> {
        let pos = self.pos();
        match self.peek().clone() {
            Token::LParen => {
                self.next();
                let e = self.parse_expr()?;
                self.expect(&Token::RParen, "right paren")?;
                Ok(e)
            }
            Token::Number(n, _) => {
                self.next();
                let lit = number_literal(&n)
                    .ok_or_else(|| self.error_at(format!("invalid number {n}"), pos))?;
                Ok(Expr::Literal(lit))
            }
            Token::SingleQuotedString(s) | Token::DoubleQuotedString(s) => {
                self.next();
                Ok(Expr::Literal(Literal::Str(s)))
            }
            Token::Word(w) if w.quote_style.is_some() => {
                self.next();
                Ok(Expr::Column {
                    qualifier: None,
                    name: w.value,
                })
            }
            Token::Word(w) => {
                let upper = w.value.to_ascii_uppercase();
                match upper.as_str() {
                    "TRUE" => {
                        self.next();
                        Ok(Expr::Literal(Literal::Bool(true)))
                    }
                    "FALSE" => {
                        self.next();
                        Ok(Expr::Literal(Literal::Bool(false)))
                    }
                    "NULL" => {
                        self.next();
                        Ok(Expr::Literal(Literal::Null))
                    }
                    "CASE" => {
                        self.next();
                        self.parse_case()
                    }
                    // `partition(key, n)` is a function; `PARTITION BY` is
                    // read by OVER before any expression.
                    "PARTITION" if self.peek_nth(1) == &Token::LParen => {
                        self.next();
                        self.parse_call(&w.value, pos)
                    }
                    _ if is_reserved(&upper) => Err(self.expected("expression")),
                    _ => {
                        self.next();
                        if self.is(&Token::LParen) {
                            self.parse_call(&w.value, pos)
                        } else {
                            Ok(Expr::Column {
                                qualifier: None,
                                name: w.value,
                            })
                        }
                    }
                }
            }
            _ => Err(self.expected("expression")),
        }
    }

    /// `->name`, `.name`, `[i]`, `[a:b]` chains.
    fn parse_postfix(&mut self, mut e: Expr) -> PResult<Expr> {
        let start = self.pos();
        let mut height = e.depth();
        loop {
            match self.peek() {
                Token::Arrow => {
                    self.next();
                    let name = self.any_word("field name after ->")?;
                    e = Expr::Field {
                        expr: Box::new(e),
                        name,
                    };
                }
                Token::Period => {
                    self.next();
                    let name = self.any_word("field name after .")?;
                    e = match e {
                        Expr::Column {
                            qualifier: None,
                            name: q,
                        } => Expr::Column {
                            qualifier: Some(q),
                            name,
                        },
                        other => Expr::Field {
                            expr: Box::new(other),
                            name,
                        },
                    };
                }
                Token::LBracket => {
                    self.next();
                    e = self.parse_bracket(e)?;
                }
                _ => return Ok(e),
            }
            // `a.b` stays a (qualified) column; every other step adds a level.
            if !matches!(e, Expr::Column { .. }) {
                height = self.height_after(height, &e, start)?;
            }
        }
    }

    /// After `[`: index or slice, either slice bound optional (`[]` = `[:]`).
    fn parse_bracket(&mut self, base: Expr) -> PResult<Expr> {
        let base = Box::new(base);
        if self.eat(&Token::RBracket) {
            return Ok(Expr::Slice {
                expr: base,
                from: None,
                to: None,
            });
        }
        let from = if self.is(&Token::Colon) {
            None
        } else {
            Some(Box::new(self.parse_expr()?))
        };
        if self.eat(&Token::Colon) {
            let to = if self.is(&Token::RBracket) {
                None
            } else {
                Some(Box::new(self.parse_expr()?))
            };
            self.expect(&Token::RBracket, "right bracket")?;
            return Ok(Expr::Slice {
                expr: base,
                from,
                to,
            });
        }
        self.expect(&Token::RBracket, "\":\" or right bracket")?;
        match from {
            Some(index) => Ok(Expr::Index { expr: base, index }),
            None => Err(self.expected("index expression")),
        }
    }

    /// After `CASE`.
    fn parse_case(&mut self) -> PResult<Expr> {
        let operand = if self.is_kw("WHEN") {
            None
        } else {
            Some(Box::new(self.parse_expr()?))
        };
        let mut whens = Vec::new();
        while self.eat_kw("WHEN") {
            let cond = self.parse_expr()?;
            self.expect_kw("THEN", "THEN in CASE expression")?;
            let result = self.parse_expr()?;
            whens.push((cond, result));
        }
        if whens.is_empty() {
            return Err(self.expected("WHEN in CASE expression"));
        }
        let else_ = if self.eat_kw("ELSE") {
            Some(Box::new(self.parse_expr()?))
        } else {
            None
        };
        self.expect_kw("END", "END of CASE expression")?;
        Ok(Expr::Case {
            operand,
            whens,
            else_,
        })
    }

    /// A function call; the cursor is on `(`.
    fn parse_call(&mut self, name: &str, pos: crate::ast::Pos) -> PResult<Expr> {
        let lname = name.to_ascii_lowercase();
        if is_window_function(&lname) {
            return Err(self.error_at(
                format!("window function {lname} is only allowed at the top level of GROUP BY"),
                pos,
            ));
        }
        self.expect(&Token::LParen, "(")?;
        let args = self.parse_call_args(&lname)?;
        let filter = self.parse_filter_clause()?.map(Box::new);
        let over = self.parse_over_clause()?;
        Ok(Expr::Call {
            name: lname,
            args,
            over,
            filter,
        })
    }

    /// Arguments after `(` up to and including `)`. A lone `*` is `Expr::Wildcard`.
    pub(crate) fn parse_call_args(&mut self, fname: &str) -> PResult<Vec<Expr>> {
        let mut args = Vec::new();
        if self.eat(&Token::RParen) {
            return Ok(args);
        }
        loop {
            if self.is(&Token::Mul) && matches!(self.peek_nth(1), Token::Comma | Token::RParen) {
                self.next();
                args.push(Expr::Wildcard);
            } else {
                args.push(self.parse_expr()?);
            }
            if self.eat(&Token::Comma) {
                continue;
            }
            if self.eat(&Token::RParen) {
                return Ok(args);
            }
            return Err(self.expected(&format!("\",\" or \")\" in call to function {fname}")));
        }
    }

    /// Optional `FILTER (WHERE cond)`.
    pub(crate) fn parse_filter_clause(&mut self) -> PResult<Option<Expr>> {
        if !self.eat_kw("FILTER") {
            return Ok(None);
        }
        self.expect(&Token::LParen, "( after FILTER")?;
        self.expect_kw("WHERE", "WHERE after FILTER (")?;
        let cond = self.parse_expr()?;
        self.expect(&Token::RParen, "right paren closing FILTER")?;
        Ok(Some(cond))
    }

    /// `BY e [ASC|DESC], ...` after an `ORDER` keyword (SELECT and OVER).
    pub(crate) fn parse_order_by_list(&mut self) -> PResult<Vec<crate::ast::OrderBy>> {
        self.expect_kw("BY", "BY after ORDER")?;
        let mut out = Vec::new();
        loop {
            let expr = self.parse_expr()?;
            let desc = if self.eat_kw("DESC") {
                true
            } else {
                self.eat_kw("ASC");
                false
            };
            out.push(crate::ast::OrderBy { expr, desc });
            if !self.eat(&Token::Comma) {
                return Ok(out);
            }
        }
    }

    /// Optional `OVER (PARTITION BY e, ... ORDER BY e [ASC|DESC], ... WHEN
    /// cond)`, clauses in any order (the planner checks which a function takes).
    pub(crate) fn parse_over_clause(&mut self) -> PResult<Option<Over>> {
        if !self.eat_kw("OVER") {
            return Ok(None);
        }
        self.expect(&Token::LParen, "( after OVER")?;
        let mut over = Over::default();
        let mut seen_partition = false;
        loop {
            if self.is_kw("PARTITION") && !seen_partition {
                self.next();
                self.expect_kw("BY", "BY after PARTITION")?;
                seen_partition = true;
                loop {
                    over.partition_by.push(self.parse_expr()?);
                    if !self.eat(&Token::Comma) {
                        break;
                    }
                }
            } else if self.is_kw("WHEN") && over.when.is_none() {
                self.next();
                over.when = Some(Box::new(self.parse_expr()?));
            } else if self.is_kw("ORDER") && over.order_by.is_empty() {
                self.next();
                over.order_by = self.parse_order_by_list()?;
            } else if self.is(&Token::RParen)
                && (seen_partition || over.when.is_some() || !over.order_by.is_empty())
            {
                self.next();
                return Ok(Some(over));
            } else if !seen_partition && over.when.is_none() && over.order_by.is_empty() {
                return Err(self.expected("PARTITION BY, ORDER BY or WHEN after OVER ("));
            } else {
                return Err(self.expected("right paren closing OVER"));
            }
        }
    }
}

/// An integer (i64) or float literal from number text; `None` if out of range.
pub(crate) fn number_literal(text: &str) -> Option<Literal> {
    if text.contains(['.', 'e', 'E']) {
        text.parse::<f64>()
            .ok()
            .filter(|f| f.is_finite())
            .map(Literal::Float)
    } else {
        text.parse::<i64>().ok().map(Literal::Int)
    }
}
