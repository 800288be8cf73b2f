//! What a compiled script or condition refers to, read from Rhai's own syntax tree: the
//! record fields it may read, the enrichment tables it names, the functions it calls.
//!
//! Every answer may err on the generous side (an over-approximation costs a few unneeded
//! column conversions; it never changes results) but never misses a name written in the
//! text.

use std::collections::HashSet;

use rhai::{ASTNode, Dynamic, Expr, Stmt};

use crate::condition::Position;

/// The built-ins whose first argument names an enrichment table.
pub const TABLE_FUNCTIONS: [&str; 3] = ["lookup", "lookup_cidr", "in_table"];

/// A table name passed as a string literal to one of [`TABLE_FUNCTIONS`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableUse {
    /// `lookup`, `lookup_cidr` or `in_table`.
    pub function: String,
    /// The literal table name.
    pub table: String,
    /// Where the literal is.
    pub position: Position,
}

/// What one compiled script (or condition) refers to.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Analysis {
    /// Record fields a condition may read, in order of first appearance: every variable
    /// other than `record`, plus `record.<name>` and `record["<name>"]`.
    pub fields: Vec<String>,
    /// Every name and string constant in the script: a record field whose name is not
    /// here cannot be reached (short of building the name at run time).
    pub words: HashSet<String>,
    /// Literal table names given to [`TABLE_FUNCTIONS`], in order of appearance.
    pub tables: Vec<TableUse>,
    /// Functions called by name (not operators, not methods), without duplicates.
    pub functions: Vec<String>,
}

impl Analysis {
    /// Walks `ast`, function bodies included.
    pub fn of(ast: &rhai::AST) -> Analysis {
        let mut out = Analysis::default();
        ast.walk(&mut |path: &[ASTNode]| {
            if let Some(node) = path.last() {
                out.visit(node);
            }
            true
        });
        out
    }

    fn add_field(&mut self, name: &str) {
        if !self.fields.iter().any(|f| f == name) {
            self.fields.push(name.to_owned());
        }
    }

    fn visit(&mut self, node: &ASTNode) {
        match node {
            ASTNode::Expr(e) => self.visit_expr(e),
            ASTNode::Stmt(Stmt::FnCall(call, _)) => self.visit_call(call),
            ASTNode::Stmt(Stmt::Var(x, ..)) => {
                self.words.insert(x.0.name.to_string());
            }
            _ => {}
        }
    }

    fn visit_expr(&mut self, e: &Expr) {
        match e {
            Expr::Variable(x, ..) => {
                let name = x.1.as_str();
                self.words.insert(name.to_owned());
                if name != "record" {
                    self.add_field(name);
                }
            }
            Expr::Property(p, _) => {
                self.words.insert(p.2.to_string());
            }
            Expr::StringConstant(s, _) => {
                self.words.insert(s.to_string());
            }
            Expr::DynamicConstant(d, _) => self.constant_words(d),
            Expr::MethodCall(call, _) => {
                self.words.insert(call.name.to_string());
            }
            Expr::FnCall(call, _) => self.visit_call(call),
            Expr::Dot(x, ..) if is_record(&x.lhs) => {
                let property = match &x.rhs {
                    Expr::Property(p, _) => Some(&p.2),
                    Expr::Dot(inner, ..) | Expr::Index(inner, ..) => match &inner.lhs {
                        Expr::Property(p, _) => Some(&p.2),
                        _ => None,
                    },
                    _ => None,
                };
                if let Some(p) = property {
                    self.add_field(p);
                }
            }
            Expr::Index(x, ..) if is_record(&x.lhs) => {
                if let Expr::StringConstant(s, _) = &x.rhs {
                    self.add_field(s);
                }
            }
            _ => {}
        }
    }

    fn visit_call(&mut self, call: &rhai::FnCallExpr) {
        let name = call.name.as_str();
        if !rhai::is_valid_identifier(name) {
            return; // an operator
        }
        self.words.insert(name.to_owned());
        if !self.functions.iter().any(|f| f == name) {
            self.functions.push(name.to_owned());
        }
        if TABLE_FUNCTIONS.contains(&name)
            && let Some(Expr::StringConstant(table, lit_at)) = call.args.first()
        {
            self.tables.push(TableUse {
                function: name.to_owned(),
                table: table.to_string(),
                position: crate::condition::position(*lit_at),
            });
        }
    }

