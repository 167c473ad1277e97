//! The domain's name servers, asked directly: each NS of the zone must
//! resolve and answer authoritatively for it. A server that does not
//! answer, or answers without authority (a lame delegation), is what turns
//! into SERVFAIL and timeouts at receivers' resolvers, only some of the time.
//!
//! Only with a network resolver: zone files (`--dns-zone`) have no servers.

use super::{dns_trouble, Finding, Options, Severity};
use crate::dns::{Dns, LookupError};
use hickory_resolver::proto::{
    op::{Message, MessageType, OpCode, Query, ResponseCode},
    rr::{Name, RecordType},
};
use std::{
    net::{IpAddr, SocketAddr},
    time::Duration,
};

const AREA: &str = "dns";
/// Name servers and addresses per server asked at most.
const MAX_SERVERS: usize = 8;
const MAX_ADDRS: usize = 2;

/// What one name server address answered.
#[derive(Debug, PartialEq, Eq)]
pub enum Answer {
    /// An authoritative answer with the zone's SOA.
    Authoritative,
    /// An answer, but not an authoritative one with the SOA: the rcode and AA bit.
    NotAuthoritative { rcode: ResponseCode, aa: bool },
    /// No answer within the timeout, or the server refused (its text).
    NoAnswer(String),
    /// This machine could not send the query (no IPv6 route, say): not
    /// the server's fault.
    NotAsked(String),
}

/// Asks `server` for the SOA of `zone` without recursion.
pub async fn ask_soa(server: SocketAddr, zone: &str, timeout: Duration) -> Answer {
    let Ok(mut name) = Name::from_ascii(zone) else {
        return Answer::NoAnswer(format!("{zone}: not a DNS name"));
    };
    name.set_fqdn(true);
    let id: u16 = rand_id();
    let mut q = Message::new(id, MessageType::Query, OpCode::Query);
    q.metadata.recursion_desired = false;
    q.add_query(Query::query(name, RecordType::SOA));
    let Ok(bytes) = q.to_vec() else {
        return Answer::NoAnswer("could not build the query".into());
    };
    let bind: SocketAddr = if server.is_ipv4() {
        "0.0.0.0:0".parse().expect("an address")
    } else {
        "[::]:0".parse().expect("an address")
    };
    let sent = async {
        let sock = tokio::net::UdpSocket::bind(bind).await?;
        sock.connect(server).await?;
        sock.send(&bytes).await?;
        Ok::<_, std::io::Error>(sock)
    };
    let sock = match sent.await {
        Ok(s) => s,
        Err(e) => return Answer::NotAsked(e.to_string()),
    };
    let exchange = async {
        let mut buf = vec![0u8; 4096];
        loop {
            let n = sock.recv(&mut buf).await?;
            if let Ok(m) = Message::from_vec(&buf[..n]) {
                if m.metadata.id == id {
                    return Ok::<Message, std::io::Error>(m);
                }
            }
        }
    };
    match tokio::time::timeout(timeout, exchange).await {
        Err(_) => Answer::NoAnswer(format!("no answer within {} ms", timeout.as_millis())),
        Ok(Err(e)) => Answer::NoAnswer(e.to_string()),
        Ok(Ok(m)) => {
            let aa = m.metadata.authoritative;
            let rcode = m.metadata.response_code;
            let soa = m.answers.iter().any(|r| r.record_type() == RecordType::SOA);
            if aa && rcode == ResponseCode::NoError && soa {
                Answer::Authoritative
            } else {
                Answer::NotAuthoritative { rcode, aa }
            }
        }
    }
}

fn rand_id() -> u16 {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    (t.subsec_nanos() ^ std::process::id()) as u16
}

/// The zone apex holding `domain` and its NS names: the closest name at or
/// above it with NS records.
async fn zone_of(dns: &Dns, domain: &str) -> Result<Option<(String, Vec<String>)>, Finding> {
    let labels: Vec<&str> = domain.split('.').collect();
    for i in 0..labels.len().saturating_sub(1) {
        let name = labels[i..].join(".");
        match dns.ns(&name).await {
            Ok(ns) if !ns.is_empty() => return Ok(Some((name, ns))),
            Ok(_) | Err(LookupError::NoData) | Err(LookupError::NxDomain) => {}
            Err(e) => return Err(dns_trouble(AREA, &name, "NS", &e)),
        }
    }
    Ok(None)
}

