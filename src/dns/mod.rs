//! One shared DNS resolver for every check.
//!
//! A thin layer over hickory-resolver (through mail-auth's
//! `MessageAuthenticator`, so DKIM verification shares the same resolver).
//! Answers are classified the way the authentication RFCs need them:
//! NXDOMAIN, NODATA, or a temporary failure.
//!
//! One cache: answers, positive and negative (NXDOMAIN, NODATA: the SOA
//! minimum, RFC 2308), are kept by (type, lower-case name) for their TTL,
//! capped by `dns.max_ttl` and `dns.negative_max_ttl`; temporary failures are
//! never kept. The cache is bounded by the bytes it holds (`dns.cache_bytes`),
//! not by its number of entries, so a flood of names pointing at 64 KiB TXT
//! records cannot pin memory. hickory's own cache is off (size 0): it would
//! hold the same answers a second time. A hit skips hickory's lookup path
//! entirely (name building, locks, timers).

pub mod capture;
mod spf_lookup;
pub mod zones;

use crate::telemetry::metrics as m;
use hickory_resolver::{
    config::{ConnectionConfig, NameServerConfig, ProtocolConfig, ResolverConfig, ResolverOpts},
    net::{DnsError, NetError},
    proto::{
        op::ResponseCode,
        rr::{Name, RData, RecordType},
    },
};
use mail_auth::MessageAuthenticator;
use std::{
    fmt,
    net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr},
    sync::Arc,
    time::{Duration, Instant},
};

/// DNS resolver settings (set from `[dns]`).
#[derive(Debug, Clone)]
pub struct DnsConfig {
    /// Explicit name servers; empty means the system resolver configuration.
    pub nameservers: Vec<SocketAddr>,
    pub timeout: Duration,
    pub attempts: usize,
    /// Entries the DNS cache expects to hold (a sizing hint).
    pub cache_size: u64,
    /// Bytes the DNS cache may hold: its bound.
    pub cache_bytes: u64,
    pub max_ttl: Duration,
    pub negative_max_ttl: Duration,
}

/// Why a lookup produced no records.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LookupError {
    /// The name does not exist (RCODE 3).
    NxDomain,
    /// The name exists but has no records of this type.
    NoData,
    /// SERVFAIL, REFUSED, timeout, network error: a later attempt may succeed.
    Temporary(String),
}

impl LookupError {
    /// NXDOMAIN or NODATA: a final "no such records".
    pub fn is_not_found(&self) -> bool {
        matches!(self, Self::NxDomain | Self::NoData)
    }
}

impl fmt::Display for LookupError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NxDomain => f.write_str("NXDOMAIN"),
            Self::NoData => f.write_str("no records"),
            Self::Temporary(e) => write!(f, "temporary DNS failure: {e}"),
        }
    }
}

/// A cached answer.
#[derive(Clone)]
enum Cached {
    Found(Arc<[RData]>),
    NxDomain,
    NoData,
}

/// Answers by (type, lower-case name), with the instant they expire.
type Key = (RecordType, String);
type Entry = (Instant, Cached);

/// Weighs an entry by about the bytes it holds.
#[derive(Clone)]
struct Bytes;

impl quick_cache::Weighter<Key, Entry> for Bytes {
    fn weight(&self, key: &Key, val: &Entry) -> u64 {
        let data: usize = match &val.1 {
            Cached::Found(rs) => rs.iter().map(rdata_bytes).sum(),
            _ => 0,
        };
        (64 + key.1.len() + data) as u64
    }
}

/// The wire size of a record's data, roughly.
fn rdata_bytes(r: &RData) -> usize {
    match r {
        RData::TXT(t) => t.txt_data.iter().map(|s| s.len() + 1).sum::<usize>() + 16,
        _ => 48,
    }
}

type Front = quick_cache::sync::Cache<Key, Entry, Bytes>;

/// Where answers come from.
#[derive(Clone)]
enum Source {
    /// The network, through hickory-resolver.
    Resolver,
    /// Zone files, without a network (`authmilter check --dns-zone`).
    Zones(Arc<zones::ZoneSet>),
}

/// The shared resolver.
#[derive(Clone)]
pub struct Dns {
    auth: Arc<MessageAuthenticator>,
    front: Arc<Front>,
    source: Source,
    /// Where every answer of one evaluation is noted (a DNS capture).
    recorder: Option<Arc<capture::Recorder>>,
    timeout: Duration,
    max_ttl: Duration,
    negative_max_ttl: Duration,
}

