//! The verdict: a pure function from evidence, client trust and configuration
//! to an action. No I/O, no milter types; table-tested below.
//!
//! Rules, in order:
//! 1. DMARC: `fail` with an effective policy of `reject` rejects, `quarantine`
//!    quarantines (a local override may make the policy stricter); `temperror`
//!    tempfails (or accepts, by configuration). A message without a usable
//!    From gets `invalid_from` (reject by default); one whose DMARC result is
//!    undecided because of a local limit gets `dkim_over_limit` (tag).
//! 2. The operator's table (`[policy.rules.CHECK]`): every rule whose check
//!    has the rule's result proposes its action.
//! 3. The most severe proposal wins (reject > tempfail > quarantine > tag > accept).
//!    Rules marked `monitor` only report what they would have done.
//!    A DMARC failure is not enforced (or milder) when a trusted ARC sealer
//!    vouches for a `dmarc=pass` before forwarding ([`arc`]).
//! 4. `never_reject` domains are quarantined instead of rejected.
//! 5. Trusted networks, authenticated clients and global monitor mode never
//!    enforce: the message is accepted and the would-be verdict is reported.
//!
//! Per recipient domain ([`RecipientPolicy`], `[[policy.recipients]]`): each
//! policy that applies to one of the message's recipients decides as above,
//! and the most lenient verdict is the message's ([`decide_for`]): one
//! message is accepted or refused for all its recipients at once, so no
//! recipient loses mail because another recipient's policy is stricter.

pub mod arc;
mod verdict;

pub use arc::{ArcJudgement, ArcTrust, TrustedAction};
pub use verdict::{Action, NotEnforced, Reply, Verdict};

use crate::checks::evidence::{AuthResult, DmarcPolicy, Evidence, SpfEvidence};
use ipnet::IpNet;
use std::{fmt, net::IpAddr};

/// A check that the action table can refer to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Check {
    Spf,
    SpfHelo,
    Dkim,
    Dmarc,
    Iprev,
    /// HELO/PTR consistency (`x-ptr`): no rule by default, so never enforced
    /// unless the operator writes one.
    XPtr,
}

impl Check {
    pub const ALL: [Check; 6] = [
        Check::Spf,
        Check::SpfHelo,
        Check::Dkim,
        Check::Dmarc,
        Check::Iprev,
        Check::XPtr,
    ];

    /// The name used in the configuration file.
    pub fn name(self) -> &'static str {
        match self {
            Self::Spf => "spf",
            Self::SpfHelo => "spf-helo",
            Self::Dkim => "dkim",
            Self::Dmarc => "dmarc",
            Self::Iprev => "iprev",
            Self::XPtr => "x-ptr",
        }
    }

    pub fn from_name(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.name() == s)
    }
}

impl fmt::Display for Check {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One row of the operator's action table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rule {
    pub check: Check,
    pub result: AuthResult,
    pub action: Action,
    pub reply: Option<Reply>,
    /// Evaluate and report, never enforce.
    pub monitor: bool,
}

/// Per-domain local policy for the RFC 5322.From domain (and its subdomains).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Override {
    pub domain: String,
    /// Never reject mail from this domain: quarantine instead.
    pub never_reject: bool,
    /// A local DMARC policy applied on `dmarc=fail` when stricter than the published one.
    pub dmarc_policy: Option<DmarcPolicy>,
}

impl Override {
    fn matches(&self, domain: &str) -> bool {
        let d = domain.trim_end_matches('.');
        d.eq_ignore_ascii_case(&self.domain)
            || (d.len() > self.domain.len()
                && d.to_ascii_lowercase()
                    .ends_with(&format!(".{}", self.domain.to_ascii_lowercase())))
    }
}

/// Enforce, or only report.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Enforce,
    Monitor,
}

/// What quarantine means to the MTA.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QuarantineMode {
    /// The milter quarantine action: Postfix's hold queue.
    Hold,
    /// Accept and add the marker header.
    Tag,
}

/// What to do when DNS trouble leaves the DMARC result unknown.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TempErrorAction {
    Tempfail,
    Accept,
}

