//! Table tests: evidence × trust × configuration → action.

use super::*;
use crate::{checks::evidence::*, config::Config};
use AuthResult::{Fail, Pass, PermError, TempError};
const NONE_R: AuthResult = AuthResult::None;

fn ev(dmarc: AuthResult, effective: DmarcPolicy, spf: AuthResult) -> Evidence {
    Evidence {
        iprev: Some(IprevEvidence {
            result: Pass,
            ip: "192.0.2.1".parse().unwrap(),
            name: None,
            reason: None,
            confirmed: vec![],
        }),
        spf_helo: None,
        spf_mailfrom: Some(SpfEvidence {
            result: spf,
            identity: SpfIdentity::MailFrom,
            sender: "a@example.com".into(),
            domain: "example.com".into(),
            reason: None,
            mechanism: None,
        }),
        dkim: vec![],
        arc: ArcEvidence::none(),
        dkim2: vec![],
        dmarc: DmarcEvidence {
            result: dmarc,
            from_domain: Some("example.com".into()),
            published: Some(effective),
            effective,
            testing: false,
            spf_aligned: false,
            dkim_aligned: false,
            reason: None,
            policy_domain: None,
            from_unusable: false,
            local_limit: false,
            record: None,
        },
        ptr: None,
        smtp: Default::default(),
    }
}

fn cfg(extra: &str) -> PolicyConfig {
    Config::parse(&format!("[policy]\n{extra}"), "t")
        .unwrap()
        .policy
}

fn untrusted() -> ClientTrust {
    ClientTrust::default()
}

#[test]
fn default_table() {
    use DmarcPolicy as P;
    let c = cfg("");
    let table = [
        (Fail, P::Reject, Action::Reject),
        (Fail, P::Quarantine, Action::Quarantine),
        (Fail, P::None, Action::Accept),
        (Pass, P::Reject, Action::Accept),
        (NONE_R, P::None, Action::Accept),
        (TempError, P::None, Action::Tempfail),
        (PermError, P::None, Action::Accept),
    ];
    for (dmarc, policy, want) in table {
        let v = decide(&ev(dmarc, policy, Fail), &untrusted(), &c);
        assert_eq!(v.action, want, "dmarc={dmarc} policy={policy}");
    }
}

#[test]
fn reject_reply_names_the_domain() {
    let v = decide(&ev(Fail, DmarcPolicy::Reject, Fail), &untrusted(), &cfg(""));
    let r = v.reply_or_default().unwrap();
    assert_eq!(r.code, 550);
    assert_eq!(r.status, "5.7.1");
    assert!(r.text.contains("example.com"));
    let v = decide(
        &ev(TempError, DmarcPolicy::None, Pass),
        &untrusted(),
        &cfg(""),
    );
    assert_eq!(v.reply_or_default().unwrap().code, 451);
}

#[test]
fn temperror_can_be_accepted() {
    let v = decide(
        &ev(TempError, DmarcPolicy::None, Pass),
        &untrusted(),
        &cfg("dmarc_temperror = \"accept\""),
    );
    assert_eq!(v.action, Action::Accept);
}

#[test]
fn quarantine_as_tag() {
    let v = decide(
        &ev(Fail, DmarcPolicy::Quarantine, Fail),
        &untrusted(),
        &cfg("quarantine = \"tag\""),
    );
    assert_eq!(v.action, Action::Tag);
}

#[test]
fn rules_and_severity() {
    let c = cfg("[policy.rules.spf]\nfail = { action = \"reject\" }\n[policy.rules.iprev]\npass = { action = \"tag\" }\n");
    // spf=fail rule rejects even though DMARC only quarantines.
    let v = decide(&ev(Fail, DmarcPolicy::Quarantine, Fail), &untrusted(), &c);
    assert_eq!(v.action, Action::Reject);
    assert_eq!(v.reply.unwrap().status, "5.7.23");
    // DMARC reject and its own reply win over a tag rule.
    let v = decide(&ev(Fail, DmarcPolicy::Reject, Pass), &untrusted(), &c);
    assert_eq!(v.action, Action::Reject);
    assert_eq!(v.reply.unwrap().status, "5.7.1");
}

