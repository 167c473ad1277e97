//! DMARC (RFC 9989): policy discovery by DNS tree walk, Organizational
//! Domains, identifier alignment, `p`/`sp`/`np`, and `t=y` testing mode.
//!
//! Implemented here rather than through mail-auth so that the From hygiene
//! rule ([`super::from`]) and temperror propagation are under our control:
//! a DNS failure during policy discovery is `temperror`, never `none`.

use super::{
    evidence::{AuthResult, DkimEvidence, DmarcEvidence, DmarcPolicy, SpfEvidence},
    from::FromIdentity,
};
use crate::dns::{Dns, LookupError};
use std::{collections::HashMap, sync::Arc};
use tokio::sync::Mutex;

/// A parsed DMARC policy record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    pub p: Option<DmarcPolicy>,
    pub sp: Option<DmarcPolicy>,
    pub np: Option<DmarcPolicy>,
    pub adkim_strict: bool,
    pub aspf_strict: bool,
    /// `psd=y` → `Some(true)`, `psd=n` → `Some(false)`, absent or `u` → `None`.
    pub psd: Option<bool>,
    pub testing: bool,
    /// The valid `rua` URIs, in record order (RFC 9990 aggregate reports).
    pub rua: Vec<String>,
    /// The valid `ruf` URIs, in record order (RFC 9991 failure reports).
    pub ruf: Vec<String>,
    /// The `fo` value as published (`0` when absent).
    pub fo: String,
}

fn trim_wsp(s: &str) -> &str {
    s.trim_matches(|c| c == ' ' || c == '\t')
}

/// Whether a TXT record is a DMARC record at all (RFC 9989 §4.7, §4.8): its
/// first tag is `v` (the name in any case, WSP allowed around `=`) with the
/// case-sensitive value `DMARC1`. Records that are not are discarded before
/// counting, so `v=spf1` beside a DMARC record does not make "several".
pub fn is_dmarc_record(txt: &[u8]) -> bool {
    // Bytes that are not UTF-8 can only sit in a broken tag, ignored below.
    let s = String::from_utf8_lossy(txt);
    let first = s.split(';').next().unwrap_or_default();
    match first.split_once('=') {
        Some((k, v)) => trim_wsp(k).eq_ignore_ascii_case("v") && trim_wsp(v) == "DMARC1",
        None => false,
    }
}

/// RFC 3986 §3: `scheme ":" ...` with only URI characters (commas and `!`
/// must be percent-encoded in a DMARC URI, RFC 9989 §4.8).
fn is_uri(u: &str) -> bool {
    let Some((scheme, rest)) = u.split_once(':') else {
        return false;
    };
    let scheme_ok = scheme.starts_with(|c: char| c.is_ascii_alphabetic())
        && scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
    let bytes = rest.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b == b'%' {
            if !(bytes.get(i + 1).is_some_and(u8::is_ascii_hexdigit)
                && bytes.get(i + 2).is_some_and(u8::is_ascii_hexdigit))
            {
                return false;
            }
            i += 3;
            continue;
        }
        let ok = b.is_ascii_alphanumeric() || b"-._~:/?#[]@$&'()*+;=".contains(&b);
        if !ok {
            return false;
        }
        i += 1;
    }
    scheme_ok && !rest.is_empty()
}

/// A `rua`/`ruf` value holds at least one syntactically valid URI
/// (`dmarc-urilist`, the obsolete `!size` suffix allowed).
pub fn has_valid_uri(list: &str) -> bool {
    !valid_uris(list).is_empty()
}

/// The syntactically valid URIs of a `rua`/`ruf` list, without the
/// obsolete `!size` suffix (RFC 9990 §4: parsed and ignored).
pub fn valid_uris(list: &str) -> Vec<String> {
    list.split(',')
        .map(trim_wsp)
        .filter_map(|u| {
            let u = match u.rsplit_once('!') {
                Some((uri, size))
                    if !size.is_empty()
                        && size
                            .trim_end_matches(['k', 'm', 'g', 't', 'K', 'M', 'G', 'T'])
                            .chars()
                            .all(|c| c.is_ascii_digit())
                        && size.starts_with(|c: char| c.is_ascii_digit()) =>
                {
                    uri
                }
                _ => u,
            };
            is_uri(u).then(|| u.to_string())
        })
        .collect()
}

