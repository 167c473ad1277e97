//! The session: connection state plus the current message, with one method
//! per milter stage. No sockets here: `milter` calls these methods and
//! `actions` applies the resulting plan, so everything is testable directly.

mod message;
mod metrics;
mod pending;

pub use message::{crlf, Message};
pub use pending::Pending;

use crate::{
    actions::{self, sanitize, Plan, WOULD_HEADER},
    checks::{
        arc,
        bimi::{BimiEvidence, BimiInput},
        dkim,
        dmarc::DmarcInput,
        evidence::{
            ArcEvidence, AuthResult, DkimEvidence, DmarcEvidence, Evidence, IprevEvidence,
            SmtpAuth, SmtpFacts, SpfEvidence, SpfIdentity, TlsInfo,
        },
        ptr, Authentication, Checker, MessageInput,
    },
    dns::capture::Recorder,
    policy::{self, Action, ClientTrust, Reply, Verdict},
    Runtime,
};
use std::{net::IpAddr, sync::Arc};
use tokio::time::timeout_at;
use tracing::{info, warn};

/// Most ARC header fields kept per message (for key lookups): 50 ARC sets
/// of three; more cannot make a valid chain.
const MAX_ARC_FIELDS: usize = 3 * 50 + 1;
/// Most DKIM2-Signature values kept per message (for key lookups).
/// BIMI-Selector fields kept: more than one means none is used.
const MAX_BIMI_SELECTORS: usize = 2;
const MAX_DKIM2_FIELDS: usize = 32;

/// What an early stage answers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    Continue,
    Reject(Reply),
    Tempfail(Reply),
}

/// What the MTA reports with MAIL FROM besides the reverse-path (its
/// macros: the queue id, SMTP AUTH, the TLS session of this connection).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MailInfo {
    pub queue_id: Option<String>,
    /// The SMTP AUTH user (`{auth_authen}`).
    pub auth_user: Option<String>,
    /// The SASL mechanism (`{auth_type}`).
    pub auth_type: Option<String>,
    /// `{tls_version}`, `{cipher}`, `{cipher_bits}`, sent at HELO (Postfix's
    /// `milter_helo_macros`) and still in force at MAIL FROM.
    pub tls: Option<TlsInfo>,
}

/// The client as the MTA describes it at CONNECT.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Client {
    /// An IP client (IPv4-mapped IPv6 addresses already turned into IPv4).
    Inet(IpAddr),
    /// A local submission over a unix socket.
    Local,
    /// An unknown or missing address family.
    Unknown,
}

impl Client {
    /// The client's address, if it has one.
    pub fn ip(self) -> Option<IpAddr> {
        match self {
            Client::Inet(ip) => Some(ip),
            _ => None,
        }
    }
}

/// Connection state, kept across messages.
pub struct Connection {
    pub ip: Option<IpAddr>,
    pub client_name: String,
    pub helo: Option<String>,
    pub iprev: Option<Pending<IprevEvidence>>,
    pub trusted_network: bool,
    /// Whether the MTA sends header values with their leading space.
    pub leading_space: bool,
    /// Whether the MTA offered the quarantine action (SMFIF_QUARANTINE);
    /// without it a quarantine verdict becomes `tag`.
    pub can_quarantine: bool,
    /// When CONNECT arrived, until the first message takes it (metrics).
    pub connected_at: Option<std::time::Instant>,
    /// The iprev answers, when captures are configured.
    pub recorder: Option<Arc<Recorder>>,
}

/// One milter connection.
pub struct Session {
    /// Milter-layer bookkeeping: stages negotiated without replies (bits
    /// interpreted by `milter`).
    pub noreply: u32,
    /// An internal error hit the current message: its verdict is tempfail.
    pub poisoned: bool,
    pub rt: Arc<Runtime>,
    pub conn: Connection,
    pub msg: Option<Message>,
    /// Keeps the connection counted as open.
    _open: crate::stats::Connected,
}

