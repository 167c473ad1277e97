//! Prometheus metrics: every metric's name, help text and unit, the recorder
//! and the `/metrics` endpoint (`[metrics] address`).
//!
//! The other layers record through the small functions below ([`message`],
//! [`result`], [`dns_cache`], [`dns_query`], [`check`], …), which call the
//! `metrics` facade macros once per label value and keep the handle, so a
//! recording is an atomic add, not a registry lookup (about 0.3 µs a call
//! otherwise, ~6 µs a message). Without `[metrics] address` nothing is
//! installed and each function returns after one atomic load. Rare events
//! (panics, reloads, the memory budget) use the macros directly. Labels are
//! low-cardinality words from fixed sets: never a domain, an address or a
//! queue id. The gauges (open connections, in-flight messages, buffered
//! bytes) are read from [`crate::stats::Stats`] when scraped, so they cost
//! the hot path nothing.
//!
//! The endpoint is a small HTTP/1.1 handler of its own (GET or HEAD
//! `/metrics`, one request per connection): the exporter's listener would
//! bring in an HTTP stack and has no hook to refresh the gauges at scrape
//! time. This module depends on nothing else in the crate, so every layer
//! may use it.

use metrics::{describe_counter, describe_gauge, describe_histogram, Counter, Histogram, Unit};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use std::{
    sync::{
        atomic::{AtomicBool, Ordering::Relaxed},
        Arc, OnceLock,
    },
    time::{Duration, Instant},
};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
};

/// Messages by verdict (`verdict`: accept, tag, quarantine, tempfail, reject),
/// counted when the verdict is given (end of message, or MAIL FROM).
pub const MESSAGES: &str = "authmilter_messages_total";
/// Results by `method` (spf, spf_helo, dkim, arc, dkim2, dmarc, iprev) and `result`.
pub const RESULTS: &str = "authmilter_results_total";
/// Verdicts reported but not enforced, by `reason` (trusted_network,
/// authenticated, monitor_mode, monitor_rule).
pub const ENFORCEMENT_SKIPPED: &str = "authmilter_enforcement_skipped_total";
/// DNS queries sent (cache misses), by `type` and `outcome` (ok, nxdomain,
/// nodata, servfail, refused, timeout, error).
pub const DNS_QUERIES: &str = "authmilter_dns_queries_total";
/// Seconds per DNS query sent, by `type` (cache hits are not measured).
pub const DNS_QUERY_DURATION: &str = "authmilter_dns_query_duration_seconds";
/// DNS lookups answered from the cache, by `type`.
pub const DNS_CACHE_HITS: &str = "authmilter_dns_cache_hits_total";
/// DNS lookups not in the cache (each becomes a query), by `type`.
pub const DNS_CACHE_MISSES: &str = "authmilter_dns_cache_misses_total";
/// Seconds from CONNECT (the first message of a connection) or MAIL FROM
/// (later messages) to the verdict at end of message.
pub const MESSAGE_DURATION: &str = "authmilter_message_duration_seconds";
/// Seconds from end of message to the verdict: the wait the client sees.
pub const EOM_DURATION: &str = "authmilter_eom_duration_seconds";
/// Seconds each check took, by `check` (iprev, spf, prefetch: DKIM, ARC and
/// DKIM2 keys and DMARC policy lookups from end of headers, dkim: DKIM, ARC
/// and DKIM2 verification of the parsed message, dmarc).
pub const CHECK_DURATION: &str = "authmilter_check_duration_seconds";
/// Milter connections open now.
pub const CONNECTIONS_OPEN: &str = "authmilter_connections_open";
/// Milter connections negotiated since start.
pub const CONNECTIONS: &str = "authmilter_connections_total";
/// Messages between MAIL FROM and their verdict or abort, now.
pub const MESSAGES_IN_FLIGHT: &str = "authmilter_messages_in_flight";
/// Bytes buffered for in-flight messages, now (bounded by
/// `limits.max_buffered_bytes`).
pub const BUFFERED_BYTES: &str = "authmilter_buffered_bytes";
/// Messages tempfailed because `limits.max_buffered_bytes` was reached.
pub const OVER_BUDGET: &str = "authmilter_messages_over_budget_total";
/// Internal errors (panics) caught and isolated to one message, by `stage`.
pub const PANICS: &str = "authmilter_panics_total";
/// SIGHUP reloads by `outcome` (ok, refused).
pub const CONFIG_RELOADS: &str = "authmilter_config_reloads_total";
/// DMARC failures whose disposition local policy changed, by `reason`
/// (trusted_forwarder: a trusted ARC sealer recorded dmarc=pass).
pub const DMARC_OVERRIDES: &str = "authmilter_dmarc_overrides_total";
/// DMARC report records by `outcome`: stored; lost because the queue was
/// full (queue_full), the database failed (storage) or the daemon stopped
/// before they were written (shutdown).
pub const REPORT_RECORDS: &str = "authmilter_report_records_total";
/// RFC 9991 failure reports by `outcome` (sent, rate_limited,
/// unauthorized, failed, lost).
pub const FAILURE_REPORTS: &str = "authmilter_failure_reports_total";
/// The `outcome` values of [`REPORT_RECORDS`].
pub const RECORD_OUTCOMES: [&str; 4] = ["stored", "queue_full", "storage", "shutdown"];
/// The `outcome` values of [`FAILURE_REPORTS`].
pub const FAILURE_OUTCOMES: [&str; 5] = ["sent", "rate_limited", "unauthorized", "failed", "lost"];
/// Always 1, with the `version` label.
pub const BUILD_INFO: &str = "authmilter_build_info";

