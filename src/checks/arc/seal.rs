//! ARC sealing (RFC 8617 §5.1) for operators who forward: after
//! authentication, one ARC set is added to the message as delivered: the
//! ARC-Authentication-Results copies our own Authentication-Results, the
//! ARC-Message-Signature signs the configured header fields and the body,
//! the ARC-Seal signs the whole chain with `cv=` from our validation.

use super::super::dkim::KeyCache;
use crate::dns::Dns;
use mail_auth::{
    arc::ArcSealer,
    common::{
        crypto::{Ed25519Key, RsaKey, Sha256},
        headers::HeaderWriter,
    },
    dkim::Done,
    AuthenticatedMessage, AuthenticationResults, Parameters,
};
use rustls_pki_types::{pem::PemObject, PrivateKeyDer};
use std::{fmt, path::PathBuf, sync::Arc};

/// The header fields signed by default: those a list or forwarder keeps and
/// a reader sees. Never ARC's own fields or Authentication-Results (which
/// the receiver rewrites).
pub const DEFAULT_HEADERS: &[&str] = &[
    "From",
    "To",
    "Cc",
    "Subject",
    "Date",
    "Message-ID",
    "Reply-To",
    "In-Reply-To",
    "References",
    "MIME-Version",
    "Content-Type",
    "Content-Transfer-Encoding",
    "List-Id",
    "DKIM-Signature",
];

/// Fields a message signature must not sign (RFC 8617 §4.1.2: ARC fields
/// are covered by the seal; Authentication-Results changes at every hop).
pub const FORBIDDEN_HEADERS: &[&str] = &[
    "ARC-Seal",
    "ARC-Message-Signature",
    "ARC-Authentication-Results",
    "Authentication-Results",
];

enum Signer {
    Rsa(ArcSealer<RsaKey<Sha256>, Done>),
    Ed25519(ArcSealer<Ed25519Key, Done>),
}

/// The sealing settings (`[arc] seal_*`), with the key loaded.
#[derive(Clone)]
pub struct SealConfig {
    pub domain: String,
    pub selector: String,
    pub key_file: PathBuf,
    pub headers: Vec<String>,
    signer: Arc<Signer>,
}

impl fmt::Debug for SealConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SealConfig")
            .field("domain", &self.domain)
            .field("selector", &self.selector)
            .field("key_file", &self.key_file)
            .field("headers", &self.headers)
            .finish_non_exhaustive()
    }
}

impl SealConfig {
    /// Loads the private key (PEM: PKCS#1 or PKCS#8 RSA of at least 2048
    /// bits, which is what the signer (ring) accepts, or PKCS#8 Ed25519).
    ///
    /// # Errors
    ///
    /// A message naming the key file and what is wrong with it.
    pub fn load(
        domain: &str,
        selector: &str,
        key_file: PathBuf,
        headers: Vec<String>,
    ) -> Result<Self, String> {
        let file = key_file.display().to_string();
        let pem = std::fs::read_to_string(&key_file)
            .map_err(|e| format!("key file {file}: cannot read: {e}"))?;
        let der = PrivateKeyDer::from_pem_slice(pem.as_bytes()).map_err(|e| {
            format!("key file {file}: no PEM private key (PKCS#1 or PKCS#8) in it: {e:?}")
        })?;
        let signer = match RsaKey::<Sha256>::from_key_der(der.clone_key()) {
            Ok(key) => {
                let sealer = ArcSealer::from_key(key)
                    .domain(domain)
                    .selector(selector)
                    .headers(headers.iter().cloned());
                Signer::Rsa(sealer)
            }
            Err(rsa_err) => {
                let hint = if rsa_err.to_string().contains("TooSmall") {
                    " (RSA keys must have at least 2048 bits to sign)"
                } else {
                    ""
                };
                match &der {
                    PrivateKeyDer::Pkcs8(p) => {
                        let key = Ed25519Key::from_pkcs8_maybe_unchecked_der(p.secret_pkcs8_der())
                        .map_err(|e| {
                            format!(
                                "key file {file}: neither an RSA key ({rsa_err}{hint}) nor an Ed25519 key ({e})"
                            )
                        })?;
                        let sealer = ArcSealer::from_key(key)
                            .domain(domain)
                            .selector(selector)
                            .headers(headers.iter().cloned());
                        Signer::Ed25519(sealer)
                    }
                    _ => {
                        return Err(format!(
                            "key file {file}: not a usable RSA key: {rsa_err}{hint}"
                        ));
                    }
                }
            }
        };
        Ok(Self {
            domain: domain.to_string(),
            selector: selector.to_string(),
            key_file,
            headers,
            signer: Arc::new(signer),
        })
    }
}

