//! Raw TOML → typed [`Config`], with errors that name file, line and key.

use super::{
    file::{RawConfig, RawOverride, RawRecipients, RawReply, RawRule},
    locate_key, CaptureConfig, Config, ConfigError, DnsConfig, Limits, LogConfig, LogFormat,
    LogTarget, MetricsConfig, MilterConfig, SealConfig, SocketSpec, DEFAULT_SOCKET,
};
use crate::{
    checks::{
        arc::seal,
        dkim2::Dkim2Config,
        evidence::{AuthResult, DmarcPolicy},
    },
    policy::{
        Action, ArcTrust, Check, Mode, Override, PolicyConfig, QuarantineMode, RecipientPolicy,
        Reply, Rule, TempErrorAction, TrustedAction, DEFAULT_POLICY,
    },
};
use ipnet::IpNet;
use std::{collections::BTreeMap, net::SocketAddr, path::PathBuf, time::Duration};

/// Libmilter's connection timeout, which its documentation advises not to lower.
pub const DEFAULT_CONNECTION_TIMEOUT_SECS: u64 = 7210;
/// Enough for a busy MX; each idle connection costs a few KiB.
pub const DEFAULT_MAX_CONNECTIONS: usize = 1000;
/// Large enough for nearly all legitimate mail, small enough to bound memory.
pub const DEFAULT_MAX_MESSAGE_SIZE: usize = 32 * 1024 * 1024;
/// All in-flight messages together: 16 messages of the largest size.
pub const DEFAULT_MAX_BUFFERED_BYTES: u64 = 512 * 1024 * 1024;
/// More signatures than any legitimate message carries; bounds crypto work.
pub const DEFAULT_MAX_SIGNATURES: usize = 10;
/// RFC 7208 §4.6.4 uses the same limit of 10 for PTR names.
pub const DEFAULT_MAX_PTR_NAMES: usize = 10;
/// Long enough for a message's checks to finish (see message_deadline).
pub const DEFAULT_DRAIN_TIMEOUT_SECS: u64 = 30;
/// Well under Postfix's milter_content_timeout (300 s) and Sendmail's E:5m,
/// so the MTA always gets our answer, not its own timeout.
pub const DEFAULT_MESSAGE_DEADLINE_SECS: f64 = 30.0;

struct Ctx<'a> {
    text: &'a str,
    file: &'a str,
}

impl Ctx<'_> {
    fn err(&self, section: &str, key: &str, message: impl Into<String>) -> ConfigError {
        let leaf = key.rsplit('.').next().unwrap_or(key);
        ConfigError::Invalid {
            file: self.file.to_string(),
            line: locate_key(self.text, section, leaf),
            key: if section.is_empty() {
                key.to_string()
            } else {
                format!("{section}.{key}")
            },
            message: message.into(),
        }
    }
}

/// A network (`10.0.0.0/8`) or one address.
fn parse_net(n: &str) -> Result<IpNet, String> {
    n.parse()
        .or_else(|_| n.parse::<std::net::IpAddr>().map(IpNet::from))
        .map_err(|_| format!("`{n}` is not a network such as \"10.0.0.0/8\""))
}

/// The local host name, the default authserv-id.
pub fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .map(|s| s.trim().to_string())
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "localhost".to_string())
}

/// Parses `inet:HOST:PORT`, `inet:[v6]:PORT`, `unix:/path` or `local:/path`.
pub fn parse_socket(s: &str) -> Result<SocketSpec, String> {
    if let Some(path) = s.strip_prefix("unix:").or_else(|| s.strip_prefix("local:")) {
        if !path.starts_with('/') {
            return Err(format!("unix socket path must be absolute: `{path}`"));
        }
        return Ok(SocketSpec::Unix(PathBuf::from(path)));
    }
    let rest = s
        .strip_prefix("inet:")
        .or_else(|| s.strip_prefix("inet6:"))
        .ok_or_else(|| format!("`{s}` is not `inet:HOST:PORT` or `unix:/path`"))?;
    let (host, port) = if let Some(r) = rest.strip_prefix('[') {
        let (h, p) = r
            .split_once("]:")
            .ok_or_else(|| format!("`{s}`: expected `[ADDRESS]:PORT`"))?;
        (h.to_string(), p)
    } else {
        let (h, p) = rest
            .rsplit_once(':')
            .ok_or_else(|| format!("`{s}`: missing `:PORT`"))?;
        (h.to_string(), p)
    };
    let port: u16 = port
        .parse()
        .map_err(|_| format!("`{s}`: port `{port}` is not a number from 0 to 65535"))?;
    if host.is_empty() {
        return Err(format!("`{s}`: missing host"));
    }
    Ok(SocketSpec::Inet { host, port })
}

