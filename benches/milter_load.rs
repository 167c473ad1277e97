//! authmilter-bench: a milter load generator.
//!
//! Starts an authoritative DNS server on 127.0.0.1 with the mix's zones,
//! starts the release daemon (`target/release/authmilter`) pointed at it, and
//! drives C concurrent milter connections with K messages each, the way
//! Postfix does (one command after another, waiting for replies unless the
//! milter negotiated them away). Prints messages/s, latency from MAIL to the
//! final reply (p50/p90/p99/max), daemon CPU per message and peak RSS, for a
//! cold and then a warm DNS cache, and the crypto floor of the mix.
//!
//!     cargo build --release && cargo bench --bench milter_load -- [-c 8] [-k 10] [--quickack]
//!
//! `--quickack` acknowledges at once (TCP_QUICKACK + TCP_NODELAY on the
//! client) to measure processing without Nagle/delayed-ACK stalls.

#[path = "../tests/common/dns_server.rs"]
mod dns_server;

use base64::Engine;
use dns_server::{fqdn, TestDns, Zones};
use hickory_proto::rr::{rdata::TXT, RData, Record};
use mail_auth::{
    common::crypto::{Ed25519Key, RsaKey, Sha256},
    common::headers::HeaderWriter,
    dkim::DkimSigner,
};
use rustls_pki_types::{PrivateKeyDer, PrivatePkcs1KeyDer};
use std::{
    os::fd::AsRawFd,
    process::{Command, Stdio},
    time::{Duration, Instant},
};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

struct Args {
    connections: usize,
    messages: usize,
    quickack: bool,
}

fn args() -> Args {
    let mut a = Args {
        connections: 8,
        messages: 10,
        quickack: false,
    };
    let v: Vec<String> = std::env::args().collect();
    let mut i = 1;
    while i < v.len() {
        match v[i].as_str() {
            "-c" | "--connections" => {
                a.connections = v[i + 1].parse().expect("-c N");
                i += 1;
            }
            "-k" | "--messages" => {
                a.messages = v[i + 1].parse().expect("-k N");
                i += 1;
            }
            "--quickack" => a.quickack = true,
            _ => {} // cargo bench passes --bench
        }
        i += 1;
    }
    a
}

fn openssl(args: &[&str], input: Option<&[u8]>) -> Vec<u8> {
    let mut c = Command::new("openssl")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("openssl");
    if let Some(i) = input {
        use std::io::Write;
        c.stdin.take().unwrap().write_all(i).unwrap();
    } else {
        drop(c.stdin.take());
    }
    let out = c.wait_with_output().unwrap();
    assert!(out.status.success(), "openssl {args:?}");
    out.stdout
}

struct Keys {
    /// PKCS#1 DER, for mail-auth's signer.
    rsa_pkcs1: Vec<u8>,
    rsa_pub_b64: String,
    ed_pkcs8: Vec<u8>,
    ed_pub_b64: String,
}

fn keys() -> Keys {
    let b64 = base64::engine::general_purpose::STANDARD;
    let rsa_pem = openssl(
        &[
            "genpkey",
            "-algorithm",
            "RSA",
            "-pkeyopt",
            "rsa_keygen_bits:2048",
        ],
        None,
    );
    let rsa_pub = openssl(&["pkey", "-pubout", "-outform", "DER"], Some(&rsa_pem));
    let ed_pem = openssl(&["genpkey", "-algorithm", "ed25519"], None);
    let ed_pkcs8 = openssl(&["pkey", "-outform", "DER"], Some(&ed_pem));
    let ed_pub = openssl(&["pkey", "-pubout", "-outform", "DER"], Some(&ed_pem));
    let rsa_pkcs1 = openssl(&["rsa", "-outform", "DER", "-traditional"], Some(&rsa_pem));
    Keys {
        rsa_pkcs1,
        rsa_pub_b64: b64.encode(&rsa_pub),
        ed_pkcs8,
        // RFC 8463: the raw 32-byte public key.
        ed_pub_b64: b64.encode(&ed_pub[ed_pub.len() - 32..]),
    }
}

