//! The Prometheus endpoint on the real daemon: real milter traffic (a pass,
//! a reject, a trusted client, a DNS timeout), then `/metrics` scraped over
//! plain HTTP and the counters compared exactly; reloads counted after
//! SIGHUP; nothing listens without `[metrics] address`.

mod common;

use common::{
    daemon::{free_port, http_get, wait_listening, Daemon},
    dns_server::{fqdn, TestDns, Zones},
    *,
};
use nix::sys::signal::Signal;
use std::{collections::BTreeMap, net::SocketAddr, path::Path};

/// bank.test with a TTL, so repeated lookups are answered from the cache.
const BANK: &str = r#"
$ORIGIN bank.test.
$TTL 300
@       IN SOA ns.bank.test. hostmaster.bank.test. 1 3600 600 86400 60
@       IN TXT "v=spf1 ip4:192.0.2.10 -all"
_dmarc  IN TXT "v=DMARC1; p=reject"
mail    IN A 192.0.2.10
"#;

const REV: &str = r#"
$ORIGIN 2.0.192.in-addr.arpa.
$TTL 300
@       IN SOA ns.bank.test. hostmaster.bank.test. 1 3600 600 86400 60
10      IN PTR mail.bank.test.
"#;

/// 203.0.113.0/24: the reverse zone exists, its PTR for .5 never answers.
const SLOW_REV: &str = r#"
$ORIGIN 113.0.203.in-addr.arpa.
$TTL 300
@       IN SOA ns.bank.test. hostmaster.bank.test. 1 3600 600 86400 60
"#;

async fn dns() -> TestDns {
    let mut z = Zones::with_origins();
    z.add_zone_text(TLD_ZONE, None);
    z.add_zone_text(BANK, None);
    z.add_zone_text(REV, None);
    z.add_zone_text(SLOW_REV, None);
    z.add_timeout(&fqdn("5.113.0.203.in-addr.arpa"));
    TestDns::start(z).await
}

fn write_config(path: &Path, milter: u16, dns: SocketAddr, extra: &str) {
    let text = config_text(dns, "").replace(
        "[milter]\n",
        &format!("[milter]\nsocket = \"inet:127.0.0.1:{milter}\"\ndrain_timeout = 5\n"),
    );
    std::fs::write(path, format!("{text}\n{extra}")).unwrap();
}

/// One sample line of the exposition format: name, labels, value.
type Sample = (String, BTreeMap<String, String>, f64);

fn parse(text: &str) -> Vec<Sample> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            let (series, value) = l.rsplit_once(' ').unwrap();
            let value: f64 = value.parse().unwrap_or_else(|_| panic!("{l}"));
            let (name, labels) = match series.split_once('{') {
                None => (series.to_string(), BTreeMap::new()),
                Some((n, rest)) => {
                    let rest = rest.strip_suffix('}').unwrap();
                    let labels = rest
                        .split("\",")
                        .map(|kv| {
                            let (k, v) = kv.split_once("=\"").unwrap();
                            (k.to_string(), v.trim_end_matches('"').to_string())
                        })
                        .collect();
                    (n.to_string(), labels)
                }
            };
            (name, labels, value)
        })
        .collect()
}

/// The value of the series with exactly these labels (`None`: absent).
fn value(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let want: BTreeMap<String, String> = labels
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    samples
        .iter()
        .find(|(n, l, _)| n == name && *l == want)
        .map(|s| s.2)
}

