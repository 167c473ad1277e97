//! BIMI (draft-brand-indicators-for-message-identification): for mail that
//! passes DMARC under an enforcing policy, the sender's Assertion Record, its
//! indicator and evidence document (VMC/CMC), validated before anything is
//! written. The result never feeds the policy: the verdict is decided before
//! BIMI starts.

pub mod fetch;
pub mod record;
pub mod svg;
pub mod vmc;

use crate::{
    checks::{
        dkim,
        dmarc::{self, DmarcLookups, Found},
        evidence::{AuthResult, DkimEvidence, DmarcEvidence, DmarcPolicy},
    },
    dns::Dns,
};
use rustls_pki_types::{CertificateDer, TrustAnchor, UnixTime};
use sha2::{Digest, Sha256};
use std::{
    path::{Path, PathBuf},
    sync::Arc,
    time::{Duration, Instant, SystemTime},
};

/// BIMI settings (`[bimi]`), with the certificate files read.
#[derive(Clone, Debug)]
pub struct BimiConfig {
    /// The file of the roots a VMC/CMC chain must reach (`trust_anchors`).
    pub trust_anchors_file: PathBuf,
    pub trust_anchors: Vec<TrustAnchor<'static>>,
    /// The file of the roots HTTPS servers are checked against (`https_roots`).
    pub https_roots_file: PathBuf,
    pub https_roots: Vec<CertificateDer<'static>>,
    /// Time limit of one document fetch.
    pub fetch_timeout: Duration,
    /// Largest indicator (SVG) accepted.
    pub max_indicator_bytes: usize,
    /// Largest evidence document (PEM) accepted.
    pub max_evidence_bytes: usize,
    /// Only marks with a validated evidence document get headers.
    pub require_evidence: bool,
    /// How long a validated (or refused) mark is reused.
    pub cache_ttl: Duration,
    /// How long a fetch failure is remembered before trying again.
    pub failure_ttl: Duration,
    /// Longest wait at end of message for BIMI once the verdict is known.
    pub wait: Duration,
    /// Fetch from loopback, private and other non-global addresses.
    pub fetch_private_addresses: bool,
    /// Check the certificate chain against its CRLs (VMC draft §5.1).
    pub check_revocation: bool,
}

/// Defaults of the `[bimi]` keys.
pub mod defaults {
    use std::time::Duration;
    pub const TRUST_ANCHORS: &str = "/etc/authmilter/bimi-trust-anchors.pem";
    pub const HTTPS_ROOTS: &str = "/etc/ssl/certs/ca-certificates.crt";
    pub const FETCH_TIMEOUT: Duration = Duration::from_secs(5);
    /// The draft's recommended largest SVG Tiny PS indicator.
    pub const MAX_INDICATOR_BYTES: usize = 32 * 1024;
    /// A VMC chain with its embedded (compressed) mark is a few tens of KiB.
    pub const MAX_EVIDENCE_BYTES: usize = 128 * 1024;
    pub const CACHE_TTL: Duration = Duration::from_secs(3600);
    pub const FAILURE_TTL: Duration = Duration::from_secs(300);
    pub const WAIT: Duration = Duration::from_millis(1000);
    /// The largest CRL fetched (a mark CA's CRLs are small).
    pub const MAX_CRL_BYTES: usize = 1024 * 1024;
}

impl BimiConfig {
    /// Settings with the defaults and the certificates of the two files.
    ///
    /// # Errors
    ///
    /// Which file cannot be read or holds no usable certificate, and why.
    pub fn load(
        trust_anchors_file: &Path,
        https_roots_file: &Path,
    ) -> Result<Self, (bool, String)> {
        let anchors = fetch::read_certificates(trust_anchors_file)
            .and_then(|c| vmc::anchors(&c))
            .map_err(|e| (true, e))?;
        let roots = fetch::read_certificates(https_roots_file).map_err(|e| (false, e))?;
        let mut store = rustls::RootCertStore::empty();
        if store.add_parsable_certificates(roots.iter().cloned()).0 == 0 {
            return Err((
                false,
                format!("{}: no usable certificate", https_roots_file.display()),
            ));
        }
        Ok(Self {
            trust_anchors_file: trust_anchors_file.to_path_buf(),
            trust_anchors: anchors,
            https_roots_file: https_roots_file.to_path_buf(),
            https_roots: roots,
            fetch_timeout: defaults::FETCH_TIMEOUT,
            max_indicator_bytes: defaults::MAX_INDICATOR_BYTES,
            max_evidence_bytes: defaults::MAX_EVIDENCE_BYTES,
            require_evidence: true,
            cache_ttl: defaults::CACHE_TTL,
            failure_ttl: defaults::FAILURE_TTL,
            wait: defaults::WAIT,
            fetch_private_addresses: false,
            check_revocation: true,
        })
    }
}

