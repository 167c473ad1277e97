//! End to end through the real milter protocol, on the project's own
//! fixtures: the daemon on a free port, its resolver pointed at the
//! in-process DNS server.

mod common;

use common::{
    dns_server::{Fault, TestDns, Zones},
    *,
};
use indymilter_test::{EomAction, Status, TestConnection};

const ZONE2: &str = r#"
$ORIGIN shop.test.
$TTL 0
@       IN SOA ns.shop.test. hostmaster.shop.test. 1 3600 600 86400 0
@       IN TXT "v=spf1 ip4:192.0.2.10 -all"
_dmarc  IN TXT "v=DMARC1; p=quarantine"
"#;
async fn dns() -> TestDns {
    let mut z = Zones::with_origins();
    for t in [BANK_ZONE, ZONE2, REV_ZONE] {
        z.add_zone_text(t, None);
    }
    TestDns::start(z).await
}

fn message(from: &str, extra_headers: &str) -> Vec<u8> {
    format!(
        "{extra_headers}From: Someone <{from}>\r\nTo: bob@recipient.test\r\nSubject: test\r\nMessage-ID: <x@y>\r\n\r\nHello.\r\n"
    )
    .into_bytes()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pass_is_accepted_labelled_and_forgeries_removed() {
    let dns = dns().await;
    let milter = TestMilter::with_policy(dns.addr, "").await;
    let env = Envelope::new("192.0.2.10", "mail.bank.test", "alerts@bank.test");
    let raw = message(
        "alerts@bank.test",
        "Authentication-Results: other.example; spf=pass\r\nAuthentication-Results: MX.Recipient.Test; dkim=pass header.d=bank.test\r\nReceived-SPF: pass receiver=mx.recipient.test;\r\n",
    );
    let out = send(milter.addr, &env, &raw).await;
    assert_eq!(out.verdict(), "accept");
    let ar = out.auth_results().unwrap();
    assert!(ar.starts_with(" mx.recipient.test;"), "{ar}");
    assert!(
        ar.contains("iprev=pass (mail.bank.test) policy.iprev=192.0.2.10"),
        "{ar}"
    );
    assert!(
        ar.contains("spf=pass smtp.mailfrom=alerts@bank.test"),
        "{ar}"
    );
    assert!(
        ar.contains("spf=none reason=\"no SPF record\" smtp.helo=mail.bank.test"),
        "{ar}"
    );
    assert!(ar.contains("dkim=none"), "{ar}");
    assert!(
        ar.contains("dmarc=pass (p=reject) header.from=bank.test policy.dmarc=reject"),
        "{ar}"
    );
    // Ours (second A-R, case-insensitive id) and our Received-SPF go; the foreign one stays.
    let mut deleted = out.deleted();
    deleted.sort();
    assert_eq!(
        deleted,
        vec![
            ("Authentication-Results".to_string(), 2),
            ("Received-SPF".to_string(), 1)
        ]
    );
    assert!(out
        .actions
        .actions
        .iter()
        .any(|a| matches!(a, EomAction::InsertHeader { index: 0, .. })));
    milter.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spoof_of_reject_domain_is_rejected_with_550() {
    let dns = dns().await;
    let milter = TestMilter::with_policy(dns.addr, "").await;
    let env = Envelope::new("198.51.100.7", "evil.example", "x@evil.example");
    let out = send(milter.addr, &env, &message("security@bank.test", "")).await;
    assert_eq!(out.verdict(), "reject");
    let reply = out.reply().unwrap();
    assert!(reply.starts_with("550 5.7.1 "), "{reply}");
    assert!(reply.contains("bank.test"), "{reply}");

    // A p=quarantine domain is held with a reason.
    let out = send(milter.addr, &env, &message("deals@shop.test", "")).await;
    assert_eq!(out.verdict(), "quarantine");
    assert!(out.auth_results().unwrap().contains("dmarc=fail"));
    milter.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dns_failure_tempfails_and_recovers() {
    let dns = dns().await;
    let milter = TestMilter::with_policy(dns.addr, "").await;
    let env = Envelope::new("192.0.2.10", "mail.bank.test", "alerts@bank.test");
    dns.set_fault(Fault::ServFail);
    let out = send(milter.addr, &env, &message("alerts@bank.test", "")).await;
    assert_eq!(out.verdict(), "tempfail");
    assert!(
        out.reply().unwrap().starts_with("451 4.7.1 "),
        "{:?}",
        out.reply()
    );
    dns.set_fault(Fault::Drop);
    let out = send(milter.addr, &env, &message("alerts@bank.test", "")).await;
    assert_eq!(
        out.verdict(),
        "tempfail",
        "a DNS timeout is never a silent pass"
    );
    dns.set_fault(Fault::None);
    let out = send(milter.addr, &env, &message("alerts@bank.test", "")).await;
    assert_eq!(out.verdict(), "accept");
    assert!(out.auth_results().unwrap().contains("dmarc=pass"));
    milter.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn several_messages_and_an_abort_on_one_connection() {
    let dns = dns().await;
    let milter = TestMilter::with_policy(dns.addr, "").await;
    let mut conn = open(milter.addr).await;
    let good = Envelope::new("192.0.2.10", "mail.bank.test", "alerts@bank.test");
    let out = send_on(&mut conn, &good, &message("alerts@bank.test", "")).await;
    assert_eq!(out.verdict(), "accept");
    // An aborted message leaves nothing behind.
    conn.mail(["<x@evil.example>"]).await.unwrap();
    conn.rcpt(["<bob@recipient.test>"]).await.unwrap();
    conn.header("From", " security@bank.test").await.unwrap();
    conn.abort().await.unwrap();
    // A spoof on the same connection is still rejected, a good one accepted.
    let mut spoof = good.clone();
    spoof.mail_from = "x@evil.example".into();
    let out = send_message(&mut conn, &spoof, &message("security@bank.test", "")).await;
    assert_eq!(out.verdict(), "reject");
    let out = send_message(&mut conn, &good, &message("alerts@bank.test", "")).await;
    assert_eq!(out.verdict(), "accept");
    conn.close().await.unwrap();
    milter.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn authenticated_client_is_labelled_not_rejected() {
    let dns = dns().await;
    let milter = TestMilter::with_policy(dns.addr, "").await;
    let mut env = Envelope::new("198.51.100.7", "laptop", "alice@bank.test");
    env.macros.insert("{auth_authen}".into(), "alice".into());
    let out = send(milter.addr, &env, &message("alice@bank.test", "")).await;
    assert_eq!(out.verdict(), "accept");
    assert!(out.auth_results().unwrap().contains("dmarc=fail"));
    let would = out.actions.actions.iter().any(|a| matches!(a,
        EomAction::InsertHeader { name, value, .. }
            if name.to_str().unwrap() == "X-Authmilter-Would" && value.to_str().unwrap().contains("reject")));
    assert!(would, "{:?}", out.actions);
    milter.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn several_from_domains_never_pass() {
    let dns = dns().await;
    let milter = TestMilter::with_policy(dns.addr, "").await;
    let env = Envelope::new("192.0.2.10", "mail.bank.test", "alerts@bank.test");
    // SPF passes and aligns with bank.test, but a second From domain rides along.
    let raw = b"From: alerts@bank.test, ceo@shop.test\r\nTo: bob@recipient.test\r\nSubject: x\r\n\r\nHi\r\n";
    let out = send(milter.addr, &env, raw).await;
    let ar = out.auth_results();
    assert_eq!(out.verdict(), "reject", "{ar:?}");
    let raw =
        b"From: alerts@bank.test\r\nFrom: alerts@bank.test\r\nTo: bob@recipient.test\r\n\r\nHi\r\n";
    let out = send(milter.addr, &env, raw).await;
    assert_eq!(out.verdict(), "reject");
    milter.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spf_reject_at_mail_from_when_configured() {
    let dns = dns().await;
    let milter = TestMilter::with_policy(
        dns.addr,
        "spf_reject_at_mail = true\n[policy.rules.spf]\nfail = { action = \"reject\" }\n",
    )
    .await;
    let env = Envelope::new("198.51.100.7", "evil.example", "alerts@bank.test");
    let out = send(milter.addr, &env, &message("alerts@bank.test", "")).await;
    match &out.status {
        Status::Reject { message: Some(m) } => {
            assert!(m.to_str().unwrap().starts_with("550 5.7.23"))
        }
        other => panic!("{other:?}"),
    }
    milter.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unix_socket_with_mode() {
    use std::os::unix::fs::PermissionsExt;
    let dns = dns().await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("authmilter.sock");
    let text = config_text(dns.addr, "").replace(
        "[milter]\n",
        &format!(
            "[milter]\nsocket = \"unix:{}\"\nsocket_mode = \"0660\"\n",
            path.display()
        ),
    );
    let config = authmilter::config::Config::parse(&text, "test").unwrap();
    let listener = authmilter::listener::bind(&config.milter).await.unwrap();
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o660);
    let rt = authmilter::Runtime::new(config, Default::default()).unwrap();
    let shared = std::sync::Arc::new(authmilter::Shared::new(rt));
    let (stop, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(authmilter::run(listener, shared, async move {
        let _ = rx.await;
    }));
    let mut conn = TestConnection::configure()
        .exact_leading_space(true)
        .open_unix(&path)
        .await
        .unwrap();
    let env = Envelope::new("198.51.100.7", "evil.example", "x@evil.example");
    let out = send_on(&mut conn, &env, &message("security@bank.test", "")).await;
    assert_eq!(out.verdict(), "reject");
    conn.close().await.unwrap();
    let _ = stop.send(());
    task.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quarantine_is_tagged_when_the_mta_offers_no_quarantine_action() {
    // Asking for SMFIR_QUARANTINE that was not offered would fail every try.
    let dns = dns().await;
    let milter = TestMilter::with_policy(dns.addr, "").await;
    let mut conn = TestConnection::configure()
        .exact_leading_space(true)
        .available_actions(indymilter_test::Actions::all() - indymilter_test::Actions::QUARANTINE)
        .open_tcp(milter.addr)
        .await
        .unwrap();
    let spoof = Envelope::new("198.51.100.7", "evil.example", "x@evil.example");
    let out = send_on(&mut conn, &spoof, &message("x@shop.test", "")).await;
    assert!(!out.quarantined());
    assert!(
        matches!(out.status, Status::Accept | Status::Continue),
        "{:?}",
        out.status
    );
    assert!(
        out.actions.actions.iter().any(|a| matches!(a,
            EomAction::InsertHeader { name, .. } if name.to_str().unwrap() == "X-Authmilter-Quarantine")),
        "{:?}",
        out.actions
    );
    conn.close().await.unwrap();
    milter.stop().await;
}

/// Sends the bank.test spoof on a connection of the given family.
async fn spoof_from(addr: std::net::SocketAddr, info: indymilter_test::SocketInfo) -> Outcome {
    let mut conn = open(addr).await;
    conn.connect("localhost", info).await.unwrap();
    conn.helo("localhost").await.unwrap();
    let env = Envelope::new("127.0.0.1", "localhost", "x@evil.example");
    let out = send_message(&mut conn, &env, &message("security@bank.test", "")).await;
    conn.close().await.unwrap();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_without_address_is_trusted_only_as_configured() {
    use indymilter_test::SocketInfo;
    let dns = dns().await;
    let milter = TestMilter::with_policy(dns.addr, "").await;
    // A local submission over a unix socket: trusted by default (trust_local).
    let unix = SocketInfo::Unix(std::ffi::CString::new("/run/local").unwrap());
    assert_eq!(
        spoof_from(milter.addr, unix.clone()).await.verdict(),
        "accept"
    );
    // An unknown family is never trusted.
    assert_eq!(
        spoof_from(milter.addr, SocketInfo::Unknown).await.verdict(),
        "reject"
    );
    milter.stop().await;
    let milter = TestMilter::with_policy(dns.addr, "trust_local = false").await;
    assert_eq!(spoof_from(milter.addr, unix).await.verdict(), "reject");
    milter.stop().await;
    let milter = TestMilter::with_policy(dns.addr, "trust_unknown_family = true").await;
    assert_eq!(
        spoof_from(milter.addr, SocketInfo::Unknown).await.verdict(),
        "accept"
    );
    milter.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simple_header_canonicalization_verifies_without_leading_space_option() {
    // An MTA that does not offer SMFIP_HDR_LEADSPC strips the space after the
    // colon; the usual "Name: value" is rebuilt, so c=simple still verifies.
    use common::dkim_sign::{sign, Canon, Key, Spec};
    let mut z = Zones::with_origins();
    let key = Key::ed25519(1);
    for t in [BANK_ZONE, ZONE2, REV_ZONE] {
        z.add_zone_text(t, None);
    }
    z.add_zone_text(
        &format!(
            "$ORIGIN bank.test.\n$TTL 0\n@ IN SOA ns.bank.test. h.bank.test. 1 3600 600 86400 0\n{}",
            key.zone_line("s1")
        ),
        None,
    );
    let dns = TestDns::start(z).await;
    let milter = TestMilter::with_policy(dns.addr, "").await;
    let raw = sign(
        &message("alerts@bank.test", ""),
        &key,
        &Spec {
            header_canon: Canon::Simple,
            body_canon: Canon::Simple,
            headers: &["from", "to", "subject", "message-id"],
            ..Spec::new("bank.test", "s1")
        },
    );
    let mut conn = TestConnection::configure()
        .exact_leading_space(true)
        .available_opts(
            indymilter_test::ProtoOpts::all() - indymilter_test::ProtoOpts::LEADING_SPACE,
        )
        .open_tcp(milter.addr)
        .await
        .unwrap();
    conn.connect(
        "client",
        std::net::SocketAddr::from(([198, 51, 100, 7], 25)),
    )
    .await
    .unwrap();
    conn.helo("evil.example").await.unwrap();
    conn.mail(["<x@evil.example>"]).await.unwrap();
    conn.rcpt(["<bob@recipient.test>"]).await.unwrap();
    let (fields, body) = split_message(&raw);
    for (name, value) in fields {
        let v = value.strip_prefix(b" ").unwrap_or(&value).to_vec();
        conn.header(name.as_str(), std::ffi::CString::new(v).unwrap())
            .await
            .unwrap();
    }
    conn.eoh().await.unwrap();
    conn.body(body).await.unwrap();
    let (actions, status) = conn.eom().await.unwrap();
    let out = Outcome { status, actions };
    let ar = out.auth_results().unwrap();
    assert!(ar.contains("dkim=pass"), "{ar}");
    // RFC 6376 §3.5 i=: absent means "@" and the d= domain.
    assert!(ar.contains("header.i=@bank.test"), "{ar}");
    assert_eq!(out.verdict(), "accept");
    conn.close().await.unwrap();
    milter.stop().await;
}
