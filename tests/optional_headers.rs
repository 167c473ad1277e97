//! The optional headers and results of issue 15, through the milter
//! protocol: Received-SPF (RFC 7208 §9.1), `auth=` (RFC 8601 §2.7.4),
//! `x-ptr=` and `x-tls=` (as authentication_milter writes them). Each is
//! off by default and turned on by its key; hostile values stay inside
//! their values.

mod common;

use common::{
    dns_server::{TestDns, Zones},
    *,
};
use indymilter_test::{EomAction, MacroStage, TestConnection};
use std::net::SocketAddr;

/// 198.51.100.0/24 has no PTR records (NXDOMAIN); other unknown names
/// answer SERVFAIL.
const NO_PTR_ZONE: &str = r#"
$ORIGIN 100.51.198.in-addr.arpa.
$TTL 0
@       IN SOA ns.test. hostmaster.test. 1 3600 600 86400 0
"#;

async fn dns() -> TestDns {
    let mut z = Zones::with_origins();
    for t in [TLD_ZONE, BANK_ZONE, REV_ZONE, NO_PTR_ZONE] {
        z.add_zone_text(t, None);
    }
    TestDns::start(z).await
}

/// A milter with these sections after the test defaults (`[policy]` last).
async fn milter(dns: SocketAddr, extra: &str) -> TestMilter {
    let text = format!("{}\n{extra}\n", config_text(dns, ""));
    TestMilter::start(authmilter::config::Config::parse(&text, "optional_headers.toml").unwrap())
        .await
}

const ALL_ON: &str =
    "[spf]\nreceived_spf_header = true\n[results]\nauth = true\nx_ptr = true\nx_tls = true\n";

fn message(extra_headers: &str) -> Vec<u8> {
    format!("{extra_headers}From: alerts@bank.test\r\nTo: bob@recipient.test\r\nSubject: t\r\n\r\nHi.\r\n")
        .into_bytes()
}

fn good() -> Envelope {
    Envelope::new("192.0.2.10", "mail.bank.test", "alerts@bank.test")
}

const TLS: [(&str, &str); 3] = [
    ("{tls_version}", "TLSv1.3"),
    ("{cipher}", "TLS_AES_256_GCM_SHA384"),
    ("{cipher_bits}", "256"),
];

/// One message as Postfix sends it, with these macros at HELO (where
/// Postfix sends the TLS ones by default) and `env.macros` at MAIL.
async fn send_with_helo_macros(
    addr: SocketAddr,
    env: &Envelope,
    helo_macros: &[(&str, &str)],
    raw: &[u8],
) -> Outcome {
    let mut conn = open(addr).await;
    conn.connect(env.client_name.as_str(), SocketAddr::new(env.client_ip, 25))
        .await
        .unwrap();
    conn.macros(MacroStage::Helo, helo_macros.iter().copied())
        .await
        .unwrap();
    conn.helo(env.helo.as_str()).await.unwrap();
    let out = send_message(&mut conn, env, raw).await;
    conn.close().await.unwrap();
    out
}

/// The values of the Received-SPF fields we inserted, with their indexes.
fn received_spf(out: &Outcome) -> Vec<(i32, String)> {
    out.actions
        .actions
        .iter()
        .filter_map(|a| match a {
            EomAction::InsertHeader { index, name, value }
                if name.to_str().unwrap() == "Received-SPF" =>
            {
                Some((*index, value.to_str().unwrap().to_string()))
            }
            _ => None,
        })
        .collect()
}

