//! Arrow rows → `_bulk` action and source lines, written straight into the request
//! buffer: no `serde_json::Value`, no per-row allocation.

use arrow::array::{Array, RecordBatch};
use arrow::datatypes::DataType;

use pf_error::{PfError, Result};
use pf_types::WorkItem;

use crate::OpType;
use crate::settings::IndexName;
use pf_doc_json::{ColumnEncoder, DocEncoder, RecordTime, json, source_hash_hex};

/// Elasticsearch refuses `_id`s longer than this many bytes.
const MAX_ID_BYTES: usize = 512;

/// What every document of a run shares: how ids, index names and actions are made.
#[derive(Debug, Clone)]
pub struct DocOptions {
    /// Where documents go.
    pub index: IndexName,
    /// Column whose value is the document `_id`; `None` hashes uri + etag + row ordinal.
    pub id_field: Option<String>,
    /// `index` (overwrite) or `create` (409 when the id exists).
    pub op_type: OpType,
}

/// Where a document's `_id` comes from.
enum IdSource<'a> {
    /// `{hash of uri and etag}-{ordinal}`.
    Hash([u8; 32]),
    /// A column's value.
    Field {
        name: &'a str,
        values: ColumnEncoder<'a>,
    },
}

/// Writes one batch's rows as bulk action + source lines.
///
/// Built once per batch (columns are downcast here, not per row).
pub struct BatchEncoder<'a> {
    source: DocEncoder<'a>,
    id: IdSource<'a>,
    /// Fixed action prefix, or per time bucket for templated index names.
    action: ActionPrefix<'a>,
    id_buf: Vec<u8>,
}

enum ActionPrefix<'a> {
    Fixed(Vec<u8>),
    Templated {
        options: &'a DocOptions,
        time: RecordTime<'a>,
        field: &'a str,
        cached: Option<(i64, Vec<u8>)>,
    },
}

fn op_prefix(op: OpType) -> &'static [u8] {
    match op {
        OpType::Index => b"{\"index\":{",
        OpType::Create => b"{\"create\":{",
    }
}

impl<'a> BatchEncoder<'a> {
    /// Prepares `batch` (from `item`) for encoding with `options`.
    ///
    /// Fails (permanently: the data does not fit the configuration) when the id or
    /// index-time column is missing or of an unusable type.
    pub fn new(options: &'a DocOptions, item: &WorkItem, batch: &'a RecordBatch) -> Result<Self> {
        let schema = batch.schema_ref();
        let source = DocEncoder::new(batch).map_err(|e| permanent(e.to_string()))?;
        let id = match &options.id_field {
            None => IdSource::Hash(source_hash_hex(&item.uri, item.etag.as_deref())),
            Some(name) => {
                let (idx, field) = schema.column_with_name(name).ok_or_else(|| {
                    permanent(format!(
                        "the id field `{name}` (indexer.elasticsearch.id_field) is not a column of {}",
                        item.uri
                    ))
                })?;
                let array = batch.column(idx);
                let values = match array.data_type() {
                    DataType::Utf8
                    | DataType::LargeUtf8
                    | DataType::Utf8View
                    | DataType::Int64
                    | DataType::Int32
                    | DataType::UInt64
                    | DataType::UInt32 => ColumnEncoder::new(&schema.fields()[idx], array.as_ref())
                        .map_err(|e| permanent(e.to_string()))?,
                    other => {
                        return Err(permanent(format!(
                            "the id field `{name}` has type {other}; expected a string or integer column"
                        )));
                    }
                };
                IdSource::Field {
                    name: field.name(),
                    values,
                }
            }
        };
        let action = match &options.index {
            IndexName::Fixed(_) => {
                let mut p = op_prefix(options.op_type).to_vec();
                p.extend_from_slice(b"\"_id\":\"");
                ActionPrefix::Fixed(p)
            }
            IndexName::Template(t) => {
                let field = t.time_field.as_str();
                let idx = schema.index_of(field).map_err(|_| {
                    permanent(format!(
                        "the index name `{}` needs the time field `{field}`, which is not a column of {}",
                        t.pattern, item.uri
                    ))
                })?;
                let time = RecordTime::new(batch.column(idx).as_ref()).map_err(|other| {
                    permanent(format!(
                        "the index name time field `{field}` has type {other}; expected a timestamp, date, epoch-millis integer or ISO-8601 string"
                    ))
                })?;
                ActionPrefix::Templated {
                    options,
                    time,
                    field,
                    cached: None,
                }
            }
        };
        Ok(BatchEncoder {
            source,
            id,
            action,
            id_buf: Vec::with_capacity(64),
        })
    }

