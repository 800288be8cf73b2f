//! Reader tests against real files in a temporary directory, read through
//! `LocalObjectSource`.

use std::io::{self, Read, Write};
use std::ops::Range;
use std::path::Path;
use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::datatypes::{DataType, Field, Schema};
use arrow::json::LineDelimitedWriter;
use bytes::Bytes;
use serde_json::{Value, json};

use pf_error::{ErrorClass, PfError, Result};
use pf_storage::LocalObjectSource;
use pf_traits::{ObjectListing, ObjectSource, ReadBatch, Reader};
use pf_types::{Checkpoint, ObjectInfo, RecordFailure, Stage, WorkItem};

use crate::{NdjsonReader, NdjsonReaderOptions};

const DEFAULT_CHUNK: usize = crate::DEFAULT_CHUNK_BYTES;

fn write_file(dir: &Path, name: &str, bytes: &[u8]) -> String {
    let path = dir.join(name);
    std::fs::write(&path, bytes).expect("write test file");
    format!("file://{}", path.display())
}

/// `bytes` as `name` in a fresh directory, which lives as long as the returned handle.
fn temp_file(name: &str, bytes: &[u8]) -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().expect("tempdir");
    let uri = write_file(dir.path(), name, bytes);
    (dir, uri)
}

/// A schema of `(name, type, nullable)` fields.
fn schema_of(fields: &[(&str, DataType, bool)]) -> Arc<Schema> {
    let fields: Vec<Field> = fields
        .iter()
        .map(|(name, data_type, nullable)| Field::new(*name, data_type.clone(), *nullable))
        .collect();
    Arc::new(Schema::new(fields))
}

/// A reader decoding against `schema`.
fn typed_reader(schema: Arc<Schema>) -> NdjsonReader {
    NdjsonReader::new(NdjsonReaderOptions {
        schema: Some(schema),
        ..options()
    })
}

/// All of `text`, stored as `name`, read with the default options as `set` changes them.
fn read_with(name: &str, text: &str, set: impl FnOnce(&mut NdjsonReaderOptions)) -> Vec<ReadBatch> {
    let mut opts = options();
    set(&mut opts);
    let (_dir, uri) = temp_file(name, text.as_bytes());
    read_all(&NdjsonReader::new(opts), &uri)
}

/// All of `text`, stored as `name`, read against `schema`.
fn read_typed(schema: Arc<Schema>, name: &str, text: &[u8]) -> Vec<ReadBatch> {
    let (_dir, uri) = temp_file(name, text);
    read_all(&typed_reader(schema), &uri)
}

/// All of `text`, stored as `name`, read against a schema of `fields`: asserts that the
/// lines it decodes are `want` and that the batches carry exactly that schema.
fn read_given_schema(
    name: &str,
    text: &str,
    want: &[Value],
    fields: &[(&str, DataType, bool)],
) -> Vec<ReadBatch> {
    let schema = schema_of(fields);
    let batches = read_typed(schema.clone(), name, text.as_bytes());
    assert_eq!(rows(&batches), want, "{name}");
    assert_eq!(batches[0].batch.schema(), schema, "{name}");
    batches
}

/// A reader with the default options but `batch_size`.
fn batched(batch_size: usize) -> NdjsonReader {
    NdjsonReader::new(NdjsonReaderOptions {
        batch_size,
        ..options()
    })
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    enc.write_all(bytes).expect("gzip");
    enc.finish().expect("gzip")
}

fn zstd(bytes: &[u8]) -> Vec<u8> {
    zstd::stream::encode_all(bytes, 3).expect("zstd")
}

fn options() -> NdjsonReaderOptions {
    NdjsonReaderOptions::default()
}

fn open(reader: &NdjsonReader, uri: &str, resume: &Checkpoint) -> Result<Vec<ReadBatch>> {
    open_with(Arc::new(LocalObjectSource), reader, uri, resume)
}

fn open_with(
    source: Arc<dyn ObjectSource>,
    reader: &NdjsonReader,
    uri: &str,
    resume: &Checkpoint,
) -> Result<Vec<ReadBatch>> {
    let item = WorkItem::from_uri(uri)?;
    reader.open(source, &item, resume)?.collect()
}

fn read_all(reader: &NdjsonReader, uri: &str) -> Vec<ReadBatch> {
    open(reader, uri, &Checkpoint::default()).expect("file reads without a file-level error")
}

/// Decoded rows as JSON objects (nulls omitted), in file order.
fn rows(batches: &[ReadBatch]) -> Vec<Value> {
    let mut out = Vec::new();
    for b in batches {
        out.extend(batch_rows(&b.batch));
    }
    out
}

fn batch_rows(batch: &RecordBatch) -> Vec<Value> {
    if batch.num_columns() == 0 {
        return vec![json!({}); batch.num_rows()];
    }
    let mut writer = LineDelimitedWriter::new(Vec::new());
    writer.write(batch).expect("json write");
    writer.finish().expect("json finish");
    let text = writer.into_inner();
    text.split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| serde_json::from_slice(l).expect("writer output is JSON"))
        .collect()
}

fn failures(batches: &[ReadBatch]) -> Vec<RecordFailure> {
    batches.iter().flat_map(|b| b.failures.clone()).collect()
}

fn failed_lines(batches: &[ReadBatch]) -> Vec<u64> {
    failures(batches).iter().filter_map(|f| f.line).collect()
}

fn total_rows(batches: &[ReadBatch]) -> usize {
    batches.iter().map(|b| b.batch.num_rows()).sum()
}

/// Every decoded row has an ordinal, ordinals (of rows and failures) rise through the
/// file, and every batch carries a resume point that counts its records after
/// `records_before`.
fn assert_consistent(batches: &[ReadBatch], records_before: u64) {
    let mut records = records_before;
    let mut last: Option<u64> = None;
    for b in batches {
        let ordinals = b.ordinals.as_deref().expect("NDJSON rows carry ordinals");
        assert_eq!(ordinals.len(), b.batch.num_rows());
        if let Some(&first) = ordinals.first() {
            assert_eq!(b.first_row, first);
        }
        let mut all: Vec<u64> = ordinals.to_vec();
        all.extend(
            b.failures
                .iter()
                .map(|f| f.row.expect("a failure has its ordinal")),
        );
        all.sort_unstable();
        for o in all {
            assert!(last.is_none_or(|l| o > l), "ordinal {o} after {last:?}");
            last = Some(o);
        }
        records += (b.batch.num_rows() + b.failures.len()) as u64;
        let resume = b.resume.expect("every batch has a resume point");
        assert_eq!(resume.next_row, records);
    }
}

