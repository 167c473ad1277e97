//! DMARC failure reports (RFC 9991, in the RFC 6591 format), off by default
//! (`[reports.failure] enabled`). Sent right after the failure, to each
//! authorised `ruf` destination, at most `max_per_hour` per destination
//! across every host sharing the database, with the header only (and the
//! local parts of addresses redacted) unless configured otherwise.

use super::{
    authorize::{authorize, Authorization},
    deliver::{self, Relay},
    store::Store,
    ReportsConfig,
};
use crate::{
    checks::evidence::{AuthResult, Evidence},
    dns::Dns,
    telemetry::metrics as m,
};
use std::sync::Arc;
use tracing::{info, warn};

/// One failure report to send.
#[derive(Clone)]
pub struct FailureJob {
    pub dns: Dns,
    pub policy_domain: String,
    pub ruf: Vec<String>,
    /// The RFC 5322.From domain.
    pub reported_domain: String,
    pub source_ip: String,
    pub mail_from: String,
    pub arrival: i64,
    /// Our Authentication-Results header field (name and value).
    pub auth_results: String,
    /// Mechanisms that did not authenticate an aligned identity
    /// (`dkim`, `spf`, or `none`).
    pub identity_alignment: String,
    /// (d=, s=, i=) of the failed DKIM signatures of the author's domain.
    pub dkim: Vec<(String, String, String)>,
    /// The header block as received (CRLF).
    pub header: Vec<u8>,
    /// The body, when `include_body` is set.
    pub body: Option<Vec<u8>>,
    pub queue_id: Option<String>,
}

/// The failure report this message calls for, if any: failure reports
/// configured, the record has `ruf` (ignored with `psd=y`, RFC 9991 §2),
/// and `fo` asks for one.
#[allow(clippy::too_many_arguments)]
pub fn job(
    ev: &Evidence,
    row: &super::Row,
    dns: &Dns,
    auth_results: &str,
    raw: &[u8],
    queue_id: Option<String>,
    mail_from: &str,
    include_body: bool,
) -> Option<FailureJob> {
    let record = ev.dmarc.record.as_ref()?;
    if record.ruf.is_empty() || record.psd == Some(true) || !wanted(&record.fo, ev) {
        return None;
    }
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map_or(raw.len(), |i| i + 2);
    let (header, body) = raw.split_at(split);
    let from = ev.dmarc.from_domain.clone().unwrap_or_default();
    let dkim = ev
        .dkim
        .iter()
        .filter(|s| s.result != AuthResult::Pass)
        .filter(|s| {
            let d = s.domain.to_ascii_lowercase();
            d == from || d.ends_with(&format!(".{from}")) || from.ends_with(&format!(".{d}"))
        })
        .map(|s| (s.domain.clone(), s.selector.clone(), s.identity.clone()))
        .collect();
    Some(FailureJob {
        dns: dns.clone(),
        policy_domain: row.published.domain.clone(),
        ruf: record.ruf.clone(),
        reported_domain: from,
        source_ip: row.source_ip.clone(),
        mail_from: mail_from.to_string(),
        arrival: super::now_unix(),
        auth_results: auth_results.trim_end().to_string(),
        identity_alignment: identity_alignment(ev),
        dkim,
        header: header.to_vec(),
        body: include_body.then(|| body.get(2..).unwrap_or_default().to_vec()),
        queue_id,
    })
}

/// Whether `fo` asks for a report on this evaluation (RFC 9989 §4.7): `0`
/// all mechanisms failed to give an aligned pass (DMARC fail); `1` any
/// mechanism did not; `d` a DKIM signature failed, aligned or not; `s`
/// SPF failed, aligned or not. Unknown options are ignored; an `fo` with
/// none known means `0`.
pub fn wanted(fo: &str, ev: &Evidence) -> bool {
    let d = &ev.dmarc;
    let mut known = false;
    let mut want = false;
    for opt in fo.split(':').map(str::trim) {
        match opt {
            "0" => {
                known = true;
                want |= d.result == AuthResult::Fail;
            }
            "1" => {
                known = true;
                want |= !(d.dkim_aligned && d.spf_aligned)
                    && matches!(d.result, AuthResult::Fail | AuthResult::Pass);
            }
            "d" => {
                known = true;
                want |= ev
                    .dkim
                    .iter()
                    .any(|s| matches!(s.result, AuthResult::Fail | AuthResult::PermError));
            }
            "s" => {
                known = true;
                want |= ev
                    .spf_mailfrom
                    .as_ref()
                    .is_some_and(|s| matches!(s.result, AuthResult::Fail | AuthResult::SoftFail));
            }
            _ => {}
        }
    }
    if known {
        want
    } else {
        d.result == AuthResult::Fail
    }
}

