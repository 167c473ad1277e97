//! One reporting run (`authmilter report`, or the daemon's daily schedule):
//! for each policy domain with unreported rows, under that domain's lease,
//! finish reports left owed by earlier runs, then claim, build and deliver
//! the new periods. A period is marked done only when every destination
//! took it (or refused it for good); a failed delivery is retried by the
//! next run with the same report id and file name (RFC 9990 §3.5).

use super::{
    aggregate::{self, Report},
    authorize::{authorize, Authorization},
    bucket_of,
    deliver::{self, Mail, Relay},
    now_unix,
    store::{Built, ReportState, Store, StoreError},
    xml::{self, Reporter},
    ReportsConfig, BUCKET_SECS,
};
use crate::dns::Dns;
use std::{path::PathBuf, sync::Arc};
use tracing::{info, warn};

/// Seconds in the default period (one UTC day).
pub const DAY: i64 = 86_400;
/// How long a reporting lease lasts; renewed before each delivery.
const LEASE_SECS: i64 = 600;
/// A report still owed this long after its period ended is given up
/// (RFC 9990 §3.5: undeliverable data MAY be discarded), logged.
pub const GIVE_UP_AFTER: i64 = 3 * DAY;

/// Where reports go.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Output {
    /// Mail each report to its authorised `rua` destinations.
    Send,
    /// Write each report file into this directory.
    Dir(PathBuf),
}

/// What to report.
#[derive(Clone, Debug)]
pub struct Options {
    /// Report `[since, until)` as one period per domain; `None`: every
    /// complete UTC day not yet reported (daily periods).
    pub since: Option<i64>,
    /// The end (exclusive): `None` is the start of the current UTC day
    /// (complete periods only); [`now_unix`] includes the current hour.
    pub until: Option<i64>,
    pub output: Output,
    /// Build and show the reports, change nothing, send nothing.
    pub dry_run: bool,
    /// Who runs this (the lease holder name): host and process id.
    pub holder: String,
}

/// What happened to one report.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outcome {
    pub domain: String,
    pub id: String,
    pub begin: i64,
    pub end: i64,
    pub filename: String,
    pub messages: u64,
    pub records: usize,
    pub xml: Option<String>,
    /// Per destination: `sent`, `written`, `refused: why`, `retry: why`.
    pub deliveries: Vec<(String, String)>,
}

/// The run's result.
#[derive(Clone, Debug, Default)]
pub struct Summary {
    pub reports: Vec<Outcome>,
    /// Domains skipped because another host holds their lease.
    pub leased_elsewhere: Vec<String>,
    /// Deliveries to retry on the next run.
    pub owed: usize,
    /// Domains whose reporting failed on a store error (the others went on).
    pub errors: Vec<(String, String)>,
}

/// The lease was lost (taken by another host after it ran out).
fn lost_lease(domain: &str) -> StoreError {
    StoreError(format!(
        "the reporting lease of {domain} passed to another host; stopped"
    ))
}

struct Ctx<'a> {
    store: &'a dyn Store,
    dns: &'a Dns,
    cfg: &'a ReportsConfig,
    opts: &'a Options,
    relay: Option<Relay>,
}

fn new_id(domain: &str, begin: i64, holder: &str) -> String {
    use sha2::Digest;
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let seed = format!("{domain}|{begin}|{holder}|{nanos}|{}", std::process::id());
    hex::encode(&sha2::Sha256::digest(seed.as_bytes())[..12])
}

