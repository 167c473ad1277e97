//! The binary's command line: `--check-config` and clear config errors.

use std::process::Command;

fn authmilter(args: &[&str]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_authmilter"))
        .args(args)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[test]
fn check_config_accepts_the_shipped_file() {
    let conf = concat!(env!("CARGO_MANIFEST_DIR"), "/conf/authmilter.toml");
    let (ok, text) = authmilter(&["--check-config", "-c", conf]);
    assert!(ok, "{text}");
    assert!(text.contains("configuration OK"), "{text}");
}

#[test]
fn check_config_names_file_line_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    std::fs::write(
        &path,
        "[dns]\ntimeout = 1.0\n\n[policy]\nquarantine = \"hole\"\n",
    )
    .unwrap();
    let (ok, text) = authmilter(&["--check-config", "-c", path.to_str().unwrap()]);
    assert!(!ok);
    assert!(
        text.contains(&format!("{}:5: key `policy.quarantine`", path.display())),
        "{text}"
    );
}

#[test]
fn check_config_warns_about_footguns() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("w.toml");
    std::fs::write(&path, "[policy]\ntrusted_networks = [\"0.0.0.0/0\"]\n").unwrap();
    let (ok, text) = authmilter(&["--check-config", "-c", path.to_str().unwrap()]);
    assert!(ok, "{text}");
    assert!(
        text.contains("warning: policy.trusted_networks includes public address space"),
        "{text}"
    );
}
