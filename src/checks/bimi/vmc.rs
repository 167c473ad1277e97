//! Validation of a BIMI evidence document: a Verified Mark Certificate or
//! Common Mark Certificate, as a PEM chain, leaf first. The chain must reach
//! one of the operator's BIMI trust anchors (RFC 5280 path validation by
//! webpki, with the BIMI extended key usage), be valid now, name the domain
//! in its subjectAltName, and carry the mark as an SVG in its logotype
//! extension (RFC 3709, as RFC 9399 updates it).

use base64::Engine as _;
use rustls_pki_types::{pem::PemObject, CertificateDer, TrustAnchor, UnixTime};
use sha2::{Digest, Sha256};
use std::io::Read as _;
use x509_parser::prelude::{FromDer, GeneralName, X509Certificate};

/// id-kp-BrandIndicatorforMessageIdentification, 1.3.6.1.5.5.7.3.31 (DER value).
const EKU_BIMI: &[u8] = &[0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x03, 0x1f];
/// id-pe-logotype, 1.3.6.1.5.5.7.1.12.
const OID_LOGOTYPE: &str = "1.3.6.1.5.5.7.1.12";
/// id-sha256 (DER value). The VMC guidelines require SHA-256 logotype
/// hashes; other algorithms are ignored, and one SHA-256 hash is needed.
const OID_SHA256: &[u8] = &[0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01];
/// Most certificates read from one evidence document.
const MAX_CERTS: usize = 8;

/// What a validated evidence document asserts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mark {
    /// The SVG of the mark, as the certificate embeds it (uncompressed).
    pub svg: Vec<u8>,
}

/// Why an evidence document was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum VmcError {
    #[error("evidence document: {0}")]
    Format(String),
    #[error("certificate expired")]
    Expired,
    #[error("certificate not valid yet")]
    NotYetValid,
    #[error("certificate chain does not reach a configured BIMI trust anchor")]
    Untrusted,
    #[error("certificate is not for BIMI (extended key usage 1.3.6.1.5.5.7.3.31 missing)")]
    Usage,
    #[error("certificate does not name {0} in its subjectAltName")]
    Name(String),
    #[error("certificate revoked")]
    Revoked,
    #[error("revocation: {0}")]
    Revocation(String),
    #[error("certificate refused: {0}")]
    Invalid(String),
    #[error("logotype: {0}")]
    Logotype(String),
}

