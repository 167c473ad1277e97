//! authmilter-bench: a milter load generator.
//!
//! Starts an authoritative DNS server with the mix's zones (127.0.0.1 at a
//! free port, or `--dns IP:PORT`), starts the release daemon
//! (`target/release/authmilter`, or `$AUTHMILTER_BIN`) pointed at it, and
//! drives C concurrent milter connections with K messages each, R rounds,
//! the way Postfix does (one command after another, waiting for replies
//! unless the milter negotiated them away). Prints messages/s, latency from
//! MAIL to the final reply (p50/p90/p99/max), CPU per message and peak RSS of
//! the milter processes, for a cold and then a warm DNS cache, the verdict and
//! Authentication-Results of each message of the mix, and the crypto floor.
//!
//!     cargo build --release && cargo bench --bench milter_load -- [-c 8] [-k 10] [-r 10] [--quickack]
//!
//! - `--quickack`: acknowledge at once (TCP_QUICKACK + TCP_NODELAY on the
//!   client) to measure processing without Nagle/delayed-ACK stalls.
//! - `--peer NAME=ADDR[,ADDR...][@PID,...]`: run the same load against another
//!   milter, or a chain of milters (as Postfix chains `smtpd_milters`), whose
//!   processes' CPU and memory are read from /proc; prints a comparison table.
//! - `--idle N`: afterwards, hold N connections open and print the daemon's RSS.
//! - `--keys DIR`: keep the generated keys in DIR and reuse them (peers cache
//!   DKIM keys from DNS between runs).
//! - `--serve DIR`: serve the zones and write the mix to DIR (`mix-N.eml`)
//!   until killed, for runs through a real MTA (integration/bench).

#[path = "../tests/common/dns_server.rs"]
mod dns_server;
#[path = "common/mix.rs"]
mod mix;

use dns_server::TestDns;
use mix::{crypto_floor, keys_in, zones, Msg};
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
    /// Times the C×K load is repeated per run, on new connections.
    rounds: usize,
    /// Address for the DNS server (default: 127.0.0.1 at a free port).
    dns: Option<std::net::SocketAddr>,
    /// Other milters (or chains of milters) to run the same load against.
    peers: Vec<Target>,
    /// Idle connections to open after the load, to read the daemon's RSS.
    idle: usize,
    /// Keep the keys here and reuse them on later runs (peers cache keys).
    keys: Option<std::path::PathBuf>,
    /// Serve the DNS zones and write the mix's messages to this directory
    /// until killed, instead of running a load (for the Postfix runs).
    serve: Option<std::path::PathBuf>,
}

/// A milter under load: one address, or several chained as Postfix chains
/// `smtpd_milters`, and the processes whose CPU time and memory count.
#[derive(Clone)]
struct Target {
    label: String,
    addrs: Vec<String>,
    pids: Vec<u32>,
}

impl Target {
    /// `NAME=ADDR[,ADDR...][@PID,PID...]`
    fn parse(v: &str) -> Target {
        let (label, rest) = v
            .split_once('=')
            .expect("--peer NAME=ADDR[,ADDR...][@PID,...]");
        let (addrs, pids) = rest.split_once('@').unwrap_or((rest, ""));
        Target {
            label: label.to_string(),
            addrs: addrs.split(',').map(str::to_string).collect(),
            pids: pids
                .split(',')
                .filter(|p| !p.is_empty())
                .map(|p| p.parse().expect("--peer …@PID,PID"))
                .collect(),
        }
    }
}

fn args() -> Args {
    let mut a = Args {
        connections: 8,
        messages: 10,
        quickack: false,
        rounds: 10,
        dns: None,
        peers: Vec::new(),
        idle: 0,
        keys: None,
        serve: None,
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
            "-r" | "--rounds" => {
                a.rounds = v[i + 1].parse().expect("-r N");
                i += 1;
            }
            "--dns" => {
                a.dns = Some(v[i + 1].parse().expect("--dns IP:PORT"));
                i += 1;
            }
            "--peer" => {
                a.peers.push(Target::parse(&v[i + 1]));
                i += 1;
            }
            "--idle" => {
                a.idle = v[i + 1].parse().expect("--idle N");
                i += 1;
            }
            "--keys" => {
                a.keys = Some(v[i + 1].clone().into());
                i += 1;
            }
            "--serve" => {
                a.serve = Some(v[i + 1].clone().into());
                i += 1;
            }
            _ => {} // cargo bench passes --bench
        }
        i += 1;
    }
    a
}

