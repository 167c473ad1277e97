//! The Received-SPF header field (RFC 7208 §9.1), one per identity checked,
//! written beside Authentication-Results when `[spf] received_spf_header`
//! is on:
//!
//! ```text
//! header-field   = "Received-SPF:" [CFWS] result FWS [comment FWS] [ key-value-list ] CRLF
//! key-value-list = key-value-pair *( ";" [CFWS] key-value-pair ) [";"]
//! key-value-pair = key [CFWS] "=" ( dot-atom / quoted-string )
//! key            = "client-ip" / "envelope-from" / "helo" / "problem" /
//!                  "receiver" / "identity" / "mechanism" / name
//! ```
//!
//! Every value is a dot-atom or a quoted-string
//! ([`sanitize::dot_atom_or_quoted`]), the comment is
//! [`sanitize::comment_text`]: nothing the sender chose can end the field,
//! open another or add a key. `receiver=` is our authserv-id, so an
//! incoming field naming it is recognised as forged and deleted.

use super::{auth_results::FOLD, sanitize};
use crate::checks::evidence::{AuthResult, Evidence, SpfEvidence, SpfIdentity};

/// The field name.
pub const NAME: &str = "Received-SPF";

/// The explanation in the comment, in the words of RFC 7208's examples.
fn explanation(s: &SpfEvidence, who: &str, ip: &str) -> String {
    match s.result {
        AuthResult::Pass => format!("domain of {who} designates {ip} as permitted sender"),
        AuthResult::Fail => {
            format!("domain of {who} does not designate {ip} as permitted sender")
        }
        AuthResult::SoftFail => {
            format!("domain of transitioning {who} does not designate {ip} as permitted sender")
        }
        AuthResult::Neutral => {
            format!("{ip} is neither permitted nor denied by domain of {who}")
        }
        AuthResult::None => format!("domain of {who} does not designate permitted sender hosts"),
        _ => format!(
            "error in processing during lookup of {who}: {}",
            s.reason.as_deref().unwrap_or("unknown error")
        ),
    }
}

/// One field value (after `Received-SPF:`), starting with a space.
fn field(receiver: &str, s: &SpfEvidence, ev: &Evidence, null_sender: bool) -> String {
    let ip = ev
        .smtp
        .client_ip
        .or(ev.iprev.as_ref().map(|i| i.ip))
        .map(|i| i.to_string());
    let (who, identity) = match s.identity {
        SpfIdentity::MailFrom => (s.sender.as_str(), "mailfrom"),
        SpfIdentity::Helo => (s.domain.as_str(), "helo"),
    };
    // No `=` in the comment: parsers that take the first `receiver=` of the
    // field (ours among them, `sanitize::received_spf_receiver`) must find
    // the real one, not a sender's `"a receiver=evil"@x` quoted in it.
    let comment = sanitize::comment_text(&format!(
        "{receiver}: {}",
        explanation(s, who, ip.as_deref().unwrap_or("the client"))
    ))
    .replace('=', " ");
    let v = sanitize::dot_atom_or_quoted;
    let mut pairs = vec![format!("receiver={}", v(receiver))];
    if let Some(ip) = &ip {
        pairs.push(format!("client-ip={}", v(ip)));
    }
    match s.identity {
        SpfIdentity::MailFrom => pairs.push(format!("envelope-from={}", v(&s.sender))),
        // The null sender's check is the HELO identity's (§2.4).
        SpfIdentity::Helo if null_sender => pairs.push(format!("envelope-from={}", v("<>"))),
        SpfIdentity::Helo => {}
    }
    if let Some(h) = ev.smtp.helo.as_deref().filter(|h| !h.is_empty()) {
        pairs.push(format!("helo={}", v(h)));
    }
    pairs.push(format!("identity={identity}"));
    match s.result {
        // "the mechanism that matched (if no mechanisms matched, substitute
        // the word 'default')".
        AuthResult::Pass | AuthResult::Fail | AuthResult::SoftFail | AuthResult::Neutral => {
            pairs.push(format!(
                "mechanism={}",
                v(s.mechanism.as_deref().unwrap_or("default"))
            ));
        }
        AuthResult::TempError | AuthResult::PermError => {
            if let Some(r) = s.reason.as_deref().filter(|r| !r.is_empty()) {
                pairs.push(format!("problem={}", v(r)));
            }
        }
        _ => {}
    }
    format!(" {} ({comment}){FOLD}{}", s.result, pairs.join("; "))
}

