//! The daemon's lifecycle, on the real binary: SIGHUP reloads (an invalid file
//! is refused and the old configuration stays), SIGTERM stops accepting and
//! drains the messages in flight.

mod common;

use common::{
    daemon::{free_port, wait_for, Daemon},
    dns_server::{TestDns, Zones},
    *,
};
use nix::{
    sys::signal::{kill, Signal},
    unistd::Pid,
};
use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

const ZONE: &str = "$ORIGIN bank.test.\n$TTL 60\n@ IN SOA ns.bank.test. h.bank.test. 1 3600 600 86400 0\n@ IN TXT \"v=spf1 ip4:192.0.2.10 -all\"\n_dmarc IN TXT \"v=DMARC1; p=reject\"\n";

fn write_config(path: &Path, port: u16, dns: SocketAddr, id: &str) {
    let text = config_text(dns, "")
        .replace(
            "[milter]\n",
            &format!("[milter]\nsocket = \"inet:127.0.0.1:{port}\"\ndrain_timeout = 10\n"),
        )
        .replace(
            &format!("authserv_id = \"{AUTHSERV_ID}\""),
            &format!("authserv_id = \"{id}\""),
        );
    std::fs::write(path, text).unwrap();
}

/// A daemon on its own configuration file and DNS server, listening.
struct Started {
    dns: TestDns,
    dir: tempfile::TempDir,
    conf: PathBuf,
    log: PathBuf,
    port: u16,
    addr: SocketAddr,
    child: Daemon,
}

/// Starts the daemon with `NAME.toml` (authserv-id `id`), logging to `NAME.log`.
async fn start(name: &str, id: &str) -> Started {
    let mut z = Zones::with_origins();
    z.add_zone_text(ZONE, None);
    let dns = TestDns::start(z).await;
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join(format!("{name}.toml"));
    let log = dir.path().join(format!("{name}.log"));
    let port = free_port();
    write_config(&conf, port, dns.addr, id);
    // The invocation without a subcommand (as before `run` existed).
    let child = Daemon::spawn_as(&[], &conf, &log, Some("info"));
    wait_for("listening", || log_has(&log, "authmilter listening")).await;
    Started {
        addr: ([127, 0, 0, 1], port).into(),
        dns,
        dir,
        conf,
        log,
        port,
        child,
    }
}

fn log_has(log: &Path, text: &str) -> bool {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .contains(text)
}

fn spoof() -> Envelope {
    Envelope::new("198.51.100.7", "evil.example", "x@evil.example")
}

const SPOOF: &[u8] = b"From: security@bank.test\r\n\r\nhi\r\n";

fn good() -> Envelope {
    Envelope::new("192.0.2.10", "mail.bank.test", "alerts@bank.test")
}

const GOOD: &[u8] = b"From: alerts@bank.test\r\n\r\nhi\r\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_reloads_and_refuses_invalid_files() {
    let Started {
        dns,
        dir: _dir,
        conf,
        log,
        port,
        addr,
        mut child,
    } = start("a", "one.test").await;
    let pid = Pid::from_raw(child.child.id() as i32);

    // A connection opened before the reload keeps its configuration.
    let mut before = open(addr).await;

    write_config(&conf, port, dns.addr, "two.test");
    kill(pid, Signal::SIGHUP).unwrap();
    wait_for("reload", || log_has(&log, "configuration reloaded")).await;

    let out = send(addr, &spoof(), SPOOF).await;
    assert_eq!(out.verdict(), "reject");
    let out = send_on(&mut before, &good(), GOOD).await;
    assert!(
        out.auth_results().unwrap().starts_with(" one.test;"),
        "{:?}",
        out.auth_results()
    );
    before.close().await.unwrap();
    let mut after = open(addr).await;
    let out = send_on(&mut after, &good(), GOOD).await;
    assert!(
        out.auth_results().unwrap().starts_with(" two.test;"),
        "{:?}",
        out.auth_results()
    );
    after.close().await.unwrap();

    // An invalid file is refused, with file, line and key; the old one stays.
    std::fs::write(&conf, "[policy]\nmode = \"sometimes\"\n").unwrap();
    kill(pid, Signal::SIGHUP).unwrap();
    wait_for("refusal", || log_has(&log, "reload refused")).await;
    assert!(log_has(
        &log,
        &format!("{}:2: key `policy.mode`", conf.display())
    ));
    let mut again = open(addr).await;
    let out = send_on(&mut again, &good(), GOOD).await;
    assert!(out.auth_results().unwrap().starts_with(" two.test;"));
    again.close().await.unwrap();

    kill(pid, Signal::SIGTERM).unwrap();
    assert!(child.child.wait().unwrap().success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_in_flight_messages() {
    let Started {
        dns: _dns,
        dir: _dir,
        log,
        addr,
        mut child,
        ..
    } = start("b", "mx.recipient.test").await;

    // A message in flight: MAIL, RCPT and a header sent, no end of message yet.
    let mut conn = open(addr).await;
    conn.connect("client", SocketAddr::from(([198, 51, 100, 7], 25)))
        .await
        .unwrap();
    conn.helo("evil.example").await.unwrap();
    conn.mail(["<x@evil.example>"]).await.unwrap();
    conn.rcpt(["<bob@recipient.test>"]).await.unwrap();
    conn.header("From", " security@bank.test").await.unwrap();
    // These stages are negotiated without replies: give the daemon a moment
    // to read them before the signal.
    tokio::time::sleep(Duration::from_millis(500)).await;

    kill(Pid::from_raw(child.child.id() as i32), Signal::SIGTERM).unwrap();
    wait_for("drain", || log_has(&log, "draining 1 in-flight messages")).await;
    // No new connections are accepted.
    let t = Instant::now();
    loop {
        if tokio::net::TcpStream::connect(addr).await.is_err() {
            break;
        }
        assert!(
            t.elapsed() < Duration::from_secs(5),
            "still accepting after SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The message in flight still gets its verdict.
    conn.eoh().await.unwrap();
    conn.body(b"hi\r\n".to_vec()).await.unwrap();
    let (_, status) = conn.eom().await.unwrap();
    assert!(
        matches!(status, indymilter_test::Status::Reject { .. }),
        "{status:?}"
    );
    let _ = conn.close().await;
    let t = Instant::now();
    let status = child.child.wait().unwrap();
    assert!(status.success());
    assert!(t.elapsed() < Duration::from_secs(10));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreadable_config_after_dropping_privileges_is_reported_at_start() {
    if !nix::unistd::Uid::effective().is_root() {
        eprintln!(
            "SKIPPED unreadable_config_after_dropping_privileges_is_reported_at_start: needs root"
        );
        return;
    }
    let mut z = Zones::with_origins();
    z.add_zone_text(ZONE, None);
    let dns = TestDns::start(z).await;
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("priv.toml");
    let log = dir.path().join("priv.log");
    let port = free_port();
    write_config(&conf, port, dns.addr, "mx.recipient.test");
    let text = std::fs::read_to_string(&conf)
        .unwrap()
        .replace("[milter]\n", "[milter]\nuser = \"nobody\"\n");
    std::fs::write(&conf, text).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&conf, std::fs::Permissions::from_mode(0o600)).unwrap();
    let _child = Daemon::spawn_as(&[], &conf, &log, Some("info"));
    wait_for("listening", || log_has(&log, "authmilter listening")).await;
    assert!(
        log_has(&log, "is not readable by user nobody"),
        "{}",
        std::fs::read_to_string(&log).unwrap()
    );
}
