//! An authoritative DNS server for tests, on 127.0.0.1 (UDP and TCP, one port).
//!
//! It serves records loaded from BIND zone files or built in code, answers
//! NXDOMAIN / NODATA with the SOA, SERVFAIL for names outside every zone, and
//! can simulate faults: a per-name timeout (the query is dropped), or a global
//! fault mode (drop everything, SERVFAIL everything).
#![allow(dead_code)]

use hickory_proto::{
    op::{Edns, Message, MessageType, OpCode, ResponseCode},
    rr::{LowerName, Name, RData, Record, RecordType},
    serialize::txt::Parser,
};
use std::{
    collections::HashMap,
    net::SocketAddr,
    path::Path,
    str::FromStr,
    sync::{
        atomic::{AtomicU64, AtomicU8, Ordering},
        Arc, RwLock,
    },
};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, UdpSocket},
};

/// One entry at a name, in order.
#[derive(Clone, Debug)]
pub enum Entry {
    Rec(Box<Record>),
    /// Queries reaching this entry before a record of their type time out.
    Timeout,
    /// Every query for this name gets this error code (SERVFAIL, REFUSED…).
    Error(ResponseCode),
}

/// The data served.
#[derive(Clone, Debug, Default)]
pub struct Zones {
    names: HashMap<LowerName, Vec<Entry>>,
    /// Zone origins; `None` means every name is in zone.
    origins: Option<Vec<LowerName>>,
    soa: HashMap<LowerName, Record>,
}

/// Global behaviour switches.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Fault {
    None = 0,
    /// Drop every query (the server is down).
    Drop = 1,
    /// Answer SERVFAIL to everything.
    ServFail = 2,
}

impl Zones {
    /// Every name in zone, absent names NXDOMAIN (for generated suites).
    pub fn open() -> Self {
        Self::default()
    }

    /// Zones added with `add_zone_text`; names outside them get SERVFAIL.
    pub fn with_origins() -> Self {
        Zones {
            origins: Some(Vec::new()),
            ..Default::default()
        }
    }

