//! Rule conditions: the subset of Rhai expressions the engine can vectorize, read from
//! Rhai's own parser.
//!
//! [`parse`] compiles the text with Rhai (as an expression, with the optimizer off so the
//! tree is what was written) and converts the tree into an [`Expr`], or returns a
//! [`ParseError`] whose [`kind`](ParseError::kind) says what to do about it:
//!
//! * [`ParseErrorKind::Syntax`] — Rhai does not accept the text as an expression: a
//!   configuration error, with Rhai's own message and position.
//! * [`ParseErrorKind::Unsupported`] — valid Rhai outside the subset (other functions,
//!   method calls, closures, `if`, indexing, `??`, …): the rule is evaluated per record
//!   by the script engine.
//!
//! # The subset
//!
//! | form | example |
//! |------|---------|
//! | literals | `42`, `1_000`, `0xff`, `10000.0`, `1e3`, `"text"`, `true`, `false`, `()` |
//! | fields | `amount`, `record.amount` |
//! | unary | `!x`, `-x` |
//! | binary | `* / %`, `+ -`, `< <= > >=`, `== !=`, `&&`, `\|\|` (Rhai precedence) |
//! | membership | `channel in ["web", "mobile"]`, `x !in [1, 2]` (a list of literals) |
//! | time | `hour(ts)`, `minute(ts)`, `day_of_week(ts)` |
//! | enrichment | `lookup("users", account_id).home_country`, `lookup_cidr("geo", ip).country`, `in_table("threats", ip)` |
//!
//! Precedence, associativity, literal syntax, escapes and comments are Rhai's, because
//! Rhai parses the text; this module only decides which trees it can vectorize.

use std::fmt;

/// A place in the condition text: 1-based line and column (in characters).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Position {
    /// Line, from 1.
    pub line: u32,
    /// Column in characters, from 1.
    pub column: u32,
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}, position {}", self.line, self.column)
    }
}

/// A constant in a condition.
#[derive(Debug, Clone, PartialEq)]
pub enum Literal {
    /// `()`, Rhai's unit, which stands for a missing value (null).
    Unit,
    /// `true` or `false`.
    Bool(bool),
    /// An integer (Rhai `INT`, i64).
    Int(i64),
    /// A floating-point number (Rhai `FLOAT`, f64).
    Float(f64),
    /// A string.
    Str(String),
}

impl fmt::Display for Literal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Literal::Unit => f.write_str("()"),
            Literal::Bool(b) => write!(f, "{b}"),
            Literal::Int(i) => write!(f, "{i}"),
            // Debug keeps the fraction (`10000.0`), so the text reads back as a float.
            Literal::Float(x) => write!(f, "{x:?}"),
            Literal::Str(s) => write!(f, "{s:?}"),
        }
    }
}

/// A prefix operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum UnaryOp {
    /// `!` — boolean not.
    Not,
    /// `-` — numeric negation.
    Neg,
}

/// An infix operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BinaryOp {
    /// `*`
    Mul,
    /// `/`
    Div,
    /// `%`
    Rem,
    /// `+`
    Add,
    /// `-`
    Sub,
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `>`
    Gt,
    /// `>=`
    Ge,
    /// `==`
    Eq,
    /// `!=`
    Ne,
    /// `&&` (short-circuit)
    And,
    /// `||` (short-circuit)
    Or,
}

impl BinaryOp {
    /// The operator as written.
    pub fn symbol(self) -> &'static str {
        match self {
            BinaryOp::Mul => "*",
            BinaryOp::Div => "/",
            BinaryOp::Rem => "%",
            BinaryOp::Add => "+",
            BinaryOp::Sub => "-",
            BinaryOp::Lt => "<",
            BinaryOp::Le => "<=",
            BinaryOp::Gt => ">",
            BinaryOp::Ge => ">=",
            BinaryOp::Eq => "==",
            BinaryOp::Ne => "!=",
            BinaryOp::And => "&&",
            BinaryOp::Or => "||",
        }
    }
}

/// A built-in function of a timestamp (i64 µs since the Unix epoch, UTC, or an RFC 3339
/// string).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TimeFn {
    /// `hour(ts)`: 0–23, UTC.
    Hour,
    /// `minute(ts)`: 0–59.
    Minute,
    /// `day_of_week(ts)`: 0 = Monday … 6 = Sunday (as Rhai's built-in), UTC.
    DayOfWeek,
}

