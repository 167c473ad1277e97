//! The effective configuration as TOML (`authmilter config show`): every key
//! of the file format with the value in force, defaults filled in. Reading
//! the output back gives the same configuration.

use super::{Config, LogFormat, LogTarget};
use crate::policy::{Mode, QuarantineMode, Reply, TempErrorAction, TrustedAction};
use toml::{Table, Value};

fn s(v: impl Into<String>) -> Value {
    Value::String(v.into())
}

fn int(v: impl TryInto<i64>) -> Value {
    Value::Integer(v.try_into().unwrap_or(i64::MAX))
}

fn strings<T: ToString>(v: &[T]) -> Value {
    Value::Array(v.iter().map(|x| s(x.to_string())).collect())
}

fn reply(r: &Reply) -> Value {
    let mut t = Table::new();
    t.insert("code".into(), int(r.code));
    t.insert("status".into(), s(&r.status));
    t.insert("text".into(), s(&r.text));
    Value::Table(t)
}

fn table(entries: Vec<(&str, Option<Value>)>) -> Value {
    Value::Table(
        entries
            .into_iter()
            .filter_map(|(k, v)| v.map(|v| (k.to_string(), v)))
            .collect(),
    )
}

impl Config {
    /// The configuration in force, in the file's format.
    pub fn to_toml(&self) -> String {
        let m = &self.milter;
        let milter = table(vec![
            ("socket", Some(s(m.socket.to_string()))),
            ("socket_owner", m.socket_owner.clone().map(s)),
            ("socket_group", m.socket_group.clone().map(s)),
            ("socket_mode", m.socket_mode.map(|x| s(format!("{x:04o}")))),
            ("authserv_id", Some(s(&m.authserv_id))),
            ("authserv_aliases", Some(strings(&m.authserv_aliases))),
            ("max_connections", Some(int(m.max_connections))),
            (
                "connection_timeout",
                Some(int(m.connection_timeout.as_secs())),
            ),
            ("drain_timeout", Some(int(m.drain_timeout.as_secs()))),
            ("user", m.user.clone().map(s)),
            ("group", m.group.clone().map(s)),
        ]);
        let d = &self.dns;
        let dns = table(vec![
            ("nameservers", Some(strings(&d.nameservers))),
            ("timeout", Some(Value::Float(d.timeout.as_secs_f64()))),
            ("attempts", Some(int(d.attempts))),
            ("cache_size", Some(int(d.cache_size))),
            ("cache_bytes", Some(int(d.cache_bytes))),
            ("max_ttl", Some(int(d.max_ttl.as_secs()))),
            ("negative_max_ttl", Some(int(d.negative_max_ttl.as_secs()))),
        ]);
        let l = &self.limits;
        let limits = table(vec![
            ("max_message_size", Some(int(l.max_message_size))),
            ("max_buffered_bytes", Some(int(l.max_buffered_bytes))),
            ("max_signatures", Some(int(l.max_signatures))),
            ("max_ptr_names", Some(int(l.max_ptr_names))),
            (
                "message_deadline",
                Some(Value::Float(l.message_deadline.as_secs_f64())),
            ),
        ]);
        let p = &self.policy;
        let rules = rules_table(&p.rules);
        let overrides = overrides_array(&p.overrides);
        let recipients: Vec<Value> = p
            .recipients
            .iter()
            .map(|b| {
                table(vec![
                    ("name", Some(s(&b.name))),
                    ("domains", Some(strings(&b.domains))),
                    ("mode", Some(s(mode_name(b.policy.mode)))),
                    ("rules", Some(Value::Table(rules_table(&b.policy.rules)))),
                    (
                        "overrides",
                        Some(Value::Array(overrides_array(&b.policy.overrides))),
                    ),
                ])
            })
            .collect();
        let policy = table(vec![
            ("mode", Some(s(mode_name(p.mode)))),
            (
                "quarantine",
                Some(s(match p.quarantine {
                    QuarantineMode::Hold => "hold",
                    QuarantineMode::Tag => "tag",
                })),
            ),
            ("quarantine_header", Some(s(&p.quarantine_header))),
            (
                "dmarc_temperror",
                Some(s(match p.dmarc_temperror {
                    TempErrorAction::Tempfail => "tempfail",
                    TempErrorAction::Accept => "accept",
                })),
            ),
            ("dmarc_reject_reply", Some(reply(&p.dmarc_reject_reply))),
            (
                "dmarc_temperror_reply",
                Some(reply(&p.dmarc_temperror_reply)),
            ),
            ("invalid_from", Some(s(p.invalid_from.as_str()))),
            ("invalid_from_reply", Some(reply(&p.invalid_from_reply))),
            ("dkim_over_limit", Some(s(p.dkim_over_limit.as_str()))),
            (
                "spf_reject_at_mail",
                Some(Value::Boolean(p.spf_reject_at_mail)),
            ),
            ("trusted_networks", Some(strings(&p.trusted_networks))),
            ("trust_local", Some(Value::Boolean(p.trust_local))),
            (
                "trust_unknown_family",
                Some(Value::Boolean(p.trust_unknown_family)),
            ),
            (
                "trust_authenticated",
                Some(Value::Boolean(p.trust_authenticated)),
            ),
            ("rules", Some(Value::Table(rules))),
            ("overrides", Some(Value::Array(overrides))),
            ("recipients", Some(Value::Array(recipients))),
        ]);
        let log = table(vec![
            ("level", Some(s(&self.log.level))),
            (
                "format",
                Some(s(match self.log.format {
                    LogFormat::Text => "text",
                    LogFormat::Json => "json",
                })),
            ),
            (
                "target",
                Some(s(match self.log.target {
                    LogTarget::Stderr => "stderr",
                    LogTarget::Journald => "journald",
                })),
            ),
        ]);
        let c = &self.capture;
        let capture = table(vec![
            (
                "directory",
                c.directory.as_ref().map(|d| s(d.display().to_string())),
            ),
            ("sample", Some(int(c.sample))),
            ("domains", Some(strings(&c.domains))),
            ("clients", Some(strings(&c.clients))),
            ("max", Some(int(c.max))),
        ]);
        let metrics = table(vec![(
            "address",
            self.metrics.address.map(|a| s(a.to_string())),
        )]);
        let pa = &self.policy.arc;
        let seal_headers = self.seal.as_ref().map_or_else(
            || {
                crate::checks::arc::seal::DEFAULT_HEADERS
                    .iter()
                    .map(|h| h.to_string())
                    .collect()
            },
            |c| c.headers.clone(),
        );
        let arc = table(vec![
            ("trusted_sealers", Some(strings(&pa.trusted_sealers))),
            (
                "trusted_action",
                Some(s(match pa.action {
                    TrustedAction::Accept => "accept",
                    TrustedAction::Milder => "milder",
                })),
            ),
            ("seal", Some(Value::Boolean(self.seal.is_some()))),
            ("seal_domain", self.seal.as_ref().map(|c| s(&c.domain))),
            ("seal_selector", self.seal.as_ref().map(|c| s(&c.selector))),
            (
                "seal_key_file",
                self.seal
                    .as_ref()
                    .map(|c| s(c.key_file.display().to_string())),
            ),
            ("seal_headers", Some(strings(&seal_headers))),
        ]);
        let dkim2 = table(vec![(
            "use_for_dmarc",
            Some(Value::Boolean(self.dkim2.use_for_dmarc)),
        )]);
        let r = &self.reports;
        let failure = table(vec![
            ("enabled", Some(Value::Boolean(r.failure.enabled))),
            ("max_per_hour", Some(int(r.failure.max_per_hour))),
            (
                "max_total_per_hour",
                Some(int(r.failure.max_total_per_hour)),
            ),
            ("include_body", Some(Value::Boolean(r.failure.include_body))),
            (
                "redact_local_parts",
                Some(Value::Boolean(r.failure.redact_local_parts)),
            ),
        ]);
        let reports = table(vec![
            ("enabled", Some(Value::Boolean(r.enabled))),
            ("database", Some(s(&r.database))),
            ("org_name", Some(s(&r.org_name))),
            ("contact", Some(s(&r.contact))),
            ("submitter", Some(s(&r.submitter))),
            ("queue_size", Some(int(r.queue_size))),
            ("batch_size", Some(int(r.batch_size))),
            ("retention_days", Some(int(r.retention.as_secs() / 86_400))),
            ("smtp_relay", Some(s(&r.smtp_relay))),
            ("smtp_timeout", Some(int(r.smtp_timeout.as_secs()))),
            ("max_report_bytes", Some(int(r.max_report_bytes))),
            ("schedule_daily", Some(Value::Boolean(r.schedule_daily))),
            ("failure", Some(failure)),
        ]);
        let h = &self.headers;
        let spf = table(vec![(
            "received_spf_header",
            Some(Value::Boolean(h.received_spf)),
        )]);
        let results = table(vec![
            ("auth", Some(Value::Boolean(h.auth))),
            ("auth_user", Some(Value::Boolean(h.auth_user))),
            ("x_ptr", Some(Value::Boolean(h.x_ptr))),
            ("x_tls", Some(Value::Boolean(h.x_tls))),
        ]);
        let bimi = {
            use crate::checks::bimi::defaults as d;
            let b = self.bimi.as_ref();
            let secs = |x: std::time::Duration| Value::Float(x.as_secs_f64());
            table(vec![
                ("enabled", Some(Value::Boolean(b.is_some()))),
                (
                    "trust_anchors",
                    Some(s(b.map_or(d::TRUST_ANCHORS.to_string(), |b| {
                        b.trust_anchors_file.display().to_string()
                    }))),
                ),
                (
                    "https_roots",
                    Some(s(b.map_or(d::HTTPS_ROOTS.to_string(), |b| {
                        b.https_roots_file.display().to_string()
                    }))),
                ),
                (
                    "require_evidence",
                    Some(Value::Boolean(b.is_none_or(|b| b.require_evidence))),
                ),
                (
                    "fetch_timeout",
                    Some(secs(b.map_or(d::FETCH_TIMEOUT, |b| b.fetch_timeout))),
                ),
                (
                    "max_indicator_bytes",
                    Some(int(
                        b.map_or(d::MAX_INDICATOR_BYTES, |b| b.max_indicator_bytes)
                    )),
                ),
                (
                    "max_evidence_bytes",
                    Some(int(
                        b.map_or(d::MAX_EVIDENCE_BYTES, |b| b.max_evidence_bytes)
                    )),
                ),
                (
                    "cache_ttl",
                    Some(int(b.map_or(d::CACHE_TTL, |b| b.cache_ttl).as_secs())),
                ),
                (
                    "failure_ttl",
                    Some(int(b.map_or(d::FAILURE_TTL, |b| b.failure_ttl).as_secs())),
                ),
                ("wait", Some(secs(b.map_or(d::WAIT, |b| b.wait)))),
                (
                    "fetch_private_addresses",
                    Some(Value::Boolean(b.is_some_and(|b| b.fetch_private_addresses))),
                ),
                (
                    "check_revocation",
                    Some(Value::Boolean(b.is_none_or(|b| b.check_revocation))),
                ),
            ])
        };
        let mut root = Table::new();
        for (k, v) in [
            ("milter", milter),
            ("dns", dns),
            ("limits", limits),
            ("policy", policy),
            ("log", log),
            ("capture", capture),
            ("metrics", metrics),
            ("arc", arc),
            ("dkim2", dkim2),
            ("reports", reports),
            ("spf", spf),
            ("results", results),
            ("bimi", bimi),
        ] {
            root.insert(k.into(), v);
        }
        let source = self
            .source
            .as_ref()
            .map(|p| p.display().to_string())
            .unwrap_or_else(|| "the built-in defaults".into());
        format!(
            "# Effective authmilter configuration: {source}, every default filled in.\n{}",
            toml::to_string(&root).expect("a table of plain values serializes")
        )
    }
}