/// The trace's last lines: each result with its reason, and what decided.
fn explain_results(ev: &Evidence, v: &Verdict) {
    let why = |r: &Option<String>| r.as_deref().map(|r| format!(" ({r})")).unwrap_or_default();
    if let Some(i) = &ev.iprev {
        crate::explain!("result iprev={}{}", i.result, why(&i.reason));
    }
    for (what, s) in [("spf", &ev.spf_mailfrom), ("spf-helo", &ev.spf_helo)] {
        if let Some(s) = s {
            crate::explain!(
                "result {what}={} for {}{}",
                s.result,
                s.domain,
                why(&s.reason)
            );
        }
    }
    for d in &ev.dkim {
        crate::explain!(
            "result dkim={} d={} s={}{}",
            d.result,
            d.domain,
            d.selector,
            why(&d.reason)
        );
    }
    for d in &ev.dkim2 {
        crate::explain!(
            "result dkim2={} d={} i={}{}",
            d.result,
            d.domain,
            d.instance,
            why(&d.reason)
        );
    }
    let a = &ev.arc;
    crate::explain!("result arc={}{}", a.result, why(&a.reason));
    for h in a.hops.iter().rev() {
        let recorded: Vec<String> = h
            .results
            .iter()
            .map(|r| match &r.header_from {
                Some(f) => format!("{}={} header.from={f}", r.method, r.result),
                None => format!("{}={}", r.method, r.result),
            })
            .collect();
        crate::explain!(
            "ARC set i={} sealer={} authserv-id={} recorded: {}",
            h.instance,
            h.sealer,
            h.authserv_id.as_deref().unwrap_or("-"),
            recorded.join("; ")
        );
    }
    match &v.arc {
        Some(policy::ArcJudgement::Override { sealer, instance }) => crate::explain!(
            "ARC trust: sealer {sealer} (i={instance}) is trusted and recorded dmarc=pass: the DMARC failure is overridden (trusted_forwarder)"
        ),
        Some(policy::ArcJudgement::Refused(why)) => {
            crate::explain!("ARC trust: no override: {why}")
        }
        Some(policy::ArcJudgement::Temporary { sealer }) => crate::explain!(
            "ARC trust: keys of trusted sealer {sealer} not fetched: tempfail like a DMARC temperror"
        ),
        None => {}
    }
    let m = &ev.dmarc;
    crate::explain!(
        "result dmarc={} header.from={} policy={} effective={}{}",
        m.result,
        m.from_domain.as_deref().unwrap_or("-"),
        m.published.map(|p| p.as_str()).unwrap_or("absent"),
        m.effective,
        why(&m.reason)
    );
    crate::explain!("verdict {}: {}", v.action, v.reason);
    if let Some((a, w)) = &v.would {
        crate::explain!("not enforced: would be {a} ({w})");
    }
}

/// The runtime's checker, noting its DNS answers in `recorder` when there is one.
fn checker_for(rt: &Runtime, recorder: Option<&Arc<Recorder>>) -> Checker {
    match recorder {
        Some(r) => rt.checker.recording(r.clone()),
        None => rt.checker.clone(),
    }
}

fn header_is(name: &str, wanted: &str) -> bool {
    name.eq_ignore_ascii_case(wanted)
}

impl Session {
    /// A session using the runtime snapshot taken at negotiation.
    pub fn new(rt: Arc<Runtime>, leading_space: bool) -> Self {
        Self {
            noreply: 0,
            poisoned: false,
            _open: crate::stats::Connected::new(rt.stats.clone()),
            rt,
            conn: Connection {
                ip: None,
                client_name: String::new(),
                helo: None,
                iprev: None,
                trusted_network: false,
                leading_space,
                can_quarantine: true,
                connected_at: None,
                recorder: None,
            },
            msg: None,
        }
    }

    /// CONNECT: start iprev at once.
    pub fn connect(&mut self, client_name: &str, client: Client) {
        let ip = client.ip();
        self.conn.client_name = client_name.to_string();
        self.conn.ip = ip;
        self.conn.iprev = None;
        self.conn.connected_at = Some(std::time::Instant::now());
        let policy = &self.rt.config.policy;
        self.conn.trusted_network = match client {
            Client::Inet(ip) => policy.is_trusted(ip),
            // A local submission over a unix socket (sendmail -bs): trusted
            // only as `policy.trust_local` says.
            Client::Local => policy.trust_local,
            // An unknown family (Sendmail's local submissions) is trusted
            // only when `policy.trust_unknown_family` says so.
            Client::Unknown => policy.trust_unknown_family,
        };
        self.conn.recorder = self.rt.capture.as_ref().map(|_| Arc::new(Recorder::new()));
        if let Some(ip) = ip {
            let checker = checker_for(&self.rt, self.conn.recorder.as_ref());
            let span = tracing::debug_span!("connection", client = %ip);
            self.conn.iprev =
                Some(span.in_scope(|| Pending::spawn(async move { checker.iprev(ip).await })));
        }
    }

    /// HELO/EHLO: a repeated HELO (after STARTTLS) replaces the earlier one.
    pub fn helo(&mut self, helo: &str) {
        self.conn.helo = Some(helo.trim().to_string());
    }

