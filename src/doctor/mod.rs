//! `authmilter doctor DOMAIN`: the sender side. Reads a domain's DNS the
//! way receivers do (the same resolver, iprev, SPF and DMARC code as the
//! milter) and explains each mistake that makes its mail bounce: what was
//! read, why it matters, the SMTP reply receivers typically give because of
//! it, and how to fix it.
//!
//! Each area has its module: [`mx`], [`ip`] (per sending address), [`spf`],
//! [`dkim`], [`dmarc`] and [`delegation`] (the domain's name servers, asked
//! directly). [`diagnose`] runs them all; the result is plain data, printed
//! by `src/cli/doctor.rs` as text or JSON (schema in docs/DOCTOR.md).

pub mod delegation;
pub mod dkim;
pub mod dmarc;
pub mod ip;
pub mod mx;
pub mod spf;
pub mod text;

use crate::dns::{Dns, LookupError};
use serde::Serialize;
use std::net::IpAddr;

/// How bad a finding is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Checked and correct.
    Ok,
    /// Works, but risks rejections or weakens protection.
    Warning,
    /// Makes mail fail authentication, bounce or be deferred.
    Error,
}

impl Severity {
    /// The word printed and written in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::Warning => "warning",
            Self::Error => "error",
        }
    }
}

/// One thing found, with its explanation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// `mx`, `ip`, `spf`, `dkim`, `dmarc` or `dns`.
    pub area: &'static str,
    /// A stable identifier (`spf.multiple_records`), listed in docs/DOCTOR.md.
    pub id: &'static str,
    pub severity: Severity,
    /// The DNS name or address the finding is about.
    pub subject: String,
    /// One line: what was found.
    pub summary: String,
    /// The record (or answer) read, as published.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub record: Option<String>,
    /// Why it matters (with the RFC).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub why: Option<String>,
    /// The SMTP reply receivers typically give because of it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub smtp_reply: Option<String>,
    /// How to fix it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
    /// Supporting lines (the include chain that uses up SPF lookups, …).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub details: Vec<String>,
}

impl Finding {
    /// A finding with its summary; the rest is added with the builders.
    pub fn new(
        area: &'static str,
        id: &'static str,
        severity: Severity,
        subject: impl Into<String>,
        summary: impl Into<String>,
    ) -> Self {
        Self {
            area,
            id,
            severity,
            subject: subject.into(),
            summary: summary.into(),
            record: None,
            why: None,
            smtp_reply: None,
            fix: None,
            details: Vec::new(),
        }
    }

    /// A correct result.
    pub fn ok(
        area: &'static str,
        id: &'static str,
        subject: impl Into<String>,
        summary: impl Into<String>,
    ) -> Self {
        Self::new(area, id, Severity::Ok, subject, summary)
    }

    pub fn record(mut self, r: impl Into<String>) -> Self {
        self.record = Some(r.into());
        self
    }

    pub fn why(mut self, w: impl Into<String>) -> Self {
        self.why = Some(w.into());
        self
    }

    pub fn reply(mut self, r: impl Into<String>) -> Self {
        self.smtp_reply = Some(r.into());
        self
    }

    pub fn fix(mut self, f: impl Into<String>) -> Self {
        self.fix = Some(f.into());
        self
    }

    pub fn details(mut self, d: Vec<String>) -> Self {
        self.details = d;
        self
    }
}

/// A DNS lookup that failed temporarily: DNS trouble, never "no record".
pub fn dns_trouble(area: &'static str, name: &str, rtype: &str, e: &LookupError) -> Finding {
    Finding::new(
        area,
        "dns.temporary_failure",
        Severity::Error,
        name,
        format!("the {rtype} lookup of {name} failed: {e}"),
    )
    .why(
        "A DNS failure is not a missing record: receivers cannot tell what you published, \
         so SPF, DKIM and DMARC become temperror and the mail is deferred, or the failure \
         is counted against you when it persists.",
    )
    .reply("451 4.7.x (temperror: try again later); 450 4.1.8 Domain not found from Postfix's reject_unknown_sender_domain")
    .fix("Make every name server of the zone answer for this name (see the name server findings); check the zone loads without errors.")
}