impl TimeFn {
    /// The function's name in conditions.
    pub fn name(self) -> &'static str {
        match self {
            TimeFn::Hour => "hour",
            TimeFn::Minute => "minute",
            TimeFn::DayOfWeek => "day_of_week",
        }
    }
}

/// A parsed condition (sub-)expression with the position of its first token.
#[derive(Debug, Clone, PartialEq)]
pub struct Expr {
    /// What it is.
    pub kind: ExprKind,
    /// Where it starts in the condition text.
    pub pos: Position,
}

/// The forms of [`Expr`].
#[derive(Debug, Clone, PartialEq)]
pub enum ExprKind {
    /// A constant.
    Literal(Literal),
    /// A bare identifier: the record's field of that name (Rhai: a variable in scope).
    Field(String),
    /// `record.name`: the record's field, `()` when the record has no such field.
    RecordField(String),
    /// A prefix operator applied to an operand.
    Unary(UnaryOp, Box<Expr>),
    /// An infix operator.
    Binary(BinaryOp, Box<Expr>, Box<Expr>),
    /// `x in [a, b, …]`: whether `x == a || x == b || …`.
    InList(Box<Expr>, Vec<Literal>),
    /// `hour(x)`, `minute(x)`, `day_of_week(x)`.
    Time(TimeFn, Box<Expr>),
    /// `lookup("table", key).column` (`cidr: false`) or
    /// `lookup_cidr("table", ip).column` (`cidr: true`).
    Lookup {
        /// The enrichment table's name.
        table: String,
        /// Longest-prefix match on an IP address rather than an exact key.
        cidr: bool,
        /// The key expression.
        key: Box<Expr>,
        /// The value column read from the matching row.
        column: String,
    },
    /// `in_table("table", key)`: whether the table has a row for the key.
    InTable {
        /// The enrichment table's name.
        table: String,
        /// The key expression.
        key: Box<Expr>,
    },
}

impl Expr {
    /// The record fields the expression reads, in order of first use, without duplicates.
    pub fn fields(&self) -> Vec<&str> {
        let mut out = Vec::new();
        self.visit(&mut |e| {
            if let ExprKind::Field(n) | ExprKind::RecordField(n) = &e.kind
                && !out.contains(&n.as_str())
            {
                out.push(n.as_str());
            }
        });
        out
    }

    /// Calls `f` on this expression and every sub-expression, parents first.
    pub fn visit<'a>(&'a self, f: &mut impl FnMut(&'a Expr)) {
        f(self);
        match &self.kind {
            ExprKind::Literal(_) | ExprKind::Field(_) | ExprKind::RecordField(_) => {}
            ExprKind::Unary(_, a)
            | ExprKind::InList(a, _)
            | ExprKind::Time(_, a)
            | ExprKind::Lookup { key: a, .. }
            | ExprKind::InTable { key: a, .. } => a.visit(f),
            ExprKind::Binary(_, a, b) => {
                a.visit(f);
                b.visit(f);
            }
        }
    }
}

/// Fully parenthesized, so the text is unambiguous (it keys shared sub-expressions).
impl fmt::Display for Expr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            ExprKind::Literal(l) => write!(f, "{l}"),
            ExprKind::Field(n) => f.write_str(n),
            ExprKind::RecordField(n) => write!(f, "record.{n}"),
            ExprKind::Unary(UnaryOp::Not, a) => write!(f, "!{a}"),
            ExprKind::Unary(UnaryOp::Neg, a) => write!(f, "-{a}"),
            ExprKind::Binary(op, a, b) => write!(f, "({a} {} {b})", op.symbol()),
            ExprKind::InList(a, items) => {
                write!(f, "({a} in [")?;
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{item}")?;
                }
                f.write_str("])")
            }
            ExprKind::Time(func, a) => write!(f, "{}({a})", func.name()),
            ExprKind::Lookup {
                table,
                cidr,
                key,
                column,
            } => {
                let name = if *cidr { "lookup_cidr" } else { "lookup" };
                write!(f, "{name}({table:?}, {key}).{column}")
            }
            ExprKind::InTable { table, key } => write!(f, "in_table({table:?}, {key})"),
        }
    }
}

