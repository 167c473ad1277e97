//! Trusted ARC sealers (RFC 8617 §7.2, local policy): when a forwarder the
//! operator trusts says the message passed DMARC before it changed it, a
//! DMARC failure here is not enforced.
//!
//! The rule, all of it required:
//! - the chain validates (`arc=pass`);
//! - trust starts at the newest set (`i=N`), whose sealer must be trusted,
//!   and reaches older sets only through consecutive trusted sealers: an
//!   untrusted hop could have changed everything before it;
//! - the first set reached that way whose ARC-Authentication-Results has a
//!   DMARC result for the author domain decides: `dmarc=pass` overrides,
//!   anything else (a trusted sealer that saw the failure) never does;
//! - a set whose ARC-Authentication-Results claims one of our own
//!   authserv-ids is forged (we have not sealed it): it stops the walk.

use crate::checks::evidence::{AuthResult, DmarcPolicy, Evidence};

/// What a trusted chain does to a DMARC failure.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TrustedAction {
    /// The message is accepted (disposition `none`).
    Accept,
    /// One step milder than the published policy: reject becomes
    /// quarantine, quarantine becomes none.
    Milder,
}

/// The trusted-sealer part of the configuration (`[arc]`).
#[derive(Clone, Debug)]
pub struct ArcTrust {
    /// Sealer domains (ARC-Seal `d=`), lower case, matched exactly.
    pub trusted_sealers: Vec<String>,
    pub action: TrustedAction,
    /// Our authserv-id and its aliases, lower case.
    pub own_ids: Vec<String>,
}

impl Default for ArcTrust {
    fn default() -> Self {
        Self {
            trusted_sealers: Vec::new(),
            action: TrustedAction::Accept,
            own_ids: Vec::new(),
        }
    }
}

impl ArcTrust {
    fn trusts(&self, sealer: &str) -> bool {
        self.trusted_sealers
            .iter()
            .any(|t| t.eq_ignore_ascii_case(sealer.trim_end_matches('.')))
    }
}

/// How the chain was judged, for the header, the log and the verdict.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ArcJudgement {
    /// A trusted sealer recorded `dmarc=pass` for the author domain.
    Override { sealer: String, instance: u32 },
    /// The newest sealer is trusted but its keys could not be fetched: the
    /// result may change on a retry.
    Temporary { sealer: String },
    /// Why the chain does not override.
    Refused(String),
}

/// The ARC sets of `ev` judged by `trust`, when DMARC failed and the message
/// has a chain; `None` otherwise.
pub fn judge(ev: &Evidence, trust: &ArcTrust) -> Option<ArcJudgement> {
    let arc = &ev.arc;
    if ev.dmarc.result != AuthResult::Fail || arc.result == AuthResult::None {
        return None;
    }
    let refused = |why: String| Some(ArcJudgement::Refused(why));
    if let Some(forged) = arc.hops.iter().rev().find(|h| {
        h.authserv_id
            .as_deref()
            .is_some_and(|id| trust.own_ids.iter().any(|o| o.eq_ignore_ascii_case(id)))
    }) {
        return refused(format!(
            "ARC set i={} claims our authserv-id: forged",
            forged.instance
        ));
    }
    let newest = arc.hops.last();
    if arc.result != AuthResult::Pass {
        return match newest {
            Some(h) if arc.temporary && trust.trusts(&h.sealer) => Some(ArcJudgement::Temporary {
                sealer: h.sealer.clone(),
            }),
            _ => refused(format!(
                "arc=fail ({})",
                arc.reason.as_deref().unwrap_or("chain did not validate")
            )),
        };
    }
    let Some(author) = ev.dmarc.from_domain.as_deref() else {
        return refused("no author domain".into());
    };
    let author = author.trim_end_matches('.');
    for hop in arc.hops.iter().rev() {
        if !trust.trusts(&hop.sealer) {
            return refused(format!(
                "sealer {} (i={}) is not trusted",
                hop.sealer, hop.instance
            ));
        }
        let dmarc = hop.results.iter().find(|r| {
            r.method == "dmarc"
                && r.header_from
                    .as_deref()
                    .is_some_and(|d| d.eq_ignore_ascii_case(author))
        });
        match dmarc {
            Some(r) if r.result == "pass" => {
                return Some(ArcJudgement::Override {
                    sealer: hop.sealer.clone(),
                    instance: hop.instance,
                })
            }
            Some(r) => {
                return refused(format!(
                    "trusted sealer {} (i={}) recorded dmarc={}",
                    hop.sealer, hop.instance, r.result
                ))
            }
            None => {}
        }
    }
    refused(format!(
        "no trusted ARC set records dmarc=pass for {author}"
    ))
}

/// The disposition after a trusted override.
pub fn overridden(policy: DmarcPolicy, action: TrustedAction) -> DmarcPolicy {
    match (action, policy) {
        (TrustedAction::Accept, _) => DmarcPolicy::None,
        (TrustedAction::Milder, DmarcPolicy::Reject) => DmarcPolicy::Quarantine,
        (TrustedAction::Milder, _) => DmarcPolicy::None,
    }
}
