//! From hygiene: which RFC 5322.From domain DMARC evaluates, if any.
//!
//! The rule (documented in the README): DMARC evaluates the From domain only
//! when the message has exactly one From header field and every address in it
//! is in the same domain. A message with several From fields, or with
//! addresses in different domains, can never get `dmarc=pass`: it gets
//! `dmarc=fail` under the strictest policy any of its From domains publishes.
//! A message without a From field, or whose From field does not parse as an
//! RFC 5322 address list with at least one mailbox, cannot be evaluated; the
//! operator decides what happens to it (`policy.invalid_from`, reject by
//! default).
//!
//! Addresses are parsed by [`super::address`], which takes the whole RFC 5322
//! grammar (comments and folding anywhere CFWS may stand, quoted strings,
//! groups, the obsolete forms), so `security@(comment)bank.example` is
//! `bank.example`, never an unparsable From that escapes DMARC.

use super::address;

/// The identity DMARC works with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FromIdentity {
    /// One From field; all its addresses in this (lower-case) domain.
    Single(String),
    /// No From field at all.
    Missing,
    /// A From field that does not yield a usable domain.
    Invalid(String),
    /// Several From fields or several domains: never passes.
    Conflicting {
        domains: Vec<String>,
        reason: String,
    },
}

impl FromIdentity {
    /// Every distinct From domain, first seen first.
    pub fn domains(&self) -> Vec<String> {
        match self {
            Self::Single(d) => vec![d.clone()],
            Self::Missing | Self::Invalid(_) => vec![],
            Self::Conflicting { domains, .. } => domains.clone(),
        }
    }

    /// Why DMARC cannot evaluate this From, when it cannot.
    pub fn unusable(&self) -> Option<String> {
        match self {
            Self::Missing => Some("no From header field".into()),
            Self::Invalid(why) => Some(why.clone()),
            _ => None,
        }
    }
}

/// Most From domains whose policies are looked up for a conflicting From.
pub const MAX_FROM_DOMAINS: usize = 5;

/// The domains of one From field value: `Ok` with every mailbox's domain
/// when it parses as RFC 5322 addresses; `Err` with why not, and the domains
/// a lenient scan finds in it.
fn domains_of(value: &[u8]) -> Result<Vec<String>, (String, Vec<String>)> {
    let value = value.strip_suffix(b"\r\n").unwrap_or(value);
    let value = value.strip_suffix(b"\n").unwrap_or(value);
    let list = match address::parse_address_list(value) {
        Ok(l) => l,
        Err(e) => {
            let why = format!("From does not parse as RFC 5322 addresses: {}", e.0);
            return Err((why, lenient_domains(value)));
        }
    };
    if list.is_empty() {
        return Err(("From holds no mailbox".into(), vec![]));
    }
    let mut out = Vec::new();
    for a in &list {
        match normalize_domain(&a.domain) {
            Some(d) => out.push(d),
            None => {
                let why = format!("From domain `{}` is not a domain name", a.domain);
                return Err((why, lenient_domains(value)));
            }
        }
    }
    Ok(out)
}

/// Every domain after an `@` anywhere in a From value that does not parse
/// (real mail has `Doe, John <jd@example.com>` and `Support [Acme] <s@...>`):
/// in quoted strings, comments and display names too, so whatever a mail
/// client might show as the sender is among them. One domain is evaluated as
/// the author's; several can never pass.
fn lenient_domains(value: &[u8]) -> Vec<String> {
    let text = String::from_utf8_lossy(value);
    let mut out: Vec<String> = Vec::new();
    let mut rest = text.as_ref();
    while let Some(at) = rest.find('@') {
        rest = &rest[at + 1..];
        let end = rest
            .find(|c: char| c.is_whitespace() || "<>()[],;:\"@\\".contains(c))
            .unwrap_or(rest.len());
        if let Some(d) = normalize_domain(&rest[..end]) {
            if !out.contains(&d) {
                out.push(d);
            }
        }
    }
    out
}

/// Normalises a domain: lower case, no trailing dot, A-labels for IDNs.
pub fn normalize_domain(d: &str) -> Option<String> {
    let d = d.trim().trim_end_matches('.');
    if d.is_empty() || d.starts_with('[') {
        return None;
    }
    let d = idna_ascii(d)?;
    let ok = d.len() <= 253
        && d.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && l.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        });
    ok.then_some(d)
}

fn idna_ascii(d: &str) -> Option<String> {
    if d.is_ascii() {
        Some(d.to_ascii_lowercase())
    } else {
        idna::domain_to_ascii(d).ok()
    }
}

