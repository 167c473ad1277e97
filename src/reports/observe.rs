//! What RFC 9990 needs from one message: [`observe`] turns the evidence and
//! the verdict into a [`Row`] (pure; tested without a store).

use super::{DkimResult, Published, Reason, Row, SpfResult};
use crate::{
    checks::evidence::{AuthResult, DmarcPolicy, Evidence, SpfIdentity},
    policy::{Action, ArcJudgement, Verdict},
};
use std::net::IpAddr;

/// At most this many DKIM results per row (RFC 9990 §3: 100 signatures).
pub const MAX_DKIM: usize = 100;
/// At most this many `rua` destinations of one record are used (RFC 9990
/// §3.5 leaves the number to the receiver; this bounds what one record can
/// make us send).
pub const MAX_RUA: usize = 5;

/// The envelope of the message, as the MTA gave it.
#[derive(Clone, Copy, Debug)]
pub struct Envelope<'a> {
    pub client_ip: Option<IpAddr>,
    /// The reverse-path without angle brackets; empty for the null sender.
    pub mail_from: &'a str,
}

fn policy_word(p: Option<DmarcPolicy>) -> Option<String> {
    p.map(|p| p.as_str().to_string())
}

fn dkim_word(r: AuthResult) -> &'static str {
    // DKIMResultType has no softfail; nothing here produces one.
    match r {
        AuthResult::SoftFail => "fail",
        other => other.as_str(),
    }
}

