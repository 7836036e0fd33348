//! Prints an expression the way eKuiper's AST `String()` does, for the
//! runtime error messages that quote the failing expression
//! (`run Select error: expr: binaryExpr:{ ldemo.size * 5 } meet error, ...`).

use crate::ast::{Expr, Literal, UnaryOp};

use super::ops::{go_float, op_token};

/// `default_stream` qualifies unqualified columns, as eKuiper binds them.
pub(crate) fn ek_string(e: &Expr, default_stream: Option<&str>) -> String {
    let mut s = String::new();
    write_expr(e, default_stream, &mut s);
    s
}

fn write_expr(e: &Expr, ds: Option<&str>, s: &mut String) {
    match e {
        Expr::Literal(l) => match l {
            Literal::Null => s.push_str("nil"),
            Literal::Bool(b) => s.push_str(if *b { "true" } else { "false" }),
            Literal::Int(i) => s.push_str(&i.to_string()),
            Literal::Float(f) => s.push_str(&go_float(*f)),
            Literal::Str(x) => s.push_str(x),
        },
        Expr::Column { qualifier, name } => {
            if let Some(q) = qualifier.as_deref().or(ds) {
                s.push_str(q);
                s.push('.');
            }
            s.push_str(name);
        }
        Expr::Wildcard => s.push('*'),
        Expr::Field { expr, name } => {
            s.push_str("binaryExpr:{ ");
            write_expr(expr, ds, s);
            s.push_str(" -> jsonFieldName:");
            s.push_str(name);
            s.push_str(" }");
        }
        Expr::Index { expr, index } => {
            s.push_str("binaryExpr:{ ");
            write_expr(expr, ds, s);
            s.push('[');
            write_expr(index, ds, s);
            s.push_str("] }");
        }
        Expr::Slice { expr, from, to } => {
            s.push_str("binaryExpr:{ ");
            write_expr(expr, ds, s);
            s.push_str("[ColonExpr:{ ");
            if let Some(f) = from {
                s.push_str("start:{ ");
                write_expr(f, ds, s);
                s.push_str(" }");
            }
            if let Some(t) = to {
                if from.is_some() {
                    s.push_str(", ");
                }
                s.push_str("end:{ ");
                write_expr(t, ds, s);
                s.push_str(" }");
            }
            s.push_str(" }] }");
        }
        Expr::Binary { op, left, right } => {
            s.push_str("binaryExpr:{ ");
            write_expr(left, ds, s);
            s.push(' ');
            s.push_str(op_token(*op));
            s.push(' ');
            write_expr(right, ds, s);
            s.push_str(" }");
        }
        Expr::Unary { op, expr } => {
            s.push_str(match op {
                UnaryOp::Neg => "-",
                UnaryOp::Not => "NOT ",
            });
            write_expr(expr, ds, s);
        }
        Expr::Between {
            expr,
            low,
            high,
            negated,
        } => {
            s.push_str("binaryExpr:{ ");
            write_expr(expr, ds, s);
            s.push_str(if *negated {
                " NOT BETWEEN "
            } else {
                " BETWEEN "
            });
            s.push_str("betweenExpr:{ ");
            write_expr(low, ds, s);
            s.push_str(", ");
            write_expr(high, ds, s);
            s.push_str(" } }");
        }
        Expr::Like {
            expr,
            pattern,
            negated,
        } => {
            s.push_str("binaryExpr:{ ");
            write_expr(expr, ds, s);
            s.push_str(if *negated { " NOT LIKE " } else { " LIKE " });
            write_expr(pattern, ds, s);
            s.push_str(" }");
        }
        Expr::InList {
            expr,
            list,
            negated,
        } => {
            s.push_str("binaryExpr:{ ");
            write_expr(expr, ds, s);
            s.push_str(if *negated { " NOT IN " } else { " IN " });
            s.push_str("ValueSetExpr:{ literalExprs:[");
            for (i, x) in list.iter().enumerate() {
                if i > 0 {
                    s.push_str(", ");
                }
                write_expr(x, ds, s);
            }
            s.push_str("] } }");
        }
        Expr::IsNull { expr, negated } => {
            s.push_str("binaryExpr:{ ");
            write_expr(expr, ds, s);
            s.push_str(if *negated { " IS NOT NULL" } else { " IS NULL" });
            s.push_str(" }");
        }
        Expr::Case {
            operand,
            whens,
            else_,
        } => {
            s.push_str("caseExpr:{ ");
            if let Some(o) = operand {
                s.push_str("value:{ ");
                write_expr(o, ds, s);
                s.push_str(" }, ");
            }
            s.push_str("whenClauses:[");
            for (i, (w, t)) in whens.iter().enumerate() {
                if i > 0 {
                    s.push_str(", ");
                }
                s.push_str("whenClause:{ ");
                write_expr(w, ds, s);
                s.push_str(", ");
                write_expr(t, ds, s);
                s.push_str(" }");
            }
            s.push(']');
            if let Some(e) = else_ {
                s.push_str(", elseClause:{ ");
                write_expr(e, ds, s);
                s.push_str(" }");
            }
            s.push_str(" }");
        }
        Expr::Call { name, args, .. } => {
            s.push_str("Call:{ name:");
            s.push_str(name);
            if !args.is_empty() {
                s.push_str(", args:[");
                for (i, a) in args.iter().enumerate() {
                    if i > 0 {
                        s.push_str(", ");
                    }
                    write_expr(a, ds, s);
                }
                s.push(']');
            }
            s.push_str(" }");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ast::BinaryOp;

    #[test]
    fn prints_like_ekuiper() {
        let e = Expr::bin(BinaryOp::Mul, Expr::col("size"), Expr::lit_int(5));
        assert_eq!(
            ek_string(&e, Some("ldemo")),
            "binaryExpr:{ ldemo.size * 5 }"
        );
        let c = Expr::call("upper", vec![Expr::col("color")]);
        assert_eq!(ek_string(&c, None), "Call:{ name:upper, args:[color] }");
    }
}
