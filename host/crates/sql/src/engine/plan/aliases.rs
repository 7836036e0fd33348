//! SELECT aliases inlined into the expressions that use them.

use super::*;

/// Inlines SELECT aliases into expressions.
pub(super) struct Aliases<'a> {
    pub(super) names: Vec<&'a str>,
    pub(super) exprs: Vec<&'a Expr>,
}

impl<'a> Aliases<'a> {
    pub(super) fn find(&self, name: &str) -> Option<usize> {
        self.names.iter().position(|n| *n == name)
    }

    /// `stack` holds the aliases being expanded (innermost last); a reference
    /// to the innermost one is the column of the same name.
    pub(super) fn expand(
        &self,
        e: &Expr,
        stack: &mut Vec<usize>,
        budget: &mut usize,
    ) -> Result<Expr, SqlError> {
        *budget = budget.saturating_sub(1);
        if *budget == 0 {
            return Err(plan_err("expression too large after alias expansion"));
        }
        let bx = |x: &Expr, s: &mut Vec<usize>, b: &mut usize| -> Result<Box<Expr>, SqlError> {
            Ok(Box::new(self.expand(x, s, b)?))
        };
        Ok(match e {
            Expr::Column {
                qualifier: None,
                name,
            } => match self.find(name) {
                Some(i) if stack.last() == Some(&i) => e.clone(),
                Some(i) if stack.contains(&i) => {
                    return Err(plan_err("select fields have cycled alias"))
                }
                Some(i) => {
                    stack.push(i);
                    let r = self.expand(self.exprs[i], stack, budget);
                    stack.pop();
                    r?
                }
                None => e.clone(),
            },
            Expr::Literal(_) | Expr::Column { .. } | Expr::Wildcard => e.clone(),
            Expr::Field { expr, name } => Expr::Field {
                expr: bx(expr, stack, budget)?,
                name: name.clone(),
            },
            Expr::Index { expr, index } => Expr::Index {
                expr: bx(expr, stack, budget)?,
                index: bx(index, stack, budget)?,
            },
            Expr::Slice { expr, from, to } => Expr::Slice {
                expr: bx(expr, stack, budget)?,
                from: from.as_deref().map(|x| bx(x, stack, budget)).transpose()?,
                to: to.as_deref().map(|x| bx(x, stack, budget)).transpose()?,
            },
            Expr::Binary { op, left, right } => Expr::Binary {
                op: *op,
                left: bx(left, stack, budget)?,
                right: bx(right, stack, budget)?,
            },
            Expr::Unary { op, expr } => Expr::Unary {
                op: *op,
                expr: bx(expr, stack, budget)?,
            },
            Expr::Between {
                expr,
                low,
                high,
                negated,
            } => Expr::Between {
                expr: bx(expr, stack, budget)?,
                low: bx(low, stack, budget)?,
                high: bx(high, stack, budget)?,
                negated: *negated,
            },
            Expr::Like {
                expr,
                pattern,
                negated,
            } => Expr::Like {
                expr: bx(expr, stack, budget)?,
                pattern: bx(pattern, stack, budget)?,
                negated: *negated,
            },
            Expr::InList {
                expr,
                list,
                negated,
            } => Expr::InList {
                expr: bx(expr, stack, budget)?,
                list: list
                    .iter()
                    .map(|x| self.expand(x, stack, budget))
                    .collect::<Result<_, _>>()?,
                negated: *negated,
            },
            Expr::IsNull { expr, negated } => Expr::IsNull {
                expr: bx(expr, stack, budget)?,
                negated: *negated,
            },
            Expr::Case {
                operand,
                whens,
                else_,
            } => Expr::Case {
                operand: operand
                    .as_deref()
                    .map(|x| bx(x, stack, budget))
                    .transpose()?,
                whens: whens
                    .iter()
                    .map(|(w, t)| {
                        Ok((
                            self.expand(w, stack, budget)?,
                            self.expand(t, stack, budget)?,
                        ))
                    })
                    .collect::<Result<_, SqlError>>()?,
                else_: else_.as_deref().map(|x| bx(x, stack, budget)).transpose()?,
            },
            Expr::Call {
                name,
                args,
                over,
                filter,
            } => Expr::Call {
                name: name.clone(),
                args: args
                    .iter()
                    .map(|x| self.expand(x, stack, budget))
                    .collect::<Result<_, _>>()?,
                over: match over {
                    Some(o) => Some(crate::ast::Over {
                        partition_by: o
                            .partition_by
                            .iter()
                            .map(|x| self.expand(x, stack, budget))
                            .collect::<Result<_, _>>()?,
                        order_by: o
                            .order_by
                            .iter()
                            .map(|x| {
                                Ok(crate::ast::OrderBy {
                                    expr: self.expand(&x.expr, stack, budget)?,
                                    desc: x.desc,
                                })
                            })
                            .collect::<Result<_, _>>()?,
                        when: o
                            .when
                            .as_deref()
                            .map(|x| bx(x, stack, budget))
                            .transpose()?,
                    }),
                    None => None,
                },
                filter: filter
                    .as_deref()
                    .map(|x| bx(x, stack, budget))
                    .transpose()?,
            },
        })
    }
}
