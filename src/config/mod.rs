//! Configuration: a strict TOML file turned into an immutable, typed [`Config`].
//!
//! Layout: [`file`] holds the raw serde structs (unknown keys rejected),
//! [`validate`] turns them into typed values, and errors always name the file,
//! the line (when it can be found) and the key.

pub mod file;
mod show;
pub mod validate;

use crate::policy::PolicyConfig;
// The settings of the layers below, which own their types: config builds
// them, nothing below imports config.
pub use crate::{
    actions::HeaderConfig,
    capture::CaptureConfig,
    checks::{arc::seal::SealConfig, dkim2::Dkim2Config, Limits},
    dns::DnsConfig,
    reports::{FailureConfig, ReportsConfig},
};
use std::{
    fmt,
    path::{Path, PathBuf},
    time::Duration,
};

/// Default milter socket: clear of OpenDKIM's 8891 and OpenDMARC's 8893.
pub const DEFAULT_SOCKET: &str = "inet:127.0.0.1:8897";

/// The whole, validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// The file this configuration was read from, if any.
    pub source: Option<PathBuf>,
    pub milter: MilterConfig,
    pub dns: DnsConfig,
    pub limits: Limits,
    pub policy: PolicyConfig,
    pub log: LogConfig,
    pub capture: CaptureConfig,
    pub metrics: MetricsConfig,
    /// ARC sealing (`[arc] seal = true`); trusted sealers are in `policy.arc`.
    pub seal: Option<SealConfig>,
    pub dkim2: Dkim2Config,
    /// DMARC aggregate and failure reports (`[reports]`).
    pub reports: ReportsConfig,
    /// What the headers record beyond the checks (`[results]`,
    /// `[spf] received_spf_header`).
    pub headers: HeaderConfig,
    /// BIMI (`[bimi] enabled = true`), with its certificate files read.
    pub bimi: Option<crate::checks::bimi::BimiConfig>,
}

/// Where and how the milter listens.
#[derive(Debug, Clone)]
pub struct MilterConfig {
    pub socket: SocketSpec,
    pub socket_owner: Option<String>,
    pub socket_group: Option<String>,
    pub socket_mode: Option<u32>,
    /// The authserv-id written into (and recognised in) Authentication-Results.
    pub authserv_id: String,
    /// Further authserv-ids whose incoming headers are treated as forged.
    pub authserv_aliases: Vec<String>,
    pub max_connections: usize,
    pub connection_timeout: Duration,
    /// How long SIGTERM waits for in-flight messages before closing sessions.
    pub drain_timeout: Duration,
    /// Unprivileged user and group to switch to after binding (when started as root).
    pub user: Option<String>,
    pub group: Option<String>,
}

/// A milter socket specification as Postfix and Sendmail write it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SocketSpec {
    /// `inet:HOST:PORT` (HOST may be a bracketed IPv6 address).
    Inet { host: String, port: u16 },
    /// `unix:/path` (also `local:/path`).
    Unix(PathBuf),
}

impl fmt::Display for SocketSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Inet { host, port } if host.contains(':') => write!(f, "inet:[{host}]:{port}"),
            Self::Inet { host, port } => write!(f, "inet:{host}:{port}"),
            Self::Unix(p) => write!(f, "unix:{}", p.display()),
        }
    }
}

/// Logging settings.
#[derive(Debug, Clone)]
pub struct LogConfig {
    /// A `tracing` filter directive such as `info` or `authmilter=debug`.
    pub level: String,
    pub format: LogFormat,
    pub target: LogTarget,
}

/// How log lines are written to standard error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

/// Where log lines go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogTarget {
    Stderr,
    /// The systemd journal, with each field as a journal field (standard
    /// error when the journal's socket is missing).
    Journald,
}

/// The Prometheus endpoint.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MetricsConfig {
    /// Where `/metrics` is served; `None`: no endpoint, no recording.
    pub address: Option<std::net::SocketAddr>,
}

