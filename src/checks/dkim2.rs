//! DKIM2 (draft-ietf-dkim-dkim2-spec) through mail-auth 0.13.3, which
//! implements revision -03 of the draft: `DKIM2-Signature` and
//! `Message-Instance` fields, the chain of custody from the envelope
//! (`mf=`/`rt=`) through every hop. Signatures made to later revisions of the
//! draft may not verify with it (README, "Forwarded mail").
//!
//! The result is one per chain: a pass lists every signature of the chain,
//! anything else is reported once, for the newest signature, with the
//! library's reason. DMARC does not use these results unless the operator
//! asks for it (`[dkim2] use_for_dmarc`).

use super::{
    dkim::KeyCache,
    evidence::{AuthResult, Dkim2Evidence},
};
use crate::dns::Dns;
use mail_auth::{dkim2::Envelope, AuthenticatedMessage, Dkim2Result, Parameters};

/// DKIM2 settings (`[dkim2]`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Dkim2Config {
    /// Count a DKIM2 pass as an aligned DKIM pass for DMARC.
    pub use_for_dmarc: bool,
}

/// The draft revision the verifier implements.
pub const DRAFT: &str = "draft-ietf-dkim-dkim2-spec-03";

/// Most DKIM2 key names fetched for one message.
pub const MAX_DKIM2_KEYS: usize = 16;

/// Whether a header field name is one of DKIM2's.
pub fn is_dkim2_header(name: &str) -> bool {
    name.eq_ignore_ascii_case("DKIM2-Signature") || name.eq_ignore_ascii_case("Message-Instance")
}

/// The key names (selector, domain) of DKIM2-Signature values, at most
/// [`MAX_DKIM2_KEYS`].
pub fn key_names(values: &[Vec<u8>]) -> Vec<(String, String)> {
    let mut names: Vec<(String, String)> = Vec::new();
    for v in values {
        let Ok(sig) = mail_auth::dkim2::Signature::parse(v) else {
            continue;
        };
        for s in &sig.s {
            let n = (s.selector.clone(), sig.d.clone());
            if !names.contains(&n) {
                names.push(n);
            }
        }
    }
    names.truncate(MAX_DKIM2_KEYS);
    names
}

fn word(r: &Dkim2Result) -> AuthResult {
    match r {
        Dkim2Result::Pass => AuthResult::Pass,
        Dkim2Result::Fail(_) => AuthResult::Fail,
        Dkim2Result::PermError(_) => AuthResult::PermError,
        Dkim2Result::TempError(_) => AuthResult::TempError,
        Dkim2Result::None => AuthResult::None,
    }
}

/// Verifies the DKIM2 chain of a parsed message against the SMTP envelope.
/// Empty when the message carries no DKIM2 fields.
pub async fn verify(
    dns: &Dns,
    msg: &AuthenticatedMessage<'_>,
    keys: &KeyCache,
    mail_from: &str,
    rcpts: &[String],
) -> Vec<Dkim2Evidence> {
    let carries = !msg.dkim2_signatures.is_empty()
        || msg.has_dkim2_errors
        || msg
            .headers
            .iter()
            .any(|(n, _)| std::str::from_utf8(n).is_ok_and(|n| is_dkim2_header(n.trim())));
    if !carries {
        return Vec::new();
    }
    let from = if mail_from.is_empty() {
        "<>"
    } else {
        mail_from
    };
    let out = dns
        .authenticator()
        .verify_dkim2(
            Parameters::new(msg).with_txt_cache(keys),
            Envelope::new(from, rcpts.iter()),
        )
        .await;
    let result = word(out.result());
    if result == AuthResult::Pass && !out.chain().is_empty() {
        return out
            .chain()
            .iter()
            .map(|l| Dkim2Evidence {
                result: AuthResult::Pass,
                domain: l.signature.d.to_ascii_lowercase(),
                instance: l.signature.i,
                reason: None,
            })
            .collect();
    }
    let newest = msg.dkim2_signatures.iter().max_by_key(|h| h.header.i);
    let result = match result {
        // A chain the library cannot read (a gap, no signature) is broken.
        AuthResult::None | AuthResult::Pass => AuthResult::PermError,
        r => r,
    };
    vec![Dkim2Evidence {
        result,
        domain: newest
            .map(|h| h.header.d.to_ascii_lowercase())
            .unwrap_or_default(),
        instance: newest.map_or(0, |h| h.header.i),
        reason: Some(
            out.failure_reason()
                .unwrap_or_else(|| "DKIM2 chain incomplete or unreadable".into()),
        ),
    }]
}