impl fmt::Debug for Dns {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Dns")
            .field("timeout", &self.timeout)
            .finish()
    }
}

impl Dns {
    /// Builds the resolver from configuration: explicit name servers, or the
    /// system's `/etc/resolv.conf` when none are given.
    ///
    /// # Errors
    ///
    /// Fails when the system configuration cannot be read.
    pub fn new(cfg: &DnsConfig) -> Result<Self, String> {
        Self::build(cfg, Source::Resolver)
    }

    /// A resolver answering only from `zones`, never from the network:
    /// names outside every zone are a temporary failure (SERVFAIL).
    ///
    /// # Errors
    ///
    /// Fails when mail-auth's authenticator cannot be built.
    pub fn from_zones(cfg: &DnsConfig, zones: zones::ZoneSet) -> Result<Self, String> {
        Self::build(cfg, Source::Zones(Arc::new(zones)))
    }

    /// This resolver (same cache), noting every answer in `recorder`.
    pub fn recording(&self, recorder: Arc<capture::Recorder>) -> Self {
        Self {
            recorder: Some(recorder),
            ..self.clone()
        }
    }

    fn build(cfg: &DnsConfig, source: Source) -> Result<Self, String> {
        let (config, mut opts) = if matches!(source, Source::Zones(_)) {
            // mail-auth wants a resolver; it never queries it (keys are
            // fetched here), and with no servers it could not.
            (
                ResolverConfig::from_parts(None, vec![], vec![]),
                ResolverOpts::default(),
            )
        } else if cfg.nameservers.is_empty() {
            hickory_resolver::system_conf::read_system_conf()
                .map_err(|e| format!("cannot read the system resolver configuration: {e}"))?
        } else {
            let servers = cfg
                .nameservers
                .iter()
                .map(|sa| {
                    let mut udp = ConnectionConfig::new(ProtocolConfig::Udp);
                    udp.port = sa.port();
                    let mut tcp = ConnectionConfig::new(ProtocolConfig::Tcp);
                    tcp.port = sa.port();
                    NameServerConfig::new(sa.ip(), true, vec![udp, tcp])
                })
                .collect();
            (
                ResolverConfig::from_parts(None, vec![], servers),
                ResolverOpts::default(),
            )
        };
        opts.timeout = cfg.timeout;
        opts.attempts = cfg.attempts;
        // One cache: ours, weighed by bytes (see the module doc).
        opts.cache_size = 0;
        opts.positive_max_ttl = Some(cfg.max_ttl);
        opts.negative_max_ttl = Some(cfg.negative_max_ttl);
        opts.positive_min_ttl = None;
        opts.negative_min_ttl = None;
        opts.ndots = 0;
        opts.edns0 = true;
        opts.try_tcp_on_error = true;
        opts.use_hosts_file = hickory_resolver::config::ResolveHosts::Never;
        opts.recursion_desired = true;
        let auth = MessageAuthenticator::new(config, opts)
            .map_err(|e| format!("cannot build the DNS resolver: {e}"))?;
        Ok(Self {
            auth: Arc::new(auth),
            front: Arc::new(Front::with_weighter(
                cfg.cache_size.max(1) as usize,
                cfg.cache_bytes.max(4096),
                Bytes,
            )),
            source,
            recorder: None,
            timeout: cfg.timeout,
            max_ttl: cfg.max_ttl,
            negative_max_ttl: cfg.negative_max_ttl,
        })
    }

    /// mail-auth's authenticator, sharing this resolver and its cache.
    pub fn authenticator(&self) -> &MessageAuthenticator {
        &self.auth
    }

