//! Criterion microbenchmarks: the per-message pipeline without sockets, and
//! the crypto floor it is measured against.
//!
//!     cargo bench --bench pipeline
//!
//! `pipeline/mix-N` drives one message of the mix through a fresh
//! `Session` (connect, HELO, MAIL, RCPT, headers, body, end of message):
//! iprev, SPF for HELO and MAIL FROM, DKIM, DMARC, the verdict and the
//! header edits, as the milter callbacks do but without the milter protocol.
//! DNS answers come from the resolver's cache, warmed before measuring (a DNS
//! server on 127.0.0.1 answers the first lookups). `floor/mix-N` is SHA-256
//! over the same message plus one signature verification per signature:
//! the work no implementation can avoid. The ratio of the two is how far
//! the pipeline is from the floor. `pipeline+reports/mix-N` is the pipeline
//! with DMARC report recording on (`[reports]`, SQLite in a temp folder, as
//! the daemon runs by default): the difference is what recording costs.

#[path = "../tests/common/dns_server.rs"]
mod dns_server;
#[path = "common/mix.rs"]
mod mix;
#[path = "common/session.rs"]
mod session;

use authmilter::policy::Action;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use dns_server::TestDns;
use mix::Floor;

fn benches(c: &mut Criterion) {
    let tokio = tokio::runtime::Runtime::new().unwrap();
    let keys = mix::keys();
    let dns = tokio.block_on(TestDns::start(mix::zones(&keys)));
    let rt = session::runtime(&tokio, dns.addr, "pipeline.toml");
    let db = tempfile::tempdir().unwrap();
    let recording = session::runtime_recording(&tokio, dns.addr, &db.path().join("r.sqlite"));
    let msgs = mix::mix(&keys);
    let floor = Floor::new(&keys);

    let mut group = c.benchmark_group("per-message");
    for (i, m) in msgs.iter().enumerate() {
        let body = m.body();
        let fields = session::fields(m);
        // Warm the DNS cache, and check the verdict is the expected one.
        let spoof = m.mail_from.starts_with('x');
        let want = if spoof {
            Action::Reject
        } else {
            Action::Accept
        };
        let got = tokio.block_on(session::run(&rt, m, &fields, body));
        assert_eq!(got, want, "mix-{i}");
        let label = format!("mix-{i} ({} KiB)", m.raw.len() / 1024);
        group.throughput(Throughput::Bytes(m.raw.len() as u64));
        group.bench_with_input(BenchmarkId::new("pipeline", &label), m, |b, m| {
            b.to_async(&tokio)
                .iter(|| session::run(&rt, m, &fields, body))
        });
        let got = tokio.block_on(session::run(&recording, m, &fields, body));
        assert_eq!(got, want, "mix-{i} recording");
        group.bench_with_input(BenchmarkId::new("pipeline+reports", &label), m, |b, m| {
            b.to_async(&tokio)
                .iter(|| session::run(&recording, m, &fields, body))
        });
        group.bench_with_input(BenchmarkId::new("floor", &label), m, |b, m| {
            b.iter(|| floor.message(m))
        });
    }
    group.finish();
    let counts = recording.reports.as_ref().unwrap().counts();
    tokio.block_on(
        recording
            .reports
            .as_ref()
            .unwrap()
            .flush(std::time::Duration::from_secs(30)),
    );
    assert_eq!(counts.lost(), 0, "report rows lost in the benchmark");
}

criterion_group!(pipeline_benches, benches);
criterion_main!(pipeline_benches);
