//! An independent DKIM signer for test fixtures, written from RFC 6376
//! §3.4 (canonicalization), §3.5 (the signature's tags), §3.7 (hash
//! computation), §5.4 (header selection) and RFC 8463 (Ed25519-SHA256).
//!
//! The tests sign their messages with this code, never with the library the
//! daemon verifies with, so a canonicalization bug in that library cannot
//! cancel itself out (the same bug on both sides would still "pass").

use base64::{engine::general_purpose::STANDARD as B64, Engine};
use ring::{
    digest,
    rand::SystemRandom,
    signature::{Ed25519KeyPair, KeyPair, RsaKeyPair, RSA_PKCS1_SHA256},
};

/// A canonicalization algorithm (RFC 6376 §3.4).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Canon {
    Simple,
    Relaxed,
}

impl Canon {
    fn name(self) -> &'static str {
        match self {
            Canon::Simple => "simple",
            Canon::Relaxed => "relaxed",
        }
    }
}

/// A signing key.
pub enum Key {
    Ed25519(Ed25519KeyPair),
    /// The key pair and its SubjectPublicKeyInfo in base64.
    Rsa(RsaKeyPair, &'static str),
}

impl Key {
    /// A deterministic Ed25519 key from a one-byte seed.
    pub fn ed25519(seed: u8) -> Key {
        Key::Ed25519(Ed25519KeyPair::from_seed_unchecked(&[seed; 32]).unwrap())
    }

    /// The 2048-bit RSA key made for these tests (tests/fixtures/rsa2048.pk8).
    pub fn rsa2048() -> Key {
        let der = include_bytes!("../fixtures/rsa2048.pk8");
        Key::Rsa(
            RsaKeyPair::from_pkcs8(der).unwrap(),
            include_str!("../fixtures/rsa2048.spki.b64"),
        )
    }

    /// The 4096-bit RSA key made for these tests (RFC 8301 §3.2: verifiers
    /// MUST be able to validate keys up to 4096 bits).
    pub fn rsa4096() -> Key {
        let der = include_bytes!("../fixtures/rsa4096.pk8");
        Key::Rsa(
            RsaKeyPair::from_pkcs8(der).unwrap(),
            include_str!("../fixtures/rsa4096.spki.b64"),
        )
    }

    /// The `a=` value.
    pub fn algorithm(&self) -> &'static str {
        match self {
            Key::Ed25519(_) => "ed25519-sha256",
            Key::Rsa(..) => "rsa-sha256",
        }
    }

    /// The key record's text (RFC 6376 §3.6.1, RFC 8463 §4).
    pub fn record(&self) -> String {
        match self {
            Key::Ed25519(k) => format!(
                "v=DKIM1; k=ed25519; p={}",
                B64.encode(k.public_key().as_ref())
            ),
            Key::Rsa(_, spki) => format!("v=DKIM1; k=rsa; p={}", spki.trim()),
        }
    }

    /// A zone-file TXT line for `selector._domainkey` (strings of at most
    /// 255 octets, RFC 1035 §3.3.14).
    pub fn zone_line(&self, selector: &str) -> String {
        txt_line(&format!("{selector}._domainkey"), &self.record())
    }

    fn sign(&self, data: &[u8]) -> Vec<u8> {
        match self {
            // RFC 8463 §3: Ed25519 over the SHA-256 hash of the data.
            Key::Ed25519(k) => k
                .sign(digest::digest(&digest::SHA256, data).as_ref())
                .as_ref()
                .to_vec(),
            Key::Rsa(k, _) => {
                let mut sig = vec![0; k.public().modulus_len()];
                k.sign(&RSA_PKCS1_SHA256, &SystemRandom::new(), data, &mut sig)
                    .unwrap();
                sig
            }
        }
    }
}

/// A zone-file TXT line for `owner` whose text is split into strings of at
/// most 250 octets (RFC 1035 §3.3.14).
pub fn txt_line(owner: &str, text: &str) -> String {
    let parts: Vec<String> = text
        .as_bytes()
        .chunks(250)
        .map(|c| format!("\"{}\"", String::from_utf8_lossy(c)))
        .collect();
    format!("{owner} IN TXT {}\n", parts.join(" "))
}