    /// Loads every `*.zone` file in a directory.
    pub fn from_dir(dir: &Path) -> Self {
        let mut z = Zones {
            origins: Some(Vec::new()),
            ..Default::default()
        };
        let mut files: Vec<_> = std::fs::read_dir(dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "zone"))
            .collect();
        files.sort();
        for f in files {
            let text = std::fs::read_to_string(&f).unwrap();
            z.add_zone_text(&text, Some(&f));
        }
        z
    }

    /// Adds one zone in BIND master format.
    pub fn add_zone_text(&mut self, text: &str, path: Option<&Path>) {
        // hickory's zone parser reads `\DDD` escapes wrongly (`\064` as `4`):
        // protect them and restore the bytes in owner names afterwards.
        let text = protect_escapes(text);
        let (origin, sets) = Parser::new(text, path.map(Path::to_path_buf), None)
            .parse()
            .unwrap_or_else(|e| panic!("zone {:?}: {e}", path));
        let lo = LowerName::from(&origin);
        if let Some(o) = self.origins.as_mut() {
            o.push(lo.clone());
        }
        for (_, set) in sets {
            for r in set.records_without_rrsigs() {
                let mut r = r.clone();
                r.name = restore_escapes(&r.name);
                if r.record_type() == RecordType::SOA {
                    self.soa.insert(lo.clone(), r.clone());
                }
                self.add(r);
            }
        }
    }

    pub fn add(&mut self, r: Record) {
        self.names
            .entry(LowerName::from(&r.name))
            .or_default()
            .push(Entry::Rec(Box::new(r)));
    }

    pub fn add_timeout(&mut self, name: &Name) {
        self.names
            .entry(LowerName::from(name))
            .or_default()
            .push(Entry::Timeout);
    }

    /// Makes every query for `name` time out, whatever records it has.
    pub fn timeout_all(&mut self, name: &Name) {
        self.names
            .entry(LowerName::from(name))
            .or_default()
            .insert(0, Entry::Timeout);
    }

    /// Makes every query for `name` fail with `code`.
    pub fn add_error(&mut self, name: &Name, code: ResponseCode) {
        self.names
            .entry(LowerName::from(name))
            .or_default()
            .insert(0, Entry::Error(code));
    }

    /// Ensures a name exists (possibly with no records).
    pub fn touch(&mut self, name: &Name) {
        self.names.entry(LowerName::from(name)).or_default();
    }

    fn exists(&self, name: &LowerName) -> bool {
        if self.names.contains_key(name) {
            return true;
        }
        let suffix = format!(".{name}");
        self.names.keys().any(|k| k.to_string().ends_with(&suffix))
    }

    fn zone_of(&self, name: &LowerName) -> Option<Option<LowerName>> {
        match &self.origins {
            None => Some(None),
            Some(o) => o
                .iter()
                .filter(|z| z.zone_of(name))
                .max_by_key(|z| z.num_labels())
                .map(|z| Some(z.clone())),
        }
    }

    /// The answer: Ok((rcode, answers, authority)) or Err(()) for a timeout.
    fn answer(
        &self,
        qname: &LowerName,
        qtype: RecordType,
    ) -> Result<(ResponseCode, Vec<Record>, Vec<Record>), ()> {
        let Some(zone) = self.zone_of(qname) else {
            return Ok((ResponseCode::ServFail, vec![], vec![]));
        };
        let soa: Vec<Record> = match zone {
            Some(z) => self.soa.get(&z).cloned().into_iter().collect(),
            // Generated data: a root SOA with a zero negative TTL.
            None => vec![Record::from_rdata(
                Name::root(),
                0,
                RData::SOA(hickory_proto::rr::rdata::SOA::new(
                    fqdn("ns.test"),
                    fqdn("hostmaster.test"),
                    1,
                    3600,
                    600,
                    86400,
                    0,
                )),
            )],
        };
        let mut answers = Vec::new();
        let mut name = qname.clone();
        for _ in 0..8 {
            let entries = self.names.get(&name).cloned().unwrap_or_default();
            let mut found = Vec::new();
            let mut cname = None;
            for e in &entries {
                match e {
                    Entry::Error(code) => return Ok((*code, vec![], vec![])),
                    Entry::Timeout if found.is_empty() => return Err(()),
                    Entry::Timeout => {}
                    Entry::Rec(r) if r.record_type() == qtype => found.push((**r).clone()),
                    Entry::Rec(r) if r.record_type() == RecordType::CNAME => {
                        cname = Some((**r).clone())
                    }
                    Entry::Rec(_) => {}
                }
            }
            if !found.is_empty() {
                answers.extend(found);
                return Ok((ResponseCode::NoError, answers, vec![]));
            }
            match cname {
                Some(c) if qtype != RecordType::CNAME => {
                    let RData::CNAME(target) = &c.data else {
                        unreachable!()
                    };
                    let next = LowerName::from(&target.0);
                    answers.push(c);
                    if answers
                        .iter()
                        .filter(|a| LowerName::from(&a.name) == next)
                        .count()
                        > 0
                    {
                        return Ok((ResponseCode::NoError, answers, vec![]));
                    }
                    name = next;
                }
                _ => {
                    // RFC 6604: the RCODE is that of the last name in a CNAME
                    // chain, so a dangling CNAME answers NXDOMAIN.
                    let rcode = if self.exists(&name) {
                        ResponseCode::NoError
                    } else {
                        ResponseCode::NXDomain
                    };
                    return Ok((rcode, answers, soa));
                }
            }
        }
        Ok((ResponseCode::NoError, answers, vec![]))
    }
}

const ESC: &str = "zzesc";

