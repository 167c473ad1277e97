//! `authmilter migrate`: hand-made OpenDKIM, OpenDMARC, policyd-spf and
//! main.cf files with every key it translates (tests/fixtures/migrate/),
//! and the files exactly as Debian ships them (unpacked from the packages
//! by scripts/test-all into AUTHMILTER_DEBIAN_CONFS). The generated TOML must
//! pass the configuration check; every line is translated or reported.

use authmilter::{
    config::Config,
    migrate::{self, Input, Migration, Sources},
    policy::Mode,
};
use std::path::{Path, PathBuf};

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/migrate")
}

/// The fixtures in a temp dir, their `/FIXTURES` references pointing there.
fn fixture_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for e in std::fs::read_dir(fixtures()).unwrap() {
        let p = e.unwrap().path();
        let text = std::fs::read_to_string(&p)
            .unwrap()
            .replace("/FIXTURES", dir.path().to_str().unwrap());
        std::fs::write(dir.path().join(p.file_name().unwrap()), text).unwrap();
    }
    dir
}

fn input(p: &Path) -> Option<Input> {
    Some(Input {
        path: p.display().to_string(),
        text: std::fs::read_to_string(p).ok()?,
    })
}

fn run(
    dkim: Option<&Path>,
    dmarc: Option<&Path>,
    spf: Option<&Path>,
    main_cf: Option<&Path>,
) -> (Migration, String) {
    let read = |p: &str| std::fs::read_to_string(p).map_err(|e| e.to_string());
    let src = Sources {
        opendkim: dkim.and_then(input),
        opendmarc: dmarc.and_then(input),
        policyd_spf: spf.and_then(input),
        postfix: main_cf.and_then(input),
        read: &read,
    };
    let m = migrate::migrate(&src);
    let text = m.render(&["test"]);
    (m, text)
}

fn texts(notes: &[migrate::Note]) -> Vec<String> {
    notes
        .iter()
        .map(|n| format!("{} @ {}", n.text, n.origin))
        .collect()
}

