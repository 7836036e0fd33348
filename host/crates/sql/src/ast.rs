//! Oort's own SQL syntax tree: what the parser (`parser.rs`) produces from
//! sqlparser's tree and what the planner (`plan.rs`) compiles. Knows nothing
//! about IO. Names are kept as written; keywords and function names are
//! lower-cased by the parser.

use std::fmt;

/// Position in the statement text (1-based line and column).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Pos {
    pub line: u64,
    pub column: u64,
}

/// Any statement accepted by `POST /streams`, `/tables` or a rule's `sql`.
#[derive(Debug, Clone, PartialEq)]
#[allow(clippy::large_enum_variant)]
pub enum Statement {
    CreateStream(StreamDef),
    Select(Box<Select>),
    /// `DROP STREAM name` / `DROP TABLE name`
    Drop {
        kind: StreamKind,
        name: String,
    },
    /// `DESCRIBE STREAM name` / `DESCRIBE TABLE name` (also EXPLAIN)
    Describe {
        kind: StreamKind,
        name: String,
    },
    /// `SHOW STREAMS` / `SHOW TABLES`
    Show {
        kind: StreamKind,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamKind {
    Stream,
    Table,
}

impl fmt::Display for StreamKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StreamKind::Stream => f.write_str("stream"),
            StreamKind::Table => f.write_str("table"),
        }
    }
}

/// `CREATE STREAM|TABLE name (cols) WITH (options)`
#[derive(Debug, Clone, PartialEq)]
pub struct StreamDef {
    pub kind: StreamKind,
    pub name: String,
    /// Empty = schemaless.
    pub columns: Vec<Column>,
    pub options: StreamOptions,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Column {
    pub name: String,
    pub ty: DataType,
    pub default: Option<Literal>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum DataType {
    Bigint,
    Float,
    String,
    Datetime,
    Boolean,
    Bytea,
    Array(Box<DataType>),
    Struct(Vec<Column>),
}

impl fmt::Display for DataType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DataType::Bigint => f.write_str("bigint"),
            DataType::Float => f.write_str("float"),
            DataType::String => f.write_str("string"),
            DataType::Datetime => f.write_str("datetime"),
            DataType::Boolean => f.write_str("boolean"),
            DataType::Bytea => f.write_str("bytea"),
            DataType::Array(_) => f.write_str("array"),
            DataType::Struct(_) => f.write_str("struct"),
        }
    }
}

/// The WITH options. Keys are case-insensitive in the text; values are the
/// quoted strings as written (TRUE/FALSE bare words become "true"/"false").
#[derive(Debug, Clone, PartialEq, Default)]
pub struct StreamOptions {
    pub datasource: Option<String>,
    /// Lower-cased. `json` when absent.
    pub format: Option<String>,
    /// Connector type; absent = `mqtt` for streams, `file` for tables.
    pub type_: Option<String>,
    pub key: Option<String>,
    pub conf_key: Option<String>,
    pub shared: bool,
    pub strict_validation: bool,
    pub timestamp: Option<String>,
    pub timestamp_format: Option<String>,
    pub delimiter: Option<String>,
    /// `scan` (default) or `lookup`, tables only.
    pub kind: Option<String>,
    pub retain_size: Option<u64>,
    pub schema_id: Option<String>,
    /// JSON object text overriding conf props.
    pub extra: Option<String>,
    pub version: Option<String>,
    pub temp: bool,
}