fn txt(name: &str, value: &str) -> Record {
    let chunks: Vec<String> = value
        .as_bytes()
        .chunks(250)
        .map(|c| String::from_utf8(c.to_vec()).unwrap())
        .collect();
    Record::from_rdata(fqdn(name), 3600, RData::TXT(TXT::new(chunks)))
}

fn zones(k: &Keys) -> Zones {
    let mut z = Zones::with_origins();
    z.add_zone_text(
        "$ORIGIN bench.test.\n$TTL 3600\n@ IN SOA ns.bench.test. h.bench.test. 1 3600 600 86400 3600\n\
         @ IN TXT \"v=spf1 include:_spf.bench.test -all\"\n_spf IN TXT \"v=spf1 include:_out.bench.test -all\"\n\
         _out IN TXT \"v=spf1 ip4:192.0.2.10 -all\"\n_dmarc IN TXT \"v=DMARC1; p=reject\"\nmail IN A 192.0.2.10\n",
        None,
    );
    z.add_zone_text(
        "$ORIGIN 2.0.192.in-addr.arpa.\n$TTL 3600\n@ IN SOA ns.bench.test. h.bench.test. 1 3600 600 86400 3600\n10 IN PTR mail.bench.test.\n",
        None,
    );
    z.add_zone_text(
        "$ORIGIN test.\n$TTL 3600\n@ IN SOA ns.test. h.test. 1 3600 600 86400 3600\n",
        None,
    );
    z.add(txt(
        "rsa._domainkey.bench.test",
        &format!("v=DKIM1; k=rsa; p={}", k.rsa_pub_b64),
    ));
    z.add(txt(
        "ed._domainkey.bench.test",
        &format!("v=DKIM1; k=ed25519; p={}", k.ed_pub_b64),
    ));
    z
}

/// One message of the mix: (envelope sender, raw message, expected verdict).
struct Msg {
    mail_from: &'static str,
    client: [u8; 4],
    raw: Vec<u8>,
}

fn body(kib: usize) -> String {
    let line = "The quick brown fox jumps over the lazy dog, again and again and again.\r\n";
    line.repeat(kib * 1024 / line.len() + 1)
}

fn mix(k: &Keys) -> Vec<Msg> {
    let rsa = || {
        DkimSigner::from_key(
            RsaKey::<Sha256>::from_key_der(PrivateKeyDer::Pkcs1(PrivatePkcs1KeyDer::from(
                k.rsa_pkcs1.clone(),
            )))
            .unwrap(),
        )
        .domain("bench.test")
        .selector("rsa")
        .headers(["From", "To", "Subject", "Date", "Message-ID"])
    };
    let ed = || {
        DkimSigner::from_key(Ed25519Key::from_pkcs8_maybe_unchecked_der(&k.ed_pkcs8).unwrap())
            .domain("bench.test")
            .selector("ed")
            .headers(["From", "To", "Subject", "Date", "Message-ID"])
    };
    let mut out = Vec::new();
    for (i, (kib, signers)) in [(2, "r"), (10, "e"), (50, "re"), (100, ""), (5, "r")]
        .into_iter()
        .enumerate()
    {
        let msg = format!(
            "From: Bench <news@bench.test>\r\nTo: bob@recipient.test\r\nSubject: mix {i}\r\nDate: Mon, 02 Mar 2026 09:00:00 +0000\r\nMessage-ID: <{i}@bench.test>\r\n\r\n{}",
            body(kib)
        );
        let mut raw = Vec::new();
        for s in signers.chars() {
            let sig = if s == 'r' {
                rsa().sign(msg.as_bytes()).unwrap()
            } else {
                ed().sign(msg.as_bytes()).unwrap()
            };
            raw.extend_from_slice(sig.to_header().as_bytes());
        }
        raw.extend_from_slice(msg.as_bytes());
        let spoof = signers.is_empty();
        out.push(Msg {
            mail_from: if spoof {
                "x@evil.example"
            } else {
                "bounce@bench.test"
            },
            client: if spoof {
                [198, 51, 100, 7]
            } else {
                [192, 0, 2, 10]
            },
            raw,
        });
    }
    out
}

