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
    pub has_rua: bool,
}

impl Record {
    /// Parses a TXT record. `None` when it is not a usable DMARC record:
    /// not starting with `v=DMARC1`, or without a valid `p` and without `rua`
    /// (RFC 9989 §4.7: a record with a valid `rua` but no valid `p` is `p=none`).
    pub fn parse(txt: &[u8]) -> Option<Record> {
        let s = std::str::from_utf8(txt).ok()?;
        let mut parts = s.split(';').map(str::trim);
        let first = parts.next()?;
        let (k, v) = first.split_once('=')?;
        if k.trim() != "v" || v.trim() != "DMARC1" {
            return None;
        }
        let mut r = Record {
            p: None,
            sp: None,
            np: None,
            adkim_strict: false,
            aspf_strict: false,
            psd: None,
            testing: false,
            has_rua: false,
        };
        for part in parts {
            let Some((k, v)) = part.split_once('=') else {
                continue;
            };
            let (k, v) = (k.trim().to_ascii_lowercase(), v.trim());
            match k.as_str() {
                "p" => r.p = v.parse().ok(),
                "sp" => r.sp = v.parse().ok(),
                "np" => r.np = v.parse().ok(),
                "adkim" => r.adkim_strict = v.eq_ignore_ascii_case("s"),
                "aspf" => r.aspf_strict = v.eq_ignore_ascii_case("s"),
                "psd" => {
                    r.psd = match v.to_ascii_lowercase().as_str() {
                        "y" => Some(true),
                        "n" => Some(false),
                        _ => None,
                    }
                }
                "t" => r.testing = v.eq_ignore_ascii_case("y"),
                "rua" => r.has_rua = v.split(',').any(|u| u.trim().len() > 7),
                _ => {}
            }
        }
        if r.p.is_none() {
            if r.has_rua {
                r.p = Some(DmarcPolicy::None);
            } else {
                return None;
            }
        }
        Some(r)
    }
}

/// Outcome of looking for a record at one `_dmarc` name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Found {
    Record(Arc<Record>),
    /// No usable record (none, malformed, or several).
    Nothing {
        malformed: bool,
    },
    TempError(String),
}

/// Per-message memo of `_dmarc` lookups, shared by the early (end of
/// headers) policy discovery and the end-of-message evaluation.
#[derive(Clone, Default)]
pub struct DmarcLookups {
    memo: Arc<Mutex<HashMap<String, Found>>>,
}

impl DmarcLookups {
    /// Looks up (once per message) the record at `_dmarc.<domain>`.
    pub async fn record_at(&self, dns: &Dns, domain: &str) -> Found {
        if let Some(f) = self.memo.lock().await.get(domain) {
            return f.clone();
        }
        let found = match dns.txt(&format!("_dmarc.{domain}.")).await {
            Ok(txts) => {
                let candidates: Vec<&Vec<u8>> = txts
                    .iter()
                    .filter(|t| t.len() >= 8 && t[..8].eq_ignore_ascii_case(b"v=DMARC1"))
                    .collect();
                match candidates.as_slice() {
                    [one] => match Record::parse(one) {
                        Some(r) => Found::Record(Arc::new(r)),
                        None => Found::Nothing { malformed: true },
                    },
                    // RFC 9989 §4.10.1: several records means no record.
                    [] => Found::Nothing { malformed: false },
                    _ => Found::Nothing { malformed: true },
                }
            }
            Err(LookupError::Temporary(e)) => Found::TempError(e),
            Err(_) => Found::Nothing { malformed: false },
        };
        self.memo
            .lock()
            .await
            .insert(domain.to_string(), found.clone());
        found
    }

    /// Policy discovery (RFC 9989 §4.10.1): the first record on the tree walk.
    pub async fn discover(&self, dns: &Dns, domain: &str) -> Discovery {
        let mut malformed = false;
        for name in walk_names(domain) {
            match self.record_at(dns, &name).await {
                Found::Record(r) => {
                    return Discovery::Found {
                        at: name,
                        record: r,
                    }
                }
                Found::TempError(e) => return Discovery::TempError(format!("_dmarc.{name}: {e}")),
                Found::Nothing { malformed: m } => malformed |= m && name == domain,
            }
        }
        Discovery::NotFound { malformed }
    }

