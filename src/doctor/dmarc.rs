//! DMARC (RFC 9989): the record that applies (at the domain, or found by
//! the DNS tree walk) and the Organizational Domain that makes, each tag
//! checked (removed tags, bad values, testing, psd), the policy against
//! what can pass, and every rua/ruf destination with its external
//! authorisation record (RFC 9990 §4).

use super::{dns_trouble, Finding, Severity};
use crate::{
    checks::{
        dmarc::{is_dmarc_record, valid_uris, Discovery, DmarcLookups},
        evidence::DmarcPolicy,
    },
    dns::{Dns, LookupError},
    reports::authorize::{authorize, mailto_address, Authorization},
};

const AREA: &str = "dmarc";

/// What the other checks found that can make mail pass DMARC.
#[derive(Clone, Copy, Debug, Default)]
pub struct CanPass {
    /// One SPF record that evaluates within the limits.
    pub spf_usable: bool,
    /// DKIM keys a signature could verify with.
    pub dkim_keys: usize,
    /// The DKIM selectors were given (not guessed).
    pub selectors_given: bool,
    /// The domain publishes a null MX: it sends no mail, nothing should pass.
    pub null_mx: bool,
}

/// Checks the DMARC policy of `domain`; `can` says whether anything can pass it.
pub async fn check(
    dns: &Dns,
    domain: &str,
    apex: &Result<Vec<Vec<Vec<u8>>>, LookupError>,
    can: CanPass,
) -> Vec<Finding> {
    let name = format!("_dmarc.{domain}");
    let lookups = DmarcLookups::default();
    let mut out = Vec::new();
    let (at, record) = match lookups.discover(dns, domain).await {
        Discovery::TempError(e) => {
            return vec![dns_trouble(AREA, &name, "TXT", &LookupError::Temporary(e))]
        }
        Discovery::NotFound { .. } => return not_found(dns, domain, apex).await,
        Discovery::Found { at, record } => (at, record),
    };
    let at_name = format!("_dmarc.{at}");
    let text = match dns.txt(&at_name).await {
        Ok(t) => t
            .iter()
            .find(|t| is_dmarc_record(t))
            .map(|t| String::from_utf8_lossy(t).into_owned())
            .unwrap_or_default(),
        Err(e) => return vec![dns_trouble(AREA, &at_name, "TXT", &e)],
    };
    let org = match lookups.org_domain(dns, domain).await {
        Ok(o) => o,
        Err(e) => return vec![dns_trouble(AREA, &name, "TXT", &LookupError::Temporary(e))],
    };
    let own = at == domain;
    let policy = if own {
        record.p
    } else {
        record.sp.or(record.p)
    }
    .unwrap_or(DmarcPolicy::None);
    out.extend(lint(&at_name, &text, own));
    let effective = if record.testing {
        match policy {
            DmarcPolicy::Reject => DmarcPolicy::Quarantine,
            _ => DmarcPolicy::None,
        }
    } else {
        policy
    };
    if effective != DmarcPolicy::None && !can.spf_usable && can.dkim_keys == 0 && !can.null_mx {
        // Guessed selectors prove nothing: a custom selector may be in use.
        let severity = if can.selectors_given {
            Severity::Error
        } else {
            Severity::Warning
        };
        out.push(
            Finding::new(AREA, "dmarc.cannot_pass", severity, domain, format!("the policy is {} but neither SPF nor a DKIM key was found that could make mail pass", policy.as_str()))
                .record(text.clone())
                .why("DMARC passes only with an aligned SPF pass or an aligned DKIM pass (RFC 9989 §4.4); with neither, every message from the domain fails DMARC and the policy applies to all of it.")
                .reply("550 5.7.1 Email rejected per DMARC policy (p=reject); the spam folder for p=quarantine")
                .fix("Fix SPF (see above) or publish the DKIM keys of your signer (run doctor with --selector); until then set p=none."),
        );
    }
    for (tag, uris) in [("rua", &record.rua), ("ruf", &record.ruf)] {
        for uri in uris.iter() {
            out.push(destination(dns, &at, tag, uri).await);
        }
    }
    {
        let source = if own {
            format!("a DMARC record at {name}")
        } else {
            format!("no record at {name}: the record at {at_name}, found by the tree walk, applies")
        };
        let mut f = Finding::ok(
            AREA,
            "dmarc.found",
            domain,
            format!(
                "{source}; policy {}{}; Organizational Domain {org}",
                policy.as_str(),
                if record.testing {
                    " (t=y: applied one level lower)"
                } else {
                    ""
                }
            ),
        )
        .record(text);
        if policy == DmarcPolicy::Reject {
            f = f.reply("550 5.7.1 for mail that fails DMARC: spoofs of the domain are refused");
        }
        out.push(f);
    }
    out
}