/// A configuration error, naming the file, line and key where possible.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{file}: cannot read: {source}")]
    Read {
        file: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{file}{}: {message}", line.map(|l| format!(":{l}")).unwrap_or_default())]
    Syntax {
        file: String,
        line: Option<usize>,
        message: String,
    },
    #[error("{file}{}: key `{key}`: {message}", line.map(|l| format!(":{l}")).unwrap_or_default())]
    Invalid {
        file: String,
        line: Option<usize>,
        key: String,
        message: String,
    },
}

/// A non-fatal remark about a configuration that is probably a mistake.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigWarning(pub String);

impl fmt::Display for ConfigWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Config {
    /// Reads and validates a configuration file.
    ///
    /// # Errors
    ///
    /// Returns [`ConfigError`] naming the file, line and key of the first problem.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            file: path.display().to_string(),
            source,
        })?;
        let mut config = Self::parse(&text, &path.display().to_string())?;
        config.source = Some(path.to_path_buf());
        Ok(config)
    }

    /// Parses configuration text; `file` is only used in error messages.
    ///
    /// # Errors
    ///
    /// Returns [`ConfigError`] for syntax errors, unknown keys and invalid values.
    pub fn parse(text: &str, file: &str) -> Result<Self, ConfigError> {
        let raw: file::RawConfig = toml::from_str(text).map_err(|e| {
            let line = e.span().map(|s| line_of(text, s.start));
            ConfigError::Syntax {
                file: file.to_string(),
                line,
                message: e.message().trim().to_string(),
            }
        })?;
        validate::validate(raw, text, file)
    }

    /// The built-in defaults, as documented in `conf/authmilter.toml`.
    pub fn default_config() -> Self {
        Self::parse("", "<defaults>").expect("defaults are valid")
    }

    /// Remarks about settings that are legal but probably wrong.
    pub fn warnings(&self) -> Vec<ConfigWarning> {
        let mut w = Vec::new();
        if self.milter.authserv_id.trim().is_empty() {
            w.push(ConfigWarning(
                "milter.authserv_id is empty: forged Authentication-Results cannot be recognised"
                    .into(),
            ));
        }
        for net in &self.policy.trusted_networks {
            if validate::is_public_network(net) {
                w.push(ConfigWarning(format!(
                    "policy.trusted_networks includes public address space {net}: mail from there skips enforcement"
                )));
            }
        }
        if self.policy.mode == crate::policy::Mode::Monitor {
            w.push(ConfigWarning(
                "policy.mode = \"monitor\": verdicts are logged and labelled but never enforced"
                    .into(),
            ));
        }
        if let SocketSpec::Inet { host, .. } = &self.milter.socket {
            if host == "0.0.0.0" || host == "::" || host == "*" {
                w.push(ConfigWarning(format!(
                    "milter.socket listens on all interfaces ({host}): anyone who can reach it can query the milter"
                )));
            }
        }
        if let Some(addr) = self.metrics.address.filter(|a| !a.ip().is_loopback()) {
            w.push(ConfigWarning(format!(
                "metrics.address {addr} is not a loopback address: anyone who can reach it can read the metrics"
            )));
        }
        w
    }
}

/// 1-based line number of a byte offset.
pub(crate) fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].matches('\n').count() + 1
}

/// Finds the line where `key` is set inside `[section]` (or a sub-table of it).
pub(crate) fn locate_key(text: &str, section: &str, key: &str) -> Option<usize> {
    let mut current = String::new();
    for (i, line) in text.lines().enumerate() {
        let t = line.trim();
        if let Some(h) = t.strip_prefix("[[").and_then(|s| s.split("]]").next()) {
            current = h.trim().to_string();
            continue;
        }
        if let Some(h) = t.strip_prefix('[').and_then(|s| s.split(']').next()) {
            current = h.trim().to_string();
            continue;
        }
        let in_section = current == section || current.starts_with(&format!("{section}."));
        if in_section {
            if let Some(rest) = t.strip_prefix(key) {
                if rest.trim_start().starts_with('=') {
                    return Some(i + 1);
                }
            }
        }
    }
    None
}

#[cfg(test)]
mod tests;
