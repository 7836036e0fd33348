//! The SELECT statement: projection (`*` with EXCEPT/REPLACE, `s.*`,
//! `expr AS alias [INVISIBLE]`), FROM with alias, joins, WHERE, GROUP BY with
//! at most one window, HAVING, ORDER BY and LIMIT.

use sqlparser::tokenizer::Token;

use super::cursor::{is_kw, is_reserved, Cursor, PResult};
use super::window::at_window_call;
use crate::ast::{FromItem, Join, JoinKind, Select, SelectItem};

impl Cursor {
    /// `SELECT ...` up to (not including) the optional `;` / EOF.
    pub(crate) fn parse_select_body(&mut self) -> PResult<Select> {
        self.expect_kw("SELECT", "SELECT")?;
        let mut fields = Vec::new();
        loop {
            fields.push(self.parse_select_item()?);
            if !self.eat(&Token::Comma) {
                break;
            }
        }
        self.expect_kw("FROM", "FROM")?;
        let from = self.parse_from_item("stream name after FROM")?;
        let joins = self.parse_joins()?;
        let where_ = if self.eat_kw("WHERE") {
            Some(self.parse_expr()?)
        } else {
            None
        };

        let mut group_by = Vec::new();
        let mut window = None;
        if self.eat_kw("GROUP") {
            self.expect_kw("BY", "BY after GROUP")?;
            loop {
                if at_window_call(self) {
                    let pos = self.pos();
                    let w = self.parse_window()?;
                    if window.is_some() {
                        return Err(
                            self.error_at("only one window function is allowed in GROUP BY", pos)
                        );
                    }
                    window = Some(w);
                } else {
                    group_by.push(self.parse_expr()?);
                }
                if !self.eat(&Token::Comma) {
                    break;
                }
            }
        }

        let having = if self.eat_kw("HAVING") {
            Some(self.parse_expr()?)
        } else {
            None
        };

        let mut order_by = Vec::new();
        if self.eat_kw("ORDER") {
            order_by = self.parse_order_by_list()?;
        }

        let limit = if self.eat_kw("LIMIT") {
            match self.peek().clone() {
                Token::Number(n, _) => match n.parse::<u64>() {
                    Ok(v) => {
                        self.next();
                        Some(v)
                    }
                    Err(_) => return Err(self.expected("a non-negative integer after LIMIT")),
                },
                _ => return Err(self.expected("a non-negative integer after LIMIT")),
            }
        } else {
            None
        };

        Ok(Select {
            fields,
            from,
            joins,
            where_,
            group_by,
            window,
            having,
            order_by,
            limit,
        })
    }

    fn parse_select_item(&mut self) -> PResult<SelectItem> {
        if self.eat(&Token::Mul) {
            let mut except = Vec::new();
            let mut replace = Vec::new();
            loop {
                if self.eat_kw("EXCEPT") {
                    self.expect(&Token::LParen, "( after EXCEPT")?;
                    loop {
                        except.push(self.ident("column name in EXCEPT")?);
                        if self.eat(&Token::Comma) {
                            continue;
                        }
                        self.expect(&Token::RParen, "\",\" or \")\" in EXCEPT")?;
                        break;
                    }
                } else if self.eat_kw("REPLACE") {
                    self.expect(&Token::LParen, "( after REPLACE")?;
                    loop {
                        let expr = self.parse_expr()?;
                        self.expect_kw("AS", "AS alias in REPLACE")?;
                        let name = self.ident("alias in REPLACE")?;
                        replace.push((expr, name));
                        if self.eat(&Token::Comma) {
                            continue;
                        }
                        self.expect(&Token::RParen, "\",\" or \")\" in REPLACE")?;
                        break;
                    }
                } else {
                    break;
                }
            }
            if self.is_kw("AS") {
                return Err(self.error_at("alias is not supported for *", self.pos()));
            }
            return Ok(SelectItem::Wildcard { except, replace });
        }
        // `s.*`
        if let Token::Word(w) = self.peek() {
            if (w.quote_style.is_some() || !is_reserved(&w.value))
                && self.peek_nth(1) == &Token::Period
                && self.peek_nth(2) == &Token::Mul
            {
                let name = w.value.clone();
                self.next();
                self.next();
                self.next();
                return Ok(SelectItem::QualifiedWildcard(name));
            }
        }
        let expr = self.parse_expr()?;
        let alias = if self.eat_kw("AS") {
            Some(self.ident("alias after AS")?)
        } else {
            None
        };
        let invisible = self.eat_kw("INVISIBLE");
        Ok(SelectItem::Expr {
            expr,
            alias,
            invisible,
        })
    }

    /// `name [[AS] alias]`.
    fn parse_from_item(&mut self, what: &str) -> PResult<FromItem> {
        let name = self.ident(what)?;
        let alias = if self.eat_kw("AS") {
            Some(self.ident("alias after AS")?)
        } else {
            match self.peek() {
                Token::Word(w) if w.quote_style.is_some() || !is_reserved(&w.value) => {
                    let a = w.value.clone();
                    self.next();
                    Some(a)
                }
                _ => None,
            }
        };
        Ok(FromItem { name, alias })
    }

    fn parse_joins(&mut self) -> PResult<Vec<Join>> {
        let mut joins = Vec::new();
        loop {
            let kind = match self.peek() {
                t if is_kw(t, "JOIN") => JoinKind::Inner,
                t if is_kw(t, "INNER") => JoinKind::Inner,
                t if is_kw(t, "LEFT") => JoinKind::Left,
                t if is_kw(t, "RIGHT") => JoinKind::Right,
                t if is_kw(t, "FULL") => JoinKind::Full,
                t if is_kw(t, "CROSS") => JoinKind::Cross,
                _ => return Ok(joins),
            };
            if !self.eat_kw("JOIN") {
                self.next();
                if matches!(kind, JoinKind::Left | JoinKind::Right | JoinKind::Full) {
                    self.eat_kw("OUTER");
                }
                self.expect_kw("JOIN", "JOIN keyword")?;
            }
            let source = self.parse_from_item("stream or table name after JOIN")?;
            let on = if self.is_kw("ON") {
                if kind == JoinKind::Cross {
                    return Err(
                        self.error_at("ON expression is not allowed for a cross join", self.pos())
                    );
                }
                self.next();
                Some(self.parse_expr()?)
            } else {
                None
            };
            joins.push(Join { kind, source, on });
        }
    }
}
