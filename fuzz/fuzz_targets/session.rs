//! `Session` end to end, without sockets, in the order the milter callbacks
//! call it (src/milter/mod.rs): connect → helo → mail → rcpt → header* → eoh
//! → body chunks → eom, with an abort and a second message on the same
//! session. Two runtimes, chosen by the input: one whose DNS points at a
//! closed loopback port (timeout 0.05 s, one attempt, message deadline
//! 0.1 s: every lookup fails and no input waits long, but it runs at only
//! a few executions per second), and one whose DNS is an in-process server
//! on 127.0.0.1 (tests/common's) that answers at once: NXDOMAIN for most
//! names, SPF and DMARC records for `sender.example` and `bank.example`
//! (so verdicts other than temperror's are reached).
//!
//! Input: `flags` `chunk` (bit 7: the closed-port runtime) then, split at the first two NULs, the envelope
//! (lines: client IP, client name, HELO, MAIL FROM, auth, then one line per
//! RCPT), the header block (`Name: value` lines, a line starting with WSP
//! continues the previous value, as the MTA hands it over with LF), and the
//! body (the rest, NULs included).
//!
//! What must always hold: end of message gives a plan; the
//! Authentication-Results value has no CR, no NUL, no other control
//! character, and every LF is the `\n\t` folding; the other inserted fields
//! are one line; deletions name fields the message has; the same message
//! sent twice on one session deletes the same fields.
#![no_main]
#[path = "../../tests/common/dns_server.rs"]
mod dns_server;
use authmilter::{
    actions::Plan,
    checks::evidence::TlsInfo,
    config::Config,
    policy::Action,
    session::{Client, MailInfo, Session},
    stats::Stats,
    Runtime,
};
use dns_server::{fqdn, TestDns, Zones};
use hickory_proto::rr::{rdata::TXT, RData, Record};
use libfuzzer_sys::fuzz_target;
use std::{
    net::{IpAddr, Ipv4Addr, UdpSocket},
    sync::{Arc, OnceLock},
};

struct World {
    tokio: tokio::runtime::Runtime,
    /// DNS at a closed port.
    closed: Arc<Runtime>,
    /// DNS at the in-process server.
    served: Arc<Runtime>,
    _server: TestDns,
}

/// A loopback port nothing listens on (bound, then released).
fn closed_port() -> u16 {
    let s = UdpSocket::bind("127.0.0.1:0").expect("bind");
    s.local_addr().expect("addr").port()
}

fn txt(name: &str, value: &str) -> Record {
    Record::from_rdata(fqdn(name), 300, RData::TXT(TXT::new(vec![value.into()])))
}

fn runtime(tokio: &tokio::runtime::Runtime, dns: &str) -> Arc<Runtime> {
    let text = format!(
        "[milter]\nauthserv_id = \"mx.fuzz.example\"\n\
         [dns]\nnameservers = [\"{dns}\"]\ntimeout = 0.05\nattempts = 1\n\
         [limits]\nmessage_deadline = 0.1\nmax_message_size = 16384\n\
         [policy]\ntrusted_networks = []\n\
         [spf]\nreceived_spf_header = true\n\
         [results]\nauth = true\nx_ptr = true\nx_tls = true\n"
    );
    let config = Config::parse(&text, "fuzz.toml").expect("config");
    let _g = tokio.enter();
    Arc::new(Runtime::new(config, Arc::new(Stats::default())).expect("runtime"))
}

fn world() -> &'static World {
    static W: OnceLock<World> = OnceLock::new();
    W.get_or_init(|| {
        let tokio = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("tokio");
        let mut zones = Zones::open();
        zones.add(txt("sender.example", "v=spf1 ip4:192.0.2.10 -all"));
        zones.add(txt("_dmarc.sender.example", "v=DMARC1; p=reject"));
        zones.add(txt("bank.example", "v=spf1 -all"));
        zones.add(txt(
            "_dmarc.bank.example",
            "v=DMARC1; p=quarantine; sp=reject; rua=mailto:d@bank.example",
        ));
        let server = tokio.block_on(TestDns::start(zones));
        let closed = runtime(&tokio, &format!("127.0.0.1:{}", closed_port()));
        let served = runtime(&tokio, &server.addr.to_string());
        World {
            tokio,
            closed,
            served,
            _server: server,
        }
    })
}

struct Input {
    client: Client,
    client_name: String,
    helo: Option<String>,
    mail_from: String,
    auth: Option<String>,
    rcpts: usize,
    fields: Vec<(String, Vec<u8>)>,
    body: Vec<u8>,
    chunk: usize,
    eoh: bool,
    abort_first: bool,
    second: bool,
}