/// The policy part of the configuration.
#[derive(Clone, Debug)]
pub struct PolicyConfig {
    pub mode: Mode,
    pub quarantine: QuarantineMode,
    pub quarantine_header: String,
    pub dmarc_temperror: TempErrorAction,
    pub dmarc_reject_reply: Reply,
    pub dmarc_temperror_reply: Reply,
    /// What happens to a message without a usable RFC 5322.From.
    pub invalid_from: Action,
    pub invalid_from_reply: Reply,
    /// What happens when DMARC is undecided because a DKIM signature that
    /// could align was not verified (a local limit): never a reject.
    pub dkim_over_limit: Action,
    pub spf_reject_at_mail: bool,
    pub trusted_networks: Vec<IpNet>,
    /// Trust local submissions over a unix socket (no client address).
    pub trust_local: bool,
    /// Trust connections of unknown address family (off by default).
    pub trust_unknown_family: bool,
    pub trust_authenticated: bool,
    pub rules: Vec<Rule>,
    pub overrides: Vec<Override>,
    /// Trusted ARC sealers.
    pub arc: ArcTrust,
    /// Policies for mail to some recipient domains; each is this policy
    /// with its own mode, rules and overrides (and no recipients of its own).
    pub recipients: Vec<RecipientPolicy>,
}

/// The policy for mail to some recipient domains and their subdomains.
#[derive(Clone, Debug)]
pub struct RecipientPolicy {
    /// Named in the log line and `X-Authmilter-Would`.
    pub name: String,
    /// Lower case, without trailing dot.
    pub domains: Vec<String>,
    pub policy: PolicyConfig,
}

/// The name of the policy that applies to recipients no block names.
pub const DEFAULT_POLICY: &str = "default";

impl PolicyConfig {
    /// The policies that apply to `rcpts` (`None`: this one), in
    /// configuration order, each once. A recipient gets the block naming
    /// the longest suffix of its domain, else the default policy.
    pub fn applying(&self, rcpts: &[String]) -> Vec<Option<usize>> {
        let mut out: Vec<Option<usize>> = Vec::new();
        for r in rcpts {
            insert_ordered(&mut out, self.policy_of(r));
        }
        if out.is_empty() {
            out.push(None);
        }
        out
    }

    /// The block whose domain is the longest suffix of `rcpt`'s domain.
    fn policy_of(&self, rcpt: &str) -> Option<usize> {
        let domain = rcpt
            .rsplit_once('@')
            .map_or(rcpt, |(_, d)| d)
            .trim_end_matches('.')
            .to_ascii_lowercase();
        let mut best: Option<(usize, usize)> = None;
        for (i, block) in self.recipients.iter().enumerate() {
            for d in &block.domains {
                let hit = domain == *d || domain.ends_with(&format!(".{d}"));
                if hit && best.is_none_or(|(_, len)| d.len() > len) {
                    best = Some((i, d.len()));
                }
            }
        }
        best.map(|(i, _)| i)
    }

    fn named(&self, which: Option<usize>) -> (&PolicyConfig, &str) {
        match which.and_then(|i| self.recipients.get(i)) {
            None => (self, DEFAULT_POLICY),
            Some(b) => (&b.policy, b.name.as_str()),
        }
    }

    /// Adds the policy of one more recipient to `applying` (kept in
    /// configuration order, each once), so messages with any number of
    /// recipients are judged by all the policies that apply.
    pub fn add_recipient(&self, applying: &mut Vec<Option<usize>>, rcpt: &str) {
        if !self.recipients.is_empty() {
            insert_ordered(applying, self.policy_of(rcpt));
        }
    }
}

/// Adds `which` once, keeping the default first and the blocks in
/// configuration order.
fn insert_ordered(applying: &mut Vec<Option<usize>>, which: Option<usize>) {
    let key = |w: &Option<usize>| w.map_or(0, |i| i + 1);
    if let Err(at) = applying.binary_search_by_key(&key(&which), key) {
        applying.insert(at, which);
    }
}