/// The Received-SPF values for a message: one for the MAIL FROM identity and
/// one for the HELO identity when it was checked (the null sender's single
/// check is the HELO identity's), in that order.
pub fn build(receiver: &str, ev: &Evidence) -> Vec<String> {
    let mut out = Vec::new();
    let null_sender = matches!(&ev.spf_mailfrom, Some(s) if s.identity == SpfIdentity::Helo);
    if let Some(s) = &ev.spf_mailfrom {
        out.push(field(receiver, s, ev, null_sender));
    }
    if let Some(h) = &ev.spf_helo {
        if !null_sender {
            out.push(field(receiver, h, ev, false));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::evidence::*;

    fn spf(result: AuthResult, identity: SpfIdentity, sender: &str, domain: &str) -> SpfEvidence {
        SpfEvidence {
            result,
            identity,
            sender: sender.into(),
            domain: domain.into(),
            reason: None,
            mechanism: None,
        }
    }

    fn evidence(mf: Option<SpfEvidence>, helo: Option<SpfEvidence>, helo_arg: &str) -> Evidence {
        Evidence {
            iprev: None,
            spf_helo: helo,
            spf_mailfrom: mf,
            dkim: vec![],
            arc: ArcEvidence::none(),
            dkim2: vec![],
            dmarc: DmarcEvidence::without_policy(AuthResult::None, None, None),
            ptr: None,
            smtp: SmtpFacts {
                client_ip: Some("192.0.2.1".parse().unwrap()),
                helo: Some(helo_arg.into()),
                auth: None,
                tls: None,
            },
        }
    }

    /// Checks a value against RFC 7208 §9.1's grammar: the result word, one
    /// comment, then `key=value` pairs separated by `;`, each value a
    /// dot-atom or a quoted-string; returns the pairs.
    fn parse(value: &str) -> (String, Vec<(String, String)>) {
        let v = value.replace(FOLD, " ");
        assert!(!v.contains(['\r', '\n']) && v.is_ascii(), "{v:?}");
        let v = v.strip_prefix(' ').expect("leading space");
        let (result, rest) = v.split_once(' ').unwrap();
        assert!(
            [
                "pass",
                "fail",
                "softfail",
                "neutral",
                "none",
                "temperror",
                "permerror"
            ]
            .contains(&result),
            "{result}"
        );
        let rest = rest.strip_prefix('(').expect("a comment");
        let close = rest.find(')').unwrap();
        assert!(!rest[..close].contains(['(', '\\']), "{rest}");
        let mut list = rest[close + 1..].trim_start();
        let mut pairs = Vec::new();
        while !list.is_empty() {
            let (key, after) = list.split_once('=').unwrap();
            let key = key.trim();
            assert!(
                key.bytes().all(|b| b.is_ascii_lowercase() || b == b'-'),
                "{key}"
            );
            let (val, after) = if let Some(q) = after.strip_prefix('"') {
                let mut end = None;
                let mut esc = false;
                for (i, c) in q.char_indices() {
                    match c {
                        _ if esc => esc = false,
                        '\\' => esc = true,
                        '"' => {
                            end = Some(i);
                            break;
                        }
                        _ => {}
                    }
                }
                let e = end.expect("closed quoted-string");
                (format!("\"{}\"", &q[..e]), &q[e + 1..])
            } else {
                let e = after.find(';').unwrap_or(after.len());
                let atom = &after[..e];
                assert!(
                    atom.split('.').all(|a| !a.is_empty()
                        && a.chars().all(
                            |c| c.is_ascii_alphanumeric() || "!#$%&'*+-/=?^_`{|}~".contains(c)
                        )),
                    "not a dot-atom: {atom:?}"
                );
                (atom.to_string(), &after[e..])
            };
            pairs.push((key.to_string(), val));
            list = after.trim_start();
            if let Some(r) = list.strip_prefix(';') {
                list = r.trim_start();
            } else {
                assert!(list.is_empty(), "{list:?}");
            }
        }
        (result.to_string(), pairs)
    }

    fn get<'a>(pairs: &'a [(String, String)], key: &str) -> Option<&'a str> {
        pairs
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    #[test]
    fn mail_from_and_helo_each_get_a_field() {
        let mut mf = spf(
            AuthResult::Pass,
            SpfIdentity::MailFrom,
            "a@shop.test",
            "shop.test",
        );
        mf.mechanism = Some("ip4:192.0.2.0/24".into());
        let mut helo = spf(
            AuthResult::Fail,
            SpfIdentity::Helo,
            "postmaster@mail.shop.test",
            "mail.shop.test",
        );
        helo.mechanism = Some("all".into());
        let ev = evidence(Some(mf), Some(helo), "mail.shop.test");
        let fields = build("mx.example", &ev);
        assert_eq!(fields.len(), 2);
        assert_eq!(
            fields[0],
            " pass (mx.example: domain of a@shop.test designates 192.0.2.1 as permitted sender)\n\treceiver=mx.example; client-ip=192.0.2.1; envelope-from=\"a@shop.test\"; helo=mail.shop.test; identity=mailfrom; mechanism=\"ip4:192.0.2.0/24\""
        );
        let (r, p) = parse(&fields[1]);
        assert_eq!(r, "fail");
        assert_eq!(get(&p, "identity"), Some("helo"));
        assert_eq!(get(&p, "envelope-from"), None);
        assert_eq!(get(&p, "mechanism"), Some("all"));
        assert_eq!(get(&p, "receiver"), Some("mx.example"));
    }

    #[test]
    fn null_sender_has_one_helo_field_and_default_mechanism() {
        let h = spf(
            AuthResult::Neutral,
            SpfIdentity::Helo,
            "postmaster@mail.shop.test",
            "mail.shop.test",
        );
        let ev = evidence(Some(h.clone()), Some(h), "mail.shop.test");
        let fields = build("mx.example", &ev);
        assert_eq!(fields.len(), 1);
        let (r, p) = parse(&fields[0]);
        assert_eq!(r, "neutral");
        assert_eq!(get(&p, "identity"), Some("helo"));
        assert_eq!(get(&p, "envelope-from"), Some("\"<>\""));
        assert_eq!(get(&p, "mechanism"), Some("default"));
    }

    #[test]
    fn errors_carry_a_problem_and_no_mechanism() {
        let mut mf = spf(
            AuthResult::PermError,
            SpfIdentity::MailFrom,
            "a@x.test",
            "x.test",
        );
        mf.reason = Some("too many DNS lookups; (10)".into());
        let ev = evidence(Some(mf), None, "[192.0.2.1]");
        let fields = build("mx.example", &ev);
        let (r, p) = parse(&fields[0]);
        assert_eq!(r, "permerror");
        assert_eq!(get(&p, "problem"), Some("\"too many DNS lookups, (10)\""));
        assert_eq!(get(&p, "mechanism"), None);
        assert_eq!(get(&p, "helo"), Some("\"[192.0.2.1]\""));
    }

    #[test]
    fn hostile_sender_and_helo_cannot_break_out() {
        let hostile =
            "x;receiver=other.example receiver=evil\r\nX-Injected: 1 (a) \"b\"\\ é@evil.test";
        let mf = spf(
            AuthResult::SoftFail,
            SpfIdentity::MailFrom,
            hostile,
            "evil.test",
        );
        let ev = evidence(Some(mf), None, "h;receiver=evil\r\n(x)");
        let mut ev6 = ev.clone();
        ev6.smtp.client_ip = Some("2001:db8::1".parse().unwrap());
        for ev in [ev, ev6] {
            let fields = build("mx.example", &ev);
            let (_, p) = parse(&fields[0]);
            let receivers: Vec<_> = p.iter().filter(|(k, _)| k == "receiver").collect();
            assert_eq!(receivers.len(), 1, "{p:?}");
            let keys: Vec<&str> = p.iter().map(|(k, _)| k.as_str()).collect();
            assert_eq!(
                keys,
                [
                    "receiver",
                    "client-ip",
                    "envelope-from",
                    "helo",
                    "identity",
                    "mechanism"
                ]
            );
            // Our own deletion recognises the field as ours, and only ours.
            assert_eq!(
                crate::actions::sanitize::received_spf_receiver(&fields[0]).as_deref(),
                Some("mx.example")
            );
        }
    }
}