/// Why a condition was not turned into an [`Expr`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ParseErrorKind {
    /// Not a valid expression: a configuration error.
    Syntax,
    /// Possibly valid Rhai, outside the vectorizable subset: evaluate it per record.
    Unsupported,
}

/// A condition the parser did not turn into an [`Expr`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    /// Configuration error or just outside the subset.
    pub kind: ParseErrorKind,
    /// Where the problem was found.
    pub position: Position,
    /// What the problem is.
    pub message: String,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = match self.kind {
            ParseErrorKind::Syntax => "syntax error",
            ParseErrorKind::Unsupported => "not vectorizable",
        };
        write!(f, "{what} at {}: {}", self.position, self.message)
    }
}

impl std::error::Error for ParseError {}

/// The parse-only Rhai engine: no packages (calls are resolved at run time, not parse
/// time) and no optimizer, so constant folding cannot turn `1 + 1` into a literal the
/// per-record engine would not see the same way.
fn parser() -> &'static rhai::Engine {
    static PARSER: std::sync::OnceLock<rhai::Engine> = std::sync::OnceLock::new();
    PARSER.get_or_init(|| {
        let mut engine = rhai::Engine::new_raw();
        engine.set_optimization_level(rhai::OptimizationLevel::None);
        engine
    })
}

/// Parses a rule condition.
pub fn parse(source: &str) -> Result<Expr, ParseError> {
    let ast = parser().compile_expression(source).map_err(|e| {
        // Too deep for the parse-only engine's default limit is not a mistake in the
        // text: the script engine, with its own configured limit, decides.
        let kind = match *e.0 {
            rhai::ParseErrorType::ExprTooDeep => ParseErrorKind::Unsupported,
            _ => ParseErrorKind::Syntax,
        };
        err(kind, position(e.1), e.0.to_string())
    })?;
    match ast.statements() {
        [rhai::Stmt::Expr(e)] => convert(e),
        other => Err(err(
            ParseErrorKind::Unsupported,
            other
                .first()
                .map_or(Position::START, |s| position(s.position())),
            "only a single expression is vectorizable",
        )),
    }
}

impl Position {
    /// Line 1, column 1.
    pub const START: Position = Position { line: 1, column: 1 };
}

/// Rhai's position (1-based line and character column), clamped into `u32`.
pub(crate) fn position(pos: rhai::Position) -> Position {
    let clamp = |n: Option<usize>| n.map_or(1, |n| u32::try_from(n).unwrap_or(u32::MAX));
    Position {
        line: clamp(pos.line()),
        column: clamp(pos.position()),
    }
}

fn err(kind: ParseErrorKind, position: Position, message: impl Into<String>) -> ParseError {
    ParseError {
        kind,
        position,
        message: message.into(),
    }
}

fn unsupported(at: rhai::Position, message: impl Into<String>) -> ParseError {
    err(ParseErrorKind::Unsupported, position(at), message)
}

/// Where an expression starts as written: the left operand of an operator.
fn start(e: &rhai::Expr) -> rhai::Position {
    match e {
        rhai::Expr::FnCall(call, pos) => match (call.name.as_str(), call.args.as_slice()) {
            // `x in list` is stored as `contains(list, x)`.
            ("contains", [_, x]) => start(x),
            (op, [lhs, _]) if binary_op(op).is_some() => start(lhs),
            _ => *pos,
        },
        rhai::Expr::And(xs, pos) | rhai::Expr::Or(xs, pos) => xs.first().map_or(*pos, start),
        other => other.start_position(),
    }
}

fn binary_op(name: &str) -> Option<BinaryOp> {
    Some(match name {
        "*" => BinaryOp::Mul,
        "/" => BinaryOp::Div,
        "%" => BinaryOp::Rem,
        "+" => BinaryOp::Add,
        "-" => BinaryOp::Sub,
        "<" => BinaryOp::Lt,
        "<=" => BinaryOp::Le,
        ">" => BinaryOp::Gt,
        ">=" => BinaryOp::Ge,
        "==" => BinaryOp::Eq,
        "!=" => BinaryOp::Ne,
        _ => return None,
    })
}

