//! The `_bulk` request body, per-item outcomes and `filter_path`.

use crate::{Doc, Inner, RejectRule};
use serde::Deserialize;

/// A response tree: what `serde_json::Value` would be, with static keys and without its
/// per-node cost (the server builds millions of items per test run).
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Node {
    Num(u64),
    Bool(bool),
    Str(String),
    Obj(Vec<(&'static str, Node)>),
    Arr(Vec<Node>),
}

impl Node {
    /// The value under `key` of an object.
    pub(crate) fn get(&self, key: &str) -> Option<&Node> {
        match self {
            Node::Obj(fields) => fields.iter().find(|(k, _)| *k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    /// Compact JSON.
    pub(crate) fn write(&self, out: &mut Vec<u8>) {
        match self {
            Node::Num(n) => out.extend_from_slice(n.to_string().as_bytes()),
            Node::Bool(b) => out.extend_from_slice(if *b { b"true" } else { b"false" }),
            Node::Str(s) => write_str(s, out),
            Node::Obj(fields) => {
                out.push(b'{');
                for (i, (k, v)) in fields.iter().enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    write_str(k, out);
                    out.push(b':');
                    v.write(out);
                }
                out.push(b'}');
            }
            Node::Arr(items) => {
                out.push(b'[');
                for (i, v) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    v.write(out);
                }
                out.push(b']');
            }
        }
    }
}

fn write_str(s: &str, out: &mut Vec<u8>) {
    out.push(b'"');
    for c in s.chars() {
        match c {
            '"' => out.extend_from_slice(b"\\\""),
            '\\' => out.extend_from_slice(b"\\\\"),
            c if (c as u32) < 0x20 => {
                out.extend_from_slice(format!("\\u{:04x}", c as u32).as_bytes())
            }
            c => {
                let mut b = [0; 4];
                out.extend_from_slice(c.encode_utf8(&mut b).as_bytes());
            }
        }
    }
    out.push(b'"');
}

fn s(v: &str) -> Node {
    Node::Str(v.to_owned())
}

#[derive(Deserialize)]
struct Action {
    index: Option<Meta>,
    create: Option<Meta>,
    update: Option<Meta>,
    delete: Option<Meta>,
}

#[derive(Deserialize)]
struct Meta {
    #[serde(rename = "_index")]
    index: Option<String>,
    #[serde(rename = "_id")]
    id: Option<String>,
}

#[derive(Clone, Copy, PartialEq)]
enum Op {
    Index,
    Create,
    Update,
    Delete,
}

impl Op {
    fn name(self) -> &'static str {
        match self {
            Op::Index => "index",
            Op::Create => "create",
            Op::Update => "update",
            Op::Delete => "delete",
        }
    }
}

/// FNV-1a, for choosing throttled ids and digesting sources.
pub(crate) fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h = 0xcbf2_9ce4_8422_2325u64;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// A finalizer so that sums of hashes do not cancel out.
pub(crate) fn mix(mut x: u64) -> u64 {
    x ^= x >> 33;
    x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
    x ^= x >> 33;
    x = x.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    x ^ (x >> 33)
}

/// Applies a bulk body; `Err((type, reason))` when the body as a whole is malformed,
/// which Elasticsearch answers with `400` before executing any item.
pub(crate) fn apply(
    inner: &mut Inner,
    keep_sources: bool,
    default_index: Option<&str>,
    body: &[u8],
) -> Result<Node, (&'static str, String)> {
    if !body.is_empty() && !body.ends_with(b"\n") {
        return Err((
            "illegal_argument_exception",
            "The bulk request must be terminated by a newline [\\n]".into(),
        ));
    }
    // Parse the whole body first: a malformed action line fails the request.
    let mut ops = Vec::new();
    let mut lines = body
        .split(|&b| b == b'\n')
        .filter(|l| !l.iter().all(u8::is_ascii_whitespace));
    while let Some(line) = lines.next() {
        let action: Action = serde_json::from_slice(line).map_err(|e| {
            (
                "x_content_parse_exception",
                format!("malformed action/metadata line: {e}"),
            )
        })?;
        let (op, meta) = match action {
            Action { index: Some(m), .. } => (Op::Index, m),
            Action {
                create: Some(m), ..
            } => (Op::Create, m),
            Action {
                update: Some(m), ..
            } => (Op::Update, m),
            Action {
                delete: Some(m), ..
            } => (Op::Delete, m),
            _ => {
                return Err((
                    "illegal_argument_exception",
                    "Malformed action/metadata line, expected one of [create, delete, index, update]".into(),
                ));
            }
        };
        let source = if op == Op::Delete {
            None
        } else {
            Some(lines.next().ok_or((
                "illegal_argument_exception",
                "The bulk request must be terminated by a newline [\\n]".to_owned(),
            ))?)
        };
        ops.push((op, meta, source));
    }
    let mut items = Vec::with_capacity(ops.len());
    let mut errors = false;
    for (op, meta, source) in ops {
        let item = execute(inner, keep_sources, default_index, op, meta, source);
        let status = match item.get("status") {
            Some(Node::Num(n)) => *n,
            _ => 500,
        };
        errors |= status >= 300;
        items.push(Node::Obj(vec![(op.name(), item)]));
    }
    Ok(Node::Obj(vec![
        ("took", Node::Num(0)),
        ("errors", Node::Bool(errors)),
        ("items", Node::Arr(items)),
    ]))
}

fn item_error(index: &str, id: &str, status: u16, kind: &str, reason: &str) -> Node {
    Node::Obj(vec![
        ("_index", s(index)),
        ("_id", s(id)),
        ("status", Node::Num(u64::from(status))),
        (
            "error",
            Node::Obj(vec![("type", s(kind)), ("reason", s(reason))]),
        ),
    ])
}

fn execute(
    inner: &mut Inner,
    keep_sources: bool,
    default_index: Option<&str>,
    op: Op,
    meta: Meta,
    source: Option<&[u8]>,
) -> Node {
    inner.stats.items += 1;
    let Some(index) = meta.index.or_else(|| default_index.map(str::to_owned)) else {
        inner.stats.items_rejected += 1;
        return item_error(
            "",
            meta.id.as_deref().unwrap_or(""),
            400,
            "action_request_validation_exception",
            "Validation Failed: 1: index is missing;",
        );
    };
    let id = match meta.id {
        Some(id) => id,
        None if op == Op::Index || op == Op::Create => {
            inner.auto_id += 1;
            format!("auto-{}", inner.auto_id)
        }
        None => {
            inner.stats.items_rejected += 1;
            return item_error(
                &index,
                "",
                400,
                "action_request_validation_exception",
                "Validation Failed: 1: id is missing;",
            );
        }
    };
    let key = format!("{index}/{id}");
    let f = &inner.faults;
    if f.throttle_fraction > 0.0 && f.throttle_attempts > 0 {
        let h = mix(fnv1a(key.as_bytes()));
        if (h % 1_000_000) < (f.throttle_fraction * 1_000_000.0) as u64 {
            let limit = f.throttle_attempts;
            let attempts = inner.throttle_attempts.entry(key).or_insert(0);
            *attempts += 1;
            if *attempts <= limit {
                let n = *attempts;
                inner.stats.items_throttled += 1;
                return item_error(
                    &index,
                    &id,
                    429,
                    "es_rejected_execution_exception",
                    &format!(
                        "rejected execution of coordinating operation [injected by the test server, attempt {n} of {limit}]"
                    ),
                );
            }
        }
    }
    if op == Op::Delete {
        let removed = inner
            .indices
            .get_mut(&index)
            .and_then(|i| i.docs.remove(&id))
            .is_some();
        let status = if removed { 200 } else { 404 };
        return Node::Obj(vec![
            ("_index", Node::Str(index)),
            ("_id", Node::Str(id)),
            ("status", Node::Num(status)),
            ("result", s(if removed { "deleted" } else { "not_found" })),
        ]);
    }
    let source = source.unwrap_or_default();
    // Validated without building a tree: the server stores bytes, not documents.
    let is_object = source.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{');
    match serde_json::from_slice::<serde::de::IgnoredAny>(source) {
        Ok(_) if is_object => {}
        Ok(_) | Err(_) => {
            inner.stats.items_rejected += 1;
            return item_error(
                &index,
                &id,
                400,
                "document_parsing_exception",
                "[1:1] failed to parse: the source is not a JSON object",
            );
        }
    };
    if let Some(rule) = &inner.faults.reject
        && let Some(reason) = rejected(rule, source)
    {
        inner.stats.items_rejected += 1;
        return item_error(&index, &id, 400, "mapper_parsing_exception", &reason);
    }
    let entry = inner.indices.entry(index.clone()).or_default();
    let existing = entry.docs.get_mut(&id);
    if op == Op::Create && existing.is_some() {
        inner.stats.items_conflicts += 1;
        return item_error(
            &index,
            &id,
            409,
            "version_conflict_engine_exception",
            &format!("[{id}]: version conflict, document already exists (current version [1])"),
        );
    }
    let source_hash = fnv1a(source);
    let stored_source = keep_sources.then(|| source.to_vec().into_boxed_slice());
    let (status, result, version) = match existing {
        Some(d) => {
            d.writes += 1;
            d.source_hash = source_hash;
            d.source = stored_source;
            (200, "updated", d.writes)
        }
        None if op == Op::Update => {
            inner.stats.items_rejected += 1;
            return item_error(
                &index,
                &id,
                404,
                "document_missing_exception",
                &format!("[{id}]: document missing"),
            );
        }
        None => {
            entry.docs.insert(
                id.clone(),
                Doc {
                    source: stored_source,
                    source_hash,
                    writes: 1,
                },
            );
            (201, "created", 1)
        }
    };
    if status == 201 {
        inner.stats.items_created += 1;
    } else {
        inner.stats.items_updated += 1;
    }
    inner.seq_no += 1;
    Node::Obj(vec![
        ("_index", Node::Str(index)),
        ("_id", Node::Str(id)),
        ("_version", Node::Num(u64::from(version))),
        ("result", s(result)),
        (
            "_shards",
            Node::Obj(vec![
                ("total", Node::Num(2)),
                ("successful", Node::Num(1)),
                ("failed", Node::Num(0)),
            ]),
        ),
        ("_seq_no", Node::Num(inner.seq_no)),
        ("_primary_term", Node::Num(1)),
        ("status", Node::Num(status)),
    ])
}

fn rejected(rule: &RejectRule, source: &[u8]) -> Option<String> {
    match rule {
        RejectRule::SourceContains(needle) => {
            let n = needle.as_bytes();
            (!n.is_empty() && source.windows(n.len()).any(|w| w == n)).then(|| {
                format!("failed to parse: document matches the rejection pattern [{needle}]")
            })
        }
        RejectRule::FieldIn { field, values } => {
            let text = field_text(source, field)?;
            values.contains(&text).then(|| {
                format!("failed to parse field [{field}] of type [long] in document: value [{text}] is not a number")
            })
        }
    }
}

/// The text of the first `"field":` value in `source` (a string's unescaped-enough
/// content, or a scalar's JSON text). A byte scan rather than a parse: the server sees
/// millions of documents per test, and a nested key of the same name is a test-data
/// choice, not something the client under test controls.
fn field_text(source: &[u8], field: &str) -> Option<String> {
    let key = format!("\"{field}\"");
    let k = key.as_bytes();
    let mut from = 0;
    while let Some(pos) = source[from..].windows(k.len()).position(|w| w == k) {
        let mut i = from + pos + k.len();
        while source.get(i).is_some_and(u8::is_ascii_whitespace) {
            i += 1;
        }
        if source.get(i) != Some(&b':') {
            from += pos + 1;
            continue;
        }
        i += 1;
        while source.get(i).is_some_and(u8::is_ascii_whitespace) {
            i += 1;
        }
        if source.get(i) == Some(&b'"') {
            let start = i + 1;
            let mut j = start;
            while j < source.len() && source[j] != b'"' {
                j += if source[j] == b'\\' { 2 } else { 1 };
            }
            return std::str::from_utf8(source.get(start..j)?)
                .ok()
                .map(str::to_owned);
        }
        let end = source[i..]
            .iter()
            .position(|b| matches!(b, b',' | b'}' | b']') || b.is_ascii_whitespace())
            .map_or(source.len(), |p| i + p);
        return std::str::from_utf8(&source[i..end]).ok().map(str::to_owned);
    }
    None
}

/// Elasticsearch's `filter_path`: comma-separated dotted paths, `*` matching any one
/// key; arrays are transparent and elements left empty by the filter are removed (so a
/// client that needs item positions must keep a field every item has, e.g. `status`).
pub(crate) fn filter_path(v: Node, spec: &str) -> Node {
    let paths: Vec<Vec<&str>> = spec
        .split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(|p| p.split('.').collect())
        .collect();
    let refs: Vec<&[&str]> = paths.iter().map(Vec::as_slice).collect();
    filter(v, &refs).unwrap_or(Node::Obj(Vec::new()))
}

fn filter(v: Node, paths: &[&[&str]]) -> Option<Node> {
    if paths.iter().any(|p| p.is_empty()) {
        return Some(v);
    }
    match v {
        Node::Obj(fields) => {
            let mut out = Vec::new();
            for (k, val) in fields {
                let sub: Vec<&[&str]> = paths
                    .iter()
                    .filter(|p| p[0] == "*" || p[0] == k)
                    .map(|p| &p[1..])
                    .collect();
                if sub.is_empty() {
                    continue;
                }
                if let Some(f) = filter(val, &sub) {
                    out.push((k, f));
                }
            }
            (!out.is_empty()).then_some(Node::Obj(out))
        }
        Node::Arr(a) => {
            let items: Vec<Node> = a.into_iter().filter_map(|e| filter(e, paths)).collect();
            (!items.is_empty()).then_some(Node::Arr(items))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn to_value(n: &Node) -> Value {
        let mut out = Vec::new();
        n.write(&mut out);
        serde_json::from_slice(&out).unwrap()
    }

    fn from_value(v: &Value) -> Node {
        match v {
            Value::Bool(b) => Node::Bool(*b),
            Value::Number(n) => Node::Num(n.as_u64().unwrap()),
            Value::String(s) => Node::Str(s.clone()),
            Value::Array(a) => Node::Arr(a.iter().map(from_value).collect()),
            Value::Object(m) => Node::Obj(
                m.iter()
                    .map(|(k, v)| (&*Box::leak(k.clone().into_boxed_str()), from_value(v)))
                    .collect(),
            ),
            Value::Null => Node::Obj(Vec::new()),
        }
    }

    #[test]
    fn filter_path_keeps_listed_fields_and_drops_empty_items() {
        let v = json!({"took": 3, "errors": true, "items": [
            {"index": {"_id": "a", "status": 201, "result": "created"}},
            {"index": {"_id": "b", "status": 429, "error": {"type": "t", "reason": "r"}}},
        ]});
        let f = to_value(&filter_path(
            from_value(&v),
            "errors,items.*.status,items.*.error.type",
        ));
        assert_eq!(
            f,
            json!({"errors": true, "items": [
                {"index": {"status": 201}},
                {"index": {"status": 429, "error": {"type": "t"}}},
            ]})
        );
        // Without a field every item has, successful items vanish: positions are lost.
        let f = to_value(&filter_path(from_value(&v), "items.*.error"));
        assert_eq!(f["items"].as_array().map(Vec::len), Some(1));
    }

    #[test]
    fn field_values_are_found_without_parsing() {
        let doc = br#"{"a":{"id":"inner"},"id" : "x\"y","n":12,"b":true}"#;
        assert_eq!(field_text(doc, "id").as_deref(), Some("inner"));
        assert_eq!(field_text(doc, "n").as_deref(), Some("12"));
        assert_eq!(field_text(doc, "b").as_deref(), Some("true"));
        assert_eq!(field_text(doc, "missing"), None);
    }

    #[test]
    fn malformed_bodies_fail_as_a_whole() {
        let mut inner = Inner::default();
        assert!(apply(&mut inner, true, Some("i"), b"{\"index\":{}}\n{}").is_err());
        assert!(apply(&mut inner, true, Some("i"), b"not json\n{}\n").is_err());
        assert!(apply(&mut inner, true, Some("i"), b"{\"index\":{}}\n").is_err());
        assert_eq!(inner.stats.items, 0);
    }

    #[test]
    fn items_are_stored_by_index_and_id_and_create_conflicts() {
        let mut inner = Inner::default();
        let body = b"{\"index\":{\"_id\":\"1\"}}\n{\"a\":1}\n{\"create\":{\"_index\":\"j\",\"_id\":\"2\"}}\n{\"a\":2}\n";
        let r = to_value(&apply(&mut inner, true, Some("i"), body).unwrap());
        assert_eq!(r["errors"], false);
        assert_eq!(r["items"][0]["index"]["status"], 201);
        assert_eq!(r["items"][1]["create"]["_index"], "j");
        let r = to_value(&apply(&mut inner, true, Some("i"), body).unwrap());
        assert_eq!(r["errors"], true);
        assert_eq!(r["items"][0]["index"]["status"], 200);
        assert_eq!(r["items"][1]["create"]["status"], 409);
        assert_eq!(inner.indices["i"].docs["1"].writes, 2);
        assert_eq!(inner.indices["j"].docs["2"].writes, 1);
    }
}
