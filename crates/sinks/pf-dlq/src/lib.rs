//! The record-level dead-letter queue.
//!
//! Records that fail on their own (bad JSON line, script error, mapping rejection) are
//! appended as NDJSON [`RecordFailure`] lines to one file per worker process in a
//! configured directory ([`FileRecordDlq`]) or uploaded as objects under a prefix such as
//! an S3 prefix ([`ObjectRecordDlq`]), so the rest of their file carries on and nothing
//! is lost.

mod config;
mod object;

pub use config::RecordDlqConfig;
pub use object::{ObjectRecordDlq, PutObject};

use std::fs::{self, File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use pf_error::{PfError, Result};
use pf_traits::RecordDlq;
use pf_types::RecordFailure;

/// Appends failed records to `<dir>/records-<unix_ms>-<pid>.ndjson`.
///
/// The file is created on the first failure, so a clean run leaves no empty files.
#[derive(Debug)]
pub struct FileRecordDlq {
    path: PathBuf,
    out: Mutex<Option<BufWriter<File>>>,
    written: AtomicU64,
}

impl FileRecordDlq {
    /// A DLQ writing into `dir` (created when the first record fails).
    pub fn new(dir: impl AsRef<Path>) -> Self {
        let millis = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis());
        let name = format!("records-{millis}-{}.ndjson", std::process::id());
        FileRecordDlq {
            path: dir.as_ref().join(name),
            out: Mutex::new(None),
            written: AtomicU64::new(0),
        }
    }

    /// Where failed records go.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Records written so far.
    pub fn written(&self) -> u64 {
        self.written.load(Ordering::Relaxed)
    }

    fn open(&self) -> Result<BufWriter<File>> {
        let loc = || self.path.display().to_string();
        if let Some(dir) = self.path.parent() {
            fs::create_dir_all(dir).map_err(|e| PfError::io(dir.display().to_string(), e))?;
        }
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)
            .map_err(|e| PfError::io(loc(), e))?;
        Ok(BufWriter::new(file))
    }
}

/// `failures` as NDJSON, one line each; a failure to serialize names `location()`.
fn to_ndjson(failures: &[RecordFailure], location: impl Fn() -> String) -> Result<Vec<u8>> {
    let mut buf = Vec::with_capacity(failures.len() * 256);
    for f in failures {
        serde_json::to_writer(&mut buf, f)
            .map_err(|e| PfError::io(location(), std::io::Error::other(e)))?;
        buf.push(b'\n');
    }
    Ok(buf)
}

impl RecordDlq for FileRecordDlq {
    fn write(&self, failures: &[RecordFailure]) -> Result<()> {
        if failures.is_empty() {
            return Ok(());
        }
        // Serialize outside the lock so threads only contend on the append itself.
        let buf = to_ndjson(failures, || self.path.display().to_string())?;
        let mut guard = self.out.lock().unwrap_or_else(|p| p.into_inner());
        if guard.is_none() {
            *guard = Some(self.open()?);
        }
        if let Some(out) = guard.as_mut() {
            out.write_all(&buf)
                .map_err(|e| PfError::io(self.path.display().to_string(), e))?;
        }
        self.written
            .fetch_add(failures.len() as u64, Ordering::Relaxed);
        Ok(())
    }

    fn written(&self) -> u64 {
        FileRecordDlq::written(self)
    }

    fn location(&self) -> String {
        self.path.display().to_string()
    }

    fn flush(&self) -> Result<()> {
        let mut guard = self.out.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(out) = guard.as_mut() {
            out.flush()
                .map_err(|e| PfError::io(self.path.display().to_string(), e))?;
            out.get_ref()
                .sync_data()
                .map_err(|e| PfError::io(self.path.display().to_string(), e))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pf_error::ErrorClass;
    use pf_types::Stage;

    #[test]
    fn appends_ndjson_lazily() {
        let dir = tempfile::tempdir().unwrap();
        let dlq = FileRecordDlq::new(dir.path().join("dlq"));
        dlq.write(&[]).unwrap();
        dlq.flush().unwrap();
        assert!(!dlq.path().exists(), "no file before the first failure");
        let failure = RecordFailure {
            uri: "file:///x.ndjson".into(),
            line: Some(3),
            row: None,
            stage: Stage::Read,
            class: ErrorClass::Record,
            error: "expected value".into(),
            record: Some("{oops".into()),
        };
        dlq.write(&[failure.clone(), failure.clone()]).unwrap();
        dlq.flush().unwrap();
        let text = fs::read_to_string(dlq.path()).unwrap();
        let lines: Vec<RecordFailure> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines, vec![failure.clone(), failure]);
        assert_eq!(dlq.written(), 2);
        assert!(text.contains("\"line\":3") && text.contains("\"class\":\"record\""));
    }
}
