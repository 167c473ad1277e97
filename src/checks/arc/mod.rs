//! ARC chain validation (RFC 8617 §5.2) through mail-auth, with guards where
//! the library deviates from the RFC:
//!
//! - Only `pass`, `fail` and `none` are results (RFC 8617 §4.4, §10.1): a
//!   body hash mismatch of the newest ARC-Message-Signature, an expired
//!   signature, a malformed field or a key that cannot be fetched are all
//!   `fail` (mail-auth calls some of them `neutral`, `permerror` or
//!   `temperror`); §5.2.1 makes DNS failures permanent. The evidence still
//!   marks a chain `temporary` when the newest seal's own key could not be
//!   fetched (SERVFAIL, timeout), for local policy (`policy::arc`).
//! - Any ARC header field makes a chain: a lone ARC-Seal or
//!   ARC-Authentication-Results without the rest of its set is `fail`, not
//!   `none` (§5.2 step 3.1; mail-auth counts only the message signatures).
//! - Keys are fetched ahead of time with the DKIM keys (at most
//!   [`MAX_ARC_KEYS`] names); RFC 8301 applies to ARC keys as to DKIM keys:
//!   `rsa-sha1` and RSA keys under 1024 bits fail, and so does a key whose
//!   `h=` or `s=` excludes the use (RFC 6376 §3.6.1).
//!
//! The sets are also read here, independently of the validation, so that the
//! sealers and what their ARC-Authentication-Results record can be logged
//! and judged by local policy (trusted sealers live in `policy`, not here).

pub mod seal;

use super::{
    dkim::{self, KeyCache},
    evidence::{AarResult, ArcEvidence, ArcHop, AuthResult},
};
use crate::dns::Dns;
use mail_auth::{
    arc::ArcError, dkim::DkimError, AuthenticatedMessage, DkimResult, Error as MaError, Parameters,
};
use std::collections::BTreeMap;

/// RFC 8617 §5.2 step 1: at most 50 ARC sets.
pub const MAX_SETS: u32 = 50;

/// Most distinct key names fetched for one chain (the newest message
/// signature and every seal). A longer chain of distinct keys is `fail`:
/// nobody forwards through that many signing domains, and each one costs a
/// DNS query.
pub const MAX_ARC_KEYS: usize = 16;

const SEAL: &str = "arc-seal";
const SIGNATURE: &str = "arc-message-signature";
const RESULTS: &str = "arc-authentication-results";

/// Whether a header field name is one of ARC's three.
pub fn is_arc_header(name: &str) -> bool {
    [SEAL, SIGNATURE, RESULTS]
        .iter()
        .any(|n| name.eq_ignore_ascii_case(n))
}

fn instance(value: &[u8]) -> Option<u32> {
    dkim::tags(value)
        .into_iter()
        .find(|(k, _)| k == "i")
        .and_then(|(_, v)| v.parse().ok())
}

fn tag_value(value: &[u8], name: &str) -> Option<String> {
    dkim::tags(value)
        .into_iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v)
}

/// The key names (selector, domain) that validating this chain needs: every
/// seal's and the newest message signature's. `None` when there are more
/// than [`MAX_ARC_KEYS`].
pub fn key_names(fields: &[(String, Vec<u8>)]) -> Option<Vec<(String, String)>> {
    let mut names: Vec<(String, String)> = Vec::new();
    let newest_ams = fields
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case(SIGNATURE))
        .max_by_key(|(_, v)| instance(v).unwrap_or(0));
    let seals = fields.iter().filter(|(n, _)| n.eq_ignore_ascii_case(SEAL));
    for (_, v) in seals.chain(newest_ams) {
        let (Some(s), Some(d)) = (tag_value(v, "s"), tag_value(v, "d")) else {
            continue;
        };
        let key = (s, d);
        if !names.iter().any(|n| {
            n.0.eq_ignore_ascii_case(&key.0)
                && n.1.eq_ignore_ascii_case(key.1.trim_end_matches('.'))
        }) {
            names.push(key);
        }
    }
    (names.len() <= MAX_ARC_KEYS).then_some(names)
}

