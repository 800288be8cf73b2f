use std::io::IsTerminal;
use std::sync::Arc;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use pf_metrics::Metrics;

use crate::{StoppableThread, Ticks};

/// How progress is shown while a run is under way (`worker.progress`: `auto`, `always`
/// or `never`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProgressMode {
    /// A live bar on a terminal, periodic log lines otherwise.
    #[default]
    Auto,
    /// Always a live bar (on stderr).
    #[serde(rename = "always")]
    Bar,
    /// Periodic log lines only.
    #[serde(rename = "never")]
    Log,
    /// Nothing (in-process runs that print their own output).
    #[serde(skip)]
    Off,
}

/// A progress display fed from the live [`Metrics`]; stop it before printing the summary.
pub struct ProgressDisplay(Option<StoppableThread>);

impl ProgressDisplay {
    /// Starts showing progress; `files_known` tells how many files are known so far.
    pub fn start(
        metrics: Arc<Metrics>,
        files_known: Box<dyn Fn() -> Option<u64> + Send>,
        mode: ProgressMode,
    ) -> Self {
        let bar = match mode {
            ProgressMode::Off => None,
            ProgressMode::Log => Some(false),
            ProgressMode::Bar => Some(true),
            ProgressMode::Auto => Some(std::io::stderr().is_terminal()),
        };
        ProgressDisplay(bar.map(|bar| {
            StoppableThread::spawn("progress", move |ticks| {
                show(metrics, files_known, bar, ticks)
            })
        }))
    }

    /// Stops and clears the display.
    pub fn stop(self) {
        if let Some(thread) = self.0 {
            thread.stop();
        }
    }
}

fn show(
    metrics: Arc<Metrics>,
    files_known: Box<dyn Fn() -> Option<u64> + Send>,
    bar: bool,
    ticks: Ticks,
) {
    let started = Instant::now();
    let pb = bar.then(|| {
        let pb = ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::stderr());
        pb.set_style(
            ProgressStyle::with_template(
                "{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} files  {msg}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        pb
    });
    let log_every = Duration::from_secs(10);
    let mut last_log = Instant::now();
    while ticks.wait(Duration::from_millis(100)) {
        let secs = started.elapsed().as_secs_f64().max(1e-3);
        let rows = metrics.rows_read();
        let mb = metrics.bytes_read() as f64 / 1e6;
        let done = metrics.files_done();
        let msg = format!(
            "{} rows  {:.0} rows/s  {:.1} MB/s  {} in flight",
            rows,
            rows as f64 / secs,
            mb / secs,
            metrics.files_in_flight()
        );
        match &pb {
            Some(pb) => {
                pb.set_length(files_known().unwrap_or(done).max(done));
                pb.set_position(done);
                pb.set_message(msg);
            }
            None if last_log.elapsed() >= log_every => {
                last_log = Instant::now();
                tracing::info!(files_done = done, "progress: {msg}");
            }
            None => {}
        }
    }
    if let Some(pb) = pb {
        pb.finish_and_clear();
    }
}