// ---------------------------------------------------------------- milter client

const NR_CONN: u32 = 0x1000;
const NR_HELO: u32 = 0x2000;
const NR_MAIL: u32 = 0x4000;
const NR_RCPT: u32 = 0x8000;
const NR_HDR: u32 = 0x80;
const NR_EOH: u32 = 0x40000;
const NR_BODY: u32 = 0x80000;

struct Client {
    s: TcpStream,
    opts: u32,
    quickack: bool,
}

fn packet(cmd: u8, data: &[u8]) -> Vec<u8> {
    let mut p = ((data.len() + 1) as u32).to_be_bytes().to_vec();
    p.push(cmd);
    p.extend_from_slice(data);
    p
}

impl Client {
    async fn open(addr: &str, quickack: bool) -> Client {
        let s = TcpStream::connect(addr).await.unwrap();
        if quickack {
            s.set_nodelay(true).unwrap();
        }
        let mut c = Client {
            s,
            opts: 0,
            quickack,
        };
        let mut d = 6u32.to_be_bytes().to_vec();
        d.extend_from_slice(&0x1ffu32.to_be_bytes());
        d.extend_from_slice(&0x1f_ffffu32.to_be_bytes());
        c.send(b'O', &d).await;
        let (_, data) = c.read().await;
        c.opts = u32::from_be_bytes(data[8..12].try_into().unwrap());
        c
    }

    fn ack(&self) {
        if self.quickack {
            let one: libc::c_int = 1;
            // SAFETY: a valid socket fd and a c_int option value.
            unsafe {
                libc::setsockopt(
                    self.s.as_raw_fd(),
                    libc::IPPROTO_TCP,
                    libc::TCP_QUICKACK,
                    &one as *const _ as *const libc::c_void,
                    std::mem::size_of::<libc::c_int>() as libc::socklen_t,
                );
            }
        }
    }

    async fn send(&mut self, cmd: u8, data: &[u8]) {
        self.s.write_all(&packet(cmd, data)).await.unwrap();
    }

    async fn read(&mut self) -> (u8, Vec<u8>) {
        let mut len = [0u8; 4];
        self.s.read_exact(&mut len).await.unwrap();
        let mut buf = vec![0u8; u32::from_be_bytes(len) as usize];
        self.s.read_exact(&mut buf).await.unwrap();
        self.ack();
        (buf[0], buf[1..].to_vec())
    }

    /// Sends a command and, unless negotiated away, reads its reply.
    async fn cmd(&mut self, cmd: u8, data: &[u8], nr: u32) {
        self.send(cmd, data).await;
        if self.opts & nr == 0 {
            let (r, _) = self.read().await;
            assert!(r == b'c' || r == b'a', "unexpected reply {}", r as char);
        }
    }