    /// Strings inside a constant the optimizer folded (arrays and maps of literals).
    fn constant_words(&mut self, d: &Dynamic) {
        if d.is_string() {
            if let Ok(s) = d.clone().into_string() {
                self.words.insert(s);
            }
        } else if let Some(items) = d.read_lock::<rhai::Array>() {
            for item in items.iter() {
                self.constant_words(item);
            }
        } else if let Some(map) = d.read_lock::<rhai::Map>() {
            for (key, value) in map.iter() {
                self.words.insert(key.to_string());
                self.constant_words(value);
            }
        }
    }
}

fn is_record(e: &Expr) -> bool {
    matches!(e, Expr::Variable(x, ..) if x.1 == "record")
}

/// `source` with the header of `fn transform(<param>)` blanked out (same length, newlines
/// kept), leaving its body as a top-level block at the same line and column, and the
/// parameter name. `None` when the header is not in the simple form.
///
/// Rhai replaces the position of limit errors (operations, stack, data size) with the
/// position of the outermost script-function call, which for the transform call is
/// none; the same body run as top-level code keeps the real position.
pub fn hoist_transform_body(source: &str) -> Option<(String, String)> {
    use rhai::Token;
    let tokens = tokens(source);
    let i = tokens.windows(6).position(|w| {
        matches!(
            w,
            [
                (Token::Fn, _),
                (Token::Identifier(name), _),
                (Token::LeftParen, _),
                (Token::Identifier(_), _),
                (Token::RightParen, _),
                (Token::LeftBrace, _),
            ] if name.as_str() == "transform"
        )
    })?;
    let mut from = i;
    if let Some((Token::Private, _)) = i.checked_sub(1).and_then(|j| tokens.get(j)) {
        from = i - 1;
    }
    let (Token::Identifier(param), _) = &tokens.get(i + 3)? else {
        return None;
    };
    let offsets = LineStarts::new(source);
    let from = offsets.byte(tokens.get(from)?.1)?;
    let to = offsets.byte(tokens.get(i + 5)?.1)?;
    let blank: String = source
        .get(from..to)?
        .chars()
        .map(|c| if c == '\n' { '\n' } else { ' ' })
        .collect();
    Some((
        format!("{}{}{}", source.get(..from)?, blank, source.get(to..)?),
        param.to_string(),
    ))
}

/// Rhai's own token stream for `source`, up to the end or the first lexical error.
fn tokens(source: &str) -> Vec<(rhai::Token, rhai::Position)> {
    let mut stream = rhai::MultiInputsStream {
        buf: [None, None],
        index: 0,
        streams: std::iter::once(source.chars().peekable()).collect(),
    };
    let mut state = rhai::TokenizeState::default();
    let mut pos = rhai::Position::new(1, 0);
    let mut out = Vec::new();
    // Every token but the end consumes a character: the bound only guards against a
    // tokenizer state that stops advancing.
    while out.len() <= source.len() {
        let (token, at) = rhai::get_next_token(&mut stream, &mut state, &mut pos);
        let unterminated = matches!(token, rhai::Token::StringConstant(_))
            && state.is_within_text_terminated_by.is_some();
        if unterminated || matches!(token, rhai::Token::EOF | rhai::Token::LexError(_)) {
            break;
        }
        out.push((token, at));
    }
    out
}

/// Maps Rhai's (line, character column) positions to byte offsets.
struct LineStarts<'a> {
    source: &'a str,
    starts: Vec<usize>,
}

impl<'a> LineStarts<'a> {
    fn new(source: &'a str) -> Self {
        let starts = std::iter::once(0)
            .chain(source.match_indices('\n').map(|(i, _)| i + 1))
            .collect();
        LineStarts { source, starts }
    }

    fn byte(&self, at: rhai::Position) -> Option<usize> {
        let line_start = *self.starts.get(at.line()?.checked_sub(1)?)?;
        let column = at.position()?.checked_sub(1)?;
        let line = self.source.get(line_start..)?;
        let offset = line
            .char_indices()
            .nth(column)
            .map_or(line.len(), |(i, _)| i);
        Some(line_start + offset)
    }
}
