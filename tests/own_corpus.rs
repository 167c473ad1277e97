//! The project's own conformance corpus: zones, keys made for the tests,
//! messages signed by the test suite's own RFC 6376 signer
//! (`common::dkim_sign`), and the results the RFCs require. It is generated
//! into a temporary folder in the format of the public corpus
//! (`../shared/corpus/FORMAT.md`, restated in `common::replay`) and replayed
//! through the real milter protocol, so a fresh clone without `../shared`
//! tests DMARC alignment, `sp`/`np`/`psd`, `t=`, policy discovery, From
//! parsing and the DKIM rules a receiver can get wrong.
//!
//! Each case cites the clause it comes from. Set `AUTHMILTER_WRITE_CORPUS`
//! to a folder to keep the generated corpus (to read it, or replay it with
//! another filter).

mod common;

use common::dkim_sign::{sign, Canon, Key, Spec};
use serde_json::{json, Value};
use std::path::Path;

/// The legitimate sender of bank.test, with a forward-confirmed PTR.
const BANK_IP: &str = "192.0.2.10";
/// A host without PTR that no SPF record lists.
const SPOOF_IP: &str = "198.51.100.7";
/// An ESP that sends for several customers.
const ESP_IP: &str = "192.0.2.20";

struct Corpus {
    zones: Vec<(String, String)>,
    msgs: Vec<(String, Vec<u8>)>,
    cases: Vec<Value>,
}

fn zone(origin: &str, records: &str) -> (String, String) {
    (
        origin.to_string(),
        format!(
            "$ORIGIN {origin}.\n$TTL 0\n@ IN SOA ns.{origin}. hostmaster.{origin}. 1 3600 600 86400 0\n{records}"
        ),
    )
}

/// A message with the given From field value (after the colon), extra
/// header lines and body.
fn msg(from: &str, extra: &str, body: &str) -> Vec<u8> {
    format!(
        "{extra}From:{from}\r\nTo: bob@recipient.test\r\nSubject: Your statement\r\nDate: Tue, 01 Dec 2026 08:00:00 +0000\r\nMessage-ID: <m1@example>\r\n\r\n{body}"
    )
    .into_bytes()
}

impl Corpus {
    fn case(
        &mut self,
        id: &str,
        about: &str,
        (ip, helo, mail_from): (&str, &str, &str),
        raw: Vec<u8>,
        expect: Value,
    ) -> &mut Value {
        let file = format!("msgs/{id}.eml");
        self.msgs.push((file.clone(), raw));
        self.cases.push(json!({
            "id": id,
            "about": about,
            "client_ip": ip,
            "client_name": "unknown",
            "helo": helo,
            "mail_from": mail_from,
            "rcpt": ["bob@recipient.test"],
            "msg": file,
            "expect": expect,
        }));
        self.cases.last_mut().unwrap()
    }

    fn write(&self, dir: &Path) {
        std::fs::create_dir_all(dir.join("zones")).unwrap();
        std::fs::create_dir_all(dir.join("msgs")).unwrap();
        for (origin, text) in &self.zones {
            std::fs::write(dir.join(format!("zones/{origin}.zone")), text).unwrap();
        }
        for (file, raw) in &self.msgs {
            std::fs::write(dir.join(file), raw).unwrap();
        }
        let cases = serde_json::to_string_pretty(&self.cases).unwrap();
        std::fs::write(dir.join("cases.json"), cases).unwrap();
    }
}

/// Key records a verifier must refuse (RFC 6376 §3.6.1, §6.1.2): an unknown
/// version, a hash the signature does not use, a key type that is not the
/// signature's, and a `p=` that is no base64.
fn bad_keys(ed: &Key) -> String {
    let rec = ed.record();
    let p = rec.split("p=").nth(1).unwrap();
    format!(
        "kv._domainkey IN TXT \"v=DKIM2; k=ed25519; p={p}\"\nkh._domainkey IN TXT \"v=DKIM1; k=ed25519; h=sha1; p={p}\"\nkk._domainkey IN TXT \"v=DKIM1; k=rsa; p={p}\"\nkp._domainkey IN TXT \"v=DKIM1; k=ed25519; p=!!not-base64!!\"\nks._domainkey IN TXT \"v=DKIM1; k=ed25519; s=web; p={p}\"\n"
    )
}

fn cap_zone(ed: &Key) -> String {
    let mut z = String::from("_dmarc IN TXT \"v=DMARC1; p=reject\"\n");
    for n in 1..=10 {
        z.push_str(&format!("_dmarc.s{n} IN TXT \"v=DMARC1; p=none; psd=n\"\n"));
        z.push_str(
            &ed.zone_line("k")
                .replacen("k._domainkey", &format!("k._domainkey.s{n}"), 1),
        );
    }
    z
}