/// Whether a trusted network covers public (globally routed) address space.
pub fn is_public_network(net: &IpNet) -> bool {
    const PRIVATE: [&str; 10] = [
        "127.0.0.0/8",
        "10.0.0.0/8",
        "172.16.0.0/12",
        "192.168.0.0/16",
        "169.254.0.0/16",
        "100.64.0.0/10",
        "::1/128",
        "fc00::/7",
        "fe80::/10",
        "192.0.2.0/24",
    ];
    !PRIVATE
        .iter()
        .filter_map(|p| p.parse::<IpNet>().ok())
        .any(|p| p.contains(net))
}

fn parse_reply(
    ctx: &Ctx,
    section: &str,
    key: &str,
    raw: &RawReply,
    default: &Reply,
    temporary: bool,
) -> Result<Reply, ConfigError> {
    let reply = Reply {
        code: raw.code.unwrap_or(default.code),
        status: raw.status.clone().unwrap_or_else(|| default.status.clone()),
        text: raw.text.clone().unwrap_or_else(|| default.text.clone()),
    };
    check_reply(&reply, temporary).map_err(|m| ctx.err(section, key, m))?;
    Ok(reply)
}

/// Checks that a reply is one the MTA will accept.
pub fn check_reply(reply: &Reply, temporary: bool) -> Result<(), String> {
    let class = if temporary { 4 } else { 5 };
    if reply.code / 100 != class || reply.code % 100 > 99 {
        return Err(format!(
            "reply code {} must be {class}xx for this action",
            reply.code
        ));
    }
    let parts: Vec<&str> = reply.status.split('.').collect();
    let ok = parts.len() == 3
        && parts[0] == class.to_string()
        && parts[1..]
            .iter()
            .all(|p| !p.is_empty() && p.len() <= 3 && p.bytes().all(|b| b.is_ascii_digit()));
    if !ok {
        return Err(format!(
            "enhanced status code `{}` must look like `{class}.7.1`",
            reply.status
        ));
    }
    if reply.text.is_empty()
        || reply.text.len() > 900
        || !reply.text.bytes().all(|b| (0x20..0x7f).contains(&b))
        || reply.text.contains('%')
    {
        return Err("reply text must be 1 to 900 printable ASCII characters without `%`".into());
    }
    Ok(())
}

/// The reply used by a table rule that names none (RFC 7372 codes).
pub fn default_rule_reply(check: Check, result: AuthResult, action: Action) -> Reply {
    let temporary = action == Action::Tempfail;
    let (code, sub, text) = match (check, result) {
        (Check::Spf | Check::SpfHelo, AuthResult::TempError | AuthResult::PermError) => {
            (550, "7.24", "SPF validation error")
        }
        (Check::Spf | Check::SpfHelo, _) => (550, "7.23", "SPF validation failed"),
        // RFC 7372 §3.1: 5.7.21 is for passing signatures that are not
        // acceptable (dkim=policy); every other result means none passed.
        (Check::Dkim, AuthResult::Policy) => (550, "7.21", "No acceptable DKIM signature found"),
        (Check::Dkim, _) => (550, "7.20", "No passing DKIM signature found"),
        (Check::Iprev, _) => (550, "7.25", "Reverse DNS validation failed"),
        // RFC 7372's reverse-DNS code: the HELO name is checked against the
        // forward-confirmed PTR names.
        (Check::XPtr, _) => (550, "7.25", "HELO name does not match reverse DNS"),
        (Check::Dmarc, _) => (550, "7.1", "Message rejected by DMARC local policy"),
    };
    if temporary {
        Reply::new(
            451,
            &format!("4.{sub}"),
            &format!("{text}, try again later"),
        )
    } else {
        Reply::new(code, &format!("5.{sub}"), text)
    }
}

/// The action table under `prefix` (`policy.rules`, `policy.recipients.rules`).
fn parse_rules(
    ctx: &Ctx,
    prefix: &str,
    raw: Option<BTreeMap<String, BTreeMap<String, RawRule>>>,
) -> Result<Vec<Rule>, ConfigError> {
    let mut rules = Vec::new();
    for (check_name, by_result) in raw.unwrap_or_default() {
        for (result_name, raw_rule) in &by_result {
            rules.push(parse_rule(ctx, prefix, &check_name, result_name, raw_rule)?);
        }
    }
    Ok(rules)
}

/// From-domain overrides under `section` (`policy.overrides`, …).
fn parse_overrides(
    ctx: &Ctx,
    section: &str,
    raw: Option<Vec<RawOverride>>,
) -> Result<Vec<Override>, ConfigError> {
    let mut overrides = Vec::new();
    for o in raw.unwrap_or_default() {
        let domain = o.domain.trim_end_matches('.').to_ascii_lowercase();
        if !valid_domain(&domain) {
            return Err(ctx.err(
                section,
                "domain",
                format!("`{}` is not a domain name", o.domain),
            ));
        }
        let dmarc_policy = match &o.dmarc_policy {
            None => None,
            Some(s) => Some(
                s.parse::<DmarcPolicy>()
                    .map_err(|e| ctx.err(section, "dmarc_policy", e))?,
            ),
        };
        overrides.push(Override {
            domain,
            never_reject: o.never_reject.unwrap_or(false),
            dmarc_policy,
        });
    }
    Ok(overrides)
}

