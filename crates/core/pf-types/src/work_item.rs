use serde::{Deserialize, Serialize};
use serde_json::Value;

use pf_error::PfError;

use crate::{Compression, FileFormat, FileStats};

/// One file to process: the unit of work that queues carry and workers acknowledge.
///
/// Wire form (one JSON object per line or per SQS message):
/// `{"uri":"s3://bucket/key","size":123,"etag":"…","format":"parquet","compression":null,
/// "job_id":"…","last_modified":"…"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WorkItem {
    /// `s3://bucket/key`, `file:///abs/path` or a plain local path.
    pub uri: String,
    /// Object size in bytes, when known.
    pub size: Option<u64>,
    /// Object version tag; part of the item identity and of generated document ids.
    pub etag: Option<String>,
    /// Record encoding.
    pub format: FileFormat,
    /// Whole-file compression; serialized as `null` when uncompressed.
    #[serde(serialize_with = "compression_as_nullable")]
    pub compression: Compression,
    /// The discovery run this item belongs to.
    pub job_id: Option<String>,
    /// RFC 3339 modification time, when known.
    pub last_modified: Option<String>,
}

/// The loosely-typed wire form: format and compression may be omitted and inferred.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WireWorkItem {
    uri: String,
    #[serde(default)]
    size: Option<u64>,
    #[serde(default)]
    etag: Option<String>,
    #[serde(default)]
    format: Option<FileFormat>,
    #[serde(default)]
    compression: Option<Compression>,
    #[serde(default)]
    job_id: Option<String>,
    #[serde(default)]
    last_modified: Option<String>,
}

fn compression_as_nullable<S: serde::Serializer>(c: &Compression, s: S) -> Result<S::Ok, S::Error> {
    match c {
        Compression::None => s.serialize_none(),
        other => other.serialize(s),
    }
}

impl WorkItem {
    /// A work item for `uri` with format and compression inferred from its name.
    pub fn from_uri(uri: impl Into<String>) -> Result<Self, PfError> {
        let uri = uri.into();
        let (format, compression) = infer_or_reject(&uri)?;
        Ok(WorkItem {
            uri,
            size: None,
            etag: None,
            format,
            compression,
            job_id: None,
            last_modified: None,
        })
    }

    /// Parses one queue message or stdin line into the work items it carries.
    ///
    /// Accepts a work item object, an S3 event notification (`Records[].s3`, URL-encoded
    /// keys; only `ObjectCreated:*` events), or either wrapped in an SNS notification.
    /// An S3 test event yields no items.
    pub fn parse_message(text: &str) -> Result<Vec<WorkItem>, PfError> {
        let value: Value = serde_json::from_str(text.trim()).map_err(|e| invalid(e.to_string()))?;
        Self::from_message_value(value)
    }

    fn from_message_value(value: Value) -> Result<Vec<WorkItem>, PfError> {
        let Value::Object(obj) = &value else {
            return Err(invalid("expected a JSON object"));
        };
        if obj.get("Type").and_then(Value::as_str) == Some("Notification") {
            let inner = obj
                .get("Message")
                .and_then(Value::as_str)
                .ok_or_else(|| invalid("SNS notification without a Message string"))?;
            return Self::parse_message(inner);
        }
        if obj.get("Event").and_then(Value::as_str) == Some("s3:TestEvent") {
            return Ok(Vec::new());
        }
        if let Some(records) = obj.get("Records") {
            return parse_s3_event(records);
        }
        let wire: WireWorkItem =
            serde_json::from_value(value).map_err(|e| invalid(e.to_string()))?;
        let inferred = FileFormat::infer(&wire.uri);
        let format = match (wire.format, inferred) {
            (Some(f), _) => f,
            (None, Some((f, _))) => f,
            (None, None) => return Err(unknown_format(&wire.uri)),
        };
        let compression = wire
            .compression
            .or(inferred.map(|(_, c)| c))
            .unwrap_or_default();
        if wire.uri.is_empty() {
            return Err(invalid("empty uri"));
        }
        Ok(vec![WorkItem {
            uri: wire.uri,
            size: wire.size,
            etag: wire.etag,
            format,
            compression,
            job_id: wire.job_id,
            last_modified: wire.last_modified,
        }])
    }