    /// MAIL FROM: reset the message and start SPF.
    pub async fn mail(&mut self, reverse_path: &str, info: MailInfo) -> Outcome {
        let MailInfo {
            queue_id,
            auth_user: authenticated,
            auth_type,
            tls,
        } = info;
        let path = reverse_path
            .trim()
            .trim_start_matches('<')
            .trim_end_matches('>')
            .trim();
        // RFC 5321 §4.1.2: Path = "<" [ A-d-l ":" ] Mailbox ">"; the source
        // route is obsolete and ignored (§C), the mailbox is the identity.
        let path = match path.split_once(':') {
            Some((route, mailbox)) if route.starts_with('@') => mailbox,
            _ => path,
        };
        let mail_from = path.to_string();
        let mut msg = Message::new(
            mail_from.clone(),
            queue_id,
            authenticated.filter(|a| !a.is_empty()),
        );
        msg.auth_type = auth_type.filter(|a| !a.is_empty());
        msg.tls = tls;
        msg.in_flight = Some(crate::stats::InFlight::new(self.rt.stats.clone()));
        msg.since = self.conn.connected_at.take().unwrap_or(msg.started);
        msg.budget = Some((
            crate::stats::Buffered::new(self.rt.stats.clone()),
            self.rt.config.limits.max_buffered_bytes,
        ));
        self.poisoned = false;
        msg.recorder = self.rt.capture.as_ref().map(|_| Arc::new(Recorder::new()));
        // Postfix knows the queue id at MAIL FROM only with
        // smtpd_delay_open_until_valid_rcpt = no: else it is recorded at
        // end of message, for the trace's last lines.
        msg.span = tracing::debug_span!(
            "message",
            queue_id = msg.queue_id.as_deref(),
            client = %self.conn.ip.map(|i| i.to_string()).unwrap_or_else(|| "local".into()),
            mail_from = %msg.mail_from,
        );
        crate::explain!(parent: &msg.span, "MAIL FROM <{}> from {}, HELO {:?}", msg.mail_from, self.conn.client_name, self.conn.helo.as_deref().unwrap_or(""));
        if let Some(ip) = self.conn.ip {
            let checker = checker_for(&self.rt, msg.recorder.as_ref());
            let helo = self.conn.helo.clone().unwrap_or_default();
            msg.spf = Some(msg.span.in_scope(|| {
                Pending::spawn(async move { checker.spf(ip, &helo, &mail_from).await })
            }));
        }
        let policy = &self.rt.config.policy;
        let mut outcome = Outcome::Continue;
        if policy.spf_reject_at_mail {
            if let Some(spf) = msg.spf.as_mut() {
                if let Some((mf, helo)) = spf.get().await {
                    let trust = self.trust(&msg);
                    if let Some(v) = policy::decide_at_mail_for(&mf, helo.as_ref(), &trust, policy)
                    {
                        let reply = v.reply_or_default().expect("reject or tempfail");
                        info!(
                            queue_id = msg.queue_id.as_deref().unwrap_or("-"),
                            client = %self.conn.ip.map(|i| i.to_string()).unwrap_or_default(),
                            mail_from = msg.mail_from.as_str(),
                            spf = %mf.result,
                            verdict = %v.action,
                            reason = v.reason.as_str(),
                            "verdict at MAIL FROM"
                        );
                        self.rt.stats.record(v.action, false);
                        outcome = if v.action == Action::Reject {
                            Outcome::Reject(reply)
                        } else {
                            Outcome::Tempfail(reply)
                        };
                    }
                }
            }
        }
        self.msg = Some(msg);
        outcome
    }

    /// RCPT TO: counted for the log, its policy noted (every recipient),
    /// the first ones kept for captures.
    pub fn rcpt(&mut self, recipient: &str) {
        if let Some(m) = self.msg.as_mut() {
            m.rcpt_count += 1;
            let r = recipient
                .trim()
                .trim_start_matches('<')
                .trim_end_matches('>');
            self.rt.config.policy.add_recipient(&mut m.policies, r);
            if m.rcpts.len() < 100 {
                m.rcpts.push(r.to_string());
            }
        }
    }

