//! Plain result data produced by the checks: the contract between `checks`,
//! `policy` and `actions`. No milter or mail-auth types appear here.

use std::{fmt, net::IpAddr, str::FromStr};

/// An RFC 8601 result word.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum AuthResult {
    Pass,
    Fail,
    SoftFail,
    Neutral,
    None,
    Policy,
    TempError,
    PermError,
}

impl AuthResult {
    /// The result word as written in Authentication-Results.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pass => "pass",
            Self::Fail => "fail",
            Self::SoftFail => "softfail",
            Self::Neutral => "neutral",
            Self::None => "none",
            Self::Policy => "policy",
            Self::TempError => "temperror",
            Self::PermError => "permerror",
        }
    }
}

impl fmt::Display for AuthResult {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for AuthResult {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s.to_ascii_lowercase().as_str() {
            "pass" => Self::Pass,
            "fail" => Self::Fail,
            "softfail" => Self::SoftFail,
            "neutral" => Self::Neutral,
            "none" => Self::None,
            "policy" => Self::Policy,
            "temperror" => Self::TempError,
            "permerror" => Self::PermError,
            other => return Err(format!("unknown result `{other}`")),
        })
    }
}

/// iprev (RFC 8601 §3): reverse then forward-confirmed DNS of the client.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IprevEvidence {
    pub result: AuthResult,
    pub ip: IpAddr,
    /// The forward-confirmed name (pass) or the first PTR name seen.
    pub name: Option<String>,
    pub reason: Option<String>,
    /// Every PTR name that resolved back to the address (forward-confirmed),
    /// in PTR order; empty unless the result is `pass`.
    pub confirmed: Vec<String>,
}

/// HELO/PTR consistency (authentication_milter's `x-ptr`): whether the HELO
/// name is one of the client's forward-confirmed PTR names. Not an RFC 8601
/// method (`x-` methods are experimental, §2.7.6); derived from iprev
/// without DNS queries of its own.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PtrEvidence {
    /// `pass` (a match), `fail` (no forward-confirmed name, or none that
    /// matches), `none` (no HELO), `temperror` (iprev had a DNS failure).
    pub result: AuthResult,
    /// The HELO name as the client gave it.
    pub helo: String,
    /// The forward-confirmed PTR names compared with it.
    pub names: Vec<String>,
}

/// SMTP AUTH as the MTA reports it (`{auth_authen}`, `{auth_type}`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SmtpAuth {
    /// The authenticated user name.
    pub user: String,
    /// The SASL mechanism (PLAIN, LOGIN, …), when reported.
    pub mechanism: Option<String>,
}

/// The TLS session as the MTA reports it (`{tls_version}`, `{cipher}`,
/// `{cipher_bits}`): information, not a check.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsInfo {
    pub version: String,
    pub cipher: Option<String>,
    pub bits: Option<String>,
}

/// What the MTA told us about the SMTP session: copied into the headers
/// (Received-SPF's `client-ip` and `helo`, `auth=`, `x-tls=`), never checked.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SmtpFacts {
    pub client_ip: Option<IpAddr>,
    /// The HELO/EHLO argument, trimmed; `None` without HELO.
    pub helo: Option<String>,
    pub auth: Option<SmtpAuth>,
    pub tls: Option<TlsInfo>,
}

/// Which SPF identity was checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SpfIdentity {
    MailFrom,
    Helo,
}

/// One SPF evaluation (RFC 7208).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SpfEvidence {
    pub result: AuthResult,
    pub identity: SpfIdentity,
    /// The address checked: the MAIL FROM address, or `postmaster@HELO`.
    pub sender: String,
    /// The domain checked.
    pub domain: String,
    pub reason: Option<String>,
    /// The mechanism that matched (`ip4:192.0.2.0/24`, `all`); `None` when
    /// none matched (the default result) or the result is none or an error.
    pub mechanism: Option<String>,
}

/// One DKIM signature's evaluation (RFC 6376, 8301, 8463).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DkimEvidence {
    pub result: AuthResult,
    pub domain: String,
    pub selector: String,
    pub identity: String,
    pub algorithm: String,
    /// Leading characters of the base64 signature, to tell signatures apart.
    pub b_prefix: String,
    pub reason: Option<String>,
    /// Not verified because of a local limit (message size, signature
    /// count): DMARC must not count it as a failure.
    pub local_limit: bool,
}

/// A DMARC policy value.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum DmarcPolicy {
    None,
    Quarantine,
    Reject,
}

impl DmarcPolicy {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Quarantine => "quarantine",
            Self::Reject => "reject",
        }
    }
}

impl fmt::Display for DmarcPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for DmarcPolicy {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "none" => Ok(Self::None),
            "quarantine" => Ok(Self::Quarantine),
            "reject" => Ok(Self::Reject),
            other => Err(format!("unknown DMARC policy `{other}`")),
        }
    }
}

