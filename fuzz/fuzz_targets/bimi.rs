//! BIMI inputs from senders: Assertion Records and BIMI-Selector fields
//! (anything parsed is header-safe: ASCII `https:` URIs without white space
//! or `;`, selectors of DNS labels), SVG documents (never a panic), and
//! certificates (a chain with no trust anchor is never valid; the logotype
//! reader never panics on any DER).
#![no_main]
use authmilter::{
    actions::bimi::location_value,
    checks::bimi::{record, svg, vmc, BimiEvidence, BimiResult},
};
use base64::Engine as _;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&which, rest)) = data.split_first() else {
        return;
    };
    match which % 4 {
        0 => {
            let text = String::from_utf8_lossy(rest);
            if let Ok(a) = record::parse(&text) {
                for uri in [&a.location, &a.authority].into_iter().flatten() {
                    assert!(uri.is_ascii() && uri.to_ascii_lowercase().starts_with("https://"));
                    assert!(!uri.contains(|c: char| c.is_ascii_whitespace() || c == ';'));
                }
                let ev = BimiEvidence {
                    result: BimiResult::Pass,
                    domain: Some("example.com".into()),
                    selector: "default".into(),
                    location: a.location.clone(),
                    authority: a.authority.clone(),
                    authority_result: Some("pass"),
                    indicator: None,
                    reason: None,
                };
                let v = location_value(&ev);
                assert!(!v.contains('\r'));
                for line in v.split('\n').skip(1) {
                    assert!(line.starts_with('\t'), "{v:?}");
                }
            }
            if let Some(s) = record::selector_from_header(&text) {
                assert!(record::is_selector(&s));
            }
        }
        1 => {
            let _ = svg::validate(rest, 1 << 20);
        }
        2 => {
            let b64 = base64::engine::general_purpose::STANDARD.encode(rest);
            let pem = format!("-----BEGIN CERTIFICATE-----\n{b64}\n-----END CERTIFICATE-----\n");
            let now = rustls_pki_types::UnixTime::now();
            let names = ["example.com".to_string()];
            assert!(vmc::validate(pem.as_bytes(), &[], &names, now, None).is_err());
            assert!(vmc::validate(pem.as_bytes(), &[], &names, now, Some(&[rest.to_vec()])).is_err());
            if let Ok(certs) = vmc::certificates(pem.as_bytes()) {
                assert!(vmc::crl_uris(&certs).len() <= vmc::MAX_CRLS);
            }
        }
        _ => {
            let _ = vmc::mark_svg(rest);
        }
    }
});
