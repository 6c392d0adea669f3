//! The binary's one-shot modes: `--check` (print the effective configuration) and `--probe`
//! (is a pooler answering on the configured address?), used by health checks.
//!
//! Owns: the text `--check` prints and the probe exchange.
//! Does not: validate (loading the config already did) or log in to anything.
//! Invariants: passwords and secrets are never printed; the probe is bounded by a timeout and
//! sends nothing a pooler would forward to a server.

use std::fmt::Write as _;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::os::unix::net::UnixStream;
use std::time::Duration;

use crate::config::{Config, DatabaseDef, show_config};

/// The effective configuration as text: every `[pgbouncer]` setting as SHOW CONFIG prints it,
/// the databases without passwords, the `[users]` names, the `auth_file` user names and the
/// `[pgsluice]` settings.
pub fn effective_config(config: &Config) -> String {
    let mut out = String::from("[pgbouncer]\n");
    for row in show_config(config) {
        let _ = writeln!(out, "{} = {}", row.key, row.value);
    }
    out.push_str("\n[databases]\n");
    for db in config
        .databases
        .iter()
        .chain(config.fallback_database.as_ref())
    {
        let _ = writeln!(out, "{} = {}", db.name, describe(db));
    }
    out.push_str("\n[users]\n");
    for user in config.users.keys() {
        let _ = writeln!(out, "{user}");
    }
    out.push_str("\n[auth_file users]\n");
    for user in config.auth_users.keys() {
        let _ = writeln!(out, "{user}");
    }
    out.push_str("\n[pgsluice]\n");
    for (key, value) in &config.pgsluice {
        let _ = writeln!(out, "{key} = {value}");
    }
    out
}

/// A `[databases]` entry as a connection string, without its password.
fn describe(db: &DatabaseDef) -> String {
    let mut parts = Vec::new();
    if let Some(host) = &db.host {
        parts.push(format!("host={host}"));
    }
    parts.push(format!("port={}", db.port));
    if let Some(dbname) = &db.dbname {
        parts.push(format!("dbname={dbname}"));
    }
    if let Some(user) = &db.user {
        parts.push(format!("user={user}"));
    }
    if db.password.is_some() {
        parts.push("password=(set)".to_owned());
    }
    let numbers = [
        ("pool_size", db.pool_size),
        ("min_pool_size", db.min_pool_size),
        ("reserve_pool_size", db.reserve_pool_size),
        ("max_db_connections", db.max_db_connections),
        ("max_db_client_connections", db.max_db_client_connections),
    ];
    for (name, value) in numbers {
        if let Some(v) = value {
            parts.push(format!("{name}={v}"));
        }
    }
    if let Some(mode) = db.pool_mode {
        parts.push(format!("pool_mode={}", mode.as_str()));
    }
    parts.join(" ")
}

/// Where the probe connects: the unix socket if there is one, else the first `listen_addr`
/// (`*` and `0.0.0.0` mean loopback).
fn probe_target(config: &Config) -> Option<Result<SocketAddr, std::path::PathBuf>> {
    let g = &config.general;
    if !g.unix_socket_dir.is_empty() {
        let path = format!("{}/.s.PGSQL.{}", g.unix_socket_dir, g.listen_port);
        return Some(Err(path.into()));
    }
    let addr = g.listen_addr.first()?;
    let host = match addr.as_str() {
        "*" | "0.0.0.0" => "127.0.0.1",
        "::" => "::1",
        a => a.trim_matches(['[', ']']),
    };
    (host, g.listen_port).to_socket_addrs().ok()?.next().map(Ok)
}

/// Sends an SSLRequest to the pooler the config describes and expects its one-byte answer
/// (`N`, or `S` with TLS on). No login, so no credentials are needed.
pub fn probe(config: &Config, timeout: Duration) -> Result<(), String> {
    const SSL_REQUEST: [u8; 8] = [0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f];
    let target = probe_target(config).ok_or("no listen_addr and no unix_socket_dir")?;
    let answer = match &target {
        Ok(addr) => {
            let mut s = TcpStream::connect_timeout(addr, timeout)
                .map_err(|e| format!("cannot connect to {addr}: {e}"))?;
            exchange(&mut s, &SSL_REQUEST, timeout, |s, t| {
                s.set_read_timeout(t)?;
                s.set_write_timeout(t)
            })
        }
        Err(path) => {
            let mut s = UnixStream::connect(path)
                .map_err(|e| format!("cannot connect to {}: {e}", path.display()))?;
            exchange(&mut s, &SSL_REQUEST, timeout, |s, t| {
                s.set_read_timeout(t)?;
                s.set_write_timeout(t)
            })
        }
    }
    .map_err(|e| format!("no answer: {e}"))?;
    match answer {
        b'N' | b'S' => Ok(()),
        other => Err(format!("unexpected answer {other:#04x}")),
    }
}

fn exchange<S: Read + Write>(
    stream: &mut S,
    request: &[u8],
    timeout: Duration,
    set_timeouts: impl Fn(&S, Option<Duration>) -> std::io::Result<()>,
) -> std::io::Result<u8> {
    set_timeouts(stream, Some(timeout))?;
    stream.write_all(request)?;
    let mut byte = [0u8; 1];
    stream.read_exact(&mut byte)?;
    Ok(byte[0])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn check_output_hides_passwords() {
        let cfg = Config::from_ini_str(
            "[databases]\napp = host=db port=5433 dbname=app user=u password=secret pool_size=7\n[pgbouncer]\nlisten_port = 7000\n",
            "t.ini",
        )
        .unwrap();
        let text = effective_config(&cfg);
        assert!(text.contains("listen_port = 7000\n"), "{text}");
        assert!(
            text.contains("app = host=db port=5433 dbname=app user=u password=(set) pool_size=7\n"),
            "{text}"
        );
        assert!(!text.contains("secret"));
    }

    #[test]
    fn probe_targets() {
        let cfg =
            Config::from_ini_str("[pgbouncer]\nlisten_addr = *\nunix_socket_dir =\n", "t").unwrap();
        assert_eq!(
            probe_target(&cfg),
            Some(Ok(SocketAddr::from(([127, 0, 0, 1], 6432))))
        );
        let cfg = Config::from_ini_str("[pgbouncer]\nunix_socket_dir = /run/x\n", "t").unwrap();
        assert_eq!(probe_target(&cfg), Some(Err("/run/x/.s.PGSQL.6432".into())));
    }
}
