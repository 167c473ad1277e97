//! `authmilter run`: config → logging → bind → signals → serve.

use crate::{
    config::Config,
    listener,
    stats::Stats,
    telemetry::{self, metrics as m, LevelChange, LogHandle},
    Runtime, Shared,
};
use std::{path::PathBuf, process::ExitCode, sync::Arc};
use tokio::signal::unix::{signal, SignalKind};
use tracing::{error, info, warn};

/// Runs the daemon with the configuration at `path` until SIGTERM.
pub fn main(path: PathBuf) -> ExitCode {
    let config = match Config::load(&path) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("authmilter: {e}");
            return ExitCode::from(2);
        }
    };
    let log = telemetry::init(&config.log);
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            error!("cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    rt.block_on(serve(path, config, log))
}

async fn serve(path: PathBuf, config: Config, log: LogHandle) -> ExitCode {
    // Signal handlers first, before the socket is bound: a signal before
    // them would take its default action (SIGHUP: exit). Signals that
    // arrive before their task runs wait for it.
    let hup = signal(SignalKind::hangup());
    let usr1 = signal(SignalKind::user_defined1());
    let usr2 = signal(SignalKind::user_defined2());
    let term = signal(SignalKind::terminate());
    for w in config.warnings() {
        warn!("{w}");
    }
    let stats = Arc::new(Stats::default());
    let listener = match listener::bind(&config.milter).await {
        Ok(l) => l,
        Err(e) => {
            error!("cannot listen on {}: {e}", config.milter.socket);
            return ExitCode::FAILURE;
        }
    };
    // The metrics endpoint binds before privileges are dropped, like the socket.
    let metrics = match config.metrics.address {
        None => None,
        Some(addr) => match tokio::net::TcpListener::bind(addr).await {
            Ok(l) => Some(l),
            Err(e) => {
                error!("cannot listen on metrics.address {addr}: {e}");
                return ExitCode::FAILURE;
            }
        },
    };
    let socket = config.milter.socket.clone();
    let drain_timeout = config.milter.drain_timeout;
    if let Err(e) = listener::drop_privileges(
        config.milter.user.as_deref(),
        config.milter.group.as_deref(),
    ) {
        error!("cannot switch to user {:?}: {e}", config.milter.user);
        return ExitCode::FAILURE;
    }
    if let Some(user) = config.milter.user.as_deref() {
        // SIGHUP reads the file again as the unprivileged user.
        if let Err(e) = std::fs::File::open(&path) {
            warn!(
                "{} is not readable by user {user} ({e}): SIGHUP reloads will be refused; \
                 make it readable by that user (e.g. root:{user}, mode 0640)",
                path.display()
            );
        }
    }
    let (listener, close) = listener::Closable::new(listener);
    // After dropping privileges: the report database belongs to the user.
    let recorder = config
        .reports
        .enabled
        .then(|| crate::reports::Recorder::start(&config.reports));
    let schedule = config.reports.clone();
    let runtime = match Runtime::new(config, stats.clone()) {
        Ok(mut r) => {
            r.reports = recorder.clone();
            r
        }
        Err(e) => {
            error!("{e}");
            return ExitCode::FAILURE;
        }
    };
    let shared = Arc::new(Shared::new(runtime));
    if let Some(listener) = metrics {
        let addr = listener.local_addr().ok();
        match m::install() {
            Ok(handle) => {
                let gauges = stats.clone();
                tokio::spawn(m::serve(listener, handle, move || gauges.publish_gauges()));
                if let Some(addr) = addr {
                    info!("metrics at http://{addr}/metrics");
                }
            }
            Err(e) => warn!("metrics are off: {e}"),
        }
    }
    if schedule.enabled && schedule.schedule_daily {
        let dns = shared.current().checker.dns.clone();
        tokio::spawn(crate::reports::run::daily(schedule, dns));
    }
    info!(socket = %socket, version = env!("CARGO_PKG_VERSION"), "authmilter listening");
    crate::systemd::ready();

    // SIGHUP: reload; an invalid file keeps the configuration in force.
    let reload_shared = shared.clone();
    let reload_stats = stats.clone();
    let reload_recorder = recorder.clone();
    tokio::spawn(async move {
        let Ok(mut hup) = hup else {
            return;
        };
        while hup.recv().await.is_some() {
            crate::systemd::reloading();
            let outcome = match Config::load(&path) {
                Ok(c) => {
                    let old = reload_shared.current().config.clone();
                    restart_needed(&old, &c);
                    for w in c.warnings() {
                        warn!("{w}");
                    }
                    let level = (c.log.level != old.log.level).then(|| c.log.level.clone());
                    match Runtime::new(c, reload_stats.clone()) {
                        Ok(mut r) => {
                            r.reports = reload_recorder.clone();
                            reload_shared.replace(r);
                            if let Some(level) = level {
                                match log.set_level(&level) {
                                    LevelChange::Applied => info!("log.level is now {level}"),
                                    LevelChange::OverriddenByEnv => warn!(
                                        "log.level changed to {level}, but RUST_LOG is set and stays in force"
                                    ),
                                    LevelChange::Failed(e) => {
                                        error!("cannot change log.level to {level}: {e}")
                                    }
                                }
                            }
                            info!("configuration reloaded from {}", path.display());
                            "ok"
                        }
                        Err(e) => {
                            error!("reload refused: {e}; keeping the old configuration");
                            "refused"
                        }
                    }
                }
                Err(e) => {
                    error!("reload refused: {e}; keeping the old configuration");
                    "refused"
                }
            };
            metrics::counter!(m::CONFIG_RELOADS, "outcome" => outcome).increment(1);
            crate::systemd::ready();
        }
    });
    // SIGUSR2: capture the next message (needs `[capture] directory`).
    tokio::spawn(async move {
        let Ok(mut usr2) = usr2 else {
            return;
        };
        while usr2.recv().await.is_some() {
            crate::capture::request();
            info!("SIGUSR2: the next message will be captured (if [capture] directory is set)");
        }
    });
    let usr_stats = stats.clone();
    tokio::spawn(async move {
        let Ok(mut usr1) = usr1 else {
            return;
        };
        while usr1.recv().await.is_some() {
            info!("stats: {}", usr_stats.summary());
        }
    });

    // SIGTERM: stop accepting, let in-flight messages finish (bounded), then stop.
    let drain_stats = stats.clone();
    let shutdown = async move {
        let mut term = term.expect("SIGTERM handler");
        tokio::select! {
            _ = term.recv() => info!("SIGTERM: stopping"),
            _ = tokio::signal::ctrl_c() => info!("SIGINT: stopping"),
        }
        crate::systemd::stopping();
        close.close();
        let deadline = tokio::time::Instant::now() + drain_timeout;
        let in_flight = || {
            drain_stats
                .in_flight
                .load(std::sync::atomic::Ordering::SeqCst)
        };
        if in_flight() > 0 {
            info!(
                "draining {} in-flight messages (up to {}s)",
                in_flight(),
                drain_timeout.as_secs()
            );
        }
        while in_flight() > 0 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        if in_flight() > 0 {
            warn!(
                "drain timeout: {} messages still in flight are dropped",
                in_flight()
            );
        }
    };
    let result = crate::run(listener, shared, shutdown).await;
    if let Some(rec) = &recorder {
        // Everything acknowledged to the MTA is written before exit.
        rec.shutdown(std::time::Duration::from_secs(10)).await;
    }
    info!("stats: {}", stats.summary());
    if let crate::config::SocketSpec::Unix(p) = &socket {
        let _ = std::fs::remove_file(p);
    }
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            error!("milter stopped: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Warns about changed settings that a reload cannot apply.
fn restart_needed(old: &Config, new: &Config) {
    let changed = [
        ("milter.socket", old.milter.socket != new.milter.socket),
        ("log.format", old.log.format != new.log.format),
        ("log.target", old.log.target != new.log.target),
        (
            "metrics.address",
            old.metrics.address != new.metrics.address,
        ),
        ("[reports]", old.reports != new.reports),
    ];
    for (key, _) in changed.iter().filter(|(_, c)| *c) {
        warn!("{key} changed: takes effect after a restart");
    }
}
