//! A deliberately rough scanner over Rhai source text.
//!
//! Rhai's own tokenizer and AST walker are only public behind the `internals` feature,
//! whose API is unstable. What we need from the source is small and may err on the
//! generous side: which names a script could refer to (to convert only those columns)
//! and which table names are passed as string literals (to reject typos at start-up).
//! An over-approximation costs a few unneeded conversions; it never changes results.

/// What a token is, as far as this scanner cares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Kind {
    /// `[A-Za-z_][A-Za-z0-9_]*`.
    Ident,
    /// A `"…"` string literal; the text is its (roughly) unescaped content.
    Str,
    /// A single punctuation character.
    Punct(char),
    /// Numbers, character literals and anything else.
    Other,
}

/// One token with its 1-based position (column counted in characters, as Rhai does).
#[derive(Debug, Clone)]
pub(crate) struct Token {
    pub kind: Kind,
    pub text: String,
    pub line: usize,
    pub col: usize,
    /// Byte offset in the scanned source.
    pub start: usize,
}

struct Cursor<'a> {
    chars: std::iter::Peekable<std::str::Chars<'a>>,
    line: usize,
    col: usize,
    offset: usize,
}

impl Cursor<'_> {
    fn peek(&mut self) -> Option<char> {
        self.chars.peek().copied()
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.chars.next()?;
        self.offset += c.len_utf8();
        if c == '\n' {
            self.line += 1;
            self.col = 1;
        } else {
            self.col += 1;
        }
        Some(c)
    }
}

/// Splits `source` into tokens, skipping comments and whitespace. Never fails: malformed
/// input (an unterminated string) just ends the token stream; Rhai reports it properly.
pub(crate) fn tokens(source: &str) -> Vec<Token> {
    let mut out = Vec::new();
    scan(source, (1, 1, 0), &mut out);
    out
}

/// Scans `source`, which starts at (line, column, byte offset) `at` of the whole text.
fn scan(source: &str, at: (usize, usize, usize), out: &mut Vec<Token>) {
    let mut cur = Cursor {
        chars: source.chars().peekable(),
        line: at.0,
        col: at.1,
        offset: at.2,
    };
    while let Some(c) = cur.peek() {
        let (line, col, start) = (cur.line, cur.col, cur.offset);
        if c.is_whitespace() {
            cur.bump();
        } else if c == '/' {
            cur.bump();
            match cur.peek() {
                Some('/') => {
                    while let Some(c) = cur.bump() {
                        if c == '\n' {
                            break;
                        }
                    }
                }
                Some('*') => {
                    cur.bump();
                    // Rhai block comments nest.
                    let mut depth = 1usize;
                    let mut prev = '\0';
                    while let Some(c) = cur.bump() {
                        if prev == '/' && c == '*' {
                            depth += 1;
                            prev = '\0';
                            continue;
                        }
                        if prev == '*' && c == '/' {
                            depth -= 1;
                            if depth == 0 {
                                break;
                            }
                            prev = '\0';
                            continue;
                        }
                        prev = c;
                    }
                }
                _ => out.push(Token {
                    kind: Kind::Punct('/'),
                    text: String::new(),
                    line,
                    col,
                    start,
                }),
            }
        } else if c == '_' || c.is_ascii_alphabetic() {
            let mut text = String::new();
            while let Some(c) = cur.peek() {
                if c == '_' || c.is_ascii_alphanumeric() {
                    text.push(c);
                    cur.bump();
                } else {
                    break;
                }
            }
            out.push(Token {
                kind: Kind::Ident,
                text,
                line,
                col,
                start,
            });
        } else if c.is_ascii_digit() {
            while let Some(c) = cur.peek() {
                if c == '_' || c == '.' || c.is_ascii_alphanumeric() {
                    cur.bump();
                } else {
                    break;
                }
            }
            out.push(Token {
                kind: Kind::Other,
                text: String::new(),
                line,
                col,
                start,
            });
        } else if c == '"' {
            cur.bump();
            let mut text = String::new();
            while let Some(c) = cur.bump() {
                match c {
                    '"' => break,
                    '\\' => match cur.bump() {
                        Some('n') => text.push('\n'),
                        Some('t') => text.push('\t'),
                        Some('r') => text.push('\r'),
                        Some('0') => text.push('\0'),
                        // A backslash before a newline continues the line.
                        Some('\n') => {}
                        Some(other) => text.push(other),
                        None => break,
                    },
                    other => text.push(other),
                }
            }
            out.push(Token {
                kind: Kind::Str,
                text,
                line,
                col,
                start,
            });
        } else if c == '`' {
            // Template strings interpolate code (`${record.amount}`); scanning the whole
            // body as code finds those names, plus some harmless extra words.
            cur.bump();
            let body_at = (cur.line, cur.col, cur.offset);
            let mut body = String::new();
            while let Some(c) = cur.bump() {
                if c == '`' {
                    break;
                }
                body.push(c);
            }
            out.push(Token {
                kind: Kind::Str,
                text: body.clone(),
                line,
                col,
                start,
            });
            scan(&body, body_at, out);
        } else if c == '\'' {
            cur.bump();
            while let Some(c) = cur.bump() {
                match c {
                    '\'' => break,
                    '\\' => {
                        cur.bump();
                    }
                    _ => {}
                }
            }
            out.push(Token {
                kind: Kind::Other,
                text: String::new(),
                line,
                col,
                start,
            });
        } else {
            cur.bump();
            out.push(Token {
                kind: Kind::Punct(c),
                text: String::new(),
                line,
                col,
                start,
            });
        }
    }
}