/// No policy applies: explain why (none, several, unusable, misplaced).
async fn not_found(
    dns: &Dns,
    domain: &str,
    apex: &Result<Vec<Vec<Vec<u8>>>, LookupError>,
) -> Vec<Finding> {
    let name = format!("_dmarc.{domain}");
    let txts = match dns.txt(&name).await {
        Ok(t) => t
            .iter()
            .map(|t| String::from_utf8_lossy(t).into_owned())
            .collect(),
        Err(e @ LookupError::Temporary(_)) => return vec![dns_trouble(AREA, &name, "TXT", &e)],
        Err(_) => Vec::new(),
    };
    let dmarc: Vec<&String> = txts
        .iter()
        .filter(|t| is_dmarc_record(t.as_bytes()))
        .collect();
    if dmarc.len() > 1 {
        return vec![Finding::new(AREA, "dmarc.multiple_records", Severity::Error, name, format!("{} DMARC records", dmarc.len()))
            .details(dmarc.iter().map(|t| t.to_string()).collect())
            .why("RFC 9989 §4.10 step 2: when more than one DMARC record is found, all are discarded: no policy applies and spoofs of the domain are delivered.")
            .reply("none for your own mail; mail spoofing the domain gets 250 instead of 550 5.7.1")
            .fix("Keep exactly one v=DMARC1 record at this name.")];
    }
    if let [one] = dmarc.as_slice() {
        // One record that is not usable: the lint says why.
        return lint(&name, one, true);
    }
    if let Some(t) = txts
        .iter()
        .find(|t| t.to_ascii_lowercase().contains("v=dmarc1"))
    {
        return vec![Finding::new(AREA, "dmarc.bad_version", Severity::Error, name, "a TXT record mentions v=DMARC1 but is not a DMARC record")
            .record(t.clone())
            .why("RFC 9989 §4.7: a DMARC record starts with the tag v=DMARC1 (the value in upper case, exactly); anything else is ignored, so no policy applies.")
            .reply("none for your own mail; mail spoofing the domain gets 250 instead of 550 5.7.1")
            .fix("Start the record with \"v=DMARC1;\".")];
    }
    let misplaced = match apex {
        Ok(t) => t
            .iter()
            .map(|s| String::from_utf8_lossy(&s.concat()).into_owned())
            .find(|t| is_dmarc_record(t.as_bytes())),
        Err(_) => None,
    };
    if let Some(t) = misplaced {
        return vec![Finding::new(AREA, "dmarc.at_apex", Severity::Error, domain, format!("the DMARC record is published at {domain}, not at {name}"))
            .record(t)
            .why("RFC 9989 §4.10.1: receivers look for the policy by prepending _dmarc to the domain; a record at the domain itself is never read.")
            .reply("none for your own mail; mail spoofing the domain gets 250 instead of 550 5.7.1")
            .fix(format!("Publish the same TXT record at {name} and remove it from {domain}."))];
    }
    vec![Finding::new(AREA, "dmarc.missing", Severity::Warning, name.clone(), "no DMARC record applies (none at the domain, none found by the tree walk)")
        .why("Without DMARC, receivers apply no policy to mail that spoofs the domain, and Gmail, Yahoo and Microsoft require a DMARC record of bulk senders.")
        .reply("550 5.7.26 from Gmail and Yahoo for bulk senders without DMARC; spoofs of the domain are delivered")
        .fix(format!("Publish a TXT record at {name}: start with \"v=DMARC1; p=none; rua=mailto:dmarc-reports@{domain}\", read the reports, then move to p=quarantine and p=reject."))]
}

