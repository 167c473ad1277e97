//! The command line: `run` (the daemon, also the default), `check` (one
//! message offline), `report` (DMARC aggregate reports), `doctor` (a
//! sending domain's DNS), `migrate` (from OpenDKIM/OpenDMARC/policyd-spf),
//! `config check` and `config show`.
//!
//! Exit codes, for every subcommand: 0 success; 1 the work itself failed
//! (the daemon could not start or stopped on an error, a check could not
//! evaluate); 2 bad usage, an invalid configuration or unreadable input.

mod check;
mod config_cmd;
mod doctor;
pub mod eml;
mod migrate;
pub mod report;
mod run;

use clap::{Args, CommandFactory, Parser, Subcommand};
use std::{path::PathBuf, process::ExitCode};

/// The default configuration file.
pub const DEFAULT_CONFIG: &str = "/etc/authmilter/authmilter.toml";

const EXAMPLES: &str = "\
Examples:
  authmilter run -c /etc/authmilter/authmilter.toml
  authmilter config check -c /etc/authmilter/authmilter.toml
  authmilter config show
  authmilter check --client-ip 192.0.2.1 --helo mx.example.com \\
      --mail-from a@example.com --rcpt b@example.org message.eml
  authmilter check --dns-zone capture.zone --explain message.eml
  authmilter report --send            (from cron, daily: every complete day)
  authmilter report --until now --out /tmp/reports
  authmilter doctor example.com --ip 192.0.2.1 --selector s1
  authmilter migrate --write /etc/authmilter/authmilter.toml

Exit codes: 0 success; 1 the work failed (the daemon could not start, a
message could not be evaluated, a report could not be delivered and is
owed; doctor: mistakes found); 2 bad usage, invalid configuration or
unreadable input (doctor: the check could not run).";

/// Inbound mail authentication milter: iprev, SPF, DKIM and DMARC with enforcement.
#[derive(Parser, Debug)]
#[command(name = "authmilter", version, about, after_help = EXAMPLES)]
pub struct Cli {
    /// Configuration file [default: /etc/authmilter/authmilter.toml; `check`
    /// uses the built-in defaults when that file does not exist].
    #[arg(short, long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Same as `authmilter config check` (kept for existing set-ups).
    #[arg(long, hide = true)]
    pub check_config: bool,
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// The subcommands.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the milter daemon (the default when no subcommand is given).
    Run,
    /// Evaluate one message offline, exactly as the daemon would.
    Check(Box<check::CheckArgs>),
    /// Build the DMARC aggregate reports (RFC 9990) and mail them or write them out.
    Report(Box<report::ReportArgs>),
    /// Check a sending domain's DNS (MX, PTR, SPF, DKIM, DMARC) and explain each mistake.
    Doctor(Box<doctor::DoctorArgs>),
    /// Translate an OpenDKIM + OpenDMARC + policyd-spf configuration into authmilter.toml.
    Migrate(Box<migrate::MigrateArgs>),
    /// Validate or print the configuration.
    #[command(subcommand)]
    Config(ConfigCommand),
}

/// `authmilter config …`
#[derive(Subcommand, Debug)]
pub enum ConfigCommand {
    /// Validate the configuration file, print warnings, and exit.
    Check,
    /// Print the effective configuration (the file with every default filled in) as TOML.
    Show(ShowArgs),
}

/// Options of `config show`.
#[derive(Args, Debug)]
pub struct ShowArgs {
    /// Show the built-in defaults instead of reading a file.
    #[arg(long)]
    pub defaults: bool,
}

/// The configuration of `-c FILE`; without `-c`, the default file when it
/// exists, else the built-in defaults (`check`, `doctor`: useful on any machine).
pub(crate) fn config_or_defaults(
    given: Option<&std::path::Path>,
) -> Result<crate::config::Config, crate::config::ConfigError> {
    use crate::config::Config;
    match given {
        Some(p) => Config::load(p),
        None if std::path::Path::new(DEFAULT_CONFIG).exists() => {
            Config::load(std::path::Path::new(DEFAULT_CONFIG))
        }
        None => Ok(Config::default_config()),
    }
}

/// The resolver of `--dns-zone FILE...`: answers from those zone files
/// (names outside them SERVFAIL), or the configured resolver without any.
pub(crate) fn dns_from(
    cfg: &crate::dns::DnsConfig,
    zone_files: &[PathBuf],
) -> Result<crate::dns::Dns, String> {
    if zone_files.is_empty() {
        return crate::dns::Dns::new(cfg);
    }
    let mut zones = crate::dns::zones::ZoneSet::with_origins();
    for f in zone_files {
        zones.load(f)?;
    }
    crate::dns::Dns::from_zones(cfg, zones)
}

/// The clap definition, for the man page.
pub fn command() -> clap::Command {
    Cli::command()
}

/// The man pages, generated from the command definition: `authmilter.1`
/// and one page per subcommand (`authmilter-check.1`, …), as `docs/man/`
/// holds them. Returns (file name, roff text).
pub fn man_pages() -> Vec<(String, String)> {
    fn walk(cmd: clap::Command, name: String, out: &mut Vec<(String, String)>) {
        let cmd = cmd.name(name.clone()).bin_name(name.replace('-', " "));
        let mut text = Vec::new();
        clap_mangen::Man::new(cmd.clone())
            .render(&mut text)
            .expect("rendering to memory cannot fail");
        out.push((
            format!("{name}.1"),
            String::from_utf8(text).expect("clap_mangen writes UTF-8"),
        ));
        for sub in cmd.get_subcommands() {
            if sub.get_name() != "help" {
                walk(sub.clone(), format!("{name}-{}", sub.get_name()), out);
            }
        }
    }
    let mut out = Vec::new();
    let mut cmd = command();
    cmd.build();
    walk(cmd, "authmilter".into(), &mut out);
    out
}

/// Parses argv and runs the subcommand.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let path = cli
        .config
        .clone()
        .unwrap_or_else(|| PathBuf::from(DEFAULT_CONFIG));
    match cli.command {
        _ if cli.check_config => config_cmd::check(&path),
        None | Some(Command::Run) => run::main(path),
        Some(Command::Check(args)) => check::main(cli.config.as_deref(), *args),
        Some(Command::Report(args)) => report::main(&path, *args),
        Some(Command::Doctor(args)) => doctor::main(cli.config.as_deref(), *args),
        Some(Command::Migrate(args)) => migrate::main(*args),
        Some(Command::Config(ConfigCommand::Check)) => config_cmd::check(&path),
        Some(Command::Config(ConfigCommand::Show(a))) => {
            config_cmd::show((!a.defaults).then_some(path.as_path()))
        }
    }
}