    /// One header field. Notes forged results, From and DKIM-Signature values,
    /// and appends the field to the DKIM buffer.
    pub fn header(&mut self, name: &str, value: &[u8]) {
        // Test builds only: a way to prove that a panic stays in its session.
        #[cfg(feature = "fault-injection")]
        if name.eq_ignore_ascii_case("X-Authmilter-Test-Panic") {
            panic!("fault injection: X-Authmilter-Test-Panic");
        }
        let limit = self.rt.config.limits.max_message_size;
        let cfg = &self.rt.config;
        let Some(msg) = self.msg.as_mut() else {
            return;
        };
        let count = msg
            .header_counts
            .entry(name.to_ascii_lowercase())
            .or_insert(0);
        *count += 1;
        let index = *count;
        let text = String::from_utf8_lossy(value);
        let ours = |id: Option<String>| {
            id.is_some_and(|id| {
                sanitize::is_ours(&id, &cfg.milter.authserv_id, &cfg.milter.authserv_aliases)
            })
        };
        let forged = if header_is(name, "Authentication-Results") {
            ours(sanitize::authserv_id(&text))
        } else if header_is(name, "Received-SPF") {
            ours(sanitize::received_spf_receiver(&text))
        } else if crate::actions::bimi::is_receiver_field(name) {
            // Only the receiving MTA writes these, after its own validation:
            // every incoming one is removed, with BIMI on or off (draft §6.6,
            // §8.8: sites that do not do BIMI remove them too).
            true
        } else {
            header_is(name, WOULD_HEADER) || header_is(name, &cfg.policy.quarantine_header)
        };
        if forged {
            msg.forged.push((name.to_string(), index));
        }
        if header_is(name, "From") {
            msg.from_values.push(value.to_vec());
        } else if header_is(name, "DKIM-Signature") {
            msg.dkim_values.push(value.to_vec());
        } else if arc::is_arc_header(name) {
            if msg.arc_fields.len() < MAX_ARC_FIELDS {
                msg.arc_fields
                    .push((name.to_string(), crlf(value).trim_ascii_start().to_vec()));
            }
        } else if header_is(name, "BIMI-Selector") {
            if cfg.bimi.is_some() && msg.bimi_selectors.len() < MAX_BIMI_SELECTORS {
                msg.bimi_selectors.push(text.into_owned());
            }
        } else if header_is(name, "DKIM2-Signature") && msg.dkim2_values.len() < MAX_DKIM2_FIELDS {
            msg.dkim2_values
                .push(crlf(value).trim_ascii_start().to_vec());
        }
        let mut line = Vec::with_capacity(name.len() + value.len() + 4);
        line.extend_from_slice(name.as_bytes());
        line.push(b':');
        if !self.conn.leading_space {
            line.push(b' ');
        }
        line.extend_from_slice(&crlf(value));
        line.extend_from_slice(b"\r\n");
        msg.append(&line, limit);
    }

    /// End of headers: start DKIM key, DMARC policy and alignment lookups.
    pub fn eoh(&mut self) {
        let limit = self.rt.config.limits.max_message_size;
        let Some(msg) = self.msg.as_mut() else {
            return;
        };
        msg.append(b"\r\n", limit);
        self.decide_capture();
        self.start_prefetch();
    }

    /// Whether this message is captured, once its From domains are known.
    fn decide_capture(&mut self) {
        let (Some(capturer), Some(msg)) = (self.rt.capture.as_ref(), self.msg.as_mut()) else {
            return;
        };
        let mut domains = msg.from_identity().domains();
        domains.extend(msg.mail_from.rsplit_once('@').map(|(_, d)| d.to_string()));
        msg.capture = capturer.wants(self.conn.ip, &domains);
    }

    /// The domain SPF checks for this message: the MAIL FROM domain, or the
    /// HELO name for the null sender.
    fn spf_domain(&self, msg: &Message) -> Option<String> {
        let d = match msg.mail_from.rsplit_once('@') {
            Some((_, d)) => d.to_string(),
            None if msg.mail_from.is_empty() => self.conn.helo.clone()?,
            None => return None,
        };
        Some(d.trim_end_matches('.').to_ascii_lowercase()).filter(|d| !d.is_empty())
    }

    fn start_prefetch(&mut self) {
        let Some(msg) = self.msg.as_ref() else {
            return;
        };
        let spf_domain = self.spf_domain(msg);
        let Some(msg) = self.msg.as_mut() else {
            return;
        };
        let identity = msg.from_identity();
        let checker = checker_for(&self.rt, msg.recorder.as_ref());
        let dkim_values = msg.dkim_values.clone();
        let arc_fields = msg.arc_fields.clone();
        let dkim2_values = msg.dkim2_values.clone();
        let lookups = msg.dmarc_lookups.clone();
        crate::explain!(parent: &msg.span, "end of headers: From {identity:?}, {} DKIM signature(s)", dkim_values.len());
        msg.keys = Some(msg.span.in_scope(|| {
            Pending::spawn(async move {
                checker
                    .prefetch(
                        dkim_values,
                        arc_fields,
                        dkim2_values,
                        identity,
                        lookups,
                        spf_domain,
                    )
                    .await
            })
        }));
    }

    /// A body chunk.
    pub fn body(&mut self, chunk: &[u8]) {
        let limit = self.rt.config.limits.max_message_size;
        if let Some(msg) = self.msg.as_mut() {
            msg.append(chunk, limit);
        }
    }

    /// ABORT: forget the message, keep the connection.
    pub fn abort(&mut self) {
        self.msg = None;
        self.poisoned = false;
    }

    fn trust(&self, msg: &Message) -> ClientTrust {
        ClientTrust {
            trusted_network: self.conn.trusted_network,
            authenticated: msg.authenticated.clone(),
        }
    }

