//! `authmilter migrate`: the Debian stack's configuration (OpenDKIM as a
//! verifier, OpenDMARC, policyd-spf, and Postfix's main.cf around them)
//! translated into an `authmilter.toml`, each translated key commented with
//! the line it came from, and everything that changes, is dropped, or needs
//! a human decision listed with its reason.
//!
//! Pure: files are read by the caller ([`Input`]), the result is text.
//! One module per source: [`opendkim`], [`opendmarc`], [`policyd_spf`],
//! [`postfix`]; [`lines`] reads their formats.

pub mod lines;
pub mod opendkim;
pub mod opendmarc;
pub mod policyd_spf;
pub mod postfix;

use std::{collections::BTreeMap, fmt::Write};

/// Where a setting came from: `file:line: the line`.
pub type Origin = String;

/// One file's text, with its path for the comments.
#[derive(Clone, Debug)]
pub struct Input {
    pub path: String,
    pub text: String,
}

/// What the caller gives: each file (and the files they reference, read
/// through `read`).
pub struct Sources<'a> {
    pub opendkim: Option<Input>,
    pub opendmarc: Option<Input>,
    pub policyd_spf: Option<Input>,
    pub postfix: Option<Input>,
    /// Reads a referenced file (peer lists, ignore lists).
    pub read: &'a dyn Fn(&str) -> Result<String, String>,
}

/// A note of one of the report's kinds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Note {
    pub origin: Origin,
    pub text: String,
}

/// The migration being built.
#[derive(Debug, Default)]
pub struct Migration {
    /// (section, key) → (TOML value, origin).
    pub settings: BTreeMap<(String, String), (String, Origin)>,
    /// (check, result) → (TOML inline table, origin).
    pub rules: BTreeMap<(String, String), (String, Origin)>,
    /// Trusted networks and their origin.
    pub trusted: Vec<(String, Origin)>,
    /// `[[policy.overrides]]` never_reject domains.
    pub never_reject: Vec<(String, Origin)>,
    /// Behaviour that differs after the switch.
    pub differences: Vec<Note>,
    /// Settings with no meaning for authmilter (signing, daemon plumbing).
    pub dropped: Vec<Note>,
    /// What a human has to decide.
    pub human: Vec<Note>,
    /// Lines not understood: never skipped silently.
    pub unknown: Vec<Note>,
    /// The main.cf changes, as `old → new` lines.
    pub main_cf: Vec<String>,
    /// Milter sockets of the old stack (Postfix's form), to replace in main.cf.
    pub old_milters: Vec<(String, Origin)>,
    /// OpenDKIM's socket when it also signs: kept in main.cf.
    pub signer: Option<String>,
}

/// A TOML string.
pub fn toml_str(s: &str) -> String {
    toml::Value::String(s.to_string()).to_string()
}

impl Migration {
    /// Sets `section.key`; a second file setting it differently is noted.
    pub fn set(&mut self, section: &str, key: &str, value: String, origin: &Origin) {
        let k = (section.to_string(), key.to_string());
        if let Some((old, first)) = self.settings.get(&k) {
            if *old != value {
                let text = format!("{section}.{key} is set differently by two files: {old} ({first}) and {value}; the second is used");
                self.human(origin, text);
            }
        }
        self.settings.insert(k, (value, origin.clone()));
    }

    pub fn rule(&mut self, check: &str, result: &str, action: &str, origin: &Origin) {
        self.rules.insert(
            (check.into(), result.into()),
            (format!("{{ action = \"{action}\" }}"), origin.clone()),
        );
    }

    pub fn difference(&mut self, origin: &Origin, text: impl Into<String>) {
        self.differences.push(Note {
            origin: origin.clone(),
            text: text.into(),
        });
    }

    pub fn drop_(&mut self, origin: &Origin, text: impl Into<String>) {
        self.dropped.push(Note {
            origin: origin.clone(),
            text: text.into(),
        });
    }

    pub fn human(&mut self, origin: &Origin, text: impl Into<String>) {
        self.human.push(Note {
            origin: origin.clone(),
            text: text.into(),
        });
    }

