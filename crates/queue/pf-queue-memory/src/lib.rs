//! In-process work queues for the embedded mode.
//!
//! [`MemoryQueue`] is a bounded, thread-safe queue with the same settle semantics as
//! SQS (ack, release with delay, dead-letter) but no visibility timeout: a delivery
//! stays in flight until a worker thread settles it. [`feed_lines`] turns any line
//! reader (stdin) into work items on a `MemoryQueue`, so `pf-discoverer | pf-worker`
//! needs no broker.

use std::collections::{HashMap, VecDeque};
use std::io::BufRead;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use pf_error::Result;
use pf_traits::{Delivery, WorkQueue};
use pf_types::{FileFailure, WorkItem};

/// Items buffered ahead of the workers before the feeder waits: bounds memory when
/// the producer (a discoverer over millions of objects) is faster than the pool.
pub const DEFAULT_CAPACITY: usize = 10_000;

#[derive(Debug, Clone)]
struct Entry {
    id: u64,
    item: WorkItem,
    receive_count: u32,
}

#[derive(Debug, Default)]
struct State {
    ready: VecDeque<Entry>,
    delayed: Vec<(Instant, Entry)>,
    in_flight: HashMap<u64, Entry>,
    next_id: u64,
    closed: bool,
    pushed: u64,
    dead: Vec<(WorkItem, FileFailure)>,
}

impl State {
    fn promote_due(&mut self, now: Instant) {
        let mut i = 0;
        while i < self.delayed.len() {
            if self.delayed[i].0 <= now {
                let (_, e) = self.delayed.swap_remove(i);
                self.ready.push_back(e);
            } else {
                i += 1;
            }
        }
    }

    fn next_due(&self) -> Option<Instant> {
        self.delayed.iter().map(|(t, _)| *t).min()
    }

    fn drained(&self) -> bool {
        self.closed && self.ready.is_empty() && self.delayed.is_empty() && self.in_flight.is_empty()
    }
}

/// A bounded in-process queue of work items.
#[derive(Debug)]
pub struct MemoryQueue {
    state: Mutex<State>,
    /// Signalled when an item becomes ready or the queue closes.
    readable: Condvar,
    /// Signalled when space frees up for a blocked producer.
    writable: Condvar,
    capacity: usize,
}

impl Default for MemoryQueue {
    fn default() -> Self {
        Self::with_capacity(DEFAULT_CAPACITY)
    }
}

