//! The real daemon binary on its own configuration, for tests that need the
//! process (signals, logging, the metrics endpoint): spawn, wait, signal,
//! and a plain HTTP GET.

use nix::{
    sys::signal::{kill, Signal},
    unistd::Pid,
};
use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A free TCP port on 127.0.0.1 (free when asked; the daemon binds it next).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The daemon, killed if the test fails before it stops it.
pub struct Daemon {
    pub child: Child,
    pub log: PathBuf,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Daemon {
    /// Starts `authmilter run -c config`, standard error to `log`; `rust_log`
    /// sets RUST_LOG (`None`: unset, so `log.level` applies).
    pub fn spawn(config: &Path, log: &Path, rust_log: Option<&str>) -> Self {
        Self::spawn_as(&["run"], config, log, rust_log)
    }

    /// The same with `args` before `-c config` (`&[]`: the invocation
    /// without a subcommand, which runs the daemon too).
    pub fn spawn_as(args: &[&str], config: &Path, log: &Path, rust_log: Option<&str>) -> Self {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_authmilter"));
        cmd.args(args)
            .args(["-c", config.to_str().unwrap()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(std::fs::File::create(log).unwrap()));
        match rust_log {
            Some(l) => cmd.env("RUST_LOG", l),
            None => cmd.env_remove("RUST_LOG"),
        };
        Self {
            child: cmd.spawn().unwrap(),
            log: log.to_path_buf(),
        }
    }

    pub fn signal(&self, s: Signal) {
        kill(Pid::from_raw(self.child.id() as i32), s).unwrap();
    }

    /// Everything logged so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits until `text` was logged `n` times.
    pub async fn wait_logged(&self, text: &str, n: usize) {
        wait_for(&format!("{n} × {text:?} in the log"), || {
            self.log_text().matches(text).count() >= n
        })
        .await;
    }

    /// SIGTERM, and the exit status.
    pub fn stop(&mut self) -> std::process::ExitStatus {
        self.signal(Signal::SIGTERM);
        self.child.wait().unwrap()
    }
}

/// Polls `cond` every 50 ms for up to 20 s.
pub async fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let t = Instant::now();
    while !cond() {
        assert!(
            t.elapsed() < Duration::from_secs(20),
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits until something accepts TCP connections at `addr`.
pub async fn wait_listening(addr: SocketAddr) {
    let t = Instant::now();
    while tokio::net::TcpStream::connect(addr).await.is_err() {
        assert!(
            t.elapsed() < Duration::from_secs(20),
            "nothing listens on {addr}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits until the milter at `addr` negotiates: the daemon is serving,
/// its signal handlers in place.
pub async fn wait_serving(addr: SocketAddr) {
    wait_listening(addr).await;
    let conn = super::open(addr).await;
    conn.close().await.unwrap();
}

/// `GET path` over a plain TCP connection: (status code, body).
pub async fn http_get(addr: SocketAddr, path: &str) -> (u16, String) {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let req = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nAccept: text/plain\r\n\r\n");
    s.write_all(req.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut out))
        .await
        .expect("the answer within 10 s")
        .unwrap();
    let text = String::from_utf8(out).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").expect("a header block");
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .expect("a status line");
    (status, body.to_string())
}
