//! DKIM verification (`checks::dkim::verify`) on arbitrary messages built the
//! way the session builds its DKIM buffer, with the DKIM-Signature values
//! the session would have collected, and a key cache that is empty (the
//! verifier then asks DNS itself) or prefetched.
//!
//! Keys come from an in-process DNS server on 127.0.0.1 (the test server of
//! tests/common): `ed._domainkey.fuzz.example` (Ed25519), `rsa.` (RSA-2048),
//! `revoked.` (empty p=), `junk.`; every other name is NXDOMAIN. The target
//! can also sign the message itself with the independent signer of
//! tests/common (so the verifier's pass path and near misses are reached),
//! optionally under a fresh selector whose key record the input writes
//! (`$P` in it stands for the real public key), and then alter the body.
//!
//! Input: `flags` `opts` `pos`, then (with the fuzzer-built record) the
//! record up to a NUL, then the message: header lines (a line starting with
//! WSP continues the previous value), an empty line, the body.
//!
//! What must always hold: no panic; exactly one result per DKIM-Signature
//! field, in order; a signature over a body changed after signing never
//! passes.
#![no_main]
#[path = "../../tests/common/dkim_sign.rs"]
#[allow(dead_code)]
mod dkim_sign;
#[path = "../../tests/common/dns_server.rs"]
mod dns_server;

use authmilter::{
    checks::{dkim, evidence::AuthResult},
    config::Config,
    dns::Dns,
    session::crlf,
};
use base64::Engine;
use dkim_sign::{Canon, Key, Spec};
use dns_server::{fqdn, TestDns, Zones};
use hickory_proto::rr::{rdata::TXT, RData, Record};
use libfuzzer_sys::fuzz_target;
use ring::signature::KeyPair;
use std::sync::{
    atomic::{AtomicU64, Ordering},
    OnceLock,
};

struct World {
    tokio: tokio::runtime::Runtime,
    server: TestDns,
    base: Zones,
    dns: Dns,
    ed: Key,
    rsa: Key,
    fresh: AtomicU64,
}

fn txt(name: &str, value: &[u8]) -> Record {
    // Character-strings of at most 255 octets (RFC 1035 §3.3.14).
    let parts: Vec<&[u8]> = if value.is_empty() {
        vec![value]
    } else {
        value.chunks(255).collect()
    };
    Record::from_rdata(fqdn(name), 300, RData::TXT(TXT::from_bytes(parts)))
}

fn world() -> &'static World {
    static W: OnceLock<World> = OnceLock::new();
    W.get_or_init(|| {
        let tokio = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("tokio");
        let (ed, rsa) = (Key::ed25519(7), Key::rsa2048());
        let mut base = Zones::open();
        base.add(txt("ed._domainkey.fuzz.example", ed.record().as_bytes()));
        base.add(txt("rsa._domainkey.fuzz.example", rsa.record().as_bytes()));
        base.add(txt("revoked._domainkey.fuzz.example", b"v=DKIM1; p="));
        base.add(txt(
            "junk._domainkey.fuzz.example",
            b"v=DKIM1; k=rsa; p=!!!",
        ));
        let server = tokio.block_on(TestDns::start(base.clone()));
        let text = format!(
            "[dns]\nnameservers = [\"{}\"]\ntimeout = 0.5\nattempts = 1\n",
            server.addr
        );
        let config = Config::parse(&text, "fuzz.toml").expect("config");
        let dns = {
            let _g = tokio.enter();
            Dns::new(&config.dns).expect("dns")
        };
        World {
            tokio,
            server,
            base,
            dns,
            ed,
            rsa,
            fresh: AtomicU64::new(0),
        }
    })
}

/// Header fields (name, value after the colon as the MTA hands it over:
/// leading space kept, folded with LF) and the body.
fn split(msg: &[u8]) -> (Vec<(String, Vec<u8>)>, &[u8]) {
    let mut fields: Vec<(String, Vec<u8>)> = Vec::new();
    let mut rest = msg;
    while !rest.is_empty() {
        let end = rest.iter().position(|b| *b == b'\n');
        let (line, next) = match end {
            Some(e) => (&rest[..e], &rest[e + 1..]),
            None => (rest, &[][..]),
        };
        rest = next;
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            break;
        }
        if line.first().is_some_and(|b| *b == b' ' || *b == b'\t') {
            if let Some(last) = fields.last_mut() {
                last.1.push(b'\n');
                last.1.extend_from_slice(line);
            }
        } else if let Some(c) = line.iter().position(|b| *b == b':') {
            let name = String::from_utf8_lossy(&line[..c]).into_owned();
            fields.push((name, line[c + 1..].to_vec()));
        }
    }
    (fields, rest)
}

