//! Captures of live messages, for replay with `authmilter check`: the
//! message as the milter received it, every DNS answer its evaluation used
//! (a zone file, [`crate::dns::capture`]), and the envelope, verdict and
//! replay command, written to `[capture] directory`, one folder per message.
//!
//! Which messages: one in `sample`, those from `domains` (the From or MAIL
//! FROM domain or a subdomain) or `clients`, and on demand the next ones
//! after `SIGUSR2` ([`request`]). At most `max` captures per start or reload,
//! so a forgotten setting cannot fill the disk.

use crate::dns::capture::Recorder;
use ipnet::IpNet;
use std::{
    net::IpAddr,
    path::{Path, PathBuf},
    sync::atomic::{AtomicU64, AtomicUsize, Ordering},
};

/// Capture settings (set from `[capture]`).
#[derive(Debug, Clone, Default)]
pub struct CaptureConfig {
    /// Where captures go; `None` turns capturing off.
    pub directory: Option<PathBuf>,
    /// Capture one message in this many (0: none by sampling).
    pub sample: u64,
    /// From or MAIL FROM domains (and their subdomains) always captured.
    pub domains: Vec<String>,
    /// Client networks always captured.
    pub clients: Vec<IpNet>,
    /// Most captures written per start or reload.
    pub max: usize,
}

/// Messages still to capture on demand (SIGUSR2), across reloads.
static ON_DEMAND: AtomicU64 = AtomicU64::new(0);

/// Asks for the next message to be captured (`SIGUSR2`).
pub fn request() {
    ON_DEMAND.fetch_add(1, Ordering::SeqCst);
}

/// Decides and writes captures.
#[derive(Debug)]
pub struct Capturer {
    cfg: CaptureConfig,
    seen: AtomicU64,
    written: AtomicUsize,
}

/// The SMTP envelope of one message.
#[derive(Clone, Debug, Default)]
pub struct Envelope {
    pub client_ip: Option<IpAddr>,
    pub client_name: String,
    pub helo: String,
    pub mail_from: String,
    pub rcpt: Vec<String>,
    pub auth: Option<String>,
    /// The SASL mechanism of SMTP AUTH (`{auth_type}`).
    pub auth_type: Option<String>,
    /// The TLS session (`{tls_version}`, `{cipher}`, `{cipher_bits}`).
    pub tls: Option<crate::checks::evidence::TlsInfo>,
    pub queue_id: Option<String>,
}

impl Envelope {
    /// The envelope as `check` options (for the replay line of a capture).
    pub fn as_check_args(&self) -> String {
        let q = |s: &str| {
            if !s.is_empty()
                && s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"@.-_+:=/".contains(&b))
            {
                s.to_string()
            } else {
                format!("'{}'", s.replace('\'', "'\\''"))
            }
        };
        let mut out = vec![format!(
            "--client-ip {}",
            self.client_ip.map(|i| i.to_string()).unwrap_or_default()
        )];
        out.push(format!("--client-name {}", q(&self.client_name)));
        out.push(format!("--helo {}", q(&self.helo)));
        out.push(format!("--mail-from {}", q(&self.mail_from)));
        for r in &self.rcpt {
            out.push(format!("--rcpt {}", q(r)));
        }
        if let Some(a) = &self.auth {
            out.push(format!("--auth {}", q(a)));
        }
        if let Some(a) = &self.auth_type {
            out.push(format!("--auth-type {}", q(a)));
        }
        if let Some(t) = &self.tls {
            out.push(format!("--tls-version {}", q(&t.version)));
            if let Some(c) = &t.cipher {
                out.push(format!("--cipher {}", q(c)));
            }
            if let Some(b) = &t.bits {
                out.push(format!("--cipher-bits {}", q(b)));
            }
        }
        out.join(" ")
    }
}

/// What a capture records besides the message and the DNS answers.
#[derive(Debug, Clone, Default)]
pub struct Record {
    pub queue_id: Option<String>,
    /// `authmilter check` options giving the same envelope.
    pub envelope_args: String,
    /// The verdict, its reason and reply, and the header we added.
    pub summary: String,
    /// The configuration in force (`Config::to_toml`), for the replay.
    pub config: String,
}

fn under(domain: &str, parent: &str) -> bool {
    let d = domain.trim_end_matches('.').to_ascii_lowercase();
    let p = parent.trim_end_matches('.').to_ascii_lowercase();
    d == p || d.ends_with(&format!(".{p}"))
}