/// Runs one report pass over `store`.
///
/// # Errors
///
/// When the store fails; deliveries that fail are owed, not errors.
pub async fn report(
    store: Arc<dyn Store>,
    dns: &Dns,
    cfg: &ReportsConfig,
    opts: &Options,
) -> Result<Summary, StoreError> {
    let relay = match &opts.output {
        Output::Send => Some(Relay::parse(&cfg.smtp_relay, cfg.smtp_timeout).map_err(StoreError)?),
        Output::Dir(_) => None,
    };
    let ctx = Ctx {
        store: store.as_ref(),
        dns,
        cfg,
        opts,
        relay,
    };
    let now = now_unix();
    let until = match (opts.until, opts.since) {
        (Some(u), _) if u >= now => bucket_of(now) + BUCKET_SECS,
        (Some(u), _) => bucket_of(u + BUCKET_SECS - 1),
        // --since alone: up to now.
        (None, Some(_)) => bucket_of(now) + BUCKET_SECS,
        (None, None) => now.div_euclid(DAY) * DAY,
    };
    let since = opts.since.map(bucket_of).unwrap_or(i64::MIN / 2);
    let mut summary = Summary::default();
    let mut domains = ctx.store.unreported_domains(since, until).await?;
    // Owed reports of domains without new rows are retried too.
    for d in ctx.store.open_domains().await? {
        if !domains.contains(&d) {
            domains.push(d);
        }
    }
    for domain in domains {
        if !opts.dry_run && !ctx.store.lease(&domain, &opts.holder, LEASE_SECS).await? {
            summary.leased_elsewhere.push(domain);
            continue;
        }
        let r = ctx.domain(&domain, since, until, now, &mut summary).await;
        if !opts.dry_run {
            let _ = ctx.store.release(&domain, &opts.holder).await;
        }
        if let Err(e) = r {
            // One domain's trouble does not stop the others.
            warn!(domain = domain.as_str(), "DMARC aggregate report: {e}");
            summary.errors.push((domain, e.0));
        }
    }
    Ok(summary)
}

