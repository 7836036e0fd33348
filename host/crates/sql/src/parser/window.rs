//! Window functions in GROUP BY: `TUMBLINGWINDOW`, `HOPPINGWINDOW`,
//! `SLIDINGWINDOW`, `SESSIONWINDOW`, `COUNTWINDOW`, `STATEWINDOW`, their
//! argument validation, unit conversion to milliseconds, and the trailing
//! `FILTER (WHERE ...)` / `OVER (WHEN ... | PARTITION BY ...)` clauses.

use sqlparser::tokenizer::Token;

use super::cursor::{Cursor, PResult};
use crate::ast::{Expr, Literal, Pos, TimeUnit, Window, WindowKind};

/// Largest `COUNTWINDOW` size (and step): a count window keeps that many
/// events in memory, so a larger one is a memory leak waiting for traffic.
pub const MAX_COUNT_WINDOW: i64 = 1_000_000;
/// Longest time window length, hop, delay or session timeout (366 days): a
/// window keeps its events in memory until it closes, and a timer further
/// away than that is a mistake, not a plan.
pub const MAX_WINDOW_MS: i64 = 366 * 86_400_000;

const WINDOW_FUNCTIONS: &[&str] = &[
    "tumblingwindow",
    "hoppingwindow",
    "slidingwindow",
    "sessionwindow",
    "countwindow",
    "statewindow",
];

/// True for the (lower-cased) name of a window function.
pub(crate) fn is_window_function(lname: &str) -> bool {
    WINDOW_FUNCTIONS.contains(&lname)
}

/// True when the cursor is on `<window function> (`.
pub(crate) fn at_window_call(c: &Cursor) -> bool {
    matches!(c.peek(), Token::Word(w) if w.quote_style.is_none() && is_window_function(&w.value.to_ascii_lowercase()))
        && c.peek_nth(1) == &Token::LParen
}

fn ordinal(i: usize) -> &'static str {
    match i {
        1 => "1st",
        2 => "2nd",
        3 => "3rd",
        _ => "next",
    }
}

impl Cursor {
    /// Parses a window call (cursor on its name) with FILTER and OVER.
    pub(crate) fn parse_window(&mut self) -> PResult<Window> {
        let pos = self.pos();
        let name = self.any_word("window function")?.to_ascii_lowercase();
        self.expect(&Token::LParen, "( after window function")?;
        let args = self.parse_call_args(&name)?;
        let (kind, unit) = window_kind(self, &name, args, pos)?;
        let filter = self.parse_filter_clause()?.map(Box::new);
        let (trigger, partition_by) = match self.parse_over_clause()? {
            Some(over) => (over.when, over.partition_by),
            None => (None, Vec::new()),
        };
        Ok(Window {
            kind,
            unit,
            filter,
            trigger,
            partition_by,
        })
    }
}

fn window_kind(
    c: &Cursor,
    name: &str,
    args: Vec<Expr>,
    pos: Pos,
) -> PResult<(WindowKind, Option<TimeUnit>)> {
    let err = |msg: String| c.error_at(msg, pos);
    let arity = |allowed: &[usize], text: &str| -> PResult<()> {
        if allowed.contains(&args.len()) {
            Ok(())
        } else {
            Err(err(format!(
                "the arguments for {name} should be {text}, found {}",
                args.len()
            )))
        }
    };
    let int_arg = |i: usize, min: i64| -> PResult<i64> {
        match args.get(i) {
            Some(Expr::Literal(Literal::Int(v))) if *v >= min => Ok(*v),
            Some(Expr::Literal(Literal::Int(v))) => Err(err(format!(
                "the {} argument for {name} must be at least {min}, found {v}",
                ordinal(i + 1)
            ))),
            _ => Err(err(format!(
                "the {} argument for {name} is expecting an integer literal",
                ordinal(i + 1)
            ))),
        }
    };
    match name {
        "countwindow" => {
            arity(&[1, 2], "1 or 2")?;
            let size = int_arg(0, 1)?;
            let every = if args.len() == 2 {
                int_arg(1, 1)?
            } else {
                size
            };
            if size > MAX_COUNT_WINDOW {
                return Err(err(format!(
                    "the 1st argument for {name} must be at most {MAX_COUNT_WINDOW}, found {size}: \
                     a count window keeps that many events in memory"
                )));
            }
            if every > size {
                return Err(err(format!(
                    "the second parameter value {every} should be less than the first parameter {size}"
                )));
            }
            // Both are >= 1 here, so the conversions cannot fail.
            let (size, every) = (size.unsigned_abs(), every.unsigned_abs());
            Ok((WindowKind::Count { size, every }, None))
        }
        "statewindow" => {
            arity(&[1, 2], "1 or 2")?;
            let mut it = args.into_iter();
            let begin = it
                .next()
                .ok_or_else(|| err(format!("{name} needs a begin condition")))?;
            let emit = it.next().map(Box::new);
            Ok((
                WindowKind::State {
                    begin: Box::new(begin),
                    emit,
                },
                None,
            ))
        }
        _ => {
            match name {
                "tumblingwindow" => arity(&[2], "2")?,
                "hoppingwindow" | "sessionwindow" => arity(&[3], "3")?,
                _ => arity(&[2, 3], "2 or 3")?,
            }
            let unit = match args.first() {
                Some(Expr::Column { qualifier: None, name: u }) => time_unit(u),
                _ => None,
            }
            .ok_or_else(|| {
                err(format!(
                    "the 1st argument for {name} is expecting timer literal expression. One value of [dd|hh|mi|ss|ms]"
                ))
            })?;
            let ms = |i: usize, min: i64| -> PResult<i64> {
                let v = int_arg(i, min)?;
                v.checked_mul(unit.millis())
                    .filter(|ms| *ms <= MAX_WINDOW_MS)
                    .ok_or_else(|| {
                        err(format!(
                            "the {} argument for {name} is too large: at most 366 days \
                             ({MAX_WINDOW_MS} ms), found {v} {}",
                            ordinal(i + 1),
                            unit_name(unit)
                        ))
                    })
            };
            let kind = match name {
                "tumblingwindow" => WindowKind::Tumbling { size_ms: ms(1, 1)? },
                "hoppingwindow" => WindowKind::Hopping {
                    size_ms: ms(1, 1)?,
                    hop_ms: ms(2, 1)?,
                },
                "sessionwindow" => WindowKind::Session {
                    max_ms: ms(1, 1)?,
                    timeout_ms: ms(2, 1)?,
                },
                _ => WindowKind::Sliding {
                    size_ms: ms(1, 1)?,
                    delay_ms: if args.len() == 3 { ms(2, 0)? } else { 0 },
                },
            };
            Ok((kind, Some(unit)))
        }
    }
}

fn unit_name(u: TimeUnit) -> &'static str {
    match u {
        TimeUnit::Dd => "dd",
        TimeUnit::Hh => "hh",
        TimeUnit::Mi => "mi",
        TimeUnit::Ss => "ss",
        TimeUnit::Ms => "ms",
    }
}

/// `DD HH MI SS MS`, case-insensitive.
pub(crate) fn time_unit(word: &str) -> Option<TimeUnit> {
    match word.to_ascii_uppercase().as_str() {
        "DD" => Some(TimeUnit::Dd),
        "HH" => Some(TimeUnit::Hh),
        "MI" => Some(TimeUnit::Mi),
        "SS" => Some(TimeUnit::Ss),
        "MS" => Some(TimeUnit::Ms),
        _ => None,
    }
}