fn zones() -> Vec<(String, String)> {
    let ed = Key::ed25519(1);
    let ed2 = Key::ed25519(2);
    let rsa = Key::rsa2048();
    vec![
        zone("test", ""),
        zone(
            "2.0.192.in-addr.arpa",
            "10 IN PTR mail.bank.test.\n20 IN PTR mail.esp.test.\n",
        ),
        zone("100.51.198.in-addr.arpa", ""),
        // The spoofer's own domain: no SPF record, no DMARC record.
        zone("evil.test", ""),
        zone(
            "bank.test",
            &format!(
                "@ IN TXT \"v=spf1 ip4:{BANK_IP} -all\"\n_dmarc IN TXT \"v=DMARC1; p=reject\"\nmail IN A {BANK_IP}\nmail IN TXT \"v=spf1 a -all\"\n{}{}{}{}",
                ed.zone_line("s1"),
                rsa.zone_line("r1"),
                Key::rsa4096().zone_line("r4"),
                bad_keys(&ed)
            ),
        ),
        zone(
            "esp.test",
            &format!(
                "@ IN TXT \"v=spf1 ip4:{ESP_IP} -all\"\nmail IN A {ESP_IP}\n{}",
                ed2.zone_line("e1")
            ),
        ),
        // RFC 9989 §4.10.1: a record at an intermediate name is not the policy.
        zone(
            "bigco.test",
            "_dmarc IN TXT \"v=DMARC1; p=reject\"\n_dmarc.region IN TXT \"v=DMARC1; p=none\"\nemea.region IN A 192.0.2.99\n",
        ),
        zone(
            "spco.test",
            "_dmarc IN TXT \"v=DMARC1; p=reject; sp=quarantine\"\n_dmarc.region IN TXT \"v=DMARC1; p=none\"\nemea.region IN A 192.0.2.99\n",
        ),
        // PSD (RFC 9989 §4.10.1, §4.10.2 rule 2).
        zone(
            "psd.test",
            "_dmarc IN TXT \"v=DMARC1; p=reject; psd=y\"\ncity.agency IN A 192.0.2.99\n",
        ),
        zone(
            "orgn.test",
            &format!(
                "@ IN TXT \"v=spf1 ip4:{ESP_IP} -all\"\n_dmarc IN TXT \"v=DMARC1; p=quarantine\"\n_dmarc.unit IN TXT \"v=DMARC1; p=reject; psd=n\"\na.unit IN A 192.0.2.99\n"
            ),
        ),
        zone(
            "ps2.test",
            &format!(
                "_dmarc IN TXT \"v=DMARC1; p=reject\"\n_dmarc.sub IN TXT \"v=DMARC1; p=none; psd=y\"\n{}",
                ed.zone_line("s1")
            ),
        ),
        // sp / np (RFC 9989 §4.7, RFC 8020).
        zone(
            "subs.test",
            "_dmarc IN TXT \"v=DMARC1; p=none; sp=quarantine; np=reject\"\nexists IN A 192.0.2.99\nnodata IN TXT \"no address here\"\ndangling IN CNAME gone.subs.test.\n",
        ),
        zone(
            "nponly.test",
            "_dmarc IN TXT \"v=DMARC1; p=reject; sp=none\"\n",
        ),
        zone(
            "testing.test",
            "_dmarc IN TXT \"v=DMARC1; p=quarantine; t=y\"\n",
        ),
        // Alignment modes (RFC 9989 §4.4).
        zone(
            "strict.test",
            &format!(
                "@ IN TXT \"v=spf1 -all\"\n_dmarc IN TXT \"v=DMARC1; p=reject; adkim=s; aspf=s\"\nbounce IN TXT \"v=spf1 ip4:{ESP_IP} -all\"\n{}mail IN A 192.0.2.99\n",
                ed.zone_line("s1").replacen("s1._domainkey", "s1._domainkey.mail", 1)
            ),
        ),
        zone(
            "relaxed.test",
            &format!(
                "@ IN TXT \"v=spf1 -all\"\n_dmarc IN TXT \"v=DMARC1; p=reject\"\nbounce IN TXT \"v=spf1 ip4:{ESP_IP} -all\"\n{}mail IN A 192.0.2.99\n",
                ed.zone_line("s1").replacen("s1._domainkey", "s1._domainkey.mail", 1)
            ),
        ),
        // Record syntax (RFC 9989 §4.7, §4.8).
        zone("upper.test", "_dmarc IN TXT \"V=DMARC1; P=REJECT\"\n"),
        zone("lowerv.test", "_dmarc IN TXT \"v=dmarc1; p=reject\"\n"),
        zone("spaced.test", "_dmarc IN TXT \"v = DMARC1 ;  p = reject ;\"\n"),
        zone(
            "mixed.test",
            "_dmarc IN TXT \"v=spf1 -all\"\n_dmarc IN TXT \"v=DMARC1; p=reject\"\n",
        ),
        zone(
            "two.test",
            "_dmarc IN TXT \"v=DMARC1; p=reject\"\n_dmarc IN TXT \"v=DMARC1; p=none\"\n",
        ),
        zone("badsp.test", "_dmarc IN TXT \"v=DMARC1; p=reject; sp=bogus\"\n"),
        zone(
            "badsprua.test",
            "_dmarc IN TXT \"v=DMARC1; p=reject; sp=bogus; rua=mailto:agg@badsprua.test\"\n",
        ),
        // Ten signing subdomains, each its own Organizational Domain (psd=n).
        zone("cap.test", &cap_zone(&ed)),
        // RFC 9989 §4.5 / RFC 7208 §3.3: TXT strings are joined.
        zone("split.test", "_dmarc IN TXT \"v=DMARC1; p=\" \"reject\"\n"),
        // Only the author's zone is served: its parent answers SERVFAIL.
        zone("a.errwalk.example", ""),
        zone("vsecond.test", "_dmarc IN TXT \"p=reject; v=DMARC1\"\n"),
        zone(
            "invalsub.test",
            "_dmarc IN TXT \"v=DMARC1; p=reject\"\n_dmarc.sub IN TXT \"v=DMARC1; p=rejectt\"\nsub IN A 192.0.2.99\n",
        ),
        zone(
            "nop-rua.test",
            "_dmarc IN TXT \"v=DMARC1; rua=mailto:agg@nop-rua.test\"\n",
        ),
        zone("nop.test", "_dmarc IN TXT \"v=DMARC1; adkim=r\"\n"),
        zone(
            "badrua.test",
            "_dmarc IN TXT \"v=DMARC1; p=bogus; rua=not a uri\"\n",
        ),
    ]
}

