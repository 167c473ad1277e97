//! `authmilter doctor`: every mistake in the fixture zones (tests/fixtures/doctor/)
//! found with its severity and a fix, a correct domain clean, DNS failures
//! never clean; the binary's exit codes, JSON and text; the name servers
//! asked directly (a lame and a dead one) through a real resolver path.

mod common;

use authmilter::{
    config::Config,
    dns::{zones::ZoneSet, Dns},
    doctor::{self, Finding, Options, Report, Severity},
};
use common::dns_server::{Fault, TestDns, Zones};
use std::{net::IpAddr, path::PathBuf, process::Command, time::Duration};

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/doctor")
        .join(name)
}

fn zone_dns() -> Dns {
    let mut z = ZoneSet::with_origins();
    z.load(&fixture("test.zone")).unwrap();
    z.load(&fixture("reverse.zone")).unwrap();
    Dns::from_zones(&Config::default_config().dns, z).unwrap()
}

async fn diagnose(domain: &str, ips: &[&str], selectors: &[&str]) -> Report {
    let opts = Options {
        domain: domain.into(),
        ips: ips.iter().map(|i| i.parse::<IpAddr>().unwrap()).collect(),
        selectors: selectors.iter().map(|s| s.to_string()).collect(),
        delegation: false,
        ns_port: 53,
        ns_timeout: Duration::from_secs(1),
    };
    doctor::diagnose(&zone_dns(), &opts).await
}

/// The one finding `id` (about `subject` when given), with every
/// explanation a non-ok finding must carry.
fn expect<'a>(r: &'a Report, id: &str, severity: Severity, fix: &str) -> &'a Finding {
    let found = r.with_id(id);
    let f = found.first().unwrap_or_else(|| {
        panic!(
            "{}: no {id}; found {:?}",
            r.domain,
            r.findings.iter().map(|f| f.id).collect::<Vec<_>>()
        )
    });
    assert_eq!(f.severity, severity, "{}: {id}: {f:?}", r.domain);
    let hint = f
        .fix
        .as_deref()
        .unwrap_or_else(|| panic!("{id}: no fix hint"));
    assert!(hint.contains(fix), "{id}: fix {hint:?} lacks {fix:?}");
    assert!(f.why.is_some(), "{id}: no why");
    if severity == Severity::Error {
        assert!(
            f.smtp_reply.is_some(),
            "{id}: an error without the reply it causes"
        );
    }
    f
}

#[tokio::test]
async fn a_correct_domain_is_clean() {
    let r = diagnose("good.test", &["192.0.2.10"], &["s1", "ed"]).await;
    assert_eq!((r.status, r.exit_code), ("clean", 0), "{:#?}", r.findings);
    assert!(r.findings.iter().all(|f| f.severity == Severity::Ok));
    for id in [
        "mx.ok",
        "spf.ok",
        "ip.ptr_ok",
        "ip.spf_pass",
        "dkim.ok",
        "dmarc.found",
        "dmarc.destination_ok",
    ] {
        assert!(!r.with_id(id).is_empty(), "no {id}");
    }
    // The external rua is authorised by good.test._report._dmarc.reports.test.
    assert!(r
        .findings
        .iter()
        .any(|f| f.summary.contains("agg@reports.test")));
    assert!(r.with_id("ip.spf_pass")[0]
        .summary
        .contains("ip4:192.0.2.0/24"));
}

