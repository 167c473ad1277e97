//! Forwarded mail through the real milter protocol: ARC chains (RFC 8617)
//! made here, in the repository, and trusted sealers (local policy,
//! `[arc] trusted_sealers`). The corpus is generated in the public corpus
//! format and replayed by `common::replay` (the milter, then `authmilter
//! check` on the same case, then the check's DNS capture alone).
//!
//! The lists and forwarders seal with `authmilter::checks::arc::seal` (our
//! sealer, itself checked against valimail's suites in
//! `tests/conformance_arc.rs` and against dkimpy's `arcverify` in
//! `integration/run`); authors sign with the test suite's own RFC 6376
//! signer. The rule under test (README, "Forwarded mail"): a DMARC failure
//! is overridden only when the chain validates, trust starts at the newest
//! set and continues only through trusted sealers, and the first such set
//! with a DMARC result for the author domain recorded `dmarc=pass`.

mod common;

use authmilter::{
    checks::arc::seal::{prepend, seal_modified, SealConfig},
    config::Config,
    dns::{zones::ZoneSet, Dns},
};
use common::dkim_sign::{sign, txt_line, Key, Spec};
use serde_json::{json, Value};
use std::path::Path;

/// The list server's address (MAIL FROM bounces@list.test passes SPF).
const LIST_IP: &str = "192.0.2.40";
/// The second forwarder's address.
const FWD_IP: &str = "192.0.2.50";
/// The author's own outbound server.
const AUTHOR_IP: &str = "192.0.2.30";

const TRUST_LIST: &str = "\n[arc]\ntrusted_sealers = [\"list.test\"]\n";
const TRUST_BOTH: &str = "\n[arc]\ntrusted_sealers = [\"list.test\", \"fwd.test\"]\n";
const TRUST_LIST_MILDER: &str =
    "\n[arc]\ntrusted_sealers = [\"list.test\"]\ntrusted_action = \"milder\"\n";

fn zone(origin: &str, records: &str) -> (String, String) {
    (
        origin.to_string(),
        format!(
            "$ORIGIN {origin}.\n$TTL 0\n@ IN SOA ns.{origin}. hostmaster.{origin}. 1 3600 600 86400 0\n{records}"
        ),
    )
}

fn zones() -> Vec<(String, String)> {
    let author_key = Key::ed25519(1);
    let sealer = Key::rsa2048().zone_line("arc");
    vec![
        zone("test", ""),
        zone("2.0.192.in-addr.arpa", ""),
        zone(
            "author.test",
            &format!(
                "@ IN TXT \"v=spf1 ip4:{AUTHOR_IP} -all\"\n_dmarc IN TXT \"v=DMARC1; p=reject\"\n{}",
                author_key.zone_line("s1")
            ),
        ),
        zone(
            "qauthor.test",
            &format!(
                "@ IN TXT \"v=spf1 ip4:{AUTHOR_IP} -all\"\n_dmarc IN TXT \"v=DMARC1; p=quarantine\"\n{}",
                author_key.zone_line("s1")
            ),
        ),
        zone(
            "list.test",
            &format!("@ IN TXT \"v=spf1 ip4:{LIST_IP} -all\"\n{sealer}"),
        ),
        zone(
            "other-list.test",
            &format!("@ IN TXT \"v=spf1 ip4:{LIST_IP} -all\"\n{sealer}"),
        ),
        zone(
            "fwd.test",
            &format!("@ IN TXT \"v=spf1 ip4:{FWD_IP} -all\"\n{sealer}"),
        ),
        // The sealer's key restricted to sha1 (RFC 6376 §3.6.1 h=), and a
        // revoked key (empty p=).
        zone(
            "restricted.test",
            &txt_line(
                "arc._domainkey",
                &Key::rsa2048().record().replacen("k=rsa;", "k=rsa; h=sha1;", 1),
            ),
        ),
        zone("revoked.test", "arc._domainkey IN TXT \"v=DKIM1; k=rsa; p=\"\n"),
        // flaky.example is in no zone here: its names are SERVFAIL (temporary).
    ]
}

fn dns_for(zones: &[(String, String)]) -> Dns {
    let mut z = ZoneSet::with_origins();
    for (_, text) in zones {
        z.add_zone_text(text, None).unwrap();
    }
    Dns::from_zones(&Config::default_config().dns, z).unwrap()
}