    /// Appends row `row` (source ordinal `ordinal`) as an action line and a source line.
    ///
    /// On `Err` (a record-level reason: no id, no time for the index name) nothing is
    /// appended.
    #[inline]
    pub fn write_row(&mut self, row: usize, ordinal: u64, out: &mut Vec<u8>) -> Result<(), String> {
        let start = out.len();
        // The id first: it is the part that can fail.
        self.id_buf.clear();
        match &mut self.id {
            IdSource::Hash(prefix) => {
                self.id_buf.extend_from_slice(prefix);
                self.id_buf.push(b'-');
                json::write_int(ordinal, &mut self.id_buf);
            }
            IdSource::Field { name, values } => {
                if values.is_null(row) {
                    return Err(format!("the id field `{name}` is null"));
                }
                if !values.write_key_text(row, &mut self.id_buf) {
                    return Err(format!("the id field `{name}` is not a string or integer"));
                }
                if self.id_buf.is_empty() {
                    return Err(format!("the id field `{name}` is empty"));
                }
                if self.id_buf.len() > MAX_ID_BYTES {
                    return Err(format!(
                        "the id field `{name}` is longer than {MAX_ID_BYTES} bytes"
                    ));
                }
            }
        }
        match &mut self.action {
            ActionPrefix::Fixed(p) => out.extend_from_slice(p),
            ActionPrefix::Templated {
                options,
                time,
                field,
                cached,
            } => {
                let IndexName::Template(t) = &options.index else {
                    unreachable!("templated prefix only for templated names")
                };
                let Some(secs) = time.seconds(row) else {
                    return Err(format!(
                        "no usable value in `{field}` to name the index `{}`",
                        t.pattern
                    ));
                };
                let bucket = secs.div_euclid(t.bucket_secs());
                match cached {
                    Some((b, p)) if *b == bucket => out.extend_from_slice(p),
                    _ => {
                        let mut p = op_prefix(options.op_type).to_vec();
                        p.extend_from_slice(b"\"_index\":");
                        json::write_str(t.render(secs).as_bytes(), &mut p);
                        p.extend_from_slice(b",\"_id\":\"");
                        out.extend_from_slice(&p);
                        *cached = Some((bucket, p));
                    }
                }
            }
        }
        out.extend_from_slice(&self.id_buf);
        out.extend_from_slice(b"\"}}\n");
        self.write_source(row, out);
        out.push(b'\n');
        debug_assert!(out.len() > start);
        Ok(())
    }

    /// Appends row `row`'s document (the source line, without its newline).
    #[inline]
    pub fn write_source(&mut self, row: usize, out: &mut Vec<u8>) {
        self.source.write_doc(row, out);
    }
}

