use serde::{Deserialize, Serialize};
use serde_json::Value;

use pf_error::PfError;

use crate::{Compression, FileFormat, FileStats};

/// One file to process: the unit of work that queues carry and workers acknowledge.
///
/// Wire form (one JSON object per line or per SQS message):
/// `{"uri":"s3://bucket/key","size":123,"etag":"…","format":"parquet","compression":null,
/// "job_id":"…","last_modified":"…"}`, plus `"range":{"index":0,"count":4,"start":0,
/// "end":268435456}` on one range of a split file (see [`ItemRange`]).
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
    /// The part of the file this item covers; `None` for the whole file.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub range: Option<ItemRange>,
}

/// One of `count` byte ranges of a split file: `[start, end)` of its bytes.
///
/// A range owns the records that *start* in it: for Parquet, the row groups whose first
/// column chunk starts in it; for uncompressed NDJSON, the lines whose first byte is in
/// it. So every record belongs to exactly one range however the file is cut, and a
/// range may own none. Each range is claimed, checkpointed and acknowledged on its own;
/// document ids stay the file-relative record ordinals (the row index in Parquet, the
/// line's byte offset in NDJSON), identical to an unsplit run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ItemRange {
    /// This range's position among the file's ranges, from 0.
    pub index: u32,
    /// How many ranges the file was cut into.
    pub count: u32,
    /// First byte offset covered.
    pub start: u64,
    /// One past the last byte offset covered.
    pub end: u64,
}

/// The most ranges one file is cut into: a larger file gets larger ranges, so a crafted
/// or stale `size` cannot make a worker enqueue millions of items.
pub const MAX_RANGES: u32 = 10_000;

impl ItemRange {
    /// True when `offset` lies in `[start, end)`.
    pub fn contains(&self, offset: u64) -> bool {
        (self.start..self.end).contains(&offset)
    }

    /// The size the file was cut by (every range but the last is this long), which
    /// with the range count tells one cut of a file from another.
    pub fn cut_size(&self) -> u64 {
        if self.index + 1 < self.count {
            self.end - self.start
        } else {
            self.start / u64::from(self.index.max(1))
        }
    }
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
    #[serde(default)]
    range: Option<ItemRange>,
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
            range: None,
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
        if let Some(r) = &wire.range {
            check_range(r, wire.size)?;
            if !is_splittable(format, compression) {
                return Err(invalid(format!(
                    "`{}` is {format} ({}), which is read whole; only Parquet and \
                     uncompressed NDJSON files have ranges",
                    wire.uri,
                    compression.as_str()
                )));
            }
        }
        Ok(vec![WorkItem {
            uri: wire.uri,
            size: wire.size,
            etag: wire.etag,
            format,
            compression,
            job_id: wire.job_id,
            last_modified: wire.last_modified,
            range: wire.range,
        }])
    }

    /// The identity under which metadata is kept: job, URI and etag, and for a range
    /// `#<index>/<count>@<cut size>` (two cuts of one file never share a range's key).
    pub fn key(&self) -> String {
        match &self.range {
            None => self.file_key(),
            Some(r) => format!("{}#{}/{}", self.file_key(), r.index, cut_suffix(r)),
        }
    }

    /// The identity of the cut this range belongs to: the file's key and how it was cut,
    /// shared by all ranges of that cut (`None` for a whole file).
    pub fn cut_key(&self) -> Option<String> {
        self.range
            .map(|r| format!("{}#{}", self.file_key(), cut_suffix(&r)))
    }

    /// The identity of the whole file, shared by all its ranges.
    pub fn file_key(&self) -> String {
        format!(
            "{}|{}|{}",
            self.job_id.as_deref().unwrap_or("-"),
            self.uri,
            self.etag.as_deref().unwrap_or("-")
        )
    }

    /// The URI, with ` bytes <start>-<end> (range <index>/<count>)` for a range: how
    /// failures and `pf status` name what they report.
    pub fn location(&self) -> String {
        match &self.range {
            None => self.uri.clone(),
            Some(r) => format!(
                "{} bytes {}-{} (range {}/{})",
                self.uri, r.start, r.end, r.index, r.count
            ),
        }
    }

    /// Source bytes this item covers: its range, else the whole file (when known).
    pub fn covered_bytes(&self) -> Option<u64> {
        match &self.range {
            Some(r) => Some(r.end - r.start),
            None => self.size,
        }
    }

    /// True when the file can be cut into byte ranges: Parquet, whose row groups are
    /// independent and whose footer gives every group's first ordinal, and uncompressed
    /// NDJSON, whose lines are found from any byte and whose ordinals are their byte
    /// offsets. A compressed stream cannot be entered in the middle, so it is read whole.
    pub fn is_splittable(&self) -> bool {
        is_splittable(self.format, self.compression)
    }

    /// This whole-file item cut into ranges of `split_size` bytes (the last one shorter;
    /// larger ones when that would make more than [`MAX_RANGES`]), or `None` when it
    /// stays whole: already a range, not splittable, size unknown, or not larger than
    /// `split_size`.
    pub fn split(&self, split_size: u64) -> Option<Vec<WorkItem>> {
        let size = self.size?;
        if self.range.is_some() || !self.is_splittable() || split_size == 0 || size <= split_size {
            return None;
        }
        let cut = split_size.max(size.div_ceil(u64::from(MAX_RANGES)));
        let count = u32::try_from(size.div_ceil(cut)).ok()?;
        Some(
            (0..count)
                .map(|index| {
                    let start = u64::from(index) * cut;
                    WorkItem {
                        range: Some(ItemRange {
                            index,
                            count,
                            start,
                            end: start.saturating_add(cut).min(size),
                        }),
                        ..self.clone()
                    }
                })
                .collect(),
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
            range: None,
        });
    }
    Ok(items)
}

