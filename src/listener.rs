//! Binding the milter socket.
//!
//! Inet connections get `TCP_NODELAY`: the end-of-message replies are several
//! small packets, and with Nagle's algorithm they wait for the MTA's delayed
//! ACK (tens of milliseconds per message).

use crate::config::{MilterConfig, SocketSpec};
use indymilter::Listener;
use std::{
    io,
    os::unix::fs::PermissionsExt,
    task::{Context, Poll},
};
use tokio::net::{TcpListener, TcpStream, UnixListener, UnixStream};

/// A TCP listener that sets `TCP_NODELAY` on every accepted connection.
pub struct NoDelay(pub TcpListener);

impl Listener for NoDelay {
    type Io = TcpStream;

    fn poll_accept(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<TcpStream>> {
        self.0.poll_accept(cx).map_ok(|(s, _)| {
            let _ = s.set_nodelay(true);
            s
        })
    }
}

/// Either kind of milter listener.
pub type AnyListener = indymilter::EitherListener<NoDelay, UnixListener>;
/// Either kind of milter stream.
pub type AnyStream = indymilter::EitherStream<TcpStream, UnixStream>;

/// Binds the configured socket, applying owner, group and mode to unix sockets.
///
/// # Errors
///
/// Fails when the address is in use, the path cannot be created, or the
/// owner/group do not exist.
pub async fn bind(cfg: &MilterConfig) -> io::Result<AnyListener> {
    match &cfg.socket {
        SocketSpec::Inet { host, port } => {
            let l = TcpListener::bind((host.as_str(), *port)).await?;
            Ok(indymilter::EitherListener::Tcp(NoDelay(l)))
        }
        SocketSpec::Unix(path) => {
            // A stale socket from an earlier run is removed; anything else is not touched.
            if let Ok(meta) = std::fs::symlink_metadata(path) {
                use std::os::unix::fs::FileTypeExt;
                if meta.file_type().is_socket() {
                    std::fs::remove_file(path)?;
                } else {
                    return Err(io::Error::new(
                        io::ErrorKind::AlreadyExists,
                        format!("{} exists and is not a socket", path.display()),
                    ));
                }
            }
            let l = UnixListener::bind(path)?;
            if let Some(mode) = cfg.socket_mode {
                std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))?;
            }
            if cfg.socket_owner.is_some() || cfg.socket_group.is_some() {
                let uid = match &cfg.socket_owner {
                    Some(o) => Some(lookup_id(o, "/etc/passwd")?),
                    None => None,
                };
                let gid = match &cfg.socket_group {
                    Some(g) => Some(lookup_id(g, "/etc/group")?),
                    None => None,
                };
                std::os::unix::fs::chown(path, uid, gid)?;
            }
            Ok(indymilter::EitherListener::Unix(l))
        }
    }
}

/// A numeric id, or a name looked up in `/etc/passwd` or `/etc/group`.
fn lookup_id(name: &str, db: &str) -> io::Result<u32> {
    if let Ok(n) = name.parse() {
        return Ok(n);
    }
    let text = std::fs::read_to_string(db)?;
    text.lines()
        .filter_map(|l| {
            let mut f = l.split(':');
            let n = f.next()?;
            let _ = f.next();
            let id = f.next()?.parse().ok()?;
            (n == name).then_some(id)
        })
        .next()
        .ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::NotFound,
                format!("no such user or group `{name}` in {db}"),
            )
        })
}
