//! DMARC aggregate reports (RFC 9990) and failure reports (RFC 9991):
//! the storage interface on SQLite and on a real PostgreSQL server (the
//! same suite), messages through the milter into the store, `authmilter
//! report` building, authorising and mailing reports to a local SMTP sink,
//! retries, two daemons sharing PostgreSQL, restarts, a store that is down.
//!
//! Every report produced here is checked against RFC 9990's rules (one
//! record per tuple, counts, file name, Subject) and, when `xmllint` and
//! `../shared/conformance/dmarc-reports/rfc9990.xsd` are present, against
//! the RFC's schema (required under AUTHMILTER_REQUIRE_SHARED).

mod common;

use authmilter::{
    config::Config,
    reports::{
        run::{self, Options, Output},
        store::{self, Built, Store},
        DkimResult, Published, Recorder, Row, SpfResult,
    },
};
use common::{dns_server::Zones, smtp_sink::Sink, Envelope};
use std::{io::Read, path::Path, sync::Arc, time::Duration};

const BANK_IP: &str = "192.0.2.10";
const SHOP_IP: &str = "192.0.2.20";
const SPOOF_IP: &str = "198.51.100.9";

fn zone(origin: &str, records: &str) -> String {
    format!(
        "$ORIGIN {origin}.\n$TTL 0\n@ IN SOA ns.{origin}. hostmaster.{origin}. 1 3600 600 86400 0\n{records}"
    )
}

/// bank.test reports to itself; shop.test to agg.test, which authorises it;
/// lax.test to evil.test, which does not.
fn zone_texts() -> Vec<String> {
    vec![
        zone("test", ""),
        zone("2.0.192.in-addr.arpa", ""),
        zone("100.51.198.in-addr.arpa", ""),
        zone(
            "bank.test",
            &format!("@ IN TXT \"v=spf1 ip4:{BANK_IP} -all\"\n_dmarc IN TXT \"v=DMARC1; p=reject; rua=mailto:dmarc@bank.test,mailto:dmarc2@bank.test!10m; ruf=mailto:ruf@bank.test; fo=1\"\n"),
        ),
        zone(
            "shop.test",
            &format!("@ IN TXT \"v=spf1 ip4:{SHOP_IP} -all\"\n_dmarc IN TXT \"v=DMARC1; p=quarantine; sp=none; adkim=s; rua=mailto:reports@agg.test\"\n"),
        ),
        zone("agg.test", "shop.test._report._dmarc IN TXT \"v=DMARC1\"\n"),
        zone(
            "lax.test",
            &format!("@ IN TXT \"v=spf1 ip4:{SHOP_IP} -all\"\n_dmarc IN TXT \"v=DMARC1; p=none; rua=mailto:x@evil.test\"\n"),
        ),
        zone("evil.test", ""),
        zone("quiet.test", &format!("@ IN TXT \"v=spf1 ip4:{SHOP_IP} -all\"\n_dmarc IN TXT \"v=DMARC1; p=reject\"\n")),
    ]
}

async fn dns_server() -> common::dns_server::TestDns {
    let mut z = Zones::with_origins();
    for t in zone_texts() {
        z.add_zone_text(&t, None);
    }
    common::dns_server::TestDns::start(z).await
}

fn zone_files(dir: &Path) -> Vec<String> {
    zone_texts()
        .iter()
        .enumerate()
        .map(|(i, t)| {
            let p = dir.join(format!("z{i}.zone"));
            std::fs::write(&p, t).unwrap();
            p.display().to_string()
        })
        .collect()
}

fn message(from: &str, subject: &str) -> Vec<u8> {
    format!(
        "From: Alice <alice@{from}>\r\nTo: bob@recipient.test\r\nSubject: {subject}\r\nMessage-ID: <{subject}@{from}>\r\n\r\nHello.\r\n"
    )
    .into_bytes()
}

fn reports_section(db: &str, relay: Option<std::net::SocketAddr>) -> String {
    let relay = relay
        .map(|a| format!("smtp_relay = \"{a}\"\n"))
        .unwrap_or_default();
    format!("[reports]\nenabled = true\ndatabase = \"{db}\"\nsubmitter = \"mx.recipient.test\"\n{relay}")
}

fn config(dns: std::net::SocketAddr, reports: &str) -> Config {
    let text = common::config_text(dns, "").replace("[reports]\nenabled = false\n", reports);
    Config::parse(&text, "test").unwrap()
}