/// Strips RFC 5322 comments (nested, with quoted pairs) outside quoted strings.
fn strip_comments(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let (mut depth, mut quoted, mut escaped) = (0usize, false, false);
    for c in s.chars() {
        if escaped {
            escaped = false;
            if depth == 0 {
                out.push(c);
            }
            continue;
        }
        match c {
            '\\' => {
                escaped = true;
                if depth == 0 {
                    out.push(c);
                }
            }
            '"' if depth == 0 => {
                quoted = !quoted;
                out.push(c);
            }
            '(' if !quoted => depth += 1,
            ')' if !quoted && depth > 0 => {
                depth -= 1;
                if depth == 0 {
                    out.push(' ');
                }
            }
            _ if depth > 0 => {}
            _ => out.push(c),
        }
    }
    out
}

/// Splits on `;` outside quoted strings.
fn split_semicolons(s: &str) -> Vec<String> {
    let mut parts = vec![String::new()];
    let (mut quoted, mut escaped) = (false, false);
    for c in s.chars() {
        if escaped {
            escaped = false;
        } else if c == '\\' {
            escaped = true;
        } else if c == '"' {
            quoted = !quoted;
        } else if c == ';' && !quoted {
            parts.push(String::new());
            continue;
        }
        parts.last_mut().expect("never empty").push(c);
    }
    parts
}

fn unquote(v: &str) -> String {
    let v = v.trim();
    match v.strip_prefix('"').and_then(|r| r.strip_suffix('"')) {
        Some(inner) => inner.replace("\\\"", "\"").replace("\\\\", "\\"),
        None => v.to_string(),
    }
}

/// Reads an ARC-Authentication-Results value (`i=N; authserv-id; results`,
/// RFC 8617 §4.1.1 and RFC 8601 §2.2): the authserv-id and each result with
/// its `header.from`.
pub fn parse_aar(value: &[u8]) -> (Option<String>, Vec<AarResult>) {
    let text = strip_comments(&String::from_utf8_lossy(value));
    let mut parts = split_semicolons(&text).into_iter();
    // `i=N` comes first.
    let _instance = parts.next();
    let authserv_id = parts
        .next()
        .and_then(|p| p.split_whitespace().next().map(unquote))
        .map(|s| s.to_ascii_lowercase())
        .filter(|s| !s.is_empty());
    let mut results = Vec::new();
    for part in parts {
        let mut words = part.split_whitespace();
        let Some((method, result)) = words.next().and_then(|w| w.split_once('=')) else {
            continue;
        };
        // `method/version`.
        let method = method.split('/').next().unwrap_or(method).trim();
        let header_from = words.find_map(|w| {
            let (k, v) = w.split_once('=')?;
            k.eq_ignore_ascii_case("header.from").then(|| {
                let v = unquote(v);
                // A `header.from` may carry a whole address: the domain counts.
                let d = v.rsplit_once('@').map_or(v.as_str(), |(_, d)| d);
                d.trim_end_matches('.').to_ascii_lowercase()
            })
        });
        results.push(AarResult {
            method: method.to_ascii_lowercase(),
            result: unquote(result).to_ascii_lowercase(),
            header_from,
        });
    }
    (authserv_id, results)
}

/// The sets as the message carries them, oldest first: one entry per
/// instance that has a seal (the sealer) and whatever results it recorded.
fn read_hops(fields: &[(String, Vec<u8>)]) -> Vec<ArcHop> {
    let mut hops: BTreeMap<u32, ArcHop> = BTreeMap::new();
    for (name, value) in fields {
        let Some(i) = instance(value) else { continue };
        let hop = hops.entry(i).or_insert_with(|| ArcHop {
            instance: i,
            sealer: String::new(),
            authserv_id: None,
            results: Vec::new(),
        });
        if name.eq_ignore_ascii_case(SEAL) && hop.sealer.is_empty() {
            hop.sealer = tag_value(value, "d")
                .unwrap_or_default()
                .trim_end_matches('.')
                .to_ascii_lowercase();
        } else if name.eq_ignore_ascii_case(RESULTS) && hop.authserv_id.is_none() {
            let (id, results) = parse_aar(value);
            hop.authserv_id = id;
            hop.results = results;
        }
    }
    hops.into_values().collect()
}

