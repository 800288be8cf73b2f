use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime};

use pf_transform::TransformStage;
use pf_worker::StoppableThread;

/// Reloads the transform stage (script, rules, tables) on SIGHUP and, in watch mode,
/// when one of its files changes. A version that fails to load is rejected with its
/// error and the running one stays.
pub(crate) struct TransformReloader(StoppableThread);

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
        TransformReloader(StoppableThread::spawn("transform-reload", move |ticks| {
            let files = stage.source_files();
            let mut seen = modified(&files);
            while ticks.wait(Duration::from_millis(500)) {
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
                    Err(e) => {
                        tracing::error!(cause, error = %e, "transform reload rejected; the running version stays")
                    }
                }
            }
        }))
    }

    pub(crate) fn stop(self) {
        self.0.stop();
    }
}