    /// Gathers all evidence for the current message. Every wait is bounded
    /// by `limits.message_deadline`, counted from when that work could
    /// start: iprev from CONNECT, SPF from MAIL FROM, key, policy and
    /// alignment lookups from end of headers, DKIM verification and DMARC
    /// evaluation from end of message (a slow DATA phase takes nothing from
    /// them). A check still unanswered then is `temperror`.
    pub async fn evidence(&mut self) -> Option<Evidence> {
        let limit = self.rt.config.limits.message_deadline;
        let late = format!(
            "no answer within limits.message_deadline ({:.1}s)",
            limit.as_secs_f64()
        );
        self.msg.as_ref()?;
        let iprev = match (self.conn.iprev.as_mut(), self.conn.ip) {
            (Some(p), Some(ip)) => match p.get_within(limit).await {
                Ok(v) => v,
                Err(()) => Some(IprevEvidence {
                    result: AuthResult::TempError,
                    ip,
                    name: None,
                    reason: Some(late.clone()),
                    confirmed: Vec::new(),
                }),
            },
            _ => None,
        };
        if self.msg.as_ref()?.keys.is_none() {
            // No EOH seen (an MTA that skipped it): start the lookups now.
            self.msg.as_mut()?.append(b"\r\n", usize::MAX);
            self.start_prefetch();
        }
        let msg = self.msg.as_mut()?;
        let (spf_mailfrom, spf_helo) = match msg.spf.as_mut() {
            Some(p) => match p.get_within(limit).await {
                Ok(Some((mf, h))) => (Some(mf), h),
                Ok(None) => (None, None),
                Err(()) => (
                    Some(SpfEvidence {
                        result: AuthResult::TempError,
                        identity: SpfIdentity::MailFrom,
                        sender: msg.mail_from.clone(),
                        domain: msg
                            .mail_from
                            .rsplit_once('@')
                            .map(|(_, d)| d.to_string())
                            .unwrap_or_default(),
                        reason: Some(late.clone()),
                        mechanism: None,
                    }),
                    None,
                ),
            },
            None => (None, None),
        };
        let identity = msg.from_identity();
        let checker = &checker_for(&self.rt, msg.recorder.as_ref());
        let keys = match msg.keys.as_mut() {
            Some(p) => p.get_within(limit).await.ok().flatten(),
            None => None,
        };
        let author = identity.domains().first().cloned();
        if msg.capture {
            msg.captured_raw = Some(msg.raw.clone());
        }
        // From here on the work starts at end of message.
        let deadline = tokio::time::Instant::now() + limit;
        let unverified = |why: &str| Authentication {
            dkim: dkim::unverified(&msg.dkim_values, AuthResult::TempError, why),
            arc: if !msg.arc_fields.is_empty() {
                ArcEvidence::fail(why, true, Vec::new())
            } else {
                ArcEvidence::none()
            },
            dkim2: Vec::new(),
        };
        let auth = match keys {
            // The buffer was dropped at the size limit: report, do not verify.
            _ if msg.truncated || msg.over_budget => {
                let why = "message larger than limits.max_message_size, not verified";
                Authentication {
                    dkim: dkim::over_limit(&msg.dkim_values, why),
                    ..unverified(why)
                }
            }
            Some(keys) => {
                if self.rt.config.seal.is_some() {
                    msg.seal_input = Some((msg.raw.clone(), keys.clone()));
                }
                let r = &self.rt.config.reports;
                if r.enabled && r.failure.enabled {
                    msg.failure_copy = Some(crate::reports::failure::copy_of(
                        &msg.raw,
                        r.failure.include_body,
                    ));
                }
                let input = MessageInput {
                    raw: std::mem::take(&mut msg.raw),
                    dkim_values: msg.dkim_values.clone(),
                    keys,
                    author: author.clone(),
                    mail_from: msg.mail_from.clone(),
                    rcpts: msg.rcpts.clone(),
                };
                match timeout_at(deadline, checker.authenticate(input)).await {
                    Ok(a) => a,
                    Err(_) => unverified(&late),
                }
            }
            None => unverified(&late),
        };
        let Authentication { dkim, arc, dkim2 } = auth;
        // DKIM2 passes count for DMARC only when the operator says so.
        let mut dmarc_dkim = dkim.clone();
        if self.rt.config.dkim2.use_for_dmarc {
            dmarc_dkim.extend(
                dkim2
                    .iter()
                    .filter(|d| d.result == AuthResult::Pass)
                    .map(|d| DkimEvidence {
                        result: AuthResult::Pass,
                        domain: d.domain.clone(),
                        selector: String::new(),
                        identity: format!("@{}", d.domain),
                        algorithm: "dkim2".into(),
                        b_prefix: String::new(),
                        reason: None,
                        local_limit: false,
                    }),
            );
        }
        let dmarc = if spf_mailfrom.is_none() && self.conn.ip.is_some() {
            DmarcEvidence::without_policy(
                AuthResult::TempError,
                identity.domains().first().cloned(),
                Some("SPF check failed".into()),
            )
        } else {
            let input = DmarcInput {
                from: &identity,
                spf: spf_mailfrom.as_ref(),
                dkim: &dmarc_dkim,
            };
            match timeout_at(deadline, checker.dmarc(&msg.dmarc_lookups, &input)).await {
                Ok(d) => d,
                Err(_) => DmarcEvidence::without_policy(
                    AuthResult::TempError,
                    identity.domains().first().cloned(),
                    Some(late.clone()),
                ),
            }
        };
        let helo = self.conn.helo.clone().filter(|h| !h.is_empty());
        let ptr = iprev.as_ref().map(|i| ptr::check(i, helo.as_deref()));
        let smtp = SmtpFacts {
            client_ip: self.conn.ip,
            helo,
            auth: msg.authenticated.clone().map(|user| SmtpAuth {
                user,
                mechanism: msg.auth_type.clone(),
            }),
            tls: msg.tls.clone(),
        };
        Some(Evidence {
            iprev,
            spf_helo,
            spf_mailfrom,
            dkim,
            arc,
            dkim2,
            dmarc,
            ptr,
            smtp,
        })
    }