fn protect_escapes(text: &str) -> String {
    let b = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 3 < b.len() && b[i + 1..i + 4].iter().all(u8::is_ascii_digit) {
            out.push_str(&format!("{ESC}{}zz", &text[i + 1..i + 4]));
            i += 4;
        } else {
            out.push(b[i] as char);
            i += 1;
        }
    }
    out
}

fn restore_escapes(name: &Name) -> Name {
    let labels: Vec<Vec<u8>> = name
        .iter()
        .map(|l| {
            let s = String::from_utf8_lossy(l).into_owned();
            let mut out = Vec::new();
            let mut rest = s.as_str();
            while let Some(p) = rest.find(ESC) {
                out.extend_from_slice(&rest.as_bytes()[..p]);
                let code = &rest[p + ESC.len()..p + ESC.len() + 3];
                out.push(code.parse::<u8>().unwrap_or(b'?'));
                rest = &rest[p + ESC.len() + 5..];
            }
            out.extend_from_slice(rest.as_bytes());
            out
        })
        .collect();
    let mut n = Name::from_labels(labels.iter().map(Vec::as_slice)).unwrap();
    n.set_fqdn(true);
    n
}

pub fn fqdn(name: &str) -> Name {
    let mut n = Name::from_str(name).unwrap_or_else(|e| panic!("bad name {name}: {e}"));
    n.set_fqdn(true);
    n
}