    /// The per-query timeout.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    async fn lookup(&self, name: &str, rtype: RecordType) -> Result<Vec<RData>, LookupError> {
        // Labels are taken as raw bytes: SPF macro expansion can produce names
        // with characters such as `@` (RFC 7208 §7.3), which are legal in DNS.
        let trimmed = name.trim_end_matches('.');
        if trimmed.is_empty() || trimmed.split('.').any(|l| l.is_empty() || l.len() > 63) {
            return Err(LookupError::NxDomain);
        }
        let key = (rtype, trimmed.to_ascii_lowercase());
        if let Some((until, cached)) = self.front.get(&key) {
            let now = Instant::now();
            if until > now {
                let res = match cached {
                    Cached::Found(data) => Ok(data.to_vec()),
                    Cached::NxDomain => Err(LookupError::NxDomain),
                    Cached::NoData => Err(LookupError::NoData),
                };
                self.note(trimmed, rtype, &res, until - now, true);
                m::dns_cache(type_label(rtype), true);
                return res;
            }
        }
        let mut fqdn = Name::from_labels(trimmed.split('.').map(str::as_bytes))
            .map_err(|_| LookupError::NxDomain)?;
        fqdn.set_fqdn(true);
        let started = m::timer();
        let (res, ttl, outcome) = match &self.source {
            Source::Resolver => self.ask_resolver(fqdn, rtype).await,
            Source::Zones(z) => ask_zones(z, &fqdn, rtype),
        };
        m::dns_cache(type_label(rtype), false);
        m::dns_query(type_label(rtype), outcome, started);
        let ttl = ttl.map(|t| match res {
            Ok(_) => t.min(self.max_ttl),
            Err(_) => t.min(self.negative_max_ttl),
        });
        if let Some(ttl) = ttl.filter(|t| !t.is_zero()) {
            let cached = match &res {
                Ok(out) => Some(Cached::Found(out.as_slice().into())),
                Err(LookupError::NxDomain) => Some(Cached::NxDomain),
                Err(LookupError::NoData) => Some(Cached::NoData),
                Err(LookupError::Temporary(_)) => None,
            };
            if let Some(c) = cached {
                self.front.insert(key, (Instant::now() + ttl, c));
            }
        }
        self.note(trimmed, rtype, &res, ttl.unwrap_or_default(), false);
        res
    }

    /// The network's answer, how long it may be cached (`None`: not at
    /// all), and its outcome for metrics.
    async fn ask_resolver(&self, fqdn: Name, rtype: RecordType) -> Answer {
        // Twice the resolver's own budget: a safety net, never the normal path.
        let budget = self.timeout * (2 * self.auth.resolver().options().attempts as u32 + 1);
        let res = tokio::time::timeout(budget, self.auth.resolver().lookup(fqdn, rtype)).await;
        let now = Instant::now();
        match res {
            Err(_) => (
                Err(LookupError::Temporary("timed out".into())),
                None,
                "timeout",
            ),
            Ok(Ok(lookup)) => {
                let out: Vec<RData> = lookup
                    .answers()
                    .iter()
                    .filter(|r| r.record_type() == rtype)
                    .map(|r| r.data.clone())
                    .collect();
                let ttl = lookup.valid_until().saturating_duration_since(now);
                if out.is_empty() {
                    (Err(LookupError::NoData), Some(ttl), "nodata")
                } else {
                    (Ok(out), Some(ttl), "ok")
                }
            }
            Ok(Err(e)) => {
                let negative_ttl = match &e {
                    NetError::Dns(DnsError::NoRecordsFound(nr)) => nr.negative_ttl,
                    _ => None,
                };
                let (err, outcome) = classify(&e);
                (
                    Err(err),
                    negative_ttl.map(|t| Duration::from_secs(t.into())),
                    outcome,
                )
            }
        }
    }

    /// Notes an answer in the capture and the decision trace.
    fn note(
        &self,
        name: &str,
        rtype: RecordType,
        res: &Result<Vec<RData>, LookupError>,
        ttl: Duration,
        cached: bool,
    ) {
        if let Some(r) = &self.recorder {
            r.record(name, rtype, res, ttl);
        }
        crate::explain!(
            "DNS {rtype} {name}: {}{}",
            capture::describe(res),
            if cached { " (cached)" } else { "" }
        );
    }

    /// TXT records, each with its character-strings joined (RFC 7208 §3.3).
    pub async fn txt(&self, name: &str) -> Result<Vec<Vec<u8>>, LookupError> {
        Ok(self
            .txt_strings(name)
            .await?
            .into_iter()
            .map(|strings| strings.concat())
            .collect())
    }

    /// TXT records, each as its character-strings (`authmilter doctor`
    /// checks how a long record was split).
    pub async fn txt_strings(&self, name: &str) -> Result<Vec<Vec<Vec<u8>>>, LookupError> {
        Ok(self
            .lookup(name, RecordType::TXT)
            .await?
            .into_iter()
            .filter_map(|r| match r {
                RData::TXT(t) => Some(t.txt_data.iter().map(|s| s.to_vec()).collect()),
                _ => None,
            })
            .collect())
    }

    /// The CNAME target of a name, when it is an alias.
    pub async fn cname(&self, name: &str) -> Result<String, LookupError> {
        self.lookup(name, RecordType::CNAME)
            .await?
            .into_iter()
            .find_map(|r| match r {
                RData::CNAME(c) => Some(raw_name(&c.0)),
                _ => None,
            })
            .ok_or(LookupError::NoData)
    }

    /// The NS names of a zone apex, lower-cased, without the trailing dot.
    pub async fn ns(&self, name: &str) -> Result<Vec<String>, LookupError> {
        Ok(self
            .lookup(name, RecordType::NS)
            .await?
            .into_iter()
            .filter_map(|r| match r {
                RData::NS(n) => Some(raw_name(&n.0).to_ascii_lowercase()),
                _ => None,
            })
            .collect())
    }

    /// Whether answers come from zone files rather than the network.
    pub fn is_offline(&self) -> bool {
        matches!(self.source, Source::Zones(_))
    }

    pub async fn a(&self, name: &str) -> Result<Vec<Ipv4Addr>, LookupError> {
        Ok(self
            .lookup(name, RecordType::A)
            .await?
            .into_iter()
            .filter_map(|r| match r {
                RData::A(a) => Some(a.0),
                _ => None,
            })
            .collect())
    }

    pub async fn aaaa(&self, name: &str) -> Result<Vec<Ipv6Addr>, LookupError> {
        Ok(self
            .lookup(name, RecordType::AAAA)
            .await?
            .into_iter()
            .filter_map(|r| match r {
                RData::AAAA(a) => Some(a.0),
                _ => None,
            })
            .collect())
    }

    /// MX exchanges sorted by preference.
    pub async fn mx(&self, name: &str) -> Result<Vec<(u16, String)>, LookupError> {
        let mut v: Vec<(u16, String)> = self
            .lookup(name, RecordType::MX)
            .await?
            .into_iter()
            .filter_map(|r| match r {
                RData::MX(mx) => Some((mx.preference, raw_name(&mx.exchange))),
                _ => None,
            })
            .collect();
        v.sort_by_key(|(p, _)| *p);
        Ok(v)
    }

    /// PTR names for an address, lower-cased, without the trailing dot.
    pub async fn ptr(&self, ip: IpAddr) -> Result<Vec<String>, LookupError> {
        let name = reverse_name(ip);
        Ok(self
            .lookup(&name, RecordType::PTR)
            .await?
            .into_iter()
            .filter_map(|r| match r {
                RData::PTR(p) => Some(raw_name(&p.0).to_ascii_lowercase()),
                _ => None,
            })
            .filter(|n| !n.is_empty())
            .collect())
    }

    /// Addresses of a name in the family of `like`.
    pub async fn addrs_like(&self, name: &str, like: IpAddr) -> Result<Vec<IpAddr>, LookupError> {
        match like {
            IpAddr::V4(_) => Ok(self.a(name).await?.into_iter().map(IpAddr::V4).collect()),
            IpAddr::V6(_) => Ok(self.aaaa(name).await?.into_iter().map(IpAddr::V6).collect()),
        }
    }

    /// Whether a domain exists (RFC 9989 `np`, RFC 8020): NXDOMAIN means it
    /// does not; NODATA, and a CNAME at the name even when its target does
    /// not exist, mean it does. `None` when DNS cannot tell.
    pub async fn domain_exists(&self, name: &str) -> Option<bool> {
        match self.a(name).await {
            Ok(_) | Err(LookupError::NoData) => Some(true),
            Err(LookupError::NxDomain) => match self.lookup(name, RecordType::CNAME).await {
                Ok(_) | Err(LookupError::NoData) => Some(true),
                Err(LookupError::NxDomain) => Some(false),
                Err(LookupError::Temporary(_)) => None,
            },
            Err(LookupError::Temporary(_)) => None,
        }
    }
}