/// Histogram buckets (seconds) for every `_seconds` metric.
pub const BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
    60.0,
];

/// The `verdict` values of [`MESSAGES`].
pub const VERDICTS: [&str; 5] = ["accept", "tag", "quarantine", "tempfail", "reject"];
/// The `reason` values of [`ENFORCEMENT_SKIPPED`].
pub const SKIP_REASONS: [&str; 4] = [
    "trusted_network",
    "authenticated",
    "monitor_mode",
    "monitor_rule",
];
/// The `method` values of [`RESULTS`].
pub const METHODS: [&str; 7] = ["spf", "spf_helo", "dkim", "arc", "dkim2", "dmarc", "iprev"];
/// The `result` values of [`RESULTS`].
pub const RESULT_WORDS: [&str; 8] = [
    "pass",
    "fail",
    "softfail",
    "neutral",
    "none",
    "policy",
    "temperror",
    "permerror",
];
/// The `type` values of the DNS metrics.
pub const DNS_TYPES: [&str; 7] = ["A", "AAAA", "TXT", "MX", "PTR", "CNAME", "other"];
/// The `outcome` values of [`DNS_QUERIES`].
pub const DNS_OUTCOMES: [&str; 7] = [
    "ok", "nxdomain", "nodata", "servfail", "refused", "timeout", "error",
];
/// The `check` values of [`CHECK_DURATION`].
pub const CHECKS: [&str; 6] = ["iprev", "spf", "prefetch", "dkim", "dmarc", "bimi"];

/// How often histogram samples are folded into their buckets when nobody
/// scrapes (bounds the recorder's memory).
const UPKEEP: Duration = Duration::from_secs(5);
/// Concurrent scrapes served; further connections are closed at once.
const MAX_SCRAPES: usize = 8;
/// A scrape's request must arrive, and its answer be written, within this.
const SCRAPE_TIMEOUT: Duration = Duration::from_secs(10);

/// Installs the Prometheus recorder as the global `metrics` recorder and
/// describes every metric. Call once, from within the tokio runtime, before
/// traffic.
///
/// # Errors
///
/// Fails when a global recorder is already installed.
pub fn install() -> Result<PrometheusHandle, String> {
    let recorder = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), BUCKETS)
        .map_err(|e| e.to_string())?
        .build_recorder();
    let handle = recorder.handle();
    metrics::set_global_recorder(recorder).map_err(|e| e.to_string())?;
    ON.store(true, Relaxed);
    describe();
    // Known label values start at 0, so rates work from the first scrape.
    for v in VERDICTS {
        message(v, 0);
    }
    for r in SKIP_REASONS {
        skipped(r, 0);
    }
    for o in ["ok", "refused"] {
        metrics::counter!(CONFIG_RELOADS, "outcome" => o).absolute(0);
    }
    metrics::counter!(OVER_BUDGET).absolute(0);
    metrics::counter!(DMARC_OVERRIDES, "reason" => "trusted_forwarder").absolute(0);
    for o in RECORD_OUTCOMES {
        metrics::counter!(REPORT_RECORDS, "outcome" => o).absolute(0);
    }
    for o in FAILURE_OUTCOMES {
        metrics::counter!(FAILURE_REPORTS, "outcome" => o).absolute(0);
    }
    connection(0);
    metrics::gauge!(BUILD_INFO, "version" => env!("CARGO_PKG_VERSION")).set(1.0);
    let h = handle.clone();
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(UPKEEP).await;
            h.run_upkeep();
        }
    });
    Ok(handle)
}