    /// END OF MESSAGE: evidence → verdict → plan. `None` without a message.
    pub async fn eom(&mut self, queue_id: Option<String>) -> Option<(Evidence, Plan)> {
        let eom_started = std::time::Instant::now();
        if let (Some(msg), Some(q)) = (self.msg.as_mut(), queue_id) {
            if msg.queue_id.is_none() {
                msg.span.record("queue_id", q.as_str());
                msg.queue_id = Some(q);
            }
        }
        use tracing::Instrument;
        let span = self.msg.as_ref()?.span.clone();
        let ev = self.evidence().instrument(span.clone()).await?;
        let msg = self.msg.as_ref()?;
        let cfg = &self.rt.config;
        let mut verdict: Verdict =
            policy::decide_for(&ev, &self.trust(msg), &cfg.policy, &msg.policies);
        if msg.over_budget {
            // Memory for in-flight messages ran out: try again later, the
            // message is not judged on a partial buffer.
            self.rt.stats.note_over_budget();
            warn!(
                queue_id = msg.queue_id.as_deref().unwrap_or("-"),
                limit = cfg.limits.max_buffered_bytes,
                "limits.max_buffered_bytes reached: message tempfailed"
            );
            verdict = Verdict::new(
                Action::Tempfail,
                Some(Reply::new(
                    451,
                    "4.3.1",
                    "Insufficient system resources, try again later",
                )),
                "limits.max_buffered_bytes reached".into(),
            );
        }
        if verdict.action == Action::Quarantine && !self.conn.can_quarantine {
            // Asking for an action the MTA did not offer would fail the
            // message on every try: mark it instead.
            verdict.action = Action::Tag;
            verdict.reason = format!("{} (MTA offers no quarantine: tagged)", verdict.reason);
        }
        span.in_scope(|| explain_results(&ev, &verdict));
        self.log(msg, &ev, &verdict);
        metrics::message(&ev, &verdict, msg.since, eom_started);
        self.rt
            .stats
            .record(verdict.action, verdict.would.is_some());
        let bimi = self.bimi(&ev, &verdict).instrument(span.clone()).await;
        let msg = self.msg.as_ref()?;
        let mut plan = actions::plan(
            &cfg.milter.authserv_id,
            &cfg.policy.quarantine_header,
            &msg.forged,
            &ev,
            verdict,
            &cfg.headers,
        );
        if let Some(b) = &bimi {
            actions::bimi::add(&mut plan, b);
        }
        self.seal(&ev, &mut plan).await;
        self.write_capture(&ev, &plan.verdict);
        self.report(&ev, &plan.verdict);
        Some((ev, plan))
    }

    /// BIMI for a message that will be delivered as it is and passed DMARC,
    /// when BIMI is on. The verdict is already decided; this waits at most
    /// `bimi.wait`, after which the message goes without BIMI headers and the
    /// fetch goes on in the background to fill the cache.
    async fn bimi(&self, ev: &Evidence, v: &Verdict) -> Option<BimiEvidence> {
        let bimi = self.rt.bimi.clone()?;
        let msg = self.msg.as_ref()?;
        if v.action != Action::Accept || ev.dmarc.result != AuthResult::Pass {
            return None;
        }
        let wait = bimi.config().wait;
        let lookups = msg.dmarc_lookups.clone();
        let single_author = msg.from_values.len() == 1
            && crate::checks::address::parse_address_list(&msg.from_values[0])
                .is_ok_and(|a| a.len() == 1);
        let input = BimiInput {
            dmarc: ev.dmarc.clone(),
            single_author,
            selector_fields: msg.bimi_selectors.clone(),
            dkim: ev.dkim.clone(),
            dkim_values: msg.dkim_values.clone(),
        };
        let started = crate::telemetry::metrics::timer();
        let task = tokio::spawn(async move { bimi.evaluate(&lookups, &input).await });
        let out = match tokio::time::timeout(wait, task).await {
            Ok(Ok(b)) => b,
            Ok(Err(e)) => {
                tracing::error!("BIMI task failed: {e}");
                return None;
            }
            Err(_) => BimiEvidence::not_ready(wait),
        };
        crate::telemetry::metrics::check("bimi", started);
        crate::telemetry::metrics::result("bimi", out.result.as_str());
        crate::explain!(
            "result bimi={}{}",
            out.result.as_str(),
            out.reason
                .as_deref()
                .map(|r| format!(" ({r})"))
                .unwrap_or_default()
        );
        Some(out)
    }