impl PolicyConfig {
    /// Whether `ip` is in a trusted network.
    pub fn is_trusted(&self, ip: IpAddr) -> bool {
        self.trusted_networks.iter().any(|n| n.contains(&ip))
    }
}

/// Why enforcement may be skipped for this client.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ClientTrust {
    pub trusted_network: bool,
    /// The SMTP AUTH identity, when the client authenticated.
    pub authenticated: Option<String>,
}

struct Proposal {
    action: Action,
    reply: Option<Reply>,
    reason: String,
}

fn result_of(ev: &Evidence, check: Check) -> Option<AuthResult> {
    match check {
        Check::Spf => ev.spf_mailfrom.as_ref().map(|s| s.result),
        Check::SpfHelo => ev.spf_helo.as_ref().map(|s| s.result),
        Check::Dkim => Some(ev.dkim_summary()),
        Check::Dmarc => Some(ev.dmarc.result),
        Check::Iprev => ev.iprev.as_ref().map(|s| s.result),
        Check::XPtr => ev.ptr.as_ref().map(|p| p.result),
    }
}

/// Decides the verdict for a whole message at end of data.
pub fn decide(ev: &Evidence, trust: &ClientTrust, cfg: &PolicyConfig) -> Verdict {
    let from = ev.dmarc.from_domain.as_deref().unwrap_or("");
    let overrides: Vec<&Override> = cfg.overrides.iter().filter(|o| o.matches(from)).collect();
    let mut enforced: Vec<Proposal> = Vec::new();
    let mut monitored: Vec<Proposal> = Vec::new();
    let mut dmarc_disposition = None;
    let mut override_reason = None;
    let mut arc_judgement = None;

    // 1. DMARC.
    match ev.dmarc.result {
        AuthResult::Fail => {
            let mut policy = ev.dmarc.effective;
            if let Some(local) = overrides.iter().filter_map(|o| o.dmarc_policy).max() {
                if local > policy {
                    policy = local;
                    override_reason = Some("local_policy");
                }
            }
            arc_judgement = arc::judge(ev, &cfg.arc);
            let domain = from.to_string();
            match &arc_judgement {
                Some(ArcJudgement::Override { .. }) if policy != DmarcPolicy::None => {
                    policy = arc::overridden(policy, cfg.arc.action);
                    override_reason = Some("trusted_forwarder");
                }
                Some(ArcJudgement::Temporary { sealer })
                    if policy != DmarcPolicy::None
                        && cfg.dmarc_temperror == TempErrorAction::Tempfail =>
                {
                    // The trusted sealer's key may answer on a retry: not a
                    // reject on a DNS failure.
                    enforced.push(Proposal {
                        action: Action::Tempfail,
                        reply: Some(cfg.dmarc_temperror_reply.for_domain(&domain)),
                        reason: format!(
                            "dmarc=fail domain={domain}, ARC keys of trusted sealer {sealer} not fetched"
                        ),
                    });
                    policy = DmarcPolicy::None;
                }
                _ => {}
            }
            dmarc_disposition = Some(policy);
            match policy {
                DmarcPolicy::Reject => enforced.push(Proposal {
                    action: Action::Reject,
                    reply: Some(cfg.dmarc_reject_reply.for_domain(&domain)),
                    reason: format!("dmarc=fail policy=reject domain={domain}"),
                }),
                DmarcPolicy::Quarantine => enforced.push(Proposal {
                    action: Action::Quarantine,
                    reply: None,
                    reason: match &arc_judgement {
                        Some(ArcJudgement::Override { sealer, instance })
                            if override_reason == Some("trusted_forwarder") =>
                        {
                            format!("dmarc=fail domain={domain}: trusted ARC sealer {sealer} (i={instance}), milder policy quarantine")
                        }
                        _ => format!("dmarc=fail policy=quarantine domain={domain}"),
                    },
                }),
                DmarcPolicy::None => {
                    if let (Some(ArcJudgement::Override { sealer, instance }), Some(_)) =
                        (&arc_judgement, override_reason)
                    {
                        enforced.push(Proposal {
                            action: Action::Accept,
                            reply: None,
                            reason: format!(
                                "dmarc=fail domain={domain} overridden: trusted ARC sealer {sealer} (i={instance}) recorded dmarc=pass"
                            ),
                        });
                    }
                }
            }
        }
        _ if ev.dmarc.from_unusable && cfg.invalid_from != Action::Accept => {
            enforced.push(Proposal {
                action: cfg.invalid_from,
                reply: Some(cfg.invalid_from_reply.clone()),
                reason: format!(
                    "invalid From: {}",
                    ev.dmarc.reason.as_deref().unwrap_or("unusable")
                ),
            });
        }
        _ if ev.dmarc.local_limit => {
            // Never stricter than what a failure would get under the
            // domain's own policy.
            let by_policy = match ev.dmarc.effective {
                DmarcPolicy::Reject => Action::Reject,
                DmarcPolicy::Quarantine => Action::Quarantine,
                DmarcPolicy::None => Action::Accept,
            };
            let action = cfg.dkim_over_limit.min(by_policy);
            if action != Action::Accept {
                enforced.push(Proposal {
                    action,
                    reply: None,
                    reason: format!("dmarc undecided: DKIM over local limit domain={from}"),
                });
            }
        }
        AuthResult::TempError if cfg.dmarc_temperror == TempErrorAction::Tempfail => {
            enforced.push(Proposal {
                action: Action::Tempfail,
                reply: Some(cfg.dmarc_temperror_reply.for_domain(from)),
                reason: format!("dmarc=temperror domain={from}"),
            });
        }
        _ => {}
    }

    // 2. The operator's table.
    for rule in &cfg.rules {
        if result_of(ev, rule.check) == Some(rule.result) {
            let p = Proposal {
                action: rule.action,
                reply: rule.reply.clone(),
                reason: format!("rule {}={}", rule.check, rule.result),
            };
            if rule.monitor {
                monitored.push(p);
            } else {
                enforced.push(p);
            }
        }
    }

    // 3. Most severe wins (the first of equals, so DMARC's own reply is kept).
    let pick = |ps: &mut Vec<Proposal>| -> Option<Proposal> {
        let max = ps.iter().map(|p| p.action).max()?;
        let idx = ps.iter().position(|p| p.action == max)?;
        Some(ps.swap_remove(idx))
    };
    let chosen = pick(&mut enforced);
    let would_monitor = pick(&mut monitored);

    let mut verdict = match chosen {
        Some(p) => Verdict::new(p.action, p.reply, p.reason),
        None => Verdict::accept(),
    };

    // 4. never_reject.
    if verdict.action == Action::Reject && overrides.iter().any(|o| o.never_reject) {
        verdict.reason = format!("{} (never_reject override: quarantined)", verdict.reason);
        verdict.action = Action::Quarantine;
        verdict.reply = None;
        override_reason = Some("local_policy");
        if dmarc_disposition == Some(DmarcPolicy::Reject) {
            dmarc_disposition = Some(DmarcPolicy::Quarantine);
        }
    }

    if let Some(m) = would_monitor {
        if m.action > verdict.action {
            verdict.would = Some((m.action, format!("{} (monitor rule)", m.reason)));
            verdict.not_enforced = Some(NotEnforced::MonitorRule);
        }
    }

    // 5. Trust and global monitor mode.
    let skip = if trust.trusted_network {
        Some(("trusted network".to_string(), NotEnforced::TrustedNetwork))
    } else if let (true, Some(user)) = (cfg.trust_authenticated, &trust.authenticated) {
        Some((
            format!("authenticated as {user}"),
            NotEnforced::Authenticated,
        ))
    } else if cfg.mode == Mode::Monitor {
        Some(("monitor mode".to_string(), NotEnforced::MonitorMode))
    } else {
        None
    };
    if let Some((why, kind)) = skip {
        if verdict.action != Action::Accept {
            verdict.would = Some((verdict.action, format!("{} ({why})", verdict.reason)));
            verdict.not_enforced = Some(kind);
            if dmarc_disposition.is_some() {
                dmarc_disposition = Some(DmarcPolicy::None);
                override_reason = Some(if cfg.mode == Mode::Monitor && !trust.trusted_network {
                    "other"
                } else {
                    "trusted_forwarder"
                });
            }
        }
        verdict.action = Action::Accept;
        verdict.reply = None;
        verdict.reason = format!("not enforced: {why}");
    }

    if verdict.action == Action::Quarantine && cfg.quarantine == QuarantineMode::Tag {
        verdict.action = Action::Tag;
    }
    verdict.dmarc_disposition = dmarc_disposition;
    verdict.override_reason = override_reason;
    verdict.arc = arc_judgement;
    verdict
}