/// The ordinals of the decoded rows, in file order.
fn row_ordinals(batches: &[ReadBatch]) -> Vec<u64> {
    batches
        .iter()
        .flat_map(|b| b.ordinals.clone().expect("NDJSON rows carry ordinals"))
        .collect()
}

/// The byte offset of every non-blank line of `text`.
fn line_offsets(text: &str) -> Vec<u64> {
    let mut offsets = Vec::new();
    let mut at = 0;
    for line in text.split_inclusive('\n') {
        if !line.trim().is_empty() {
            offsets.push(at as u64);
        }
        at += line.len();
    }
    offsets
}

fn tx_line(i: usize) -> String {
    format!(
        r#"{{"id":{i},"account":"acc-{:05}","amount":{}.{:02},"currency":"EUR","merchant":"shop {}","ok":{}}}"#,
        i % 977,
        i * 7 % 10_000,
        i % 100,
        i % 13,
        i.is_multiple_of(2)
    )
}

fn ids(rows: &[Value]) -> Vec<i64> {
    rows.iter().map(|r| r["id"].as_i64().expect("id")).collect()
}

fn assert_record_failure(f: &RecordFailure, uri: &str) {
    assert_eq!(f.uri, uri);
    assert_eq!(f.stage, Stage::Read);
    assert_eq!(f.class, ErrorClass::Record);
    assert!(f.row.is_some(), "a failed line has its ordinal");
    assert!(f.record.is_some());
    assert!(!f.error.is_empty());
}

#[test]
fn malformed_lines_become_failures_with_line_numbers() {
    let mut text = String::new();
    let bad = [3usize, 8, 12];
    for line in 1..=14 {
        match line {
            3 => text.push_str("{\"id\":3,\"account\":\n"),
            8 => text.push_str("this is not json\n"),
            12 => text.push_str("{\"id\":12,,\"x\":}\n"),
            _ => {
                text.push_str(&tx_line(line));
                text.push('\n');
            }
        }
    }
    let (_dir, uri) = temp_file("bad.ndjson", text.as_bytes());
    for chunk in [DEFAULT_CHUNK, 64, 5] {
        let reader = NdjsonReader::new(options()).with_chunk_bytes(chunk);
        let batches = read_all(&reader, &uri);
        assert_eq!(
            failed_lines(&batches),
            bad.map(|l| l as u64),
            "chunk {chunk}"
        );
        for f in failures(&batches) {
            assert_record_failure(&f, &uri);
        }
        assert_eq!(
            failures(&batches)[1].record.as_deref(),
            Some("this is not json")
        );
        let got = ids(&rows(&batches));
        let want: Vec<i64> = (1..=14)
            .filter(|l| !bad.contains(l))
            .map(|l| l as i64)
            .collect();
        assert_eq!(got, want, "chunk {chunk}");
        assert_consistent(&batches, 0);
    }
}

#[test]
fn type_mismatch_against_given_schema_is_a_record_failure() {
    let batches = read_given_schema(
        "typed.ndjson",
        "{\"id\":1,\"amount\":1.5}\n{\"id\":2,\"amount\":\"lots\"}\n{\"id\":3}\n{\"amount\":2}\n",
        &[json!({"id":1,"amount":1.5}), json!({"id":3})],
        &[
            ("id", DataType::Int64, false),
            ("amount", DataType::Float64, true),
        ],
    );
    // Line 2: a string where a number belongs; line 4: the non-nullable id is missing.
    assert_eq!(failed_lines(&batches), vec![2, 4]);
    let f = failures(&batches);
    assert!(
        f[0].error.contains("lots") || f[0].error.contains("amount"),
        "{}",
        f[0].error
    );
    assert_eq!(
        f[0].record.as_deref(),
        Some("{\"id\":2,\"amount\":\"lots\"}")
    );
}

/// A column the head shows as integer keeps its values exactly: a later fraction fails
/// its own line (to the record DLQ) instead of being truncated, while integral values
/// written as floats or strings, and nested integers, still decode.
#[test]
fn a_fraction_in_an_integer_column_fails_its_line_instead_of_being_truncated() {
    let mut text = String::new();
    for i in 0..5 {
        text.push_str(&format!(
            "{{\"id\":{i},\"amount\":{i},\"n\":{{\"k\":{i}}}}}\n"
        ));
    }
    text.push_str("{\"id\":5,\"amount\":7.0,\"n\":{\"k\":5e1}}\n");
    text.push_str("{\"id\":6,\"amount\":7.5,\"n\":{\"k\":6}}\n");
    text.push_str("{\"id\":7,\"amount\":\"8\",\"n\":{\"k\":7}}\n");
    text.push_str("{\"id\":8,\"amount\":9,\"n\":{\"k\":0.25}}\n");
    let batches = read_with("ints.ndjson", &text, |o| o.infer_rows = 5);
    assert_eq!(failed_lines(&batches), vec![7, 9]);
    for f in failures(&batches) {
        assert!(f.error.contains("is not an integer"), "{}", f.error);
    }
    let got = rows(&batches);
    assert_eq!(
        got[5..],
        [
            json!({"id":5,"amount":7,"n":{"k":50}}),
            json!({"id":7,"amount":8,"n":{"k":7}})
        ]
    );
    assert_eq!(got.len(), 7);
}

/// Narrower integer types of a configured schema are exact too, and a value outside the
/// type fails its line.
#[test]
fn narrow_integer_columns_of_a_given_schema_are_exact() {
    let schema = schema_of(&[("n", DataType::Int32, true), ("u", DataType::UInt8, true)]);
    let text = "{\"n\":1,\"u\":2}\n{\"n\":1.5}\n{\"u\":300}\n{\"u\":-1}\n{\"n\":2.0,\"u\":\"7\"}\n";
    let batches = read_typed(schema, "narrow.ndjson", text.as_bytes());
    assert_eq!(failed_lines(&batches), vec![2, 3, 4]);
    assert!(failures(&batches)[0].error.contains("fits Int32"));
    assert!(failures(&batches)[1].error.contains("fits UInt8"));
    assert_eq!(
        rows(&batches),
        vec![json!({"n":1,"u":2}), json!({"n":2,"u":7})]
    );
}

#[test]
fn given_schema_ignores_extra_fields_and_fills_missing_ones_with_null() {
    let batches = read_given_schema(
        "given.jsonl",
        "{\"id\":1,\"name\":\"a\",\"extra\":[1,2]}\n{\"name\":\"b\"}\n{\"id\":3,\"name\":null}\n",
        &[
            json!({"id":1,"name":"a"}),
            json!({"name":"b"}),
            json!({"id":3}),
        ],
        &[
            ("id", DataType::Int32, true),
            ("name", DataType::Utf8, true),
        ],
    );
    assert!(failures(&batches).is_empty());
}