/// A TXT record with a character-string over 255 octets: DNS cannot carry
/// it (RFC 1035 §3.3), so zone files holding one are refused or cut by
/// name servers. Only zone files (`--dns-zone`) can show it.
pub fn long_strings(area: &'static str, name: &str, strings: &[Vec<u8>]) -> Option<Finding> {
    let longest = strings.iter().map(Vec::len).max()?;
    (longest > 255).then(|| {
        Finding::new(
            area,
            "dns.string_too_long",
            Severity::Error,
            name,
            format!("a TXT string of {longest} octets; one string holds at most 255"),
        )
        .why("RFC 1035 §3.3: a TXT character-string is at most 255 octets. Name servers refuse such a zone or cut the record, so receivers see no record or a broken one (RFC 7208 §3.3, RFC 6376 §3.6.2.2: long records are split into several strings).")
        .reply("what a missing or broken record gives: 550 5.7.24 (SPF permerror), or DKIM permerror and 550 5.7.1 under DMARC p=reject")
        .fix("Split the value into strings of at most 255 octets in one record: TXT \"first part\" \"second part\" (receivers join them without a space).")
    })
}

/// What to check.
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// The domain (lower-cased, no trailing dot).
    pub domain: String,
    /// Sending addresses to check (PTR, forward confirmation, SPF).
    pub ips: Vec<IpAddr>,
    /// DKIM selectors; empty: the [`dkim::COMMON_SELECTORS`].
    pub selectors: Vec<String>,
    /// Ask the domain's name servers directly (off for zone files).
    pub delegation: bool,
    /// The port name servers are asked at (53; tests use their own).
    pub ns_port: u16,
    /// The per-query timeout of the direct name server queries.
    pub ns_timeout: std::time::Duration,
}

/// Everything found for one domain.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    /// The JSON schema version (docs/DOCTOR.md).
    pub schema: u32,
    pub domain: String,
    /// `clean`, `warnings`, `errors` or `incomplete` (the check could not run).
    pub status: &'static str,
    pub exit_code: u8,
    pub counts: Counts,
    pub findings: Vec<Finding>,
}

/// Findings by severity.
#[derive(Clone, Copy, Debug, Default, Serialize, PartialEq, Eq)]
pub struct Counts {
    pub error: usize,
    pub warning: usize,
    pub ok: usize,
}

impl Report {
    /// The report of `findings`; `incomplete` when the check could not run.
    pub fn new(domain: &str, findings: Vec<Finding>, incomplete: bool) -> Self {
        let mut counts = Counts::default();
        for f in &findings {
            match f.severity {
                Severity::Error => counts.error += 1,
                Severity::Warning => counts.warning += 1,
                Severity::Ok => counts.ok += 1,
            }
        }
        let (status, exit_code) = if incomplete {
            ("incomplete", 2)
        } else if counts.error > 0 {
            ("errors", 1)
        } else if counts.warning > 0 {
            ("warnings", 0)
        } else {
            ("clean", 0)
        };
        Self {
            schema: 1,
            domain: domain.to_string(),
            status,
            exit_code,
            counts,
            findings,
        }
    }

    /// The findings with this id.
    pub fn with_id(&self, id: &str) -> Vec<&Finding> {
        self.findings.iter().filter(|f| f.id == id).collect()
    }
}

/// Normalises a domain argument: lower case, no trailing dot, IDNA
/// (U-labels to A-labels). `Err` when it is not a domain name.
pub fn normalize_domain(arg: &str) -> Result<String, String> {
    let d = arg.trim().trim_end_matches('.');
    let ascii = idna::domain_to_ascii(d).map_err(|_| format!("{arg}: not a domain name"))?;
    let ok = !ascii.is_empty()
        && ascii.contains('.')
        && ascii.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && l.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        })
        && ascii.len() <= 253;
    if ok {
        Ok(ascii)
    } else {
        Err(format!("{arg}: not a domain name"))
    }
}

