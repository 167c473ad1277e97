//! authmilter: an inbound mail authentication milter.
//!
//! It checks iprev, SPF, DKIM and DMARC for each message, writes one
//! Authentication-Results header, removes forged ones, and answers accept,
//! reject, quarantine or tempfail.
//!
//! # Layout
//!
//! The module tree follows the data flow:
//!
//! ```text
//! MTA ─milter─▶ milter (thin callbacks) ─▶ session (connection + message state)
//!                 connect: iprev · MAIL: SPF · EOH: DKIM keys, DMARC policy · EOM: DKIM, DMARC
//!                                   │ uses checks ─▶ dns (one shared resolver)
//!                                   ▼ Evidence (plain data)
//!                      policy::decide(&Evidence, trust, &PolicyConfig) -> Verdict   (pure)
//!                                   ▼
//!                      actions::plan / apply -> A-R header, deletions, reply, status
//! ```
//!
//! - [`config`]: strict TOML, validated into an immutable [`config::Config`].
//! - [`listener`]: binding `inet:` / `unix:` sockets (TCP_NODELAY, permissions).
//! - [`stats`]: counters of verdicts, logged on shutdown.
//! - [`systemd`]: `sd_notify` readiness, reload and stop notifications.
//! - [`doctor`]: the sender side: a domain's DNS checked as receivers check
//!   it (`authmilter doctor`), with the same checks and resolver.
//! - [`migrate`]: an OpenDKIM/OpenDMARC/policyd-spf configuration as
//!   `authmilter.toml` (`authmilter migrate`).

pub mod actions;
pub mod capture;
pub mod checks;
pub mod cli;
pub mod config;
pub mod dns;
pub mod doctor;
pub mod listener;
pub mod migrate;
pub mod milter;
pub mod policy;
pub mod reports;
pub mod session;
pub mod stats;
pub mod systemd;
pub mod telemetry;

use checks::Checker;
use config::Config;
use std::{
    future::Future,
    io,
    sync::{Arc, RwLock},
};

/// Everything a connection needs, fixed for the connection's lifetime.
pub struct Runtime {
    pub config: Arc<Config>,
    pub checker: Checker,
    pub stats: Arc<stats::Stats>,
    /// Captures of chosen messages, when `[capture] directory` is set.
    pub capture: Option<capture::Capturer>,
    /// The DMARC report queue, when `[reports] enabled` and the daemon
    /// started it (it outlives reloads).
    pub reports: Option<reports::Recorder>,
    /// BIMI, when `[bimi] enabled` (its mark cache lives as long as the runtime).
    pub bimi: Option<checks::bimi::Bimi>,
}

impl Runtime {
    /// Builds the runtime (including the DNS resolver) from a configuration.
    ///
    /// # Errors
    ///
    /// Fails when the resolver cannot be built.
    pub fn new(config: Config, stats: Arc<stats::Stats>) -> Result<Self, String> {
        let dns = dns::Dns::new(&config.dns)?;
        Ok(Self::with_dns(config, stats, dns))
    }

    /// Builds the runtime around a given resolver (zone files, a capture).
    pub fn with_dns(config: Config, stats: Arc<stats::Stats>, dns: dns::Dns) -> Self {
        Self::with_parts(config, stats, dns, None)
    }

    /// Builds the runtime around a resolver and a report queue.
    pub fn with_parts(
        config: Config,
        stats: Arc<stats::Stats>,
        dns: dns::Dns,
        reports: Option<reports::Recorder>,
    ) -> Self {
        let checker = Checker::new(dns, config.limits.clone());
        // Answers from zone files (`check --dns-zone`) mean offline: BIMI,
        // which would fetch from the network, stays off.
        let bimi = config
            .bimi
            .as_ref()
            .filter(|_| !checker.dns.is_offline())
            .and_then(|c| {
                checks::bimi::Bimi::new(checker.dns.clone(), c.clone())
                    .map_err(|e| tracing::error!("BIMI is off: {e}"))
                    .ok()
            });
        Self {
            bimi,
            capture: capture::Capturer::new(&config.capture),
            config: Arc::new(config),
            checker,
            stats,
            reports,
        }
    }
}

/// The current runtime, swapped on reload. Each connection takes a snapshot
/// when it is negotiated and keeps it until it closes.
pub struct Shared {
    current: RwLock<Arc<Runtime>>,
}

impl Shared {
    pub fn new(rt: Runtime) -> Self {
        Self {
            current: RwLock::new(Arc::new(rt)),
        }
    }

    /// The runtime new connections use.
    pub fn current(&self) -> Arc<Runtime> {
        self.current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Replaces the runtime for new connections.
    pub fn replace(&self, rt: Runtime) {
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(rt);
    }
}

/// Serves the milter protocol on `listener` until `shutdown` completes.
///
/// # Errors
///
/// Returns an error when the listener fails.
///
/// # Examples
///
/// ```no_run
/// # async fn example() -> std::io::Result<()> {
/// use authmilter::{config::Config, stats::Stats, Runtime, Shared};
/// use std::sync::Arc;
/// let config = Config::default_config();
/// let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
/// let rt = Runtime::new(config, Arc::new(Stats::default())).unwrap();
/// authmilter::run(listener::NoDelay(listener), Arc::new(Shared::new(rt)), tokio::signal::ctrl_c()).await
/// # }
/// # use authmilter::listener;
/// ```
pub async fn run(
    listener: impl indymilter::Listener,
    shared: Arc<Shared>,
    shutdown: impl Future,
) -> io::Result<()> {
    let rt = shared.current();
    let config = indymilter::Config {
        max_connections: rt.config.milter.max_connections,
        connection_timeout: rt.config.milter.connection_timeout,
        ..Default::default()
    };
    drop(rt);
    indymilter::run(
        listener::Buffered(listener),
        milter::callbacks(shared),
        config,
        shutdown,
    )
    .await
}

/// One step of the decision trace: `authmilter check --explain` prints these;
/// the daemon logs them at debug level with target `authmilter::explain`.
#[macro_export]
macro_rules! explain {
    ($($arg:tt)*) => {
        tracing::debug!(target: "authmilter::explain", $($arg)*)
    };
}
