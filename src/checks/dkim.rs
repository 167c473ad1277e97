//! DKIM (RFC 6376, RFC 8301, RFC 8463) through mail-auth, with guards where
//! the library deviates from the RFCs.
//!
//! - Keys are fetched as soon as the headers are known ([`prefetch_keys`]) and
//!   handed to mail-auth through a per-message cache, so end of message does
//!   no key lookups.
//! - RFC 8301: `rsa-sha1` signatures and RSA keys under 1024 bits never pass;
//!   they are reported as `policy`.
//! - A body hash mismatch is `fail` (RFC 6376 §6.1.3), not `neutral`.
//! - At most `max_signatures` are verified; the rest are reported as `policy`.
//! - Results are listed in header order.

use super::evidence::{AuthResult, DkimEvidence};
use crate::dns::{Dns, LookupError};
use base64::Engine;
use mail_auth::{
    common::{crypto::Algorithm, parse::TxtRecordParser, verify::DomainKey},
    dkim::{DkimError, Signature},
    AuthenticatedMessage, DkimOutput, DkimResult, DnsError, Error as MaError, Parameters,
    ResolverCache, Txt,
};
use std::{borrow::Borrow, collections::HashMap, hash::Hash, sync::Arc, time::Instant};

/// RFC 8301 §3.2: verifiers MUST NOT consider RSA keys under 1024 bits valid.
pub const MIN_RSA_BITS: usize = 1024;

/// One fetched key record.
#[derive(Clone)]
struct KeyEntry {
    txt: Txt,
    rsa_bits: Option<usize>,
    /// The record's tags, for the restrictions the library does not check
    /// (RFC 6376 §3.6.1 `h=`, `s=`).
    tags: Vec<(String, String)>,
}

/// RFC 6376 §3.6.1: a key whose `h=` does not list the signature's hash, or
/// whose `s=` lists neither `email` nor `*`, MUST be ignored (PERMFAIL).
fn key_restrictions(t: &[(String, String)], sig_hash: &str) -> Option<String> {
    if let Some(h) = tag(t, "h") {
        if !h
            .split(':')
            .any(|a| a.trim().eq_ignore_ascii_case(sig_hash))
        {
            return Some(format!(
                "key h={h} does not allow {sig_hash} (RFC 6376 3.6.1)"
            ));
        }
    }
    if let Some(s) = tag(t, "s") {
        if !s
            .split(':')
            .any(|x| x.trim() == "*" || x.trim().eq_ignore_ascii_case("email"))
        {
            return Some(format!("key s={s} is not for email (RFC 6376 3.6.1)"));
        }
    }
    None
}

/// Keys fetched for one message, keyed by `selector._domainkey.domain.`.
#[derive(Clone, Default)]
pub struct KeyCache {
    keys: HashMap<Box<str>, KeyEntry>,
}

impl ResolverCache<Box<str>, Txt> for KeyCache {
    /// Every key was fetched ahead of time: a name not in the cache is an
    /// error (temporary), never a lookup of the library's own outside our
    /// DNS budget (it would otherwise query `_report._domainkey` and any key
    /// it selected differently).
    fn get<Q>(&self, name: &Q) -> Option<Txt>
    where
        Box<str>: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        Some(match self.keys.get(name) {
            Some(k) => k.txt.clone(),
            None => Txt::Error(MaError::Dns(DnsError::Resolver(
                "key not fetched ahead of verification".into(),
            ))),
        })
    }

    fn remove<Q>(&self, _name: &Q) -> Option<Txt>
    where
        Box<str>: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        None
    }

    fn insert(&self, _key: Box<str>, _value: Txt, _valid_until: Instant) {}
}

/// Whether `d` may share the author's Organizational Domain, judged from the
/// names alone (parent, child, or the same last two labels): the signatures
/// verified first when there are more than `limits.max_signatures`.
fn may_align(d: &str, author: Option<&str>) -> bool {
    let Some(a) = author else {
        return false;
    };
    let d = d.trim_end_matches('.').to_ascii_lowercase();
    fn last2(x: &str) -> Vec<&str> {
        x.rsplit('.').take(2).collect()
    }
    d == a
        || d.ends_with(&format!(".{a}"))
        || a.ends_with(&format!(".{d}"))
        || last2(&d) == last2(a)
}

