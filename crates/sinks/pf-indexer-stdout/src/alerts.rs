use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::PathBuf;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use pf_error::{PfError, Result};
use pf_traits::AlertSink;
use pf_types::Alert;

/// Where a [`NdjsonAlertSink`] writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AlertTarget {
    /// Count alerts only.
    Discard,
    /// One JSON line per alert on standard output.
    Stdout,
    /// One JSON line per alert appended to a file (created on the first alert).
    File(PathBuf),
}

/// Writes alerts as NDJSON; every thread shares one sink, each batch's alerts land together.
#[derive(Debug)]
pub struct NdjsonAlertSink {
    target: AlertTarget,
    file: Mutex<Option<BufWriter<File>>>,
    sent: AtomicU64,
}

impl NdjsonAlertSink {
    /// A sink writing to `target`.
    pub fn new(target: AlertTarget) -> Self {
        NdjsonAlertSink {
            target,
            file: Mutex::new(None),
            sent: AtomicU64::new(0),
        }
    }

    /// Alerts received so far.
    pub fn sent(&self) -> u64 {
        self.sent.load(Ordering::Relaxed)
    }

    fn location(&self) -> String {
        match &self.target {
            AlertTarget::File(p) => p.display().to_string(),
            AlertTarget::Stdout => "stdout".into(),
            AlertTarget::Discard => "alerts".into(),
        }
    }
}

impl AlertSink for NdjsonAlertSink {
    fn send(&self, alerts: &[Alert]) -> Result<()> {
        if alerts.is_empty() {
            return Ok(());
        }
        self.sent.fetch_add(alerts.len() as u64, Ordering::Relaxed);
        let mut buf = Vec::with_capacity(alerts.len() * 200);
        if self.target != AlertTarget::Discard {
            for a in alerts {
                serde_json::to_writer(&mut buf, a)
                    .map_err(|e| PfError::io(self.location(), std::io::Error::other(e)))?;
                buf.push(b'\n');
            }
        }
        match &self.target {
            AlertTarget::Discard => Ok(()),
            AlertTarget::Stdout => std::io::stdout()
                .lock()
                .write_all(&buf)
                .map_err(|e| PfError::io("stdout", e)),
            AlertTarget::File(path) => {
                let mut guard = self.file.lock().unwrap_or_else(|p| p.into_inner());
                if guard.is_none() {
                    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                        std::fs::create_dir_all(dir)
                            .map_err(|e| PfError::io(self.location(), e))?;
                    }
                    let f = OpenOptions::new()
                        .create(true)
                        .append(true)
                        .open(path)
                        .map_err(|e| PfError::io(self.location(), e))?;
                    *guard = Some(BufWriter::new(f));
                }
                match guard.as_mut() {
                    Some(w) => w
                        .write_all(&buf)
                        .map_err(|e| PfError::io(self.location(), e)),
                    None => Ok(()),
                }
            }
        }
    }

    fn flush(&self) -> Result<()> {
        match &self.target {
            AlertTarget::Discard => Ok(()),
            AlertTarget::Stdout => std::io::stdout()
                .flush()
                .map_err(|e| PfError::io("stdout", e)),
            AlertTarget::File(_) => {
                let mut guard = self.file.lock().unwrap_or_else(|p| p.into_inner());
                match guard.as_mut() {
                    Some(w) => w.flush().map_err(|e| PfError::io(self.location(), e)),
                    None => Ok(()),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pf_types::Severity;

    #[test]
    fn file_sink_appends_ndjson() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out/alerts.ndjson");
        let sink = NdjsonAlertSink::new(AlertTarget::File(path.clone()));
        let alert = Alert {
            rule: "high_value".into(),
            severity: Severity::High,
            uri: "file:///a.parquet".into(),
            row: 7,
            key: "high_value|file:///a.parquet|7".into(),
            details: serde_json::json!({"amount": 12000.5}),
        };
        sink.send(&[alert.clone(), alert.clone()]).unwrap();
        sink.flush().unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        let back: Vec<Alert> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(back, vec![alert.clone(), alert]);
        assert_eq!(sink.sent(), 2);
    }
}
