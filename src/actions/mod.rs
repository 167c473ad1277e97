//! Turning a verdict into milter actions: header edits first, then the reply.

pub mod auth_results;
pub mod bimi;
pub mod received_spf;
pub mod sanitize;

use crate::{
    checks::evidence::Evidence,
    policy::{Action, Verdict},
};
use indymilter::{ActionError, ContextActions, SetErrorReply, Status};

/// Header added when a monitor rule, monitor mode or trust kept a verdict from
/// being enforced.
pub const WOULD_HEADER: &str = "X-Authmilter-Would";

/// What the headers record beyond the checks' results (`[results]` and
/// `[spf] received_spf_header`); each is off by default.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HeaderConfig {
    /// Received-SPF fields (RFC 7208 §9.1) beside Authentication-Results.
    pub received_spf: bool,
    /// `auth=pass` for SMTP AUTH clients (RFC 8601 §2.7.4).
    pub auth: bool,
    /// Name the user in `smtp.auth` (false: withheld).
    pub auth_user: bool,
    /// `x-ptr=` (HELO name against the forward-confirmed PTR names).
    pub x_ptr: bool,
    /// `x-tls=` (the TLS session the MTA reported).
    pub x_tls: bool,
}

impl Default for HeaderConfig {
    fn default() -> Self {
        Self {
            received_spf: false,
            auth: false,
            auth_user: true,
            x_ptr: false,
            x_tls: false,
        }
    }
}

/// Everything to do to the message at end of data.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Plan {
    /// (name, 1-based index among fields of that name), highest index first.
    pub deletions: Vec<(String, i32)>,
    /// Headers to insert at the top, in order.
    pub inserts: Vec<(String, String)>,
    pub verdict: Verdict,
}

/// Builds the plan for a message: delete forged headers, prepend our
/// Authentication-Results, add markers.
pub fn plan(
    authserv_id: &str,
    quarantine_header: &str,
    forged: &[(String, i32)],
    ev: &Evidence,
    verdict: Verdict,
    headers: &HeaderConfig,
) -> Plan {
    let mut deletions = forged.to_vec();
    // Deleting from the highest index down keeps the lower indexes valid
    // whatever the MTA does with the indexes of deleted fields.
    deletions.sort_by(|a, b| {
        a.0.to_ascii_lowercase()
            .cmp(&b.0.to_ascii_lowercase())
            .then(b.1.cmp(&a.1))
    });
    let mut inserts = vec![(
        "Authentication-Results".to_string(),
        auth_results::build(authserv_id, ev, &verdict, headers),
    )];
    if headers.received_spf {
        // RFC 7208 §9.1: above every other Received-SPF field (and, as
        // prepended trace fields, above the incoming ones).
        for value in received_spf::build(authserv_id, ev) {
            inserts.push((received_spf::NAME.to_string(), value));
        }
    }
    if verdict.action == Action::Tag {
        inserts.push((
            quarantine_header.to_string(),
            format!(" {}", sanitize::comment_text(&verdict.reason)),
        ));
    }
    if let Some((action, why)) = &verdict.would {
        inserts.push((
            WOULD_HEADER.to_string(),
            format!(" {action}; {}", sanitize::comment_text(why)),
        ));
    }
    Plan {
        deletions,
        inserts,
        verdict,
    }
}

/// Applies a plan through the milter context.
///
/// # Errors
///
/// Fails when the MTA connection fails while sending modifications.
pub async fn apply(
    plan: &Plan,
    actions: &impl ContextActions,
    reply: &mut impl SetErrorReply,
) -> Result<Status, ActionError> {
    let v = &plan.verdict;
    match v.action {
        Action::Reject | Action::Tempfail => {
            let r = v
                .reply_or_default()
                .expect("reject and tempfail have replies");
            let code = r.code.to_string();
            if reply
                .set_error_reply(&code, Some(&r.status), [r.text.as_str()])
                .is_err()
            {
                tracing::warn!("invalid SMTP reply {r}; using the MTA's default");
            }
            return Ok(if v.action == Action::Reject {
                Status::Reject
            } else {
                Status::Tempfail
            });
        }
        Action::Accept | Action::Tag | Action::Quarantine => {}
    }
    for (name, index) in &plan.deletions {
        actions
            .change_header(name.as_str(), *index, None::<&str>)
            .await?;
    }
    for (i, (name, value)) in plan.inserts.iter().enumerate() {
        actions
            .insert_header(i as i32, name.as_str(), value.as_str())
            .await?;
    }
    if v.action == Action::Quarantine {
        actions
            .quarantine(sanitize::comment_text(&v.reason).as_str())
            .await?;
    }
    Ok(Status::Accept)
}
