//! `OortDialect`: the `sqlparser` dialect describing eKuiper's lexical rules.
//!
//! Owns only the lexical decisions sqlparser asks a dialect about: `"..."` is a
//! string literal (not an identifier), identifiers are quoted with backticks,
//! backslash escapes are recognised inside strings, identifiers are ASCII
//! letters, digits and `_`. The grammar itself is hand-parsed in the sibling
//! modules over the tokens this dialect produces.

use sqlparser::dialect::Dialect;

/// eKuiper's SQL dialect for sqlparser's tokenizer.
#[derive(Debug, Default, Clone, Copy)]
pub struct OortDialect;

impl Dialect for OortDialect {
    fn is_identifier_start(&self, ch: char) -> bool {
        ch.is_ascii_alphabetic() || ch == '_'
    }

    fn is_identifier_part(&self, ch: char) -> bool {
        ch.is_ascii_alphanumeric() || ch == '_'
    }

    /// Only backticks delimit identifiers; `"` starts a string literal.
    fn is_delimited_identifier_start(&self, ch: char) -> bool {
        ch == '`'
    }

    fn identifier_quote_style(&self, _identifier: &str) -> Option<char> {
        Some('`')
    }

    fn supports_string_literal_backslash_escape(&self) -> bool {
        true
    }

    fn supports_filter_during_aggregation(&self) -> bool {
        true
    }

    fn supports_trailing_commas(&self) -> bool {
        true
    }

    fn supports_column_definition_trailing_commas(&self) -> bool {
        true
    }

    fn supports_select_wildcard_except(&self) -> bool {
        true
    }

    fn supports_select_wildcard_replace(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sqlparser::ast::{Expr, SelectItem, SetExpr, Statement, Value};
    use sqlparser::parser::Parser;

    /// sqlparser's own parser also reads eKuiper's quoting with this dialect.
    #[test]
    fn sqlparser_reads_ekuiper_quoting() {
        let stmts = Parser::parse_sql(
            &OortDialect,
            r#"SELECT `from` FROM demo WHERE color = "red""#,
        )
        .unwrap();
        let Statement::Query(q) = &stmts[0] else {
            panic!("{stmts:?}")
        };
        let SetExpr::Select(s) = q.body.as_ref() else {
            panic!("{q:?}")
        };
        match &s.projection[0] {
            SelectItem::UnnamedExpr(Expr::Identifier(id)) => {
                assert_eq!(id.value, "from");
                assert_eq!(id.quote_style, Some('`'));
            }
            other => panic!("{other:?}"),
        }
        let Some(Expr::BinaryOp { right, .. }) = &s.selection else {
            panic!("{s:?}")
        };
        match right.as_ref() {
            Expr::Value(v) => assert_eq!(v.value, Value::DoubleQuotedString("red".into())),
            other => panic!("{other:?}"),
        }
    }
}
