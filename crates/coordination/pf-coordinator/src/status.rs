//! `pf status`: a job's progress as text or JSON, from any [`MetadataStore`].

use std::fmt::Write as _;
use std::time::Duration;

use pf_error::Result;
use pf_traits::{ItemProgress, JobProgress, MetadataStore};
use serde::Serialize;

/// A job's progress with the figures derived from it.
#[derive(Debug, Clone, Serialize)]
pub struct JobStatus {
    /// What the store holds.
    #[serde(flatten)]
    pub progress: JobProgress,
    /// `completed`, `failed` (all done, some failed), `running` or `registered`.
    pub state: &'static str,
    /// Bytes per second since the first claim.
    pub bytes_per_s: f64,
    /// Records per second since the first claim.
    pub rows_per_s: f64,
    /// Seconds until every registered byte is done at the current rate.
    pub eta_s: Option<f64>,
    /// Items in processing whose holder has been silent longer than `stale_after`.
    pub stale: Vec<String>,
    /// The staleness threshold used, in seconds.
    pub stale_after_s: f64,
}

impl JobStatus {
    /// Derives rate, ETA, state and stale items from `progress`.
    pub fn from_progress(progress: JobProgress, stale_after: Duration) -> JobStatus {
        let p = &progress;
        let end = if p.processing.is_empty() {
            p.last_finished_ms.unwrap_or(p.now_ms)
        } else {
            p.now_ms
        };
        let secs = p
            .started_ms
            .map(|s| end.saturating_sub(s) as f64 / 1000.0)
            .filter(|s| *s > 0.0);
        let bytes_per_s = secs.map_or(0.0, |s| p.bytes_done as f64 / s);
        let rows_per_s = secs.map_or(0.0, |s| p.rows_done as f64 / s);
        let settled = p.files_completed + p.files_failed;
        let all_done = p
            .totals
            .is_some_and(|t| settled >= t.files && p.processing.is_empty());
        let eta_s = match p.totals {
            _ if all_done => Some(0.0),
            Some(t) if bytes_per_s > 0.0 => {
                Some(t.bytes.saturating_sub(p.bytes_done) as f64 / bytes_per_s)
            }
            _ => None,
        };
        let state = if all_done && p.files_failed > 0 {
            "failed"
        } else if all_done {
            "completed"
        } else if p.started_ms.is_some() {
            "running"
        } else {
            "registered"
        };
        let stale_ms = stale_after.as_millis() as u64;
        let stale = p
            .processing
            .iter()
            .filter(|i| {
                i.record
                    .heartbeat_ms
                    .is_none_or(|hb| p.now_ms.saturating_sub(hb) >= stale_ms)
            })
            .map(|i| i.uri.clone())
            .collect();
        JobStatus {
            state,
            bytes_per_s,
            rows_per_s,
            eta_s,
            stale,
            stale_after_s: stale_after.as_secs_f64(),
            progress,
        }
    }