/// The DMARC evaluation (RFC 9989).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DmarcEvidence {
    pub result: AuthResult,
    /// The RFC 5322.From domain evaluated (the first one when there are several).
    pub from_domain: Option<String>,
    /// The policy the domain publishes for this message (p, sp or np), before `t=y`.
    pub published: Option<DmarcPolicy>,
    /// The policy to apply after `t=y` testing mode.
    pub effective: DmarcPolicy,
    /// Whether the record says `t=y`.
    pub testing: bool,
    pub spf_aligned: bool,
    pub dkim_aligned: bool,
    pub reason: Option<String>,
    /// The domain whose `_dmarc` record supplied the policy.
    pub policy_domain: Option<String>,
    /// No usable RFC 5322.From (missing, unparsable, no mailbox): DMARC
    /// cannot be evaluated and the operator's `invalid_from` action applies.
    pub from_unusable: bool,
    /// The record that supplied the policy (its `rua`, `ruf`, `fo` and tags
    /// feed the DMARC reports); `None` for several From domains.
    pub record: Option<std::sync::Arc<crate::checks::dmarc::Record>>,
    /// The result would be `fail`, but a DKIM signature that could have
    /// aligned was not verified because of a local limit: not a failure.
    pub local_limit: bool,
}

impl DmarcEvidence {
    /// A result with no policy attached.
    pub fn without_policy(
        result: AuthResult,
        from: Option<String>,
        reason: Option<String>,
    ) -> Self {
        Self {
            result,
            from_domain: from,
            published: None,
            effective: DmarcPolicy::None,
            testing: false,
            spf_aligned: false,
            dkim_aligned: false,
            reason,
            policy_domain: None,
            from_unusable: false,
            local_limit: false,
            record: None,
        }
    }
}

/// One result recorded in an ARC-Authentication-Results field.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AarResult {
    /// The method, lower case (`dmarc`, `spf`, ...).
    pub method: String,
    /// The result word, lower case, as the sealer wrote it.
    pub result: String,
    /// `header.from`, lower case, when the result names one.
    pub header_from: Option<String>,
}

/// One ARC set (RFC 8617 §4.1) as the message carries it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ArcHop {
    /// The instance `i=`.
    pub instance: u32,
    /// The sealer: the `d=` of the ARC-Seal, lower case.
    pub sealer: String,
    /// The authserv-id of the ARC-Authentication-Results.
    pub authserv_id: Option<String>,
    /// The results that ARC-Authentication-Results records.
    pub results: Vec<AarResult>,
}

/// ARC chain validation (RFC 8617 §5.2).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ArcEvidence {
    /// `pass`, `fail` or `none`: the only results RFC 8617 defines.
    pub result: AuthResult,
    pub reason: Option<String>,
    /// The failure came from a DNS failure that may go away.
    pub temporary: bool,
    /// RFC 8617 §5.2 step 5, where known.
    pub oldest_pass: Option<u32>,
    /// The sets, oldest (`i=1`) first; empty when they could not be read.
    pub hops: Vec<ArcHop>,
}

impl ArcEvidence {
    /// No ARC header fields at all.
    pub fn none() -> Self {
        Self {
            result: AuthResult::None,
            reason: None,
            temporary: false,
            oldest_pass: None,
            hops: Vec::new(),
        }
    }

    /// A chain that could not be validated.
    pub fn fail(reason: impl Into<String>, temporary: bool, hops: Vec<ArcHop>) -> Self {
        Self {
            result: AuthResult::Fail,
            reason: Some(reason.into()),
            temporary,
            oldest_pass: None,
            hops,
        }
    }

    /// The sealer domains, newest first.
    pub fn sealers(&self) -> Vec<&str> {
        self.hops.iter().rev().map(|h| h.sealer.as_str()).collect()
    }
}

/// One DKIM2 signature's evaluation (draft-ietf-dkim-dkim2-spec).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Dkim2Evidence {
    pub result: AuthResult,
    /// The signing domain `d=`, lower case.
    pub domain: String,
    /// The signature's instance `i=`.
    pub instance: u32,
    pub reason: Option<String>,
}

/// Everything learned about one message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Evidence {
    pub iprev: Option<IprevEvidence>,
    pub spf_helo: Option<SpfEvidence>,
    pub spf_mailfrom: Option<SpfEvidence>,
    pub dkim: Vec<DkimEvidence>,
    pub arc: ArcEvidence,
    /// DKIM2 signatures, in instance order; empty when there are none.
    pub dkim2: Vec<Dkim2Evidence>,
    pub dmarc: DmarcEvidence,
    /// HELO/PTR consistency; `None` without a client address.
    pub ptr: Option<PtrEvidence>,
    /// The SMTP session as the MTA reported it.
    pub smtp: SmtpFacts,
}

impl Evidence {
    /// The one DKIM result that stands for all signatures in the policy table:
    /// the best one (pass, then neutral, policy, temperror, permerror, fail),
    /// or `none` without signatures.
    pub fn dkim_summary(&self) -> AuthResult {
        const ORDER: [AuthResult; 6] = [
            AuthResult::Pass,
            AuthResult::Neutral,
            AuthResult::Policy,
            AuthResult::TempError,
            AuthResult::PermError,
            AuthResult::Fail,
        ];
        ORDER
            .into_iter()
            .find(|r| self.dkim.iter().any(|d| d.result == *r))
            .unwrap_or(AuthResult::None)
    }
}
