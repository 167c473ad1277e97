//! `[[policy.recipients]]` through the milter protocol: the policy of the
//! envelope recipient's domain (and subdomains) decides; a message to
//! recipients under different policies gets the most lenient verdict, and
//! the reason and X-Authmilter-Would name the policy that decided.

mod common;

use common::{
    dns_server::{TestDns, Zones},
    send, Envelope, TestMilter, BANK_ZONE, REV_ZONE, TLD_ZONE,
};
use indymilter_test::EomAction;

async fn dns() -> TestDns {
    let mut z = Zones::with_origins();
    for t in [TLD_ZONE, BANK_ZONE, REV_ZONE] {
        z.add_zone_text(t, None);
    }
    TestDns::start(z).await
}

fn message(from: &str) -> Vec<u8> {
    format!("From: Someone <{from}>\r\nTo: x@y.test\r\nSubject: test\r\nMessage-ID: <x@y>\r\n\r\nHello.\r\n")
        .into_bytes()
}

/// The default enforces (bank.test's p=reject); onboarding.test only
/// monitors; strict.test rejects an iprev failure too; partner.test
/// quarantines instead of rejecting mail from bank.test.
const POLICY: &str = r#"
[[policy.recipients]]
name = "onboarding"
domains = ["onboarding.test"]
mode = "monitor"

[[policy.recipients]]
domains = ["strict.test", "strict2.test"]
[policy.recipients.rules.iprev]
permerror = { action = "reject" }

[[policy.recipients]]
name = "partner"
domains = ["partner.test"]
[[policy.recipients.overrides]]
domain = "bank.test"
never_reject = true
"#;

fn would(out: &common::Outcome) -> Option<String> {
    out.actions.actions.iter().find_map(|a| match a {
        EomAction::InsertHeader { name, value, .. }
            if name.to_str().unwrap() == "X-Authmilter-Would" =>
        {
            Some(value.to_str().unwrap().to_string())
        }
        _ => None,
    })
}

fn spoof(rcpts: &[&str]) -> Envelope {
    let mut env = Envelope::new("198.51.100.7", "evil.example", "x@evil.example");
    env.rcpt = rcpts.iter().map(|r| r.to_string()).collect();
    env
}

/// 192.0.2.99 has no PTR (NXDOMAIN): iprev=permerror.
fn no_ptr(rcpts: &[&str]) -> Envelope {
    let mut env = Envelope::new("192.0.2.99", "host.plain.test", "x@plain.test");
    env.rcpt = rcpts.iter().map(|r| r.to_string()).collect();
    env
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_recipient_gets_its_domains_policy() {
    let dns = dns().await;
    let milter = TestMilter::with_policy(dns.addr, POLICY).await;
    let raw = message("security@bank.test");
    // No block: the default policy rejects the spoof.
    let out = send(milter.addr, &spoof(&["bob@recipient.test"]), &raw).await;
    assert_eq!(out.verdict(), "reject");
    assert!(out.reply().unwrap().starts_with("550 5.7.1 "));
    // A monitor block: accepted, the would-be verdict names the policy.
    let out = send(milter.addr, &spoof(&["ann@onboarding.test"]), &raw).await;
    assert_eq!(out.verdict(), "accept");
    let w = would(&out).expect("X-Authmilter-Would");
    assert!(
        w.starts_with(" reject;") && w.contains("[policy onboarding]"),
        "{w}"
    );
    // Subdomains of a block's domain are under it too.
    let out = send(milter.addr, &spoof(&["ann@Sales.Onboarding.test"]), &raw).await;
    assert_eq!(out.verdict(), "accept");
    // The block's own overrides: quarantine instead of reject.
    let out = send(milter.addr, &spoof(&["pat@partner.test"]), &raw).await;
    assert_eq!(out.verdict(), "quarantine");
    // The block's own rules: mail from a client without PTR (iprev=permerror)
    // and a domain without DMARC is rejected by strict.test's iprev rule and
    // accepted by the default.
    let plain = message("x@plain.test");
    let out = send(milter.addr, &no_ptr(&["s@strict2.test"]), &plain).await;
    assert_eq!(out.verdict(), "reject", "{:?}", out.reply());
    assert!(out.reply().unwrap().contains("5.7.25"), "{:?}", out.reply());
    let out = send(milter.addr, &no_ptr(&["bob@recipient.test"]), &plain).await;
    assert_eq!(out.verdict(), "accept");
    milter.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_recipients_under_one_policy() {
    let dns = dns().await;
    let milter = TestMilter::with_policy(dns.addr, POLICY).await;
    let raw = message("security@bank.test");
    let out = send(
        milter.addr,
        &spoof(&["a@onboarding.test", "b@onboarding.test"]),
        &raw,
    )
    .await;
    assert_eq!(out.verdict(), "accept");
    assert!(would(&out).unwrap().contains("[policy onboarding]"));
    let out = send(
        milter.addr,
        &spoof(&["a@recipient.test", "b@other.test"]),
        &raw,
    )
    .await;
    assert_eq!(out.verdict(), "reject");
    milter.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mixed_recipients_get_the_most_lenient_verdict() {
    let dns = dns().await;
    let milter = TestMilter::with_policy(dns.addr, POLICY).await;
    let raw = message("security@bank.test");
    // default (reject) + partner (quarantine): quarantined, for both.
    let out = send(
        milter.addr,
        &spoof(&["bob@recipient.test", "pat@partner.test"]),
        &raw,
    )
    .await;
    assert_eq!(out.verdict(), "quarantine");
    // + onboarding (monitor): accepted, with what would have happened.
    let out = send(
        milter.addr,
        &spoof(&[
            "bob@recipient.test",
            "pat@partner.test",
            "ann@onboarding.test",
        ]),
        &raw,
    )
    .await;
    assert_eq!(out.verdict(), "accept");
    assert!(would(&out).unwrap().contains("[policy onboarding]"));
    // A monitor recipient far down a long list still counts.
    let mut many: Vec<String> = (0..150).map(|i| format!("u{i}@recipient.test")).collect();
    many.push("late@onboarding.test".into());
    let refs: Vec<&str> = many.iter().map(String::as_str).collect();
    let out = send(milter.addr, &spoof(&refs), &raw).await;
    assert_eq!(out.verdict(), "accept");
    // strict.test's extra rule and the default: the default's accept wins.
    let plain = message("x@plain.test");
    let out = send(
        milter.addr,
        &no_ptr(&["s@strict.test", "bob@recipient.test"]),
        &plain,
    )
    .await;
    assert_eq!(out.verdict(), "accept");
    milter.stop().await;
}