// ---------------------------------------------------------------- milter client

// Protocol option bits (milter v6): events the milter declined, and events
// it answers no reply to.
const NO_CONNECT: u32 = 0x1;
const NO_HELO: u32 = 0x2;
const NO_MAIL: u32 = 0x4;
const NO_RCPT: u32 = 0x8;
const NO_BODY: u32 = 0x10;
const NO_HDRS: u32 = 0x20;
const NO_EOH: u32 = 0x40;
const NR_HDR: u32 = 0x80;
const NR_CONN: u32 = 0x1000;
const NR_HELO: u32 = 0x2000;
const NR_MAIL: u32 = 0x4000;
const NR_RCPT: u32 = 0x8000;
const NR_EOH: u32 = 0x40000;
const NR_BODY: u32 = 0x80000;
const LEADSPC: u32 = 0x100000;

/// One milter connection, driven the way Postfix drives it.
struct Client {
    s: TcpStream,
    opts: u32,
    quickack: bool,
    /// The milter accepted the connection or the message: no more events.
    accepted: bool,
}

fn packet(cmd: u8, data: &[u8]) -> Vec<u8> {
    let mut p = ((data.len() + 1) as u32).to_be_bytes().to_vec();
    p.push(cmd);
    p.extend_from_slice(data);
    p
}

fn is_final(r: u8) -> bool {
    matches!(r, b'r' | b'y' | b't' | b'd')
}

/// A header edit asked for at end of message: (insert at index, name, value),
/// index `None` for "add at the end".
type Edit = (Option<u32>, Vec<u8>, Vec<u8>);

fn cstrs(d: &[u8]) -> Vec<Vec<u8>> {
    d.split(|b| *b == 0).map(<[u8]>::to_vec).collect()
}

