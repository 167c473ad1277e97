//! The per-message Prometheus metrics, recorded at the verdict (names and
//! help texts: `crate::telemetry::metrics`).

use crate::{
    checks::evidence::{AuthResult, Evidence},
    policy::Verdict,
    telemetry::metrics as m,
};
use std::time::Instant;

/// Results by method, the skipped enforcement, and the message's durations.
/// A check that did not run (no client address, a HELO that is no domain)
/// counts no result.
pub(super) fn message(ev: &Evidence, v: &Verdict, since: Instant, eom_started: Instant) {
    if !m::enabled() {
        return;
    }
    let results = [
        ("iprev", ev.iprev.as_ref().map(|i| i.result)),
        ("spf", ev.spf_mailfrom.as_ref().map(|s| s.result)),
        ("spf_helo", ev.spf_helo.as_ref().map(|s| s.result)),
        ("dkim", Some(ev.dkim_summary())),
        ("arc", Some(ev.arc.result)),
        (
            "dkim2",
            ev.dkim2
                .iter()
                .map(|d| d.result)
                .min_by_key(|r| *r != AuthResult::Pass),
        ),
        ("dmarc", Some(ev.dmarc.result)),
    ];
    for (method, result) in results {
        if let Some(r) = result {
            m::result(method, r.as_str());
        }
    }
    if matches!(v.arc, Some(crate::policy::ArcJudgement::Override { .. }))
        && v.override_reason == Some("trusted_forwarder")
    {
        metrics::counter!(m::DMARC_OVERRIDES, "reason" => "trusted_forwarder").increment(1);
    }
    if let Some(why) = v.not_enforced.filter(|_| v.would.is_some()) {
        m::skipped(why.as_str(), 1);
    }
    m::message_durations(since, eom_started);
}

#[cfg(test)]
mod tests {
    use super::m;
    use crate::{
        checks::evidence::AuthResult,
        policy::{Action, NotEnforced},
    };

    /// Every word these layers record has its cached handle (the fixed sets
    /// in `telemetry::metrics` cover them).
    #[test]
    fn label_sets_cover_every_value() {
        use AuthResult::*;
        for r in [
            Pass, Fail, SoftFail, Neutral, None, Policy, TempError, PermError,
        ] {
            assert!(m::RESULT_WORDS.contains(&r.as_str()), "{r:?}");
        }
        for a in [
            Action::Accept,
            Action::Tag,
            Action::Quarantine,
            Action::Tempfail,
            Action::Reject,
        ] {
            assert!(m::VERDICTS.contains(&a.as_str()), "{a:?}");
        }
        for n in [
            NotEnforced::TrustedNetwork,
            NotEnforced::Authenticated,
            NotEnforced::MonitorMode,
            NotEnforced::MonitorRule,
        ] {
            assert!(m::SKIP_REASONS.contains(&n.as_str()), "{n:?}");
        }
    }
}