/// The verdict for a message whose recipients get the policies `applying`
/// ([`PolicyConfig::applying`]; empty: the default): with
/// `[[policy.recipients]]`, each policy that applies to a recipient
/// decides, and the most lenient
/// verdict wins (the first of equals: the default policy before the
/// blocks, the blocks in configuration order). Its reason, and what it
/// would have done, name the policy that decided.
pub fn decide_for(
    ev: &Evidence,
    trust: &ClientTrust,
    cfg: &PolicyConfig,
    applying: &[Option<usize>],
) -> Verdict {
    if cfg.recipients.is_empty() {
        return decide(ev, trust, cfg);
    }
    let mut best: Option<(Verdict, &str)> = None;
    let default = [None];
    let applying = if applying.is_empty() {
        &default[..]
    } else {
        applying
    };
    for which in applying {
        let (policy, name) = cfg.named(*which);
        let v = decide(ev, trust, policy);
        if best.as_ref().is_none_or(|(b, _)| v.action < b.action) {
            best = Some((v, name));
        }
    }
    let (mut v, name) = best.expect("at least one policy applies");
    v.reason = format!("{} [policy {name}]", v.reason);
    if let Some((_, why)) = v.would.as_mut() {
        *why = format!("{why} [policy {name}]");
    }
    v.policy = Some(name.to_string());
    v
}