/// A post by `from` (`alice@author.test`), DKIM-signed by its domain.
fn post(from_domain: &str, body: &str) -> Vec<u8> {
    let raw = format!(
        "From: Alice <alice@{from_domain}>\r\nTo: team@list.test\r\nSubject: Minutes\r\nDate: Tue, 01 Dec 2026 08:00:00 +0000\r\nMessage-ID: <post1@{from_domain}>\r\n\r\n{body}"
    );
    sign(
        raw.as_bytes(),
        &Key::ed25519(1),
        &Spec::new(from_domain, "s1"),
    )
}

/// What a list does to a post: a subject tag and a footer (the author's
/// DKIM signature no longer verifies).
fn list_rewrite(raw: &[u8]) -> Vec<u8> {
    let text = String::from_utf8(raw.to_vec()).unwrap();
    let text = text.replacen("Subject: Minutes", "Subject: [team] Minutes", 1);
    format!("{text}--\r\nteam mailing list\r\n").into_bytes()
}

/// What the sealer's own authentication recorded for the author's post.
fn results(author: &str, dmarc: &str) -> String {
    format!(
        ";\n\tspf=pass smtp.mailfrom=alice@{author};\n\tdkim=pass header.d={author} header.s=s1;\n\tdmarc={dmarc} header.from={author}"
    )
}

struct Sealer {
    cfg: SealConfig,
}

impl Sealer {
    fn new(dir: &Path, domain: &str, selector: &str) -> Self {
        let file = dir.join(format!("{domain}-{selector}.pem"));
        std::fs::write(&file, common::fixture_pem("rsa2048.pk8")).unwrap();
        let headers = ["From", "To", "Subject", "Date", "Message-ID"]
            .map(String::from)
            .to_vec();
        Self {
            cfg: SealConfig::load(domain, selector, file, headers).unwrap(),
        }
    }

    /// `raw` with one ARC set prepended, as `authserv_id` would add it.
    async fn seal(&self, dns: &Dns, raw: &[u8], authserv_id: &str, aar: &str) -> Vec<u8> {
        self.forward(dns, raw, raw, authserv_id, aar).await
    }

    /// `raw` sealed as the first hop without looking up any key (for sealers
    /// whose keys do not validate here).
    async fn seal_unchecked(&self, raw: &[u8], authserv_id: &str, aar: &str) -> Vec<u8> {
        let dns = dns_for(&[]);
        self.forward(&dns, raw, raw, authserv_id, aar).await
    }

    /// `modified` (what this hop made of `received`) with one ARC set
    /// prepended, `cv=` from the chain as it was received.
    async fn forward(
        &self,
        dns: &Dns,
        received: &[u8],
        modified: &[u8],
        authserv_id: &str,
        aar: &str,
    ) -> Vec<u8> {
        let raw = modified;
        let msg = mail_auth::AuthenticatedMessage::parse(received).unwrap();
        let names = authmilter::checks::arc::key_names(&authmilter::checks::arc::arc_fields(&msg))
            .unwrap_or_default();
        let keys = authmilter::checks::dkim::fetch_named(dns, &names).await;
        let fields = seal_modified(dns, &self.cfg, received, raw, &keys, authserv_id, aar)
            .await
            .unwrap();
        prepend(&fields, raw)
    }
}

struct Corpus {
    msgs: Vec<(String, Vec<u8>)>,
    cases: Vec<Value>,
}

impl Corpus {
    #[allow(clippy::too_many_arguments)]
    fn case(
        &mut self,
        id: &str,
        about: &str,
        ip: &str,
        mail_from: &str,
        raw: Vec<u8>,
        config: &str,
        expect: Value,
    ) {
        let file = format!("msgs/{id}.eml");
        self.msgs.push((file.clone(), raw));
        let mut case = json!({
            "id": id,
            "about": about,
            "client_ip": ip,
            "client_name": "unknown",
            "helo": mail_from.rsplit('@').next().unwrap(),
            "mail_from": mail_from,
            "rcpt": ["bob@recipient.test"],
            "msg": file,
            "expect": expect,
        });
        if !config.is_empty() {
            case["config"] = json!(config);
        }
        self.cases.push(case);
    }
}

/// Replaces the first occurrence of `from` in the header block or body.
fn edit(raw: &[u8], from: &str, to: &str) -> Vec<u8> {
    let text = String::from_utf8(raw.to_vec()).unwrap();
    assert!(text.contains(from), "{from:?} not in the message");
    text.replacen(from, to, 1).into_bytes()
}

