use super::*;
use crate::policy::{Action, Check, Mode};

#[test]
fn every_shipped_config_parses() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("conf");
    let mut n = 0;
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "toml") {
            Config::load(&p).unwrap_or_else(|e| panic!("{e}"));
            n += 1;
        }
    }
    assert!(n >= 1);
}

#[test]
fn shipped_config_equals_defaults() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("conf/authmilter.toml");
    let c = Config::load(&dir).unwrap();
    let d = Config::default_config();
    assert_eq!(c.milter.socket, d.milter.socket);
    assert_eq!(c.limits.max_message_size, d.limits.max_message_size);
    assert_eq!(c.policy.trusted_networks, d.policy.trusted_networks);
    assert_eq!(c.policy.dmarc_reject_reply, d.policy.dmarc_reject_reply);
    assert_eq!(c.policy.invalid_from, d.policy.invalid_from);
    assert_eq!(c.policy.invalid_from_reply, d.policy.invalid_from_reply);
    assert_eq!(c.policy.dkim_over_limit, d.policy.dkim_over_limit);
    assert_eq!(c.policy.trust_local, d.policy.trust_local);
    assert_eq!(c.dns.timeout, d.dns.timeout);
    assert_eq!(c.log.target, d.log.target);
    assert_eq!(c.log.level, d.log.level);
    assert_eq!(c.metrics, d.metrics);
}

#[test]
fn verdict_keys_for_from_and_limits() {
    use crate::policy::Action;
    let d = Config::default_config();
    assert_eq!(d.policy.invalid_from, Action::Reject);
    assert_eq!(d.policy.invalid_from_reply.code, 550);
    assert_eq!(d.policy.dkim_over_limit, Action::Quarantine);
    let c = Config::parse("[policy]\ninvalid_from = \"tempfail\"\n", "t").unwrap();
    assert_eq!(c.policy.invalid_from_reply.code, 451);
    // A local limit may never reject.
    let e = Config::parse("[policy]\ndkim_over_limit = \"reject\"\n", "t").unwrap_err();
    assert!(e.to_string().contains("policy.dkim_over_limit"), "{e}");
    let e = Config::parse("[policy]\ninvalid_from = \"bounce\"\n", "t").unwrap_err();
    assert!(e.to_string().contains("policy.invalid_from"), "{e}");
}

#[test]
fn defaults() {
    let c = Config::default_config();
    assert_eq!(
        c.milter.socket,
        SocketSpec::Inet {
            host: "127.0.0.1".into(),
            port: 8897
        }
    );
    assert_eq!(c.policy.mode, Mode::Enforce);
    assert!(c.policy.rules.is_empty());
    assert!(!c.milter.authserv_id.is_empty());
}

#[test]
fn unknown_key_names_file_line_and_key() {
    let e = Config::parse(
        "[milter]\nsocket = \"inet:127.0.0.1:1\"\nsokcet = 1\n",
        "a.toml",
    )
    .unwrap_err()
    .to_string();
    assert!(e.starts_with("a.toml:3:"), "{e}");
    assert!(e.contains("sokcet"), "{e}");
}

#[test]
fn invalid_value_names_file_line_and_key() {
    let e = Config::parse("\n[policy]\nmode = \"enforse\"\n", "b.toml")
        .unwrap_err()
        .to_string();
    assert_eq!(
        e,
        "b.toml:3: key `policy.mode`: `enforse`: expected \"enforce\" or \"monitor\""
    );
    let e = Config::parse("[milter]\nsocket = \"tcp:1\"\n", "c.toml")
        .unwrap_err()
        .to_string();
    assert!(e.starts_with("c.toml:2: key `milter.socket`"), "{e}");
}

