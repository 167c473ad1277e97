//! DMARC failure reports (RFC 9991, in the RFC 6591 format), off by default
//! (`[reports.failure] enabled`). Sent right after the failure, to each
//! authorised `ruf` destination (the first [`MAX_RUF`]), at most
//! `max_per_hour` per destination and `max_total_per_hour` in all, across
//! every host sharing the database, with the header only (local parts of
//! addresses redacted) unless configured otherwise.
//!
//! What `fo=` asks for (RFC 9989 §4.7) decides the kind: `0` and `1` give
//! `Auth-Failure: dmarc` reports (with `Identity-Alignment`), `d` a DKIM
//! report (RFC 6651: `Auth-Failure: signature` or `bodyhash`, with the
//! DKIM-* fields), `s` an SPF report (RFC 6652: `Auth-Failure: spf`, with
//! SPF-DNS). The milter never waits: jobs go into a small bounded queue and
//! are sent by one worker, a few at a time; a full queue drops the job
//! (counted `lost`).

use super::{
    authorize::{authorize, mailto_address, Authorization},
    deliver::{self, Relay},
    store::{self, Store},
    ReportsConfig,
};
use crate::{
    checks::{
        dmarc::DmarcLookups,
        evidence::{AuthResult, Evidence},
    },
    dns::Dns,
    telemetry::metrics as m,
};
use std::sync::Arc;
use tokio::sync::{mpsc, Semaphore};
use tracing::{info, warn};

/// At most this many `ruf` destinations of one record are used.
pub const MAX_RUF: usize = 2;
/// Failure report jobs waiting at most; more are dropped (and counted).
const QUEUE: usize = 256;
/// Reports being sent at once.
const CONCURRENCY: usize = 4;
/// At most this much of the body is copied (with `include_body`).
pub const MAX_BODY_COPY: usize = 64 * 1024;

/// What kind of failure report (RFC 9989 `fo=`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// `fo=0` / `fo=1`: `Auth-Failure: dmarc`.
    Dmarc,
    /// `fo=d`: a DKIM failure report (RFC 6651).
    Dkim,
    /// `fo=s`: an SPF failure report (RFC 6652).
    Spf,
}

/// One DKIM signature as the report needs it.
#[derive(Clone, Debug)]
pub struct Signature {
    pub domain: String,
    pub selector: String,
    pub identity: String,
    pub result: AuthResult,
    pub reason: Option<String>,
}

/// One failure report to send.
#[derive(Clone)]
pub struct FailureJob {
    pub dns: Dns,
    pub kinds: Vec<Kind>,
    pub policy_domain: String,
    pub ruf: Vec<String>,
    /// The RFC 5322.From domain.
    pub reported_domain: String,
    pub adkim_strict: bool,
    pub aspf_strict: bool,
    pub source_ip: String,
    pub mail_from: String,
    pub arrival: i64,
    /// Our Authentication-Results field value.
    pub auth_results: String,
    pub dkim: Vec<Signature>,
    /// The SPF (MAIL FROM) domain and result.
    pub spf: Option<(String, AuthResult)>,
    /// The header block as received (CRLF), then the body with `include_body`.
    pub header: Vec<u8>,
    pub body: Option<Vec<u8>>,
    pub queue_id: Option<String>,
}

/// The part of a message a failure report may copy: the header block, and
/// with `include_body` the first [`MAX_BODY_COPY`] bytes of the body.
pub fn copy_of(raw: &[u8], include_body: bool) -> Vec<u8> {
    let end = header_end(raw);
    if include_body {
        raw[..(end + MAX_BODY_COPY).min(raw.len())].to_vec()
    } else {
        raw[..end].to_vec()
    }
}

/// The length of the header block with its blank line.
fn header_end(raw: &[u8]) -> usize {
    raw.windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map_or(raw.len(), |i| i + 4)
}

