//! Hostile DNS data and hostile messages: bounded work, correct results, no
//! panic, and nothing sender-controlled can break the header we write.

mod common;

use common::{
    dns_server::{TestDns, Zones},
    *,
};
use std::time::{Duration, Instant};

const ZONES: &[&str] = &[
    TLD_ZONE,
    BANK_ZONE,
    REV_ZONE,
    r#"
$ORIGIN spf.test.
$TTL 0
@         IN SOA ns.spf.test. hostmaster.spf.test. 1 3600 600 86400 0
loop1     IN TXT "v=spf1 include:loop2.spf.test -all"
loop2     IN TXT "v=spf1 include:loop1.spf.test -all"
many      IN TXT "v=spf1 a:a1.spf.test a:a2.spf.test a:a3.spf.test a:a4.spf.test a:a5.spf.test a:a6.spf.test a:a7.spf.test a:a8.spf.test a:a9.spf.test a:a10.spf.test a:a11.spf.test ip4:192.0.2.10 -all"
void      IN TXT "v=spf1 a:n1.spf.test a:n2.spf.test a:n3.spf.test ip4:192.0.2.10 -all"
redir1    IN TXT "v=spf1 redirect=redir2.spf.test"
redir2    IN TXT "v=spf1 redirect=redir1.spf.test"
a1 IN A 198.18.0.1
a2 IN A 198.18.0.1
a3 IN A 198.18.0.1
a4 IN A 198.18.0.1
a5 IN A 198.18.0.1
a6 IN A 198.18.0.1
a7 IN A 198.18.0.1
a8 IN A 198.18.0.1
a9 IN A 198.18.0.1
a10 IN A 198.18.0.1
a11 IN A 198.18.0.1
_dmarc.loop1 IN TXT "v=DMARC1; p=none"
"#,
    r#"
$ORIGIN garbage.test.
$TTL 0
@       IN SOA ns.garbage.test. hostmaster.garbage.test. 1 3600 600 86400 0
@       IN TXT "v=spf1 ip4:192.0.2.10 -all"
_dmarc  IN TXT "v=DMARC1; p=reject; pct=abc; rua=;;;;;; adkim=xyz; \000\255\254 ri=-5; fo=???"
"#,
];

async fn setup(policy: &str) -> (TestDns, TestMilter) {
    let mut z = Zones::with_origins();
    for t in ZONES {
        z.add_zone_text(t, None);
    }
    let dns = TestDns::start(z).await;
    let milter = TestMilter::with_policy(dns.addr, policy).await;
    (dns, milter)
}

fn results(out: &Outcome) -> Vec<(String, String, String)> {
    ar_results(&out.auth_results().unwrap_or_default())
}

fn result(out: &Outcome, method: &str) -> String {
    results(out)
        .into_iter()
        .find(|(m, _, _)| m == method)
        .map(|(_, r, _)| r)
        .unwrap_or_else(|| format!("absent: {:?} {:?}", out.status, out.auth_results()))
}