/// Splits `Name: value\r\n` fields into (name, value) with LF folding, as
/// the MTA wants header values from a milter.
fn split_fields(text: &str) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    for line in text.split("\r\n").filter(|l| !l.is_empty()) {
        if line.starts_with([' ', '\t']) {
            if let Some(last) = out.last_mut() {
                last.1.push('\n');
                last.1.push_str(line);
            }
        } else if let Some((name, value)) = line.split_once(':') {
            out.push((name.to_string(), value.to_string()));
        }
    }
    out
}

/// `raw` with `fields` (as [`seal`] returns them) prepended, CRLF line ends:
/// the message as the next hop receives it.
pub fn prepend(fields: &[(String, String)], raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(raw.len() + 1024);
    for (name, value) in fields {
        out.extend_from_slice(name.as_bytes());
        out.push(b':');
        out.extend_from_slice(value.replace('\n', "\r\n").as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(raw);
    out
}

/// Seals `raw`, the message as it will be delivered (CRLF line ends), with
/// `results` as the ARC-Authentication-Results (our Authentication-Results
/// value after the authserv-id, starting with `;`). Returns the three fields
/// to prepend, ARC-Seal first.
///
/// # Errors
///
/// Why the message cannot be sealed (a chain that already failed, a field
/// the signature needs is missing, a signing error).
pub async fn seal(
    dns: &Dns,
    cfg: &SealConfig,
    raw: &[u8],
    keys: &KeyCache,
    authserv_id: &str,
    results: &str,
) -> Result<Vec<(String, String)>, String> {
    seal_modified(dns, cfg, raw, raw, keys, authserv_id, results).await
}

/// [`seal`] for a forwarder that changed the message after receiving it:
/// `cv=` comes from the chain of `received`, the signatures cover `raw`.
///
/// # Errors
///
/// As [`seal`].
pub async fn seal_modified(
    dns: &Dns,
    cfg: &SealConfig,
    received: &[u8],
    raw: &[u8],
    keys: &KeyCache,
    authserv_id: &str,
    results: &str,
) -> Result<Vec<(String, String)>, String> {
    let before = AuthenticatedMessage::parse(received).ok_or("message could not be parsed")?;
    let msg = AuthenticatedMessage::parse(raw).ok_or("message could not be parsed")?;
    let chain = dns
        .authenticator()
        .verify_arc(Parameters::new(&before).with_txt_cache(keys))
        .await;
    let results = results.replace("\r\n", "\n").replace('\n', "\r\n");
    let aar = AuthenticationResults::new(authserv_id).with_raw_results(&results);
    let set = match cfg.signer.as_ref() {
        Signer::Rsa(s) => s.seal(&msg, &aar, &chain),
        Signer::Ed25519(s) => s.seal(&msg, &aar, &chain),
    }
    .map_err(|e| format!("cannot seal: {e}"))?;
    Ok(split_fields(&set.to_header()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_split_with_lf_folding() {
        let f = split_fields("ARC-Seal: i=1; a=x;\r\n\tb=y\r\nARC-Message-Signature: i=1\r\n");
        assert_eq!(f.len(), 2);
        assert_eq!(f[0].0, "ARC-Seal");
        assert_eq!(f[0].1, " i=1; a=x;\n\tb=y");
    }

    #[test]
    fn key_file_errors_name_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing.pem");
        let e = SealConfig::load("a.example", "s", missing.clone(), vec![]).unwrap_err();
        assert!(e.contains(&missing.display().to_string()), "{e}");
        let junk = dir.path().join("junk.pem");
        std::fs::write(&junk, "not a key").unwrap();
        let e = SealConfig::load("a.example", "s", junk.clone(), vec![]).unwrap_err();
        assert!(e.contains("junk.pem") && e.contains("PEM"), "{e}");
    }
}
