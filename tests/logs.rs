//! Logging on the real daemon: `log.level` reloaded by SIGHUP (RUST_LOG
//! wins), the per-message summary line's fields fixed in name and order
//! (docs/LOGS.md documents them: change both together), and journald
//! falling back to standard error when the journal is absent.

mod common;

use common::{
    daemon::{free_port, wait_listening, wait_serving, Daemon},
    dns_server::{TestDns, Zones},
    *,
};
use nix::sys::signal::Signal;
use serde::{
    de::{MapAccess, Visitor},
    Deserialize, Deserializer,
};
use std::{fmt, net::SocketAddr, path::Path};

/// The per-message summary line's fields (JSON format), in order, after
/// `message` (whose value is "message"). docs/LOGS.md documents each.
const SUMMARY_FIELDS: [&str; 22] = [
    "queue_id",
    "client",
    "helo",
    "tls",
    "mail_from",
    "rcpt",
    "header_from",
    "iprev",
    "x_ptr",
    "spf",
    "spf_helo",
    "dkim",
    "arc",
    "arc_sealers",
    "dkim2",
    "dmarc",
    "dmarc_policy",
    "verdict",
    "reason",
    "would",
    "size",
    "elapsed_ms",
];

async fn dns() -> TestDns {
    let mut z = Zones::with_origins();
    z.add_zone_text(TLD_ZONE, None);
    z.add_zone_text(BANK_ZONE, None);
    z.add_zone_text(REV_ZONE, None);
    TestDns::start(z).await
}

fn write_config(path: &Path, milter: u16, dns: SocketAddr, log: &str) {
    let text = config_text(dns, "").replace(
        "[milter]\n",
        &format!("[milter]\nsocket = \"inet:127.0.0.1:{milter}\"\ndrain_timeout = 5\n"),
    );
    std::fs::write(path, format!("{text}\n[log]\n{log}\n")).unwrap();
}

fn good() -> Envelope {
    let mut e = Envelope::new("192.0.2.10", "mail.bank.test", "alerts@bank.test");
    e.rcpt.push("carol@recipient.test".into());
    e
}
const GOOD: &[u8] = b"From: alerts@bank.test\r\nSubject: hi\r\n\r\nhi\r\n";