impl Capturer {
    /// A capturer, or `None` when no directory is configured.
    pub fn new(cfg: &CaptureConfig) -> Option<Self> {
        cfg.directory.as_ref()?;
        Some(Self {
            cfg: cfg.clone(),
            seen: AtomicU64::new(0),
            written: AtomicUsize::new(0),
        })
    }

    /// Whether this message is captured (asked at end of headers, once).
    pub fn wants(&self, client: Option<IpAddr>, domains: &[String]) -> bool {
        if self.written.load(Ordering::Relaxed) >= self.cfg.max {
            return false;
        }
        let n = self.seen.fetch_add(1, Ordering::Relaxed) + 1;
        let sampled = self.cfg.sample > 0 && n.is_multiple_of(self.cfg.sample);
        let by_client = client.is_some_and(|ip| self.cfg.clients.iter().any(|c| c.contains(&ip)));
        let by_domain = domains
            .iter()
            .any(|d| self.cfg.domains.iter().any(|p| under(d, p)));
        if sampled || by_client || by_domain {
            return true;
        }
        ON_DEMAND
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |v| v.checked_sub(1))
            .is_ok()
    }

    /// Writes one capture in the background; errors are logged.
    pub fn write(&self, message: Vec<u8>, dns: &Recorder, rec: Record) {
        if self.written.fetch_add(1, Ordering::Relaxed) >= self.cfg.max {
            return;
        }
        let Some(dir) = self.cfg.directory.clone() else {
            return;
        };
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        let id: String = rec
            .queue_id
            .clone()
            .unwrap_or_else(|| "noqueue".into())
            .chars()
            .filter(char::is_ascii_alphanumeric)
            .take(32)
            .collect();
        let folder = dir.join(format!("{}.{:06}-{id}", now.as_secs(), now.subsec_micros()));
        let replay = format!(
            "authmilter check -c {} --dns-zone {} {} {}",
            folder.join("authmilter.toml").display(),
            folder.join("dns.zone").display(),
            rec.envelope_args,
            folder.join("message.eml").display()
        );
        let zone = dns.to_zone_file(&[
            format!("authmilter {} DNS capture", env!("CARGO_PKG_VERSION")),
            format!("replay: {replay}"),
        ]);
        let about = format!(
            "queue id: {}\n{}\nreplay (add --explain for the decision trace):\n  {replay}\n",
            rec.queue_id.as_deref().unwrap_or("-"),
            rec.summary
        );
        let config = rec.config;
        let job = move || {
            if let Err(e) = write_files(&folder, &message, &zone, &about, &config) {
                tracing::warn!("capture {}: {e}", folder.display());
            } else {
                tracing::info!(capture = %folder.display(), "message captured");
            }
        };
        match tokio::runtime::Handle::try_current() {
            Ok(h) => {
                h.spawn_blocking(job);
            }
            Err(_) => job(),
        }
    }
}

fn write_files(
    folder: &Path,
    message: &[u8],
    zone: &str,
    about: &str,
    config: &str,
) -> std::io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(folder)?;
    for (name, data) in [
        ("message.eml", message),
        ("dns.zone", zone.as_bytes()),
        ("authmilter.toml", config.as_bytes()),
        ("capture.txt", about.as_bytes()),
    ] {
        use std::io::Write;
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(folder.join(name))?
            .write_all(data)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selection() {
        let cfg = CaptureConfig {
            directory: Some("/nonexistent".into()),
            sample: 3,
            domains: vec!["bank.example".into()],
            clients: vec!["192.0.2.0/24".parse().unwrap()],
            max: 100,
        };
        let c = Capturer::new(&cfg).unwrap();
        let other = "198.51.100.1".parse().ok();
        let picks: Vec<bool> = (0..6)
            .map(|_| c.wants(other, &["x.example".into()]))
            .collect();
        assert_eq!(picks, [false, false, true, false, false, true]);
        assert!(c.wants(other, &["mail.bank.example".into()]));
        assert!(!c.wants(other, &["notbank.example".into()]));
        assert!(c.wants("192.0.2.9".parse().ok(), &[]));
        assert!(Capturer::new(&CaptureConfig::default()).is_none());
        // SIGUSR2: the next message, once.
        request();
        assert!(c.wants(other, &[]));
        assert!(!c.wants(other, &[]));
    }
}
