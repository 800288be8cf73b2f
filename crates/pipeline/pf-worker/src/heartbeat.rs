use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use pf_traits::{Delivery, MetadataStore, WorkQueue};

use crate::StoppableThread;

/// Deliveries being processed, and when each was last extended.
#[derive(Default)]
pub(crate) struct InFlight {
    entries: Mutex<HashMap<String, (Delivery, Instant)>>,
}

impl InFlight {
    pub(crate) fn insert(&self, d: &Delivery) {
        self.lock()
            .insert(d.handle.clone(), (d.clone(), Instant::now()));
    }

    pub(crate) fn remove(&self, d: &Delivery) {
        self.lock().remove(&d.handle);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, (Delivery, Instant)>> {
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Keeps in-flight deliveries invisible to other workers and their metadata fresh.
///
/// Runs on its own thread, touching the registry twice per file, so pipeline threads
/// pay nothing per record and a slow batch cannot make a heartbeat late.
pub(crate) struct VisibilityHeartbeat(StoppableThread);

impl VisibilityHeartbeat {
    /// Extends each delivery every `interval` by the queue's visibility timeout.
    pub(crate) fn start(
        in_flight: Arc<InFlight>,
        queue: Arc<dyn WorkQueue>,
        metadata: Arc<dyn MetadataStore>,
        worker_id: String,
        interval: Duration,
    ) -> Self {
        VisibilityHeartbeat(StoppableThread::spawn(
            "visibility-heartbeat",
            move |ticks| {
                let tick = interval
                    .min(Duration::from_millis(200))
                    .max(Duration::from_millis(10));
                while ticks.wait(tick) {
                    let due: Vec<Delivery> = {
                        let mut map = in_flight.lock();
                        let now = Instant::now();
                        map.values_mut()
                            .filter(|(_, last)| now.duration_since(*last) >= interval)
                            .map(|(d, last)| {
                                *last = now;
                                d.clone()
                            })
                            .collect()
                    };
                    for d in due {
                        if let Some(timeout) = queue.visibility_timeout()
                            && let Err(e) = queue.extend_visibility(&d, timeout)
                        {
                            tracing::warn!(uri = %d.item.uri, error = %e, "visibility heartbeat failed; will retry");
                        }
                        if let Err(e) = metadata.heartbeat(&d.item, &worker_id) {
                            tracing::warn!(uri = %d.item.uri, error = %e, "metadata heartbeat failed; will retry");
                        }
                    }
                }
            },
        ))
    }

    /// Stops the heartbeat thread and waits for it.
    pub(crate) fn stop(self) {
        self.0.stop();
    }
}
