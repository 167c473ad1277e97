//! The Authentication-Results header (RFC 8601) built from the evidence.

use super::{
    sanitize::{comment_text, pvalue, quoted},
    HeaderConfig,
};
use crate::{
    checks::evidence::{AuthResult, Evidence, SpfEvidence, SpfIdentity},
    policy::{ArcJudgement, Verdict},
};

/// Folding between result sets: Postfix and Sendmail expect LF in milter
/// header values and turn it into CRLF.
pub const FOLD: &str = "\n\t";

fn reason(r: &Option<String>, result: AuthResult) -> String {
    match r {
        Some(text) if result != AuthResult::Pass && !text.is_empty() => {
            format!(" reason={}", quoted(text))
        }
        _ => String::new(),
    }
}

fn spf_part(s: &SpfEvidence) -> String {
    let prop = match s.identity {
        SpfIdentity::MailFrom => format!("smtp.mailfrom={}", pvalue(&s.sender)),
        SpfIdentity::Helo => format!(
            "smtp.helo={}",
            pvalue(s.sender.strip_prefix("postmaster@").unwrap_or(&s.sender))
        ),
    };
    format!("spf={}{} {prop}", s.result, reason(&s.reason, s.result))
}

/// `arc=` (RFC 8617 §6, §10): the result, the sealers in a comment (newest
/// first), the client address and, where known, the oldest passing set.
fn arc_part(ev: &Evidence) -> String {
    let a = &ev.arc;
    let mut out = format!("arc={}", a.result);
    if a.result == AuthResult::Fail {
        if let Some(r) = &a.reason {
            out.push_str(&format!(" ({})", comment_text(r)));
        }
    } else if !a.hops.is_empty() {
        out.push_str(&format!(
            " (sealers {})",
            comment_text(&a.sealers().join(","))
        ));
    }
    if a.result != AuthResult::None {
        if let Some(i) = &ev.iprev {
            out.push_str(&format!(" smtp.remote-ip={}", pvalue(&i.ip.to_string())));
        }
        if let Some(o) = a.oldest_pass {
            out.push_str(&format!(" header.oldest-pass={o}"));
        }
    }
    out
}

/// `x-ptr=` as authentication_milter writes it: the HELO name in
/// `smtp.helo`, the forward-confirmed PTR names (comma-separated) in
/// `policy.ptr` (left out when there are none).
fn ptr_part(ev: &Evidence) -> Option<String> {
    let p = ev.ptr.as_ref()?;
    let mut out = format!("x-ptr={}", p.result);
    if !p.helo.is_empty() {
        out.push_str(&format!(" smtp.helo={}", pvalue(&p.helo)));
    }
    if !p.names.is_empty() {
        out.push_str(&format!(" policy.ptr={}", pvalue(&p.names.join(","))));
    }
    Some(out)
}

/// `x-tls=pass smtp.version=… smtp.cipher=… smtp.bits=…`, as
/// authentication_milter writes it, when the MTA reported a TLS session.
fn tls_part(ev: &Evidence) -> Option<String> {
    let t = ev.smtp.tls.as_ref()?;
    let mut out = format!("x-tls=pass smtp.version={}", pvalue(&t.version));
    if let Some(c) = &t.cipher {
        out.push_str(&format!(" smtp.cipher={}", pvalue(c)));
    }
    if let Some(b) = &t.bits {
        out.push_str(&format!(" smtp.bits={}", pvalue(b)));
    }
    Some(out)
}

/// `auth=pass` (RFC 8601 §2.7.4) for an SMTP AUTH client: the SASL
/// mechanism in a comment, the user in `smtp.auth` unless withheld.
fn auth_part(ev: &Evidence, with_user: bool) -> Option<String> {
    let a = ev.smtp.auth.as_ref()?;
    let mut out = "auth=pass".to_string();
    if let Some(m) = a.mechanism.as_deref().map(comment_text) {
        if !m.is_empty() {
            out.push_str(&format!(" ({m})"));
        }
    }
    if with_user {
        out.push_str(&format!(" smtp.auth={}", pvalue(&a.user)));
    }
    Some(out)
}

