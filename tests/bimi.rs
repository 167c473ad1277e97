//! BIMI through the milter protocol (issue 15, item 5), against an HTTPS
//! server on loopback and certificates this test makes itself: a BIMI root
//! and intermediate (the trust anchor), an untrusted root, and a web root
//! for the HTTPS server. The VMCs carry their mark in the logotype extension
//! as RFC 3709 writes it (built here independently of the daemon's reader).
//!
//! A good mark gets BIMI-Location, BIMI-Indicator and `bimi=pass`; an
//! expired, untrusted, unnamed, oversized, mismatched or non-Tiny-PS one gets
//! `bimi=fail` and no fields; a hanging server costs at most `bimi.wait`;
//! and in every case the verdict is the one DMARC gives without BIMI.

mod common;

use base64::Engine as _;
use common::{
    dkim_sign::{self, Key, Spec},
    dns_server::{TestDns, Zones},
    *,
};
use http_body_util::Full;
use hyper::{body::Bytes, Request, Response};
use hyper_util::rt::TokioIo;
use indymilter_test::EomAction;
use rcgen::{
    BasicConstraints, CertificateParams, CustomExtension, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose,
};
use sha2::{Digest, Sha256};
use std::{
    collections::HashMap,
    io::Write as _,
    net::SocketAddr,
    path::Path,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

// ---------------------------------------------------------------- PKI --

const EKU_BIMI: [u64; 9] = [1, 3, 6, 1, 5, 5, 7, 3, 31];
const OID_LOGOTYPE: [u64; 9] = [1, 3, 6, 1, 5, 5, 7, 1, 12];

/// DER TLV (X.690 §8.1), definite length.
fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let n = content.len();
    if n < 0x80 {
        out.push(n as u8);
    } else {
        let bytes: Vec<u8> = n
            .to_be_bytes()
            .into_iter()
            .skip_while(|b| *b == 0)
            .collect();
        out.push(0x80 | bytes.len() as u8);
        out.extend(bytes);
    }
    out.extend_from_slice(content);
    out
}

/// RFC 3709 §4.1 LogotypeExtn with one direct subject logo: an
/// image/svg+xml given as a `data:` URI of the gzip-compressed SVG, with the
/// SHA-256 hash of the bytes the URI gives.
fn logotype(svg: &[u8]) -> Vec<u8> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(svg).unwrap();
    let data = gz.finish().unwrap();
    let uri = format!(
        "data:image/svg+xml;base64,{}",
        base64::engine::general_purpose::STANDARD.encode(&data)
    );
    // id-sha256 2.16.840.1.101.3.4.2.1
    let sha256_oid = tlv(
        0x06,
        &[0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01],
    );
    let alg = tlv(0x30, &[sha256_oid, tlv(0x05, &[])].concat());
    let hash = tlv(0x30, &[alg, tlv(0x04, &Sha256::digest(&data))].concat());
    let details = tlv(
        0x30,
        &[
            tlv(0x16, b"image/svg+xml"),
            tlv(0x30, &hash),
            tlv(0x30, &tlv(0x16, uri.as_bytes())),
        ]
        .concat(),
    );
    let image = tlv(0x30, &details);
    let images = tlv(0x30, &image);
    // direct [0] LogotypeData (implicit), inside subjectLogo [2] EXPLICIT.
    let direct = tlv(0xa0, &images);
    tlv(0x30, &tlv(0xa2, &direct))
}

struct Ca {
    cert: rcgen::Certificate,
    key: KeyPair,
    /// Where this CA's CRL is published (the distribution point of the
    /// certificates it issues).
    crl_url: String,
}

impl Ca {
    fn root(name: &str, crl_url: String) -> Ca {
        let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
        p.distinguished_name
            .push(rcgen::DnType::CommonName, name.to_string());
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        p.not_before = rcgen::date_time_ymd(2020, 1, 1);
        p.not_after = rcgen::date_time_ymd(2090, 1, 1);
        let key = KeyPair::generate().unwrap();
        let cert = p.self_signed(&key).unwrap();
        Ca { cert, key, crl_url }
    }

    /// An intermediate CA, with the BIMI extended key usage or without any.
    fn intermediate(&self, name: &str, crl_url: String, bimi_usage: bool) -> Ca {
        let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
        p.distinguished_name
            .push(rcgen::DnType::CommonName, name.to_string());
        p.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        if bimi_usage {
            p.extended_key_usages = vec![ExtendedKeyUsagePurpose::Other(EKU_BIMI.to_vec())];
        }
        p.not_before = rcgen::date_time_ymd(2020, 1, 1);
        p.not_after = rcgen::date_time_ymd(2090, 1, 1);
        p.crl_distribution_points = vec![rcgen::CrlDistributionPoint {
            uris: vec![self.crl_url.clone()],
        }];
        let key = KeyPair::generate().unwrap();
        let cert = p.signed_by(&key, &self.cert, &self.key).unwrap();
        Ca { cert, key, crl_url }
    }