/// A BIMI result (the draft's Authentication-Results registrations).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BimiResult {
    Pass,
    None,
    Fail,
    TempError,
    Declined,
    Skipped,
}

impl BimiResult {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pass => "pass",
            Self::None => "none",
            Self::Fail => "fail",
            Self::TempError => "temperror",
            Self::Declined => "declined",
            Self::Skipped => "skipped",
        }
    }
}

/// What BIMI found for one message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BimiEvidence {
    pub result: BimiResult,
    /// The domain whose Assertion Record was used (`header.d`).
    pub domain: Option<String>,
    /// The selector looked up (`header.selector`).
    pub selector: String,
    /// The record's `l=` and `a=`.
    pub location: Option<String>,
    pub authority: Option<String>,
    /// `policy.authority`: `pass` for a validated evidence document, `none`
    /// without one.
    pub authority_result: Option<&'static str>,
    /// The indicator to write as BIMI-Indicator (on pass only).
    pub indicator: Option<Arc<Vec<u8>>>,
    pub reason: Option<String>,
}

impl BimiEvidence {
    /// The evaluation did not finish within `wait` (it goes on, for the
    /// messages after this one).
    pub fn not_ready(wait: Duration) -> Self {
        Self::new(
            BimiResult::TempError,
            DEFAULT_SELECTOR,
            format!(
                "not finished within bimi.wait ({:.1}s); the next messages will use it",
                wait.as_secs_f64()
            ),
        )
    }

    fn new(result: BimiResult, selector: &str, reason: impl Into<String>) -> Self {
        Self {
            result,
            domain: None,
            selector: selector.to_string(),
            location: None,
            authority: None,
            authority_result: None,
            indicator: None,
            reason: Some(reason.into()),
        }
    }
}

/// What BIMI needs of a message, known once DMARC is evaluated.
#[derive(Clone, Debug)]
pub struct BimiInput {
    pub dmarc: DmarcEvidence,
    /// The message has one From field with one address (§8.1: otherwise
    /// BIMI is not processed).
    pub single_author: bool,
    /// BIMI-Selector field values, in order.
    pub selector_fields: Vec<String>,
    pub dkim: Vec<DkimEvidence>,
    /// The DKIM-Signature values, for the signed-header lists.
    pub dkim_values: Vec<Vec<u8>>,
}

/// A validated (or refused) indicator, reused across messages.
#[derive(Clone, Debug)]
struct Validated {
    outcome: Result<Checked, (BimiResult, String)>,
    until: Instant,
}

#[derive(Clone, Debug)]
struct Checked {
    svg: Arc<Vec<u8>>,
    authority: &'static str,
}

/// The BIMI evaluator: fetcher, trust anchors and the cache of marks.
#[derive(Clone)]
pub struct Bimi {
    dns: Dns,
    cfg: Arc<BimiConfig>,
    fetcher: fetch::Fetcher,
    cache: Arc<quick_cache::sync::Cache<String, Validated>>,
}

impl std::fmt::Debug for Bimi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bimi")
            .field("cfg", &self.cfg)
            .finish_non_exhaustive()
    }
}

/// The selector when no valid, signed BIMI-Selector field names another.
pub const DEFAULT_SELECTOR: &str = "default";

impl Bimi {
    /// # Errors
    ///
    /// The HTTPS roots hold no usable certificate.
    pub fn new(dns: Dns, cfg: BimiConfig) -> Result<Self, String> {
        let fetcher = fetch::Fetcher::new(
            dns.clone(),
            &cfg.https_roots,
            cfg.fetch_timeout,
            cfg.fetch_private_addresses,
        )?;
        Ok(Self {
            dns,
            cfg: Arc::new(cfg),
            fetcher,
            cache: Arc::new(quick_cache::sync::Cache::new(1024)),
        })
    }

    /// The settings this evaluator runs with.
    pub fn config(&self) -> &BimiConfig {
        &self.cfg
    }

