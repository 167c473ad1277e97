//! opendmarc.conf(5): DMARC enforcement, ignore lists and reports.

use super::{
    lines::boolean, lines::keyword_lines, lines::postfix_socket, toml_str, Input, Migration,
};

const DAEMON: &[&str] = &[
    "Syslog",
    "SyslogFacility",
    "UMask",
    "UserID",
    "PidFile",
    "SoftwareHeader",
    "BaseDirectory",
    "ChangeRootDirectory",
    "AutoRestart",
    "AutoRestartCount",
    "AutoRestartRate",
    "Background",
    "CopyFailuresTo",
    "AuthservIDWithJobID",
    "HistoryFile",
    "ReportCommand",
    "FailureReportsSentBy",
    "FailureReportsBcc",
    "FailureReportsOnNone",
    "RecordAllMessages",
    "MilterDebug",
    "Quiet",
    "TemporaryDirectory",
];

/// Translates one opendmarc.conf.
pub fn translate(m: &mut Migration, input: &Input, read: &dyn Fn(&str) -> Result<String, String>) {
    let (lines, bad) = keyword_lines(&input.path, &input.text);
    for b in bad {
        m.unknown(&b.origin, format!("`{}` has no value", b.key));
    }
    let setting = |k: &str| lines.iter().find(|l| l.key == k);
    let head = format!("{}: (RejectFailures not set)", input.path);
    // RFC 7489 §6.6.2 leaves enforcement to the receiver; OpenDMARC's default only labels.
    match setting("RejectFailures") {
        Some(l) if boolean(&l.value) == Some(true) => {
            m.set("policy", "mode", toml_str("enforce"), &l.origin);
        }
        Some(l) => {
            m.set("policy", "mode", toml_str("monitor"), &l.origin);
            m.difference(&l.origin, "RejectFailures false: OpenDMARC only labelled DMARC failures; migrated as policy.mode = \"monitor\" (logged and labelled, X-Authmilter-Would says what would happen); set \"enforce\" once the log shows the verdicts you expect");
        }
        None => {
            m.set("policy", "mode", toml_str("monitor"), &head);
            m.difference(&head, "RejectFailures defaults to false: OpenDMARC only labelled DMARC failures; migrated as policy.mode = \"monitor\"; authmilter's own default is to enforce");
        }
    }
    let mut required_from = None;
    for l in &lines {
        let (k, v, o) = (l.key.as_str(), l.value.as_str(), &l.origin);
        match k {
            "RejectFailures" => {}
            "AuthservID" if v == "HOSTNAME" => {}
            "AuthservID" => m.set("milter", "authserv_id", toml_str(v), o),
            "Socket" => match postfix_socket(v) {
                Some(s) => m.old_milters.push((s, o.clone())),
                None => m.unknown(o, format!("socket `{v}` not understood")),
            },
            "TrustedAuthservIDs" => m.difference(o, "TrustedAuthservIDs: no equivalent: authmilter computes every result itself and trusts no earlier Authentication-Results (it removes those claiming its own authserv-id)"),
            "IgnoreHosts" => {
                m.host_list(v, o, read);
                m.difference(o, "IgnoreHosts: OpenDMARC skipped these clients; authmilter evaluates their mail and labels it but never enforces on it (policy.trusted_networks)");
            }
            "IgnoreDomains" | "IgnoreMailFrom" => {
                for d in v.split(',').map(|d| d.trim()).filter(|d| !d.is_empty()) {
                    m.never_reject.push((d.to_ascii_lowercase(), o.clone()));
                }
                m.difference(o, format!("{k}: authmilter never skips DMARC for a From domain; these domains get [[policy.overrides]] never_reject = true (a reject becomes a quarantine)"));
            }
            "IgnoreAuthenticatedClients" => match boolean(v) {
                Some(b) => m.set("policy", "trust_authenticated", b.to_string(), o),
                None => m.unknown(o, "not a boolean"),
            },
            "PublicSuffixList" => m.difference(o, "PublicSuffixList: authmilter finds Organizational Domains by RFC 9989's DNS tree walk, not a suffix list: for most domains the same, but a domain whose DMARC record sets psd=y, or a private suffix on the list without one, aligns differently"),
            "FailureReports" => match boolean(v) {
                Some(b) => m.set("reports.failure", "enabled", b.to_string(), o),
                None => m.unknown(o, "not a boolean"),
            },
            "SPFSelfValidate" | "SPFIgnoreResults" => m.difference(o, format!("{k}: authmilter always evaluates SPF itself (and never reads another filter's SPF result)")),
            "RequiredHeaders" => required_from = Some((boolean(v) == Some(true), o.clone())),
            "HoldQuarantinedMessages" => match boolean(v) {
                Some(true) => m.set("policy", "quarantine", toml_str("hold"), o),
                Some(false) => {
                    m.set("policy", "quarantine", toml_str("tag"), o);
                    m.difference(o, "HoldQuarantinedMessages false: p=quarantine failures are accepted with the marker header (policy.quarantine = \"tag\"), as OpenDMARC delivered them");
                }
                None => m.unknown(o, "not a boolean"),
            },
            "DNSTimeout" => match v.parse::<u32>() {
                Ok(t) => m.set("dns", "timeout", format!("{}.0", t.min(60)), o),
                Err(_) => m.unknown(o, "DNSTimeout is not a number of seconds"),
            },
            k if DAEMON.contains(&k) => {
                let why = match k {
                    "HistoryFile" | "ReportCommand" | "FailureReportsSentBy" | "FailureReportsBcc" | "FailureReportsOnNone" | "RecordAllMessages" => "authmilter records and sends DMARC reports itself ([reports]; `authmilter report --send` replaces opendmarc-import and opendmarc-reports)",
                    _ => "authmilter's own daemon settings cover it (systemd unit, [log])",
                };
                m.drop_(o, format!("{k}: {why}"));
            }
            _ => m.unknown(o, format!("`{k}` is not an OpenDMARC setting authmilter knows")),
        }
    }
    match required_from {
        Some((true, _)) => {}
        Some((false, o)) => m.difference(&o, INVALID_FROM),
        None => m.difference(
            &format!("{}: (RequiredHeaders not set: default false)", input.path),
            INVALID_FROM,
        ),
    }
    let itself = format!("{}: OpenDMARC 1.4 itself", input.path);
    for text in STANDARDS {
        m.difference(&itself, *text);
    }
}