    /// The identity under which metadata is kept: job, URI and etag.
    pub fn key(&self) -> String {
        format!(
            "{}|{}|{}",
            self.job_id.as_deref().unwrap_or("-"),
            self.uri,
            self.etag.as_deref().unwrap_or("-")
        )
    }

    /// The wire form, one line of JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("work items always serialize")
    }
}

fn parse_s3_event(records: &Value) -> Result<Vec<WorkItem>, PfError> {
    let records = records
        .as_array()
        .ok_or_else(|| invalid("`Records` is not an array"))?;
    let mut items = Vec::with_capacity(records.len());
    for (i, rec) in records.iter().enumerate() {
        let event = rec.get("eventName").and_then(Value::as_str).unwrap_or("");
        if !event.starts_with("ObjectCreated") {
            continue;
        }
        let s3 = rec
            .get("s3")
            .ok_or_else(|| invalid(format!("Records[{i}] has no `s3` object")))?;
        let bucket = s3
            .pointer("/bucket/name")
            .and_then(Value::as_str)
            .ok_or_else(|| invalid(format!("Records[{i}].s3.bucket.name missing")))?;
        let raw_key = s3
            .pointer("/object/key")
            .and_then(Value::as_str)
            .ok_or_else(|| invalid(format!("Records[{i}].s3.object.key missing")))?;
        // S3 notifications form-encode keys: '+' is a space, then percent-decoding.
        let plus_decoded = raw_key.replace('+', " ");
        let key = percent_encoding::percent_decode_str(&plus_decoded)
            .decode_utf8()
            .map_err(|e| invalid(format!("Records[{i}].s3.object.key is not UTF-8: {e}")))?;
        let uri = format!("s3://{bucket}/{key}");
        let (format, compression) = infer_or_reject(&uri)?;
        items.push(WorkItem {
            size: s3.pointer("/object/size").and_then(Value::as_u64),
            etag: s3
                .pointer("/object/eTag")
                .and_then(Value::as_str)
                .map(str::to_owned),
            last_modified: rec
                .get("eventTime")
                .and_then(Value::as_str)
                .map(str::to_owned),
            job_id: None,
            uri,
            format,
            compression,
        });
    }
    Ok(items)
}

fn infer_or_reject(uri: &str) -> Result<(FileFormat, Compression), PfError> {
    FileFormat::infer(uri).ok_or_else(|| unknown_format(uri))
}

fn unknown_format(uri: &str) -> PfError {
    invalid(format!(
        "cannot infer the format of `{uri}`: expected .parquet, .ndjson, .jsonl or .json \
         (optionally .gz or .zst), or an explicit \"format\""
    ))
}

fn invalid(message: impl Into<String>) -> PfError {
    PfError::InvalidWorkItem {
        message: message.into(),
    }
}

/// How far processing of a file got: enough to resume it without re-reading done work.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// Parquet: row groups done. NDJSON: decompressed bytes done (always at a line end).
    pub position: u64,
    /// Ordinal of the next record to read, so resumed records keep their ids.
    pub next_row: u64,
    /// Line number (1-based) of the last line consumed, for NDJSON sources.
    pub lines_done: u64,
    /// Counters for the part already done.
    pub stats: FileStats,
}

