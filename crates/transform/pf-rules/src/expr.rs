//! Rule conditions: a small Pratt parser for the subset of Rhai expressions the engine
//! can vectorize.
//!
//! [`parse`] either returns an [`Expr`] or a [`ParseError`] whose
//! [`kind`](ParseError::kind) says what to do about it:
//!
//! * [`ParseErrorKind::Syntax`] — the text is not a valid expression in any Rhai dialect
//!   (unexpected end, unterminated string, unbalanced brackets): a configuration error.
//! * [`ParseErrorKind::Unsupported`] — the text may well be valid Rhai but uses something
//!   outside the subset (other functions, method calls, statements, closures, `if`,
//!   indexing, `??`, …): the rule is evaluated per record by the script engine.
//!
//! When unsure, the parser says `Unsupported`, never `Syntax`, so a valid script is never
//! rejected here.
//!
//! # The subset
//!
//! | form | example |
//! |------|---------|
//! | literals | `42`, `1_000`, `0xff`, `10000.0`, `1e3`, `"text"`, `true`, `false`, `()` |
//! | fields | `amount`, `record.amount` |
//! | unary | `!x`, `-x` |
//! | binary | `* / %`, `+ -`, `< <= > >=`, `== !=`, `&&`, `\|\|` (Rhai precedence) |
//! | membership | `channel in ["web", "mobile"]` (a list of literals) |
//! | time | `hour(ts)`, `minute(ts)`, `day_of_week(ts)` |
//! | enrichment | `lookup("users", account_id).home_country`, `lookup_cidr("geo", ip).country`, `in_table("threats", ip)` |
//!
//! Precedence follows Rhai (lowest first): `||` (30), `&&` (60), `== !=` (90), `in` (110),
//! `< <= > >=` (130), `+ -` (150), `* / %` (180); all left-associative. Unary `!` and `-`
//! bind tighter than any binary operator, so `!a == b` is `(!a) == b`. Comments (`//`,
//! `/* */`) are skipped.

use std::fmt;

/// Deepest nesting of brackets and unary operators accepted; deeper expressions are
/// handed to the script engine (whose own limit applies) instead of risking the stack.
const MAX_DEPTH: usize = 64;

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

    /// Rhai's binding power; higher binds tighter.
    fn precedence(self) -> u8 {
        match self {
            BinaryOp::Or => 30,
            BinaryOp::And => 60,
            BinaryOp::Eq | BinaryOp::Ne => 90,
            BinaryOp::Lt | BinaryOp::Le | BinaryOp::Gt | BinaryOp::Ge => 130,
            BinaryOp::Add | BinaryOp::Sub => 150,
            BinaryOp::Mul | BinaryOp::Div | BinaryOp::Rem => 180,
        }
    }
}

/// Precedence of `in`, between equality and ordering as in Rhai.
const IN_PRECEDENCE: u8 = 110;

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

