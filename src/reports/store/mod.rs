//! The one storage interface for DMARC report data ([`Store`]) and its two
//! backends: [`sqlite`] (embedded, one host) and [`postgres`] (several MX
//! hosts writing to one database, one of them reporting).
//!
//! The model, the same in both:
//! - `dmarc_rows`: one row per (hour, [`Row`]) with a count. Writers add to
//!   the open row (`report_id` NULL); a report claims rows by setting
//!   `report_id`, so later messages of the same hour start a new open row
//!   and are reported next time. Nothing is counted twice, nothing lost.
//! - `reports`: a claimed report (`claimed`), built and waiting for delivery
//!   (`pending`, with its gzipped body and the destinations still owed) or
//!   `done`. A claimed report whose building was interrupted is rebuilt
//!   from its rows by the next run.
//! - `report_leases`: one reporter per policy domain at a time (a row with
//!   an expiry, taken with one atomic upsert), so two hosts running
//!   `authmilter report` at once cannot send the same period twice.
//! - `failure_rate`: failure reports per destination per hour, across hosts.

pub mod postgres;
pub mod sqlite;

use super::Row;
use async_trait::async_trait;
use std::sync::Arc;

/// A storage failure (connection, SQL, schema).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct StoreError(pub String);

impl StoreError {
    pub fn new(e: impl std::fmt::Display) -> Self {
        Self(e.to_string())
    }
}

/// One stored row: its hour and the number of messages it stands for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stored {
    pub bucket: i64,
    pub row: Row,
    pub count: u64,
}

/// A report's stored state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReportState {
    pub id: String,
    pub domain: String,
    pub begin: i64,
    /// The last second covered (inclusive, as RFC 9990's `end`).
    pub end: i64,
    /// `None` while only claimed (not yet built).
    pub built: Option<Built>,
}

/// A built report: what is delivered, and to whom it is still owed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Built {
    pub filename: String,
    /// The gzipped XML.
    pub body: Vec<u8>,
    /// Destinations (`mailto:` URIs) not yet delivered to.
    pub owed: Vec<String>,
}

/// Rows and bytes the store holds (for sizing and the retention benchmark).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Size {
    pub rows: u64,
    pub bytes: u64,
}

/// What a prune removed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Pruned {
    pub rows: u64,
    /// Of those, rows never reported (their domain had no deliverable report).
    pub unreported_rows: u64,
    pub reports: u64,
}

/// The storage interface both backends implement and the same tests cover
/// (`tests/reports.rs`).
#[async_trait]
pub trait Store: Send + Sync {
    /// Adds counts to the open rows of their hours (one transaction).
    async fn add(&self, rows: &[(i64, Row, u64)]) -> Result<(), StoreError>;
    /// Policy domains with unreported rows in `[since, until)`.
    async fn unreported_domains(&self, since: i64, until: i64) -> Result<Vec<String>, StoreError>;
    /// Policy domains with reports not yet done (owed deliveries).
    async fn open_domains(&self) -> Result<Vec<String>, StoreError>;
    /// The hours holding unreported rows of `domain` before `until`.
    async fn unreported_buckets(&self, domain: &str, until: i64) -> Result<Vec<i64>, StoreError>;
    /// Takes (or renews) the reporting lease of `domain` for `secs`; false
    /// while another holder's lease runs.
    async fn lease(&self, domain: &str, holder: &str, secs: i64) -> Result<bool, StoreError>;
    /// Gives the lease back.
    async fn release(&self, domain: &str, holder: &str) -> Result<(), StoreError>;
    /// Claims the unreported rows of `domain` in `[since, until)` for a new
    /// report `id` covering `begin..=end`, in one transaction; the number of
    /// rows claimed (0: nothing to report, and no report is recorded).
    async fn claim(
        &self,
        domain: &str,
        since: i64,
        until: i64,
        id: &str,
        range: (i64, i64),
    ) -> Result<u64, StoreError>;
    /// The unreported rows of `domain` in `[since, until)`, unchanged (dry runs).
    async fn unreported_rows(
        &self,
        domain: &str,
        since: i64,
        until: i64,
    ) -> Result<Vec<Stored>, StoreError>;
    /// The rows claimed by report `id`.
    async fn claimed(&self, id: &str) -> Result<Vec<Stored>, StoreError>;
    /// Reports of `domain` not yet done (claimed or pending).
    async fn open_reports(&self, domain: &str) -> Result<Vec<ReportState>, StoreError>;
    /// Records the built report.
    async fn save_built(&self, id: &str, built: &Built) -> Result<(), StoreError>;
    /// Records what is still owed of report `id`; with nothing owed it is done.
    async fn set_owed(&self, id: &str, owed: &[String]) -> Result<(), StoreError>;
    /// Deletes rows of hours before `before`, and done reports created before it.
    async fn prune(&self, before: i64) -> Result<Pruned, StoreError>;
    /// Takes one failure report slot of `destination` in `hour`; false when
    /// `max` were already sent in that hour (by any host).
    async fn failure_slot(
        &self,
        destination: &str,
        hour: i64,
        max: u32,
    ) -> Result<bool, StoreError>;
    /// Rows held, and an estimate of the bytes they take.
    async fn size(&self) -> Result<Size, StoreError>;
}