/// A daemon on `NAME.toml` with these `[log]` lines, listening.
async fn start(
    dir: &Path,
    name: &str,
    dns: SocketAddr,
    log: &str,
    rust_log: Option<&str>,
) -> (Daemon, SocketAddr, std::path::PathBuf) {
    let conf = dir.join(format!("{name}.toml"));
    let port = free_port();
    write_config(&conf, port, dns, log);
    let daemon = Daemon::spawn(&conf, &dir.join(format!("{name}.log")), rust_log);
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    wait_serving(addr).await;
    (daemon, addr, conf)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_applies_a_new_log_level() {
    let dns = dns().await;
    let dir = tempfile::tempdir().unwrap();
    let (mut daemon, addr, conf) =
        start(dir.path(), "level", dns.addr, "level = \"warn\"", None).await;
    // At warn, no per-message line (it is written before the reply).
    assert_eq!(send(addr, &good(), GOOD).await.verdict(), "accept");
    assert!(
        !daemon.log_text().contains("verdict=accept"),
        "{}",
        daemon.log_text()
    );
    assert!(!daemon.log_text().contains("authmilter listening"));

    write_config(&conf, addr.port(), dns.addr, "level = \"info\"");
    daemon.signal(Signal::SIGHUP);
    daemon.wait_logged("configuration reloaded", 1).await;
    assert!(daemon.log_text().contains("log.level is now info"));
    assert_eq!(send(addr, &good(), GOOD).await.verdict(), "accept");
    daemon.wait_logged("verdict=accept", 1).await;
    let line = daemon
        .log_text()
        .lines()
        .find(|l| l.contains("verdict=accept"))
        .unwrap()
        .to_string();
    assert!(line.contains(" INFO "), "{line}");
    assert!(line.contains("queue_id=\"4XTEST\""), "{line}");
    assert!(line.contains(" rcpt=2 "), "{line}");
    assert!(line.contains(" mail_from=\"alerts@bank.test\" "), "{line}");
    assert!(
        line.contains(" reason=\"no rule applies\" would=\"\" "),
        "{line}"
    );
    // A client's string cannot fake a field or a line.
    let mut forged = good();
    forged.helo = "x verdict=reject\nqueue_id=FAKE".into();
    send(addr, &forged, GOOD).await;
    daemon.wait_logged("verdict=", 2).await;
    let text = daemon.log_text();
    assert!(
        text.contains(" helo=\"x verdict=reject\\nqueue_id=FAKE\" "),
        "{text}"
    );
    assert!(
        !text.lines().any(|l| l.starts_with("queue_id=FAKE")),
        "{text}"
    );

    // Back to warn: the line goes away again. A format change waits for a restart.
    write_config(
        &conf,
        addr.port(),
        dns.addr,
        "level = \"warn\"\nformat = \"json\"",
    );
    daemon.signal(Signal::SIGHUP);
    daemon
        .wait_logged("log.format changed: takes effect after a restart", 1)
        .await;
    // The reload itself is at info, now filtered: wait for the level to apply.
    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    assert_eq!(send(addr, &good(), GOOD).await.verdict(), "accept");
    assert_eq!(
        daemon
            .log_text()
            .matches("authmilter::session: message ")
            .count(),
        2
    );
    assert!(!daemon.log_text().contains("{\""), "still text");
    assert!(daemon.stop().success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rust_log_wins_over_a_reloaded_level() {
    let dns = dns().await;
    let dir = tempfile::tempdir().unwrap();
    let (mut daemon, addr, conf) = start(
        dir.path(),
        "env",
        dns.addr,
        "level = \"info\"",
        Some("warn"),
    )
    .await;
    write_config(&conf, addr.port(), dns.addr, "level = \"debug\"");
    daemon.signal(Signal::SIGHUP);
    daemon
        .wait_logged("log.level changed to debug, but RUST_LOG is set", 1)
        .await;
    assert_eq!(send(addr, &good(), GOOD).await.verdict(), "accept");
    assert!(!daemon.log_text().contains("verdict=accept"));
    assert!(daemon.stop().success());
}

/// A JSON object's keys in the order written.
struct Ordered(Vec<(String, serde_json::Value)>);

impl<'de> Deserialize<'de> for Ordered {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Ordered;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<Ordered, A::Error> {
                let mut out = Vec::new();
                while let Some(e) = m.next_entry::<String, serde_json::Value>()? {
                    out.push(e);
                }
                Ok(Ordered(out))
            }
        }
        d.deserialize_map(V)
    }
}

#[derive(Deserialize)]
struct Line {
    level: String,
    target: String,
    fields: Ordered,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_summary_line_has_fixed_fields_in_a_fixed_order() {
    let dns = dns().await;
    let dir = tempfile::tempdir().unwrap();
    let (mut daemon, addr, _) = start(
        dir.path(),
        "json",
        dns.addr,
        "level = \"info\"\nformat = \"json\"",
        None,
    )
    .await;
    assert_eq!(send(addr, &good(), GOOD).await.verdict(), "accept");
    let spoof = Envelope::new("198.51.100.7", "evil.example", "x@evil.example");
    let out = send(addr, &spoof, b"From: security@bank.test\r\n\r\nhi\r\n").await;
    assert_eq!(out.verdict(), "reject");
    daemon.wait_logged("\"verdict\":\"reject\"", 1).await;
    let text = daemon.log_text();
    let summaries: Vec<Line> = text
        .lines()
        .map(|l| serde_json::from_str::<Line>(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .filter(|l| l.fields.0.first().map(|(_, v)| v.as_str()) == Some(Some("message")))
        .collect();
    assert_eq!(summaries.len(), 2, "{text}");
    let want = SUMMARY_FIELDS.to_vec();
    for line in &summaries {
        assert_eq!(line.level, "INFO");
        assert_eq!(line.target, "authmilter::session");
        let keys: Vec<&str> = line
            .fields
            .0
            .iter()
            .skip(1)
            .map(|(k, _)| k.as_str())
            .collect();
        assert_eq!(
            keys, want,
            "the summary line changed: update docs/LOGS.md and this list together"
        );
        let get = |k: &str| &line.fields.0.iter().find(|(n, _)| n == k).unwrap().1;
        assert!(get("rcpt").is_u64() && get("size").is_u64(), "{text}");
        assert!(get("elapsed_ms").is_f64(), "{text}");
        for k in want
            .iter()
            .filter(|k| !["rcpt", "size", "elapsed_ms"].contains(k))
        {
            assert!(get(k).is_string(), "{k} in {text}");
        }
    }
    let value = |i: usize, k: &str| {
        let l: &Line = &summaries[i];
        l.fields.0.iter().find(|(n, _)| n == k).unwrap().1.clone()
    };
    assert_eq!(value(0, "queue_id"), "4XTEST");
    assert_eq!(value(0, "client"), "192.0.2.10");
    assert_eq!(value(0, "rcpt"), 2);
    assert_eq!(value(0, "iprev"), "pass");
    assert_eq!(value(0, "spf"), "pass");
    assert_eq!(value(0, "dmarc"), "pass");
    assert_eq!(value(0, "dmarc_policy"), "reject");
    assert_eq!(value(0, "verdict"), "accept");
    assert_eq!(value(0, "would"), "");
    assert_eq!(value(1, "verdict"), "reject");
    assert_eq!(value(1, "dmarc"), "fail");
    assert_eq!(value(1, "header_from"), "bank.test");
    assert_eq!(value(1, "dkim"), "");
    assert!(value(1, "reason")
        .as_str()
        .unwrap()
        .starts_with("dmarc=fail policy=reject"));
    assert!(daemon.stop().success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn journald_without_a_journal_falls_back_to_stderr() {
    if Path::new("/run/systemd/journal/socket").exists() {
        eprintln!("SKIPPED journald_without_a_journal_falls_back_to_stderr: a journal runs here");
        return;
    }
    let dns = dns().await;
    let dir = tempfile::tempdir().unwrap();
    let (mut daemon, addr, _) = start(
        dir.path(),
        "journald",
        dns.addr,
        "target = \"journald\"",
        None,
    )
    .await;
    assert_eq!(send(addr, &good(), GOOD).await.verdict(), "accept");
    daemon.wait_logged("verdict=accept", 1).await;
    assert!(daemon.log_text().contains(
        "log.target = \"journald\" but /run/systemd/journal/socket does not exist: logging to standard error"
    ));
    assert!(daemon.stop().success());
}

/// A SIGHUP as soon as the milter socket accepts reloads, never kills the
/// daemon (its handlers are in place before the socket is bound).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_right_after_start_reloads() {
    let dns = dns().await;
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("early.toml");
    let port = free_port();
    write_config(&conf, port, dns.addr, "level = \"info\"");
    let mut daemon = Daemon::spawn(&conf, &dir.path().join("early.log"), None);
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    wait_listening(addr).await;
    daemon.signal(Signal::SIGHUP);
    daemon.wait_logged("configuration reloaded", 1).await;
    assert_eq!(send(addr, &good(), GOOD).await.verdict(), "accept");
    assert!(daemon.stop().success());
}