/// The header value (after `Authentication-Results:`), starting with a space.
/// `opts` says which results beyond the checks are written.
pub fn build(authserv_id: &str, ev: &Evidence, verdict: &Verdict, opts: &HeaderConfig) -> String {
    let mut parts: Vec<String> = Vec::new();
    if let Some(i) = &ev.iprev {
        let name = i
            .name
            .as_deref()
            .map(|n| format!(" ({})", comment_text(n)))
            .unwrap_or_default();
        parts.push(format!(
            "iprev={}{}{name} policy.iprev={}",
            i.result,
            reason(&i.reason, i.result),
            // RFC 8601 §2.2: an IPv6 address is no token (`:`): quoted.
            pvalue(&i.ip.to_string())
        ));
    }
    if opts.x_ptr {
        parts.extend(ptr_part(ev));
    }
    if opts.x_tls {
        parts.extend(tls_part(ev));
    }
    if opts.auth {
        parts.extend(auth_part(ev, opts.auth_user));
    }
    let helo_same_as_mailfrom =
        matches!(&ev.spf_mailfrom, Some(s) if s.identity == SpfIdentity::Helo);
    if let Some(s) = &ev.spf_mailfrom {
        parts.push(spf_part(s));
    }
    if let Some(h) = &ev.spf_helo {
        if !helo_same_as_mailfrom {
            parts.push(spf_part(h));
        }
    }
    if ev.dkim.is_empty() {
        parts.push("dkim=none".into());
    }
    for d in &ev.dkim {
        parts.push(format!(
            "dkim={}{} header.d={} header.s={} header.i={} header.a={} header.b={}",
            d.result,
            reason(&d.reason, d.result),
            pvalue(&d.domain),
            pvalue(&d.selector),
            pvalue(&d.identity),
            pvalue(&d.algorithm),
            quoted(&d.b_prefix),
        ));
    }
    for d in &ev.dkim2 {
        parts.push(format!(
            "dkim2={}{} ({}) header.d={} header.i={}",
            d.result,
            reason(&d.reason, d.result),
            crate::checks::dkim2::DRAFT,
            pvalue(&d.domain),
            d.instance
        ));
    }
    parts.push(arc_part(ev));
    let m = &ev.dmarc;
    let mut dmarc = format!("dmarc={}{}", m.result, reason(&m.reason, m.result));
    if let Some(p) = m.published {
        let mut c = format!("p={p}");
        if m.testing {
            c.push_str(" t=y");
        }
        if let Some(dis) = verdict.dmarc_disposition {
            if dis != p {
                c.push_str(&format!(" dis={dis}"));
            }
        }
        if let Some(o) = verdict.override_reason {
            c.push_str(&format!(" override={o}"));
            if let Some(ArcJudgement::Override { sealer, instance }) = &verdict.arc {
                c.push_str(&format!(" reason=arc sealer={sealer} i={instance}"));
            }
        }
        dmarc.push_str(&format!(" ({})", comment_text(&c)));
    }
    if let Some(d) = &m.from_domain {
        dmarc.push_str(&format!(" header.from={}", pvalue(d)));
    }
    if let Some(p) = m.published {
        dmarc.push_str(&format!(" policy.dmarc={p}"));
    }
    parts.push(dmarc);
    let mut out = format!(" {authserv_id};");
    out.push_str(FOLD);
    out.push_str(&parts.join(&format!(";{FOLD}")));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::evidence::*;

    fn evidence() -> Evidence {
        Evidence {
            iprev: Some(IprevEvidence {
                result: AuthResult::Pass,
                ip: "192.0.2.10".parse().unwrap(),
                name: Some("mail.example.com".into()),
                reason: None,
                confirmed: vec![],
            }),
            spf_helo: Some(SpfEvidence {
                result: AuthResult::Pass,
                identity: SpfIdentity::Helo,
                sender: "postmaster@mail.example.com".into(),
                domain: "mail.example.com".into(),
                reason: None,
                mechanism: None,
            }),
            spf_mailfrom: Some(SpfEvidence {
                result: AuthResult::Fail,
                identity: SpfIdentity::MailFrom,
                sender: "evil\r\nX-Injected: yes@example.com".into(),
                domain: "example.com".into(),
                reason: Some("matched -all".into()),
                mechanism: None,
            }),
            dkim: vec![DkimEvidence {
                result: AuthResult::Pass,
                domain: "example.com".into(),
                selector: "sel".into(),
                identity: "@example.com".into(),
                algorithm: "rsa-sha256".into(),
                b_prefix: "abcdEFGH".into(),
                reason: None,
                local_limit: false,
            }],
            arc: ArcEvidence::none(),
            dkim2: vec![],
            dmarc: DmarcEvidence {
                result: AuthResult::Pass,
                from_domain: Some("example.com".into()),
                published: Some(DmarcPolicy::Reject),
                effective: DmarcPolicy::Reject,
                testing: false,
                spf_aligned: false,
                dkim_aligned: true,
                reason: None,
                policy_domain: None,
                from_unusable: false,
                local_limit: false,
                record: None,
            },
            ptr: None,
            smtp: Default::default(),
        }
    }

    #[test]
    fn renders_every_method() {
        let v = build(
            "mx.test",
            &evidence(),
            &Verdict::accept(),
            &HeaderConfig::default(),
        );
        assert!(v.starts_with(" mx.test;\n\t"));
        assert!(v.contains("iprev=pass (mail.example.com) policy.iprev=192.0.2.10"));
        assert!(v.contains("spf=pass smtp.helo=mail.example.com"));
        assert!(v.contains("spf=fail reason=\"matched -all\" smtp.mailfrom="));
        assert!(v.contains("dkim=pass header.d=example.com header.s=sel header.i=@example.com header.a=rsa-sha256 header.b=\"abcdEFGH\""));
        assert!(v.contains("dmarc=pass (p=reject) header.from=example.com policy.dmarc=reject"));
    }

    #[test]
    fn sender_values_cannot_inject_headers() {
        let v = build(
            "mx.test",
            &evidence(),
            &Verdict::accept(),
            &HeaderConfig::default(),
        );
        for line in v.split('\n') {
            assert!(
                line.is_empty() || line.starts_with('\t') || line.starts_with(' '),
                "{line:?}"
            );
        }
        assert!(!v.contains('\r'));
        assert!(v.contains("smtp.mailfrom=\"evilX-Injected: yes@example.com\""));
    }

    #[test]
    fn disposition_shown_when_different() {
        let mut ev = evidence();
        ev.dmarc.result = AuthResult::Fail;
        ev.dmarc.testing = true;
        ev.dmarc.effective = DmarcPolicy::Quarantine;
        let mut verdict = Verdict::accept();
        verdict.dmarc_disposition = Some(DmarcPolicy::Quarantine);
        let v = build("mx.test", &ev, &verdict, &HeaderConfig::default());
        assert!(v.contains("dmarc=fail (p=reject t=y dis=quarantine) header.from=example.com policy.dmarc=reject"), "{v}");
    }

    fn all_on() -> HeaderConfig {
        HeaderConfig {
            received_spf: true,
            auth: true,
            auth_user: true,
            x_ptr: true,
            x_tls: true,
        }
    }

    fn with_session(user: &str, helo: &str) -> Evidence {
        let mut ev = evidence();
        ev.ptr = Some(PtrEvidence {
            result: AuthResult::Fail,
            helo: helo.into(),
            names: vec!["mail.example.com".into(), "alt.example.com".into()],
        });
        ev.smtp = SmtpFacts {
            client_ip: Some("192.0.2.10".parse().unwrap()),
            helo: Some(helo.into()),
            auth: Some(SmtpAuth {
                user: user.into(),
                mechanism: Some("PLAIN".into()),
            }),
            tls: Some(TlsInfo {
                version: "TLSv1.3".into(),
                cipher: Some("TLS_AES_256_GCM_SHA384".into()),
                bits: Some("256".into()),
            }),
        };
        ev
    }

    #[test]
    fn extra_results_only_when_configured() {
        let ev = with_session("alice", "mail.example.com");
        let off = build("mx.test", &ev, &Verdict::accept(), &HeaderConfig::default());
        for m in ["auth=", "x-ptr=", "x-tls="] {
            assert!(!off.contains(m), "{off}");
        }
        let on = build("mx.test", &ev, &Verdict::accept(), &all_on());
        assert!(
            on.contains(";\n\tauth=pass (PLAIN) smtp.auth=alice;\n\t"),
            "{on}"
        );
        assert!(
            on.contains("x-ptr=fail smtp.helo=mail.example.com policy.ptr=\"mail.example.com,alt.example.com\";"),
            "{on}"
        );
        assert!(
            on.contains(
                "x-tls=pass smtp.version=TLSv1.3 smtp.cipher=TLS_AES_256_GCM_SHA384 smtp.bits=256;"
            ),
            "{on}"
        );
        let withheld = HeaderConfig {
            auth_user: false,
            ..all_on()
        };
        let v = build("mx.test", &ev, &Verdict::accept(), &withheld);
        assert!(v.contains("auth=pass (PLAIN);"), "{v}");
        assert!(!v.contains("alice"), "{v}");
    }

    #[test]
    fn hostile_user_and_helo_stay_inside_their_values() {
        let ev = with_session("bob;dkim=pass\r\nX-Evil: (1) é", "h;spf=pass\r\n(x)");
        let v = build("mx.test", &ev, &Verdict::accept(), &all_on());
        assert!(!v.contains('\r') && v.is_ascii(), "{v}");
        for line in v.split('\n').skip(1) {
            assert!(line.starts_with('\t'), "{line:?}");
        }
        assert!(
            v.contains("smtp.auth=\"bob,dkim=passX-Evil: (1) ?\""),
            "{v}"
        );
        assert!(v.contains("x-ptr=fail smtp.helo=\"h,spf=pass(x)\""), "{v}");
        // No result set was added by the values: the count of `;` is the
        // number of results (iprev, x-ptr, x-tls, auth, spf x2, dkim, arc, dmarc).
        assert_eq!(v.matches(';').count(), 9, "{v}");
    }
}
