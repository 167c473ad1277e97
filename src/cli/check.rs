//! `authmilter check`: one message through the daemon's own session code
//! (the same `Session` methods, in the order the milter callbacks call them),
//! offline: DNS from the network, from zone files (`--dns-zone`), or from a
//! capture; `--save-dns` writes every answer used as a zone file that
//! replays the verdict exactly; `--explain` prints the decision trace.

use super::eml::{self, Eml};
use crate::{
    actions::Plan,
    capture::Envelope,
    checks::evidence::{AuthResult, Evidence},
    dns::capture::Recorder,
    policy::{Action, Reply},
    session::{Client, Outcome, Session},
    stats::Stats,
    Runtime,
};
use clap::Args;
use serde_json::json;
use std::{
    io::Read,
    net::IpAddr,
    path::{Path, PathBuf},
    process::ExitCode,
    sync::Arc,
};

/// Options of `authmilter check`.
#[derive(Args, Debug, Clone)]
pub struct CheckArgs {
    /// The SMTP client's address, as the MTA saw it.
    #[arg(long, value_name = "IP")]
    pub client_ip: IpAddr,
    /// The client's name as the MTA verified it (`unknown` when it did not).
    #[arg(long, value_name = "NAME", default_value = "unknown")]
    pub client_name: String,
    /// The HELO/EHLO name.
    #[arg(long, value_name = "NAME", default_value = "")]
    pub helo: String,
    /// The envelope sender (MAIL FROM); empty for the null sender. Default:
    /// the message's Return-Path, else the null sender.
    #[arg(long, value_name = "ADDRESS")]
    pub mail_from: Option<String>,
    /// An envelope recipient (repeatable).
    #[arg(long, value_name = "ADDRESS")]
    pub rcpt: Vec<String>,
    /// The SMTP AUTH user, when the client authenticated.
    #[arg(long, value_name = "USER")]
    pub auth: Option<String>,
    /// The SASL mechanism of SMTP AUTH (the `{auth_type}` macro).
    #[arg(long, value_name = "MECHANISM", requires = "auth")]
    pub auth_type: Option<String>,
    /// The TLS version of the SMTP session (the `{tls_version}` macro),
    /// when the client used STARTTLS.
    #[arg(long, value_name = "VERSION")]
    pub tls_version: Option<String>,
    /// The TLS cipher (the `{cipher}` macro).
    #[arg(long, value_name = "CIPHER", requires = "tls_version")]
    pub cipher: Option<String>,
    /// The TLS cipher's key bits (the `{cipher_bits}` macro).
    #[arg(long, value_name = "BITS", requires = "tls_version")]
    pub cipher_bits: Option<String>,
    /// The MTA's queue id, for the log line.
    #[arg(long, value_name = "ID")]
    pub queue_id: Option<String>,
    /// Answer DNS from this zone file instead of the network (repeatable;
    /// names outside every zone answer SERVFAIL). A capture written by
    /// `--save-dns` replays exactly.
    #[arg(long = "dns-zone", value_name = "FILE")]
    pub dns_zone: Vec<PathBuf>,
    /// Write every DNS answer the evaluation used (NXDOMAIN and NODATA
    /// included) to FILE as a zone file, for `--dns-zone` later.
    #[arg(long, value_name = "FILE")]
    pub save_dns: Option<PathBuf>,
    /// Print the decision trace: inputs, each DNS question and answer, each
    /// check's result and why, DMARC discovery and alignment, the deciding rule.
    #[arg(long)]
    pub explain: bool,
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
    /// The message file (as the MTA receives it after DATA); standard input when absent.
    #[arg(value_name = "MESSAGE")]
    pub message: Option<PathBuf>,
}

/// What the daemon would do with the message.
#[derive(Clone, Debug)]
pub struct Report {
    /// Rejected or tempfailed already at MAIL FROM (`spf_reject_at_mail`).
    pub at_mail: Option<Reply>,
    pub evidence: Option<Evidence>,
    pub plan: Option<Plan>,
}

impl Report {
    /// The verdict word.
    pub fn action(&self) -> Action {
        match (&self.at_mail, &self.plan) {
            (Some(r), _) if r.code / 100 == 4 => Action::Tempfail,
            (Some(_), _) => Action::Reject,
            (None, Some(p)) => p.verdict.action,
            (None, None) => Action::Tempfail,
        }
    }

