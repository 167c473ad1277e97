//! Per-message state: reset at MAIL FROM and at ABORT.

use super::pending::Pending;
use crate::checks::{
    dkim::KeyCache, dmarc::DmarcLookups, evidence::SpfEvidence, from, from::FromIdentity,
};
use std::{collections::HashMap, time::Instant};

/// The SPF checks started at MAIL FROM: (MAIL FROM, HELO).
pub type SpfPair = (SpfEvidence, Option<SpfEvidence>);

/// One message in flight.
pub struct Message {
    /// Keeps the message counted as in flight (for draining at shutdown).
    pub in_flight: Option<crate::stats::InFlight>,
    pub started: Instant,
    /// CONNECT for the first message of a connection, else `started`
    /// (`authmilter_message_duration_seconds`).
    pub since: Instant,
    pub queue_id: Option<String>,
    /// The reverse-path without angle brackets; empty for the null sender.
    pub mail_from: String,
    pub authenticated: Option<String>,
    /// The SASL mechanism of SMTP AUTH (`{auth_type}`), when reported.
    pub auth_type: Option<String>,
    /// The TLS session the MTA reported for this connection.
    pub tls: Option<crate::checks::evidence::TlsInfo>,
    pub rcpt_count: usize,
    /// The first recipients (for captures), without angle brackets.
    pub rcpts: Vec<String>,
    /// The `[[policy.recipients]]` policies of all recipients (`None`: the default).
    pub policies: Vec<Option<usize>>,
    /// The DNS answers of this message, when captures are configured.
    pub recorder: Option<std::sync::Arc<crate::dns::capture::Recorder>>,
    /// This message is to be captured (decided at end of headers).
    pub capture: bool,
    /// The tracing span of this message (queue id, client, sender): the
    /// decision trace (`authmilter::explain` at debug) is logged inside it.
    pub span: tracing::Span,
    /// A copy of `raw` kept for the capture.
    pub captured_raw: Option<Vec<u8>>,
    pub spf: Option<Pending<SpfPair>>,
    /// Occurrences seen so far of each header name (lower case).
    pub header_counts: HashMap<String, i32>,
    /// Incoming headers claiming to be ours: (name, 1-based index).
    pub forged: Vec<(String, i32)>,
    pub from_values: Vec<Vec<u8>>,
    /// The From identity, settled at end of headers.
    pub from_identity: Option<FromIdentity>,
    pub dkim_values: Vec<Vec<u8>>,
    /// ARC fields (name, value), for their key lookups.
    pub arc_fields: Vec<(String, Vec<u8>)>,
    /// DKIM2-Signature values, for their key lookups.
    pub dkim2_values: Vec<Vec<u8>>,
    /// BIMI-Selector field values (a few at most), when BIMI is on.
    pub bimi_selectors: Vec<String>,
    /// The header block (and the first part of the body, with
    /// `include_body`) kept for a DMARC failure report, when they are on.
    pub failure_copy: Option<Vec<u8>>,
    /// The message and its keys, kept for ARC sealing when it is configured.
    pub seal_input: Option<(Vec<u8>, KeyCache)>,
    /// Header block and body, CRLF line ends, for DKIM; bounded by the limit.
    pub raw: Vec<u8>,
    pub truncated: bool,
    /// The bytes of `raw` held against the budget of all connections
    /// (`limits.max_buffered_bytes`), when there is one.
    pub budget: Option<(crate::stats::Buffered, u64)>,
    /// The budget was exhausted while buffering: the message tempfails.
    pub over_budget: bool,
    pub total_size: usize,
    pub keys: Option<Pending<KeyCache>>,
    pub dmarc_lookups: DmarcLookups,
}

impl Message {
    pub fn new(mail_from: String, queue_id: Option<String>, authenticated: Option<String>) -> Self {
        let started = Instant::now();
        Self {
            in_flight: None,
            started,
            since: started,
            queue_id,
            mail_from,
            authenticated,
            auth_type: None,
            tls: None,
            rcpt_count: 0,
            rcpts: Vec::new(),
            policies: Vec::new(),
            recorder: None,
            capture: false,
            captured_raw: None,
            span: tracing::Span::none(),
            spf: None,
            header_counts: HashMap::new(),
            forged: Vec::new(),
            from_values: Vec::new(),
            from_identity: None,
            dkim_values: Vec::new(),
            arc_fields: Vec::new(),
            dkim2_values: Vec::new(),
            bimi_selectors: Vec::new(),
            seal_input: None,
            failure_copy: None,
            raw: Vec::new(),
            truncated: false,
            budget: None,
            over_budget: false,
            total_size: 0,
            keys: None,
            dmarc_lookups: DmarcLookups::default(),
        }
    }

    /// The From identity (computed once, from the From fields seen so far).
    pub fn from_identity(&mut self) -> FromIdentity {
        self.from_identity
            .get_or_insert_with(|| from::identify(self.from_values.iter().map(Vec::as_slice)))
            .clone()
    }

    /// Appends to the DKIM buffer unless that would pass `limit` bytes, or
    /// the budget of all connections.
    pub fn append(&mut self, bytes: &[u8], limit: usize) {
        self.total_size += bytes.len();
        if self.truncated || self.over_budget {
            return;
        }
        if self.raw.len() + bytes.len() > limit {
            self.truncated = true;
            self.drop_buffer();
            return;
        }
        if let Some((held, max)) = self.budget.as_mut() {
            if !held.take(bytes.len() as u64, *max) {
                self.over_budget = true;
                self.drop_buffer();
                return;
            }
        }
        self.raw.extend_from_slice(bytes);
    }

    fn drop_buffer(&mut self) {
        self.raw = Vec::new();
        if let Some((held, _)) = self.budget.as_mut() {
            held.release();
        }
    }
}

/// Copies `value` with every bare LF turned into CRLF (MTAs hand folded
/// header values to milters with LF line ends).
pub fn crlf(value: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(value.len() + 8);
    let mut prev = 0u8;
    for &b in value {
        if b == b'\n' && prev != b'\r' {
            out.push(b'\r');
        }
        out.push(b);
        prev = b;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crlf_normalises_bare_lf_only() {
        assert_eq!(crlf(b"a\n\tb\r\n\tc"), b"a\r\n\tb\r\n\tc");
    }

    #[test]
    fn buffer_is_bounded() {
        let mut m = Message::new(String::new(), None, None);
        m.append(&[0u8; 600], 1000);
        assert!(!m.truncated);
        m.append(&[0u8; 600], 1000);
        assert!(m.truncated);
        assert!(m.raw.is_empty());
        m.append(&[0u8; 10], 1000);
        assert_eq!(m.total_size, 1210);
    }
}
