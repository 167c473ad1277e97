//! Header sanitizing, A-R recognition and building: whatever the sender
//! controls, what we write stays one well-formed header field.
#![no_main]
use authmilter::{
    actions::{auth_results, received_spf, sanitize, HeaderConfig},
    checks::evidence::*,
    policy::Verdict,
};
use libfuzzer_sys::fuzz_target;

fn well_formed(v: &str) {
    assert!(v.is_ascii(), "{v:?}");
    assert!(!v.contains('\r'));
    for (i, line) in v.split('\n').enumerate() {
        assert!(i == 0 || line.starts_with('\t'), "{v:?}");
        assert!(line.chars().all(|c| c == '\t' || !c.is_control()), "{v:?}");
    }
}

fuzz_target!(|data: &[u8]| {
    let s = String::from_utf8_lossy(data);
    let parts: Vec<&str> = s.splitn(4, '\u{1}').collect();
    let pick = |i: usize| parts.get(i).copied().unwrap_or("").to_string();

    let p = sanitize::pvalue(&s);
    assert!(p.is_ascii() && !p.contains('\n') && !p.contains('\r'));
    let q = sanitize::quoted(&s);
    assert!(q.starts_with('"') && q.ends_with('"') && !q.contains('\n'));
    let c = sanitize::comment_text(&s);
    assert!(!c.contains('(') && !c.contains(')') && !c.contains('\n'));
    let _ = sanitize::authserv_id(&s);
    let _ = sanitize::received_spf_receiver(&s);

    let ev = Evidence {
        iprev: Some(IprevEvidence {
            result: AuthResult::Fail,
            ip: "192.0.2.1".parse().unwrap(),
            name: Some(pick(0)),
            reason: Some(pick(1)),
            confirmed: vec![],
        }),
        spf_helo: Some(SpfEvidence {
            result: AuthResult::Pass,
            identity: SpfIdentity::Helo,
            sender: format!("postmaster@{}", pick(2)),
            domain: pick(2),
            reason: None,
            mechanism: None,
        }),
        spf_mailfrom: Some(SpfEvidence {
            result: AuthResult::SoftFail,
            identity: SpfIdentity::MailFrom,
            sender: pick(3),
            domain: pick(2),
            reason: Some(pick(1)),
            mechanism: Some(pick(0)),
        }),
        dkim: vec![DkimEvidence {
            result: AuthResult::Fail,
            domain: pick(0),
            selector: pick(1),
            identity: pick(2),
            algorithm: pick(3),
            b_prefix: pick(0),
            reason: Some(pick(3)),
            local_limit: false,
        }],
        arc: ArcEvidence::none(),
        dkim2: vec![],
        dmarc: DmarcEvidence {
            result: AuthResult::Fail,
            from_domain: Some(pick(3)),
            published: Some(DmarcPolicy::Reject),
            effective: DmarcPolicy::Quarantine,
            testing: true,
            spf_aligned: false,
            dkim_aligned: false,
            reason: Some(pick(0)),
            policy_domain: Some(pick(2)),
            from_unusable: false,
            local_limit: false,
            record: None,
        },
        ptr: Some(PtrEvidence {
            result: AuthResult::Fail,
            helo: pick(2),
            names: vec![pick(0), pick(1)],
        }),
        smtp: SmtpFacts {
            client_ip: Some("192.0.2.1".parse().unwrap()),
            helo: Some(pick(2)),
            auth: Some(SmtpAuth {
                user: pick(3),
                mechanism: Some(pick(1)),
            }),
            tls: Some(TlsInfo {
                version: pick(0),
                cipher: Some(pick(1)),
                bits: Some(pick(2)),
            }),
        },
    };
    // Every optional result on: the sender's values reach all of them.
    let all = HeaderConfig {
        received_spf: true,
        auth: true,
        auth_user: true,
        x_ptr: true,
        x_tls: true,
    };
    well_formed(&auth_results::build(
        "mx.example",
        &ev,
        &Verdict::accept(),
        &all,
    ));
    well_formed(&auth_results::build(
        "mx.example",
        &ev,
        &Verdict::accept(),
        &HeaderConfig::default(),
    ));
    let fields = received_spf::build("mx.example", &ev);
    assert_eq!(fields.len(), 2);
    for v in &fields {
        well_formed(v);
        // Our receiver= is the one any parser finds first.
        assert_eq!(
            sanitize::received_spf_receiver(v).as_deref(),
            Some("mx.example"),
            "{v:?}"
        );
    }
});
