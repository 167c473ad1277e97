//! The benchmarks' message mix: keys, DNS zones, messages, and the crypto
//! floor (the work no implementation can avoid), shared by
//! `milter_load.rs` (through the milter protocol) and `pipeline.rs` (the
//! per-message pipeline without sockets).

#![allow(dead_code)]

use super::dns_server::{fqdn, Zones};
use base64::Engine;
use hickory_proto::rr::{rdata::TXT, RData, Record};
use mail_auth::{
    common::crypto::{Ed25519Key, RsaKey, Sha256},
    common::headers::HeaderWriter,
    dkim::DkimSigner,
};
use rustls_pki_types::{PrivateKeyDer, PrivatePkcs1KeyDer};
use std::process::{Command, Stdio};

pub fn openssl(args: &[&str], input: Option<&[u8]>) -> Vec<u8> {
    let mut c = Command::new("openssl")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("openssl");
    if let Some(i) = input {
        use std::io::Write;
        c.stdin.take().unwrap().write_all(i).unwrap();
    } else {
        drop(c.stdin.take());
    }
    let out = c.wait_with_output().unwrap();
    assert!(out.status.success(), "openssl {args:?}");
    out.stdout
}

pub struct Keys {
    /// PKCS#1 DER, for mail-auth's signer.
    pub rsa_pkcs1: Vec<u8>,
    pub rsa_pub_b64: String,
    pub ed_pkcs8: Vec<u8>,
    pub ed_pub_b64: String,
}

/// The keys kept in `dir`, made (and kept there) when absent.
pub fn keys_in(dir: Option<&std::path::Path>) -> Keys {
    let Some(dir) = dir else { return keys() };
    let names = ["rsa.der", "rsa.pub", "ed.der", "ed.pub"];
    if let [Ok(a), Ok(b), Ok(c), Ok(d)] = names.map(|n| std::fs::read(dir.join(n))) {
        return Keys {
            rsa_pkcs1: a,
            rsa_pub_b64: String::from_utf8(b).unwrap(),
            ed_pkcs8: c,
            ed_pub_b64: String::from_utf8(d).unwrap(),
        };
    }
    let k = keys();
    std::fs::create_dir_all(dir).unwrap();
    let values = [
        &k.rsa_pkcs1[..],
        k.rsa_pub_b64.as_bytes(),
        &k.ed_pkcs8,
        k.ed_pub_b64.as_bytes(),
    ];
    for (n, v) in names.iter().zip(values) {
        std::fs::write(dir.join(n), v).unwrap();
    }
    k
}

pub fn keys() -> Keys {
    let b64 = base64::engine::general_purpose::STANDARD;
    let rsa_pem = openssl(
        &[
            "genpkey",
            "-algorithm",
            "RSA",
            "-pkeyopt",
            "rsa_keygen_bits:2048",
        ],
        None,
    );
    let rsa_pub = openssl(&["pkey", "-pubout", "-outform", "DER"], Some(&rsa_pem));
    let ed_pem = openssl(&["genpkey", "-algorithm", "ed25519"], None);
    let ed_pkcs8 = openssl(&["pkey", "-outform", "DER"], Some(&ed_pem));
    let ed_pub = openssl(&["pkey", "-pubout", "-outform", "DER"], Some(&ed_pem));
    let rsa_pkcs1 = openssl(&["rsa", "-outform", "DER", "-traditional"], Some(&rsa_pem));
    Keys {
        rsa_pkcs1,
        rsa_pub_b64: b64.encode(&rsa_pub),
        ed_pkcs8,
        // RFC 8463: the raw 32-byte public key.
        ed_pub_b64: b64.encode(&ed_pub[ed_pub.len() - 32..]),
    }
}

pub fn txt(name: &str, value: &str) -> Record {
    let chunks: Vec<String> = value
        .as_bytes()
        .chunks(250)
        .map(|c| String::from_utf8(c.to_vec()).unwrap())
        .collect();
    Record::from_rdata(fqdn(name), 3600, RData::TXT(TXT::new(chunks)))
}