/// The signatures verified, as the library parses them (so key prefetch and
/// verification agree): those that may align with the author first, then
/// header order, at most `max`.
pub fn selected(values: &[Vec<u8>], author: Option<&str>, max: usize) -> Vec<Signature> {
    let mut sigs: Vec<Signature> = values
        .iter()
        .filter_map(|v| Signature::parse(v).ok())
        .filter(|s| s.l == 0)
        .collect();
    sigs.sort_by_key(|s| !may_align(&s.d, author));
    sigs.truncate(max);
    sigs
}

/// Splits a tag=value list (RFC 6376 §3.2).
pub fn tags(value: &[u8]) -> Vec<(String, String)> {
    String::from_utf8_lossy(value)
        .split(';')
        .filter_map(|t| {
            let (k, v) = t.split_once('=')?;
            let v: String = v.chars().filter(|c| !c.is_whitespace()).collect();
            Some((k.trim().to_string(), v))
        })
        .collect()
}

fn tag<'a>(tags: &'a [(String, String)], name: &str) -> Option<&'a str> {
    tags.iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

fn key_name(selector: &str, domain: &str) -> String {
    format!(
        "{}._domainkey.{}.",
        selector.to_ascii_lowercase(),
        domain.trim_end_matches('.').to_ascii_lowercase()
    )
}

/// Size in bits of the RSA modulus in a DKIM `p=` value (SubjectPublicKeyInfo
/// or bare RSAPublicKey DER), or `None` when it cannot be read.
pub fn rsa_modulus_bits(p_b64: &str) -> Option<usize> {
    let der = base64::engine::general_purpose::STANDARD
        .decode(p_b64.as_bytes())
        .ok()?;
    fn read(d: &[u8]) -> Option<(u8, &[u8], &[u8])> {
        let tag = *d.first()?;
        let first = *d.get(1)? as usize;
        let (len, hdr) = if first < 0x80 {
            (first, 2)
        } else {
            let n = first & 0x7f;
            if n == 0 || n > 4 {
                return None;
            }
            let mut len = 0usize;
            for i in 0..n {
                len = (len << 8) | *d.get(2 + i)? as usize;
            }
            (len, 2 + n)
        };
        let body = d.get(hdr..hdr + len)?;
        Some((tag, body, &d[hdr + len..]))
    }
    let (t, outer, _) = read(&der)?;
    if t != 0x30 {
        return None;
    }
    let (t1, first, rest) = read(outer)?;
    let rsa_key = if t1 == 0x30 {
        // SubjectPublicKeyInfo: AlgorithmIdentifier, then BIT STRING.
        let (t2, bits, _) = read(rest)?;
        if t2 != 0x03 || bits.is_empty() {
            return None;
        }
        let (t3, seq, _) = read(&bits[1..])?;
        if t3 != 0x30 {
            return None;
        }
        let (t4, n, _) = read(seq)?;
        (t4 == 0x02).then_some(n)?
    } else if t1 == 0x02 {
        first
    } else {
        return None;
    };
    let n: Vec<u8> = rsa_key.iter().copied().skip_while(|b| *b == 0).collect();
    let lead = *n.first()?;
    Some(n.len() * 8 - lead.leading_zeros() as usize)
}

async fn fetch_key(dns: &Dns, name: &str) -> KeyEntry {
    match dns.txt(name).await {
        Ok(records) => {
            let mut last_err = MaError::ParseError;
            for r in &records {
                match DomainKey::parse(r) {
                    Ok(k) => {
                        let t = tags(r);
                        let is_rsa = tag(&t, "k").is_none_or(|k| k.eq_ignore_ascii_case("rsa"));
                        let rsa_bits = match tag(&t, "p") {
                            Some(p) if is_rsa && !p.is_empty() => rsa_modulus_bits(p),
                            _ => None,
                        };
                        return KeyEntry {
                            txt: Txt::DomainKey(Arc::new(k)),
                            rsa_bits,
                            tags: t,
                        };
                    }
                    Err(e) => last_err = e,
                }
            }
            KeyEntry {
                txt: Txt::Error(last_err),
                rsa_bits: None,
                tags: vec![],
            }
        }
        Err(LookupError::Temporary(e)) => KeyEntry {
            txt: Txt::Error(MaError::Dns(DnsError::Resolver(e))),
            rsa_bits: None,
            tags: vec![],
        },
        Err(LookupError::NxDomain) | Err(LookupError::NoData) => KeyEntry {
            txt: Txt::Error(MaError::Dns(DnsError::RecordNotFound(
                hickory_resolver::proto::op::ResponseCode::NXDomain,
            ))),
            rsa_bits: None,
            tags: vec![],
        },
    }
}