/// Tag-by-tag findings for the record `text` at `name` (`own`: it is the
/// domain's own record, not its Organizational Domain's).
fn lint(name: &str, text: &str, own: bool) -> Vec<Finding> {
    let mut out = Vec::new();
    let warn =
        |id, summary: String| Finding::new(AREA, id, Severity::Warning, name, summary).record(text);
    let mut seen: Vec<String> = Vec::new();
    let mut tags: Vec<(String, String)> = Vec::new();
    for part in text.split(';').skip(1) {
        let part = part.trim_matches(|c| c == ' ' || c == '\t');
        if part.is_empty() {
            continue;
        }
        let Some((k, v)) = part.split_once('=') else {
            out.push(warn("dmarc.bad_tag", format!("\"{part}\" is not a tag=value pair"))
                .why("RFC 9989 §4.7: the record is a list of tag=value pairs separated by \";\"; this part is ignored.")
                .fix("Remove it, or write it as tag=value."));
            continue;
        };
        let (k, v) = (k.trim().to_ascii_lowercase(), v.trim().to_string());
        if seen.contains(&k) {
            out.push(
                Finding::new(
                    AREA,
                    "dmarc.duplicate_tag",
                    Severity::Error,
                    name,
                    format!("{k}= appears more than once"),
                )
                .record(text)
                .why("RFC 9989 §4.7 gives DMARC records DKIM's tag-value syntax, and RFC 6376 §3.2 says a tag list with a tag twice is invalid: receivers that follow it discard the whole record (no policy), others use the first value.")
                .reply("none for your own mail; at receivers that discard the record, mail spoofing the domain gets 250 instead of 550 5.7.1")
                .fix(format!("Keep one {k}=.")),
            );
            continue;
        }
        seen.push(k.clone());
        tags.push((k, v));
    }
    let tag = |n: &str| tags.iter().find(|(k, _)| k == n).map(|(_, v)| v.as_str());
    for (k, v) in &tags {
        match k.as_str() {
            "v" | "p" | "sp" | "np" | "adkim" | "aspf" | "fo" | "rua" | "ruf" | "t" | "psd" => {}
            "pct" => out.push(warn("dmarc.removed_tag", format!("pct={v}: RFC 9989 removed pct"))
                .why(if v.trim() == "100" {
                    "Receivers following RFC 9989 ignore pct; pct=100 was the default anyway.".to_string()
                } else {
                    format!("Receivers following RFC 9989 ignore pct and apply the policy to all failing mail, not {v}%; older receivers still sample.")
                })
                .fix("Remove pct=; to test a policy, publish it with t=y (one level lower is applied).")),
            "rf" | "ri" => out.push(warn("dmarc.removed_tag", format!("{k}={v}: RFC 9989 removed {k}"))
                .why("RFC 9989 removed rf (failure report format) and ri (report interval); receivers ignore them (aggregate reports are daily, RFC 9990).")
                .fix(format!("Remove {k}="))),
            _ => out.push(warn("dmarc.unknown_tag", format!("unknown tag {k}="))
                .why("Receivers ignore unknown tags (RFC 9989 §4.7); it is often a typo of one that was meant.")
                .fix("Remove it, or correct its name (p, sp, np, adkim, aspf, rua, ruf, fo, t, psd).")),
        }
    }
    let rua_valid = tag("rua").is_some_and(|v| !valid_uris(v).is_empty());
    let policy_sev = if rua_valid {
        Severity::Warning
    } else {
        Severity::Error
    };
    let unusable_why = if rua_valid {
        "RFC 9989 §4.10.1: with an invalid or missing policy but a valid rua, receivers treat the record as p=none: monitoring only."
    } else {
        "RFC 9989 §4.10.1: without a valid p= (or with an invalid sp=/np=) and no valid rua=, the record is unusable: no DMARC processing, spoofs are delivered."
    };
    match tag("p") {
        None => out.push(Finding::new(AREA, "dmarc.no_policy", policy_sev, name, "the record has no p= tag")
            .record(text)
            .reply("none for your own mail; mail spoofing the domain gets 250 instead of 550 5.7.1")
            .why(unusable_why)
            .fix("Add p=none, p=quarantine or p=reject right after v=DMARC1.")),
        Some(p) if p.to_ascii_lowercase().parse::<DmarcPolicy>().is_err() => {
            out.push(Finding::new(AREA, "dmarc.bad_policy", policy_sev, name, format!("p={p} is not none, quarantine or reject"))
                .record(text)
                .reply("none for your own mail; mail spoofing the domain gets 250 instead of 550 5.7.1")
                .why(unusable_why)
                .fix("Use p=none, p=quarantine or p=reject."))
        }
        Some(p) if p.eq_ignore_ascii_case("none") && own => out.push(warn("dmarc.policy_none", "p=none: monitoring only".into())
            .why("Receivers deliver mail that fails DMARC as if there were no policy: spoofs of the domain are not stopped.")
            .fix("Once the aggregate reports show your own mail passing, move to p=quarantine, then p=reject.")),
        Some(_) => {}
    }
    for t in ["sp", "np"] {
        if let Some(v) = tag(t) {
            if v.to_ascii_lowercase().parse::<DmarcPolicy>().is_err() {
                out.push(Finding::new(AREA, "dmarc.bad_policy", policy_sev, name, format!("{t}={v} is not none, quarantine or reject"))
                    .record(text)
                    .reply("none for your own mail; mail spoofing the domain gets 250 instead of 550 5.7.1")
                    .why(unusable_why)
                    .fix(format!("Use {t}=none, {t}=quarantine or {t}=reject, or remove it.")));
            }
        }
    }
    let bad_value = |k: &str, v: &str, allowed: &str, default: &str| {
        warn(
            "dmarc.bad_value",
            format!("{k}={v} is not one of {allowed}"),
        )
        .why(format!(
            "RFC 9989 §4.7: an invalid value is ignored and the default ({default}) applies."
        ))
        .fix(format!("Use one of {allowed}, or remove {k}="))
    };
    for (k, allowed, default) in [("adkim", ["r", "s"], "r"), ("aspf", ["r", "s"], "r")] {
        if let Some(v) = tag(k) {
            if !allowed.contains(&v.to_ascii_lowercase().as_str()) {
                out.push(bad_value(k, v, "r, s", default));
            }
        }
    }
    match tag("t").map(|v| v.to_ascii_lowercase()) {
        Some(v) if v == "y" => out.push(warn("dmarc.testing", "t=y: testing mode".into())
            .why("RFC 9989 §4.7: receivers apply the next lower policy (reject as quarantine, quarantine as none).")
            .fix("Remove t=y (or set t=n) once the reports show your mail passing.")),
        Some(v) if v != "n" => out.push(bad_value("t", &v, "y, n", "n")),
        _ => {}
    }
    match tag("psd").map(|v| v.to_ascii_lowercase()) {
        Some(v) if v == "y" && own => out.push(warn("dmarc.psd_declared", "psd=y: the record declares the domain a public suffix".into())
            .why("RFC 9989 §4.7: psd=y is for Public Suffix Operators (registries); on an ordinary domain it makes each subdomain its own Organizational Domain, so relaxed alignment between them fails.")
            .fix("Remove psd=y unless you operate a public suffix.")),
        Some(v) if !matches!(v.as_str(), "y" | "n" | "u") => out.push(bad_value("psd", &v, "y, n, u", "u")),
        _ => {}
    }
    if let Some(fo) = tag("fo") {
        if !fo
            .split(':')
            .all(|o| matches!(o.trim(), "0" | "1" | "d" | "s"))
        {
            out.push(bad_value("fo", fo, "0, 1, d, s (joined by \":\")", "0"));
        }
    }
    for t in ["rua", "ruf"] {
        let Some(list) = tag(t) else { continue };
        let valid = valid_uris(list);
        for u in list.split(',').map(|u| u.trim()).filter(|u| !u.is_empty()) {
            let plain = u.rsplit_once('!').map_or(u, |(a, _)| a);
            if !valid.iter().any(|v| v == plain) {
                out.push(warn("dmarc.bad_uri", format!("{t}: \"{u}\" is not a valid URI"))
                    .why("RFC 9989 §4.7: invalid URIs are ignored, so no reports go there (commas and \"!\" inside a URI must be percent-encoded).")
                    .fix(format!("Write it as mailto:address, e.g. {t}=mailto:dmarc@example.com.")));
            } else if plain != u {
                out.push(
                    warn(
                        "dmarc.size_limit",
                        format!("{t}: \"{u}\" carries a size limit"),
                    )
                    .why("RFC 9989 §4.8 made the \"!size\" suffix obsolete: reporters ignore it.")
                    .fix(format!("Remove the suffix: {plain}.")),
                );
            }
        }
    }
    out
}

