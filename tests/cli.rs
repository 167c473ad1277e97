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

/// `authmilter check` in `dir` on a one-line message from alerts@bank.test,
/// with this zone file and configuration, then `args`.
fn check_in(
    dir: &std::path::Path,
    zone_text: &str,
    conf_text: &str,
    args: &[&str],
) -> (bool, String) {
    let zone = dir.join("bank.zone");
    std::fs::write(&zone, zone_text).unwrap();
    let conf = dir.join("a.toml");
    std::fs::write(&conf, conf_text).unwrap();
    let msg = dir.join("m.eml");
    std::fs::write(&msg, "From: alerts@bank.test\nSubject: x\n\nhello\n").unwrap();
    let mut all = vec![
        "check",
        "-c",
        conf.to_str().unwrap(),
        "--dns-zone",
        zone.to_str().unwrap(),
    ];
    all.extend_from_slice(args);
    all.push(msg.to_str().unwrap());
    authmilter(&all)
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

/// The man pages in the repository are those the command definition makes
/// (`AUTHMILTER_WRITE_MAN=1 cargo test --test cli` rewrites them).
#[test]
fn man_pages_are_in_sync() {
    let dir = std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/man"));
    let made = authmilter::cli::man_pages();
    if std::env::var_os("AUTHMILTER_WRITE_MAN").is_some() {
        let _ = std::fs::remove_dir_all(dir);
        std::fs::create_dir_all(dir).unwrap();
        for (name, text) in &made {
            std::fs::write(dir.join(name), text).unwrap();
        }
    }
    let mut kept: Vec<String> = std::fs::read_dir(dir)
        .map(|d| {
            d.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    kept.sort();
    let mut names: Vec<String> = made.iter().map(|(n, _)| n.clone()).collect();
    names.sort();
    let stale = "docs/man is out of date: run AUTHMILTER_WRITE_MAN=1 cargo test --test cli";
    assert_eq!(kept, names, "{stale}");
    for (name, text) in &made {
        assert!(
            std::fs::read_to_string(dir.join(name)).unwrap_or_default() == *text,
            "{name}: {stale}"
        );
    }
    let all: String = made.iter().map(|(_, t)| t.as_str()).collect();
    for word in [
        "authmilter\\-check",
        "\\-\\-dns\\-zone",
        "\\-\\-save\\-dns",
        "\\-\\-explain",
        "Exit codes",
        "authmilter\\-config\\-show",
    ] {
        assert!(all.contains(word), "man pages lack {word}");
    }
}

#[test]
fn config_check_subcommand_and_alias_agree() {
    let conf = concat!(env!("CARGO_MANIFEST_DIR"), "/conf/authmilter.toml");
    for args in [
        &["config", "check", "-c", conf][..],
        &["-c", conf, "config", "check"],
        &["--check-config", "-c", conf],
    ] {
        let (ok, text) = authmilter(args);
        assert!(ok && text.contains("configuration OK"), "{args:?}: {text}");
    }
    let (ok, text) = authmilter(&["config", "check", "-c", "/nonexistent/authmilter.toml"]);
    assert!(
        !ok && text.contains("/nonexistent/authmilter.toml: cannot read"),
        "{text}"
    );
}

/// `config show` prints every key with the value in force, and reading the
/// output back gives the same configuration.
#[test]
fn config_show_round_trips() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.toml");
    std::fs::write(
        &path,
        "[milter]\nauthserv_id = \"mx.example.org\"\nsocket_mode = \"0660\"\n\n[policy]\nmode = \"monitor\"\ntrusted_networks = [\"10.0.0.0/8\"]\n\n[policy.rules.spf]\nfail = { action = \"reject\", text = \"no\" }\n\n[[policy.overrides]]\ndomain = \"bank.example\"\nnever_reject = true\n\n[capture]\ndirectory = \"/var/lib/authmilter/captures\"\nsample = 100\n",
    )
    .unwrap();
    let (ok, shown) = authmilter(&["config", "show", "-c", path.to_str().unwrap()]);
    assert!(ok, "{shown}");
    for key in [
        "authserv_id = \"mx.example.org\"",
        "socket_mode = \"0660\"",
        "mode = \"monitor\"",
        "max_message_size = 33554432",
        "timeout = 5.0",
        "sample = 100",
        "[policy.rules.spf.fail]",
        "[[policy.overrides]]",
    ] {
        assert!(shown.contains(key), "{key} missing from\n{shown}");
    }
    let again = dir.path().join("b.toml");
    std::fs::write(&again, &shown).unwrap();
    let (ok, shown_again) = authmilter(&["config", "show", "-c", again.to_str().unwrap()]);
    assert!(ok, "{shown_again}");
    let body = |s: &str| s.lines().skip(1).collect::<Vec<_>>().join("\n");
    assert_eq!(body(&shown), body(&shown_again));
    // The defaults, without a file.
    let (ok, defaults) = authmilter(&["config", "show", "--defaults"]);
    assert!(
        ok && defaults.contains("socket = \"inet:127.0.0.1:8897\""),
        "{defaults}"
    );
}

/// `check` against a zone file of the project: the trace, and DNS names
/// outside every zone answered as a DNS failure (temperror, tempfail).
#[test]
fn check_explains_and_fails_closed_outside_the_zones() {
    let dir = tempfile::tempdir().unwrap();
    let zone = dir.path().join("bank.zone");
    std::fs::write(
        &zone,
        "$ORIGIN bank.test.\n$TTL 300\n@ IN SOA ns hostmaster 1 3600 600 86400 300\n@ IN TXT \"v=spf1 ip4:192.0.2.10 -all\"\n_dmarc IN TXT \"v=DMARC1; p=reject\"\n",
    )
    .unwrap();
    let msg = dir.path().join("m.eml");
    std::fs::write(&msg, "From: alerts@bank.test\nSubject: x\n\nhello\n").unwrap();
    let common = [
        "check",
        "--dns-zone",
        zone.to_str().unwrap(),
        "--client-ip",
        "198.51.100.7",
        "--helo",
        "evil.test",
        "--mail-from",
        "x@bank.test",
        "--rcpt",
        "bob@recipient.test",
    ];
    let mut args = common.to_vec();
    args.extend(["--explain", msg.to_str().unwrap()]);
    let (ok, out) = authmilter(&args);
    assert!(ok, "{out}");
    for want in [
        "DNS TXT bank.test: \"v=spf1 ip4:192.0.2.10 -all\"",
        "DNS TXT _dmarc.bank.test: \"v=DMARC1; p=reject\"",
        "DMARC policy discovery for bank.test: a record at the Author Domain",
        "result spf=fail",
        "result dmarc=fail",
        "verdict reject:",
        "Authentication-Results: ",
        "reply: 550 5.7.1",
    ] {
        assert!(out.contains(want), "{want:?} missing from\n{out}");
    }
    // The PTR lookup and the tree walk leave the zone: SERVFAIL, not NXDOMAIN.
    assert!(out.contains("iprev=temperror"), "{out}");
    // A DMARC record the zones cannot answer: temperror and tempfail, never a pass.
    let mut args = common.to_vec();
    args[8] = "x@other.test";
    let other = dir.path().join("o.eml");
    std::fs::write(&other, "From: a@other.test\n\nhello\n").unwrap();
    args.extend(["--json", other.to_str().unwrap()]);
    let (ok, out) = authmilter(&args);
    assert!(ok, "{out}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["verdict"], "tempfail", "{v}");
    assert!(v["reply"].as_str().unwrap().starts_with("451 4.7.1"), "{v}");
}

#[test]
fn check_names_a_bad_zone_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let zone = dir.path().join("bad.zone");
    std::fs::write(&zone, "$ORIGIN x.test.\n;! nxdomain\n").unwrap();
    let (ok, out) = authmilter(&[
        "check",
        "--dns-zone",
        zone.to_str().unwrap(),
        "--client-ip",
        "192.0.2.1",
        "/dev/null",
    ]);
    assert!(!ok);
    assert!(out.contains(&format!("{}:2:", zone.display())), "{out}");
}

/// `check` takes the SMTP AUTH and TLS macros as options, and writes what
/// `[results]` and `[spf] received_spf_header` ask for.
#[test]
fn check_takes_auth_and_tls_macros() {
    let dir = tempfile::tempdir().unwrap();
    let (ok, out) = check_in(
        dir.path(),
        "$ORIGIN bank.test.\n$TTL 300\n@ IN SOA ns hostmaster 1 3600 600 86400 300\n@ IN TXT \"v=spf1 ip4:192.0.2.10 -all\"\n_dmarc IN TXT \"v=DMARC1; p=none\"\n",
        "[milter]\nauthserv_id = \"mx.test\"\n[reports]\nenabled = false\n[spf]\nreceived_spf_header = true\n[results]\nauth = true\nx_tls = true\n",
        &[
            "--client-ip",
            "198.51.100.7",
            "--helo",
            "laptop",
            "--mail-from",
            "alerts@bank.test",
            "--auth",
            "alice",
            "--auth-type",
            "PLAIN",
            "--tls-version",
            "TLSv1.3",
            "--cipher",
            "TLS_AES_128_GCM_SHA256",
            "--cipher-bits",
            "128",
            "--json",
        ],
    );
    assert!(ok, "{out}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let ar = v["authentication_results"].as_str().unwrap();
    assert!(ar.contains("auth=pass (PLAIN) smtp.auth=alice"), "{ar}");
    assert!(
        ar.contains(
            "x-tls=pass smtp.version=TLSv1.3 smtp.cipher=TLS_AES_128_GCM_SHA256 smtp.bits=128"
        ),
        "{ar}"
    );
    let added = v["added_headers"].as_array().unwrap();
    assert!(
        added.iter().any(|h| h["name"] == "Received-SPF"
            && h["value"]
                .as_str()
                .unwrap()
                .starts_with("fail (mx.test: domain of alerts@bank.test")),
        "{v}"
    );
    // The cipher without a TLS version is refused as bad usage.
    let (ok, out) = authmilter(&["check", "--client-ip", "192.0.2.1", "--cipher", "X"]);
    assert!(!ok && out.contains("--tls-version"), "{out}");
}

#[test]
fn check_with_zone_files_stays_offline_even_with_bimi_on() {
    let dir = tempfile::tempdir().unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let root = rcgen::CertificateParams::new(Vec::<String>::new())
        .unwrap()
        .self_signed(&key)
        .unwrap();
    let pem = dir.path().join("roots.pem");
    std::fs::write(&pem, root.pem()).unwrap();
    let (ok, out) = check_in(
        dir.path(),
        "$ORIGIN bank.test.\n$TTL 300\n@ IN SOA ns hostmaster 1 3600 600 86400 300\n@ IN TXT \"v=spf1 ip4:192.0.2.10 -all\"\n_dmarc IN TXT \"v=DMARC1; p=reject\"\ndefault._bimi IN TXT \"v=BIMI1; l=https://logo.bank.test/l.svg; a=https://logo.bank.test/v.pem\"\nlogo IN A 192.0.2.80\n",
        &format!(
            "[milter]\nauthserv_id = \"mx.test\"\n[reports]\nenabled = false\n[bimi]\nenabled = true\ntrust_anchors = \"{p}\"\nhttps_roots = \"{p}\"\n",
            p = pem.display()
        ),
        &[
            "--client-ip",
            "192.0.2.10",
            "--helo",
            "mail.bank.test",
            "--mail-from",
            "alerts@bank.test",
            "--json",
        ],
    );
    assert!(ok, "{out}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let ar = v["authentication_results"].as_str().unwrap();
    assert!(ar.contains("dmarc=pass"), "{ar}");
    assert!(!ar.contains("bimi="), "{ar}");
}
