//! The condition parser (Rhai's own, read by `pf-lang`): precedence, the subset, what
//! falls back, errors with positions.

use pf_rules::expr::{BinaryOp, ExprKind, Literal, ParseErrorKind, Position, TimeFn, parse};

/// The fully parenthesized form.
fn p(src: &str) -> String {
    parse(src)
        .unwrap_or_else(|e| panic!("{src}: {e}"))
        .to_string()
}

fn kind(src: &str) -> ParseErrorKind {
    parse(src)
        .map(|e| panic!("{src} parsed as {e}"))
        .unwrap_err()
        .kind
}

#[test]
fn precedence_follows_rhai() {
    assert_eq!(p("a + b * c"), "(a + (b * c))");
    assert_eq!(p("a * b + c"), "((a * b) + c)");
    assert_eq!(p("a - b - c"), "((a - b) - c)");
    assert_eq!(p("a / b % c"), "((a / b) % c)");
    assert_eq!(p("a < b == c > d"), "((a < b) == (c > d))");
    assert_eq!(p("a == b && c != d || e"), "(((a == b) && (c != d)) || e)");
    assert_eq!(p("a || b && c"), "(a || (b && c))");
    assert_eq!(p("a + 1 > b * 2 && c"), "(((a + 1) > (b * 2)) && c)");
    // Unary operators bind tighter than any binary operator.
    assert_eq!(p("!a == b"), "(!a == b)");
    assert_eq!(p("-a * b"), "(-a * b)");
    assert_eq!(p("!(a == b)"), "!(a == b)");
    assert_eq!(p("- -a"), "--a");
    // `in` sits between equality and ordering.
    assert_eq!(p("a == b in [1, 2]"), "(a == (b in [1, 2]))");
    assert_eq!(p("a < b in [true]"), "((a < b) in [true])");
    assert_eq!(p("x in [1] && y"), "((x in [1]) && y)");
    // Parentheses override.
    assert_eq!(p("(a + b) * c"), "((a + b) * c)");
}

