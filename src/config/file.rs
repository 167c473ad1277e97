//! Raw TOML structures, exactly as written in the configuration file.
//!
//! Every struct rejects unknown keys so that a typo is an error, not a silently
//! ignored setting. `validate` turns these into the typed [`super::Config`].

use serde::Deserialize;
use std::collections::BTreeMap;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    #[serde(default)]
    pub milter: RawMilter,
    #[serde(default)]
    pub dns: RawDns,
    #[serde(default)]
    pub limits: RawLimits,
    #[serde(default)]
    pub policy: RawPolicy,
    #[serde(default)]
    pub log: RawLog,
    #[serde(default)]
    pub capture: RawCapture,
    #[serde(default)]
    pub metrics: RawMetrics,
    #[serde(default)]
    pub arc: RawArc,
    #[serde(default)]
    pub dkim2: RawDkim2,
    #[serde(default)]
    pub reports: RawReports,
    #[serde(default)]
    pub spf: RawSpf,
    #[serde(default)]
    pub results: RawResults,
    #[serde(default)]
    pub bimi: RawBimi,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawBimi {
    pub enabled: Option<bool>,
    pub trust_anchors: Option<String>,
    pub https_roots: Option<String>,
    pub require_evidence: Option<bool>,
    pub fetch_timeout: Option<f64>,
    pub max_indicator_bytes: Option<usize>,
    pub max_evidence_bytes: Option<usize>,
    pub cache_ttl: Option<u64>,
    pub failure_ttl: Option<u64>,
    pub wait: Option<f64>,
    pub fetch_private_addresses: Option<bool>,
    pub check_revocation: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSpf {
    pub received_spf_header: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawResults {
    pub auth: Option<bool>,
    pub auth_user: Option<bool>,
    pub x_ptr: Option<bool>,
    pub x_tls: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawReports {
    pub enabled: Option<bool>,
    pub database: Option<String>,
    pub org_name: Option<String>,
    pub contact: Option<String>,
    pub submitter: Option<String>,
    pub queue_size: Option<usize>,
    pub batch_size: Option<usize>,
    pub retention_days: Option<u64>,
    pub smtp_relay: Option<String>,
    pub smtp_timeout: Option<u64>,
    pub max_report_bytes: Option<usize>,
    pub schedule_daily: Option<bool>,
    #[serde(default)]
    pub failure: RawFailureReports,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawFailureReports {
    pub enabled: Option<bool>,
    pub max_per_hour: Option<u32>,
    pub max_total_per_hour: Option<u32>,
    pub include_body: Option<bool>,
    pub redact_local_parts: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawArc {
    pub trusted_sealers: Option<Vec<String>>,
    pub trusted_action: Option<String>,
    pub seal: Option<bool>,
    pub seal_domain: Option<String>,
    pub seal_selector: Option<String>,
    pub seal_key_file: Option<String>,
    pub seal_headers: Option<Vec<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDkim2 {
    pub use_for_dmarc: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCapture {
    pub directory: Option<String>,
    pub sample: Option<u64>,
    pub domains: Option<Vec<String>>,
    pub clients: Option<Vec<String>>,
    pub max: Option<usize>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawMilter {
    pub socket: Option<String>,
    pub socket_owner: Option<String>,
    pub socket_group: Option<String>,
    pub socket_mode: Option<String>,
    pub authserv_id: Option<String>,
    pub authserv_aliases: Option<Vec<String>>,
    pub max_connections: Option<usize>,
    pub connection_timeout: Option<u64>,
    pub drain_timeout: Option<u64>,
    pub user: Option<String>,
    pub group: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDns {
    pub nameservers: Option<Vec<String>>,
    pub timeout: Option<f64>,
    pub attempts: Option<usize>,
    pub cache_size: Option<u64>,
    pub cache_bytes: Option<u64>,
    pub max_ttl: Option<u64>,
    pub negative_max_ttl: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLimits {
    pub max_message_size: Option<usize>,
    pub max_buffered_bytes: Option<u64>,
    pub max_signatures: Option<usize>,
    pub max_ptr_names: Option<usize>,
    pub message_deadline: Option<f64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPolicy {
    pub mode: Option<String>,
    pub quarantine: Option<String>,
    pub quarantine_header: Option<String>,
    pub dmarc_temperror: Option<String>,
    pub dmarc_reject_reply: Option<RawReply>,
    pub dmarc_temperror_reply: Option<RawReply>,
    pub invalid_from: Option<String>,
    pub invalid_from_reply: Option<RawReply>,
    pub dkim_over_limit: Option<String>,
    pub spf_reject_at_mail: Option<bool>,
    pub trusted_networks: Option<Vec<String>>,
    pub trust_local: Option<bool>,
    pub trust_unknown_family: Option<bool>,
    pub trust_authenticated: Option<bool>,
    /// check name → result word → rule
    pub rules: Option<BTreeMap<String, BTreeMap<String, RawRule>>>,
    pub overrides: Option<Vec<RawOverride>>,
    pub recipients: Option<Vec<RawRecipients>>,
}

/// `[[policy.recipients]]`: the policy for mail to some domains.
#[derive(Debug, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct RawRecipients {
    pub domains: Vec<String>,
    pub name: Option<String>,
    pub mode: Option<String>,
    pub rules: Option<BTreeMap<String, BTreeMap<String, RawRule>>>,
    pub overrides: Option<Vec<RawOverride>>,
}

#[derive(Debug, Default, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct RawReply {
    pub code: Option<u16>,
    pub status: Option<String>,
    pub text: Option<String>,
}

#[derive(Debug, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct RawRule {
    pub action: String,
    pub code: Option<u16>,
    pub status: Option<String>,
    pub text: Option<String>,
    pub monitor: Option<bool>,
}

#[derive(Debug, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct RawOverride {
    pub domain: String,
    pub never_reject: Option<bool>,
    pub dmarc_policy: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLog {
    pub level: Option<String>,
    pub format: Option<String>,
    pub target: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawMetrics {
    pub address: Option<String>,
}
