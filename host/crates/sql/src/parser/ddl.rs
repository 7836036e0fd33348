//! Stream/table statements: `CREATE STREAM|TABLE name (cols) WITH (opts)`,
//! `DROP|DESCRIBE|EXPLAIN STREAM|TABLE name`, `SHOW STREAMS|TABLES`, the
//! column type grammar (`ARRAY(T)`, `STRUCT(f T, ...)`, `DEFAULT literal`)
//! and the validation of WITH options.

use sqlparser::tokenizer::Token;

use super::cursor::{Cursor, PResult};
use super::expr::number_literal;
use crate::ast::{Column, DataType, Literal, Statement, StreamDef, StreamKind, StreamOptions};

/// The option keys accepted in `WITH (...)`, in eKuiper's order.
pub const OPTION_KEYS: &[&str] = &[
    "DATASOURCE",
    "FORMAT",
    "KEY",
    "CONF_KEY",
    "SHARED",
    "STRICT_VALIDATION",
    "TYPE",
    "TIMESTAMP",
    "TIMESTAMP_FORMAT",
    "RETAIN_SIZE",
    "SCHEMAID",
    "EXTRA",
    "VERSION",
    "TEMP",
    "KIND",
    "DELIMITER",
];

/// Accepted `FORMAT` values (lower-case).
pub const FORMATS: &[&str] = &[
    "json",
    "binary",
    "delimited",
    "protobuf",
    "urlencoded",
    "custom",
];

impl Cursor {
    /// `STREAM` / `TABLE` after CREATE, DROP, DESCRIBE, EXPLAIN.
    fn stream_kind(&mut self) -> PResult<StreamKind> {
        if self.eat_kw("STREAM") {
            Ok(StreamKind::Stream)
        } else if self.eat_kw("TABLE") {
            Ok(StreamKind::Table)
        } else {
            Err(self.expected_upper("keyword stream or table"))
        }
    }

    fn stream_name(&mut self, kind: StreamKind) -> PResult<String> {
        self.ident(&format!("{kind} name"))
    }

    /// `DROP|DESCRIBE|EXPLAIN STREAM|TABLE name` (the verb is consumed here).
    pub(crate) fn parse_named_stmt(&mut self) -> PResult<Statement> {
        let verb = self.any_word("statement")?.to_ascii_uppercase();
        let kind = self.stream_kind()?;
        let name = self.stream_name(kind)?;
        Ok(match verb.as_str() {
            "DROP" => Statement::Drop { kind, name },
            _ => Statement::Describe { kind, name },
        })
    }

    /// `SHOW STREAMS|TABLES`.
    pub(crate) fn parse_show(&mut self) -> PResult<Statement> {
        self.expect_kw("SHOW", "SHOW")?;
        if self.eat_kw("STREAMS") {
            Ok(Statement::Show {
                kind: StreamKind::Stream,
            })
        } else if self.eat_kw("TABLES") {
            Ok(Statement::Show {
                kind: StreamKind::Table,
            })
        } else {
            Err(self.expected_upper("keyword streams or tables"))
        }
    }

    /// `CREATE STREAM|TABLE name (cols) WITH (opts)`.
    pub(crate) fn parse_create(&mut self) -> PResult<Statement> {
        let start = self.pos();
        self.expect_kw("CREATE", "CREATE")?;
        let kind = self.stream_kind()?;
        let name = self.stream_name(kind)?;
        self.expect(&Token::LParen, &format!("( after {kind} name"))?;
        let columns = self.parse_columns()?;
        self.expect_kw("WITH", "WITH")?;
        self.expect(&Token::LParen, "( after WITH")?;
        let options = self.parse_options()?;
        validate_def(&kind, &columns, &options).map_err(|m| self.error_at(m, start))?;
        Ok(Statement::CreateStream(StreamDef {
            kind,
            name,
            columns,
            options,
        }))
    }

    /// Column definitions after `(`, through the closing `)`. Trailing comma ok.
    fn parse_columns(&mut self) -> PResult<Vec<Column>> {
        self.enter()?;
        let mut cols = Vec::new();
        loop {
            if self.eat(&Token::RParen) {
                break;
            }
            cols.push(self.parse_column()?);
            if self.eat(&Token::Comma) {
                continue;
            }
            self.expect(&Token::RParen, "comma or rparen")?;
            break;
        }
        self.leave();
        Ok(cols)
    }

    fn parse_column(&mut self) -> PResult<Column> {
        let name = self.any_word("stream field name")?;
        let ty = self.parse_type()?;
        let default = if self.is_kw("DEFAULT") {
            let pos = self.pos();
            self.next();
            let lit = self.parse_default_literal()?;
            Some(convert_default(&lit, &ty).map_err(|m| self.error_at(m, pos))?)
        } else {
            None
        };
        Ok(Column { name, ty, default })
    }