static ON: AtomicBool = AtomicBool::new(false);

/// Whether a recorder is installed (`[metrics] address` is set).
#[inline]
pub fn enabled() -> bool {
    ON.load(Relaxed)
}

/// The start of a measurement, when metrics are on.
#[inline]
pub fn timer() -> Option<Instant> {
    enabled().then(Instant::now)
}

/// One handle per value of a fixed label set (or per pair of them),
/// registered through the facade on first use.
struct Cells<T, const N: usize>([OnceLock<T>; N]);

impl<T, const N: usize> Cells<T, N> {
    const fn new() -> Self {
        Self([const { OnceLock::new() }; N])
    }

    /// The handle at `i`, made by `make` the first time; `None` past the set.
    fn get(&self, i: Option<usize>, make: impl FnOnce() -> T) -> Option<&T> {
        Some(self.0.get(i?)?.get_or_init(make))
    }
}

fn pos(set: &[&str], v: &str) -> Option<usize> {
    set.iter().position(|x| *x == v)
}

/// Both positions, as one index into a `set_a × set_b` table.
fn pos2(a: &[&str], va: &str, b: &[&str], vb: &str) -> Option<usize> {
    Some(pos(a, va)? * b.len() + pos(b, vb)?)
}

static MESSAGE_CELLS: Cells<Counter, 5> = Cells::new();
static RESULT_CELLS: Cells<Counter, 56> = Cells::new();
static SKIPPED_CELLS: Cells<Counter, 4> = Cells::new();
static CACHE_HIT_CELLS: Cells<Counter, 7> = Cells::new();
static CACHE_MISS_CELLS: Cells<Counter, 7> = Cells::new();
static QUERY_CELLS: Cells<Counter, 49> = Cells::new();
static QUERY_TIME_CELLS: Cells<Histogram, 7> = Cells::new();
static CHECK_CELLS: Cells<Histogram, 6> = Cells::new();
static DURATION_CELLS: Cells<Histogram, 2> = Cells::new();
static CONNECTION_CELL: Cells<Counter, 1> = Cells::new();

/// Adds `n` to `c`, or to the series registered through the facade when
/// the value is outside the fixed set (slower, still counted).
fn add(c: Option<&Counter>, n: u64, slow: impl FnOnce() -> Counter) {
    match c {
        Some(c) => c.increment(n),
        None => slow().increment(n),
    }
}

fn observe(h: Option<&Histogram>, d: Duration, slow: impl FnOnce() -> Histogram) {
    match h {
        Some(h) => h.record(d),
        None => slow().record(d),
    }
}

/// `n` messages with this verdict ([`MESSAGES`]).
pub fn message(verdict: &'static str, n: u64) {
    if !enabled() {
        return;
    }
    let make = || metrics::counter!(MESSAGES, "verdict" => verdict);
    add(MESSAGE_CELLS.get(pos(&VERDICTS, verdict), make), n, make);
}

/// One result of `method` ([`RESULTS`]).
pub fn result(method: &'static str, result: &'static str) {
    if !enabled() {
        return;
    }
    let make = || metrics::counter!(RESULTS, "method" => method, "result" => result);
    let i = pos2(&METHODS, method, &RESULT_WORDS, result);
    add(RESULT_CELLS.get(i, make), 1, make);
}

/// `n` verdicts not enforced for `reason` ([`ENFORCEMENT_SKIPPED`]).
pub fn skipped(reason: &'static str, n: u64) {
    if !enabled() {
        return;
    }
    let make = || metrics::counter!(ENFORCEMENT_SKIPPED, "reason" => reason);
    add(SKIPPED_CELLS.get(pos(&SKIP_REASONS, reason), make), n, make);
}

/// `n` report records with this outcome ([`REPORT_RECORDS`]); rare
/// enough (once per batch) for the macro.
pub fn report_records(outcome: &'static str, n: u64) {
    if enabled() && n > 0 {
        metrics::counter!(REPORT_RECORDS, "outcome" => outcome).increment(n);
    }
}

/// One failure report with this outcome ([`FAILURE_REPORTS`]).
pub fn failure_report(outcome: &'static str) {
    if enabled() {
        metrics::counter!(FAILURE_REPORTS, "outcome" => outcome).increment(1);
    }
}