fn is_splittable(format: FileFormat, compression: Compression) -> bool {
    match format {
        FileFormat::Parquet => true,
        FileFormat::Ndjson => compression == Compression::None,
    }
}

fn cut_suffix(r: &ItemRange) -> String {
    format!("{}@{}", r.count, r.cut_size())
}

/// A range must be exactly one of those [`WorkItem::split`] makes of a file of `size`
/// bytes, so ranges of one cut never overlap or leave a gap.
fn check_range(r: &ItemRange, size: Option<u64>) -> Result<(), PfError> {
    let not_a_range = || {
        invalid(format!(
            "range {}/{} [{}, {}) is not a range of a split file",
            r.index, r.count, r.start, r.end
        ))
    };
    if r.count < 2 || r.count > MAX_RANGES || r.index >= r.count || r.start >= r.end {
        return Err(not_a_range());
    }
    let Some(size) = size else {
        return Err(invalid("a range needs the file's `size`"));
    };
    if r.end > size {
        return Err(invalid(format!(
            "range [{}, {}) ends beyond the {size}-byte file",
            r.start, r.end
        )));
    }
    let cut = r.cut_size();
    let fits = cut > 0
        && u64::from(r.index).checked_mul(cut) == Some(r.start)
        && r.start.saturating_add(cut).min(size) == r.end
        && size.div_ceil(cut) == u64::from(r.count);
    if fits { Ok(()) } else { Err(not_a_range()) }
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
    /// Parquet: ordinal of the next record to read, so resumed records keep their ids.
    /// NDJSON: records read so far (a line's ordinal is its byte offset, which
    /// `position` already gives).
    pub next_row: u64,
    /// Line number (1-based) of the last line consumed, for NDJSON sources read from
    /// their first byte (a range after the first does not know its line numbers).
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
    fn splits_into_ranges_that_cover_the_file_once() {
        let mut item = WorkItem::from_uri("s3://b/k.parquet").unwrap();
        item.size = Some(1000);
        item.etag = Some("e".into());
        assert!(item.split(1000).is_none(), "not larger than the split size");
        assert!(item.split(0).is_none(), "splitting off");
        let parts = item.split(300).unwrap();
        let cuts: Vec<_> = parts
            .iter()
            .map(|p| p.range.map(|r| (r.index, r.count, r.start, r.end)))
            .collect();
        assert_eq!(
            cuts,
            [
                Some((0, 4, 0, 300)),
                Some((1, 4, 300, 600)),
                Some((2, 4, 600, 900)),
                Some((3, 4, 900, 1000))
            ]
        );
        assert!(parts[1].split(10).is_none(), "a range is not split again");
        assert_eq!(parts[3].covered_bytes(), Some(100));
        assert_eq!(
            parts[3].location(),
            "s3://b/k.parquet bytes 900-1000 (range 3/4)"
        );
        assert_eq!(item.location(), "s3://b/k.parquet");
        assert_eq!(parts[3].key(), "-|s3://b/k.parquet|e#3/4@300");
        assert_eq!(
            parts[3].cut_key().as_deref(),
            Some("-|s3://b/k.parquet|e#4@300")
        );
        let other_cut = item.split(260).unwrap();
        assert_eq!(other_cut.len(), 4);
        assert_ne!(
            other_cut[1].key(),
            parts[1].key(),
            "another cut, other keys"
        );
        assert_eq!(parts[3].file_key(), item.key());
        let line = parts[2].to_json();
        assert!(
            line.ends_with(r#""range":{"index":2,"count":4,"start":600,"end":900}}"#),
            "{line}"
        );
        assert_eq!(
            WorkItem::parse_message(&line).unwrap(),
            vec![parts[2].clone()]
        );
        assert!(
            !item.to_json().contains("range"),
            "the whole-file wire form is unchanged"
        );

        let mut huge = item.clone();
        huge.size = Some(1 << 60);
        let cuts = huge.split(1).unwrap();
        assert_eq!(
            cuts.len(),
            MAX_RANGES as usize,
            "a lying size cannot explode"
        );
        assert_eq!(cuts.last().unwrap().range.unwrap().end, 1 << 60);
        for uri in ["/d/a.ndjson.gz", "/d/a.jsonl.zst"] {
            let mut ndjson = WorkItem::from_uri(uri).unwrap();
            ndjson.size = Some(1000);
            assert!(
                ndjson.split(10).is_none(),
                "{uri}: a compressed stream is read whole"
            );
        }
        let mut ndjson = WorkItem::from_uri("/d/a.ndjson").unwrap();
        ndjson.size = Some(1000);
        let parts = ndjson.split(300).expect("uncompressed NDJSON is split");
        assert_eq!(parts.len(), 4);
        assert_eq!(parts[3].range.unwrap().end, 1000);
    }

    #[test]
    fn rejects_ranges_that_do_not_fit_the_file() {
        for (range, needle) in [
            (r#"{"index":0,"count":0,"start":0,"end":1}"#, "not a range"),
            (r#"{"index":2,"count":2,"start":0,"end":1}"#, "not a range"),
            (r#"{"index":0,"count":2,"start":5,"end":1}"#, "not a range"),
            (
                r#"{"index":0,"count":2,"start":0,"end":11}"#,
                "beyond the 10-byte file",
            ),
            (
                r#"{"index":0,"count":2,"start":0,"end":5,"x":1}"#,
                "unknown field",
            ),
            (r#"{"index":0,"count":1,"start":0,"end":10}"#, "not a range"),
            (r#"{"index":1,"count":2,"start":4,"end":10}"#, "not a range"),
            (r#"{"index":0,"count":3,"start":0,"end":5}"#, "not a range"),
            (r#"{"index":1,"count":2,"start":5,"end":5}"#, "not a range"),
        ] {
            let line = format!(r#"{{"uri":"a.parquet","size":10,"range":{range}}}"#);
            let err = WorkItem::parse_message(&line).unwrap_err();
            assert!(err.to_string().contains(needle), "{line}: {err}");
        }
        let err = WorkItem::parse_message(
            r#"{"uri":"a.ndjson.gz","size":10,"range":{"index":0,"count":2,"start":0,"end":5}}"#,
        )
        .unwrap_err();
        assert!(
            err.to_string()
                .contains("only Parquet and uncompressed NDJSON files have ranges"),
            "{err}"
        );
        let plain = WorkItem::parse_message(
            r#"{"uri":"a.ndjson","size":10,"range":{"index":0,"count":2,"start":0,"end":5}}"#,
        )
        .unwrap();
        assert_eq!(plain[0].range.unwrap().end, 5);
        let err = WorkItem::parse_message(
            r#"{"uri":"a.parquet","range":{"index":0,"count":2,"start":0,"end":5}}"#,
        )
        .unwrap_err();
        assert!(err.to_string().contains("needs the file's `size`"), "{err}");
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
