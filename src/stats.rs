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
            "messages={} accepted={} tagged={} quarantined={} tempfailed={} rejected={} not_enforced={}",
            self.messages.load(Relaxed),
            self.accepted.load(Relaxed),
            self.tagged.load(Relaxed),
            self.quarantined.load(Relaxed),
            self.tempfailed.load(Relaxed),
            self.rejected.load(Relaxed),
            self.not_enforced.load(Relaxed),
        )
    }
}