fn parse_mode(ctx: &Ctx, section: &str, raw: Option<&str>) -> Result<Mode, ConfigError> {
    match raw.unwrap_or("enforce") {
        "enforce" => Ok(Mode::Enforce),
        "monitor" => Ok(Mode::Monitor),
        other => Err(ctx.err(
            section,
            "mode",
            format!("`{other}`: expected \"enforce\" or \"monitor\""),
        )),
    }
}

/// `[[policy.recipients]]`: each block is `base` with its own mode, rules
/// and overrides (each inherited when absent).
fn parse_recipients(
    ctx: &Ctx,
    base: &PolicyConfig,
    raw: Option<Vec<RawRecipients>>,
) -> Result<Vec<RecipientPolicy>, ConfigError> {
    const S: &str = "policy.recipients";
    let mut out: Vec<RecipientPolicy> = Vec::new();
    for r in raw.unwrap_or_default() {
        if r.domains.is_empty() {
            return Err(ctx.err(S, "domains", "must name at least one domain"));
        }
        let mut domains = Vec::new();
        for d in &r.domains {
            let domain = d.trim_end_matches('.').to_ascii_lowercase();
            if !valid_domain(&domain) {
                return Err(ctx.err(S, "domains", format!("`{d}` is not a domain name")));
            }
            if let Some(other) = out.iter().find(|b| b.domains.contains(&domain)) {
                return Err(ctx.err(
                    S,
                    "domains",
                    format!("`{domain}` is already in the block `{}`", other.name),
                ));
            }
            if !domains.contains(&domain) {
                domains.push(domain);
            }
        }
        let name = r.name.clone().unwrap_or_else(|| domains[0].clone());
        let name_ok = !name.is_empty()
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
        if !name_ok || name == DEFAULT_POLICY || out.iter().any(|b| b.name == name) {
            return Err(ctx.err(
                S,
                "name",
                format!(
                    "`{name}`: must be unique, not \"default\", of letters, digits, `-`, `_`, `.`"
                ),
            ));
        }
        let mut policy = base.clone();
        if r.mode.is_some() {
            policy.mode = parse_mode(ctx, S, r.mode.as_deref())?;
        }
        if r.rules.is_some() {
            policy.rules = parse_rules(ctx, "policy.recipients.rules", r.rules)?;
        }
        if r.overrides.is_some() {
            policy.overrides = parse_overrides(ctx, "policy.recipients.overrides", r.overrides)?;
        }
        out.push(RecipientPolicy {
            name,
            domains,
            policy,
        });
    }
    Ok(out)
}

fn parse_rule(
    ctx: &Ctx,
    prefix: &str,
    check_name: &str,
    result_name: &str,
    raw: &RawRule,
) -> Result<Rule, ConfigError> {
    let section = format!("{prefix}.{check_name}");
    let check = Check::from_name(check_name).ok_or_else(|| {
        ctx.err(
            prefix,
            check_name,
            "unknown check (expected spf, spf-helo, dkim, dmarc, iprev or x-ptr)",
        )
    })?;
    let result: AuthResult = result_name
        .parse()
        .map_err(|e: String| ctx.err(&section, result_name, e))?;
    let valid_results: &[AuthResult] = match check {
        Check::Dkim => &[
            AuthResult::Pass,
            AuthResult::Fail,
            AuthResult::Neutral,
            AuthResult::None,
            AuthResult::Policy,
            AuthResult::TempError,
            AuthResult::PermError,
        ],
        Check::Spf | Check::SpfHelo => &[
            AuthResult::Pass,
            AuthResult::Fail,
            AuthResult::SoftFail,
            AuthResult::Neutral,
            AuthResult::None,
            AuthResult::TempError,
            AuthResult::PermError,
        ],
        Check::Dmarc | Check::Iprev => &[
            AuthResult::Pass,
            AuthResult::Fail,
            AuthResult::None,
            AuthResult::TempError,
            AuthResult::PermError,
        ],
        Check::XPtr => &[
            AuthResult::Pass,
            AuthResult::Fail,
            AuthResult::None,
            AuthResult::TempError,
        ],
    };
    if !valid_results.contains(&result) {
        return Err(ctx.err(
            &section,
            result_name,
            format!("`{check_name}` never yields `{result_name}`"),
        ));
    }
    let key = format!("{result_name}.action");
    let action = Action::from_name(&raw.action).ok_or_else(|| {
        ctx.err(
            &section,
            &key,
            format!(
                "unknown action `{}` (expected accept, tag, quarantine, tempfail or reject)",
                raw.action
            ),
        )
    })?;
    let reply = match action {
        Action::Reject | Action::Tempfail => {
            let default = default_rule_reply(check, result, action);
            let raw_reply = RawReply {
                code: raw.code,
                status: raw.status.clone(),
                text: raw.text.clone(),
            };
            Some(parse_reply(
                ctx,
                &section,
                result_name,
                &raw_reply,
                &default,
                action == Action::Tempfail,
            )?)
        }
        _ => {
            if raw.code.is_some() || raw.status.is_some() || raw.text.is_some() {
                return Err(ctx.err(
                    &section,
                    result_name,
                    "code, status and text only apply to reject and tempfail",
                ));
            }
            None
        }
    };
    Ok(Rule {
        check,
        result,
        action,
        reply,
        monitor: raw.monitor.unwrap_or(false),
    })
}