#[tokio::test]
async fn spf_mistakes() {
    let cases: &[(&str, &str, Severity, &str)] = &[
        (
            "twospf.test",
            "spf.multiple_records",
            Severity::Error,
            "Merge",
        ),
        (
            "lookups.test",
            "spf.too_many_lookups",
            Severity::Error,
            "ip4:",
        ),
        (
            "nearlimit.test",
            "spf.near_lookup_limit",
            Severity::Warning,
            "ip4:",
        ),
        (
            "voids.test",
            "spf.too_many_void_lookups",
            Severity::Error,
            "Remove",
        ),
        ("syntax.test", "spf.syntax", Severity::Error, "ip4:"),
        ("passall.test", "spf.pass_all", Severity::Error, "-all"),
        ("neutral.test", "spf.neutral_all", Severity::Warning, "-all"),
        ("noall.test", "spf.no_all", Severity::Warning, "-all"),
        (
            "after.test",
            "spf.terms_after_all",
            Severity::Warning,
            "before",
        ),
        ("ptr.test", "spf.ptr_deprecated", Severity::Warning, "ip4:"),
        (
            "incmissing.test",
            "spf.include_missing",
            Severity::Error,
            "typo",
        ),
        (
            "split.test",
            "spf.split_without_space",
            Severity::Error,
            "space",
        ),
        (
            "big.test",
            "spf.response_size",
            Severity::Warning,
            "Shorten",
        ),
        (
            "wide.test",
            "spf.wide_range",
            Severity::Error,
            "prefix length",
        ),
        ("loop.test", "spf.loop", Severity::Error, "loop"),
        ("badver.test", "spf.bad_version", Severity::Error, "v=spf1"),
        (
            "cannotpass.test",
            "spf.missing",
            Severity::Warning,
            "v=spf1",
        ),
        (
            "redir.test",
            "spf.redirect_missing",
            Severity::Error,
            "typo",
        ),
        (
            "incsyntax.test",
            "spf.include_syntax",
            Severity::Error,
            "syntax.test",
        ),
        (
            "dupmod.test",
            "spf.duplicate_modifier",
            Severity::Error,
            "redirect=",
        ),
        ("manymx.test", "spf.mx_too_many", Severity::Error, "ip4:"),
        // The redirect target's ending is the record's ending (RFC 7208 §6.1).
        ("redirall.test", "spf.pass_all", Severity::Error, "-all"),
        (
            "incall.test",
            "spf.include_pass_all",
            Severity::Error,
            "-all",
        ),
        // a looks up the sender's family (§5.3): AAAA-only hosts are voids for IPv4.
        (
            "aaaaonly.test",
            "spf.too_many_void_lookups",
            Severity::Error,
            "Remove",
        ),
        // Each MX host's address lookup counts (§4.6.4).
        (
            "mxvoid.test",
            "spf.too_many_void_lookups",
            Severity::Error,
            "Remove",
        ),
        (
            "redirignored.test",
            "spf.redirect_ignored",
            Severity::Warning,
            "redirect=",
        ),
        (
            "macroi.test",
            "spf.macro_include",
            Severity::Warning,
            "by hand",
        ),
        // %{d} is known statically: expanded and followed.
        (
            "macroinc.test",
            "spf.include_missing",
            Severity::Error,
            "typo",
        ),
        ("long.test", "dns.string_too_long", Severity::Error, "Split"),
    ];
    for (domain, id, sev, fix) in cases {
        let r = diagnose(domain, &[], &[]).await;
        expect(&r, id, *sev, fix);
        if *sev == Severity::Error {
            assert_eq!(r.exit_code, 1, "{domain}");
            assert!(
                r.with_id("spf.ok").is_empty(),
                "{domain}: spf.ok beside an error"
            );
        }
    }
    // The chain that uses the lookups up, term by term.
    let r = diagnose("lookups.test", &[], &[]).await;
    let f = &r.with_id("spf.too_many_lookups")[0];
    assert!(f.summary.contains("11"), "{}", f.summary);
    assert_eq!(f.details.len(), 11);
    assert!(f
        .details
        .contains(&"lookups.test → b.lookups.test: exists:h.lookups.test".to_string()));
    // Both broken includes, and the name that does not exist is a void lookup.
    let r = diagnose("incmissing.test", &[], &[]).await;
    assert_eq!(r.with_id("spf.include_missing").len(), 2);
    assert!(r.with_id("spf.void_lookup").is_empty());
    let r = diagnose("syntax.test", &[], &[]).await;
    assert!(r.with_id("spf.syntax")[0]
        .summary
        .contains("ip4:192.0.2.300"));
    let r = diagnose("aaaaonly.test", &[], &[]).await;
    let f = &r.with_id("spf.too_many_void_lookups")[0];
    assert!(
        f.details.iter().all(|d| d.ends_with("(for IPv4 senders)")),
        "{f:?}"
    );
    let r = diagnose("redirall.test", &[], &[]).await;
    assert_eq!(r.with_id("spf.pass_all")[0].subject, "_spf.redirall.test");
    // Mechanisms after "all" are never tested (§5.1): not counted, not followed.
    let r = diagnose("afterall.test", &[], &[]).await;
    expect(&r, "spf.terms_after_all", Severity::Warning, "before");
    assert!(r.with_id("spf.include_missing").is_empty());
    assert!(r.with_id("spf.ok")[0].summary.contains("0 of 10"));
    // A modifier after all is not a misplaced term.
    let r = diagnose("expok.test", &[], &[]).await;
    assert!(r.with_id("spf.terms_after_all").is_empty());
    assert_eq!(r.with_id("spf.ok").len(), 1);
    let r = diagnose("macroi.test", &[], &[]).await;
    assert!(
        r.with_id("spf.ok").is_empty(),
        "ok while an include was not followed"
    );
    let r = diagnose("macroinc.test", &[], &[]).await;
    assert_eq!(
        r.with_id("spf.include_missing")[0].subject,
        "macroinc.test._spf.provider.test"
    );
    // Names built from macros depend on the message: listed, not followed.
    let r = diagnose("macro.test", &[], &[]).await;
    let f = &r.with_id("spf.macros")[0];
    assert_eq!(f.severity, Severity::Ok);
    assert!(
        f.details[0].contains("exists:%{i}._spf.macro.test"),
        "{f:?}"
    );
    assert!(r.with_id("spf.void_lookup").is_empty());
    let r = diagnose("voids.test", &[], &[]).await;
    assert_eq!(r.with_id("spf.too_many_void_lookups")[0].details.len(), 3);
}

