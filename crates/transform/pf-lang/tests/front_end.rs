//! The shared front end: conditions read back from their display form, and the analysis
//! of scripts (fields, words, tables, functions, the hoisted transform body).

use pf_lang::analysis::{Analysis, hoist_transform_body};
use pf_lang::{Position, parse};

fn analyse(source: &str) -> Analysis {
    let engine = rhai::Engine::new_raw();
    Analysis::of(
        &engine
            .compile(source)
            .unwrap_or_else(|e| panic!("{source}: {e}")),
    )
}

#[test]
fn display_round_trips_through_the_parser() {
    for src in [
        "amount > 10000.0",
        "hour(timestamp) >= 1 && hour(timestamp) < 5",
        "-a * b + c % 2 == 3 || !d",
        "x in [1, -2.5, \"a\", (), true]",
        "x !in [1, 2] && y",
        "lookup_cidr(\"geo\", source_ip).country != lookup(\"users\", account_id).home_country",
    ] {
        let e = parse(src).unwrap();
        let again = parse(&e.to_string()).unwrap();
        assert_eq!(e.to_string(), again.to_string(), "{src}");
    }
    assert_eq!(parse("x !in [1, 2]").unwrap().to_string(), "!(x in [1, 2])");
}

#[test]
fn words_skip_comments_and_read_strings_and_interpolations() {
    let words = analyse(
        "// amount\n/* a /* nested */ b */ let v = record[\"card no\"] + x.y; // z\n`t ${record.w}`",
    )
    .words;
    // The text of an interpolated string is a constant, not a name.
    for w in ["record", "card no", "x", "y", "w", "t ", "v"] {
        assert!(words.contains(w), "{w}: {words:?}");
    }
    for w in ["amount", "a", "b", "nested", "z", "t"] {
        assert!(!words.contains(w), "{w}: {words:?}");
    }
}

#[test]
fn words_include_strings_the_optimizer_folded_into_constants() {
    let engine = rhai::Engine::new(); // optimizer on: the array becomes one constant
    let ast = engine
        .compile("for f in [\"amount\", \"fee\"] { record[f] }")
        .unwrap();
    let words = Analysis::of(&ast).words;
    assert!(
        words.contains("amount") && words.contains("fee"),
        "{words:?}"
    );
}

#[test]
fn condition_fields_exclude_calls_keywords_and_foreign_properties() {
    let a = analyse(
        "amount > 10000.0 && hour(timestamp) >= 1 && record.channel == \"atm\" \
         && lookup(\"geo\", source_ip).country != record[\"home country\"] && true",
    );
    assert_eq!(
        a.fields,
        [
            "amount",
            "timestamp",
            "channel",
            "source_ip",
            "home country"
        ]
    );
    assert_eq!(a.functions, ["hour", "lookup"]);
}

#[test]
fn finds_literal_table_names_with_positions() {
    let a = analyse(
        "fn f(ip) { lookup_cidr(\"geo\", ip) }\nlet g = lookup(\"users\", ip);\n  in_table( \"threats\", ip)",
    );
    let tables: Vec<_> = a
        .tables
        .iter()
        .map(|u| (u.function.as_str(), u.table.as_str(), u.position))
        .collect();
    assert!(
        tables.contains(&(
            "lookup",
            "users",
            Position {
                line: 2,
                column: 16
            }
        )),
        "{tables:?}"
    );
    assert!(
        tables.contains(&(
            "in_table",
            "threats",
            Position {
                line: 3,
                column: 13
            }
        )),
        "{tables:?}"
    );
    // Function bodies are walked too.
    assert!(tables.iter().any(|t| t.1 == "geo"), "{tables:?}");
    assert_eq!(a.tables.len(), 3);
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
    let (out, _) = hoist_transform_body("/* é */ private fn transform(x) { x }").unwrap();
    assert_eq!(out, "/* é */                         { x }");
    assert!(hoist_transform_body("fn transform(a, b) { a }").is_none());
}

#[test]
fn unterminated_input_does_not_panic() {
    for s in [
        "\"abc",
        "/* x",
        "`abc",
        "'a",
        "\\",
        "é\"\\",
        "fn transform(r) {",
    ] {
        let _ = hoist_transform_body(s);
        let _ = parse(s);
    }
}
