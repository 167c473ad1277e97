//! Property: a DKIM result does not depend on how the MTA chunks the body.
//! Relaxed body canonicalization broke at chunk boundaries, whitespace-only
//! lines and trailing blank lines in three libraries this year (mailauth
//! #115, rspamd #5590, mail-auth #62). Random bodies made of the characters
//! that matter (SP, HTAB, CR LF, text), signed by the tests' own RFC 6376
//! signer with both body canonicalizations, are sent through the milter
//! protocol with random chunk sizes; every signature must pass.

mod common;

use common::{
    dkim_sign::{sign, Canon, Key, Spec},
    dns_server::{TestDns, Zones},
    *,
};

/// xorshift64*: deterministic, so a failure names its seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn random_body(r: &mut Rng) -> String {
    const PIECES: &[&str] = &[
        " ", "  ", "\t", " \t ", "\r\n", "\r\n", "\r\n\r\n", "a", "word", "x y",
    ];
    let n = r.below(40);
    let mut b: String = (0..n)
        .map(|_| PIECES[r.below(PIECES.len() as u64) as usize])
        .collect();
    // A body from SMTP always ends with CRLF.
    if !b.ends_with("\r\n") {
        b.push_str("\r\n");
    }
    b
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dkim_results_do_not_depend_on_body_chunking() {
    let key = Key::ed25519(1);
    let mut z = Zones::with_origins();
    z.add_zone_text(TLD_ZONE, None);
    z.add_zone_text(REV_ZONE, None);
    z.add_zone_text(&format!("{BANK_ZONE}{}", key.zone_line("s1")), None);
    let dns = TestDns::start(z).await;
    let milter = TestMilter::with_policy(dns.addr, "").await;
    let mut conn = open(milter.addr).await;
    let mut first = true;
    let mut r = Rng(0x9e37_79b9_7f4a_7c15);
    let mut failures = Vec::new();
    for i in 0..150 {
        let body = random_body(&mut r);
        let canon = if i % 2 == 0 {
            Canon::Relaxed
        } else {
            Canon::Simple
        };
        let raw = sign(
            format!(
                "From: alerts@bank.test\r\nTo: bob@recipient.test\r\nSubject: {i}\r\n\r\n{body}"
            )
            .as_bytes(),
            &key,
            &Spec {
                header_canon: canon,
                body_canon: canon,
                ..Spec::new("bank.test", "s1")
            },
        );
        let mut env = Envelope::new("198.51.100.7", "mail.evil.test", "x@evil.test");
        env.body_chunk = 1 + r.below(12) as usize;
        let out = if first {
            first = false;
            send_on(&mut conn, &env, &raw).await
        } else {
            send_message(&mut conn, &env, &raw).await
        };
        let ar = out.auth_results().unwrap_or_default();
        if !ar.contains("dkim=pass") {
            failures.push(format!(
                "#{i} {canon:?} chunk {}: body {body:?}: {ar}",
                env.body_chunk
            ));
        }
    }
    conn.close().await.unwrap();
    milter.stop().await;
    assert!(
        failures.is_empty(),
        "{} of 150 failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
