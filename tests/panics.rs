//! A panic inside one session is isolated: that message gets tempfail, the
//! event is counted, and the daemon serves everyone else.
//! Needs `--features fault-injection` (scripts/test-all passes it).
#![cfg(feature = "fault-injection")]

mod common;

use common::{
    dns_server::{TestDns, Zones},
    *,
};
use indymilter_test::Status;
use std::sync::atomic::Ordering;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn panic_is_isolated_to_its_session() {
    let mut z = Zones::with_origins();
    z.add_zone_text(
        "$ORIGIN bank.test.\n$TTL 60\n@ IN SOA ns.bank.test. h.bank.test. 1 3600 600 86400 0\n@ IN TXT \"v=spf1 ip4:192.0.2.10 -all\"\n_dmarc IN TXT \"v=DMARC1; p=reject\"\n",
        None,
    );
    let dns = TestDns::start(z).await;
    let milter = TestMilter::with_policy(dns.addr, "").await;

    let mut conn = open(milter.addr).await;
    conn.connect("client", std::net::SocketAddr::from(([192, 0, 2, 10], 25)))
        .await
        .unwrap();
    conn.helo("mail.bank.test").await.unwrap();
    conn.mail(["<alerts@bank.test>"]).await.unwrap();
    conn.rcpt(["<bob@recipient.test>"]).await.unwrap();
    let st = conn
        .header("X-Authmilter-Test-Panic", " now")
        .await
        .unwrap();
    // Header replies are negotiated away (NOREPLY): the panic poisons the
    // message, whose verdict at end of message is tempfail.
    assert!(
        matches!(st, Status::Tempfail { .. } | Status::Noreply),
        "{st:?}"
    );
    if st == Status::Noreply {
        conn.header("From", " alerts@bank.test").await.unwrap();
        conn.eoh().await.unwrap();
        conn.body(b"hi\r\n".to_vec()).await.unwrap();
        let (actions, st) = conn.eom().await.unwrap();
        assert!(matches!(st, Status::Tempfail { .. }), "{st:?}");
        assert!(actions.actions.is_empty());
    }

    let stats = milter.shared.current().stats.clone();
    assert_eq!(stats.internal_errors.load(Ordering::SeqCst), 1);

    // Everyone else is served.
    let env = Envelope::new("198.51.100.7", "evil.example", "x@evil.example");
    let out = send(milter.addr, &env, b"From: security@bank.test\r\n\r\nhi\r\n").await;
    assert_eq!(out.verdict(), "reject");
    milter.stop().await;
}
