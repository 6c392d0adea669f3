//! The built-in Prometheus endpoint: `[pgsluice] metrics_listen = 127.0.0.1:9127` serves
//! `GET /metrics` in the text exposition format.
//!
//! Owns: the `metrics_listen` setting, binding the listener, the tiny HTTP server ([`http`]),
//! the metric families ([`collect`]), the text format ([`text`]) and `/proc` readings
//! ([`process`]).
//!
//! Does not: record anything. The hot path only does the relaxed atomic adds that `stats` already
//! does (histograms included); a scrape reads pool snapshots and atomics and renders them. That
//! is why pgsluice renders the format itself instead of using the `metrics` /
//! `metrics-exporter-prometheus` crates: no registry lookup or handle on the hot path, no
//! second copy of the counters, no HTTP framework, and no new dependency.
//!
//! Invariants: a scrape never blocks a client for longer than `SHOW POOLS` does; the server
//! bounds request size, time and concurrency; `metrics_listen` is read at start only.

pub mod alert_families;
pub mod collect;
pub mod http;
pub mod process;
pub mod text;

use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use crate::config::Config;

pub use collect::Sources;

/// Reads `metrics_listen`: `None` when unset or empty. Accepts `host:port`, `[v6]:port`, and
/// `:port` / `*:port` for every IPv4 address.
pub fn listen_addr(config: &Config) -> Result<Option<SocketAddr>, String> {
    let Some(text) = config
        .pgsluice
        .get("metrics_listen")
        .map(|s| s.trim())
        .filter(|s| !s.is_empty())
    else {
        return Ok(None);
    };
    let bad = || format!("metrics_listen: invalid address: {text}");
    if let Some(port) = text.strip_prefix(':').or_else(|| text.strip_prefix("*:")) {
        let port: u16 = port.parse().map_err(|_| bad())?;
        return Ok(Some(SocketAddr::from(([0, 0, 0, 0], port))));
    }
    if let Ok(addr) = text.parse::<SocketAddr>() {
        return Ok(Some(addr));
    }
    text.to_socket_addrs()
        .map_err(|_| bad())?
        .next()
        .map(Some)
        .ok_or_else(bad)
}

/// Binds `addr` (before anything else starts, so a busy port fails the start cleanly).
pub fn bind(addr: SocketAddr) -> std::io::Result<std::net::TcpListener> {
    let listener = std::net::TcpListener::bind(addr)?;
    listener.set_nonblocking(true)?;
    Ok(listener)
}

/// Serves scrapes on `listener` until `stop`. Returns the bound address (the real port when
/// the configured port is 0). Must be called inside a tokio runtime.
pub fn start(
    listener: std::net::TcpListener,
    sources: Sources,
    stop: &CancellationToken,
) -> std::io::Result<SocketAddr> {
    let listener = tokio::net::TcpListener::from_std(listener)?;
    let bound = listener.local_addr()?;
    let sources = Arc::new(sources);
    let render: http::Render = Arc::new(move || collect::render(&sources));
    tokio::spawn(http::serve(listener, render, stop.clone()));
    tracing::info!(addr = %bound, "serving metrics on /metrics");
    Ok(bound)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(v: &str) -> Config {
        let text = format!("[pgbouncer]\n[pgsluice]\nmetrics_listen = {v}\n");
        Config::from_ini_str(&text, "t").unwrap()
    }

    #[test]
    fn listen_addresses() {
        assert_eq!(listen_addr(&cfg("")).unwrap(), None);
        assert_eq!(
            listen_addr(&cfg("127.0.0.1:9127")).unwrap(),
            Some("127.0.0.1:9127".parse().unwrap())
        );
        assert_eq!(
            listen_addr(&cfg(":9127")).unwrap(),
            Some("0.0.0.0:9127".parse().unwrap())
        );
        assert_eq!(
            listen_addr(&cfg("[::1]:9")).unwrap(),
            Some("[::1]:9".parse().unwrap())
        );
        assert!(listen_addr(&cfg("127.0.0.1")).is_err());
        assert!(listen_addr(&cfg(":x")).is_err());
    }
}