    /// BIMI for one message; `lookups` is the message's DMARC memo (the
    /// Organizational Domain and its record). Never fails: every problem
    /// is a result.
    pub async fn evaluate(&self, lookups: &DmarcLookups, input: &BimiInput) -> BimiEvidence {
        let d = &input.dmarc;
        let Some(author) = d.from_domain.clone() else {
            return BimiEvidence::new(BimiResult::Skipped, DEFAULT_SELECTOR, "no author domain");
        };
        if d.result != AuthResult::Pass {
            return BimiEvidence::new(BimiResult::Skipped, DEFAULT_SELECTOR, "DMARC did not pass");
        }
        if !input.single_author {
            return BimiEvidence::new(
                BimiResult::Skipped,
                DEFAULT_SELECTOR,
                "not exactly one From address",
            );
        }
        let org = match lookups.org_domain(&self.dns, &author).await {
            Ok(org) => org,
            Err(e) => {
                return BimiEvidence::new(
                    BimiResult::TempError,
                    DEFAULT_SELECTOR,
                    format!("Organizational Domain: {e}"),
                )
            }
        };
        // A subdomain's mark needs the organization to enforce too.
        let org_record = if Some(&org) == d.policy_domain.as_ref() {
            None
        } else {
            match lookups.record_at(&self.dns, &org).await {
                Found::Record(r) => Some(r),
                Found::TempError(e) => {
                    return BimiEvidence::new(
                        BimiResult::TempError,
                        DEFAULT_SELECTOR,
                        format!("_dmarc.{org}: {e}"),
                    )
                }
                Found::Invalid | Found::Nothing { .. } => None,
            }
        };
        let selector = choose_selector(input, &org);
        if let Err(why) = enforcing(d, org_record.as_deref()) {
            return BimiEvidence::new(BimiResult::Skipped, &selector, why);
        }
        // The Assertion Record of the author domain, else of its
        // Organizational Domain.
        let mut domains = vec![author.clone()];
        if org != author {
            domains.push(org);
        }
        let mut found = None;
        for domain in &domains {
            match self.lookup(&selector, domain).await {
                Lookup::Found(a) => {
                    found = Some((domain.clone(), a));
                    break;
                }
                Lookup::NotFound => continue,
                Lookup::Error(result, why) => {
                    let mut ev = BimiEvidence::new(result, &selector, why);
                    ev.domain = Some(domain.clone());
                    return ev;
                }
            }
        }
        let Some((domain, assertion)) = found else {
            return BimiEvidence::new(
                BimiResult::None,
                &selector,
                format!("no BIMI record at {selector}._bimi.{author}"),
            );
        };
        let mut ev = BimiEvidence {
            result: BimiResult::None,
            domain: Some(domain.clone()),
            selector: selector.clone(),
            location: assertion.location.clone(),
            authority: assertion.authority.clone(),
            authority_result: None,
            indicator: None,
            reason: None,
        };
        if assertion.is_declination() {
            ev.result = BimiResult::Declined;
            ev.reason = Some("the domain declines to publish an indicator".into());
            return ev;
        }
        if assertion.authority.is_none() && self.cfg.require_evidence {
            ev.result = BimiResult::Skipped;
            ev.reason = Some("no evidence document (a=), and bimi.require_evidence is on".into());
            return ev;
        }
        // The names a certificate may carry (VMC draft §4.3): the domain of
        // the record used, or `<selector>._bimi.<that domain>`.
        let names = vec![domain.clone(), format!("{selector}._bimi.{domain}")];
        match self.validated(&assertion, &names).await {
            Ok(c) => {
                ev.result = BimiResult::Pass;
                ev.authority_result = Some(c.authority);
                ev.indicator = Some(c.svg);
            }
            Err((result, why)) => {
                ev.result = result;
                ev.reason = Some(why);
                if result == BimiResult::Fail && assertion.authority.is_some() {
                    ev.authority_result = Some("fail");
                }
            }
        }
        ev
    }

    async fn lookup(&self, selector: &str, domain: &str) -> Lookup {
        let name = format!("{selector}._bimi.{domain}");
        match self.dns.txt(&name).await {
            Ok(records) => {
                let texts: Vec<String> = records
                    .iter()
                    .map(|r| String::from_utf8_lossy(r).into_owned())
                    .filter(|t| record::looks_like_bimi(t))
                    .collect();
                match texts.as_slice() {
                    [] => Lookup::NotFound,
                    [one] => match record::parse(one) {
                        Ok(a) => Lookup::Found(a),
                        Err(e) => Lookup::Error(BimiResult::Fail, format!("{name}: {e}")),
                    },
                    _ => Lookup::Error(
                        BimiResult::Fail,
                        format!("{name}: more than one BIMI record"),
                    ),
                }
            }
            Err(e) if e.is_not_found() => Lookup::NotFound,
            Err(e) => Lookup::Error(BimiResult::TempError, format!("{name}: {e}")),
        }
    }

