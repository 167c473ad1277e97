//! iprev (RFC 8601 §3): the client address's PTR names, forward-confirmed.
//!
//! Results follow RFC 8601 §2.7.3: no PTR data (NXDOMAIN or NODATA) is
//! `permerror`; PTR names whose forward lookups fail or do not lead back to
//! the address is `fail`; a DNS error that prevents a final answer is
//! `temperror`.

use super::evidence::{AuthResult, IprevEvidence};
use crate::dns::{Dns, LookupError};
use std::net::IpAddr;

/// Runs the iprev check for `ip`, forward-confirming at most `max_names` PTR names.
pub async fn check(dns: &Dns, ip: IpAddr, max_names: usize) -> IprevEvidence {
    let ev = |result, name: Option<String>, reason: &str| IprevEvidence {
        result,
        ip,
        name,
        reason: Some(reason.to_string()).filter(|r| !r.is_empty()),
        confirmed: Vec::new(),
    };
    let names = match dns.ptr(ip).await {
        Ok(n) => n,
        Err(LookupError::Temporary(e)) => {
            return ev(
                AuthResult::TempError,
                None,
                &format!("PTR lookup failed: {e}"),
            )
        }
        Err(_) => return ev(AuthResult::PermError, None, "no PTR record"),
    };
    let mut temp = None;
    let lookups = names
        .iter()
        .take(max_names)
        .map(|n| async move { (n, dns.addrs_like(n, ip).await) });
    let results = futures::future::join_all(lookups).await;
    // Every name that leads back counts (x-ptr compares the HELO name with
    // each of them); iprev passes with the first.
    let mut confirmed: Vec<String> = Vec::new();
    for (name, r) in &results {
        match r {
            Ok(addrs) if addrs.contains(&ip) => confirmed.push((*name).clone()),
            Ok(_) | Err(LookupError::NxDomain) | Err(LookupError::NoData) => {}
            Err(LookupError::Temporary(e)) => temp = Some(e.clone()),
        }
    }
    if let Some(first) = confirmed.first().cloned() {
        return IprevEvidence {
            confirmed,
            ..ev(AuthResult::Pass, Some(first), "")
        };
    }
    let first = names.first().cloned();
    match temp {
        Some(e) => ev(
            AuthResult::TempError,
            first,
            &format!("forward lookup failed: {e}"),
        ),
        None => ev(
            AuthResult::Fail,
            first,
            "PTR name does not resolve back to the client address",
        ),
    }
}