/// Parses a rule condition.
pub fn parse(source: &str) -> Result<Expr, ParseError> {
    let tokens = lex(source)?;
    let mut p = Parser {
        tokens,
        at: 0,
        depth: 0,
    };
    let expr = p.expr(0)?;
    match p.peek() {
        Tok::Eof => Ok(expr),
        Tok::Semicolon => Err(p.unsupported("statements (`;`) are not vectorizable")),
        Tok::RParen | Tok::RBracket => Err(p.syntax(format!("unmatched `{}`", p.peek()))),
        other => {
            let msg = format!("unexpected `{other}` after a complete expression");
            Err(p.unsupported(msg))
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Int(i64),
    Float(f64),
    Str(String),
    Ident(String),
    LParen,
    RParen,
    LBracket,
    RBracket,
    Comma,
    Dot,
    Semicolon,
    Bang,
    Minus,
    Plus,
    Star,
    Slash,
    Percent,
    Lt,
    Le,
    Gt,
    Ge,
    EqEq,
    Ne,
    AndAnd,
    OrOr,
    /// Anything else Rhai may know (`=`, `{`, `|`, `?`, `::`, `'c'`, backticks, …).
    Other(String),
    Eof,
}

impl fmt::Display for Tok {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = match self {
            Tok::Int(i) => return write!(f, "{i}"),
            Tok::Float(x) => return write!(f, "{x:?}"),
            Tok::Str(s) => return write!(f, "{s:?}"),
            Tok::Ident(s) | Tok::Other(s) => return f.write_str(s),
            Tok::LParen => "(",
            Tok::RParen => ")",
            Tok::LBracket => "[",
            Tok::RBracket => "]",
            Tok::Comma => ",",
            Tok::Dot => ".",
            Tok::Semicolon => ";",
            Tok::Bang => "!",
            Tok::Minus => "-",
            Tok::Plus => "+",
            Tok::Star => "*",
            Tok::Slash => "/",
            Tok::Percent => "%",
            Tok::Lt => "<",
            Tok::Le => "<=",
            Tok::Gt => ">",
            Tok::Ge => ">=",
            Tok::EqEq => "==",
            Tok::Ne => "!=",
            Tok::AndAnd => "&&",
            Tok::OrOr => "||",
            Tok::Eof => "end of input",
        };
        f.write_str(s)
    }
}

struct Lexer<'a> {
    chars: std::iter::Peekable<std::str::Chars<'a>>,
    line: u32,
    column: u32,
}

impl Lexer<'_> {
    fn pos(&self) -> Position {
        Position {
            line: self.line,
            column: self.column,
        }
    }

    fn peek(&mut self) -> Option<char> {
        self.chars.peek().copied()
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.chars.next()?;
        if c == '\n' {
            self.line += 1;
            self.column = 1;
        } else {
            self.column += 1;
        }
        Some(c)
    }

    fn eat(&mut self, c: char) -> bool {
        if self.peek() == Some(c) {
            self.bump();
            true
        } else {
            false
        }
    }
}

fn err(kind: ParseErrorKind, position: Position, message: impl Into<String>) -> ParseError {
    ParseError {
        kind,
        position,
        message: message.into(),
    }
}

fn lex(source: &str) -> Result<Vec<(Tok, Position)>, ParseError> {
    use ParseErrorKind::{Syntax, Unsupported};
    let mut lx = Lexer {
        chars: source.chars().peekable(),
        line: 1,
        column: 1,
    };
    let mut out = Vec::new();
    loop {
        let pos = lx.pos();
        let Some(c) = lx.bump() else {
            out.push((Tok::Eof, pos));
            return Ok(out);
        };
        let tok = match c {
            c if c.is_whitespace() => continue,
            '/' if lx.eat('/') => {
                while lx.peek().is_some_and(|c| c != '\n') {
                    lx.bump();
                }
                continue;
            }
            '/' if lx.eat('*') => {
                // Rhai block comments nest.
                let mut depth = 1;
                while depth > 0 {
                    match lx.bump() {
                        None => return Err(err(Syntax, pos, "unterminated block comment")),
                        Some('*') if lx.eat('/') => depth -= 1,
                        Some('/') if lx.eat('*') => depth += 1,
                        Some(_) => {}
                    }
                }
                continue;
            }
            '0'..='9' => lex_number(&mut lx, c, pos)?,
            '"' => Tok::Str(lex_string(&mut lx, pos)?),
            c if c.is_ascii_alphabetic() || c == '_' => {
                let mut s = String::from(c);
                while let Some(c) = lx.peek().filter(|c| c.is_ascii_alphanumeric() || *c == '_') {
                    s.push(c);
                    lx.bump();
                }
                Tok::Ident(s)
            }
            '(' => Tok::LParen,
            ')' => Tok::RParen,
            '[' => Tok::LBracket,
            ']' => Tok::RBracket,
            ',' => Tok::Comma,
            ';' => Tok::Semicolon,
            '.' => {
                if lx.peek() == Some('.') {
                    Tok::Other("..".into())
                } else {
                    Tok::Dot
                }
            }
            '!' if lx.eat('=') => {
                if lx.eat('=') {
                    Tok::Other("!==".into())
                } else {
                    Tok::Ne
                }
            }
            '!' => Tok::Bang,
            '-' if lx.peek() == Some('=') || lx.peek() == Some('>') => {
                Tok::Other(format!("-{}", lx.bump().unwrap_or_default()))
            }
            '-' => Tok::Minus,
            '+' if lx.peek() == Some('=') || lx.peek() == Some('+') => {
                Tok::Other(format!("+{}", lx.bump().unwrap_or_default()))
            }
            '+' => Tok::Plus,
            '*' if lx.peek() == Some('*') || lx.peek() == Some('=') => {
                Tok::Other(format!("*{}", lx.bump().unwrap_or_default()))
            }
            '*' => Tok::Star,
            '/' if lx.peek() == Some('=') => Tok::Other("/=".into()),
            '/' => Tok::Slash,
            '%' if lx.peek() == Some('=') => Tok::Other("%=".into()),
            '%' => Tok::Percent,
            '<' if lx.eat('=') => Tok::Le,
            '<' if lx.peek() == Some('<') || lx.peek() == Some('-') => {
                Tok::Other(format!("<{}", lx.bump().unwrap_or_default()))
            }
            '<' => Tok::Lt,
            '>' if lx.eat('=') => Tok::Ge,
            '>' if lx.peek() == Some('>') => Tok::Other(">>".into()),
            '>' => Tok::Gt,
            '=' if lx.eat('=') => {
                if lx.eat('=') {
                    Tok::Other("===".into())
                } else {
                    Tok::EqEq
                }
            }
            '&' if lx.eat('&') => Tok::AndAnd,
            '|' if lx.eat('|') => Tok::OrOr,
            '`' => {
                return Err(err(
                    Unsupported,
                    pos,
                    "back-tick strings are not vectorizable",
                ));
            }
            '\'' => {
                return Err(err(
                    Unsupported,
                    pos,
                    "character literals are not vectorizable",
                ));
            }
            other => Tok::Other(other.to_string()),
        };
        out.push((tok, pos));
    }
}