pub fn zones(k: &Keys) -> Zones {
    let mut z = Zones::with_origins();
    z.add_zone_text(
        "$ORIGIN bench.example.\n$TTL 3600\n@ IN SOA ns.bench.example. h.bench.example. 1 3600 600 86400 3600\n\
         @ IN TXT \"v=spf1 include:_spf.bench.example -all\"\n_spf IN TXT \"v=spf1 include:_out.bench.example -all\"\n\
         _out IN TXT \"v=spf1 ip4:192.0.2.10 -all\"\n_dmarc IN TXT \"v=DMARC1; p=reject\"\nmail IN A 192.0.2.10\n",
        None,
    );
    z.add_zone_text(
        "$ORIGIN 2.0.192.in-addr.arpa.\n$TTL 3600\n@ IN SOA ns.bench.example. h.bench.example. 1 3600 600 86400 3600\n10 IN PTR mail.bench.example.\n",
        None,
    );
    // The spoofer's address has no PTR: an authoritative NXDOMAIN, cached.
    z.add_zone_text(
        "$ORIGIN 100.51.198.in-addr.arpa.\n$TTL 3600\n@ IN SOA ns.bench.example. h.bench.example. 1 3600 600 86400 3600\n",
        None,
    );
    z.add_zone_text(
        "$ORIGIN example.\n$TTL 3600\n@ IN SOA ns.example. h.example. 1 3600 600 86400 3600\n",
        None,
    );
    z.add(txt(
        "rsa._domainkey.bench.example",
        &format!("v=DKIM1; k=rsa; p={}", k.rsa_pub_b64),
    ));
    z.add(txt(
        "ed._domainkey.bench.example",
        &format!("v=DKIM1; k=ed25519; p={}", k.ed_pub_b64),
    ));
    z
}

/// One message of the mix: (envelope sender, raw message, expected verdict).
pub struct Msg {
    pub mail_from: &'static str,
    pub client: [u8; 4],
    pub raw: Vec<u8>,
    /// Its header fields, split once when the mix is made.
    pub fields: Vec<Field>,
    /// Where the body starts in `raw`.
    pub body_start: usize,
    /// Its DKIM signatures, in order: 'r' RSA-2048, 'e' Ed25519.
    pub signers: &'static str,
}

pub fn body(kib: usize) -> String {
    let line = "The quick brown fox jumps over the lazy dog, again and again and again.\r\n";
    line.repeat(kib * 1024 / line.len() + 1)
}

/// The mix: five messages of 2 to 100 KiB, signed RSA, Ed25519, both, or
/// not at all (the spoof).
pub fn mix(k: &Keys) -> Vec<Msg> {
    [(2, "r"), (10, "e"), (50, "re"), (100, ""), (5, "r")]
        .into_iter()
        .enumerate()
        .map(|(i, (kib, signers))| make(k, i, kib, signers))
        .collect()
}

/// Message `i` with a body of `kib` KiB, signed by `signers` ('r' RSA-2048,
/// 'e' Ed25519; none: a spoof from an unlisted address).
pub fn make(k: &Keys, i: usize, kib: usize, signers: &'static str) -> Msg {
    let rsa = || {
        DkimSigner::from_key(
            RsaKey::<Sha256>::from_key_der(PrivateKeyDer::Pkcs1(PrivatePkcs1KeyDer::from(
                k.rsa_pkcs1.clone(),
            )))
            .unwrap(),
        )
        .domain("bench.example")
        .selector("rsa")
        .headers(["From", "To", "Subject", "Date", "Message-ID"])
    };
    let ed = || {
        DkimSigner::from_key(Ed25519Key::from_pkcs8_maybe_unchecked_der(&k.ed_pkcs8).unwrap())
            .domain("bench.example")
            .selector("ed")
            .headers(["From", "To", "Subject", "Date", "Message-ID"])
    };
    let msg = format!(
        "From: Bench <news@bench.example>\r\nTo: bob@recipient.test\r\nSubject: mix {i}\r\nDate: Mon, 02 Mar 2026 09:00:00 +0000\r\nMessage-ID: <{i}@bench.example>\r\n\r\n{}",
        body(kib)
    );
    let mut raw = Vec::new();
    for s in signers.chars() {
        let sig = if s == 'r' {
            rsa().sign(msg.as_bytes()).unwrap()
        } else {
            ed().sign(msg.as_bytes()).unwrap()
        };
        raw.extend_from_slice(sig.to_header().as_bytes());
    }
    raw.extend_from_slice(msg.as_bytes());
    let spoof = signers.is_empty();
    let (fields, body) = split_message(&raw);
    let body_start = raw.len() - body.len();
    Msg {
        fields,
        body_start,
        signers,
        mail_from: if spoof {
            "x@evil.example"
        } else {
            "bounce@bench.example"
        },
        client: if spoof {
            [198, 51, 100, 7]
        } else {
            [192, 0, 2, 10]
        },
        raw,
    }
}