async fn build(dir: &Path) -> Corpus {
    let zones = zones();
    let dns = dns_for(&zones);
    let keys = tempfile::tempdir().unwrap();
    let list = Sealer::new(keys.path(), "list.test", "arc");
    let other = Sealer::new(keys.path(), "other-list.test", "arc");
    let fwd = Sealer::new(keys.path(), "fwd.test", "arc");
    let ghost = Sealer::new(keys.path(), "list.test", "unpublished");
    let mut c = Corpus {
        msgs: vec![],
        cases: vec![],
    };
    let lst = "bounces@list.test";
    let list_post = |author: &str| list_rewrite(&post(author, "The minutes are attached.\r\n"));
    let sealed = list
        .seal(
            &dns,
            &list_post("author.test"),
            "list.test",
            &results("author.test", "pass"),
        )
        .await;

    // --- Direct mail -------------------------------------------------------
    c.case(
        "arc-none-direct",
        "RFC 8617 §5.2 step 1: no ARC sets: arc=none; the author's own server, DMARC pass",
        AUTHOR_IP,
        "alice@author.test",
        post("author.test", "Hello.\r\n"),
        TRUST_LIST,
        json!({"arc": "none", "dkim": ["pass"], "dmarc": "pass", "verdict": "accept"}),
    );

    // --- One list hop ------------------------------------------------------
    c.case(
        "arc-list-untrusted-reject",
        "a list post from a p=reject author: the list broke DKIM, SPF is the list's; the chain validates (arc=pass) but no sealer is trusted: DMARC fail rejects",
        LIST_IP,
        lst,
        sealed.clone(),
        "",
        json!({"arc": "pass", "dkim": ["fail"], "spf": "pass", "dmarc": "fail", "dmarc_policy": "reject", "verdict": "reject"}),
    );
    c.case(
        "arc-list-trusted-accept",
        "the same post with list.test trusted: its AAR recorded dmarc=pass for author.test: the failure is overridden (trusted_forwarder)",
        LIST_IP,
        lst,
        sealed.clone(),
        TRUST_LIST,
        json!({"arc": "pass", "dmarc": "fail", "dmarc_policy": "reject", "verdict": "accept"}),
    );
    c.case(
        "arc-list-trusted-milder",
        "trusted_action = milder: a trusted override of p=reject quarantines",
        LIST_IP,
        lst,
        sealed.clone(),
        TRUST_LIST_MILDER,
        json!({"arc": "pass", "dmarc": "fail", "verdict": "quarantine"}),
    );
    c.case(
        "arc-body-changed-after-seal",
        "RFC 8617 §5.2 step 4: the body changed after the newest seal: the AMS body hash fails: arc=fail, nothing is overridden",
        LIST_IP,
        lst,
        edit(&sealed, "The minutes are attached.", "The minutes are NOT attached."),
        TRUST_LIST,
        json!({"arc": "fail", "dmarc": "fail", "verdict": "reject"}),
    );
    c.case(
        "arc-aar-edited-after-seal",
        "RFC 8617 §5.2 step 6: the ARC-Authentication-Results was edited after sealing (a sealer that saw dmarc=fail made to say pass): the seal fails: arc=fail",
        LIST_IP,
        lst,
        edit(
            &list
                .seal(&dns, &list_post("author.test"), "list.test", &results("author.test", "fail"))
                .await,
            "dmarc=fail header.from=author.test",
            "dmarc=pass header.from=author.test",
        ),
        TRUST_LIST,
        json!({"arc": "fail", "dmarc": "fail", "verdict": "reject"}),
    );
    c.case(
        "arc-trusted-sealer-recorded-fail",
        "a trusted sealer whose own AAR says dmarc=fail for the author: never an override",
        LIST_IP,
        lst,
        list.seal(
            &dns,
            &list_post("author.test"),
            "list.test",
            &results("author.test", "fail"),
        )
        .await,
        TRUST_LIST,
        json!({"arc": "pass", "dmarc": "fail", "verdict": "reject"}),
    );
    c.case(
        "arc-trusted-sealer-other-author",
        "the trusted sealer's dmarc=pass is for another domain than the author's",
        LIST_IP,
        lst,
        list.seal(
            &dns,
            &list_post("author.test"),
            "list.test",
            &results("qauthor.test", "pass"),
        )
        .await,
        TRUST_LIST,
        json!({"arc": "pass", "dmarc": "fail", "verdict": "reject"}),
    );
    c.case(
        "arc-untrusted-sealer",
        "a valid chain sealed by other-list.test, which is not trusted (list.test is)",
        LIST_IP,
        lst,
        other
            .seal(
                &dns,
                &list_post("author.test"),
                "other-list.test",
                &results("author.test", "pass"),
            )
            .await,
        TRUST_LIST,
        json!({"arc": "pass", "dmarc": "fail", "verdict": "reject"}),
    );
    c.case(
        "arc-forged-unpublished-key",
        "a seal claiming d=list.test with a selector that has no key: arc=fail",
        LIST_IP,
        lst,
        ghost
            .seal(
                &dns,
                &list_post("author.test"),
                "list.test",
                &results("author.test", "pass"),
            )
            .await,
        TRUST_LIST,
        json!({"arc": "fail", "dmarc": "fail", "verdict": "reject"}),
    );
    c.case(
        "arc-claims-our-authserv-id",
        "an ARC set whose AAR carries our own authserv-id (mx.recipient.test) is forged: we have not sealed it; never trusted",
        LIST_IP,
        lst,
        list.seal(&dns, &list_post("author.test"), "mx.recipient.test", &results("author.test", "pass"))
            .await,
        TRUST_LIST,
        json!({"arc": "pass", "dmarc": "fail", "verdict": "reject"}),
    );
    c.case(
        "arc-quarantine-author-untrusted",
        "a list post from a p=quarantine author, sealer not trusted: quarantine",
        LIST_IP,
        lst,
        list.seal(&dns, &list_post("qauthor.test"), "list.test", &results("qauthor.test", "pass"))
            .await,
        "",
        json!({"arc": "pass", "dmarc": "fail", "dmarc_policy": "quarantine", "verdict": "quarantine"}),
    );
    c.case(
        "arc-quarantine-author-trusted",
        "the same post with list.test trusted: accepted",
        LIST_IP,
        lst,
        list.seal(
            &dns,
            &list_post("qauthor.test"),
            "list.test",
            &results("qauthor.test", "pass"),
        )
        .await,
        TRUST_LIST,
        json!({"arc": "pass", "dmarc": "fail", "dmarc_policy": "quarantine", "verdict": "accept"}),
    );
    for (domain, about) in [
        ("restricted.test", "the sealer's key record says h=sha1: it may not verify rsa-sha256 (RFC 6376 §3.6.1): arc=fail"),
        ("revoked.test", "the sealer's key is revoked (empty p=): arc=fail"),
    ] {
        let sealer = Sealer::new(keys.path(), domain, "arc");
        c.case(
            &format!("arc-key-{}", domain.trim_end_matches(".test")),
            about,
            LIST_IP,
            lst,
            sealer
                .seal_unchecked(&list_post("author.test"), domain, &results("author.test", "pass"))
                .await,
            &format!("\n[arc]\ntrusted_sealers = [\"{domain}\"]\n"),
            json!({"arc": "fail", "dmarc": "fail", "verdict": "reject"}),
        );
    }
    let flaky = Sealer::new(keys.path(), "flaky.example", "arc");
    let flaky_post = flaky
        .seal_unchecked(
            &list_post("author.test"),
            "flaky.example",
            &results("author.test", "pass"),
        )
        .await;
    c.case(
        "arc-trusted-sealer-key-servfail",
        "the trusted sealer's key lookup fails temporarily (SERVFAIL): not a reject on a DNS failure: tempfail, as for a DMARC temperror",
        LIST_IP,
        lst,
        flaky_post.clone(),
        "\n[arc]\ntrusted_sealers = [\"flaky.example\"]\n",
        json!({"arc": "fail", "dmarc": "fail", "verdict": "tempfail"}),
    );
    c.case(
        "arc-untrusted-sealer-key-servfail",
        "the same with the sealer not trusted: the chain could not matter, DMARC fail rejects",
        LIST_IP,
        lst,
        flaky_post,
        TRUST_LIST,
        json!({"arc": "fail", "dmarc": "fail", "verdict": "reject"}),
    );
    let lone_seal = {
        let text = String::from_utf8(sealed.clone()).unwrap();
        let seal_end = text.find("\r\nARC-Message-Signature:").unwrap();
        let mut only = text[..seal_end + 2].to_string();
        only.push_str(&text[text.find("From: Alice").unwrap()..]);
        only.into_bytes()
    };
    c.case(
        "arc-lone-seal",
        "RFC 8617 §5.2 step 3.1: an ARC-Seal without its AMS and AAR: the chain is broken (fail), not absent",
        LIST_IP,
        lst,
        lone_seal,
        TRUST_LIST,
        json!({"arc": "fail", "dmarc": "fail", "verdict": "reject"}),
    );

    // --- Two hops ----------------------------------------------------------
    let second_hop = |raw: &[u8]| {
        let text = String::from_utf8(raw.to_vec()).unwrap();
        format!("{text}-- forwarded by fwd.test\r\n").into_bytes()
    };
    let fwd_results =
        ";\n\tarc=pass;\n\tdkim=fail header.d=author.test;\n\tdmarc=fail header.from=author.test";
    let two_hops = fwd
        .forward(&dns, &sealed, &second_hop(&sealed), "fwd.test", fwd_results)
        .await;
    c.case(
        "arc-two-hops-only-older-trusted",
        "list.test (trusted) then fwd.test (not trusted), which changed the body and sealed: the chain validates, but trust must start at the newest set: reject",
        FWD_IP,
        "relay@fwd.test",
        two_hops.clone(),
        TRUST_LIST,
        json!({"arc": "pass", "dmarc": "fail", "verdict": "reject"}),
    );
    c.case(
        "arc-two-hops-both-trusted-newer-saw-fail",
        "both sealers trusted; the newer one recorded dmarc=fail for the author: the first DMARC result reached decides, never an override",
        FWD_IP,
        "relay@fwd.test",
        two_hops,
        TRUST_BOTH,
        json!({"arc": "pass", "dmarc": "fail", "verdict": "reject"}),
    );
    let fwd_no_dmarc =
        ";\n\tarc=pass header.oldest-pass=0;\n\tspf=pass smtp.mailfrom=bounces@list.test";
    let two_trusted = fwd
        .forward(
            &dns,
            &sealed,
            &second_hop(&sealed),
            "fwd.test",
            fwd_no_dmarc,
        )
        .await;
    c.case(
        "arc-two-hops-both-trusted",
        "both sealers trusted; the newer one recorded no DMARC result, the older one dmarc=pass: overridden through consecutive trusted sealers",
        FWD_IP,
        "relay@fwd.test",
        two_trusted.clone(),
        TRUST_BOTH,
        json!({"arc": "pass", "dmarc": "fail", "verdict": "accept"}),
    );
    c.case(
        "arc-two-hops-newest-trusted-older-not",
        "fwd.test trusted, list.test not: the walk stops at the untrusted older hop before any dmarc=pass",
        FWD_IP,
        "relay@fwd.test",
        two_trusted,
        "\n[arc]\ntrusted_sealers = [\"fwd.test\"]\n",
        json!({"arc": "pass", "dmarc": "fail", "verdict": "reject"}),
    );

    std::fs::create_dir_all(dir.join("zones")).unwrap();
    std::fs::create_dir_all(dir.join("msgs")).unwrap();
    for (origin, text) in &zones {
        std::fs::write(dir.join(format!("zones/{origin}.zone")), text).unwrap();
    }
    for (file, raw) in &c.msgs {
        std::fs::write(dir.join(file), raw).unwrap();
    }
    std::fs::write(
        dir.join("cases.json"),
        serde_json::to_string_pretty(&c.cases).unwrap(),
    )
    .unwrap();
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn arc_cases_through_the_milter() {
    let dir = tempfile::tempdir().unwrap();
    let path = match std::env::var_os("AUTHMILTER_WRITE_ARC_CORPUS") {
        Some(p) => std::path::PathBuf::from(p),
        None => dir.path().to_path_buf(),
    };
    let corpus = build(&path).await;
    assert!(corpus.cases.len() >= 15);
    match common::replay::replay(&path).await {
        Ok(n) => eprintln!("{n} ARC cases passed"),
        Err(f) => panic!("{} ARC cases failed:\n{}", f.len(), f.join("\n")),
    }
}

/// The delivered message: the milter's inserted fields (at their indexes)
/// on top of `raw`.
fn delivered(out: &common::Outcome, raw: &[u8]) -> Vec<u8> {
    use indymilter_test::EomAction;
    let mut inserted: Vec<(i32, String, String)> = out
        .actions
        .actions
        .iter()
        .filter_map(|a| match a {
            EomAction::InsertHeader { index, name, value } => Some((
                *index,
                name.to_str().unwrap().to_string(),
                value.to_str().unwrap().to_string(),
            )),
            _ => None,
        })
        .collect();
    inserted.sort_by_key(|(i, _, _)| *i);
    let mut msg = Vec::new();
    for (_, name, value) in inserted {
        msg.extend_from_slice(format!("{name}:{}\r\n", value.replace('\n', "\r\n")).as_bytes());
    }
    msg.extend_from_slice(raw);
    msg
}

async fn milter_with(
    zones: &[(String, String)],
    extra: &str,
) -> (common::dns_server::TestDns, common::TestMilter) {
    let mut z = common::dns_server::Zones::with_origins();
    for (_, text) in zones {
        z.add_zone_text(text, None);
    }
    let dns = common::dns_server::TestDns::start(z).await;
    let text = common::config_text(dns.addr, "") + extra;
    let milter = common::TestMilter::start(Config::parse(&text, "test").unwrap()).await;
    (dns, milter)
}

/// `[arc] seal = true` through the milter: what we deliver carries our ARC
/// set on top, `cv=` from our validation, and validates (the independent
/// check, dkimpy's arcverify, is `integration/run` scenario 13).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sealing_through_the_milter() {
    let mut zs = zones();
    zs.push(zone("recipient.test", &Key::rsa2048().zone_line("arc")));
    let keys = tempfile::tempdir().unwrap();
    let key_file = keys.path().join("arc.pem");
    std::fs::write(&key_file, common::fixture_pem("rsa2048.pk8")).unwrap();
    let seal_cfg = format!(
        "{TRUST_LIST}seal = true\nseal_domain = \"recipient.test\"\nseal_selector = \"arc\"\nseal_key_file = \"{}\"\n",
        key_file.display()
    );
    let (_dns, milter) = milter_with(&zs, &seal_cfg).await;
    let dns = dns_for(&zs);
    let list = Sealer::new(keys.path(), "list.test", "arc");

    // A list post, sealed i=1 by the trusted list: accepted and sealed i=2.
    let post_raw = list
        .seal(
            &dns,
            &list_rewrite(&post("author.test", "Minutes.\r\n")),
            "list.test",
            &results("author.test", "pass"),
        )
        .await;
    let env = common::Envelope::new(LIST_IP, "list.test", "bounces@list.test");
    let out = common::send(milter.addr, &env, &post_raw).await;
    assert_eq!(out.verdict(), "accept");
    let msg = delivered(&out, &post_raw);
    let text = String::from_utf8_lossy(&msg).to_string();
    assert!(
        text.starts_with("ARC-Seal: i=2; a=rsa-sha256; s=arc; d=recipient.test; cv=pass;"),
        "{text}"
    );
    assert!(text.contains("ARC-Authentication-Results: i=2; mx.recipient.test;"));
    assert!(
        text.contains("override=trusted_forwarder"),
        "our results are copied"
    );
    let ev = authmilter::checks::arc::verify_raw(&dns, &msg).await;
    assert_eq!(ev.result.as_str(), "pass", "{:?}", ev.reason);
    assert_eq!(ev.sealers(), ["recipient.test", "list.test"]);

    // Direct mail: sealed i=1, cv=none.
    let direct = post("author.test", "Hello.\r\n");
    let env = common::Envelope::new(AUTHOR_IP, "author.test", "alice@author.test");
    let out = common::send(milter.addr, &env, &direct).await;
    assert_eq!(out.verdict(), "accept");
    let msg = delivered(&out, &direct);
    assert!(String::from_utf8_lossy(&msg)
        .starts_with("ARC-Seal: i=1; a=rsa-sha256; s=arc; d=recipient.test; cv=none;"));
    assert_eq!(
        authmilter::checks::arc::verify_raw(&dns, &msg)
            .await
            .result
            .as_str(),
        "pass"
    );

    // A body changed after our seal: it no longer validates.
    let mut changed = msg.clone();
    changed.extend_from_slice(b"appended\r\n");
    assert_eq!(
        authmilter::checks::arc::verify_raw(&dns, &changed)
            .await
            .result
            .as_str(),
        "fail"
    );

    // A chain that fails here (a lone ARC-Seal on direct mail, which DMARC
    // passes) is delivered unsealed: we do not vouch for it.
    let broken = [
        b"ARC-Seal: i=1; a=rsa-sha256; d=list.test; s=arc; cv=none; b=AAAA\r\n".as_slice(),
        &post("author.test", "Hello.\r\n"),
    ]
    .concat();
    let env = common::Envelope::new(AUTHOR_IP, "author.test", "alice@author.test");
    let out = common::send(milter.addr, &env, &broken).await;
    assert_eq!(out.verdict(), "accept");
    assert!(out.auth_results().unwrap().contains("arc=fail"));
    let msg = delivered(&out, &broken);
    assert!(
        !String::from_utf8_lossy(&msg).contains("d=recipient.test"),
        "a failed chain was sealed"
    );

    // A rejected message is not sealed (nothing is delivered).
    let spoof = post("author.test", "Hello.\r\n");
    let spoof = edit(&spoof, "Hello.", "Send money.");
    let env = common::Envelope::new(LIST_IP, "list.test", "bounces@list.test");
    let out = common::send(milter.addr, &env, &spoof).await;
    assert_eq!(out.verdict(), "reject");
    milter.stop().await;
}

