//! DMARC reports: aggregate (RFC 9990) and failure (RFC 9991).
//!
//! The data flow:
//!
//! ```text
//! session (end of message) ─observe()─▶ Row ─▶ Recorder (bounded queue, never waits)
//!        ─▶ writer task: batches, sums equal rows per hour ─▶ Store (SQLite | PostgreSQL)
//! authmilter report ─▶ run::report(): lease per domain ─▶ aggregate ─▶ xml ─▶ gzip
//!        ─▶ deliver (authorised mailto: destinations over SMTP, or files) ─▶ marked sent
//! ```
//!
//! - [`observe`]: what RFC 9990 needs from one message (pure).
//! - [`store`]: the one storage interface and its two backends.
//! - [`recorder`]: the daemon side: queue, batched writes, lost-record counts.
//! - [`aggregate`], [`xml`]: rows grouped per RFC 9990 §3 and the XML document.
//! - [`authorize`]: external destination verification (RFC 9990 §4).
//! - [`deliver`]: file names, gzip, the report message and SMTP submission.
//! - [`run`]: one `authmilter report` run.
//! - [`failure`]: RFC 9991 failure reports (off by default).

pub mod aggregate;
pub mod authorize;
pub mod deliver;
pub mod failure;
pub mod observe;
pub mod recorder;
pub mod run;
pub mod store;
pub mod xml;

pub use observe::{observe, Envelope};
pub use recorder::Recorder;
pub use store::{Store, StoreError};

use serde::{Deserialize, Serialize};
use std::time::Duration;

/// Seconds in one stored bucket: rows are summed per hour, so `--since` and
/// `--until` act on whole hours.
pub const BUCKET_SECS: i64 = 3600;

/// The `[reports]` settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReportsConfig {
    /// Record evaluated messages (`[reports] enabled`).
    pub enabled: bool,
    /// `sqlite:/path` or `postgres://…`.
    pub database: String,
    /// Reporting organisation (`org_name`); the authserv-id by default.
    pub org_name: String,
    /// Contact address (`email` in the report, and the From of report mail).
    pub contact: String,
    /// The receiver's domain in file names and Subject (`Submitter:`).
    pub submitter: String,
    /// Records queued for the writer at most; past it they are counted as lost.
    pub queue_size: usize,
    /// Records written per batch at most.
    pub batch_size: usize,
    /// Records older than this are deleted.
    pub retention: Duration,
    /// The SMTP relay reports are submitted to (`host:port`).
    pub smtp_relay: String,
    /// How long one SMTP submission may take.
    pub smtp_timeout: Duration,
    /// Reports larger than this (compressed) are not sent (logged; RFC 9990
    /// sets no limit, mailbox providers do).
    pub max_report_bytes: usize,
    /// Run `report` once a day from the daemon (for hosts without cron).
    pub schedule_daily: bool,
    /// Failure reports (RFC 9991).
    pub failure: FailureConfig,
}

/// The `[reports.failure]` settings (RFC 9991).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FailureConfig {
    pub enabled: bool,
    /// Reports per destination per hour at most, across every host sharing
    /// the database.
    pub max_per_hour: u32,
    /// Reports per hour at most in all, across every host.
    pub max_total_per_hour: u32,
    /// Include the message body (`full`) or only its header (`headers`).
    pub include_body: bool,
    /// Replace local parts of addresses in the copied header with `redacted`.
    pub redact_local_parts: bool,
}

impl ReportsConfig {
    /// The defaults for an authserv-id.
    pub fn defaults(authserv_id: &str) -> Self {
        Self {
            enabled: true,
            database: "sqlite:/var/lib/authmilter/reports.sqlite".into(),
            org_name: authserv_id.into(),
            contact: format!("postmaster@{authserv_id}"),
            submitter: authserv_id.into(),
            queue_size: 65_536,
            batch_size: 1_000,
            retention: Duration::from_secs(31 * 86_400),
            smtp_relay: "127.0.0.1:25".into(),
            smtp_timeout: Duration::from_secs(60),
            max_report_bytes: 10 * 1024 * 1024,
            schedule_daily: false,
            failure: FailureConfig {
                enabled: false,
                max_per_hour: 10,
                max_total_per_hour: 200,
                include_body: false,
                redact_local_parts: true,
            },
        }
    }
}

/// The published policy as RFC 9990 `policy_published` reports it, plus the
/// `rua` destinations of the record.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Published {
    /// The domain at which the record was found.
    pub domain: String,
    pub p: String,
    pub sp: Option<String>,
    pub np: Option<String>,
    /// `r` or `s`.
    pub adkim: String,
    pub aspf: String,
    pub fo: String,
    pub testing: bool,
    /// `psd=y` (`Some(true)`), `psd=n`, or absent.
    pub psd: Option<bool>,
    pub rua: Vec<String>,
}

/// A policy override reason (RFC 9990 `PolicyOverrideType` and comment).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Reason {
    pub kind: String,
    pub comment: Option<String>,
}

/// One DKIM result as reported (`auth_results/dkim`).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct DkimResult {
    pub domain: String,
    pub selector: String,
    pub result: String,
}

/// The SPF result as reported (`auth_results/spf`).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct SpfResult {
    pub domain: String,
    /// `mfrom` (the only scope RFC 9990 defines) or `helo` (reported
    /// without a scope).
    pub scope: String,
    pub result: String,
}

/// What one message contributes to an aggregate report: one RFC 9990
/// record (row, identifiers, auth_results) with a count of one. Equal rows
/// are summed before they are stored and again when a report is built.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Row {
    pub published: Published,
    pub source_ip: String,
    pub header_from: String,
    pub envelope_from: Option<String>,
    /// `none`, `pass`, `quarantine` or `reject` (`ActionDispositionType`).
    pub disposition: String,
    pub dkim_aligned: bool,
    pub spf_aligned: bool,
    pub reasons: Vec<Reason>,
    pub dkim: Vec<DkimResult>,
    pub spf: Option<SpfResult>,
}

impl Row {
    /// What is stored for this row: a stable key for equal rows (the hex
    /// SHA-256 of the canonical JSON) and that JSON text.
    pub fn key_and_json(&self) -> (String, String) {
        use sha2::Digest;
        let json = serde_json::to_string(self).expect("rows serialize");
        (hex::encode(sha2::Sha256::digest(json.as_bytes())), json)
    }
}

/// The start of the bucket holding `unix` seconds.
pub fn bucket_of(unix: i64) -> i64 {
    unix.div_euclid(BUCKET_SECS) * BUCKET_SECS
}

/// Seconds since the epoch now.
pub fn now_unix() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}