#[test]
fn overlong_lines_are_reported_and_skipped() {
    let long = format!("{{\"id\":2,\"pad\":\"{}\"}}", "x".repeat(3_000));
    let last = format!("{{\"id\":5,\"pad\":\"{}\"}}", "é".repeat(700));
    let text = format!(
        "{}\n{long}\n{}\r\n{}\n{last}",
        tx_line(1),
        tx_line(3),
        tx_line(4)
    );
    let (_dir, uri) = temp_file("long.ndjson", text.as_bytes());
    for chunk in [DEFAULT_CHUNK, 300, 7] {
        let reader = NdjsonReader::new(NdjsonReaderOptions {
            max_line_bytes: 200,
            ..options()
        })
        .with_chunk_bytes(chunk);
        let batches = read_all(&reader, &uri);
        assert_eq!(failed_lines(&batches), vec![2, 5], "chunk {chunk}");
        let f = failures(&batches);
        assert_eq!(f[0].error, "line 2 exceeds max_line_bytes (200 bytes)");
        let record = f[0].record.as_deref().expect("record");
        assert_eq!(record.len(), 1024);
        assert!(long.starts_with(record));
        // Cut before a split two-byte character, never through it.
        let record = f[1].record.as_deref().expect("record");
        assert!(last.starts_with(record), "chunk {chunk}");
        assert!(record.len() <= 1024 && record.len() >= 1022);
        assert_eq!(ids(&rows(&batches)), vec![1, 3, 4], "chunk {chunk}");
        let end = batches.last().and_then(|b| b.resume).expect("resume");
        assert_eq!(end.position, text.len() as u64);
        assert_eq!(end.lines_done, 5);
    }
}

#[test]
fn an_overlong_line_keeps_only_its_own_text() {
    let long = format!("{{\"id\":2,\"pad\":\"{}\"}}", "z".repeat(30));
    let text = format!("{{\"id\":1}}\n{long}\r\n{{\"id\":3}}\n");
    let batches = read_with("short-limit.ndjson", &text, |o| o.max_line_bytes = 20);
    assert_eq!(ids(&rows(&batches)), vec![1, 3]);
    let f = failures(&batches);
    assert_eq!(f.len(), 1);
    assert_eq!(f[0].line, Some(2));
    assert_eq!(f[0].record.as_deref(), Some(long.as_str()));
}

#[test]
fn a_line_longer_than_a_chunk_but_within_the_limit_is_decoded() {
    let wide = format!("{{\"id\":2,\"pad\":\"{}\"}}", "y".repeat(5_000));
    let text = format!("{}\n{wide}\n{}\n", tx_line(1), tx_line(3));
    let (_dir, uri) = temp_file("wide.ndjson", text.as_bytes());
    // A schema, because inference would only see the first (tiny) chunk.
    let schema = schema_of(&[("id", DataType::Int64, true), ("pad", DataType::Utf8, true)]);
    let reader = typed_reader(schema).with_chunk_bytes(64);
    let batches = read_all(&reader, &uri);
    assert!(failures(&batches).is_empty());
    let rows = rows(&batches);
    assert_eq!(ids(&rows), vec![1, 2, 3]);
    assert_eq!(rows[1]["pad"].as_str().map(str::len), Some(5_000));
}

#[test]
fn blank_lines_crlf_and_a_missing_final_newline() {
    let text = "\r\n{\"id\":1}\r\n   \r\n\t\n{\"id\":2}\r\n\n{\"id\":\r\n{\"id\":4}";
    let (_dir, uri) = temp_file("crlf.ndjson", text.as_bytes());
    for chunk in [DEFAULT_CHUNK, 3] {
        let reader = NdjsonReader::new(options()).with_chunk_bytes(chunk);
        let batches = read_all(&reader, &uri);
        assert_eq!(ids(&rows(&batches)), vec![1, 2, 4], "chunk {chunk}");
        assert_eq!(failed_lines(&batches), vec![7]);
        assert_eq!(failures(&batches)[0].record.as_deref(), Some("{\"id\":"));
        let end = batches.last().and_then(|b| b.resume).expect("resume");
        assert_eq!(end.position, text.len() as u64);
        assert_eq!(end.lines_done, 8);
        assert_eq!(end.next_row, 4, "3 records and 1 failed line");
        // Ordinals are the lines' byte offsets, blank lines and CRLF included.
        assert_eq!(row_ordinals(&batches), vec![2, 19, 38]);
        assert_eq!(failures(&batches)[0].row, Some(30));
    }
}

#[test]
fn byte_order_mark_is_ignored() {
    let (_dir, uri) = temp_file("bom.ndjson", b"\xEF\xBB\xBF{\"id\":1}\n{\"id\":2}\n");
    let batches = read_all(&NdjsonReader::new(options()), &uri);
    assert!(failures(&batches).is_empty());
    assert_eq!(ids(&rows(&batches)), vec![1, 2]);
}

#[test]
fn gzip_and_zstd_files_decode_like_plain_ones() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut text = String::new();
    for i in 0..500 {
        text.push_str(&tx_line(i));
        text.push('\n');
        if i == 250 {
            text.push_str("{broken\n");
        }
    }
    let plain = write_file(dir.path(), "t.ndjson", text.as_bytes());
    let gz_bytes = gzip(text.as_bytes());
    // Two gzip members back to back read as one stream.
    let mut two_members = gzip(&text.as_bytes()[..1000]);
    two_members.extend(gzip(&text.as_bytes()[1000..]));
    let zst_bytes = zstd(text.as_bytes());
    let files = [
        (
            write_file(dir.path(), "t.ndjson.gz", &gz_bytes),
            gz_bytes.len(),
        ),
        (
            write_file(dir.path(), "t2.ndjson.gz", &two_members),
            two_members.len(),
        ),
        (
            write_file(dir.path(), "t.ndjson.zst", &zst_bytes),
            zst_bytes.len(),
        ),
    ];
    let reader = batched(100).with_chunk_bytes(4096);
    let want = read_all(&reader, &plain);
    for (uri, stored) in files {
        let got = read_all(&reader, &uri);
        assert_eq!(rows(&got), rows(&want), "{uri}");
        assert_eq!(failed_lines(&got), vec![252], "{uri}");
        let bytes: u64 = got.iter().map(|b| b.bytes_read).sum();
        assert_eq!(
            bytes, stored as u64,
            "{uri}: bytes_read counts stored bytes"
        );
        assert_consistent(&got, 0);
        assert!(
            got.iter()
                .all(|b| b.batch.num_rows() + b.failures.len() <= 100)
        );
    }
}