/// A listed object: what discovery knows before any byte is read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectInfo {
    /// Full URI of the object.
    pub uri: String,
    /// Size in bytes.
    pub size: u64,
    /// Version tag, when the store has one.
    pub etag: Option<String>,
    /// RFC 3339 modification time.
    pub last_modified: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_full_work_item_and_round_trips() {
        let line = r#"{"uri":"s3://bucket/key.parquet","size":123,"etag":"e1","format":"parquet","compression":null,"job_id":"j","last_modified":"2026-01-01T00:00:00Z"}"#;
        let items = WorkItem::parse_message(line).unwrap();
        assert_eq!(items.len(), 1);
        let it = &items[0];
        assert_eq!(it.uri, "s3://bucket/key.parquet");
        assert_eq!(it.size, Some(123));
        assert_eq!(it.format, FileFormat::Parquet);
        assert_eq!(it.compression, Compression::None);
        assert_eq!(it.to_json(), line);
        assert_eq!(it.key(), "j|s3://bucket/key.parquet|e1");
    }

    #[test]
    fn infers_missing_format_and_compression() {
        let it = &WorkItem::parse_message(r#"{"uri":"file:///d/a.ndjson.gz"}"#).unwrap()[0];
        assert_eq!(
            (it.format, it.compression),
            (FileFormat::Ndjson, Compression::Gzip)
        );
        let it =
            &WorkItem::parse_message(r#"{"uri":"/d/blob","format":"ndjson","compression":"zstd"}"#)
                .unwrap()[0];
        assert_eq!(
            (it.format, it.compression),
            (FileFormat::Ndjson, Compression::Zstd)
        );
    }

    #[test]
    fn rejects_bad_work_items_with_reasons() {
        for (line, needle) in [
            ("not json", "expected"),
            ("[1]", "expected a JSON object"),
            (r#"{"uri":"a.csv"}"#, "cannot infer the format"),
            (r#"{"uri":"a.parquet","bogus":1}"#, "unknown field"),
            (r#"{"uri":"a.parquet","size":"big"}"#, "invalid type"),
            (r#"{"uri":"","format":"parquet"}"#, "empty uri"),
        ] {
            let err = WorkItem::parse_message(line).unwrap_err();
            assert!(err.to_string().contains(needle), "{line}: {err}");
            assert_eq!(err.class(), pf_error::ErrorClass::Permanent);
        }
    }

    #[test]
    fn parses_s3_event_notifications_with_encoded_keys() {
        let msg = r#"{"Records":[
          {"eventVersion":"2.1","eventSource":"aws:s3","eventName":"ObjectCreated:Put",
           "eventTime":"2026-11-01T10:00:00.000Z",
           "s3":{"bucket":{"name":"data"},"object":{"key":"in/my+file%3A1.parquet","size":42,"eTag":"abc"}}},
          {"eventName":"ObjectRemoved:Delete","s3":{"bucket":{"name":"data"},"object":{"key":"x.parquet"}}},
          {"eventName":"ObjectCreated:CompleteMultipartUpload",
           "s3":{"bucket":{"name":"data"},"object":{"key":"a/b%2Bc.ndjson.gz","size":7}}}]}"#;
        let items = WorkItem::parse_message(msg).unwrap();
        assert_eq!(items.len(), 2);
        assert_eq!(items[0].uri, "s3://data/in/my file:1.parquet");
        assert_eq!(items[0].size, Some(42));
        assert_eq!(items[0].etag.as_deref(), Some("abc"));
        assert_eq!(
            items[0].last_modified.as_deref(),
            Some("2026-11-01T10:00:00.000Z")
        );
        assert_eq!(items[1].uri, "s3://data/a/b+c.ndjson.gz");
        assert_eq!(items[1].compression, Compression::Gzip);
    }

    #[test]
    fn s3_test_events_and_sns_wrapping() {
        let test_event = r#"{"Service":"Amazon S3","Event":"s3:TestEvent","Time":"2026-01-01T00:00:00Z","Bucket":"b"}"#;
        assert!(WorkItem::parse_message(test_event).unwrap().is_empty());
        let inner = r#"{"Records":[{"eventName":"ObjectCreated:Put","s3":{"bucket":{"name":"b"},"object":{"key":"k.jsonl"}}}]}"#;
        let sns = serde_json::json!({"Type": "Notification", "Message": inner}).to_string();
        let items = WorkItem::parse_message(&sns).unwrap();
        assert_eq!(items[0].uri, "s3://b/k.jsonl");
        let bad = r#"{"Records":[{"eventName":"ObjectCreated:Put","s3":{"bucket":{"name":"b"}}}]}"#;
        assert!(WorkItem::parse_message(bad).is_err());
    }
}