    /// The SMTP reply the MTA would send.
    pub fn reply(&self) -> String {
        if let Some(r) = &self.at_mail {
            return r.to_string();
        }
        match &self.plan {
            Some(p) => match p.verdict.reply_or_default() {
                Some(r) => r.to_string(),
                None if p.verdict.action == Action::Quarantine => {
                    "250 (the MTA's own; the message goes to its hold queue)".into()
                }
                None => "250 (the MTA's own)".into(),
            },
            None => "451 4.7.1 (tempfail: no message to evaluate)".into(),
        }
    }

    /// The Authentication-Results value we would prepend.
    pub fn auth_results(&self) -> Option<&str> {
        self.plan.as_ref().and_then(|p| {
            p.inserts
                .iter()
                .find(|(n, _)| n == "Authentication-Results")
                .map(|(_, v)| v.as_str())
        })
    }
}

/// Runs one message through a session exactly as the milter callbacks do.
pub async fn evaluate(rt: Arc<Runtime>, env: &Envelope, msg: &Eml) -> Report {
    // The daemon negotiates SMFIP_HDR_LEADSPC: values arrive with their space.
    let mut s = Session::new(rt, true);
    let client = match env.client_ip {
        Some(ip) => Client::Inet(ip.to_canonical()),
        None => Client::Unknown,
    };
    crate::explain!(
        "input: client {} ({}), HELO {:?}, MAIL FROM <{}>, RCPT {:?}{}",
        env.client_ip
            .map(|i| i.to_string())
            .unwrap_or_else(|| "unknown".into()),
        env.client_name,
        env.helo,
        env.mail_from,
        env.rcpt,
        env.auth
            .as_deref()
            .map(|a| format!(", SMTP AUTH {a}"))
            .unwrap_or_default()
    );
    s.connect(&env.client_name, client);
    s.helo(&env.helo);
    let info = crate::session::MailInfo {
        queue_id: env.queue_id.clone(),
        auth_user: env.auth.clone(),
        auth_type: env.auth_type.clone(),
        tls: env.tls.clone(),
    };
    let outcome = s.mail(&env.mail_from, info).await;
    if let Outcome::Reject(r) | Outcome::Tempfail(r) = outcome {
        return Report {
            at_mail: Some(r),
            evidence: None,
            plan: None,
        };
    }
    for r in &env.rcpt {
        s.rcpt(r);
    }
    for f in &msg.fields {
        s.header(&f.name, &f.value);
    }
    s.eoh();
    // Postfix sends the body in chunks of at most 64 KiB.
    for chunk in msg.body.chunks(65535) {
        s.body(chunk);
    }
    match s.eom(env.queue_id.clone()).await {
        Some((ev, plan)) => Report {
            at_mail: None,
            evidence: Some(ev),
            plan: Some(plan),
        },
        None => Report {
            at_mail: None,
            evidence: None,
            plan: None,
        },
    }
}

fn fail(msg: impl std::fmt::Display) -> ExitCode {
    eprintln!("authmilter: {msg}");
    ExitCode::from(2)
}