/// The failure reports this message calls for, if any: the record has
/// `ruf` (ignored with `psd=y`, RFC 9991 §2), and `fo` asks for one.
#[allow(clippy::too_many_arguments)]
pub fn job(
    ev: &Evidence,
    row: &super::Row,
    dns: &Dns,
    auth_results: &str,
    copy: &[u8],
    queue_id: Option<String>,
    mail_from: &str,
    include_body: bool,
) -> Option<FailureJob> {
    let record = ev.dmarc.record.as_ref()?;
    if record.ruf.is_empty() || record.psd == Some(true) {
        return None;
    }
    let kinds = wanted(&record.fo, ev);
    if kinds.is_empty() {
        return None;
    }
    let end = header_end(copy);
    let (header, body) = copy.split_at(end.min(copy.len()));
    // The header without the blank line: the report adds its own.
    let header = header.strip_suffix(b"\r\n").unwrap_or(header).to_vec();
    Some(FailureJob {
        dns: dns.clone(),
        kinds,
        policy_domain: row.published.domain.clone(),
        ruf: record.ruf.iter().take(MAX_RUF).cloned().collect(),
        reported_domain: ev.dmarc.from_domain.clone().unwrap_or_default(),
        adkim_strict: record.adkim_strict,
        aspf_strict: record.aspf_strict,
        source_ip: row.source_ip.clone(),
        mail_from: mail_from.to_string(),
        arrival: super::now_unix(),
        auth_results: auth_results.to_string(),
        dkim: ev
            .dkim
            .iter()
            .map(|s| Signature {
                domain: s.domain.to_ascii_lowercase(),
                selector: s.selector.clone(),
                identity: s.identity.clone(),
                result: s.result,
                reason: s.reason.clone(),
            })
            .collect(),
        spf: ev
            .spf_mailfrom
            .as_ref()
            .map(|s| (s.domain.to_ascii_lowercase(), s.result)),
        header,
        body: include_body.then(|| body.to_vec()),
        queue_id,
    })
}

fn dkim_failed(r: AuthResult) -> bool {
    matches!(
        r,
        AuthResult::Fail | AuthResult::PermError | AuthResult::Neutral
    )
}

fn spf_failed(r: AuthResult) -> bool {
    matches!(r, AuthResult::Fail | AuthResult::SoftFail)
}

/// The report kinds `fo` asks for (RFC 9989 §4.7): `0` all mechanisms
/// failed to give an aligned pass (DMARC fail); `1` any mechanism did not;
/// `d` a DKIM signature failed, aligned or not; `s` SPF failed, aligned or
/// not. Unknown options are ignored; an `fo` with none known means `0`.
pub fn wanted(fo: &str, ev: &Evidence) -> Vec<Kind> {
    let d = &ev.dmarc;
    let evaluated = matches!(d.result, AuthResult::Fail | AuthResult::Pass);
    let mut known = false;
    let mut kinds = Vec::new();
    let add = |k: Kind, yes: bool, kinds: &mut Vec<Kind>| {
        if yes && !kinds.contains(&k) {
            kinds.push(k);
        }
    };
    for opt in fo.split(':').map(str::trim) {
        match opt {
            "0" => {
                known = true;
                add(Kind::Dmarc, d.result == AuthResult::Fail, &mut kinds);
            }
            "1" => {
                known = true;
                add(
                    Kind::Dmarc,
                    evaluated && !(d.dkim_aligned && d.spf_aligned),
                    &mut kinds,
                );
            }
            "d" => {
                known = true;
                add(
                    Kind::Dkim,
                    ev.dkim.iter().any(|s| dkim_failed(s.result)),
                    &mut kinds,
                );
            }
            "s" => {
                known = true;
                add(
                    Kind::Spf,
                    ev.spf_mailfrom
                        .as_ref()
                        .is_some_and(|s| spf_failed(s.result)),
                    &mut kinds,
                );
            }
            _ => {}
        }
    }
    if !known {
        add(Kind::Dmarc, d.result == AuthResult::Fail, &mut kinds);
    }
    kinds
}

/// What alignment found, for the report fields.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Aligned {
    /// Signatures whose `d=` aligns with the author domain and that did not pass.
    pub failed_dkim: Vec<usize>,
    /// The MAIL FROM domain aligns and SPF did not pass.
    pub failed_spf: bool,
}