/// One rua/ruf destination: allowed, or why receivers will not send there.
async fn destination(dns: &Dns, policy_domain: &str, tag: &str, uri: &str) -> Finding {
    match authorize(dns, policy_domain, uri, tag).await {
        Authorization::Allowed { address } => Finding::ok(
            AREA,
            "dmarc.destination_ok",
            policy_domain,
            format!("{tag} reports go to {address}"),
        ),
        Authorization::Refused(why) if mailto_address(uri).is_none() => Finding::new(
            AREA,
            "dmarc.non_mailto",
            Severity::Warning,
            policy_domain,
            format!("{tag}: {why}"),
        )
        .why("RFC 9990 §3.5 and RFC 9991 define delivery by mail only; receivers send nothing to other schemes.")
        .fix("Use a mailto: URI."),
        Authorization::Refused(why) => {
            let host = mailto_address(uri)
                .and_then(|a| a.rsplit_once('@').map(|(_, h)| h.to_string()))
                .unwrap_or_default();
            Finding::new(
                AREA,
                "dmarc.destination_unauthorized",
                Severity::Warning,
                format!("{policy_domain}._report._dmarc.{host}"),
                format!("{tag}={uri}: {why}"),
            )
            .reply("none: mail is delivered as before, but receivers send no reports there")
            .why("RFC 9990 §4: reports for one Organizational Domain go to another only when that domain publishes v=DMARC1 at <policy-domain>._report._dmarc.<destination-host>; without it receivers send nothing, so every report is lost.")
            .fix(format!("Ask the owner of {host} to publish TXT \"v=DMARC1\" at {policy_domain}._report._dmarc.{host} (report services do this when you register the domain), or send reports to an address at {policy_domain}."))
        }
        Authorization::Temporary(e) => dns_trouble(AREA, uri, "TXT", &LookupError::Temporary(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(text: &str) -> Vec<(&'static str, Severity)> {
        lint("_dmarc.example.com", text, true)
            .into_iter()
            .map(|f| (f.id, f.severity))
            .collect()
    }

    #[test]
    fn tags_are_checked_one_by_one() {
        assert!(ids("v=DMARC1; p=reject; rua=mailto:d@example.com").is_empty());
        assert_eq!(
            ids("v=DMARC1; p=none"),
            [("dmarc.policy_none", Severity::Warning)]
        );
        assert_eq!(
            ids("v=DMARC1; sp=reject"),
            [("dmarc.no_policy", Severity::Error)]
        );
        // A valid rua turns an unusable policy into p=none (RFC 9989 §4.10.1).
        assert_eq!(
            ids("v=DMARC1; p=block; rua=mailto:d@example.com"),
            [("dmarc.bad_policy", Severity::Warning)]
        );
        assert_eq!(
            ids("v=DMARC1; p=reject; p=none"),
            [("dmarc.duplicate_tag", Severity::Error)]
        );
        assert_eq!(
            ids("v=DMARC1; p=reject; pct=100; ri=86400; rf=afrf"),
            [
                ("dmarc.removed_tag", Severity::Warning),
                ("dmarc.removed_tag", Severity::Warning),
                ("dmarc.removed_tag", Severity::Warning)
            ]
        );
        assert_eq!(
            ids("v=DMARC1; p=reject; fo=1:x; aspf=relaxed"),
            [
                ("dmarc.bad_value", Severity::Warning),
                ("dmarc.bad_value", Severity::Warning)
            ]
        );
        // psd=y on the Organizational Domain's record read for a subdomain is not ours.
        assert!(lint("_dmarc.example.com", "v=DMARC1; p=reject; psd=y", false).is_empty());
    }
}