#[test]
fn literals_and_forms() {
    let e = parse("amount > 10000.0").unwrap();
    let ExprKind::Binary(BinaryOp::Gt, l, r) = e.kind else {
        panic!("{e:?}")
    };
    assert_eq!(l.kind, ExprKind::Field("amount".into()));
    assert_eq!(r.kind, ExprKind::Literal(Literal::Float(10000.0)));

    for (src, lit) in [
        ("42", Literal::Int(42)),
        ("1_000_000", Literal::Int(1_000_000)),
        ("0xff", Literal::Int(255)),
        ("0b101", Literal::Int(5)),
        ("0o17", Literal::Int(15)),
        ("-7", Literal::Int(-7)),
        ("1e3", Literal::Float(1000.0)),
        ("2.5e-1", Literal::Float(0.25)),
        ("-0.5", Literal::Float(-0.5)),
        ("()", Literal::Unit),
        ("true", Literal::Bool(true)),
        ("false", Literal::Bool(false)),
        (r#""a\"b\n\u00e9""#, Literal::Str("a\"b\né".into())),
    ] {
        assert_eq!(parse(src).unwrap().kind, ExprKind::Literal(lit), "{src}");
    }
    assert_eq!(
        parse("record.amount").unwrap().kind,
        ExprKind::RecordField("amount".into())
    );
    assert!(matches!(
        parse("hour(timestamp)").unwrap().kind,
        ExprKind::Time(TimeFn::Hour, _)
    ));
    assert!(matches!(
        parse("day_of_week(record.ts)").unwrap().kind,
        ExprKind::Time(TimeFn::DayOfWeek, _)
    ));
    let e = parse(r#"lookup_cidr("geo", source_ip).country"#).unwrap();
    assert!(
        matches!(&e.kind, ExprKind::Lookup { table, cidr: true, column, .. } if table == "geo" && column == "country"),
        "{e:?}"
    );
    let e = parse(r#"lookup("users", account_id).home_country"#).unwrap();
    assert!(matches!(&e.kind, ExprKind::Lookup { cidr: false, .. }));
    let e = parse(r#"in_table("threats", source_ip)"#).unwrap();
    assert!(matches!(&e.kind, ExprKind::InTable { table, .. } if table == "threats"));
    assert_eq!(
        p(r#"channel in ["web", "pos",]"#),
        r#"(channel in ["web", "pos"])"#
    );
    assert_eq!(p("x in []"), "(x in [])");
    // Comments and newlines are whitespace.
    assert_eq!(p("a /* x /* nested */ */ > // tail\n 1"), "(a > 1)");
    let e = parse("a + b > c").unwrap();
    assert_eq!(e.fields(), vec!["a", "b", "c"]);
}

#[test]
fn everything_outside_the_subset_falls_back() {
    for src in [
        "amount.abs() > 5",
        "abs(amount) > 5",
        "to_upper(channel) == \"WEB\"",
        "if amount > 5 { true } else { false }",
        "|x| x > 5",
        "tags[0] == \"a\"",
        "amount ?? 0 > 5",
        "x in tags",
        "x in \"abc\"",
        "lookup(\"users\", account_id)",
        "lookup(\"users\", account_id).home_country.len",
        "lookup(table_name, account_id).x",
        "hour(a, b)",
        "in_table(\"t\")",
        "record",
        "record[\"amount\"] > 1",
        "a ** 2",
        "a << 2",
        "a & b",
        "a | b",
        "+a",
        "'c' == x",
        "x in [a]",
        "x in [1 + 1]",
        "#{a: 1}.a == 1",
        "Fn(\"f\")",
        "a.b > 1",
    ] {
        assert_eq!(kind(src), ParseErrorKind::Unsupported, "{src}");
    }
    // Rhai decides what is valid: text its expression compiler rejects is a syntax error
    // (the per-record engine compiles conditions the same way), and what it accepts as a
    // literal is one, whatever it looks like.
    for src in [
        "let x = 5; x > 3",
        "amount > 5;",
        "a = 5",
        "global::x > 1",
        "this > 1",
        "\"a\\zb\" == x",
        "a 5",
    ] {
        assert_eq!(kind(src), ParseErrorKind::Syntax, "{src}");
    }
    assert_eq!(p("`text` == x"), "(\"text\" == x)");
    assert_eq!(p("99999999999999999999 > x"), "(1e20 > x)");
    // Nesting deeper than the limit is handed to the script engine, not the stack.
    let deep = format!("{}a{}", "(".repeat(10_000), ")".repeat(10_000));
    assert_eq!(kind(&deep), ParseErrorKind::Unsupported);
    let deep = format!("{}a", "!".repeat(10_000));
    assert_eq!(kind(&deep), ParseErrorKind::Unsupported);
}

#[test]
fn syntax_errors_name_the_position() {
    let at = |line, column| Position { line, column };
    let cases: [(&str, Position, &str); 9] = [
        ("amount >", at(1, 9), "Script is incomplete"),
        ("(amount > 5", at(1, 12), "Expecting ')'"),
        ("amount > 5)", at(1, 11), "Unexpected ')'"),
        ("amount > \"abc", at(1, 10), "Open string is not terminated"),
        ("a && * b", at(1, 6), "Unexpected '*'"),
        ("a >\n  * 2", at(2, 3), "Unexpected '*'"),
        ("10abc > 1", at(1, 3), "Unexpected 'abc'"),
        ("hour(ts", at(1, 8), "Expecting ')'"),
        ("x in [1, 2", at(1, 11), "Expecting ']'"),
    ];
    for (src, pos, text) in cases {
        let e = parse(src)
            .map(|e| panic!("{src} parsed as {e}"))
            .unwrap_err();
        assert_eq!(e.kind, ParseErrorKind::Syntax, "{src}: {e}");
        assert_eq!(e.position, pos, "{src}: {e}");
        assert!(e.to_string().contains(text), "{src}: {e}");
        assert!(
            e.to_string()
                .contains(&format!("line {}, position {}", pos.line, pos.column))
        );
    }
    assert_eq!(kind(""), ParseErrorKind::Syntax);
    assert_eq!(kind("/* open"), ParseErrorKind::Syntax);
    // Unsupported reasons carry positions too.
    let e = parse("amount > 5 && abs(x) > 1").unwrap_err();
    assert_eq!(
        e.position,
        Position {
            line: 1,
            column: 15
        }
    );
    assert!(e.to_string().contains("`abs`"), "{e}");
}

#[test]
fn never_panics_on_odd_input() {
    let alphabet: Vec<char> = "ab1.(\"'[],-!<=>&|;#\\ \n0xe_éπ".chars().collect();
    let mut state = 7u64;
    for len in 0..40 {
        for _ in 0..200 {
            let s: String = (0..len)
                .map(|_| {
                    state = state
                        .wrapping_mul(6364136223846793005)
                        .wrapping_add(1442695040888963407);
                    alphabet[(state >> 33) as usize % alphabet.len()]
                })
                .collect();
            let _ = parse(&s);
        }
    }
}