/// The mechanisms that failed to authenticate an aligned identity.
pub fn identity_alignment(ev: &Evidence) -> String {
    let mut v = Vec::new();
    if !ev.dmarc.dkim_aligned {
        v.push("dkim");
    }
    if !ev.dmarc.spf_aligned {
        v.push("spf");
    }
    if v.is_empty() {
        "none".into()
    } else {
        v.join(",")
    }
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

/// The report message (RFC 6591 §3 / RFC 5965 §2, RFC 9991 §3), CRLF.
pub fn message(cfg: &ReportsConfig, job: &FailureJob, to: &str, now: i64) -> Vec<u8> {
    let boundary = format!("authmilter-{}-{}", now, std::process::id());
    let mut header = String::from_utf8_lossy(&job.header).into_owned();
    if cfg.failure.redact_local_parts {
        header = redact_local_parts(&header);
    }
    let redact = |s: &str| {
        if cfg.failure.redact_local_parts {
            redact_local_parts(s)
        } else {
            s.to_string()
        }
    };
    let mail_from = redact(&job.mail_from);
    let auth_results = redact(job.auth_results.trim_start());
    let mut m = String::new();
    let from = format!(
        "{} <{}>",
        one_line(&cfg.org_name).replace(['<', '>'], ""),
        cfg.contact
    );
    m.push_str(&format!("From: {from}\r\nTo: <{to}>\r\n"));
    m.push_str(&format!(
        "Subject: DMARC failure report for {} from {}\r\n",
        one_line(&job.reported_domain),
        job.source_ip
    ));
    m.push_str(&format!("Date: {}\r\n", rfc5322_date(now)));
    m.push_str(&format!(
        "Message-ID: <ruf.{now}.{}@{}>\r\n",
        job.queue_id
            .as_deref()
            .unwrap_or("0")
            .replace(|c: char| !c.is_ascii_alphanumeric(), ""),
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
        "This is a DMARC failure report (RFC 9991) for a message claiming to be\r\nfrom {} received from {} at {}.\r\n\r\n",
        one_line(&job.reported_domain),
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
    m.push_str(&format!(
        "Reported-Domain: {}\r\n",
        one_line(&job.reported_domain)
    ));
    m.push_str(&format!(
        "Authentication-Results: {}\r\n",
        one_line(&auth_results)
    ));
    m.push_str("Auth-Failure: dmarc\r\n");
    m.push_str(&format!(
        "Identity-Alignment: {}\r\n",
        job.identity_alignment
    ));
    for (d, s, i) in &job.dkim {
        m.push_str(&format!(
            "DKIM-Domain: {}\r\nDKIM-Identity: {}\r\nDKIM-Selector: {}\r\n",
            one_line(d),
            one_line(i),
            one_line(s)
        ));
    }
    m.push_str("\r\n");
    match &job.body {
        Some(body) if cfg.failure.include_body => {
            m.push_str(&format!(
                "--{boundary}\r\nContent-Type: message/rfc822\r\n\r\n"
            ));
            m.push_str(&header);
            m.push_str(&String::from_utf8_lossy(body));
        }
        _ => {
            m.push_str(&format!(
                "--{boundary}\r\nContent-Type: text/rfc822-headers\r\n\r\n"
            ));
            m.push_str(&header);
        }
    }
    if !m.ends_with("\r\n") {
        m.push_str("\r\n");
    }
    m.push_str(&format!("--{boundary}--\r\n"));
    m.into_bytes()
}

/// Sends failure reports in the background, one task per report.
pub struct Sender {
    cfg: Arc<ReportsConfig>,
}

impl Sender {
    pub fn new(cfg: &ReportsConfig) -> Self {
        Self {
            cfg: Arc::new(cfg.clone()),
        }
    }

    /// Starts sending `job`; `store` holds the fleet-wide rate limit (no
    /// store yet: nothing is sent, since the limit cannot be kept).
    pub fn queue(&self, job: FailureJob, store: Option<Arc<dyn Store>>) {
        let cfg = self.cfg.clone();
        tokio::spawn(async move { send(&cfg, job, store).await });
    }
}

async fn send(cfg: &ReportsConfig, job: FailureJob, store: Option<Arc<dyn Store>>) {
    let Some(store) = store else {
        m::failure_report("failed");
        warn!(
            "DMARC failure report not sent: the report database is not open (rate limit unknown)"
        );
        return;
    };
    let relay = match Relay::parse(&cfg.smtp_relay, cfg.smtp_timeout) {
        Ok(r) => r,
        Err(e) => {
            m::failure_report("failed");
            warn!("DMARC failure report not sent: reports.smtp_relay: {e}");
            return;
        }
    };
    for uri in &job.ruf {
        let address = match authorize(&job.dns, &job.policy_domain, uri, "ruf").await {
            Authorization::Allowed { address } => address,
            Authorization::Refused(why) | Authorization::Temporary(why) => {
                m::failure_report("unauthorized");
                info!(
                    domain = job.policy_domain.as_str(),
                    "DMARC failure report not sent to {uri}: {why}"
                );
                continue;
            }
        };
        let now = super::now_unix();
        match store
            .failure_slot(&address, super::bucket_of(now), cfg.failure.max_per_hour)
            .await
        {
            Ok(true) => {}
            Ok(false) => {
                m::failure_report("rate_limited");
                continue;
            }
            Err(e) => {
                m::failure_report("failed");
                warn!("DMARC failure report not sent to {address}: rate limit unknown: {e}");
                continue;
            }
        }
        let raw = message(cfg, &job, &address, now);
        match deliver::send_raw(&relay, &cfg.contact, &address, &raw).await {
            Ok(()) => {
                m::failure_report("sent");
                info!(
                    domain = job.policy_domain.as_str(),
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

#[cfg(test)]
mod tests {
    use super::*;

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