#[test]
fn rules_are_validated() {
    let c = Config::parse(
        "[policy.rules.spf]\nfail = { action = \"reject\" }\nsoftfail = { action = \"tag\", monitor = true }\n",
        "t",
    )
    .unwrap();
    let r = c
        .policy
        .rules
        .iter()
        .find(|r| r.check == Check::Spf && r.action == Action::Reject)
        .unwrap();
    assert_eq!(r.reply.as_ref().unwrap().status, "5.7.23");
    assert!(c.policy.rules.iter().any(|r| r.monitor));
    for bad in [
        "[policy.rules.spf]\nfail = { action = \"bounce\" }\n",
        "[policy.rules.dkim]\nsoftfail = { action = \"reject\" }\n",
        "[policy.rules.spam]\nfail = { action = \"reject\" }\n",
        "[policy.rules.spf]\nfail = { action = \"reject\", code = 451 }\n",
        "[policy.rules.spf]\nfail = { action = \"tempfail\", code = 451, status = \"5.7.1\" }\n",
        "[policy.rules.spf]\nfail = { action = \"tag\", text = \"x\" }\n",
    ] {
        assert!(Config::parse(bad, "t").is_err(), "{bad}");
    }
}

#[test]
fn socket_forms() {
    use validate::parse_socket;
    assert_eq!(
        parse_socket("inet:[::1]:8897").unwrap(),
        SocketSpec::Inet {
            host: "::1".into(),
            port: 8897
        }
    );
    assert_eq!(
        parse_socket("unix:/run/authmilter/a.sock").unwrap(),
        SocketSpec::Unix("/run/authmilter/a.sock".into())
    );
    assert!(parse_socket("unix:relative").is_err());
    assert!(parse_socket("inet:host:99999").is_err());
}

#[test]
fn warnings_for_footguns() {
    let c = Config::parse(
        "[milter]\nauthserv_id = \"\"\n[policy]\ntrusted_networks = [\"0.0.0.0/0\"]\n",
        "t",
    )
    .unwrap();
    let w: Vec<String> = c.warnings().iter().map(|w| w.to_string()).collect();
    assert!(w.iter().any(|w| w.contains("authserv_id is empty")));
    assert!(w.iter().any(|w| w.contains("public address space")));
    assert!(Config::default_config().warnings().is_empty());
}

#[test]
fn rule_replies_follow_rfc_7372() {
    use super::validate::default_rule_reply as r;
    use crate::checks::evidence::AuthResult::*;
    use crate::policy::{Action::*, Check::*};
    let code = |c, res, a| {
        let x = r(c, res, a);
        format!("{} {}", x.code, x.status)
    };
    // §3.1: no passing signature 5.7.20; passing but unacceptable 5.7.21.
    assert_eq!(code(Dkim, Fail, Reject), "550 5.7.20");
    assert_eq!(code(Dkim, None, Reject), "550 5.7.20");
    assert_eq!(code(Dkim, PermError, Reject), "550 5.7.20");
    assert_eq!(code(Dkim, Policy, Reject), "550 5.7.21");
    // §3.2 and RFC 7208 §8.6/§8.7: SPF failure 5.7.23, SPF error 5.7.24 / 4.7.24.
    assert_eq!(code(Spf, Fail, Reject), "550 5.7.23");
    assert_eq!(code(Spf, PermError, Reject), "550 5.7.24");
    assert_eq!(code(Spf, TempError, Tempfail), "451 4.7.24");
    assert_eq!(code(SpfHelo, Fail, Reject), "550 5.7.23");
    // §3.3: reverse DNS 5.7.25.
    assert_eq!(code(Iprev, Fail, Reject), "550 5.7.25");
    assert_eq!(code(Iprev, TempError, Tempfail), "451 4.7.25");
}

#[test]
fn default_deadline_allows_the_rfc_7208_minimum() {
    // RFC 7208 §4.6.4: at least 20 seconds for an SPF evaluation.
    let d = Config::default_config();
    assert!(d.limits.message_deadline >= std::time::Duration::from_secs(20));
}