#[tokio::test]
async fn sending_address_mistakes() {
    let r = diagnose(
        "good.test",
        &["192.0.2.20", "192.0.2.30", "203.0.113.5"],
        &["s1"],
    )
    .await;
    assert_eq!(r.exit_code, 1);
    let by_ip = |ip: &str, id: &str| {
        r.findings
            .iter()
            .find(|f| f.subject == ip && f.id == id)
            .unwrap_or_else(|| panic!("{ip}: no {id}"))
            .clone()
    };
    let f = by_ip("192.0.2.20", "ip.ptr_missing");
    assert_eq!(f.severity, Severity::Error);
    assert!(f.smtp_reply.as_deref().unwrap().contains("5.7.25"));
    assert!(f.fix.as_deref().unwrap().contains("PTR"));
    let f = by_ip("192.0.2.30", "ip.ptr_not_confirmed");
    assert_eq!(f.severity, Severity::Error);
    assert!(f.summary.contains("bad.good.test"));
    // Outside every zone: SERVFAIL, reported as DNS trouble, not as no PTR.
    let f = by_ip("203.0.113.5", "ip.ptr_temporary");
    assert_eq!(f.severity, Severity::Error);
    assert!(f.smtp_reply.as_deref().unwrap().starts_with("451"));
    let f = by_ip("203.0.113.5", "ip.spf_fail");
    assert!(f.smtp_reply.as_deref().unwrap().contains("5.7.23"));
    assert!(f.summary.contains("(all)"), "{}", f.summary);
    assert!(f.fix.as_deref().unwrap().contains("ip4:203.0.113.5"));
    // Softfail, neutral (none), temperror and permerror for an address.
    let r2 = diagnose("soft.test", &["192.0.2.200", "192.0.2.10"], &[]).await;
    let f = r2
        .findings
        .iter()
        .find(|f| f.subject == "192.0.2.200" && f.id == "ip.spf_softfail")
        .unwrap();
    assert_eq!(f.severity, Severity::Warning);
    let r2 = diagnose("nospf.test", &["192.0.2.10"], &[]).await;
    assert_eq!(
        r2.with_id("ip.spf_not_authorised")[0].severity,
        Severity::Warning
    );
    let r2 = diagnose("spftemp.test", &["192.0.2.10"], &[]).await;
    assert_eq!(r2.with_id("ip.spf_temperror")[0].severity, Severity::Error);
    let r2 = diagnose("twospf.test", &["192.0.2.10"], &[]).await;
    let f = &r2.with_id("ip.spf_permerror")[0];
    assert_eq!(f.severity, Severity::Error);
    assert!(f.smtp_reply.as_deref().unwrap().contains("5.7.24"));
    // The addresses SPF authorises still pass.
    assert_eq!(by_ip("192.0.2.20", "ip.spf_pass").severity, Severity::Ok);
}

