//! DMARC aggregate reports: whatever the sender's message and DNS put into
//! a row (domains, selectors, comments), the report is well-formed XML with
//! the RFC 9990 root, and the file name holds no path separator.
#![no_main]
use authmilter::reports::{
    aggregate, deliver,
    store::Stored,
    xml::{render, Reporter},
    DkimResult, Published, Reason, Row, SpfResult,
};
use libfuzzer_sys::fuzz_target;
use quick_xml::{events::Event, Reader};

fuzz_target!(|data: &[u8]| {
    let s = String::from_utf8_lossy(data);
    let parts: Vec<&str> = s.split('\u{1}').collect();
    let pick = |i: usize| parts.get(i).copied().unwrap_or("").to_string();
    let row = Row {
        published: Published {
            domain: pick(0),
            p: "reject".into(),
            sp: Some(pick(1)),
            np: None,
            adkim: "r".into(),
            aspf: "s".into(),
            fo: pick(2),
            testing: false,
            psd: None,
            rua: vec![pick(3)],
        },
        source_ip: pick(4),
        header_from: pick(5),
        envelope_from: Some(pick(6)),
        disposition: "none".into(),
        dkim_aligned: false,
        spf_aligned: true,
        reasons: vec![Reason {
            kind: "local_policy".into(),
            comment: Some(pick(7)),
        }],
        dkim: vec![DkimResult {
            domain: pick(8),
            selector: pick(9),
            result: "fail".into(),
        }],
        spf: Some(SpfResult {
            domain: pick(10),
            scope: "mfrom".into(),
            result: "pass".into(),
        }),
    };
    let rows = [Stored {
        bucket: 0,
        row,
        count: 1,
    }];
    let domain = pick(0);
    let report = aggregate::build("abc123", &domain, 0, 86_399, &rows).unwrap();
    let org = pick(11);
    let xml = render(
        &report,
        &Reporter {
            org_name: &org,
            email: "d@example.com",
        },
    );
    let mut reader = Reader::from_str(&xml);
    let mut depth = 0i32;
    let mut roots = 0;
    loop {
        match reader.read_event() {
            Ok(Event::Start(e)) => {
                if depth == 0 {
                    assert_eq!(e.name().as_ref(), b"feedback");
                    roots += 1;
                }
                depth += 1;
            }
            Ok(Event::End(_)) => depth -= 1,
            Ok(Event::Text(t)) => {
                t.decode().expect("text decodes");
            }
            Ok(Event::Eof) => break,
            Ok(_) => {}
            Err(e) => panic!("not well-formed: {e}\n{xml}"),
        }
    }
    assert_eq!((depth, roots), (0, 1), "{xml}");
    assert!(!xml
        .chars()
        .any(|c| (c as u32) < 0x20 && !matches!(c, '\t' | '\n' | '\r')));
    let name = deliver::filename(&pick(12), &domain, 0, 86_399, &pick(13));
    assert!(
        !name.contains('/') && name.matches('!').count() == 4,
        "{name}"
    );
});