#[test]
fn monitor_rules_and_mode_never_enforce() {
    let c = cfg("[policy.rules.spf]\nfail = { action = \"reject\", monitor = true }\n");
    let v = decide(&ev(Pass, DmarcPolicy::Reject, Fail), &untrusted(), &c);
    assert_eq!(v.action, Action::Accept);
    assert_eq!(v.would.as_ref().unwrap().0, Action::Reject);
    assert_eq!(v.not_enforced, Some(NotEnforced::MonitorRule));

    let c = cfg("mode = \"monitor\"");
    let v = decide(&ev(Fail, DmarcPolicy::Reject, Fail), &untrusted(), &c);
    assert_eq!(v.action, Action::Accept);
    assert_eq!(v.would.as_ref().unwrap().0, Action::Reject);
    assert_eq!(v.not_enforced, Some(NotEnforced::MonitorMode));
    assert_eq!(v.dmarc_disposition, Some(DmarcPolicy::None));
    // Nothing to enforce: nothing skipped.
    let v = decide(&ev(Pass, DmarcPolicy::Reject, Pass), &untrusted(), &c);
    assert_eq!(v.not_enforced, None);
}

#[test]
fn trusted_and_authenticated_clients_are_not_enforced() {
    let c = cfg("");
    let e = ev(Fail, DmarcPolicy::Reject, Fail);
    let t = ClientTrust {
        trusted_network: true,
        authenticated: None,
    };
    assert_eq!(decide(&e, &t, &c).action, Action::Accept);
    assert_eq!(
        decide(&e, &t, &c).not_enforced,
        Some(NotEnforced::TrustedNetwork)
    );
    let a = ClientTrust {
        trusted_network: false,
        authenticated: Some("alice".into()),
    };
    let v = decide(&e, &a, &c);
    assert_eq!(v.action, Action::Accept);
    assert!(v.reason.contains("alice"));
    assert_eq!(v.not_enforced, Some(NotEnforced::Authenticated));
    // Unless authenticated clients are not trusted.
    let c = cfg("trust_authenticated = false");
    assert_eq!(decide(&e, &a, &c).action, Action::Reject);
}

#[test]
fn domain_overrides() {
    let c = cfg("[[policy.overrides]]\ndomain = \"example.com\"\nnever_reject = true\n");
    let v = decide(&ev(Fail, DmarcPolicy::Reject, Fail), &untrusted(), &c);
    assert_eq!(v.action, Action::Quarantine);
    let c = cfg("[[policy.overrides]]\ndomain = \"example.com\"\ndmarc_policy = \"reject\"\n");
    let v = decide(&ev(Fail, DmarcPolicy::None, Fail), &untrusted(), &c);
    assert_eq!(v.action, Action::Reject);
    assert_eq!(v.override_reason, Some("local_policy"));
    // A stricter local policy never weakens a published one, and only applies on fail.
    let c = cfg("[[policy.overrides]]\ndomain = \"example.com\"\ndmarc_policy = \"none\"\n");
    assert_eq!(
        decide(&ev(Fail, DmarcPolicy::Reject, Fail), &untrusted(), &c).action,
        Action::Reject
    );
    assert_eq!(
        decide(&ev(Pass, DmarcPolicy::Reject, Fail), &untrusted(), &c).action,
        Action::Accept
    );
}

#[test]
fn spf_at_mail_from_only_when_enabled() {
    let e = ev(Pass, DmarcPolicy::None, Fail);
    let spf = e.spf_mailfrom.as_ref().unwrap();
    let off = cfg("[policy.rules.spf]\nfail = { action = \"reject\" }\n");
    assert!(decide_at_mail(spf, None, &untrusted(), &off).is_none());
    let on = cfg("spf_reject_at_mail = true\n[policy.rules.spf]\nfail = { action = \"reject\" }\n");
    let v = decide_at_mail(spf, None, &untrusted(), &on).unwrap();
    assert_eq!(v.action, Action::Reject);
    let trusted = ClientTrust {
        trusted_network: true,
        authenticated: None,
    };
    assert!(decide_at_mail(spf, None, &trusted, &on).is_none());
}

