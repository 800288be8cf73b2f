use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, mpsc};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime};

use pf_transform::TransformStage;

/// Reloads the transform stage (script, rules, tables) on SIGHUP and, in watch mode,
/// when one of its files changes. A version that fails to load is rejected with its
/// error and the running one stays.
pub(crate) struct TransformReloader {
    stop: Option<mpsc::Sender<()>>,
    handle: Option<JoinHandle<()>>,
}

fn modified(files: &[PathBuf]) -> Vec<Option<SystemTime>> {
    files
        .iter()
        .map(|f| std::fs::metadata(f).and_then(|m| m.modified()).ok())
        .collect()
}

impl TransformReloader {
    pub(crate) fn start(
        stage: Arc<TransformStage>,
        requested: Arc<AtomicBool>,
        watch: bool,
    ) -> Self {
        let (stop, stopped) = mpsc::channel::<()>();
        let handle = std::thread::Builder::new()
            .name("transform-reload".into())
            .spawn(move || {
                let files = stage.source_files();
                let mut seen = modified(&files);
                while let Err(mpsc::RecvTimeoutError::Timeout) =
                    stopped.recv_timeout(Duration::from_millis(500))
                {
                    let mut cause = requested.swap(false, Ordering::Relaxed).then_some("SIGHUP");
                    if watch && cause.is_none() {
                        let now = modified(&files);
                        if now != seen {
                            seen = now;
                            cause = Some("file change");
                        }
                    }
                    let Some(cause) = cause else { continue };
                    match stage.reload() {
                        Ok(()) => tracing::info!(cause, "transform reloaded (script, rules, tables)"),
                        Err(e) => tracing::error!(cause, error = %e, "transform reload rejected; the running version stays"),
                    }
                }
            })
            .ok();
        TransformReloader {
            stop: Some(stop),
            handle,
        }
    }

    pub(crate) fn stop(mut self) {
        drop(self.stop.take());
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}
