//! Records read from DNS: DMARC policy records, DKIM key records, names.
#![no_main]
use authmilter::checks::{dkim, dmarc};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = dmarc::Record::parse(data);
    let s = String::from_utf8_lossy(data);
    if let Some(bits) = dkim::rsa_modulus_bits(&s) {
        assert!(bits <= data.len() * 8);
    }
    let names = dmarc::walk_names(&s);
    assert!(names.len() <= 8);
});