#[tokio::test]
async fn dkim_mistakes() {
    let cases: &[(&str, &str, Severity, &str)] = &[
        ("weak", "dkim.weak_key", Severity::Error, "2048-bit"),
        ("short", "dkim.short_key", Severity::Warning, "2048-bit"),
        ("revoked", "dkim.revoked", Severity::Error, "selector"),
        ("testing", "dkim.testing", Severity::Warning, "t=y"),
        ("sha1", "dkim.hash_restricted", Severity::Error, "sha256"),
        ("typo", "dkim.bad_key", Severity::Error, "p="),
        ("truncated", "dkim.bad_key", Severity::Error, "public key"),
        ("unknown", "dkim.unknown_tag", Severity::Warning, "correct"),
        ("badver", "dkim.bad_version", Severity::Error, "v=DKIM1"),
        ("dsa", "dkim.unknown_key_type", Severity::Error, "k=rsa"),
        ("syntax", "dkim.syntax", Severity::Error, "v=DKIM1"),
        ("service", "dkim.not_for_email", Severity::Error, "s=email"),
        ("nop", "dkim.no_key", Severity::Error, "p="),
        ("edshort", "dkim.bad_key", Severity::Error, "32-byte"),
        (
            "two",
            "dkim.multiple_records",
            Severity::Error,
            "one key record",
        ),
        ("dup", "dkim.duplicate_tag", Severity::Error, "k="),
        ("nokey", "dkim.key_missing", Severity::Error, "selector"),
        ("longkey", "dns.string_too_long", Severity::Error, "Split"),
    ];
    for (sel, id, sev, fix) in cases {
        let r = diagnose("dkim.test", &[], &[sel]).await;
        let f = expect(&r, id, *sev, fix);
        assert_eq!(f.subject, format!("{sel}._domainkey.dkim.test"));
        assert!(
            r.with_id("dkim.ok").is_empty(),
            "{sel}: dkim.ok beside {id}"
        );
    }
    let r = diagnose("dkim.test", &[], &["weak"]).await;
    assert!(r.with_id("dkim.weak_key")[0].summary.contains("512"));
    let r = diagnose("dkim.test", &[], &["short"]).await;
    assert!(r.with_id("dkim.short_key")[0].summary.contains("1024"));
    // No selector given: the common ones are tried; none found is a warning.
    let r = diagnose("dkim.test", &[], &[]).await;
    expect(
        &r,
        "dkim.no_common_selector",
        Severity::Warning,
        "--selector",
    );
    // A wildcard TXT answers every guessed selector: not a broken key.
    let r = diagnose("wild.test", &[], &[]).await;
    assert!(
        r.findings
            .iter()
            .all(|f| f.area != "dkim" || f.id == "dkim.no_common_selector"),
        "{:#?}",
        r.findings
    );
    assert_eq!(r.exit_code, 0);
    // A key delegated to a provider by CNAME is fine.
    let r = diagnose("cnamekey.test", &[], &["s1"]).await;
    assert_eq!(
        r.with_id("dkim.ok")[0].subject,
        "s1._domainkey.cnamekey.test"
    );
    let r = diagnose("common.test", &[], &[]).await;
    assert_eq!(
        r.with_id("dkim.ok")[0].subject,
        "default._domainkey.common.test"
    );
    assert!(r.with_id("dkim.no_common_selector").is_empty());
}

