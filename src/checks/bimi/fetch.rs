//! HTTPS GET of a BIMI indicator or evidence document (and HTTP or HTTPS GET
//! of a certificate revocation list, a signed document usually published
//! over plain HTTP), with a byte limit and a time limit, through our own
//! resolver. Only URIs with a host name; no redirects (a 3xx is a failure);
//! addresses that are not globally routable are refused unless the operator
//! allows them.

use crate::dns::Dns;
use http_body_util::{BodyExt, Empty, Limited};
use hyper::{body::Bytes, Request, StatusCode, Uri};
use hyper_util::rt::TokioIo;
use rustls::pki_types::{pem::PemObject, CertificateDer, ServerName};
use std::{
    net::{IpAddr, SocketAddr},
    path::Path,
    sync::Arc,
    time::Duration,
};
use tokio::net::TcpStream;

/// Why a document could not be fetched.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FetchError {
    /// The URI is not one BIMI allows (not https, no host, user info, ...).
    #[error("{0}")]
    BadUri(String),
    /// The host name has no address, or only refused ones.
    #[error("{0}")]
    Address(String),
    /// DNS could not answer for the host: may work later.
    #[error("{0}")]
    Dns(String),
    /// Connection, TLS or HTTP failure, or the time limit.
    #[error("{0}")]
    Transfer(String),
    /// The server answered, but not with the document.
    #[error("{0}")]
    Status(String),
    /// The document is larger than the limit.
    #[error("larger than {0} bytes")]
    TooLarge(usize),
}

impl FetchError {
    /// Whether a later attempt may succeed (DNS, network, server errors).
    pub fn is_temporary(&self) -> bool {
        matches!(self, Self::Dns(_) | Self::Transfer(_))
            || matches!(self, Self::Status(s) if s.starts_with('5'))
    }
}

/// An HTTPS client for BIMI documents.
#[derive(Clone)]
pub struct Fetcher {
    dns: Dns,
    tls: tokio_rustls::TlsConnector,
    timeout: Duration,
    allow_private: bool,
}

impl std::fmt::Debug for Fetcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fetcher")
            .field("timeout", &self.timeout)
            .field("allow_private", &self.allow_private)
            .finish_non_exhaustive()
    }
}

/// Reads the PEM certificates of a file (trust anchors, CA bundles).
///
/// # Errors
///
/// The file cannot be read, or holds no certificate.
pub fn read_certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let data = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let certs: Vec<_> = CertificateDer::pem_slice_iter(&data)
        .collect::<Result<_, _>>()
        .map_err(|e| format!("{}: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!("{}: no PEM certificate in it", path.display()));
    }
    Ok(certs)
}