#[test]
fn dkim_summary_takes_the_best_signature() {
    let mut e = ev(Pass, DmarcPolicy::None, Pass);
    assert_eq!(e.dkim_summary(), NONE_R);
    let sig = |r| DkimEvidence {
        result: r,
        domain: "d".into(),
        selector: "s".into(),
        identity: "@d".into(),
        algorithm: "rsa-sha256".into(),
        b_prefix: "x".into(),
        reason: None,
        local_limit: false,
    };
    e.dkim = vec![sig(Fail), sig(Pass)];
    assert_eq!(e.dkim_summary(), Pass);
    e.dkim = vec![sig(Fail), sig(PermError)];
    assert_eq!(e.dkim_summary(), PermError);
}

#[test]
fn spf_neutral_and_softfail_alone_never_reject_by_default() {
    // RFC 7208 §8.2: neutral is treated exactly like none; §8.5: softfail
    // should not be the sole reason to reject.
    let c = cfg("");
    for spf in [AuthResult::Neutral, AuthResult::SoftFail, NONE_R] {
        for dmarc in [NONE_R, Pass] {
            let v = decide(&ev(dmarc, DmarcPolicy::None, spf), &untrusted(), &c);
            assert_eq!(v.action, Action::Accept, "spf={spf} dmarc={dmarc}");
        }
    }
}

/// RFC 8617 §7.2 local policy, the rule in `policy::arc`: a table of chains
/// (newest set last) and whether the DMARC failure of example.com at
/// p=reject is overridden.
mod arc_trust {
    use super::*;

    fn hop(i: u32, sealer: &str, dmarc: Option<(&str, &str)>, id: &str) -> ArcHop {
        ArcHop {
            instance: i,
            sealer: sealer.into(),
            authserv_id: Some(id.into()),
            results: dmarc
                .map(|(r, from)| AarResult {
                    method: "dmarc".into(),
                    result: r.into(),
                    header_from: Some(from.into()),
                })
                .into_iter()
                .collect(),
        }
    }

    fn with_chain(result: AuthResult, temporary: bool, hops: Vec<ArcHop>) -> Evidence {
        let mut e = ev(Fail, DmarcPolicy::Reject, Fail);
        e.arc = ArcEvidence {
            result,
            reason: None,
            temporary,
            oldest_pass: None,
            hops,
        };
        e
    }

    fn trusting(sealers: &str, action: &str) -> PolicyConfig {
        Config::parse(
            &format!(
                "[milter]\nauthserv_id = \"mx.us.example\"\n[arc]\ntrusted_sealers = [{sealers}]\ntrusted_action = \"{action}\"\n"
            ),
            "t",
        )
        .unwrap()
        .policy
    }

    const PASS: Option<(&str, &str)> = Some(("pass", "example.com"));
    const FAIL: Option<(&str, &str)> = Some(("fail", "example.com"));