#[tokio::test]
async fn dmarc_mistakes() {
    let cases: &[(&str, &str, Severity, &str)] = &[
        (
            "dmarcbad.test",
            "dmarc.removed_tag",
            Severity::Warning,
            "t=y",
        ),
        (
            "dmarcbad.test",
            "dmarc.unknown_tag",
            Severity::Warning,
            "correct",
        ),
        (
            "dmarcbad.test",
            "dmarc.bad_value",
            Severity::Warning,
            "r, s",
        ),
        (
            "dmarcbad.test",
            "dmarc.destination_unauthorized",
            Severity::Warning,
            "dmarcbad.test._report._dmarc.elsewhere.test",
        ),
        (
            "nodmarc.test",
            "dmarc.missing",
            Severity::Warning,
            "_dmarc.nodmarc.test",
        ),
        (
            "twodmarc.test",
            "dmarc.multiple_records",
            Severity::Error,
            "exactly one",
        ),
        (
            "nopolicy.test",
            "dmarc.no_policy",
            Severity::Error,
            "p=reject",
        ),
        (
            "ruaonly.test",
            "dmarc.bad_policy",
            Severity::Warning,
            "p=reject",
        ),
        (
            "apexdmarc.test",
            "dmarc.at_apex",
            Severity::Error,
            "_dmarc.apexdmarc.test",
        ),
        ("testing.test", "dmarc.testing", Severity::Warning, "t=y"),
        (
            "none.test",
            "dmarc.policy_none",
            Severity::Warning,
            "p=quarantine",
        ),
        (
            "cannotpass.test",
            "dmarc.cannot_pass",
            Severity::Warning,
            "--selector",
        ),
        (
            "dmarcver.test",
            "dmarc.bad_version",
            Severity::Error,
            "v=DMARC1",
        ),
        ("psd.test", "dmarc.psd_declared", Severity::Warning, "psd=y"),
        (
            "uris.test",
            "dmarc.size_limit",
            Severity::Warning,
            "mailto:dmarc@uris.test",
        ),
        (
            "uris.test",
            "dmarc.non_mailto",
            Severity::Warning,
            "mailto:",
        ),
        ("uris.test", "dmarc.bad_uri", Severity::Warning, "mailto:"),
        (
            "dmarctags.test",
            "dmarc.duplicate_tag",
            Severity::Error,
            "Keep one p=",
        ),
        (
            "dmarctags.test",
            "dmarc.bad_tag",
            Severity::Warning,
            "tag=value",
        ),
    ];
    for (domain, id, sev, fix) in cases {
        let r = diagnose(domain, &[], &[]).await;
        expect(&r, id, *sev, fix);
    }
    // With the selectors given and none of them a key: an error.
    let r = diagnose("cannotpass.test", &[], &["s1"]).await;
    expect(&r, "dmarc.cannot_pass", Severity::Error, "p=none");
    // A revoked key at a guessed selector verifies nothing either.
    let r = diagnose("probedrevoked.test", &[], &[]).await;
    expect(&r, "dkim.revoked", Severity::Warning, "selector");
    expect(&r, "dmarc.cannot_pass", Severity::Warning, "--selector");
    // A parked domain (null MX, p=reject, nothing passes) is meant that way.
    let r = diagnose("parked.test", &[], &[]).await;
    assert!(r.with_id("dmarc.cannot_pass").is_empty());
    assert_eq!(r.exit_code, 0);
    // The three removed tags, each named.
    let r = diagnose("dmarcbad.test", &[], &[]).await;
    let removed: Vec<&str> = r
        .with_id("dmarc.removed_tag")
        .iter()
        .map(|f| f.summary.split('=').next().unwrap())
        .collect();
    assert_eq!(removed, ["pct", "rf", "ri"]);
    // A subdomain without a record: the tree walk's record applies, with sp=.
    let r = diagnose("sub.walk.test", &[], &[]).await;
    let f = &r.with_id("dmarc.found")[0];
    assert!(f.summary.contains("_dmarc.walk.test"), "{}", f.summary);
    assert!(f.summary.contains("policy quarantine"), "{}", f.summary);
    assert!(
        f.summary.contains("Organizational Domain walk.test"),
        "{}",
        f.summary
    );
    // p=reject: the ok finding says what failing mail gets.
    let r = diagnose("good.test", &[], &[]).await;
    assert!(r.with_id("dmarc.found")[0]
        .smtp_reply
        .as_deref()
        .unwrap()
        .contains("550 5.7.1"));
}

#[tokio::test]
async fn mx_mistakes() {
    let cases: &[(&str, &str, Severity, &str)] = &[
        ("nullmx.test", "mx.null_mx", Severity::Warning, "real MX"),
        (
            "mixedmx.test",
            "mx.null_mx_mixed",
            Severity::Error,
            "Remove",
        ),
        (
            "cnamemx.test",
            "mx.cname_target",
            Severity::Warning,
            "mx.good.test",
        ),
        (
            "deadmx.test",
            "mx.target_unresolvable",
            Severity::Warning,
            "nohost.deadmx.test",
        ),
        (
            "deadmx.test",
            "mx.none_reachable",
            Severity::Error,
            "A or AAAA",
        ),
        ("nomx.test", "mx.implicit", Severity::Warning, "MX record"),
        ("nothing.test", "mx.missing", Severity::Error, "MX record"),
        ("ipmx.test", "mx.address_literal", Severity::Error, "name"),
    ];
    for (domain, id, sev, fix) in cases {
        let r = diagnose(domain, &[], &[]).await;
        expect(&r, id, *sev, fix);
    }
    // An alias MX still delivers: the alias is a warning, the target ok.
    let r = diagnose("cnamemx.test", &[], &[]).await;
    assert_eq!(r.with_id("mx.ok").len(), 1);
}

#[tokio::test]
async fn several_mistakes_in_one_domain() {
    let r = diagnose("messy.test", &[], &["short"]).await;
    assert_eq!((r.status, r.exit_code), ("errors", 1));
    expect(&r, "mx.none_reachable", Severity::Error, "A or AAAA");
    expect(&r, "spf.multiple_records", Severity::Error, "Merge");
    expect(&r, "dkim.short_key", Severity::Warning, "2048-bit");
    expect(&r, "dmarc.removed_tag", Severity::Warning, "t=y");
    expect(&r, "dmarc.policy_none", Severity::Warning, "p=quarantine");
    expect(
        &r,
        "dmarc.destination_unauthorized",
        Severity::Warning,
        "elsewhere.test",
    );
    assert_eq!(r.counts.error, 2, "{:#?}", r.findings);
}

