//! Unit tests of the parser, one file per area.

mod compat;
mod ddl;
mod errors;
mod expr;
mod select;

use crate::ast::*;
use crate::parser::{parse_expr, parse_select};

pub(super) fn e(sql: &str) -> Expr {
    parse_expr(sql).unwrap_or_else(|err| panic!("{sql}: {err}"))
}

pub(super) fn sel(sql: &str) -> Select {
    parse_select(sql).unwrap_or_else(|err| panic!("{sql}: {err}"))
}

pub(super) fn col(name: &str) -> Expr {
    Expr::col(name)
}

pub(super) fn qcol(q: &str, name: &str) -> Expr {
    Expr::Column {
        qualifier: Some(q.to_string()),
        name: name.to_string(),
    }
}

pub(super) fn int(i: i64) -> Expr {
    Expr::lit_int(i)
}

pub(super) fn s(v: &str) -> Expr {
    Expr::lit_str(v)
}

pub(super) fn bin(op: BinaryOp, l: Expr, r: Expr) -> Expr {
    Expr::bin(op, l, r)
}

pub(super) fn field(base: Expr, name: &str) -> Expr {
    Expr::Field {
        expr: Box::new(base),
        name: name.to_string(),
    }
}

pub(super) fn item(expr: Expr, alias: Option<&str>) -> SelectItem {
    SelectItem::Expr {
        expr,
        alias: alias.map(str::to_string),
        invisible: false,
    }
}
