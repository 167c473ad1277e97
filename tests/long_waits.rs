//! Time at end of message: a slow DATA phase must not eat the DNS budget,
//! and a long wait must keep the MTA from timing out (SMFIR_PROGRESS).

mod common;

use common::{
    dkim_sign::{sign, Key, Spec},
    dns_server::{TestDns, Zones},
    *,
};
use indymilter_test::{EomAction, MacroStage, Status};
use std::{ffi::CString, net::SocketAddr, time::Duration};

const RELAXED_ZONE: &str = r#"
$ORIGIN relaxed.test.
$TTL 0
@       IN SOA ns.relaxed.test. hostmaster.relaxed.test. 1 3600 600 86400 0
@       IN TXT "v=spf1 -all"
_dmarc  IN TXT "v=DMARC1; p=reject"
mail    IN A 192.0.2.99
"#;

async fn dns() -> TestDns {
    let mut z = Zones::with_origins();
    let key = Key::ed25519(1)
        .zone_line("s1")
        .replacen("s1._domainkey", "s1._domainkey.mail", 1);
    for t in [
        BANK_ZONE,
        REV_ZONE,
        TLD_ZONE,
        &format!("{RELAXED_ZONE}{key}"),
    ] {
        z.add_zone_text(t, None);
    }
    TestDns::start(z).await
}

/// Sends one message, pausing `pause` between the headers and the body (a
/// slow link during DATA), with the client's read timeout `read_timeout`.
async fn send_slowly(
    addr: SocketAddr,
    ip: &str,
    mail_from: &str,
    raw: &[u8],
    pause: Duration,
    read_timeout: Duration,
) -> indymilter_test::TestResult<(indymilter_test::EomActions, Status)> {
    let mut conn = indymilter_test::TestConnection::configure()
        .exact_leading_space(true)
        .read_timeout(read_timeout)
        .open_tcp(addr)
        .await
        .unwrap();
    conn.connect("client", SocketAddr::new(ip.parse().unwrap(), 25))
        .await
        .unwrap();
    conn.helo("client.example").await.unwrap();
    conn.macros(MacroStage::Mail, [("i", "4XSLOW")])
        .await
        .unwrap();
    conn.mail([format!("<{mail_from}>")]).await.unwrap();
    conn.rcpt(["<bob@recipient.test>"]).await.unwrap();
    let (fields, body) = split_message(raw);
    for (name, value) in fields {
        conn.header(name.as_str(), CString::new(value).unwrap())
            .await
            .unwrap();
    }
    conn.eoh().await.unwrap();
    tokio::time::sleep(pause).await;
    conn.body(body).await.unwrap();
    conn.eom().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_data_phase_does_not_eat_the_dns_budget() {
    let dns = dns().await;
    let config = authmilter::config::Config::parse(
        &format!(
            "{}\n[limits]\nmessage_deadline = 1.0\n",
            config_text(dns.addr, "")
        ),
        "test",
    )
    .unwrap();
    let milter = TestMilter::start(config).await;
    // DKIM d=mail.relaxed.test aligns with relaxed.test only through an
    // Organizational Domain walk; SPF fails.
    let raw = sign(
        b"From: x@relaxed.test\r\nTo: bob@recipient.test\r\nSubject: s\r\n\r\nbig attachment\r\n",
        &Key::ed25519(1),
        &Spec::new("mail.relaxed.test", "s1"),
    );
    let (actions, status) = send_slowly(
        milter.addr,
        "198.51.100.7",
        "x@evil.test",
        &raw,
        Duration::from_millis(1600),
        Duration::from_secs(30),
    )
    .await
    .unwrap();
    let out = Outcome { status, actions };
    let ar = out.auth_results().unwrap();
    assert!(ar.contains("dkim=pass"), "{ar}");
    assert!(ar.contains("dmarc=pass"), "{ar}");
    assert_eq!(out.verdict(), "accept");
    milter.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn progress_keeps_a_short_mta_timeout_from_expiring() {
    let dns = dns().await;
    // Every DNS answer takes 5 s; the MTA gives up after 3 s of silence.
    dns.set_delay(Duration::from_secs(5));
    let text = format!(
        "[milter]\nauthserv_id = \"{AUTHSERV_ID}\"\n[dns]\nnameservers = [\"{}\"]\ntimeout = 8.0\nattempts = 1\n[limits]\nmessage_deadline = 20.0\n",
        dns.addr
    );
    let milter = TestMilter::start(authmilter::config::Config::parse(&text, "test").unwrap()).await;
    let raw = b"From: alerts@bank.test\r\nTo: bob@recipient.test\r\nSubject: s\r\n\r\nhi\r\n";
    let (actions, status) = send_slowly(
        milter.addr,
        "192.0.2.10",
        "alerts@bank.test",
        raw,
        Duration::ZERO,
        Duration::from_secs(3),
    )
    .await
    .expect("the milter kept the connection alive");
    assert!(
        actions
            .actions
            .iter()
            .any(|a| matches!(a, EomAction::Progress)),
        "no progress sent"
    );
    let out = Outcome { status, actions };
    assert!(out.auth_results().unwrap().contains("dmarc=pass"));
    milter.stop().await;
}