    #[test]
    fn the_rule_table() {
        let list = "\"list.example\"";
        let both = "\"list.example\", \"fwd.example\"";
        let cases: Vec<(&str, AuthResult, Vec<ArcHop>, &str, Action)> = vec![
            (
                "trusted, pass",
                Pass,
                vec![hop(1, "list.example", PASS, "list.example")],
                list,
                Action::Accept,
            ),
            (
                "chain fails",
                Fail,
                vec![hop(1, "list.example", PASS, "list.example")],
                list,
                Action::Reject,
            ),
            (
                "untrusted sealer",
                Pass,
                vec![hop(1, "other.example", PASS, "o")],
                list,
                Action::Reject,
            ),
            (
                "trusted sealer saw fail",
                Pass,
                vec![hop(1, "list.example", FAIL, "l")],
                list,
                Action::Reject,
            ),
            (
                "pass for another domain",
                Pass,
                vec![hop(1, "list.example", Some(("pass", "evil.example")), "l")],
                list,
                Action::Reject,
            ),
            (
                "no DMARC result at all",
                Pass,
                vec![hop(1, "list.example", None, "l")],
                list,
                Action::Reject,
            ),
            (
                "only older trusted",
                Pass,
                vec![
                    hop(1, "list.example", PASS, "l"),
                    hop(2, "fwd.example", None, "f"),
                ],
                list,
                Action::Reject,
            ),
            (
                "both trusted, newer silent",
                Pass,
                vec![
                    hop(1, "list.example", PASS, "l"),
                    hop(2, "fwd.example", None, "f"),
                ],
                both,
                Action::Accept,
            ),
            (
                "both trusted, newer saw fail",
                Pass,
                vec![
                    hop(1, "list.example", PASS, "l"),
                    hop(2, "fwd.example", FAIL, "f"),
                ],
                both,
                Action::Reject,
            ),
            (
                "untrusted hop in between",
                Pass,
                vec![
                    hop(1, "list.example", PASS, "l"),
                    hop(2, "x.example", None, "x"),
                    hop(3, "fwd.example", None, "f"),
                ],
                both,
                Action::Reject,
            ),
            (
                "claims our authserv-id",
                Pass,
                vec![hop(1, "list.example", PASS, "MX.us.example")],
                list,
                Action::Reject,
            ),
            (
                "case of the sealer",
                Pass,
                vec![hop(1, "List.Example", PASS, "l")],
                list,
                Action::Accept,
            ),
        ];
        for (what, result, hops, sealers, want) in cases {
            let v = decide(
                &with_chain(result, false, hops),
                &untrusted(),
                &trusting(sealers, "accept"),
            );
            assert_eq!(v.action, want, "{what}: {}", v.reason);
            if want == Action::Accept {
                assert_eq!(v.override_reason, Some("trusted_forwarder"), "{what}");
                assert_eq!(v.dmarc_disposition, Some(DmarcPolicy::None), "{what}");
            } else {
                assert_ne!(v.override_reason, Some("trusted_forwarder"), "{what}");
                assert!(
                    matches!(v.arc, Some(ArcJudgement::Refused(_))),
                    "{what}: {:?}",
                    v.arc
                );
            }
        }
    }

    #[test]
    fn milder_action_steps_down_once() {
        let c = trusting("\"list.example\"", "milder");
        let chain = with_chain(Pass, false, vec![hop(1, "list.example", PASS, "l")]);
        let v = decide(&chain, &untrusted(), &c);
        assert_eq!(v.action, Action::Quarantine);
        assert_eq!(v.dmarc_disposition, Some(DmarcPolicy::Quarantine));
        let mut q = chain.clone();
        q.dmarc.published = Some(DmarcPolicy::Quarantine);
        q.dmarc.effective = DmarcPolicy::Quarantine;
        assert_eq!(decide(&q, &untrusted(), &c).action, Action::Accept);
    }

    #[test]
    fn temporary_failure_of_a_trusted_sealer_tempfails() {
        let c = trusting("\"list.example\"", "accept");
        let hops = vec![hop(1, "list.example", PASS, "l")];
        let v = decide(&with_chain(Fail, true, hops.clone()), &untrusted(), &c);
        assert_eq!(v.action, Action::Tempfail, "{}", v.reason);
        // Untrusted: the temporary failure changes nothing, DMARC rejects.
        let v = decide(
            &with_chain(Fail, true, hops.clone()),
            &untrusted(),
            &cfg(""),
        );
        assert_eq!(v.action, Action::Reject);
        // dmarc_temperror = "accept": no tempfail, and an unverified chain is
        // never trusted: the domain's policy applies.
        let accept = Config::parse(
            "[policy]\ndmarc_temperror = \"accept\"\n[arc]\ntrusted_sealers = [\"list.example\"]\n",
            "t",
        )
        .unwrap()
        .policy;
        let v = decide(&with_chain(Fail, true, hops), &untrusted(), &accept);
        assert_eq!(v.action, Action::Reject, "{}", v.reason);
    }