/// The sum over every series of `name` that has these labels (and maybe more).
fn sum(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> f64 {
    samples
        .iter()
        .filter(|(n, l, _)| {
            n == name
                && labels
                    .iter()
                    .all(|(k, v)| l.get(*k).map(String::as_str) == Some(v))
        })
        .map(|s| s.2)
        .sum()
}

fn exact(samples: &[Sample], name: &str, labels: &[(&str, &str)], want: f64, text: &str) {
    assert_eq!(
        value(samples, name, labels),
        Some(want),
        "{name}{labels:?} in:\n{text}"
    );
}

async fn scrape(addr: SocketAddr) -> (String, Vec<Sample>) {
    let (status, body) = http_get(addr, "/metrics").await;
    assert_eq!(status, 200, "{body}");
    let samples = parse(&body);
    (body, samples)
}

fn good() -> Envelope {
    Envelope::new("192.0.2.10", "mail.bank.test", "alerts@bank.test")
}
const GOOD: &[u8] = b"From: alerts@bank.test\r\nSubject: hi\r\n\r\nhi\r\n";

fn spoof(ip: &str) -> Envelope {
    Envelope::new(ip, "evil.example", "x@evil.example")
}
const SPOOF: &[u8] = b"From: security@bank.test\r\nSubject: hi\r\n\r\nhi\r\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_real_traffic_exactly() {
    let dns = dns().await;
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("metrics.toml");
    let (milter_port, metrics_port) = (free_port(), free_port());
    let metrics_cfg = format!("[metrics]\naddress = \"127.0.0.1:{metrics_port}\"\n");
    write_config(&conf, milter_port, dns.addr, &metrics_cfg);
    let mut daemon = Daemon::spawn(&conf, &dir.path().join("metrics.log"), Some("info"));
    let milter: SocketAddr = ([127, 0, 0, 1], milter_port).into();
    let metrics: SocketAddr = ([127, 0, 0, 1], metrics_port).into();
    daemon.wait_logged("authmilter listening", 1).await;
    wait_listening(metrics).await;

    // Before any traffic: the known series are there, at 0.
    let (text, s) = scrape(metrics).await;
    for v in ["accept", "tag", "quarantine", "tempfail", "reject"] {
        exact(
            &s,
            "authmilter_messages_total",
            &[("verdict", v)],
            0.0,
            &text,
        );
    }
    exact(
        &s,
        "authmilter_config_reloads_total",
        &[("outcome", "ok")],
        0.0,
        &text,
    );
    assert!(text.contains("# HELP authmilter_messages_total "), "{text}");
    assert!(text.contains("# TYPE authmilter_messages_total counter"));
    exact(
        &s,
        "authmilter_build_info",
        &[("version", env!("CARGO_PKG_VERSION"))],
        1.0,
        &text,
    );

    // A pass (twice: the second from the DNS cache), a DMARC reject, the
    // same spoof from a trusted network (accepted, enforcement skipped),
    // and a client whose PTR lookup times out (SPF fail: rejected).
    for _ in 0..2 {
        let out = send(milter, &good(), GOOD).await;
        assert_eq!(out.verdict(), "accept");
    }
    assert_eq!(
        send(milter, &spoof("198.51.100.7"), SPOOF).await.verdict(),
        "reject"
    );
    assert_eq!(
        send(milter, &spoof("127.0.0.1"), SPOOF).await.verdict(),
        "accept"
    );
    let slow = Envelope::new("203.0.113.5", "mail.bank.test", "alerts@bank.test");
    assert_eq!(send(milter, &slow, GOOD).await.verdict(), "reject");

    // The connections are closed: wait until the daemon has seen it.
    let t = std::time::Instant::now();
    let (text, s) = loop {
        let (text, s) = scrape(metrics).await;
        if value(&s, "authmilter_connections_open", &[]) == Some(0.0) {
            break (text, s);
        }
        assert!(t.elapsed().as_secs() < 20, "connections stay open:\n{text}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    let m = "authmilter_messages_total";
    exact(&s, m, &[("verdict", "accept")], 3.0, &text);
    exact(&s, m, &[("verdict", "reject")], 2.0, &text);
    exact(&s, m, &[("verdict", "tempfail")], 0.0, &text);
    exact(&s, m, &[("verdict", "quarantine")], 0.0, &text);
    exact(&s, "authmilter_connections_total", &[], 5.0, &text);
    exact(&s, "authmilter_messages_in_flight", &[], 0.0, &text);
    exact(&s, "authmilter_buffered_bytes", &[], 0.0, &text);

    let r = "authmilter_results_total";
    exact(
        &s,
        r,
        &[("method", "dmarc"), ("result", "pass")],
        2.0,
        &text,
    );
    exact(
        &s,
        r,
        &[("method", "dmarc"), ("result", "fail")],
        3.0,
        &text,
    );
    exact(&s, r, &[("method", "spf"), ("result", "pass")], 2.0, &text);
    exact(&s, r, &[("method", "spf"), ("result", "fail")], 1.0, &text);
    // 127.0.0.1 is forward-confirmed by the resolver itself (localhost).
    exact(
        &s,
        r,
        &[("method", "iprev"), ("result", "pass")],
        3.0,
        &text,
    );
    exact(
        &s,
        r,
        &[("method", "iprev"), ("result", "temperror")],
        2.0,
        &text,
    );
    exact(&s, r, &[("method", "dkim"), ("result", "none")], 5.0, &text);
    assert_eq!(sum(&s, r, &[("method", "dmarc")]), 5.0, "{text}");

    let skipped = "authmilter_enforcement_skipped_total";
    exact(&s, skipped, &[("reason", "trusted_network")], 1.0, &text);
    exact(&s, skipped, &[("reason", "monitor_mode")], 0.0, &text);

    // DNS: TXT queries answered, SERVFAIL (names outside every zone) and
    // the timeout told apart, the second pass served from the cache.
    let q = "authmilter_dns_queries_total";
    assert!(
        sum(&s, q, &[("type", "TXT"), ("outcome", "ok")]) >= 2.0,
        "{text}"
    );
    assert!(sum(&s, q, &[("outcome", "servfail")]) >= 1.0, "{text}");
    exact(
        &s,
        q,
        &[("type", "PTR"), ("outcome", "timeout")],
        1.0,
        &text,
    );
    exact(&s, q, &[("type", "PTR"), ("outcome", "ok")], 2.0, &text);
    exact(
        &s,
        q,
        &[("type", "PTR"), ("outcome", "servfail")],
        1.0,
        &text,
    );
    assert!(
        sum(&s, "authmilter_dns_cache_hits_total", &[("type", "TXT")]) >= 2.0,
        "{text}"
    );
    // Every query sent was a cache miss, and was timed.
    let misses = sum(&s, "authmilter_dns_cache_misses_total", &[]);
    assert_eq!(sum(&s, q, &[]), misses, "{text}");
    assert_eq!(
        sum(&s, "authmilter_dns_query_duration_seconds_count", &[]),
        misses,
        "{text}"
    );

    // Histograms with buckets, one observation per message.
    let h = "authmilter_dns_query_duration_seconds_bucket";
    assert!(
        value(&s, h, &[("type", "TXT"), ("le", "+Inf")]).unwrap_or(0.0) >= 2.0,
        "{text}"
    );
    assert!(value(&s, h, &[("type", "TXT"), ("le", "0.0005")]).is_some());
    // The timed-out PTR query took about dns.timeout (1 s), the others less.
    let ptr_all = value(&s, h, &[("type", "PTR"), ("le", "+Inf")]).unwrap();
    assert_eq!(
        value(&s, h, &[("type", "PTR"), ("le", "0.5")]),
        Some(ptr_all - 1.0),
        "{text}"
    );
    exact(
        &s,
        "authmilter_message_duration_seconds_count",
        &[],
        5.0,
        &text,
    );
    exact(&s, "authmilter_eom_duration_seconds_count", &[], 5.0, &text);
    exact(
        &s,
        "authmilter_message_duration_seconds_bucket",
        &[("le", "+Inf")],
        5.0,
        &text,
    );
    exact(
        &s,
        "authmilter_check_duration_seconds_count",
        &[("check", "dmarc")],
        5.0,
        &text,
    );
    exact(
        &s,
        "authmilter_check_duration_seconds_count",
        &[("check", "iprev")],
        5.0,
        &text,
    );
    assert!(text.contains("# TYPE authmilter_check_duration_seconds histogram"));

    // Reloads: one good, one refused.
    daemon.signal(Signal::SIGHUP);
    daemon.wait_logged("configuration reloaded", 1).await;
    std::fs::write(&conf, "[policy]\nmode = \"sometimes\"\n").unwrap();
    daemon.signal(Signal::SIGHUP);
    daemon.wait_logged("reload refused", 1).await;
    let (text, s) = scrape(metrics).await;
    let c = "authmilter_config_reloads_total";
    exact(&s, c, &[("outcome", "ok")], 1.0, &text);
    exact(&s, c, &[("outcome", "refused")], 1.0, &text);

    // Other paths are not found.
    assert_eq!(http_get(metrics, "/nope").await.0, 404);

    // The SIGUSR1 summary counts the same messages.
    daemon.signal(Signal::SIGUSR1);
    daemon
        .wait_logged("stats: messages=5 accepted=3 tagged=0 quarantined=0 tempfailed=0 rejected=2 not_enforced=1", 1)
        .await;
    assert!(daemon.stop().success());
}

/// The panic counter, on a binary built with the test-only panic header.
#[cfg(feature = "fault-injection")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn panics_are_counted_by_stage() {
    let dns = dns().await;
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("panics.toml");
    let (milter_port, metrics_port) = (free_port(), free_port());
    let metrics_cfg = format!("[metrics]\naddress = \"127.0.0.1:{metrics_port}\"\n");
    write_config(&conf, milter_port, dns.addr, &metrics_cfg);
    let mut daemon = Daemon::spawn(&conf, &dir.path().join("panics.log"), Some("info"));
    let milter: SocketAddr = ([127, 0, 0, 1], milter_port).into();
    let metrics: SocketAddr = ([127, 0, 0, 1], metrics_port).into();
    daemon.wait_logged("authmilter listening", 1).await;
    wait_listening(metrics).await;
    let msg = b"X-Authmilter-Test-Panic: now\r\nFrom: alerts@bank.test\r\n\r\nhi\r\n";
    assert_eq!(send(milter, &good(), msg).await.verdict(), "tempfail");
    let (text, s) = scrape(metrics).await;
    exact(
        &s,
        "authmilter_panics_total",
        &[("stage", "header")],
        1.0,
        &text,
    );
    exact(
        &s,
        "authmilter_messages_total",
        &[("verdict", "tempfail")],
        1.0,
        &text,
    );
    assert!(daemon.stop().success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_endpoint_without_an_address() {
    let dns = dns().await;
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("off.toml");
    let milter_port = free_port();
    write_config(&conf, milter_port, dns.addr, "");
    let mut daemon = Daemon::spawn(&conf, &dir.path().join("off.log"), Some("info"));
    daemon.wait_logged("authmilter listening", 1).await;
    let milter: SocketAddr = ([127, 0, 0, 1], milter_port).into();
    assert_eq!(send(milter, &good(), GOOD).await.verdict(), "accept");
    assert!(!daemon.log_text().contains("/metrics"));
    assert!(daemon.stop().success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_endpoint_that_cannot_bind_stops_the_start() {
    let dns = dns().await;
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("busy.toml");
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let metrics_cfg = format!("[metrics]\naddress = \"127.0.0.1:{port}\"\n");
    write_config(&conf, free_port(), dns.addr, &metrics_cfg);
    let mut daemon = Daemon::spawn(&conf, &dir.path().join("busy.log"), Some("info"));
    let status = daemon.child.wait().unwrap();
    assert_eq!(status.code(), Some(1));
    assert!(
        daemon.log_text().contains(&format!(
            "cannot listen on metrics.address 127.0.0.1:{port}"
        )),
        "{}",
        daemon.log_text()
    );
}
