//! The daemon side of reporting: [`Recorder::record`] never waits. Rows go
//! into a bounded queue; one writer task takes them in batches, sums equal
//! rows of the same hour and writes each batch in one transaction. When the
//! queue is full, or the database fails for longer than the retries allow,
//! mail flows on and every lost row is counted
//! (`authmilter_report_records_total{outcome=…}`) and logged.

use super::{
    bucket_of,
    failure::{self, FailureJob},
    now_unix, store, ReportsConfig, Row, Store, StoreError,
};
use crate::telemetry::metrics as m;
use std::{
    collections::HashMap,
    sync::{
        atomic::{AtomicU64, Ordering::Relaxed},
        Arc,
    },
    time::Duration,
};
use tokio::sync::{mpsc, oneshot};
use tracing::{info, warn};

/// How often a failing batch is retried before its rows are counted lost.
const RETRIES: u32 = 5;
/// How often the writer deletes rows past `reports.retention_days`.
const PRUNE_EVERY: Duration = Duration::from_secs(3600);
/// How often lost rows are summed up in the log.
const LOSS_LOG_EVERY: Duration = Duration::from_secs(10);

enum Item {
    Row(i64, Box<Row>),
    /// Write everything queued so far, then answer.
    Flush(oneshot::Sender<()>),
}

/// How long the writer lets rows gather after the first one arrives: at
/// most about ten transactions a second however mail trickles in (one
/// transaction per message would cost a commit per message).
const LINGER: Duration = Duration::from_millis(100);
/// How long one write may take before it counts as failed.
const WRITE_TIMEOUT: Duration = Duration::from_secs(30);

/// Counts of what happened to recorded rows (also exported as metrics).
#[derive(Debug, Default)]
pub struct Counts {
    pub stored: AtomicU64,
    pub queue_full: AtomicU64,
    pub storage: AtomicU64,
    pub shutdown: AtomicU64,
    /// Lost since the last log line.
    unlogged: AtomicU64,
}

impl Counts {
    /// Rows lost for any reason.
    pub fn lost(&self) -> u64 {
        self.queue_full.load(Relaxed) + self.storage.load(Relaxed) + self.shutdown.load(Relaxed)
    }
}

/// A cheap handle to the queue; clones share it.
#[derive(Clone)]
pub struct Recorder {
    tx: mpsc::Sender<Item>,
    counts: Arc<Counts>,
    failures: Option<failure::Sender>,
}

impl std::fmt::Debug for Recorder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Recorder").finish_non_exhaustive()
    }
}

impl Recorder {
    /// Starts the writer task for `[reports]` (call inside the runtime). The
    /// database is opened by the task, with retries: a database that is down
    /// at start delays nothing.
    pub fn start(cfg: &ReportsConfig) -> Self {
        Self::spawn(cfg, None)
    }

    /// Starts the writer on an open store (tests, benchmarks).
    pub fn with_store(cfg: &ReportsConfig, store: Arc<dyn Store>) -> Self {
        Self::spawn(cfg, Some(store))
    }

    fn spawn(cfg: &ReportsConfig, store: Option<Arc<dyn Store>>) -> Self {
        let (tx, rx) = mpsc::channel(cfg.queue_size.max(1));
        let counts = Arc::new(Counts::default());
        let writer = Writer {
            url: cfg.database.clone(),
            batch: cfg.batch_size.max(1),
            counts: counts.clone(),
            retention: cfg.retention,
        };
        let failures = cfg
            .failure
            .enabled
            .then(|| failure::Sender::start(cfg, store.clone()));
        tokio::spawn(writer.run_with(rx, store));
        Self {
            tx,
            counts,
            failures,
        }
    }

    /// Queues one row, observed now. Never waits: a full queue loses the row
    /// (counted).
    pub fn record(&self, row: Row) {
        self.record_at(now_unix(), row);
    }

    /// Queues one row observed at `unix` seconds.
    pub fn record_at(&self, unix: i64, row: Row) {
        if self
            .tx
            .try_send(Item::Row(bucket_of(unix), Box::new(row)))
            .is_err()
        {
            self.lose(&self.counts.queue_full, "queue_full", 1);
        }
    }

    /// Queues a failure report for sending (RFC 9991).
    pub fn failure(&self, job: FailureJob) {
        if let Some(f) = &self.failures {
            f.queue(job);
        }
    }

    fn lose(&self, which: &AtomicU64, outcome: &'static str, n: u64) {
        which.fetch_add(n, Relaxed);
        self.counts.unlogged.fetch_add(n, Relaxed);
        m::report_records(outcome, n);
    }

    /// What happened to the rows so far.
    pub fn counts(&self) -> &Counts {
        &self.counts
    }

    /// Waits (at most `within`) until everything queued before the call is
    /// written or counted lost. At shutdown: rows still queued after it are
    /// counted as lost (`shutdown`).
    pub async fn flush(&self, within: Duration) -> bool {
        let (tx, rx) = oneshot::channel();
        let sent = tokio::time::timeout(within, self.tx.send(Item::Flush(tx))).await;
        if !matches!(sent, Ok(Ok(()))) {
            return false;
        }
        matches!(tokio::time::timeout(within, rx).await, Ok(Ok(())))
    }