#[test]
fn inference_skips_bad_head_lines() {
    let text = "not json at all\n{\"id\":1,\"amount\":2.5,\"tag\":\"a\"}\n[1,2]\n{\"id\":2,\"amount\":3,\"tag\":\"b\"}\n";
    let (_dir, uri) = temp_file("head.ndjson", text.as_bytes());
    let batches = read_all(&NdjsonReader::new(options()), &uri);
    assert_eq!(failed_lines(&batches), vec![1, 3]);
    let schema = batches[0].batch.schema();
    let mut names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
    names.sort_unstable();
    assert_eq!(names, vec!["amount", "id", "tag"]);
    assert_eq!(
        schema
            .field_with_name("amount")
            .map(|f| f.data_type().clone())
            .ok(),
        Some(DataType::Float64)
    );
    assert_eq!(
        schema
            .field_with_name("id")
            .map(|f| f.data_type().clone())
            .ok(),
        Some(DataType::Int64)
    );
    assert_eq!(
        rows(&batches),
        vec![
            json!({"id":1,"amount":2.5,"tag":"a"}),
            json!({"id":2,"amount":3.0,"tag":"b"})
        ]
    );
}

#[test]
fn inference_sees_only_the_head_and_tolerates_what_it_missed() {
    // `note` is null throughout the head and a string later; `code` holds a number in
    // the head and later a string, and the other way round.
    let text = "{\"id\":1,\"note\":null,\"code\":\"A1\"}\n{\"id\":2,\"note\":null,\"code\":7}\n{\"id\":3,\"note\":\"late\",\"code\":9,\"new\":1}\n";
    let batches = read_with("late.ndjson", text, |o| o.infer_rows = 2);
    assert!(failures(&batches).is_empty(), "{:?}", failures(&batches));
    assert_eq!(
        rows(&batches),
        vec![
            json!({"id":1,"code":"A1"}),
            json!({"id":2,"code":"7"}),
            json!({"id":3,"note":"late","code":"9"})
        ]
    );
}

#[test]
fn nulls_are_preserved() {
    let text = "{\"a\":null,\"b\":1,\"c\":[1,null]}\n{\"a\":\"x\",\"b\":null,\"c\":null}\n{}\n";
    let (_dir, uri) = temp_file("nulls.ndjson", text.as_bytes());
    let batches = read_all(&NdjsonReader::new(options()), &uri);
    assert!(failures(&batches).is_empty());
    let batch = &batches[0].batch;
    assert_eq!(batch.num_rows(), 3);
    let a = batch.column_by_name("a").expect("a");
    let b = batch.column_by_name("b").expect("b");
    let c = batch.column_by_name("c").expect("c");
    assert_eq!(a.null_count(), 2);
    assert_eq!(b.null_count(), 2);
    assert_eq!(c.null_count(), 2);
    assert_eq!(
        rows(&batches),
        vec![json!({"b":1,"c":[1,null]}), json!({"a":"x"}), json!({})]
    );
}

#[test]
fn nested_objects_and_arrays_become_structs_and_lists() {
    let text = concat!(
        r#"{"id":1,"user":{"name":"ann","geo":{"cc":"FR"}},"tags":["a","b"],"items":[{"sku":"x","qty":2}]}"#,
        "\n",
        r#"{"id":2,"user":{"name":"bob"},"tags":[],"items":[{"sku":"y","qty":1},{"sku":"z","qty":5}]}"#,
        "\n",
    );
    let (_dir, uri) = temp_file("nested.ndjson", text.as_bytes());
    let batches = read_all(&NdjsonReader::new(options()), &uri);
    assert!(failures(&batches).is_empty());
    let schema = batches[0].batch.schema();
    assert!(matches!(
        schema.field_with_name("user").map(|f| f.data_type()),
        Ok(DataType::Struct(_))
    ));
    assert!(matches!(
        schema.field_with_name("tags").map(|f| f.data_type()),
        Ok(DataType::List(_))
    ));
    match schema.field_with_name("items").map(|f| f.data_type()) {
        Ok(DataType::List(item)) => assert!(matches!(item.data_type(), DataType::Struct(_))),
        other => panic!("items: {other:?}"),
    }
    let expected: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).expect("json"))
        .collect();
    assert_eq!(rows(&batches), expected);
}

#[test]
fn empty_and_whitespace_only_files_yield_no_rows() {
    let dir = tempfile::tempdir().expect("tempdir");
    for (name, bytes) in [
        ("empty.ndjson", &b""[..]),
        ("ws.ndjson", &b"\n  \r\n\t\n\n"[..]),
        ("empty.ndjson.gz", &gzip(b"")[..]),
    ] {
        let uri = write_file(dir.path(), name, bytes);
        let batches = read_all(&NdjsonReader::new(options()), &uri);
        assert_eq!(total_rows(&batches), 0, "{name}");
        assert!(failures(&batches).is_empty(), "{name}");
        let bytes_read: u64 = batches.iter().map(|b| b.bytes_read).sum();
        assert_eq!(bytes_read, bytes.len() as u64, "{name}");
    }
}

#[test]
fn a_file_of_only_invalid_lines_fails_every_line_and_decodes_nothing() {
    let text = "nope\n[1,2,3]\n\n42\n\"str\"\nnull\n{\"unterminated\":\n";
    let (_dir, uri) = temp_file("junk.ndjson", text.as_bytes());
    for chunk in [DEFAULT_CHUNK, 4] {
        let reader = batched(4).with_chunk_bytes(chunk);
        let batches = read_all(&reader, &uri);
        assert_eq!(total_rows(&batches), 0);
        assert_eq!(
            failed_lines(&batches),
            vec![1, 2, 4, 5, 6, 7],
            "chunk {chunk}"
        );
        for f in failures(&batches) {
            assert_record_failure(&f, &uri);
        }
        assert!(batches.iter().all(|b| b.failures.len() <= 4));
        let end = batches.last().and_then(|b| b.resume).expect("resume");
        assert_eq!(
            (end.position, end.lines_done, end.next_row),
            (text.len() as u64, 7, 6)
        );
    }
}

#[test]
fn lines_that_are_not_exactly_one_object_fail_once_the_schema_is_known() {
    let text: &[u8] = b"{\"id\":1}\n\
        {\"id\":2}{\"id\":3}\n\
        {\"id\":\"four\n\
        five\"}\n\
        7\n\
        [{\"id\":8}]\n\
        null\n\
        {\"id\":9,\"s\":\"\xFF\xFE\"}\n\
        {\"id\":10}\n";
    let schema = schema_of(&[("id", DataType::Int64, true), ("s", DataType::Utf8, true)]);
    let batches = read_typed(schema, "odd.ndjson", text);
    assert_eq!(ids(&rows(&batches)), vec![1, 10]);
    assert_eq!(failed_lines(&batches), vec![2, 3, 4, 5, 6, 7, 8]);
    let invalid_utf8 = &failures(&batches)[6];
    assert!(
        invalid_utf8
            .record
            .as_deref()
            .is_some_and(|r| r.contains('\u{FFFD}'))
    );
}

