//! DNS faults: every failure mode gives the right temperror/permerror result
//! and the configured action within the message deadline; nothing is a
//! silent pass. Served by the tests' own fault-injecting DNS server.

mod common;

use common::{
    dns_server::{fqdn, TestDns, Zones},
    *,
};
use hickory_proto::{
    op::ResponseCode,
    rr::{rdata::TXT, RData, Record},
};
use std::time::{Duration, Instant};

fn zones(extra: &[&str]) -> Zones {
    let mut z = Zones::with_origins();
    z.add_zone_text(BANK_ZONE, None);
    z.add_zone_text(REV_ZONE, None);
    z.add_zone_text(TLD_ZONE, None);
    for e in extra {
        z.add_zone_text(e, None);
    }
    z
}

fn msg(from: &str) -> Vec<u8> {
    format!("From: <{from}>\r\nTo: bob@recipient.test\r\nSubject: t\r\n\r\nHello\r\n").into_bytes()
}

fn good_env() -> Envelope {
    Envelope::new("192.0.2.10", "mail.bank.test", "alerts@bank.test")
}

fn result_of(out: &Outcome, method: &str) -> String {
    let ar = out.auth_results().unwrap_or_default();
    ar_results(&ar)
        .into_iter()
        .find(|(m, _, _)| m == method)
        .map(|(_, r, _)| r)
        .unwrap_or_else(|| format!("absent in {ar:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn servfail_and_refused_on_the_policy_are_temperror() {
    for code in [ResponseCode::ServFail, ResponseCode::Refused] {
        let mut z = zones(&[]);
        z.add_error(&fqdn("_dmarc.bank.test"), code);
        let dns = TestDns::start(z).await;
        let milter = TestMilter::with_policy(dns.addr, "").await;
        let out = send(milter.addr, &good_env(), &msg("alerts@bank.test")).await;
        assert_eq!(out.verdict(), "tempfail", "{code:?}");
        assert!(
            out.reply().unwrap().starts_with("451 4.7.1"),
            "{:?}",
            out.reply()
        );
        // Configured to accept instead: labelled temperror, never pass.
        let milter2 = TestMilter::with_policy(dns.addr, "dmarc_temperror = \"accept\"").await;
        let out = send(milter2.addr, &good_env(), &msg("alerts@bank.test")).await;
        assert_eq!(out.verdict(), "accept");
        assert_eq!(result_of(&out, "dmarc"), "temperror");
        milter.stop().await;
        milter2.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spf_include_timeout_is_temperror() {
    let extra = r#"
$ORIGIN slow.test.
$TTL 0
@       IN SOA ns.slow.test. hostmaster.slow.test. 1 3600 600 86400 0
@       IN TXT "v=spf1 include:spf.slow.test -all"
_dmarc  IN TXT "v=DMARC1; p=none"
"#;
    let mut z = zones(&[extra]);
    z.add_timeout(&fqdn("spf.slow.test"));
    let dns = TestDns::start(z).await;
    let milter = TestMilter::with_policy(dns.addr, "dmarc_temperror = \"accept\"").await;
    let env = Envelope::new("192.0.2.10", "mail.bank.test", "x@slow.test");
    let out = send(milter.addr, &env, &msg("x@slow.test")).await;
    assert_eq!(
        result_of(&out, "spf"),
        "temperror",
        "{:?} {:?}",
        out.status,
        out.actions
    );
    // SPF aligned with the From domain had a temporary error: DMARC cannot fail.
    assert_eq!(result_of(&out, "dmarc"), "temperror");
    milter.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn truncated_udp_answers_fall_back_to_tcp() {
    // An SPF record far larger than a UDP answer: the server sets TC, the
    // resolver retries over TCP, and SPF still passes.
    let mut z = zones(&[]);
    let mut parts = vec!["v=spf1".to_string()];
    for i in 0..150 {
        parts.push(format!("ip4:198.18.{}.{}", i / 250, i % 250));
    }
    parts.push("ip4:192.0.2.10 -all".into());
    let record = parts.join(" ");
    assert!(record.len() > 2000);
    let chunks: Vec<String> = record
        .as_bytes()
        .chunks(250)
        .map(|c| String::from_utf8(c.to_vec()).unwrap())
        .collect();
    let extra = r#"
$ORIGIN big.test.
$TTL 0
@       IN SOA ns.big.test. hostmaster.big.test. 1 3600 600 86400 0
_dmarc  IN TXT "v=DMARC1; p=reject"
"#;
    z.add_zone_text(extra, None);
    z.add(Record::from_rdata(
        fqdn("big.test"),
        0,
        RData::TXT(TXT::new(chunks)),
    ));
    let dns = TestDns::start(z).await;
    let milter = TestMilter::with_policy(dns.addr, "").await;
    let env = Envelope::new("192.0.2.10", "mail.bank.test", "x@big.test");
    let out = send(milter.addr, &env, &msg("x@big.test")).await;
    assert_eq!(result_of(&out, "spf"), "pass", "{:?}", out.auth_results());
    assert_eq!(out.verdict(), "accept");
    milter.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn huge_txt_and_cname_loops_are_handled() {
    let mut z = zones(&[]);
    // 60 KiB of TXT at the DMARC name: answered over TCP, not a DMARC record.
    let junk: Vec<String> = (0..240).map(|i| format!("{i:0>250}")).collect();
    let extra = r#"
$ORIGIN huge.test.
$TTL 0
@       IN SOA ns.huge.test. hostmaster.huge.test. 1 3600 600 86400 0
@       IN TXT "v=spf1 ip4:192.0.2.10 -all"
"#;
    let extra2 = r#"
$ORIGIN loop.test.
$TTL 0
@       IN SOA ns.loop.test. hostmaster.loop.test. 1 3600 600 86400 0
@       IN TXT "v=spf1 ip4:192.0.2.10 -all"
_dmarc  IN CNAME a.loop.test.
a       IN CNAME b.loop.test.
b       IN CNAME a.loop.test.
"#;
    z.add_zone_text(extra, None);
    z.add_zone_text(extra2, None);
    z.add(Record::from_rdata(
        fqdn("_dmarc.huge.test"),
        0,
        RData::TXT(TXT::new(junk)),
    ));
    let dns = TestDns::start(z).await;
    let milter = TestMilter::with_policy(dns.addr, "dmarc_temperror = \"accept\"").await;
    let env = Envelope::new("192.0.2.10", "mail.bank.test", "x@huge.test");
    let out = send(milter.addr, &env, &msg("x@huge.test")).await;
    assert_eq!(result_of(&out, "dmarc"), "none", "{:?}", out.auth_results());
    let env = Envelope::new("192.0.2.10", "mail.bank.test", "x@loop.test");
    let out = send(milter.addr, &env, &msg("x@loop.test")).await;
    let d = result_of(&out, "dmarc");
    assert!(d == "temperror" || d == "none", "{d}");
    assert_eq!(out.verdict(), "accept");
    milter.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resolver_down_is_temperror_not_pass() {
    // Nothing listens on this port.
    let free = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = free.local_addr().unwrap();
    drop(free);
    let milter = TestMilter::with_policy(addr, "").await;
    let out = send(milter.addr, &good_env(), &msg("alerts@bank.test")).await;
    assert_eq!(out.verdict(), "tempfail");
    milter.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn message_deadline_bounds_the_wait() {
    let mut z = zones(&[]);
    z.timeout_all(&fqdn("_dmarc.bank.test"));
    let dns = TestDns::start(z).await;
    // Slow DNS (each query may take 3 s), but the message may only wait 1 s.
    let text = config_text(dns.addr, "")
        .replace("timeout = 1.0", "timeout = 3.0")
        .replace("[policy]", "[limits]\nmessage_deadline = 1.0\n\n[policy]");
    let config = authmilter::config::Config::parse(&text, "test").unwrap();
    let milter = TestMilter::start(config).await;
    let t = Instant::now();
    let out = send(milter.addr, &good_env(), &msg("alerts@bank.test")).await;
    let took = t.elapsed();
    assert_eq!(out.verdict(), "tempfail");
    assert!(took < Duration::from_millis(2500), "took {took:?}");
    milter.stop().await;
}

const SUBS_ZONE: &str = r#"
$ORIGIN subs.test.
$TTL 0
@       IN SOA ns.subs.test. hostmaster.subs.test. 1 3600 600 86400 0
_dmarc  IN TXT "v=DMARC1; p=none; sp=none; np=reject"
"#;

/// The message tempfails with the DMARC temperror reply; configured to
/// accept instead, its header reads dmarc=temperror (and the other results).
async fn assert_temperror(dns: &TestDns, env: &Envelope, raw: &[u8], also: &[(&str, &str)]) {
    let milter = TestMilter::with_policy(dns.addr, "").await;
    let out = send(milter.addr, env, raw).await;
    assert_eq!(out.verdict(), "tempfail");
    assert!(
        out.reply().unwrap().starts_with("451 4.7.1"),
        "{:?}",
        out.reply()
    );
    milter.stop().await;
    let milter = TestMilter::with_policy(dns.addr, "dmarc_temperror = \"accept\"").await;
    let out = send(milter.addr, env, raw).await;
    assert_eq!(result_of(&out, "dmarc"), "temperror");
    for (method, result) in also {
        assert_eq!(result_of(&out, method), *result, "{method}");
    }
    milter.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn np_existence_lookup_failure_is_temperror_not_the_weaker_policy() {
    // RFC 9989 §4.10.1: np applies only when the author domain does not
    // exist; when DNS cannot say, neither sp nor np may be assumed.
    let mut z = zones(&[SUBS_ZONE]);
    z.add_error(&fqdn("pay.subs.test"), ResponseCode::ServFail);
    let dns = TestDns::start(z).await;
    let spoof = Envelope::new("198.51.100.7", "evil.test", "x@evil.test");
    assert_temperror(&dns, &spoof, &msg("x@pay.subs.test"), &[]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dkim_key_lookup_failure_is_temperror_and_never_a_dmarc_fail() {
    // RFC 6376 §6.1.2: a key that cannot be fetched for now is TEMPFAIL; when
    // that signature is the only one that could align, DMARC is unknown
    // (RFC 9989 §5.3.6): tempfail, not a reject of legitimate mail.
    let key = common::dkim_sign::Key::ed25519(1);
    let mut z = zones(&[]);
    z.add_error(&fqdn("s1._domainkey.bank.test"), ResponseCode::ServFail);
    let dns = TestDns::start(z).await;
    let raw = common::dkim_sign::sign(
        &msg("alerts@bank.test"),
        &key,
        &common::dkim_sign::Spec::new("bank.test", "s1"),
    );
    let forwarder = Envelope::new("198.51.100.7", "fwd.test", "x@fwd.test");
    assert_temperror(&dns, &forwarder, &raw, &[("dkim", "temperror")]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failure_higher_up_the_tree_walk_is_temperror() {
    // RFC 9989 §4.10: no record at the author domain, SERVFAIL at its parent:
    // the policy is unknown, never "no record".
    let mut z = zones(&[]);
    z.add_error(&fqdn("_dmarc.bank.test"), ResponseCode::ServFail);
    let dns = TestDns::start(z).await;
    let spoof = Envelope::new("198.51.100.7", "evil.test", "x@evil.test");
    assert_temperror(&dns, &spoof, &msg("x@branch.bank.test"), &[]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ptr_servfail_is_iprev_temperror() {
    // RFC 8601 §2.7.3: a DNS error that prevents a final answer is temperror.
    let mut z = zones(&[]);
    z.add_error(&fqdn("10.2.0.192.in-addr.arpa"), ResponseCode::ServFail);
    let dns = TestDns::start(z).await;
    let milter = TestMilter::with_policy(dns.addr, "").await;
    let out = send(milter.addr, &good_env(), &msg("alerts@bank.test")).await;
    assert_eq!(result_of(&out, "iprev"), "temperror");
    assert_eq!(out.verdict(), "accept");
    milter.stop().await;
}
