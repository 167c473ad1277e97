//! sd_notify datagrams as systemd receives them. NOTIFY_SOCKET is
//! process-global, so everything that sets it is in this one test (this file
//! is its own test binary).

use authmilter::systemd;
use std::{
    os::{
        linux::net::SocketAddrExt,
        unix::net::{SocketAddr, UnixDatagram},
    },
    time::Duration,
};

fn recv(sock: &UnixDatagram) -> String {
    let mut buf = [0u8; 4096];
    let n = sock.recv(&mut buf).expect("a notification");
    String::from_utf8(buf[..n].to_vec()).expect("UTF-8")
}

fn monotonic_usec() -> u64 {
    let now = nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC).unwrap();
    now.tv_sec() as u64 * 1_000_000 + now.tv_nsec() as u64 / 1_000
}

#[test]
fn notifications_reach_the_socket_exactly() {
    // Unset: nothing is sent, nothing fails.
    std::env::remove_var("NOTIFY_SOCKET");
    systemd::notify("READY=1").unwrap();
    systemd::ready();
    systemd::reloading();
    systemd::stopping();
    systemd::status("idle");

    // A path socket.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("notify");
    let sock = UnixDatagram::bind(&path).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    std::env::set_var("NOTIFY_SOCKET", &path);

    systemd::ready();
    assert_eq!(recv(&sock), "READY=1");

    let before = monotonic_usec();
    systemd::reloading();
    let after = monotonic_usec();
    let msg = recv(&sock);
    let usec: u64 = msg
        .strip_prefix("RELOADING=1\nMONOTONIC_USEC=")
        .unwrap_or_else(|| panic!("unexpected reload notification {msg:?}"))
        .parse()
        .unwrap();
    assert!(
        (before..=after).contains(&usec),
        "{before} <= {usec} <= {after}"
    );
    systemd::ready();
    assert_eq!(recv(&sock), "READY=1");

    systemd::status("reload refused: bad\nfile");
    assert_eq!(recv(&sock), "STATUS=reload refused: bad file");

    systemd::stopping();
    assert_eq!(recv(&sock), "STOPPING=1");

    // An abstract socket: "@name".
    let name = format!("authmilter-notify-test-{}", std::process::id());
    let abs = UnixDatagram::bind_addr(&SocketAddr::from_abstract_name(&name).unwrap()).unwrap();
    abs.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    std::env::set_var("NOTIFY_SOCKET", format!("@{name}"));
    systemd::ready();
    assert_eq!(recv(&abs), "READY=1");

    // Nobody listening: the primitive reports it, the helpers only log.
    std::env::set_var("NOTIFY_SOCKET", dir.path().join("absent"));
    assert!(systemd::notify("READY=1").is_err());
    systemd::ready();

    std::env::remove_var("NOTIFY_SOCKET");
    // Nothing else arrived on either socket.
    sock.set_nonblocking(true).unwrap();
    abs.set_nonblocking(true).unwrap();
    let mut buf = [0u8; 64];
    assert!(sock.recv(&mut buf).is_err());
    assert!(abs.recv(&mut buf).is_err());
}