/// The DKIM buffer, as `Session::header`/`eoh`/`body` build it (with the
/// MTA's leading space).
fn raw_of(fields: &[(String, Vec<u8>)], body: &[u8]) -> Vec<u8> {
    let mut raw = Vec::new();
    for (n, v) in fields {
        raw.extend_from_slice(n.as_bytes());
        raw.push(b':');
        raw.extend_from_slice(&crlf(v));
        raw.extend_from_slice(b"\r\n");
    }
    raw.extend_from_slice(b"\r\n");
    raw.extend_from_slice(body);
    raw
}

fuzz_target!(|data: &[u8]| {
    let [flags, opts, pos, rest @ ..] = data else {
        return;
    };
    let (flags, opts, pos) = (*flags, *opts, *pos);
    let w = world();
    let signer = (flags >> 1) & 3;
    let (template, msg) = if signer == 3 {
        let nul = rest.iter().position(|b| *b == 0).unwrap_or(rest.len());
        (&rest[..nul], rest.get(nul + 1..).unwrap_or_default())
    } else {
        (&[][..], rest)
    };
    let (mut fields, body) = split(msg);
    // MTAs send the body with CRLF; bit 7 of `opts` keeps bare LFs.
    let mut body = if opts & 0x80 != 0 {
        body.to_vec()
    } else {
        crlf(body)
    };
    let max_signatures = 1 + (opts & 3) as usize;

    let mut signed_ours = false;
    let mut length = None;
    if signer != 0 {
        let key = if signer == 2 { &w.rsa } else { &w.ed };
        let selector = if signer == 3 {
            let n = w.fresh.fetch_add(1, Ordering::Relaxed);
            let sel = format!("fz{n}");
            let Key::Ed25519(k) = &w.ed else {
                unreachable!()
            };
            let p = base64::engine::general_purpose::STANDARD.encode(k.public_key().as_ref());
            let record = String::from_utf8_lossy(template).replace("$P", &p);
            let mut z = w.base.clone();
            z.add(txt(
                &format!("{sel}._domainkey.fuzz.example"),
                record.as_bytes(),
            ));
            w.server.set_zones(z);
            sel
        } else if signer == 2 {
            "rsa".to_string()
        } else {
            "ed".to_string()
        };
        let canon = |bit: u8| {
            if flags & bit != 0 {
                Canon::Simple
            } else {
                Canon::Relaxed
            }
        };
        let mut spec = Spec::new("fuzz.example", &selector);
        spec.header_canon = canon(8);
        spec.body_canon = canon(16);
        if flags & 0x40 != 0 {
            length = Some(body.len() / 2);
            spec.length = length;
        }
        if flags & 0x80 != 0 {
            spec.headers = &["from"];
        }
        let unsigned = raw_of(&fields, &body);
        let out = dkim_sign::sign(&unsigned, key, &spec);
        let field = &out[..out.len() - unsigned.len()];
        let value = field
            .strip_prefix(b"DKIM-Signature:")
            .and_then(|v| v.strip_suffix(b"\r\n"))
            .expect("signer output");
        // The MTA hands the value over folded with LF.
        let value = String::from_utf8_lossy(value).replace("\r\n", "\n");
        fields.insert(0, ("DKIM-Signature".into(), value.into_bytes()));
        signed_ours = true;
    }
    let tampered = flags & 0x20 != 0 && !body.is_empty();
    if tampered {
        let at = (pos as usize * 131 + opts as usize) % body.len();
        body[at] ^= 1;
    }
    let raw = raw_of(&fields, &body);
    // What Session::header collects.
    let values: Vec<Vec<u8>> = fields
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case("DKIM-Signature"))
        .map(|(_, v)| v.clone())
        .collect();
    let evidence = w.tokio.block_on(async {
        let keys = if flags & 1 != 0 {
            dkim::prefetch_keys(&w.dns, &values, None, max_signatures).await
        } else {
            dkim::KeyCache::default()
        };
        dkim::verify(&w.dns, &raw, &values, &keys, None, max_signatures).await
    });
    assert_eq!(
        evidence.len(),
        values.len(),
        "one result per DKIM-Signature field: {evidence:?}"
    );
    for e in &evidence {
        assert_eq!(e.domain, e.domain.to_ascii_lowercase());
    }
    if signed_ours && tampered && length.is_none() {
        assert_ne!(
            evidence[0].result,
            AuthResult::Pass,
            "a body changed after signing passed: {evidence:?}"
        );
    }
});