impl Ctx<'_> {
    async fn domain(
        &self,
        domain: &str,
        since: i64,
        until: i64,
        now: i64,
        summary: &mut Summary,
    ) -> Result<(), StoreError> {
        if !self.opts.dry_run {
            for open in self.store.open_reports(domain).await? {
                // Files do not stand in for mail: a report built for
                // sending stays owed to its addresses when --out runs.
                let for_files = open
                    .built
                    .as_ref()
                    .is_some_and(|b| b.owed.iter().all(|d| d == "file"));
                if matches!(self.opts.output, Output::Dir(_)) && open.built.is_some() && !for_files
                {
                    continue;
                }
                self.finish(open, summary).await?;
            }
        }
        let periods: Vec<(i64, i64)> = match self.opts.since {
            Some(_) => vec![(since, until)],
            None => {
                let mut days: Vec<i64> = self
                    .store
                    .unreported_buckets(domain, until)
                    .await?
                    .into_iter()
                    .map(|b| b.div_euclid(DAY) * DAY)
                    .collect();
                days.dedup();
                days.into_iter()
                    .map(|d| (d, (d + DAY).min(until)))
                    .collect()
            }
        };
        for (from, to) in periods {
            // The rows cover whole hours: so does the date range.
            let begin = from.max(since);
            let end = to.min(now.max(begin + 1)) - 1;
            let end = end.max(begin);
            let id = new_id(domain, begin, &self.opts.holder);
            if self.opts.dry_run {
                let rows = self.preview(domain, from, to).await?;
                if let Some(report) = aggregate::build(&id, domain, begin, end, &rows)
                    .filter(|r| !r.published.rua.is_empty())
                {
                    let (mut outcome, built) = self.built(&report);
                    // --dry-run --out DIR: the files, and nothing else changes.
                    if let Output::Dir(dir) = &self.opts.output {
                        let path = dir.join(&built.filename);
                        let what = match std::fs::write(&path, &built.body) {
                            Ok(()) => format!("written to {} (dry run)", path.display()),
                            Err(e) => format!("not written: {}: {e}", path.display()),
                        };
                        outcome.deliveries.push(("file".into(), what));
                    }
                    summary.reports.push(outcome);
                }
                continue;
            }
            if !self
                .store
                .lease(domain, &self.opts.holder, LEASE_SECS)
                .await?
            {
                return Err(lost_lease(domain));
            }
            let mut claimed = Err(StoreError(String::new()));
            for attempt in 0..3 {
                // A deadlock with a writer (PostgreSQL) is retried.
                claimed = self.store.claim(domain, from, to, &id, (begin, end)).await;
                if claimed.is_ok() {
                    break;
                }
                tokio::time::sleep(std::time::Duration::from_millis(200 << attempt)).await;
            }
            if claimed? == 0 {
                continue;
            }
            let state = ReportState {
                id,
                domain: domain.into(),
                begin,
                end,
                built: None,
            };
            self.finish(state, summary).await?;
        }
        Ok(())
    }

    /// A dry run's rows: the unreported rows, read without claiming them.
    async fn preview(
        &self,
        domain: &str,
        from: i64,
        to: i64,
    ) -> Result<Vec<super::store::Stored>, StoreError> {
        self.store.unreported_rows(domain, from, to).await
    }

    /// The XML, file name and body of a report.
    fn built(&self, report: &Report) -> (Outcome, Built) {
        let reporter = Reporter {
            org_name: &self.cfg.org_name,
            email: &self.cfg.contact,
        };
        let doc = xml::render(report, &reporter);
        let filename = deliver::filename(
            &self.cfg.submitter,
            &report.domain,
            report.begin,
            report.end,
            &report.id,
        );
        let body = deliver::gzip(doc.as_bytes());
        let outcome = Outcome {
            domain: report.domain.clone(),
            id: report.id.clone(),
            begin: report.begin,
            end: report.end,
            filename: filename.clone(),
            messages: report.messages(),
            records: report.records.len(),
            xml: Some(doc),
            deliveries: Vec::new(),
        };
        let built = Built {
            filename,
            body,
            owed: report.published.rua.clone(),
        };
        (outcome, built)
    }

    /// Builds a claimed report when needed, then delivers what is owed.
    async fn finish(&self, state: ReportState, summary: &mut Summary) -> Result<(), StoreError> {
        let (mut outcome, built) = match state.built {
            Some(b) => (
                Outcome {
                    domain: state.domain.clone(),
                    id: state.id.clone(),
                    begin: state.begin,
                    end: state.end,
                    filename: b.filename.clone(),
                    messages: 0,
                    records: 0,
                    xml: None,
                    deliveries: Vec::new(),
                },
                b,
            ),
            None => {
                let rows = self.store.claimed(&state.id).await?;
                let Some(report) =
                    aggregate::build(&state.id, &state.domain, state.begin, state.end, &rows)
                else {
                    self.store.set_owed(&state.id, &[]).await?;
                    return Ok(());
                };
                let (o, mut b) = self.built(&report);
                if b.owed.is_empty() {
                    // No rua: nobody asked for this report.
                    self.store.set_owed(&state.id, &[]).await?;
                    return Ok(());
                }
                if let Output::Dir(_) = self.opts.output {
                    b.owed = vec!["file".into()];
                }
                self.store.save_built(&state.id, &b).await?;
                (o, b)
            }
        };
        let give_up = now_unix() - state.end > GIVE_UP_AFTER;
        let mut owed = built.owed.clone();
        for dest in &built.owed {
            if !self
                .store
                .lease(&state.domain, &self.opts.holder, LEASE_SECS)
                .await?
            {
                return Err(lost_lease(&state.domain));
            }
            let mut result = self.deliver(&state.domain, &outcome, &built, dest).await;
            if result.starts_with("retry") && give_up {
                result = format!(
                    "given up: still undeliverable {} days after the period ({})",
                    GIVE_UP_AFTER / DAY,
                    result
                );
                warn!(
                    domain = state.domain.as_str(),
                    report_id = state.id.as_str(),
                    "DMARC aggregate report to {dest} {result}"
                );
            }
            if result.starts_with("retry") {
                summary.owed += 1;
            } else {
                owed.retain(|d| d != dest);
                // Recorded at once: a crash after this delivery does not repeat it.
                self.store.set_owed(&state.id, &owed).await?;
            }
            outcome.deliveries.push((dest.clone(), result));
        }
        self.store.set_owed(&state.id, &owed).await?;
        for (dest, what) in &outcome.deliveries {
            info!(
                domain = state.domain.as_str(),
                report_id = state.id.as_str(),
                destination = dest.as_str(),
                "DMARC aggregate report: {what}"
            );
        }
        summary.reports.push(outcome);
        Ok(())
    }

    /// Delivers one report to one destination: the word for the outcome.
    async fn deliver(&self, domain: &str, o: &Outcome, b: &Built, dest: &str) -> String {
        if let Output::Dir(dir) = &self.opts.output {
            let path = dir.join(&b.filename);
            return match std::fs::write(&path, &b.body) {
                Ok(()) => format!("written to {}", path.display()),
                Err(e) => format!("retry: {}: {e}", path.display()),
            };
        }
        if dest == "file" {
            return "refused: written to a directory by an earlier run".into();
        }
        let address = match authorize(self.dns, domain, dest, "rua").await {
            Authorization::Allowed { address } => address,
            Authorization::Refused(why) => return format!("refused: {why}"),
            Authorization::Temporary(why) => return format!("retry: {why}"),
        };
        if b.body.len() > self.cfg.max_report_bytes {
            warn!(
                domain,
                bytes = b.body.len(),
                limit = self.cfg.max_report_bytes,
                "DMARC aggregate report larger than reports.max_report_bytes: not sent"
            );
            return format!(
                "refused: {} bytes is over reports.max_report_bytes ({})",
                b.body.len(),
                self.cfg.max_report_bytes
            );
        }
        let subject = deliver::subject(domain, &self.cfg.submitter, &o.id);
        let message_id = format!("<{}.{}@{}>", o.id, o.begin, self.cfg.submitter);
        let text = format!(
            "This is a DMARC aggregate report (RFC 9990) for {domain}\n\
             covering {} to {} (seconds since the epoch, UTC),\n\
             from {} ({}).\n",
            o.begin, o.end, self.cfg.org_name, self.cfg.submitter
        );
        let mail = Mail {
            from_name: &self.cfg.org_name,
            from: &self.cfg.contact,
            to: &address,
            subject: &subject,
            message_id: &message_id,
            text,
            attachment: Some((&b.filename, "application/gzip", b.body.clone())),
        };
        let msg = match deliver::build(mail) {
            Ok(m) => m,
            Err(e) => return format!("refused: {}", e.message),
        };
        let relay = self.relay.as_ref().expect("Send has a relay");
        match deliver::send(relay, msg).await {
            Ok(()) => format!("sent to {address}"),
            Err(e) if e.permanent => format!("refused: {address}: {}", e.message),
            Err(e) => format!("retry: {address}: {}", e.message),
        }
    }
}