/// A constant, if `e` is one the subset has.
fn literal(e: &rhai::Expr) -> Option<Literal> {
    Some(match e {
        rhai::Expr::Unit(_) => Literal::Unit,
        rhai::Expr::BoolConstant(b, _) => Literal::Bool(*b),
        rhai::Expr::IntegerConstant(i, _) => Literal::Int(*i),
        rhai::Expr::FloatConstant(x, _) => Literal::Float(**x),
        rhai::Expr::StringConstant(s, _) => Literal::Str(s.to_string()),
        rhai::Expr::DynamicConstant(d, _) => dynamic_literal(d)?,
        _ => return None,
    })
}

fn dynamic_literal(d: &rhai::Dynamic) -> Option<Literal> {
    Some(if d.is_unit() {
        Literal::Unit
    } else if let Ok(b) = d.as_bool() {
        Literal::Bool(b)
    } else if let Ok(i) = d.as_int() {
        Literal::Int(i)
    } else if let Ok(x) = d.as_float() {
        Literal::Float(x)
    } else if d.is_string() {
        Literal::Str(d.clone().into_string().ok()?)
    } else {
        return None;
    })
}

/// The literals of an array literal, or why it is not vectorizable.
fn list(e: &rhai::Expr) -> Result<Vec<Literal>, ParseError> {
    let not_literals = || {
        unsupported(
            e.position(),
            "`in` is vectorizable only over a list of literals",
        )
    };
    match e {
        rhai::Expr::Array(items, _) => items
            .iter()
            .map(|i| literal(i).ok_or_else(not_literals))
            .collect(),
        rhai::Expr::DynamicConstant(d, _) if d.is_array() => d
            .read_lock::<rhai::Array>()
            .ok_or_else(not_literals)?
            .iter()
            .map(|i| dynamic_literal(i).ok_or_else(not_literals))
            .collect(),
        _ => Err(not_literals()),
    }
}

fn convert(e: &rhai::Expr) -> Result<Expr, ParseError> {
    let pos = position(start(e));
    let node = |kind| Ok(Expr { kind, pos });
    if let Some(l) = literal(e) {
        return node(ExprKind::Literal(l));
    }
    match e {
        rhai::Expr::Variable(x, _, at) => {
            let name = x.1.as_str();
            if name == "record" {
                return Err(unsupported(
                    *at,
                    "`record` is only vectorizable as `record.field`",
                ));
            }
            node(ExprKind::Field(name.to_owned()))
        }
        rhai::Expr::And(xs, _) | rhai::Expr::Or(xs, _) => {
            let op = if matches!(e, rhai::Expr::And(..)) {
                BinaryOp::And
            } else {
                BinaryOp::Or
            };
            let mut operands = xs.iter().map(convert);
            let first = operands
                .next()
                .unwrap_or_else(|| Err(unsupported(e.position(), "empty operator")))?;
            operands.try_fold(first, |lhs, rhs| {
                Ok(Expr {
                    pos: lhs.pos,
                    kind: ExprKind::Binary(op, Box::new(lhs), Box::new(rhs?)),
                })
            })
        }
        rhai::Expr::Dot(x, _, at) => dot(&x.lhs, &x.rhs, *at, pos),
        rhai::Expr::FnCall(call, at) => self::call(call, *at, pos),
        rhai::Expr::Index(_, _, at) => Err(unsupported(*at, "indexing is not vectorizable")),
        rhai::Expr::MethodCall(call, at) => Err(unsupported(
            *at,
            format!("method call `{}` is not vectorizable", call.name),
        )),
        rhai::Expr::Array(_, at) => Err(unsupported(
            *at,
            "array literals are only vectorizable after `in`",
        )),
        rhai::Expr::Coalesce(_, at) => Err(unsupported(*at, "`??` is not vectorizable")),
        rhai::Expr::CharConstant(_, at) => {
            Err(unsupported(*at, "character literals are not vectorizable"))
        }
        rhai::Expr::InterpolatedString(_, at) => Err(unsupported(
            *at,
            "interpolated strings are not vectorizable",
        )),
        rhai::Expr::ThisPtr(at) => Err(unsupported(*at, "`this` is not vectorizable")),
        rhai::Expr::Stmt(block) => Err(unsupported(
            block.position(),
            "blocks and statements (`if`, `switch`, loops) are not vectorizable",
        )),
        other => Err(unsupported(
            other.position(),
            "maps, closures and function pointers are not vectorizable",
        )),
    }
}