impl Aligned {
    /// RFC 9991 `Identity-Alignment`: the mechanisms that failed to
    /// authenticate an aligned identity, or `none`.
    pub fn identity_alignment(&self) -> String {
        let mut v = Vec::new();
        if !self.failed_dkim.is_empty() {
            v.push("dkim");
        }
        if self.failed_spf {
            v.push("spf");
        }
        if v.is_empty() {
            "none".into()
        } else {
            v.join(",")
        }
    }
}

/// Which identities align with the author domain (the DMARC rule: the same
/// name, or with relaxed alignment the same Organizational Domain).
pub async fn aligned(job: &FailureJob) -> Aligned {
    let lookups = DmarcLookups::default();
    let from = job.reported_domain.as_str();
    let mut out = Aligned::default();
    for (i, s) in job.dkim.iter().enumerate() {
        if s.result != AuthResult::Pass
            && lookups
                .aligned(&job.dns, &s.domain, from, job.adkim_strict)
                .await
                .unwrap_or(false)
        {
            out.failed_dkim.push(i);
        }
    }
    if let Some((domain, result)) = &job.spf {
        out.failed_spf = *result != AuthResult::Pass
            && lookups
                .aligned(&job.dns, domain, from, job.aspf_strict)
                .await
                .unwrap_or(false);
    }
    out
}