fn build() -> Corpus {
    let ed = Key::ed25519(1);
    let ed2 = Key::ed25519(2);
    let rsa = Key::rsa2048();
    let mut c = Corpus {
        zones: zones(),
        msgs: vec![],
        cases: vec![],
    };
    let bank = (BANK_IP, "mail.bank.test", "alerts@bank.test");
    let spoof = (SPOOF_IP, "mail.evil.test", "x@evil.test");
    let esp = (ESP_IP, "mail.esp.test", "bounce@esp.test");
    let bank_from = " Bank <alerts@bank.test>";
    let signed = |raw: Vec<u8>, spec: &Spec, key: &Key| sign(&raw, key, spec);
    let bank_spec = Spec::new("bank.test", "s1");

    // --- DKIM: canonicalization (RFC 6376 §3.4) -------------------------
    for (id, body, canon) in [
        (
            "dkim-relaxed-whitespace-only-lines",
            "text\r\n \r\n\t\r\n",
            Canon::Relaxed,
        ),
        (
            "dkim-relaxed-wsp-runs-and-trailing-wsp",
            "a  \t b \r\n  c\t\r\n\r\n\r\n",
            Canon::Relaxed,
        ),
        ("dkim-relaxed-empty-body", "", Canon::Relaxed),
        (
            "dkim-relaxed-only-blank-lines",
            "\r\n \r\n\r\n",
            Canon::Relaxed,
        ),
        (
            "dkim-simple-trailing-blank-lines",
            "text\r\n\r\n\r\n",
            Canon::Simple,
        ),
        ("dkim-simple-empty-body", "", Canon::Simple),
    ] {
        let spec = Spec {
            body_canon: canon,
            header_canon: canon,
            ..Spec::new("bank.test", "s1")
        };
        for chunk in [65535, 1, 3] {
            let raw = signed(msg(bank_from, "", body), &spec, &ed);
            c.case(
                &format!("{id}-chunk{chunk}"),
                "RFC 6376 §3.4.3/§3.4.4 canonical body, whatever the milter chunking; DKIM is the only aligned pass (SPF fails)",
                spoof,
                raw,
                json!({"spf": "none", "dkim": ["pass"], "dmarc": "pass", "verdict": "accept"}),
            )["chunk"] = json!(chunk);
        }
    }
    let raw = signed(
        msg(
            " Bank\r\n  <alerts@bank.test>",
            "X-Folded: a\r\n\t  b  \r\n",
            "Hi.\r\n",
        ),
        &Spec {
            headers: &["from", "x-folded", "subject"],
            ..Spec::new("bank.test", "r1")
        },
        &rsa,
    );
    c.case(
        "dkim-rsa-relaxed-folded-headers",
        "RFC 6376 §3.4.2: relaxed header canonicalization unfolds and compresses WSP; RSA-SHA256",
        spoof,
        raw,
        json!({"dkim": ["pass"], "dmarc": "pass", "verdict": "accept"}),
    );
    let raw = signed(
        msg(bank_from, "", "Hi.\r\n"),
        &Spec {
            headers: &["from", "from", "subject", "subject"],
            ..Spec::new("bank.test", "s1")
        },
        &ed,
    );
    c.case(
        "dkim-oversigned-headers",
        "RFC 6376 §5.4.2: a name listed more often than it occurs hashes as empty",
        spoof,
        raw,
        json!({"dkim": ["pass"], "dmarc": "pass", "verdict": "accept"}),
    );

    // --- DKIM: validity (RFC 6376 §5.4, §6.1.1) --------------------------
    let raw = signed(
        msg(bank_from, "", "Pay now.\r\n"),
        &Spec {
            headers: &["to", "subject", "date"],
            ..Spec::new("bank.test", "s1")
        },
        &ed,
    );
    c.case(
        "dkim-from-not-signed",
        "RFC 6376 §5.4/§6.1.1: From MUST be signed; a signature without it is invalid and never aligns",
        spoof,
        raw,
        json!({"dkim": ["permerror"], "dmarc": "fail", "dmarc_policy": "reject", "verdict": "reject"}),
    );
    c.case(
        "dkim-unparsable-signature",
        "RFC 6376 §6.1.1: a signature that does not parse is permerror, never dkim=none",
        spoof,
        msg(
            bank_from,
            "DKIM-Signature: v=1; a=rsa-sha256; d=bank.test; s=s1; h=from; bh=!!!; b=???\r\n",
            "x\r\n",
        ),
        json!({"dkim": ["permerror"], "dmarc": "fail", "verdict": "reject"}),
    );
    let raw = signed(
        msg(bank_from, "", "Hi.\r\n"),
        &Spec {
            extra: "i=@other.test",
            ..Spec::new("bank.test", "s1")
        },
        &ed,
    );
    c.case(
        "dkim-i-outside-d",
        "RFC 6376 §6.1.1: i= must be d= or a subdomain of it",
        spoof,
        raw,
        json!({"dkim": [["fail", "permerror", "neutral"]], "dmarc": "fail", "verdict": "reject"}),
    );
    let raw = signed(
        msg(bank_from, "", "Hi.\r\n"),
        &Spec {
            extra: "t=1600000000; x=1600000100",
            ..Spec::new("bank.test", "s1")
        },
        &ed,
    );
    c.case(
        "dkim-expired",
        "RFC 6376 §3.5 x=: an expired signature is not a pass",
        spoof,
        raw,
        json!({"dkim": [["neutral", "fail", "permerror", "policy"]], "dmarc": "fail", "verdict": "reject"}),
    );
    let mut tampered = signed(msg(bank_from, "", "Pay 10.\r\n"), &bank_spec, &ed);
    let n = tampered.len();
    tampered[n - 5] = b'9';
    c.case(
        "dkim-body-changed",
        "RFC 6376 §6.1.3: body hash mismatch is a failure",
        spoof,
        tampered,
        json!({"dkim": ["fail"], "dmarc": "fail", "verdict": "reject"}),
    );

    // --- Local limits never make DMARC fail (issue 9 item 5) -------------
    let big_body = "x".repeat(80) + "\r\n";
    let raw = signed(msg(bank_from, "", &big_body.repeat(40)), &bank_spec, &ed);
    c.case(
        "limit-message-size-dkim-only-alignment",
        "a signature not verified because of limits.max_message_size is not a DMARC failure: never rejected; quarantined by default (policy.dkim_over_limit)",
        spoof,
        raw,
        json!({"dkim": ["policy"], "dmarc": "permerror", "verdict": "quarantine"}),
    )["config"] = json!("\n[limits]\nmax_message_size = 2048\n");
    let first = signed(msg(bank_from, "", "Hi.\r\n"), &bank_spec, &ed);
    let raw = signed(first, &Spec::new("esp.test", "e1"), &ed2);
    c.case(
        "limit-max-signatures-alignable-first",
        "over limits.max_signatures the signatures that may align with From are verified first: the bank.test signature (second in header order) is the one verified",
        spoof,
        raw,
        json!({"dkim": ["policy", "pass"], "dmarc": "pass", "verdict": "accept"}),
    )["config"] = json!("\n[limits]\nmax_signatures = 1\n");

    let mut junk = msg(bank_from, "", "Pay now.\r\n");
    for n in 0..11 {
        junk = signed(junk, &Spec::new("bank.test", &format!("x{n}")), &ed);
    }
    c.case(
        "limit-max-signatures-no-escape",
        "eleven d=bank.test signatures without keys: ten verified (permerror), the eleventh not verified counts as no signature; the spoof is still rejected",
        spoof,
        junk,
        json!({"dmarc": "fail", "verdict": "reject"}),
    )["config"] = json!("\n[limits]\nmax_signatures = 10\n");
    c.case(
        "limit-message-size-p-none",
        "a local limit never makes the verdict stricter than the domain's own policy would on failure (p=none: accept)",
        spoof,
        signed(
            msg(" x@testing.test", "", &"y".repeat(3000)),
            &Spec::new("testing.test", "s1"),
            &ed,
        ),
        json!({"dkim": ["policy"], "dmarc": "permerror", "verdict": "accept"}),
    )["config"] = json!("\n[limits]\nmax_message_size = 2048\n");

    // --- DMARC policy discovery (RFC 9989 §4.10.1) -----------------------
    c.case(
        "dmarc-intermediate-record-is-not-the-policy",
        "From emea.region.bigco.test: _dmarc.region.bigco.test (p=none) is neither the Author Domain nor the Organizational Domain; bigco.test's p=reject applies",
        spoof,
        msg(" x@emea.region.bigco.test", "", "x\r\n"),
        json!({"dmarc": "fail", "dmarc_policy": "reject", "verdict": "reject"}),
    );
    c.case(
        "dmarc-intermediate-record-sp",
        "as above with sp=quarantine at the Organizational Domain",
        spoof,
        msg(" x@emea.region.spco.test", "", "x\r\n"),
        json!({"dmarc": "fail", "dmarc_policy": "quarantine", "verdict": "quarantine"}),
    );
    c.case(
        "dmarc-psd-policy",
        "no record at city.agency.psd.test or agency.psd.test: the PSD record (psd=y) applies",
        spoof,
        msg(" x@city.agency.psd.test", "", "x\r\n"),
        json!({"dmarc": "fail", "dmarc_policy": "reject", "verdict": "reject"}),
    );
    c.case(
        "dmarc-psd-n-is-the-org-domain",
        "psd=n at unit.orgn.test makes it the Organizational Domain: SPF pass for orgn.test does not align with a.unit.orgn.test",
        (ESP_IP, "mail.esp.test", "bounce@orgn.test"),
        msg(" x@a.unit.orgn.test", "", "x\r\n"),
        json!({"spf": "pass", "dmarc": "fail", "dmarc_policy": "reject", "verdict": "reject"}),
    );
    let raw = signed(
        msg(" x@sub.ps2.test", "", "x\r\n"),
        &Spec::new("ps2.test", "s1"),
        &ed,
    );
    c.case(
        "dmarc-psd-y-on-the-starting-domain",
        "RFC 9989 §4.10.2 rule 2 excludes psd=y on the domain where the walk starts: the Organizational Domain of sub.ps2.test is ps2.test, so d=ps2.test aligns",
        spoof,
        raw,
        json!({"dkim": ["pass"], "dmarc": "pass", "dmarc_policy": "none", "verdict": "accept"}),
    );

    // --- sp / np (RFC 9989 §4.7, RFC 8020) --------------------------------
    for (id, from, policy, verdict) in [
        (
            "dmarc-sp-existing",
            "exists.subs.test",
            "quarantine",
            "quarantine",
        ),
        (
            "dmarc-sp-nodata-exists",
            "nodata.subs.test",
            "quarantine",
            "quarantine",
        ),
        (
            "dmarc-sp-dangling-cname-exists",
            "dangling.subs.test",
            "quarantine",
            "quarantine",
        ),
        ("dmarc-np-nxdomain", "ghost.subs.test", "reject", "reject"),
        ("dmarc-no-np-uses-sp", "ghost.nponly.test", "none", "accept"),
        ("dmarc-org-domain-uses-p", "subs.test", "none", "accept"),
    ] {
        c.case(
            id,
            "p for the domain itself, sp for an existing subdomain (NODATA and a CNAME mean it exists), np for a non-existent one, each falling back",
            spoof,
            msg(&format!(" x@{from}"), "", "x\r\n"),
            json!({"dmarc": "fail", "dmarc_policy": policy, "verdict": verdict}),
        );
    }
    c.case(
        "dmarc-t-y-quarantine-to-none",
        "RFC 9989 §4.7 t=y: one level below the published policy (quarantine → none)",
        spoof,
        msg(" x@testing.test", "", "x\r\n"),
        json!({"dmarc": "fail", "dmarc_policy": "quarantine", "verdict": "accept"}),
    );

    // --- Alignment (RFC 9989 §4.4) ---------------------------------------
    let strict_mail = Spec::new("mail.strict.test", "s1");
    let relaxed_mail = Spec::new("mail.relaxed.test", "s1");
    c.case(
        "dmarc-adkim-s-subdomain-fails",
        "adkim=s: d=mail.strict.test is not identical to strict.test",
        spoof,
        signed(msg(" x@strict.test", "", "x\r\n"), &strict_mail, &ed),
        json!({"dkim": ["pass"], "dmarc": "fail", "verdict": "reject"}),
    );
    c.case(
        "dmarc-adkim-r-subdomain-aligns",
        "adkim=r: d=mail.relaxed.test shares the Organizational Domain relaxed.test",
        spoof,
        signed(msg(" x@relaxed.test", "", "x\r\n"), &relaxed_mail, &ed),
        json!({"dkim": ["pass"], "dmarc": "pass", "verdict": "accept"}),
    );
    c.case(
        "dmarc-aspf-s-subdomain-fails",
        "aspf=s: SPF pass for bounce.strict.test is not identical to strict.test",
        (ESP_IP, "mail.esp.test", "b@bounce.strict.test"),
        msg(" x@strict.test", "", "x\r\n"),
        json!({"spf": "pass", "dmarc": "fail", "verdict": "reject"}),
    );
    c.case(
        "dmarc-aspf-r-subdomain-aligns",
        "aspf=r: SPF pass for bounce.relaxed.test aligns with relaxed.test",
        (ESP_IP, "mail.esp.test", "b@bounce.relaxed.test"),
        msg(" x@relaxed.test", "", "x\r\n"),
        json!({"spf": "pass", "dmarc": "pass", "verdict": "accept"}),
    );
    c.case(
        "dmarc-unrelated-pass-does-not-align",
        "SPF and DKIM pass for esp.test do not align with bank.test",
        esp,
        signed(
            msg(bank_from, "", "x\r\n"),
            &Spec::new("esp.test", "e1"),
            &ed2,
        ),
        json!({"spf": "pass", "dkim": ["pass"], "dmarc": "fail", "verdict": "reject"}),
    );

    // --- Record syntax (RFC 9989 §4.7, §4.8, §4.10.1) ---------------------
    for (id, from, dmarc, policy, verdict, about) in [
        (
            "dmarc-record-tag-names-any-case",
            "upper.test",
            "fail",
            "reject",
            "reject",
            "ABNF literals are case-insensitive: V=DMARC1; P=REJECT is a record",
        ),
        (
            "dmarc-record-version-case-sensitive",
            "lowerv.test",
            "none",
            "absent",
            "accept",
            "the v value is %s\"DMARC1\": v=dmarc1 is not a record",
        ),
        (
            "dmarc-record-wsp-around-separators",
            "spaced.test",
            "fail",
            "reject",
            "reject",
            "dmarc-sep and equals allow WSP",
        ),
        (
            "dmarc-record-beside-other-txt",
            "mixed.test",
            "fail",
            "reject",
            "reject",
            "records not starting with v=DMARC1 are discarded before counting",
        ),
        (
            "dmarc-record-two-records",
            "two.test",
            "none",
            "absent",
            "accept",
            "several DMARC records are all discarded",
        ),
        (
            "dmarc-record-invalid-sp-no-rua",
            "badsp.test",
            "none",
            "absent",
            "accept",
            "an invalid sp and no valid rua: no DMARC processing",
        ),
        (
            "dmarc-record-invalid-sp-with-rua",
            "badsprua.test",
            "fail",
            "none",
            "accept",
            "an invalid sp with a valid rua: as if p=none",
        ),
        (
            "dmarc-record-invalid-rua-uri",
            "badrua.test",
            "none",
            "absent",
            "accept",
            "an invalid p with a rua that is no URI: no DMARC processing",
        ),
    ] {
        c.case(
            id,
            about,
            spoof,
            msg(&format!(" x@{from}"), "", "x\r\n"),
            json!({"dmarc": dmarc, "dmarc_policy": policy, "verdict": verdict}),
        );
    }

    // --- The Author Domain (RFC 9989 §5.3.1, RFC 5322 §3.4, §3.6.2) -------
    for (id, from) in [
        ("from-comment-before-domain", " security@(comment)bank.test"),
        (
            "from-comment-after-domain",
            " security@bank.test (Security Team)",
        ),
        ("from-cfws-around-at", " security @ bank . test"),
        (
            "from-quoted-at-in-local-part",
            " \"x@evil.example\"@bank.test",
        ),
        (
            "from-quoted-display-name-with-address",
            " \"support@evil.example\" <security@bank.test>",
        ),
        (
            "from-obs-route",
            " <@relay.evil.example:security@bank.test>",
        ),
        ("from-group", " Bank Team: security@bank.test;"),
        ("from-folded", " Bank\r\n Security\r\n <security@BANK.test>"),
    ] {
        c.case(
            id,
            "legal RFC 5322 From syntax still names bank.test (p=reject): the spoof is rejected",
            spoof,
            msg(from, "", "x\r\n"),
            json!({"dmarc": "fail", "dmarc_policy": "reject", "verdict": "reject"}),
        );
    }
    c.case(
        "from-missing",
        "RFC 5322 §3.6: From is required; without one DMARC cannot apply: rejected by default (policy.invalid_from)",
        spoof,
        b"To: bob@recipient.test\r\nSubject: no From\r\n\r\nx\r\n".to_vec(),
        json!({"verdict": "reject", "reply": "550 5.7.1"}),
    );
    c.case(
        "from-empty-group",
        "a From without any mailbox cannot be evaluated: rejected by default",
        spoof,
        msg(" Undisclosed:;", "", "x\r\n"),
        json!({"verdict": "reject", "reply": "550 5.7.1"}),
    );
    c.case(
        "from-unparsable",
        "a From that does not parse is read leniently: every @domain in it counts, so the spoof of bank.test (p=reject) is still rejected",
        spoof,
        msg(" security@bank.test <", "", "x\r\n"),
        json!({"dmarc": "fail", "verdict": "reject", "reply": "550 5.7.1"}),
    );
    c.case(
        "from-missing-accept-is-explicit",
        "policy.invalid_from = accept is an explicit choice",
        spoof,
        b"To: bob@recipient.test\r\nSubject: no From\r\n\r\nx\r\n".to_vec(),
        json!({"dmarc": "permerror", "verdict": "accept"}),
    )["config"] = json!("invalid_from = \"accept\"\n");
    c.case(
        "from-two-domains-one-unserved",
        "several From domains, one whose policy lookup fails: temperror, not the milder policies found so far",
        spoof,
        msg(" a@testing.test, b@unserved.example", "", "x\r\n"),
        json!({"dmarc": "temperror", "verdict": "tempfail"}),
    );
    c.case(
        "from-two-domains-reject-found",
        "several From domains, one p=reject: the lookup that failed cannot make it milder than reject",
        spoof,
        msg(" a@bank.test, b@unserved.example", "", "x\r\n"),
        json!({"dmarc": "fail", "dmarc_policy": "reject", "verdict": "reject"}),
    );
    c.case(
        "from-reject-domain-behind-five-others",
        "more From domains than are looked up (5): never evaluated on a subset that could hide bank.test; invalid From",
        spoof,
        msg(" a@d1.test, a@d2.test, a@d3.test, a@d4.test, a@d5.test, ceo@bank.test", "", "x\r\n"),
        json!({"verdict": "reject", "reply": "550 5.7.1"}),
    );
    for (id, from) in [
        (
            "from-lenient-comma-in-display-name",
            " Bank, Security <security@bank.test>",
        ),
        (
            "from-lenient-brackets-in-display-name",
            " Security [Bank] <security@bank.test>",
        ),
        (
            "from-lenient-address-as-display-name",
            " security@bank.test <security@bank.test>",
        ),
    ] {
        c.case(
            id,
            "common non-RFC-5322 From forms are read leniently, not rejected as invalid: the spoof of bank.test gets bank.test's policy",
            spoof,
            msg(from, "", "x\r\n"),
            json!({"dmarc": "fail", "dmarc_policy": "reject", "verdict": "reject", "reply": "550 5.7.1 Email from bank.test"}),
        );
    }
    c.case(
        "from-two-fields",
        "RFC 5322 §3.6: one From field; with two, never a pass",
        bank,
        msg(bank_from, "From: other@bank.test\r\n", "x\r\n"),
        json!({"spf": "pass", "dmarc": "fail", "verdict": "reject"}),
    );

    // --- More DKIM validity (RFC 6376 §3.5, §6.1.1, §6.1.2, RFC 8301) ------
    // Each malformed signature is signed as it stands, so only the rule
    // under test can make it fail.
    let all: &[&str] = &["from", "to", "subject", "date", "message-id"];
    for (id, edit, headers, about) in [
        (
            "dkim-signature-version-2",
            ("v=1;", "v=2;"),
            all,
            "RFC 6376 §6.1.1: a v= other than 1 is PERMFAIL (incompatible version)",
        ),
        (
            "dkim-signature-missing-selector",
            (" s=s1;", ""),
            all,
            "RFC 6376 §6.1.1: a signature without a required tag (s=) is PERMFAIL",
        ),
        (
            "dkim-invalid-d",
            (" d=bank.test;", " d=bank..test;"),
            all,
            "RFC 6376 §3.5 d=: not a domain name: PERMFAIL",
        ),
        (
            "dkim-empty-h",
            ("h=;", "h=;"),
            &[][..],
            "RFC 6376 §3.5 h=: an empty list (it cannot sign From) is PERMFAIL",
        ),
    ] {
        c.case(
            id,
            about,
            spoof,
            signed(
                msg(bank_from, "", "Hi.\r\n"),
                &Spec {
                    edit: Some(edit),
                    headers,
                    ..Spec::new("bank.test", "s1")
                },
                &ed,
            ),
            json!({"dkim": ["permerror"], "dmarc": "fail", "verdict": "reject"}),
        );
    }
    for (sel, about) in [
        (
            "kv",
            "RFC 6376 §3.6.1 v=: a key record with an unknown version is unusable",
        ),
        (
            "kh",
            "RFC 6376 §3.6.1 h=: the key allows only sha1, the signature uses sha256",
        ),
        (
            "kk",
            "RFC 6376 §6.1.2 step 6: the key type (k=rsa) is not the signature's",
        ),
        (
            "kp",
            "RFC 6376 §6.1.2: a p= that does not decode is PERMFAIL",
        ),
        (
            "ks",
            "RFC 6376 §3.6.1 s=: a key for another service (s=web) MUST be ignored",
        ),
    ] {
        c.case(
            &format!("dkim-bad-key-{sel}"),
            about,
            spoof,
            signed(msg(bank_from, "", "Hi.\r\n"), &Spec::new("bank.test", sel), &ed),
            json!({"dkim": [["permerror", "neutral", "fail"]], "dmarc": "fail", "verdict": "reject"}),
        );
    }
    c.case(
        "dkim-rsa-4096",
        "RFC 8301 §3.2: verifiers MUST be able to validate keys of 1024 to 4096 bits",
        spoof,
        signed(
            msg(bank_from, "", "Hi.\r\n"),
            &Spec::new("bank.test", "r4"),
            &Key::rsa4096(),
        ),
        json!({"dkim": ["pass"], "dmarc": "pass", "verdict": "accept"}),
    );
    c.case(
        "dkim-unknown-tag-ignored",
        "RFC 6376 §3.2, §3.5: unknown tags and unrecognized query methods (q=foo/bar before dns/txt) MUST be ignored",
        spoof,
        signed(
            msg(bank_from, "", "Hi.\r\n"),
            &Spec {
                extra: "foo=bar; q=foo/bar:dns/txt",
                ..Spec::new("bank.test", "s1")
            },
            &ed,
        ),
        json!({"dkim": ["pass"], "dmarc": "pass", "verdict": "accept"}),
    );
    for (id, c_tag, hc, bc, about) in [
        (
            "dkim-c-one-word-relaxed",
            Some("relaxed"),
            Canon::Relaxed,
            Canon::Simple,
            "RFC 6376 §3.5 c=: c=relaxed means relaxed headers, simple body",
        ),
        (
            "dkim-c-absent-simple",
            Some(""),
            Canon::Simple,
            Canon::Simple,
            "RFC 6376 §3.5 c=: no c= means simple/simple",
        ),
    ] {
        c.case(
            id,
            about,
            spoof,
            signed(
                msg(bank_from, "", "Body  with  spaces \r\n"),
                &Spec {
                    c_tag,
                    header_canon: hc,
                    body_canon: bc,
                    ..Spec::new("bank.test", "s1")
                },
                &ed,
            ),
            json!({"dkim": ["pass"], "dmarc": "pass", "verdict": "accept"}),
        );
    }
    let two_tags = signed(
        msg(bank_from, "X-Tag: first\r\nX-Tag: second\r\n", "x\r\n"),
        &Spec {
            headers: &["from", "x-tag", "subject"],
            ..Spec::new("bank.test", "s1")
        },
        &ed,
    );
    c.case(
        "dkim-instances-bottom-up",
        "RFC 6376 §5.4.2: h= takes instances from the bottom up (the second X-Tag is signed)",
        spoof,
        two_tags.clone(),
        json!({"dkim": ["pass"], "dmarc": "pass", "verdict": "accept"}),
    );
    let swapped = String::from_utf8(two_tags).unwrap().replacen(
        "X-Tag: first\r\nX-Tag: second",
        "X-Tag: second\r\nX-Tag: first",
        1,
    );
    c.case(
        "dkim-instances-swapped-fail",
        "RFC 6376 §5.4.2: swapping two instances of a signed field changes the bottom one: fail",
        spoof,
        swapped.into_bytes(),
        json!({"dkim": ["fail"], "dmarc": "fail", "verdict": "reject"}),
    );
    c.case(
        "dkim-t-far-future-ok",
        "RFC 6376 §3.5 t=: timestamps up to 10^12 are valid (no x=: never expires)",
        spoof,
        signed(
            msg(bank_from, "", "x\r\n"),
            &Spec {
                extra: "t=999999999999",
                ..Spec::new("bank.test", "s1")
            },
            &ed,
        ),
        json!({"dkim": ["pass"], "dmarc": "pass", "verdict": "accept"}),
    );
    for (id, from, dmarc, policy, verdict, about) in [
        (
            "dmarc-record-v-not-first",
            "vsecond.test",
            "none",
            "absent",
            "accept",
            "RFC 9989 §4.7 v=: not the first tag: the record MUST be ignored",
        ),
        (
            "dmarc-record-no-p-with-rua",
            "nop-rua.test",
            "fail",
            "none",
            "accept",
            "RFC 9989 §4.10.1: no p but a valid rua: as if p=none",
        ),
        (
            "dmarc-record-no-p-no-rua",
            "nop.test",
            "none",
            "absent",
            "accept",
            "RFC 9989 §4.10.1: no p and no rua: no DMARC processing",
        ),
        (
            "dmarc-record-invalid-at-author-stops",
            "sub.invalsub.test",
            "none",
            "absent",
            "accept",
            "RFC 9989 §4.10.1: the Author Domain's own record has no valid p and no rua: no DMARC processing, the parent's p=reject is not looked for",
        ),
    ] {
        c.case(
            id,
            about,
            spoof,
            msg(&format!(" x@{from}"), "", "x\r\n"),
            json!({"dmarc": dmarc, "dmarc_policy": policy, "verdict": verdict}),
        );
    }
    c.case(
        "dmarc-domains-compare-case-insensitively",
        "RFC 9989 §4.4 / DNS: From x@Bank.TEST aligns with d=BANK.test",
        spoof,
        signed(
            msg(" x@Bank.TEST", "", "Hi.\r\n"),
            &Spec::new("BANK.test", "s1"),
            &ed,
        ),
        json!({"dkim": ["pass"], "dmarc": "pass", "verdict": "accept"}),
    );
    c.case(
        "dmarc-record-split-strings",
        "RFC 9989 §4.5: a record in several TXT character-strings is one record (\"v=DMARC1; p=\" \"reject\")",
        spoof,
        msg(" x@split.test", "", "x\r\n"),
        json!({"dmarc": "fail", "dmarc_policy": "reject", "verdict": "reject"}),
    );
    c.case(
        "dmarc-walk-error-above-the-author",
        "RFC 9989 §4.10.1: a DNS failure on the tree walk leaves the policy unknown: temperror, never \"no record\"",
        spoof,
        msg(" x@a.errwalk.example", "", "x\r\n"),
        json!({"dmarc": "temperror", "verdict": "tempfail"}),
    );
    c.case(
        "dmarc-helo-pass-does-not-align",
        "RFC 9989 §4.4.2: with a non-null MAIL FROM the SPF identifier is the MAIL FROM domain; a HELO pass for mail.bank.test does not align",
        (BANK_IP, "mail.bank.test", "x@evil.test"),
        msg(bank_from, "", "x\r\n"),
        json!({"spf": "none", "spf_helo": "pass", "dmarc": "fail", "verdict": "reject"}),
    );
    c.case(
        "dmarc-null-sender-helo-aligns",
        "RFC 9989 §4.4.2 / RFC 7208 §2.4: for the null sender the HELO identity is the SPF identifier",
        (BANK_IP, "mail.bank.test", ""),
        msg(" mailer-daemon@mail.bank.test", "", "x\r\n"),
        json!({"spf": "pass", "dmarc": "pass", "verdict": "accept"}),
    );

    let mut many = msg(" x@cap.test", "", "x\r\n");
    for n in 1..=10 {
        many = signed(many, &Spec::new(&format!("s{n}.cap.test"), "k"), &ed);
    }
    c.case(
        "dmarc-alignment-walks-are-bounded",
        "at most 10 Organizational Domain walks per message (OpenDMARC #433, mailauth's cap): past it the result is temperror, never a pass or a fail",
        spoof,
        many,
        json!({"dmarc": "temperror", "verdict": "tempfail"}),
    );
    c.case(
        "spf-source-routed-mail-from",
        "RFC 7208 §2.4 / RFC 5321 §4.1.2: a source route in MAIL FROM is ignored; SPF checks the mailbox's domain",
        (BANK_IP, "mail.bank.test", "@relay.example:alerts@bank.test"),
        msg(bank_from, "", "x\r\n"),
        json!({"spf": "pass", "dmarc": "pass", "verdict": "accept"}),
    );

    // --- Client addresses --------------------------------------------------
    c.case(
        "client-ipv4-mapped-ipv6",
        "an IPv4-mapped IPv6 client (::ffff:192.0.2.10) is the IPv4 client for SPF and iprev",
        ("::ffff:192.0.2.10", "mail.bank.test", "alerts@bank.test"),
        msg(bank_from, "", "x\r\n"),
        json!({"spf": "pass", "iprev": "pass", "dmarc": "pass", "verdict": "accept"}),
    );
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn own_corpus_cases() {
    let corpus = build();
    let dir = tempfile::tempdir().unwrap();
    let path = match std::env::var_os("AUTHMILTER_WRITE_CORPUS") {
        Some(p) => std::path::PathBuf::from(p),
        None => dir.path().to_path_buf(),
    };
    corpus.write(&path);
    match common::replay::replay(&path).await {
        Ok(n) => eprintln!("{n} own corpus cases passed"),
        Err(f) => panic!("{} own corpus cases failed:\n{}", f.len(), f.join("\n")),
    }
}