/// `authmilter check`.
pub fn main(config: Option<&Path>, args: CheckArgs) -> ExitCode {
    let config = match super::config_or_defaults(config) {
        Ok(c) => c,
        Err(e) => return fail(e),
    };
    let raw = match &args.message {
        Some(p) => std::fs::read(p).map_err(|e| format!("{}: {e}", p.display())),
        None => {
            let mut v = Vec::new();
            std::io::stdin()
                .read_to_end(&mut v)
                .map(|_| v)
                .map_err(|e| format!("standard input: {e}"))
        }
    };
    let raw = match raw {
        Ok(r) => r,
        Err(e) => return fail(e),
    };
    let msg = eml::parse(&raw);
    let mail_from = args.mail_from.clone().unwrap_or_else(|| return_path(&msg));
    let env = Envelope {
        client_ip: Some(args.client_ip),
        client_name: args.client_name.clone(),
        helo: args.helo.clone(),
        mail_from,
        rcpt: args.rcpt.clone(),
        auth: args.auth.clone(),
        auth_type: args.auth_type.clone(),
        tls: args
            .tls_version
            .clone()
            .map(|version| crate::checks::evidence::TlsInfo {
                version,
                cipher: args.cipher.clone(),
                bits: args.cipher_bits.clone(),
            }),
        queue_id: args.queue_id.clone(),
    };
    let dns = match super::dns_from(&config.dns, &args.dns_zone) {
        Ok(d) => d,
        Err(e) => return fail(e),
    };
    let recorder = Arc::new(Recorder::new());
    let dns = dns.recording(recorder.clone());
    init_logging(args.explain, args.json);
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("authmilter: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let runtime = Arc::new(Runtime::with_dns(config, Arc::new(Stats::default()), dns));
    let report = rt.block_on(evaluate(runtime.clone(), &env, &msg));
    if let Some(path) = &args.save_dns {
        let about = vec![
            format!(
                "authmilter {} DNS capture: every answer one evaluation used",
                env!("CARGO_PKG_VERSION")
            ),
            format!(
                "replay: authmilter check --dns-zone {} {}",
                path.display(),
                env.as_check_args()
            ),
        ];
        if let Err(e) = std::fs::write(path, recorder.to_zone_file(&about)) {
            eprintln!("authmilter: {}: {e}", path.display());
            return ExitCode::FAILURE;
        }
    }
    if args.json {
        println!("{}", to_json(&report));
    } else {
        print!("{}", to_text(&report));
    }
    if report.plan.is_none() && report.at_mail.is_none() {
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}

/// The Return-Path address, the envelope sender a delivered message keeps.
fn return_path(msg: &Eml) -> String {
    msg.fields
        .iter()
        .find(|f| f.name.eq_ignore_ascii_case("Return-Path"))
        .map(|f| {
            String::from_utf8_lossy(&f.value)
                .trim()
                .trim_start_matches('<')
                .trim_end_matches('>')
                .to_string()
        })
        .unwrap_or_default()
}

/// `--explain`: the trace and the summary log line on standard output;
/// otherwise only warnings, on standard error.
fn init_logging(explain: bool, json: bool) {
    use tracing_subscriber::EnvFilter;
    if explain && !json {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(EnvFilter::new(
                "warn,authmilter=info,authmilter::explain=debug",
            ))
            .with_writer(std::io::stdout)
            .without_time()
            .with_target(false)
            .with_level(false)
            .with_ansi(false)
            .try_init();
    } else {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(EnvFilter::new(if explain {
                "warn,authmilter::explain=debug"
            } else {
                "warn"
            }))
            .with_writer(std::io::stderr)
            .without_time()
            .with_ansi(false)
            .try_init();
    }
}

fn result_lines(ev: &Evidence) -> Vec<(String, AuthResult, String)> {
    let why = |r: &Option<String>| r.clone().unwrap_or_default();
    let mut out = Vec::new();
    if let Some(i) = &ev.iprev {
        let name = i
            .name
            .as_deref()
            .map(|n| format!("({n}) "))
            .unwrap_or_default();
        out.push((
            "iprev".into(),
            i.result,
            format!("{name}{}", why(&i.reason)),
        ));
    }
    if let Some(s) = &ev.spf_mailfrom {
        out.push((
            "spf".into(),
            s.result,
            format!("smtp.mailfrom={} {}", s.sender, why(&s.reason)),
        ));
    }
    if let Some(s) = &ev.spf_helo {
        out.push((
            "spf-helo".into(),
            s.result,
            format!(
                "smtp.helo={} {}",
                s.sender.strip_prefix("postmaster@").unwrap_or(&s.sender),
                why(&s.reason)
            ),
        ));
    }
    for d in &ev.dkim {
        out.push((
            "dkim".into(),
            d.result,
            format!("d={} s={} {}", d.domain, d.selector, why(&d.reason)),
        ));
    }
    for d in &ev.dkim2 {
        out.push((
            "dkim2".into(),
            d.result,
            format!("d={} i={} {}", d.domain, d.instance, why(&d.reason)),
        ));
    }
    let a = &ev.arc;
    out.push((
        "arc".into(),
        a.result,
        if a.hops.is_empty() {
            why(&a.reason)
        } else {
            format!("sealers {} {}", a.sealers().join(","), why(&a.reason))
        },
    ));
    let m = &ev.dmarc;
    out.push((
        "dmarc".into(),
        m.result,
        format!(
            "header.from={} policy={}{} {}",
            m.from_domain.as_deref().unwrap_or("-"),
            m.published.map(|p| p.as_str()).unwrap_or("absent"),
            m.policy_domain
                .as_deref()
                .map(|d| format!(" (from _dmarc.{d})"))
                .unwrap_or_default(),
            why(&m.reason)
        ),
    ));
    out
}

fn to_text(r: &Report) -> String {
    let mut out = String::new();
    if let Some(p) = &r.plan {
        for (name, index) in &p.deletions {
            out.push_str(&format!(
                "deleted: {name} #{index} (forged: names our authserv-id)\n"
            ));
        }
        for (name, value) in &p.inserts {
            out.push_str(&format!("{name}:{}\n", value));
        }
        out.push('\n');
    }
    if let Some(ev) = &r.evidence {
        out.push_str("results:\n");
        for (check, result, detail) in result_lines(ev) {
            out.push_str(&format!(
                "  {check:<9} {:<10} {}\n",
                result.as_str(),
                detail.trim()
            ));
        }
    }
    let reason = match (&r.at_mail, &r.plan) {
        (Some(_), _) => "SPF rule applied at MAIL FROM (policy.spf_reject_at_mail)".to_string(),
        (None, Some(p)) => p.verdict.reason.clone(),
        (None, None) => "no message".into(),
    };
    if let Some(j) = r.plan.as_ref().and_then(|p| p.verdict.arc.as_ref()) {
        out.push_str(&format!("arc trust: {}\n", arc_trust_text(j)));
    }
    out.push_str(&format!("verdict: {} ({reason})\n", r.action()));
    if let Some((a, why)) = r.plan.as_ref().and_then(|p| p.verdict.would.as_ref()) {
        out.push_str(&format!("not enforced: would be {a} ({why})\n"));
    }
    out.push_str(&format!("reply: {}\n", r.reply()));
    out
}

fn arc_trust_text(j: &crate::policy::ArcJudgement) -> String {
    use crate::policy::ArcJudgement::*;
    match j {
        Override { sealer, instance } => format!(
            "override (trusted_forwarder): sealer {sealer} (i={instance}) recorded dmarc=pass"
        ),
        Temporary { sealer } => format!("keys of trusted sealer {sealer} not fetched"),
        Refused(why) => format!("no override: {why}"),
    }
}

fn to_json(r: &Report) -> serde_json::Value {
    let results: Vec<_> = r
        .evidence
        .as_ref()
        .map(result_lines)
        .unwrap_or_default()
        .into_iter()
        .map(|(check, result, detail)| {
            json!({"method": check, "result": result.as_str(), "detail": detail.trim()})
        })
        .collect();
    let plan = r.plan.as_ref();
    json!({
        "verdict": r.action().as_str(),
        "reason": plan.map(|p| p.verdict.reason.clone()),
        "would": plan.and_then(|p| p.verdict.would.as_ref()).map(|(a, w)| json!({"action": a.as_str(), "reason": w})),
        "reply": r.reply(),
        "authentication_results": r.auth_results().map(|v| v.trim_start().to_string()),
        "added_headers": plan.map(|p| p.inserts.iter().map(|(n, v)| json!({"name": n, "value": v.trim_start()})).collect::<Vec<_>>()),
        "deleted_headers": plan.map(|p| p.deletions.iter().map(|(n, i)| json!({"name": n, "index": i})).collect::<Vec<_>>()),
        "results": results,
        "arc": r.evidence.as_ref().map(|e| json!({
            "result": e.arc.result.as_str(),
            "reason": e.arc.reason,
            "sealers": e.arc.sealers(),
            "trust": plan.and_then(|p| p.verdict.arc.as_ref()).map(arc_trust_text),
        })),
        "dmarc": r.evidence.as_ref().map(|e| json!({
            "result": e.dmarc.result.as_str(),
            "from_domain": e.dmarc.from_domain,
            "policy": e.dmarc.published.map(|p| p.as_str()),
            "effective_policy": e.dmarc.effective.as_str(),
            "testing": e.dmarc.testing,
            "policy_domain": e.dmarc.policy_domain,
            "spf_aligned": e.dmarc.spf_aligned,
            "dkim_aligned": e.dmarc.dkim_aligned,
        })),
    })
}
