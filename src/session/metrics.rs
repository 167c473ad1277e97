//! The per-message Prometheus metrics, recorded at the verdict (names and
//! help texts: `crate::telemetry::metrics`).

use crate::{
    checks::evidence::Evidence,
    policy::Verdict,
    telemetry::metrics::{ENFORCEMENT_SKIPPED, EOM_DURATION, MESSAGE_DURATION, RESULTS},
};
use metrics::{counter, histogram};
use std::time::Instant;

/// Results by method, the skipped enforcement, and the message's durations.
/// A check that did not run (no client address, a HELO that is no domain)
/// counts no result.
pub(super) fn message(ev: &Evidence, v: &Verdict, since: Instant, eom_started: Instant) {
    let results = [
        ("iprev", ev.iprev.as_ref().map(|i| i.result)),
        ("spf", ev.spf_mailfrom.as_ref().map(|s| s.result)),
        ("spf_helo", ev.spf_helo.as_ref().map(|s| s.result)),
        ("dkim", Some(ev.dkim_summary())),
        ("dmarc", Some(ev.dmarc.result)),
    ];
    for (method, result) in results {
        if let Some(r) = result {
            counter!(RESULTS, "method" => method, "result" => r.as_str()).increment(1);
        }
    }
    if let Some(why) = v.not_enforced.filter(|_| v.would.is_some()) {
        counter!(ENFORCEMENT_SKIPPED, "reason" => why.as_str()).increment(1);
    }
    let now = Instant::now();
    histogram!(MESSAGE_DURATION).record(now.duration_since(since));
    histogram!(EOM_DURATION).record(now.duration_since(eom_started));
}
