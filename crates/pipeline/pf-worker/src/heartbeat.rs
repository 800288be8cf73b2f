use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use pf_traits::{Delivery, MetadataStore, WorkQueue};

use crate::StoppableThread;

/// Deliveries being processed, with when each was last extended in the queue and last
/// heartbeated in metadata.
#[derive(Default)]
pub(crate) struct InFlight {
    entries: Mutex<HashMap<String, Entry>>,
}

struct Entry {
    delivery: Delivery,
    /// The pipeline thread holding (or claiming) the item.
    holder: String,
    /// Whether the claim succeeded: only then is the claim heartbeated (a heartbeat
    /// before it would re-create a record Valkey lost while the claim is still retrying).
    claimed: bool,
    /// Last beat of each kind, indexed by [`Beat`].
    last: [Instant; 2],
}

/// The two heartbeats, each on its own thread so a stall of one service never delays
/// the other.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Beat {
    /// SQS visibility extension: keeps the message hidden from other workers.
    Visibility = 0,
    /// Metadata heartbeat: keeps the claim from looking stale.
    Metadata = 1,
}

impl InFlight {
    pub(crate) fn insert(&self, d: &Delivery, holder: &str) {
        let now = Instant::now();
        self.lock().insert(
            d.handle.clone(),
            Entry {
                delivery: d.clone(),
                holder: holder.to_owned(),
                claimed: false,
                last: [now; 2],
            },
        );
    }

    /// Records that the claim on `d` succeeded, so its metadata heartbeat starts.
    pub(crate) fn claimed(&self, d: &Delivery) {
        if let Some(e) = self.lock().get_mut(&d.handle) {
            e.claimed = true;
        }
    }

    pub(crate) fn remove(&self, d: &Delivery) {
        self.lock().remove(&d.handle);
    }

    /// The deliveries (with their holders) whose `beat` is due after `interval`, marked
    /// as beaten now.
    fn due(&self, beat: Beat, interval: Duration) -> Vec<(Delivery, String)> {
        let mut map = self.lock();
        let now = Instant::now();
        map.values_mut()
            .filter(|e| beat == Beat::Visibility || e.claimed)
            .filter(|e| now.duration_since(e.last[beat as usize]) >= interval)
            .map(|e| {
                e.last[beat as usize] = now;
                (e.delivery.clone(), e.holder.clone())
            })
            .collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Entry>> {
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Keeps in-flight deliveries invisible to other workers (`visibility_heartbeat`) and
/// their claims fresh (`metadata_heartbeat`), each on its own thread and period.
///
/// The threads touch the registry twice per file, so pipeline threads pay nothing per
/// record and a slow batch cannot make a heartbeat late; and because they are separate,
/// a Valkey stall (each metadata call may retry for `outage_limit_secs`) never stops
/// the SQS visibility extensions, and an SQS outage never makes a claim look stale.
pub(crate) struct Heartbeats {
    visibility: Option<StoppableThread>,
    metadata: StoppableThread,
}

impl Heartbeats {
    /// Extends each delivery by the queue's visibility timeout every half of it (when the
    /// queue has one), and heartbeats its claim every `metadata_interval`.
    pub(crate) fn start(
        in_flight: Arc<InFlight>,
        queue: Arc<dyn WorkQueue>,
        metadata: Arc<dyn MetadataStore>,
        metadata_interval: Duration,
    ) -> Self {
        let visibility = queue.visibility_timeout().map(|timeout| {
            let in_flight = in_flight.clone();
            beat_thread("visibility-heartbeat", timeout / 2, move |ticks_interval| {
                for (d, _) in in_flight.due(Beat::Visibility, ticks_interval) {
                    if let Err(e) = queue.extend_visibility(&d, timeout) {
                        tracing::warn!(uri = %d.item.uri, error = %e, "visibility heartbeat failed; will retry");
                    }
                }
            })
        });
        let metadata = beat_thread("metadata-heartbeat", metadata_interval, move |interval| {
            for (d, holder) in in_flight.due(Beat::Metadata, interval) {
                if let Err(e) = metadata.heartbeat(&d.item, &holder) {
                    tracing::warn!(uri = %d.item.uri, error = %e, "metadata heartbeat failed; will retry");
                }
            }
        });
        Heartbeats {
            visibility,
            metadata,
        }
    }

    /// Stops both threads and waits for them.
    pub(crate) fn stop(self) {
        if let Some(v) = self.visibility {
            v.stop();
        }
        self.metadata.stop();
    }
}

/// A thread that calls `beat(interval)` every tick (at most 200 ms) until stopped.
fn beat_thread(
    name: &'static str,
    interval: Duration,
    beat: impl Fn(Duration) + Send + 'static,
) -> StoppableThread {
    StoppableThread::spawn(name, move |ticks| {
        let tick = interval
            .min(Duration::from_millis(200))
            .max(Duration::from_millis(10));
        while ticks.wait(tick) {
            beat(interval);
        }
    })
}
