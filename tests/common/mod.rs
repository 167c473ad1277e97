//! Shared test support: an in-process DNS server, the milter on a free port,
//! and a milter client that sends a message as Postfix would.
#![allow(dead_code)]

pub mod daemon;
pub mod dkim_sign;
pub mod dns_server;
pub mod postgres;
pub mod replay;
pub mod smtp_sink;

use authmilter::{config::Config, stats::Stats, Runtime, Shared};
use indymilter_test::{EomAction, EomActions, Status, TestConnection};
use std::{
    collections::HashMap,
    net::{IpAddr, SocketAddr},
    path::PathBuf,
    sync::Arc,
    time::Duration,
};
use tokio::{net::TcpListener, sync::oneshot, task::JoinHandle};

/// bank.test: SPF for 192.0.2.10 only, DMARC p=reject, TTL 0.
pub const BANK_ZONE: &str = r#"
$ORIGIN bank.test.
$TTL 0
@       IN SOA ns.bank.test. hostmaster.bank.test. 1 3600 600 86400 0
@       IN TXT "v=spf1 ip4:192.0.2.10 -all"
_dmarc  IN TXT "v=DMARC1; p=reject"
mail    IN A 192.0.2.10
"#;

/// PTR 192.0.2.10 → mail.bank.test (forward-confirmed by BANK_ZONE).
pub const REV_ZONE: &str = r#"
$ORIGIN 2.0.192.in-addr.arpa.
$TTL 0
@       IN SOA ns.bank.test. hostmaster.bank.test. 1 3600 600 86400 0
10      IN PTR mail.bank.test.
"#;

/// The `test.` zone itself, so tree walks end in NXDOMAIN, not SERVFAIL.
pub const TLD_ZONE: &str = r#"
$ORIGIN test.
$TTL 0
@       IN SOA ns.test. hostmaster.test. 1 3600 600 86400 0
"#;

/// The authserv-id used by all tests (the corpus's receiving side).
pub const AUTHSERV_ID: &str = "mx.recipient.test";

/// Configuration text for a test milter; `policy` lines go under `[policy]`.
/// DMARC report recording is off (its default database is a system path);
/// `tests/reports.rs` turns it on with a database of its own.
pub fn config_text(dns: SocketAddr, policy: &str) -> String {
    format!(
        "[milter]\nauthserv_id = \"{AUTHSERV_ID}\"\n\n[dns]\nnameservers = [\"{dns}\"]\ntimeout = 1.0\nattempts = 1\n\n[reports]\nenabled = false\n\n[policy]\n{policy}\n"
    )
}

/// A milter serving on 127.0.0.1 until dropped.
pub struct TestMilter {
    pub addr: SocketAddr,
    pub shared: Arc<Shared>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<std::io::Result<()>>>,
}

impl TestMilter {
    pub async fn start(config: Config) -> Self {
        Self::start_with(config, None).await
    }

    /// A milter recording DMARC report rows into `reports`.
    pub async fn start_with(
        config: Config,
        reports: Option<authmilter::reports::Recorder>,
    ) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let mut rt = Runtime::new(config, Arc::new(Stats::default())).unwrap();
        rt.reports = reports;
        let shared = Arc::new(Shared::new(rt));
        let (stop, rx) = oneshot::channel::<()>();
        let s = shared.clone();
        let task = tokio::spawn(async move {
            authmilter::run(authmilter::listener::NoDelay(listener), s, async {
                let _ = rx.await;
            })
            .await
        });
        Self {
            addr,
            shared,
            stop: Some(stop),
            task: Some(task),
        }
    }

    pub async fn with_policy(dns: SocketAddr, policy: &str) -> Self {
        Self::start(Config::parse(&config_text(dns, policy), "test").unwrap()).await
    }

    pub async fn stop(mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.task.take() {
            t.await.unwrap().unwrap();
        }
    }
}