impl Fetcher {
    /// A client trusting the web PKI roots in `roots` for the HTTPS servers.
    ///
    /// # Errors
    ///
    /// No usable certificate among `roots`.
    pub fn new(
        dns: Dns,
        roots: &[CertificateDer<'static>],
        timeout: Duration,
        allow_private: bool,
    ) -> Result<Self, String> {
        let mut store = rustls::RootCertStore::empty();
        let (added, _ignored) = store.add_parsable_certificates(roots.iter().cloned());
        if added == 0 {
            return Err("no usable root certificate for HTTPS".into());
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .with_root_certificates(store)
            .with_no_client_auth();
        Ok(Self {
            dns,
            tls: tokio_rustls::TlsConnector::from(Arc::new(config)),
            timeout,
            allow_private,
        })
    }

    /// Fetches `uri`, at most `max_bytes` of body, within the time limit.
    ///
    /// # Errors
    ///
    /// See [`FetchError`].
    pub async fn get(&self, uri: &str, max_bytes: usize) -> Result<Vec<u8>, FetchError> {
        self.fetch(Target::parse(uri, false)?, max_bytes).await
    }

    /// Fetches a CRL: `http:` allowed beside `https:` (the CRL is signed by
    /// its issuer, so the transport adds nothing to its authenticity).
    ///
    /// # Errors
    ///
    /// See [`FetchError`].
    pub async fn get_crl(&self, uri: &str, max_bytes: usize) -> Result<Vec<u8>, FetchError> {
        self.fetch(Target::parse(uri, true)?, max_bytes).await
    }

    async fn fetch(&self, target: Target, max_bytes: usize) -> Result<Vec<u8>, FetchError> {
        match tokio::time::timeout(self.timeout, self.get_inner(&target, max_bytes)).await {
            Ok(r) => r,
            Err(_) => Err(FetchError::Transfer(format!(
                "no complete answer from {} within {:.1}s",
                target.host,
                self.timeout.as_secs_f64()
            ))),
        }
    }

    async fn addresses(&self, host: &str, port: u16) -> Result<Vec<SocketAddr>, FetchError> {
        let (v4, v6) = tokio::join!(self.dns.a(host), self.dns.aaaa(host));
        let mut addrs: Vec<IpAddr> = Vec::new();
        let mut temporary = None;
        match v4 {
            Ok(a) => addrs.extend(a.into_iter().map(IpAddr::V4)),
            Err(e) if !e.is_not_found() => temporary = Some(e.to_string()),
            Err(_) => {}
        }
        match v6 {
            Ok(a) => addrs.extend(a.into_iter().map(IpAddr::V6)),
            Err(e) if !e.is_not_found() => temporary = Some(e.to_string()),
            Err(_) => {}
        }
        if addrs.is_empty() {
            return Err(match temporary {
                Some(e) => FetchError::Dns(format!("address of {host}: {e}")),
                None => FetchError::Address(format!("{host} has no address")),
            });
        }
        let allowed: Vec<SocketAddr> = addrs
            .iter()
            .filter(|ip| self.allow_private || is_global(**ip))
            .map(|ip| SocketAddr::new(*ip, port))
            .collect();
        if allowed.is_empty() {
            return Err(FetchError::Address(format!(
                "{host} has only addresses that are not globally routable ({}); \
                 bimi.fetch_private_addresses is off",
                addrs[0]
            )));
        }
        Ok(allowed)
    }

    async fn get_inner(&self, t: &Target, max_bytes: usize) -> Result<Vec<u8>, FetchError> {
        let addrs = self.addresses(&t.host, t.port).await?;
        let mut last = String::new();
        let mut tcp = None;
        for a in addrs {
            match TcpStream::connect(a).await {
                Ok(s) => {
                    tcp = Some(s);
                    break;
                }
                Err(e) => last = format!("connect to {a}: {e}"),
            }
        }
        let tcp = tcp.ok_or(FetchError::Transfer(last))?;
        if !t.tls {
            return exchange(tcp, t, max_bytes).await;
        }
        let name = ServerName::try_from(t.host.clone())
            .map_err(|e| FetchError::BadUri(format!("host {}: {e}", t.host)))?;
        let tls = self
            .tls
            .connect(name, tcp)
            .await
            .map_err(|e| FetchError::Transfer(format!("TLS with {}: {e}", t.host)))?;
        exchange(tls, t, max_bytes).await
    }
}

/// One GET over an open connection.
async fn exchange<IO>(io: IO, t: &Target, max_bytes: usize) -> Result<Vec<u8>, FetchError>
where
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io))
        .await
        .map_err(|e| FetchError::Transfer(format!("HTTP with {}: {e}", t.host)))?;
    // The connection is driven beside the request and ends with it.
    let driver = tokio::spawn(async move {
        let _ = conn.await;
    });
    let req = Request::get(t.path.as_str())
        .header(hyper::header::HOST, t.authority.as_str())
        .header(
            hyper::header::USER_AGENT,
            concat!("authmilter/", env!("CARGO_PKG_VERSION")),
        )
        .header(hyper::header::ACCEPT, "*/*")
        .header(hyper::header::CONNECTION, "close")
        .body(Empty::<Bytes>::new())
        .map_err(|e| FetchError::BadUri(e.to_string()))?;
    let result = async {
        let resp = sender
            .send_request(req)
            .await
            .map_err(|e| FetchError::Transfer(format!("HTTP with {}: {e}", t.host)))?;
        if resp.status() != StatusCode::OK {
            return Err(FetchError::Status(format!(
                "{} from {}",
                resp.status(),
                t.host
            )));
        }
        if let Some(len) = resp
            .headers()
            .get(hyper::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok())
        {
            if len > max_bytes as u64 {
                return Err(FetchError::TooLarge(max_bytes));
            }
        }
        let body = Limited::new(resp.into_body(), max_bytes)
            .collect()
            .await
            .map_err(|e| {
                if e.downcast_ref::<http_body_util::LengthLimitError>()
                    .is_some()
                {
                    FetchError::TooLarge(max_bytes)
                } else {
                    FetchError::Transfer(format!("reading from {}: {e}", t.host))
                }
            })?;
        Ok(body.to_bytes().to_vec())
    }
    .await;
    driver.abort();
    result
}

/// The parts of an `https:` URI needed to fetch it.
#[derive(Debug, PartialEq, Eq)]
struct Target {
    /// `https:` (else `http:`, for CRLs only).
    tls: bool,
    host: String,
    port: u16,
    /// `host` or `host:port`, for the Host header.
    authority: String,
    path: String,
}