#[test]
fn log_target_and_metrics_address() {
    let d = Config::default_config();
    assert_eq!(d.log.target, LogTarget::Stderr);
    assert_eq!(d.metrics.address, None);
    let c = Config::parse(
        "[log]\ntarget = \"journald\"\n[metrics]\naddress = \"[::1]:9797\"\n",
        "t",
    )
    .unwrap();
    assert_eq!(c.log.target, LogTarget::Journald);
    assert_eq!(c.metrics.address, Some("[::1]:9797".parse().unwrap()));
    assert!(c.warnings().is_empty());
    let e = Config::parse("[log]\ntarget = \"syslog\"\n", "l.toml")
        .unwrap_err()
        .to_string();
    assert_eq!(
        e,
        "l.toml:2: key `log.target`: `syslog`: expected \"stderr\" or \"journald\""
    );
    let e = Config::parse("\n[metrics]\naddress = \"localhost:9797\"\n", "m.toml")
        .unwrap_err()
        .to_string();
    assert!(e.starts_with("m.toml:3: key `metrics.address`: "), "{e}");
    let e = Config::parse("[metrics]\nadress = \"127.0.0.1:1\"\n", "u.toml")
        .unwrap_err()
        .to_string();
    assert!(e.starts_with("u.toml:2:") && e.contains("adress"), "{e}");
    // Listening beyond loopback is legal, and warned about.
    let c = Config::parse("[metrics]\naddress = \"0.0.0.0:9797\"\n", "t").unwrap();
    let w: Vec<String> = c.warnings().iter().map(|w| w.to_string()).collect();
    assert!(
        w.iter()
            .any(|w| w.contains("metrics.address 0.0.0.0:9797 is not a loopback address")),
        "{w:?}"
    );
}

#[test]
fn show_round_trips_log_and_metrics() {
    let c = Config::parse(
        "[log]\nlevel = \"warn\"\nformat = \"json\"\ntarget = \"journald\"\n[metrics]\naddress = \"127.0.0.1:9797\"\n",
        "t",
    )
    .unwrap();
    let text = c.to_toml();
    assert!(text.contains("target = \"journald\""), "{text}");
    assert!(
        text.contains("[metrics]\naddress = \"127.0.0.1:9797\""),
        "{text}"
    );
    let back = Config::parse(&text, "shown").unwrap();
    assert_eq!(back.log.target, LogTarget::Journald);
    assert_eq!(back.log.format, LogFormat::Json);
    assert_eq!(back.log.level, "warn");
    assert_eq!(back.metrics, c.metrics);
    // Off by default: no address shown, and it reads back as off.
    let d = Config::default_config().to_toml();
    let back = Config::parse(&d, "shown").unwrap();
    assert_eq!(back.metrics.address, None);
}

#[test]
fn recipient_policies_inherit_and_are_validated() {
    let text = "[policy]\nmode = \"enforce\"\n[policy.rules.spf]\nfail = { action = \"reject\" }\n\n[[policy.recipients]]\nname = \"onboarding\"\ndomains = [\"Onboarding.Example.\", \"b.example\"]\nmode = \"monitor\"\n\n[[policy.recipients]]\ndomains = [\"strict.example\"]\n[policy.recipients.rules.iprev]\npermerror = { action = \"reject\" }\n";
    let c = Config::parse(text, "r.toml").unwrap();
    let r = &c.policy.recipients;
    assert_eq!(r.len(), 2);
    assert_eq!(r[0].name, "onboarding");
    assert_eq!(r[0].domains, ["onboarding.example", "b.example"]);
    assert_eq!(r[0].policy.mode, crate::policy::Mode::Monitor);
    // Not set in the block: inherited (the default's spf rule).
    assert_eq!(r[0].policy.rules, c.policy.rules);
    assert_eq!(r[1].name, "strict.example");
    assert_eq!(r[1].policy.mode, crate::policy::Mode::Enforce);
    assert_eq!(r[1].policy.rules.len(), 1);
    assert!(r[1].policy.recipients.is_empty());
    // `config show` writes every block out and reads back the same.
    let back = Config::parse(&c.to_toml(), "shown").unwrap();
    assert_eq!(back.policy.recipients.len(), 2);
    for (a, b) in back.policy.recipients.iter().zip(r) {
        assert_eq!(
            (&a.name, &a.domains, a.policy.mode),
            (&b.name, &b.domains, b.policy.mode)
        );
        assert_eq!(a.policy.rules, b.policy.rules);
        assert_eq!(a.policy.overrides, b.policy.overrides);
    }
    for (bad, want) in [
        ("[[policy.recipients]]\ndomains = []\n", "r.toml:3: key `policy.recipients.domains`: must name"),
        ("[[policy.recipients]]\ndomains = [\"not a domain\"]\n", "r.toml:3: key `policy.recipients.domains`"),
        ("[[policy.recipients]]\ndomains = [\"a.example\"]\n[[policy.recipients]]\ndomains = [\"a.example\"]\n", "already in the block `a.example`"),
        ("[[policy.recipients]]\nname = \"default\"\ndomains = [\"a.example\"]\n", "key `policy.recipients.name`"),
        ("[[policy.recipients]]\ndomains = [\"a.example\"]\nmode = \"off\"\n", "r.toml:4: key `policy.recipients.mode`"),
        ("[[policy.recipients]]\ndomains = [\"a.example\"]\nmodes = \"monitor\"\n", "modes"),
        ("[[policy.recipients]]\ndomains = [\"a.example\"]\n[policy.recipients.rules.spf]\nfial = { action = \"reject\" }\n", "key `policy.recipients.rules.spf.fial`"),
    ] {
        let e = Config::parse(&format!("[policy]\n{bad}"), "r.toml").unwrap_err().to_string();
        assert!(e.contains(want), "{bad}: {e}");
    }
}