/// The header we insert is well-formed whatever the input.
fn assert_clean_header(out: &Outcome) {
    for a in &out.actions.actions {
        if let indymilter_test::EomAction::InsertHeader { value, .. } = a {
            let v = value.to_str().expect("header value is UTF-8");
            assert!(v.is_ascii(), "{v:?}");
            assert!(!v.contains('\r'), "{v:?}");
            for (i, line) in v.split('\n').enumerate() {
                assert!(
                    i == 0 || line.starts_with('\t'),
                    "continuation without WSP: {line:?}"
                );
                assert!(
                    line.chars().all(|c| !c.is_control() || c == '\t'),
                    "{line:?}"
                );
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_spf_records_are_permerror() {
    let (_dns, milter) = setup("dmarc_temperror = \"accept\"").await;
    for (sender, want) in [
        ("x@loop1.spf.test", "permerror"),
        ("x@many.spf.test", "permerror"),
        ("x@void.spf.test", "permerror"),
        ("x@redir1.spf.test", "permerror"),
    ] {
        let env = Envelope::new("192.0.2.10", "mail.bank.test", sender);
        let t = Instant::now();
        let out = send(milter.addr, &env, b"From: x@spf.test\r\n\r\nhi\r\n").await;
        assert_eq!(result(&out, "spf"), want, "{sender}");
        assert!(
            t.elapsed() < Duration::from_secs(5),
            "{sender} took {:?}",
            t.elapsed()
        );
    }
    milter.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_dmarc_record_keeps_its_valid_policy() {
    let (_dns, milter) = setup("").await;
    let env = Envelope::new("198.51.100.7", "evil.example", "x@evil.example");
    let out = send(milter.addr, &env, b"From: ceo@garbage.test\r\n\r\nhi\r\n").await;
    assert_eq!(out.verdict(), "reject", "{:?}", out.reply());
    milter.stop().await;
}

fn fake_signature(i: usize, extra: &str) -> String {
    format!(
        "DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed; d=bank.test; s=s{i}; h=from;{extra}\r\n bh=47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=; b=dGVzdA==\r\n"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_signatures_and_absurd_tags_are_bounded() {
    let (_dns, milter) = setup("").await;
    let env = Envelope::new("192.0.2.10", "mail.bank.test", "alerts@bank.test");
    let mut raw = String::new();
    for i in 0..100 {
        raw.push_str(&fake_signature(i, ""));
    }
    raw.push_str("From: alerts@bank.test\r\nSubject: sigs\r\n\r\nbody\r\n");
    let t = Instant::now();
    let out = send(milter.addr, &env, raw.as_bytes()).await;
    assert!(
        t.elapsed() < Duration::from_secs(10),
        "took {:?}",
        t.elapsed()
    );
    let dkim: Vec<String> = results(&out)
        .into_iter()
        .filter(|(m, _, _)| m == "dkim")
        .map(|(_, r, _)| r)
        .collect();
    assert_eq!(dkim.len(), 100);
    assert!(dkim[10..].iter().all(|r| r == "policy"), "{dkim:?}");
    assert!(dkim[..10].iter().all(|r| r != "pass"), "{dkim:?}");
    // SPF still passes and aligns: DMARC passes, the message is accepted.
    assert_eq!(out.verdict(), "accept");
    assert_clean_header(&out);

    let mut raw = String::new();
    for extra in [
        " x=99999999999999999999999999;",
        " l=99999999999999999999999999;",
        " t=-1;",
        " i=\"quoted\r\n\tX-Injected: yes\"@bank.test;",
        " q=dns/txt; z=garbage|||;",
    ] {
        raw.push_str(&fake_signature(1, extra));
    }
    raw.push_str("DKIM-Signature: v=1; a=rsa-sha256; d=; s=; b=!!!notbase64!!!; bh=@@@\r\n");
    raw.push_str(&format!(
        "DKIM-Signature: v=1; a=rsa-sha256; d={}.test; s=a/b; h=from; bh=x; b=y\r\n",
        "d".repeat(300)
    ));
    raw.push_str("From: alerts@bank.test\r\n\r\nbody\r\n");
    let out = send(milter.addr, &env, raw.as_bytes()).await;
    assert_eq!(out.verdict(), "accept");
    assert!(results(&out)
        .iter()
        .filter(|(m, _, _)| m == "dkim")
        .all(|(_, r, _)| r != "pass"));
    assert_clean_header(&out);
    milter.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_messages() {
    let (_dns, milter) = setup("").await;
    let env = Envelope::new("192.0.2.10", "mail.bank.test", "alerts@bank.test");
    let spoof = Envelope::new("198.51.100.7", "evil.example", "x@evil.example");

    // Missing From: no DMARC pass is possible; rejected by default
    // (`policy.invalid_from`).
    let out = send(milter.addr, &env, b"Subject: no from\r\n\r\nbody\r\n").await;
    assert_eq!(out.verdict(), "reject");
    assert!(
        out.reply().unwrap().starts_with("550 5.7.1"),
        "{:?}",
        out.reply()
    );

    // Non-UTF-8 bytes, in a display name and in a sender-controlled address.
    let raw =
        b"From: \"\xff\xfe\xc3\x28\" <security@bank.test>\r\nSubject: \xff\r\n\r\n\xff\xfe\r\n";
    let out = send(milter.addr, &spoof, raw).await;
    assert_eq!(out.verdict(), "reject");
    let mut weird = spoof.clone();
    weird.helo = "evil\u{7f}(x);dkim=pass".into();
    weird.mail_from = "\"a;b c\"@evil.example".into();
    let out = send(milter.addr, &weird, b"From: a@bank.test\r\n\r\nx\r\n").await;
    assert_eq!(out.verdict(), "reject");

    // 10,000 headers.
    let mut raw = String::from("From: alerts@bank.test\r\n");
    for i in 0..10_000 {
        raw.push_str(&format!("X-Filler-{i}: {i}\r\n"));
    }
    raw.push_str("\r\nbody\r\n");
    let out = send(milter.addr, &env, raw.as_bytes()).await;
    assert_eq!(out.verdict(), "accept");
    assert_clean_header(&out);

    // A header line of almost 1 MiB (the milter protocol's packet limit).
    let raw = format!(
        "From: alerts@bank.test\r\nX-Long: {}\r\n\r\nbody\r\n",
        "a".repeat(1024 * 1024 - 200)
    );
    let out = send(milter.addr, &env, raw.as_bytes()).await;
    assert_eq!(out.verdict(), "accept");

    // Bare LF line ends and NUL bytes in the body.
    let out = send(
        milter.addr,
        &env,
        b"From: alerts@bank.test\nSubject: lf\n\nline\nnul\0here\n",
    )
    .await;
    assert_eq!(out.verdict(), "accept");
    assert_clean_header(&out);

    // A 50 MiB body, with a signature: not buffered past the limit, reported as policy.
    let mut raw = fake_signature(1, "").into_bytes();
    raw.extend_from_slice(b"From: alerts@bank.test\r\n\r\n");
    let line = [b'x'; 998];
    while raw.len() < 50 * 1024 * 1024 {
        raw.extend_from_slice(&line);
        raw.extend_from_slice(b"\r\n");
    }
    let out = send(milter.addr, &env, &raw).await;
    assert_eq!(out.verdict(), "accept");
    assert_eq!(result(&out, "dkim"), "policy");
    assert!(out.auth_results().unwrap().contains("max_message_size"));
    milter.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_budget_bounds_buffering_across_connections() {
    use std::sync::atomic::Ordering::SeqCst;
    // Six connections, each with a 90 KiB message held before its end:
    // only three fit in a 300 KiB budget; the others tempfail, and the
    // buffered total never passes the budget.
    let mut z = Zones::with_origins();
    for t in [TLD_ZONE, BANK_ZONE, REV_ZONE] {
        z.add_zone_text(t, None);
    }
    let dns = TestDns::start(z).await;
    let text = format!(
        "{}\n[limits]\nmax_message_size = 262144\nmax_buffered_bytes = 307200\n",
        config_text(dns.addr, "")
    );
    let milter = TestMilter::start(authmilter::config::Config::parse(&text, "test").unwrap()).await;
    let stats = milter.shared.current().stats.clone();
    let env = Envelope::new("192.0.2.10", "mail.bank.test", "alerts@bank.test");
    let raw = b"From: alerts@bank.test\r\nSubject: big\r\n\r\nsmall\r\n".to_vec();
    let body: Vec<u8> = "z"
        .repeat(80)
        .bytes()
        .chain(*b"\r\n")
        .cycle()
        .take(90 * 1024)
        .collect();
    let mut conns = Vec::new();
    for _ in 0..6 {
        let mut c = open(milter.addr).await;
        c.connect("client", std::net::SocketAddr::new(env.client_ip, 25))
            .await
            .unwrap();
        c.helo(env.helo.as_str()).await.unwrap();
        c.mail([format!("<{}>", env.mail_from)]).await.unwrap();
        c.rcpt(["<bob@recipient.test>"]).await.unwrap();
        let (fields, _) = split_message(&raw);
        for (name, value) in fields {
            c.header(name.as_str(), std::ffi::CString::new(value).unwrap())
                .await
                .unwrap();
        }
        c.eoh().await.unwrap();
        for chunk in body.chunks(65535) {
            c.body(chunk.to_vec()).await.unwrap();
        }
        conns.push(c);
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(stats.buffered.load(SeqCst) <= 307200);
    let mut verdicts = Vec::new();
    for mut c in conns {
        let (actions, status) = c.eom().await.unwrap();
        let out = Outcome { status, actions };
        if out.verdict() == "tempfail" {
            assert!(
                out.reply().unwrap().starts_with("451 4.3.1"),
                "{:?}",
                out.reply()
            );
        }
        verdicts.push(out.verdict());
        c.close().await.unwrap();
    }
    assert_eq!(
        verdicts.iter().filter(|v| **v == "accept").count(),
        3,
        "{verdicts:?}"
    );
    assert_eq!(
        verdicts.iter().filter(|v| **v == "tempfail").count(),
        3,
        "{verdicts:?}"
    );
    assert!(stats.buffered_peak.load(SeqCst) <= 307200);
    assert_eq!(stats.over_budget.load(SeqCst), 3);
    // Everything is given back: the next message is buffered and verified.
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(stats.buffered.load(SeqCst), 0);
    let out = send(milter.addr, &env, &raw).await;
    assert_eq!(out.verdict(), "accept");
    milter.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_most_max_ptr_names_are_forward_confirmed() {
    // RFC 8601 §3: a verifier bounds the PTR names it follows. Twelve PTR
    // names, only the twelfth leads back: past the default 10 it is never
    // looked at (fail); with the limit at 12 it is (pass).
    let mut rev = String::from(
        "$ORIGIN 2.0.192.in-addr.arpa.\n$TTL 0\n@ IN SOA ns.test. h.test. 1 3600 600 86400 0\n",
    );
    let mut fwd =
        String::from("$ORIGIN ptr.test.\n$TTL 0\n@ IN SOA ns.test. h.test. 1 3600 600 86400 0\n");
    for i in 1..=12 {
        rev.push_str(&format!("50 IN PTR n{i:02}.ptr.test.\n"));
        let a = if i == 12 { "192.0.2.50" } else { "198.18.0.1" };
        fwd.push_str(&format!("n{i:02} IN A {a}\n"));
    }
    let mut z = Zones::with_origins();
    for t in [TLD_ZONE, BANK_ZONE, rev.as_str(), fwd.as_str()] {
        z.add_zone_text(t, None);
    }
    let dns = TestDns::start(z).await;
    let env = Envelope::new("192.0.2.50", "n12.ptr.test", "x@ptr.test");
    let raw = b"From: x@ptr.test\r\nSubject: s\r\n\r\nx\r\n";
    for (limits, want) in [("", "fail"), ("\n[limits]\nmax_ptr_names = 12\n", "pass")] {
        let text = format!("{}{limits}", config_text(dns.addr, ""));
        let milter =
            TestMilter::start(authmilter::config::Config::parse(&text, "test").unwrap()).await;
        let out = send(milter.addr, &env, raw).await;
        let ar = out.auth_results().unwrap();
        assert!(ar.contains(&format!("iprev={want}")), "{limits:?}: {ar}");
        milter.stop().await;
    }
}