/// A SELECT statement.
#[derive(Debug, Clone, PartialEq)]
pub struct Select {
    pub fields: Vec<SelectItem>,
    pub from: FromItem,
    pub joins: Vec<Join>,
    pub where_: Option<Expr>,
    /// Dimensions other than the window.
    pub group_by: Vec<Expr>,
    pub window: Option<Window>,
    pub having: Option<Expr>,
    pub order_by: Vec<OrderBy>,
    pub limit: Option<u64>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum SelectItem {
    /// `*` with optional `EXCEPT(a, b)` and `REPLACE(expr AS c, ...)`.
    Wildcard {
        except: Vec<String>,
        replace: Vec<(Expr, String)>,
    },
    /// `s.*`
    QualifiedWildcard(String),
    Expr {
        expr: Expr,
        alias: Option<String>,
        invisible: bool,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub struct FromItem {
    pub name: String,
    pub alias: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JoinKind {
    Inner,
    Left,
    Right,
    Full,
    Cross,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Join {
    pub kind: JoinKind,
    pub source: FromItem,
    pub on: Option<Expr>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeUnit {
    Dd,
    Hh,
    Mi,
    Ss,
    Ms,
}

impl TimeUnit {
    pub fn millis(self) -> i64 {
        match self {
            TimeUnit::Dd => 86_400_000,
            TimeUnit::Hh => 3_600_000,
            TimeUnit::Mi => 60_000,
            TimeUnit::Ss => 1000,
            TimeUnit::Ms => 1,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum WindowKind {
    /// size
    Tumbling { size_ms: i64 },
    /// size, hop
    Hopping { size_ms: i64, hop_ms: i64 },
    /// size, optional delay
    Sliding { size_ms: i64, delay_ms: i64 },
    /// max duration, timeout
    Session { max_ms: i64, timeout_ms: i64 },
    /// size, every (every == size for a tumbling count window)
    Count { size: u64, every: u64 },
    /// begin, emit conditions
    State {
        begin: Box<Expr>,
        emit: Option<Box<Expr>>,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub struct Window {
    pub kind: WindowKind,
    /// The unit as written (for describe/explain); sizes above are in ms already.
    pub unit: Option<TimeUnit>,
    /// `FILTER (WHERE cond)`: drops events before windowing.
    pub filter: Option<Box<Expr>>,
    /// `OVER (WHEN cond)`: which events trigger (sliding windows).
    pub trigger: Option<Box<Expr>>,
    /// `OVER (PARTITION BY ...)` (state windows).
    pub partition_by: Vec<Expr>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct OrderBy {
    pub expr: Expr,
    pub desc: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Literal {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BinaryOp {
    Add,
    Sub,
    Mul,
    Div,
    Mod,
    BitAnd,
    BitOr,
    BitXor,
    Eq,
    NotEq,
    Lt,
    LtEq,
    Gt,
    GtEq,
    And,
    Or,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnaryOp {
    Neg,
    Not,
}

/// `OVER (PARTITION BY ... WHEN ...)` on an analytic function call, or
/// `OVER (PARTITION BY ... ORDER BY ...)` on `row_number()`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Over {
    pub partition_by: Vec<Expr>,
    pub order_by: Vec<OrderBy>,
    pub when: Option<Box<Expr>>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    Literal(Literal),
    /// A column, optionally qualified by stream name or alias: `s.col` / `col`.
    /// (The parser cannot tell `a.b` stream-qualified from nested access; it
    /// emits `Column { qualifier: Some("a"), name: "b" }` and the planner decides.)
    Column {
        qualifier: Option<String>,
        name: String,
    },
    /// `*` as a function argument (`count(*)`, `collect(*)`).
    Wildcard,
    /// `expr->name` (nested field access).
    Field {
        expr: Box<Expr>,
        name: String,
    },
    /// `expr[index]`
    Index {
        expr: Box<Expr>,
        index: Box<Expr>,
    },
    /// `expr[from:to]`, either bound optional.
    Slice {
        expr: Box<Expr>,
        from: Option<Box<Expr>>,
        to: Option<Box<Expr>>,
    },
    Binary {
        op: BinaryOp,
        left: Box<Expr>,
        right: Box<Expr>,
    },
    Unary {
        op: UnaryOp,
        expr: Box<Expr>,
    },
    /// `expr [NOT] BETWEEN low AND high`
    Between {
        expr: Box<Expr>,
        low: Box<Expr>,
        high: Box<Expr>,
        negated: bool,
    },
    /// `expr [NOT] LIKE pattern`
    Like {
        expr: Box<Expr>,
        pattern: Box<Expr>,
        negated: bool,
    },
    /// `expr [NOT] IN (list)`; a single non-literal element may be an array expression.
    InList {
        expr: Box<Expr>,
        list: Vec<Expr>,
        negated: bool,
    },
    /// `expr IS [NOT] NULL`
    IsNull {
        expr: Box<Expr>,
        negated: bool,
    },
    /// `CASE [operand] WHEN .. THEN .. [ELSE ..] END`
    Case {
        operand: Option<Box<Expr>>,
        whens: Vec<(Expr, Expr)>,
        else_: Option<Box<Expr>>,
    },
    /// Function call, name lower-cased. `FILTER (WHERE ...)` on aggregates and
    /// `OVER (...)` on analytic functions are kept.
    Call {
        name: String,
        args: Vec<Expr>,
        over: Option<Over>,
        filter: Option<Box<Expr>>,
    },
}

impl Expr {
    pub fn col(name: &str) -> Expr {
        Expr::Column {
            qualifier: None,
            name: name.to_string(),
        }
    }
    pub fn lit_int(i: i64) -> Expr {
        Expr::Literal(Literal::Int(i))
    }
    pub fn lit_str(s: &str) -> Expr {
        Expr::Literal(Literal::Str(s.to_string()))
    }
    pub fn call(name: &str, args: Vec<Expr>) -> Expr {
        Expr::Call {
            name: name.to_string(),
            args,
            over: None,
            filter: None,
        }
    }
    pub fn bin(op: BinaryOp, left: Expr, right: Expr) -> Expr {
        Expr::Binary {
            op,
            left: Box::new(left),
            right: Box::new(right),
        }
    }
}

impl Expr {
    /// Calls `f` on each direct sub-expression.
    pub fn for_each_child<'a>(&'a self, mut f: impl FnMut(&'a Expr)) {
        match self {
            Expr::Literal(_) | Expr::Column { .. } | Expr::Wildcard => {}
            Expr::Field { expr, .. } | Expr::Unary { expr, .. } | Expr::IsNull { expr, .. } => {
                f(expr)
            }
            Expr::Index { expr, index } => {
                f(expr);
                f(index);
            }
            Expr::Slice { expr, from, to } => {
                f(expr);
                from.iter().chain(to.iter()).for_each(|e| f(e));
            }
            Expr::Binary { left, right, .. } => {
                f(left);
                f(right);
            }
            Expr::Between {
                expr, low, high, ..
            } => {
                f(expr);
                f(low);
                f(high);
            }
            Expr::Like { expr, pattern, .. } => {
                f(expr);
                f(pattern);
            }
            Expr::InList { expr, list, .. } => {
                f(expr);
                list.iter().for_each(f);
            }
            Expr::Case {
                operand,
                whens,
                else_,
            } => {
                operand.iter().for_each(|e| f(e));
                for (c, r) in whens {
                    f(c);
                    f(r);
                }
                else_.iter().for_each(|e| f(e));
            }
            Expr::Call {
                args, over, filter, ..
            } => {
                args.iter().for_each(&mut f);
                if let Some(o) = over {
                    o.partition_by.iter().for_each(&mut f);
                    o.when.iter().for_each(|e| f(e));
                }
                filter.iter().for_each(|e| f(e));
            }
        }
    }

    /// Height of the tree (a leaf is 1), computed without recursion so any
    /// tree can be measured, however deep.
    pub fn depth(&self) -> usize {
        let mut max = 0;
        let mut stack = vec![(self, 1usize)];
        while let Some((e, d)) = stack.pop() {
            max = max.max(d);
            e.for_each_child(|c| stack.push((c, d + 1)));
        }
        max
    }
}