/// Opens the store named by `[reports] database`: `sqlite:PATH` or
/// `postgres://…` / `postgresql://…`. The schema is created or migrated.
///
/// # Errors
///
/// When the database cannot be opened, reached or migrated.
pub async fn open(url: &str) -> Result<Arc<dyn Store>, StoreError> {
    if let Some(path) = url.strip_prefix("sqlite:") {
        let path = path.strip_prefix("//").unwrap_or(path);
        Ok(Arc::new(sqlite::Sqlite::open(path).await?))
    } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Ok(Arc::new(postgres::Postgres::connect(url).await?))
    } else {
        Err(StoreError(format!(
            "unknown database `{url}`: use sqlite:/path or postgres://user@host/db"
        )))
    }
}

/// Whether `url` names a database this build can open (for config checks).
pub fn valid_url(url: &str) -> Result<(), String> {
    if let Some(path) = url.strip_prefix("sqlite:") {
        let path = path.strip_prefix("//").unwrap_or(path);
        if path.is_empty() {
            return Err(
                "sqlite: needs a file path, e.g. sqlite:/var/lib/authmilter/reports.sqlite".into(),
            );
        }
        Ok(())
    } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        url.parse::<tokio_postgres::Config>()
            .map(|_| ())
            .map_err(|e| format!("invalid PostgreSQL URL: {e}"))
    } else {
        Err("use sqlite:/path or postgres://user@host/db".into())
    }
}

/// The schema steps both backends apply, in order; `{id}`, `{int}` and
/// `{blob}` stand for each backend's own column types.
const SCHEMA: &[&str] = &["
CREATE TABLE dmarc_rows (
    id {id},
    bucket {int} NOT NULL,
    policy_domain TEXT NOT NULL,
    row_key TEXT NOT NULL,
    row_json TEXT NOT NULL,
    count {int} NOT NULL,
    report_id TEXT
);
CREATE UNIQUE INDEX dmarc_rows_open ON dmarc_rows (bucket, row_key) WHERE report_id IS NULL;
CREATE INDEX dmarc_rows_domain ON dmarc_rows (policy_domain, bucket);
CREATE INDEX dmarc_rows_report ON dmarc_rows (report_id);
CREATE TABLE report_leases (
    policy_domain TEXT PRIMARY KEY,
    holder TEXT NOT NULL,
    expires {int} NOT NULL
);
CREATE TABLE reports (
    id TEXT PRIMARY KEY,
    policy_domain TEXT NOT NULL,
    begin_ts {int} NOT NULL,
    end_ts {int} NOT NULL,
    state TEXT NOT NULL,
    filename TEXT,
    body {blob},
    owed TEXT,
    created {int} NOT NULL
);
CREATE INDEX reports_domain ON reports (policy_domain, state);
CREATE TABLE failure_rate (
    destination TEXT NOT NULL,
    bucket {int} NOT NULL,
    count {int} NOT NULL,
    PRIMARY KEY (destination, bucket)
);
"];

/// The schema steps with one backend's column types.
pub(crate) fn migrations(id: &str, int: &str, blob: &str) -> Vec<String> {
    SCHEMA
        .iter()
        .map(|s| {
            s.replace("{id}", id)
                .replace("{int}", int)
                .replace("{blob}", blob)
        })
        .collect()
}

/// Parses a stored row's JSON.
pub(crate) fn parse_row(json: &str) -> Result<Row, StoreError> {
    serde_json::from_str(json).map_err(|e| StoreError(format!("stored row unreadable: {e}")))
}

/// Encodes a destination list.
pub(crate) fn list_json(list: &[String]) -> String {
    serde_json::to_string(list).expect("strings serialize")
}

pub(crate) fn parse_list(json: &str) -> Vec<String> {
    serde_json::from_str(json).unwrap_or_default()
}