fn valid_domain(d: &str) -> bool {
    !d.is_empty()
        && d.len() <= 253
        && d.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && l.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

/// Turns the raw file into a [`Config`].
pub fn validate(raw: RawConfig, text: &str, file: &str) -> Result<Config, ConfigError> {
    let ctx = Ctx { text, file };

    // [milter]
    let m = raw.milter;
    let socket = parse_socket(m.socket.as_deref().unwrap_or(DEFAULT_SOCKET))
        .map_err(|e| ctx.err("milter", "socket", e))?;
    let socket_mode = match &m.socket_mode {
        None => None,
        Some(s) => Some(
            u32::from_str_radix(s.trim_start_matches("0o"), 8)
                .ok()
                .filter(|v| *v <= 0o777)
                .ok_or_else(|| {
                    ctx.err(
                        "milter",
                        "socket_mode",
                        format!("`{s}` is not an octal mode such as \"0660\""),
                    )
                })?,
        ),
    };
    let authserv_id = m.authserv_id.unwrap_or_else(host_name);
    if authserv_id
        .bytes()
        .any(|b| !b.is_ascii_graphic() || b == b';')
    {
        return Err(ctx.err(
            "milter",
            "authserv_id",
            "must be printable ASCII without spaces or `;`",
        ));
    }
    let authserv_aliases = m.authserv_aliases.unwrap_or_default();
    for a in &authserv_aliases {
        if a.is_empty() || a.bytes().any(|b| !b.is_ascii_graphic() || b == b';') {
            return Err(ctx.err(
                "milter",
                "authserv_aliases",
                format!("`{a}` must be printable ASCII without spaces or `;`"),
            ));
        }
    }
    let max_connections = m.max_connections.unwrap_or(DEFAULT_MAX_CONNECTIONS);
    if max_connections == 0 {
        return Err(ctx.err("milter", "max_connections", "must be at least 1"));
    }
    let timeout = m
        .connection_timeout
        .unwrap_or(DEFAULT_CONNECTION_TIMEOUT_SECS);
    if timeout == 0 {
        return Err(ctx.err("milter", "connection_timeout", "must be at least 1 second"));
    }
    let milter = MilterConfig {
        socket,
        socket_owner: m.socket_owner,
        socket_group: m.socket_group,
        socket_mode,
        authserv_id,
        authserv_aliases,
        max_connections,
        connection_timeout: Duration::from_secs(timeout),
        drain_timeout: Duration::from_secs(m.drain_timeout.unwrap_or(DEFAULT_DRAIN_TIMEOUT_SECS)),
        user: m.user,
        group: m.group,
    };

    // [dns]
    let d = raw.dns;
    let mut nameservers = Vec::new();
    for ns in d.nameservers.unwrap_or_default() {
        let addr: SocketAddr = ns
            .parse()
            .or_else(|_| {
                ns.parse::<std::net::IpAddr>()
                    .map(|ip| SocketAddr::new(ip, 53))
            })
            .map_err(|_| {
                ctx.err(
                    "dns",
                    "nameservers",
                    format!("`{ns}` is not an address such as \"127.0.0.1:53\" or \"[::1]:5353\""),
                )
            })?;
        nameservers.push(addr);
    }
    let dns_timeout = d.timeout.unwrap_or(5.0);
    if !(0.05..=60.0).contains(&dns_timeout) {
        return Err(ctx.err("dns", "timeout", "must be between 0.05 and 60 seconds"));
    }
    let attempts = d.attempts.unwrap_or(2);
    if !(1..=10).contains(&attempts) {
        return Err(ctx.err("dns", "attempts", "must be between 1 and 10"));
    }
    let dns = DnsConfig {
        nameservers,
        timeout: Duration::from_secs_f64(dns_timeout),
        attempts,
        cache_size: d.cache_size.unwrap_or(10_000),
        cache_bytes: d.cache_bytes.unwrap_or(64 * 1024 * 1024),
        max_ttl: Duration::from_secs(d.max_ttl.unwrap_or(86_400)),
        negative_max_ttl: Duration::from_secs(d.negative_max_ttl.unwrap_or(3_600)),
    };

    // [limits]
    let l = raw.limits;
    let deadline = l.message_deadline.unwrap_or(DEFAULT_MESSAGE_DEADLINE_SECS);
    if !(0.1..=600.0).contains(&deadline) {
        return Err(ctx.err(
            "limits",
            "message_deadline",
            "must be between 0.1 and 600 seconds",
        ));
    }
    let limits = Limits {
        max_message_size: l.max_message_size.unwrap_or(DEFAULT_MAX_MESSAGE_SIZE),
        max_buffered_bytes: l.max_buffered_bytes.unwrap_or(DEFAULT_MAX_BUFFERED_BYTES),
        max_signatures: l.max_signatures.unwrap_or(DEFAULT_MAX_SIGNATURES),
        max_ptr_names: l.max_ptr_names.unwrap_or(DEFAULT_MAX_PTR_NAMES),
        message_deadline: Duration::from_secs_f64(deadline),
    };
    if limits.max_message_size < 1024 {
        return Err(ctx.err("limits", "max_message_size", "must be at least 1024 bytes"));
    }
    if limits.max_buffered_bytes < limits.max_message_size as u64 {
        return Err(ctx.err(
            "limits",
            "max_buffered_bytes",
            "must be at least limits.max_message_size",
        ));
    }
    if limits.max_ptr_names == 0 {
        return Err(ctx.err("limits", "max_ptr_names", "must be at least 1"));
    }

    // [policy]
    let mut p = raw.policy;
    let raw_recipients = p.recipients.take();
    let mode = parse_mode(&ctx, "policy", p.mode.as_deref())?;
    let quarantine = match p.quarantine.as_deref().unwrap_or("hold") {
        "hold" => QuarantineMode::Hold,
        "tag" => QuarantineMode::Tag,
        other => {
            return Err(ctx.err(
                "policy",
                "quarantine",
                format!("`{other}`: expected \"hold\" or \"tag\""),
            ))
        }
    };
    let quarantine_header = p
        .quarantine_header
        .unwrap_or_else(|| "X-Authmilter-Quarantine".into());
    if quarantine_header.is_empty()
        || !quarantine_header
            .bytes()
            .all(|b| b.is_ascii_graphic() && b != b':')
    {
        return Err(ctx.err(
            "policy",
            "quarantine_header",
            "must be a header field name (printable ASCII, no `:`)",
        ));
    }
    let dmarc_temperror = match p.dmarc_temperror.as_deref().unwrap_or("tempfail") {
        "tempfail" => TempErrorAction::Tempfail,
        "accept" => TempErrorAction::Accept,
        other => {
            return Err(ctx.err(
                "policy",
                "dmarc_temperror",
                format!("`{other}`: expected \"tempfail\" or \"accept\""),
            ))
        }
    };
    let reject_default = Reply::new(
        550,
        "5.7.1",
        "Email from {domain} rejected per its DMARC policy",
    );
    let temp_default = Reply::new(
        451,
        "4.7.1",
        "Temporary DNS failure evaluating DMARC for {domain}, try again later",
    );
    let dmarc_reject_reply = parse_reply(
        &ctx,
        "policy",
        "dmarc_reject_reply",
        &p.dmarc_reject_reply.unwrap_or_default(),
        &reject_default,
        false,
    )?;
    let dmarc_temperror_reply = parse_reply(
        &ctx,
        "policy",
        "dmarc_temperror_reply",
        &p.dmarc_temperror_reply.unwrap_or_default(),
        &temp_default,
        true,
    )?;
    let action_key = |key: &str, value: Option<&str>, default: Action, allowed: &[Action]| {
        let name = value.unwrap_or(default.as_str());
        Action::from_name(name)
            .filter(|a| allowed.contains(a))
            .ok_or_else(|| {
                let names: Vec<String> = allowed.iter().map(|a| format!("\"{a}\"")).collect();
                ctx.err(
                    "policy",
                    key,
                    format!("`{name}`: expected one of {}", names.join(", ")),
                )
            })
    };
    use Action::{Accept, Quarantine, Reject, Tag, Tempfail};
    let invalid_from = action_key(
        "invalid_from",
        p.invalid_from.as_deref(),
        Reject,
        &[Accept, Tag, Quarantine, Tempfail, Reject],
    )?;
    let invalid_from_reply = parse_reply(
        &ctx,
        "policy",
        "invalid_from_reply",
        &p.invalid_from_reply.unwrap_or_default(),
        &Reply::new(
            if invalid_from == Tempfail { 451 } else { 550 },
            if invalid_from == Tempfail {
                "4.7.1"
            } else {
                "5.7.1"
            },
            "Missing or invalid From header field (RFC 5322)",
        ),
        invalid_from == Tempfail,
    )?;
    let dkim_over_limit = action_key(
        "dkim_over_limit",
        p.dkim_over_limit.as_deref(),
        Quarantine,
        &[Accept, Tag, Quarantine, Tempfail],
    )?;
    let mut trusted_networks = Vec::new();
    for n in p
        .trusted_networks
        .unwrap_or_else(|| vec!["127.0.0.0/8".into(), "::1/128".into()])
    {
        trusted_networks.push(parse_net(&n).map_err(|e| ctx.err("policy", "trusted_networks", e))?);
    }
    let rules = parse_rules(&ctx, "policy.rules", p.rules)?;
    let overrides = parse_overrides(&ctx, "policy.overrides", p.overrides)?;
    let mut policy = PolicyConfig {
        mode,
        quarantine,
        quarantine_header,
        dmarc_temperror,
        dmarc_reject_reply,
        dmarc_temperror_reply,
        invalid_from,
        invalid_from_reply,
        dkim_over_limit,
        spf_reject_at_mail: p.spf_reject_at_mail.unwrap_or(false),
        trusted_networks,
        trust_local: p.trust_local.unwrap_or(true),
        trust_unknown_family: p.trust_unknown_family.unwrap_or(false),
        trust_authenticated: p.trust_authenticated.unwrap_or(true),
        rules,
        overrides,
        arc: ArcTrust::default(),
        recipients: Vec::new(),
    };

    // [log]
    let lg = raw.log;
    let format = match lg.format.as_deref().unwrap_or("text") {
        "text" => LogFormat::Text,
        "json" => LogFormat::Json,
        other => {
            return Err(ctx.err(
                "log",
                "format",
                format!("`{other}`: expected \"text\" or \"json\""),
            ))
        }
    };
    let target = match lg.target.as_deref().unwrap_or("stderr") {
        "stderr" => LogTarget::Stderr,
        "journald" => LogTarget::Journald,
        other => {
            return Err(ctx.err(
                "log",
                "target",
                format!("`{other}`: expected \"stderr\" or \"journald\""),
            ))
        }
    };
    let level = lg.level.unwrap_or_else(|| "info".into());
    if tracing_subscriber::EnvFilter::try_new(&level).is_err() {
        return Err(ctx.err(
            "log",
            "level",
            format!("`{level}` is not a filter such as \"info\""),
        ));
    }

    // [capture]
    let c = raw.capture;
    let directory = c.directory.map(PathBuf::from);
    if directory.as_ref().is_some_and(|d| !d.is_absolute()) {
        return Err(ctx.err("capture", "directory", "must be an absolute path"));
    }
    let mut clients = Vec::new();
    for n in c.clients.unwrap_or_default() {
        clients.push(parse_net(&n).map_err(|e| ctx.err("capture", "clients", e))?);
    }
    let capture = CaptureConfig {
        directory,
        sample: c.sample.unwrap_or(0),
        domains: c
            .domains
            .unwrap_or_default()
            .into_iter()
            .map(|d| d.trim_end_matches('.').to_ascii_lowercase())
            .collect(),
        clients,
        max: c.max.unwrap_or(1000),
    };

    // [metrics]
    let address = match raw.metrics.address {
        None => None,
        Some(a) => Some(a.parse::<SocketAddr>().map_err(|_| {
            ctx.err(
                "metrics",
                "address",
                format!("`{a}` is not an address such as \"127.0.0.1:9797\" or \"[::1]:9797\""),
            )
        })?),
    };

    // [arc]
    let a = raw.arc;
    let mut trusted_sealers = Vec::new();
    for d in a.trusted_sealers.unwrap_or_default() {
        let domain = d.trim_end_matches('.').to_ascii_lowercase();
        if !valid_domain(&domain) {
            return Err(ctx.err(
                "arc",
                "trusted_sealers",
                format!("`{d}` is not a domain name"),
            ));
        }
        trusted_sealers.push(domain);
    }
    let trusted_action = match a.trusted_action.as_deref().unwrap_or("accept") {
        "accept" => TrustedAction::Accept,
        "milder" => TrustedAction::Milder,
        other => {
            return Err(ctx.err(
                "arc",
                "trusted_action",
                format!("`{other}`: expected \"accept\" or \"milder\""),
            ))
        }
    };
    policy.arc = ArcTrust {
        trusted_sealers,
        action: trusted_action,
        own_ids: std::iter::once(&milter.authserv_id)
            .chain(&milter.authserv_aliases)
            .map(|s| s.to_ascii_lowercase())
            .filter(|s| !s.is_empty())
            .collect(),
    };
    // After every inherited setting (ARC trust included) is in place.
    policy.recipients = parse_recipients(&ctx, &policy, raw_recipients)?;
    let seal_headers: Vec<String> = a.seal_headers.unwrap_or_else(|| {
        seal::DEFAULT_HEADERS
            .iter()
            .map(|s| s.to_string())
            .collect()
    });
    if !seal_headers.iter().any(|h| h.eq_ignore_ascii_case("from")) {
        return Err(ctx.err("arc", "seal_headers", "must include From"));
    }
    if let Some(bad) = seal_headers.iter().find(|h| {
        seal::FORBIDDEN_HEADERS
            .iter()
            .any(|f| f.eq_ignore_ascii_case(h))
    }) {
        return Err(ctx.err(
            "arc",
            "seal_headers",
            format!("`{bad}` must not be signed: it changes at every hop"),
        ));
    }
    let seal = if a.seal.unwrap_or(false) {
        let domain = a
            .seal_domain
            .unwrap_or_default()
            .trim_end_matches('.')
            .to_ascii_lowercase();
        if !valid_domain(&domain) {
            return Err(ctx.err(
                "arc",
                "seal_domain",
                "a domain name is needed when seal = true",
            ));
        }
        let selector = a.seal_selector.unwrap_or_default();
        if selector.is_empty()
            || !selector.split('.').all(|l| {
                !l.is_empty()
                    && l.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            })
        {
            return Err(ctx.err(
                "arc",
                "seal_selector",
                "a selector (DNS label) is needed when seal = true",
            ));
        }
        let key_file = PathBuf::from(a.seal_key_file.unwrap_or_default());
        if !key_file.is_absolute() {
            return Err(ctx.err(
                "arc",
                "seal_key_file",
                "an absolute path is needed when seal = true",
            ));
        }
        Some(
            SealConfig::load(&domain, &selector, key_file, seal_headers.clone())
                .map_err(|e| ctx.err("arc", "seal_key_file", e))?,
        )
    } else {
        None
    };

    // [spf] received_spf_header and [results]: each off by default.
    let defaults = crate::actions::HeaderConfig::default();
    let headers = crate::actions::HeaderConfig {
        received_spf: raw.spf.received_spf_header.unwrap_or(defaults.received_spf),
        auth: raw.results.auth.unwrap_or(defaults.auth),
        auth_user: raw.results.auth_user.unwrap_or(defaults.auth_user),
        x_ptr: raw.results.x_ptr.unwrap_or(defaults.x_ptr),
        x_tls: raw.results.x_tls.unwrap_or(defaults.x_tls),
    };

    let bimi = bimi_config(raw.bimi, &ctx)?;

    // [reports]
    let r = raw.reports;
    let mut reports = crate::reports::ReportsConfig::defaults(&milter.authserv_id);
    reports.enabled = r.enabled.unwrap_or(reports.enabled);
    if let Some(db) = r.database {
        crate::reports::store::valid_url(&db)
            .map_err(|e| ctx.err("reports", "database", format!("`{db}`: {e}")))?;
        reports.database = db;
    }
    if let Some(v) = r.org_name {
        if v.trim().is_empty() || v.chars().any(char::is_control) {
            return Err(ctx.err("reports", "org_name", "must be a non-empty line of text"));
        }
        reports.org_name = v;
    }
    if let Some(v) = r.contact {
        if v.parse::<lettre::Address>().is_err() {
            return Err(ctx.err(
                "reports",
                "contact",
                format!("`{v}` is not an address such as \"dmarc-reports@example.com\""),
            ));
        }
        reports.contact = v;
    }
    if let Some(v) = r.submitter {
        let d = v.trim_end_matches('.').to_ascii_lowercase();
        if !valid_domain(&d) {
            return Err(ctx.err(
                "reports",
                "submitter",
                format!("`{v}` is not a domain name"),
            ));
        }
        reports.submitter = d;
    }
    for (key, v, target) in [
        ("queue_size", r.queue_size, &mut reports.queue_size),
        ("batch_size", r.batch_size, &mut reports.batch_size),
        (
            "max_report_bytes",
            r.max_report_bytes,
            &mut reports.max_report_bytes,
        ),
    ] {
        if let Some(v) = v {
            if v == 0 {
                return Err(ctx.err("reports", key, "must be at least 1"));
            }
            *target = v;
        }
    }
    if let Some(d) = r.retention_days {
        if d == 0 {
            return Err(ctx.err("reports", "retention_days", "must be at least 1 day"));
        }
        reports.retention = Duration::from_secs(d.saturating_mul(86_400));
    }
    if let Some(relay) = r.smtp_relay {
        crate::reports::deliver::Relay::parse(&relay, reports.smtp_timeout).map_err(|e| {
            ctx.err(
                "reports",
                "smtp_relay",
                format!("{e}: expected host:port such as \"127.0.0.1:25\""),
            )
        })?;
        reports.smtp_relay = relay;
    }
    if let Some(t) = r.smtp_timeout {
        if t == 0 {
            return Err(ctx.err("reports", "smtp_timeout", "must be at least 1 second"));
        }
        reports.smtp_timeout = Duration::from_secs(t);
    }
    reports.schedule_daily = r.schedule_daily.unwrap_or(false);
    let f = r.failure;
    reports.failure = crate::reports::FailureConfig {
        enabled: f.enabled.unwrap_or(reports.failure.enabled),
        max_per_hour: f.max_per_hour.unwrap_or(reports.failure.max_per_hour),
        max_total_per_hour: f
            .max_total_per_hour
            .unwrap_or(reports.failure.max_total_per_hour),
        include_body: f.include_body.unwrap_or(reports.failure.include_body),
        redact_local_parts: f
            .redact_local_parts
            .unwrap_or(reports.failure.redact_local_parts),
    };

    Ok(Config {
        source: None,
        milter,
        dns,
        limits,
        policy,
        log: LogConfig {
            level,
            format,
            target,
        },
        capture,
        metrics: MetricsConfig { address },
        seal,
        dkim2: Dkim2Config {
            use_for_dmarc: raw.dkim2.use_for_dmarc.unwrap_or(false),
        },
        reports,
        headers,
        bimi,
    })
}

/// `[bimi]`: `None` unless enabled; the certificate files are read here so
/// that `config check` finds a missing or empty one.
fn bimi_config(
    b: super::file::RawBimi,
    ctx: &Ctx<'_>,
) -> Result<Option<crate::checks::bimi::BimiConfig>, ConfigError> {
    use crate::checks::bimi::{defaults, BimiConfig};
    let seconds = |key: &str, v: Option<f64>, default: Duration, max: f64| match v {
        None => Ok(default),
        Some(x) if x.is_finite() && x >= 0.0 && x <= max => Ok(Duration::from_secs_f64(x)),
        Some(_) => Err(ctx.err("bimi", key, format!("seconds from 0 to {max} are needed"))),
    };
    let fetch_timeout = seconds(
        "fetch_timeout",
        b.fetch_timeout,
        defaults::FETCH_TIMEOUT,
        60.0,
    )?;
    if fetch_timeout.is_zero() {
        return Err(ctx.err("bimi", "fetch_timeout", "must be more than 0"));
    }
    let wait = seconds("wait", b.wait, defaults::WAIT, 30.0)?;
    let bytes = |key: &str, v: Option<usize>, default: usize| match v {
        None => Ok(default),
        Some(n) if (1024..=16 * 1024 * 1024).contains(&n) => Ok(n),
        Some(_) => Err(ctx.err("bimi", key, "a size from 1024 to 16777216 bytes is needed")),
    };
    let max_indicator_bytes = bytes(
        "max_indicator_bytes",
        b.max_indicator_bytes,
        defaults::MAX_INDICATOR_BYTES,
    )?;
    let max_evidence_bytes = bytes(
        "max_evidence_bytes",
        b.max_evidence_bytes,
        defaults::MAX_EVIDENCE_BYTES,
    )?;
    let cache_ttl = Duration::from_secs(b.cache_ttl.unwrap_or(defaults::CACHE_TTL.as_secs()));
    let failure_ttl = Duration::from_secs(b.failure_ttl.unwrap_or(defaults::FAILURE_TTL.as_secs()));
    let path = |key: &str, v: Option<String>, default: &str| {
        let p = PathBuf::from(v.unwrap_or_else(|| default.to_string()));
        if p.is_absolute() {
            Ok(p)
        } else {
            Err(ctx.err("bimi", key, "an absolute path is needed"))
        }
    };
    let anchors = path("trust_anchors", b.trust_anchors, defaults::TRUST_ANCHORS)?;
    let roots = path("https_roots", b.https_roots, defaults::HTTPS_ROOTS)?;
    if !b.enabled.unwrap_or(false) {
        return Ok(None);
    }
    let mut cfg = BimiConfig::load(&anchors, &roots).map_err(|(anchor, e)| {
        ctx.err(
            "bimi",
            if anchor {
                "trust_anchors"
            } else {
                "https_roots"
            },
            e,
        )
    })?;
    cfg.fetch_timeout = fetch_timeout;
    cfg.wait = wait;
    cfg.max_indicator_bytes = max_indicator_bytes;
    cfg.max_evidence_bytes = max_evidence_bytes;
    cfg.require_evidence = b.require_evidence.unwrap_or(true);
    cfg.cache_ttl = cache_ttl;
    cfg.failure_ttl = failure_ttl;
    cfg.fetch_private_addresses = b.fetch_private_addresses.unwrap_or(false);
    cfg.check_revocation = b.check_revocation.unwrap_or(true);
    Ok(Some(cfg))
}