/// The three ARC field names and values of a parsed message, in header order.
pub fn arc_fields(msg: &AuthenticatedMessage<'_>) -> Vec<(String, Vec<u8>)> {
    msg.headers
        .iter()
        .filter_map(|(n, v)| {
            let name = std::str::from_utf8(n).ok()?.trim();
            is_arc_header(name).then(|| (name.to_string(), v.to_vec()))
        })
        .collect()
}

/// The highest instance of an ARC-Message-Signature.
fn newest_signature(fields: &[(String, Vec<u8>)]) -> Option<u32> {
    fields
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case(SIGNATURE))
        .filter_map(|(_, v)| instance(v))
        .max()
}

/// The (selector, domain) of the ARC-Seal with the highest instance.
fn newest_seal_key(fields: &[(String, Vec<u8>)]) -> Option<(String, String)> {
    let (_, v) = fields
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case(SEAL))
        .max_by_key(|(_, v)| instance(v).unwrap_or(0))?;
    Some((tag_value(v, "s")?, tag_value(v, "d")?))
}

/// Why the library's verdict is not a pass, in words.
fn failure(r: &DkimResult) -> (String, bool) {
    let e = match r {
        DkimResult::Pass | DkimResult::None => return (String::new(), false),
        DkimResult::Neutral(e)
        | DkimResult::Fail(e)
        | DkimResult::PermError(e)
        | DkimResult::TempError(e) => e,
    };
    let temporary = matches!(r, DkimResult::TempError(_));
    let text = match e {
        MaError::Arc(ArcError::FailedBodyHashMatch)
        | MaError::Dkim(DkimError::FailedBodyHashMatch) => {
            "body hash of the newest ARC-Message-Signature did not verify".to_string()
        }
        MaError::Arc(ArcError::InvalidCV) => "invalid cv= in the chain".to_string(),
        MaError::Arc(ArcError::InvalidInstance(i)) => format!("instances not 1..N (at i={i})"),
        MaError::Arc(ArcError::BrokenChain) => "incomplete ARC set".to_string(),
        MaError::Arc(ArcError::ChainTooLong) => format!("more than {MAX_SETS} ARC sets"),
        MaError::Arc(ArcError::HasHeaderTag) => "h= in an ARC-Seal".to_string(),
        MaError::Arc(ArcError::SignatureExpired) => "ARC-Message-Signature expired".to_string(),
        MaError::Arc(ArcError::SignatureLength) => "l= in an ARC-Message-Signature".to_string(),
        MaError::Crypto(e) => format!("signature did not verify: {e}"),
        MaError::Dns(_) if temporary => "temporary DNS failure fetching an ARC key".to_string(),
        MaError::Dns(_) => "ARC key not found".to_string(),
        other => other.to_string(),
    };
    (text, temporary)
}

/// RFC 6376 §3.2 tag-list syntax, strictly: `tag=value` pairs separated by
/// `;` (one trailing `;` allowed), tag names `ALPHA *(ALPHA / DIGIT / "_")`,
/// no tag twice. Returns the tag names.
fn strict_tags(value: &[u8]) -> Result<Vec<String>, String> {
    let text = String::from_utf8_lossy(value);
    let specs: Vec<&str> = text.split(';').collect();
    let mut names: Vec<String> = Vec::new();
    for (n, spec) in specs.iter().enumerate() {
        if spec.trim().is_empty() {
            if n + 1 == specs.len() {
                continue;
            }
            return Err("empty tag (\";;\")".into());
        }
        let Some((name, _)) = spec.split_once('=') else {
            return Err(format!("`{}` is no tag=value", spec.trim()));
        };
        let name = name.trim_matches([' ', '\t', '\r', '\n']);
        let ok = name.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !ok {
            return Err(format!("`{name}` is not a tag name"));
        }
        if names.iter().any(|x| x == name) {
            return Err(format!("tag {name}= twice"));
        }
        names.push(name.to_string());
    }
    Ok(names)
}