fn lex_number(lx: &mut Lexer<'_>, first: char, pos: Position) -> Result<Tok, ParseError> {
    use ParseErrorKind::{Syntax, Unsupported};
    let radix = match (first, lx.peek()) {
        ('0', Some('x' | 'X')) => 16,
        ('0', Some('o' | 'O')) => 8,
        ('0', Some('b' | 'B')) => 2,
        _ => 10,
    };
    let mut text = String::new();
    if radix != 10 {
        lx.bump();
        while let Some(c) = lx.peek().filter(|c| c.is_ascii_alphanumeric() || *c == '_') {
            lx.bump();
            if c != '_' {
                text.push(c);
            }
        }
        return i64::from_str_radix(&text, radix)
            .map(Tok::Int)
            .map_err(|_| {
                err(
                    Unsupported,
                    pos,
                    format!("integer literal `{text}` (base {radix}) is not a valid i64"),
                )
            });
    }
    text.push(first);
    let mut float = false;
    while let Some(c) = lx.peek() {
        if c.is_ascii_digit() {
            text.push(c);
        } else if c == '_' {
            // Digit separator.
        } else if c == '.' && !float {
            // `1.5` is a float; `1.foo` or `1..2` is not part of the number.
            let mut ahead = lx.chars.clone();
            ahead.next();
            if !ahead.next().is_some_and(|d| d.is_ascii_digit()) {
                break;
            }
            float = true;
            text.push('.');
        } else if c == 'e' || c == 'E' {
            let mut ahead = lx.chars.clone();
            ahead.next();
            let next = ahead.next();
            let exp_ok = match next {
                Some(d) if d.is_ascii_digit() => true,
                Some('+' | '-') => ahead.next().is_some_and(|d| d.is_ascii_digit()),
                _ => false,
            };
            if !exp_ok {
                break;
            }
            float = true;
            text.push('e');
            lx.bump();
            if let Some(sign @ ('+' | '-')) = lx.peek() {
                text.push(sign);
                lx.bump();
            }
            continue;
        } else {
            break;
        }
        lx.bump();
    }
    if lx
        .peek()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
    {
        return Err(err(Syntax, pos, format!("invalid number `{text}…`")));
    }
    if float {
        text.parse::<f64>()
            .map(Tok::Float)
            .map_err(|_| err(Syntax, pos, format!("invalid number `{text}`")))
    } else {
        text.parse::<i64>().map(Tok::Int).map_err(|_| {
            err(
                Unsupported,
                pos,
                format!("integer literal `{text}` does not fit in i64"),
            )
        })
    }
}

