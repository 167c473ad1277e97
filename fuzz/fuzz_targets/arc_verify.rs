//! ARC chain validation (`checks::arc`) on arbitrary messages, and on
//! messages our sealer (`checks::arc::seal`) sealed and the input then
//! changed.
//!
//! The sealer's key is published at `arc._domainkey.fuzz.example` (the
//! 2048-bit RSA key of tests/fixtures) in zones served without a network
//! (`Dns::from_zones`); every other name is NXDOMAIN.
//!
//! Input: `flags`, then the message (header lines, an empty line, the
//! body). Flag bit 0: seal it first (ARC-Authentication-Results from the
//! input's first line), when its header block is fields only, as the
//! session builds it; bit 1: then flip one body byte; bit 2: seal twice (a
//! second hop).
//!
//! What must always hold: no panic; the result is `pass`, `fail` or `none`
//! (RFC 8617 has no others); `none` only without ARC fields; a message we
//! sealed validates, and a body changed after our seal never passes.
#![no_main]

use authmilter::{
    checks::{
        arc::{self, seal},
        dkim,
        evidence::AuthResult,
    },
    config::Config,
    dns::{zones::ZoneSet, Dns},
    session::crlf,
};
use base64::Engine;
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

struct World {
    tokio: tokio::runtime::Runtime,
    dns: Dns,
    sealer: seal::SealConfig,
}

fn world() -> &'static World {
    static W: OnceLock<World> = OnceLock::new();
    W.get_or_init(|| {
        let tokio = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("tokio");
        let spki = include_str!("../../tests/fixtures/rsa2048.spki.b64").trim();
        let mut zone = String::from(
            "$ORIGIN fuzz.example.\n$TTL 0\n@ IN SOA ns hostmaster 1 3600 600 86400 0\narc._domainkey IN TXT ",
        );
        let rec = format!("v=DKIM1; k=rsa; p={spki}");
        for c in rec.as_bytes().chunks(200) {
            zone.push_str(&format!("\"{}\" ", String::from_utf8_lossy(c)));
        }
        zone.push('\n');
        let mut z = ZoneSet::open();
        z.add_zone_text(&zone, None).expect("zone");
        let dns = {
            let _g = tokio.enter();
            Dns::from_zones(&Config::default_config().dns, z).expect("dns")
        };
        let b64 = base64::engine::general_purpose::STANDARD
            .encode(include_bytes!("../../tests/fixtures/rsa2048.pk8"));
        let pem = format!("-----BEGIN PRIVATE KEY-----\n{b64}\n-----END PRIVATE KEY-----\n");
        let file = std::env::temp_dir().join(format!("authmilter-fuzz-arc-{}.pem", std::process::id()));
        std::fs::write(&file, pem).expect("key file");
        let sealer = seal::SealConfig::load(
            "fuzz.example",
            "arc",
            file,
            vec!["From".into(), "Subject".into()],
        )
        .expect("sealer");
        World { tokio, dns, sealer }
    })
}

/// Whether every line of the header block is a field (`name:` with a
/// printable name) or the continuation of one.
fn fields_only(raw: &[u8]) -> bool {
    let mut first = true;
    for line in raw.split(|b| *b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            return !first;
        }
        let continuation = line[0] == b' ' || line[0] == b'\t';
        let field = line
            .iter()
            .position(|b| *b == b':')
            .is_some_and(|c| c > 0 && line[..c].iter().all(|b| b.is_ascii_graphic()));
        if (first && continuation) || (!continuation && !field) {
            return false;
        }
        first = false;
    }
    false
}

async fn sealed(w: &World, raw: &[u8], results: &str) -> Option<Vec<u8>> {
    let msg = mail_auth_parse(raw)?;
    let keys = dkim::fetch_named(&w.dns, &arc::key_names(&msg).unwrap_or_default()).await;
    let fields = seal::seal(&w.dns, &w.sealer, raw, &keys, "fuzz.example", results)
        .await
        .ok()?;
    Some(seal::prepend(&fields, raw))
}

/// The ARC fields the library finds, or `None` when it cannot parse.
fn mail_auth_parse(raw: &[u8]) -> Option<Vec<(String, Vec<u8>)>> {
    let msg = authmilter::checks::arc::parsed_fields(raw)?;
    Some(msg)
}

fuzz_target!(|data: &[u8]| {
    let Some((&flags, rest)) = data.split_first() else {
        return;
    };
    let w = world();
    let raw = crlf(rest);
    w.tokio.block_on(async {
        let ev = arc::verify_raw(&w.dns, &raw).await;
        assert!(
            matches!(
                ev.result,
                AuthResult::Pass | AuthResult::Fail | AuthResult::None
            ),
            "{ev:?}"
        );
        let has_arc = raw
            .split(|b| *b == b'\n')
            .take_while(|l| *l != b"\r" && !l.is_empty())
            .any(|l| {
                !l.starts_with(b" ")
                    && !l.starts_with(b"\t")
                    && l.contains(&b':')
                    && l.split(|b| *b == b':')
                        .next()
                        .and_then(|n| std::str::from_utf8(n).ok())
                        .is_some_and(|n| arc::is_arc_header(n.trim()))
            });
        if ev.result == AuthResult::None {
            assert!(!has_arc, "none with ARC fields: {ev:?}");
        }
        // What we seal comes from the session, which builds the header block
        // from the fields the MTA hands over: every line a field or its
        // continuation. A block that starts with a continuation line (or
        // holds a line that is neither) would fold our prepended fields into
        // it; no MTA delivers that.
        if flags & 1 == 0 || has_arc || !fields_only(&raw) {
            return;
        }
        let first = String::from_utf8_lossy(rest.split(|b| *b == b'\n').next().unwrap_or_default())
            .chars()
            .filter(|c| c.is_ascii_graphic() || *c == ' ')
            .take(200)
            .collect::<String>();
        let results = format!(
            "; dmarc=pass header.from=x.example (fuzz {})",
            first.replace(['(', ')', ';'], "")
        );
        let Some(mut once) = sealed(w, &raw, &results).await else {
            return;
        };
        if flags & 4 != 0 {
            match sealed(w, &once, "; arc=pass").await {
                Some(twice) => once = twice,
                None => return,
            }
        }
        let ev = arc::verify_raw(&w.dns, &once).await;
        assert_eq!(ev.result, AuthResult::Pass, "our own seal: {ev:?}");
        if flags & 2 != 0 {
            let body = once
                .windows(4)
                .position(|x| x == b"\r\n\r\n")
                .map(|p| p + 4);
            if let Some(start) = body {
                // A printable byte changed into another printable byte: the
                // canonical body changes under both canonicalizations.
                if let Some(at) = (start..once.len()).find(|&i| once[i].is_ascii_alphanumeric()) {
                    once[at] = if once[at] == b'x' { b'y' } else { b'x' };
                    let ev = arc::verify_raw(&w.dns, &once).await;
                    assert_ne!(ev.result, AuthResult::Pass, "a changed body passed: {ev:?}");
                }
            }
        }
    });
});
