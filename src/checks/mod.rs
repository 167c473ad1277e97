//! The checks: iprev, SPF, DKIM, From hygiene and DMARC. Each produces plain
//! [`evidence`] data; only this module and `dns` use mail-auth and viaspf.

pub mod address;
pub mod dkim;
pub mod dmarc;
pub mod evidence;
pub mod from;
pub mod iprev;
pub mod spf;

use crate::{dns::Dns, telemetry::metrics as m};
use evidence::{DkimEvidence, DmarcEvidence, IprevEvidence, SpfEvidence};
use std::{net::IpAddr, sync::Arc, time::Duration};

/// Resource limits of one message (set from `[limits]`).
#[derive(Debug, Clone)]
pub struct Limits {
    /// Largest message buffered for DKIM verification (headers and body).
    pub max_message_size: usize,
    /// Most bytes buffered for all in-flight messages together; a message
    /// that would pass it tempfails.
    pub max_buffered_bytes: u64,
    /// Most DKIM signatures verified per message; the rest are reported as `policy`.
    pub max_signatures: usize,
    /// Most PTR names forward-confirmed for iprev.
    pub max_ptr_names: usize,
    /// Longest wait on a check, counted from when its lookups could start;
    /// whatever is still unknown then is `temperror`.
    pub message_deadline: Duration,
}

/// Messages from this size on are verified off the async worker threads.
pub const OFFLOAD_BYTES: usize = 256 * 1024;

/// Runs checks against the shared resolver with the configured limits.
#[derive(Clone)]
pub struct Checker {
    pub dns: Dns,
    spf_config: Arc<viaspf::Config>,
    pub limits: Limits,
}

impl Checker {
    pub fn new(dns: Dns, limits: Limits) -> Self {
        // The whole SPF evaluation gets a budget of a few DNS timeouts.
        let spf_timeout = dns.timeout() * 4;
        Self {
            spf_config: Arc::new(spf::spf_config(spf_timeout)),
            dns,
            limits,
        }
    }

    /// This checker, noting every DNS answer in `recorder` (a capture).
    pub fn recording(&self, recorder: Arc<crate::dns::capture::Recorder>) -> Self {
        Self {
            dns: self.dns.recording(recorder),
            ..self.clone()
        }
    }

    /// iprev for the client address.
    pub async fn iprev(&self, ip: IpAddr) -> IprevEvidence {
        let started = m::timer();
        let ev = iprev::check(&self.dns, ip, self.limits.max_ptr_names).await;
        m::check("iprev", started);
        ev
    }

    /// SPF for MAIL FROM and for HELO, concurrently. The HELO check is `None`
    /// when HELO is not a domain name.
    pub async fn spf(
        &self,
        ip: IpAddr,
        helo: &str,
        mail_from: &str,
    ) -> (SpfEvidence, Option<SpfEvidence>) {
        let started = m::timer();
        let res = self.spf_inner(ip, helo, mail_from).await;
        m::check("spf", started);
        res
    }

    async fn spf_inner(
        &self,
        ip: IpAddr,
        helo: &str,
        mail_from: &str,
    ) -> (SpfEvidence, Option<SpfEvidence>) {
        let cfg = &self.spf_config;
        if mail_from.is_empty() {
            // The MAIL FROM check of the null sender is the HELO check.
            let h = spf::check_helo(&self.dns, cfg, ip, helo).await;
            let helo_ev = spf::helo_is_domain(helo).then(|| h.clone());
            return (h, helo_ev);
        }
        let helo_fut = async {
            if spf::helo_is_domain(helo) {
                Some(spf::check_helo(&self.dns, cfg, ip, helo).await)
            } else {
                None
            }
        };
        let mf_fut = spf::check_mail_from(&self.dns, cfg, ip, mail_from, helo);
        let (mf, h) = tokio::join!(mf_fut, helo_fut);
        (mf, h)
    }

    /// Starts key, policy and alignment lookups as soon as the headers are
    /// known: the DKIM keys, the From domain's policy, and the
    /// Organizational Domain walks that alignment of each DKIM `d=` and of
    /// the SPF domain (`spf_domain`) will need, so end of message finds them
    /// in the per-message memo.
    pub async fn prefetch(
        &self,
        dkim_values: Vec<Vec<u8>>,
        from: from::FromIdentity,
        lookups: dmarc::DmarcLookups,
        spf_domain: Option<String>,
    ) -> dkim::KeyCache {
        let started = m::timer();
        let author = from.domains().first().cloned();
        // One selection: the keys fetched and the identifiers walked are
        // those of the signatures that will be verified.
        let sigs = dkim::selected(&dkim_values, author.as_deref(), self.limits.max_signatures);
        let keys = dkim::fetch_keys(&self.dns, &sigs);
        let policies = async {
            let domains = from.domains();
            for d in &domains {
                lookups.discover(&self.dns, d).await;
            }
            if let [author] = domains.as_slice() {
                let mut ids = dkim::signing_domains(&sigs);
                ids.extend(spf_domain);
                lookups.prefetch_alignment(&self.dns, author, &ids).await;
            }
        };
        let (keys, ()) = tokio::join!(keys, policies);
        m::check("prefetch", started);
        keys
    }

    /// DKIM over the complete message. A large message is parsed, hashed and
    /// verified on a blocking thread (`benches/stall.rs`: a 24 MiB message on
    /// the async workers held the other sessions up to ~150 ms at p99).
    pub async fn dkim(
        &self,
        raw: Vec<u8>,
        values: &[Vec<u8>],
        keys: &dkim::KeyCache,
        author: Option<&str>,
    ) -> Vec<DkimEvidence> {
        let started = m::timer();
        let res = self.dkim_inner(raw, values, keys, author).await;
        m::check("dkim", started);
        res
    }

    async fn dkim_inner(
        &self,
        raw: Vec<u8>,
        values: &[Vec<u8>],
        keys: &dkim::KeyCache,
        author: Option<&str>,
    ) -> Vec<DkimEvidence> {
        let max = self.limits.max_signatures;
        if raw.len() < OFFLOAD_BYTES {
            return dkim::verify(&self.dns, &raw, values, keys, author, max).await;
        }
        let (dns, values, keys) = (self.dns.clone(), values.to_vec(), keys.clone());
        let author = author.map(str::to_string);
        let handle = tokio::runtime::Handle::current();
        let fallback = values.clone();
        tokio::task::spawn_blocking(move || {
            handle.block_on(async {
                dkim::verify(&dns, &raw, &values, &keys, author.as_deref(), max).await
            })
        })
        .await
        .unwrap_or_else(|e| {
            tracing::error!("DKIM verification task failed: {e}");
            dkim::unverified(&fallback, evidence::AuthResult::TempError, "internal error")
        })
    }

    /// DMARC from the other results.
    pub async fn dmarc(
        &self,
        lookups: &dmarc::DmarcLookups,
        input: &dmarc::DmarcInput<'_>,
    ) -> DmarcEvidence {
        let started = m::timer();
        let ev = dmarc::evaluate(&self.dns, lookups, input).await;
        m::check("dmarc", started);
        ev
    }
}