/// A key file that is not a key is a configuration error naming the file.
#[test]
fn seal_key_errors_are_config_errors() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.pem");
    std::fs::write(
        &bad,
        "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
    )
    .unwrap();
    let text = format!(
        "[arc]\nseal = true\nseal_domain = \"example.com\"\nseal_selector = \"s\"\nseal_key_file = \"{}\"\n",
        bad.display()
    );
    let e = Config::parse(&text, "authmilter.toml")
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("authmilter.toml:5") && e.contains("arc.seal_key_file") && e.contains("bad.pem"),
        "{e}"
    );
    let e = Config::parse("[arc]\nseal = true\n", "authmilter.toml")
        .unwrap_err()
        .to_string();
    assert!(e.contains("arc.seal_domain"), "{e}");
    let e = Config::parse("[arc]\nseal_headers = [\"To\"]\n", "f")
        .unwrap_err()
        .to_string();
    assert!(e.contains("From"), "{e}");
    let e = Config::parse(
        "[arc]\nseal_headers = [\"From\", \"Authentication-Results\"]\n",
        "f",
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("Authentication-Results"), "{e}");
    let e = Config::parse("[arc]\ntrusted_sealers = [\"not a domain\"]\n", "f")
        .unwrap_err()
        .to_string();
    assert!(e.contains("arc.trusted_sealers"), "{e}");
}

