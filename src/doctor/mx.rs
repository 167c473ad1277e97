//! MX records: present, each target an address-bearing host name (not an
//! alias, not an address literal), the null MX of RFC 7505 noted.

use super::{dns_trouble, Finding, Severity};
use crate::dns::{Dns, LookupError};
use std::net::IpAddr;

const AREA: &str = "mx";

/// Checks the MX records of `domain` (already looked up: `mx`).
pub async fn check(
    dns: &Dns,
    domain: &str,
    mx: Result<Vec<(u16, String)>, LookupError>,
) -> Vec<Finding> {
    let list = match mx {
        Ok(l) => l,
        Err(e @ LookupError::Temporary(_)) => return vec![dns_trouble(AREA, domain, "MX", &e)],
        Err(_) => return implicit_mx(dns, domain).await,
    };
    let rendered = list
        .iter()
        .map(|(p, n)| format!("{p} {}", if n.is_empty() { "." } else { n }))
        .collect::<Vec<_>>()
        .join(", ");
    if list.iter().any(|(_, n)| n.is_empty()) {
        if list.len() > 1 {
            return vec![Finding::new(
                AREA,
                "mx.null_mx_mixed",
                Severity::Error,
                domain,
                "a null MX (\".\") beside other MX records",
            )
            .record(rendered)
            .why("RFC 7505 §3: a domain that publishes a null MX MUST NOT publish other MX records; receivers cannot tell whether it accepts mail.")
            .reply("550 5.7.27 Sender address has null MX, from receivers that honour the null MX")
            .fix("Remove the \"0 .\" record if the domain receives mail, or every other MX if it does not.")];
        }
        return vec![Finding::new(
            AREA,
            "mx.null_mx",
            Severity::Warning,
            domain,
            "null MX: the domain says it accepts no mail (RFC 7505)",
        )
        .record(rendered)
        .why("Receivers that honour RFC 7505 §4.2 refuse mail whose envelope sender is at a null-MX domain, because no bounce could ever reach it.")
        .reply("550 5.7.27 Sender address has null MX")
        .fix("If this domain sends mail, publish a real MX for its bounces and replies; if it sends none, keep the null MX and also publish \"v=spf1 -all\" and a DMARC p=reject record.")];
    }
    let mut out = Vec::new();
    let mut reachable = 0;
    let mut unreachable = Vec::new();
    for (_, target) in &list {
        if target.parse::<IpAddr>().is_ok() {
            out.push(
                Finding::new(
                    AREA,
                    "mx.address_literal",
                    Severity::Error,
                    domain,
                    format!("MX target {target} is an address, not a host name"),
                )
                .record(rendered.clone())
                .why("RFC 1035 §3.3.9: the exchange of an MX is a domain name, and RFC 5321 §5.1 looks it up as one; receivers look up \"192.0.2.1\" as a name, which does not exist.")
                .reply("550 Sender verify failed, from receivers that verify the sender by callout; bounces to you are lost")
                .fix(format!("Give the host a name (mx.{domain} A {target}) and point the MX at that name.")),
            );
            unreachable.push(target.clone());
            continue;
        }
        if let Ok(alias) = dns.cname(target).await {
            out.push(
                Finding::new(
                    AREA,
                    "mx.cname_target",
                    Severity::Warning,
                    target,
                    format!("MX target {target} is an alias (CNAME to {alias})"),
                )
                .record(rendered.clone())
                .why("RFC 2181 §10.3 and RFC 5321 §5.1: an MX must point at a name with address records, not an alias; some MTAs refuse or mishandle it.")
                .fix(format!("Point the MX at {alias} itself, or replace the CNAME at {target} with A/AAAA records.")),
            );
        }
        let (a, aaaa) = (dns.a(target).await, dns.aaaa(target).await);
        let addrs: Vec<String> = a
            .iter()
            .flatten()
            .map(|x| x.to_string())
            .chain(aaaa.iter().flatten().map(|x| x.to_string()))
            .collect();
        match (&a, &aaaa) {
            (Err(e @ LookupError::Temporary(_)), _) | (_, Err(e @ LookupError::Temporary(_)))
                if addrs.is_empty() =>
            {
                out.push(dns_trouble(AREA, target, "A/AAAA", e));
                unreachable.push(target.clone());
            }
            _ if addrs.is_empty() => {
                unreachable.push(target.clone());
                out.push(
                    Finding::new(
                        AREA,
                        "mx.target_unresolvable",
                        Severity::Warning,
                        target,
                        format!("MX target {target} has no A or AAAA record"),
                    )
                    .record(rendered.clone())
                    .why("Mail to the domain (bounces, replies, DMARC reports) cannot be delivered through this MX.")
                    .fix(format!("Publish the address of {target}, or remove the MX record.")),
                );
            }
            _ => {
                reachable += 1;
                out.push(Finding::ok(
                    AREA,
                    "mx.ok",
                    target,
                    format!("MX {target} resolves to {}", addrs.join(", ")),
                ));
            }
        }
    }
    if reachable == 0 {
        out.push(
            Finding::new(
                AREA,
                "mx.none_reachable",
                Severity::Error,
                domain,
                "no MX target of the domain resolves to an address",
            )
            .record(rendered)
            .details(unreachable)
            .why("Receivers check that a sender's domain can receive mail (bounces must reach it); with no usable MX they treat the sender domain as unknown.")
            .reply("550 Sender verify failed, from receivers that verify the sender by callout (Exim verify = sender/callout, Postfix reject_unverified_sender); bounces to you are lost")
            .fix("Give at least one MX target an A or AAAA record."),
        );
    }
    out
}

/// No MX: mail goes to the domain's own address (RFC 5321 §5.1).
async fn implicit_mx(dns: &Dns, domain: &str) -> Vec<Finding> {
    let (a, aaaa) = (dns.a(domain).await, dns.aaaa(domain).await);
    for r in [&a.as_ref().err(), &aaaa.as_ref().err()] {
        if let Some(e @ LookupError::Temporary(_)) = r {
            return vec![dns_trouble(AREA, domain, "A/AAAA", e)];
        }
    }
    if a.is_ok() || aaaa.is_ok() {
        return vec![Finding::new(
            AREA,
            "mx.implicit",
            Severity::Warning,
            domain,
            "no MX record: mail to the domain goes to its A/AAAA record (implicit MX)",
        )
        .why("RFC 5321 §5.1 falls back to the domain's address; if that host is a web server, bounces and replies are lost and some receivers treat the sender domain as not accepting mail.")
        .fix(format!("Publish an MX record (\"{domain}. MX 10 mail.{domain}.\"), or a null MX (\"0 .\") if the domain takes no mail."))];
    }
    vec![Finding::new(
        AREA,
        "mx.missing",
        Severity::Error,
        domain,
        "no MX record and no address: the domain cannot receive mail",
    )
    .why("Receivers check that the envelope sender's domain can take bounces (MX or A/AAAA); without either they refuse its mail.")
    .reply("450 4.1.8 / 550 5.1.8 Sender address rejected: Domain not found (Postfix reject_unknown_sender_domain)")
    .fix(format!("Publish an MX record for {domain} (or \"0 .\", a null MX, if it never receives mail)."))]
}
