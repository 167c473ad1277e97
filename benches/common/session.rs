//! One message through a `Session` without sockets, as the milter callbacks
//! drive it, and the runtime the benchmarks share.
#![allow(dead_code)]

use super::mix::Msg;
use authmilter::{config::Config, policy::Action, session::Session, stats::Stats, Runtime};
use std::{net::IpAddr, net::SocketAddr, sync::Arc};

/// The daemon's runtime against the benchmark's DNS server, nothing trusted.
pub fn runtime(tokio: &tokio::runtime::Runtime, dns: SocketAddr, name: &str) -> Arc<Runtime> {
    let config = Config::parse(
        &format!(
            "[milter]\nauthserv_id = \"mx.bench\"\n[dns]\nnameservers = [\"{dns}\"]\n[policy]\ntrusted_networks = []\n"
        ),
        name,
    )
    .unwrap();
    let _guard = tokio.enter();
    Arc::new(Runtime::new(config, Arc::new(Stats::default())).unwrap())
}

/// The same runtime recording DMARC report rows into a SQLite file, as the
/// daemon does by default (`[reports]`).
pub fn runtime_recording(
    tokio: &tokio::runtime::Runtime,
    dns: SocketAddr,
    db: &std::path::Path,
) -> Arc<Runtime> {
    let config = Config::parse(
        &format!(
            "[milter]\nauthserv_id = \"mx.bench\"\n[dns]\nnameservers = [\"{dns}\"]\n[policy]\ntrusted_networks = []\n[reports]\ndatabase = \"sqlite:{}\"\n",
            db.display()
        ),
        "recording.toml",
    )
    .unwrap();
    let _guard = tokio.enter();
    let recorder = authmilter::reports::Recorder::start(&config.reports);
    let mut rt = Runtime::new(config, Arc::new(Stats::default())).unwrap();
    rt.reports = Some(recorder);
    Arc::new(rt)
}

/// A message's header fields as the session takes them.
pub fn fields(m: &Msg) -> Vec<(String, Vec<u8>)> {
    m.fields
        .iter()
        .map(|(n, v)| (String::from_utf8(n.clone()).unwrap(), v.clone()))
        .collect()
}

/// One message through a fresh session (connect, HELO, MAIL, RCPT, headers,
/// body, end of message); returns the verdict.
pub async fn run(rt: &Arc<Runtime>, m: &Msg, fields: &[(String, Vec<u8>)], body: &[u8]) -> Action {
    let mut s = Session::new(rt.clone(), true);
    let ip = IpAddr::from(m.client);
    s.connect("mail.bench.example", authmilter::session::Client::Inet(ip));
    s.helo("mail.bench.example");
    let info = authmilter::session::MailInfo {
        queue_id: Some("Q1".into()),
        ..Default::default()
    };
    let _ = s.mail(&format!("<{}>", m.mail_from), info).await;
    s.rcpt("<bob@recipient.test>");
    for (name, value) in fields {
        s.header(name, value);
    }
    s.eoh();
    for chunk in body.chunks(65535) {
        s.body(chunk);
    }
    let (_, plan) = s.eom(Some("Q1".into())).await.expect("a message");
    plan.verdict.action
}