    /// Queues what the DMARC reports need from this message (never waits).
    fn report(&self, ev: &Evidence, v: &Verdict) {
        let (Some(rec), Some(msg)) = (self.rt.reports.as_ref(), self.msg.as_ref()) else {
            return;
        };
        // Our own users' mail (trusted networks, SMTP AUTH) is not mail
        // received from the domains' senders: not reported to them.
        let trust = self.trust(msg);
        if trust.trusted_network || trust.authenticated.is_some() {
            return;
        }
        let env = crate::reports::Envelope {
            client_ip: self.conn.ip,
            mail_from: &msg.mail_from,
        };
        let Some(row) = crate::reports::observe(ev, v, &env) else {
            return;
        };
        let cfg = &self.rt.config;
        if cfg.reports.failure.enabled {
            if let Some(job) = crate::reports::failure::job(
                ev,
                &row,
                &self.rt.checker.dns,
                &crate::actions::auth_results::build(&cfg.milter.authserv_id, ev, v, &cfg.headers),
                msg.failure_copy.as_deref().unwrap_or(&msg.raw),
                msg.queue_id.clone(),
                &msg.mail_from,
                cfg.reports.failure.include_body,
            ) {
                rec.failure(job);
            }
        }
        rec.record(row);
    }

    /// Adds our ARC set to a message that will be delivered, when sealing
    /// is configured. A message that cannot be sealed is delivered as it is.
    async fn seal(&mut self, ev: &Evidence, plan: &mut Plan) {
        let rt = self.rt.clone();
        let (Some(cfg), Some(msg)) = (rt.config.seal.as_ref(), self.msg.as_mut()) else {
            return;
        };
        let Some((raw, keys)) = msg.seal_input.take() else {
            return;
        };
        if matches!(plan.verdict.action, Action::Reject | Action::Tempfail) {
            return;
        }
        // A chain that fails here is not sealed: RFC 8617 §5.1.2 would add a
        // cv=fail set signing only itself, which mail-auth 0.13.3 cannot
        // make; an unsealed message asserts nothing about it. Nor is a 51st
        // set added (§4.2.1).
        if ev.arc.result == AuthResult::Fail || ev.arc.hops.len() >= arc::MAX_SETS as usize {
            tracing::debug!(
                queue_id = msg.queue_id.as_deref().unwrap_or("-"),
                "ARC seal not added: the chain does not validate here"
            );
            return;
        }
        let id = &rt.config.milter.authserv_id;
        let header = actions::auth_results::build(id, ev, &plan.verdict, &rt.config.headers);
        let results = header.find(';').map_or("", |i| &header[i..]);
        let checker = checker_for(&rt, msg.recorder.as_ref());
        match arc::seal::seal(&checker.dns, cfg, &raw, &keys, id, results).await {
            Ok(fields) => {
                plan.inserts.splice(0..0, fields);
            }
            Err(e) => warn!(
                queue_id = msg.queue_id.as_deref().unwrap_or("-"),
                "ARC seal not added: {e}"
            ),
        }
    }

    /// Writes the capture of this message, when it was chosen for one.
    fn write_capture(&mut self, ev: &Evidence, v: &Verdict) {
        let (Some(capturer), Some(msg)) = (self.rt.capture.as_ref(), self.msg.as_mut()) else {
            return;
        };
        let (Some(raw), Some(rec)) = (msg.captured_raw.take(), msg.recorder.as_ref()) else {
            return;
        };
        if let Some(conn) = &self.conn.recorder {
            rec.extend_from(conn);
        }
        let env = crate::capture::Envelope {
            client_ip: self.conn.ip,
            client_name: self.conn.client_name.clone(),
            helo: self.conn.helo.clone().unwrap_or_default(),
            mail_from: msg.mail_from.clone(),
            rcpt: msg.rcpts.clone(),
            auth: msg.authenticated.clone(),
            auth_type: msg.auth_type.clone(),
            tls: msg.tls.clone(),
            queue_id: msg.queue_id.clone(),
        };
        let cfg = &self.rt.config;
        let header =
            crate::actions::auth_results::build(&cfg.milter.authserv_id, ev, v, &cfg.headers);
        let summary = format!(
            "verdict: {} ({})\nreply: {}\nAuthentication-Results:{}\n",
            v.action,
            v.reason,
            v.reply_or_default()
                .map(|r| r.to_string())
                .unwrap_or_else(|| "250 (the MTA's own)".into()),
            header
        );
        capturer.write(
            raw,
            rec,
            crate::capture::Record {
                queue_id: msg.queue_id.clone(),
                envelope_args: env.as_check_args(),
                summary,
                config: cfg.to_toml(),
            },
        );
    }