    /// One message; returns the final reply code.
    async fn message(&mut self, m: &Msg, qid: &str) -> u8 {
        let mut mac = b"M".to_vec();
        mac.extend_from_slice(format!("i\0{qid}\0").as_bytes());
        self.send(b'D', &mac).await;
        self.cmd(b'M', format!("<{}>\0", m.mail_from).as_bytes(), NR_MAIL)
            .await;
        self.cmd(b'R', b"<bob@recipient.test>\0", NR_RCPT).await;
        let split = m.raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
        let head = &m.raw[..split + 2];
        let body = &m.raw[split + 4..];
        let mut fields: Vec<Vec<u8>> = Vec::new();
        for line in head.split_inclusive(|b| *b == b'\n') {
            if line.starts_with(b" ") || line.starts_with(b"\t") {
                fields.last_mut().unwrap().extend_from_slice(line);
            } else {
                fields.push(line.to_vec());
            }
        }
        for f in fields {
            let f = f.strip_suffix(b"\r\n").unwrap_or(&f).to_vec();
            let colon = f.iter().position(|b| *b == b':').unwrap();
            let mut d = f[..colon].to_vec();
            d.push(0);
            d.extend_from_slice(&f[colon + 1..]);
            d.push(0);
            self.cmd(b'L', &d, NR_HDR).await;
        }
        self.cmd(b'N', b"", NR_EOH).await;
        for chunk in body.chunks(65535) {
            self.cmd(b'B', chunk, NR_BODY).await;
        }
        self.send(b'E', b"").await;
        loop {
            let (r, _) = self.read().await;
            match r {
                b'a' | b'c' | b'r' | b't' | b'y' | b'd' => return r,
                _ => {} // modifications: h, i, m, q, …
            }
        }
    }
}

fn pct(sorted: &[Duration], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1000.0
}

fn cpu_seconds(pid: u32) -> f64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = s.rsplit_once(')').map(|(_, a)| a).unwrap_or("");
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks = f.get(11).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0)
        + f.get(12).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    ticks / 100.0
}

fn peak_rss_mib(pid: u32) -> f64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    s.lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|k| k.parse::<f64>().ok())
        .map_or(0.0, |k| k / 1024.0)
}

async fn run(label: &str, addr: &str, a: &Args, msgs: &std::sync::Arc<Vec<Msg>>, pid: u32) {
    let cpu0 = cpu_seconds(pid);
    let t0 = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..a.connections {
        let msgs = msgs.clone();
        let (addr, k, q) = (addr.to_string(), a.messages, a.quickack);
        tasks.push(tokio::spawn(async move {
            let mut cl = Client::open(&addr, q).await;
            let mut lat = Vec::with_capacity(k);
            let m0 = &msgs[c % msgs.len()];
            let mut conn = b"mail.bench.test\0".to_vec();
            conn.push(b'4');
            conn.extend_from_slice(&25u16.to_be_bytes());
            conn.extend_from_slice(
                format!(
                    "{}.{}.{}.{}\0",
                    m0.client[0], m0.client[1], m0.client[2], m0.client[3]
                )
                .as_bytes(),
            );
            cl.cmd(b'C', &conn, NR_CONN).await;
            cl.cmd(b'H', b"mail.bench.test\0", NR_HELO).await;
            for i in 0..k {
                // One connection is one client address: keep its own kind of mail.
                let m = &msgs[(c + i * msgs.len()) % msgs.len()];
                let t = Instant::now();
                let r = cl.message(m, &format!("Q{c}x{i}")).await;
                lat.push(t.elapsed());
                let spoof = m.mail_from.starts_with('x');
                assert!(
                    (spoof && r == b'y') || (!spoof && r == b'a'),
                    "unexpected verdict {} for {}",
                    r as char,
                    m.mail_from
                );
            }
            lat
        }));
    }
    let mut lat = Vec::new();
    for t in tasks {
        lat.extend(t.await.unwrap());
    }
    let wall = t0.elapsed().as_secs_f64();
    let cpu = cpu_seconds(pid) - cpu0;
    lat.sort();
    let n = lat.len() as f64;
    println!(
        "{label:<6} C={:<4} K={:<4} {:>8.0} msg/s  p50 {:>6.2} ms  p90 {:>6.2} ms  p99 {:>6.2} ms  max {:>7.2} ms  daemon CPU {:>6.3} ms/msg  peak RSS {:>6.1} MiB",
        a.connections,
        a.messages,
        n / wall,
        pct(&lat, 0.5),
        pct(&lat, 0.9),
        pct(&lat, 0.99),
        lat.last().unwrap().as_secs_f64() * 1000.0,
        cpu / n * 1000.0,
        peak_rss_mib(pid)
    );
}