    fn pem(&self) -> String {
        self.cert.pem()
    }

    /// This CA's CRL (DER, RFC 5280 §5), revoking these serial numbers.
    fn crl(&self, revoked: &[u64]) -> Vec<u8> {
        let params = rcgen::CertificateRevocationListParams {
            this_update: rcgen::date_time_ymd(2021, 1, 1),
            next_update: rcgen::date_time_ymd(2080, 1, 1),
            crl_number: rcgen::SerialNumber::from(1u64),
            issuing_distribution_point: None,
            revoked_certs: revoked
                .iter()
                .map(|n| rcgen::RevokedCertParams {
                    serial_number: rcgen::SerialNumber::from(*n),
                    revocation_time: rcgen::date_time_ymd(2022, 6, 1),
                    reason_code: Some(rcgen::RevocationReason::KeyCompromise),
                    invalidity_date: None,
                })
                .collect(),
            key_identifier_method: rcgen::KeyIdMethod::Sha256,
        };
        params
            .signed_by(&self.cert, &self.key)
            .unwrap()
            .der()
            .to_vec()
    }
}

/// What a test VMC looks like.
struct Vmc<'a> {
    names: &'a [&'a str],
    svg: &'a [u8],
    bimi_eku: bool,
    expired: bool,
    /// The serial number (rcgen picks one otherwise).
    serial: Option<u64>,
    /// Name the issuer's CRL as the distribution point.
    crl: bool,
}

impl<'a> Vmc<'a> {
    fn new(name: &'a [&'a str], svg: &'a [u8]) -> Self {
        Self {
            names: name,
            svg,
            bimi_eku: true,
            expired: false,
            serial: None,
            crl: true,
        }
    }

    /// The PEM evidence document: leaf, then `chain`.
    fn issue(&self, issuer: &Ca, chain: &[&Ca]) -> String {
        let mut p =
            CertificateParams::new(self.names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
                .unwrap();
        p.distinguished_name
            .push(rcgen::DnType::OrganizationName, "Test Brand");
        p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        p.extended_key_usages = if self.bimi_eku {
            vec![ExtendedKeyUsagePurpose::Other(EKU_BIMI.to_vec())]
        } else {
            vec![ExtendedKeyUsagePurpose::ServerAuth]
        };
        if self.expired {
            p.not_before = rcgen::date_time_ymd(2021, 1, 1);
            p.not_after = rcgen::date_time_ymd(2022, 1, 1);
        } else {
            p.not_before = rcgen::date_time_ymd(2021, 1, 1);
            p.not_after = rcgen::date_time_ymd(2080, 1, 1);
        }
        p.custom_extensions.push(CustomExtension::from_oid_content(
            &OID_LOGOTYPE,
            logotype(self.svg),
        ));
        if self.crl {
            p.crl_distribution_points = vec![rcgen::CrlDistributionPoint {
                uris: vec![issuer.crl_url.clone()],
            }];
        }
        p.serial_number = self.serial.map(rcgen::SerialNumber::from);
        let key = KeyPair::generate().unwrap();
        let leaf = p.signed_by(&key, &issuer.cert, &issuer.key).unwrap();
        let mut out = leaf.pem();
        for c in chain {
            out.push_str(&c.pem());
        }
        out
    }
}

fn svg(title: &str, extra: &str) -> Vec<u8> {
    format!(
        r##"<?xml version="1.0" encoding="UTF-8"?>
<svg xmlns="http://www.w3.org/2000/svg" version="1.2" baseProfile="tiny-ps" viewBox="0 0 100 100">
<title>{title}</title>{extra}
<circle cx="50" cy="50" r="40" fill="#1a4f8b"/>
</svg>
"##
    )
    .into_bytes()
}

// -------------------------------------------------------- HTTPS server --

#[derive(Clone)]
enum Doc {
    Body(Vec<u8>),
    /// Accept the request and never answer.
    Hang,
}

#[derive(Clone, Default)]
struct Site {
    docs: Arc<Mutex<HashMap<String, Doc>>>,
    hits: Arc<Mutex<HashMap<String, usize>>>,
}

impl Site {
    fn put(&self, path: &str, doc: Doc) {
        self.docs.lock().unwrap().insert(path.to_string(), doc);
    }

    fn hits(&self, path: &str) -> usize {
        *self.hits.lock().unwrap().get(path).unwrap_or(&0)
    }
}

