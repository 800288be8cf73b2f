//! The `_bulk` request body, per-item outcomes and `filter_path`.

use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::{Doc, Index, Inner, RejectRule};

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
) -> Result<Value, (&'static str, String)> {
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
        let status = item["status"].as_u64().unwrap_or(500);
        errors |= status >= 300;
        let mut wrapper = Map::with_capacity(1);
        wrapper.insert(op.name().to_owned(), item);
        items.push(Value::Object(wrapper));
    }
    Ok(json!({"took": 0, "errors": errors, "items": items}))
}

fn item_error(index: &str, id: &str, status: u16, kind: &str, reason: &str) -> Value {
    json!({"_index": index, "_id": id, "status": status, "error": {"type": kind, "reason": reason}})
}

fn execute(
    inner: &mut Inner,
    keep_sources: bool,
    default_index: Option<&str>,
    op: Op,
    meta: Meta,
    source: Option<&[u8]>,
) -> Value {
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
        return json!({"_index": index, "_id": id, "status": status, "result": if removed {"deleted"} else {"not_found"}});
    }
    let source = source.unwrap_or_default();
    let parsed: Value = match serde_json::from_slice(source) {
        Ok(v @ Value::Object(_)) => v,
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
        && let Some(reason) = rejected(rule, source, &parsed)
    {
        inner.stats.items_rejected += 1;
        return item_error(&index, &id, 400, "mapper_parsing_exception", &reason);
    }
    let entry = inner
        .indices
        .entry(index.clone())
        .or_insert_with(Index::default);
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
    json!({
        "_index": index, "_id": id, "_version": version, "result": result,
        "_shards": {"total": 2, "successful": 1, "failed": 0},
        "_seq_no": inner.seq_no, "_primary_term": 1, "status": status,
    })
}

fn rejected(rule: &RejectRule, source: &[u8], parsed: &Value) -> Option<String> {
    match rule {
        RejectRule::SourceContains(needle) => {
            let n = needle.as_bytes();
            (!n.is_empty() && source.windows(n.len()).any(|w| w == n)).then(|| {
                format!("failed to parse: document matches the rejection pattern [{needle}]")
            })
        }
        RejectRule::FieldIn { field, values } => {
            let v = parsed.get(field)?;
            let text = match v {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            values.contains(&text).then(|| {
                format!("failed to parse field [{field}] of type [long] in document: value [{text}] is not a number")
            })
        }
    }
}

/// Elasticsearch's `filter_path`: comma-separated dotted paths, `*` matching any one
/// key; arrays are transparent and elements left empty by the filter are removed (so a
/// client that needs item positions must keep a field every item has, e.g. `status`).
pub(crate) fn filter_path(v: &Value, spec: &str) -> Value {
    let paths: Vec<Vec<&str>> = spec
        .split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(|p| p.split('.').collect())
        .collect();
    let refs: Vec<&[&str]> = paths.iter().map(Vec::as_slice).collect();
    filter(v, &refs).unwrap_or_else(|| json!({}))
}

fn filter(v: &Value, paths: &[&[&str]]) -> Option<Value> {
    if paths.iter().any(|p| p.is_empty()) {
        return Some(v.clone());
    }
    match v {
        Value::Object(m) => {
            let mut out = Map::new();
            for (k, val) in m {
                let sub: Vec<&[&str]> = paths
                    .iter()
                    .filter(|p| p[0] == "*" || p[0] == k)
                    .map(|p| &p[1..])
                    .collect();
                if sub.is_empty() {
                    continue;
                }
                if let Some(f) = filter(val, &sub) {
                    out.insert(k.clone(), f);
                }
            }
            (!out.is_empty()).then_some(Value::Object(out))
        }
        Value::Array(a) => {
            let items: Vec<Value> = a.iter().filter_map(|e| filter(e, paths)).collect();
            (!items.is_empty()).then_some(Value::Array(items))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filter_path_keeps_listed_fields_and_drops_empty_items() {
        let v = json!({"took": 3, "errors": true, "items": [
            {"index": {"_id": "a", "status": 201, "result": "created"}},
            {"index": {"_id": "b", "status": 429, "error": {"type": "t", "reason": "r"}}},
        ]});
        let f = filter_path(&v, "errors,items.*.status,items.*.error.type");
        assert_eq!(
            f,
            json!({"errors": true, "items": [
                {"index": {"status": 201}},
                {"index": {"status": 429, "error": {"type": "t"}}},
            ]})
        );
        // Without a field every item has, successful items vanish: positions are lost.
        let f = filter_path(&v, "items.*.error");
        assert_eq!(f["items"].as_array().map(Vec::len), Some(1));
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
        let r = apply(&mut inner, true, Some("i"), body).unwrap();
        assert_eq!(r["errors"], false);
        assert_eq!(r["items"][0]["index"]["status"], 201);
        assert_eq!(r["items"][1]["create"]["_index"], "j");
        let r = apply(&mut inner, true, Some("i"), body).unwrap();
        assert_eq!(r["errors"], true);
        assert_eq!(r["items"][0]["index"]["status"], 200);
        assert_eq!(r["items"][1]["create"]["status"], 409);
        assert_eq!(inner.indices["i"].docs["1"].writes, 2);
        assert_eq!(inner.indices["j"].docs["2"].writes, 1);
    }
}