fn lex_string(lx: &mut Lexer<'_>, pos: Position) -> Result<String, ParseError> {
    use ParseErrorKind::{Syntax, Unsupported};
    let mut s = String::new();
    loop {
        let at = lx.pos();
        match lx.bump() {
            None | Some('\n') => return Err(err(Syntax, pos, "unterminated string")),
            Some('"') => return Ok(s),
            Some('\\') => {
                let c = match lx.bump() {
                    None => return Err(err(Syntax, pos, "unterminated string")),
                    Some('n') => '\n',
                    Some('t') => '\t',
                    Some('r') => '\r',
                    Some('\\') => '\\',
                    Some('"') => '"',
                    Some('\'') => '\'',
                    Some(kind @ ('x' | 'u' | 'U')) => {
                        let digits = match kind {
                            'x' => 2,
                            'u' => 4,
                            _ => 8,
                        };
                        let mut code = 0u32;
                        for _ in 0..digits {
                            let d = lx.bump().and_then(|c| c.to_digit(16)).ok_or_else(|| {
                                err(Unsupported, at, "malformed escape sequence in string")
                            })?;
                            code = code * 16 + d;
                        }
                        char::from_u32(code).ok_or_else(|| {
                            err(Unsupported, at, "escape is not a valid Unicode character")
                        })?
                    }
                    Some(_) => {
                        return Err(err(
                            Unsupported,
                            at,
                            "this escape sequence is not vectorizable",
                        ));
                    }
                };
                s.push(c);
            }
            Some(c) => s.push(c),
        }
    }
}

/// Rhai keywords and reserved words: a rule using one is left to the script engine.
const KEYWORDS: &[&str] = &[
    "let",
    "const",
    "if",
    "else",
    "switch",
    "do",
    "while",
    "until",
    "loop",
    "for",
    "continue",
    "break",
    "return",
    "throw",
    "try",
    "catch",
    "fn",
    "private",
    "import",
    "export",
    "as",
    "global",
    "this",
    "is",
    "var",
    "static",
    "shared",
    "goto",
    "exit",
    "match",
    "case",
    "public",
    "protected",
    "new",
    "use",
    "with",
    "module",
    "package",
    "super",
    "spawn",
    "thread",
    "go",
    "sync",
    "async",
    "await",
    "yield",
    "default",
    "void",
    "null",
    "nil",
    "Fn",
    "call",
    "curry",
    "print",
    "debug",
    "type_of",
    "eval",
    "is_shared",
    "is_def_var",
    "is_def_fn",
];

struct Parser {
    tokens: Vec<(Tok, Position)>,
    at: usize,
    depth: usize,
}

impl Parser {
    fn peek(&self) -> &Tok {
        self.tokens.get(self.at).map_or(&Tok::Eof, |t| &t.0)
    }

    fn pos(&self) -> Position {
        self.tokens
            .get(self.at)
            .or(self.tokens.last())
            .map_or(Position { line: 1, column: 1 }, |t| t.1)
    }

    fn next(&mut self) -> (Tok, Position) {
        let t = self
            .tokens
            .get(self.at)
            .cloned()
            .unwrap_or((Tok::Eof, self.pos()));
        if self.at < self.tokens.len() {
            self.at += 1;
        }
        t
    }

    fn syntax(&self, message: impl Into<String>) -> ParseError {
        err(ParseErrorKind::Syntax, self.pos(), message)
    }

    fn unsupported(&self, message: impl Into<String>) -> ParseError {
        err(ParseErrorKind::Unsupported, self.pos(), message)
    }