impl Msg {
    /// The body (after the blank line).
    pub fn body(&self) -> &[u8] {
        &self.raw[self.body_start..]
    }
}

/// A header field: name, and the value after the colon.
pub type Field = (Vec<u8>, Vec<u8>);

/// Header fields of a raw message (name, value after the colon) and its body.
fn split_message(raw: &[u8]) -> (Vec<Field>, &[u8]) {
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    let mut lines: Vec<Vec<u8>> = Vec::new();
    for line in raw[..split + 2].split_inclusive(|b| *b == b'\n') {
        if line.starts_with(b" ") || line.starts_with(b"\t") {
            lines.last_mut().unwrap().extend_from_slice(line);
        } else {
            lines.push(line.to_vec());
        }
    }
    let fields = lines
        .into_iter()
        .map(|f| {
            let f = f.strip_suffix(b"\r\n").unwrap_or(&f).to_vec();
            let colon = f.iter().position(|b| *b == b':').unwrap();
            (f[..colon].to_vec(), f[colon + 1..].to_vec())
        })
        .collect();
    (fields, &raw[split + 4..])
}

/// The unavoidable work for a message: SHA-256 over it and one signature
/// verification per DKIM signature (RSA-2048 or Ed25519, as signed). The
/// signatures are counted when the mix is made, not searched for here.
pub struct Floor {
    rsa_sig: Vec<u8>,
    rsa_pub: ring::signature::UnparsedPublicKey<Vec<u8>>,
    ed_sig: Vec<u8>,
    ed_pub: ring::signature::UnparsedPublicKey<Vec<u8>>,
}

impl Floor {
    pub fn new(k: &Keys) -> Floor {
        use ring::signature::{self, KeyPair};
        let rsa = signature::RsaKeyPair::from_der(&k.rsa_pkcs1).unwrap();
        let mut rsa_sig = vec![0u8; rsa.public().modulus_len()];
        rsa.sign(
            &signature::RSA_PKCS1_SHA256,
            &ring::rand::SystemRandom::new(),
            b"floor",
            &mut rsa_sig,
        )
        .unwrap();
        let ed = signature::Ed25519KeyPair::from_pkcs8_maybe_unchecked(&k.ed_pkcs8).unwrap();
        Floor {
            rsa_sig,
            rsa_pub: signature::UnparsedPublicKey::new(
                &signature::RSA_PKCS1_2048_8192_SHA256,
                rsa.public().as_ref().to_vec(),
            ),
            ed_sig: ed.sign(b"floor").as_ref().to_vec(),
            ed_pub: signature::UnparsedPublicKey::new(
                &signature::ED25519,
                ed.public_key().as_ref().to_vec(),
            ),
        }
    }

    /// The floor's work for one message: one SHA-256 over it when it is
    /// signed (an unsigned message needs no hashing), one verification per
    /// signature.
    pub fn message(&self, m: &Msg) {
        if !m.signers.is_empty() {
            std::hint::black_box(ring::digest::digest(&ring::digest::SHA256, &m.raw));
        }
        for s in m.signers.chars() {
            if s == 'r' {
                self.rsa_pub.verify(b"floor", &self.rsa_sig).unwrap();
            } else {
                self.ed_pub.verify(b"floor", &self.ed_sig).unwrap();
            }
        }
    }
}

/// The floor's mean time per message of the mix, in milliseconds.
pub fn crypto_floor(msgs: &[Msg], k: &Keys) -> f64 {
    let floor = Floor::new(k);
    let rounds = 100;
    let t = std::time::Instant::now();
    for _ in 0..rounds {
        for m in msgs {
            floor.message(m);
        }
    }
    t.elapsed().as_secs_f64() / (rounds * msgs.len()) as f64 * 1000.0
}