impl Client {
    async fn open(addr: &str, quickack: bool) -> Client {
        let s = TcpStream::connect(addr)
            .await
            .unwrap_or_else(|e| panic!("connect {addr}: {e}"));
        if quickack {
            s.set_nodelay(true).unwrap();
        }
        let mut c = Client {
            s,
            opts: 0,
            quickack,
            accepted: false,
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

    /// Sends macros for the command that follows (never answered).
    async fn macros(&mut self, stage: u8, pairs: &[(&str, &str)]) {
        let mut d = vec![stage];
        for (k, v) in pairs {
            d.extend_from_slice(k.as_bytes());
            d.push(0);
            d.extend_from_slice(v.as_bytes());
            d.push(0);
        }
        self.send(b'D', &d).await;
    }

    /// Sends a command unless the milter declined it (`no`) and, unless
    /// negotiated away (`nr`), returns its reply ('c' when none is read).
    async fn cmd(&mut self, cmd: u8, data: &[u8], no: u32, nr: u32) -> u8 {
        if self.accepted || self.opts & no != 0 {
            return b'c';
        }
        self.send(cmd, data).await;
        if self.opts & nr != 0 {
            return b'c';
        }
        loop {
            match self.read().await.0 {
                b'p' => continue, // progress
                b'a' => {
                    self.accepted = true;
                    return b'a';
                }
                r => return r,
            }
        }
    }

    /// Headers, body and end of message; returns the final reply and the
    /// header edits asked for.
    async fn content(&mut self, fields: &[mix::Field], body: &[u8], qid: &str) -> (u8, Vec<Edit>) {
        if self.accepted {
            return (b'a', Vec::new());
        }
        for (name, value) in fields {
            let value = if self.opts & LEADSPC == 0 {
                value.strip_prefix(b" ").unwrap_or(value)
            } else {
                value
            };
            let mut d = name.clone();
            d.push(0);
            d.extend_from_slice(value);
            d.push(0);
            let r = self.cmd(b'L', &d, NO_HDRS, NR_HDR).await;
            if is_final(r) {
                return (r, Vec::new());
            }
        }
        let r = self.cmd(b'N', b"", NO_EOH, NR_EOH).await;
        if is_final(r) {
            return (r, Vec::new());
        }
        for chunk in body.chunks(65535) {
            match self.cmd(b'B', chunk, NO_BODY, NR_BODY).await {
                b's' => break,
                r if is_final(r) => return (r, Vec::new()),
                _ => {}
            }
        }
        if self.accepted {
            return (b'a', Vec::new());
        }
        self.macros(b'E', &[("i", qid)]).await;
        self.send(b'E', b"").await;
        let mut edits = Vec::new();
        loop {
            let (r, d) = self.read().await;
            match r {
                b'a' | b'c' | b'r' | b't' | b'y' | b'd' => return (r, edits),
                b'h' => {
                    let v = cstrs(&d);
                    edits.push((None, v[0].clone(), v[1].clone()));
                }
                b'i' => {
                    let v = cstrs(&d[4..]);
                    let at = u32::from_be_bytes(d[..4].try_into().unwrap());
                    edits.push((Some(at), v[0].clone(), v[1].clone()));
                }
                _ => {} // other modifications, progress
            }
        }
    }
}

/// One SMTP session's milter connections: one per milter of the chain.
struct Conn {
    chain: Vec<Client>,
    /// The header edits the chain asked for on the last message.
    edits: Vec<Edit>,
}

impl Conn {
    async fn open(addrs: &[String], quickack: bool, client: [u8; 4]) -> Conn {
        let mut chain = Vec::new();
        for addr in addrs {
            let mut c = Client::open(addr, quickack).await;
            let ip = format!("{}.{}.{}.{}", client[0], client[1], client[2], client[3]);
            let mut conn = b"mail.bench.example\0".to_vec();
            conn.push(b'4');
            conn.extend_from_slice(&25u16.to_be_bytes());
            conn.extend_from_slice(ip.as_bytes());
            conn.push(0);
            c.macros(
                b'C',
                &[
                    ("j", "mx.bench"),
                    ("{daemon_name}", "bench"),
                    ("{client_addr}", &ip),
                    ("{client_name}", "mail.bench.example"),
                ],
            )
            .await;
            c.cmd(b'C', &conn, NO_CONNECT, NR_CONN).await;
            c.cmd(b'H', b"mail.bench.example\0", NO_HELO, NR_HELO).await;
            chain.push(c);
        }
        Conn {
            chain,
            edits: Vec::new(),
        }
    }

    /// Aborts the message at the milters of the chain from `from` on.
    async fn abort(&mut self, from: usize) {
        for c in &mut self.chain[from..] {
            c.send(b'A', b"").await;
        }
    }

    /// One message through the chain, as Postfix does: envelope events to
    /// each milter in turn, then the content to the first milter, its header
    /// edits applied, to the next. Returns the final reply.
    async fn message(&mut self, m: &Msg, qid: &str) -> u8 {
        let from = format!("<{}>\0", m.mail_from);
        let steps: [(u8, &[u8], u32, u32); 2] = [
            (b'M', from.as_bytes(), NO_MAIL, NR_MAIL),
            (b'R', b"<bob@recipient.test>\0", NO_RCPT, NR_RCPT),
        ];
        for (cmd, data, no, nr) in steps {
            for i in 0..self.chain.len() {
                let c = &mut self.chain[i];
                if cmd == b'M' {
                    c.accepted = false;
                    c.macros(b'M', &[("i", qid), ("{mail_addr}", m.mail_from)])
                        .await;
                }
                let r = c.cmd(cmd, data, no, nr).await;
                if is_final(r) {
                    self.abort(0).await;
                    return r;
                }
            }
        }
        // The message's own fields; a copy only once a milter edits them.
        let mut fields = std::borrow::Cow::Borrowed(&m.fields[..]);
        self.edits.clear();
        for i in 0..self.chain.len() {
            let (r, edits) = self.chain[i].content(&fields, m.body(), qid).await;
            if is_final(r) {
                self.abort(i + 1).await;
                return r;
            }
            for (at, name, value) in edits {
                let i = at.map_or(fields.len(), |a| (a as usize).min(fields.len()));
                fields.to_mut().insert(i, (name.clone(), value.clone()));
                self.edits.push((at, name, value));
            }
        }
        b'a'
    }
}

/// What one run measured.
struct Figures {
    rate: f64,
    p50: f64,
    p99: f64,
    cpu_ms: f64,
    rss: f64,
}

fn pct(sorted: &[Duration], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1000.0
}

fn proc_field(pid: u32, file: &str, key: &str) -> Option<f64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/{file}")).ok()?;
    s.lines()
        .find(|l| l.starts_with(key))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|k| k.parse::<f64>().ok())
}

fn cpu_seconds(pids: &[u32]) -> f64 {
    let mut ticks = 0.0;
    for pid in pids {
        let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        let after = s.rsplit_once(')').map(|(_, a)| a).unwrap_or("");
        let f: Vec<&str> = after.split_whitespace().collect();
        ticks += f.get(11).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0)
            + f.get(12).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    }
    ticks / 100.0
}