fn mode_name(m: Mode) -> &'static str {
    match m {
        Mode::Enforce => "enforce",
        Mode::Monitor => "monitor",
    }
}

/// `[policy.rules]` (or a recipient block's) as TOML.
fn rules_table(list: &[crate::policy::Rule]) -> Table {
    let mut rules = Table::new();
    for r in list {
        let mut rule = Table::new();
        rule.insert("action".into(), s(r.action.as_str()));
        if let Some(rp) = &r.reply {
            rule.insert("code".into(), int(rp.code));
            rule.insert("status".into(), s(&rp.status));
            rule.insert("text".into(), s(&rp.text));
        }
        if r.monitor {
            rule.insert("monitor".into(), Value::Boolean(true));
        }
        let check = rules
            .entry(r.check.name().to_string())
            .or_insert_with(|| Value::Table(Table::new()));
        if let Value::Table(t) = check {
            t.insert(r.result.as_str().to_string(), Value::Table(rule));
        }
    }
    rules
}

/// `[[policy.overrides]]` (or a recipient block's) as TOML.
fn overrides_array(list: &[crate::policy::Override]) -> Vec<Value> {
    list.iter()
        .map(|o| {
            table(vec![
                ("domain", Some(s(&o.domain))),
                ("never_reject", Some(Value::Boolean(o.never_reject))),
                ("dmarc_policy", o.dmarc_policy.map(|d| s(d.as_str()))),
            ])
        })
        .collect()
}