#[tokio::test]
async fn dns_failures_are_never_a_clean_report() {
    // Nothing at the apex answers: the check could not run.
    let r = diagnose("apextemp.test", &[], &[]).await;
    assert_eq!((r.status, r.exit_code), ("incomplete", 2));
    expect(&r, "dns.unreachable", Severity::Error, "name servers");
    // Outside every zone (SERVFAIL for all): the same.
    let r = diagnose("outside.example", &[], &[]).await;
    assert_eq!(r.exit_code, 2);
    // One name failing: an error finding, never "no record".
    let r = diagnose("dmarctemp.test", &[], &[]).await;
    assert_eq!(r.exit_code, 1);
    let temp = r.with_id("dns.temporary_failure");
    assert!(temp
        .iter()
        .any(|f| f.area == "dmarc" && f.subject == "_dmarc.dmarctemp.test"));
    assert!(temp
        .iter()
        .any(|f| f.area == "dkim" && f.summary.contains("timed out")));
    assert!(r.with_id("dmarc.missing").is_empty());
    let r = diagnose("spftemp.test", &[], &[]).await;
    assert!(r
        .with_id("dns.temporary_failure")
        .iter()
        .any(|f| f.area == "spf"));
    assert!(r.with_id("spf.missing").is_empty());
    // A domain that does not exist is an error, not a clean report.
    let r = diagnose("nonexistent.test", &[], &[]).await;
    expect(&r, "dns.nxdomain", Severity::Error, "typo");
}

/// Every fixture domain doctor calls SPF-ok evaluates without permerror in
/// the milter's own SPF code, for unlisted IPv4 and IPv6 senders, and every
/// domain it finds broken past the limits gives permerror there (IPv4).
#[tokio::test]
async fn spf_verdicts_agree_with_the_milter() {
    use authmilter::checks::{evidence::AuthResult, spf};
    let text = std::fs::read_to_string(fixture("test.zone")).unwrap();
    let mut domains: Vec<String> = text
        .lines()
        .filter(|l| l.contains(" TXT \"v=spf1"))
        .filter_map(|l| l.split_whitespace().next())
        .filter(|n| !n.starts_with('*') && !n.starts_with('_'))
        .map(|n| format!("{n}.test"))
        .collect();
    domains.dedup();
    assert!(domains.len() > 30, "{domains:?}");
    let dns = zone_dns();
    let cfg = spf::spf_config(Duration::from_secs(5));
    let permanent = [
        "spf.too_many_lookups",
        "spf.too_many_void_lookups",
        "spf.multiple_records",
        "spf.syntax",
        "spf.include_missing",
        "spf.include_syntax",
        "spf.redirect_missing",
        "spf.split_without_space",
        "spf.loop",
        "spf.mx_too_many",
        "spf.duplicate_modifier",
    ];
    for d in &domains {
        let r = diagnose(d, &[], &[]).await;
        let broken = permanent.iter().any(|id| !r.with_id(id).is_empty());
        let mut results = Vec::new();
        for ip in ["203.0.113.77", "2001:db8:ffff::77"] {
            let (result, why) = spf::authorizes(&dns, &cfg, ip.parse().unwrap(), d).await;
            if !r.with_id("spf.ok").is_empty() {
                assert_ne!(
                    result,
                    AuthResult::PermError,
                    "{d} {ip}: doctor says ok, the milter: permerror ({why:?})"
                );
            }
            results.push(result);
        }
        if broken {
            assert!(
                results.contains(&AuthResult::PermError),
                "{d}: doctor finds a permanent error, the milter: {results:?}"
            );
        }
    }
}