/// An HTTPS server on 127.0.0.1 for `images.test`, its certificate issued
/// by `web`.
/// The documents of `site` over one connection.
async fn serve<IO>(io: IO, site: Site)
where
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let service = hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
        let site = site.clone();
        async move {
            let path = req.uri().path().to_string();
            *site.hits.lock().unwrap().entry(path.clone()).or_insert(0) += 1;
            let doc = site.docs.lock().unwrap().get(&path).cloned();
            let resp = match doc {
                Some(Doc::Body(b)) => Response::new(Full::new(Bytes::from(b))),
                Some(Doc::Hang) => {
                    tokio::time::sleep(Duration::from_secs(3600)).await;
                    Response::new(Full::new(Bytes::new()))
                }
                None => {
                    let mut r = Response::new(Full::new(Bytes::from_static(b"no")));
                    *r.status_mut() = hyper::StatusCode::NOT_FOUND;
                    r
                }
            };
            Ok::<_, std::convert::Infallible>(resp)
        }
    });
    let _ = hyper::server::conn::http1::Builder::new()
        .serve_connection(TokioIo::new(io), service)
        .await;
}

/// An HTTPS server on 127.0.0.1 for `images.test`, its certificate issued
/// by `web`.
async fn https_server(web: &Ca, site: Site) -> SocketAddr {
    let mut p = CertificateParams::new(vec!["images.test".to_string()]).unwrap();
    p.not_before = rcgen::date_time_ymd(2021, 1, 1);
    p.not_after = rcgen::date_time_ymd(2080, 1, 1);
    let key = KeyPair::generate().unwrap();
    let cert = p.signed_by(&key, &web.cert, &web.key).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![cert.der().clone()],
            rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into()),
        )
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            let site = site.clone();
            tokio::spawn(async move {
                if let Ok(tls) = acceptor.accept(tcp).await {
                    serve(tls, site).await;
                }
            });
        }
    });
    addr
}

/// A plain HTTP server on 127.0.0.1 (for the CRLs).
async fn http_server(site: Site) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            tokio::spawn(serve(tcp, site.clone()));
        }
    });
    addr
}

// ------------------------------------------------------------ fixture --

const SPF: &str = "v=spf1 ip4:192.0.2.10 -all";
/// The serial number bimi-int's CRL revokes.
const REVOKED_SERIAL: u64 = 0x7e57_0001;

/// One sender domain: SPF for 192.0.2.10, its DMARC record, and its BIMI
/// records (owner relative to the domain, record text).
fn domain_zone(domain: &str, dmarc: &str, extra: &[(&str, String)]) -> String {
    let mut z = format!(
        "$ORIGIN {domain}.\n$TTL 0\n@ IN SOA ns.test. hostmaster.test. 1 3600 600 86400 0\n@ IN TXT \"{SPF}\"\n_dmarc IN TXT \"{dmarc}\"\n"
    );
    for (owner, text) in extra {
        z.push_str(&dkim_sign::txt_line(owner, text));
    }
    z
}

struct World {
    dns: TestDns,
    site: Site,
    dir: tempfile::TempDir,
    good_svg: Vec<u8>,
    brand_svg: Vec<u8>,
    key: Key,
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p.display().to_string()
}

