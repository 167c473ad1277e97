//! Do large messages stall the other sessions? Prints figures.
//!
//!     cargo bench --bench stall
//!
//! On a runtime with two worker threads (as the daemon has on a 2-core
//! host), small signed messages are driven through `Session` one after the
//! other and their latency measured: first alone, then while other tasks
//! verify 24 MiB RSA-signed messages (relaxed canonicalization and SHA-256
//! over every byte). If the big messages' CPU work ran on the async workers,
//! the small messages' p99 would grow by about the big message's
//! verification time; with that work on blocking threads it should not.
//! `--quick` runs fewer messages (CI).

#[path = "../tests/common/dns_server.rs"]
mod dns_server;
#[path = "common/mix.rs"]
mod mix;
#[path = "common/session.rs"]
mod session;

use authmilter::{policy::Action, Runtime};
use dns_server::TestDns;
use mix::Msg;
use session::fields;
use std::{
    sync::Arc,
    time::{Duration, Instant},
};

async fn one(rt: &Arc<Runtime>, m: &Msg, fields: &[(String, Vec<u8>)]) -> Action {
    session::run(rt, m, fields, m.body()).await
}

fn pct(v: &mut [Duration], p: f64) -> f64 {
    v.sort();
    let i = ((v.len() as f64 - 1.0) * p).round() as usize;
    v[i].as_secs_f64() * 1000.0
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let n_small = if quick { 100 } else { 400 };
    let tokio = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let keys = mix::keys();
    let dns = tokio.block_on(TestDns::start(mix::zones(&keys)));
    let rt = session::runtime(&tokio, dns.addr, "stall.toml");
    let small = mix::make(&keys, 0, 2, "r");
    let big = Arc::new(mix::make(&keys, 9, 24 * 1024, "r"));
    let (sf, bf) = (fields(&small), Arc::new(fields(&big)));
    tokio.block_on(async {
        // Warm the DNS cache; check both verdicts.
        assert_eq!(one(&rt, &small, &sf).await, Action::Accept);
        let t = Instant::now();
        assert_eq!(one(&rt, &big, &bf).await, Action::Accept);
        let big_ms = t.elapsed().as_secs_f64() * 1000.0;

        let mut alone = Vec::new();
        for _ in 0..n_small {
            let t = Instant::now();
            one(&rt, &small, &sf).await;
            alone.push(t.elapsed());
        }

        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let mut bigs = Vec::new();
        for _ in 0..2 {
            let (rt, big, bf, stop) = (rt.clone(), big.clone(), bf.clone(), stop.clone());
            bigs.push(tokio::spawn(async move {
                let mut n = 0;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    one(&rt, &big, &bf).await;
                    n += 1;
                }
                n
            }));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        let mut loaded = Vec::new();
        for _ in 0..n_small {
            let t = Instant::now();
            one(&rt, &small, &sf).await;
            loaded.push(t.elapsed());
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let mut n_big = 0;
        for b in bigs {
            n_big += b.await.unwrap();
        }
        println!("| small 2 KiB messages (ms) | p50 | p99 | max |");
        println!("|---|---|---|---|");
        let max = |v: &mut Vec<Duration>| pct(v, 1.0);
        println!(
            "| alone | {:.2} | {:.2} | {:.2} |",
            pct(&mut alone, 0.5),
            pct(&mut alone, 0.99),
            max(&mut alone)
        );
        println!(
            "| while 2 tasks verify 24 MiB messages ({n_big} done) | {:.2} | {:.2} | {:.2} |",
            pct(&mut loaded, 0.5),
            pct(&mut loaded, 0.99),
            max(&mut loaded)
        );
        println!("one 24 MiB RSA-signed message end to end: {big_ms:.0} ms");
    });
}