fn parse(data: &[u8]) -> Option<(Input, bool, bool, bool)> {
    let (&flags, rest) = data.split_first()?;
    let (&chunk, rest) = rest.split_first().unwrap_or((&0, &[]));
    let mut parts = rest.splitn(3, |b| *b == 0);
    let env = String::from_utf8_lossy(parts.next().unwrap_or_default()).into_owned();
    let head = parts.next().unwrap_or_default();
    let body = parts.next().unwrap_or_default().to_vec();
    let leading_space = flags & 4 != 0;
    let lines: Vec<&str> = env.split('\n').collect();
    let line = |i: usize| lines.get(i).copied().unwrap_or("");
    let ip: IpAddr = line(0)
        .trim()
        .parse()
        .unwrap_or(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)));
    let client = match flags & 3 {
        // What the milter layer does with an IPv4-mapped address.
        0 | 1 => Client::Inet(ip.to_canonical()),
        2 => Client::Local,
        _ => Client::Unknown,
    };
    let mut fields: Vec<(String, Vec<u8>)> = Vec::new();
    for l in head.split(|b| *b == b'\n') {
        if l.first().is_some_and(|b| *b == b' ' || *b == b'\t') {
            if let Some(last) = fields.last_mut() {
                last.1.push(b'\n');
                last.1.extend_from_slice(l);
            }
            continue;
        }
        let Some(colon) = l.iter().position(|b| *b == b':') else {
            continue;
        };
        let name = String::from_utf8_lossy(&l[..colon]).into_owned();
        let mut value = &l[colon + 1..];
        if !leading_space {
            // Without SMFIP_HDR_LEADSPC the MTA drops the space after the colon.
            value = value.strip_prefix(b" ").unwrap_or(value);
        }
        fields.push((name, value.to_vec()));
    }
    let input = Input {
        client,
        client_name: line(1).to_string(),
        helo: (flags & 0x80 == 0).then(|| line(2).to_string()),
        mail_from: line(3).to_string(),
        auth: Some(line(4).to_string()).filter(|a| !a.is_empty()),
        rcpts: lines.len().saturating_sub(5).clamp(1, 50),
        fields,
        body,
        chunk: match chunk & 0x7f {
            0 => 65535,
            c => c as usize * 61,
        },
        eoh: flags & 8 == 0,
        abort_first: flags & 0x10 != 0,
        second: flags & 0x20 != 0,
    };
    Some((input, leading_space, flags & 0x40 != 0, chunk & 0x80 != 0))
}

/// One header field value: folded only by LF + TAB (the MTA makes CRLF),
/// no NUL, CR or other control character.
fn well_folded(name: &str, value: &str) {
    let b = value.as_bytes();
    for (i, &c) in b.iter().enumerate() {
        assert!(c != 0 && c != b'\r', "{name} has NUL/CR: {value:?}");
        if c == b'\n' {
            assert_eq!(
                b.get(i + 1),
                Some(&b'\t'),
                "{name} has a bare LF: {value:?}"
            );
        } else {
            assert!(
                c == b'\t' || !(c < 0x20 || c == 0x7f),
                "{name} control: {value:?}"
            );
        }
    }
}

fn check_plan(plan: &Plan, fields: &[(String, Vec<u8>)]) {
    let (name, _) = plan
        .inserts
        .first()
        .expect("an Authentication-Results insert");
    assert_eq!(name, "Authentication-Results");
    for (name, value) in &plan.inserts {
        well_folded(name, value);
        // Only the fields Received-SPF writes fold; the rest are one line.
        if name != "Authentication-Results" && name != "Received-SPF" {
            assert!(!value.contains('\n'), "{name}: {value:?} is not one line");
        }
    }
    for (name, index) in &plan.deletions {
        let have = fields
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .count();
        assert!(
            *index >= 1 && *index as usize <= have,
            "deletes {name}[{index}] of {have}"
        );
    }
    assert!(matches!(
        plan.verdict.action,
        Action::Accept | Action::Tag | Action::Quarantine | Action::Tempfail | Action::Reject
    ));
}

async fn message(s: &mut Session, m: &Input, qid: &str) -> Option<Plan> {
    let outcome = s
        .mail(
            &format!("<{}>", m.mail_from),
            MailInfo {
                queue_id: Some(qid.to_string()),
                auth_user: m.auth.clone(),
                auth_type: m.auth.clone(),
                // The sender's bytes in the TLS macros too: the MTA's
                // values are copied into the header.
                tls: m.auth.as_ref().map(|a| TlsInfo {
                    version: a.clone(),
                    cipher: Some(m.client_name.clone()),
                    bits: m.helo.clone(),
                }),
            },
        )
        .await;
    if outcome != authmilter::session::Outcome::Continue {
        // The MTA ends the transaction: the next MAIL FROM resets it.
        return None;
    }
    for _ in 0..m.rcpts {
        s.rcpt("<bob@recipient.test>");
    }
    for (name, value) in &m.fields {
        s.header(name, value);
    }
    if m.eoh {
        s.eoh();
    }
    for chunk in m.body.chunks(m.chunk.clamp(1, 65535)) {
        s.body(chunk);
    }
    let (_ev, plan) = s
        .eom(Some(qid.to_string()))
        .await
        .expect("eom gives a plan");
    // What handle_eom does after applying the plan.
    s.msg = None;
    check_plan(&plan, &m.fields);
    Some(plan)
}

fuzz_target!(|data: &[u8]| {
    let Some((m, leading_space, can_quarantine, closed)) = parse(data) else {
        return;
    };
    let w = world();
    let rt = if closed { &w.closed } else { &w.served };
    w.tokio.block_on(async {
        let mut s = Session::new(rt.clone(), leading_space);
        s.conn.can_quarantine = can_quarantine;
        s.connect(&m.client_name, m.client);
        if let Some(h) = &m.helo {
            s.helo(h);
        }
        if m.abort_first {
            // A transaction aborted half-way: nothing of it may leak.
            let _ = s.mail("<aborted@abort.example>", MailInfo::default()).await;
            s.rcpt("<bob@recipient.test>");
            for (name, value) in m.fields.iter().take(3) {
                s.header(name, value);
            }
            s.header("Authentication-Results", b" mx.fuzz.example; dkim=pass");
            s.abort();
            assert!(s.eom(None).await.is_none(), "eom after abort");
        }
        let first = message(&mut s, &m, "Q1").await;
        if m.second {
            let second = message(&mut s, &m, "Q2").await;
            if let (Some(a), Some(b)) = (first, second) {
                assert_eq!(a.deletions, b.deletions, "state leaked between messages");
            }
        }
    });
});