/// The lease holder name of this process: host name and process id.
pub fn holder() -> String {
    let host = hostname_or_localhost();
    format!("{host}:{}", std::process::id())
}

fn hostname_or_localhost() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

/// When the daily schedule runs next after `now`: 00:15 UTC.
pub fn next_daily_run(now: i64) -> i64 {
    let today = now.div_euclid(DAY) * DAY + 15 * 60;
    if now < today {
        today
    } else {
        today + DAY
    }
}

/// The daemon's built-in schedule (`[reports] schedule_daily`): every day
/// at 00:15 UTC, the complete periods are sent and old rows pruned, as
/// `authmilter report --send` would from cron.
pub async fn daily(cfg: ReportsConfig, dns: Dns) {
    loop {
        let now = now_unix();
        let next = next_daily_run(now);
        tokio::time::sleep(std::time::Duration::from_secs((next - now).max(1) as u64)).await;
        let store = match super::store::open(&cfg.database).await {
            Ok(s) => s,
            Err(e) => {
                warn!("scheduled DMARC reports not sent: {e}");
                continue;
            }
        };
        let opts = Options {
            since: None,
            until: None,
            output: Output::Send,
            dry_run: false,
            holder: holder(),
        };
        match report(store.clone(), &dns, &cfg, &opts).await {
            Ok(s) => info!(
                reports = s.reports.len(),
                owed = s.owed,
                "scheduled DMARC aggregate reports done"
            ),
            Err(e) => warn!("scheduled DMARC reports failed: {e}"),
        }
        if let Err(e) = store
            .prune(now_unix() - cfg.retention.as_secs() as i64)
            .await
        {
            warn!("DMARC report rows not pruned: {e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_daily_run_is_at_a_quarter_past_midnight_utc() {
        let day = 1_796_083_200; // 2026-12-01T00:00:00Z
        assert_eq!(next_daily_run(day), day + 900);
        assert_eq!(next_daily_run(day + 899), day + 900);
        assert_eq!(next_daily_run(day + 900), day + DAY + 900);
        assert_eq!(next_daily_run(day + 80_000), day + DAY + 900);
    }
}
