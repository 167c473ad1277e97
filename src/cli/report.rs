//! `authmilter report`: builds the DMARC aggregate reports (RFC 9990) of
//! the recorded messages and mails them to their authorised `rua`
//! destinations, or writes them to a directory.

use crate::{
    config::Config,
    reports::{
        now_unix,
        run::{self, Options, Output},
        store,
    },
};
use clap::Args;
use std::{
    path::{Path, PathBuf},
    process::ExitCode,
};

/// Options of `authmilter report`.
#[derive(Args, Debug)]
pub struct ReportArgs {
    /// Report from this time (RFC 3339, e.g. 2026-11-30T00:00:00Z, or `now`)
    /// as one period per domain, instead of daily periods.
    #[arg(long, value_name = "T")]
    pub since: Option<String>,
    /// Report up to this time (exclusive; RFC 3339 or `now`, which includes
    /// the current hour). Default: the start of the current UTC day, so only
    /// complete days are reported (with --since: now).
    #[arg(long, value_name = "T")]
    pub until: Option<String>,
    /// The period of each report when --since is not given (one UTC day).
    #[arg(long, value_enum, default_value = "daily")]
    pub period: Period,
    /// Write each report file (gzipped XML) into DIR instead of mailing it.
    #[arg(long, value_name = "DIR", conflicts_with = "send")]
    pub out: Option<PathBuf>,
    /// Mail each report through reports.smtp_relay.
    #[arg(long)]
    pub send: bool,
    /// Build the reports and print them; change nothing, send nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Answer DNS (destination authorisation records) from this zone file
    /// instead of the network (repeatable), as `authmilter check` does.
    #[arg(long = "dns-zone", value_name = "FILE")]
    pub dns_zone: Vec<PathBuf>,
    /// Print the outcome as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Report periods.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Period {
    Daily,
}

/// Parses `now` or an RFC 3339 time into seconds since the epoch.
pub fn parse_time(s: &str) -> Result<i64, String> {
    if s.eq_ignore_ascii_case("now") {
        return Ok(now_unix());
    }
    time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
        .map(|t| t.unix_timestamp())
        .map_err(|e| {
            format!("`{s}` is not an RFC 3339 time such as 2026-11-30T00:00:00Z or `now`: {e}")
        })
}

fn usage(e: impl std::fmt::Display) -> ExitCode {
    eprintln!("authmilter report: {e}");
    ExitCode::from(2)
}

/// Runs `authmilter report`.
pub fn main(config: &Path, args: ReportArgs) -> ExitCode {
    let config = match Config::load(config) {
        Ok(c) => c,
        Err(e) => return usage(e),
    };
    if !args.send && args.out.is_none() && !args.dry_run {
        return usage("say where reports go: --send, --out DIR, or --dry-run");
    }
    let since = match args.since.as_deref().map(parse_time).transpose() {
        Ok(t) => t,
        Err(e) => return usage(e),
    };
    let until = match args.until.as_deref().map(parse_time).transpose() {
        Ok(t) => t,
        Err(e) => return usage(e),
    };
    if let (Some(a), Some(b)) = (since, until) {
        if a >= b {
            return usage("--since must be before --until");
        }
    }
    if let Some(dir) = &args.out {
        if !dir.is_dir() {
            return usage(format!("--out {}: not a directory", dir.display()));
        }
    }
    let dns = match super::dns_from(&config.dns, &args.dns_zone) {
        Ok(d) => d,
        Err(e) => return usage(e),
    };
    let opts = Options {
        since,
        until,
        output: match &args.out {
            Some(d) => Output::Dir(d.clone()),
            None => Output::Send,
        },
        dry_run: args.dry_run,
        holder: run::holder(),
    };
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("authmilter report: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let cfg = config.reports.clone();
    rt.block_on(async move {
        let store = match store::open(&cfg.database).await {
            Ok(s) => s,
            Err(e) => {
                eprintln!("authmilter report: {}: {e}", cfg.database);
                return ExitCode::FAILURE;
            }
        };
        let summary = match run::report(store.clone(), &dns, &cfg, &opts).await {
            Ok(s) => s,
            Err(e) => {
                eprintln!("authmilter report: {e}");
                return ExitCode::FAILURE;
            }
        };
        if !opts.dry_run {
            if let Err(e) = store
                .prune(now_unix() - cfg.retention.as_secs() as i64)
                .await
            {
                eprintln!("authmilter report: warning: old rows not pruned: {e}");
            }
        }
        print(&summary, &args);
        if summary.owed > 0 || !summary.errors.is_empty() {
            ExitCode::FAILURE
        } else {
            ExitCode::SUCCESS
        }
    })
}

fn print(s: &run::Summary, args: &ReportArgs) {
    if args.json {
        let reports: Vec<serde_json::Value> = s
            .reports
            .iter()
            .map(|r| {
                serde_json::json!({
                    "domain": r.domain,
                    "report_id": r.id,
                    "begin": r.begin,
                    "end": r.end,
                    "file": r.filename,
                    "messages": r.messages,
                    "records": r.records,
                    "deliveries": r.deliveries.iter().map(|(d, o)| serde_json::json!({"destination": d, "outcome": o})).collect::<Vec<_>>(),
                    "xml": if args.dry_run { r.xml.clone() } else { None },
                })
            })
            .collect();
        let out = serde_json::json!({
            "dry_run": args.dry_run,
            "reports": reports,
            "owed": s.owed,
            "leased_elsewhere": s.leased_elsewhere,
            "errors": s.errors.iter().map(|(d, e)| serde_json::json!({"domain": d, "error": e})).collect::<Vec<_>>(),
        });
        println!("{}", serde_json::to_string_pretty(&out).expect("JSON"));
        return;
    }
    if s.reports.is_empty() {
        println!("no reports due");
    }
    for r in &s.reports {
        println!(
            "{} {}..{} report {}: {} messages in {} records, file {}",
            r.domain, r.begin, r.end, r.id, r.messages, r.records, r.filename
        );
        for (d, o) in &r.deliveries {
            println!("  {d}: {o}");
        }
        if args.dry_run {
            if let Some(x) = &r.xml {
                println!("{x}");
            }
        }
    }
    for d in &s.leased_elsewhere {
        println!("{d}: skipped, another host is reporting it now");
    }
    for (d, e) in &s.errors {
        println!("{d}: failed: {e}");
    }
    if s.owed > 0 {
        println!(
            "{} deliveries failed and will be retried on the next run",
            s.owed
        );
    }
}
