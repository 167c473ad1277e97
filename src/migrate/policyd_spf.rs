//! policyd-spf.conf(5) (postfix-policyd-spf-python): SPF rejection rules
//! become the action table, applied at MAIL FROM as policyd-spf did.

use super::{lines::assignment_lines, lines::boolean, toml_str, Input, Migration};

/// Translates one policyd-spf.conf.
pub fn translate(m: &mut Migration, input: &Input) {
    let (lines, bad) = assignment_lines(&input.path, &input.text, false);
    for b in bad {
        m.unknown(&b.origin, "not a `key = value` line");
    }
    let get = |k: &str| lines.iter().find(|l| l.key == k);
    // The documented defaults apply when a key is absent.
    let default = |k: &str, v: &str| format!("{}: ({k} not set: default {v})", input.path);
    let (helo, helo_o) = match get("HELO_reject") {
        Some(l) => (l.value.clone(), l.origin.clone()),
        None => ("Fail".into(), default("HELO_reject", "Fail")),
    };
    let (mfrom, mfrom_o) = match get("Mail_From_reject") {
        Some(l) => (l.value.clone(), l.origin.clone()),
        None => ("Fail".into(), default("Mail_From_reject", "Fail")),
    };
    let mut rejects_at_mail = false;
    for (check, value, o) in [("spf-helo", &helo, &helo_o), ("spf", &mfrom, &mfrom_o)] {
        let results: &[&str] = match value.as_str() {
            "Fail" => &["fail"],
            "Softfail" => &["fail", "softfail"],
            "SPF_Not_Pass" => &["fail", "softfail", "neutral", "permerror"],
            "False" => &[],
            "No_Check" => {
                m.difference(o, format!("No_Check: authmilter always checks the {} identity; it labels the result and acts only on the rules you set", if check == "spf" { "MAIL FROM" } else { "HELO" }));
                &[]
            }
            "Null" if check == "spf-helo" => {
                m.human(o, "HELO_reject = Null (reject on HELO fail only for the null sender): authmilter checks the null sender's SPF as postmaster@HELO and reports it as spf; add [policy.rules.spf] fail = reject if you want that");
                &[]
            }
            other => {
                m.unknown(
                    o,
                    format!(
                        "`{other}` is not a {} value",
                        if check == "spf" {
                            "Mail_From_reject"
                        } else {
                            "HELO_reject"
                        }
                    ),
                );
                &[]
            }
        };
        for r in results {
            m.rule(check, r, "reject", o);
            rejects_at_mail = true;
        }
        if value == "Softfail" || value == "SPF_Not_Pass" {
            m.difference(o, format!("{value}: rejecting SPF results other than fail goes beyond RFC 7208 §8.5; kept as configured"));
        }
    }
    if rejects_at_mail {
        m.set("policy", "spf_reject_at_mail", "true".into(), &mfrom_o);
        m.difference(&mfrom_o, "policyd-spf answered at RCPT TO; authmilter rejects at MAIL FROM (spf_reject_at_mail), before any recipient: the same for the sender, and local trusted networks and SMTP AUTH clients are still exempt");
    }
    for l in &lines {
        let (k, v, o) = (l.key.as_str(), l.value.as_str(), &l.origin);
        match k {
            "HELO_reject" | "Mail_From_reject" => {}
            "PermError_reject" => match boolean(v) {
                Some(true) => {
                    m.rule("spf", "permerror", "reject", o);
                    m.rule("spf-helo", "permerror", "reject", o);
                }
                Some(false) => {}
                None => m.unknown(o, "not True or False"),
            },
            "TempError_Defer" => match boolean(v) {
                Some(true) => {
                    m.rule("spf", "temperror", "tempfail", o);
                    m.rule("spf-helo", "temperror", "tempfail", o);
                }
                Some(false) => {}
                None => m.unknown(o, "not True or False"),
            },
            "skip_addresses" | "Whitelist" => {
                m.host_list(v, o, &|_| Err("not a file".into()));
                m.difference(o, format!("{k}: policyd-spf skipped SPF for these clients; authmilter checks and labels their mail but never enforces on it (policy.trusted_networks)"));
            }
            "TestOnly" => match v {
                "1" => {}
                "0" => {
                    m.set("policy", "mode", toml_str("monitor"), o);
                    m.difference(o, "TestOnly = 0 (test mode): nothing is enforced (policy.mode = \"monitor\"), which also covers DMARC");
                }
                _ => m.unknown(o, "TestOnly is 0 or 1"),
            },
            "Authserv_Id" => m.set("milter", "authserv_id", toml_str(v), o),
            "Void_Limit" if v.trim() != "2" => m.difference(o, format!("Void_Limit {v}: authmilter applies RFC 7208's limit of 2 void lookups")),
            "Lookup_Time" | "Whitelist_Lookup_Time" => m.difference(o, format!("{k} {v}: authmilter bounds SPF by dns.timeout per query and limits.message_deadline per message")),
            "Header_Type" => {}
            "Hide_Receiver" => m.difference(o, format!("{k}: authmilter's Received-SPF fields always name the receiver (receiver= is milter.authserv_id, which is how forged ones are recognised and removed)")),
            "SPF_Enhanced_Status_Codes" => m.difference(o, format!("{k} {v}: authmilter's SPF rejections use RFC 7372 codes (5.7.23, 5.7.24); set a rule's status to change them")),
            "HELO_Whitelist" | "Domain_Whitelist" | "Domain_Whitelist_PTR" | "Reject_Not_Pass_Domains" | "HELO_pass_restriction" | "Mail_From_pass_restriction" | "Prospective" | "Reason_Message" => {
                m.human(o, format!("{k} has no equivalent in authmilter; decide whether [policy.rules.spf], [[policy.overrides]] or policy.trusted_networks covers what it did"))
            }
            "debugLevel" | "Mock" | "QueueID" | "No_Mail" | "Void_Limit" | "defaultSeedOnly" => m.drop_(o, format!("{k}: not needed (authmilter logs one line per message)")),
            _ => m.unknown(o, format!("`{k}` is not a policyd-spf setting authmilter knows")),
        }
    }
    // policyd-spf prepends Received-SPF unless Header_Type says otherwise;
    // Sieve rules and archives downstream may read it.
    match get("Header_Type") {
        None => m.set("spf", "received_spf_header", "true".into(), &default("Header_Type", "SPF")),
        Some(l) if l.value.eq_ignore_ascii_case("SPF") => m.set("spf", "received_spf_header", "true".into(), &l.origin),
        Some(l) if l.value.eq_ignore_ascii_case("AR") => m.difference(&l.origin, "Header_Type = AR: authmilter writes SPF into its one Authentication-Results header, with its other results"),
        Some(l) if l.value.eq_ignore_ascii_case("None") => m.difference(&l.origin, "Header_Type = None: authmilter always records SPF in its Authentication-Results header (no Received-SPF: spf.received_spf_header stays false)"),
        Some(l) => m.unknown(&l.origin, "Header_Type is SPF, AR or None"),
    }
}