/// Replaces the local part of every address in `text` by the same short
/// token (RFC 6590 style: consistent, so a reader can still follow it).
pub fn redact_local_parts(text: &str) -> String {
    use sha2::Digest;
    let bytes = text.as_bytes();
    let is_local = |b: u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-/=?^_`{|}~.".contains(&b);
    let mut out = String::with_capacity(text.len());
    let mut last = 0;
    for (i, &b) in bytes.iter().enumerate() {
        if b != b'@' || i < last {
            continue;
        }
        let mut start = i;
        while start > last && is_local(bytes[start - 1]) {
            start -= 1;
        }
        if start == i {
            continue;
        }
        let local = &text[start..i];
        let token = hex::encode(&sha2::Sha256::digest(local.as_bytes())[..4]);
        out.push_str(&text[last..start]);
        out.push_str("redacted-");
        out.push_str(&token);
        last = i;
    }
    out.push_str(&text[last..]);
    out
}

fn rfc5322_date(unix: i64) -> String {
    let t =
        time::OffsetDateTime::from_unix_timestamp(unix).unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    t.format(&time::format_description::well_known::Rfc2822)
        .unwrap_or_default()
}

fn one_line(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

/// A token nobody can guess ahead: the MIME boundary and Message-ID.
fn token(salt: &[u8]) -> String {
    use sha2::Digest;
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let mut h = sha2::Sha256::new();
    h.update(nanos.to_le_bytes());
    h.update(std::process::id().to_le_bytes());
    h.update(COUNTER.fetch_add(1, Ordering::Relaxed).to_le_bytes());
    h.update((&h as *const _ as usize).to_le_bytes());
    h.update(salt);
    hex::encode(&h.finalize()[..12])
}

/// The report message (RFC 6591 §3 / RFC 5965 §2, RFC 9991 §3), CRLF.
pub fn message(
    cfg: &ReportsConfig,
    job: &FailureJob,
    kind: Kind,
    aligned: &Aligned,
    spf_record: Option<&str>,
    to: &str,
    now: i64,
) -> Vec<u8> {
    let redact = |s: &str| {
        if cfg.failure.redact_local_parts {
            redact_local_parts(s)
        } else {
            s.to_string()
        }
    };
    let header = redact(&String::from_utf8_lossy(&job.header));
    let mut boundary = format!("report-{}", token(&job.header));
    while job
        .header
        .windows(boundary.len())
        .any(|w| w == boundary.as_bytes())
        || job
            .body
            .as_ref()
            .is_some_and(|b| b.windows(boundary.len()).any(|w| w == boundary.as_bytes()))
    {
        boundary = format!("report-{}", token(boundary.as_bytes()));
    }
    let mail_from = redact(&job.mail_from);
    // Our A-R, one result per line (a long one would pass 998 octets).
    let auth_results = redact(&job.auth_results)
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .replace("; ", ";\r\n\t");
    let (auth_failure, what) = match kind {
        Kind::Dmarc => ("dmarc", "DMARC"),
        Kind::Dkim => {
            let bodyhash = job.dkim.iter().any(|s| {
                dkim_failed(s.result)
                    && s.reason
                        .as_deref()
                        .is_some_and(|r| r.to_ascii_lowercase().contains("body hash"))
            });
            (if bodyhash { "bodyhash" } else { "signature" }, "DKIM")
        }
        Kind::Spf => ("spf", "SPF"),
    };
    let domain = one_line(&job.reported_domain);
    let mut m = String::new();
    let from = format!(
        "{} <{}>",
        one_line(&cfg.org_name).replace(['<', '>', '"'], ""),
        cfg.contact
    );
    m.push_str(&format!("From: {from}\r\nTo: <{to}>\r\n"));
    m.push_str(&format!(
        "Subject: {what} failure report for {domain} from {}\r\n",
        job.source_ip
    ));
    m.push_str(&format!("Date: {}\r\n", rfc5322_date(now)));
    m.push_str(&format!(
        "Message-ID: <ruf.{}@{}>\r\n",
        token(to.as_bytes()),
        cfg.submitter
    ));
    m.push_str("MIME-Version: 1.0\r\n");
    m.push_str(&format!(
        "Content-Type: multipart/report; report-type=feedback-report;\r\n\tboundary=\"{boundary}\"\r\n\r\n"
    ));
    m.push_str(&format!(
        "--{boundary}\r\nContent-Type: text/plain; charset=\"US-ASCII\"\r\n\r\n"
    ));
    m.push_str(&format!(
        "This is a {what} failure report (RFC 9991, RFC 6591) for a message\r\nclaiming to be from {domain}, received from {} at {}.\r\n\r\n",
        job.source_ip,
        rfc5322_date(job.arrival)
    ));
    m.push_str(&format!(
        "--{boundary}\r\nContent-Type: message/feedback-report\r\n\r\n"
    ));
    m.push_str("Feedback-Type: auth-failure\r\n");
    m.push_str(concat!(
        "User-Agent: authmilter/",
        env!("CARGO_PKG_VERSION"),
        "\r\n"
    ));
    m.push_str("Version: 1\r\n");
    m.push_str(&format!(
        "Original-Mail-From: <{}>\r\n",
        one_line(&mail_from)
    ));
    m.push_str(&format!("Arrival-Date: {}\r\n", rfc5322_date(job.arrival)));
    m.push_str(&format!("Source-IP: {}\r\n", job.source_ip));
    m.push_str(&format!("Reported-Domain: {domain}\r\n"));
    m.push_str(&format!("Authentication-Results: {auth_results}\r\n"));
    m.push_str(&format!("Auth-Failure: {auth_failure}\r\n"));
    if kind == Kind::Dmarc {
        m.push_str(&format!(
            "Identity-Alignment: {}\r\n",
            aligned.identity_alignment()
        ));
    }
    // DKIM-*: the aligned signatures that failed (dmarc), or the failed ones (dkim).
    let sigs: Vec<&Signature> = match kind {
        Kind::Dmarc => aligned.failed_dkim.iter().map(|&i| &job.dkim[i]).collect(),
        Kind::Dkim => job.dkim.iter().filter(|s| dkim_failed(s.result)).collect(),
        Kind::Spf => Vec::new(),
    };
    for s in sigs.iter().take(1) {
        m.push_str(&format!(
            "DKIM-Domain: {}\r\nDKIM-Identity: {}\r\nDKIM-Selector: {}\r\n",
            one_line(&s.domain),
            one_line(&redact(&s.identity)),
            one_line(&s.selector)
        ));
    }
    let spf_wanted = match kind {
        Kind::Dmarc => aligned.failed_spf,
        Kind::Spf => true,
        Kind::Dkim => false,
    };
    if let (true, Some((spf_domain, _)), Some(record)) = (spf_wanted, &job.spf, spf_record) {
        // RFC 6591 §3.2: the SPF record as retrieved.
        m.push_str(&format!(
            "SPF-DNS: txt : {} : \"{}\"\r\n",
            one_line(spf_domain),
            one_line(record).replace('"', "\\\"")
        ));
    }
    m.push_str("\r\n");
    let mut out = m.into_bytes();
    match &job.body {
        Some(body) if cfg.failure.include_body => {
            out.extend_from_slice(
                format!("--{boundary}\r\nContent-Type: message/rfc822\r\n\r\n").as_bytes(),
            );
            out.extend_from_slice(header.as_bytes());
            out.extend_from_slice(b"\r\n");
            out.extend_from_slice(body);
        }
        _ => {
            out.extend_from_slice(
                format!("--{boundary}\r\nContent-Type: text/rfc822-headers\r\n\r\n").as_bytes(),
            );
            out.extend_from_slice(header.as_bytes());
        }
    }
    if !out.ends_with(b"\r\n") {
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    out
}

/// The failure report worker: a small bounded queue, a few sends at once,
/// its own connection to the report database (for the rate limits).
#[derive(Clone)]
pub struct Sender {
    tx: mpsc::Sender<FailureJob>,
}

impl Sender {
    /// Starts the worker (inside the runtime).
    pub fn start(cfg: &ReportsConfig, store: Option<Arc<dyn Store>>) -> Self {
        let (tx, rx) = mpsc::channel(QUEUE);
        tokio::spawn(worker(Arc::new(cfg.clone()), rx, store));
        Self { tx }
    }

    /// Queues `job`; never waits (a full queue drops it, counted `lost`).
    pub fn queue(&self, job: FailureJob) {
        if self.tx.try_send(job).is_err() {
            m::failure_report("lost");
            warn!("DMARC failure report dropped: too many waiting to be sent");
        }
    }
}

async fn worker(
    cfg: Arc<ReportsConfig>,
    mut rx: mpsc::Receiver<FailureJob>,
    mut store: Option<Arc<dyn Store>>,
) {
    let slots = Arc::new(Semaphore::new(CONCURRENCY));
    while let Some(job) = rx.recv().await {
        if store.is_none() {
            match store::open(&cfg.database).await {
                Ok(s) => store = Some(s),
                Err(e) => {
                    m::failure_report("failed");
                    warn!("DMARC failure report not sent: the report database: {e} (rate limits unknown)");
                    continue;
                }
            }
        }
        let Ok(permit) = slots.clone().acquire_owned().await else {
            return;
        };
        let (cfg, store) = (cfg.clone(), store.clone().expect("opened above"));
        tokio::spawn(async move {
            send(&cfg, job, store).await;
            drop(permit);
        });
    }
}

async fn spf_record(dns: &Dns, domain: &str) -> Option<String> {
    let txt = dns.txt(domain).await.ok()?;
    txt.iter()
        .map(|t| String::from_utf8_lossy(t).into_owned())
        .find(|t| t.get(..6).is_some_and(|p| p.eq_ignore_ascii_case("v=spf1")))
}

async fn send(cfg: &ReportsConfig, job: FailureJob, store: Arc<dyn Store>) {
    let relay = match Relay::parse(&cfg.smtp_relay, cfg.smtp_timeout) {
        Ok(r) => r,
        Err(e) => {
            m::failure_report("failed");
            warn!("DMARC failure report not sent: reports.smtp_relay: {e}");
            return;
        }
    };
    let aligned = aligned(&job).await;
    let spf = match &job.spf {
        Some((d, _)) if job.kinds.contains(&Kind::Spf) || aligned.failed_spf => {
            spf_record(&job.dns, d).await
        }
        _ => None,
    };
    let hour = super::bucket_of(super::now_unix());
    for uri in &job.ruf {
        let Some(key) = mailto_address(uri) else {
            m::failure_report("unauthorized");
            continue;
        };
        for &kind in &job.kinds {
            // The limits first: a flood costs no DNS and no SMTP.
            let limits = async {
                Ok::<bool, super::StoreError>(
                    store
                        .failure_slot("*", hour, cfg.failure.max_total_per_hour)
                        .await?
                        && store
                            .failure_slot(&key, hour, cfg.failure.max_per_hour)
                            .await?,
                )
            };
            match limits.await {
                Ok(true) => {}
                Ok(false) => {
                    m::failure_report("rate_limited");
                    continue;
                }
                Err(e) => {
                    m::failure_report("failed");
                    warn!("DMARC failure report not sent to {key}: rate limit unknown: {e}");
                    continue;
                }
            }
            let address = match authorize(&job.dns, &job.policy_domain, uri, "ruf").await {
                Authorization::Allowed { address } => address,
                Authorization::Refused(why) | Authorization::Temporary(why) => {
                    m::failure_report("unauthorized");
                    info!(
                        domain = job.policy_domain.as_str(),
                        "DMARC failure report not sent to {uri}: {why}"
                    );
                    break;
                }
            };
            let raw = message(
                cfg,
                &job,
                kind,
                &aligned,
                spf.as_deref(),
                &address,
                super::now_unix(),
            );
            match deliver::send_raw(&relay, &cfg.contact, &address, &raw).await {
                Ok(()) => {
                    m::failure_report("sent");
                    info!(
                        domain = job.policy_domain.as_str(),
                        queue_id = job.queue_id.as_deref().unwrap_or("-"),
                        "DMARC failure report sent to {address}"
                    );
                }
                Err(e) => {
                    m::failure_report("failed");
                    warn!("DMARC failure report to {address} failed: {}", e.message);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::{dmarc::Record, evidence::*};

    fn ev(fo: &str, result: AuthResult, spf_aligned: bool, dkim: AuthResult) -> Evidence {
        let txt = format!("v=DMARC1; p=reject; ruf=mailto:f@example.com; fo={fo}");
        Evidence {
            iprev: None,
            spf_helo: None,
            spf_mailfrom: Some(SpfEvidence {
                result: if spf_aligned {
                    AuthResult::Pass
                } else {
                    AuthResult::Fail
                },
                identity: SpfIdentity::MailFrom,
                sender: "a@example.com".into(),
                domain: "example.com".into(),
                reason: None,
                mechanism: None,
            }),
            dkim: vec![DkimEvidence {
                result: dkim,
                domain: "other.example".into(),
                selector: "s".into(),
                identity: "@other.example".into(),
                algorithm: "rsa-sha256".into(),
                b_prefix: String::new(),
                reason: None,
                local_limit: false,
            }],
            arc: ArcEvidence::none(),
            dkim2: vec![],
            dmarc: DmarcEvidence {
                result,
                from_domain: Some("example.com".into()),
                published: Some(DmarcPolicy::Reject),
                effective: DmarcPolicy::Reject,
                testing: false,
                spf_aligned,
                dkim_aligned: false,
                reason: None,
                policy_domain: Some("example.com".into()),
                from_unusable: false,
                local_limit: false,
                record: Record::parse(txt.as_bytes()).map(std::sync::Arc::new),
            },
            ptr: None,
            smtp: Default::default(),
        }
    }

    #[test]
    fn fo_options_follow_rfc9989() {
        use AuthResult::{Fail, Pass};
        // fo=0 (the default): only when DMARC failed.
        assert_eq!(wanted("0", &ev("0", Fail, false, Pass)), [Kind::Dmarc]);
        assert!(wanted("0", &ev("0", Pass, true, Fail)).is_empty());
        // fo=1: any mechanism without an aligned pass, even when DMARC passed.
        assert_eq!(wanted("1", &ev("1", Pass, true, Pass)), [Kind::Dmarc]);
        // fo=d: a DKIM failure report when a signature failed, aligned or not.
        assert_eq!(wanted("d", &ev("d", Pass, true, Fail)), [Kind::Dkim]);
        assert!(wanted("d", &ev("d", Fail, false, Pass)).is_empty());
        // fo=s: an SPF failure report when SPF failed, aligned or not.
        assert_eq!(wanted("s", &ev("s", Fail, false, Pass)), [Kind::Spf]);
        assert!(wanted("s", &ev("s", Pass, true, Fail)).is_empty());
        // Several, and unknown options.
        assert_eq!(
            wanted("0:d:s", &ev("0:d:s", Fail, false, Fail)),
            [Kind::Dmarc, Kind::Dkim, Kind::Spf]
        );
        assert_eq!(
            wanted("x", &ev("x", Fail, false, Pass)),
            [Kind::Dmarc],
            "no known option: fo=0"
        );
        assert!(wanted("x", &ev("x", Pass, true, Fail)).is_empty());
    }

    #[test]
    fn identity_alignment_names_failed_aligned_mechanisms() {
        // RFC 9991 Appendix A: SPF for another domain, an aligned signature failed.
        let a = Aligned {
            failed_dkim: vec![0],
            failed_spf: false,
        };
        assert_eq!(a.identity_alignment(), "dkim");
        assert_eq!(Aligned::default().identity_alignment(), "none");
        let both = Aligned {
            failed_dkim: vec![1],
            failed_spf: true,
        };
        assert_eq!(both.identity_alignment(), "dkim,spf");
    }

    #[test]
    fn no_failure_report_for_psd_records_or_without_ruf() {
        let dns = crate::dns::Dns::from_zones(
            &crate::config::Config::default_config().dns,
            crate::dns::zones::ZoneSet::with_origins(),
        )
        .unwrap();
        let e = ev("1", AuthResult::Fail, false, AuthResult::Fail);
        let raw = b"From: a@example.com\r\nSubject: x\r\n\r\nbody\r\n";
        let j = job_of(&e, &dns, &copy_of(raw, false)).unwrap();
        assert_eq!(j.header, b"From: a@example.com\r\nSubject: x\r\n");
        assert!(j.body.is_none());
        let j = job_of(&e, &dns, &copy_of(raw, true)).unwrap();
        assert_eq!(j.body.as_deref(), None, "job_of asks for no body");
        let mut psd = e.clone();
        let mut r = (**psd.dmarc.record.as_ref().unwrap()).clone();
        r.psd = Some(true);
        psd.dmarc.record = Some(std::sync::Arc::new(r.clone()));
        assert!(
            job_of(&psd, &dns, raw).is_none(),
            "RFC 9991 section 2: ruf of psd=y records is ignored"
        );
        r.psd = None;
        r.ruf.clear();
        psd.dmarc.record = Some(std::sync::Arc::new(r));
        assert!(job_of(&psd, &dns, raw).is_none(), "no ruf");

        fn job_of(e: &Evidence, dns: &crate::dns::Dns, copy: &[u8]) -> Option<FailureJob> {
            let v = crate::policy::decide(
                e,
                &Default::default(),
                &crate::config::Config::default_config().policy,
            );
            let env = crate::reports::Envelope {
                client_ip: Some("192.0.2.1".parse().unwrap()),
                mail_from: "",
            };
            let row = crate::reports::observe(e, &v, &env).unwrap();
            job(e, &row, dns, "", copy, None, "", false)
        }
    }

    #[test]
    fn copies_are_bounded() {
        let mut raw = b"Subject: x\r\n\r\n".to_vec();
        raw.extend(std::iter::repeat_n(b'a', MAX_BODY_COPY * 2));
        assert_eq!(copy_of(&raw, false), b"Subject: x\r\n\r\n");
        assert_eq!(copy_of(&raw, true).len(), 14 + MAX_BODY_COPY);
    }

    #[test]
    fn local_parts_are_replaced_consistently() {
        let t = "From: Alice <alice.smith@example.com>\r\nTo: bob@example.org, alice.smith@example.com\r\n";
        let r = redact_local_parts(t);
        assert!(!r.contains("alice.smith"), "{r}");
        assert!(!r.contains("bob@"), "{r}");
        assert!(r.contains("@example.com"), "{r}");
        let token = r.split("redacted-").nth(1).unwrap()[..8].to_string();
        assert_eq!(r.matches(&format!("redacted-{token}")).count(), 2, "{r}");
        assert_eq!(redact_local_parts("no address @ here"), "no address @ here");
    }
}
