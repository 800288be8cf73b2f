use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use pf_error::{ErrorClass, PfError, Result};
use pf_file_processor::{FileError, FileProcessor, SharedParts};
use pf_metrics::FileOutcome;
use pf_traits::{
    Claim, Completion, Delivery, IndexerFactory, ItemStatus, MetadataStore, TransformFactory,
    WorkQueue,
};
use pf_types::{Backoff, Checkpoint, FileFailure, RunSummary, WorkItem};

use crate::heartbeat::{Heartbeats, InFlight};
use crate::queue_metrics::MeasuredQueue;
use crate::stoppable::StoppableThread;

/// How a worker runs.
#[derive(Debug, Clone)]
pub struct WorkerSettings {
    /// Pipeline threads (each processes one file at a time).
    pub threads: usize,
    /// This worker's id in metadata and dead-letter attributes.
    pub worker_id: String,
    /// Attempts before a transiently failing file goes to the DLQ.
    pub max_attempts: u32,
    /// Delays between attempts.
    pub retry: Backoff,
    /// Stop once no work arrived for this long.
    pub idle_exit: Option<Duration>,
    /// Longest single wait on the queue, so shutdown is noticed promptly.
    pub receive_wait: Duration,
    /// Period of the metadata heartbeat (a quarter of the staleness period, so a live
    /// holder never looks stale); SQS visibility is extended on its own period.
    pub heartbeat_interval: Duration,
    /// Delay before an item held by another live worker is offered again.
    pub held_elsewhere_delay: Duration,
    /// After a stop request, how long files in flight may take to finish; after that
    /// each is given up at its next checkpoint and released to the queue at once.
    pub shutdown_grace: Duration,
    /// Cut splittable whole files larger than this many bytes into ranges on arrival
    /// (see [`WorkItem::split`]); `None` keeps every file whole.
    pub split_size: Option<u64>,
}

impl Default for WorkerSettings {
    fn default() -> Self {
        WorkerSettings {
            threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
            worker_id: default_worker_id(),
            max_attempts: 5,
            retry: Backoff::default(),
            idle_exit: None,
            receive_wait: Duration::from_millis(500),
            heartbeat_interval: Duration::from_secs(10),
            held_elsewhere_delay: Duration::from_secs(30),
            shutdown_grace: Duration::from_secs(30),
            split_size: None,
        }
    }
}

/// `<hostname>-<pid>`: unique per process on a fleet, readable in `pf status`.
pub fn default_worker_id() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "worker".to_owned());
    format!("{host}-{}", std::process::id())
}

/// What a [`Worker`] is built from: where items come from, where their state is kept,
/// and the per-thread pipeline stages.
pub struct WorkerComponents {
    /// The work queue items are received from and settled on.
    pub queue: Arc<dyn WorkQueue>,
    /// Item claims, checkpoints and job progress.
    pub metadata: Arc<dyn MetadataStore>,
    /// Readers, sources, metrics and the record DLQ, shared by every thread.
    pub parts: SharedParts,
    /// Makes each pipeline thread's transform.
    pub transforms: Arc<dyn TransformFactory>,
    /// Makes each pipeline thread's indexer (destination).
    pub indexers: Arc<dyn IndexerFactory>,
}

/// Takes work items from a queue and runs one pipeline per thread until the queue is
/// drained, the idle limit passes, or shutdown is requested.
pub struct Worker {
    settings: WorkerSettings,
    components: WorkerComponents,
    shutdown: Arc<AtomicBool>,
    /// Set once the shutdown grace period is over: files in flight are given up.
    abandon: Arc<AtomicBool>,
}

impl Worker {
    /// A worker over the given components.
    pub fn new(settings: WorkerSettings, mut components: WorkerComponents) -> Self {
        components.queue = MeasuredQueue::wrap(components.queue);
        Worker {
            settings,
            components,
            shutdown: Arc::new(AtomicBool::new(false)),
            abandon: Arc::new(AtomicBool::new(false)),
        }
    }

