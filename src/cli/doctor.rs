//! `authmilter doctor DOMAIN`: the sender side's DNS, checked the way
//! receivers check it (`src/doctor/`), printed as text or JSON.

use crate::doctor;
use clap::Args;
use std::{
    net::IpAddr,
    path::{Path, PathBuf},
    process::ExitCode,
};

/// Options of `authmilter doctor`.
#[derive(Args, Debug, Clone)]
pub struct DoctorArgs {
    /// The domain to check (the one in your From: and MAIL FROM addresses).
    #[arg(value_name = "DOMAIN")]
    pub domain: String,
    /// A sending address: PTR, forward confirmation and SPF are checked for it (repeatable).
    #[arg(long, value_name = "IP")]
    pub ip: Vec<IpAddr>,
    /// A DKIM selector your signer uses (repeatable; default: a list of common ones).
    #[arg(long, value_name = "SELECTOR")]
    pub selector: Vec<String>,
    /// Answer DNS from this zone file instead of the network (repeatable;
    /// names outside every zone answer SERVFAIL). Name servers are then not asked directly.
    #[arg(long = "dns-zone", value_name = "FILE")]
    pub dns_zone: Vec<PathBuf>,
    /// Print the report as JSON (schema in docs/DOCTOR.md).
    #[arg(long)]
    pub json: bool,
    /// Print the explanation of correct findings too.
    #[arg(short, long)]
    pub verbose: bool,
    /// The port name servers are asked at directly (tests run their own).
    #[arg(long, value_name = "PORT", default_value_t = 53, hide = true)]
    pub ns_port: u16,
}

fn fail(e: impl std::fmt::Display) -> ExitCode {
    eprintln!("authmilter doctor: {e}");
    ExitCode::from(2)
}

/// Runs `authmilter doctor`: exit 0 no errors, 1 errors found, 2 the check could not run.
pub fn main(config: Option<&Path>, args: DoctorArgs) -> ExitCode {
    let config = match super::config_or_defaults(config) {
        Ok(c) => c,
        Err(e) => return fail(e),
    };
    let domain = match doctor::normalize_domain(&args.domain) {
        Ok(d) => d,
        Err(e) => return fail(e),
    };
    let mut selectors = Vec::new();
    for s in &args.selector {
        let ok = !s.is_empty()
            && s.split('.').all(|l| {
                !l.is_empty()
                    && l.chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
            });
        if !ok {
            return fail(format!("--selector {s}: not a DKIM selector"));
        }
        selectors.push(s.to_ascii_lowercase());
    }
    let dns = match super::dns_from(&config.dns, &args.dns_zone) {
        Ok(d) => d,
        Err(e) => return fail(e),
    };
    let opts = doctor::Options {
        domain,
        ips: args.ip.clone(),
        selectors,
        delegation: !dns.is_offline(),
        ns_port: args.ns_port,
        ns_timeout: config.dns.timeout,
    };
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return fail(e),
    };
    let report = rt.block_on(doctor::diagnose(&dns, &opts));
    if args.json {
        match serde_json::to_string_pretty(&report) {
            Ok(j) => println!("{j}"),
            Err(e) => return fail(e),
        }
    } else {
        print!("{}", doctor::text::render(&report, args.verbose));
    }
    ExitCode::from(report.exit_code)
}