#[test]
fn two_objects_on_one_line_cannot_cancel_out_an_object_over_two_lines() {
    let text = "{\"s\":\"ok\"}\n{\"s\":\"a\"}{\"s\":\"b\n c\"}\n{\"s\":\"end\"}\n";
    let schema = schema_of(&[("s", DataType::Utf8, true)]);
    let batches = read_typed(schema, "cancel.ndjson", text.as_bytes());
    assert_eq!(rows(&batches), vec![json!({"s":"ok"}), json!({"s":"end"})]);
    assert_eq!(failed_lines(&batches), vec![2, 3]);
}

#[test]
fn chunk_boundaries_inside_lines_do_not_change_the_result() {
    let mut text = String::new();
    for i in 0..300 {
        text.push_str(&tx_line(i));
        text.push_str(if i.is_multiple_of(3) { "\r\n" } else { "\n" });
        if i % 50 == 7 {
            text.push_str("{\"bad\": tru}\n\n");
        }
    }
    let (_dir, uri) = temp_file("chunks.ndjson", text.as_bytes());
    let opts = NdjsonReaderOptions {
        batch_size: 64,
        ..options()
    };
    let want = read_all(&NdjsonReader::new(opts.clone()), &uri);
    assert_eq!(total_rows(&want), 300);
    for chunk in [1, 2, 17, 100, 233, 1000] {
        let got = read_all(
            &NdjsonReader::new(opts.clone()).with_chunk_bytes(chunk),
            &uri,
        );
        assert_eq!(rows(&got), rows(&want), "chunk {chunk}");
        assert_eq!(failed_lines(&got), failed_lines(&want), "chunk {chunk}");
        assert_consistent(&got, 0);
    }
}

/// Reads `uri` whole, then again from the resume point of batch `k`; the second read
/// must continue exactly where the first left off.
fn check_resume(reader: &NdjsonReader, uri: &str, k: usize) {
    let all = read_all(reader, uri);
    assert!(all.len() > k + 1, "need batches after the resume point");
    let point = all[k].resume.expect("resume point");
    let checkpoint = point.checkpoint(Default::default());
    let resumed = open(reader, uri, &checkpoint).expect("resumed read");
    let tail = &all[k + 1..];
    assert_eq!(rows(&resumed), rows(tail));
    assert_eq!(failed_lines(&resumed), failed_lines(tail));
    assert_eq!(row_ordinals(&resumed), row_ordinals(tail));
    assert_consistent(&resumed, point.next_row);
    let last = |b: &[ReadBatch]| b.last().and_then(|b| b.resume);
    assert_eq!(last(&resumed), last(&all));
}

fn resume_text() -> String {
    let mut text = String::new();
    for i in 0..40 {
        text.push_str(&tx_line(i));
        text.push('\n');
        if i % 9 == 4 {
            text.push_str("\n{oops}\n");
        }
    }
    text
}

#[test]
fn resume_plain_file_from_checkpoint() {
    let (_dir, uri) = temp_file("resume.ndjson", resume_text().as_bytes());
    let schema = schema_of(&[
        ("id", DataType::Int64, true),
        ("amount", DataType::Float64, true),
    ]);
    for chunk in [DEFAULT_CHUNK, 50] {
        let reader = NdjsonReader::new(NdjsonReaderOptions {
            batch_size: 7,
            schema: Some(schema.clone()),
            ..options()
        })
        .with_chunk_bytes(chunk);
        for k in [0, 2, 4] {
            check_resume(&reader, &uri, k);
        }
    }
}

#[test]
fn resume_compressed_files_from_checkpoint() {
    let dir = tempfile::tempdir().expect("tempdir");
    let text = resume_text();
    let gz = write_file(dir.path(), "resume.ndjson.gz", &gzip(text.as_bytes()));
    let zst = write_file(dir.path(), "resume.ndjson.zst", &zstd(text.as_bytes()));
    let schema = schema_of(&[("id", DataType::Int64, true)]);
    let reader = NdjsonReader::new(NdjsonReaderOptions {
        batch_size: 6,
        schema: Some(schema),
        ..options()
    })
    .with_chunk_bytes(100);
    for k in [0, 3] {
        check_resume(&reader, &gz, k);
        check_resume(&reader, &zst, k);
    }
}

#[test]
fn resume_with_inferred_schema_infers_from_the_resumed_head() {
    let (_dir, uri) = temp_file("resume-infer.ndjson", resume_text().as_bytes());
    let reader = batched(10);
    check_resume(&reader, &uri, 1);
}

#[test]
fn resume_at_the_end_and_at_a_bad_position() {
    let dir = tempfile::tempdir().expect("tempdir");
    let text = "{\"id\":1}\n{\"id\":2}";
    let uri = write_file(dir.path(), "end.ndjson", text.as_bytes());
    let reader = NdjsonReader::new(options());
    let at = |position: u64| Checkpoint {
        position,
        next_row: 1,
        lines_done: 1,
        ..Checkpoint::default()
    };
    // At the very end (after a last line without newline): nothing left, no error.
    let done = open(&reader, &uri, &at(text.len() as u64)).expect("resume at end");
    assert_eq!(total_rows(&done), 0);
    // Mid-line and past the end: the checkpoint does not belong to this file.
    for position in [4, 100] {
        let err = open(&reader, &uri, &at(position)).expect_err("bad checkpoint");
        assert!(matches!(err, PfError::InvalidData { .. }), "{err}");
        assert_eq!(err.class(), ErrorClass::Permanent);
    }
    let gz = write_file(dir.path(), "end.ndjson.gz", &gzip(text.as_bytes()));
    let err = open(&reader, &gz, &at(4)).expect_err("bad checkpoint");
    assert_eq!(err.class(), ErrorClass::Permanent);
    let resumed = open(&reader, &gz, &at(9)).expect("resume after line 1");
    assert_eq!(ids(&rows(&resumed)), vec![2]);
    assert_eq!(resumed[0].first_row, 9, "the byte offset of line 2");
}