    fn parse_type(&mut self) -> PResult<DataType> {
        const WHAT: &str = "valid stream field types(BIGINT | FLOAT | STRING | DATETIME | BOOLEAN | BYTEA | ARRAY | STRUCT)";
        let word = match self.peek() {
            Token::Word(w) if w.quote_style.is_none() => w.value.to_ascii_uppercase(),
            _ => return Err(self.expected(WHAT)),
        };
        let ty = match word.as_str() {
            "BIGINT" => DataType::Bigint,
            "FLOAT" => DataType::Float,
            "STRING" => DataType::String,
            "DATETIME" => DataType::Datetime,
            "BOOLEAN" => DataType::Boolean,
            "BYTEA" => DataType::Bytea,
            "ARRAY" => {
                self.next();
                self.expect(&Token::LParen, "( after ARRAY")?;
                self.enter()?;
                let inner = self.parse_type();
                self.leave();
                let inner = inner?;
                self.expect(&Token::RParen, "rparen in array type definition")?;
                return Ok(DataType::Array(Box::new(inner)));
            }
            "STRUCT" => {
                self.next();
                self.expect(&Token::LParen, "( after STRUCT")?;
                return Ok(DataType::Struct(self.parse_columns()?));
            }
            _ => return Err(self.expected(WHAT)),
        };
        self.next();
        Ok(ty)
    }

    /// The literal after DEFAULT: number (optionally negative), string, TRUE/FALSE.
    fn parse_default_literal(&mut self) -> PResult<(Literal, String)> {
        let neg = self.eat(&Token::Minus);
        let pos = self.pos();
        let tok = self.peek().clone();
        let out = match tok {
            Token::Number(n, _) => {
                let text = if neg { format!("-{n}") } else { n };
                let lit = number_literal(&text)
                    .ok_or_else(|| self.error_at(format!("invalid number {text}"), pos))?;
                (lit, text)
            }
            _ if neg => return Err(self.expected("a number after -")),
            Token::SingleQuotedString(s) | Token::DoubleQuotedString(s) => {
                (Literal::Str(s.clone()), s)
            }
            Token::Word(w) if w.quote_style.is_none() && w.value.eq_ignore_ascii_case("true") => {
                (Literal::Bool(true), "TRUE".into())
            }
            Token::Word(w) if w.quote_style.is_none() && w.value.eq_ignore_ascii_case("false") => {
                (Literal::Bool(false), "FALSE".into())
            }
            _ => return Err(self.expected("default constraint value")),
        };
        self.next();
        Ok(out)
    }

    /// `KEY = "value"` pairs after `WITH (`, through `)`. Commas between pairs
    /// are optional and a trailing one is accepted, as in eKuiper.
    fn parse_options(&mut self) -> PResult<StreamOptions> {
        let mut o = StreamOptions::default();
        loop {
            if self.eat(&Token::Comma) {
                continue;
            }
            if self.eat(&Token::RParen) {
                return Ok(o);
            }
            let key = match self.peek() {
                Token::Word(w) if w.quote_style.is_none() => w.value.to_ascii_uppercase(),
                Token::EOF => return Err(self.expected("stream option or )")),
                _ => String::new(),
            };
            if !OPTION_KEYS.contains(&key.as_str()) {
                return Err(self.expected_unknown_option());
            }
            self.next();
            self.expect(&Token::Eq, "equals(=) in options")?;
            let pos = self.pos();
            let value = match self.peek() {
                Token::DoubleQuotedString(s) => s.clone(),
                Token::Word(w)
                    if w.quote_style.is_none() && w.value.eq_ignore_ascii_case("true") =>
                {
                    "true".into()
                }
                Token::Word(w)
                    if w.quote_style.is_none() && w.value.eq_ignore_ascii_case("false") =>
                {
                    "false".into()
                }
                _ => return Err(self.expected("string or boolean value in option")),
            };
            self.next();
            set_option(&mut o, &key, value).map_err(|m| self.error_at(m, pos))?;
        }
    }

    fn expected_unknown_option(&self) -> crate::SqlError {
        let found = match self.peek() {
            Token::EOF => "found EOF".to_string(),
            t => format!("found {:?}", super::lexer::describe(t).to_uppercase()),
        };
        self.error_at(
            format!("{found}, unknown option keys({}).", OPTION_KEYS.join("|")),
            self.pos(),
        )
    }
}

fn parse_bool_option(key: &str, value: &str) -> Result<bool, String> {
    if value.eq_ignore_ascii_case("true") {
        Ok(true)
    } else if value.eq_ignore_ascii_case("false") {
        Ok(false)
    } else {
        Err(format!(
            "found {value:?}, expect TRUE/FALSE value in {key} option."
        ))
    }
}