/// A running server.
pub struct TestDns {
    pub addr: SocketAddr,
    zones: Arc<RwLock<Zones>>,
    fault: Arc<AtomicU8>,
    pub queries: Arc<AtomicU64>,
    /// Milliseconds every UDP answer is held back (0: none).
    delay_ms: Arc<AtomicU64>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for TestDns {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

fn respond(zones: &Zones, fault: Fault, req: &[u8], max_len: usize) -> Option<Vec<u8>> {
    let q = Message::from_vec(req).ok()?;
    if fault == Fault::Drop {
        return None;
    }
    let mut resp = Message::new(q.metadata.id, MessageType::Response, OpCode::Query);
    resp.metadata.recursion_desired = q.metadata.recursion_desired;
    resp.metadata.authoritative = true;
    if let Some(e) = &q.edns {
        let mut edns = Edns::new();
        edns.set_max_payload(e.max_payload().max(512));
        resp.set_edns(edns);
    }
    let Some(query) = q.queries.first().cloned() else {
        resp.metadata.response_code = ResponseCode::FormErr;
        return resp.to_vec().ok();
    };
    resp.add_query(query.clone());
    if fault == Fault::ServFail {
        resp.metadata.response_code = ResponseCode::ServFail;
        return resp.to_vec().ok();
    }
    let (rcode, answers, auth) = zones
        .answer(&LowerName::from(&query.name), query.query_type)
        .ok()?;
    resp.metadata.response_code = rcode;
    resp.insert_answers(answers);
    resp.insert_authorities(auth);
    let bytes = resp.to_vec().ok()?;
    if bytes.len() > max_len {
        let mut t = Message::new(q.metadata.id, MessageType::Response, OpCode::Query);
        t.metadata.truncation = true;
        t.metadata.authoritative = true;
        t.add_query(query);
        return t.to_vec().ok();
    }
    Some(bytes)
}

impl TestDns {
    /// Starts serving `zones` on 127.0.0.1 at a free port.
    pub async fn start(zones: Zones) -> Self {
        Self::start_at(zones, None).await
    }

    /// Starts serving `zones` at `at` (UDP and TCP), or on 127.0.0.1 at a
    /// free port when `at` is `None`.
    pub async fn start_at(zones: Zones, at: Option<SocketAddr>) -> Self {
        // One port for UDP and TCP: the TCP side of a free UDP port may be
        // taken (by another test's connection), so try a few.
        let (udp, tcp, addr) = 'bind: {
            if let Some(at) = at {
                let udp = UdpSocket::bind(at).await.expect("bind DNS (UDP)");
                let tcp = TcpListener::bind(at).await.expect("bind DNS (TCP)");
                break 'bind (udp, tcp, at);
            }
            for _ in 0..100 {
                let udp = UdpSocket::bind("127.0.0.1:0").await.unwrap();
                let addr = udp.local_addr().unwrap();
                if let Ok(tcp) = TcpListener::bind(addr).await {
                    break 'bind (udp, tcp, addr);
                }
            }
            panic!("no port free for both UDP and TCP");
        };
        let zones = Arc::new(RwLock::new(zones));
        let fault = Arc::new(AtomicU8::new(0));
        let queries = Arc::new(AtomicU64::new(0));
        let delay_ms = Arc::new(AtomicU64::new(0));
        let (z1, f1, q1, d1) = (
            zones.clone(),
            fault.clone(),
            queries.clone(),
            delay_ms.clone(),
        );
        let udp = Arc::new(udp);
        let t_udp = tokio::spawn(async move {
            let mut buf = vec![0u8; 4096];
            loop {
                let Ok((n, peer)) = udp.recv_from(&mut buf).await else {
                    continue;
                };
                q1.fetch_add(1, Ordering::Relaxed);
                let fault = fault_of(&f1);
                let req = buf[..n].to_vec();
                let max = Message::from_vec(&req)
                    .ok()
                    .and_then(|m| m.edns.as_ref().map(|e| e.max_payload() as usize))
                    .unwrap_or(512)
                    .max(512);
                let out = respond(&z1.read().unwrap(), fault, &req, max);
                let delay = d1.load(Ordering::SeqCst);
                if let Some(out) = out {
                    if delay == 0 {
                        let _ = udp.send_to(&out, peer).await;
                    } else {
                        let udp = udp.clone();
                        tokio::spawn(async move {
                            tokio::time::sleep(std::time::Duration::from_millis(delay)).await;
                            let _ = udp.send_to(&out, peer).await;
                        });
                    }
                }
            }
        });
        let (z2, f2, q2) = (zones.clone(), fault.clone(), queries.clone());
        let t_tcp = tokio::spawn(async move {
            loop {
                let Ok((mut s, _)) = tcp.accept().await else {
                    continue;
                };
                let (z, f, q) = (z2.clone(), f2.clone(), q2.clone());
                tokio::spawn(async move {
                    loop {
                        let mut len = [0u8; 2];
                        if s.read_exact(&mut len).await.is_err() {
                            return;
                        }
                        let mut req = vec![0u8; u16::from_be_bytes(len) as usize];
                        if s.read_exact(&mut req).await.is_err() {
                            return;
                        }
                        q.fetch_add(1, Ordering::Relaxed);
                        let out = respond(&z.read().unwrap(), fault_of(&f), &req, 65535);
                        if let Some(out) = out {
                            let mut framed = (out.len() as u16).to_be_bytes().to_vec();
                            framed.extend_from_slice(&out);
                            if s.write_all(&framed).await.is_err() {
                                return;
                            }
                        }
                    }
                });
            }
        });
        Self {
            addr,
            zones,
            fault,
            queries,
            delay_ms,
            tasks: vec![t_udp, t_tcp],
        }
    }

    /// Holds every UDP answer back by `d` (a slow but working server).
    pub fn set_delay(&self, d: std::time::Duration) {
        self.delay_ms.store(d.as_millis() as u64, Ordering::SeqCst);
    }

    pub fn set_fault(&self, f: Fault) {
        self.fault.store(f as u8, Ordering::SeqCst);
    }

    /// Replaces the served data.
    pub fn set_zones(&self, z: Zones) {
        *self.zones.write().unwrap() = z;
    }
}

fn fault_of(f: &AtomicU8) -> Fault {
    match f.load(Ordering::SeqCst) {
        1 => Fault::Drop,
        2 => Fault::ServFail,
        _ => Fault::None,
    }
}