async fn world() -> World {
    let site = Site::default();
    let http = http_server(site.clone()).await;
    let crl = |name: &str| format!("http://images.test:{}/crl/{name}.crl", http.port());
    let bimi_root = Ca::root("Test BIMI Root", crl("bimi-root"));
    let bimi_int = bimi_root.intermediate("Test BIMI Intermediate", crl("bimi-int"), true);
    let other_root = Ca::root("Someone Else's Root", crl("other-root"));
    let plain_int =
        bimi_root.intermediate("Test Intermediate, no BIMI usage", crl("plain-int"), false);
    let web_root = Ca::root("Test Web Root", crl("web-root"));
    let https = https_server(&web_root, site.clone()).await;
    site.put("/crl/bimi-root.crl", Doc::Body(bimi_root.crl(&[])));
    site.put(
        "/crl/bimi-int.crl",
        Doc::Body(bimi_int.crl(&[REVOKED_SERIAL])),
    );
    site.put("/crl/plain-int.crl", Doc::Body(plain_int.crl(&[])));
    site.put("/crl/other-root.crl", Doc::Body(other_root.crl(&[])));
    let base = format!("https://images.test:{}", https.port());

    let good_svg = svg("Good Bank", "");
    let brand_svg = svg("Good Bank Brand", "");
    let other_svg = svg("Another Logo", "");
    let script_svg = svg("Bad", "<script>alert(1)</script>");
    let big_svg = svg("Big", &format!("<desc>{}</desc>", "x".repeat(40 * 1024)));
    let via = |d: &Vmc| d.issue(&bimi_int, &[&bimi_int]);

    // Each sender's logo at /<name>/logo.svg and its evidence document at
    // /<name>/vmc.pem.
    let mark = |name: &str, logo: &[u8], pem: String| {
        site.put(&format!("/{name}/logo.svg"), Doc::Body(logo.to_vec()));
        site.put(&format!("/{name}/vmc.pem"), Doc::Body(pem.into_bytes()));
    };
    let ok = |names: &[&str], logo: &[u8]| via(&Vmc::new(names, logo));
    mark("good", &good_svg, ok(&["good.test"], &good_svg));
    site.put("/good/brand.svg", Doc::Body(brand_svg.clone()));
    site.put(
        "/good/brand.pem",
        Doc::Body(ok(&["good.test"], &brand_svg).into_bytes()),
    );
    mark("quarantine", &good_svg, ok(&["quarantine.test"], &good_svg));
    let expired = Vmc {
        expired: true,
        ..Vmc::new(&["expired.test"], &good_svg)
    };
    mark("expired", &good_svg, via(&expired));
    let untrusted = Vmc::new(&["untrusted.test"], &good_svg).issue(&other_root, &[]);
    mark("untrusted", &good_svg, untrusted);
    let noeku = Vmc {
        bimi_eku: false,
        ..Vmc::new(&["noeku.test"], &good_svg)
    };
    mark("noeku", &good_svg, via(&noeku));
    mark(
        "othername",
        &good_svg,
        ok(&["someone-else.test"], &good_svg),
    );
    // Another logo at l= than the one the certificate carries.
    mark("mismatch", &other_svg, ok(&["mismatch.test"], &good_svg));
    mark("script", &script_svg, ok(&["script.test"], &script_svg));
    mark("big", &big_svg, ok(&["big.test"], &big_svg));
    site.put("/selfasserted/logo.svg", Doc::Body(good_svg.clone()));
    // Revoked by the intermediate's CRL; and one naming no CRL.
    let revoked = Vmc {
        serial: Some(REVOKED_SERIAL),
        ..Vmc::new(&["revoked.test"], &good_svg)
    };
    mark("revoked", &good_svg, via(&revoked));
    let nocrl = Vmc {
        crl: false,
        ..Vmc::new(&["nocrl.test"], &good_svg)
    };
    mark("nocrl", &good_svg, via(&nocrl));
    // Issued by an intermediate without the BIMI key usage.
    let plainca = Vmc::new(&["plainca.test"], &good_svg).issue(&plain_int, &[&plain_int]);
    mark("plainca", &good_svg, plainca);
    // The selector form of the name, for this selector and for another.
    mark(
        "selname",
        &good_svg,
        ok(&["default._bimi.selname.test"], &good_svg),
    );
    mark(
        "othersel",
        &good_svg,
        ok(&["brand._bimi.othersel.test"], &good_svg),
    );
    site.put("/slow/logo.svg", Doc::Hang);
    site.put("/slow/vmc.pem", Doc::Hang);

    let key = Key::ed25519(7);
    let rec = |d: &str| format!("v=BIMI1; l={base}/{d}/logo.svg; a={base}/{d}/vmc.pem");
    let mut z = Zones::with_origins();
    for t in [TLD_ZONE, REV_ZONE, BANK_ZONE] {
        z.add_zone_text(t, None);
    }
    z.add_zone_text(
        "$ORIGIN images.test.\n$TTL 0\n@ IN SOA ns.test. hostmaster.test. 1 3600 600 86400 0\n@ IN A 127.0.0.1\n",
        None,
    );
    let enforcing = "v=DMARC1; p=reject";
    z.add_zone_text(
        &domain_zone(
            "good.test",
            enforcing,
            &[
                ("default._bimi", rec("good")),
                (
                    "brand._bimi",
                    format!("v=BIMI1; l={base}/good/brand.svg; a={base}/good/brand.pem"),
                ),
                ("sel._domainkey", key.record()),
                ("news", SPF.to_string()),
            ],
        ),
        None,
    );
    for d in [
        "expired",
        "untrusted",
        "noeku",
        "othername",
        "mismatch",
        "script",
        "big",
        "slow",
        "plainca",
        "selname",
        "othersel",
        "revoked",
        "nocrl",
    ] {
        z.add_zone_text(
            &domain_zone(
                &format!("{d}.test"),
                enforcing,
                &[("default._bimi", rec(d))],
            ),
            None,
        );
    }
    z.add_zone_text(
        &domain_zone(
            "quarantine.test",
            "v=DMARC1; p=quarantine",
            &[("default._bimi", rec("quarantine"))],
        ),
        None,
    );
    z.add_zone_text(
        &domain_zone(
            "monitor.test",
            "v=DMARC1; p=none",
            &[("default._bimi", rec("good"))],
        ),
        None,
    );
    z.add_zone_text(
        &domain_zone(
            "testing.test",
            "v=DMARC1; p=reject; t=y",
            &[("default._bimi", rec("good"))],
        ),
        None,
    );
    z.add_zone_text(
        &domain_zone(
            "declined.test",
            enforcing,
            &[("default._bimi", "v=BIMI1; l=; a=;".to_string())],
        ),
        None,
    );
    z.add_zone_text(
        &domain_zone(
            "selfasserted.test",
            enforcing,
            &[(
                "default._bimi",
                format!("v=BIMI1; l={base}/selfasserted/logo.svg"),
            )],
        ),
        None,
    );
    z.add_zone_text(
        &domain_zone(
            "twice.test",
            enforcing,
            &[
                ("default._bimi", rec("good")),
                ("default._bimi", rec("twice")),
            ],
        ),
        None,
    );
    z.add_zone_text(&domain_zone("nobimi.test", enforcing, &[]), None);
    z.add_zone_text(
        &domain_zone(
            "spnone.test",
            "v=DMARC1; p=reject; sp=none",
            &[("default._bimi", rec("good"))],
        ),
        None,
    );
    let dns = TestDns::start(z).await;

    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "anchors.pem", &bimi_root.pem());
    write(dir.path(), "web-roots.pem", &web_root.pem());
    World {
        dns,
        site,
        dir,
        good_svg,
        brand_svg,
        key,
    }
}