/// An answer, how long it may be cached, and its outcome label
/// (`authmilter_dns_queries_total`).
type Answer = (
    Result<Vec<RData>, LookupError>,
    Option<Duration>,
    &'static str,
);

/// The metrics label of a record type: a fixed set.
fn type_label(rtype: RecordType) -> &'static str {
    match rtype {
        RecordType::A => "A",
        RecordType::AAAA => "AAAA",
        RecordType::TXT => "TXT",
        RecordType::MX => "MX",
        RecordType::PTR => "PTR",
        RecordType::CNAME => "CNAME",
        _ => "other",
    }
}

/// The outcome label of an error response code.
fn rcode_outcome(code: ResponseCode) -> &'static str {
    match code {
        ResponseCode::ServFail => "servfail",
        ResponseCode::Refused => "refused",
        ResponseCode::NXDomain => "nxdomain",
        _ => "error",
    }
}

/// The answer from zone data, cached for the records' TTL (negative
/// answers: the SOA minimum, when the zone has one).
fn ask_zones(z: &zones::ZoneSet, fqdn: &Name, rtype: RecordType) -> Answer {
    use hickory_resolver::proto::rr::LowerName;
    let r = match z.answer(&LowerName::from(fqdn), rtype) {
        Ok(r) => r,
        Err(zones::Failure::Timeout) => {
            return (
                Err(LookupError::Temporary("timed out".into())),
                None,
                "timeout",
            )
        }
        // Names outside every zone: SERVFAIL.
        Err(zones::Failure::Temporary(t)) => {
            return (Err(LookupError::Temporary(t)), None, "servfail")
        }
    };
    let negative_ttl = r.authority.iter().find_map(|a| match &a.data {
        RData::SOA(soa) => Some(Duration::from_secs(soa.minimum.min(a.ttl).into())),
        _ => None,
    });
    match r.rcode {
        ResponseCode::NoError => {
            let found: Vec<_> = r
                .answers
                .iter()
                .filter(|a| a.record_type() == rtype)
                .collect();
            if found.is_empty() {
                (Err(LookupError::NoData), negative_ttl, "nodata")
            } else {
                let ttl = found.iter().map(|a| a.ttl).min().unwrap_or(0);
                (
                    Ok(found.into_iter().map(|a| a.data.clone()).collect()),
                    Some(Duration::from_secs(ttl.into())),
                    "ok",
                )
            }
        }
        ResponseCode::NXDomain => (Err(LookupError::NxDomain), negative_ttl, "nxdomain"),
        code => (
            Err(LookupError::Temporary(code.to_string())),
            None,
            rcode_outcome(code),
        ),
    }
}

