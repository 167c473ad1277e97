//! Public DKIM vectors (`../shared/conformance/dkim/`, see its README §3)
//! through authmilter's real verification path.
//!
//! - `mail-auth/00{1..6}.txt` (mail-auth 0.15.1 `resources/dkim/`): DNS
//!   lines, a blank line, then the message with LF endings (sent as CRLF).
//! - `dkimpy/vectors.yml`: a manifest of dkimpy's static vectors, with the
//!   DNS answers and one expected result per signature, top to bottom.
//!
//! Layer 1 sends every vector through the milter protocol (the daemon on a
//! free port, its resolver pointed at the in-process DNS server) and checks
//! every `dkim=` result in the Authentication-Results header, in header order,
//! against the expectation written below for it. The negative control appends
//! one byte to each body: no signature may pass any more.
//!
//! Layer 2 is `005.txt`, whose `x=` has expired: through the milter (real
//! clock) it must not pass. mail-auth's own test replays it with a fixed clock
//! of 1667843664 through `verify_dkim_(params, now)`, which is `pub(crate)` in
//! the crate (vendor/mail-auth/src/dkim/verify.rs); the public `verify_dkim`
//! always reads `SystemTime::now()`. The daemon has no clock to inject and is
//! not given one for a test, so the fixed-clock pass is not replayed here.
//!
//! The same vectors also go straight through `checks::dkim::prefetch_keys` and
//! `checks::dkim::verify` (no milter), which must give the same words: a
//! difference would point at the milter's message reconstruction.

mod common;

use authmilter::{checks::dkim, config::Config, dns::Dns};
use common::{
    dns_server::{fqdn, TestDns, Zones},
    *,
};
use hickory_proto::rr::{rdata::TXT, RData, Record};
use serde_norway::Value;
use std::path::Path;

/// What one signature must produce.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Want {
    /// Exactly this RFC 8601 result word.
    Is(&'static str),
    /// Anything but `pass` (used for the expired signature only).
    NotPass,
}

/// Expectations for the mail-auth vectors, one per DKIM-Signature, top to
/// bottom. Upstream only asserts that the LAST signature passes; the others
/// are stated here from the RFCs. Every RSA key in these files is exactly
/// 1024 bits (checked with openssl): RFC 8301 §3.2 says verifiers MUST be
/// able to validate keys from 1024 to 4096 bits and MUST NOT consider keys
/// *under* 1024 bits valid, so none of them is `policy`. No vector uses
/// rsa-sha1, so no vector reads `policy` under RFC 8301 §3.1 either.
const MAIL_AUTH: &[(&str, &[Want])] = &[
    // RFC 8463 Appendix A: [0] ed25519-sha256 (s=brisbane) and [1] rsa-sha256
    // (s=test) over the same message. Both are valid signatures (RFC 8463 §3
    // and RFC 6376 §6.1.3), so both pass; a verifier evaluates each signature
    // independently (RFC 6376 §6.1).
    ("001.txt", &[Want::Is("pass"), Want::Is("pass")]),
    // One rsa-sha256 signature, simple/simple, h= includes Received.
    // i=joe@football.example.com is a subdomain of d=example.com, which
    // RFC 6376 §3.5 (i=) allows. The key's p= is a bare RSAPublicKey (PKCS#1),
    // which is what RFC 6376 §3.6.1 (k=) literally specifies for k=rsa
    // (most published keys are SubjectPublicKeyInfo instead).
    ("002.txt", &[Want::Is("pass")]),
    // Two byte-identical rsa-sha256 signatures (one copy above X-Mailbox-Line,
    // one below the first Received). RFC 6376 §3.7 hashes the DKIM-Signature
    // field being verified with b= emptied, and h= does not list
    // DKIM-Signature, so each copy verifies on its own: both pass.
    ("003.txt", &[Want::Is("pass"), Want::Is("pass")]),
    // rsa-sha256, key with t=s and h=sha256. No i=, so the AUID is @d
    // (RFC 6376 §3.5), which matches d= exactly as t=s requires (§3.6.1).
    ("004.txt", &[Want::Is("pass")]),
    // x=1667930064 (2022-11-08): expired at real time. RFC 6376 §3.5 (x=):
    // signatures MAY be considered invalid after the expiration date, and
    // §6.1.1 lets a verifier return PERMFAIL (signature expired); the daemon
    // does so, so it must never read `pass`. Upstream's pass needs the fixed
    // clock (see the module comment).
    ("005.txt", &[Want::NotPass]),
    // rsa-sha256, key with t=s; i=github@github.com is in d=github.com
    // exactly, as t=s requires (RFC 6376 §3.6.1).
    ("006.txt", &[Want::Is("pass")]),
];

