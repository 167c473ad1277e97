//! Prometheus metrics: every metric's name, help text and unit, the recorder
//! and the `/metrics` endpoint (`[metrics] address`).
//!
//! The other layers record through the `metrics` facade macros with the name
//! constants below (`metrics::counter!(MESSAGES, "verdict" => "reject")`).
//! Without `[metrics] address` no recorder is installed and those macros do
//! nothing. Labels are low-cardinality words from fixed sets: never a domain,
//! an address or a queue id. The gauges (open connections, in-flight
//! messages, buffered bytes) are read from [`crate::stats::Stats`] when
//! scraped, so they cost the hot path nothing.
//!
//! The endpoint is a small HTTP/1.1 handler of its own (GET or HEAD
//! `/metrics`, one request per connection): the exporter's listener would
//! bring in an HTTP stack and has no hook to refresh the gauges at scrape
//! time. This module depends on nothing else in the crate, so every layer
//! may use its names.

use metrics::{describe_counter, describe_gauge, describe_histogram, Unit};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use std::{sync::Arc, time::Duration};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
};

/// Messages by verdict (`verdict`: accept, tag, quarantine, tempfail, reject),
/// counted when the verdict is given (end of message, or MAIL FROM).
pub const MESSAGES: &str = "authmilter_messages_total";
/// Results by `method` (spf, spf_helo, dkim, dmarc, iprev) and `result`.
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
/// Seconds each check took, by `check` (iprev, spf, prefetch: DKIM keys and
/// DMARC policy lookups from end of headers, dkim, dmarc).
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
/// Always 1, with the `version` label.
pub const BUILD_INFO: &str = "authmilter_build_info";

/// Histogram buckets (seconds) for every `_seconds` metric.
pub const BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
    60.0,
];

/// The verdict words of [`MESSAGES`].
pub const VERDICTS: [&str; 5] = ["accept", "tag", "quarantine", "tempfail", "reject"];
/// The reasons of [`ENFORCEMENT_SKIPPED`].
pub const SKIP_REASONS: [&str; 4] = [
    "trusted_network",
    "authenticated",
    "monitor_mode",
    "monitor_rule",
];

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
    describe();
    // Known label values start at 0, so rates work from the first scrape.
    for v in VERDICTS {
        metrics::counter!(MESSAGES, "verdict" => v).absolute(0);
    }
    for r in SKIP_REASONS {
        metrics::counter!(ENFORCEMENT_SKIPPED, "reason" => r).absolute(0);
    }
    for o in ["ok", "refused"] {
        metrics::counter!(CONFIG_RELOADS, "outcome" => o).absolute(0);
    }
    metrics::counter!(OVER_BUDGET).absolute(0);
    metrics::counter!(CONNECTIONS).absolute(0);
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
        "Duration of each check: iprev, spf, prefetch (DKIM keys and DMARC policy, from end of headers), dkim, dmarc."
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