/// The `d=` domains (lower case, distinct) of signatures.
pub fn signing_domains(sigs: &[Signature]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for s in sigs {
        let d = s.d.trim_end_matches('.').to_ascii_lowercase();
        if !d.is_empty() && !out.contains(&d) {
            out.push(d);
        }
    }
    out
}

/// Fetches, concurrently, the keys of the signatures that will be verified
/// (see [`selected`]).
pub async fn prefetch_keys(
    dns: &Dns,
    values: &[Vec<u8>],
    author: Option<&str>,
    max: usize,
) -> KeyCache {
    fetch_keys(dns, &selected(values, author, max)).await
}

/// Fetches, concurrently, the keys of `sigs`.
pub async fn fetch_keys(dns: &Dns, sigs: &[Signature]) -> KeyCache {
    let names: Vec<(String, String)> = sigs.iter().map(|s| (s.s.clone(), s.d.clone())).collect();
    fetch_named(dns, &names).await
}

/// Fetches, concurrently, the keys named by (selector, domain) pairs.
pub async fn fetch_named(dns: &Dns, pairs: &[(String, String)]) -> KeyCache {
    // The library asks for `s._domainkey.d.` as the signature writes it;
    // DNS names are case-insensitive: fetch once per lower-case name.
    let mut names: Vec<(String, String)> = Vec::new();
    for (s, d) in pairs {
        let exact = format!("{s}._domainkey.{d}.");
        if !names.iter().any(|(e, _)| *e == exact) {
            names.push((exact, key_name(s, d)));
        }
    }
    let mut lower: Vec<String> = names.iter().map(|(_, l)| l.clone()).collect();
    lower.sort();
    lower.dedup();
    let fetched = futures::future::join_all(lower.iter().map(|n| fetch_key(dns, n))).await;
    let by_lower: HashMap<String, KeyEntry> = lower.into_iter().zip(fetched).collect();
    let mut keys = HashMap::new();
    for (exact, l) in names {
        if let Some(k) = by_lower.get(&l) {
            keys.insert(exact.clone().into_boxed_str(), k.clone());
            keys.insert(l.into_boxed_str(), k.clone());
        }
    }
    KeyCache { keys }
}

impl KeyCache {
    /// Adds the keys of `other` (already fetched) to this cache.
    pub fn merge(&mut self, other: KeyCache) {
        self.keys.extend(other.keys);
    }

    /// Why the key `selector._domainkey.domain` may not be used with
    /// `hash` (its `h=` or `s=` tags, RFC 6376 §3.6.1), if it may not.
    pub fn restriction(&self, selector: &str, domain: &str, hash: &str) -> Option<String> {
        let k = self.keys.get(key_name(selector, domain).as_str())?;
        matches!(k.txt, Txt::DomainKey(_))
            .then(|| key_restrictions(&k.tags, hash))
            .flatten()
    }

    /// Whether fetching the key `selector._domainkey.domain` failed in a way
    /// that may go away (SERVFAIL, timeout).
    pub fn is_temporary_failure(&self, selector: &str, domain: &str) -> bool {
        self.keys
            .get(key_name(selector, domain).as_str())
            .is_some_and(|k| matches!(k.txt, Txt::Error(MaError::Dns(DnsError::Resolver(_)))))
    }

    /// The RSA modulus size of the key `selector._domainkey.domain`, when it
    /// was fetched and is an RSA key.
    pub fn rsa_bits(&self, selector: &str, domain: &str) -> Option<usize> {
        self.keys
            .get(key_name(selector, domain).as_str())
            .and_then(|k| k.rsa_bits)
    }
}

fn b_prefix(b: &[u8]) -> String {
    let n = b.len().min(6);
    base64::engine::general_purpose::STANDARD.encode(&b[..n])
}

fn map_result(r: &DkimResult) -> (AuthResult, Option<String>) {
    match r {
        DkimResult::Pass => (AuthResult::Pass, None),
        DkimResult::Neutral(MaError::Dkim(DkimError::FailedBodyHashMatch)) => {
            (AuthResult::Fail, Some("body hash did not verify".into()))
        }
        DkimResult::Neutral(e) => (AuthResult::Neutral, Some(e.to_string())),
        DkimResult::Fail(e) => (AuthResult::Fail, Some(e.to_string())),
        // RFC 6376 §8.2: a signature with l= is valid but leaves any appended
        // content unsigned; mail-auth refuses it, we report it as `policy`.
        DkimResult::PermError(MaError::Dkim(DkimError::SignatureLength)) => (
            AuthResult::Policy,
            Some("l= body length leaves appended content unsigned".into()),
        ),
        DkimResult::PermError(e) => (AuthResult::PermError, Some(e.to_string())),
        DkimResult::TempError(e) => (AuthResult::TempError, Some(e.to_string())),
        DkimResult::None => (AuthResult::None, None),
    }
}