impl Record {
    /// Parses a TXT record. `None` when it is not a usable DMARC record: not
    /// a DMARC record at all, or (RFC 9989 §4.10.1) without a valid `p`, or
    /// with an invalid `sp` or `np`, and no valid `rua` URI; with a valid
    /// `rua` such a record is treated as `p=none`. Other syntax errors fall
    /// back to the tag's default (RFC 9989 §4.8); unknown tags are ignored.
    pub fn parse(txt: &[u8]) -> Option<Record> {
        if !is_dmarc_record(txt) {
            return None;
        }
        let s = String::from_utf8_lossy(txt);
        let mut r = Record {
            p: None,
            sp: None,
            np: None,
            adkim_strict: false,
            aspf_strict: false,
            psd: None,
            testing: false,
            rua: Vec::new(),
            ruf: Vec::new(),
            fo: "0".into(),
        };
        let mut bad_policy = false;
        let mut seen: Vec<String> = Vec::new();
        for part in s.split(';').skip(1) {
            let Some((k, v)) = part.split_once('=') else {
                continue;
            };
            let (k, v) = (trim_wsp(k).to_ascii_lowercase(), trim_wsp(v));
            if seen.contains(&k) {
                continue; // the first occurrence counts
            }
            seen.push(k.clone());
            let lower = v.to_ascii_lowercase();
            match k.as_str() {
                "p" | "sp" | "np" => {
                    let parsed = lower.parse::<DmarcPolicy>().ok();
                    bad_policy |= parsed.is_none();
                    match k.as_str() {
                        "p" => r.p = parsed,
                        "sp" => r.sp = parsed,
                        _ => r.np = parsed,
                    }
                }
                "adkim" => r.adkim_strict = lower == "s",
                "aspf" => r.aspf_strict = lower == "s",
                "psd" => {
                    r.psd = match lower.as_str() {
                        "y" => Some(true),
                        "n" => Some(false),
                        _ => None,
                    }
                }
                "t" => r.testing = lower == "y",
                "rua" => r.rua = valid_uris(v),
                "ruf" => r.ruf = valid_uris(v),
                "fo" => r.fo = v.to_string(),
                _ => {}
            }
        }
        if r.p.is_none() || bad_policy {
            if r.rua.is_empty() {
                return None;
            }
            r.p = Some(DmarcPolicy::None);
            r.sp = None;
            r.np = None;
        }
        Some(r)
    }
}

/// Outcome of looking for a record at one `_dmarc` name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Found {
    Record(Arc<Record>),
    /// One DMARC record that is unusable (RFC 9989 §4.10.1: no valid `p`,
    /// or an invalid `sp`/`np`, and no valid `rua`).
    Invalid,
    /// No record, or several (all discarded, §4.10 step 2).
    Nothing {
        several: bool,
    },
    TempError(String),
}

/// Most Organizational Domain walks per message (each at most 8 queries):
/// the author's and those of the identifiers checked for relaxed alignment.
/// Past it the result is `temperror`, never a pass or a fail.
pub const MAX_WALKS: usize = 10;

/// Per-message memo of `_dmarc` lookups, shared by the early (end of
/// headers) policy discovery and the end-of-message evaluation.
#[derive(Clone, Default)]
pub struct DmarcLookups {
    memo: Arc<Mutex<HashMap<String, Found>>>,
    walks: Arc<Mutex<Vec<String>>>,
}

/// Records found by one tree walk, longest name first.
type Walked = Vec<(String, Arc<Record>)>;

