//! Message assembly from milter chunks: the DKIM buffer never exceeds its
//! limit, and From/DKIM-Signature parsing of any header value is safe.
#![no_main]
use authmilter::{
    checks::{dkim, from},
    session::{crlf, Message},
};
use libfuzzer_sys::fuzz_target;

const LIMIT: usize = 4096;

fuzz_target!(|data: &[u8]| {
    let mut msg = Message::new(String::new(), None, None);
    let mut from_values = Vec::new();
    // Chunks separated by 0xff: header values, then body chunks.
    for (i, chunk) in data.split(|b| *b == 0xff).enumerate() {
        let v = crlf(chunk);
        assert!(v.len() >= chunk.len());
        if i % 3 == 0 {
            from_values.push(chunk.to_vec());
        }
        let _ = dkim::tags(chunk);
        msg.append(&v, LIMIT);
        assert!(msg.raw.len() <= LIMIT);
    }
    assert!(msg.total_size >= msg.raw.len());
    let id = from::identify(from_values.iter().map(Vec::as_slice));
    if let from::FromIdentity::Conflicting { domains, .. } = &id {
        assert!(domains.len() <= from::MAX_FROM_DOMAINS);
    }
});