    pub fn unknown(&mut self, origin: &Origin, text: impl Into<String>) {
        self.unknown.push(Note {
            origin: origin.clone(),
            text: text.into(),
        });
    }

    /// Adds networks from a host list (a file, `refile:`/`file:` path, or a
    /// comma-separated list, OpenDKIM's "dataset"): addresses and CIDR
    /// blocks become trusted networks; names and negations need a human.
    pub fn host_list(
        &mut self,
        value: &str,
        origin: &Origin,
        read: &dyn Fn(&str) -> Result<String, String>,
    ) {
        let v = value.trim();
        let path = v
            .strip_prefix("refile:")
            .or_else(|| v.strip_prefix("file:"))
            .or_else(|| v.starts_with('/').then_some(v));
        let entries: Vec<(String, Origin)> = match path {
            Some(p) => match read(p) {
                Ok(text) => text
                    .lines()
                    .enumerate()
                    .filter_map(|(i, l)| {
                        let l = l.split('#').next().unwrap_or("").trim();
                        (!l.is_empty()).then(|| (l.to_string(), format!("{p}:{}: {l}", i + 1)))
                    })
                    .collect(),
                Err(e) => {
                    self.human(origin, format!("could not read {p} ({e}): add its networks to policy.trusted_networks yourself"));
                    return;
                }
            },
            None => v
                .split(',')
                .map(|e| e.trim().to_string())
                .filter(|e| !e.is_empty())
                .map(|e| (e, origin.clone()))
                .collect(),
        };
        for (e, o) in entries {
            let net = e
                .trim_start_matches('!')
                .trim_start_matches('[')
                .trim_end_matches(']');
            let parsed = net
                .parse::<ipnet::IpNet>()
                .or_else(|_| net.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
                .map(unmapped);
            match parsed {
                Ok(n) if e.starts_with('!') => self.human(&o, format!("the exception {n} has no equivalent: authmilter trusts whole networks")),
                Ok(n) => {
                    // Already covered (by the defaults or an earlier entry): nothing to add.
                    let covered = DEFAULT_TRUSTED
                        .iter()
                        .filter_map(|d| d.parse::<ipnet::IpNet>().ok())
                        .chain(self.trusted.iter().filter_map(|(t, _)| t.parse().ok()))
                        .any(|t| t.contains(&n));
                    if !covered {
                        self.trusted.push((n.to_string(), o));
                    }
                }
                Err(_) => self.human(
                    &o,
                    format!("`{e}` is a host or domain name: authmilter trusts networks, so add the addresses of {e} to policy.trusted_networks"),
                ),
            }
        }
    }
}

/// IPv4-mapped IPv6 networks (`::ffff:127.0.0.0/104`) as the IPv4 networks
/// they are: authmilter sees such clients as IPv4.
fn unmapped(n: ipnet::IpNet) -> ipnet::IpNet {
    match n {
        ipnet::IpNet::V6(v6) if v6.prefix_len() >= 96 => match v6.addr().to_ipv4_mapped() {
            Some(v4) => ipnet::Ipv4Net::new(v4, v6.prefix_len() - 96)
                .map(ipnet::IpNet::V4)
                .unwrap_or(n),
            None => n,
        },
        _ => n,
    }
}

/// Runs the translation of every file given.
pub fn migrate(src: &Sources) -> Migration {
    let mut m = Migration::default();
    if let Some(i) = &src.opendkim {
        opendkim::translate(&mut m, i, src.read);
    }
    if let Some(i) = &src.opendmarc {
        opendmarc::translate(&mut m, i, src.read);
    }
    if let Some(i) = &src.policyd_spf {
        policyd_spf::translate(&mut m, i);
    }
    if let Some(i) = &src.postfix {
        postfix::translate(&mut m, i);
    }
    // One global mode: monitoring DMARC also stops the rules' rejections.
    let monitor = m
        .settings
        .get(&("policy".to_string(), "mode".to_string()))
        .filter(|(v, _)| v == "\"monitor\"")
        .map(|(_, o)| o.clone());
    if let (Some(o), false) = (monitor, m.rules.is_empty()) {
        m.human(&o, "policy.mode = \"monitor\" (OpenDMARC did not reject) also stops the rejections of the action table below (policyd-spf's, OpenDKIM's On-*), which the old stack did enforce: set mode = \"enforce\" to keep them, which also enforces DMARC policies, or keep monitor and review the log's would= field first");
    }
    m
}

/// The default trusted networks, kept unless a source says otherwise.
const DEFAULT_TRUSTED: [&str; 2] = ["127.0.0.0/8", "::1/128"];

impl Migration {
    /// The `authmilter.toml`: every translated key with its origin in a
    /// comment, then the report as comments (so the output stays valid TOML).
    pub fn render(&self, sources: &[&str]) -> String {
        let mut s = String::new();
        let _ = writeln!(s, "# authmilter.toml written by `authmilter migrate` from:");
        for f in sources {
            let _ = writeln!(s, "#   {f}");
        }
        let _ = writeln!(s, "# Read the report at the end before switching; check with `authmilter config check -c FILE`.");
        let mut sections: Vec<&str> = self.settings.keys().map(|(s, _)| s.as_str()).collect();
        if !self.trusted.is_empty() || !self.rules.is_empty() || !self.never_reject.is_empty() {
            sections.push("policy");
        }
        sections.sort();
        sections.dedup();
        for section in sections {
            let _ = writeln!(s, "\n[{section}]");
            for ((sec, key), (value, origin)) in &self.settings {
                if sec == section {
                    let _ = writeln!(s, "# {origin}\n{key} = {value}");
                }
            }
            if section == "policy" && !self.trusted.is_empty() {
                let _ = writeln!(s, "# the built-in defaults, and:");
                for (n, o) in &self.trusted {
                    let _ = writeln!(s, "#   {n}  from {o}");
                }
                let list: Vec<String> = DEFAULT_TRUSTED
                    .iter()
                    .map(|d| d.to_string())
                    .chain(
                        self.trusted
                            .iter()
                            .map(|(n, _)| n.clone())
                            .filter(|n| !DEFAULT_TRUSTED.contains(&n.as_str())),
                    )
                    .map(|n| toml_str(&n))
                    .collect();
                let _ = writeln!(s, "trusted_networks = [{}]", list.join(", "));
            }
        }
        let mut checks: Vec<&str> = self.rules.keys().map(|(c, _)| c.as_str()).collect();
        checks.dedup();
        for check in checks {
            let _ = writeln!(s, "\n[policy.rules.{check}]");
            for ((c, result), (table, origin)) in &self.rules {
                if c == check {
                    let _ = writeln!(s, "# {origin}\n{result} = {table}");
                }
            }
        }
        for (d, o) in &self.never_reject {
            let _ = writeln!(
                s,
                "\n[[policy.overrides]]\n# {o}\ndomain = {}\nnever_reject = true",
                toml_str(d)
            );
        }
        let _ = writeln!(s, "\n# ==== What changes, and why");
        let section = |s: &mut String, title: &str, notes: &[Note]| {
            let _ = writeln!(s, "#\n# {title}:");
            if notes.is_empty() {
                let _ = writeln!(s, "#   (none)");
            }
            for n in notes {
                let _ = writeln!(s, "#   - {}\n#     ({})", n.text, n.origin);
            }
        };
        section(
            &mut s,
            "Behaviour that differs after the switch",
            &self.differences,
        );
        section(&mut s, "Needs a decision by you", &self.human);
        section(&mut s, "Dropped (no meaning for authmilter)", &self.dropped);
        section(
            &mut s,
            "Not understood (check these lines by hand)",
            &self.unknown,
        );
        let _ = writeln!(s, "#\n# Postfix main.cf changes:");
        if self.main_cf.is_empty() {
            let _ = writeln!(
                s,
                "#   (none found: add authmilter's socket to smtpd_milters and non_smtpd_milters)"
            );
        }
        for l in &self.main_cf {
            let _ = writeln!(s, "#   {l}");
        }
        s
    }
}