/// What RFC 8617 §4.1 requires of the fields' syntax that the library does
/// not check: the tag-list syntax, the required tags (ARC-Seal §4.1.3:
/// `i a b cv d s`; ARC-Message-Signature §4.1.2, DKIM's less `v=`:
/// `i a b bh d h s`), and, for the newest message signature (the one that
/// must validate, §5.2 step 4), no ARC-Seal among the fields it signs
/// (§4.1.2) and From among them (RFC 6376 §6.1.1).
fn structure_problem(fields: &[(String, Vec<u8>)]) -> Option<String> {
    let newest = newest_signature(fields);
    for (name, value) in fields {
        let required: &[&str] = if name.eq_ignore_ascii_case(SEAL) {
            &["i", "a", "b", "cv", "d", "s"]
        } else if name.eq_ignore_ascii_case(SIGNATURE) {
            &["i", "a", "b", "bh", "d", "h", "s"]
        } else {
            continue;
        };
        let tags = match strict_tags(value) {
            Ok(t) => t,
            Err(e) => return Some(format!("malformed {name}: {e}")),
        };
        if let Some(missing) = required.iter().find(|r| !tags.iter().any(|t| t == *r)) {
            return Some(format!("{name} without {missing}="));
        }
        // §5.2 step 5: an older message signature that does not validate
        // does not affect the chain; only the newest one is held to these.
        if name.eq_ignore_ascii_case(SIGNATURE) && instance(value) == newest {
            let h = tag_value(value, "h").unwrap_or_default();
            if h.split(':').any(|f| f.trim().eq_ignore_ascii_case(SEAL)) {
                return Some("ARC-Message-Signature signs an ARC-Seal".into());
            }
            if !h.split(':').any(|f| f.trim().eq_ignore_ascii_case("from")) {
                return Some("ARC-Message-Signature does not sign From (RFC 6376 6.1.1)".into());
            }
        }
    }
    None
}

/// RFC 8301 and the key restrictions of RFC 6376 §3.6.1 (`h=`, `s=`)
/// applied to the keys and algorithms of the chain: `None` when they are
/// acceptable, else why not.
fn weak_crypto(fields: &[(String, Vec<u8>)], keys: &KeyCache) -> Option<String> {
    let newest = newest_signature(fields);
    for (name, value) in fields {
        let older_signature = name.eq_ignore_ascii_case(SIGNATURE) && instance(value) != newest;
        if name.eq_ignore_ascii_case(RESULTS) || older_signature {
            continue;
        }
        if tag_value(value, "a").is_some_and(|a| a.eq_ignore_ascii_case("rsa-sha1")) {
            return Some(format!("rsa-sha1 in an {name} (RFC 8301)"));
        }
        if let (Some(s), Some(d)) = (tag_value(value, "s"), tag_value(value, "d")) {
            if let Some(bits) = keys.rsa_bits(&s, &d).filter(|b| *b < dkim::MIN_RSA_BITS) {
                return Some(format!("{bits}-bit RSA key for {d} (RFC 8301)"));
            }
            if let Some(why) = keys.restriction(&s, &d, "sha256") {
                return Some(format!("{name} key of {d}: {why}"));
            }
        }
    }
    None
}