impl MemoryQueue {
    /// A queue whose [`push`](Self::push) blocks once `capacity` items wait unreceived.
    pub fn with_capacity(capacity: usize) -> Self {
        MemoryQueue {
            state: Mutex::new(State::default()),
            readable: Condvar::new(),
            writable: Condvar::new(),
            capacity: capacity.max(1),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panicking holder cannot leave the state half-updated in a way that matters
        // more than losing the whole run, so keep going with the data as it is.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Enqueues an item, waiting while the queue is full.
    pub fn push(&self, item: WorkItem) {
        let mut s = self.lock();
        while s.ready.len() >= self.capacity {
            s = self.writable.wait(s).unwrap_or_else(|p| p.into_inner());
        }
        let id = s.next_id;
        s.next_id += 1;
        // A split file counts once, by its first range, like the files that complete.
        s.pushed += u64::from(item.range.is_none_or(|r| r.index == 0));
        s.ready.push_back(Entry {
            id,
            item,
            receive_count: 0,
        });
        drop(s);
        self.readable.notify_one();
    }

    /// Declares that no more items will be pushed; workers stop once the rest is done.
    pub fn close(&self) {
        self.lock().closed = true;
        self.readable.notify_all();
    }

    /// Files pushed so far, a split file once (the known total while a feeder is still
    /// running).
    pub fn pushed(&self) -> u64 {
        self.lock().pushed
    }

    /// Items moved to the dead-letter list, with their failures.
    pub fn dead_letters(&self) -> Vec<(WorkItem, FileFailure)> {
        self.lock().dead.clone()
    }

    fn settle(&self, delivery: &Delivery) -> Option<Entry> {
        let id: u64 = delivery.handle.parse().ok()?;
        self.lock().in_flight.remove(&id)
    }
}

impl WorkQueue for MemoryQueue {
    fn receive(&self, max: usize, wait: Duration) -> Result<Vec<Delivery>> {
        let deadline = Instant::now() + wait;
        let mut s = self.lock();
        loop {
            let now = Instant::now();
            s.promote_due(now);
            if !s.ready.is_empty() {
                let mut out = Vec::new();
                while out.len() < max.max(1) {
                    let Some(mut e) = s.ready.pop_front() else {
                        break;
                    };
                    e.receive_count += 1;
                    out.push(Delivery {
                        item: e.item.clone(),
                        handle: e.id.to_string(),
                        receive_count: e.receive_count,
                    });
                    s.in_flight.insert(e.id, e);
                }
                drop(s);
                self.writable.notify_all();
                return Ok(out);
            }
            if s.drained() || now >= deadline {
                return Ok(Vec::new());
            }
            let until = s.next_due().map_or(deadline, |d| d.min(deadline));
            let timeout = until.saturating_duration_since(now);
            s = self
                .readable
                .wait_timeout(s, timeout)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
    }

    fn ack(&self, delivery: &Delivery) -> Result<()> {
        self.settle(delivery);
        self.readable.notify_all();
        Ok(())
    }

    fn release(&self, delivery: &Delivery, delay: Duration) -> Result<()> {
        if let Some(e) = self.settle(delivery) {
            let mut s = self.lock();
            if delay.is_zero() {
                s.ready.push_back(e);
            } else {
                s.delayed.push((Instant::now() + delay, e));
            }
        }
        // Waiters must recompute their wake-up time for the new delayed entry.
        self.readable.notify_all();
        Ok(())
    }

    /// The items go to the front, so the threads share a split file's ranges at once;
    /// past the capacity, since a worker thread must never wait on its own queue.
    fn replace(&self, delivery: &Delivery, items: Vec<WorkItem>) -> Result<()> {
        let mut s = self.lock();
        for item in items.into_iter().rev() {
            let id = s.next_id;
            s.next_id += 1;
            s.ready.push_front(Entry {
                id,
                item,
                receive_count: 0,
            });
        }
        if let Ok(id) = delivery.handle.parse() {
            s.in_flight.remove(&id);
        }
        drop(s);
        self.readable.notify_all();
        Ok(())
    }

    fn extend_visibility(&self, _delivery: &Delivery, _timeout: Duration) -> Result<()> {
        Ok(())
    }

    fn dead_letter(&self, delivery: &Delivery, failure: &FileFailure) -> Result<()> {
        if let Some(e) = self.settle(delivery) {
            self.lock().dead.push((e.item, failure.clone()));
        }
        self.readable.notify_all();
        Ok(())
    }

    fn is_drained(&self) -> bool {
        self.lock().drained()
    }
}

/// What a line feeder saw on its input.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FeedStats {
    /// Work items pushed to the queue.
    pub items: u64,
    /// Lines that were not valid work items (reported and skipped).
    pub invalid_lines: u64,
}

/// Reads NDJSON work items (or S3 event notifications) from `input` on a background
/// thread and pushes them onto `queue`, closing it at end of input.
///
/// Invalid lines are logged with their line number and skipped; blank lines are ignored.
pub fn feed_lines<R>(queue: Arc<MemoryQueue>, input: R, name: &str) -> JoinHandle<FeedStats>
where
    R: BufRead + Send + 'static,
{
    let name = name.to_owned();
    std::thread::Builder::new()
        .name("work-item-feeder".into())
        .spawn(move || {
            let mut stats = FeedStats::default();
            for (n, line) in input.lines().enumerate() {
                let line = match line {
                    Ok(l) => l,
                    Err(e) => {
                        tracing::error!(input = %name, line = n + 1, error = %e, "cannot read work items; no more will be taken from this input");
                        break;
                    }
                };
                if line.trim().is_empty() {
                    continue;
                }
                match WorkItem::parse_message(&line) {
                    Ok(items) => {
                        for item in items {
                            stats.items += 1;
                            queue.push(item);
                        }
                    }
                    Err(e) => {
                        stats.invalid_lines += 1;
                        tracing::warn!(input = %name, line = n + 1, error = %e, "skipping invalid work item line");
                    }
                }
            }
            queue.close();
            stats
        })
        .expect("spawning a thread only fails when the OS is out of resources")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(n: u32) -> WorkItem {
        WorkItem::from_uri(format!("/d/{n}.parquet")).unwrap()
    }

    #[test]
    fn delivers_settles_and_drains() {
        let q = MemoryQueue::default();
        q.push(item(1));
        q.push(item(2));
        q.close();
        assert!(!q.is_drained());
        let a = q.receive(1, Duration::ZERO).unwrap();
        assert_eq!(a.len(), 1);
        assert_eq!(a[0].item.uri, "/d/1.parquet");
        q.release(&a[0], Duration::ZERO).unwrap();
        let b = q.receive(5, Duration::ZERO).unwrap();
        assert_eq!(b.len(), 2);
        assert_eq!(b[1].item.uri, "/d/1.parquet");
        assert_eq!(b[1].receive_count, 2);
        q.ack(&b[0]).unwrap();
        assert!(!q.is_drained());
        let failure = FileFailure {
            uri: b[1].item.uri.clone(),
            class: pf_error::ErrorClass::Permanent,
            error: "bad".into(),
            attempts: 2,
        };
        q.dead_letter(&b[1], &failure).unwrap();
        assert!(q.is_drained());
        assert_eq!(q.dead_letters().len(), 1);
        assert!(q.receive(1, Duration::from_millis(10)).unwrap().is_empty());
    }

    #[test]
    fn delayed_release_waits_then_returns() {
        let q = MemoryQueue::default();
        q.push(item(1));
        q.close();
        let a = q.receive(1, Duration::ZERO).unwrap();
        q.release(&a[0], Duration::from_millis(50)).unwrap();
        assert!(q.receive(1, Duration::ZERO).unwrap().is_empty());
        assert!(!q.is_drained());
        let b = q.receive(1, Duration::from_secs(5)).unwrap();
        assert_eq!(b.len(), 1);
    }

    #[test]
    fn bounded_push_blocks_until_received() {
        let q = Arc::new(MemoryQueue::with_capacity(2));
        let producer = {
            let q = q.clone();
            std::thread::spawn(move || {
                for n in 0..10 {
                    q.push(item(n));
                }
                q.close();
            })
        };
        let mut got = 0;
        while got < 10 {
            for d in q.receive(3, Duration::from_secs(5)).unwrap() {
                q.ack(&d).unwrap();
                got += 1;
            }
        }
        producer.join().unwrap();
        assert!(q.is_drained());
    }

    #[test]
    fn feeder_skips_invalid_lines_and_closes() {
        let q = Arc::new(MemoryQueue::default());
        let input = "{\"uri\":\"/a.parquet\"}\n\nnot json\n{\"uri\":\"/b.csv\"}\n{\"uri\":\"/c.ndjson.gz\"}\n";
        let stats = feed_lines(q.clone(), std::io::Cursor::new(input), "test")
            .join()
            .unwrap();
        assert_eq!(
            stats,
            FeedStats {
                items: 2,
                invalid_lines: 2
            }
        );
        let got = q.receive(10, Duration::ZERO).unwrap();
        assert_eq!(got.len(), 2);
        for d in &got {
            q.ack(d).unwrap();
        }
        assert!(q.is_drained());
    }
}
