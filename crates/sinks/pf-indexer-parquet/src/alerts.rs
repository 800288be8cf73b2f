//! Fraud alerts as their own Parquet data set, partitioned like the records.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use arrow::array::{ArrayRef, RecordBatch, StringArray, TimestampMicrosecondArray, UInt64Array};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use parquet::arrow::ArrowWriter;
use parquet::file::properties::WriterProperties;
use pf_doc_json::json::date_bytes;
use pf_error::{PfError, Result};
use pf_traits::AlertSink;
use pf_types::Alert;

use crate::{ParquetCodec, writer_error};

/// Writes the alerts sent since the last flush as one file per flush, under
/// `date=YYYY-MM-DD/` of the day they were flushed (alerts carry no record time).
///
/// Files appear whole (temporary name, fsync, rename), named `alerts-<worker>-<flush
/// time>-<n>.parquet`. Alerts are delivered at least once — an input resumed after a
/// crash sends the alerts its dead holder may not have flushed — so queries deduplicate
/// on `key`.
#[derive(Debug)]
pub struct ParquetAlertSink {
    dir: PathBuf,
    worker: String,
    properties: WriterProperties,
    pending: Mutex<Vec<Alert>>,
    /// Makes names unique within one flush time.
    seq: AtomicU64,
    files: AtomicU64,
    schema: SchemaRef,
}

impl ParquetAlertSink {
    /// A sink writing under `dir` (created if missing), naming files after `worker`.
    pub fn new(dir: &Path, worker: &str, codec: ParquetCodec) -> Result<Self> {
        std::fs::create_dir_all(dir).map_err(|e| {
            PfError::config(
                "alerts.dir",
                format!("cannot create {}: {e}", dir.display()),
            )
        })?;
        let text = |name: &str, nullable| Field::new(name, DataType::Utf8, nullable);
        let schema = Arc::new(Schema::new(vec![
            text("rule", false),
            text("severity", false),
            text("uri", false),
            Field::new("row", DataType::UInt64, false),
            text("key", false),
            text("details", true),
            Field::new(
                "flushed_at",
                DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
                false,
            ),
        ]));
        Ok(ParquetAlertSink {
            dir: dir.to_path_buf(),
            worker: worker.replace(['/', '\\'], "_"),
            properties: WriterProperties::builder()
                .set_compression(codec.compression())
                .build(),
            pending: Mutex::new(Vec::new()),
            seq: AtomicU64::new(0),
            files: AtomicU64::new(0),
            schema,
        })
    }

    /// Alert files written so far.
    pub fn files_written(&self) -> u64 {
        self.files.load(Ordering::Relaxed)
    }

    fn batch(&self, alerts: &[Alert], now_micros: i64) -> Result<RecordBatch> {
        let strings = |f: fn(&Alert) -> String| -> ArrayRef {
            Arc::new(StringArray::from_iter_values(alerts.iter().map(f)))
        };
        let details: StringArray = alerts
            .iter()
            .map(|a| (!a.details.is_null()).then(|| a.details.to_string()))
            .collect();
        RecordBatch::try_new(
            self.schema.clone(),
            vec![
                strings(|a| a.rule.clone()),
                strings(|a| a.severity.as_str().to_owned()),
                strings(|a| a.uri.clone()),
                Arc::new(UInt64Array::from_iter_values(alerts.iter().map(|a| a.row))),
                strings(|a| a.key.clone()),
                Arc::new(details),
                Arc::new(
                    TimestampMicrosecondArray::from(vec![now_micros; alerts.len()])
                        .with_timezone("UTC"),
                ),
            ],
        )
        .map_err(|e| writer_error("alerts", parquet::errors::ParquetError::from(e)))
    }
}

impl AlertSink for ParquetAlertSink {
    fn send(&self, alerts: &[Alert]) -> Result<()> {
        if !alerts.is_empty() {
            self.pending
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .extend_from_slice(alerts);
        }
        Ok(())
    }

    fn flush(&self) -> Result<()> {
        let alerts = std::mem::take(&mut *self.pending.lock().unwrap_or_else(|p| p.into_inner()));
        if alerts.is_empty() {
            return Ok(());
        }
        let write = || -> Result<()> {
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default();
            let micros = i64::try_from(now.as_micros()).unwrap_or(i64::MAX);
            let day = micros.div_euclid(86_400_000_000);
            let date = date_bytes(day).unwrap_or(*b"0000-00-00");
            let dir = self
                .dir
                .join(format!("date={}", String::from_utf8_lossy(&date)));
            std::fs::create_dir_all(&dir).map_err(|e| io(&dir, e))?;
            let n = self.seq.fetch_add(1, Ordering::Relaxed);
            let name = format!("alerts-{}-{micros}-{n}.parquet", self.worker);
            let dest = dir.join(&name);
            let tmp = dir.join(format!(".{name}.tmp"));
            let location = dest.display().to_string();
            let file = File::create(&tmp).map_err(|e| io(&tmp, e))?;
            let mut writer =
                ArrowWriter::try_new(file, self.schema.clone(), Some(self.properties.clone()))
                    .map_err(|e| writer_error(&location, e))?;
            writer
                .write(&self.batch(&alerts, micros)?)
                .map_err(|e| writer_error(&location, e))?;
            let file = writer
                .into_inner()
                .map_err(|e| writer_error(&location, e))?;
            file.sync_all().map_err(|e| io(&tmp, e))?;
            std::fs::rename(&tmp, &dest).map_err(|e| io(&dest, e))?;
            File::open(&dir)
                .and_then(|d| d.sync_all())
                .map_err(|e| io(&dir, e))?;
            self.files.fetch_add(1, Ordering::Relaxed);
            Ok(())
        };
        write().inspect_err(|_| {
            // Nothing is lost: the alerts go out with the next flush.
            let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
            let later = std::mem::replace(&mut *pending, alerts.clone());
            pending.extend(later);
        })
    }
}

fn io(path: &Path, e: std::io::Error) -> PfError {
    PfError::io(path.display().to_string(), e)
}