    #[test]
    fn dmarc_pass_or_no_chain_is_not_judged() {
        let c = trusting("\"list.example\"", "accept");
        let mut e = with_chain(Pass, false, vec![hop(1, "list.example", PASS, "l")]);
        e.dmarc.result = Pass;
        assert!(decide(&e, &untrusted(), &c).arc.is_none());
        let e = ev(Fail, DmarcPolicy::Reject, Fail);
        let v = decide(&e, &untrusted(), &c);
        assert!(v.arc.is_none());
        assert_eq!(v.action, Action::Reject);
    }
}

#[test]
fn recipient_policies_apply_by_domain_and_the_most_lenient_decides() {
    let c = cfg("[[policy.recipients]]\nname = \"mon\"\ndomains = [\"example.org\"]\nmode = \"monitor\"\n[[policy.recipients]]\nname = \"deep\"\ndomains = [\"eu.example.org\"]\n[[policy.recipients.overrides]]\ndomain = \"example.com\"\nnever_reject = true\n");
    let r = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    assert_eq!(c.applying(&r(&[])), [None]);
    assert_eq!(c.applying(&r(&["a@other.example"])), [None]);
    assert_eq!(
        c.applying(&r(&["a@example.org", "b@Sub.Example.ORG."])),
        [Some(0)]
    );
    // The longest matching domain wins; order: default, then the blocks.
    assert_eq!(
        c.applying(&r(&["a@x.eu.example.org", "b@example.org", "c@o.example"])),
        [None, Some(0), Some(1)]
    );
    // Not a suffix match on labels: notexample.org is not under example.org.
    assert_eq!(c.applying(&r(&["a@notexample.org"])), [None]);
    let mut acc = Vec::new();
    c.add_recipient(&mut acc, "a@eu.example.org");
    c.add_recipient(&mut acc, "b@nowhere.example");
    c.add_recipient(&mut acc, "c@eu.example.org");
    assert_eq!(acc, [None, Some(1)]);

    let spoof = ev(Fail, DmarcPolicy::Reject, Fail);
    let t = untrusted();
    let v = decide_for(&spoof, &t, &c, &[None]);
    assert_eq!(v.action, Action::Reject);
    assert_eq!(v.policy.as_deref(), Some("default"));
    assert!(v.reason.ends_with("[policy default]"), "{}", v.reason);
    let v = decide_for(&spoof, &t, &c, &[None, Some(1)]);
    assert_eq!(v.action, Action::Quarantine);
    assert_eq!(v.policy.as_deref(), Some("deep"));
    let v = decide_for(&spoof, &t, &c, &[None, Some(0), Some(1)]);
    assert_eq!(v.action, Action::Accept);
    let (would, why) = v.would.clone().unwrap();
    assert_eq!(would, Action::Reject);
    assert!(why.contains("[policy mon]"), "{why}");
    // Without blocks: exactly decide().
    let plain = cfg("");
    assert_eq!(
        decide_for(&spoof, &t, &plain, &[]),
        decide(&spoof, &t, &plain)
    );
}

#[test]
fn rejection_at_mail_from_needs_every_recipient_policy() {
    let spf_fail = SpfEvidence {
        result: Fail,
        identity: SpfIdentity::MailFrom,
        sender: "x@evil.example".into(),
        domain: "evil.example".into(),
        reason: None,
        mechanism: None,
    };
    let t = untrusted();
    let rule = "spf_reject_at_mail = true\n[policy.rules.spf]\nfail = { action = \"reject\" }\n";
    let c = cfg(rule);
    assert!(decide_at_mail_for(&spf_fail, None, &t, &c).is_some());
    // A monitor block: the recipients are not known yet, so no rejection.
    let c = cfg(&format!(
        "{rule}[[policy.recipients]]\ndomains = [\"a.example\"]\nmode = \"monitor\"\n"
    ));
    assert!(decide_at_mail_for(&spf_fail, None, &t, &c).is_none());
    // A block with the same rule (inherited): still rejected.
    let c = cfg(&format!("{rule}[[policy.recipients]]\ndomains = [\"a.example\"]\n[[policy.recipients.overrides]]\ndomain = \"b.example\"\nnever_reject = true\n"));
    assert!(decide_at_mail_for(&spf_fail, None, &t, &c).is_some());
}