    /// Flushes at shutdown and counts what could not be written in time.
    pub async fn shutdown(&self, within: Duration) {
        if !self.flush(within).await {
            let queued = (self.tx.max_capacity() - self.tx.capacity()) as u64;
            self.lose(&self.counts.shutdown, "shutdown", queued);
            warn!("DMARC report records lost at shutdown: {queued} not written within {within:?}");
        }
    }
}

struct Writer {
    url: String,
    batch: usize,
    counts: Arc<Counts>,
    retention: Duration,
}

impl Writer {
    async fn open(&self) -> Result<Arc<dyn Store>, StoreError> {
        store::open(&self.url).await
    }

    async fn run_with(self, mut rx: mpsc::Receiver<Item>, mut store: Option<Arc<dyn Store>>) {
        let mut last_log = tokio::time::Instant::now();
        let mut last_prune: Option<tokio::time::Instant> = None;
        let mut buf: Vec<Item> = Vec::with_capacity(self.batch);
        if store.is_none() {
            // Open at once, so that a database that is down is logged at start.
            match self.open().await {
                Ok(s) => store = Some(s),
                Err(e) => warn!("DMARC report store {} not open yet: {e}", self.url),
            }
        }
        loop {
            buf.clear();
            if rx.recv_many(&mut buf, self.batch).await == 0 {
                return; // every handle is gone
            }
            if buf.len() < self.batch && !buf.iter().any(|i| matches!(i, Item::Flush(_))) {
                tokio::time::sleep(LINGER).await;
                while buf.len() < self.batch {
                    match rx.try_recv() {
                        Ok(item) => buf.push(item),
                        Err(_) => break,
                    }
                }
            }
            let mut sums: HashMap<(i64, Row), u64> = HashMap::new();
            let mut flushes = Vec::new();
            for item in buf.drain(..) {
                match item {
                    Item::Row(b, r) => *sums.entry((b, *r)).or_default() += 1,
                    Item::Flush(ack) => flushes.push(ack),
                }
            }
            if !sums.is_empty() {
                let n: u64 = sums.values().sum();
                let rows: Vec<(i64, Row, u64)> =
                    sums.into_iter().map(|((b, r), c)| (b, r, c)).collect();
                match self.write(&mut store, &rows).await {
                    Ok(()) => {
                        self.counts.stored.fetch_add(n, Relaxed);
                        m::report_records("stored", n);
                    }
                    Err(e) => {
                        self.counts.storage.fetch_add(n, Relaxed);
                        self.counts.unlogged.fetch_add(n, Relaxed);
                        m::report_records("storage", n);
                        warn!(
                            "DMARC report records lost: {n} not written to {}: {e}",
                            self.url
                        );
                    }
                }
            }
            for ack in flushes {
                let _ = ack.send(());
            }
            if let Some(s) = &store {
                if last_prune.is_none_or(|t| t.elapsed() >= PRUNE_EVERY) {
                    last_prune = Some(tokio::time::Instant::now());
                    let before = now_unix() - self.retention.as_secs() as i64;
                    match s.prune(before).await {
                        Ok(p) if p.unreported_rows > 0 => warn!(
                            rows = p.rows,
                            unreported = p.unreported_rows,
                            "DMARC report rows older than reports.retention_days deleted, some never reported"
                        ),
                        Ok(_) => {}
                        Err(e) => warn!("DMARC report rows not pruned: {e}"),
                    }
                }
            }
            if last_log.elapsed() >= LOSS_LOG_EVERY {
                let lost = self.counts.unlogged.swap(0, Relaxed);
                if lost > 0 {
                    warn!(
                        lost,
                        total_lost = self.counts.lost(),
                        "DMARC report records lost since the last notice (queue full, storage or shutdown)"
                    );
                }
                last_log = tokio::time::Instant::now();
            }
        }
    }

    /// Writes one batch, opening the store when needed; retried with a
    /// growing pause while the queue keeps filling behind it.
    async fn write(
        &self,
        store: &mut Option<Arc<dyn Store>>,
        rows: &[(i64, Row, u64)],
    ) -> Result<(), StoreError> {
        let mut pause = Duration::from_millis(200);
        let mut last = None;
        for attempt in 0..=RETRIES {
            if attempt > 0 {
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_secs(5));
            }
            let s = match store {
                Some(s) => s.clone(),
                None => match self.open().await {
                    Ok(s) => {
                        info!("DMARC report store open: {}", self.url);
                        *store = Some(s.clone());
                        s
                    }
                    Err(e) => {
                        last = Some(e);
                        continue;
                    }
                },
            };
            match tokio::time::timeout(WRITE_TIMEOUT, s.add(rows)).await {
                Ok(Ok(())) => return Ok(()),
                Ok(Err(e)) => last = Some(e),
                Err(_) => last = Some(StoreError(format!("no answer in {WRITE_TIMEOUT:?}"))),
            }
        }
        Err(last.unwrap_or_else(|| StoreError("no attempt made".into())))
    }
}
