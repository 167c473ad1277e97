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
