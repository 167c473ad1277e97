//! The checks: iprev, SPF, DKIM, ARC, DKIM2, From hygiene and DMARC. Each
//! produces plain [`evidence`] data; only this module and `dns` use
//! mail-auth and viaspf.

pub mod address;
pub mod arc;
pub mod bimi;
pub mod dkim;
pub mod dkim2;
pub mod dmarc;
pub mod evidence;
pub mod from;
pub mod iprev;
pub mod ptr;
pub mod spf;

use crate::{dns::Dns, telemetry::metrics as m};
use evidence::{
    ArcEvidence, AuthResult, Dkim2Evidence, DkimEvidence, DmarcEvidence, IprevEvidence, SpfEvidence,
};
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
        arc_fields: Vec<(String, Vec<u8>)>,
        dkim2_values: Vec<Vec<u8>>,
        from: from::FromIdentity,
        lookups: dmarc::DmarcLookups,
        spf_domain: Option<String>,
    ) -> dkim::KeyCache {
        let started = m::timer();
        let author = from.domains().first().cloned();
        // One selection: the keys fetched and the identifiers walked are
        // those of the signatures that will be verified.
        let sigs = dkim::selected(&dkim_values, author.as_deref(), self.limits.max_signatures);
        // The ARC and DKIM2 keys come into the same per-message cache.
        let mut names: Vec<(String, String)> =
            sigs.iter().map(|s| (s.s.clone(), s.d.clone())).collect();
        names.extend(arc::key_names(&arc_fields).unwrap_or_default());
        names.extend(dkim2::key_names(&dkim2_values));
        let keys = dkim::fetch_named(&self.dns, &names);
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

    /// DKIM, ARC and DKIM2 over the complete message, parsed once. A large
    /// message is parsed, hashed and verified on a blocking thread
    /// (`benches/stall.rs`: a 24 MiB message on the async workers held the
    /// other sessions up to ~150 ms at p99).
    pub async fn authenticate(&self, input: MessageInput) -> Authentication {
        let started = m::timer();
        let values = input.dkim_values.clone();
        let res = if input.raw.len() < OFFLOAD_BYTES {
            authenticate(&self.dns, &input, self.limits.max_signatures).await
        } else {
            let dns = self.dns.clone();
            let max = self.limits.max_signatures;
            let handle = tokio::runtime::Handle::current();
            tokio::task::spawn_blocking(move || {
                handle.block_on(async { authenticate(&dns, &input, max).await })
            })
            .await
            .unwrap_or_else(|e| {
                tracing::error!("verification task failed: {e}");
                Authentication {
                    dkim: dkim::unverified(&values, AuthResult::TempError, "internal error"),
                    arc: ArcEvidence::fail("internal error", true, Vec::new()),
                    dkim2: Vec::new(),
                }
            })
        };
        m::check("dkim", started);
        res
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

/// What [`Checker::authenticate`] needs of one message.
pub struct MessageInput {
    /// Header block and body, CRLF line ends.
    pub raw: Vec<u8>,
    /// The DKIM-Signature values the session saw, in order.
    pub dkim_values: Vec<Vec<u8>>,
    pub keys: dkim::KeyCache,
    pub author: Option<String>,
    /// The SMTP envelope, for DKIM2's chain of custody.
    pub mail_from: String,
    pub rcpts: Vec<String>,
}

/// The signature-based results of one message.
#[derive(Clone, Debug)]
pub struct Authentication {
    pub dkim: Vec<DkimEvidence>,
    pub arc: ArcEvidence,
    pub dkim2: Vec<Dkim2Evidence>,
}

async fn authenticate(dns: &Dns, input: &MessageInput, max: usize) -> Authentication {
    let Some(mut msg) = mail_auth::AuthenticatedMessage::parse(&input.raw) else {
        return Authentication {
            dkim: dkim::unverified(
                &input.dkim_values,
                AuthResult::PermError,
                "message could not be parsed",
            ),
            arc: arc::unparsable(&input.raw),
            dkim2: Vec::new(),
        };
    };
    let arc = arc::verify(dns, &input.raw, &msg, &input.keys).await;
    let dkim2 = dkim2::verify(dns, &msg, &input.keys, &input.mail_from, &input.rcpts).await;
    let dkim = dkim::verify_parsed(
        dns,
        &input.raw,
        &mut msg,
        &input.dkim_values,
        &input.keys,
        input.author.as_deref(),
        max,
    )
    .await;
    Authentication { dkim, arc, dkim2 }
}
