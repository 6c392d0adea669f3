//! The `[peers]` section: `peer_id = host=... port=... pool_size=...`, the other pooler processes
//! of a peer group that cancel requests are forwarded to (PgBouncer 1.19+).
//!
//! Owns: parsing one entry into a [`PeerDef`] with PgBouncer's rules: the id is a number from 1
//! to 65535, `host` is required, `port` defaults to 6432, `pool_size` to `default_pool_size`,
//! any other key is "unrecognized connection parameter".
//! Does not: connect anywhere or decide which peer a cancel goes to (the client's cancel path
//! does).

use super::connstr::split_pairs;
use super::duration::atoi;

/// One `[peers]` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerDef {
    /// The peer's `peer_id`.
    pub id: u16,
    /// Host name, IP, or unix socket directory (starts with `/`).
    pub host: String,
    /// Port (default 6432).
    pub port: u16,
    /// Most cancel requests in flight to this peer at once; `None`: `default_pool_size`.
    pub pool_size: Option<u32>,
}

/// Parses one `[peers]` line.
pub fn parse(name: &str, text: &str) -> Result<PeerDef, String> {
    let id = name
        .trim()
        .parse::<u16>()
        .ok()
        .filter(|id| *id > 0)
        .ok_or_else(|| {
            "ids of peers must be a number larger than 0 and at most 65536".to_owned()
        })?;
    let mut host = None;
    let mut port = 6432;
    let mut pool_size = None;
    for (key, val) in split_pairs(text)? {
        match key.as_str() {
            "host" => host = Some(val),
            "port" => {
                port = atoi(&val)
                    .ok()
                    .and_then(|p| u16::try_from(p).ok())
                    .filter(|p| *p != 0)
                    .ok_or_else(|| format!("invalid port: {val}"))?;
            }
            "pool_size" => {
                pool_size = Some(
                    atoi(&val)
                        .ok()
                        .and_then(|n| u32::try_from(n).ok())
                        .ok_or_else(|| format!("invalid pool_size: {val}"))?,
                );
            }
            other => return Err(format!("unrecognized connection parameter: {other}")),
        }
    }
    let host = host.ok_or_else(|| format!("host was not provided for peer {id}"))?;
    Ok(PeerDef {
        id,
        host,
        port,
        pool_size,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_pgbouncer_peer_lines() {
        assert_eq!(
            parse("2", "host=/var/run/pgbouncer-2  port=5555").unwrap(),
            PeerDef {
                id: 2,
                host: "/var/run/pgbouncer-2".into(),
                port: 5555,
                pool_size: None
            }
        );
        let p = parse("7", "host=h1.example.com pool_size=3").unwrap();
        assert_eq!((p.port, p.pool_size), (6432, Some(3)));
    }

    #[test]
    fn refuses_what_pgbouncer_refuses() {
        assert!(parse("0", "host=h").is_err());
        assert!(parse("x", "host=h").is_err());
        assert!(parse("70000", "host=h").is_err());
        assert!(
            parse("1", "port=1")
                .unwrap_err()
                .contains("host was not provided")
        );
        assert!(
            parse("1", "host=h dbname=x")
                .unwrap_err()
                .contains("unrecognized")
        );
        assert!(parse("1", "host=h port=0").is_err());
    }
}
