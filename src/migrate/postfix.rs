//! Postfix main.cf: which `smtpd_milters` / `non_smtpd_milters` entries
//! (OpenDKIM's and OpenDMARC's sockets) and which `check_policy_service`
//! (policyd-spf) to replace by authmilter.

use super::{lines::assignment_lines, Input, Migration};
use crate::config::DEFAULT_SOCKET;

/// Writes the main.cf changes into `m.main_cf`.
pub fn translate(m: &mut Migration, input: &Input) {
    let (lines, _) = assignment_lines(&input.path, &input.text, true);
    let ours = m
        .settings
        .get(&("milter".to_string(), "socket".to_string()))
        .map(|(v, _)| v.trim_matches('"').to_string())
        .unwrap_or_else(|| DEFAULT_SOCKET.to_string());
    let old: Vec<String> = m.old_milters.iter().map(|(s, _)| s.clone()).collect();
    let is_old = |e: &str| {
        old.iter()
            .any(|o| o == e || o.replace("localhost", "127.0.0.1") == e)
            || e.contains("opendkim")
            || e.contains("opendmarc")
    };
    for l in &lines {
        match l.key.as_str() {
            "smtpd_milters" | "non_smtpd_milters" => {
                let entries: Vec<&str> = l
                    .value
                    .split([',', ' '])
                    .map(|e| e.trim())
                    .filter(|e| !e.is_empty())
                    .collect();
                if !entries.iter().any(|e| is_old(e)) {
                    continue;
                }
                let mut new: Vec<String> = Vec::new();
                let mut placed = false;
                for e in &entries {
                    if m.signer.as_deref().is_some_and(|s| s == *e || s.replace("localhost", "127.0.0.1") == *e) {
                        // OpenDKIM still signs: it stays, authmilter after it.
                        new.push(e.to_string());
                    } else if is_old(e) {
                        if !placed {
                            new.push(ours.clone());
                            placed = true;
                        }
                    } else {
                        new.push(e.to_string());
                    }
                }
                m.main_cf.push(format!(
                    "{} (line {}): {} = {}  →  {} = {}",
                    input.path,
                    l.no,
                    l.key,
                    entries.join(", "),
                    l.key,
                    new.join(", ")
                ));
            }
            k if k.ends_with("_restrictions") => {
                let words: Vec<&str> = l.value.split([',', ' ']).filter(|w| !w.is_empty()).collect();
                let mut out = Vec::new();
                let mut removed = false;
                let mut i = 0;
                while i < words.len() {
                    if words[i] == "check_policy_service" && words.get(i + 1).is_some_and(|w| w.contains("spf")) {
                        removed = true;
                        i += 2;
                        continue;
                    }
                    out.push(words[i]);
                    i += 1;
                }
                if removed {
                    m.main_cf.push(format!(
                        "{} (line {}): {k}: remove `check_policy_service` of policyd-spf  →  {k} = {}",
                        input.path,
                        l.no,
                        out.join(", ")
                    ));
                    m.main_cf.push("master.cf: remove the policyd-spf service (`policyd-spf unix - n n - 0 spawn user=policyd-spf argv=/usr/bin/policyd-spf`)".into());
                }
            }
            "milter_default_action" if l.value == "accept" => m.difference(
                &l.origin,
                "milter_default_action = accept: mail passes unchecked while authmilter is down; authmilter's README recommends tempfail",
            ),
            _ => {}
        }
    }
    if !m.old_milters.is_empty() && !m.main_cf.iter().any(|l| l.contains("smtpd_milters")) {
        m.main_cf.push(format!(
            "add {ours} to smtpd_milters and non_smtpd_milters, in place of {}",
            old.join(" and ")
        ));
    }
}