/// DKIM2 (mail-auth 0.13.3: draft-ietf-dkim-dkim2-spec-03) through the
/// milter: a signature over the envelope and message reads `dkim2=pass`
/// with its domain and instance; a changed body, or an envelope the
/// signature does not name, does not pass; DMARC does not count DKIM2
/// unless `[dkim2] use_for_dmarc = true`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dkim2_results_through_the_milter() {
    use base64::Engine;
    use mail_auth::{
        common::crypto::Ed25519Key,
        dkim2::{Dkim2Signer, Hop},
    };
    let pk8 = Ed25519Key::generate_pkcs8().unwrap();
    let key = Ed25519Key::from_pkcs8_der(&pk8).unwrap();
    let p = base64::engine::general_purpose::STANDARD.encode(key.public_key());
    // The author publishes DMARC p=reject and a DKIM2 key, and no DKIM.
    let mut zs = zones();
    zs.push(zone(
        "d2.test",
        &format!("_dmarc IN TXT \"v=DMARC1; p=reject\"\nd2._domainkey IN TXT \"v=DKIM1; k=ed25519; p={p}\"\n"),
    ));
    let raw = b"From: Dee <dee@d2.test>\r\nTo: bob@recipient.test\r\nSubject: DKIM2\r\nDate: Tue, 01 Dec 2026 08:00:00 +0000\r\nMessage-ID: <d2@d2.test>\r\n\r\nHello.\r\n".to_vec();
    let signed = Dkim2Signer::from_key(key)
        .domain("d2.test")
        .selector("d2")
        .sign(
            raw.as_slice(),
            Hop::real("dee@d2.test", ["bob@recipient.test"]),
        )
        .unwrap();
    let mut msg = Vec::new();
    signed.write(&mut msg);
    msg.extend_from_slice(&raw);
    let env = common::Envelope::new(LIST_IP, "list.test", "dee@d2.test");
    for (config, verdict) in [
        ("", "reject"),
        ("\n[dkim2]\nuse_for_dmarc = true\n", "accept"),
    ] {
        let (_dns, milter) = milter_with(&zs, config).await;
        let out = common::send(milter.addr, &env, &msg).await;
        assert_eq!(
            out.verdict(),
            verdict,
            "config {config:?}: {:?}",
            out.reply()
        );
        if let Some(ar) = out.auth_results() {
            assert!(
                ar.contains(
                    "dkim2=pass (draft-ietf-dkim-dkim2-spec-03) header.d=d2.test header.i=1"
                ),
                "{ar}"
            );
        }
        let mut changed = msg.clone();
        changed.extend_from_slice(b"more\r\n");
        let out = common::send(milter.addr, &env, &changed).await;
        assert_eq!(out.verdict(), "reject", "a changed body never passes");
        milter.stop().await;
    }
    // Through `check` (the A-R of a rejected message): pass, then not pass.
    let (_dns, milter) = milter_with(&zs, "\n[dkim2]\nuse_for_dmarc = true\n").await;
    let other_rcpt = common::Envelope {
        rcpt: vec!["carol@recipient.test".into()],
        ..common::Envelope::new(LIST_IP, "list.test", "dee@d2.test")
    };
    let out = common::send(milter.addr, &other_rcpt, &msg).await;
    assert_eq!(
        out.verdict(),
        "reject",
        "a recipient the signature does not name"
    );
    milter.stop().await;
}