impl DmarcLookups {
    /// Looks up (once per message) the record at `_dmarc.<domain>`.
    pub async fn record_at(&self, dns: &Dns, domain: &str) -> Found {
        if let Some(f) = self.memo.lock().await.get(domain) {
            return f.clone();
        }
        let found = match dns.txt(&format!("_dmarc.{domain}.")).await {
            Ok(txts) => {
                let candidates: Vec<&Vec<u8>> =
                    txts.iter().filter(|t| is_dmarc_record(t)).collect();
                match candidates.as_slice() {
                    [one] => match Record::parse(one) {
                        Some(r) => Found::Record(Arc::new(r)),
                        None => Found::Invalid,
                    },
                    [] => Found::Nothing { several: false },
                    // RFC 9989 §4.10 step 2: several records are all discarded.
                    _ => Found::Nothing { several: true },
                }
            }
            Err(LookupError::Temporary(e)) => Found::TempError(e),
            Err(_) => Found::Nothing { several: false },
        };
        self.memo
            .lock()
            .await
            .insert(domain.to_string(), found.clone());
        found
    }

    /// The DNS Tree Walk (RFC 9989 §4.10) from `start` (included or not),
    /// stopping at a record with a `psd` tag — except `psd=y` on the
    /// starting domain itself, which §4.10.2 rule 2 excludes. A temporary
    /// error anywhere on the walk makes its outcome unknown.
    async fn walk(&self, dns: &Dns, start: &str, include_start: bool) -> Result<Walked, String> {
        let mut out = Vec::new();
        for (i, name) in walk_names(start).into_iter().enumerate() {
            if i == 0 && !include_start {
                continue;
            }
            match self.record_at(dns, &name).await {
                Found::Record(r) => {
                    let stop = match r.psd {
                        Some(false) => true,
                        Some(true) => i != 0,
                        None => false,
                    };
                    out.push((name, r));
                    if stop {
                        break;
                    }
                }
                Found::TempError(e) => return Err(format!("_dmarc.{name}: {e}")),
                Found::Nothing { .. } | Found::Invalid => {}
            }
        }
        Ok(out)
    }

    /// Policy discovery (RFC 9989 §4.10.1): the Author Domain's record, else
    /// its Organizational Domain's, else its Public Suffix Domain's. A record
    /// on the walk that is neither is not the policy.
    pub async fn discover(&self, dns: &Dns, domain: &str) -> Discovery {
        let malformed = match self.record_at(dns, domain).await {
            Found::Record(record) => {
                crate::explain!("DMARC policy discovery for {domain}: a record at the Author Domain, _dmarc.{domain}");
                return Discovery::Found {
                    at: domain.to_string(),
                    record,
                };
            }
            Found::TempError(e) => return Discovery::TempError(format!("_dmarc.{domain}: {e}")),
            // §4.10.1: a retrieved record without a valid p (and no valid
            // rua) means no DMARC processing for this message.
            Found::Invalid => {
                crate::explain!("DMARC policy discovery for {domain}: the record at _dmarc.{domain} is not usable (no valid p= and no valid rua=): no DMARC processing (RFC 9989 4.10.1)");
                return Discovery::NotFound { malformed: true };
            }
            Found::Nothing { several } => several,
        };
        let walked = match self.walk(dns, domain, false).await {
            Ok(w) => w,
            Err(e) => return Discovery::TempError(e),
        };
        let org = select_org(domain, &walked);
        let chosen = walked
            .iter()
            .find(|(n, _)| *n == org)
            .or_else(|| walked.iter().find(|(_, r)| r.psd == Some(true)));
        crate::explain!(
            "DMARC policy discovery for {domain}: no record at the Author Domain; tree walk found records at [{}]; Organizational Domain {org}",
            walked.iter().map(|(n, r)| match r.psd {
                Some(true) => format!("{n} (psd=y)"),
                Some(false) => format!("{n} (psd=n)"),
                None => n.clone(),
            }).collect::<Vec<_>>().join(", ")
        );
        match chosen {
            Some((at, record)) => Discovery::Found {
                at: at.clone(),
                record: record.clone(),
            },
            None => Discovery::NotFound { malformed },
        }
    }