/// `n` milter connections negotiated ([`CONNECTIONS`]).
pub fn connection(n: u64) {
    if !enabled() {
        return;
    }
    let make = || metrics::counter!(CONNECTIONS);
    add(CONNECTION_CELL.get(Some(0), make), n, make);
}

/// A DNS lookup of type `rtype` (one of [`DNS_TYPES`]) answered from the
/// cache or not.
pub fn dns_cache(rtype: &'static str, hit: bool) {
    if !enabled() {
        return;
    }
    let i = pos(&DNS_TYPES, rtype);
    if hit {
        let make = || metrics::counter!(DNS_CACHE_HITS, "type" => rtype);
        add(CACHE_HIT_CELLS.get(i, make), 1, make);
    } else {
        let make = || metrics::counter!(DNS_CACHE_MISSES, "type" => rtype);
        add(CACHE_MISS_CELLS.get(i, make), 1, make);
    }
}

/// A DNS query sent, its outcome (one of [`DNS_OUTCOMES`]) and how long it
/// took since `started` ([`timer`]).
pub fn dns_query(rtype: &'static str, outcome: &'static str, started: Option<Instant>) {
    let Some(started) = started.filter(|_| enabled()) else {
        return;
    };
    let make = || metrics::counter!(DNS_QUERIES, "type" => rtype, "outcome" => outcome);
    add(
        QUERY_CELLS.get(pos2(&DNS_TYPES, rtype, &DNS_OUTCOMES, outcome), make),
        1,
        make,
    );
    let make = || metrics::histogram!(DNS_QUERY_DURATION, "type" => rtype);
    observe(
        QUERY_TIME_CELLS.get(pos(&DNS_TYPES, rtype), make),
        started.elapsed(),
        make,
    );
}

/// How long `check` (one of [`CHECKS`]) took since `started` ([`timer`]).
pub fn check(check: &'static str, started: Option<Instant>) {
    let Some(started) = started.filter(|_| enabled()) else {
        return;
    };
    let make = || metrics::histogram!(CHECK_DURATION, "check" => check);
    observe(
        CHECK_CELLS.get(pos(&CHECKS, check), make),
        started.elapsed(),
        make,
    );
}

/// A message's time to its verdict from `since`, and from end of message.
pub fn message_durations(since: Instant, eom: Instant) {
    if !enabled() {
        return;
    }
    let now = Instant::now();
    let total = || metrics::histogram!(MESSAGE_DURATION);
    observe(
        DURATION_CELLS.get(Some(0), total),
        now.duration_since(since),
        total,
    );
    let eom_h = || metrics::histogram!(EOM_DURATION);
    observe(
        DURATION_CELLS.get(Some(1), eom_h),
        now.duration_since(eom),
        eom_h,
    );
}

