//! DMARC policy records (RFC 9989 §4.7, §4.8): `Record::parse` and
//! `is_dmarc_record` agree, `has_valid_uri` never panics, and a record that
//! parses still parses, to the same record, with WSP added around every `;`
//! and `=` (ABNF `dmarc-sep = *WSP ";" *WSP`, `equals = *WSP "=" *WSP`).
#![no_main]
use authmilter::checks::dmarc::{has_valid_uri, is_dmarc_record, Record};
use libfuzzer_sys::fuzz_target;

/// `txt` with `ws` on both sides of every `;` and of each tag's `=` (the
/// first `=` of a tag: a later one belongs to the value, e.g. a URI query).
fn spaced(txt: &str, ws: &str) -> String {
    txt.split(';')
        .map(|tag| match tag.split_once('=') {
            Some((k, v)) => format!("{k}{ws}={ws}{v}"),
            None => tag.to_string(),
        })
        .collect::<Vec<_>>()
        .join(&format!("{ws};{ws}"))
}

fuzz_target!(|data: &[u8]| {
    let parsed = Record::parse(data);
    let is = is_dmarc_record(data);
    if parsed.is_some() {
        assert!(is, "parses but is not a DMARC record: {data:?}");
    }
    let s = String::from_utf8_lossy(data);
    let _ = has_valid_uri(&s);
    for part in s.split(';') {
        if let Some((_, v)) = part.split_once('=') {
            let _ = has_valid_uri(v);
        }
    }
    if let Some(r) = parsed {
        // Which WSP to add is chosen by the input, so both kinds are tried.
        let ws = match data.len() % 3 {
            0 => " ",
            1 => "\t",
            _ => " \t ",
        };
        let wider = spaced(&s, ws);
        assert!(is_dmarc_record(wider.as_bytes()), "{wider:?}");
        assert_eq!(
            Record::parse(wider.as_bytes()).as_ref(),
            Some(&r),
            "{s:?} vs {wider:?}"
        );
    }
});