    /// The Organizational Domain (RFC 9989 §4.10.2), counting walks against
    /// [`MAX_WALKS`].
    pub async fn org_domain(&self, dns: &Dns, domain: &str) -> Result<String, String> {
        {
            let mut walks = self.walks.lock().await;
            if !walks.iter().any(|w| w == domain) {
                if walks.len() >= MAX_WALKS {
                    return Err(format!(
                        "more than {MAX_WALKS} Organizational Domain lookups for one message"
                    ));
                }
                walks.push(domain.to_string());
            }
        }
        let walked = self.walk(dns, domain, true).await?;
        let org = select_org(domain, &walked);
        crate::explain!("Organizational Domain of {domain}: {org}");
        Ok(org)
    }

    /// Runs, ahead of time, the walks that relaxed alignment of `ids` with
    /// `from` would run (the same rule as [`Self::aligned`]); results land
    /// in the memo, errors are met again at evaluation.
    pub async fn prefetch_alignment(&self, dns: &Dns, from: &str, ids: &[String]) {
        let candidates: Vec<&String> = ids
            .iter()
            .filter(|id| *id != from && id.rsplit('.').next() == from.rsplit('.').next())
            .collect();
        if candidates.is_empty() {
            return;
        }
        let Ok(org_from) = self.org_domain(dns, from).await else {
            return;
        };
        let walks = candidates
            .into_iter()
            .filter(|id| id.ends_with(&format!(".{org_from}")))
            .map(|id| self.org_domain(dns, id));
        futures::future::join_all(walks).await;
    }

    /// Identifier alignment (RFC 9989 §4.4): identical (strict), or the same
    /// Organizational Domain (relaxed).
    pub async fn aligned(
        &self,
        dns: &Dns,
        id: &str,
        from: &str,
        strict: bool,
    ) -> Result<bool, String> {
        let id = id.trim_end_matches('.').to_ascii_lowercase();
        if id == from {
            return Ok(true);
        }
        if strict {
            return Ok(false);
        }
        // An Organizational Domain is a suffix of its domain, so the
        // identifier can only share the author's if it is that domain or
        // under it: anything else is decided without a lookup (and without
        // walking names the sender controls).
        if id.rsplit('.').next() != from.rsplit('.').next() {
            return Ok(false);
        }
        let org_from = self.org_domain(dns, from).await?;
        if !(id == org_from || id.ends_with(&format!(".{org_from}"))) {
            return Ok(false);
        }
        Ok(self.org_domain(dns, &id).await? == org_from)
    }
}

/// §4.10.2 selection over the records a walk from `start` found.
fn select_org(start: &str, walked: &Walked) -> String {
    for (name, r) in walked {
        match r.psd {
            Some(false) => return name.clone(),
            Some(true) if name != start => {
                return suffix(start, name.split('.').count() + 1);
            }
            _ => {}
        }
    }
    match walked.last() {
        Some((name, _)) => name.clone(),
        None => start.to_string(),
    }
}

/// The result of policy discovery.
#[derive(Clone, Debug)]
pub enum Discovery {
    Found { at: String, record: Arc<Record> },
    NotFound { malformed: bool },
    TempError(String),
}

fn suffix(domain: &str, labels: usize) -> String {
    let parts: Vec<&str> = domain.split('.').collect();
    let n = labels.min(parts.len());
    parts[parts.len() - n..].join(".")
}

/// The names queried by the tree walk: the domain itself, then (after
/// skipping to at most 7 labels, RFC 9989 §4.10 step 4) each shorter suffix.
pub fn walk_names(domain: &str) -> Vec<String> {
    let labels = domain.split('.').count();
    let mut names = vec![domain.to_string()];
    let start = (labels.saturating_sub(1)).min(7);
    for k in (1..=start).rev() {
        names.push(suffix(domain, k));
    }
    names
}

