//! From hygiene: which RFC 5322.From domain DMARC evaluates, if any.
//!
//! The rule (documented in the README): DMARC evaluates the From domain only
//! when the message has exactly one From header field and every address in it
//! is in the same domain. A message with several From fields, or with
//! addresses in different domains, can never get `dmarc=pass`: it gets
//! `dmarc=fail` under the strictest policy any of its From domains publishes.
//! A message with no usable From address gets `dmarc=permerror`.

use mail_parser::{HeaderValue, MessageParser};

/// The identity DMARC works with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FromIdentity {
    /// One From field; all its addresses in this (lower-case) domain.
    Single(String),
    /// No From field, or no parseable address in it.
    Missing,
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
            Self::Missing => vec![],
            Self::Conflicting { domains, .. } => domains.clone(),
        }
    }
}

/// Most From domains whose policies are looked up for a conflicting From.
pub const MAX_FROM_DOMAINS: usize = 5;

fn addresses_of(value: &[u8]) -> Vec<String> {
    let mut raw = Vec::with_capacity(value.len() + 10);
    raw.extend_from_slice(b"From:");
    raw.extend_from_slice(value);
    raw.extend_from_slice(b"\r\n\r\n");
    let Some(msg) = MessageParser::new().parse_headers(&raw) else {
        return vec![];
    };
    let mut out = Vec::new();
    for h in msg.headers() {
        if let HeaderValue::Address(a) = &h.value {
            for addr in a.iter() {
                if let Some(s) = &addr.address {
                    out.push(s.to_string());
                }
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
    let mut domains: Vec<String> = Vec::new();
    for v in &values {
        for addr in addresses_of(v) {
            if let Some(d) = addr.rsplit_once('@').and_then(|(_, d)| normalize_domain(d)) {
                if !domains.contains(&d) {
                    domains.push(d);
                }
            }
        }
    }
    if domains.is_empty() {
        return FromIdentity::Missing;
    }
    if values.len() > 1 {
        domains.truncate(MAX_FROM_DOMAINS);
        return FromIdentity::Conflicting {
            domains,
            reason: format!("{} From header fields", values.len()),
        };
    }
    if domains.len() > 1 {
        domains.truncate(MAX_FROM_DOMAINS);
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
        assert_eq!(id(&[" undisclosed"]), FromIdentity::Missing);
    }

    #[test]
    fn idn_becomes_a_label() {
        assert_eq!(
            id(&[" x@bücher.example"]),
            FromIdentity::Single("xn--bcher-kva.example".into())
        );
    }
}