    /// The indicator of a record, validated, from the cache when it holds
    /// a fresh answer.
    async fn validated(
        &self,
        a: &record::Assertion,
        names: &[String],
    ) -> Result<Checked, (BimiResult, String)> {
        let key = format!(
            "{}\n{}\n{}",
            a.location.as_deref().unwrap_or(""),
            a.authority.as_deref().unwrap_or(""),
            names.join(",")
        );
        loop {
            match self.cache.get_value_or_guard_async(&key).await {
                Ok(v) if v.until > Instant::now() => return v.outcome,
                Ok(_) => {
                    self.cache.remove(&key);
                }
                Err(guard) => {
                    let outcome = self.check(a, names).await;
                    let ttl = match &outcome {
                        Ok(_) => self.cfg.cache_ttl,
                        Err((BimiResult::TempError, _)) => self.cfg.failure_ttl,
                        Err(_) => self.cfg.cache_ttl.min(self.cfg.failure_ttl * 4),
                    };
                    let _ = guard.insert(Validated {
                        outcome: outcome.clone(),
                        until: Instant::now() + ttl,
                    });
                    return outcome;
                }
            }
        }
    }

    async fn check(
        &self,
        a: &record::Assertion,
        names: &[String],
    ) -> Result<Checked, (BimiResult, String)> {
        let fetch_err = |what: &str, e: fetch::FetchError| {
            let result = if e.is_temporary() {
                BimiResult::TempError
            } else {
                BimiResult::Fail
            };
            (result, format!("{what}: {e}"))
        };
        let cfg = &self.cfg;
        let (evidence, location) = tokio::join!(
            async {
                match &a.authority {
                    Some(uri) => Some(self.fetcher.get(uri, cfg.max_evidence_bytes).await),
                    None => None,
                }
            },
            async {
                match &a.location {
                    Some(uri) => Some(self.fetcher.get(uri, cfg.max_indicator_bytes).await),
                    None => None,
                }
            }
        );
        let mark = match evidence {
            Some(Ok(pem)) => {
                let now = UnixTime::since_unix_epoch(
                    SystemTime::now()
                        .duration_since(SystemTime::UNIX_EPOCH)
                        .unwrap_or_default(),
                );
                let crls = if cfg.check_revocation {
                    Some(self.crls(&pem).await?)
                } else {
                    None
                };
                Some(
                    vmc::validate(&pem, &cfg.trust_anchors, names, now, crls.as_deref())
                        .map_err(|e| (BimiResult::Fail, e.to_string()))?,
                )
            }
            Some(Err(e)) => return Err(fetch_err("evidence document", e)),
            None => None,
        };
        let fetched = match location {
            Some(Ok(svg)) => Some(
                vmc::gunzip_if_needed(svg, cfg.max_indicator_bytes)
                    .map_err(|e| (BimiResult::Fail, format!("indicator: {e}")))?,
            ),
            Some(Err(e)) => return Err(fetch_err("indicator", e)),
            None => None,
        };
        let svg = match (&mark, fetched) {
            (Some(m), Some(svg)) => {
                // The indicator at l= must be the mark the certificate
                // vouches for (§8.9), line ends aside.
                if Sha256::digest(lf(&svg)) != Sha256::digest(lf(&m.svg)) {
                    return Err((
                        BimiResult::Fail,
                        "the indicator at l= is not the one in the evidence document".into(),
                    ));
                }
                svg
            }
            (Some(m), None) => m.svg.clone(),
            (None, Some(svg)) => svg,
            (None, None) => return Err((BimiResult::Fail, "no indicator".into())),
        };
        svg::validate(&svg, cfg.max_indicator_bytes)
            .map_err(|e| (BimiResult::Fail, e.to_string()))?;
        Ok(Checked {
            svg: Arc::new(svg),
            authority: if mark.is_some() { "pass" } else { "none" },
        })
    }
}

/// CRLF and CR as LF.
fn lf(b: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\r' {
            out.push(b'\n');
            if b.get(i + 1) == Some(&b'\n') {
                i += 1;
            }
        } else {
            out.push(b[i]);
        }
        i += 1;
    }
    out
}

