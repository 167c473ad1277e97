//! One sending address: its PTR, forward-confirmed (iprev, the milter's
//! own check), and whether the domain's SPF policy authorises it (the
//! milter's own SPF evaluation).

use super::{Finding, Severity};
use crate::{
    checks::{evidence::AuthResult, iprev, spf},
    dns::Dns,
};
use std::net::IpAddr;

const AREA: &str = "ip";

/// The forward confirmations iprev tries, as the milter's default.
const MAX_PTR_NAMES: usize = 10;

/// Checks `ip` as a sender for `domain`.
pub async fn check(dns: &Dns, domain: &str, ip: IpAddr) -> Vec<Finding> {
    let mut out = vec![reverse(dns, ip).await];
    out.push(authorised(dns, domain, ip).await);
    out
}

async fn reverse(dns: &Dns, ip: IpAddr) -> Finding {
    let subject = ip.to_string();
    let ev = iprev::check(dns, ip, MAX_PTR_NAMES).await;
    let reason = ev.reason.clone().unwrap_or_default();
    let ptr_name = crate::dns::reverse_name(ip);
    match ev.result {
        AuthResult::Pass => {
            let name = ev.name.unwrap_or_default();
            Finding::ok(
                AREA,
                "ip.ptr_ok",
                subject,
                format!("PTR {name}, which resolves back to {ip} (iprev=pass)"),
            )
        }
        AuthResult::PermError => Finding::new(
            AREA,
            "ip.ptr_missing",
            Severity::Error,
            subject,
            format!("{ip} has no PTR record (iprev=permerror)"),
        )
        .record(format!("{ptr_name} PTR: none"))
        .why("Many receivers refuse mail from addresses without reverse DNS (RFC 8601 iprev; Postfix reject_unknown_client_hostname, Gmail, Microsoft).")
        .reply("550 5.7.25 Reverse DNS validation failed (RFC 7372); Postfix: 450 4.7.25 Client host rejected: cannot find your hostname; some: 554 reverse DNS doesn't exist")
        .fix(format!("Ask whoever runs the address block (your provider) to set the PTR of {ip} to your mail server's name, and give that name an address record pointing back to {ip}.")),
        AuthResult::Fail => Finding::new(
            AREA,
            "ip.ptr_not_confirmed",
            Severity::Error,
            subject,
            format!(
                "the PTR name {} does not resolve back to {ip} (iprev=fail)",
                ev.name.clone().unwrap_or_default()
            ),
        )
        .record(format!("{ptr_name} PTR {}", ev.name.unwrap_or_default()))
        .why("Receivers forward-confirm the PTR name (RFC 8601 §3, iprev): a name whose A/AAAA records do not include the address proves nothing and is treated like no reverse DNS.")
        .reply("550 5.7.25 Reverse DNS validation failed; Postfix: 450 4.7.25 Client host rejected: cannot find your hostname")
        .fix(format!("Add {ip} to the A/AAAA records of the PTR name, or change the PTR to a name that has it.")),
        _ => Finding::new(
            AREA,
            "ip.ptr_temporary",
            Severity::Error,
            subject,
            format!("reverse DNS of {ip} could not be checked: {reason} (iprev=temperror)"),
        )
        .record(ptr_name)
        .why("A reverse zone that does not answer makes receivers defer the mail, and some turn the deferral into a rejection after a while.")
        .reply("451 4.7.25 / 421 reverse DNS for this IP failed (temporary)")
        .fix("Make the reverse zone's name servers (usually your provider's) answer for the PTR name, and the PTR name's zone answer for its A/AAAA records."),
    }
}

async fn authorised(dns: &Dns, domain: &str, ip: IpAddr) -> Finding {
    let cfg = spf::spf_config(dns.timeout() * 4);
    let (result, cause) = spf::authorizes(dns, &cfg, ip, domain).await;
    let subject = ip.to_string();
    let how = cause.map(|c| format!(" ({c})")).unwrap_or_default();
    let spf_fix = format!(
        "Add \"ip{}:{ip}\" (or the include: of the service that sends for you) to the SPF record of {domain}.",
        if ip.is_ipv4() { "4" } else { "6" }
    );
    match result {
        AuthResult::Pass => Finding::ok(
            AREA,
            "ip.spf_pass",
            subject,
            format!("SPF of {domain} authorises {ip}: pass{how}"),
        ),
        AuthResult::Fail => Finding::new(
            AREA,
            "ip.spf_fail",
            Severity::Error,
            subject,
            format!("SPF of {domain} forbids {ip}: fail{how}"),
        )
        .why("An SPF fail is the domain saying the address may not send for it (RFC 7208 §8.4); receivers reject it or, with DMARC, reject unless DKIM passes aligned.")
        .reply("550 5.7.23 SPF validation failed (RFC 7372); 550 5.7.1 under DMARC p=reject without DKIM")
        .fix(spf_fix),
        AuthResult::SoftFail => Finding::new(
            AREA,
            "ip.spf_softfail",
            Severity::Warning,
            subject,
            format!("SPF of {domain} does not authorise {ip}: softfail{how}"),
        )
        .why("Softfail is \"probably not authorised\" (RFC 7208 §8.5): spam filters score it, and DMARC counts it as an SPF failure.")
        .reply("250 (spam folder), or 550 5.7.1 under DMARC p=reject without an aligned DKIM pass")
        .fix(spf_fix),
        AuthResult::Neutral | AuthResult::None => Finding::new(
            AREA,
            "ip.spf_not_authorised",
            Severity::Warning,
            subject,
            format!("SPF of {domain} does not authorise {ip}: {}{how}", result.as_str()),
        )
        .why("Without an SPF pass, DMARC depends on an aligned DKIM signature alone; receivers that require SPF for bulk mail refuse it.")
        .reply("550 5.7.26 (Gmail, unauthenticated sender) when DKIM does not pass either")
        .fix(spf_fix),
        AuthResult::TempError => Finding::new(
            AREA,
            "ip.spf_temperror",
            Severity::Error,
            subject,
            format!("SPF of {domain} could not be evaluated for {ip}: temperror{how}"),
        )
        .why("A DNS failure during SPF evaluation (RFC 7208 §2.6.6): receivers defer the mail.")
        .reply("451 4.7.24 SPF validation error (temporary)")
        .fix("See the DNS findings: every name the SPF record uses must answer."),
        _ => Finding::new(
            AREA,
            "ip.spf_permerror",
            Severity::Error,
            subject,
            format!("SPF of {domain} is broken for {ip}: permerror{how}"),
        )
        .why("A permerror (RFC 7208 §2.6.7) means the record cannot be evaluated: no address is authorised, and many receivers reject.")
        .reply("550 5.7.24 SPF validation error (permerror)")
        .fix("Fix the SPF findings above; the record must parse and stay within 10 DNS lookups."),
    }
}