/// A name as its raw labels joined by dots, without escaping (`to_ascii`
/// would escape characters such as `:` that SPF must query as they are).
fn raw_name(n: &Name) -> String {
    n.iter()
        .map(|l| String::from_utf8_lossy(l).into_owned())
        .collect::<Vec<_>>()
        .join(".")
}

/// The lookup error, and its outcome label, of a resolver error.
fn classify(e: &NetError) -> (LookupError, &'static str) {
    match e {
        NetError::Dns(DnsError::NoRecordsFound(nr)) => {
            if nr.response_code == ResponseCode::NXDomain {
                (LookupError::NxDomain, "nxdomain")
            } else if nr.response_code == ResponseCode::NoError {
                (LookupError::NoData, "nodata")
            } else {
                (
                    LookupError::Temporary(format!("{}", nr.response_code)),
                    rcode_outcome(nr.response_code),
                )
            }
        }
        NetError::Dns(DnsError::ResponseCode(code)) => {
            (LookupError::Temporary(e.to_string()), rcode_outcome(*code))
        }
        NetError::Timeout => (LookupError::Temporary("timed out".into()), "timeout"),
        NetError::Io(io) if io.kind() == std::io::ErrorKind::TimedOut => {
            (LookupError::Temporary(e.to_string()), "timeout")
        }
        other => (LookupError::Temporary(other.to_string()), "error"),
    }
}

/// The in-addr.arpa / ip6.arpa name of an address.
pub fn reverse_name(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            format!("{}.{}.{}.{}.in-addr.arpa.", o[3], o[2], o[1], o[0])
        }
        IpAddr::V6(v6) => {
            let mut s = String::with_capacity(73);
            for b in v6.octets().iter().rev() {
                s.push_str(&format!("{:x}.{:x}.", b & 0xf, b >> 4));
            }
            s.push_str("ip6.arpa.");
            s
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metric_labels_are_from_the_fixed_sets() {
        for t in [
            RecordType::A,
            RecordType::AAAA,
            RecordType::TXT,
            RecordType::MX,
            RecordType::PTR,
            RecordType::CNAME,
            RecordType::SOA,
        ] {
            assert!(m::DNS_TYPES.contains(&type_label(t)), "{t}");
        }
        for c in [
            ResponseCode::ServFail,
            ResponseCode::Refused,
            ResponseCode::NXDomain,
            ResponseCode::FormErr,
        ] {
            assert!(m::DNS_OUTCOMES.contains(&rcode_outcome(c)), "{c}");
        }
    }

    #[test]
    fn reverse_names() {
        assert_eq!(
            reverse_name("192.0.2.10".parse().unwrap()),
            "10.2.0.192.in-addr.arpa."
        );
        assert_eq!(
            reverse_name("2001:db8::1".parse().unwrap()),
            "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa."
        );
    }
}
