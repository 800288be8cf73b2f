//! What every Paraflow binary does around a run, so the binaries stay thin:
//! logging set-up, signal handling, the metrics endpoint, the progress display,
//! the summary (human and JSON) and the exit code.

use std::io::IsTerminal;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

mod flags;
mod reload;

pub use flags::{FlagValue, KeyFlag, overrides};

use pf_config::{Config, Deployment};
use pf_error::{PfError, Result};
use pf_types::RunSummary;
use pf_worker::ProgressDisplay;

/// Exit code: every file completed.
pub const EXIT_OK: i32 = 0;
/// Exit code: a fatal error stopped the run (bad config, unusable input, I/O failure).
pub const EXIT_FATAL: i32 = 1;
/// Exit code: the run finished but some files failed (they were reported).
pub const EXIT_FILES_FAILED: i32 = 2;

/// Logs to stderr, filtered by `RUST_LOG` (default `info`).
pub fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false)
        .try_init();
}

/// Keeps SIGHUP from terminating the process during start-up (loading large enrichment
/// tables takes a while). A reload asked for then is moot: the stage is being built from
/// the current files. [`run_deployment`] installs the real reload handler.
pub fn ignore_hangup_during_startup() {
    let ignored = Arc::new(AtomicBool::new(false));
    if let Err(e) = signal_hook::flag::register(signal_hook::consts::SIGHUP, ignored) {
        tracing::warn!(error = %e, "cannot install the SIGHUP handler; a SIGHUP during start-up ends the process");
    }
}

/// The first SIGINT/SIGTERM sets `flag` (stop taking work, finish in-flight files);
/// a second one exits at once with status 130.
pub fn stop_on_signals(flag: Arc<AtomicBool>) -> Result<()> {
    use signal_hook::consts::{SIGINT, SIGTERM};
    for sig in [SIGINT, SIGTERM] {
        // Registered first so it sees the flag as it was before this signal set it.
        signal_hook::flag::register_conditional_shutdown(sig, 130, flag.clone())
            .map_err(|e| PfError::io("signal handler", e))?;
        signal_hook::flag::register(sig, flag.clone())
            .map_err(|e| PfError::io("signal handler", e))?;
    }
    Ok(())
}

/// Serves Prometheus metrics at `metrics.addr`, when set, and describes every
/// component's metrics. Call it before building the deployment, so that components
/// create their series at zero as they are built.
pub fn serve_metrics(config: &Config) -> Result<()> {
    if let Some(addr) = config.metrics.socket_addr()? {
        pf_metrics::install(addr)?;
        pf_config::describe_metrics();
    }
    Ok(())
}

/// Where a run reports besides the log.
#[derive(Debug, Clone, Default)]
pub struct RunReporting {
    /// Write the summary as JSON here.
    pub summary_json: Option<std::path::PathBuf>,
}

/// Runs `deployment` to the end with signals and progress wired up; writes the
/// JSON summary when asked. `files_known` feeds the progress bar's total. SIGHUP (and,
/// with `transform.watch`, a change of its files) reloads the transform stage.
pub fn run_deployment(
    deployment: &Deployment,
    files_known: Box<dyn Fn() -> Option<u64> + Send>,
    reporting: &RunReporting,
) -> Result<RunSummary> {
    stop_on_signals(deployment.worker.shutdown_flag())?;
    let reload_requested = Arc::new(AtomicBool::new(false));
    signal_hook::flag::register(signal_hook::consts::SIGHUP, reload_requested.clone())
        .map_err(|e| PfError::io("signal handler", e))?;
    let reloader = reload::TransformReloader::start(
        deployment.transform.clone(),
        reload_requested,
        deployment.watch,
    );
    let progress =
        ProgressDisplay::start(deployment.metrics.clone(), files_known, deployment.progress);
    let result = deployment.worker.run();
    progress.stop();
    reloader.stop();
    let mut summary = result?;
    deployment.add_rule_figures(&mut summary);
    if deployment.record_dlq.written() > 0 {
        tracing::warn!(
            records = deployment.record_dlq.written(),
            location = %deployment.record_dlq.location(),
            "records failed on their own and were written to the record DLQ"
        );
    }
    if let Some(path) = &reporting.summary_json {
        write_summary_json(&summary, path)?;
    }
    Ok(summary)
}

/// Writes `summary` as pretty JSON to `path`.
pub fn write_summary_json(summary: &RunSummary, path: &Path) -> Result<()> {
    let text = serde_json::to_string_pretty(summary)
        .map_err(|e| PfError::io(path.display().to_string(), std::io::Error::other(e)))?;
    std::fs::write(path, text + "\n").map_err(|e| PfError::io(path.display().to_string(), e))
}

/// The exit code for a finished run.
pub fn exit_code(summary: &RunSummary) -> i32 {
    if summary.files_failed > 0 {
        EXIT_FILES_FAILED
    } else {
        EXIT_OK
    }
}