#[test]
fn hand_made_files_with_every_supported_key() {
    let d = fixture_dir();
    let p = |n: &str| d.path().join(n);
    let (m, text) = run(
        Some(&p("opendkim.conf")),
        Some(&p("opendmarc.conf")),
        Some(&p("policyd-spf.conf")),
        Some(&p("main.cf")),
    );
    let c = Config::parse(&text, "migrated.toml").unwrap_or_else(|e| panic!("{e}\n{text}"));
    // Header_Type = SPF: policyd-spf's Received-SPF fields are kept.
    assert!(
        text.contains("policyd-spf.conf:11: Header_Type = SPF\nreceived_spf_header = true\n"),
        "{text}"
    );
    assert_eq!(c.milter.authserv_id, "mx.example.net");
    assert_eq!(c.policy.mode, Mode::Enforce, "RejectFailures true");
    assert!(!c.policy.trust_authenticated);
    assert_eq!(
        c.dns.timeout.as_secs(),
        9,
        "the later DNSTimeout (OpenDMARC's) wins"
    );
    assert_eq!(c.dns.nameservers.len(), 2);
    assert!(c.policy.spf_reject_at_mail);
    assert!(c.reports.failure.enabled);
    let nets: Vec<String> = c
        .policy
        .trusted_networks
        .iter()
        .map(|n| n.to_string())
        .collect();
    for n in [
        "127.0.0.0/8",
        "::1/128",
        "10.1.0.0/16",
        "192.0.2.0/24",
        "2001:db8::/32",
        "203.0.113.0/24",
        "198.51.100.0/24",
    ] {
        assert!(nets.contains(&n.to_string()), "{n} not in {nets:?}");
    }
    // Covered by the defaults (127.0.0.1, ::ffff:127.0.0.0/104): not added again.
    assert_eq!(nets.len(), 7, "{nets:?}");
    let rule = |check: &str, result: &str| {
        c.policy
            .rules
            .iter()
            .find(|r| r.check.name() == check && r.result.as_str() == result)
            .map(|r| r.action.as_str())
    };
    assert_eq!(rule("spf", "fail"), Some("reject"));
    assert_eq!(
        rule("spf", "softfail"),
        Some("reject"),
        "Mail_From_reject = Softfail"
    );
    assert_eq!(rule("spf", "neutral"), None);
    assert_eq!(
        rule("spf-helo", "neutral"),
        Some("reject"),
        "HELO_reject = SPF_Not_Pass"
    );
    assert_eq!(rule("spf", "permerror"), Some("reject"));
    assert_eq!(rule("spf", "temperror"), Some("tempfail"));
    assert_eq!(
        rule("dkim", "fail"),
        Some("reject"),
        "On-BadSignature reject"
    );
    assert_eq!(
        rule("dkim", "temperror"),
        Some("tempfail"),
        "On-DNSError tempfail"
    );
    assert_eq!(
        rule("dkim", "none"),
        Some("reject"),
        "On-NoSignature discard → reject"
    );
    assert_eq!(rule("dkim", "permerror"), None, "On-KeyNotFound accept");
    let ov: Vec<&str> = c
        .policy
        .overrides
        .iter()
        .map(|o| o.domain.as_str())
        .collect();
    assert_eq!(ov, ["partner.example", "legacy.example"]);
    // Each translated key is commented with the line it came from.
    assert!(
        text.contains("# ")
            && text.contains("opendmarc.conf:3: RejectFailures          true\nmode = \"enforce\""),
        "{text}"
    );
    // What differs, with the reason, names the key.
    let diff = texts(&m.differences).join("\n");
    for key in [
        "TrustedAuthservIDs",
        "PublicSuffixList",
        "MinimumKeyBits",
        "IgnoreDomains",
        "discard",
        "Void_Limit 3",
        "RCPT TO",
        "milter_default_action = accept",
        "HoldQuarantinedMessages false",
    ] {
        assert!(diff.contains(key), "no difference for {key}:\n{diff}");
    }
    // RequiredHeaders true: OpenDMARC rejected an invalid From as authmilter does.
    assert!(!diff.contains("without exactly one valid From"), "{diff}");
    // What the old programs decide differently whatever their keys (each
    // measured by integration/migration), from the file that runs them.
    for (what, from) in [
        ("np=, psd= and t=", "OpenDMARC 1.4 itself"),
        ("under strict alignment", "OpenDMARC 1.4 itself"),
        (
            "A DNS failure while looking up a DMARC policy",
            "OpenDMARC 1.4 itself",
        ),
        (
            "reads every mailbox of the From field",
            "OpenDMARC 1.4 itself",
        ),
        ("Bounces (null MAIL FROM)", "OpenDMARC 1.4 itself"),
        ("rsa-sha1", "OpenDKIM 2.11 itself"),
        ("t=) far in the future", "OpenDKIM 2.11 itself"),
    ] {
        assert!(
            m.differences
                .iter()
                .any(|n| n.text.contains(what) && n.origin.ends_with(from)),
            "no difference {what:?} from {from}:\n{diff}"
        );
    }
    let human = texts(&m.human).join("\n");
    assert!(
        human.contains("relay.example.net") && human.contains("TrustedHosts:5"),
        "{human}"
    );
    assert!(human.contains("the exception 10.1.2.3/32"), "{human}");
    assert!(human.contains("Domain_Whitelist"), "{human}");
    let dropped = texts(&m.dropped).join("\n");
    assert!(
        dropped.contains("KeyTable is a signing setting"),
        "{dropped}"
    );
    assert!(
        dropped.contains("HistoryFile") && dropped.contains("authmilter report --send"),
        "{dropped}"
    );
    // Unknown and unparsable lines: reported with file and line, never skipped.
    let unknown = texts(&m.unknown);
    assert_eq!(unknown.len(), 4, "{unknown:#?}");
    for (what, at) in [
        ("FrobnicateHeaders", "opendkim.conf:21"),
        ("Selector", "opendkim.conf:22"),
        ("SomethingNew", "opendmarc.conf:16"),
        ("not a `key = value` line", "policyd-spf.conf:13"),
    ] {
        assert!(
            unknown.iter().any(|u| u.contains(what) && u.contains(at)),
            "{what} at {at}: {unknown:#?}"
        );
    }
    // main.cf: the old milters replaced by authmilter's socket, the others
    // kept in place; policyd-spf's policy service removed.
    let cf = m.main_cf.join("\n");
    assert!(
        cf.contains("smtpd_milters = inet:127.0.0.1:8897, inet:127.0.0.1:11332"),
        "{cf}"
    );
    assert!(
        cf.contains("non_smtpd_milters = inet:127.0.0.1:8897"),
        "{cf}"
    );
    assert!(
        cf.contains("smtpd_recipient_restrictions = permit_mynetworks, reject_unauth_destination"),
        "{cf}"
    );
    assert!(
        cf.contains("master.cf: remove the policyd-spf service"),
        "{cf}"
    );
}

#[test]
fn a_signing_opendkim_stays_in_main_cf() {
    let d = tempfile::tempdir().unwrap();
    let dkim = d.path().join("opendkim.conf");
    std::fs::write(
        &dkim,
        "Mode sv\nSocket inet:8891@localhost\nKeyTable /etc/opendkim/key.table\n",
    )
    .unwrap();
    let cf = d.path().join("main.cf");
    std::fs::write(
        &cf,
        "smtpd_milters = inet:localhost:8891, unix:/run/opendmarc/opendmarc.sock\n",
    )
    .unwrap();
    let (m, text) = run(Some(&dkim), None, None, Some(&cf));
    Config::parse(&text, "t").unwrap();
    assert!(
        m.main_cf[0].ends_with("smtpd_milters = inet:localhost:8891, inet:127.0.0.1:8897"),
        "{:?}",
        m.main_cf
    );
    assert!(texts(&m.human).join("\n").contains("also signs"));
}