    /// The Organizational Domain (RFC 9989 §4.10.2).
    pub async fn org_domain(&self, dns: &Dns, domain: &str) -> Result<String, String> {
        let names = walk_names(domain);
        let mut candidate = None;
        for (i, name) in names.iter().enumerate() {
            match self.record_at(dns, name).await {
                Found::Record(r) => match r.psd {
                    Some(false) => return Ok(name.clone()),
                    Some(true) => {
                        // The Organizational Domain is one label below the PSD.
                        if i == 0 {
                            return Ok(domain.to_string());
                        }
                        let labels = name.split('.').count() + 1;
                        return Ok(suffix(domain, labels));
                    }
                    None => candidate = Some(name.clone()),
                },
                Found::TempError(e) => return Err(e),
                Found::Nothing { .. } => {}
            }
        }
        Ok(candidate.unwrap_or_else(|| domain.to_string()))
    }

    async fn aligned(&self, dns: &Dns, id: &str, from: &str, strict: bool) -> Result<bool, String> {
        let id = id.trim_end_matches('.').to_ascii_lowercase();
        if id == from {
            return Ok(true);
        }
        if strict {
            return Ok(false);
        }
        // Relaxed alignment needs a shared suffix at all before any lookup.
        let shares_suffix = id.rsplit('.').next() == from.rsplit('.').next();
        if !shares_suffix {
            return Ok(false);
        }
        Ok(self.org_domain(dns, &id).await? == self.org_domain(dns, from).await?)
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
/// skipping to at most 7 labels, RFC 9989 §4.10.1) each shorter suffix.
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

async fn applicable_policy(
    dns: &Dns,
    domain: &str,
    at: &str,
    record: &Record,
) -> (DmarcPolicy, bool) {
    let p = record.p.unwrap_or(DmarcPolicy::None);
    if at == domain {
        return (p, record.testing);
    }
    let sp = record.sp.unwrap_or(p);
    let policy = match record.np {
        Some(np) if np != sp => match dns.domain_exists(domain).await {
            Some(false) => np,
            _ => sp,
        },
        _ => sp,
    };
    (policy, record.testing)
}

/// Evaluates DMARC for one message.
pub async fn evaluate(dns: &Dns, lookups: &DmarcLookups, input: &DmarcInput<'_>) -> DmarcEvidence {
    match input.from {
        FromIdentity::Missing => DmarcEvidence::without_policy(
            AuthResult::PermError,
            None,
            Some("no usable RFC5322.From address".into()),
        ),
        FromIdentity::Conflicting { domains, reason } => {
            // Never pass; apply the strictest policy any From domain publishes.
            let mut best: Option<(DmarcPolicy, DmarcPolicy, bool)> = None;
            for d in domains {
                if let Discovery::Found { at, record } = lookups.discover(dns, d).await {
                    let (published, testing) = applicable_policy(dns, d, &at, &record).await;
                    let effective = if testing {
                        downgrade(published)
                    } else {
                        published
                    };
                    if best.is_none_or(|(_, e, _)| effective > e) {
                        best = Some((published, effective, testing));
                    }
                }
            }
            let mut ev = DmarcEvidence::without_policy(
                AuthResult::Fail,
                domains.first().cloned(),
                Some(reason.clone()),
            );
            if let Some((published, effective, testing)) = best {
                ev.published = Some(published);
                ev.effective = effective;
                ev.testing = testing;
            }
            ev
        }
        FromIdentity::Single(from) => evaluate_single(dns, lookups, from, input).await,
    }
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
    let (published, testing) = applicable_policy(dns, from, &at, &record).await;
    let effective = if testing {
        downgrade(published)
    } else {
        published
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
    }
    let (result, reason) = if spf_aligned || dkim_aligned {
        (AuthResult::Pass, None)
    } else if let Some(t) = temp {
        (AuthResult::TempError, Some(t))
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
        effective,
        testing,
        spf_aligned,
        dkim_aligned,
        reason,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
