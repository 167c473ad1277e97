//! The verdict type and SMTP replies.

use crate::checks::evidence::DmarcPolicy;
use std::fmt;

/// What happens to the message, ordered from mildest to most severe.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Action {
    Accept,
    /// Accept, adding the quarantine marker header.
    Tag,
    Quarantine,
    Tempfail,
    Reject,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Accept => "accept",
            Self::Tag => "tag",
            Self::Quarantine => "quarantine",
            Self::Tempfail => "tempfail",
            Self::Reject => "reject",
        }
    }

    pub fn from_name(s: &str) -> Option<Self> {
        [
            Self::Accept,
            Self::Tag,
            Self::Quarantine,
            Self::Tempfail,
            Self::Reject,
        ]
        .into_iter()
        .find(|a| a.as_str() == s)
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An SMTP reply: code, RFC 3463/7372 enhanced status code and text.
/// The text may contain `{domain}`, replaced by the From domain.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reply {
    pub code: u16,
    pub status: String,
    pub text: String,
}

impl Reply {
    pub fn new(code: u16, status: &str, text: &str) -> Self {
        Self {
            code,
            status: status.into(),
            text: text.into(),
        }
    }

    /// Fills in `{domain}`, keeping only printable ASCII of it.
    pub fn for_domain(&self, domain: &str) -> Reply {
        let clean: String = domain
            .chars()
            .filter(|c| c.is_ascii_graphic() && *c != '%')
            .take(253)
            .collect();
        Reply {
            text: self.text.replace("{domain}", &clean),
            ..self.clone()
        }
    }
}

impl fmt::Display for Reply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {} {}", self.code, self.status, self.text)
    }
}

/// Why a verdict was reported but not enforced.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum NotEnforced {
    /// The client is in `policy.trusted_networks` (or a trusted local client).
    TrustedNetwork,
    /// The client authenticated (SMTP AUTH) and `policy.trust_authenticated` is set.
    Authenticated,
    /// `policy.mode = "monitor"`.
    MonitorMode,
    /// The deciding rule has `monitor = true`.
    MonitorRule,
}

impl NotEnforced {
    /// The name used in metrics labels.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::TrustedNetwork => "trusted_network",
            Self::Authenticated => "authenticated",
            Self::MonitorMode => "monitor_mode",
            Self::MonitorRule => "monitor_rule",
        }
    }
}

/// The decision for one message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verdict {
    pub action: Action,
    /// The SMTP reply for reject and tempfail.
    pub reply: Option<Reply>,
    pub reason: String,
    /// What would have happened without monitor mode or trust.
    pub would: Option<(Action, String)>,
    /// Why `would` was not enforced (set together with `would`).
    pub not_enforced: Option<NotEnforced>,
    /// The DMARC disposition applied, when DMARC failed.
    pub dmarc_disposition: Option<DmarcPolicy>,
    /// The DMARC report override reason, when the disposition differs.
    pub override_reason: Option<&'static str>,
    /// How the ARC chain was judged, when DMARC failed and there was one.
    pub arc: Option<super::ArcJudgement>,
    /// The policy that decided, when `[[policy.recipients]]` are configured.
    pub policy: Option<String>,
}

impl Verdict {
    pub fn new(action: Action, reply: Option<Reply>, reason: String) -> Self {
        Self {
            action,
            reply,
            reason,
            would: None,
            not_enforced: None,
            dmarc_disposition: None,
            override_reason: None,
            arc: None,
            policy: None,
        }
    }

    pub fn accept() -> Self {
        Self::new(Action::Accept, None, "no rule applies".into())
    }

    /// The reply to send, with a default for the action when none is configured.
    pub fn reply_or_default(&self) -> Option<Reply> {
        match self.action {
            Action::Reject => {
                Some(self.reply.clone().unwrap_or_else(|| {
                    Reply::new(550, "5.7.1", "Message rejected by local policy")
                }))
            }
            Action::Tempfail => Some(self.reply.clone().unwrap_or_else(|| {
                Reply::new(
                    451,
                    "4.7.1",
                    "Temporary authentication failure, try again later",
                )
            })),
            _ => None,
        }
    }
}