/// The row this message adds to its policy domain's aggregate report, or
/// `None` when it adds nothing: no DMARC record was applied (none, several
/// From domains, an unusable From), DMARC could not be evaluated
/// (temperror, permerror: the message is judged again on retry or not at
/// all), the message was tempfailed (it comes back), or it has no client
/// address (a local submission is not inbound mail).
pub fn observe(ev: &Evidence, verdict: &Verdict, env: &Envelope<'_>) -> Option<Row> {
    let d = &ev.dmarc;
    let record = d.record.as_ref()?;
    let domain = d.policy_domain.clone()?;
    let header_from = d.from_domain.clone()?;
    let ip = env.client_ip?;
    if !matches!(d.result, AuthResult::Pass | AuthResult::Fail)
        || verdict.action == Action::Tempfail
    {
        return None;
    }
    let published = Published {
        domain,
        p: record.p.unwrap_or(DmarcPolicy::None).as_str().into(),
        sp: policy_word(record.sp),
        np: policy_word(record.np),
        adkim: if record.adkim_strict { "s" } else { "r" }.into(),
        aspf: if record.aspf_strict { "s" } else { "r" }.into(),
        fo: record.fo.clone(),
        testing: record.testing,
        psd: record.psd,
        rua: record.rua.iter().take(MAX_RUA).cloned().collect(),
    };
    let disposition = if d.result == AuthResult::Pass {
        // "pass": no action, passing DMARC with an enforcing policy.
        match d.published {
            Some(DmarcPolicy::None) | None => "none",
            Some(_) => "pass",
        }
    } else {
        match verdict.dmarc_disposition.unwrap_or(DmarcPolicy::None) {
            DmarcPolicy::None => "none",
            DmarcPolicy::Quarantine => "quarantine",
            DmarcPolicy::Reject => "reject",
        }
    };
    let mut reasons = Vec::new();
    if d.result == AuthResult::Fail {
        if let Some(kind) = verdict.override_reason {
            let comment = match (&verdict.arc, kind) {
                (Some(ArcJudgement::Override { sealer, instance }), "trusted_forwarder") => {
                    Some(format!("arc=pass as sealed by {sealer} (i={instance})"))
                }
                _ => verdict.not_enforced.map(|n| n.as_str().replace('_', " ")),
            };
            reasons.push(Reason {
                kind: kind.into(),
                comment,
            });
        }
        if d.testing && d.published != Some(d.effective) {
            reasons.push(Reason {
                kind: "policy_test_mode".into(),
                comment: Some("t=y".into()),
            });
        }
    }
    let mut dkim: Vec<DkimResult> = ev
        .dkim
        .iter()
        .map(|s| DkimResult {
            domain: s.domain.to_ascii_lowercase(),
            selector: s.selector.clone(),
            result: dkim_word(s.result).into(),
        })
        .collect();
    // Passing signatures first (RFC 9990 §3.1.3 ranks aligned passes
    // highest), so a truncation drops failures, never the pass.
    dkim.sort_by_key(|d| d.result != "pass");
    dkim.truncate(MAX_DKIM);
    let spf = ev.spf_mailfrom.as_ref().map(|s| SpfResult {
        domain: s.domain.to_ascii_lowercase(),
        scope: match s.identity {
            SpfIdentity::MailFrom => "mfrom",
            SpfIdentity::Helo => "helo",
        }
        .into(),
        result: s.result.as_str().into(),
    });
    let envelope_from = env
        .mail_from
        .rsplit_once('@')
        .map(|(_, d)| d.trim_end_matches('.').to_ascii_lowercase())
        .filter(|d| !d.is_empty());
    Some(Row {
        published,
        source_ip: ip.to_string(),
        header_from,
        envelope_from,
        disposition: disposition.into(),
        dkim_aligned: d.dkim_aligned,
        spf_aligned: d.spf_aligned,
        reasons,
        dkim,
        spf,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        checks::{dmarc::Record, evidence::*},
        config::Config,
        policy::{decide, ClientTrust},
    };
    use std::sync::Arc;

    fn ev(txt: &str, result: AuthResult, spf: AuthResult) -> Evidence {
        let record = Record::parse(txt.as_bytes()).unwrap();
        let published = record.p;
        Evidence {
            iprev: None,
            spf_helo: None,
            spf_mailfrom: Some(SpfEvidence {
                result: spf,
                identity: SpfIdentity::MailFrom,
                sender: "a@Example.COM".into(),
                domain: "Example.COM".into(),
                reason: None,
                mechanism: None,
            }),
            dkim: vec![],
            arc: ArcEvidence::none(),
            dkim2: vec![],
            dmarc: DmarcEvidence {
                result,
                from_domain: Some("example.com".into()),
                published,
                effective: if record.testing {
                    DmarcPolicy::Quarantine
                } else {
                    published.unwrap()
                },
                testing: record.testing,
                spf_aligned: result == AuthResult::Pass,
                dkim_aligned: false,
                reason: None,
                policy_domain: Some("example.com".into()),
                from_unusable: false,
                local_limit: false,
                record: Some(Arc::new(record)),
            },
            ptr: None,
            smtp: Default::default(),
        }
    }

    fn observe_with(e: &Evidence, cfg: &str) -> Option<Row> {
        let cfg = Config::parse(cfg, "t").unwrap();
        let v = decide(e, &ClientTrust::default(), &cfg.policy);
        let env = Envelope {
            client_ip: Some("192.0.2.1".parse().unwrap()),
            mail_from: "a@Example.COM",
        };
        observe(e, &v, &env)
    }

    const REJECT: &str = "v=DMARC1; p=reject; rua=mailto:d@example.com";

    #[test]
    fn dispositions_follow_rfc9990() {
        let pass = observe_with(&ev(REJECT, AuthResult::Pass, AuthResult::Pass), "").unwrap();
        assert_eq!(pass.disposition, "pass");
        assert!(pass.spf_aligned && pass.reasons.is_empty());
        assert_eq!(pass.envelope_from.as_deref(), Some("example.com"));
        let spf = pass.spf.unwrap();
        assert_eq!(
            (spf.domain.as_str(), spf.scope.as_str(), spf.result.as_str()),
            ("example.com", "mfrom", "pass")
        );
        assert_eq!(pass.published.rua, vec!["mailto:d@example.com".to_string()]);

        let fail = observe_with(&ev(REJECT, AuthResult::Fail, AuthResult::Fail), "").unwrap();
        assert_eq!(fail.disposition, "reject");
        assert!(fail.reasons.is_empty(), "the published policy was applied");

        let none = "v=DMARC1; p=none; rua=mailto:d@example.com";
        assert_eq!(
            observe_with(&ev(none, AuthResult::Pass, AuthResult::Pass), "")
                .unwrap()
                .disposition,
            "none"
        );
        assert_eq!(
            observe_with(&ev(none, AuthResult::Fail, AuthResult::Fail), "")
                .unwrap()
                .disposition,
            "none"
        );
    }

    #[test]
    fn overrides_are_given_a_reason() {
        // Monitor mode: the disposition differs from the policy, so a reason is required.
        let monitor = observe_with(
            &ev(REJECT, AuthResult::Fail, AuthResult::Fail),
            "[policy]\nmode = \"monitor\"\n",
        )
        .unwrap();
        assert_eq!(monitor.disposition, "none");
        assert_eq!(monitor.reasons[0].kind, "other");
        // t=y: the policy is applied one step milder.
        let t = observe_with(
            &ev(
                "v=DMARC1; p=reject; t=y; rua=mailto:d@example.com",
                AuthResult::Fail,
                AuthResult::Fail,
            ),
            "",
        )
        .unwrap();
        assert_eq!(t.disposition, "quarantine");
        assert!(
            t.reasons.iter().any(|r| r.kind == "policy_test_mode"),
            "{t:?}"
        );
        assert!(t.published.testing);
    }

    #[test]
    fn at_most_100_dkim_results_per_row() {
        let mut e = ev(REJECT, AuthResult::Fail, AuthResult::Fail);
        e.dkim = (0..150)
            .map(|i| DkimEvidence {
                result: AuthResult::Fail,
                domain: format!("d{i}.example"),
                selector: "s".into(),
                identity: String::new(),
                algorithm: "rsa-sha256".into(),
                b_prefix: String::new(),
                reason: None,
                local_limit: false,
            })
            .collect();
        e.dkim[120].result = AuthResult::Pass;
        let r = observe_with(&e, "").unwrap();
        assert_eq!(r.dkim.len(), MAX_DKIM);
        assert_eq!(r.dkim[0].domain, "d120.example", "the pass is kept, first");
        assert_eq!(r.dkim[1].domain, "d0.example");
    }

    #[test]
    fn at_most_five_rua_destinations() {
        let many: Vec<String> = (0..8).map(|i| format!("mailto:d{i}@example.com")).collect();
        let txt = format!("v=DMARC1; p=reject; rua={}", many.join(","));
        let r = observe_with(&ev(&txt, AuthResult::Pass, AuthResult::Pass), "").unwrap();
        assert_eq!(r.published.rua, many[..MAX_RUA]);
    }

    #[test]
    fn unreportable_messages_add_nothing() {
        for r in [
            AuthResult::TempError,
            AuthResult::PermError,
            AuthResult::None,
        ] {
            assert!(
                observe_with(&ev(REJECT, r, AuthResult::Pass), "").is_none(),
                "{r}"
            );
        }
        let mut no_record = ev(REJECT, AuthResult::Fail, AuthResult::Fail);
        no_record.dmarc.record = None;
        assert!(observe_with(&no_record, "").is_none());
        let e = ev(REJECT, AuthResult::Fail, AuthResult::Fail);
        let v = decide(
            &e,
            &ClientTrust::default(),
            &Config::default_config().policy,
        );
        let local = Envelope {
            client_ip: None,
            mail_from: "",
        };
        assert!(observe(&e, &v, &local).is_none(), "a local submission");
    }
}
