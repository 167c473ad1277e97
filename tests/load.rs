//! Load: 2,000 concurrent milter connections and 100,000 messages on
//! loopback. Every message gets exactly one verdict, none is lost or
//! duplicated, and memory stays within the documented bound.
//!
//! Bounded in count and time; run in release mode by scripts/test-all:
//! `cargo test --release --test load -- --ignored --nocapture`.
//!
//! The same load runs twice: without and with DMARC report recording
//! (`[reports]`, SQLite in a temp folder), printing both throughputs and
//! the rows and bytes the store holds per message; every row is stored,
//! none lost.

mod common;

use common::{
    dns_server::{TestDns, Zones},
    *,
};
use indymilter_test::TestConnection;
use std::{
    sync::{atomic::Ordering, Arc},
    time::{Duration, Instant},
};

const CONNECTIONS: usize = 2_000;
const MESSAGES: usize = 100_000;
/// The whole test (client, milter and DNS server in one process) must stay
/// under this peak resident size.
const MAX_RSS_MIB: u64 = 1024;

fn peak_rss_mib() -> u64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    s.lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|k| k.parse::<u64>().ok())
        .map_or(0, |k| k / 1024)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "load test: run in release mode (scripts/test-all does)"]
async fn two_thousand_connections_one_hundred_thousand_messages() {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    let (_, hard) = getrlimit(Resource::RLIMIT_NOFILE).unwrap();
    let _ = setrlimit(Resource::RLIMIT_NOFILE, hard.min(65536), hard);
    let without = load(false).await;
    let with = load(true).await;
    eprintln!(
        "load: recording DMARC report rows: {:.0} msg/s without, {:.0} msg/s with ({:+.1}%)",
        without,
        with,
        (with - without) / without * 100.0
    );
    let rss = peak_rss_mib();
    assert!(rss < MAX_RSS_MIB, "peak RSS {rss} MiB");
}

/// One run of the load; messages per second.
async fn load(reports: bool) -> f64 {
    let mut z = Zones::with_origins();
    z.add_zone_text(
        "$ORIGIN bank.test.\n$TTL 3600\n@ IN SOA ns.bank.test. h.bank.test. 1 3600 600 86400 3600\n@ IN TXT \"v=spf1 ip4:192.0.2.10 -all\"\n_dmarc IN TXT \"v=DMARC1; p=reject\"\nmail IN A 192.0.2.10\n",
        None,
    );
    z.add_zone_text(
        "$ORIGIN 2.0.192.in-addr.arpa.\n$TTL 3600\n@ IN SOA ns.bank.test. h.bank.test. 1 3600 600 86400 3600\n10 IN PTR mail.bank.test.\n",
        None,
    );
    let dns = TestDns::start(z).await;
    // More simultaneous connections than the default limit of 1,000.
    let text =
        config_text(dns.addr, "").replace("[milter]\n", "[milter]\nmax_connections = 2500\n");
    let db_dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite:{}", db_dir.path().join("reports.sqlite").display());
    let text = if reports {
        text.replace(
            "[reports]\nenabled = false\n",
            &format!("[reports]\ndatabase = \"{db}\"\n"),
        )
    } else {
        text
    };
    let config = authmilter::config::Config::parse(&text, "load").unwrap();
    let (recorder, store) = if reports {
        let store = authmilter::reports::store::open(&db).await.unwrap();
        let rec = authmilter::reports::Recorder::with_store(&config.reports, store.clone());
        (Some(rec), Some(store))
    } else {
        (None, None)
    };
    let milter = TestMilter::start_with(config, recorder.clone()).await;
    let stats = milter.shared.current().stats.clone();
    let addr = milter.addr;
    let started = Instant::now();
    let per_conn = MESSAGES / CONNECTIONS;
    let mut tasks = Vec::with_capacity(CONNECTIONS);
    let opened = Arc::new(tokio::sync::Barrier::new(CONNECTIONS));
    for c in 0..CONNECTIONS {
        let opened = opened.clone();
        tasks.push(tokio::spawn(async move {
            let mut conn = TestConnection::configure()
                .exact_leading_space(true)
                .read_timeout(Duration::from_secs(120))
                .open_tcp(addr)
                .await
                .expect("open");
            // All 2,000 connections are open at once before any mail flows.
            opened.wait().await;
            let good = Envelope::new("192.0.2.10", "mail.bank.test", "alerts@bank.test");
            let spoof = Envelope::new("198.51.100.7", "evil.example", "x@evil.example");
            let (mut accepted, mut rejected) = (0usize, 0usize);
            conn.connect("client", std::net::SocketAddr::new(good.client_ip, 25))
                .await
                .unwrap();
            conn.helo("mail.bank.test").await.unwrap();
            for m in 0..per_conn {
                let spoofed = (c + m) % 5 == 0;
                let env = if spoofed { &spoof } else { &good };
                let body = if spoofed {
                    b"From: security@bank.test\r\nSubject: x\r\n\r\nhello\r\n".as_slice()
                } else {
                    b"From: alerts@bank.test\r\nSubject: x\r\n\r\nhello\r\n".as_slice()
                };
                let out = send_message(&mut conn, env, body).await;
                match out.verdict() {
                    "accept" if !spoofed => accepted += 1,
                    "reject" if spoofed => rejected += 1,
                    v => panic!("connection {c} message {m}: unexpected verdict {v}"),
                }
            }
            conn.close().await.unwrap();
            (accepted, rejected)
        }));
    }
    let mut total = 0;
    for t in tasks {
        let (a, r) = tokio::time::timeout(Duration::from_secs(600), t)
            .await
            .expect("load test finished in time")
            .unwrap();
        total += a + r;
    }
    let elapsed = started.elapsed();
    // Exactly one verdict per message, seen by the client and counted by the daemon.
    assert_eq!(total, MESSAGES);
    assert_eq!(stats.messages.load(Ordering::SeqCst) as usize, MESSAGES);
    assert_eq!(stats.in_flight.load(Ordering::SeqCst), 0);
    let rss = peak_rss_mib();
    eprintln!(
        "load: {CONNECTIONS} connections, {MESSAGES} messages in {:.1}s ({:.0} msg/s), peak RSS {rss} MiB (test process: client + milter + DNS){}",
        elapsed.as_secs_f64(),
        MESSAGES as f64 / elapsed.as_secs_f64(),
        if reports { ", recording report rows" } else { "" }
    );
    if let (Some(rec), Some(store)) = (recorder, store) {
        assert!(rec.flush(Duration::from_secs(60)).await);
        let counts = rec.counts();
        assert_eq!(
            counts.stored.load(Ordering::SeqCst) as usize,
            MESSAGES,
            "every row stored"
        );
        assert_eq!(counts.lost(), 0, "none lost");
        let size = store.size().await.unwrap();
        eprintln!(
            "load: report store after {MESSAGES} messages: {} rows, {} bytes ({:.5} rows and {:.2} bytes per message)",
            size.rows,
            size.bytes,
            size.rows as f64 / MESSAGES as f64,
            size.bytes as f64 / MESSAGES as f64
        );
    }
    milter.stop().await;
    MESSAGES as f64 / elapsed.as_secs_f64()
}