/// No value we insert has a line break that is not folding (LF + tab), a
/// CR, or anything but ASCII.
fn assert_well_formed(out: &Outcome) {
    for a in &out.actions.actions {
        if let EomAction::InsertHeader { value, .. } = a {
            let v = value.to_str().unwrap();
            assert!(v.is_ascii() && !v.contains('\r'), "{v:?}");
            for line in v.split('\n').skip(1) {
                assert!(line.starts_with('\t'), "{v:?}");
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn off_by_default_and_the_tls_macros_are_requested_at_helo() {
    let dns = dns().await;
    let milter = milter(dns.addr, "").await;
    let conn = TestConnection::configure()
        .open_tcp(milter.addr)
        .await
        .unwrap();
    let helo = conn.requested_macros().get(&MacroStage::Helo).unwrap();
    assert_eq!(
        helo.to_str().unwrap(),
        "{tls_version} {cipher} {cipher_bits}"
    );
    let mail = conn.requested_macros().get(&MacroStage::Mail).unwrap();
    assert!(mail.to_str().unwrap().contains("{auth_type}"));
    conn.close().await.unwrap();

    let mut env = good();
    env.macros.insert("{auth_authen}".into(), "alice".into());
    env.macros.insert("{auth_type}".into(), "PLAIN".into());
    let raw = message("Received-SPF: pass receiver=mx.recipient.test; identity=mailfrom\r\n");
    let out = send_with_helo_macros(milter.addr, &env, &TLS, &raw).await;
    let ar = out.auth_results().unwrap();
    for m in ["auth=", "x-ptr=", "x-tls="] {
        assert!(!ar.contains(m), "{ar}");
    }
    assert!(received_spf(&out).is_empty());
    // A forged Received-SPF naming us goes even when we write none.
    assert_eq!(out.deleted(), vec![("Received-SPF".to_string(), 1)]);
    milter.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn received_spf_for_mail_from_and_helo() {
    let dns = dns().await;
    let milter = milter(dns.addr, "[spf]\nreceived_spf_header = true\n").await;
    let raw = message(
        "Received-SPF: pass (forged) receiver=MX.Recipient.Test; client-ip=192.0.2.10\r\nReceived-SPF: fail receiver=other.example;\r\n",
    );
    let out = send(milter.addr, &good(), &raw).await;
    assert_eq!(out.verdict(), "accept");
    let fields = received_spf(&out);
    assert_eq!(fields.len(), 2, "{fields:?}");
    // Prepended right below our Authentication-Results (index 0), above
    // every other Received-SPF.
    assert_eq!((fields[0].0, fields[1].0), (1, 2));
    assert_eq!(
        fields[0].1,
        " pass (mx.recipient.test: domain of alerts@bank.test designates 192.0.2.10 as permitted sender)\n\treceiver=mx.recipient.test; client-ip=192.0.2.10; envelope-from=\"alerts@bank.test\"; helo=mail.bank.test; identity=mailfrom; mechanism=\"ip4:192.0.2.10\""
    );
    assert_eq!(
        fields[1].1,
        " none (mx.recipient.test: domain of mail.bank.test does not designate permitted sender hosts)\n\treceiver=mx.recipient.test; client-ip=192.0.2.10; helo=mail.bank.test; identity=helo"
    );
    // The forged one (our receiver, any case) is deleted, the foreign one kept.
    assert_eq!(out.deleted(), vec![("Received-SPF".to_string(), 1)]);

    // The null sender: one field, the HELO identity's, with envelope-from="<>".
    // (From a domain without DMARC policy: the bounce is delivered.)
    let mut bounce = good();
    bounce.mail_from = String::new();
    let raw = b"From: mailer-daemon@recipient.test\r\nSubject: t\r\n\r\nHi.\r\n";
    let out = send(milter.addr, &bounce, raw).await;
    let fields = received_spf(&out);
    assert_eq!(fields.len(), 1, "{fields:?}");
    assert!(
        fields[0].1.ends_with(
            "client-ip=192.0.2.10; envelope-from=\"<>\"; helo=mail.bank.test; identity=helo"
        ),
        "{}",
        fields[0].1
    );

    // A spoof: fail, with the mechanism that matched.
    let spoof = Envelope::new("198.51.100.7", "evil.example", "alerts@bank.test");
    let out = send(milter.addr, &spoof, raw).await;
    let fields = received_spf(&out);
    assert!(
        fields[0].1.starts_with(" fail (mx.recipient.test: domain of alerts@bank.test does not designate 198.51.100.7 as permitted sender)"),
        "{}",
        fields[0].1
    );
    assert!(
        fields[0].1.ends_with("identity=mailfrom; mechanism=all"),
        "{}",
        fields[0].1
    );
    milter.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth_names_the_user_or_withholds_it() {
    let dns = dns().await;
    let on = milter(dns.addr, "[results]\nauth = true\n").await;
    let mut env = good();
    env.macros
        .insert("{auth_authen}".into(), "alice@bank.test".into());
    env.macros.insert("{auth_type}".into(), "PLAIN".into());
    let out = send(on.addr, &env, &message("")).await;
    let ar = out.auth_results().unwrap();
    assert!(
        ar.contains("; auth=pass (PLAIN) smtp.auth=alice@bank.test;"),
        "{ar}"
    );
    // Not authenticated: no auth= at all.
    let out = send(on.addr, &good(), &message("")).await;
    assert!(!out.auth_results().unwrap().contains("auth="));
    // A hostile user name stays one quoted value.
    let mut hostile = good();
    hostile
        .macros
        .insert("{auth_authen}".into(), "bob;dkim=pass (x) \"q\" é".into());
    let out = send(on.addr, &hostile, &message("")).await;
    assert_well_formed(&out);
    let ar = out.auth_results().unwrap();
    assert!(
        ar.contains("auth=pass smtp.auth=\"bob,dkim=pass (x) \\\"q\\\" ?\";"),
        "{ar}"
    );
    assert_eq!(
        ar_results(&ar).iter().filter(|r| r.0 == "dkim").count(),
        1,
        "{ar}"
    );
    on.stop().await;

    let withheld = milter(dns.addr, "[results]\nauth = true\nauth_user = false\n").await;
    let out = send(withheld.addr, &env, &message("")).await;
    let ar = out.auth_results().unwrap();
    assert!(ar.contains("; auth=pass (PLAIN);"), "{ar}");
    assert!(!ar.contains("alice"), "{ar}");
    withheld.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn x_ptr_in_the_header_and_the_action_table() {
    let dns = dns().await;
    let m = milter(dns.addr, "[results]\nx_ptr = true\n").await;
    let out = send(m.addr, &good(), &message("")).await;
    let ar = out.auth_results().unwrap();
    assert!(
        ar.contains("; x-ptr=pass smtp.helo=mail.bank.test policy.ptr=mail.bank.test;"),
        "{ar}"
    );
    let mut other = good();
    other.helo = "MAIL.other.test".into();
    let out = send(m.addr, &other, &message("")).await;
    let ar = out.auth_results().unwrap();
    assert!(
        ar.contains("; x-ptr=fail smtp.helo=MAIL.other.test policy.ptr=mail.bank.test;"),
        "{ar}"
    );
    // Never enforced by default.
    assert_eq!(out.verdict(), "accept");
    // No PTR at all: fail, no names.
    let spoof = Envelope::new("198.51.100.7", "evil.example", "x@evil.example");
    let raw = b"From: x@recipient.test\r\nSubject: t\r\n\r\nHi.\r\n";
    let out = send(m.addr, &spoof, raw).await;
    let ar = out.auth_results().unwrap();
    assert!(ar.contains("iprev=permerror"), "{ar}");
    assert!(ar.contains("x-ptr=fail smtp.helo=evil.example;"), "{ar}");
    // The PTR lookup fails (SERVFAIL): temperror.
    let mut unknown = spoof.clone();
    unknown.client_ip = "203.0.113.5".parse().unwrap();
    let out = send(m.addr, &unknown, raw).await;
    let ar = out.auth_results().unwrap();
    assert!(
        ar.contains("x-ptr=temperror smtp.helo=evil.example;"),
        "{ar}"
    );
    // A hostile HELO.
    let mut hostile = good();
    hostile.helo = "h;x-ptr=pass\r\nX-Injected: 1 (c) é".into();
    let out = send(m.addr, &hostile, &message("")).await;
    assert_well_formed(&out);
    let ar = out.auth_results().unwrap();
    assert_eq!(
        ar_results(&ar).iter().filter(|r| r.0 == "x-ptr").count(),
        1,
        "{ar}"
    );
    assert!(
        ar.contains("x-ptr=fail smtp.helo=\"h,x-ptr=passX-Injected: 1 (c) ?\""),
        "{ar}"
    );
    m.stop().await;

    // The action table: a rule rejects, whether or not the header shows it.
    let strict = milter(
        dns.addr,
        "[policy.rules.x-ptr]\nfail = { action = \"reject\" }\n",
    )
    .await;
    let out = send(strict.addr, &other, &message("")).await;
    assert_eq!(out.verdict(), "reject", "{:?}", out.status);
    assert!(
        out.reply().is_some_and(|r| r.starts_with("550 5.7.25 ")),
        "{:?}",
        out.status
    );
    assert_eq!(
        send(strict.addr, &good(), &message("")).await.verdict(),
        "accept"
    );
    strict.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn x_tls_from_the_helo_macros() {
    let dns = dns().await;
    let m = milter(dns.addr, "[results]\nx_tls = true\n").await;
    let out = send_with_helo_macros(m.addr, &good(), &TLS, &message("")).await;
    let ar = out.auth_results().unwrap();
    assert!(
        ar.contains(
            "; x-tls=pass smtp.version=TLSv1.3 smtp.cipher=TLS_AES_256_GCM_SHA384 smtp.bits=256;"
        ),
        "{ar}"
    );
    // Without STARTTLS: no x-tls.
    let out = send(m.addr, &good(), &message("")).await;
    assert!(!out.auth_results().unwrap().contains("x-tls"));

    // EHLO, STARTTLS, EHLO again: the second HELO's macros are the session's.
    let env = good();
    let mut conn = open(m.addr).await;
    conn.connect(env.client_name.as_str(), SocketAddr::new(env.client_ip, 25))
        .await
        .unwrap();
    conn.helo(env.helo.as_str()).await.unwrap();
    conn.macros(MacroStage::Helo, TLS).await.unwrap();
    conn.helo(env.helo.as_str()).await.unwrap();
    let out = send_message(&mut conn, &env, &message("")).await;
    conn.close().await.unwrap();
    assert!(out
        .auth_results()
        .unwrap()
        .contains("x-tls=pass smtp.version=TLSv1.3"));

    // Hostile macro values stay inside their values.
    let hostile = [
        ("{tls_version}", "TLSv1.3;x-tls=fail\r\n(x)"),
        ("{cipher}", "A B é"),
    ];
    let out = send_with_helo_macros(m.addr, &good(), &hostile, &message("")).await;
    assert_well_formed(&out);
    let ar = out.auth_results().unwrap();
    assert!(
        ar.contains("x-tls=pass smtp.version=\"TLSv1.3,x-tls=fail(x)\" smtp.cipher=\"A B ?\";"),
        "{ar}"
    );
    m.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn all_on_with_hostile_envelope() {
    let dns = dns().await;
    let m = milter(dns.addr, ALL_ON).await;
    let mut env = Envelope::new(
        "192.0.2.10",
        "mail.bank.test;receiver=evil\r\n(x) é",
        "\"a;b receiver=evil\"@bank.test",
    );
    env.macros
        .insert("{auth_authen}".into(), "u\r\nX-Injected: 1".into());
    let out = send_with_helo_macros(m.addr, &env, &TLS, &message("")).await;
    assert_well_formed(&out);
    let fields = received_spf(&out);
    assert!(!fields.is_empty());
    for (_, v) in &fields {
        // Our own deletion (and any first-match parser) finds our receiver.
        assert_eq!(
            authmilter::actions::sanitize::received_spf_receiver(v).as_deref(),
            Some("mx.recipient.test"),
            "{v}"
        );
    }
    let ar = out.auth_results().unwrap();
    for method in ["iprev", "x-ptr", "x-tls", "auth", "dkim", "arc", "dmarc"] {
        assert_eq!(
            ar_results(&ar).iter().filter(|r| r.0 == method).count(),
            1,
            "{method}: {ar}"
        );
    }
    m.stop().await;
}