/// What to sign and how.
pub struct Spec<'a> {
    pub domain: &'a str,
    pub selector: &'a str,
    /// The `h=` list, in order (names may repeat: oversigning).
    pub headers: &'a [&'a str],
    pub header_canon: Canon,
    pub body_canon: Canon,
    /// `l=`: sign only this many octets of the canonical body.
    pub length: Option<usize>,
    /// Extra tags written before `bh=` (e.g. `"i=@sub.example; t=1; x=2"`).
    pub extra: &'a str,
    /// The `c=` value as written: `None` for "header/body", `Some("")` to
    /// leave the tag out (simple/simple), `Some("relaxed")` for the
    /// one-word form (relaxed/simple). The canonicalizations used must match.
    pub c_tag: Option<&'a str>,
    /// A text replacement made in the signature field before it is signed
    /// (so the signature is valid over it), e.g. `("v=1;", "v=2;")`.
    pub edit: Option<(&'a str, &'a str)>,
}

impl<'a> Spec<'a> {
    /// relaxed/relaxed over From, To, Subject, Date, Message-ID.
    pub fn new(domain: &'a str, selector: &'a str) -> Self {
        Self {
            domain,
            selector,
            headers: &["from", "to", "subject", "date", "message-id"],
            header_canon: Canon::Relaxed,
            body_canon: Canon::Relaxed,
            length: None,
            extra: "",
            c_tag: None,
            edit: None,
        }
    }
}