fn algorithm_name(a: Algorithm) -> &'static str {
    match a {
        Algorithm::RsaSha1 => "rsa-sha1",
        Algorithm::RsaSha256 => "rsa-sha256",
        Algorithm::Ed25519Sha256 => "ed25519-sha256",
    }
}

fn offset_of(raw: &[u8], part: &[u8]) -> usize {
    (part.as_ptr() as usize).saturating_sub(raw.as_ptr() as usize)
}

fn evidence_from_tags(value: &[u8], result: AuthResult, reason: String) -> DkimEvidence {
    let t = tags(value);
    let d = tag(&t, "d").unwrap_or_default().to_string();
    DkimEvidence {
        result,
        identity: tag(&t, "i")
            .map(str::to_string)
            .unwrap_or_else(|| format!("@{d}")),
        domain: d.to_ascii_lowercase(),
        selector: tag(&t, "s").unwrap_or_default().to_string(),
        algorithm: tag(&t, "a").unwrap_or_default().to_string(),
        b_prefix: tag(&t, "b").unwrap_or_default().chars().take(8).collect(),
        reason: Some(reason),
        local_limit: false,
    }
}

/// Evidence for signatures that were not verified (deadline passed, DNS).
pub fn unverified(values: &[Vec<u8>], result: AuthResult, reason: &str) -> Vec<DkimEvidence> {
    values
        .iter()
        .map(|v| evidence_from_tags(v, result, reason.to_string()))
        .collect()
}

/// Evidence for signatures that a local limit kept from being verified
/// (`policy`, marked so that DMARC never counts them as failures).
pub fn over_limit(values: &[Vec<u8>], reason: &str) -> Vec<DkimEvidence> {
    values
        .iter()
        .map(|v| DkimEvidence {
            local_limit: true,
            ..evidence_from_tags(v, AuthResult::Policy, reason.to_string())
        })
        .collect()
}

/// RFC 6376 §5.4 / §6.1.1: the From header field MUST be signed; a
/// signature whose `h=` lacks it is invalid and can never pass.
fn signs_from(h: &[String]) -> bool {
    h.iter().any(|n| n.trim().eq_ignore_ascii_case("from"))
}

fn is_dkim_signature(name: &[u8]) -> bool {
    name.eq_ignore_ascii_case(b"DKIM-Signature")
}

/// The library's verdict on one parsed signature, with our guards applied.
fn judge(o: &DkimOutput<'_>, sig: &Signature, keys: &KeyCache) -> (AuthResult, Option<String>) {
    let (result, reason) = map_result(o.result());
    let key = keys.keys.get(key_name(&sig.s, &sig.d).as_str());
    let key_bits = || key.and_then(|k| k.rsa_bits);
    let sig_hash = if sig.a == Algorithm::RsaSha1 {
        "sha1"
    } else {
        "sha256"
    };
    let restricted = key
        .filter(|k| matches!(k.txt, Txt::DomainKey(_)))
        .and_then(|k| key_restrictions(&k.tags, sig_hash));
    if !signs_from(&sig.h) {
        (
            AuthResult::PermError,
            Some("From field not signed (RFC 6376 5.4)".into()),
        )
    } else if let Some(why) = restricted {
        (AuthResult::PermError, Some(why))
    } else if sig.a == Algorithm::RsaSha1 {
        (
            AuthResult::Policy,
            Some("rsa-sha1 is not accepted (RFC 8301)".into()),
        )
    } else if let Some(bits) = key_bits().filter(|b| *b < MIN_RSA_BITS) {
        (
            AuthResult::Policy,
            Some(format!("{bits}-bit RSA key is too short (RFC 8301)")),
        )
    } else {
        (result, reason)
    }
}

/// Verifies every DKIM signature of a complete message (CRLF line ends).
/// `values` are the DKIM-Signature field values the session saw, in order;
/// every one of them gets exactly one result, in header order. A message cut
/// at the size limit is not verified here: see [`over_limit`].
pub async fn verify(
    dns: &Dns,
    raw: &[u8],
    values: &[Vec<u8>],
    keys: &KeyCache,
    author: Option<&str>,
    max_signatures: usize,
) -> Vec<DkimEvidence> {
    let Some(mut msg) = AuthenticatedMessage::parse(raw) else {
        return unverified(values, AuthResult::PermError, "message could not be parsed");
    };
    verify_parsed(dns, raw, &mut msg, values, keys, author, max_signatures).await
}