/// Checks every name server of the zone holding `domain`.
pub async fn check(dns: &Dns, domain: &str, opts: &Options) -> Vec<Finding> {
    let (zone, servers) = match zone_of(dns, domain).await {
        Ok(Some(z)) => z,
        Ok(None) => return Vec::new(),
        Err(f) => return vec![f],
    };
    let mut out = Vec::new();
    let mut good = 0;
    if servers.len() < 2 {
        out.push(
            Finding::new(AREA, "dns.single_name_server", Severity::Warning, &zone, format!("the zone {zone} has one name server"))
                .details(servers.clone())
                .why("RFC 2182 §5: a zone needs at least two name servers, on different networks; with one, any outage makes every receiver defer your mail.")
                .fix("Add a second name server (your DNS provider's secondary service) and list it in the delegation at the registrar."),
        );
    }
    for ns in servers.iter().take(MAX_SERVERS) {
        let mut addrs: Vec<IpAddr> = Vec::new();
        let v4 = dns.a(ns).await;
        let v6 = dns.aaaa(ns).await;
        addrs.extend(v4.iter().flatten().map(|a| IpAddr::V4(*a)));
        addrs.extend(v6.iter().flatten().map(|a| IpAddr::V6(*a)));
        if addrs.is_empty() {
            let temporary = [v4.err(), v6.err()]
                .into_iter()
                .flatten()
                .find(|e| matches!(e, LookupError::Temporary(_)));
            out.push(match temporary {
                Some(e) => dns_trouble(AREA, ns, "A/AAAA", &e),
                None => Finding::new(AREA, "dns.name_server_unresolvable", Severity::Error, ns.clone(), format!("the name server {ns} of {zone} has no address"))
                    .why("Resolvers cannot ask a name server without an address; the delegation points nowhere for part of the queries, which then fail or time out.")
                    .reply("451 4.7.x temperror / 450 4.1.8 Domain not found (temporary), some of the time")
                    .fix(format!("Publish the address of {ns}, or remove it from the NS records and from the delegation at the registrar.")),
            });
            continue;
        }
        for ip in addrs.into_iter().take(MAX_ADDRS) {
            let server = SocketAddr::new(ip, opts.ns_port);
            match ask_soa(server, &zone, opts.ns_timeout).await {
                Answer::Authoritative => good += 1,
                Answer::NoAnswer(e) => out.push(
                    Finding::new(AREA, "dns.name_server_timeout", Severity::Error, ns.clone(), format!("the name server {ns} ({ip}) does not answer for {zone}: {e}"))
                        .why("Resolvers that pick this server time out; receivers see SERVFAIL or a timeout for your SPF, DKIM and DMARC records and defer or reject the mail.")
                        .reply("451 4.7.x temperror (SPF/DKIM/DMARC temporary failure); 450 4.1.8 Domain not found (temporary)")
                        .fix(format!("Bring {ns} back, open UDP and TCP port 53 to it, or remove it from the NS records and the registrar's delegation.")),
                ),
                Answer::NotAsked(e) => out.push(
                    Finding::new(AREA, "dns.name_server_not_checked", Severity::Warning, ns.clone(), format!("the name server {ns} ({ip}) could not be asked from this machine: {e}"))
                        .why("The query could not leave this machine (typically no IPv6 route here), so nothing is known about this server; receivers with a route may still reach it.")
                        .fix(format!("Run doctor from a machine with {} connectivity to check {ns}.", if ip.is_ipv6() { "IPv6" } else { "IPv4" })),
                ),
                Answer::NotAuthoritative { rcode, aa } => out.push(
                    Finding::new(AREA, "dns.lame_delegation", Severity::Error, ns.clone(), format!("the name server {ns} ({ip}) is not authoritative for {zone} (lame delegation): {rcode}{}", if aa { "" } else { ", no AA bit" }))
                        .why("The zone is delegated to a server that does not serve it; resolvers that ask it get SERVFAIL or REFUSED, so your records fail to resolve some of the time.")
                        .reply("451 4.7.x temperror, intermittently; 450 4.1.8 Domain not found (temporary)")
                        .fix(format!("Load the zone {zone} on {ns}, or remove {ns} from the NS records and the registrar's delegation.")),
                ),
            }
        }
    }
    if out.iter().all(|f| f.severity != Severity::Error) {
        out.push(Finding::ok(
            AREA,
            "dns.delegation_ok",
            &zone,
            format!("{good} name server address(es) of {zone} answer authoritatively"),
        ));
    }
    out
}