impl World {
    /// The `[bimi]` section of the tests; `changes` replace keys (or add
    /// them), an empty value leaves the key out.
    fn bimi_section(&self, changes: &[(&str, &str)]) -> String {
        let anchors = format!("\"{}\"", self.dir.path().join("anchors.pem").display());
        let roots = format!("\"{}\"", self.dir.path().join("web-roots.pem").display());
        let mut keys: Vec<(&str, String)> = vec![
            ("enabled", "true".into()),
            ("trust_anchors", anchors),
            ("https_roots", roots),
            ("fetch_private_addresses", "true".into()),
            ("wait", "5.0".into()),
            ("fetch_timeout", "10.0".into()),
        ];
        for (k, v) in changes {
            keys.retain(|(n, _)| n != k);
            if !v.is_empty() {
                keys.push((k, v.to_string()));
            }
        }
        let mut out = "[bimi]\n".to_string();
        for (k, v) in keys {
            out.push_str(&format!("{k} = {v}\n"));
        }
        out
    }

    async fn milter(&self, bimi: &str) -> TestMilter {
        let text = format!("{}\n{bimi}\n", config_text(self.dns.addr, ""));
        TestMilter::start(authmilter::config::Config::parse(&text, "bimi.toml").unwrap()).await
    }
}

/// One message from `alerts@domain` through the milter, with `extra`
/// header lines first.
async fn from(addr: SocketAddr, domain: &str, extra: &str) -> Outcome {
    send(addr, &envelope(domain), &message(domain, extra)).await
}

fn envelope(domain: &str) -> Envelope {
    Envelope::new("192.0.2.10", "mail.bank.test", &format!("alerts@{domain}"))
}

fn message(domain: &str, extra_headers: &str) -> Vec<u8> {
    format!(
        "{extra_headers}From: Alerts <alerts@{domain}>\r\nTo: bob@recipient.test\r\nSubject: statement\r\nDate: Tue, 01 Dec 2026 10:00:00 +0000\r\nMessage-ID: <1@{domain}>\r\n\r\nYour statement is ready.\r\n"
    )
    .into_bytes()
}

const FORGED: &str =
    "BIMI-Location: v=BIMI1; l=https://evil.test/x.svg\r\nBIMI-Indicator: PHN2Zy8+\r\n";

fn inserted(out: &Outcome, name: &str) -> Vec<String> {
    out.actions
        .actions
        .iter()
        .filter_map(|a| match a {
            EomAction::InsertHeader { name: n, value, .. } if n.to_str().unwrap() == name => {
                Some(value.to_str().unwrap().to_string())
            }
            _ => None,
        })
        .collect()
}

/// The `bimi=` result set of our Authentication-Results (unfolded).
fn bimi_result(out: &Outcome) -> Option<String> {
    let ar = out.auth_results()?;
    ar.split("; ")
        .find(|p| p.starts_with("bimi="))
        .map(str::to_string)
}

fn assert_no_fields(out: &Outcome) {
    assert!(
        inserted(out, "BIMI-Location").is_empty(),
        "{:?}",
        out.actions
    );
    assert!(
        inserted(out, "BIMI-Indicator").is_empty(),
        "{:?}",
        out.actions
    );
}

fn decoded_indicator(out: &Outcome) -> Vec<u8> {
    let v = inserted(out, "BIMI-Indicator");
    assert_eq!(v.len(), 1, "{:?}", out.actions);
    for line in v[0].split('\n').skip(1) {
        assert!(line.starts_with('\t'), "folding: {line:?}");
    }
    let b64: String = v[0].chars().filter(|c| !c.is_whitespace()).collect();
    base64::engine::general_purpose::STANDARD
        .decode(b64)
        .unwrap()
}