/// Mail OpenDMARC delivered unless `RequiredHeaders true`.
const INVALID_FROM: &str = "RequiredHeaders: authmilter rejects mail without exactly one valid From field (none, one without a mailbox, or with more author domains than it looks up) by default (policy.invalid_from = \"reject\"; set \"accept\" to keep such mail), which OpenDMARC delivered";

/// Where OpenDMARC 1.4 (RFC 7489, and its own reading of it) and
/// authmilter (RFC 9989) decide differently whatever the configuration:
/// each measured by `integration/migration`, which replays the corpus
/// through Debian's OpenDMARC 1.4.2 and through authmilter.
const STANDARDS: &[&str] = &[
    "RFC 9989's np=, psd= and t=: OpenDMARC implements RFC 7489 and ignores them: mail from a non-existent subdomain gets np= (e.g. reject where sp= said quarantine), psd=n makes its domain the Organizational Domain (and psd=y a public suffix), and t=y lowers the policy one level (quarantine to none, reject to quarantine)",
    "Strict alignment (adkim=s, aspf=s): OpenDMARC 1.4.2 passed DMARC for a DKIM signature or an SPF pass of a subdomain of the From domain under strict alignment; authmilter requires the same domain (RFC 9989 §4.4), so such mail now fails DMARC and gets the domain's policy",
    "DMARC records are read as RFC 9989 §4.7 writes them: tag names in any case (V=DMARC1; P=REJECT), spaces around ; and =, and other TXT records beside the DMARC one, where OpenDMARC found no policy and delivered; a record whose first tag is not v=DMARC1 is ignored, where OpenDMARC applied it",
    "A DNS failure while looking up a DMARC policy (the author domain's record or a name on the tree walk): OpenDMARC went on as if none were published and delivered; authmilter's result is temperror and its action 451 (policy.rules.dmarc temperror), so the sender retries and an outage never hides a policy. Likewise past 10 Organizational Domain walks in one message (RFC 9989 §4.10's bound)",
    "Author addresses: OpenDMARC evaluates one From address and finds no policy for forms it cannot parse; authmilter reads every mailbox of the From field (several mailboxes, comments and spaces around the @, common non-RFC 5322 forms read leniently) and applies the strictest of their domains' policies, and two From fields never pass DMARC (RFC 5322 §3.6, RFC 9989 §4.3)",
    "Bounces (null MAIL FROM): authmilter aligns the SPF result of the HELO name (RFC 7208 §2.4, RFC 9989 §4.4), which OpenDMARC did not, so such bounces passed by SPF alone no longer fail DMARC",
    "A source route in MAIL FROM (<@relay:user@domain>, RFC 5321 §4.1.2): OpenDMARC took the SPF domain from the raw argument, source route included, so SPF never aligned; authmilter uses the mailbox's domain (RFC 7208 §2.4)",
];
