//! Verdict counters, logged at shutdown and on SIGUSR1.

use crate::policy::Action;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// Counts of verdicts since start.
#[derive(Debug, Default)]
pub struct Stats {
    pub messages: AtomicU64,
    pub accepted: AtomicU64,
    pub tagged: AtomicU64,
    pub quarantined: AtomicU64,
    pub tempfailed: AtomicU64,
    pub rejected: AtomicU64,
    /// Verdicts that monitor mode, a monitor rule or trust kept from being enforced.
    pub not_enforced: AtomicU64,
    /// Internal errors (panics) isolated to one session and answered with tempfail.
    pub internal_errors: AtomicU64,
    /// Messages between MAIL FROM and their verdict or abort, right now.
    pub in_flight: AtomicU64,
}

/// Counts a message as in flight until dropped.
#[derive(Debug)]
pub struct InFlight(std::sync::Arc<Stats>);

impl InFlight {
    pub fn new(stats: std::sync::Arc<Stats>) -> Self {
        stats.in_flight.fetch_add(1, Relaxed);
        Self(stats)
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Relaxed);
    }
}

impl Stats {
    pub fn record(&self, action: Action, not_enforced: bool) {
        self.messages.fetch_add(1, Relaxed);
        match action {
            Action::Accept => &self.accepted,
            Action::Tag => &self.tagged,
            Action::Quarantine => &self.quarantined,
            Action::Tempfail => &self.tempfailed,
            Action::Reject => &self.rejected,
        }
        .fetch_add(1, Relaxed);
        if not_enforced {
            self.not_enforced.fetch_add(1, Relaxed);
        }
    }

    /// One line for the log.
    pub fn summary(&self) -> String {
        format!(
            "messages={} accepted={} tagged={} quarantined={} tempfailed={} rejected={} not_enforced={} internal_errors={}",
            self.messages.load(Relaxed),
            self.accepted.load(Relaxed),
            self.tagged.load(Relaxed),
            self.quarantined.load(Relaxed),
            self.tempfailed.load(Relaxed),
            self.rejected.load(Relaxed),
            self.not_enforced.load(Relaxed),
            self.internal_errors.load(Relaxed),
        )
    }
}
