//! A check started early and awaited later (DNS pipelining).

use std::{future::Future, time::Duration};
use tokio::{task::JoinHandle, time::Instant};

/// A spawned check whose result is fetched once and then kept.
/// Dropping it aborts the task.
pub struct Pending<T> {
    handle: Option<JoinHandle<T>>,
    value: Option<T>,
    started: Instant,
}

impl<T: Clone + Send + 'static> Pending<T> {
    /// Starts `fut` on the runtime, inside the current tracing span (so
    /// its trace lines name the message).
    pub fn spawn(fut: impl Future<Output = T> + Send + 'static) -> Self {
        use tracing::Instrument;
        Self {
            handle: Some(tokio::spawn(fut.in_current_span())),
            value: None,
            started: Instant::now(),
        }
    }

    /// A value that is already known.
    pub fn ready(value: T) -> Self {
        Self {
            handle: None,
            value: Some(value),
            started: Instant::now(),
        }
    }

    /// The result, waiting at most until `budget` after the check started
    /// (its DNS work could not start earlier, so a slow DATA phase does not
    /// eat into it). `Err(())` when the budget ran out first.
    pub async fn get_within(&mut self, budget: Duration) -> Result<Option<T>, ()> {
        tokio::time::timeout_at(self.started + budget, self.get())
            .await
            .map_err(|_| ())
    }

    /// The result; `None` only if the task panicked or was cancelled.
    /// Cancel-safe: if the caller stops waiting (a deadline), the task goes on
    /// and a later call still gets its result.
    pub async fn get(&mut self) -> Option<T> {
        if let Some(h) = self.handle.as_mut() {
            let r = h.await;
            self.handle = None;
            match r {
                Ok(v) => self.value = Some(v),
                Err(e) => tracing::error!("check task failed: {e}"),
            }
        }
        self.value.clone()
    }
}

impl<T> Drop for Pending<T> {
    fn drop(&mut self) {
        if let Some(h) = &self.handle {
            h.abort();
        }
    }
}