/// One message with its DNS data and expectations.
struct Vector {
    id: String,
    /// TXT records: (absolute owner name, record text).
    dns: Vec<(String, String)>,
    /// The message, CRLF line ends.
    raw: Vec<u8>,
    want: Vec<Want>,
}

impl Vector {
    /// Whether upstream's expectation needs a fixed clock (layer 2).
    fn needs_clock(&self) -> bool {
        self.want.contains(&Want::NotPass)
    }
}

/// The DKIM-Signature field values of a message, top to bottom.
fn signature_values(raw: &[u8]) -> Vec<Vec<u8>> {
    split_message(raw)
        .0
        .into_iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case("DKIM-Signature"))
        .map(|(_, v)| authmilter::session::crlf(&v))
        .collect()
}

/// The mail-auth vectors, in the format mail-auth's `dkim_verify` reads: the
/// file is split at the first blank line; each line before it is
/// `<owner-without-dot> <TXT text>`, split at the first space.
fn mail_auth_vectors(dir: &Path) -> Vec<Vector> {
    MAIL_AUTH
        .iter()
        .map(|(file, want)| {
            let path = dir.join(file);
            let text = std::fs::read_to_string(&path)
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            let (records, message) = text
                .split_once("\n\n")
                .unwrap_or_else(|| panic!("{file}: no blank line after the DNS records"));
            let dns = records
                .lines()
                .filter(|l| !l.trim().is_empty())
                .map(|l| {
                    let (owner, txt) = l
                        .split_once(' ')
                        .unwrap_or_else(|| panic!("{file}: bad DNS line {l:?}"));
                    (format!("{}.", owner.trim_end_matches('.')), txt.to_string())
                })
                .collect();
            Vector {
                id: format!("mail-auth/{file}"),
                dns,
                raw: authmilter::session::crlf(message.as_bytes()),
                want: want.to_vec(),
            }
        })
        .collect()
}

/// The dkimpy vectors listed in `vectors.yml`.
fn dkimpy_vectors(dir: &Path) -> Vec<Vector> {
    let path = dir.join("vectors.yml");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let doc: Value = serde_norway::from_str(&text).unwrap();
    let list = doc["vectors"].as_sequence().expect("vectors: a list");
    list.iter()
        .map(|v| {
            let id = v["id"].as_str().expect("id").to_string();
            let file = v["message"].as_str().expect("message");
            let msg = std::fs::read(dir.join(file)).unwrap_or_else(|e| panic!("{file}: {e}"));
            let dns = v["dns"]
                .as_mapping()
                .expect("dns: a map")
                .iter()
                .map(|(k, t)| {
                    (
                        k.as_str().unwrap().to_string(),
                        t.as_str().unwrap().to_string(),
                    )
                })
                .collect();
            let want = v["expect"]
                .as_sequence()
                .expect("expect: a list")
                .iter()
                .map(|w| {
                    let w = w.as_str().expect("expect: words");
                    let word = w
                        .parse::<authmilter::checks::evidence::AuthResult>()
                        .unwrap_or_else(|e| panic!("{id}: {e}"))
                        .as_str();
                    Want::Is(word)
                })
                .collect();
            Vector {
                id: format!("dkimpy/{id}"),
                dns,
                raw: authmilter::session::crlf(&msg),
                want,
            }
        })
        .collect()
}

/// Every vector, checked for consistency with its message.
fn all_vectors(shared: &Path) -> Vec<Vector> {
    let base = shared.join("conformance/dkim");
    let mut v = mail_auth_vectors(&base.join("mail-auth"));
    v.extend(dkimpy_vectors(&base.join("dkimpy")));
    for x in &v {
        let n = signature_values(&x.raw).len();
        assert_eq!(
            n,
            x.want.len(),
            "{}: {n} DKIM-Signature fields but {} expectations",
            x.id,
            x.want.len()
        );
    }
    v
}

/// A TXT record whose text is split into character-strings of at most 255
/// bytes (RFC 1035 §3.3.14); the resolver joins them again (RFC 6376 §3.6.2.2).
fn txt_record(owner: &str, text: &str) -> Record {
    let parts: Vec<&[u8]> = text.as_bytes().chunks(255).collect();
    Record::from_rdata(fqdn(owner), 0, RData::TXT(TXT::from_bytes(parts)))
}

/// The vector's records; every other name is NXDOMAIN (TTL 0: nothing is
/// cached from one vector to the next).
fn zones_of(v: &Vector) -> Zones {
    let mut z = Zones::open();
    for (owner, text) in &v.dns {
        z.add(txt_record(owner, text));
    }
    z
}

/// One `dkim=` result set from an Authentication-Results value.
#[derive(Debug)]
struct Seen {
    result: String,
    reason: String,
    d: String,
    s: String,
}