/// Inputs to the evaluation, borrowed from the other checks.
pub struct DmarcInput<'a> {
    pub from: &'a FromIdentity,
    /// The MAIL FROM check (HELO identity for the null sender).
    pub spf: Option<&'a SpfEvidence>,
    pub dkim: &'a [DkimEvidence],
}

fn downgrade(p: DmarcPolicy) -> DmarcPolicy {
    match p {
        DmarcPolicy::Reject => DmarcPolicy::Quarantine,
        _ => DmarcPolicy::None,
    }
}

/// The policy that applies to `domain` from the record found `at`
/// (RFC 9989 §4.10.1): `p` for the domain itself; for a subdomain `sp` when
/// it exists and `np` when it does not (RFC 8020 NXDOMAIN; NODATA and a
/// CNAME, even a dangling one, mean it exists), each falling back to `p`.
/// `Err` when the existence test is needed and DNS cannot answer it.
async fn applicable_policy(
    dns: &Dns,
    domain: &str,
    at: &str,
    record: &Record,
) -> Result<DmarcPolicy, String> {
    let p = record.p.unwrap_or(DmarcPolicy::None);
    if at == domain {
        return Ok(p);
    }
    let sp = record.sp.unwrap_or(p);
    match record.np {
        Some(np) if np != sp => match dns.domain_exists(domain).await {
            Some(true) => Ok(sp),
            Some(false) => Ok(np),
            None => Err(format!(
                "cannot tell whether {domain} exists (np= differs from sp=)"
            )),
        },
        _ => Ok(sp),
    }
}

fn effective_of(published: DmarcPolicy, testing: bool) -> DmarcPolicy {
    if testing {
        downgrade(published)
    } else {
        published
    }
}

/// Evaluates DMARC for one message.
pub async fn evaluate(dns: &Dns, lookups: &DmarcLookups, input: &DmarcInput<'_>) -> DmarcEvidence {
    if let Some(why) = input.from.unusable() {
        let mut ev = DmarcEvidence::without_policy(AuthResult::PermError, None, Some(why));
        ev.from_unusable = true;
        return ev;
    }
    match input.from {
        FromIdentity::Conflicting { domains, reason } => {
            evaluate_conflicting(dns, lookups, domains, reason).await
        }
        FromIdentity::Single(from) => evaluate_single(dns, lookups, from, input).await,
        FromIdentity::Missing | FromIdentity::Invalid(_) => unreachable!("handled above"),
    }
}

/// Several From fields or domains: never a pass; the strictest policy any
/// of the domains publishes applies, and a DNS failure for any of them
/// leaves the outcome unknown (`temperror`).
async fn evaluate_conflicting(
    dns: &Dns,
    lookups: &DmarcLookups,
    domains: &[String],
    reason: &str,
) -> DmarcEvidence {
    let mut best: Option<(DmarcPolicy, DmarcPolicy, bool, String)> = None;
    let mut temp: Option<String> = None;
    for d in domains {
        match lookups.discover(dns, d).await {
            Discovery::Found { at, record } => {
                match applicable_policy(dns, d, &at, &record).await {
                    Ok(published) => {
                        let effective = effective_of(published, record.testing);
                        if best.as_ref().is_none_or(|(_, e, _, _)| effective > *e) {
                            best = Some((published, effective, record.testing, at));
                        }
                    }
                    Err(e) => temp = temp.or(Some(e)),
                }
            }
            Discovery::TempError(e) => temp = temp.or(Some(format!("policy lookup failed: {e}"))),
            Discovery::NotFound { .. } => {}
        }
    }
    let mut ev = DmarcEvidence::without_policy(
        AuthResult::Fail,
        domains.first().cloned(),
        Some(reason.to_string()),
    );
    // A lookup that failed can only matter when what was found is milder
    // than reject: this From never passes, and reject is the strictest.
    let strictest_found = best
        .as_ref()
        .is_some_and(|(_, e, _, _)| *e == DmarcPolicy::Reject);
    if let (Some(t), false) = (temp, strictest_found) {
        ev.result = AuthResult::TempError;
        ev.reason = Some(format!("{reason}; {t}"));
    }
    if let Some((published, effective, testing, at)) = best {
        ev.published = Some(published);
        ev.effective = effective;
        ev.testing = testing;
        ev.policy_domain = Some(at);
    }
    ev
}

