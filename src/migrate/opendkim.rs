//! opendkim.conf(5), for OpenDKIM as a verifier: what carries over to
//! authmilter, what is signing (dropped: authmilter verifies only), what
//! changes.

use super::{lines::keyword_lines, lines::postfix_socket, toml_str, Input, Migration};

/// Keys of signing, and of OpenDKIM's own daemon, with no meaning here.
const SIGNING: &[&str] = &[
    "Domain",
    "KeyFile",
    "KeyTable",
    "SigningTable",
    "Selector",
    "Canonicalization",
    "OversignHeaders",
    "SignatureAlgorithm",
    "SignHeaders",
    "SubDomains",
    "SignatureTTL",
    "SenderHeaders",
    "MultipleSignatures",
    "AddAllSignatureResults",
    "BodyLengthDB",
    "MTA",
    "MacroList",
    "DontSignMailTo",
    "OmitHeaders",
    "SenderMacro",
    "ExemptDomains",
    "LDAP",
    "ResignAll",
    "ResignMailTo",
    "MustBeSigned",
];
const DAEMON: &[&str] = &[
    "Syslog",
    "SyslogSuccess",
    "SyslogFacility",
    "LogWhy",
    "LogResults",
    "UserID",
    "UMask",
    "PidFile",
    "Background",
    "AutoRestart",
    "AutoRestartCount",
    "AutoRestartRate",
    "ChangeRootDirectory",
    "TemporaryDirectory",
    "SoftwareHeader",
    "X-Header",
    "QueryCache",
    "Statistics",
    "StatisticsName",
    "StatisticsPrefix",
    "ReportAddress",
    "ReportBccAddress",
    "SendReports",
    "MilterDebug",
    "RemoveOldSignatures",
    "ClockDrift",
    "MaximumHeaders",
    "MaximumSignaturesToVerify",
    "MaximumSignedBytes",
    "FixCRLF",
    "Diagnostics",
    "DiagnosticDirectory",
    "StrictTestMode",
    "EnableCoredumps",
    "ExternalIgnoreList",
    "LogWhy",
    "ResolverConfiguration",
    "ResolverTracing",
];

/// Translates one opendkim.conf.
pub fn translate(m: &mut Migration, input: &Input, read: &dyn Fn(&str) -> Result<String, String>) {
    let (lines, bad) = keyword_lines(&input.path, &input.text);
    for b in bad {
        m.unknown(&b.origin, format!("`{}` has no value", b.key));
    }
    let mut mode = "sv".to_string();
    let mut socket = None;
    for l in &lines {
        let (k, v, o) = (l.key.as_str(), l.value.as_str(), &l.origin);
        match k {
            "Mode" => mode = v.to_string(),
            "AuthservID" if v == "HOSTNAME" => {}
            "AuthservID" => m.set("milter", "authserv_id", toml_str(v), o),
            "Socket" => match postfix_socket(v) {
                Some(s) => {
                    socket = Some(s.clone());
                    m.old_milters.push((s, o.clone()));
                }
                None => m.unknown(o, format!("socket `{v}` not understood")),
            },
            "InternalHosts" | "PeerList" => {
                m.host_list(v, o, read);
                m.difference(o, format!("{k}: OpenDKIM skipped verification for these hosts; authmilter verifies and labels their mail but never enforces on it (policy.trusted_networks)"));
            }
            "Nameservers" => {
                let list: Vec<String> = v
                    .split(',')
                    .map(|a| a.trim())
                    .filter(|a| !a.is_empty())
                    .map(|a| {
                        if a.parse::<std::net::Ipv6Addr>().is_ok() {
                            toml_str(&format!("[{a}]:53"))
                        } else {
                            toml_str(&format!("{a}:53"))
                        }
                    })
                    .collect();
                m.set("dns", "nameservers", format!("[{}]", list.join(", ")), o);
            }
            "DNSTimeout" => match v.parse::<u32>() {
                Ok(t) => m.set("dns", "timeout", format!("{}.0", t.min(60)), o),
                Err(_) => m.unknown(o, "DNSTimeout is not a number of seconds"),
            },
            "MinimumKeyBits" => m.difference(o, format!("MinimumKeyBits {v}: authmilter fails RSA keys under 1024 bits as RFC 8301 requires, and accepts 1024 and more; it is not configurable")),
            "On-BadSignature" | "On-KeyNotFound" | "On-DNSError" | "On-NoSignature" | "On-SignatureError" | "On-Security" | "On-InternalError" | "On-Default" => on_action(m, k, v, o),
            "AlwaysAddARHeader" | "AuthservIDWithJobID" => m.difference(o, format!("{k}: authmilter always writes exactly one Authentication-Results header, without a job id")),
            "TrustAnchorFile" | "DNSSEC" | "UnprotectedKey" | "UnprotectedPolicy" => m.difference(o, format!("{k}: authmilter does not validate DNSSEC itself: point dns.nameservers at a validating resolver")),
            "RequireSafeKeys" => m.difference(o, "RequireSafeKeys: authmilter does not check key file permissions (it has no keys unless it seals ARC)"),
            "RequiredHeaders" => m.difference(o, format!("RequiredHeaders {v}: authmilter requires exactly one valid From field (policy.invalid_from, reject by default) and checks nothing else of RFC 5322")),
            "Quarantine" => m.human(o, format!("Quarantine {v}: authmilter quarantines by DMARC policy and [policy.rules.dkim]; choose the rules that should hold mail")),
            "ExternalIgnoreList" => m.drop_(o, "ExternalIgnoreList only silences OpenDKIM's log of unsigned mail from your own domains"),
            k if SIGNING.contains(&k) => m.drop_(o, format!("{k} is a signing setting: authmilter verifies only; keep OpenDKIM (Mode s) or another signer for outgoing mail")),
            k if DAEMON.contains(&k) => m.drop_(o, format!("{k}: authmilter's own daemon settings cover it (systemd unit, [log], [limits])")),
            _ => m.unknown(o, format!("`{k}` is not an OpenDKIM setting authmilter knows")),
        }
    }
    let origin = format!("{}: Mode {mode}", input.path);
    if mode.contains('s') {
        m.human(&origin, "OpenDKIM also signs here (Mode contains s): authmilter only verifies. Keep OpenDKIM for signing with Mode s (the main.cf change keeps its socket, authmilter after it), or move signing to your submission service");
        m.signer = socket;
    }
    if !mode.contains('v') {
        m.difference(
            &origin,
            "OpenDKIM did not verify (no v in Mode); authmilter verifies every message",
        );
    } else {
        let itself = format!("{}: OpenDKIM 2.11 itself", input.path);
        for text in STANDARDS {
            m.difference(&itself, *text);
        }
    }
}