fn is_wsp(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

/// RFC 6376 §3.4.3 / §3.4.4: the canonical body.
pub fn canonical_body(body: &[u8], c: Canon) -> Vec<u8> {
    let mut lines: Vec<Vec<u8>> = Vec::new();
    let mut rest = body;
    while !rest.is_empty() {
        match rest.windows(2).position(|w| w == b"\r\n") {
            Some(p) => {
                lines.push(rest[..p].to_vec());
                rest = &rest[p + 2..];
            }
            None => {
                // A last line without CRLF: a CRLF is added (§3.4.3, §3.4.4).
                lines.push(rest.to_vec());
                rest = &[];
            }
        }
    }
    if c == Canon::Relaxed {
        for line in &mut lines {
            // Ignore all whitespace at the end of lines; reduce all
            // sequences of WSP within a line to a single SP.
            let mut out = Vec::with_capacity(line.len());
            let mut in_wsp = false;
            for &b in line.iter() {
                if is_wsp(b) {
                    in_wsp = true;
                } else {
                    if in_wsp {
                        out.push(b' ');
                    }
                    in_wsp = false;
                    out.push(b);
                }
            }
            *line = out;
        }
    }
    while lines.last().is_some_and(|l| l.is_empty()) {
        lines.pop();
    }
    if lines.is_empty() {
        // §3.4.3: an empty body is one CRLF; §3.4.4: the empty string.
        return match c {
            Canon::Simple => b"\r\n".to_vec(),
            Canon::Relaxed => Vec::new(),
        };
    }
    let mut out = Vec::with_capacity(body.len() + 2);
    for l in lines {
        out.extend_from_slice(&l);
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// RFC 6376 §3.4.1 / §3.4.2: one canonical header field, with its CRLF.
/// `value` is everything after the colon, folding included.
pub fn canonical_header(name: &str, value: &[u8], c: Canon) -> Vec<u8> {
    match c {
        Canon::Simple => {
            let mut out = name.as_bytes().to_vec();
            out.push(b':');
            out.extend_from_slice(value);
            out.extend_from_slice(b"\r\n");
            out
        }
        Canon::Relaxed => {
            let mut out = name.trim_end().to_ascii_lowercase().into_bytes();
            out.push(b':');
            // Unfold, reduce WSP runs to one SP, strip WSP at both ends.
            let unfolded: Vec<u8> = value
                .iter()
                .copied()
                .filter(|b| *b != b'\r' && *b != b'\n')
                .collect();
            let mut v = Vec::with_capacity(unfolded.len());
            let mut in_wsp = false;
            for b in unfolded {
                if is_wsp(b) {
                    in_wsp = true;
                } else {
                    if in_wsp && !v.is_empty() {
                        v.push(b' ');
                    }
                    in_wsp = false;
                    v.push(b);
                }
            }
            out.extend_from_slice(&v);
            out.extend_from_slice(b"\r\n");
            out
        }
    }
}

/// Header fields of a raw message (name, value after the colon with its
/// folding), in order, and the body.
pub fn fields(raw: &[u8]) -> (Vec<(String, Vec<u8>)>, Vec<u8>) {
    let (head, body) = match raw.windows(4).position(|w| w == b"\r\n\r\n") {
        Some(p) => (&raw[..p + 2], raw[p + 4..].to_vec()),
        None => (raw, Vec::new()),
    };
    let mut out: Vec<(String, Vec<u8>)> = Vec::new();
    for line in head.split_inclusive(|b| *b == b'\n') {
        let line = line.strip_suffix(b"\r\n").unwrap_or(line);
        if line.first().is_some_and(|b| is_wsp(*b)) {
            if let Some(last) = out.last_mut() {
                last.1.extend_from_slice(b"\r\n");
                last.1.extend_from_slice(line);
            }
        } else if let Some(colon) = line.iter().position(|b| *b == b':') {
            out.push((
                String::from_utf8_lossy(&line[..colon]).into_owned(),
                line[colon + 1..].to_vec(),
            ));
        }
    }
    (out, body)
}

/// Signs `raw` (CRLF line ends) and returns it with the DKIM-Signature
/// field prepended.
pub fn sign(raw: &[u8], key: &Key, spec: &Spec) -> Vec<u8> {
    let (hdrs, body) = fields(raw);
    let mut cbody = canonical_body(&body, spec.body_canon);
    let l_tag = match spec.length {
        Some(l) => {
            cbody.truncate(l);
            format!(" l={l};")
        }
        None => String::new(),
    };
    let bh = B64.encode(digest::digest(&digest::SHA256, &cbody));
    let extra = if spec.extra.is_empty() {
        String::new()
    } else {
        format!(" {};", spec.extra.trim().trim_end_matches(';'))
    };
    let c = match spec.c_tag {
        None => format!(
            " c={}/{};",
            spec.header_canon.name(),
            spec.body_canon.name()
        ),
        Some("") => String::new(),
        Some(c) => format!(" c={c};"),
    };
    let value = format!(
        " v=1; a={};{c} d={}; s={};{extra}{l_tag}\r\n\th={}; bh={bh}; b=",
        key.algorithm(),
        spec.domain,
        spec.selector,
        spec.headers.join(":"),
    );
    let value = match spec.edit {
        Some((from, to)) => value.replacen(from, to, 1),
        None => value,
    };
    // §5.4.2: each name takes the last not yet used instance, bottom up;
    // a name with no instance left contributes nothing.
    let mut used = vec![false; hdrs.len()];
    let mut data = Vec::new();
    for name in spec.headers {
        if let Some(i) = (0..hdrs.len())
            .rev()
            .find(|i| !used[*i] && hdrs[*i].0.eq_ignore_ascii_case(name))
        {
            used[i] = true;
            data.extend(canonical_header(&hdrs[i].0, &hdrs[i].1, spec.header_canon));
        }
    }
    let mut own = canonical_header("DKIM-Signature", value.as_bytes(), spec.header_canon);
    own.truncate(own.len() - 2); // §3.7: without the trailing CRLF
    data.extend(own);
    let b = B64.encode(key.sign(&data));
    let mut out = format!("DKIM-Signature:{value}{b}\r\n").into_bytes();
    out.extend_from_slice(raw);
    out
}

#[cfg(test)]
mod tests {
    // Examples from RFC 6376 §3.4.5.
    use super::*;

    #[test]
    fn rfc6376_section_3_4_5_examples() {
        assert_eq!(
            canonical_header("A", b" X", Canon::Relaxed),
            b"a:X\r\n".to_vec()
        );
        assert_eq!(
            canonical_header("B ", b" Y\t\r\n\tZ  ", Canon::Relaxed),
            b"b:Y Z\r\n".to_vec()
        );
        assert_eq!(
            canonical_body(b" C \r\nD \t E\r\n\r\n\r\n", Canon::Relaxed),
            b" C\r\nD E\r\n".to_vec()
        );
        assert_eq!(
            canonical_body(b" C \r\nD \t E\r\n\r\n\r\n", Canon::Simple),
            b" C \r\nD \t E\r\n".to_vec()
        );
    }
}