/// [`verify`] on a message already parsed from `raw`.
pub async fn verify_parsed(
    dns: &Dns,
    raw: &[u8],
    msg: &mut AuthenticatedMessage<'_>,
    values: &[Vec<u8>],
    keys: &KeyCache,
    author: Option<&str>,
    max_signatures: usize,
) -> Vec<DkimEvidence> {
    let mut out: Vec<(usize, DkimEvidence)> = Vec::new();
    if msg.dkim_headers.len() > max_signatures {
        // Those that may align first (as the keys were fetched). The rest
        // are not verified and count as no signature: a sender cannot
        // escape DMARC by adding signatures.
        msg.dkim_headers
            .sort_by_key(|h| !may_align(&h.header.d, author));
        for h in msg.dkim_headers.drain(max_signatures..) {
            let ev = evidence_from_tags(
                h.value,
                AuthResult::Policy,
                format!("not verified: more than {max_signatures} signatures"),
            );
            out.push((offset_of(raw, h.name), ev));
        }
    }
    // Signatures that do not parse are `permerror` (RFC 6376 §6.1.1), whatever
    // error the library gives and whether or not it reports them.
    for h in msg.errors.iter().filter(|h| is_dkim_signature(h.name)) {
        let length_tag = matches!(h.header, MaError::Dkim(DkimError::SignatureLength));
        let (result, reason) = if length_tag {
            // RFC 6376 §8.2: l= is valid but leaves appended content
            // unsigned; mail-auth refuses it, we report `policy`.
            (
                AuthResult::Policy,
                "l= body length leaves appended content unsigned".to_string(),
            )
        } else {
            (
                AuthResult::PermError,
                format!("malformed signature: {}", h.header),
            )
        };
        out.push((
            offset_of(raw, h.name),
            evidence_from_tags(h.value, result, reason),
        ));
    }
    let outputs = dns
        .authenticator()
        .verify_dkim(Parameters::new(&*msg).with_txt_cache(keys))
        .await;
    // Each result is tied to its header by identity, not by position.
    for h in &msg.dkim_headers {
        let sig = &h.header;
        let output = outputs
            .iter()
            .find(|o| o.signature().is_some_and(|s| std::ptr::eq(s, sig)));
        let (result, reason) = match output {
            Some(o) => judge(o, sig, keys),
            None => (
                AuthResult::TempError,
                Some("the verifier returned no result".into()),
            ),
        };
        out.push((
            offset_of(raw, h.name),
            DkimEvidence {
                result,
                domain: sig.d.to_ascii_lowercase(),
                selector: sig.s.clone(),
                identity: if sig.i.is_empty() {
                    format!("@{}", sig.d)
                } else {
                    sig.i.clone()
                },
                algorithm: algorithm_name(sig.a).into(),
                b_prefix: b_prefix(&sig.b),
                reason,
                local_limit: false,
            },
        ));
    }
    out.sort_by_key(|(o, _)| *o);
    let mut evidence: Vec<DkimEvidence> = out.into_iter().map(|(_, e)| e).collect();
    // A field the session saw that the library's header parser did not.
    if evidence.len() < values.len() {
        for v in &values[evidence.len()..] {
            evidence.push(evidence_from_tags(
                v,
                AuthResult::PermError,
                "malformed signature field".into(),
            ));
        }
    }
    evidence
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tag_list_parsing() {
        let t = tags(b"v=1; a=rsa-sha256; d=Example.com;\r\n s=sel; b=ab cd\r\n\tef");
        assert_eq!(tag(&t, "d"), Some("Example.com"));
        assert_eq!(tag(&t, "b"), Some("abcdef"));
    }

    #[test]
    fn modulus_of_spki_key() {
        // A 1024-bit RSA SubjectPublicKeyInfo (RFC 6376 appendix C style).
        let p = "MIGfMA0GCSqGSIb3DQEBAQUAA4GNADCBiQKBgQDwIRP/UC3SBsEmGqZ9ZJW3/DkMoGeLnQg1fWn7/zYtIxN2SnFCjxOCKG9v3b4jYfcTNh5ijSsq631uBItLa7od+v/RtdC2UzJ1lWT947qR+Rcac2gbto/NMqJ0fzfVjH4OuKhitdY9tf6mcwGjaNBcWToIMmPSPDdQPNUYckcQ2QIDAQAB";
        assert_eq!(rsa_modulus_bits(p), Some(1024));
        assert_eq!(rsa_modulus_bits("not base64!"), None);
    }
}