/// Splits an A-R value at `;` outside quoted strings and comments (reason
/// strings come from error texts and may hold `;`, which `ar_results` would
/// split on).
fn ar_parts(ar: &str) -> Vec<String> {
    let mut parts = Vec::new();
    let mut cur = String::new();
    let (mut quoted, mut escaped, mut depth) = (false, false, 0u32);
    for c in ar.chars() {
        if quoted {
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                quoted = false;
            }
            cur.push(c);
            continue;
        }
        match c {
            '"' => quoted = true,
            '(' => depth += 1,
            ')' => depth = depth.saturating_sub(1),
            ';' if depth == 0 => {
                parts.push(std::mem::take(&mut cur).trim().to_string());
                continue;
            }
            _ => {}
        }
        cur.push(c);
    }
    parts.push(cur.trim().to_string());
    parts
}

/// The value of property `name` (the last occurrence, so that a reason
/// string before it cannot fake it).
fn prop(part: &str, name: &str) -> String {
    let key = format!(" {name}=");
    part.rfind(&key)
        .map(|p| {
            part[p + key.len()..]
                .split_whitespace()
                .next()
                .unwrap_or_default()
                .to_string()
        })
        .unwrap_or_default()
}

fn reason_of(part: &str) -> String {
    let Some(p) = part.find(" reason=\"") else {
        return String::new();
    };
    let mut out = String::new();
    let mut escaped = false;
    for c in part[p + 9..].chars() {
        match c {
            _ if escaped => {
                out.push(c);
                escaped = false;
            }
            '\\' => escaped = true,
            '"' => break,
            _ => out.push(c),
        }
    }
    out
}

/// The `dkim=` results of an A-R value, in order.
fn dkim_results(ar: &str) -> Vec<Seen> {
    ar_parts(ar)
        .iter()
        .skip(1)
        .filter_map(|p| {
            let rest = p.strip_prefix("dkim=")?;
            Some(Seen {
                result: rest
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric())
                    .collect(),
                reason: reason_of(p),
                d: prop(p, "header.d"),
                s: prop(p, "header.s"),
            })
        })
        .collect()
}

/// The (d, s) of each signature field, lower-case d.
fn signers(raw: &[u8]) -> Vec<(String, String)> {
    signature_values(raw)
        .iter()
        .map(|v| {
            let t = dkim::tags(v);
            let get = |k: &str| {
                t.iter()
                    .find(|(n, _)| n == k)
                    .map(|(_, v)| v.clone())
                    .unwrap_or_default()
            };
            (get("d").to_ascii_lowercase(), get("s"))
        })
        .collect()
}

fn envelope() -> Envelope {
    Envelope::new("192.0.2.1", "mail.sender.test", "sender@sender.test")
}

/// Sends `raw` through the milter and returns its `dkim=` results, checked to
/// be one per signature field and in header order.
async fn milter_results(milter: &TestMilter, id: &str, raw: &[u8]) -> Result<Vec<Seen>, String> {
    let out = send(milter.addr, &envelope(), raw).await;
    let Some(ar) = out.auth_results() else {
        return Err(format!(
            "{id}: no Authentication-Results (verdict {})",
            out.verdict()
        ));
    };
    let seen = dkim_results(&ar);
    let want = signers(raw);
    let got: Vec<(String, String)> = seen.iter().map(|s| (s.d.clone(), s.s.clone())).collect();
    if got != want {
        return Err(format!(
            "{id}: dkim results are not one per signature in header order: {got:?}, want {want:?}\n  A-R: {ar}"
        ));
    }
    Ok(seen)
}

fn judge(id: &str, i: usize, want: Want, got: &str, reason: &str, failures: &mut Vec<String>) {
    let ok = match want {
        Want::Is(w) => got == w,
        Want::NotPass => got != "pass",
    };
    if !ok {
        failures.push(format!(
            "{id} signature [{i}]: got dkim={got} (reason {reason:?}), want {want:?}"
        ));
    }
}