/// `record.name` or `lookup(…).column`; any other property access is outside the subset.
fn dot(
    lhs: &rhai::Expr,
    rhs: &rhai::Expr,
    at: rhai::Position,
    pos: Position,
) -> Result<Expr, ParseError> {
    let p = match rhs {
        rhai::Expr::Property(p, _) => p,
        rhai::Expr::MethodCall(call, _) => {
            let message = format!("method call `{}` is not vectorizable", call.name);
            return Err(unsupported(at, message));
        }
        _ => {
            return Err(unsupported(
                at,
                "chained property access is not vectorizable",
            ));
        }
    };
    let name = p.2.to_string();
    match lhs {
        rhai::Expr::Variable(x, ..) if x.1 == "record" => Ok(Expr {
            kind: ExprKind::RecordField(name),
            pos,
        }),
        rhai::Expr::FnCall(call, call_at)
            if matches!(call.name.as_str(), "lookup" | "lookup_cidr") =>
        {
            let (table, key) = table_and_key(call, *call_at)?;
            Ok(Expr {
                kind: ExprKind::Lookup {
                    table,
                    cidr: call.name == "lookup_cidr",
                    key: Box::new(key),
                    column: name,
                },
                pos,
            })
        }
        _ => Err(unsupported(at, "property access is not vectorizable")),
    }
}

/// The literal table name and the converted key of `lookup`, `lookup_cidr` or `in_table`.
fn table_and_key(
    call: &rhai::FnCallExpr,
    at: rhai::Position,
) -> Result<(String, Expr), ParseError> {
    let name = call.name.as_str();
    let [table, key] = call.args.as_slice() else {
        return Err(unsupported(
            at,
            format!("`{name}` takes 2 arguments, not {}", call.args.len()),
        ));
    };
    let rhai::Expr::StringConstant(table, _) = table else {
        return Err(unsupported(
            table.position(),
            format!("`{name}` is vectorizable only with a literal table name"),
        ));
    };
    Ok((table.to_string(), convert(key)?))
}

fn call(call: &rhai::FnCallExpr, at: rhai::Position, pos: Position) -> Result<Expr, ParseError> {
    let node = |kind| Ok(Expr { kind, pos });
    let name = call.name.as_str();
    match (name, call.args.as_slice()) {
        ("!", [a]) => node(ExprKind::Unary(UnaryOp::Not, Box::new(convert(a)?))),
        ("-", [a]) => node(ExprKind::Unary(UnaryOp::Neg, Box::new(convert(a)?))),
        ("contains", [items, x]) => node(ExprKind::InList(Box::new(convert(x)?), list(items)?)),
        ("hour" | "minute" | "day_of_week", args) => {
            let f = match name {
                "hour" => TimeFn::Hour,
                "minute" => TimeFn::Minute,
                _ => TimeFn::DayOfWeek,
            };
            let [arg] = args else {
                return Err(unsupported(
                    at,
                    format!("`{name}` takes 1 argument, not {}", args.len()),
                ));
            };
            node(ExprKind::Time(f, Box::new(convert(arg)?)))
        }
        ("in_table", _) => {
            let (table, key) = table_and_key(call, at)?;
            node(ExprKind::InTable {
                table,
                key: Box::new(key),
            })
        }
        ("lookup" | "lookup_cidr", _) => Err(unsupported(
            at,
            format!("`{name}(…)` is vectorizable only with `.column` after it"),
        )),
        (op, [a, b]) => match binary_op(op) {
            Some(op) => node(ExprKind::Binary(
                op,
                Box::new(convert(a)?),
                Box::new(convert(b)?),
            )),
            None => Err(unsupported(at, not_vectorizable(op))),
        },
        _ => Err(unsupported(at, not_vectorizable(name))),
    }
}

fn not_vectorizable(name: &str) -> String {
    if rhai::is_valid_identifier(name) {
        format!("function `{name}` is not vectorizable")
    } else {
        format!("operator `{name}` is not vectorizable")
    }
}