/// Every finding id the code can emit is documented in docs/DOCTOR.md,
/// and every id the document lists exists.
#[test]
fn finding_ids_are_documented() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let doc = std::fs::read_to_string(root.join("docs/DOCTOR.md")).unwrap();
    let mut ids = Vec::new();
    for entry in std::fs::read_dir(root.join("src/doctor")).unwrap() {
        let text = std::fs::read_to_string(entry.unwrap().path()).unwrap();
        for (i, _) in text.match_indices('"') {
            let rest = &text[i + 1..];
            let piece = &rest[..rest.find('"').unwrap_or(0)];
            let area = piece.split('.').next().unwrap_or("");
            let ok = ["mx", "ip", "spf", "dkim", "dmarc", "dns"].contains(&area)
                && piece.split('.').count() == 2
                && piece.split('.').nth(1).is_some_and(|n| {
                    !n.is_empty() && n.chars().all(|c| c.is_ascii_lowercase() || c == '_')
                });
            if ok && !ids.contains(&piece.to_string()) {
                ids.push(piece.to_string());
            }
        }
    }
    assert!(ids.len() > 60, "{ids:?}");
    for id in &ids {
        assert!(
            doc.contains(&format!("`{id}`")),
            "docs/DOCTOR.md does not list {id}"
        );
    }
    for line in doc.lines().filter(|l| l.starts_with("| `")) {
        let id = line.split('`').nth(1).unwrap();
        assert!(
            ids.iter().any(|i| i == id),
            "docs/DOCTOR.md lists {id}, which the code never emits"
        );
    }
}

fn doctor_bin<S: AsRef<std::ffi::OsStr>>(args: &[S]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_authmilter"))
        .arg("doctor")
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn zone_args() -> Vec<String> {
    vec![
        "--dns-zone".into(),
        fixture("test.zone").display().to_string(),
        "--dns-zone".into(),
        fixture("reverse.zone").display().to_string(),
    ]
}

#[test]
fn the_command_exit_codes_json_and_text() {
    let z = zone_args();
    let z: Vec<&str> = z.iter().map(String::as_str).collect();
    let with = |extra: &[&'static str]| -> Vec<String> {
        z.iter()
            .map(|s| s.to_string())
            .chain(extra.iter().map(|s| s.to_string()))
            .collect()
    };
    let (code, out, err) = doctor_bin(&with(&[
        "good.test",
        "--ip",
        "192.0.2.10",
        "--selector",
        "s1",
    ]));
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("Clean: 0 error(s), 0 warning(s)"), "{out}");
    let (code, out, _) = doctor_bin(&with(&["messy.test", "--selector", "short"]));
    assert_eq!(code, 1);
    assert!(
        out.contains("error    ") && out.contains("fix:") && out.contains("reply:"),
        "{out}"
    );
    let (code, out, _) = doctor_bin(&with(&["apextemp.test"]));
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("could not run"), "{out}");
    // JSON: the documented schema.
    let (code, out, _) = doctor_bin(&with(&["messy.test", "--json"]));
    assert_eq!(code, 1);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["schema"], 1);
    assert_eq!(v["domain"], "messy.test");
    assert_eq!(v["status"], "errors");
    assert_eq!(v["exit_code"], 1);
    assert!(v["counts"]["error"].as_u64().unwrap() >= 2);
    let f = v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["id"] == "spf.multiple_records")
        .unwrap();
    for key in [
        "area",
        "id",
        "severity",
        "subject",
        "summary",
        "why",
        "smtp_reply",
        "fix",
        "details",
    ] {
        assert!(!f[key].is_null(), "{key} missing in {f}");
    }
    assert_eq!(f["severity"], "error");
    // Bad usage: exit 2 with the reason.
    let (code, _, err) = doctor_bin(&["exa mple.com"]);
    assert_eq!(code, 2);
    assert!(err.contains("not a domain name"), "{err}");
    let (code, _, err) = doctor_bin(&with(&["good.test", "--selector", "a b"]));
    assert_eq!(code, 2);
    assert!(err.contains("--selector"), "{err}");
    let (code, _, err) = doctor_bin(&["good.test", "--dns-zone", "/nonexistent.zone"]);
    assert_eq!(code, 2);
    assert!(err.contains("/nonexistent.zone"), "{err}");
}

const DELEGATION_ZONE: &str = r#"
$ORIGIN deleg.test.
$TTL 300
@    IN SOA ns1.deleg.test. hostmaster.deleg.test. 1 3600 600 86400 300
@    NS ns1.deleg.test.
@    NS ns2.deleg.test.
@    NS ns3.deleg.test.
@    NS ns4.deleg.test.
ns1  A 127.0.0.1
ns2  A 127.0.0.2
ns3  A 127.0.0.3
@    MX 10 mx.good.test.
@    TXT "v=spf1 -all"
_dmarc TXT "v=DMARC1; p=reject"
"#;