fn set_option(o: &mut StreamOptions, key: &str, value: String) -> Result<(), String> {
    match key {
        "DATASOURCE" => o.datasource = Some(value),
        "FORMAT" => {
            let f = value.to_ascii_lowercase();
            if !FORMATS.contains(&f.as_str()) {
                return Err(format!(
                    "option 'format={value}' is invalid, expected one of {}",
                    FORMATS.join(", ")
                ));
            }
            o.format = Some(f);
        }
        "KEY" => o.key = Some(value),
        "CONF_KEY" => o.conf_key = Some(value),
        "SHARED" => o.shared = parse_bool_option(key, &value)?,
        "STRICT_VALIDATION" => o.strict_validation = parse_bool_option(key, &value)?,
        "TEMP" => o.temp = parse_bool_option(key, &value)?,
        "TYPE" => o.type_ = Some(value),
        "TIMESTAMP" => o.timestamp = Some(value),
        "TIMESTAMP_FORMAT" => o.timestamp_format = Some(value),
        "RETAIN_SIZE" => {
            let n = value
                .trim()
                .parse::<u64>()
                .map_err(|_| format!("found {value:?}, expect number value in {key} option."))?;
            o.retain_size = Some(n);
        }
        "SCHEMAID" => o.schema_id = Some(value),
        "EXTRA" => {
            match serde_json::from_str::<serde_json::Value>(&value) {
                Ok(serde_json::Value::Object(_)) => {}
                _ => return Err("invalid extra option, expect JSON string".to_string()),
            }
            o.extra = Some(value);
        }
        "VERSION" => o.version = Some(value.to_ascii_lowercase()),
        "KIND" => {
            let k = value.to_ascii_lowercase();
            if k != "scan" && k != "lookup" {
                return Err(format!(
                    "found {value:?}, expect scan or lookup value in KIND option."
                ));
            }
            o.kind = Some(k);
        }
        "DELIMITER" => {
            // An empty delimiter cannot split anything: refused rather than
            // silently replaced by the default comma.
            if value.is_empty() {
                return Err("option DELIMITER must not be empty".to_string());
            }
            o.delimiter = Some(value)
        }
        _ => return Err(format!("unknown option {key}")),
    }
    Ok(())
}

/// Whole-statement checks made after parsing (eKuiper's `validateStream`).
fn validate_def(kind: &StreamKind, columns: &[Column], o: &StreamOptions) -> Result<(), String> {
    if o.kind.as_deref() == Some("lookup")
        && o.type_.as_deref() == Some("memory")
        && o.key.is_none()
    {
        return Err("Option \"key\" is required for memory lookup table.".into());
    }
    if o.format.as_deref() == Some("binary") {
        if *kind == StreamKind::Table {
            return Err("'binary' format is not supported for table".into());
        }
        match columns {
            [] => {}
            [c] if c.ty == DataType::Bytea => {}
            [_] => return Err("'binary' format stream can have only 'bytea' type field".into()),
            _ => return Err("'binary' format stream can have only one field".into()),
        }
    }
    Ok(())
}

/// Converts a DEFAULT literal to the column's type.
fn convert_default((lit, text): &(Literal, String), ty: &DataType) -> Result<Literal, String> {
    let bad = || format!("cannot use {text:?} as DEFAULT value of a {ty} column");
    match ty {
        DataType::String => Ok(Literal::Str(text.clone())),
        DataType::Bigint => match lit {
            Literal::Int(i) => Ok(Literal::Int(*i)),
            Literal::Float(f) if f.fract() == 0.0 && f.abs() < 9.2e18 => {
                Ok(Literal::Int(*f as i64))
            }
            Literal::Bool(b) => Ok(Literal::Int(i64::from(*b))),
            Literal::Str(s) => s.trim().parse::<i64>().map(Literal::Int).map_err(|_| bad()),
            Literal::Float(_) | Literal::Null => Err(bad()),
        },
        DataType::Float => match lit {
            Literal::Int(i) => Ok(Literal::Float(*i as f64)),
            Literal::Float(f) => Ok(Literal::Float(*f)),
            Literal::Str(s) => s
                .trim()
                .parse::<f64>()
                .ok()
                .filter(|f| f.is_finite())
                .map(Literal::Float)
                .ok_or_else(bad),
            Literal::Bool(_) | Literal::Null => Err(bad()),
        },
        DataType::Boolean => match lit {
            Literal::Bool(b) => Ok(Literal::Bool(*b)),
            Literal::Int(0) => Ok(Literal::Bool(false)),
            Literal::Int(1) => Ok(Literal::Bool(true)),
            Literal::Str(s) => match s.as_str() {
                "1" | "t" | "T" | "TRUE" | "true" | "True" => Ok(Literal::Bool(true)),
                "0" | "f" | "F" | "FALSE" | "false" | "False" => Ok(Literal::Bool(false)),
                _ => Err(bad()),
            },
            _ => Err(bad()),
        },
        DataType::Datetime | DataType::Bytea | DataType::Array(_) | DataType::Struct(_) => {
            Err(format!("DEFAULT clause is not supported for {ty}"))
        }
    }
}