    fn log(&self, msg: &Message, ev: &Evidence, v: &Verdict) {
        let dkim: Vec<String> = ev
            .dkim
            .iter()
            .map(|d| format!("{}:{}", d.domain, d.result))
            .collect();
        let would = v
            .would
            .as_ref()
            .map(|(a, r)| format!("{a} ({r})"))
            .unwrap_or_default();
        let dkim2: Vec<String> = ev
            .dkim2
            .iter()
            .map(|d| format!("{}:{}", d.domain, d.result))
            .collect();
        let tls = ev
            .smtp
            .tls
            .as_ref()
            .map(|t| {
                [
                    Some(t.version.as_str()),
                    t.cipher.as_deref(),
                    t.bits.as_deref(),
                ]
                .into_iter()
                .flatten()
                .collect::<Vec<_>>()
                .join(" ")
            })
            .unwrap_or_default();
        let own = &self.rt.config.policy.arc.own_ids;
        for hop in &ev.arc.hops {
            if hop
                .authserv_id
                .as_deref()
                .is_some_and(|id| own.iter().any(|o| o.eq_ignore_ascii_case(id)))
            {
                warn!(
                    queue_id = msg.queue_id.as_deref().unwrap_or("-"),
                    instance = hop.instance,
                    sealer = hop.sealer.as_str(),
                    "ARC set claims our authserv-id: forged, never trusted"
                );
            }
        }
        match &v.arc {
            Some(policy::ArcJudgement::Override { sealer, instance }) => info!(
                queue_id = msg.queue_id.as_deref().unwrap_or("-"),
                sealer = sealer.as_str(),
                instance = *instance,
                header_from = ev.dmarc.from_domain.as_deref().unwrap_or(""),
                "DMARC failure overridden: trusted ARC sealer recorded dmarc=pass (trusted_forwarder)"
            ),
            Some(policy::ArcJudgement::Refused(why)) => info!(
                queue_id = msg.queue_id.as_deref().unwrap_or("-"),
                why = why.as_str(),
                "ARC chain does not override the DMARC failure"
            ),
            Some(policy::ArcJudgement::Temporary { sealer }) => warn!(
                queue_id = msg.queue_id.as_deref().unwrap_or("-"),
                sealer = sealer.as_str(),
                "keys of a trusted ARC sealer could not be fetched"
            ),
            None => {}
        }
        if !msg.forged.is_empty() {
            warn!(
                queue_id = msg.queue_id.as_deref().unwrap_or("-"),
                count = msg.forged.len(),
                "removing forged authentication headers"
            );
        }
        info!(
            queue_id = msg.queue_id.as_deref().unwrap_or("-"),
            client = %self.conn.ip.map(|i| i.to_string()).unwrap_or_else(|| "local".into()),
            // Strings from the client (and free text) are quoted and
            // escaped in the text format, so no value can fake a field.
            helo = self.conn.helo.as_deref().unwrap_or(""),
            tls = tls.as_str(),
            mail_from = msg.mail_from.as_str(),
            rcpt = msg.rcpt_count,
            header_from = ev.dmarc.from_domain.as_deref().unwrap_or(""),
            iprev = %ev.iprev.as_ref().map(|i| i.result.as_str()).unwrap_or("none"),
            x_ptr = %ev.ptr.as_ref().map(|p| p.result.as_str()).unwrap_or("none"),
            spf = %ev.spf_mailfrom.as_ref().map(|s| s.result.as_str()).unwrap_or("none"),
            spf_helo = %ev.spf_helo.as_ref().map(|s| s.result.as_str()).unwrap_or("none"),
            dkim = dkim.join(",").as_str(),
            arc = %ev.arc.result,
            arc_sealers = ev.arc.sealers().join(",").as_str(),
            dkim2 = dkim2.join(",").as_str(),
            dmarc = %ev.dmarc.result,
            dmarc_policy = %ev.dmarc.published.map(|p| p.as_str()).unwrap_or("absent"),
            verdict = %v.action,
            reason = v.reason.as_str(),
            would = would.as_str(),
            size = msg.total_size,
            elapsed_ms = msg.started.elapsed().as_secs_f64() * 1000.0,
            "message"
        );
    }
}