/// An SMTP transaction to replay.
#[derive(Clone, Debug)]
pub struct Envelope {
    pub client_ip: IpAddr,
    pub client_name: String,
    pub helo: String,
    pub mail_from: String,
    pub rcpt: Vec<String>,
    pub macros: HashMap<String, String>,
    /// Body chunk size (the milter protocol's limit is 65,535).
    pub body_chunk: usize,
}

impl Envelope {
    pub fn new(ip: &str, helo: &str, mail_from: &str) -> Self {
        Self {
            client_ip: ip.parse().unwrap(),
            client_name: helo.to_string(),
            helo: helo.to_string(),
            mail_from: mail_from.to_string(),
            rcpt: vec!["bob@recipient.test".into()],
            macros: HashMap::new(),
            body_chunk: 65535,
        }
    }
}

/// What the milter answered at end of message.
#[derive(Debug)]
pub struct Outcome {
    pub status: Status,
    pub actions: EomActions,
}

impl Outcome {
    /// The Authentication-Results value authmilter inserted, unfolded.
    pub fn auth_results(&self) -> Option<String> {
        self.actions.actions.iter().find_map(|a| match a {
            EomAction::InsertHeader { name, value, .. }
                if name.to_str().unwrap() == "Authentication-Results" =>
            {
                Some(value.to_str().unwrap().replace("\n\t", " "))
            }
            _ => None,
        })
    }

    pub fn deleted(&self) -> Vec<(String, i32)> {
        self.actions
            .actions
            .iter()
            .filter_map(|a| match a {
                EomAction::DeleteHeader { name, index } => {
                    Some((name.to_str().unwrap().to_string(), *index))
                }
                _ => None,
            })
            .collect()
    }

    pub fn quarantined(&self) -> bool {
        self.actions
            .actions
            .iter()
            .any(|a| matches!(a, EomAction::Quarantine { .. }))
    }

    /// accept | reject | quarantine | tempfail
    pub fn verdict(&self) -> &'static str {
        match &self.status {
            Status::Reject { .. } => "reject",
            Status::Tempfail { .. } => "tempfail",
            _ if self.quarantined() => "quarantine",
            Status::Accept | Status::Continue => "accept",
            _ => "other",
        }
    }

    pub fn reply(&self) -> Option<String> {
        match &self.status {
            Status::Reject { message: Some(m) } | Status::Tempfail { message: Some(m) } => {
                Some(m.to_str().unwrap().to_string())
            }
            _ => None,
        }
    }
}

/// Splits a raw message into (name, value-with-leading-space) fields and body.
pub fn split_message(raw: &[u8]) -> (Vec<(String, Vec<u8>)>, Vec<u8>) {
    let (head, body) = match raw.windows(4).position(|w| w == b"\r\n\r\n") {
        Some(p) => (&raw[..p + 2], raw[p + 4..].to_vec()),
        None => (raw, Vec::new()),
    };
    let mut fields: Vec<(String, Vec<u8>)> = Vec::new();
    for line in head.split_inclusive(|b| *b == b'\n') {
        let line = line
            .strip_suffix(b"\r\n")
            .or_else(|| line.strip_suffix(b"\n"))
            .unwrap_or(line);
        if line.first().is_some_and(|b| *b == b' ' || *b == b'\t') {
            if let Some(last) = fields.last_mut() {
                last.1.extend_from_slice(b"\n");
                last.1.extend_from_slice(line);
            }
        } else if let Some(colon) = line.iter().position(|b| *b == b':') {
            fields.push((
                String::from_utf8_lossy(&line[..colon]).into_owned(),
                line[colon + 1..].to_vec(),
            ));
        }
    }
    (fields, body)
}

/// Opens and negotiates a milter connection that passes header values exactly
/// as given (with their leading space, as Postfix does).
pub async fn open(addr: SocketAddr) -> TestConnection {
    TestConnection::configure()
        .exact_leading_space(true)
        .read_timeout(Duration::from_secs(30))
        .open_tcp(addr)
        .await
        .expect("milter connection")
}