    /// The error for a token that cannot start an expression.
    fn unexpected(&self, what: &str) -> ParseError {
        match self.peek() {
            Tok::Eof => self.syntax(format!("expected {what}, found end of input")),
            t @ (Tok::RParen | Tok::RBracket | Tok::Comma) => {
                self.syntax(format!("expected {what}, found `{t}`"))
            }
            t @ (Tok::Star
            | Tok::Slash
            | Tok::Percent
            | Tok::Lt
            | Tok::Le
            | Tok::Gt
            | Tok::Ge
            | Tok::EqEq
            | Tok::Ne
            | Tok::AndAnd
            | Tok::OrOr) => self.syntax(format!("expected {what}, found operator `{t}`")),
            t => self.unsupported(format!("`{t}` is not vectorizable")),
        }
    }

    fn expect(&mut self, tok: Tok, what: &str) -> Result<(), ParseError> {
        if *self.peek() == tok {
            self.next();
            Ok(())
        } else if *self.peek() == Tok::Eof {
            Err(self.syntax(format!("expected {what}, found end of input")))
        } else {
            let found = self.peek().to_string();
            Err(self.unsupported(format!("expected {what}, found `{found}`")))
        }
    }

    fn enter(&mut self) -> Result<(), ParseError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(self.unsupported(format!(
                "expression nested more than {MAX_DEPTH} levels deep"
            )));
        }
        Ok(())
    }

    fn infix(&self) -> Option<BinaryOp> {
        Some(match self.peek() {
            Tok::Star => BinaryOp::Mul,
            Tok::Slash => BinaryOp::Div,
            Tok::Percent => BinaryOp::Rem,
            Tok::Plus => BinaryOp::Add,
            Tok::Minus => BinaryOp::Sub,
            Tok::Lt => BinaryOp::Lt,
            Tok::Le => BinaryOp::Le,
            Tok::Gt => BinaryOp::Gt,
            Tok::Ge => BinaryOp::Ge,
            Tok::EqEq => BinaryOp::Eq,
            Tok::Ne => BinaryOp::Ne,
            Tok::AndAnd => BinaryOp::And,
            Tok::OrOr => BinaryOp::Or,
            _ => return None,
        })
    }

    /// Pratt loop: operators binding at least as tightly as `min` extend `lhs`.
    fn expr(&mut self, min: u8) -> Result<Expr, ParseError> {
        self.enter()?;
        let mut lhs = self.unary()?;
        loop {
            if matches!(self.peek(), Tok::Ident(s) if s == "in") {
                if IN_PRECEDENCE < min {
                    break;
                }
                let pos = lhs.pos;
                self.next();
                let items = self.list()?;
                lhs = Expr {
                    kind: ExprKind::InList(Box::new(lhs), items),
                    pos,
                };
                continue;
            }
            let Some(op) = self.infix() else { break };
            let prec = op.precedence();
            if prec < min {
                break;
            }
            self.next();
            // Left-associative: the right operand only takes tighter operators.
            let rhs = self.expr(prec + 1)?;
            let pos = lhs.pos;
            lhs = Expr {
                kind: ExprKind::Binary(op, Box::new(lhs), Box::new(rhs)),
                pos,
            };
        }
        self.depth -= 1;
        Ok(lhs)
    }

    fn unary(&mut self) -> Result<Expr, ParseError> {
        let pos = self.pos();
        match self.peek() {
            Tok::Bang => {
                self.next();
                self.enter()?;
                let a = self.unary()?;
                self.depth -= 1;
                Ok(Expr {
                    kind: ExprKind::Unary(UnaryOp::Not, Box::new(a)),
                    pos,
                })
            }
            Tok::Minus => {
                self.next();
                self.enter()?;
                let a = self.unary()?;
                self.depth -= 1;
                // Rhai folds a negated number literal into a negative literal.
                let kind = match a.kind {
                    ExprKind::Literal(Literal::Int(i)) if i != i64::MIN => {
                        ExprKind::Literal(Literal::Int(-i))
                    }
                    ExprKind::Literal(Literal::Float(x)) => ExprKind::Literal(Literal::Float(-x)),
                    other => ExprKind::Unary(
                        UnaryOp::Neg,
                        Box::new(Expr {
                            kind: other,
                            pos: a.pos,
                        }),
                    ),
                };
                Ok(Expr { kind, pos })
            }
            Tok::Plus => Err(self.unsupported("unary `+` is not vectorizable")),
            _ => self.primary(),
        }
    }

    fn primary(&mut self) -> Result<Expr, ParseError> {
        let pos = self.pos();
        let lit = |l| {
            Ok(Expr {
                kind: ExprKind::Literal(l),
                pos,
            })
        };
        let expr = match self.peek().clone() {
            Tok::Int(i) => {
                self.next();
                lit(Literal::Int(i))?
            }
            Tok::Float(x) => {
                self.next();
                lit(Literal::Float(x))?
            }
            Tok::Str(s) => {
                self.next();
                lit(Literal::Str(s))?
            }
            Tok::LParen => {
                self.next();
                if *self.peek() == Tok::RParen {
                    self.next();
                    lit(Literal::Unit)?
                } else {
                    let inner = self.expr(0)?;
                    match self.peek() {
                        Tok::RParen => {
                            self.next();
                        }
                        Tok::Eof => return Err(self.syntax("expected `)`, found end of input")),
                        Tok::RBracket => return Err(self.syntax("expected `)`, found `]`")),
                        other => {
                            let msg = format!("expected `)`, found `{other}`");
                            return Err(self.unsupported(msg));
                        }
                    }
                    inner
                }
            }
            Tok::Ident(name) => {
                self.next();
                self.identifier(name, pos)?
            }
            Tok::LBracket => {
                return Err(self.unsupported("array literals are only vectorizable after `in`"));
            }
            _ => return Err(self.unexpected("an expression")),
        };
        // Property access, indexing and method calls on anything but `record` and a
        // lookup are outside the subset.
        match self.peek() {
            Tok::Dot => Err(self.unsupported("property access or method call is not vectorizable")),
            Tok::LBracket => Err(self.unsupported("indexing is not vectorizable")),
            Tok::LParen => Err(self.unsupported("calling a value is not vectorizable")),
            _ => Ok(expr),
        }
    }

    fn identifier(&mut self, name: String, pos: Position) -> Result<Expr, ParseError> {
        match name.as_str() {
            "true" | "false" => {
                return Ok(Expr {
                    kind: ExprKind::Literal(Literal::Bool(name == "true")),
                    pos,
                });
            }
            "in" => return Err(self.syntax("expected an expression, found `in`")),
            _ => {}
        }
        if KEYWORDS.contains(&name.as_str()) {
            return Err(err(
                ParseErrorKind::Unsupported,
                pos,
                format!("`{name}` is not vectorizable"),
            ));
        }
        if *self.peek() == Tok::LParen {
            return self.call(name, pos);
        }
        if *self.peek() == Tok::Dot && name == "record" {
            self.next();
            let field = match self.next() {
                (Tok::Ident(f), _) => f,
                (Tok::Eof, _) => {
                    return Err(self.syntax("expected a field name after `record.`"));
                }
                (t, at) => {
                    return Err(err(
                        ParseErrorKind::Unsupported,
                        at,
                        format!("expected a field name after `record.`, found `{t}`"),
                    ));
                }
            };
            if *self.peek() == Tok::LParen {
                return Err(self.unsupported("method calls are not vectorizable"));
            }
            return Ok(Expr {
                kind: ExprKind::RecordField(field),
                pos,
            });
        }
        if name == "record" {
            return Err(err(
                ParseErrorKind::Unsupported,
                pos,
                "`record` is only vectorizable as `record.field`",
            ));
        }
        Ok(Expr {
            kind: ExprKind::Field(name),
            pos,
        })
    }

    fn call(&mut self, name: String, pos: Position) -> Result<Expr, ParseError> {
        let unsupported = |m: String| err(ParseErrorKind::Unsupported, pos, m);
        let time = match name.as_str() {
            "hour" => Some(TimeFn::Hour),
            "minute" => Some(TimeFn::Minute),
            "day_of_week" => Some(TimeFn::DayOfWeek),
            "lookup" | "lookup_cidr" | "in_table" => None,
            _ => {
                return Err(unsupported(format!(
                    "function `{name}` is not vectorizable"
                )));
            }
        };
        self.next(); // `(`
        let args = self.args()?;
        if let Some(f) = time {
            let [arg]: [Expr; 1] = args.try_into().map_err(|a: Vec<Expr>| {
                unsupported(format!("`{name}` takes 1 argument, not {}", a.len()))
            })?;
            return Ok(Expr {
                kind: ExprKind::Time(f, Box::new(arg)),
                pos,
            });
        }
        let [table, key]: [Expr; 2] = args.try_into().map_err(|a: Vec<Expr>| {
            unsupported(format!("`{name}` takes 2 arguments, not {}", a.len()))
        })?;
        let ExprKind::Literal(Literal::Str(table)) = table.kind else {
            return Err(err(
                ParseErrorKind::Unsupported,
                table.pos,
                format!("the table of `{name}` must be a string literal to be vectorizable"),
            ));
        };
        let key = Box::new(key);
        if name == "in_table" {
            return Ok(Expr {
                kind: ExprKind::InTable { table, key },
                pos,
            });
        }
        if *self.peek() != Tok::Dot {
            return Err(unsupported(format!(
                "`{name}(…)` is only vectorizable followed by `.column`"
            )));
        }
        self.next();
        let column = match self.next() {
            (Tok::Ident(c), _) => c,
            (Tok::Eof, _) => {
                return Err(self.syntax(format!("expected a column after `{name}(…).`")));
            }
            (t, at) => {
                return Err(err(
                    ParseErrorKind::Unsupported,
                    at,
                    format!("expected a column name after `{name}(…).`, found `{t}`"),
                ));
            }
        };
        Ok(Expr {
            kind: ExprKind::Lookup {
                table,
                cidr: name == "lookup_cidr",
                key,
                column,
            },
            pos,
        })
    }

    /// Call arguments after `(`, through the closing `)`.
    fn args(&mut self) -> Result<Vec<Expr>, ParseError> {
        let mut args = Vec::new();
        if *self.peek() == Tok::RParen {
            self.next();
            return Ok(args);
        }
        loop {
            args.push(self.expr(0)?);
            match self.peek() {
                Tok::Comma => {
                    self.next();
                    if *self.peek() == Tok::RParen {
                        self.next();
                        return Ok(args);
                    }
                }
                Tok::RParen => {
                    self.next();
                    return Ok(args);
                }
                _ => {
                    self.expect(Tok::RParen, "`,` or `)`")?;
                }
            }
        }
    }

    /// `[lit, lit, …]` after `in`.
    fn list(&mut self) -> Result<Vec<Literal>, ParseError> {
        if *self.peek() != Tok::LBracket {
            if *self.peek() == Tok::Eof {
                return Err(self.syntax("expected `[` after `in`, found end of input"));
            }
            return Err(self.unsupported("`in` is only vectorizable with a list literal `[…]`"));
        }
        self.next();
        let mut items = Vec::new();
        loop {
            if *self.peek() == Tok::RBracket {
                self.next();
                return Ok(items);
            }
            let item = self.unary()?;
            match item.kind {
                ExprKind::Literal(l) => items.push(l),
                _ => {
                    return Err(err(
                        ParseErrorKind::Unsupported,
                        item.pos,
                        "list items must be literals to be vectorizable",
                    ));
                }
            }
            match self.peek() {
                Tok::Comma => {
                    self.next();
                }
                Tok::RBracket => {}
                _ => self.expect(Tok::RBracket, "`,` or `]`")?,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_round_trips_through_the_parser() {
        for src in [
            "amount > 10000.0",
            "hour(timestamp) >= 1 && hour(timestamp) < 5",
            "-a * b + c % 2 == 3 || !d",
            "x in [1, -2.5, \"a\", (), true]",
            "lookup_cidr(\"geo\", source_ip).country != lookup(\"users\", account_id).home_country",
        ] {
            let e = parse(src).unwrap();
            let again = parse(&e.to_string()).unwrap();
            assert_eq!(e.to_string(), again.to_string(), "{src}");
        }
    }
}