/// Whether a signature kept from verification by a local limit could have
/// aligned with `from` (decided without lookups, erring towards "could").
fn could_align(sig: &DkimEvidence, from: &str, strict: bool) -> bool {
    let d = sig.domain.trim_end_matches('.').to_ascii_lowercase();
    if strict {
        return d == from;
    }
    d == from
        || d.ends_with(&format!(".{from}"))
        || from.ends_with(&format!(".{d}"))
        || d.rsplit('.').next() == from.rsplit('.').next()
}

async fn evaluate_single(
    dns: &Dns,
    lookups: &DmarcLookups,
    from: &str,
    input: &DmarcInput<'_>,
) -> DmarcEvidence {
    let (at, record) = match lookups.discover(dns, from).await {
        Discovery::Found { at, record } => (at, record),
        Discovery::NotFound { malformed } => {
            return DmarcEvidence::without_policy(
                AuthResult::None,
                Some(from.to_string()),
                Some(if malformed {
                    "malformed or multiple DMARC records".into()
                } else {
                    "no DMARC record".into()
                }),
            )
        }
        Discovery::TempError(e) => {
            return DmarcEvidence::without_policy(
                AuthResult::TempError,
                Some(from.to_string()),
                Some(format!("policy lookup failed: {e}")),
            )
        }
    };

    let mut temp: Option<String> = None;
    let mut spf_aligned = false;
    if let Some(spf) = input.spf {
        if matches!(spf.result, AuthResult::Pass | AuthResult::TempError) {
            match lookups
                .aligned(dns, &spf.domain, from, record.aspf_strict)
                .await
            {
                Ok(true) if spf.result == AuthResult::Pass => spf_aligned = true,
                Ok(true) => temp = Some("aligned SPF check had a temporary error".into()),
                Ok(false) => {}
                Err(e) => temp = Some(format!("alignment lookup failed: {e}")),
            }
        }
        crate::explain!(
            "DMARC SPF alignment: spf={} for {} vs From {from} (aspf={}): {}",
            spf.result,
            spf.domain,
            if record.aspf_strict { "s" } else { "r" },
            if spf_aligned {
                "aligned pass"
            } else {
                "no aligned pass"
            }
        );
    }
    let mut dkim_aligned = false;
    for sig in input.dkim {
        if dkim_aligned {
            break;
        }
        if !matches!(sig.result, AuthResult::Pass | AuthResult::TempError) {
            continue;
        }
        match lookups
            .aligned(dns, &sig.domain, from, record.adkim_strict)
            .await
        {
            Ok(true) if sig.result == AuthResult::Pass => dkim_aligned = true,
            Ok(true) => temp = Some("aligned DKIM signature had a temporary error".into()),
            Ok(false) => {}
            Err(e) => temp = temp.or(Some(format!("alignment lookup failed: {e}"))),
        }
        crate::explain!(
            "DMARC DKIM alignment: dkim={} d={} vs From {from} (adkim={}): {}",
            sig.result,
            sig.domain,
            if record.adkim_strict { "s" } else { "r" },
            if dkim_aligned {
                "aligned pass"
            } else {
                "no aligned pass"
            }
        );
    }
    let passed = spf_aligned || dkim_aligned;
    let published = match applicable_policy(dns, from, &at, &record).await {
        Ok(p) => p,
        // A pass needs no policy; report the subdomain policy then.
        Err(_) if passed => record.sp.or(record.p).unwrap_or(DmarcPolicy::None),
        Err(e) => {
            temp = Some(e);
            record.sp.or(record.p).unwrap_or(DmarcPolicy::None)
        }
    };
    crate::explain!(
        "DMARC policy for {from}: {published} (record at _dmarc.{at}{}{})",
        if at == from {
            ", p="
        } else {
            ", sp=/np= for a subdomain, else p="
        },
        if record.testing {
            "; t=y: one step milder"
        } else {
            ""
        }
    );
    let mut local_limit = false;
    let (result, reason) = if passed {
        (AuthResult::Pass, None)
    } else if let Some(t) = temp {
        (AuthResult::TempError, Some(t))
    } else if let Some(sig) = input
        .dkim
        .iter()
        .find(|s| s.local_limit && could_align(s, from, record.adkim_strict))
    {
        local_limit = true;
        (
            AuthResult::PermError,
            Some(format!(
                "not evaluated: DKIM signature d={} not verified (local limit)",
                sig.domain
            )),
        )
    } else {
        (
            AuthResult::Fail,
            Some("no aligned SPF or DKIM pass".to_string()),
        )
    };
    DmarcEvidence {
        result,
        from_domain: Some(from.to_string()),
        published: Some(published),
        effective: effective_of(published, record.testing),
        testing: record.testing,
        spf_aligned,
        dkim_aligned,
        reason,
        policy_domain: Some(at),
        from_unusable: false,
        local_limit,
        record: Some(record),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn report_uris_drop_the_obsolete_size_and_invalid_entries() {
        // RFC 9990 §4: `!size` is parsed and ignored; a list keeps its valid URIs.
        assert_eq!(
            valid_uris(" mailto:a@example.com!10m , bad uri, mailto:b@example.org "),
            ["mailto:a@example.com", "mailto:b@example.org"]
        );
        let r = Record::parse(
            b"v=DMARC1; p=none; rua=mailto:a@example.com!5k; ruf=mailto:f@example.com; fo=1:d",
        )
        .unwrap();
        assert_eq!(r.rua, ["mailto:a@example.com"]);
        assert_eq!(r.ruf, ["mailto:f@example.com"]);
        assert_eq!(r.fo, "1:d");
        assert_eq!(Record::parse(b"v=DMARC1; p=none").unwrap().fo, "0");
        // Without p, a record stands only on a valid rua (RFC 9989 §4.10.1).
        assert!(Record::parse(b"v=DMARC1; rua=not a uri").is_none());
        assert!(Record::parse(b"v=DMARC1; rua=mailto:a@example.com").is_some());
    }

    #[test]
    fn walk_skips_long_names() {
        assert_eq!(walk_names("a.b.c"), ["a.b.c", "b.c", "c"]);
        let long = "1.2.3.4.5.6.7.8.9.example";
        let w = walk_names(long);
        assert_eq!(w.len(), 8);
        assert_eq!(w[1], "4.5.6.7.8.9.example");
        assert_eq!(w.last().unwrap(), "example");
    }

    #[test]
    fn record_parsing() {
        // Bytes that are not UTF-8 in an unknown tag do not hide the policy.
        let r = Record::parse(b"v=DMARC1; p=reject; x=\xff\xfe; \x00 ri=-5").unwrap();
        assert_eq!(r.p, Some(DmarcPolicy::Reject));
        let r = Record::parse(b"v=DMARC1; p=reject; sp=quarantine; np=reject; t=y; psd=n").unwrap();
        assert_eq!(r.p, Some(DmarcPolicy::Reject));
        assert_eq!(r.sp, Some(DmarcPolicy::Quarantine));
        assert!(r.testing);
        assert_eq!(r.psd, Some(false));
        // Invalid p without rua: not a usable record.
        assert_eq!(Record::parse(b"v=DMARC1; p=rejected; adkim=r"), None);
        // Invalid p with rua: p=none.
        let r = Record::parse(b"v=DMARC1; p=bogus; rua=mailto:a@b.test").unwrap();
        assert_eq!(r.p, Some(DmarcPolicy::None));
        assert_eq!(Record::parse(b"v=spf1 -all"), None);
    }
}