/// Sends one message through a fresh milter connection, as Postfix does.
pub async fn send(addr: SocketAddr, env: &Envelope, raw: &[u8]) -> Outcome {
    let mut conn = open(addr).await;
    let out = send_on(&mut conn, env, raw).await;
    conn.close().await.unwrap();
    out
}

/// Sends one message on an open connection (several messages per connection).
pub async fn send_on(conn: &mut TestConnection, env: &Envelope, raw: &[u8]) -> Outcome {
    let st = conn
        .connect(env.client_name.as_str(), SocketAddr::new(env.client_ip, 25))
        .await
        .unwrap();
    assert!(matches!(st, Status::Continue | Status::Noreply), "{st:?}");
    conn.helo(env.helo.as_str()).await.unwrap();
    send_message(conn, env, raw).await
}

/// Sends one message (MAIL to end of message) on an already greeted connection.
pub async fn send_message(conn: &mut TestConnection, env: &Envelope, raw: &[u8]) -> Outcome {
    use indymilter_test::MacroStage;
    let mut mail_macros = vec![("i".to_string(), "4XTEST".to_string())];
    for (k, v) in &env.macros {
        mail_macros.push((k.clone(), v.clone()));
    }
    conn.macros(MacroStage::Mail, mail_macros).await.unwrap();
    let st = conn.mail([format!("<{}>", env.mail_from)]).await.unwrap();
    if !matches!(st, Status::Continue | Status::Noreply) {
        return Outcome {
            status: st,
            actions: EomActions { actions: vec![] },
        };
    }
    for r in &env.rcpt {
        conn.rcpt([format!("<{r}>")]).await.unwrap();
    }
    let (fields, body) = split_message(raw);
    for (name, value) in fields {
        let v = std::ffi::CString::new(value).unwrap();
        conn.header(name.as_str(), v).await.unwrap();
    }
    conn.eoh().await.unwrap();
    for chunk in body.chunks(env.body_chunk.clamp(1, 65535)) {
        conn.body(chunk.to_vec()).await.unwrap();
    }
    let (actions, status) = conn.eom().await.unwrap();
    Outcome { status, actions }
}

/// Parses `method=result` pairs (with their properties) out of an A-R value.
pub fn ar_results(ar: &str) -> Vec<(String, String, String)> {
    ar.split(';')
        .skip(1)
        .filter_map(|part| {
            let part = part.trim();
            let (method, rest) = part.split_once('=')?;
            let result: String = rest
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric())
                .collect();
            Some((method.trim().to_string(), result, rest.to_string()))
        })
        .collect()
}

/// `../shared` next to the project, if present.
pub fn shared_dir() -> Option<PathBuf> {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared");
    let p = std::env::var_os("AUTHMILTER_SHARED")
        .map(PathBuf::from)
        .unwrap_or(p);
    p.is_dir().then_some(p)
}

/// Reports loudly that a suite was skipped because `../shared` is absent,
/// and fails when `AUTHMILTER_REQUIRE_SHARED` is set (as CI sets it).
pub fn skip_without_shared(suite: &str) {
    let msg = format!("SKIPPED {suite}: ../shared is absent (set AUTHMILTER_SHARED to its path)");
    eprintln!("{msg}");
    if std::env::var_os("AUTHMILTER_REQUIRE_SHARED").is_some() {
        panic!("{msg}, and AUTHMILTER_REQUIRE_SHARED is set");
    }
}

/// A text file of `tests/fixtures`, trimmed.
pub fn fixture_text(name: &str) -> String {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name);
    std::fs::read_to_string(p).unwrap().trim().to_string()
}

/// A DER private key of `tests/fixtures` as a PKCS#8 PEM file's text.
pub fn fixture_pem(name: &str) -> String {
    use base64::Engine;
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name);
    let b64 = base64::engine::general_purpose::STANDARD.encode(std::fs::read(p).unwrap());
    let mut out = String::from("-----BEGIN PRIVATE KEY-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(chunk).unwrap());
        out.push('\n');
    }
    out.push_str("-----END PRIVATE KEY-----\n");
    out
}