/// Applies the rule above to the message's From header field values.
pub fn identify<'a>(from_values: impl IntoIterator<Item = &'a [u8]>) -> FromIdentity {
    let values: Vec<&[u8]> = from_values.into_iter().collect();
    if values.is_empty() {
        return FromIdentity::Missing;
    }
    let mut domains: Vec<String> = Vec::new();
    let mut problem = None;
    let mut lenient = false;
    for v in &values {
        let ds = match domains_of(v) {
            Ok(ds) => ds,
            Err((why, found)) => {
                problem = problem.or(Some(why));
                lenient |= !found.is_empty();
                found
            }
        };
        for d in ds {
            if !domains.contains(&d) {
                domains.push(d);
            }
        }
    }
    if domains.is_empty() {
        return FromIdentity::Invalid(problem.unwrap_or_else(|| "From holds no mailbox".into()));
    }
    if domains.len() > MAX_FROM_DOMAINS {
        // Not every policy would be looked up: a listed p=reject domain
        // could hide behind junk ones.
        return FromIdentity::Invalid(format!(
            "From has addresses in more than {MAX_FROM_DOMAINS} domains"
        ));
    }
    if values.len() > 1 {
        return FromIdentity::Conflicting {
            domains,
            reason: format!("{} From header fields", values.len()),
        };
    }
    if let (Some(p), false) = (problem, lenient && domains.len() == 1) {
        return FromIdentity::Conflicting { domains, reason: p };
    }
    if domains.len() > 1 {
        let reason = format!("From has addresses in {} domains", domains.len());
        return FromIdentity::Conflicting { domains, reason };
    }
    FromIdentity::Single(domains.remove(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(vals: &[&str]) -> FromIdentity {
        identify(vals.iter().map(|v| v.as_bytes()))
    }

    #[test]
    fn single_address() {
        assert_eq!(
            id(&[" Alice <alice@Example.COM>"]),
            FromIdentity::Single("example.com".into())
        );
    }

    #[test]
    fn several_addresses_same_domain_is_single() {
        assert_eq!(
            id(&[" a@example.com, \"B, b\" <b@example.com>"]),
            FromIdentity::Single("example.com".into())
        );
    }

    #[test]
    fn several_domains_conflict() {
        let r = id(&[" a@bank.test, b@evil.test"]);
        assert!(
            matches!(r, FromIdentity::Conflicting { ref domains, .. } if domains == &["bank.test", "evil.test"])
        );
    }

    #[test]
    fn several_fields_conflict_even_in_one_domain() {
        let r = id(&[" a@bank.test", " b@bank.test"]);
        assert!(matches!(r, FromIdentity::Conflicting { .. }));
    }

    #[test]
    fn missing_or_unparseable() {
        assert_eq!(id(&[]), FromIdentity::Missing);
        assert!(matches!(id(&[" undisclosed"]), FromIdentity::Invalid(_)));
        assert!(matches!(id(&[" ceo@"]), FromIdentity::Invalid(_)));
        assert!(matches!(id(&[" Undisclosed:;"]), FromIdentity::Invalid(_)));
        assert!(matches!(id(&[" a@[192.0.2.1]"]), FromIdentity::Invalid(_)));
        assert!(matches!(id(&[""]), FromIdentity::Invalid(_)));
    }

    #[test]
    fn comments_and_folding_inside_the_address_are_legal() {
        // RFC 5322 §3.4.1 / §4.4: CFWS around `@` and dots.
        for v in [
            " security@(comment)bank.example",
            " security@bank.example(comment)",
            " security @ bank . example",
            " \"x@evil.example\"@bank.example",
            " <@relay.example:ceo@bank.example>",
            " \"evil@attacker.example\" <ceo@bank.example>",
            " CEO\r\n <ceo@Bank.Example>",
            " Team: a@bank.example, b@bank.example;",
        ] {
            assert_eq!(
                id(&[v]),
                FromIdentity::Single("bank.example".into()),
                "{v:?}"
            );
        }
    }

    #[test]
    fn a_phrase_with_an_at_sign_is_not_an_address() {
        // `@` is a special: it cannot stand in a display-name atom. Scanned
        // leniently, both domains count: never a pass.
        assert!(matches!(
            id(&[" evil@attacker.example <ceo@bank.example>"]),
            FromIdentity::Conflicting { ref domains, .. } if domains.len() == 2
        ));
    }

    #[test]
    fn common_broken_forms_are_read_leniently() {
        for v in [
            " Doe, John <jd@Example.com>",
            " Support [Acme] <jd@example.com>",
            " jd@example.com <jd@example.com>",
        ] {
            assert_eq!(
                id(&[v]),
                FromIdentity::Single("example.com".into()),
                "{v:?}"
            );
        }
        // Every @domain anywhere counts, quoted or commented.
        assert!(matches!(
            id(&[" \"ceo@bank.example <x@evil.example>"]),
            FromIdentity::Conflicting { .. }
        ));
    }

    #[test]
    fn more_domains_than_are_looked_up_is_invalid() {
        let v = " a@d1.example, a@d2.example, a@d3.example, a@d4.example, a@d5.example, ceo@bank.example";
        assert!(matches!(id(&[v]), FromIdentity::Invalid(_)));
    }

    #[test]
    fn a_second_unparsable_field_still_conflicts() {
        let r = id(&[" a@bank.example", " ((("]);
        assert!(
            matches!(r, FromIdentity::Conflicting { ref domains, .. } if domains == &["bank.example"])
        );
    }

    #[test]
    fn idn_becomes_a_label() {
        assert_eq!(
            id(&[" x@bücher.example"]),
            FromIdentity::Single("xn--bcher-kva.example".into())
        );
    }
}