    /// The flag that asks every pipeline thread to stop taking work (set it from a
    /// signal handler); files in flight are finished first.
    pub fn shutdown_flag(&self) -> Arc<AtomicBool> {
        self.shutdown.clone()
    }

    /// The shared parts (metrics, DLQ, …) this worker runs with.
    pub fn parts(&self) -> &SharedParts {
        &self.components.parts
    }

    /// Runs until done and returns the exact run summary.
    ///
    /// An `Err` is a fatal error (a pipeline could not be built, the queue failed for
    /// good); per-file failures are reported in the summary instead.
    pub fn run(&self) -> Result<RunSummary> {
        let started = Instant::now();
        let in_flight = Arc::new(InFlight::default());
        let heartbeat = Heartbeats::start(
            in_flight.clone(),
            self.components.queue.clone(),
            self.components.metadata.clone(),
            self.settings.heartbeat_interval,
        );
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(self.settings.threads.max(1))
            .thread_name(|i| format!("pipeline-{i}"))
            .build()
            .map_err(|e| PfError::config("worker.threads", format!("cannot start threads: {e}")))?;
        let grace = self.grace_timer();
        let results = pool.broadcast(|ctx| self.pipeline_thread(&in_flight, ctx.index()));
        grace.stop();
        heartbeat.stop();
        if let Err(e) = self.components.queue.close() {
            tracing::warn!(error = %e, "cannot give back prefetched items; they reappear when their visibility lapses");
        }
        self.components.indexers.finish()?;
        let mut summary = RunSummary::default();
        for r in results {
            summary.merge(r?);
        }
        summary.finish(started.elapsed().as_secs_f64());
        summary.peak_rss_mb = peak_rss_mb();
        summary.indexer = self
            .components
            .indexers
            .counters()
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v))
            .collect();
        Ok(summary)
    }

    /// Once a stop was requested and the grace period passed, tells pipelines to give up
    /// their files at the next checkpoint.
    fn grace_timer(&self) -> StoppableThread {
        let shutdown = self.shutdown.clone();
        let abandon = self.abandon.clone();
        let grace = self.settings.shutdown_grace;
        StoppableThread::spawn("shutdown-grace", move |ticks| {
            while !shutdown.load(Ordering::Relaxed) {
                if !ticks.wait(Duration::from_millis(100)) {
                    return;
                }
            }
            if ticks.wait(grace) {
                tracing::warn!(
                    ?grace,
                    "shutdown grace period over; releasing files in flight at their next checkpoint"
                );
                abandon.store(true, Ordering::Relaxed);
            }
        })
    }

    fn pipeline_thread(&self, in_flight: &InFlight, index: usize) -> Result<RunSummary> {
        // Claims are per pipeline thread, so a duplicate delivery to another thread of
        // this worker is held elsewhere, never processed twice at once.
        let holder = format!("{}/t{index}", self.settings.worker_id);
        let mut processor = FileProcessor::new(
            self.components.parts.clone(),
            self.components.transforms.create()?,
            self.components.indexers.create()?,
        );
        let mut summary = RunSummary::default();
        let mut idle_since = Instant::now();
        let mut queue_errors = 0u32;
        while !self.shutdown.load(Ordering::Relaxed) {
            let deliveries = match self.components.queue.receive(1, self.settings.receive_wait) {
                Ok(d) => {
                    queue_errors = 0;
                    d
                }
                Err(e) if e.is_transient() => {
                    queue_errors += 1;
                    let delay = self.settings.retry.delay(queue_errors);
                    tracing::warn!(error = %e, retry_in = ?delay, "cannot receive work; retrying");
                    std::thread::sleep(delay);
                    continue;
                }
                Err(e) => return Err(e),
            };
            if deliveries.is_empty() {
                if self.components.queue.is_drained() {
                    break;
                }
                if self
                    .settings
                    .idle_exit
                    .is_some_and(|limit| idle_since.elapsed() >= limit)
                {
                    tracing::info!("queue stayed empty for the idle limit; stopping");
                    break;
                }
                continue;
            }
            for delivery in deliveries {
                in_flight.insert(&delivery, &holder);
                self.components.parts.metrics.file_started();
                let outcome =
                    self.handle(&mut processor, &delivery, &holder, in_flight, &mut summary);
                self.components.parts.metrics.file_ended();
                in_flight.remove(&delivery);
                match outcome {
                    // The queue or metadata store failed to settle the item: it will be
                    // delivered again when its visibility lapses, and a completed item
                    // is then acknowledged without work. Not a reason to stop.
                    Err(e)
                        if e.is_transient()
                            && self.components.queue.visibility_timeout().is_some() =>
                    {
                        tracing::warn!(uri = %delivery.item.uri, error = %e, "cannot settle the item; it will be delivered again");
                    }
                    Err(e) if e.is_transient() => self.give_back(&delivery, e, &mut summary)?,
                    other => other?,
                }
            }
            idle_since = Instant::now();
        }
        Ok(summary)
    }

    /// Settles an item whose outcome could not be recorded, on a queue without a
    /// visibility timeout (stdin, memory): such a queue never redelivers by itself, so the
    /// item goes back with backoff, and after `max_attempts` deliveries it is reported
    /// failed (the run summary lists it) instead of being waited for forever.
    fn give_back(
        &self,
        delivery: &Delivery,
        error: PfError,
        summary: &mut RunSummary,
    ) -> Result<()> {
        let item = &delivery.item;
        let attempts = delivery.receive_count;
        if attempts < self.settings.max_attempts {
            let delay = self.settings.retry.delay(attempts);
            tracing::warn!(uri = %item.uri, attempt = attempts, retry_in = ?delay, error = %error, "cannot record the item's outcome; it goes back to the queue");
            return self.components.queue.release(delivery, delay);
        }
        let failure = FileFailure {
            uri: item.location(),
            class: error.class(),
            error: format!("cannot record the item's outcome after {attempts} attempts: {error}"),
            attempts,
        };
        tracing::error!(uri = %item.uri, attempts, error = %error, "cannot record the item's outcome; giving it up");
        self.components.queue.dead_letter(delivery, &failure)?;
        summary.files_total += 1;
        summary.files_failed += 1;
        self.components.parts.metrics.file_error(failure.class);
        summary.failures.push(failure);
        self.components
            .parts
            .metrics
            .file_settled(FileOutcome::Failed);
        Ok(())
    }

    /// Stops work on an item whose claim another worker took over, without settling it
    /// in metadata. An SQS message is left alone (the new holder acknowledges it); a
    /// stdin or in-process queue, which never redelivers by itself, has the delivery
    /// dropped so the run can end.
    fn lost_claim(&self, delivery: &Delivery, error: &PfError, summary: &mut RunSummary) {
        let item = &delivery.item;
        tracing::warn!(uri = %item.uri, error = %error, "claim lost to another worker; stopping this file without settling it");
        if self.components.queue.visibility_timeout().is_none()
            && let Err(e) = self.components.queue.ack(delivery)
        {
            tracing::warn!(uri = %item.uri, error = %e, "cannot drop the delivery of a lost claim");
        }
        summary.files_skipped += 1;
        self.components
            .parts
            .metrics
            .file_settled(FileOutcome::Skipped);
    }

    /// Acknowledges a duplicate delivery of an item already completed, without work.
    fn skip_completed(&self, delivery: &Delivery, summary: &mut RunSummary) -> Result<()> {
        tracing::info!(uri = %delivery.item.uri, "already completed; acknowledging duplicate delivery");
        self.components.queue.ack(delivery)?;
        summary.files_skipped += 1;
        self.components
            .parts
            .metrics
            .file_settled(FileOutcome::Skipped);
        Ok(())
    }

    /// The ranges `item` is cut into on arrival, when splitting is on, the file is large
    /// and splittable, and some other thread or worker can take a range. An item that
    /// does not carry its size (written by hand or by another producer) has it looked
    /// up, so that it is not read by one thread just for lacking the field; when the
    /// lookup fails the file goes on whole and the read reports the cause.
    fn ranges_of(&self, item: &WorkItem) -> Option<Vec<WorkItem>> {
        let shared =
            self.settings.threads > 1 || self.components.queue.visibility_timeout().is_some();
        let split_size = self.settings.split_size?;
        if !shared || item.range.is_some() || !item.is_splittable() {
            return None;
        }
        if item.size.is_some() {
            return item.split(split_size);
        }
        match self.components.parts.source.stat(&item.uri) {
            Ok(info) => WorkItem {
                size: Some(info.size),
                ..item.clone()
            }
            .split(split_size),
            Err(e) => {
                tracing::debug!(uri = %item.uri, error = %e, "size unknown; reading the file whole");
                None
            }
        }
    }

    /// Replaces a large file's delivery by its ranges; `Ok(false)` when the file goes on
    /// whole instead. A file completed whole before is acknowledged (a duplicate
    /// delivery); one already worked on whole (held, failed, or with a checkpoint, e.g.
    /// by a worker configured otherwise) stays whole, so no row is read both ways; and so
    /// does a file whose ranges the queue refuses for good (e.g. no permission to send).
    fn split(
        &self,
        delivery: &Delivery,
        ranges: Vec<WorkItem>,
        summary: &mut RunSummary,
    ) -> Result<bool> {
        let item = &delivery.item;
        match self.components.metadata.get(item)? {
            Some(r) if r.status == ItemStatus::Completed => {
                self.skip_completed(delivery, summary)?;
                return Ok(true);
            }
            Some(r) if r.status != ItemStatus::Pending || r.checkpoint.is_some() => {
                tracing::info!(uri = %item.uri, status = ?r.status, "already worked on whole; not cutting it");
                return Ok(false);
            }
            _ => {}
        }
        tracing::info!(uri = %item.uri, ranges = ranges.len(), "cutting the file into ranges for the other threads and workers");
        match self.components.queue.replace(delivery, ranges) {
            Ok(()) => {
                summary.files_split += 1;
                Ok(true)
            }
            Err(e) if e.is_transient() => Err(e),
            Err(e) => {
                tracing::warn!(uri = %item.uri, error = %e, "the queue refuses the ranges; processing the file whole");
                Ok(false)
            }
        }
    }

    /// Processes one delivery and settles it; only queue/metadata errors escape.
    fn handle(
        &self,
        processor: &mut FileProcessor,
        delivery: &Delivery,
        wid: &str,
        in_flight: &InFlight,
        summary: &mut RunSummary,
    ) -> Result<()> {
        let item = &delivery.item;
        if let Some(ranges) = self.ranges_of(item)
            && self.split(delivery, ranges, summary)?
        {
            return Ok(());
        }
        let m = &self.components.parts.metrics;
        let (attempts, checkpoint) = match self.components.metadata.claim(item, wid) {
            Ok(Claim::Acquired {
                attempts,
                checkpoint,
            }) => {
                in_flight.claimed(delivery);
                (attempts, checkpoint)
            }
            Ok(Claim::AlreadyCompleted) => return self.skip_completed(delivery, summary),
            Ok(Claim::HeldElsewhere { worker }) => {
                tracing::info!(uri = %item.uri, holder = %worker, "held by another worker; releasing");
                return self
                    .components
                    .queue
                    .release(delivery, self.settings.held_elsewhere_delay);
            }
            // A queue that never redelivers by itself (stdin, memory) gives the item up
            // after `max_attempts` deliveries, so a metadata outage cannot make the run
            // loop forever (see `give_back`).
            Err(e)
                if self.components.queue.visibility_timeout().is_none()
                    && delivery.receive_count >= self.settings.max_attempts =>
            {
                return Err(e);
            }
            Err(e) => {
                // Without a claim nothing may be processed; the item goes back untouched.
                tracing::warn!(uri = %item.uri, error = %e, "cannot claim; releasing for a retry");
                let delay = self.settings.retry.delay(delivery.receive_count);
                return self.components.queue.release(delivery, delay);
            }
        };
        let attempts = attempts.max(delivery.receive_count);
        let resume = checkpoint.unwrap_or_default();
        if resume.position > 0 {
            tracing::info!(uri = %item.uri, position = resume.position, rows = resume.next_row, "resuming from checkpoint");
        }
        let started = Instant::now();
        let metadata = &self.components.metadata;
        let abandon = &self.abandon;
        let result = processor.process(item, &resume, &mut |cp: &Checkpoint| {
            metadata.checkpoint(item, wid, cp)?;
            if abandon.load(Ordering::Relaxed) {
                return Err(PfError::Interrupted(
                    "the shutdown grace period ended before the file did".into(),
                ));
            }
            Ok(())
        });
        match result {
            // Another worker took the item over (this one was presumed dead): it owns
            // the item's progress and acknowledgement now, so nothing is settled here.
            Err(failed) if matches!(failed.error, PfError::ClaimLost { .. }) => {
                self.lost_claim(delivery, &failed.error, summary);
            }
            Ok(stats) => {
                let completion = match self.components.metadata.complete(item, wid, &stats) {
                    Err(e @ PfError::ClaimLost { .. }) => {
                        self.lost_claim(delivery, &e, summary);
                        return Ok(());
                    }
                    // Not recorded as completed: nothing is acknowledged; the item comes
                    // back (see the callers of `handle`).
                    other => other?,
                };
                self.components.queue.ack(delivery)?;
                tracing::debug!(
                    uri = %item.uri,
                    rows = stats.rows_read,
                    indexed = stats.rows_indexed,
                    failed = stats.rows_failed,
                    secs = started.elapsed().as_secs_f64(),
                    "file completed"
                );
                summary.totals += stats;
                match completion {
                    Completion::File => {
                        summary.files_total += 1;
                        summary.files_completed += 1;
                        m.file_settled(FileOutcome::Completed);
                    }
                    Completion::Range => {
                        summary.ranges_completed += 1;
                        m.file_settled(FileOutcome::RangeCompleted);
                    }
                }
            }
            // Given up for shutdown: back to the queue at once, no attempt spent; the next
            // worker resumes from the checkpoint just written.
            Err(failed) if matches!(failed.error, PfError::Interrupted(_)) => {
                tracing::info!(uri = %item.uri, "released at a checkpoint for shutdown");
                self.components.metadata.release(item, wid, None)?;
                self.components.queue.release(delivery, Duration::ZERO)?;
                m.file_settled(FileOutcome::Retried);
            }
            // Partial counts are dropped: the retry resumes from the last checkpoint, whose
            // counters cover everything before it, so the summary stays exact.
            Err(failed) if failed.error.is_transient() && attempts < self.settings.max_attempts => {
                let delay = self.settings.retry.delay(attempts);
                let error = &failed.error;
                tracing::warn!(uri = %item.uri, attempt = attempts, retry_in = ?delay, error = %error, "transient failure; file goes back to the queue");
                self.components
                    .metadata
                    .release(item, wid, Some(&error.to_string()))?;
                self.components.queue.release(delivery, delay)?;
                m.file_error(ErrorClass::Transient);
                m.file_settled(FileOutcome::Retried);
            }
            Err(failed) => {
                let FileError { error, partial } = *failed;
                let failure = FileFailure {
                    uri: item.location(),
                    class: error.class(),
                    error: error.to_string(),
                    attempts,
                };
                tracing::error!(uri = %item.uri, class = %failure.class, attempts, error = %error, "file failed; sending it to the dead-letter queue");
                self.components.metadata.fail(item, wid, &failure)?;
                self.components.queue.dead_letter(delivery, &failure)?;
                summary.files_total += 1;
                summary.files_failed += 1;
                summary.totals += partial;
                m.file_error(failure.class);
                summary.failures.push(failure);
                m.file_settled(FileOutcome::Failed);
            }
        }
        Ok(())
    }
}

/// Peak resident set size of this process (Linux `VmHWM`), in MiB.
pub fn peak_rss_mb() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}