/// Validates the ARC chain of a parsed message with the keys fetched ahead
/// of time (see [`key_names`]).
pub async fn verify(
    dns: &Dns,
    raw: &[u8],
    msg: &AuthenticatedMessage<'_>,
    keys: &KeyCache,
) -> ArcEvidence {
    let fields = arc_fields(msg);
    // An ARC field the library's header parser did not see (a malformed
    // line before it) makes the chain unreadable, never absent.
    if arc_lines(raw) > fields.len() {
        return ArcEvidence::fail("ARC field not readable", false, read_hops(&fields));
    }
    if fields.is_empty() {
        return ArcEvidence::none();
    }
    let hops = read_hops(&fields);
    let seals = fields
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case(SEAL))
        .count();
    let signatures = fields
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case(SIGNATURE))
        .count();
    let results = fields.len() - seals - signatures;
    if seals > MAX_SETS as usize || signatures > MAX_SETS as usize || results > MAX_SETS as usize {
        return ArcEvidence::fail(format!("more than {MAX_SETS} ARC sets"), false, hops);
    }
    if seals != signatures || seals != results {
        return ArcEvidence::fail("incomplete ARC set", false, hops);
    }
    if let Some(why) = structure_problem(&fields) {
        return ArcEvidence::fail(why, false, hops);
    }
    if key_names(&fields).is_none() {
        return ArcEvidence::fail(
            format!("more than {MAX_ARC_KEYS} distinct ARC keys"),
            false,
            hops,
        );
    }
    let output = dns
        .authenticator()
        .verify_arc(Parameters::new(msg).with_txt_cache(keys))
        .await;
    match output.result() {
        DkimResult::Pass => {}
        DkimResult::None => return ArcEvidence::fail("incomplete ARC set", false, hops),
        other => {
            let (why, _) = failure(other);
            // Only the newest seal's own key: a sender cannot make a chain
            // "temporary" with a key of its own that does not answer.
            let temporary =
                newest_seal_key(&fields).is_some_and(|(s, d)| keys.is_temporary_failure(&s, &d));
            return ArcEvidence::fail(why, temporary, hops);
        }
    }
    if let Some(why) = weak_crypto(&fields, keys) {
        return ArcEvidence::fail(why, false, hops);
    }
    ArcEvidence {
        result: AuthResult::Pass,
        reason: None,
        temporary: false,
        // §5.2 step 5: with one set there is no older signature to fail.
        oldest_pass: (hops.len() == 1).then_some(0),
        hops,
    }
}

/// How many lines of the header block of `raw` (up to the first empty
/// line) start an ARC field, read without the library's parser.
fn arc_lines(raw: &[u8]) -> usize {
    raw.split(|b| *b == b'\n')
        .take_while(|l| !l.is_empty() && *l != b"\r")
        .filter(|line| {
            let name = line.split(|b| *b == b':').next().unwrap_or_default();
            line.contains(&b':')
                && !line.starts_with(b" ")
                && !line.starts_with(b"\t")
                && std::str::from_utf8(name).is_ok_and(|n| is_arc_header(n.trim()))
        })
        .count()
}

/// The result for a message the library cannot parse: `fail` when a line
/// of its header block starts an ARC field, else `none`.
pub fn unparsable(raw: &[u8]) -> ArcEvidence {
    if arc_lines(raw) > 0 {
        ArcEvidence::fail("message could not be parsed", false, Vec::new())
    } else {
        ArcEvidence::none()
    }
}

/// The ARC fields of `raw` as the library parses it, or `None` when it
/// cannot parse the message.
pub fn parsed_fields(raw: &[u8]) -> Option<Vec<(String, Vec<u8>)>> {
    AuthenticatedMessage::parse(raw).map(|m| arc_fields(&m))
}