fn describe() {
    describe_counter!(
        MESSAGES,
        Unit::Count,
        "Messages by verdict (accept, tag, quarantine, tempfail, reject), at end of message or MAIL FROM."
    );
    describe_counter!(
        RESULTS,
        Unit::Count,
        "Authentication results of messages by method (spf, spf_helo, dkim, dmarc, iprev) and result; dkim is the best result of all signatures."
    );
    describe_counter!(
        ENFORCEMENT_SKIPPED,
        Unit::Count,
        "Verdicts reported but not enforced, by reason (trusted_network, authenticated, monitor_mode, monitor_rule)."
    );
    describe_counter!(
        DNS_QUERIES,
        Unit::Count,
        "DNS queries sent (cache misses) by record type and outcome (ok, nxdomain, nodata, servfail, refused, timeout, error)."
    );
    describe_histogram!(
        DNS_QUERY_DURATION,
        Unit::Seconds,
        "Duration of DNS queries sent, by record type (cache hits are not measured)."
    );
    describe_counter!(
        DNS_CACHE_HITS,
        Unit::Count,
        "DNS lookups answered from the cache, by record type."
    );
    describe_counter!(
        DNS_CACHE_MISSES,
        Unit::Count,
        "DNS lookups not found in the cache, by record type."
    );
    describe_histogram!(
        MESSAGE_DURATION,
        Unit::Seconds,
        "Time from CONNECT (first message of a connection) or MAIL FROM (later messages) to the verdict."
    );
    describe_histogram!(
        EOM_DURATION,
        Unit::Seconds,
        "Time from end of message to the verdict (the wait the SMTP client sees)."
    );
    describe_histogram!(
        CHECK_DURATION,
        Unit::Seconds,
        "Duration of each check: iprev, spf, prefetch (DKIM keys and DMARC policy, from end of headers), dkim, dmarc, bimi (up to bimi.wait)."
    );
    describe_gauge!(CONNECTIONS_OPEN, Unit::Count, "Milter connections open.");
    describe_counter!(
        CONNECTIONS,
        Unit::Count,
        "Milter connections negotiated since start."
    );
    describe_gauge!(
        MESSAGES_IN_FLIGHT,
        Unit::Count,
        "Messages between MAIL FROM and their verdict or abort."
    );
    describe_gauge!(
        BUFFERED_BYTES,
        Unit::Bytes,
        "Bytes buffered for in-flight messages (bounded by limits.max_buffered_bytes)."
    );
    describe_counter!(
        OVER_BUDGET,
        Unit::Count,
        "Messages tempfailed because limits.max_buffered_bytes was reached."
    );
    describe_counter!(
        PANICS,
        Unit::Count,
        "Internal errors (panics) caught and isolated to one message (answered with tempfail), by milter stage."
    );
    describe_counter!(
        DMARC_OVERRIDES,
        "DMARC failures whose disposition local policy changed, by reason (trusted_forwarder: a trusted ARC sealer recorded dmarc=pass)"
    );
    describe_counter!(
        REPORT_RECORDS,
        Unit::Count,
        "DMARC report records by outcome (stored; lost: queue_full, storage, shutdown)."
    );
    describe_counter!(
        FAILURE_REPORTS,
        Unit::Count,
        "RFC 9991 failure reports by outcome (sent, rate_limited, unauthorized, failed, lost)."
    );
    describe_counter!(
        CONFIG_RELOADS,
        Unit::Count,
        "Configuration reloads on SIGHUP by outcome (ok, refused: the old configuration stays)."
    );
    describe_gauge!(
        BUILD_INFO,
        Unit::Count,
        "Always 1; the version label is the running version."
    );
}

/// Serves `GET /metrics` on `listener` until the task is dropped;
/// `refresh` runs before each rendering (it sets the gauges).
pub async fn serve(
    listener: TcpListener,
    handle: PrometheusHandle,
    refresh: impl Fn() + Send + Sync + 'static,
) {
    let refresh = Arc::new(refresh);
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_SCRAPES));
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(s) => s,
            Err(e) => {
                tracing::debug!("metrics: accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            continue;
        };
        let (handle, refresh) = (handle.clone(), refresh.clone());
        tokio::spawn(async move {
            let _permit = permit;
            let served = tokio::time::timeout(SCRAPE_TIMEOUT, answer(stream, &handle, &*refresh));
            if let Ok(Err(e)) = served.await {
                tracing::debug!("metrics: {e}");
            }
        });
    }
}

/// Reads one request head (at most 8 KiB) and answers it.
async fn answer(
    mut stream: TcpStream,
    handle: &PrometheusHandle,
    refresh: &(dyn Fn() + Send + Sync),
) -> std::io::Result<()> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") && !buf.windows(2).any(|w| w == b"\n\n") {
        if buf.len() > 8192 {
            return reply(
                &mut stream,
                "431 Request Header Fields Too Large",
                "",
                false,
            )
            .await;
        }
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Ok(());
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let head = String::from_utf8_lossy(&buf);
    let mut parts = head.lines().next().unwrap_or("").split_whitespace();
    let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let path = target.split('?').next().unwrap_or("");
    let with_body = method != "HEAD";
    match (method, path) {
        ("GET" | "HEAD", "/metrics") => {
            refresh();
            let body = handle.render();
            reply(&mut stream, "200 OK", &body, with_body).await
        }
        ("GET" | "HEAD", "/") => {
            reply(
                &mut stream,
                "200 OK",
                "authmilter: metrics at /metrics\n",
                with_body,
            )
            .await
        }
        (_, "/metrics" | "/") => reply(&mut stream, "405 Method Not Allowed", "", with_body).await,
        _ => reply(&mut stream, "404 Not Found", "not found\n", with_body).await,
    }
}

async fn reply(
    stream: &mut TcpStream,
    status: &str,
    body: &str,
    with_body: bool,
) -> std::io::Result<()> {
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await?;
    if with_body {
        stream.write_all(body.as_bytes()).await?;
    }
    stream.shutdown().await
}
