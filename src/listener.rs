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
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc, Mutex,
    },
    task::{Context, Poll, Waker},
};
use tokio::net::{TcpListener, TcpStream, UnixListener, UnixStream};

/// A TCP listener that sets `TCP_NODELAY` on every accepted connection and
/// hands out [`QuickAck`] streams.
pub struct NoDelay(pub TcpListener);

impl Listener for NoDelay {
    type Io = QuickAck;

    fn poll_accept(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<QuickAck>> {
        self.0.poll_accept(cx).map_ok(|(s, _)| {
            let _ = s.set_nodelay(true);
            QuickAck(s)
        })
    }
}

/// Any listener whose connections are read and written through buffers.
///
/// indymilter reads each command with three reads (length, kind, payload) and
/// writes each reply with three writes and a flush; with replies negotiated
/// away the MTA pipelines many small commands, so one buffered read takes a
/// whole batch, and each reply leaves in one write (one TCP segment with
/// `TCP_NODELAY`) instead of three. Reads and writes larger than the buffers
/// (body chunks) bypass them: no extra copy.
pub struct Buffered<L>(pub L);

/// Read buffer per connection: a typical message's header commands.
const READ_BUFFER: usize = 8 * 1024;
/// Write buffer per connection: a reply with an Authentication-Results field.
const WRITE_BUFFER: usize = 2 * 1024;

impl<L: Listener> Listener for Buffered<L> {
    type Io = tokio::io::BufStream<L::Io>;

    fn poll_accept(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<Self::Io>> {
        self.0
            .poll_accept(cx)
            .map_ok(|s| tokio::io::BufStream::with_capacity(READ_BUFFER, WRITE_BUFFER, s))
    }
}

/// A TCP stream that acknowledges what it reads at once (`TCP_QUICKACK`,
/// re-armed after every read, as Linux clears it).
///
/// With replies negotiated away, the MTA writes several small commands in a
/// row; without `TCP_NODELAY` on its side, Nagle's algorithm holds each one
/// until the previous is acknowledged, and a delayed ACK costs ~40 ms per
/// message. Acknowledging at once removes that stall.
pub struct QuickAck(pub TcpStream);

impl QuickAck {
    fn quickack(&self) {
        use std::os::fd::AsRawFd;
        let one: libc::c_int = 1;
        // SAFETY: a valid socket descriptor and a c_int option of its size.
        unsafe {
            libc::setsockopt(
                self.0.as_raw_fd(),
                libc::IPPROTO_TCP,
                libc::TCP_QUICKACK,
                (&one as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            );
        }
    }
}

impl tokio::io::AsyncRead for QuickAck {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let r = std::pin::Pin::new(&mut self.0).poll_read(cx, buf);
        if matches!(r, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.quickack();
        }
        r
    }
}

impl tokio::io::AsyncWrite for QuickAck {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        std::pin::Pin::new(&mut self.0).poll_write(cx, data)
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<()>> {
        std::pin::Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<()>> {
        std::pin::Pin::new(&mut self.0).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        std::pin::Pin::new(&mut self.0).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.0.is_write_vectored()
    }
}

/// A listener that can be closed (SIGTERM) while the sessions already
/// accepted keep being served.
pub struct Closable<L> {
    inner: Option<L>,
    state: Arc<CloseState>,
}

#[derive(Default)]
struct CloseState {
    closed: AtomicBool,
    waker: Mutex<Option<Waker>>,
}

/// Closes a [`Closable`] listener from elsewhere.
#[derive(Clone)]
pub struct CloseHandle(Arc<CloseState>);

impl CloseHandle {
    /// Stops accepting connections; the socket is closed at the next poll.
    pub fn close(&self) {
        self.0.closed.store(true, Ordering::SeqCst);
        if let Some(w) = self
            .0
            .waker
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
        {
            w.wake();
        }
    }
}

impl<L> Closable<L> {
    pub fn new(inner: L) -> (Self, CloseHandle) {
        let state = Arc::new(CloseState::default());
        (
            Self {
                inner: Some(inner),
                state: state.clone(),
            },
            CloseHandle(state),
        )
    }
}

impl<L: Listener> Listener for Closable<L> {
    type Io = L::Io;

    fn poll_accept(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<Self::Io>> {
        *self.state.waker.lock().unwrap_or_else(|p| p.into_inner()) = Some(cx.waker().clone());
        if self.state.closed.load(Ordering::SeqCst) {
            self.inner = None;
            return Poll::Pending;
        }
        match self.inner.as_mut() {
            Some(l) => l.poll_accept(cx),
            None => Poll::Pending,
        }
    }
}

/// Switches to an unprivileged user and group (after binding, as root).
///
/// # Errors
///
/// Fails when the user or group does not exist or the switch is refused.
pub fn drop_privileges(user: Option<&str>, group: Option<&str>) -> io::Result<()> {
    use nix::unistd::{setgid, setgroups, setuid, Group, User};
    let Some(user) = user else {
        return Ok(());
    };
    let err = |e: nix::Error| io::Error::from_raw_os_error(e as i32);
    let u = User::from_name(user)
        .map_err(err)?
        .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, format!("no such user `{user}`")))?;
    let gid = match group {
        Some(g) => {
            Group::from_name(g)
                .map_err(err)?
                .ok_or_else(|| {
                    io::Error::new(io::ErrorKind::NotFound, format!("no such group `{g}`"))
                })?
                .gid
        }
        None => u.gid,
    };
    setgroups(&[gid]).map_err(err)?;
    setgid(gid).map_err(err)?;
    setuid(u.uid).map_err(err)?;
    Ok(())
}

/// Either kind of milter listener.
pub type AnyListener = indymilter::EitherListener<NoDelay, UnixListener>;
/// Either kind of milter stream.
pub type AnyStream = indymilter::EitherStream<QuickAck, UnixStream>;

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