/// Peak resident memory of the processes, summed, in MiB.
fn peak_rss_mib(pids: &[u32]) -> f64 {
    pids.iter()
        .filter_map(|p| proc_field(*p, "status", "VmHWM:"))
        .sum::<f64>()
        / 1024.0
}

/// Current resident memory of the processes, summed, in MiB.
fn rss_mib(pids: &[u32]) -> f64 {
    pids.iter()
        .filter_map(|p| proc_field(*p, "status", "VmRSS:"))
        .sum::<f64>()
        / 1024.0
}

async fn run(phase: &str, t: &Target, a: &Args, msgs: &std::sync::Arc<Vec<Msg>>) -> Figures {
    let cpu0 = cpu_seconds(&t.pids);
    let me = [std::process::id()];
    let client0 = cpu_seconds(&me);
    let t0 = Instant::now();
    let mut lat = Vec::new();
    for _ in 0..a.rounds {
        lat.extend(round(t, a, msgs).await);
    }
    let wall = t0.elapsed().as_secs_f64();
    let cpu = cpu_seconds(&t.pids) - cpu0;
    let client = cpu_seconds(&me) - client0;
    lat.sort();
    let n = lat.len() as f64;
    let f = Figures {
        rate: n / wall,
        p50: pct(&lat, 0.5),
        p99: pct(&lat, 0.99),
        cpu_ms: cpu / n * 1000.0,
        rss: peak_rss_mib(&t.pids),
    };
    println!(
        "{:<22} {phase:<5} C={:<3} K={:<3} x{:<3} {:>6.0} msg/s  p50 {:>6.2} ms  p90 {:>6.2} ms  p99 {:>6.2} ms  max {:>7.2} ms  CPU {:>6.3} ms/msg  peak RSS {:>6.1} MiB  (bench client+DNS CPU {:.3} ms/msg)",
        t.label,
        a.connections,
        a.messages,
        a.rounds,
        f.rate,
        f.p50,
        pct(&lat, 0.9),
        f.p99,
        lat.last().unwrap().as_secs_f64() * 1000.0,
        f.cpu_ms,
        f.rss,
        client / n * 1000.0
    );
    f
}