fn permanent(message: String) -> PfError {
    PfError::Indexer {
        destination: "elasticsearch",
        class: pf_error::ErrorClass::Permanent,
        message,
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{
        Float64Array, Int64Array, ListArray, StringArray, TimestampMicrosecondArray,
    };
    use arrow::datatypes::Int32Type as I32;

    use super::*;
    use crate::settings::IndexTemplate;

    fn item() -> WorkItem {
        let mut i = WorkItem::from_uri("file:///data/a.parquet").unwrap();
        i.etag = Some("e1".into());
        i
    }

    fn lines(out: &[u8]) -> Vec<serde_json::Value> {
        out.split(|b| *b == b'\n')
            .filter(|l| !l.is_empty())
            .map(|l| serde_json::from_slice(l).unwrap())
            .collect()
    }

    #[test]
    fn rows_become_action_and_source_lines_that_parse_back() {
        let list =
            ListArray::from_iter_primitive::<I32, _, _>(vec![Some(vec![Some(1), None]), None]);
        let batch = RecordBatch::try_from_iter([
            (
                "s",
                Arc::new(StringArray::from(vec![Some("a\"b\n"), None])) as _,
            ),
            (
                "n",
                Arc::new(Int64Array::from(vec![Some(-5), Some(7)])) as _,
            ),
            ("f", Arc::new(Float64Array::from(vec![f64::NAN, 2.25])) as _),
            (
                "t",
                Arc::new(TimestampMicrosecondArray::from(vec![0, 1_500_000]).with_timezone("UTC"))
                    as _,
            ),
            ("l", Arc::new(list) as _),
        ])
        .unwrap();
        let options = DocOptions {
            index: IndexName::Fixed("tx".into()),
            id_field: None,
            op_type: OpType::Index,
        };
        let mut enc = BatchEncoder::new(&options, &item(), &batch).unwrap();
        let mut out = Vec::new();
        enc.write_row(0, 10, &mut out).unwrap();
        enc.write_row(1, 11, &mut out).unwrap();
        let l = lines(&out);
        assert_eq!(l.len(), 4);
        let id0 = l[0]["index"]["_id"].as_str().unwrap();
        assert!(id0.ends_with("-10") && id0.len() == 35, "{id0}");
        assert_eq!(
            l[1],
            serde_json::json!({"s": "a\"b\n", "n": -5, "f": null, "t": "1970-01-01T00:00:00.000000Z", "l": [1, null]})
        );
        assert_eq!(
            l[3],
            serde_json::json!({"n": 7, "f": 2.25, "t": "1970-01-01T00:00:01.500000Z"})
        );
        // Same file, same ordinal → same id; another etag → another id.
        let mut again = Vec::new();
        BatchEncoder::new(&options, &item(), &batch)
            .unwrap()
            .write_row(0, 10, &mut again)
            .unwrap();
        assert_eq!(lines(&again)[0], l[0]);
        let mut other = item();
        other.etag = Some("e2".into());
        let mut changed = Vec::new();
        BatchEncoder::new(&options, &other, &batch)
            .unwrap()
            .write_row(0, 10, &mut changed)
            .unwrap();
        assert_ne!(lines(&changed)[0], l[0]);
    }

    #[test]
    fn id_field_and_templated_index_names() {
        let batch = RecordBatch::try_from_iter([
            (
                "id",
                Arc::new(StringArray::from(vec![Some("tx-1"), None, Some("")])) as _,
            ),
            (
                "ts",
                Arc::new(TimestampMicrosecondArray::from(vec![
                    1_700_000_000_000_000,
                    0,
                    0,
                ])) as _,
            ),
        ])
        .unwrap();
        let options = DocOptions {
            index: IndexName::Template(IndexTemplate::parse("tx-{yyyy.MM.dd}", "ts").unwrap()),
            id_field: Some("id".into()),
            op_type: OpType::Create,
        };
        let mut enc = BatchEncoder::new(&options, &item(), &batch).unwrap();
        let mut out = Vec::new();
        enc.write_row(0, 0, &mut out).unwrap();
        assert_eq!(
            lines(&out)[0],
            serde_json::json!({"create": {"_index": "tx-2023.11.14", "_id": "tx-1"}})
        );
        let len = out.len();
        assert!(enc.write_row(1, 1, &mut out).unwrap_err().contains("null"));
        assert!(enc.write_row(2, 2, &mut out).unwrap_err().contains("empty"));
        assert_eq!(out.len(), len, "failed rows append nothing");
        let missing = DocOptions {
            id_field: Some("nope".into()),
            ..options.clone()
        };
        assert!(BatchEncoder::new(&missing, &item(), &batch).is_err());
    }
}