/// Reads the trust anchors of PEM certificates.
///
/// # Errors
///
/// A certificate that is not a usable anchor.
pub fn anchors(certs: &[CertificateDer<'_>]) -> Result<Vec<TrustAnchor<'static>>, String> {
    certs
        .iter()
        .map(|c| {
            webpki::anchor_from_trusted_cert(c)
                .map(|a| a.to_owned())
                .map_err(|e| format!("not a usable trust anchor: {e}"))
        })
        .collect()
}

/// The certificates of a PEM evidence document, leaf first.
///
/// # Errors
///
/// Not PEM, no certificate, or too many.
pub fn certificates(pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, VmcError> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(pem)
        .take(MAX_CERTS + 1)
        .collect::<Result<_, _>>()
        .map_err(|e| VmcError::Format(format!("not PEM: {e}")))?;
    if certs.is_empty() {
        return Err(VmcError::Format("no certificate in it".into()));
    }
    if certs.len() > MAX_CERTS {
        return Err(VmcError::Format(format!(
            "more than {MAX_CERTS} certificates"
        )));
    }
    Ok(certs)
}

/// Most CRLs fetched for one evidence document.
pub const MAX_CRLS: usize = 4;

/// The CRL distribution point URIs (`http:`/`https:` fullName) of the
/// certificates of a chain, in order, without repeats, at most
/// [`MAX_CRLS`].
pub fn crl_uris(certs: &[CertificateDer<'_>]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for c in certs {
        let Ok((_, cert)) = X509Certificate::from_der(c.as_ref()) else {
            continue;
        };
        for ext in cert.extensions() {
            let x509_parser::extensions::ParsedExtension::CRLDistributionPoints(points) =
                ext.parsed_extension()
            else {
                continue;
            };
            for p in points.iter() {
                let Some(x509_parser::extensions::DistributionPointName::FullName(names)) =
                    &p.distribution_point
                else {
                    continue;
                };
                for n in names {
                    if let GeneralName::URI(u) = n {
                        let lower = u.to_ascii_lowercase();
                        let web = lower.starts_with("http://") || lower.starts_with("https://");
                        if web && !out.iter().any(|o| o == u) && out.len() < MAX_CRLS {
                            out.push(u.to_string());
                        }
                    }
                }
            }
        }
    }
    out
}

/// Validates `pem` for the domain: one of `names` (lower case, without a
/// trailing dot) must be a subjectAltName DNS name of the leaf. With
/// `crls` (DER, `Some` when revocation is checked), every certificate of
/// the chain must be covered by one of them and not be revoked.
///
/// # Errors
///
/// See [`VmcError`].
pub fn validate(
    pem: &[u8],
    anchors: &[TrustAnchor<'_>],
    names: &[String],
    now: UnixTime,
    crls: Option<&[Vec<u8>]>,
) -> Result<Mark, VmcError> {
    let certs = certificates(pem)?;
    let owned: Vec<webpki::CertRevocationList<'static>> = match crls {
        Some(list) => list
            .iter()
            .map(|der| {
                webpki::OwnedCertRevocationList::from_der(der)
                    .map(Into::into)
                    .map_err(|e| VmcError::Revocation(format!("unusable CRL: {e}")))
            })
            .collect::<Result<_, _>>()?,
        None => Vec::new(),
    };
    let refs: Vec<&webpki::CertRevocationList<'_>> = owned.iter().collect();
    let revocation = match crls {
        Some(_) => Some(
            webpki::RevocationOptionsBuilder::new(&refs)
                .map_err(|_| {
                    VmcError::Revocation("the certificate names no CRL distribution point".into())
                })?
                .with_depth(webpki::RevocationCheckDepth::Chain)
                .with_status_policy(webpki::UnknownStatusPolicy::Deny)
                .with_expiration_policy(webpki::ExpirationPolicy::Enforce)
                .build(),
        ),
        None => None,
    };
    let leaf = webpki::EndEntityCert::try_from(&certs[0])
        .map_err(|e| VmcError::Format(format!("leaf certificate: {e}")))?;
    leaf.verify_for_usage(
        webpki::ALL_VERIFICATION_ALGS,
        anchors,
        &certs[1..],
        now,
        webpki::KeyUsage::required(EKU_BIMI),
        revocation,
        None,
    )
    .map_err(|e| match e {
        webpki::Error::CertExpired { .. } => VmcError::Expired,
        webpki::Error::CertNotValidYet { .. } => VmcError::NotYetValid,
        webpki::Error::UnknownIssuer => VmcError::Untrusted,
        webpki::Error::RequiredEkuNotFoundContext(_) => VmcError::Usage,
        webpki::Error::CertRevoked => VmcError::Revoked,
        webpki::Error::UnknownRevocationStatus => {
            VmcError::Revocation("no CRL covers a certificate of the chain".into())
        }
        webpki::Error::CrlExpired { .. } => VmcError::Revocation("the CRL has expired".into()),
        other => VmcError::Invalid(other.to_string()),
    })?;
    let (_, cert) = X509Certificate::from_der(certs[0].as_ref())
        .map_err(|e| VmcError::Format(format!("leaf certificate: {e}")))?;
    issuer_has_usage(&cert, &certs[1..])?;
    matching_name(&cert, names)?;
    Ok(Mark {
        svg: logotype_svg(&cert)?,
    })
}

/// The mark SVG of one DER certificate's logotype extension, without any
/// other check (for `fuzz/` and diagnostics).
///
/// # Errors
///
/// Not a certificate, or no usable logotype.
pub fn mark_svg(cert_der: &[u8]) -> Result<Vec<u8>, VmcError> {
    let (_, cert) = X509Certificate::from_der(cert_der)
        .map_err(|e| VmcError::Format(format!("certificate: {e}")))?;
    logotype_svg(&cert)
}

/// VMC draft §4.4: the CA that issued the leaf carries the BIMI extended key
/// usage too. (webpki refuses an issuer whose key usages leave BIMI out; this
/// also refuses one without the extension.) A leaf issued by a trust anchor
/// itself is left to the anchor list.
fn issuer_has_usage(
    leaf: &X509Certificate<'_>,
    chain: &[CertificateDer<'_>],
) -> Result<(), VmcError> {
    let issuer = chain.iter().find_map(|c| {
        let (_, cert) = X509Certificate::from_der(c.as_ref()).ok()?;
        (cert.subject().as_raw() == leaf.issuer().as_raw()
            && cert.subject().as_raw() != cert.issuer().as_raw())
        .then_some(cert)
    });
    let Some(issuer) = issuer else {
        return Ok(());
    };
    let has = issuer
        .extended_key_usage()
        .ok()
        .flatten()
        .is_some_and(|e| e.value.other.iter().any(|o| o.as_bytes() == EKU_BIMI));
    if has {
        Ok(())
    } else {
        Err(VmcError::Usage)
    }
}

/// Whether one of `names` is a subjectAltName DNS name of the leaf
/// (exact, case-insensitive: a wildcard names no domain here).
fn matching_name(cert: &X509Certificate<'_>, names: &[String]) -> Result<(), VmcError> {
    let san = cert
        .subject_alternative_name()
        .map_err(|e| VmcError::Format(format!("subjectAltName: {e}")))?;
    let dns: Vec<String> = san
        .map(|s| {
            s.value
                .general_names
                .iter()
                .filter_map(|g| match g {
                    GeneralName::DNSName(n) => Some(n.trim_end_matches('.').to_ascii_lowercase()),
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default();
    if names.iter().any(|n| dns.contains(n)) {
        Ok(())
    } else {
        Err(VmcError::Name(names.first().cloned().unwrap_or_default()))
    }
}

/// The SVG in the leaf's logotype extension: the subject logo's first image
/// of type image/svg+xml, given as a `data:` URI (base64, gzip-compressed or
/// not), whose hash must match the one the certificate states.
fn logotype_svg(cert: &X509Certificate<'_>) -> Result<Vec<u8>, VmcError> {
    let ext = cert
        .extensions()
        .iter()
        .find(|e| e.oid.to_id_string() == OID_LOGOTYPE)
        .ok_or_else(|| VmcError::Logotype("the certificate has no logotype extension".into()))?;
    let bad = |why: &str| VmcError::Logotype(why.to_string());
    // LogotypeExtn ::= SEQUENCE { ..., subjectLogo [2] EXPLICIT LogotypeInfo OPTIONAL, ... }
    let outer = der::one(ext.value, 0x30).ok_or_else(|| bad("not a SEQUENCE"))?;
    let subject = der::children(outer)
        .ok_or_else(|| bad("malformed"))?
        .into_iter()
        .find(|(t, _)| *t == 0xa2)
        .ok_or_else(|| bad("no subject logo"))?
        .1;
    // LogotypeInfo ::= CHOICE { direct [0] LogotypeData, indirect [1] ... }
    let direct = der::one(subject, 0xa0).ok_or_else(|| bad("the subject logo is not direct"))?;
    // LogotypeData ::= SEQUENCE { image SEQUENCE OF LogotypeImage OPTIONAL, ... }
    let data = der::children(direct).ok_or_else(|| bad("malformed"))?;
    let images = data
        .iter()
        .find(|(t, _)| *t == 0x30)
        .ok_or_else(|| bad("no image"))?
        .1;
    for (t, image) in der::children(images).ok_or_else(|| bad("malformed"))? {
        if t != 0x30 {
            continue;
        }
        // LogotypeImage ::= SEQUENCE { imageDetails LogotypeDetails, imageInfo ... OPTIONAL }
        let parts = der::children(image).ok_or_else(|| bad("malformed image"))?;
        let Some((0x30, details)) = parts.first().copied() else {
            return Err(bad("malformed image"));
        };
        // LogotypeDetails ::= SEQUENCE { mediaType IA5String,
        //   logotypeHash SEQUENCE OF HashAlgAndValue, logotypeURI SEQUENCE OF IA5String }
        let d = der::children(details).ok_or_else(|| bad("malformed details"))?;
        let [(0x16, media), (0x30, hashes), (0x30, uris), ..] = d.as_slice() else {
            return Err(bad("malformed details"));
        };
        if !media.eq_ignore_ascii_case(b"image/svg+xml") {
            continue;
        }
        let uris = der::children(uris).ok_or_else(|| bad("malformed URIs"))?;
        let Some((0x16, uri)) = uris.first().copied() else {
            return Err(bad("no URI"));
        };
        let data = data_uri(uri)?;
        check_hash(hashes, &data)?;
        return gunzip_if_needed(data, MAX_SVG);
    }
    Err(bad("no image/svg+xml image"))
}

/// The bytes of a `data:image/svg+xml;base64,` URI (RFC 2397).
fn data_uri(uri: &[u8]) -> Result<Vec<u8>, VmcError> {
    let text = std::str::from_utf8(uri).map_err(|_| VmcError::Logotype("URI not ASCII".into()))?;
    let (head, payload) = text
        .split_once(',')
        .ok_or_else(|| VmcError::Logotype("not a data: URI".into()))?;
    let head = head.to_ascii_lowercase();
    if !head.starts_with("data:image/svg+xml") || !head.ends_with(";base64") {
        return Err(VmcError::Logotype(
            "the image is not a base64 data:image/svg+xml URI".into(),
        ));
    }
    let clean: String = payload
        .chars()
        .filter(|c| !c.is_ascii_whitespace())
        .collect();
    base64::engine::general_purpose::STANDARD
        .decode(clean)
        .map_err(|e| VmcError::Logotype(format!("base64: {e}")))
}

/// RFC 3709 §4.1: the hash is over the logotype object, the bytes the URI
/// gives. At least one SHA-256 hash must be stated, and every one must match.
fn check_hash(hashes: &[u8], data: &[u8]) -> Result<(), VmcError> {
    let bad = |why: &str| VmcError::Logotype(why.to_string());
    let mut checked = false;
    for (t, h) in der::children(hashes).ok_or_else(|| bad("malformed hashes"))? {
        if t != 0x30 {
            return Err(bad("malformed hash"));
        }
        let parts = der::children(h).ok_or_else(|| bad("malformed hash"))?;
        let [(0x30, alg), (0x04, value), ..] = parts.as_slice() else {
            return Err(bad("malformed hash"));
        };
        let oid = der::children(alg)
            .and_then(|a| a.first().copied())
            .filter(|(t, _)| *t == 0x06)
            .ok_or_else(|| bad("malformed hash algorithm"))?
            .1;
        let computed: Vec<u8> = if oid == OID_SHA256 {
            Sha256::digest(data).to_vec()
        } else {
            continue;
        };
        if computed != *value {
            return Err(bad(
                "the image does not match the hash the certificate states",
            ));
        }
        checked = true;
    }
    if checked {
        Ok(())
    } else {
        Err(bad("no SHA-256 hash of the image"))
    }
}

/// Largest uncompressed SVG taken from a certificate.
const MAX_SVG: usize = 1 << 20;

/// `data` uncompressed when it is gzip (SVGZ), at most `max` bytes.
///
/// # Errors
///
/// Bad gzip, or more than `max` bytes uncompressed.
pub fn gunzip_if_needed(data: Vec<u8>, max: usize) -> Result<Vec<u8>, VmcError> {
    if !data.starts_with(&[0x1f, 0x8b]) {
        return Ok(data);
    }
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(data.as_slice())
        .take(max as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|e| VmcError::Logotype(format!("gzip: {e}")))?;
    if out.len() > max {
        return Err(VmcError::Logotype(format!(
            "the image is larger than {max} bytes uncompressed"
        )));
    }
    Ok(out)
}

/// Just enough DER (X.690) to walk the logotype extension: definite
/// lengths, single-byte tags.
mod der {
    /// Splits one TLV off `input`: (tag, content, rest).
    pub fn tlv(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
        let (&tag, rest) = input.split_first()?;
        if tag & 0x1f == 0x1f {
            return None;
        }
        let (&first, rest) = rest.split_first()?;
        let (len, rest) = if first < 0x80 {
            (first as usize, rest)
        } else {
            let n = (first & 0x7f) as usize;
            if n == 0 || n > 4 || rest.len() < n {
                return None;
            }
            let len = rest[..n].iter().fold(0usize, |a, b| (a << 8) | *b as usize);
            (len, &rest[n..])
        };
        if rest.len() < len {
            return None;
        }
        Some((tag, &rest[..len], &rest[len..]))
    }

    /// The content of `input` when it is exactly one TLV with `tag`.
    pub fn one(input: &[u8], tag: u8) -> Option<&[u8]> {
        let (t, content, rest) = tlv(input)?;
        (t == tag && rest.is_empty()).then_some(content)
    }

    /// The TLVs that make up a constructed value's content.
    pub fn children(mut content: &[u8]) -> Option<Vec<(u8, &[u8])>> {
        let mut out = Vec::new();
        while !content.is_empty() {
            let (t, c, rest) = tlv(content)?;
            out.push((t, c));
            content = rest;
        }
        Some(out)
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn short_and_long_lengths_and_truncation() {
            assert_eq!(
                tlv(&[0x04, 0x01, 0xaa, 0xbb]),
                Some((0x04, &[0xaa][..], &[0xbb][..]))
            );
            let mut long = vec![0x04, 0x81, 0x80];
            long.extend(std::iter::repeat_n(0, 0x80));
            assert_eq!(tlv(&long).map(|t| t.1.len()), Some(0x80));
            assert_eq!(tlv(&[0x04, 0x05, 0x00]), None);
            assert_eq!(tlv(&[0x04, 0x80]), None);
            assert_eq!(tlv(&[0x1f, 0x01, 0x00]), None);
            assert_eq!(one(&[0x30, 0x00, 0x00], 0x30), None);
            assert_eq!(children(&[0x02, 0x01, 0x05, 0x02, 0x01]), None);
        }
    }
}