    /// The human-readable report.
    pub fn render(&self) -> String {
        let p = &self.progress;
        let mut out = String::new();
        let pct = |done: u64, total: u64| {
            if total == 0 {
                100.0
            } else {
                done as f64 * 100.0 / total as f64
            }
        };
        let _ = writeln!(out, "job {}: {}", p.job_id, self.state);
        match p.totals {
            Some(t) => {
                let settled = p.files_completed + p.files_failed;
                let _ = writeln!(
                    out,
                    "  files  {settled} of {} ({:.1}%): {} completed, {} failed, {} processing",
                    t.files,
                    pct(settled, t.files),
                    p.files_completed,
                    p.files_failed,
                    p.processing.len()
                );
                let _ = writeln!(
                    out,
                    "  bytes  {} of {} ({:.1}%)",
                    human_bytes(p.bytes_done),
                    human_bytes(t.bytes),
                    pct(p.bytes_done, t.bytes)
                );
            }
            None => {
                let _ = writeln!(
                    out,
                    "  files  {} completed, {} failed, {} processing (totals not registered)",
                    p.files_completed,
                    p.files_failed,
                    p.processing.len()
                );
                let _ = writeln!(out, "  bytes  {}", human_bytes(p.bytes_done));
            }
        }
        let _ = writeln!(
            out,
            "  rows   {} read, {} indexed, {} to the record DLQ",
            p.rows_done, p.rows_indexed, p.rows_failed
        );
        let eta = match self.eta_s {
            Some(s) => format!("{s:.0} s"),
            None => "unknown".to_owned(),
        };
        let _ = writeln!(
            out,
            "  rate   {}/s, {:.0} rows/s; ETA {eta}",
            human_bytes(self.bytes_per_s as u64),
            self.rows_per_s
        );
        for i in &p.processing {
            let age = i.record.heartbeat_ms.map_or("never".to_owned(), |hb| {
                format!("{:.1} s ago", p.now_ms.saturating_sub(hb) as f64 / 1000.0)
            });
            let stale = if self.stale.contains(&i.uri) {
                " STALE"
            } else {
                ""
            };
            let _ = writeln!(
                out,
                "  processing {} by {} (attempt {}, {} rows done, heartbeat {age}){stale}",
                i.uri,
                i.record.worker.as_deref().unwrap_or("?"),
                i.record.attempts,
                rows_done(i),
            );
        }
        for i in &p.failed {
            let _ = writeln!(
                out,
                "  failed {} after {} attempt(s): {}",
                i.uri,
                i.record.attempts,
                i.record
                    .last_error
                    .as_deref()
                    .unwrap_or("(no error recorded)")
            );
        }
        if !self.stale.is_empty() {
            let _ = writeln!(
                out,
                "  {} stale item(s): no heartbeat for {:.0} s; another worker may claim them",
                self.stale.len(),
                self.stale_after_s
            );
        }
        out
    }

    /// The report as one line of JSON (stable keys: those of [`JobProgress`] plus
    /// `state bytes_per_s rows_per_s eta_s stale stale_after_s`).
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

fn rows_done(i: &ItemProgress) -> u64 {
    i.record.checkpoint.map_or(0, |c| c.stats.rows_read)
}

fn human_bytes(b: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KB", "MB", "GB", "TB"];
    let mut v = b as f64;
    let mut u = 0;
    while v >= 1000.0 && u + 1 < UNITS.len() {
        v /= 1000.0;
        u += 1;
    }
    if u == 0 {
        format!("{b} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

/// The status of `job` (default: the most recently active job), or `None` when the
/// store knows no such job.
pub fn job_status(
    store: &dyn MetadataStore,
    job: Option<&str>,
    stale_after: Duration,
) -> Result<Option<JobStatus>> {
    let job = match job {
        Some(j) => j.to_owned(),
        None => match store.jobs()?.into_iter().next() {
            Some(j) => j,
            None => return Ok(None),
        },
    };
    Ok(store
        .job_progress(&job)?
        .map(|p| JobStatus::from_progress(p, stale_after)))
}

/// Registers what discovery enqueued for `job_id` (items without a job: `-`) in the
/// Valkey at `url`, for `pf status` to report progress against.
pub fn register_job_totals(
    url: &str,
    job_id: Option<&str>,
    totals: &pf_traits::JobTotals,
) -> Result<()> {
    let store = crate::ValkeyMetadataStore::connect(
        &crate::ValkeyConfig::for_url(url).with_env_password(),
    )?;
    store.register_job(job_id.unwrap_or(pf_traits::NO_JOB), totals)
}

/// Prints the status of `job` to `out` (text, or one JSON line with `json`), and with
/// `watch` again every `watch` interval until the job is settled (completed or failed).
/// Returns whether the job has failed items, or `None` when the store knows no such job.
pub fn print_status(
    store: &dyn MetadataStore,
    job: Option<&str>,
    stale_after: Duration,
    watch: Option<Duration>,
    json: bool,
    out: &mut dyn std::io::Write,
) -> Result<Option<bool>> {
    let io = |e| pf_error::PfError::io("stdout", e);
    loop {
        let Some(status) = job_status(store, job, stale_after)? else {
            return Ok(None);
        };
        if json {
            writeln!(out, "{}", status.to_json()).map_err(io)?;
        } else {
            writeln!(out, "{}", status.render()).map_err(io)?;
        }
        out.flush().map_err(io)?;
        let settled = matches!(status.state, "completed" | "failed");
        match watch {
            Some(every) if !settled => std::thread::sleep(every),
            _ => return Ok(Some(status.progress.files_failed > 0)),
        }
    }
}
