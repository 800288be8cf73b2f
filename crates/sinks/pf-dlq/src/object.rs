use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use pf_error::Result;
use pf_traits::RecordDlq;
use pf_types::{RecordFailure, random_u64};

/// Uploads one object; the record DLQ's only need from a store.
pub type PutObject = Box<dyn Fn(&str, Vec<u8>) -> Result<()> + Send + Sync>;

/// Failed records as NDJSON objects under a prefix (e.g. `s3://bucket/dlq/`).
///
/// Lines are buffered in memory and uploaded as one new object per [`flush`]
/// (`<prefix>records-<millis>-<writer>-<random>-<seq>.ndjson`, unique across a fleet even
/// where every pod's worker has pid 1): objects are immutable, and a flush
/// happens before every checkpoint and acknowledgement, so nothing acknowledged is
/// only in memory. A failed upload keeps the lines for the next flush and fails the
/// file transiently.
///
/// [`flush`]: RecordDlq::flush
pub struct ObjectRecordDlq {
    prefix: String,
    stem: String,
    put: PutObject,
    pending: Mutex<Vec<u8>>,
    sequence: AtomicU64,
    written: AtomicU64,
}

impl ObjectRecordDlq {
    /// A DLQ writing under `prefix` through `put`; `writer` (the worker id) goes into
    /// every object name, with a random part so two processes never share a name.
    pub fn new(prefix: impl Into<String>, writer: &str, put: PutObject) -> Self {
        let mut prefix = prefix.into();
        if !prefix.is_empty() && !prefix.ends_with('/') {
            prefix.push('/');
        }
        let millis = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis());
        ObjectRecordDlq {
            prefix,
            stem: format!(
                "records-{millis}-{}-{:08x}",
                name_safe(writer),
                random_u64() as u32
            ),
            put,
            pending: Mutex::new(Vec::new()),
            sequence: AtomicU64::new(0),
            written: AtomicU64::new(0),
        }
    }
}

/// `text` with anything but ASCII letters, digits, `.`, `_` and `-` replaced by `_`, so
/// it can stand in an object key.
fn name_safe(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect()
}

impl RecordDlq for ObjectRecordDlq {
    fn write(&self, failures: &[RecordFailure]) -> Result<()> {
        if failures.is_empty() {
            return Ok(());
        }
        let buf = crate::to_ndjson(failures, || self.prefix.clone())?;
        self.pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend_from_slice(&buf);
        self.written
            .fetch_add(failures.len() as u64, Ordering::Relaxed);
        Ok(())
    }

    fn flush(&self) -> Result<()> {
        // Held across the upload so that concurrent flushes cannot reorder lines.
        let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        if pending.is_empty() {
            return Ok(());
        }
        let seq = self.sequence.fetch_add(1, Ordering::Relaxed);
        let uri = format!("{}{}-{seq:06}.ndjson", self.prefix, self.stem);
        (self.put)(&uri, pending.clone())?;
        pending.clear();
        Ok(())
    }

    fn written(&self) -> u64 {
        self.written.load(Ordering::Relaxed)
    }

    fn location(&self) -> String {
        self.prefix.clone()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use pf_error::{ErrorClass, PfError};
    use pf_types::Stage;

    fn failure(line: u64) -> RecordFailure {
        RecordFailure {
            uri: "s3://b/x.ndjson".into(),
            line: Some(line),
            row: None,
            stage: Stage::Read,
            class: ErrorClass::Record,
            error: "expected value".into(),
            record: Some("{oops".into()),
        }
    }

    #[test]
    fn one_object_per_flush_and_retry_after_a_failed_upload() {
        type Uploaded = Vec<(String, Vec<u8>)>;
        let store: Arc<Mutex<Uploaded>> = Arc::default();
        let fail_next = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (s, f) = (store.clone(), fail_next.clone());
        let dlq = ObjectRecordDlq::new(
            "s3://b/dlq",
            "pod-a/1",
            Box::new(move |uri, body| {
                if f.swap(false, Ordering::Relaxed) {
                    return Err(PfError::Service {
                        service: "s3",
                        operation: "PutObject".into(),
                        class: ErrorClass::Transient,
                        message: "503".into(),
                    });
                }
                s.lock().unwrap().push((uri.to_owned(), body));
                Ok(())
            }),
        );
        dlq.flush().unwrap();
        assert!(store.lock().unwrap().is_empty(), "nothing to upload");
        dlq.write(&[failure(1), failure(2)]).unwrap();
        fail_next.store(true, Ordering::Relaxed);
        assert!(dlq.flush().unwrap_err().is_transient());
        dlq.write(&[failure(3)]).unwrap();
        dlq.flush().unwrap();
        let objects = store.lock().unwrap();
        assert_eq!(objects.len(), 1);
        assert!(
            objects[0].0.starts_with("s3://b/dlq/records-"),
            "{}",
            objects[0].0
        );
        let lines: Vec<RecordFailure> = std::str::from_utf8(&objects[0].1)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(
            lines.iter().map(|l| l.line.unwrap()).collect::<Vec<_>>(),
            [1, 2, 3],
            "lines kept across the failed upload, in order"
        );
        assert_eq!(dlq.written(), 3);
        assert_eq!(dlq.location(), "s3://b/dlq/");
    }

    #[test]
    fn names_carry_the_writer_and_never_collide() {
        let names: Arc<Mutex<Vec<String>>> = Arc::default();
        let dlqs: Vec<ObjectRecordDlq> = (0..2)
            .map(|_| {
                let n = names.clone();
                // Same prefix, same worker id, same millisecond: pods whose workers are
                // all pid 1 and named alike.
                ObjectRecordDlq::new(
                    "s3://b/dlq/",
                    "worker-1",
                    Box::new(move |uri, _| {
                        n.lock().unwrap().push(uri.to_owned());
                        Ok(())
                    }),
                )
            })
            .collect();
        for d in &dlqs {
            d.write(&[failure(1)]).unwrap();
            d.flush().unwrap();
        }
        let names = names.lock().unwrap();
        assert_eq!(names.len(), 2);
        assert_ne!(names[0], names[1]);
        for n in names.iter() {
            assert!(n.contains("-worker-1-"), "{n}");
        }
    }
}