/// Rhai keywords and reserved words: never record fields when used as bare names.
const KEYWORDS: &[&str] = &[
    "true",
    "false",
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
    "in",
    "continue",
    "break",
    "return",
    "throw",
    "try",
    "catch",
    "fn",
    "private",
    "this",
    "global",
    "import",
    "export",
    "as",
    "Fn",
    "call",
    "curry",
    "type_of",
    "print",
    "debug",
    "eval",
    "is_def_var",
    "is_def_fn",
    "is_shared",
];

/// The record fields a rule condition may read, in order of first appearance: bare names
/// that are not keywords, function names (`name(`) or properties of something other than
/// `record` (`lookup(…).country`), plus `record.<name>` and `record["<name>"]`.
pub(crate) fn condition_fields(source: &str) -> Vec<String> {
    let toks = tokens(source);
    let mut out: Vec<String> = Vec::new();
    let mut add = |name: &str| {
        if !out.iter().any(|f| f == name) {
            out.push(name.to_owned());
        }
    };
    for (i, t) in toks.iter().enumerate() {
        let prev = i.checked_sub(1).and_then(|j| toks.get(j));
        let before_prev = i.checked_sub(2).and_then(|j| toks.get(j));
        let next = toks.get(i + 1);
        let after_dot_of_record = matches!(prev, Some(p) if p.kind == Kind::Punct('.'))
            && matches!(before_prev, Some(p) if p.kind == Kind::Ident && p.text == "record");
        match t.kind {
            Kind::Ident => {
                if t.text == "record" || KEYWORDS.contains(&t.text.as_str()) {
                    continue;
                }
                let is_call = matches!(next, Some(n) if n.kind == Kind::Punct('('));
                let is_property = matches!(prev, Some(p) if p.kind == Kind::Punct('.'));
                if after_dot_of_record || (!is_call && !is_property) {
                    add(&t.text);
                }
            }
            Kind::Str => {
                let indexed_record = matches!(prev, Some(p) if p.kind == Kind::Punct('['))
                    && matches!(before_prev, Some(p) if p.kind == Kind::Ident && p.text == "record");
                if indexed_record {
                    add(&t.text);
                }
            }
            _ => {}
        }
    }
    out
}

/// Every identifier and string-literal content in `source`: a field whose name is not in
/// this set cannot be reached by the script (short of building the name at run time).
pub(crate) fn word_set(source: &str) -> std::collections::HashSet<String> {
    tokens(source)
        .into_iter()
        .filter(|t| matches!(t.kind, Kind::Ident | Kind::Str))
        .map(|t| t.text)
        .collect()
}

/// A table name passed as a string literal to one of the lookup built-ins.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TableUse {
    /// `lookup`, `lookup_cidr` or `in_table`.
    pub function: String,
    /// The literal table name.
    pub table: String,
    /// Position of the literal.
    pub line: usize,
    /// Position of the literal.
    pub col: usize,
}