#[test]
fn corrupt_compressed_streams_are_permanent_errors() {
    let dir = tempfile::tempdir().expect("tempdir");
    let text: String = (0..2000).map(|i| tx_line(i) + "\n").collect();
    let mut gz = gzip(text.as_bytes());
    let mid = gz.len() / 2;
    for b in &mut gz[mid..mid + 64] {
        *b ^= 0x5A;
    }
    let mut truncated = gzip(text.as_bytes());
    truncated.truncate(truncated.len() / 2);
    let mut zst = zstd(text.as_bytes());
    let mid = zst.len() / 2;
    for b in &mut zst[mid..mid + 64] {
        *b ^= 0x5A;
    }
    // A frame that asks for a 256 MiB window, over the 128 MiB the decoder allows: a
    // hostile size is refused, never allocated.
    let mut wide = zstd::stream::Encoder::new(Vec::new(), 3).expect("zstd encoder");
    wide.window_log(28).expect("window log");
    wide.long_distance_matching(true).expect("long mode");
    std::io::Write::write_all(&mut wide, text.as_bytes()).expect("zstd write");
    let wide = wide.finish().expect("zstd finish");
    let cases = [
        write_file(dir.path(), "window-too-large.ndjson.zst", &wide),
        write_file(dir.path(), "corrupt.ndjson.gz", &gz),
        write_file(dir.path(), "truncated.ndjson.gz", &truncated),
        write_file(dir.path(), "plain-text.ndjson.gz", text.as_bytes()),
        write_file(dir.path(), "corrupt.ndjson.zst", &zst),
    ];
    let reader = NdjsonReader::new(options());
    for uri in cases {
        let err = open(&reader, &uri, &Checkpoint::default()).expect_err(&uri);
        assert_eq!(err.class(), ErrorClass::Permanent, "{uri}: {err}");
        assert!(
            matches!(
                err,
                PfError::InvalidData {
                    format: "ndjson",
                    ..
                }
            ),
            "{uri}: {err}"
        );
    }
}

#[test]
fn missing_file_is_not_found() {
    let dir = tempfile::tempdir().expect("tempdir");
    let uri = format!("file://{}/absent.ndjson", dir.path().display());
    let err = open(&NdjsonReader::new(options()), &uri, &Checkpoint::default())
        .expect_err("missing file");
    assert!(matches!(err, PfError::NotFound { .. }), "{err}");
}

/// A source whose stream breaks after `limit` bytes, like a dropped connection.
struct FlakySource {
    data: Vec<u8>,
    limit: usize,
}

struct FlakyRead {
    data: Vec<u8>,
    pos: usize,
    limit: usize,
}