#[test]
fn header_keys_default_off_validate_and_round_trip() {
    let d = Config::default_config();
    assert_eq!(d.headers, HeaderConfig::default());
    assert!(!d.headers.received_spf && !d.headers.auth && !d.headers.x_ptr && !d.headers.x_tls);
    assert!(
        d.headers.auth_user,
        "when auth= is on, the user is named unless withheld"
    );
    let c = Config::parse(
        "[spf]\nreceived_spf_header = true\n[results]\nauth = true\nauth_user = false\nx_ptr = true\nx_tls = true\n",
        "t",
    )
    .unwrap();
    let want = HeaderConfig {
        received_spf: true,
        auth: true,
        auth_user: false,
        x_ptr: true,
        x_tls: true,
    };
    assert_eq!(c.headers, want);
    let text = c.to_toml();
    assert!(text.contains("[spf]\nreceived_spf_header = true"), "{text}");
    assert!(
        text.contains("[results]\nauth = true\nauth_user = false\nx_ptr = true\nx_tls = true"),
        "{text}"
    );
    assert_eq!(Config::parse(&text, "shown").unwrap().headers, want);
    let back = Config::parse(&d.to_toml(), "shown").unwrap();
    assert_eq!(back.headers, HeaderConfig::default());
    // Errors name the file, line and key.
    let e = Config::parse("[results]\nx_ptr = true\nx_tsl = true\n", "h.toml")
        .unwrap_err()
        .to_string();
    assert!(e.starts_with("h.toml:3:") && e.contains("x_tsl"), "{e}");
    let e = Config::parse("\n[spf]\nreceived_spf_header = \"yes\"\n", "h.toml")
        .unwrap_err()
        .to_string();
    assert!(e.starts_with("h.toml:3:"), "{e}");
}

#[test]
fn the_action_table_takes_x_ptr() {
    let c = Config::parse(
        "[policy.rules.x-ptr]\nfail = { action = \"reject\" }\n",
        "t",
    )
    .unwrap();
    let r = &c.policy.rules[0];
    assert_eq!((r.check, r.action), (Check::XPtr, Action::Reject));
    let reply = r.reply.as_ref().unwrap();
    assert_eq!((reply.code, reply.status.as_str()), (550, "5.7.25"));
    // x-ptr never yields permerror (no PTR is `fail`: no name matches).
    let e = Config::parse(
        "[policy.rules.x-ptr]\npermerror = { action = \"reject\" }\n",
        "p.toml",
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("policy.rules.x-ptr.permerror") && e.contains("never yields"),
        "{e}"
    );
    // Round trip through `config show`.
    let back = Config::parse(&c.to_toml(), "shown").unwrap();
    assert_eq!(back.policy.rules, c.policy.rules);
    // Nothing is enforced on x-ptr by default.
    assert!(Config::default_config()
        .policy
        .rules
        .iter()
        .all(|r| r.check != Check::XPtr));
}