/// Runs every check for `opts.domain`.
pub async fn diagnose(dns: &Dns, opts: &Options) -> Report {
    let domain = opts.domain.as_str();
    let mut findings = Vec::new();
    // The apex first: when none of its lookups gets an answer, nothing
    // below can be judged and the check itself could not run.
    let apex_mx = dns.mx(domain).await;
    let apex_txt = dns.txt_strings(domain).await;
    let unreachable = matches!(
        (&apex_mx, &apex_txt),
        (
            Err(LookupError::Temporary(_)),
            Err(LookupError::Temporary(_))
        )
    );
    if unreachable {
        let e = match &apex_txt {
            Err(e) => e.clone(),
            Ok(_) => unreachable!(),
        };
        findings.push(
            Finding::new(
                "dns",
                "dns.unreachable",
                Severity::Error,
                domain,
                format!("no DNS answer for {domain} (MX and TXT): {e}"),
            )
            .why("Nothing about the domain could be read, so nothing could be checked. Receivers that see the same defer all of its mail.")
            .reply("451 4.4.3 / 450 4.1.8 Domain not found (temporary), until it answers again")
            .fix("Check that the domain's name servers are up and serve the zone (see the name server findings below), then run doctor again."),
        );
        if opts.delegation {
            findings.extend(delegation::check(dns, domain, opts).await);
        }
        return Report::new(domain, findings, true);
    }
    if apex_mx == Err(LookupError::NxDomain) && apex_txt == Err(LookupError::NxDomain) {
        findings.push(
            Finding::new(
                "dns",
                "dns.nxdomain",
                Severity::Error,
                domain,
                format!("{domain} does not exist (NXDOMAIN)"),
            )
            .why("Receivers check that the sender's domain exists; mail from a domain that does not is refused, and DMARC applies np= of the parent's policy.")
            .reply("550 5.1.8 / 450 4.1.8 Sender address rejected: Domain not found")
            .fix("Register or publish the domain (check for a typo in the name you gave)."),
        );
        return Report::new(domain, findings, false);
    }
    if opts.delegation {
        findings.extend(delegation::check(dns, domain, opts).await);
    }
    let null_mx = matches!(&apex_mx, Ok(l) if l.iter().any(|(_, n)| n.is_empty()));
    findings.extend(mx::check(dns, domain, apex_mx).await);
    let spf = spf::check(dns, domain, &apex_txt).await;
    let spf_usable = spf.usable;
    findings.extend(spf.findings);
    for ip in &opts.ips {
        findings.extend(ip::check(dns, domain, *ip).await);
    }
    let dkim = dkim::check(dns, domain, &opts.selectors).await;
    let can = dmarc::CanPass {
        spf_usable,
        dkim_keys: dkim.usable_keys,
        selectors_given: !opts.selectors.is_empty(),
        null_mx,
    };
    findings.extend(dkim.findings);
    findings.extend(dmarc::check(dns, domain, &apex_txt, can).await);
    Report::new(domain, findings, false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_follow_the_worst_finding() {
        let ok = Finding::ok("mx", "mx.ok", "a.example", "fine");
        let warn = Finding::new("spf", "spf.neutral_all", Severity::Warning, "a", "w");
        let err = Finding::new("spf", "spf.multiple_records", Severity::Error, "a", "e");
        assert_eq!(Report::new("a", vec![ok.clone()], false).exit_code, 0);
        assert_eq!(Report::new("a", vec![ok.clone()], false).status, "clean");
        let r = Report::new("a", vec![ok.clone(), warn.clone()], false);
        assert_eq!((r.exit_code, r.status), (0, "warnings"));
        let r = Report::new("a", vec![ok, warn, err.clone()], false);
        assert_eq!((r.exit_code, r.status), (1, "errors"));
        assert_eq!(
            r.counts,
            Counts {
                error: 1,
                warning: 1,
                ok: 1
            }
        );
        let r = Report::new("a", vec![err], true);
        assert_eq!((r.exit_code, r.status), (2, "incomplete"));
    }

    #[test]
    fn domain_arguments() {
        assert_eq!(normalize_domain("Example.COM.").unwrap(), "example.com");
        assert_eq!(
            normalize_domain("bücher.example").unwrap(),
            "xn--bcher-kva.example"
        );
        assert!(normalize_domain("localhost").is_err());
        assert!(normalize_domain("a..example").is_err());
        assert!(normalize_domain("exa mple.com").is_err());
        assert!(normalize_domain("").is_err());
    }
}
