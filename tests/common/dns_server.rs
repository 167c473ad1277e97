//! An authoritative DNS server for tests, on 127.0.0.1 (UDP and TCP, one port).
//!
//! It serves a [`ZoneSet`] (the project's zone model: BIND zone files or
//! records built in code; NXDOMAIN / NODATA with the SOA, SERVFAIL for names
//! outside every zone) and can simulate faults: a per-name timeout (the query is dropped), or a global
//! fault mode (drop everything, SERVFAIL everything).
#![allow(dead_code)]

use authmilter::dns::zones::ZoneSet;
use hickory_proto::{
    op::{Edns, Message, MessageType, OpCode, ResponseCode},
    rr::LowerName,
};
use std::{
    net::SocketAddr,
    path::Path,
    sync::{
        atomic::{AtomicU64, AtomicU8, Ordering},
        Arc, RwLock,
    },
};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, UdpSocket},
};

#[allow(unused_imports)]
pub use authmilter::dns::zones::{fqdn, Failure};

/// The data served: the project's zone model, with loaders that panic (tests).
#[derive(Clone, Debug, Default)]
pub struct Zones(pub ZoneSet);

impl std::ops::Deref for Zones {
    type Target = ZoneSet;
    fn deref(&self) -> &ZoneSet {
        &self.0
    }
}

impl std::ops::DerefMut for Zones {
    fn deref_mut(&mut self) -> &mut ZoneSet {
        &mut self.0
    }
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
        Self(ZoneSet::open())
    }

    /// Zones added with `add_zone_text`; names outside them get SERVFAIL.
    pub fn with_origins() -> Self {
        Self(ZoneSet::with_origins())
    }

    /// Loads every `*.zone` file in a directory.
    pub fn from_dir(dir: &Path) -> Self {
        let mut z = Self::with_origins();
        let mut files: Vec<_> = std::fs::read_dir(dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "zone"))
            .collect();
        files.sort();
        for f in files {
            z.0.load(&f).unwrap_or_else(|e| panic!("{e}"));
        }
        z
    }

    /// Adds one zone in BIND master format.
    pub fn add_zone_text(&mut self, text: &str, path: Option<&Path>) {
        self.0
            .add_zone_text(text, path)
            .unwrap_or_else(|e| panic!("{e}"));
    }
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
    let r = match zones.answer(&LowerName::from(&query.name), query.query_type) {
        Ok(r) => r,
        Err(Failure::Timeout) => return None,
        Err(Failure::Temporary(_)) => {
            resp.metadata.response_code = ResponseCode::ServFail;
            return resp.to_vec().ok();
        }
    };
    resp.metadata.response_code = r.rcode;
    resp.insert_answers(r.answers);
    resp.insert_authorities(r.authority);
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