/// Where OpenDKIM 2.11 and authmilter (RFC 6376, RFC 8301) verify
/// differently whatever the configuration: each measured by
/// `integration/migration` against Debian's 2.11.0~beta2.
const STANDARDS: &[&str] = &[
    "rsa-sha1: OpenDKIM passes rsa-sha1 signatures; RFC 8301 §3.1 forbids verifiers to, so authmilter never passes them and mail that aligned only through one now fails DMARC",
    "A key record whose k= is not the signature's algorithm: OpenDKIM passed such a signature; authmilter fails it (RFC 6376 §6.1.2 step 6)",
    "Signature timestamps (t=) far in the future: OpenDKIM fails such a signature; authmilter passes it when it verifies and has not expired (RFC 6376 §3.5: t= is informative, only x= expires a signature)",
];

fn on_action(m: &mut Migration, key: &str, v: &str, o: &super::Origin) {
    let result = match key {
        "On-BadSignature" | "On-SignatureError" => "fail",
        "On-KeyNotFound" => "permerror",
        "On-DNSError" => "temperror",
        "On-NoSignature" => "none",
        _ if v.eq_ignore_ascii_case("accept") || v.eq_ignore_ascii_case("a") => return,
        _ => {
            m.human(o, format!("{key} {v}: authmilter has no such catch-all; use [policy.rules.dkim] for the results you want to act on"));
            return;
        }
    };
    match v.to_ascii_lowercase().as_str() {
        "accept" | "a" => {}
        "reject" | "r" => m.rule("dkim", result, "reject", o),
        "tempfail" | "t" => m.rule("dkim", result, "tempfail", o),
        "quarantine" | "q" => m.rule("dkim", result, "quarantine", o),
        "discard" | "d" => {
            m.rule("dkim", result, "reject", o);
            m.difference(o, format!("{key} discard: authmilter never discards mail silently; it rejects instead (dkim={result}), so the sender learns of it"));
        }
        _ => m.unknown(o, format!("{key}: `{v}` is not an OpenDKIM action")),
    }
    if result == "fail" || result == "none" {
        m.difference(o, format!("{key} {v}: acting on a single DKIM result goes beyond DMARC, which alone decides by default; forwarded and list mail often has broken signatures"));
    }
}