impl Bimi {
    /// The CRLs the chain's certificates name, fetched concurrently.
    async fn crls(&self, pem: &[u8]) -> Result<Vec<Vec<u8>>, (BimiResult, String)> {
        let certs = vmc::certificates(pem).map_err(|e| (BimiResult::Fail, e.to_string()))?;
        let uris = vmc::crl_uris(&certs);
        let fetched = futures::future::join_all(
            uris.iter()
                .map(|u| self.fetcher.get_crl(u, defaults::MAX_CRL_BYTES)),
        )
        .await;
        let mut out = Vec::with_capacity(fetched.len());
        for (uri, r) in uris.iter().zip(fetched) {
            match r {
                Ok(der) => out.push(der),
                Err(e) => {
                    let result = if e.is_temporary() {
                        BimiResult::TempError
                    } else {
                        BimiResult::Fail
                    };
                    return Err((result, format!("CRL {}: {e}", fetch::printable(uri))));
                }
            }
        }
        Ok(out)
    }
}

enum Lookup {
    Found(record::Assertion),
    NotFound,
    Error(BimiResult, String),
}

/// Whether the DMARC result lets BIMI go on (§8.1): a pass under
/// `p=quarantine` or `p=reject` as published for this message (`sp`/`np`
/// for subdomains), not in RFC 9989 testing mode (`t=y`, which takes the
/// place of the `pct=100` the draft asks of RFC 7489 records), and neither
/// the record used nor the Organizational Domain's record saying `p=none`
/// or `sp=none`.
fn enforcing(d: &DmarcEvidence, org: Option<&dmarc::Record>) -> Result<(), String> {
    match d.published {
        Some(DmarcPolicy::Quarantine | DmarcPolicy::Reject) => {}
        Some(DmarcPolicy::None) | None => {
            return Err("the DMARC policy is not quarantine or reject".into())
        }
    }
    if d.testing {
        return Err("the DMARC policy is in testing mode, t=y".into());
    }
    let not_none = |r: &dmarc::Record, whose: &str| {
        if r.p == Some(DmarcPolicy::None) {
            Err(format!("{whose} DMARC record has p=none"))
        } else if r.sp == Some(DmarcPolicy::None) {
            Err(format!("{whose} DMARC record has sp=none"))
        } else {
            Ok(())
        }
    };
    if let Some(r) = d.record.as_deref() {
        not_none(r, "the")?;
    }
    if let Some(r) = org {
        not_none(r, "the Organizational Domain's")?;
    }
    Ok(())
}

/// The selector: the one BIMI-Selector field, when it is valid and covered
/// by a passing DKIM signature aligned with the author domain; `default`
/// otherwise.
fn choose_selector(input: &BimiInput, org: &str) -> String {
    let [field] = input.selector_fields.as_slice() else {
        return DEFAULT_SELECTOR.into();
    };
    let Some(selector) = record::selector_from_header(field) else {
        return DEFAULT_SELECTOR.into();
    };
    if selector_signed(input, org) {
        selector
    } else {
        DEFAULT_SELECTOR.into()
    }
}

/// Whether a passing DKIM signature whose `d=` is the author domain or
/// shares its Organizational Domain signs the BIMI-Selector field (`h=`).
fn selector_signed(input: &BimiInput, org: &str) -> bool {
    let Some(author) = input.dmarc.from_domain.as_deref() else {
        return false;
    };
    let aligned = |d: &str| {
        d.eq_ignore_ascii_case(author) || d.eq_ignore_ascii_case(org) || is_subdomain(d, org)
    };
    input
        .dkim
        .iter()
        .filter(|e| e.result == AuthResult::Pass && aligned(&e.domain))
        .any(|e| {
            input.dkim_values.iter().any(|v| {
                let tags = dkim::tags(v);
                let get = |n: &str| tags.iter().find(|(k, _)| k == n).map(|(_, v)| v.as_str());
                let same = get("d").is_some_and(|d| d.eq_ignore_ascii_case(&e.domain))
                    && get("s").is_some_and(|s| s.eq_ignore_ascii_case(&e.selector))
                    && get("b").is_some_and(|b| {
                        let b: String = b.chars().filter(|c| !c.is_whitespace()).collect();
                        b.starts_with(&e.b_prefix)
                    });
                same && get("h").is_some_and(|h| {
                    h.split(':')
                        .any(|n| n.trim().eq_ignore_ascii_case("BIMI-Selector"))
                })
            })
        })
}

fn is_subdomain(d: &str, parent: &str) -> bool {
    d.len() > parent.len()
        && d[d.len() - parent.len()..].eq_ignore_ascii_case(parent)
        && d.as_bytes()[d.len() - parent.len() - 1] == b'.'
}
