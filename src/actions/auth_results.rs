//! The Authentication-Results header (RFC 8601) built from the evidence.

use super::sanitize::{comment_text, pvalue, quoted};
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

/// The header value (after `Authentication-Results:`), starting with a space.
pub fn build(authserv_id: &str, ev: &Evidence, verdict: &Verdict) -> String {
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
            }),
            spf_helo: Some(SpfEvidence {
                result: AuthResult::Pass,
                identity: SpfIdentity::Helo,
                sender: "postmaster@mail.example.com".into(),
                domain: "mail.example.com".into(),
                reason: None,
            }),
            spf_mailfrom: Some(SpfEvidence {
                result: AuthResult::Fail,
                identity: SpfIdentity::MailFrom,
                sender: "evil\r\nX-Injected: yes@example.com".into(),
                domain: "example.com".into(),
                reason: Some("matched -all".into()),
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
        }
    }

    #[test]
    fn renders_every_method() {
        let v = build("mx.test", &evidence(), &Verdict::accept());
        assert!(v.starts_with(" mx.test;\n\t"));
        assert!(v.contains("iprev=pass (mail.example.com) policy.iprev=192.0.2.10"));
        assert!(v.contains("spf=pass smtp.helo=mail.example.com"));
        assert!(v.contains("spf=fail reason=\"matched -all\" smtp.mailfrom="));
        assert!(v.contains("dkim=pass header.d=example.com header.s=sel header.i=@example.com header.a=rsa-sha256 header.b=\"abcdEFGH\""));
        assert!(v.contains("dmarc=pass (p=reject) header.from=example.com policy.dmarc=reject"));
    }

    #[test]
    fn sender_values_cannot_inject_headers() {
        let v = build("mx.test", &evidence(), &Verdict::accept());
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
        let v = build("mx.test", &ev, &verdict);
        assert!(v.contains("dmarc=fail (p=reject t=y dis=quarantine) header.from=example.com policy.dmarc=reject"), "{v}");
    }
}