/// The verdict at MAIL FROM (see [`decide_at_mail`]). The recipients are
/// not known yet, so with `[[policy.recipients]]` the message is refused
/// only when every policy would refuse it, with the most lenient refusal.
pub fn decide_at_mail_for(
    spf_mailfrom: &SpfEvidence,
    spf_helo: Option<&SpfEvidence>,
    trust: &ClientTrust,
    cfg: &PolicyConfig,
) -> Option<Verdict> {
    let mut best = decide_at_mail(spf_mailfrom, spf_helo, trust, cfg)?;
    for block in &cfg.recipients {
        let v = decide_at_mail(spf_mailfrom, spf_helo, trust, &block.policy)?;
        if v.action < best.action {
            best = v;
        }
    }
    Some(best)
}

/// The verdict at MAIL FROM, when SPF rejection there is enabled: only table
/// rules on `spf` (and `spf-helo`) that reject, for untrusted clients.
pub fn decide_at_mail(
    spf_mailfrom: &SpfEvidence,
    spf_helo: Option<&SpfEvidence>,
    trust: &ClientTrust,
    cfg: &PolicyConfig,
) -> Option<Verdict> {
    if !cfg.spf_reject_at_mail || cfg.mode == Mode::Monitor || trust.trusted_network {
        return None;
    }
    if cfg.trust_authenticated && trust.authenticated.is_some() {
        return None;
    }
    cfg.rules
        .iter()
        .filter(|r| !r.monitor && matches!(r.action, Action::Reject | Action::Tempfail))
        .find(|r| match r.check {
            Check::Spf => spf_mailfrom.result == r.result,
            Check::SpfHelo => spf_helo.is_some_and(|h| h.result == r.result),
            _ => false,
        })
        .map(|r| {
            Verdict::new(
                r.action,
                r.reply.clone(),
                format!("rule {}={} at MAIL FROM", r.check, r.result),
            )
        })
}

#[cfg(test)]
mod tests;
