//! TCP socket options from the `tcp_*` settings.

use std::time::Duration;

use socket2::{SockRef, TcpKeepalive};
use tokio::net::TcpStream;

/// The keepalive and buffer settings, copied out of the config once.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct KeepaliveSettings {
    /// `tcp_keepalive`.
    pub enabled: bool,
    /// `tcp_keepidle` seconds (0 = OS default).
    pub idle: u32,
    /// `tcp_keepintvl` seconds (0 = OS default).
    pub interval: u32,
    /// `tcp_keepcnt` (0 = OS default).
    pub count: u32,
    /// `tcp_user_timeout` milliseconds (0 = off).
    pub user_timeout_ms: u32,
    /// `tcp_socket_buffer` bytes (0 = OS default).
    pub socket_buffer: u32,
}

/// Applies `TCP_NODELAY` (always: the protocol is request/response) and the configured options.
/// Failures are logged, not fatal: a socket without keepalive still works.
pub fn apply_tcp_options(stream: &TcpStream, opts: &KeepaliveSettings) {
    if let Err(e) = stream.set_nodelay(true) {
        tracing::debug!(error = %e, "TCP_NODELAY failed");
    }
    let sock = SockRef::from(stream);
    if opts.enabled {
        let mut ka = TcpKeepalive::new();
        if opts.idle > 0 {
            ka = ka.with_time(Duration::from_secs(opts.idle.into()));
        }
        if opts.interval > 0 {
            ka = ka.with_interval(Duration::from_secs(opts.interval.into()));
        }
        if opts.count > 0 {
            ka = ka.with_retries(opts.count);
        }
        if let Err(e) = sock.set_tcp_keepalive(&ka) {
            tracing::debug!(error = %e, "SO_KEEPALIVE failed");
        }
    }
    if opts.user_timeout_ms > 0 {
        let timeout = Duration::from_millis(opts.user_timeout_ms.into());
        if let Err(e) = sock.set_tcp_user_timeout(Some(timeout)) {
            tracing::debug!(error = %e, "TCP_USER_TIMEOUT failed");
        }
    }
    if opts.socket_buffer > 0 {
        let size = usize::try_from(opts.socket_buffer).unwrap_or(usize::MAX);
        let _ = sock.set_recv_buffer_size(size);
        let _ = sock.set_send_buffer_size(size);
    }
}