/// Sends the standard mix: bank.test 3 passes and 2 spoofs (rejected),
/// shop.test 1 pass, lax.test 1 pass, quiet.test 1 pass (no rua).
async fn send_mix(milter: std::net::SocketAddr) {
    for i in 0..3 {
        let env = Envelope::new(BANK_IP, "mail.bank.test", "alice@bank.test");
        let o = common::send(milter, &env, &message("bank.test", &format!("b{i}"))).await;
        assert_eq!(o.verdict(), "accept");
    }
    for i in 0..2 {
        let env = Envelope::new(SPOOF_IP, "spoof.example", "alice@bank.test");
        let o = common::send(milter, &env, &message("bank.test", &format!("s{i}"))).await;
        assert_eq!(o.verdict(), "reject", "a p=reject spoof");
    }
    for (d, s) in [
        ("shop.test", "p1"),
        ("lax.test", "l1"),
        ("quiet.test", "q1"),
    ] {
        let env = Envelope::new(SHOP_IP, "mail.shop.test", &format!("alice@{d}"));
        assert_eq!(
            common::send(milter, &env, &message(d, s)).await.verdict(),
            "accept"
        );
    }
}

fn row(domain: &str, ip: &str, disposition: &str) -> Row {
    Row {
        published: Published {
            domain: domain.into(),
            p: "reject".into(),
            sp: None,
            np: None,
            adkim: "r".into(),
            aspf: "r".into(),
            fo: "0".into(),
            testing: false,
            psd: None,
            rua: vec![format!("mailto:dmarc@{domain}")],
        },
        source_ip: ip.into(),
        header_from: domain.into(),
        envelope_from: Some(domain.into()),
        disposition: disposition.into(),
        dkim_aligned: false,
        spf_aligned: disposition == "pass",
        reasons: vec![],
        dkim: vec![DkimResult {
            domain: domain.into(),
            selector: "s1".into(),
            result: "fail".into(),
        }],
        spf: Some(SpfResult {
            domain: domain.into(),
            scope: "mfrom".into(),
            result: if disposition == "pass" {
                "pass"
            } else {
                "fail"
            }
            .into(),
        }),
    }
}

