//! DKIM key records (RFC 6376 §3.6.1, RFC 8301, RFC 8463) for the given
//! selectors, or a short list of common ones: present, one record, syntax,
//! key type and size, revoked, testing, hash and service restrictions,
//! unknown tags.

use super::{dns_trouble, Finding, Severity};
use crate::{
    checks::dkim::rsa_modulus_bits,
    dns::{Dns, LookupError},
};
use base64::Engine;

const AREA: &str = "dkim";

/// Selectors tried when none is given: the defaults of common signers
/// (OpenDKIM, Microsoft 365, Google Workspace, Mailchimp, rspamd, …).
pub const COMMON_SELECTORS: &[&str] = &[
    "default",
    "dkim",
    "mail",
    "selector1",
    "selector2",
    "google",
    "k1",
    "k2",
    "s1",
    "s2",
    "key1",
    "smtp",
];

/// The DKIM findings, and how many keys a signature could verify with.
pub struct Outcome {
    pub findings: Vec<Finding>,
    pub usable_keys: usize,
}

/// Checks the key records of `domain` at `selectors` (the common ones when empty).
pub async fn check(dns: &Dns, domain: &str, selectors: &[String]) -> Outcome {
    let given = !selectors.is_empty();
    let list: Vec<String> = if given {
        selectors.to_vec()
    } else {
        COMMON_SELECTORS.iter().map(|s| s.to_string()).collect()
    };
    let mut findings = Vec::new();
    let mut usable = 0;
    let mut found = 0;
    for sel in &list {
        let name = format!("{sel}._domainkey.{domain}");
        let mut long = Vec::new();
        let joined = dns.txt_strings(&name).await.map(|records| {
            long.extend(
                records
                    .iter()
                    .filter_map(|r| super::long_strings(AREA, &name, r)),
            );
            records.into_iter().map(|r| r.concat()).collect::<Vec<_>>()
        });
        match joined {
            // A guessed selector answered by something that is no key
            // record (a wildcard TXT such as "v=spf1 -all"): nothing there.
            Ok(txts) if !given && !txts.iter().any(|t| looks_like_key(t)) => {}
            Ok(txts) => {
                found += 1;
                let mut f = record(&name, sel, &txts, given);
                if !long.is_empty() {
                    f.retain(|x| x.id != "dkim.ok");
                    f.append(&mut long);
                }
                // A revoked key (empty p=) is only a warning when guessed,
                // but verifies nothing.
                if f
                    .iter()
                    .all(|f| f.severity != Severity::Error && f.id != "dkim.revoked")
                {
                    usable += 1;
                }
                findings.append(&mut f);
            }
            Err(e @ LookupError::Temporary(_)) => findings.push(dns_trouble(AREA, &name, "TXT", &e)),
            Err(_) if given => findings.push(
                Finding::new(AREA, "dkim.key_missing", Severity::Error, name.clone(), format!("no DKIM key for selector {sel}"))
                    .why(format!("Signatures with s={sel} d={domain} cannot be verified (RFC 6376 §6.1.2: PERMFAIL, no key for signature); DMARC then depends on SPF alone, and mail that was forwarded fails DMARC."))
                    .reply("550 5.7.1 under DMARC p=reject when SPF does not pass aligned; 550 5.7.20 No passing DKIM signature found (RFC 7372)")
                    .fix(format!("Publish the public key of the signer's selector as TXT at {name} (\"v=DKIM1; k=rsa; p=…\"), or correct the selector name the signer uses.")),
            ),
            Err(_) => {}
        }
    }
    if !given && found == 0 {
        findings.push(
            Finding::new(AREA, "dkim.no_common_selector", Severity::Warning, domain, "no DKIM key found at the common selectors")
                .details(vec![COMMON_SELECTORS.join(", ")])
                .why("A selector cannot be discovered from DNS. If the domain signs, give its selectors with --selector; if it does not, DMARC rests on SPF alone and breaks for forwarded mail.")
                .fix("Run doctor again with --selector (the s= of a DKIM-Signature you sent), or set up DKIM signing."),
        );
    }
    Outcome {
        findings,
        usable_keys: usable,
    }
}

/// Whether a TXT record is meant as a DKIM key record: `v=DKIM1` first,
/// or a `p=` tag.
fn looks_like_key(txt: &[u8]) -> bool {
    let s = String::from_utf8_lossy(txt);
    let first = s.split(';').next().unwrap_or("").replace([' ', '\t'], "");
    first.eq_ignore_ascii_case("v=DKIM1")
        || s.split(';')
            .any(|t| t.trim_start().starts_with("p=") || t.trim_start().starts_with("p ="))
}

/// Splits a tag list strictly (RFC 6376 §3.2): the tags, or the part that
/// is not `name=value`.
fn strict_tags(text: &str) -> Result<Vec<(String, String)>, String> {
    let mut out = Vec::new();
    for part in text.split(';') {
        if part.trim().is_empty() {
            continue;
        }
        let Some((k, v)) = part.split_once('=') else {
            return Err(part.trim().to_string());
        };
        let k = k.trim();
        let name_ok = k.starts_with(|c: char| c.is_ascii_alphabetic())
            && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !name_ok {
            return Err(part.trim().to_string());
        }
        let v: String = v.chars().filter(|c| !c.is_whitespace()).collect();
        out.push((k.to_string(), v));
    }
    Ok(out)
}