/// The files as the opendkim, opendmarc and postfix-policyd-spf-python
/// packages ship them: every line understood, the result valid.
#[test]
fn the_files_debian_ships() {
    let Some(dir) = std::env::var_os("AUTHMILTER_DEBIAN_CONFS") else {
        eprintln!("SKIPPED: AUTHMILTER_DEBIAN_CONFS is not set (scripts/test-all unpacks the Debian packages' files there)");
        return;
    };
    let dir = PathBuf::from(dir);
    let f = |rel: &str| {
        let p = dir.join(rel);
        assert!(
            p.exists(),
            "{} is missing: the Debian packages were not unpacked",
            p.display()
        );
        p
    };
    let (dkim, dmarc, spf) = (
        f("etc/opendkim.conf"),
        f("etc/opendmarc.conf"),
        f("etc/postfix-policyd-spf-python/policyd-spf.conf"),
    );
    let (m, text) = run(Some(&dkim), Some(&dmarc), Some(&spf), None);
    let c = Config::parse(&text, "migrated.toml").unwrap_or_else(|e| panic!("{e}\n{text}"));
    assert!(m.unknown.is_empty(), "{:#?}", m.unknown);
    // OpenDMARC's shipped default only labels: monitor mode.
    assert_eq!(c.policy.mode, Mode::Monitor);
    assert!(texts(&m.differences)
        .join("\n")
        .contains("RejectFailures defaults to false"));
    // RequiredHeaders is not set: OpenDMARC delivered mail without a valid From.
    assert!(m
        .differences
        .iter()
        .any(|n| n.origin.contains("RequiredHeaders not set")
            && n.text.contains("without exactly one valid From")));
    // policyd-spf's shipped HELO_reject / Mail_From_reject = Fail.
    let rejects = |check: &str| {
        c.policy.rules.iter().any(|r| {
            r.check.name() == check && r.result.as_str() == "fail" && r.action.as_str() == "reject"
        })
    };
    assert!(rejects("spf") && rejects("spf-helo"));
    assert!(c.policy.spf_reject_at_mail);
    // Header_Type is not set: policyd-spf's default writes Received-SPF.
    assert!(
        text.contains("(Header_Type not set: default SPF)\nreceived_spf_header = true"),
        "{text}"
    );
    // Monitor mode would stop policyd-spf's rejections: a human decision.
    assert!(texts(&m.human)
        .join("\n")
        .contains("also stops the rejections"));
    // OpenDKIM's shipped Mode (sv, the default) signs: a human decision.
    assert!(texts(&m.human).join("\n").contains("also signs"));
    // Every non-comment line of the three files is accounted for.
    let accounted = m.differences.len()
        + m.dropped.len()
        + m.human.len()
        + m.settings.len()
        + m.rules.len()
        + m.trusted.len();
    assert!(accounted >= 10, "{text}");
}

#[test]
fn the_command_writes_only_where_told() {
    let d = fixture_dir();
    let bin = env!("CARGO_BIN_EXE_authmilter");
    let out = d.path().join("authmilter.toml");
    let args = |extra: &[&str]| {
        let mut a = vec![
            "migrate".to_string(),
            "--opendmarc".into(),
            d.path().join("opendmarc.conf").display().to_string(),
            "--policyd-spf".into(),
            d.path().join("policyd-spf.conf").display().to_string(),
        ];
        a.extend(extra.iter().map(|s| s.to_string()));
        a
    };
    let o = std::process::Command::new(bin)
        .args(args(&[]))
        .output()
        .unwrap();
    assert!(o.status.success());
    assert!(String::from_utf8_lossy(&o.stdout).contains("[policy.rules.spf]"));
    assert!(!out.exists(), "nothing written without --write");
    let o = std::process::Command::new(bin)
        .args(args(&["--write", out.to_str().unwrap()]))
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let check = std::process::Command::new(bin)
        .args(["config", "check", "-c", out.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );
    // An existing file is never overwritten.
    let o = std::process::Command::new(bin)
        .args(args(&["--write", out.to_str().unwrap()]))
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    // An unreadable input: exit 2, naming it.
    let o = std::process::Command::new(bin)
        .args(["migrate", "--opendkim", "/nonexistent/opendkim.conf"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("/nonexistent/opendkim.conf"));
}
