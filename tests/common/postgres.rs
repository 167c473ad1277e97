//! A throw-away PostgreSQL server for the report store tests: Debian's
//! `postgresql` binaries, a data directory in a temp folder, listening on
//! 127.0.0.1 at a free port, stopped (by PID) when dropped. As root it runs
//! as the `postgres` user (the server refuses to run as root).
//!
//! `AUTHMILTER_REQUIRE_POSTGRES=1` (set by scripts/test-all) turns a
//! missing installation into a failure instead of a loud skip.

use std::{path::PathBuf, process::Command};

pub struct Postgres {
    pub url: String,
    dir: tempfile::TempDir,
    bin: PathBuf,
    as_user: Option<&'static str>,
}

fn bin_dir() -> Option<PathBuf> {
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
        .filter(|p| p.join("initdb").exists() && p.join("pg_ctl").exists())
        .collect();
    versions.sort();
    versions.pop()
}

fn run(as_user: Option<&str>, program: &PathBuf, args: &[&str]) -> std::process::Output {
    let mut cmd = match as_user {
        Some(u) => {
            let mut c = Command::new("runuser");
            c.args(["-u", u, "--"]).arg(program);
            c
        }
        None => Command::new(program),
    };
    cmd.args(args).output().expect("run a PostgreSQL program")
}

impl Postgres {
    /// Starts a server, or `None` (after saying so) when PostgreSQL is not
    /// installed and not required.
    pub fn start(test: &str) -> Option<Self> {
        let Some(bin) = bin_dir() else {
            if std::env::var_os("AUTHMILTER_REQUIRE_POSTGRES").is_some() {
                panic!("{test}: PostgreSQL is required (AUTHMILTER_REQUIRE_POSTGRES) but /usr/lib/postgresql/*/bin is missing: apt-get install postgresql");
            }
            eprintln!("SKIPPED {test}: PostgreSQL is not installed (apt-get install postgresql)");
            return None;
        };
        let root = unsafe { libc::geteuid() } == 0;
        let as_user = root.then_some("postgres");
        let dir = tempfile::Builder::new()
            .prefix("authmilter-pg")
            .tempdir()
            .unwrap();
        if root {
            Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(dir.path())
                .status()
                .unwrap();
        }
        let data = dir.path().join("data");
        let data_s = data.to_str().unwrap();
        let out = run(
            as_user,
            &bin.join("initdb"),
            &[
                "-D",
                data_s,
                "-U",
                "authmilter",
                "--auth=trust",
                "-E",
                "UTF8",
            ],
        );
        assert!(
            out.status.success(),
            "initdb: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let port = super::daemon::free_port();
        let opts = format!(
            "-c listen_addresses=127.0.0.1 -c port={port} -c unix_socket_directories={} -c fsync=off",
            dir.path().display()
        );
        let log = dir.path().join("log");
        let out = run(
            as_user,
            &bin.join("pg_ctl"),
            &[
                "-D",
                data_s,
                "-l",
                log.to_str().unwrap(),
                "-o",
                &opts,
                "-w",
                "-t",
                "60",
                "start",
            ],
        );
        assert!(
            out.status.success(),
            "pg_ctl start: {}{}",
            String::from_utf8_lossy(&out.stderr),
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        Some(Self {
            url: format!("postgres://authmilter@127.0.0.1:{port}/postgres"),
            dir,
            bin,
            as_user,
        })
    }

    /// A fresh database on this server (one per test keeps them apart).
    pub async fn database(&self, name: &str) -> String {
        let (client, conn) = tokio_postgres::connect(&self.url, tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(conn);
        client
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .unwrap();
        self.url.replace("/postgres", &format!("/{name}"))
    }

    /// The server's PID (from postmaster.pid).
    pub fn pid(&self) -> Option<i32> {
        std::fs::read_to_string(self.dir.path().join("data/postmaster.pid"))
            .ok()?
            .lines()
            .next()?
            .trim()
            .parse()
            .ok()
    }

    /// Stops the server (fast shutdown), waiting for it.
    pub fn stop(&self) {
        let data = self.dir.path().join("data");
        let _ = run(
            self.as_user,
            &self.bin.join("pg_ctl"),
            &["-D", data.to_str().unwrap(), "-m", "fast", "-w", "stop"],
        );
    }

    /// Starts it again after [`Self::stop`].
    pub fn restart(&self) {
        let data = self.dir.path().join("data");
        let port: u16 = self
            .url
            .rsplit(':')
            .next()
            .unwrap()
            .split('/')
            .next()
            .unwrap()
            .parse()
            .unwrap();
        let opts = format!(
            "-c listen_addresses=127.0.0.1 -c port={port} -c unix_socket_directories={} -c fsync=off",
            self.dir.path().display()
        );
        let log = self.dir.path().join("log");
        let out = run(
            self.as_user,
            &self.bin.join("pg_ctl"),
            &[
                "-D",
                data.to_str().unwrap(),
                "-l",
                log.to_str().unwrap(),
                "-o",
                &opts,
                "-w",
                "start",
            ],
        );
        assert!(out.status.success(), "pg_ctl start");
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        self.stop();
        if let Some(pid) = self.pid() {
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
    }
}