/// The storage suite both backends pass.
async fn store_suite(s: Arc<dyn Store>) {
    let h = 1_800_000_000 / 3600 * 3600;
    let a = row("a.test", "192.0.2.1", "pass");
    let b = row("a.test", "192.0.2.2", "reject");
    s.add(&[(h, a.clone(), 2), (h, b.clone(), 1)])
        .await
        .unwrap();
    s.add(&[(h, a.clone(), 3)]).await.unwrap();
    s.add(&[
        (h + 3600, a.clone(), 1),
        (h, row("z.test", "192.0.2.3", "pass"), 7),
    ])
    .await
    .unwrap();
    let rows = s.unreported_rows("a.test", h, h + 7200).await.unwrap();
    let count = |rows: &[store::Stored], r: &Row, b: i64| {
        rows.iter()
            .filter(|x| &x.row == r && x.bucket == b)
            .map(|x| x.count)
            .sum::<u64>()
    };
    assert_eq!(count(&rows, &a, h), 5, "equal rows of one hour are summed");
    assert_eq!(count(&rows, &b, h), 1);
    assert_eq!(count(&rows, &a, h + 3600), 1, "another hour is another row");
    assert_eq!(
        rows.len(),
        3,
        "stored once per (hour, tuple), not per message"
    );
    assert_eq!(
        s.unreported_domains(h, h + 7200).await.unwrap(),
        vec!["a.test".to_string(), "z.test".to_string()]
    );
    assert_eq!(
        s.unreported_buckets("a.test", h + 7200).await.unwrap(),
        vec![h, h + 3600]
    );

    // The lease: one holder at a time.
    assert!(s.lease("a.test", "host1", 60).await.unwrap());
    assert!(
        !s.lease("a.test", "host2", 60).await.unwrap(),
        "another host waits"
    );
    assert!(
        s.lease("a.test", "host1", 60).await.unwrap(),
        "the holder renews"
    );
    s.release("a.test", "host1").await.unwrap();
    assert!(s.lease("a.test", "host2", 60).await.unwrap(), "released");
    s.release("a.test", "host2").await.unwrap();
    assert!(s.lease("a.test", "host3", -10).await.unwrap());
    assert!(
        s.lease("a.test", "host4", 60).await.unwrap(),
        "an expired lease is taken"
    );
    s.release("a.test", "host4").await.unwrap();

    // A claim takes the rows; later messages of the same hour wait for the next report.
    assert_eq!(
        s.claim("a.test", h, h + 3600, "r1", (h, h + 3599))
            .await
            .unwrap(),
        2
    );
    assert_eq!(
        s.claim("a.test", h, h + 3600, "r2", (h, h + 3599))
            .await
            .unwrap(),
        0,
        "nothing twice"
    );
    s.add(&[(h, a.clone(), 4)]).await.unwrap();
    let claimed = s.claimed("r1").await.unwrap();
    assert_eq!(count(&claimed, &a, h), 5, "the claim kept its count");
    let rows = s.unreported_rows("a.test", h, h + 3600).await.unwrap();
    assert_eq!(count(&rows, &a, h), 4, "new messages start an open row");

    let open = s.open_reports("a.test").await.unwrap();
    assert_eq!(open.len(), 1);
    assert_eq!(
        (open[0].id.as_str(), open[0].begin, open[0].end),
        ("r1", h, h + 3599)
    );
    assert!(open[0].built.is_none());
    let built = Built {
        filename: "f.xml.gz".into(),
        body: vec![0x1f, 0x8b, 0, 255],
        owed: vec!["mailto:a@a.test".into(), "mailto:b@b.test".into()],
    };
    s.save_built("r1", &built).await.unwrap();
    assert_eq!(
        s.open_reports("a.test").await.unwrap()[0].built.as_ref(),
        Some(&built)
    );
    s.set_owed("r1", &["mailto:b@b.test".into()]).await.unwrap();
    assert_eq!(
        s.open_reports("a.test").await.unwrap()[0]
            .built
            .as_ref()
            .unwrap()
            .owed,
        vec!["mailto:b@b.test".to_string()]
    );
    s.set_owed("r1", &[]).await.unwrap();
    assert!(s.open_reports("a.test").await.unwrap().is_empty(), "done");

    // The failure report rate limit, per destination and hour.
    for expect in [true, true, false, false] {
        assert_eq!(s.failure_slot("ruf@a.test", h, 2).await.unwrap(), expect);
    }
    assert!(s.failure_slot("ruf@b.test", h, 2).await.unwrap());
    assert!(
        s.failure_slot("ruf@a.test", h + 3600, 2).await.unwrap(),
        "a new hour"
    );

    // Retention: old rows go, reported or not; rows of an owed report stay.
    let before = s.size().await.unwrap();
    assert!(before.rows >= 5 && before.bytes > 0, "{before:?}");
    assert_eq!(
        s.claim("z.test", h, h + 3600, "r3", (h, h + 3599))
            .await
            .unwrap(),
        1
    );
    s.save_built("r3", &built).await.unwrap();
    let p = s.prune(h + 7200).await.unwrap();
    assert!(p.rows >= 3, "{p:?}");
    assert_eq!(p.unreported_rows, 2, "{p:?}");
    assert_eq!(
        s.claimed("r3").await.unwrap().len(),
        1,
        "an owed report keeps its rows"
    );
    assert!(s
        .unreported_rows("a.test", 0, i64::MAX / 2)
        .await
        .unwrap()
        .is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_store_suite() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sub/reports.sqlite");
    let s = store::open(&format!("sqlite:{}", path.display()))
        .await
        .unwrap();
    store_suite(s).await;
    // Reopening migrates nothing and keeps the data.
    let s = store::open(&format!("sqlite:{}", path.display()))
        .await
        .unwrap();
    assert!(s.size().await.unwrap().rows > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_store_suite() {
    let Some(pg) = common::postgres::Postgres::start("postgres_store_suite") else {
        return;
    };
    let url = pg.database("suite").await;
    let s = store::open(&url).await.unwrap();
    store_suite(s).await;
    let s = store::open(&url).await.unwrap();
    assert!(
        s.size().await.unwrap().rows > 0,
        "reopened without migrating again"
    );
}

#[test]
fn bad_database_urls_are_config_errors() {
    for (db, want) in [
        ("mysql://x", "use sqlite:/path or postgres://"),
        ("sqlite:", "needs a file path"),
    ] {
        let text = format!("[reports]\ndatabase = \"{db}\"\n");
        let e = Config::parse(&text, "a.toml").unwrap_err().to_string();
        assert!(
            e.contains("a.toml:2: key `reports.database`") && e.contains(want),
            "{e}"
        );
    }
    let e = Config::parse("[reports]\ncontact = \"not an address\"\n", "a.toml")
        .unwrap_err()
        .to_string();
    assert!(e.contains("a.toml:2: key `reports.contact`"), "{e}");
    let e = Config::parse("[reports]\nsmtp_relay = \"host:port\"\n", "a.toml")
        .unwrap_err()
        .to_string();
    assert!(e.contains("key `reports.smtp_relay`"), "{e}");
    let e = Config::parse("[reports.failure]\nenable = true\n", "a.toml")
        .unwrap_err()
        .to_string();
    assert!(e.contains("enable"), "{e}");
    let c = Config::parse("[milter]\nauthserv_id = \"mx.example.net\"\n", "a.toml").unwrap();
    assert_eq!(c.reports.org_name, "mx.example.net");
    assert_eq!(c.reports.contact, "postmaster@mx.example.net");
    assert!(c.reports.enabled && !c.reports.failure.enabled);
}

/// The report attachment of a sink message: (file name, XML).
fn attachment(data: &str) -> (String, String) {
    let at = data.find("application/gzip").expect("a gzip part");
    let start = data[..at].rfind("\r\n--").expect("a MIME part");
    let part = &data[start + 2..];
    let part = &part[part.find("\r\n").unwrap()..];
    // RFC 2231 continuations (filename*0=, filename*1=, ...) or one filename=.
    let head = &part[..part[2..].find("\r\n\r\n").unwrap() + 2];
    let mut name = String::new();
    for piece in head.split("filename").skip(1) {
        let value = piece.split_once('=').unwrap().1;
        let value = value.trim_start_matches('"');
        name.extend(
            value
                .chars()
                .take_while(|c| *c != '"' && *c != ';' && *c != '\r'),
        );
    }
    assert!(!name.is_empty(), "a file name in {data}");
    let body_at = part[2..].find("\r\n\r\n").unwrap() + 6;
    let b64: String = part[body_at..]
        .lines()
        .take_while(|l| !l.starts_with("--"))
        .collect::<Vec<_>>()
        .join("");
    use base64::Engine;
    let gz = base64::engine::general_purpose::STANDARD
        .decode(b64.trim())
        .unwrap();
    (name, gunzip(&gz))
}

fn gunzip(gz: &[u8]) -> String {
    let mut out = String::new();
    flate2::read::GzDecoder::new(gz)
        .read_to_string(&mut out)
        .unwrap();
    out
}

/// Validates with xmllint against RFC 9990's schema when both are here.
fn validate_xml(xml: &str) {
    let xsd = common::shared_dir().map(|d| d.join("conformance/dmarc-reports/rfc9990.xsd"));
    let have_lint = std::process::Command::new("xmllint")
        .arg("--version")
        .output()
        .is_ok();
    match xsd.filter(|p| p.exists()) {
        Some(xsd) if have_lint => {
            let dir = tempfile::tempdir().unwrap();
            let f = dir.path().join("report.xml");
            std::fs::write(&f, xml).unwrap();
            let out = std::process::Command::new("xmllint")
                .args(["--noout", "--schema"])
                .arg(&xsd)
                .arg(&f)
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "report does not validate against RFC 9990's schema:\n{}\n{xml}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        found => {
            if std::env::var_os("AUTHMILTER_REQUIRE_SHARED").is_some() {
                panic!("xmllint ({have_lint}) and the RFC 9990 schema ({found:?}) are required");
            }
            eprintln!("SKIPPED XSD validation: xmllint or ../shared/conformance/dmarc-reports/rfc9990.xsd missing");
        }
    }
}

fn count_in(xml: &str, ip: &str, disposition: &str) -> u64 {
    xml.split("<record>")
        .skip(1)
        .filter(|r| {
            r.contains(&format!("<source_ip>{ip}</source_ip>"))
                && r.contains(&format!("<disposition>{disposition}</disposition>"))
        })
        .map(|r| {
            let c = &r[r.find("<count>").unwrap() + 7..];
            c[..c.find('<').unwrap()].parse::<u64>().unwrap()
        })
        .sum()
}

fn opts(output: Output) -> Options {
    Options {
        since: None,
        until: Some(authmilter::reports::now_unix()),
        output,
        dry_run: false,
        holder: "test".into(),
    }
}

/// Messages through the milter, then `report`: one gzipped, schema-valid
/// report per domain with a rua, to authorised destinations only, with
/// RFC 9990's Subject and file name; nothing twice; a failed delivery
/// retried with the same file.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_to_mailed_reports() {
    let dns = dns_server().await;
    let sink = Sink::start().await;
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite:{}", dir.path().join("r.sqlite").display());
    let cfg = config(dns.addr, &reports_section(&db, Some(sink.addr)));
    let store = store::open(&db).await.unwrap();
    let recorder = Recorder::with_store(&cfg.reports, store.clone());
    let milter = common::TestMilter::start_with(cfg.clone(), Some(recorder.clone())).await;
    send_mix(milter.addr).await;
    assert!(recorder.flush(Duration::from_secs(10)).await);
    assert_eq!(
        recorder
            .counts()
            .stored
            .load(std::sync::atomic::Ordering::Relaxed),
        8
    );
    assert_eq!(recorder.counts().lost(), 0);
    // Our own users' mail (a trusted network) is not reported.
    let env = Envelope::new("127.0.0.1", "localhost", "alice@bank.test");
    common::send(milter.addr, &env, &message("bank.test", "own")).await;
    assert!(recorder.flush(Duration::from_secs(10)).await);
    assert_eq!(
        recorder
            .counts()
            .stored
            .load(std::sync::atomic::Ordering::Relaxed),
        8
    );

    let rdns = authmilter::dns::Dns::new(&cfg.dns).unwrap();
    sink.set_reply("451 4.3.0 try later");
    let s = run::report(store.clone(), &rdns, &cfg.reports, &opts(Output::Send))
        .await
        .unwrap();
    assert_eq!(s.owed, 3, "bank (two destinations) and shop owed: {s:?}");
    assert!(sink.messages().is_empty());
    let first_names: Vec<String> = s.reports.iter().map(|r| r.filename.clone()).collect();
    let lax = s.reports.iter().find(|r| r.domain == "lax.test").unwrap();
    assert!(
        lax.deliveries[0]
            .1
            .starts_with("refused: evil.test has not authorised reports for lax.test"),
        "{lax:?}"
    );
    assert!(
        !s.reports.iter().any(|r| r.domain == "quiet.test"),
        "no rua, no report"
    );

    sink.set_reply("250 2.0.0 ok");
    let s = run::report(store.clone(), &rdns, &cfg.reports, &opts(Output::Send))
        .await
        .unwrap();
    assert_eq!(s.owed, 0, "{s:?}");
    let got = sink.messages();
    assert_eq!(got.len(), 3, "every destination gets the report: {got:?}");
    for m in &got {
        let (name, xml) = attachment(&m.data);
        assert!(
            first_names.contains(&name),
            "a retried report keeps its file name: {name}"
        );
        validate_xml(&xml);
        let id = xml
            .split("<report_id>")
            .nth(1)
            .unwrap()
            .split('<')
            .next()
            .unwrap();
        let domain = xml
            .split("<domain>")
            .nth(1)
            .unwrap()
            .split('<')
            .next()
            .unwrap();
        let subject = format!(
            "Subject: Report Domain: {domain} Submitter: mx.recipient.test Report-ID: {id}"
        );
        let unfolded = m.data.replace("\r\n ", " ");
        assert!(unfolded.contains(&subject), "{subject} in {}", m.data);
        assert!(
            name.starts_with(&format!("mx.recipient.test!{domain}!"))
                && name.ends_with(&format!("!{id}.xml.gz")),
            "{name}"
        );
        assert_eq!(m.mail_from, "postmaster@mx.recipient.test");
        match domain {
            "bank.test" => {
                assert!(
                    ["dmarc@bank.test", "dmarc2@bank.test"].contains(&m.rcpt[0].as_str()),
                    "{:?}",
                    m.rcpt
                );
                assert_eq!(count_in(&xml, BANK_IP, "pass"), 3, "{xml}");
                assert_eq!(count_in(&xml, SPOOF_IP, "reject"), 2, "{xml}");
                assert_eq!(
                    xml.matches("<record>").count(),
                    2,
                    "one record per tuple: {xml}"
                );
                assert!(xml.contains("<p>reject</p>") && xml.contains("<fo>1</fo>"));
            }
            "shop.test" => {
                assert_eq!(
                    m.rcpt,
                    vec!["reports@agg.test".to_string()],
                    "authorised by agg.test"
                );
                assert_eq!(count_in(&xml, SHOP_IP, "pass"), 1, "{xml}");
                assert!(xml.contains("<sp>none</sp>") && xml.contains("<adkim>s</adkim>"));
            }
            other => panic!("unexpected report for {other}"),
        }
    }
    let s = run::report(store.clone(), &rdns, &cfg.reports, &opts(Output::Send))
        .await
        .unwrap();
    assert!(s.reports.is_empty(), "nothing reported twice: {s:?}");
    assert_eq!(sink.messages().len(), 3);
    let bank: Vec<_> = got
        .iter()
        .filter(|m| {
            m.data
                .replace("\r\n ", " ")
                .contains("Report Domain: bank.test")
        })
        .map(|m| attachment(&m.data).0)
        .collect();
    assert_eq!(bank.len(), 2);
    assert_eq!(
        bank[0], bank[1],
        "one report, the same file to each destination"
    );

    // A report over reports.max_report_bytes is not sent (and not owed).
    let env = Envelope::new(BANK_IP, "mail.bank.test", "alice@bank.test");
    let o = common::send(milter.addr, &env, &message("bank.test", "big")).await;
    assert_eq!(o.verdict(), "accept");
    assert!(recorder.flush(Duration::from_secs(10)).await);
    let mut small = cfg.reports.clone();
    small.max_report_bytes = 10;
    let s = run::report(store.clone(), &rdns, &small, &opts(Output::Send))
        .await
        .unwrap();
    assert_eq!(s.reports.len(), 1, "{s:?}");
    assert!(
        s.reports[0]
            .deliveries
            .iter()
            .all(|(_, o)| o.starts_with("refused: ") && o.contains("max_report_bytes")),
        "{s:?}"
    );
    assert_eq!(s.owed, 0);
    assert_eq!(sink.messages().len(), 3, "nothing sent");
    milter.stop().await;
}

/// The daemon records, survives a restart mid-period, and the `report`
/// command writes files; with PostgreSQL, two daemons give one report.
async fn daemons_to_files(db: &str, two: bool) {
    use common::daemon::{free_port, Daemon};
    let dns = dns_server().await;
    let dir = tempfile::tempdir().unwrap();
    let mut daemons = Vec::new();
    let mut confs = Vec::new();
    for i in 0..(if two { 2 } else { 1 }) {
        let port = free_port();
        let text = common::config_text(dns.addr, "")
            .replace(
                "[milter]\n",
                &format!("[milter]\nsocket = \"inet:127.0.0.1:{port}\"\n"),
            )
            .replace("[reports]\nenabled = false\n", &reports_section(db, None));
        let conf = dir.path().join(format!("d{i}.toml"));
        std::fs::write(&conf, text).unwrap();
        confs.push((conf, port));
    }
    for (i, (conf, _)) in confs.iter().enumerate() {
        let d = Daemon::spawn(conf, &dir.path().join(format!("d{i}.log")), Some("info"));
        d.wait_logged("authmilter listening", 1).await;
        daemons.push(d);
    }
    for (_, port) in &confs {
        send_mix(([127, 0, 0, 1], *port).into()).await;
    }
    // A restart in the middle of the period: what was acknowledged stays.
    for d in &mut daemons {
        assert!(d.stop().success());
    }
    let d = Daemon::spawn(&confs[0].0, &dir.path().join("again.log"), Some("info"));
    d.wait_logged("authmilter listening", 1).await;
    let env = Envelope::new(BANK_IP, "mail.bank.test", "alice@bank.test");
    let o = common::send(
        ([127, 0, 0, 1], confs[0].1).into(),
        &env,
        &message("bank.test", "after"),
    )
    .await;
    assert_eq!(o.verdict(), "accept");
    let mut d = d;
    assert!(d.stop().success());
    assert!(!d.log_text().contains("lost"), "{}", d.log_text());

    let out = dir.path().join("out");
    std::fs::create_dir(&out).unwrap();
    let zone_dir = dir.path().join("zones");
    std::fs::create_dir(&zone_dir).unwrap();
    let mut args: Vec<String> = vec![
        "report".into(),
        "-c".into(),
        confs[0].0.display().to_string(),
        "--until".into(),
        "now".into(),
        "--out".into(),
        out.display().to_string(),
        "--json".into(),
    ];
    for z in zone_files(&zone_dir) {
        args.push("--dns-zone".into());
        args.push(z);
    }
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_authmilter"))
        .args(&args)
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    let n = if two { 2 } else { 1 };
    let mut files: Vec<_> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    assert_eq!(
        files.len(),
        3,
        "bank, shop, lax (quiet.test has no rua): {files:?}"
    );
    for f in &files {
        let xml = gunzip(&std::fs::read(f).unwrap());
        validate_xml(&xml);
        if xml.contains("<domain>bank.test</domain>") {
            assert_eq!(
                count_in(&xml, BANK_IP, "pass"),
                3 * n + 1,
                "the sum of every daemon's messages: {xml}"
            );
            assert_eq!(count_in(&xml, SPOOF_IP, "reject"), 2 * n, "{xml}");
        }
    }
    // Once written, never again.
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_authmilter"))
        .args(&args)
        .output()
        .unwrap();
    assert!(o.status.success());
    assert_eq!(std::fs::read_dir(&out).unwrap().count(), 3);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["reports"].as_array().unwrap().len(), 0, "{v}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn daemon_sqlite_restart_and_report_files() {
    let dir = tempfile::tempdir().unwrap();
    daemons_to_files(
        &format!("sqlite:{}", dir.path().join("r.sqlite").display()),
        false,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_daemons_share_postgres_and_give_one_report() {
    let Some(pg) = common::postgres::Postgres::start("two_daemons_share_postgres") else {
        return;
    };
    let url = pg.database("fleet").await;
    daemons_to_files(&url, true).await;
}

/// Two hosts running `report` at once: the lease lets one of them report.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_report_runs_send_once() {
    let Some(pg) = common::postgres::Postgres::start("concurrent_report_runs") else {
        return;
    };
    let url = pg.database("race").await;
    let dns = dns_server().await;
    let sink = Sink::start().await;
    let store = store::open(&url).await.unwrap();
    let now = authmilter::reports::now_unix();
    let mut rows = Vec::new();
    for i in 0..50 {
        let mut r = row("bank.test", &format!("192.0.2.{i}"), "pass");
        r.published.rua = vec!["mailto:dmarc@bank.test".into()];
        rows.push((authmilter::reports::bucket_of(now), r, 1));
    }
    store.add(&rows).await.unwrap();
    let cfg = config(dns.addr, &reports_section(&url, Some(sink.addr)));
    let rdns = authmilter::dns::Dns::new(&cfg.dns).unwrap();
    let mut tasks = Vec::new();
    for host in ["host-a", "host-b", "host-c"] {
        let store = store::open(&url).await.unwrap();
        let (rdns, rc) = (rdns.clone(), cfg.reports.clone());
        let mut o = opts(Output::Send);
        o.holder = host.into();
        tasks.push(tokio::spawn(async move {
            run::report(store, &rdns, &rc, &o).await.unwrap()
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(
        sink.messages().len(),
        1,
        "one report for the period, whoever sent it"
    );
    let (_, xml) = attachment(&sink.messages()[0].data);
    validate_xml(&xml);
    assert_eq!(xml.matches("<record>").count(), 50);
}

/// A store that is down: mail flows on, every lost row is counted, in the
/// metrics and in the log (the real daemon).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn storage_down_loses_no_mail_and_counts_rows() {
    use common::daemon::{free_port, http_get, wait_listening, Daemon};
    let dns = dns_server().await;
    // Nothing listens there: every write fails.
    let db = format!("postgres://authmilter@127.0.0.1:{}/none", free_port());
    let (port, metrics) = (free_port(), free_port());
    let dir = tempfile::tempdir().unwrap();
    let text = common::config_text(dns.addr, "")
        .replace(
            "[milter]\n",
            &format!("[milter]\nsocket = \"inet:127.0.0.1:{port}\"\n"),
        )
        .replace(
            "[reports]\nenabled = false\n",
            &(reports_section(&db, None) + "queue_size = 4\n"),
        )
        + &format!("\n[metrics]\naddress = \"127.0.0.1:{metrics}\"\n");
    let conf = dir.path().join("down.toml");
    std::fs::write(&conf, text).unwrap();
    let mut d = Daemon::spawn(&conf, &dir.path().join("down.log"), Some("info"));
    d.wait_logged("authmilter listening", 1).await;
    let metrics: std::net::SocketAddr = ([127, 0, 0, 1], metrics).into();
    wait_listening(metrics).await;
    let started = std::time::Instant::now();
    send_mix(([127, 0, 0, 1], port).into()).await;
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "mail never waits for the store"
    );
    // The writer retries its batch, then counts it lost; a full queue counts at once.
    let lost = |body: &str| -> u64 {
        ["queue_full", "storage", "shutdown"]
            .iter()
            .filter_map(|o| {
                let key = format!("authmilter_report_records_total{{outcome=\"{o}\"}} ");
                body.lines()
                    .find_map(|l| l.strip_prefix(key.as_str())?.parse::<u64>().ok())
            })
            .sum()
    };
    let t = std::time::Instant::now();
    loop {
        let (_, body) = http_get(metrics, "/metrics").await;
        if lost(&body) == 8 {
            assert!(
                body.contains("authmilter_report_records_total{outcome=\"stored\"} 0"),
                "{body}"
            );
            break;
        }
        assert!(
            t.elapsed() < Duration::from_secs(40),
            "8 lost rows not counted:\n{body}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    d.wait_logged("DMARC report records lost", 1).await;
    assert!(d.stop().success());
}

/// RFC 9991 failure reports: sent for fo=1 to the authorised ruf, header
/// only with local parts redacted, and rate-limited.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failure_reports_are_sent_redacted_and_limited() {
    let dns = dns_server().await;
    let sink = Sink::start().await;
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite:{}", dir.path().join("r.sqlite").display());
    let section = reports_section(&db, Some(sink.addr))
        + "\n[reports.failure]\nenabled = true\nmax_per_hour = 2\n";
    let cfg = config(dns.addr, &section);
    let store = store::open(&db).await.unwrap();
    let recorder = Recorder::with_store(&cfg.reports, store);
    let milter = common::TestMilter::start_with(cfg, Some(recorder.clone())).await;
    send_mix(milter.addr).await;
    assert!(recorder.flush(Duration::from_secs(10)).await);
    // bank.test: 3 passes (fo=1: DKIM did not align) and 2 spoofs, limited to 2.
    common::daemon::wait_for("two failure reports", || sink.messages().len() >= 2).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let got = sink.messages();
    assert_eq!(got.len(), 2, "rate-limited to max_per_hour");
    for m in &got {
        assert_eq!(m.rcpt, vec!["ruf@bank.test".to_string()]);
        for want in [
            "Content-Type: multipart/report; report-type=feedback-report",
            "Feedback-Type: auth-failure",
            "Auth-Failure: dmarc",
            "Reported-Domain: bank.test",
            "Content-Type: text/rfc822-headers",
            "Authentication-Results: mx.recipient.test;",
            // The copied header, its local parts redacted.
            "\r\nTo: redacted-",
            "@recipient.test\r\nSubject: ",
        ] {
            assert!(m.data.contains(want), "{want} in {}", m.data);
        }
        // No DKIM signature; SPF aligns (MAIL FROM at bank.test): a pass
        // names no failed aligned mechanism, a spoof's SPF failed.
        if m.data.contains("Subject: b") {
            assert!(
                m.data.contains("Identity-Alignment: none\r\n"),
                "{}",
                m.data
            );
        } else {
            assert!(m.data.contains("Identity-Alignment: spf\r\n"), "{}", m.data);
            assert!(
                m.data
                    .contains("SPF-DNS: txt : bank.test : \"v=spf1 ip4:192.0.2.10 -all\""),
                "{}",
                m.data
            );
        }
        assert!(
            !m.data.contains("alice@"),
            "local parts are redacted: {}",
            m.data
        );
        assert!(!m.data.contains("Hello."), "no body by default");
    }
    milter.stop().await;
}

/// RFC 9990 §4 in detail: the authorisation record may name the
/// destination on the same host; one naming another host refuses both; a
/// record that is not DMARC authorises nothing; a DNS failure defers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn external_destination_rules() {
    use authmilter::reports::authorize::{authorize, Authorization};
    let mut z = Zones::with_origins();
    for t in [
        zone("test", ""),
        zone("shop.test", "_dmarc IN TXT \"v=DMARC1; p=none\"\n"),
        zone(
            "agg.test",
            "shop.test._report._dmarc IN TXT \"v=DMARC1; rua=mailto:other@agg.test\"\n\
             hop.test._report._dmarc IN TXT \"v=DMARC1; rua=mailto:x@elsewhere.test\"\n\
             spf.test._report._dmarc IN TXT \"v=spf1 -all\"\n",
        ),
    ] {
        z.add_zone_text(&t, None);
    }
    let dns = authmilter::dns::Dns::from_zones(&Config::default_config().dns, z.0).unwrap();
    assert_eq!(
        authorize(&dns, "shop.test", "mailto:r@agg.test", "rua").await,
        Authorization::Allowed {
            address: "other@agg.test".into()
        },
        "the override on the same host"
    );
    assert!(matches!(
        authorize(&dns, "hop.test", "mailto:r@agg.test", "rua").await,
        Authorization::Refused(why) if why.contains("another host")
    ));
    assert!(matches!(
        authorize(&dns, "spf.test", "mailto:r@agg.test", "rua").await,
        Authorization::Refused(_)
    ));
    assert!(matches!(
        authorize(&dns, "none.test", "mailto:r@agg.test", "rua").await,
        Authorization::Refused(_)
    ));
    assert_eq!(
        authorize(&dns, "shop.test", "mailto:d@sub.shop.test", "rua").await,
        Authorization::Allowed {
            address: "d@sub.shop.test".into()
        },
        "the same Organizational Domain needs no record"
    );
    assert!(
        matches!(
            authorize(&dns, "shop.test", "mailto:r@down.example", "rua").await,
            Authorization::Temporary(_)
        ),
        "a DNS failure defers, it does not refuse"
    );
    assert!(matches!(
        authorize(&dns, "shop.test", "https://agg.test/in", "rua").await,
        Authorization::Refused(_)
    ));
}