/// The findings for the record(s) at `name`.
fn record(name: &str, sel: &str, txts: &[Vec<u8>], given: bool) -> Vec<Finding> {
    let subject = name.to_string();
    let err =
        |id, summary: String| Finding::new(AREA, id, Severity::Error, subject.clone(), summary);
    let warn =
        |id, summary: String| Finding::new(AREA, id, Severity::Warning, subject.clone(), summary);
    let broken_reply = "550 5.7.1 under DMARC p=reject when SPF does not pass aligned; 550 5.7.20 No passing DKIM signature found (RFC 7372)";
    if txts.len() > 1 {
        return vec![err("dkim.multiple_records", format!("{} TXT records at {name}", txts.len()))
            .details(txts.iter().map(|t| String::from_utf8_lossy(t).into_owned()).collect())
            .why("RFC 6376 §3.6.2.2: with several key records the result is undefined; many verifiers take the first and fail when it is the wrong one.")
            .reply(broken_reply)
            .fix("Publish one key record per selector; use a new selector for a new key.")];
    }
    let Ok(text) = std::str::from_utf8(&txts[0]) else {
        return vec![err("dkim.syntax", "the key record is not text".into())
            .why("A key record is ASCII tag=value pairs (RFC 6376 §3.6.1).")
            .reply(broken_reply)
            .fix("Publish the record as generated by the signer (\"v=DKIM1; k=rsa; p=…\").")];
    };
    let tags = match strict_tags(text) {
        Ok(t) => t,
        Err(bad) => {
            return vec![err("dkim.syntax", format!("the key record does not parse at \"{bad}\""))
                .record(text)
                .why("RFC 6376 §3.6.1: a key record that is not a tag=value list is unusable: every signature with this selector fails (permerror).")
                .reply(broken_reply)
                .fix("Publish the record as \"v=DKIM1; k=rsa; p=<base64 key>\", tags separated by \";\".")]
        }
    };
    let tag = |n: &str| tags.iter().find(|(k, _)| k == n).map(|(_, v)| v.as_str());
    let mut out = Vec::new();
    let mut names: Vec<&str> = Vec::new();
    for (k, _) in &tags {
        if names.contains(&k.as_str()) {
            out.push(err("dkim.duplicate_tag", format!("the tag {k}= appears twice"))
                .record(text)
                .why("RFC 6376 §3.2: a tag list with a duplicated tag is invalid; verifiers reject the key.")
                .reply(broken_reply)
                .fix(format!("Keep one {k}=.")));
        }
        names.push(k);
    }
    if let Some(v) = tag("v") {
        if tags[0].0 != "v" || v != "DKIM1" {
            out.push(err("dkim.bad_version", format!("v={v} is not the first tag with the value DKIM1"))
                .record(text)
                .why("RFC 6376 §3.6.1: if v= is present it MUST be the first tag and be \"DKIM1\"; otherwise the key is discarded.")
                .reply(broken_reply)
                .fix("Start the record with \"v=DKIM1;\" or leave v= out."));
        }
    }
    let unknown: Vec<String> = tags
        .iter()
        .map(|(k, _)| k.as_str())
        .filter(|k| !matches!(*k, "v" | "h" | "k" | "n" | "p" | "s" | "t"))
        .map(|k| {
            if k == "g" {
                "g= (removed by RFC 6376)".to_string()
            } else {
                format!("{k}=")
            }
        })
        .collect();
    if !unknown.is_empty() {
        out.push(warn("dkim.unknown_tag", format!("unknown tags: {}", unknown.join(", ")))
            .record(text)
            .why("Verifiers ignore tags they do not know (RFC 6376 §3.6.1); an unknown tag is often a typo of one that was meant (p, k, t, h, s).")
            .fix("Remove the tag, or correct its name."));
    }
    let k = tag("k").unwrap_or("rsa");
    if !matches!(k, "rsa" | "ed25519") {
        out.push(err("dkim.unknown_key_type", format!("key type k={k} is not rsa or ed25519"))
            .record(text)
            .why("RFC 6376 §3.6.1 and RFC 8463: verifiers support rsa and ed25519; a key of another type cannot verify (permerror).")
            .reply(broken_reply)
            .fix("Publish k=rsa or k=ed25519, as the signer's key is."));
    }
    if let Some(s) = tag("s") {
        if !s.split(':').any(|x| x == "*" || x == "email") {
            out.push(err("dkim.not_for_email", format!("service type s={s} does not include email"))
                .record(text)
                .why("RFC 6376 §3.6.1: a key whose s= list holds neither \"email\" nor \"*\" MUST NOT be used for mail: every signature fails.")
                .reply(broken_reply)
                .fix("Remove s= (the default is \"*\") or set s=email."));
        }
    }
    if let Some(h) = tag("h") {
        if !h.split(':').any(|x| x == "sha256") {
            out.push(err("dkim.hash_restricted", format!("h={h} excludes sha256"))
                .record(text)
                .why("RFC 8301 §3.1: verifiers MUST NOT accept rsa-sha1 signatures, so a key restricted to other hashes verifies nothing.")
                .reply(broken_reply)
                .fix("Remove h= (all hashes allowed) or set h=sha256, and sign with rsa-sha256 or ed25519-sha256."));
        }
    }
    if tag("t").is_some_and(|t| t.split(':').any(|f| f == "y")) {
        out.push(warn("dkim.testing", "t=y: the key is in testing mode".into())
            .record(text)
            .why("RFC 6376 §3.6.1: verifiers MUST NOT treat mail signed with a testing key differently from unsigned mail, so it may get no DKIM credit.")
            .fix("Remove t=y once the signatures verify."));
    }
    match tag("p") {
        None => out.push(err("dkim.no_key", "the record has no p= tag".into())
            .record(text)
            .why("RFC 6376 §3.6.1: p= is required; without it the record is not a key and every signature fails (permerror).")
            .reply(broken_reply)
            .fix("Publish the public key in p=, base64, as the signer generated it.")),
        Some("") => {
            let f = Finding::new(AREA, "dkim.revoked", if given { Severity::Error } else { Severity::Warning }, subject.clone(), format!("the key of selector {sel} is revoked (empty p=)"))
                .record(text)
                .why("RFC 6376 §3.6.1: an empty p= means the key was revoked: every signature with this selector fails.")
                .reply(broken_reply)
                .fix("If the signer still uses this selector, publish its current key, or switch the signer to a selector with a key.");
            out.push(f);
        }
        Some(p) => out.extend(key_strength(&subject, text, k, p, broken_reply)),
    }
    if out.iter().all(|f| f.severity == Severity::Ok) {
        let bits = tag("p").and_then(rsa_modulus_bits);
        out.push(Finding::ok(
            AREA,
            "dkim.ok",
            subject,
            match (k, bits) {
                ("rsa", Some(b)) => format!("selector {sel}: an RSA key of {b} bits"),
                _ => format!("selector {sel}: an {k} key"),
            },
        ));
    }
    out
}