/// C connections with K messages each, concurrently; the latencies.
async fn round(t: &Target, a: &Args, msgs: &std::sync::Arc<Vec<Msg>>) -> Vec<Duration> {
    let mut tasks = Vec::new();
    for c in 0..a.connections {
        let msgs = msgs.clone();
        let (addrs, k, q) = (t.addrs.clone(), a.messages, a.quickack);
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::with_capacity(k);
            let mut conn = Conn::open(&addrs, q, msgs[c % msgs.len()].client).await;
            for i in 0..k {
                // One connection is one client address: keep its own kind of mail.
                let m = &msgs[(c + i * msgs.len()) % msgs.len()];
                let t = Instant::now();
                let r = conn.message(m, &format!("Q{c}x{i}")).await;
                lat.push(t.elapsed());
                let spoof = m.mail_from.starts_with('x');
                let rejected = matches!(r, b'r' | b'y');
                assert!(
                    spoof == rejected && matches!(r, b'a' | b'c' | b'r' | b'y'),
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
    lat
}

/// Sends each message of the mix once and prints the verdict and the
/// Authentication-Results the milter (chain) added: what the figures paid for.
async fn show(t: &Target, msgs: &[Msg]) {
    for (i, m) in msgs.iter().enumerate() {
        let mut c = Conn::open(&t.addrs, true, m.client).await;
        let r = c.message(m, &format!("S{i}")).await;
        let verdict = match r {
            b'a' | b'c' => "accept",
            b'r' | b'y' => "reject",
            b't' => "tempfail",
            _ => "other",
        };
        let ar: Vec<String> = c
            .edits
            .iter()
            .filter(|(_, n, _)| n.eq_ignore_ascii_case(b"Authentication-Results"))
            .map(|(_, _, v)| {
                String::from_utf8_lossy(v)
                    .split_whitespace()
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .collect();
        println!("  {:<22} mix-{i} {verdict:<8} {}", t.label, ar.join(" | "));
    }
}

/// Opens `n` connections that each pass one message and then stay open, and
/// returns the daemon's resident memory with all of them open.
async fn idle(t: &Target, n: usize, msgs: &[Msg]) -> f64 {
    let mut conns = Vec::with_capacity(n);
    for i in 0..n {
        let m = &msgs[i % msgs.len()];
        let mut c = Conn::open(&t.addrs, true, m.client).await;
        c.message(m, &format!("I{i}")).await;
        conns.push(c);
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let rss = rss_mib(&t.pids);
    drop(conns);
    rss
}

/// The daemon under test, killed when the bench ends (or panics).
struct Daemon(std::process::Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Raises the open-files limit to its hard limit (the idle run holds
/// thousands of sockets; the daemon inherits the limit), as tests/load.rs does.
fn raise_nofile() {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    if let Ok((_, hard)) = getrlimit(Resource::RLIMIT_NOFILE) {
        let _ = setrlimit(Resource::RLIMIT_NOFILE, hard, hard);
    }
}

/// `--serve DIR`: the zones stay served and the mix's messages are written
/// to DIR (`mix-N.eml`, CRLF) for an MTA run, until the process is killed.
async fn serve(dir: &std::path::Path, dns: &TestDns, msgs: &[Msg]) -> ! {
    std::fs::create_dir_all(dir).unwrap();
    for (i, m) in msgs.iter().enumerate() {
        std::fs::write(dir.join(format!("mix-{i}.eml")), &m.raw).unwrap();
        let c = m.client;
        println!(
            "mix-{i}.eml  {:>6} bytes  MAIL FROM:<{}>  from {}.{}.{}.{}",
            m.raw.len(),
            m.mail_from,
            c[0],
            c[1],
            c[2],
            c[3]
        );
    }
    println!("serving DNS on {}", dns.addr);
    use std::io::Write;
    std::io::stdout().flush().unwrap();
    loop {
        tokio::time::sleep(Duration::from_secs(3600)).await;
    }
}

#[tokio::main]
async fn main() {
    let a = args();
    raise_nofile();
    let k = keys_in(a.keys.as_deref());
    let dns = TestDns::start_at(zones(&k), a.dns).await;
    let msgs = std::sync::Arc::new(mix::mix(&k));
    if let Some(dir) = &a.serve {
        serve(dir, &dns, &msgs).await;
    }
    let bin = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/release/authmilter");
    let bin = std::env::var_os("AUTHMILTER_BIN")
        .map(Into::into)
        .unwrap_or(bin);
    assert!(
        bin.exists(),
        "build the daemon first: cargo build --release ({})",
        bin.display()
    );
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
    let mut cmd = Command::new(&bin);
    cmd.args(["-c", conf.to_str().unwrap()])
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    // SAFETY: prctl is async-signal-safe; the daemon dies with the bench.
    unsafe {
        use std::os::unix::process::CommandExt;
        cmd.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        });
    }
    let child = Daemon(cmd.spawn().unwrap());
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
    let me = Target {
        label: "authmilter".into(),
        addrs: vec![addr],
        pids: vec![child.0.id()],
    };
    let mut rows = Vec::new();
    for t in std::iter::once(&me).chain(&a.peers) {
        run("cold", t, &a, &msgs).await;
        rows.push((t.label.clone(), run("warm", t, &a, &msgs).await));
    }
    println!("\nverdicts and Authentication-Results per message of the mix:");
    for t in std::iter::once(&me).chain(&a.peers) {
        show(t, &msgs).await;
    }
    let floor = crypto_floor(&msgs, &k);
    if rows.len() > 1 {
        let ours = rows[0].1.rate;
        println!("\nwarm cache, same run, same client:");
        println!(
            "| milter | msg/s | p50 ms | p99 ms | CPU ms/msg | peak RSS MiB | authmilter's throughput |"
        );
        println!("|---|---:|---:|---:|---:|---:|---:|");
        for (label, f) in &rows {
            println!(
                "| {label} | {:.0} | {:.2} | {:.2} | {:.3} | {:.1} | {:.2}x |",
                f.rate,
                f.p50,
                f.p99,
                f.cpu_ms,
                f.rss,
                ours / f.rate
            );
        }
        println!();
    }
    if a.idle > 0 {
        let rss = idle(&me, a.idle, &msgs).await;
        println!(
            "idle: {} connections open, each after one message: authmilter RSS {rss:.1} MiB",
            a.idle
        );
    }
    println!(
        "crypto floor: {floor:.3} ms/msg (SHA-256 over each message + one verification per signature); authmilter warm CPU {:.3} ms/msg = {:.1}x the floor",
        rows[0].1.cpu_ms,
        rows[0].1.cpu_ms / floor
    );
    drop(child);
    let _ = std::fs::remove_dir_all(&dir);
}
