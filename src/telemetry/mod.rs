//! Logging set-up, done once in `main`, and the Prometheus [`metrics`].
//!
//! Logging policy: `error` means authmilter cannot provide service; `warn`
//! means misconfiguration or peer misbehaviour; `info` is one line per message
//! verdict (plus start, reload and stop); `debug` and `trace` are for the rest.
//! The lines and their fields are documented in `docs/LOGS.md`.

pub mod metrics;

use crate::config::{LogConfig, LogFormat, LogTarget};
use std::{io::IsTerminal, path::Path};
use tracing_subscriber::{
    fmt, layer::SubscriberExt, reload, util::SubscriberInitExt, EnvFilter, Registry,
};

/// The socket journald receives native-protocol messages on.
pub const JOURNALD_SOCKET: &str = "/run/systemd/journal/socket";

/// What changing the level on reload did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LevelChange {
    /// The new filter is in force.
    Applied,
    /// `RUST_LOG` is set: it stays in force.
    OverriddenByEnv,
    /// No subscriber of ours is installed (e.g. in tests), or it is gone.
    Failed(String),
}

/// Changes the filter of the running process (SIGHUP reloads).
pub struct LogHandle {
    filter: Option<reload::Handle<EnvFilter, Registry>>,
    /// `RUST_LOG` was set (and valid): it wins over `log.level`.
    from_env: bool,
}

impl LogHandle {
    /// Applies `level` (already validated as a filter) unless `RUST_LOG` wins.
    pub fn set_level(&self, level: &str) -> LevelChange {
        if self.from_env {
            return LevelChange::OverriddenByEnv;
        }
        let Some(h) = &self.filter else {
            return LevelChange::Failed("logging is not set up".into());
        };
        let filter = match EnvFilter::try_new(level) {
            Ok(f) => f,
            Err(e) => return LevelChange::Failed(e.to_string()),
        };
        match h.reload(filter) {
            Ok(()) => LevelChange::Applied,
            Err(e) => LevelChange::Failed(e.to_string()),
        }
    }
}

/// Installs the global subscriber: the level from `RUST_LOG` when set,
/// else `log.level`, reloadable; lines to standard error (text or JSON) or
/// to journald. journald unavailable is a warning, never a failure.
pub fn init(cfg: &LogConfig) -> LogHandle {
    let env = EnvFilter::try_from_default_env().ok();
    let from_env = env.is_some();
    let filter = env.unwrap_or_else(|| EnvFilter::new(&cfg.level));
    let (filter, handle) = reload::Layer::new(filter);
    let mut warnings = Vec::new();
    let journald = match cfg.target {
        LogTarget::Stderr => None,
        LogTarget::Journald if !Path::new(JOURNALD_SOCKET).exists() => {
            warnings.push(format!(
                "log.target = \"journald\" but {JOURNALD_SOCKET} does not exist: logging to standard error"
            ));
            None
        }
        LogTarget::Journald => match tracing_journald::layer() {
            Ok(l) => Some(
                l.with_syslog_identifier("authmilter".into())
                    .with_field_prefix(None),
            ),
            Err(e) => {
                warnings.push(format!(
                    "log.target = \"journald\" but the journal cannot be reached ({e}): logging to standard error"
                ));
                None
            }
        },
    };
    let to_stderr = journald.is_none();
    let json = (to_stderr && cfg.format == LogFormat::Json)
        .then(|| fmt::layer().json().with_writer(std::io::stderr));
    let text = (to_stderr && cfg.format == LogFormat::Text).then(|| {
        fmt::layer()
            .with_writer(std::io::stderr)
            .with_ansi(std::io::stderr().is_terminal())
    });
    let installed = tracing_subscriber::registry()
        .with(filter)
        .with(journald)
        .with(json)
        .with(text)
        .try_init()
        .is_ok();
    for w in warnings {
        tracing::warn!("{w}");
    }
    LogHandle {
        filter: installed.then_some(handle),
        from_env,
    }
}