/// The real daemon with `[metrics]` and a trusted sealer: the override is
/// counted (`authmilter_dmarc_overrides_total{reason="trusted_forwarder"}`),
/// ARC results by word, and the log line names the sealer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overrides_are_counted_and_logged() {
    use common::daemon::{free_port, http_get, wait_listening, Daemon};
    let zs = zones();
    let mut z = common::dns_server::Zones::with_origins();
    for (_, text) in &zs {
        z.add_zone_text(text, None);
    }
    let server = common::dns_server::TestDns::start(z).await;
    let dir = tempfile::tempdir().unwrap();
    let (milter_port, metrics_port) = (free_port(), free_port());
    let conf = dir.path().join("arc.toml");
    let text = common::config_text(server.addr, "").replace(
        "[milter]\n",
        &format!("[milter]\nsocket = \"inet:127.0.0.1:{milter_port}\"\n"),
    ) + &format!("\n[metrics]\naddress = \"127.0.0.1:{metrics_port}\"\n{TRUST_LIST}");
    std::fs::write(&conf, text).unwrap();
    let daemon = Daemon::spawn(&conf, &dir.path().join("arc.log"), Some("info"));
    daemon.wait_logged("authmilter listening", 1).await;
    let metrics: std::net::SocketAddr = ([127, 0, 0, 1], metrics_port).into();
    wait_listening(metrics).await;

    let dns = dns_for(&zs);
    let keys = tempfile::tempdir().unwrap();
    let list = Sealer::new(keys.path(), "list.test", "arc");
    let post_raw = list
        .seal(
            &dns,
            &list_rewrite(&post("author.test", "Minutes.\r\n")),
            "list.test",
            &results("author.test", "pass"),
        )
        .await;
    let milter: std::net::SocketAddr = ([127, 0, 0, 1], milter_port).into();
    let env = common::Envelope::new(LIST_IP, "list.test", "bounces@list.test");
    assert_eq!(
        common::send(milter, &env, &post_raw).await.verdict(),
        "accept"
    );
    let mut changed = post_raw.clone();
    changed.extend_from_slice(b"changed\r\n");
    assert_eq!(
        common::send(milter, &env, &changed).await.verdict(),
        "reject"
    );

    let (status, body) = http_get(metrics, "/metrics").await;
    assert_eq!(status, 200);
    for line in [
        "authmilter_dmarc_overrides_total{reason=\"trusted_forwarder\"} 1",
        "authmilter_results_total{method=\"arc\",result=\"pass\"} 1",
        "authmilter_results_total{method=\"arc\",result=\"fail\"} 1",
    ] {
        assert!(body.lines().any(|l| l == line), "no `{line}` in:\n{body}");
    }
    daemon
        .wait_logged(
            "DMARC failure overridden: trusted ARC sealer recorded dmarc=pass",
            1,
        )
        .await;
    let log = daemon.log_text();
    assert!(log.contains("sealer=\"list.test\""), "{log}");
    assert!(log.contains("arc=pass arc_sealers=\"list.test\""), "{log}");
    assert!(
        log.contains("ARC chain does not override the DMARC failure"),
        "{log}"
    );
}
