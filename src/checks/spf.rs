//! SPF (RFC 7208) for the MAIL FROM and HELO identities, through viaspf.
//!
//! viaspf implements check_host() with the RFC's processing limits (10
//! DNS-mechanism lookups, 2 void lookups, §4.6.4) and returns `permerror` for
//! syntax errors and multiple records, unlike mail-auth (measured against the
//! RFC 7208 suite, see the README).

use super::evidence::{AuthResult, SpfEvidence, SpfIdentity};
use crate::dns::Dns;
use std::{net::IpAddr, time::Duration};
use viaspf::{DomainName, Sender, SpfResult, SpfResultCause};

/// Builds the viaspf configuration: the RFC limits, and an overall query timeout.
pub fn spf_config(timeout: Duration) -> viaspf::Config {
    viaspf::Config::builder()
        .max_lookups(10)
        .max_void_lookups(2)
        .timeout(timeout)
        .build()
}

fn map_result(r: &SpfResult) -> AuthResult {
    match r {
        SpfResult::None => AuthResult::None,
        SpfResult::Neutral => AuthResult::Neutral,
        SpfResult::Pass => AuthResult::Pass,
        SpfResult::Fail(_) => AuthResult::Fail,
        SpfResult::Softfail => AuthResult::SoftFail,
        SpfResult::Temperror => AuthResult::TempError,
        SpfResult::Permerror => AuthResult::PermError,
    }
}

/// Whether a HELO argument can be checked as a domain (not an address literal).
pub fn helo_is_domain(helo: &str) -> bool {
    !helo.starts_with('[') && helo.parse::<IpAddr>().is_err() && DomainName::new(helo).is_ok()
}

async fn evaluate(
    dns: &Dns,
    cfg: &viaspf::Config,
    ip: IpAddr,
    sender: &Sender,
    helo: &str,
) -> (AuthResult, Option<String>, Option<String>) {
    let helo_domain = DomainName::new(helo).ok();
    let q = viaspf::evaluate_sender(dns, cfg, ip, sender, helo_domain.as_ref()).await;
    let result = map_result(&q.spf_result);
    let reason = match (&q.spf_result, &q.cause) {
        (SpfResult::Pass, _) => None,
        (_, Some(SpfResultCause::Error(e))) => Some(e.to_string()),
        (_, Some(SpfResultCause::Match(m))) => Some(format!("matched {m}")),
        (SpfResult::None, None) => Some("no SPF record".to_string()),
        _ => None,
    };
    let mechanism = match &q.cause {
        Some(SpfResultCause::Match(m)) => Some(m.to_string()),
        _ => None,
    };
    (result, reason, mechanism)
}

/// The MAIL FROM check. For the null sender the identity is
/// `postmaster@HELO` (RFC 7208 §2.4) and the identity is reported as HELO.
pub async fn check_mail_from(
    dns: &Dns,
    cfg: &viaspf::Config,
    ip: IpAddr,
    mail_from: &str,
    helo: &str,
) -> SpfEvidence {
    if mail_from.is_empty() {
        let mut ev = check_helo(dns, cfg, ip, helo).await;
        ev.identity = SpfIdentity::Helo;
        return ev;
    }
    // RFC 7208 §4.3: a MAIL FROM without local part uses "postmaster".
    let address = if mail_from.starts_with('@') {
        format!("postmaster{mail_from}")
    } else {
        mail_from.to_string()
    };
    let domain = address
        .rsplit_once('@')
        .map(|(_, d)| d.to_string())
        .unwrap_or_default();
    // RFC 7208 §4.3 does not validate the local-part: one that is not a valid
    // RFC 5321 dot-atom (spaces, say) is quoted rather than refused.
    let parsed = Sender::from_address(&address).or_else(|e| match address.rsplit_once('@') {
        Some((local, dom)) if !local.starts_with('"') => {
            let quoted = local.replace('\\', "\\\\").replace('"', "\\\"");
            Sender::from_address(&format!("\"{quoted}\"@{dom}"))
        }
        _ => Err(e),
    });
    match parsed {
        Ok(sender) => {
            let (result, reason, mechanism) = evaluate(dns, cfg, ip, &sender, helo).await;
            SpfEvidence {
                result,
                identity: SpfIdentity::MailFrom,
                sender: address,
                domain: sender.domain().to_string(),
                reason,
                mechanism,
            }
        }
        // RFC 7208 §4.3: a malformed domain yields "none".
        Err(_) => SpfEvidence {
            result: AuthResult::None,
            identity: SpfIdentity::MailFrom,
            sender: address,
            domain,
            reason: Some("MAIL FROM is not a valid address".into()),
            mechanism: None,
        },
    }
}

/// The HELO identity check (RFC 7208 §2.3).
pub async fn check_helo(dns: &Dns, cfg: &viaspf::Config, ip: IpAddr, helo: &str) -> SpfEvidence {
    let sender_str = format!("postmaster@{helo}");
    if !helo_is_domain(helo) {
        return SpfEvidence {
            result: AuthResult::None,
            identity: SpfIdentity::Helo,
            sender: sender_str,
            domain: helo.to_string(),
            reason: Some("HELO is not a domain name".into()),
            mechanism: None,
        };
    }
    match Sender::from_domain(helo) {
        Ok(sender) => {
            let (result, reason, mechanism) = evaluate(dns, cfg, ip, &sender, helo).await;
            SpfEvidence {
                result,
                identity: SpfIdentity::Helo,
                sender: sender_str,
                domain: helo.trim_end_matches('.').to_ascii_lowercase(),
                reason,
                mechanism,
            }
        }
        Err(_) => SpfEvidence {
            result: AuthResult::None,
            identity: SpfIdentity::Helo,
            sender: sender_str,
            domain: helo.to_string(),
            reason: Some("HELO is not a domain name".into()),
            mechanism: None,
        },
    }
}

/// Whether `domain`'s SPF policy authorises `ip` (as for `MAIL FROM:<postmaster@domain>`),
/// with the mechanism that decided or the error: `authmilter doctor`'s per-address check,
/// through the same evaluation the milter runs.
pub async fn authorizes(
    dns: &Dns,
    cfg: &viaspf::Config,
    ip: IpAddr,
    domain: &str,
) -> (AuthResult, Option<String>) {
    let Ok(sender) = Sender::from_domain(domain) else {
        return (AuthResult::None, Some("not a domain name".into()));
    };
    let helo = DomainName::new(domain).ok();
    let q = viaspf::evaluate_sender(dns, cfg, ip, &sender, helo.as_ref()).await;
    let cause = match q.cause {
        Some(SpfResultCause::Match(m)) => Some(m.to_string()),
        Some(SpfResultCause::Error(e)) => Some(e.to_string()),
        None => None,
    };
    (map_result(&q.spf_result), cause)
}
