//! Verdict counters, logged at shutdown and on SIGUSR1. The same events are
//! counted for Prometheus here (`crate::telemetry::metrics`; nothing is
//! recorded unless `[metrics] address` is set), and the gauges are read
//! from these counters when scraped.

use crate::{policy::Action, telemetry::metrics as m};
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
    /// Bytes buffered for in-flight messages, right now, and at most so far.
    pub buffered: AtomicU64,
    pub buffered_peak: AtomicU64,
    /// Messages tempfailed because `limits.max_buffered_bytes` was reached.
    pub over_budget: AtomicU64,
    /// Milter connections open right now.
    pub connections: AtomicU64,
}

/// Bytes one message holds against `limits.max_buffered_bytes`, given back
/// when it is dropped.
#[derive(Debug)]
pub struct Buffered {
    stats: std::sync::Arc<Stats>,
    held: u64,
}

impl Buffered {
    pub fn new(stats: std::sync::Arc<Stats>) -> Self {
        Self { stats, held: 0 }
    }

    /// Takes `n` more bytes if the total stays within `max`; `false` (and
    /// nothing taken) otherwise.
    pub fn take(&mut self, n: u64, max: u64) -> bool {
        let s = &self.stats;
        let mut cur = s.buffered.load(Relaxed);
        loop {
            let next = cur.saturating_add(n);
            if next > max {
                return false;
            }
            match s
                .buffered
                .compare_exchange_weak(cur, next, Relaxed, Relaxed)
            {
                Ok(_) => {
                    s.buffered_peak.fetch_max(next, Relaxed);
                    self.held += n;
                    return true;
                }
                Err(actual) => cur = actual,
            }
        }
    }

    /// Gives every byte held back.
    pub fn release(&mut self) {
        self.stats.buffered.fetch_sub(self.held, Relaxed);
        self.held = 0;
    }
}

impl Drop for Buffered {
    fn drop(&mut self) {
        self.release();
    }
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

/// Counts a milter connection as open until dropped.
#[derive(Debug)]
pub struct Connected(std::sync::Arc<Stats>);

impl Connected {
    pub fn new(stats: std::sync::Arc<Stats>) -> Self {
        stats.connections.fetch_add(1, Relaxed);
        m::connection(1);
        Self(stats)
    }
}

impl Drop for Connected {
    fn drop(&mut self) {
        self.0.connections.fetch_sub(1, Relaxed);
    }
}

impl Stats {
    pub fn record(&self, action: Action, not_enforced: bool) {
        m::message(action.as_str(), 1);
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

    /// A message tempfailed at `limits.max_buffered_bytes`.
    pub fn note_over_budget(&self) {
        self.over_budget.fetch_add(1, Relaxed);
        metrics::counter!(m::OVER_BUDGET).increment(1);
    }

    /// A panic caught at milter stage `stage`.
    pub fn note_panic(&self, stage: &'static str) {
        self.internal_errors.fetch_add(1, Relaxed);
        metrics::counter!(m::PANICS, "stage" => stage).increment(1);
    }

    /// Sets the Prometheus gauges from these counters (at scrape time).
    pub fn publish_gauges(&self) {
        metrics::gauge!(m::CONNECTIONS_OPEN).set(self.connections.load(Relaxed) as f64);
        metrics::gauge!(m::MESSAGES_IN_FLIGHT).set(self.in_flight.load(Relaxed) as f64);
        metrics::gauge!(m::BUFFERED_BYTES).set(self.buffered.load(Relaxed) as f64);
    }

    /// One line for the log.
    pub fn summary(&self) -> String {
        format!(
            "messages={} accepted={} tagged={} quarantined={} tempfailed={} rejected={} not_enforced={} internal_errors={} over_budget={} buffered_peak={}",
            self.messages.load(Relaxed),
            self.accepted.load(Relaxed),
            self.tagged.load(Relaxed),
            self.quarantined.load(Relaxed),
            self.tempfailed.load(Relaxed),
            self.rejected.load(Relaxed),
            self.not_enforced.load(Relaxed),
            self.internal_errors.load(Relaxed),
            self.over_budget.load(Relaxed),
            self.buffered_peak.load(Relaxed),
        )
    }
}