// -------------------------------------------------------------- tests --

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_valid_mark_is_written_and_incoming_fields_are_removed() {
    let w = world().await;
    let milter = w.milter(&w.bimi_section(&[])).await;
    let out = from(milter.addr, "good.test", FORGED).await;
    assert_eq!(out.verdict(), "accept");
    let b = bimi_result(&out).expect("a bimi= result");
    assert!(
        b.starts_with("bimi=pass header.d=good.test header.selector=default policy.authority=pass policy.authority-uri=\"https://images.test:"),
        "{b}"
    );
    assert!(
        b.contains("/good/vmc.pem\" policy.indicator-uri=\"https://images.test:"),
        "{b}"
    );
    assert!(b.ends_with("/good/logo.svg\""), "{b}");
    let loc = inserted(&out, "BIMI-Location");
    assert_eq!(loc.len(), 1);
    let loc = loc[0].replace("\n\t", " ");
    assert!(loc.starts_with(" v=BIMI1; l=https://images.test:"), "{loc}");
    assert!(
        loc.contains("/good/logo.svg; a=https://images.test:"),
        "{loc}"
    );
    assert_eq!(decoded_indicator(&out), w.good_svg);
    // The incoming BIMI-Location and BIMI-Indicator are deleted.
    let mut deleted = out.deleted();
    deleted.sort();
    assert_eq!(
        deleted,
        [
            ("BIMI-Indicator".to_string(), 1),
            ("BIMI-Location".to_string(), 1)
        ]
    );
    // The next message from the domain uses the cached mark.
    let again = from(milter.addr, "good.test", "").await;
    assert_eq!(decoded_indicator(&again), w.good_svg);
    assert_eq!(w.site.hits("/good/logo.svg"), 1);
    assert_eq!(w.site.hits("/good/vmc.pem"), 1);
    // p=quarantine qualifies as p=reject does.
    let q = from(milter.addr, "quarantine.test", "").await;
    assert_eq!(q.verdict(), "accept");
    assert!(
        bimi_result(&q)
            .unwrap()
            .starts_with("bimi=pass header.d=quarantine.test"),
        "{q:?}"
    );
    assert_eq!(decoded_indicator(&q), w.good_svg);
    milter.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_marks_get_a_failure_and_no_fields_and_the_verdict_stands() {
    let w = world().await;
    let milter = w.milter(&w.bimi_section(&[])).await;
    for (domain, why) in [
        ("expired", "certificate expired"),
        ("untrusted", "does not reach a configured BIMI trust anchor"),
        ("noeku", "1.3.6.1.5.5.7.3.31"),
        ("othername", "does not name"),
        ("mismatch", "is not the one in the evidence document"),
        ("script", "not SVG Tiny PS"),
        ("big", "larger than 32768 bytes"),
        ("twice", "more than one BIMI record"),
        ("plainca", "1.3.6.1.5.5.7.3.31"),
        ("othersel", "does not name"),
        ("revoked", "certificate revoked"),
        ("nocrl", "no CRL covers a certificate of the chain"),
    ] {
        let d = format!("{domain}.test");
        let out = from(milter.addr, &d, FORGED).await;
        assert_eq!(out.verdict(), "accept", "{d}");
        let b = bimi_result(&out).unwrap_or_else(|| panic!("{d}: {:?}", out.actions));
        assert!(b.starts_with("bimi=fail ("), "{d}: {b}");
        assert!(b.contains(why), "{d}: {b}");
        assert!(b.contains(&format!("header.d={d}")), "{d}: {b}");
        assert_no_fields(&out);
        assert_eq!(out.deleted().len(), 2, "{d}: forged fields removed");
    }
    milter.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_enforced_dmarc_passes_are_looked_at() {
    let w = world().await;
    let milter = w.milter(&w.bimi_section(&[])).await;
    for (domain, want) in [
        (
            "monitor.test",
            "bimi=skipped (the DMARC policy is not quarantine or reject)",
        ),
        (
            "testing.test",
            "bimi=skipped (the DMARC policy is in testing mode, t=y)",
        ),
        ("spnone.test", "bimi=skipped (the DMARC record has sp=none)"),
        ("declined.test", "bimi=declined"),
        ("nobimi.test", "bimi=none"),
    ] {
        let out = from(milter.addr, domain, "").await;
        assert_eq!(out.verdict(), "accept", "{domain}");
        let b = bimi_result(&out).unwrap_or_else(|| panic!("{domain}: {:?}", out.actions));
        assert!(b.starts_with(want), "{domain}: {b}");
        assert_no_fields(&out);
    }
    // A DMARC failure: the reject stands and BIMI is not looked at.
    let spoof = Envelope::new("198.51.100.7", "evil.example", "x@evil.example");
    let out = send(milter.addr, &spoof, &message("good.test", FORGED)).await;
    assert_eq!(out.verdict(), "reject");
    let hits = w.site.hits("/good/logo.svg") + w.site.hits("/good/vmc.pem");
    assert_eq!(hits, 0);
    milter.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hanging_server_costs_at_most_the_wait_and_never_the_verdict() {
    let w = world().await;
    let milter = w
        .milter(&w.bimi_section(&[("wait", "0.5"), ("fetch_timeout", "20.0")]))
        .await;
    let started = Instant::now();
    let out = from(milter.addr, "slow.test", "").await;
    let took = started.elapsed();
    assert_eq!(out.verdict(), "accept");
    let b = bimi_result(&out).unwrap();
    assert!(
        b.starts_with("bimi=temperror (not finished within bimi.wait"),
        "{b}"
    );
    assert_no_fields(&out);
    // Bounded by the wait (0.5 s), far from the 20 s fetch limit.
    assert!(took < Duration::from_secs(10), "{took:?}");
    milter.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn evidence_is_required_unless_the_operator_says_otherwise() {
    let w = world().await;
    let strict = w.milter(&w.bimi_section(&[])).await;
    let out = from(strict.addr, "selfasserted.test", "").await;
    assert!(
        bimi_result(&out)
            .unwrap()
            .starts_with("bimi=skipped (no evidence document"),
        "{out:?}"
    );
    assert_no_fields(&out);
    strict.stop().await;
    let lax = w
        .milter(&w.bimi_section(&[("require_evidence", "false")]))
        .await;
    let out = from(lax.addr, "selfasserted.test", "").await;
    let b = bimi_result(&out).unwrap();
    assert!(
        b.starts_with(
            "bimi=pass header.d=selfasserted.test header.selector=default policy.authority=none policy.indicator-uri=\"https://images.test:"
        ),
        "{b}"
    );
    assert_eq!(decoded_indicator(&out), w.good_svg);
    lax.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_selector_field_counts_only_when_an_aligned_signature_covers_it() {
    let w = world().await;
    let milter = w.milter(&w.bimi_section(&[])).await;
    let selector = "BIMI-Selector: v=BIMI1; s=brand;\r\n";
    // Unsigned: the default selector.
    let out = from(milter.addr, "good.test", selector).await;
    assert!(
        bimi_result(&out)
            .unwrap()
            .contains("header.selector=default"),
        "{out:?}"
    );
    assert_eq!(decoded_indicator(&out), w.good_svg);
    // Signed by good.test with BIMI-Selector in h=: the brand selector.
    let mut spec = Spec::new("good.test", "sel");
    spec.headers = &[
        "from",
        "to",
        "subject",
        "date",
        "message-id",
        "bimi-selector",
    ];
    let signed = dkim_sign::sign(&message("good.test", selector), &w.key, &spec);
    let out = send(milter.addr, &envelope("good.test"), &signed).await;
    let ar = out.auth_results().unwrap();
    assert!(ar.contains("dkim=pass"), "{ar}");
    assert!(
        bimi_result(&out).unwrap().contains("header.selector=brand"),
        "{ar}"
    );
    assert_eq!(decoded_indicator(&out), w.brand_svg);
    // Signed, but BIMI-Selector not in h=: the default selector again.
    let spec = Spec::new("good.test", "sel");
    let signed = dkim_sign::sign(&message("good.test", selector), &w.key, &spec);
    let out = send(milter.addr, &envelope("good.test"), &signed).await;
    assert!(bimi_result(&out)
        .unwrap()
        .contains("header.selector=default"));
    milter.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_may_name_the_selector_and_one_author_is_needed() {
    let w = world().await;
    let milter = w.milter(&w.bimi_section(&[])).await;
    let out = from(milter.addr, "selname.test", "").await;
    let b = bimi_result(&out).unwrap();
    assert!(b.starts_with("bimi=pass header.d=selname.test"), "{b}");
    // Two From addresses (same domain, DMARC passes): BIMI is not processed.
    let two = String::from_utf8(message("good.test", ""))
        .unwrap()
        .replacen(
            "From: Alerts <alerts@good.test>",
            "From: Alerts <alerts@good.test>, Other <other@good.test>",
            1,
        )
        .into_bytes();
    let out = send(milter.addr, &envelope("good.test"), &two).await;
    assert_eq!(out.verdict(), "accept");
    let b = bimi_result(&out).unwrap();
    assert!(
        b.starts_with("bimi=skipped (not exactly one From address)"),
        "{b}"
    );
    assert_no_fields(&out);
    milter.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subdomain_uses_the_organizational_domain_record() {
    let w = world().await;
    let milter = w.milter(&w.bimi_section(&[])).await;
    let out = from(milter.addr, "news.good.test", "").await;
    assert_eq!(out.verdict(), "accept");
    let b = bimi_result(&out).unwrap();
    assert!(
        b.starts_with("bimi=pass header.d=good.test header.selector=default"),
        "{b}"
    );
    assert_eq!(decoded_indicator(&out), w.good_svg);
    milter.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn private_addresses_are_refused_by_default() {
    let w = world().await;
    let section = w.bimi_section(&[("fetch_private_addresses", "")]);
    let milter = w.milter(&section).await;
    let out = from(milter.addr, "good.test", "").await;
    assert_eq!(out.verdict(), "accept");
    let b = bimi_result(&out).unwrap();
    assert!(b.starts_with("bimi=fail ("), "{b}");
    assert!(b.contains("not globally routable"), "{b}");
    assert_no_fields(&out);
    assert_eq!(w.site.hits("/good/logo.svg"), 0);
    milter.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_https_server_outside_the_web_roots_is_not_used() {
    let w = world().await;
    // The BIMI root as the only web root: the server's certificate (from
    // the web root) does not chain to it.
    let anchors = format!("\"{}\"", w.dir.path().join("anchors.pem").display());
    let milter = w
        .milter(&w.bimi_section(&[("https_roots", anchors.as_str())]))
        .await;
    let out = from(milter.addr, "good.test", "").await;
    assert_eq!(out.verdict(), "accept");
    let b = bimi_result(&out).unwrap();
    assert!(
        b.starts_with("bimi=temperror (") && b.contains("TLS with images.test"),
        "{b}"
    );
    assert_no_fields(&out);
    milter.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revocation_is_what_refuses_a_revoked_mark() {
    let w = world().await;
    let on = w.milter(&w.bimi_section(&[])).await;
    let out = from(on.addr, "good.test", "").await;
    assert!(
        bimi_result(&out).unwrap().starts_with("bimi=pass"),
        "{out:?}"
    );
    // The leaf's CRL (the intermediate's) and the intermediate's (the root's).
    assert_eq!(w.site.hits("/crl/bimi-int.crl"), 1);
    assert_eq!(w.site.hits("/crl/bimi-root.crl"), 1);
    on.stop().await;
    let off = w
        .milter(&w.bimi_section(&[("check_revocation", "false")]))
        .await;
    let out = from(off.addr, "revoked.test", "").await;
    assert!(
        bimi_result(&out).unwrap().starts_with("bimi=pass"),
        "{out:?}"
    );
    // A CRL that is not there (404): no logo.
    off.stop().await;
    w.site.docs.lock().unwrap().remove("/crl/bimi-root.crl");
    let on = w.milter(&w.bimi_section(&[])).await;
    let out = from(on.addr, "quarantine.test", "").await;
    let b = bimi_result(&out).unwrap();
    assert!(b.starts_with("bimi=fail (CRL http://images.test:"), "{b}");
    on.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn off_by_default() {
    let w = world().await;
    let milter = w.milter("").await;
    let out = from(milter.addr, "good.test", FORGED).await;
    assert_eq!(out.verdict(), "accept");
    assert_eq!(bimi_result(&out), None);
    assert_no_fields(&out);
    // Incoming BIMI fields are removed all the same (draft §6.6, §8.8).
    assert_eq!(out.deleted().len(), 2);
    assert_eq!(w.site.hits("/good/logo.svg"), 0);
    milter.stop().await;
}

#[test]
fn config_errors_name_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let base = "[milter]\nauthserv_id = \"mx.test\"\n";
    let missing = format!(
        "{base}[bimi]\nenabled = true\ntrust_anchors = \"{}/none.pem\"\n",
        dir.path().display()
    );
    let e = authmilter::config::Config::parse(&missing, "a.toml")
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("a.toml") && e.contains("bimi.trust_anchors"),
        "{e}"
    );
    let empty = write(dir.path(), "empty.pem", "");
    let text = format!("{base}[bimi]\nenabled = true\ntrust_anchors = \"{empty}\"\n");
    let e = authmilter::config::Config::parse(&text, "a.toml")
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("bimi.trust_anchors") && e.contains("no PEM certificate"),
        "{e}"
    );
    let e = authmilter::config::Config::parse(&format!("{base}[bimi]\nwait = -1\n"), "a.toml")
        .unwrap_err()
        .to_string();
    assert!(e.contains("bimi.wait"), "{e}");
    let e = authmilter::config::Config::parse(
        &format!("{base}[bimi]\ntrust_anchors = \"rel.pem\"\n"),
        "a.toml",
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("bimi.trust_anchors") && e.contains("absolute"),
        "{e}"
    );
    let e = authmilter::config::Config::parse(&format!("{base}[bimi]\nenable = true\n"), "a.toml")
        .unwrap_err()
        .to_string();
    assert!(e.contains("enable"), "{e}");
    // Off: the files are not read.
    authmilter::config::Config::parse(&format!("{base}[bimi]\nenabled = false\n"), "a.toml")
        .unwrap();
}