/// The key itself: decodable, of a usable size.
fn key_strength(subject: &str, text: &str, k: &str, p: &str, reply: &str) -> Vec<Finding> {
    let err = |id, summary: String| {
        Finding::new(AREA, id, Severity::Error, subject, summary)
            .record(text)
            .reply(reply)
    };
    let Ok(der) = base64::engine::general_purpose::STANDARD.decode(p) else {
        return vec![err("dkim.bad_key", "p= is not valid base64".into())
            .why("A key that does not decode cannot verify anything: every signature fails (permerror). Usually a character lost or added when the record was pasted, or quotes inside the value.")
            .fix("Publish p= again from the signer's public key file, without spaces, quotes or line breaks inside the value.")];
    };
    match k {
        "ed25519" if der.len() != 32 => vec![err("dkim.bad_key", format!("the Ed25519 key is {} bytes, not 32", der.len()))
            .why("RFC 8463 §4.2: p= of an ed25519 key is the 32-byte public key, base64; anything else cannot verify.")
            .fix("Publish the raw 32-byte public key (not the PEM or SubjectPublicKeyInfo form).")],
        "rsa" => match rsa_modulus_bits(p) {
            None => vec![err("dkim.bad_key", "p= is not an RSA public key".into())
                .why("The value decodes but is not an RSA SubjectPublicKeyInfo: often truncated, or a private key or certificate pasted by mistake.")
                .fix("Publish the public key from the signer's .txt or .pub file.")],
            Some(b) if b < 1024 => vec![err("dkim.weak_key", format!("the RSA key has {b} bits, under 1024"))
                .why("RFC 8301 §3.2: verifiers MUST NOT consider signatures with RSA keys under 1024 bits valid.")
                .fix("Generate a 2048-bit key under a new selector, publish it, switch the signer, then revoke this one (empty p=).")],
            Some(b) if b < 2048 => vec![Finding::new(AREA, "dkim.short_key", Severity::Warning, subject, format!("the RSA key has {b} bits, under 2048"))
                .record(text)
                .why("RFC 8301 §3.2: signers SHOULD use keys of at least 2048 bits; 1024-bit keys are within reach of factoring, and some receivers already give them less credit.")
                .fix("Generate a 2048-bit key under a new selector, publish it, then switch the signer.")],
            Some(_) => Vec::new(),
        },
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strict_tag_lists() {
        assert_eq!(
            strict_tags("v=DKIM1; k=rsa; p=AB CD;").unwrap(),
            vec![
                ("v".into(), "DKIM1".into()),
                ("k".into(), "rsa".into()),
                ("p".into(), "ABCD".into())
            ]
        );
        assert_eq!(strict_tags("v=DKIM1; k rsa").unwrap_err(), "k rsa");
        assert_eq!(strict_tags("1x=a").unwrap_err(), "1x=a");
    }
}
