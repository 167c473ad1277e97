//! External destination verification (RFC 9990 §4, used for `ruf` by
//! RFC 9991): a report for `policy.example` may go to a `mailto:` address
//! at another Organizational Domain only when that domain publishes a
//! `v=DMARC1` record at `policy.example._report._dmarc.<host>`.

use crate::{
    checks::dmarc::{is_dmarc_record, valid_uris, DmarcLookups},
    dns::Dns,
};

/// The outcome for one destination URI.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Authorization {
    /// Send to this address (the URI's, or the override the target
    /// domain published for the same host).
    Allowed { address: String },
    /// Never send to it (not `mailto:`, not authorised, an override to
    /// another host); why.
    Refused(String),
    /// DNS could not answer: try again on the next run.
    Temporary(String),
}

/// The address of a `mailto:` URI (without `?headers`, percent-decoded).
pub fn mailto_address(uri: &str) -> Option<String> {
    let (scheme, rest) = uri.split_once(':')?;
    if !scheme.eq_ignore_ascii_case("mailto") {
        return None;
    }
    let addr = rest.split('?').next().unwrap_or_default();
    let addr = percent_decode(addr)?;
    let (local, host) = addr.rsplit_once('@')?;
    let host_ok = !host.is_empty()
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.'));
    let local_ok = !local.is_empty()
        && local
            .chars()
            .all(|c| c.is_ascii_graphic() && !matches!(c, '<' | '>' | ',' | '@'));
    (host_ok && local_ok).then(|| format!("{local}@{}", host.to_ascii_lowercase()))
}

fn percent_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = std::str::from_utf8(b.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

fn host_of(address: &str) -> &str {
    address.rsplit_once('@').map_or("", |(_, h)| h)
}

/// Checks one `rua` (`ruf`) URI of the record found at `policy_domain`.
pub async fn authorize(dns: &Dns, policy_domain: &str, uri: &str, tag: &str) -> Authorization {
    let Some(address) = mailto_address(uri) else {
        return Authorization::Refused(format!(
            "{uri}: only mailto: destinations are supported (RFC 9990 §3.5)"
        ));
    };
    let host = host_of(&address).trim_end_matches('.').to_string();
    let policy_domain = policy_domain.trim_end_matches('.').to_ascii_lowercase();
    let lookups = DmarcLookups::default();
    let (org_policy, org_host) = match (
        lookups.org_domain(dns, &policy_domain).await,
        lookups.org_domain(dns, &host).await,
    ) {
        (Ok(a), Ok(b)) => (a, b),
        (Err(e), _) | (_, Err(e)) => return Authorization::Temporary(e),
    };
    if org_policy == org_host {
        return Authorization::Allowed { address };
    }
    let name = format!("{policy_domain}._report._dmarc.{host}");
    let records = match dns.txt(&name).await {
        Ok(r) => r,
        Err(e) if e.is_not_found() => {
            return Authorization::Refused(format!(
                "{host} has not authorised reports for {policy_domain} (no record at {name})"
            ))
        }
        Err(e) => return Authorization::Temporary(format!("{name}: {e}")),
    };
    let Some(record) = records.iter().find(|r| is_dmarc_record(r)) else {
        return Authorization::Refused(format!(
            "{host} has not authorised reports for {policy_domain} (no v=DMARC1 record at {name})"
        ));
    };
    // §4 step 9: the record may name the destination itself, on the same host.
    let text = String::from_utf8_lossy(record);
    let over = text.split(';').skip(1).find_map(|part| {
        let (k, v) = part.split_once('=')?;
        k.trim().eq_ignore_ascii_case(tag).then(|| valid_uris(v))
    });
    match over {
        Some(list) if !list.is_empty() => {
            let mut allowed = None;
            for u in &list {
                match mailto_address(u) {
                    Some(a) if host_of(&a).trim_end_matches('.') == host => {
                        allowed = allowed.or(Some(a));
                    }
                    _ => {
                        return Authorization::Refused(format!(
                            "{name} redirects to {u}, another host: neither is used (RFC 9990 §4)"
                        ))
                    }
                }
            }
            Authorization::Allowed {
                address: allowed.unwrap_or(address),
            }
        }
        _ => Authorization::Allowed { address },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mailto_addresses() {
        assert_eq!(
            mailto_address("mailto:dmarc@Example.COM").as_deref(),
            Some("dmarc@example.com")
        );
        assert_eq!(
            mailto_address("MAILTO:a%2Bb@example.com?subject=x").as_deref(),
            Some("a+b@example.com")
        );
        assert_eq!(mailto_address("https://example.com/report"), None);
        assert_eq!(mailto_address("mailto:nobody"), None);
        assert_eq!(mailto_address("mailto:a@b@"), None);
        assert_eq!(mailto_address("mailto:<a>@example.com"), None);
        assert_eq!(mailto_address("mailto:a@exa mple.com"), None);
    }
}