const SINGLE_ZONE: &str = r#"
$ORIGIN single.test.
$TTL 300
@    IN SOA ns1.deleg.test. hostmaster.deleg.test. 1 3600 600 86400 300
@    NS ns1.deleg.test.
@    MX 10 mx.good.test.
@    TXT "v=spf1 ip4:192.0.2.0/24 -all"
_dmarc TXT "v=DMARC1; p=reject"
"#;

/// Through the network path: a resolver configured at a test DNS server,
/// the zone's name servers asked directly. ns1 serves the zone, ns2 does
/// not answer, ns3 answers SERVFAIL (lame), ns4 has no address.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn name_servers_are_asked_directly() {
    let mut zones = Zones::with_origins();
    zones.add_zone_text(
        &std::fs::read_to_string(fixture("test.zone")).unwrap(),
        None,
    );
    zones.add_zone_text(
        &std::fs::read_to_string(fixture("reverse.zone")).unwrap(),
        None,
    );
    zones.add_zone_text(DELEGATION_ZONE, None);
    zones.add_zone_text(SINGLE_ZONE, None);
    let dns = TestDns::start(zones).await;
    let port = dns.addr.port();
    let lame = TestDns::start_at(
        Zones::with_origins(),
        Some(format!("127.0.0.3:{port}").parse().unwrap()),
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("authmilter.toml");
    std::fs::write(&cfg, common::config_text(dns.addr, "")).unwrap();
    let run = |args: Vec<String>| {
        tokio::task::spawn_blocking(move || {
            let out = Command::new(env!("CARGO_BIN_EXE_authmilter"))
                .args(args)
                .output()
                .unwrap();
            (
                out.status.code().unwrap_or(-1),
                String::from_utf8_lossy(&out.stdout).into_owned(),
            )
        })
    };
    let args = |domain: &str, extra: &[&str]| {
        let mut a: Vec<String> = vec![
            "-c".into(),
            cfg.display().to_string(),
            "doctor".into(),
            domain.into(),
            "--json".into(),
            "--ns-port".into(),
            port.to_string(),
        ];
        a.extend(extra.iter().map(|s| s.to_string()));
        a
    };
    let findings = |out: &str| -> Vec<(String, String, String)> {
        let v: serde_json::Value =
            serde_json::from_str(out).unwrap_or_else(|e| panic!("{e}: {out}"));
        v["findings"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| {
                (
                    f["id"].as_str().unwrap().to_string(),
                    f["severity"].as_str().unwrap().to_string(),
                    f["subject"].as_str().unwrap().to_string(),
                )
            })
            .collect()
    };
    let (code, out) = run(args("deleg.test", &[])).await.unwrap();
    assert_eq!(code, 1, "{out}");
    let f = findings(&out);
    let has = |id: &str, subject: &str| {
        f.iter()
            .any(|(i, s, sub)| i == id && s == "error" && sub == subject)
    };
    assert!(has("dns.name_server_timeout", "ns2.deleg.test"), "{f:?}");
    assert!(has("dns.lame_delegation", "ns3.deleg.test"), "{f:?}");
    assert!(
        has("dns.name_server_unresolvable", "ns4.deleg.test"),
        "{f:?}"
    );
    assert!(
        !f.iter().any(|(_, _, sub)| sub == "ns1.deleg.test"),
        "{f:?}"
    );
    assert!(!f.iter().any(|(i, _, _)| i == "dns.delegation_ok"), "{f:?}");
    // One good name server: a warning, and the delegation is otherwise fine.
    let (code, out) = run(args(
        "single.test",
        &["--ip", "192.0.2.10", "--selector", "s1"],
    ))
    .await
    .unwrap();
    let f = findings(&out);
    assert!(
        f.iter()
            .any(|(i, s, _)| i == "dns.single_name_server" && s == "warning"),
        "{f:?}"
    );
    assert!(
        f.iter()
            .any(|(i, s, _)| i == "dns.delegation_ok" && s == "ok"),
        "{f:?}"
    );
    assert!(f.iter().any(|(i, _, _)| i == "ip.spf_pass"), "{f:?}");
    // The resolver itself failing: never a clean report.
    dns.set_fault(Fault::ServFail);
    let (code2, out) = run(args("good.test", &[])).await.unwrap();
    assert_eq!(code2, 2, "{out}");
    dns.set_fault(Fault::Drop);
    let (code3, out) = run(args("good.test", &[])).await.unwrap();
    assert_eq!(code3, 2, "{out}");
    assert_eq!(code, 1, "single.test: the missing DKIM key s1 is an error");
    drop(lame);
}
