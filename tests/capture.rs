//! `[capture]`: the daemon writes chosen messages with every DNS answer
//! their evaluation used, and the replay command in the capture gives the
//! same verdict and the same Authentication-Results offline, from the
//! capture alone (no other zone, no network).

mod common;

use common::{dns_server::*, *};
use std::{path::Path, process::Command, time::Duration};

fn captures(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut v: Vec<_> = std::fs::read_dir(dir)
        .map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    v.sort();
    v
}

/// Runs the replay line of a capture (with `--json`).
fn replay(folder: &Path) -> serde_json::Value {
    let about = std::fs::read_to_string(folder.join("capture.txt")).unwrap();
    let line = about
        .lines()
        .map(str::trim)
        .find(|l| l.starts_with("authmilter check "))
        .unwrap_or_else(|| panic!("no replay line in\n{about}"));
    let cmd = format!(
        "{} {} --json",
        env!("CARGO_BIN_EXE_authmilter"),
        line.trim_start_matches("authmilter ")
    );
    let out = Command::new("sh").arg("-c").arg(&cmd).output().unwrap();
    assert!(
        out.status.success(),
        "{cmd}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn captured_messages_replay_to_the_same_verdict() {
    let mut z = Zones::with_origins();
    for t in [BANK_ZONE, REV_ZONE, TLD_ZONE] {
        z.add_zone_text(t, None);
    }
    let dns = TestDns::start(z).await;
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        "{}\n[capture]\ndirectory = \"{}\"\ndomains = [\"bank.test\"]\n",
        config_text(dns.addr, ""),
        dir.path().display()
    );
    let milter = TestMilter::start(authmilter::config::Config::parse(&text, "t").unwrap()).await;
    let msg = b"From: alerts@bank.test\r\nSubject: hi\r\n\r\nbody\r\n";
    let other = b"From: a@other.test\r\nSubject: hi\r\n\r\nbody\r\n";
    let legit = send(
        milter.addr,
        &Envelope::new("192.0.2.10", "mail.bank.test", "alerts@bank.test"),
        msg,
    )
    .await;
    let spoof = send(
        milter.addr,
        &Envelope::new("198.51.100.7", "evil.test", "x@evil.test"),
        msg,
    )
    .await;
    // Neither From nor MAIL FROM in bank.test: not captured.
    send(
        milter.addr,
        &Envelope::new("198.51.100.7", "evil.test", "x@evil.test"),
        other,
    )
    .await;
    assert_eq!((legit.verdict(), spoof.verdict()), ("accept", "reject"));
    let mut found = Vec::new();
    for _ in 0..100 {
        found = captures(dir.path());
        if found.len() >= 2 && found.iter().all(|f| f.join("capture.txt").exists()) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    milter.stop().await;
    drop(dns); // the replay must not need it
    assert_eq!(found.len(), 2, "{found:?}");
    for f in &found {
        for name in ["message.eml", "dns.zone", "capture.txt", "authmilter.toml"] {
            let meta = std::fs::metadata(f.join(name)).unwrap();
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(meta.permissions().mode() & 0o777, 0o600, "{name}");
        }
    }
    let zone = std::fs::read_to_string(found[0].join("dns.zone")).unwrap();
    // The connection's iprev answers are in the capture too.
    assert!(
        zone.contains("10.2.0.192.in-addr.arpa. ") && zone.contains("PTR"),
        "{zone}"
    );
    let first = replay(&found[0]);
    assert_eq!(first["verdict"], "accept", "{first}");
    assert_eq!(
        first["authentication_results"]
            .as_str()
            .map(|a| format!(" {a}").replace("\n\t", " ")),
        legit.auth_results(),
        "{zone}"
    );
    let second = replay(&found[1]);
    assert_eq!(second["verdict"], "reject", "{second}");
    assert_eq!(second["reply"].as_str(), spoof.reply().as_deref());
}