impl Read for FlakyRead {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.pos >= self.limit {
            return Err(io::Error::from(io::ErrorKind::ConnectionReset));
        }
        let n = buf
            .len()
            .min(self.limit - self.pos)
            .min(self.data.len() - self.pos);
        buf[..n].copy_from_slice(&self.data[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

impl ObjectSource for FlakySource {
    fn stat(&self, uri: &str) -> Result<ObjectInfo> {
        Ok(ObjectInfo {
            uri: uri.to_owned(),
            size: self.data.len() as u64,
            etag: None,
            last_modified: None,
        })
    }
    fn read_range(&self, _uri: &str, range: Range<u64>) -> Result<Bytes> {
        Ok(Bytes::copy_from_slice(
            &self.data[range.start as usize..range.end as usize],
        ))
    }
    fn read_from(&self, _uri: &str, offset: u64) -> Result<Box<dyn Read + Send>> {
        Ok(Box::new(FlakyRead {
            data: self.data.clone(),
            pos: offset as usize,
            limit: self.limit,
        }))
    }
    fn list(&self, _root: &str, _recursive: bool) -> Result<ObjectListing<'_>> {
        Ok(Box::new(std::iter::empty()))
    }
}

#[test]
fn transport_errors_keep_their_class_through_decompression() {
    let text: String = (0..3000).map(|i| tx_line(i) + "\n").collect();
    let reader = batched(100).with_chunk_bytes(1024);
    for (uri, data) in [
        ("s3://b/flaky.ndjson", text.clone().into_bytes()),
        ("s3://b/flaky.ndjson.gz", gzip(text.as_bytes())),
        ("s3://b/flaky.ndjson.zst", zstd(text.as_bytes())),
    ] {
        let limit = data.len() / 2;
        let source = Arc::new(FlakySource { data, limit });
        let item = WorkItem::from_uri(uri).expect("item");
        let mut stream = reader
            .open(source, &item, &Checkpoint::default())
            .expect("open");
        let mut batches = 0;
        let err = loop {
            match stream.next() {
                Some(Ok(_)) => batches += 1,
                Some(Err(e)) => break e,
                None => panic!("{uri}: the stream ended without the transport error"),
            }
        };
        assert!(
            batches > 0,
            "{uri}: batches before the failure are delivered"
        );
        assert!(matches!(err, PfError::Io { .. }), "{uri}: {err}");
        assert_eq!(err.class(), ErrorClass::Transient, "{uri}: {err}");
        assert!(stream.next().is_none(), "an error ends the stream");
    }
}

#[test]
fn segments_larger_than_the_fast_decoder_are_flushed_in_pieces() {
    let mut text = String::new();
    for i in 0..80_000 {
        if i == 70_000 {
            text.push_str("{\"id\":}\n");
        } else {
            text.push_str(&format!("{{\"id\":{i}}}\n"));
        }
    }
    let (_dir, uri) = temp_file("many.ndjson", text.as_bytes());
    let batches = read_all(&NdjsonReader::new(options()), &uri);
    assert_eq!(failed_lines(&batches), vec![70_001]);
    let got = ids(&rows(&batches));
    assert_eq!(got.len(), 79_999);
    assert!(got.iter().zip(got.iter().skip(1)).all(|(a, b)| a < b));
    assert_eq!(batches[0].batch.num_rows(), 65_536);
    assert_consistent(&batches, 0);
}

#[test]
fn batches_respect_batch_size_and_account_for_every_line() {
    let mut text = String::new();
    let mut bad = 0;
    for i in 0..1000usize {
        if i.is_multiple_of(37) {
            text.push_str("{\"id\":\n");
            bad += 1;
        } else {
            text.push_str(&tx_line(i));
            text.push('\n');
        }
    }
    let (_dir, uri) = temp_file("count.ndjson", text.as_bytes());
    let reader = batched(128).with_chunk_bytes(3000);
    let batches = read_all(&reader, &uri);
    assert_eq!(total_rows(&batches), 1000 - bad);
    assert_eq!(failures(&batches).len(), bad);
    for b in &batches {
        assert!(b.batch.num_rows() + b.failures.len() <= 128);
    }
    assert_consistent(&batches, 0);
    let bytes: u64 = batches.iter().map(|b| b.bytes_read).sum();
    assert_eq!(bytes, text.len() as u64);
}

#[test]
fn wrong_format_and_unusable_schema_are_rejected_at_open() {
    let (_dir, uri) = temp_file("x.parquet", b"PAR1");
    let item = WorkItem::from_uri(&uri).expect("item");
    let reader = NdjsonReader::new(options());
    assert!(
        reader
            .open(Arc::new(LocalObjectSource), &item, &Checkpoint::default())
            .is_err()
    );
    assert_eq!(reader.format(), pf_types::FileFormat::Ndjson);
}

/// Throughput on ~220-byte, 12-field transaction lines (one of them always null). Run with
/// `cargo test -p pf-reader-ndjson --release -- --ignored --nocapture throughput`.
#[test]
#[ignore = "timing; run in release mode"]
fn throughput() {
    let dir = tempfile::tempdir().expect("tempdir");
    let n = 200_000;
    let mut text = String::with_capacity(n * 230);
    for i in 0..n {
        text.push_str(&format!(
            r#"{{"tx_id":"tx-{i:09}","account":"acc-{:06}","merchant":"m-{:05}","amount":{}.{:02},"currency":"EUR","ts":"2026-01-15T10:{:02}:{:02}Z","ip":"10.{}.{}.{}","country":"FR","channel":"web","card_present":{},"fraud":false,"rules":null}}"#,
            i % 50_000,
            i % 20_000,
            i % 5_000,
            i % 100,
            i % 60,
            (i / 60) % 60,
            i % 256,
            (i / 256) % 256,
            i % 7,
            i.is_multiple_of(3),
        ));
        text.push('\n');
    }
    let uri = write_file(dir.path(), "speed.ndjson", text.as_bytes());
    let reader = NdjsonReader::new(options());
    let mut best = f64::MAX;
    for _ in 0..3 {
        let started = std::time::Instant::now();
        let batches = read_all(&reader, &uri);
        let elapsed = started.elapsed().as_secs_f64();
        assert_eq!(total_rows(&batches), n);
        assert!(failures(&batches).is_empty());
        best = best.min(elapsed);
    }
    println!(
        "throughput: {n} rows, {:.1} MB, avg line {} bytes, best {:.3}s = {:.0} rows/s, {:.0} MB/s",
        text.len() as f64 / 1e6,
        text.len() / n,
        best,
        n as f64 / best,
        text.len() as f64 / 1e6 / best
    );

    // The isolation path: one line in a hundred is malformed.
    let damaged: String = text
        .lines()
        .enumerate()
        .map(|(i, l)| {
            if i % 100 == 50 {
                format!("{}\n", &l[..l.len() / 2])
            } else {
                format!("{l}\n")
            }
        })
        .collect();
    let uri = write_file(dir.path(), "damaged.ndjson", damaged.as_bytes());
    let started = std::time::Instant::now();
    let batches = read_all(&reader, &uri);
    let elapsed = started.elapsed().as_secs_f64();
    assert_eq!(failures(&batches).len(), n / 100);
    assert_eq!(total_rows(&batches), n - n / 100);
    println!(
        "throughput with 1% malformed lines: {:.3}s = {:.0} lines/s",
        elapsed,
        n as f64 / elapsed
    );
}

#[test]
fn wide_records_make_batches_shorter_not_larger() {
    let dir = tempfile::tempdir().unwrap();
    // 400 records of ~40 KB each (16 MB): by rows alone they would all be one batch.
    let pad = "x".repeat(40_000);
    let mut text = String::new();
    for i in 0..400 {
        text.push_str(&format!("{{\"id\":{i},\"pad\":\"{pad}\"}}\n"));
    }
    let uri = write_file(dir.path(), "wide.ndjson", text.as_bytes());
    let limit = 1 << 20;
    let reader = NdjsonReader::new(NdjsonReaderOptions {
        max_batch_bytes: limit,
        ..options()
    });
    let batches = read_all(&reader, &uri);
    let counts: Vec<usize> = batches.iter().map(|b| b.batch.num_rows()).collect();
    assert_eq!(counts.iter().sum::<usize>(), 400);
    assert!(batches.len() >= 15, "{counts:?}");
    for b in &batches {
        // At most the limit plus the one line that crossed it.
        let bytes = b.batch.num_rows() * 40_020;
        assert!(bytes <= limit + 40_020, "{counts:?}");
    }
    // Ordinals stay the lines' offsets across the shorter batches.
    assert_consistent(&batches, 0);
    assert_eq!(row_ordinals(&batches), line_offsets(&text));
}

/// Issue: ids must survive a resume. A file whose later lines widen what the head
/// showed (an integer field that turns fractional, a field seen only later), read with
/// an inferred schema and interrupted at every resume point: the records, their
/// ordinals (the document ids) and the failed lines equal those of the uninterrupted
/// read.
#[test]
fn a_resume_at_any_checkpoint_decodes_with_the_schema_of_the_file_head() {
    let mut text = String::new();
    for i in 0..60 {
        let line = match i {
            0..20 => format!(r#"{{"id":{i},"amount":{i}}}"#),
            _ => format!(r#"{{"id":{i},"amount":{i}.5,"note":"late {i}"}}"#),
        };
        text.push_str(&line);
        text.push('\n');
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let plain = write_file(dir.path(), "widen.ndjson", text.as_bytes());
    let gz = write_file(dir.path(), "widen.ndjson.gz", &gzip(text.as_bytes()));
    let reader = NdjsonReader::new(NdjsonReaderOptions {
        batch_size: 8,
        infer_rows: 5,
        ..options()
    });
    for uri in [plain, gz] {
        let all = read_all(&reader, &uri);
        let points: Vec<_> = all.iter().filter_map(|b| b.resume).collect();
        assert!(points.len() > 5, "{uri}: several resume points");
        // The last point is the end of the file (see resume_at_the_end_and_at_a_bad_position).
        for (k, point) in points.iter().enumerate().take(points.len() - 1) {
            let checkpoint = point.checkpoint(Default::default());
            let resumed = open(&reader, &uri, &checkpoint).expect("resumed read");
            let tail = &all[k + 1..];
            assert_eq!(
                rows(&resumed),
                rows(tail),
                "{uri}: rows after resume point {k}"
            );
            assert_eq!(
                failed_lines(&resumed),
                failed_lines(tail),
                "{uri}: point {k}"
            );
            assert_eq!(
                row_ordinals(&resumed),
                row_ordinals(tail),
                "{uri}: ordinals, point {k}"
            );
        }
    }
}

/// `uri` (of `size` bytes) cut by `cut`, each range read on its own.
fn read_ranges(reader: &NdjsonReader, uri: &str, size: u64, cut: u64) -> Vec<Vec<ReadBatch>> {
    let mut item = WorkItem::from_uri(uri).expect("item");
    item.size = Some(size);
    let parts = item.split(cut).expect("the file is larger than a cut");
    parts
        .iter()
        .map(|part| {
            reader
                .open(Arc::new(LocalObjectSource), part, &Checkpoint::default())
                .expect("a range opens")
                .collect::<Result<Vec<_>>>()
                .expect("a range reads")
        })
        .collect()
}

/// Issue 12: an uncompressed file cut into byte ranges at every size, including cuts
/// inside lines, on line ends and inside blank, CRLF, bad and over-long lines: the ranges
/// together yield every record of the whole read once, with the same ordinals (the
/// lines' byte offsets), the same failures and the schema the whole read infers.
#[test]
fn ranges_of_a_file_read_on_their_own_equal_the_whole_read() {
    let mut text = String::new();
    for i in 0..40 {
        match i % 10 {
            3 => text.push_str("\r\n"),
            5 => text.push_str("{oops}\n"),
            7 => text.push_str(&format!("{{\"id\":{i},\"pad\":\"{}\"}}\n", "y".repeat(90))),
            // Strings where the inferred head schema has integers: type failures.
            _ if i > 30 => text.push_str(&format!("{{\"id\":{i},\"amount\":\"n/a\"}}\r\n")),
            _ => text.push_str(&format!("{{\"id\":{i},\"amount\":{i}}}\n")),
        }
    }
    text.push_str(r#"{"id":99}"#);
    let (_dir, uri) = temp_file("cut.ndjson", text.as_bytes());
    let reader = NdjsonReader::new(NdjsonReaderOptions {
        batch_size: 4,
        max_line_bytes: 80,
        ..options()
    })
    .with_chunk_bytes(32);
    let whole = read_all(&reader, &uri);
    assert_consistent(&whole, 0);
    let want_rows = rows(&whole);
    // 40 lines less 4 blank, 4 bad, 4 too long and 6 of the wrong type, plus the last.
    assert_eq!(want_rows.len(), 23);
    let want_failures: Vec<u64> = failures(&whole).iter().map(|f| f.row.unwrap()).collect();
    assert_eq!(want_failures.len(), 14);
    let mut want_ordinals = row_ordinals(&whole);
    want_ordinals.extend(&want_failures);
    want_ordinals.sort_unstable();
    assert_eq!(want_ordinals, line_offsets(&text));

    let size = text.len() as u64;
    for cut in (1..=size).step_by(7).chain([size / 2, size - 1]) {
        let ranges = read_ranges(&reader, &uri, size, cut);
        let got: Vec<ReadBatch> = ranges.iter().flatten().cloned().collect();
        assert_eq!(rows(&got), want_rows, "cut {cut}");
        assert_eq!(row_ordinals(&got), row_ordinals(&whole), "cut {cut}");
        let got_failures: Vec<u64> = failures(&got).iter().map(|f| f.row.unwrap()).collect();
        assert_eq!(got_failures, want_failures, "cut {cut}");
        for (index, batches) in ranges.iter().enumerate() {
            assert_consistent(batches, 0);
            let start = index as u64 * cut;
            for o in row_ordinals(batches) {
                assert!(
                    (start..start + cut).contains(&o),
                    "cut {cut}: range {index} owns the lines that start in it, not {o}"
                );
            }
            if index > 0 {
                assert!(
                    failures(batches).iter().all(|f| f.line.is_none()),
                    "a later range does not know its line numbers"
                );
            }
        }
    }
}

/// A range resumed from any of its checkpoints continues exactly where it stopped and
/// still ends at its range's end.
#[test]
fn a_range_resumes_from_its_checkpoints_and_stops_at_its_end() {
    let text: String = (0..60).map(|i| tx_line(i) + "\n").collect();
    let (_dir, uri) = temp_file("resume-range.ndjson", text.as_bytes());
    let reader = batched(5);
    let size = text.len() as u64;
    let cut = size / 3 + 17;
    let ranges = read_ranges(&reader, &uri, size, cut);
    let mut item = WorkItem::from_uri(&uri).unwrap();
    item.size = Some(size);
    let parts = item.split(cut).unwrap();
    for (part, all) in parts.iter().zip(&ranges) {
        assert!(all.len() > 2, "several batches per range");
        for k in 0..all.len() - 1 {
            let point = all[k].resume.expect("resume point");
            let checkpoint = point.checkpoint(Default::default());
            let resumed: Vec<ReadBatch> = reader
                .open(Arc::new(LocalObjectSource), part, &checkpoint)
                .expect("resumed range opens")
                .collect::<Result<_>>()
                .expect("resumed range reads");
            assert_eq!(rows(&resumed), rows(&all[k + 1..]), "point {k}");
            assert_eq!(row_ordinals(&resumed), row_ordinals(&all[k + 1..]));
        }
    }
}

/// A compressed stream cannot be entered in the middle: a range of one is refused, not
/// read wrong.
#[test]
fn a_range_of_a_compressed_file_is_refused() {
    let text: String = (0..10).map(|i| tx_line(i) + "\n").collect();
    let (_dir, uri) = temp_file("c.ndjson.gz", &gzip(text.as_bytes()));
    let mut item = WorkItem::from_uri(&uri).unwrap();
    item.range = Some(pf_types::ItemRange {
        index: 1,
        count: 2,
        start: 10,
        end: 20,
    });
    let err = NdjsonReader::default()
        .open(Arc::new(LocalObjectSource), &item, &Checkpoint::default())
        .err()
        .expect("refused");
    assert_eq!(err.class(), ErrorClass::Permanent, "{err}");
    assert!(err.to_string().contains("read whole"), "{err}");
}

/// Found by the fuzz target's range oracle: with a batch roomier than `infer_rows`, the
/// lines failed for holding no object went past those inference looked at, so a valid
/// object right after them failed too, with an empty reason.
#[test]
fn only_the_lines_inference_rejected_fail_for_holding_no_object() {
    let text = "[1]\n{oops\n\n{\"a\":3}\n{\"a\":4}\n";
    let batches = read_with("head.ndjson", text, |o| {
        o.batch_size = 3;
        o.infer_rows = 2;
    });
    let a: Vec<i64> = rows(&batches)
        .iter()
        .map(|r| r["a"].as_i64().expect("a"))
        .collect();
    assert_eq!(a, vec![3, 4]);
    let failed: Vec<(Option<u64>, bool)> = failures(&batches)
        .iter()
        .map(|f| (f.line, f.error.is_empty()))
        .collect();
    assert_eq!(failed, vec![(Some(1), false), (Some(2), false)]);
}