/// SHA-256 over each message and one signature verification per signature
/// (RSA-2048 or Ed25519, as signed): the work no implementation can avoid.
fn crypto_floor(msgs: &[Msg], k: &Keys) -> f64 {
    use ring::signature::{self, KeyPair};
    let rsa = signature::RsaKeyPair::from_der(&k.rsa_pkcs1).unwrap();
    let mut rsa_sig = vec![0u8; rsa.public().modulus_len()];
    rsa.sign(
        &signature::RSA_PKCS1_SHA256,
        &ring::rand::SystemRandom::new(),
        b"floor",
        &mut rsa_sig,
    )
    .unwrap();
    let rsa_pub = signature::UnparsedPublicKey::new(
        &signature::RSA_PKCS1_2048_8192_SHA256,
        rsa.public().as_ref().to_vec(),
    );
    let ed = signature::Ed25519KeyPair::from_pkcs8_maybe_unchecked(&k.ed_pkcs8).unwrap();
    let ed_sig = ed.sign(b"floor");
    let ed_pub =
        signature::UnparsedPublicKey::new(&signature::ED25519, ed.public_key().as_ref().to_vec());
    let count = |raw: &[u8], pat: &[u8]| raw.windows(pat.len()).filter(|w| *w == pat).count();
    let rounds = 100;
    let t = Instant::now();
    for _ in 0..rounds {
        for m in msgs {
            let _ = ring::digest::digest(&ring::digest::SHA256, &m.raw);
            for _ in 0..count(&m.raw, b"s=rsa;") {
                rsa_pub.verify(b"floor", &rsa_sig).unwrap();
            }
            for _ in 0..count(&m.raw, b"s=ed;") {
                ed_pub.verify(b"floor", ed_sig.as_ref()).unwrap();
            }
        }
    }
    t.elapsed().as_secs_f64() / (rounds * msgs.len()) as f64 * 1000.0
}

#[tokio::main]
async fn main() {
    let a = args();
    let bin = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/release/authmilter");
    let bin = std::env::var_os("AUTHMILTER_BIN")
        .map(Into::into)
        .unwrap_or(bin);
    assert!(
        bin.exists(),
        "build the daemon first: cargo build --release ({})",
        bin.display()
    );
    let k = keys();
    let dns = TestDns::start(zones(&k)).await;
    let msgs = std::sync::Arc::new(mix(&k));
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dir = std::env::temp_dir().join(format!("authmilter-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let conf = dir.join("bench.toml");
    std::fs::write(
        &conf,
        format!(
            "[milter]\nsocket = \"inet:127.0.0.1:{port}\"\nauthserv_id = \"mx.bench\"\nmax_connections = 5000\n\
             [dns]\nnameservers = [\"{}\"]\ntimeout = 2.0\n[policy]\ntrusted_networks = []\n[log]\nlevel = \"warn\"\n",
            dns.addr
        ),
    )
    .unwrap();
    let mut child = Command::new(&bin)
        .args(["-c", conf.to_str().unwrap()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let addr = format!("127.0.0.1:{port}");
    for _ in 0..100 {
        if TcpStream::connect(&addr).await.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    println!(
        "authmilter-bench: {} connections x {} messages, mix of {} messages (RSA-2048, Ed25519, both, 2-100 KiB, SPF include chain, a p=reject spoof), client {}",
        a.connections,
        a.messages,
        msgs.len(),
        if a.quickack { "acks at once (TCP_QUICKACK)" } else { "Postfix-like (delayed ACK)" }
    );
    run("cold", &addr, &a, &msgs, child.id()).await;
    run("warm", &addr, &a, &msgs, child.id()).await;
    println!(
        "crypto floor: {:.3} ms/msg (SHA-256 over each message + one verification per signature)",
        crypto_floor(&msgs, &k)
    );
    let _ = child.kill();
    let _ = child.wait();
    let _ = std::fs::remove_dir_all(&dir);
}
