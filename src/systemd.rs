//! systemd service notifications (`sd_notify(3)`) for a `Type=notify` unit.
//!
//! When systemd starts a `Type=notify` service it sets `NOTIFY_SOCKET` to a
//! unix datagram socket (a path, or an abstract name written with a leading
//! `@`) and waits for `READY=1` before it counts the service as started, so
//! units ordered after authmilter (Postfix) start only once the milter socket
//! accepts connections. The daemon reports:
//!
//! - [`ready`] once the milter socket is bound and the runtime is built, and
//!   again after each SIGHUP reload (successful or refused);
//! - [`reloading`] when a SIGHUP reload starts;
//! - [`stopping`] when SIGTERM starts the shutdown;
//! - [`status`] for a one-line free-form status (`systemctl status`).
//!
//! Without `NOTIFY_SOCKET` (started by hand, by another supervisor, in tests)
//! every function does nothing. A notification that cannot be sent is
//! logged as a warning and otherwise ignored: the milter keeps serving mail.
//! [`notify`] is the primitive that returns the error instead.

use std::{
    ffi::OsString,
    io,
    os::unix::{
        ffi::OsStrExt,
        net::{SocketAddr, UnixDatagram},
    },
};
use tracing::warn;

/// The service is up: the milter socket accepts connections. Also sent after
/// a reload (`RELOADING=1`) has finished, whether it was applied or refused.
pub fn ready() {
    logged(notify("READY=1"));
}

/// A configuration reload starts: `RELOADING=1` with `MONOTONIC_USEC=` (the
/// `CLOCK_MONOTONIC` time in microseconds), which systemd ≥ 253 requires for
/// `Type=notify-reload` and earlier versions ignore. Follow it with
/// [`ready`] when the reload is over.
pub fn reloading() {
    let msg = match monotonic_usec() {
        Ok(usec) => format!("RELOADING=1\nMONOTONIC_USEC={usec}"),
        Err(e) => {
            warn!("cannot read CLOCK_MONOTONIC for the reload notification: {e}");
            "RELOADING=1".to_owned()
        }
    };
    logged(notify(&msg));
}

/// The service is shutting down (SIGTERM): systemd shows it as deactivating.
pub fn stopping() {
    logged(notify("STOPPING=1"));
}

/// A one-line status for `systemctl status` (`STATUS=`). Line breaks are
/// replaced by spaces: each line of a notification is a separate assignment.
pub fn status(text: &str) {
    let line = text.replace(['\n', '\r'], " ");
    logged(notify(&format!("STATUS={line}")));
}

/// Sends `state` (newline-separated `VARIABLE=value` assignments) as one
/// datagram to `NOTIFY_SOCKET`; does nothing when it is unset or empty.
///
/// # Errors
///
/// Fails when the socket cannot be reached or the datagram is not sent whole.
pub fn notify(state: &str) -> io::Result<()> {
    let Some(target) = std::env::var_os("NOTIFY_SOCKET").filter(|s| !s.is_empty()) else {
        return Ok(());
    };
    let addr = socket_addr(&target)?;
    let sock = UnixDatagram::unbound()?;
    let sent = sock.send_to_addr(state.as_bytes(), &addr)?;
    if sent != state.len() {
        return Err(io::Error::new(
            io::ErrorKind::WriteZero,
            "notification truncated",
        ));
    }
    Ok(())
}

/// `NOTIFY_SOCKET` as an address: `@name` is an abstract socket, anything
/// else a file system path.
fn socket_addr(target: &OsString) -> io::Result<SocketAddr> {
    let bytes = target.as_bytes();
    match bytes.strip_prefix(b"@") {
        Some(name) => {
            use std::os::linux::net::SocketAddrExt;
            SocketAddr::from_abstract_name(name)
        }
        None => SocketAddr::from_pathname(target),
    }
}

/// `CLOCK_MONOTONIC` in microseconds, the clock systemd compares with.
fn monotonic_usec() -> io::Result<u64> {
    let now = nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC)
        .map_err(|e| io::Error::from_raw_os_error(e as i32))?;
    let sec = u64::try_from(now.tv_sec()).unwrap_or(0);
    let nsec = u64::try_from(now.tv_nsec()).unwrap_or(0);
    Ok(sec * 1_000_000 + nsec / 1_000)
}

fn logged(result: io::Result<()>) {
    if let Err(e) = result {
        warn!("cannot notify systemd (NOTIFY_SOCKET): {e}");
    }
}
