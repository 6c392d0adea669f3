//! A connection that is TCP, TLS over TCP (either direction) or a unix socket, behind one type so
//! the relay is not generic.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpStream, UnixStream};
use tokio_rustls::{client, server};

/// A client or server socket.
#[derive(Debug)]
pub enum Stream {
    /// TCP.
    Tcp(TcpStream),
    /// Unix-domain socket.
    Unix(UnixStream),
    /// TLS accepted from a client (boxed: the session state is large).
    TlsFromClient(Box<server::TlsStream<TcpStream>>),
    /// TLS the pooler opened to a server.
    TlsToServer(Box<client::TlsStream<TcpStream>>),
}

/// Runs `$body` with `$s` bound to whichever stream `$self` holds.
macro_rules! each {
    ($self:expr, $s:ident => $body:expr) => {
        match $self {
            Stream::Tcp($s) => $body,
            Stream::Unix($s) => $body,
            Stream::TlsFromClient($s) => $body,
            Stream::TlsToServer($s) => $body,
        }
    };
}

/// How long [`Stream::send_and_close`] waits for the peer to take the last bytes.
pub const LAST_WORDS_GRACE: std::time::Duration = std::time::Duration::from_secs(1);

impl Stream {
    /// The TCP socket under the stream, if any.
    pub fn tcp(&self) -> Option<&TcpStream> {
        match self {
            Stream::Tcp(s) => Some(s),
            Stream::TlsFromClient(s) => Some(s.get_ref().0),
            Stream::TlsToServer(s) => Some(s.get_ref().0),
            Stream::Unix(_) => None,
        }
    }

    /// The peer address as SHOW CLIENTS prints it (`unix` for a unix socket) and its port.
    pub fn peer(&self) -> (String, u16) {
        match self.tcp() {
            Some(s) => s.peer_addr().map_or_else(
                |_| ("unknown".to_owned(), 0),
                |a| (a.ip().to_string(), a.port()),
            ),
            None => ("unix".to_owned(), 0),
        }
    }

    /// The peer's IP address (`None` for a unix socket), for HBA rules.
    pub fn peer_ip(&self) -> Option<std::net::IpAddr> {
        self.tcp()
            .and_then(|s| s.peer_addr().ok())
            .map(|a| a.ip().to_canonical())
    }

    /// The peer's process id over a unix socket (SHOW CLIENTS `remote_pid`), else 0.
    pub fn peer_pid(&self) -> i32 {
        match self {
            Stream::Unix(s) => s.peer_cred().ok().and_then(|c| c.pid()).unwrap_or(0),
            _ => 0,
        }
    }

    /// The local address and port.
    pub fn local(&self) -> (String, u16) {
        match self.tcp() {
            Some(s) => s.local_addr().map_or_else(
                |_| ("unknown".to_owned(), 0),
                |a| (a.ip().to_string(), a.port()),
            ),
            None => ("unix".to_owned(), 0),
        }
    }

    /// Whether the connection is encrypted.
    pub fn is_tls(&self) -> bool {
        matches!(self, Stream::TlsFromClient(_) | Stream::TlsToServer(_))
    }

    /// PgBouncer's TLS summary (`TLSv1.3/TLS_AES_256_GCM_SHA384/ECDH=X25519`), or `None`.
    pub fn tls_summary(&self) -> Option<String> {
        match self {
            Stream::TlsFromClient(s) => Some(crate::tls::summary(s.get_ref().1)),
            Stream::TlsToServer(s) => Some(crate::tls::summary(s.get_ref().1)),
            Stream::Tcp(_) | Stream::Unix(_) => None,
        }
    }

    /// The certificate a TLS client presented (verified against `client_tls_ca_file`).
    pub fn client_certificate(&self) -> Option<&[u8]> {
        match self {
            Stream::TlsFromClient(s) => s
                .get_ref()
                .1
                .peer_certificates()
                .and_then(<[_]>::first)
                .map(AsRef::as_ref),
            _ => None,
        }
    }

    /// The OS user name of a unix-socket peer (for HBA `peer`).
    pub fn peer_user_name(&self) -> Option<String> {
        let Stream::Unix(s) = self else {
            return None;
        };
        let uid = s.peer_cred().ok()?.uid();
        nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid))
            .ok()
            .flatten()
            .map(|u| u.name)
    }

    /// Reads into `buf`, reserving `reserve` bytes of room only once data is there to read, so an
    /// idle connection can wait with an empty, unallocated buffer. TLS may hold decrypted bytes
    /// the socket no longer signals, so it reserves first and reads through the TLS layer.
    ///
    /// The read goes through `poll_read`, which clears the socket's readiness after a short read:
    /// the next read of this socket waits for new data instead of making a `read` call that
    /// returns EAGAIN (`try_read` would clear it only on that EAGAIN).
    pub async fn read_when_ready(
        &mut self,
        buf: &mut bytes::BytesMut,
        reserve: usize,
    ) -> io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.readable().await?,
            Stream::Unix(s) => s.readable().await?,
            Stream::TlsFromClient(_) | Stream::TlsToServer(_) => {}
        }
        if buf.capacity() - buf.len() < reserve / 4 {
            buf.reserve(reserve);
        }
        tokio::io::AsyncReadExt::read_buf(self, buf).await
    }

    /// Writes a connection's last bytes (a FATAL ErrorResponse, a Terminate) and shuts the
    /// stream down, giving a peer that does not read [`LAST_WORDS_GRACE`] before giving up:
    /// a stalled peer cannot keep the task, or a server slot, alive.
    pub async fn send_and_close(&mut self, last: &[u8]) {
        let _ = tokio::time::timeout(LAST_WORDS_GRACE, async {
            let _ = tokio::io::AsyncWriteExt::write_all(self, last).await;
            let _ = tokio::io::AsyncWriteExt::shutdown(self).await;
        })
        .await;
    }

    /// A non-blocking read from the socket itself, below any TLS layer: for liveness probes of
    /// idle connections, where any byte or EOF means the connection is unusable anyway.
    pub fn try_read_raw(&self, buf: &mut [u8]) -> io::Result<usize> {
        match self.tcp() {
            Some(s) => s.try_read(buf),
            None => match self {
                Stream::Unix(s) => s.try_read(buf),
                _ => Err(io::ErrorKind::Unsupported.into()),
            },
        }
    }
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        each!(self.get_mut(), s => Pin::new(s).poll_read(cx, buf))
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        each!(self.get_mut(), s => Pin::new(s).poll_write(cx, buf))
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        each!(self.get_mut(), s => Pin::new(s).poll_write_vectored(cx, bufs))
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        each!(self.get_mut(), s => Pin::new(s).poll_flush(cx))
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        each!(self.get_mut(), s => Pin::new(s).poll_shutdown(cx))
    }
}
