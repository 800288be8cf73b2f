use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Duration;

/// The pace of a [`StoppableThread`]'s loop.
pub struct Ticks(mpsc::Receiver<()>);

impl Ticks {
    /// Waits up to `period`; false once the thread was asked to stop (at once, not at
    /// the end of the period).
    pub fn wait(&self, period: Duration) -> bool {
        matches!(
            self.0.recv_timeout(period),
            Err(mpsc::RecvTimeoutError::Timeout)
        )
    }
}

/// A helper thread (heartbeat, progress, reload watcher) that loops on [`Ticks::wait`]
/// and is stopped and joined by [`stop`](Self::stop), without waiting out its period.
pub struct StoppableThread {
    /// Dropping the sender is the stop signal.
    stop: Option<mpsc::Sender<()>>,
    handle: Option<JoinHandle<()>>,
}

impl StoppableThread {
    /// Runs `body` on a thread named `name`. If the OS refuses the thread, the helper's
    /// work is skipped (logged) rather than failing the run.
    pub fn spawn(name: &str, body: impl FnOnce(Ticks) + Send + 'static) -> Self {
        let (stop, stopped) = mpsc::channel::<()>();
        let handle = std::thread::Builder::new()
            .name(name.into())
            .spawn(move || body(Ticks(stopped)))
            .map_err(|e| tracing::warn!(thread = name, error = %e, "cannot start helper thread"))
            .ok();
        StoppableThread {
            stop: Some(stop),
            handle,
        }
    }

    /// Signals the thread and waits for it to finish.
    pub fn stop(mut self) {
        drop(self.stop.take());
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}