/// Parses `raw`, fetches the chain's keys and validates it: [`verify`] for
/// a whole message in one call (`authmilter check`, the tests, the fuzzers).
pub async fn verify_raw(dns: &Dns, raw: &[u8]) -> ArcEvidence {
    let Some(msg) = AuthenticatedMessage::parse(raw) else {
        return unparsable(raw);
    };
    let fields = arc_fields(&msg);
    let keys = dkim::fetch_named(dns, &key_names(&fields).unwrap_or_default()).await;
    verify(dns, raw, &msg, &keys).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aar_results_and_authserv_id() {
        let (id, r) = parse_aar(
            b"i=2; Lists.Example.org (comment; with semicolon);\r\n\tarc=pass (\"q\");\r\n\tdkim=pass header.d=a.example;\r\n dmarc=pass (p=reject) header.from=Author.Example; spf/1=fail smtp.mailfrom=x@y",
        );
        assert_eq!(id.as_deref(), Some("lists.example.org"));
        assert_eq!(r.len(), 4);
        assert_eq!(r[2].method, "dmarc");
        assert_eq!(r[2].result, "pass");
        assert_eq!(r[2].header_from.as_deref(), Some("author.example"));
        assert_eq!(r[3].method, "spf");
        assert_eq!(r[3].result, "fail");
    }

    #[test]
    fn aar_quoted_semicolon_does_not_split() {
        let (_, r) = parse_aar(b"i=1; mx.example; dkim=fail reason=\"a;b\" header.d=x; dmarc=fail header.from=\"u@Bank.example\"");
        assert_eq!(r.len(), 2);
        assert_eq!(r[1].header_from.as_deref(), Some("bank.example"));
    }

    #[test]
    fn key_names_are_bounded_and_distinct() {
        let mut f = vec![];
        for i in 1..=3u32 {
            f.push((
                "ARC-Seal".to_string(),
                format!("i={i}; a=rsa-sha256; d=d{i}.example; s=s; cv=none; b=x").into_bytes(),
            ));
            f.push((
                "ARC-Message-Signature".to_string(),
                format!("i={i}; a=rsa-sha256; d=m{i}.example; s=s; h=from; bh=x; b=x").into_bytes(),
            ));
        }
        let names = key_names(&f).unwrap();
        // Three seals and only the newest message signature.
        assert_eq!(names.len(), 4);
        assert!(names.contains(&("s".into(), "m3.example".into())));
        assert!(!names.contains(&("s".into(), "m1.example".into())));
        for i in 4..=20u32 {
            f.push((
                "ARC-Seal".to_string(),
                format!("i={i}; d=d{i}.example; s=s").into_bytes(),
            ));
        }
        assert!(key_names(&f).is_none());
    }

    #[test]
    fn temporary_only_counts_the_newest_seals_key() {
        let f = vec![
            ("ARC-Seal".to_string(), b"i=1; d=old.example; s=a".to_vec()),
            ("ARC-Seal".to_string(), b"i=2; d=New.example; s=b".to_vec()),
            (
                "ARC-Message-Signature".to_string(),
                b"i=2; d=sender.example; s=c".to_vec(),
            ),
        ];
        assert_eq!(
            newest_seal_key(&f),
            Some(("b".to_string(), "New.example".to_string()))
        );
    }

    #[test]
    fn strict_tag_lists() {
        assert!(strict_tags(b"i=1; a=rsa-sha256; b=x;").is_ok());
        assert!(strict_tags(b"i=1;; a=x").is_err());
        assert!(strict_tags(b"i=1; i=2").is_err());
        assert!(strict_tags(b"i=1; 1a=x").is_err());
        assert!(strict_tags(b"i=1; junk").is_err());
        assert_eq!(strict_tags(b" I=1 ; x_y=2").unwrap(), ["I", "x_y"]);
    }

    #[test]
    fn hops_read_sealers_in_instance_order() {
        let f = vec![
            ("ARC-Seal".to_string(), b"i=2; d=Fwd.Example.; s=a".to_vec()),
            (
                "ARC-Authentication-Results".to_string(),
                b"i=2; fwd.example; dmarc=fail header.from=a.example".to_vec(),
            ),
            ("ARC-Seal".to_string(), b"i=1; d=list.example; s=a".to_vec()),
        ];
        let hops = read_hops(&f);
        assert_eq!(hops[0].instance, 1);
        assert_eq!(hops[0].sealer, "list.example");
        assert_eq!(hops[1].sealer, "fwd.example");
        assert_eq!(hops[1].results[0].result, "fail");
    }
}