/// Every `lookup("name", …)`, `lookup_cidr("name", …)` and `in_table("name", …)` call
/// with a literal table name, so that unknown tables fail start-up instead of every record.
pub(crate) fn table_uses(source: &str) -> Vec<TableUse> {
    let toks = tokens(source);
    let mut out = Vec::new();
    for w in toks.windows(3) {
        let [f, open, lit] = w else { continue };
        if f.kind == Kind::Ident
            && matches!(f.text.as_str(), "lookup" | "lookup_cidr" | "in_table")
            && open.kind == Kind::Punct('(')
            && lit.kind == Kind::Str
        {
            out.push(TableUse {
                function: f.text.clone(),
                table: lit.text.clone(),
                line: lit.line,
                col: lit.col,
            });
        }
    }
    out
}

/// `source` with the header of `fn transform(<param>)` blanked out (same length, newlines
/// kept), leaving its body as a top-level block at the same line and column, and the
/// parameter name. `None` when the header is not in the simple form.
///
/// Rhai replaces the position of limit errors (operations, stack, data size) with the
/// position of the outermost script-function call, which for the transform call is
/// none; the same body run as top-level code keeps the real position.
pub(crate) fn hoist_transform_body(source: &str) -> Option<(String, String)> {
    let toks = tokens(source);
    let i = toks.windows(6).position(|w| {
        w[0].kind == Kind::Ident
            && w[0].text == "fn"
            && w[1].kind == Kind::Ident
            && w[1].text == "transform"
            && w[2].kind == Kind::Punct('(')
            && w[3].kind == Kind::Ident
            && w[4].kind == Kind::Punct(')')
            && w[5].kind == Kind::Punct('{')
    })?;
    let mut from = toks.get(i)?.start;
    if let Some(p) = i.checked_sub(1).and_then(|j| toks.get(j))
        && p.kind == Kind::Ident
        && p.text == "private"
    {
        from = p.start;
    }
    let to = toks.get(i + 5)?.start;
    let param = toks.get(i + 3)?.text.clone();
    let blank: String = source
        .get(from..to)?
        .chars()
        .map(|c| if c == '\n' { '\n' } else { ' ' })
        .collect();
    Some((
        format!("{}{}{}", source.get(..from)?, blank, source.get(to..)?),
        param,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn skips_comments_and_reads_strings() {
        let src =
            "// amount\n/* a /* nested */ b */ record[\"card no\"] + x.y // z\n`t ${record.w}`";
        let words = word_set(src);
        for w in ["record", "card no", "x", "y", "w", "t"] {
            assert!(words.contains(w), "{w}: {words:?}");
        }
        for w in ["amount", "a", "b", "nested", "z"] {
            assert!(!words.contains(w), "{w}: {words:?}");
        }
    }

    #[test]
    fn positions_are_one_based() {
        let t = tokens("a\n  \"b\"");
        assert_eq!((t[0].line, t[0].col), (1, 1));
        assert_eq!((t[1].line, t[1].col), (2, 3));
        assert_eq!(t[1].text, "b");
    }

    #[test]
    fn condition_fields_excludes_calls_keywords_and_foreign_properties() {
        let f = condition_fields(
            "amount > 10000.0 && hour(timestamp) >= 1 && record.channel == \"atm\" \
             && lookup(\"geo\", source_ip).country != record[\"home country\"] && true",
        );
        assert_eq!(
            f,
            [
                "amount",
                "timestamp",
                "channel",
                "source_ip",
                "home country"
            ]
        );
    }

    #[test]
    fn finds_literal_table_names() {
        let u = table_uses("let g = lookup(\"geo\", ip);\n  in_table( \"threats\", ip)");
        assert_eq!(u.len(), 2);
        assert_eq!(u[0].table, "geo");
        assert_eq!((u[1].line, u[1].col), (2, 13));
    }

    #[test]
    fn hoists_the_transform_body_in_place() {
        let src = "fn helper() { 1 }\nfn transform(r) {\n  r.a = \"é\";\n  r\n}";
        let (out, param) = hoist_transform_body(src).unwrap();
        assert_eq!(param, "r");
        assert_eq!(
            out,
            "fn helper() { 1 }\n                {\n  r.a = \"é\";\n  r\n}"
        );
        assert!(hoist_transform_body("fn transform(a, b) { a }").is_none());
    }

    #[test]
    fn unterminated_input_does_not_panic() {
        for s in ["\"abc", "/* x", "`abc", "'a", "\\", "é\"\\"] {
            let _ = tokens(s);
        }
    }
}
