//! Syslog output: one RFC 3164 datagram per log line to the local syslog socket (`/dev/log`),
//! as glibc's `syslog(3)` writes them: `<PRI>Mmm dd hh:mm:ss ident[pid]: message`.
//!
//! Owns: the facility names PgBouncer accepts, the priority arithmetic, the line format and
//! the datagram socket.
//! Does not: decide what is logged (the tracing filter does) or format the message body.
//! Invariants: a send failure (no syslog daemon, full buffer) never blocks or fails the
//! caller; the line is dropped.

use std::os::unix::net::UnixDatagram;
use std::path::PathBuf;

use tracing::Level;

/// The local syslog socket.
pub const DEFAULT_SOCKET: &str = "/dev/log";

/// Longest message sent; syslog daemons truncate or drop longer datagrams anyway.
const MAX_MESSAGE: usize = 8 * 1024;

/// A configured syslog destination.
#[derive(Debug)]
pub struct Syslog {
    socket: UnixDatagram,
    path: PathBuf,
    ident: String,
    facility: u8,
    pid: u32,
}

/// The facility code for a `syslog_facility` name (as PgBouncer accepts them).
pub fn facility_code(name: &str) -> Option<u8> {
    let code = match name.to_ascii_lowercase().as_str() {
        "user" => 1,
        "daemon" => 3,
        "auth" => 4,
        "authpriv" => 10,
        "local0" => 16,
        "local1" => 17,
        "local2" => 18,
        "local3" => 19,
        "local4" => 20,
        "local5" => 21,
        "local6" => 22,
        "local7" => 23,
        _ => return None,
    };
    Some(code)
}

/// The syslog severity of a tracing level.
pub fn severity(level: Level) -> u8 {
    match level {
        Level::ERROR => 3,
        Level::WARN => 4,
        Level::INFO => 6,
        Level::DEBUG | Level::TRACE => 7,
    }
}

/// `Mmm dd hh:mm:ss` (day padded with a space), the RFC 3164 timestamp.
fn timestamp() -> String {
    let now = time::OffsetDateTime::now_local().unwrap_or_else(|_| time::OffsetDateTime::now_utc());
    let format = time::macros::format_description!(
        "[month repr:short] [day padding:space] [hour]:[minute]:[second]"
    );
    now.format(&format).unwrap_or_default()
}

/// One syslog line without the trailing newline.
pub fn format_line(facility: u8, level: Level, ident: &str, pid: u32, message: &str) -> String {
    let pri = u16::from(facility) * 8 + u16::from(severity(level));
    let message = message.trim_end_matches(['\n', '\r']);
    let mut end = message.len().min(MAX_MESSAGE);
    while !message.is_char_boundary(end) {
        end -= 1;
    }
    format!("<{pri}>{} {ident}[{pid}]: {}", timestamp(), &message[..end])
}

impl Syslog {
    /// A destination for `ident` and `facility` (a name) at the socket `path`.
    pub fn new(path: PathBuf, ident: &str, facility: &str) -> Result<Syslog, String> {
        let facility = facility_code(facility)
            .ok_or_else(|| format!("invalid syslog_facility: {facility}"))?;
        let socket = UnixDatagram::unbound().map_err(|e| format!("syslog socket: {e}"))?;
        // A syslog daemon that stops reading must not stall the thread that logs.
        socket
            .set_nonblocking(true)
            .map_err(|e| format!("syslog socket: {e}"))?;
        Ok(Syslog {
            socket,
            path,
            ident: ident.to_owned(),
            facility,
            pid: std::process::id(),
        })
    }

    /// Sends one message, best effort.
    pub fn send(&self, level: Level, message: &str) {
        let line = format_line(self.facility, level, &self.ident, self.pid, message);
        let _ = self.socket.send_to(line.as_bytes(), &self.path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn priority_and_shape() {
        let line = format_line(3, Level::INFO, "pgbouncer", 42, "login ok\n");
        assert!(line.starts_with("<30>"), "{line}");
        assert!(line.ends_with(" pgbouncer[42]: login ok"), "{line}");
        // "<30>" + "Mmm dd hh:mm:ss" + " "
        assert_eq!(&line[4 + 15..4 + 16], " ");
        let err = format_line(
            facility_code("local0").unwrap(),
            Level::ERROR,
            "x",
            1,
            "boom",
        );
        assert!(err.starts_with("<131>"), "{err}");
        assert_eq!(facility_code("LOCAL7"), Some(23));
        assert_eq!(facility_code("kern"), None);
    }

    #[test]
    fn long_messages_are_cut_on_a_char_boundary() {
        let long = "é".repeat(MAX_MESSAGE);
        let line = format_line(1, Level::WARN, "x", 1, &long);
        assert!(line.len() < MAX_MESSAGE + 64);
    }

    #[test]
    fn sends_datagrams() {
        let dir = std::env::temp_dir().join(format!("pgsluice-syslog-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("log.sock");
        let _ = std::fs::remove_file(&path);
        let server = UnixDatagram::bind(&path).unwrap();
        let log = Syslog::new(path.clone(), "pgsluice", "daemon").unwrap();
        log.send(Level::WARN, "hello");
        let mut buf = [0u8; 512];
        let n = server.recv(&mut buf).unwrap();
        let got = String::from_utf8_lossy(&buf[..n]);
        assert!(
            got.starts_with("<28>") && got.ends_with("]: hello"),
            "{got}"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