/// The body with one more byte.
fn with_extra_byte(raw: &[u8]) -> Vec<u8> {
    let mut r = raw.to_vec();
    r.push(b'X');
    r
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dkim_vectors_through_milter() {
    let Some(shared) = shared_dir() else {
        skip_without_shared("dkim_vectors_through_milter");
        return;
    };
    let vectors = all_vectors(&shared);
    let dns = TestDns::start(Zones::open()).await;
    let milter = TestMilter::with_policy(dns.addr, "").await;
    let mut failures = Vec::new();
    let (mut checked, mut passed) = (0usize, 0usize);
    let (mut expired, mut negative, mut negative_ok) = (Vec::new(), 0usize, 0usize);

    for v in &vectors {
        dns.set_zones(zones_of(v));
        // Layers 1 and 2: the vector as published.
        match milter_results(&milter, &v.id, &v.raw).await {
            Err(e) => failures.push(e),
            Ok(seen) => {
                for (i, (s, w)) in seen.iter().zip(&v.want).enumerate() {
                    checked += 1;
                    judge(&v.id, i, *w, &s.result, &s.reason, &mut failures);
                    match w {
                        Want::Is("pass") if s.result == "pass" => passed += 1,
                        Want::NotPass => {
                            expired.push(format!("{} [{i}] dkim={} ({})", v.id, s.result, s.reason))
                        }
                        _ => {}
                    }
                }
            }
        }
        // Negative control: one byte appended to the body. RFC 6376 §6.1.3:
        // the body hash no longer matches, so the signature fails
        // ("body hash did not verify"); RFC 8601 §2.7.1 writes that `fail`.
        // The expired signature is refused before its body hash is computed
        // and must simply still not pass.
        let bad = format!("{} + 1 body byte", v.id);
        match milter_results(&milter, &bad, &with_extra_byte(&v.raw)).await {
            Err(e) => failures.push(e),
            Ok(seen) => {
                for (i, s) in seen.iter().enumerate() {
                    negative += 1;
                    let want = if v.needs_clock() {
                        Want::NotPass
                    } else {
                        Want::Is("fail")
                    };
                    judge(&bad, i, want, &s.result, &s.reason, &mut failures);
                    if s.result != "pass" {
                        negative_ok += 1;
                    }
                    if want == Want::Is("fail") && !s.reason.contains("body hash") {
                        failures.push(format!(
                            "{bad} signature [{i}]: fail for another reason than the body hash: {:?}",
                            s.reason
                        ));
                    }
                }
            }
        }
    }
    milter.stop().await;

    let expected_pass = vectors
        .iter()
        .flat_map(|v| &v.want)
        .filter(|w| **w == Want::Is("pass"))
        .count();
    eprintln!(
        "DKIM vectors: {checked} signatures checked, {passed} passed as expected (of {expected_pass} expected to pass), in {} messages",
        vectors.len()
    );
    eprintln!(
        "DKIM vectors: expired at real time, not pass: {}",
        expired.join("; ")
    );
    eprintln!(
        "DKIM vectors: negative control (1 body byte appended): {negative} signatures checked, {negative_ok} no longer pass"
    );
    assert!(
        failures.is_empty(),
        "{} DKIM vector checks failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert_eq!(passed, expected_pass, "every expected pass must be counted");
    assert!(!expired.is_empty(), "005.txt was not checked");
}

/// The same vectors straight through `checks::dkim` (no milter): the words
/// must be the same, so a difference would point at the milter's
/// reconstruction of the message.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dkim_vectors_direct() {
    let Some(shared) = shared_dir() else {
        skip_without_shared("dkim_vectors_direct");
        return;
    };
    let vectors = all_vectors(&shared);
    let server = TestDns::start(Zones::open()).await;
    let cfg = Config::parse(
        &format!(
            "[dns]\nnameservers = [\"{}\"]\ntimeout = 1.0\nattempts = 1\n",
            server.addr
        ),
        "test",
    )
    .unwrap();
    let resolver = Dns::new(&cfg.dns).unwrap();
    let max = cfg.limits.max_signatures;
    let mut failures = Vec::new();
    let mut checked = 0usize;
    for v in &vectors {
        server.set_zones(zones_of(v));
        for (label, raw) in [
            ("", v.raw.clone()),
            (" + 1 body byte", with_extra_byte(&v.raw)),
        ] {
            let id = format!("{}{label}", v.id);
            let values = signature_values(&raw);
            let keys = dkim::prefetch_keys(&resolver, &values, None, max).await;
            let ev = dkim::verify(&resolver, &raw, &values, &keys, None, max).await;
            if ev.len() != v.want.len() {
                failures.push(format!(
                    "{id}: {} results for {} signatures",
                    ev.len(),
                    v.want.len()
                ));
                continue;
            }
            for (i, (e, w)) in ev.iter().zip(&v.want).enumerate() {
                checked += 1;
                let want = match (label.is_empty(), v.needs_clock()) {
                    (true, _) | (false, true) => *w,
                    (false, false) => Want::Is("fail"),
                };
                let reason = e.reason.clone().unwrap_or_default();
                judge(&id, i, want, e.result.as_str(), &reason, &mut failures);
            }
        }
    }
    eprintln!(
        "DKIM vectors (checks::dkim directly): {checked} signature results checked, {} wrong",
        failures.len()
    );
    assert!(
        failures.is_empty(),
        "{} DKIM vector checks failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
