//! The resolver's caches: answers are reused for their TTL and no longer,
//! names are matched without regard to case, failures are not kept.

mod common;

use authmilter::{config::Config, dns::Dns, dns::LookupError};
use common::{
    config_text,
    dns_server::{Fault, TestDns, Zones},
};
use std::sync::atomic::Ordering;

fn zone(v: &str) -> Zones {
    let mut z = Zones::with_origins();
    z.add_zone_text(
        &format!(
            "$ORIGIN cache.test.\n$TTL 300\n@ IN SOA ns.cache.test. h.cache.test. 1 3600 600 86400 300\n\
             long 300 IN TXT \"{v}\"\nzero 0 IN TXT \"{v}\"\n"
        ),
        None,
    );
    z
}

async fn resolver(dns: &TestDns) -> Dns {
    let cfg = Config::parse(&config_text(dns.addr, ""), "test").unwrap();
    Dns::new(&cfg.dns).unwrap()
}

fn text(r: Result<Vec<Vec<u8>>, LookupError>) -> String {
    String::from_utf8(r.unwrap().concat()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_live_for_their_ttl_only() {
    let dns = TestDns::start(zone("v1")).await;
    let r = resolver(&dns).await;
    assert_eq!(text(r.txt("long.cache.test").await), "v1");
    assert_eq!(text(r.txt("zero.cache.test").await), "v1");
    let asked = dns.queries.load(Ordering::SeqCst);

    dns.set_zones(zone("v2"));
    // TTL 300: the cached answer, without asking again, whatever the case.
    assert_eq!(text(r.txt("long.cache.test").await), "v1");
    assert_eq!(text(r.txt("LONG.Cache.Test.").await), "v1");
    assert_eq!(dns.queries.load(Ordering::SeqCst), asked);
    // TTL 0: never reused.
    assert_eq!(text(r.txt("zero.cache.test").await), "v2");
    assert!(dns.queries.load(Ordering::SeqCst) > asked);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_are_not_kept() {
    let dns = TestDns::start(zone("v1")).await;
    let r = resolver(&dns).await;
    dns.set_fault(Fault::ServFail);
    assert!(matches!(
        r.txt("long.cache.test").await,
        Err(LookupError::Temporary(_))
    ));
    dns.set_fault(Fault::None);
    assert_eq!(text(r.txt("long.cache.test").await), "v1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn negative_answers_live_for_the_soa_minimum() {
    // RFC 2308: NXDOMAIN and NODATA are cached for the SOA minimum (300 s).
    let dns = TestDns::start(zone("v1")).await;
    let r = resolver(&dns).await;
    assert_eq!(r.txt("absent.cache.test").await, Err(LookupError::NxDomain));
    assert_eq!(r.a("long.cache.test").await, Err(LookupError::NoData));
    let asked = dns.queries.load(Ordering::SeqCst);
    assert_eq!(r.txt("absent.cache.test").await, Err(LookupError::NxDomain));
    assert_eq!(r.a("long.cache.test").await, Err(LookupError::NoData));
    assert_eq!(dns.queries.load(Ordering::SeqCst), asked);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cache_is_bounded_by_bytes_not_entries() {
    // Twenty 60 KiB TXT records through a 256 KiB cache: the cache keeps a
    // few of them, never all, however few entries that is.
    let big = "x".repeat(250);
    let strings = vec![format!("\"{big}\""); 240].join(" ");
    let mut text = String::from(
        "$ORIGIN big.test.\n$TTL 300\n@ IN SOA ns.big.test. h.big.test. 1 3600 600 86400 300\n",
    );
    for i in 0..20 {
        text.push_str(&format!("s{i} IN TXT {strings}\n"));
    }
    let mut z = Zones::with_origins();
    z.add_zone_text(&text, None);
    let dns = TestDns::start(z).await;
    let cfg = Config::parse(
        &config_text(dns.addr, "")
            .replace("attempts = 1\n", "attempts = 1\ncache_bytes = 262144\n"),
        "test",
    )
    .unwrap();
    let r = Dns::new(&cfg.dns).unwrap();
    for i in 0..20 {
        assert_eq!(
            r.txt(&format!("s{i}.big.test")).await.unwrap()[0].len(),
            60_000
        );
    }
    let asked = dns.queries.load(Ordering::SeqCst);
    for i in 0..20 {
        r.txt(&format!("s{i}.big.test")).await.unwrap();
    }
    let again = dns.queries.load(Ordering::SeqCst) - asked;
    assert!(
        again >= 15,
        "only {again} of 20 asked again: the cache held too much"
    );
}
