//! Protocol abuse: garbage, truncated and oversized packets, commands out of
//! order, a client that stops reading, a client that disconnects mid-body.
//! The bad connection is dropped or answered; every other session keeps working.

mod common;

use common::{
    dns_server::{TestDns, Zones},
    *,
};
use std::{net::SocketAddr, sync::atomic::Ordering, time::Duration};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
    time::timeout,
};

const ZONE: &str = r#"
$ORIGIN bank.test.
$TTL 60
@       IN SOA ns.bank.test. hostmaster.bank.test. 1 3600 600 86400 0
@       IN TXT "v=spf1 ip4:192.0.2.10 -all"
_dmarc  IN TXT "v=DMARC1; p=reject"
"#;

fn packet(cmd: u8, data: &[u8]) -> Vec<u8> {
    let mut p = ((data.len() + 1) as u32).to_be_bytes().to_vec();
    p.push(cmd);
    p.extend_from_slice(data);
    p
}

fn negotiate() -> Vec<u8> {
    let mut d = Vec::new();
    d.extend_from_slice(&6u32.to_be_bytes());
    d.extend_from_slice(&0x1ffu32.to_be_bytes());
    d.extend_from_slice(&0x1f_ffffu32.to_be_bytes());
    packet(b'O', &d)
}

/// Reads until the milter closes the connection (or the timeout passes).
async fn closed_within(s: &mut TcpStream, secs: u64) -> bool {
    let mut buf = vec![0u8; 65536];
    let r = timeout(Duration::from_secs(secs), async {
        loop {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await;
    r.is_ok()
}

async fn good_session_works(addr: SocketAddr) {
    let env = Envelope::new("198.51.100.7", "evil.example", "x@evil.example");
    let out = timeout(
        Duration::from_secs(20),
        send(addr, &env, b"From: security@bank.test\r\n\r\nhi\r\n"),
    )
    .await
    .expect("a normal session is served promptly");
    assert_eq!(out.verdict(), "reject");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn abuse_is_contained() {
    let mut z = Zones::with_origins();
    z.add_zone_text(ZONE, None);
    let dns = TestDns::start(z).await;
    let milter = TestMilter::with_policy(dns.addr, "").await;
    let addr = milter.addr;

    // Random bytes.
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(b"\x00\x00\x00\x05GET / HTTP/1.0\r\n\r\n\xff\xfe garbage")
        .await
        .unwrap();
    assert!(
        closed_within(&mut s, 5).await,
        "garbage: connection not dropped"
    );
    good_session_works(addr).await;

    // An absurd packet length: dropped without allocating 4 GiB.
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(&[0xff, 0xff, 0xff, 0xff, b'O']).await.unwrap();
    assert!(
        closed_within(&mut s, 5).await,
        "absurd length: connection not dropped"
    );

    // A truncated packet, then the client goes away.
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(&negotiate()[..7]).await.unwrap();
    drop(s);
    good_session_works(addr).await;

    // Commands out of order: BODY and EOM before MAIL.
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(&negotiate()).await.unwrap();
    s.write_all(&packet(b'B', b"body before mail"))
        .await
        .unwrap();
    s.write_all(&packet(b'E', b"")).await.unwrap();
    let _ = closed_within(&mut s, 3).await;
    good_session_works(addr).await;

    // A client that sends without ever reading: its replies pile up, others go on.
    let mut stuck = TcpStream::connect(addr).await.unwrap();
    stuck.write_all(&negotiate()).await.unwrap();
    let mut conn = Vec::new();
    conn.extend_from_slice(b"host\0");
    conn.push(b'4');
    conn.extend_from_slice(&25u16.to_be_bytes());
    conn.extend_from_slice(b"198.51.100.7\0");
    stuck.write_all(&packet(b'C', &conn)).await.unwrap();
    let flood = tokio::spawn(async move {
        let hdr = packet(b'L', b"X-Flood\0value\0");
        for _ in 0..200_000 {
            if timeout(Duration::from_millis(200), stuck.write_all(&hdr))
                .await
                .is_err()
            {
                break; // our send buffer is full too: the milter stopped reading
            }
        }
        stuck
    });
    good_session_works(addr).await;
    let stuck = flood.await.unwrap();

    // A client that disconnects mid-body.
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(&negotiate()).await.unwrap();
    s.write_all(&packet(b'C', &conn)).await.unwrap();
    s.write_all(&packet(b'H', b"evil.example\0")).await.unwrap();
    s.write_all(&packet(b'M', b"<x@evil.example>\0"))
        .await
        .unwrap();
    s.write_all(&packet(b'R', b"<bob@recipient.test>\0"))
        .await
        .unwrap();
    s.write_all(&packet(b'L', b"From\0 a@bank.test\0"))
        .await
        .unwrap();
    s.write_all(&packet(b'N', b"")).await.unwrap();
    s.write_all(&packet(b'B', &[b'x'; 60_000])).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    drop(s);
    good_session_works(addr).await;

    drop(stuck);
    // Every message that was started has ended: none is left "in flight".
    let stats = milter.shared.current().stats.clone();
    for _ in 0..50 {
        if stats.in_flight.load(Ordering::SeqCst) == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(stats.in_flight.load(Ordering::SeqCst), 0);
    milter.stop().await;
}