impl Target {
    fn parse(uri: &str, allow_http: bool) -> Result<Self, FetchError> {
        let bad = |why: &str| FetchError::BadUri(format!("{}: {why}", printable(uri)));
        let u: Uri = uri.parse().map_err(|_| bad("not a URI"))?;
        let tls = match u.scheme_str().map(str::to_ascii_lowercase).as_deref() {
            Some("https") => true,
            Some("http") if allow_http => false,
            _ if allow_http => return Err(bad("only http: and https: are allowed")),
            _ => return Err(bad("only https: is allowed")),
        };
        let auth = u.authority().ok_or_else(|| bad("no host"))?;
        if auth.as_str().contains('@') {
            return Err(bad("user information is not allowed"));
        }
        let host = auth.host().trim_end_matches('.').to_ascii_lowercase();
        if host.is_empty() || host.starts_with('[') || host.parse::<IpAddr>().is_ok() {
            return Err(bad("the host must be a domain name"));
        }
        let port = auth.port_u16().unwrap_or(if tls { 443 } else { 80 });
        let path = u
            .path_and_query()
            .map_or("/".to_string(), |p| p.as_str().to_string());
        Ok(Self {
            tls,
            authority: auth.as_str().to_ascii_lowercase(),
            host,
            port,
            path,
        })
    }
}

/// Text of a sender-supplied value that is safe to log (control bytes and
/// non-ASCII escaped, length bounded).
pub fn printable(s: &str) -> String {
    let mut out: String = s.chars().take(200).flat_map(char::escape_default).collect();
    if s.chars().count() > 200 {
        out.push_str("...");
    }
    out
}

/// Whether an address is globally routable: not loopback, private, link
/// local, shared (RFC 6598), unspecified, multicast, documentation or
/// unique local; IPv4-mapped IPv6 addresses are judged as IPv4.
pub fn is_global(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(a) => {
            let o = a.octets();
            !(a.is_loopback()
                || a.is_private()
                || a.is_link_local()
                || a.is_unspecified()
                || a.is_multicast()
                || a.is_broadcast()
                || a.is_documentation()
                || o[0] == 0
                || (o[0] == 100 && (o[1] & 0xc0) == 64)
                || (o[0] == 198 && (o[1] & 0xfe) == 18)
                || o[0] >= 240)
        }
        IpAddr::V6(a) => {
            if let Some(v4) = a.to_ipv4_mapped() {
                return is_global(IpAddr::V4(v4));
            }
            let s = a.segments();
            !(a.is_loopback()
                || a.is_unspecified()
                || a.is_multicast()
                || (s[0] & 0xfe00) == 0xfc00
                || (s[0] & 0xffc0) == 0xfe80
                || (s[0] == 0x2001 && s[1] == 0x0db8))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_https_uris_with_a_host_name() {
        let t = Target::parse("https://Logo.Example.com/a/b.svg?x=1", false).unwrap();
        assert_eq!(t.host, "logo.example.com");
        assert_eq!(t.port, 443);
        assert_eq!(t.path, "/a/b.svg?x=1");
        assert_eq!(
            Target::parse("https://h.test:8443", false).unwrap().port,
            8443
        );
        let crl = Target::parse("http://crl.ca.test/ca.crl", true).unwrap();
        assert!(!crl.tls);
        assert_eq!(crl.port, 80);
        assert!(Target::parse("ldap://crl.ca.test/x", true).is_err());
        for bad in [
            "http://example.com/logo.svg",
            "ftp://example.com/x",
            "https://user@example.com/x",
            "https://192.0.2.1/x",
            "https://[2001:db8::1]/x",
            "example.com/logo.svg",
            "data:image/svg+xml;base64,AAAA",
        ] {
            assert!(Target::parse(bad, false).is_err(), "{bad}");
        }
    }

    #[test]
    fn private_and_special_addresses_are_not_global() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.1.1",
            "100.64.0.1",
            "0.0.0.0",
            "224.0.0.1",
            "255.255.255.255",
            "192.0.2.1",
            "198.18.0.1",
            "::1",
            "::",
            "fc00::1",
            "fe80::1",
            "2001:db8::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
        ] {
            assert!(!is_global(ip.parse().unwrap()), "{ip}");
        }
        for ip in [
            "8.8.8.8",
            "93.184.216.34",
            "2606:4700::1111",
            "::ffff:1.1.1.1",
        ] {
            assert!(is_global(ip.parse().unwrap()), "{ip}");
        }
    }

    #[test]
    fn printable_escapes_and_bounds() {
        assert_eq!(printable("a\r\nb"), "a\\r\\nb");
        assert!(printable(&"x".repeat(500)).ends_with("..."));
    }
}
