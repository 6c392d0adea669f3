//! Raw-socket PostgreSQL clients (for hostile input, slow readers and abrupt disconnects) and
//! pgsluice run as a separate process (for RSS and fd counts of the pooler alone).

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use md5::{Digest, Md5};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::files::TempDir;
use super::pooler::free_port;

/// Every raw read waits at most this long.
pub const READ_TIMEOUT: Duration = Duration::from_secs(20);

/// The protocol version code of v3.0 (`3 << 16`).
pub const PROTOCOL_3_0: i32 = 196_608;

/// A startup packet with any protocol version code and `params`, in order, as given.
pub fn startup_packet_version(version: i32, params: &[(&str, &str)]) -> Vec<u8> {
    let mut body = version.to_be_bytes().to_vec();
    for (k, v) in params {
        body.extend_from_slice(k.as_bytes());
        body.push(0);
        body.extend_from_slice(v.as_bytes());
        body.push(0);
    }
    body.push(0);
    let mut out = i32::try_from(body.len() + 4)
        .unwrap()
        .to_be_bytes()
        .to_vec();
    out.extend_from_slice(&body);
    out
}

/// A v3 startup packet for `user`/`database` followed by `extra` parameters.
pub fn startup_packet_with(user: &str, database: &str, extra: &[(&str, &str)]) -> Vec<u8> {
    let params: Vec<(&str, &str)> = [("user", user), ("database", database)]
        .into_iter()
        .chain(extra.iter().copied())
        .collect();
    startup_packet_version(PROTOCOL_3_0, &params)
}

/// A v3 startup packet for `user`/`database`.
pub fn startup_packet(user: &str, database: &str) -> Vec<u8> {
    startup_packet_with(user, database, &[])
}

/// A tagged message.
pub fn message(tag: u8, body: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    out.extend_from_slice(&i32::try_from(body.len() + 4).unwrap().to_be_bytes());
    out.extend_from_slice(body);
    out
}

/// A simple Query message.
pub fn query(sql: &str) -> Vec<u8> {
    let mut body = sql.as_bytes().to_vec();
    body.push(0);
    message(b'Q', &body)
}

/// Reads one tagged message; `None` on EOF, error or timeout.
pub async fn read_message(stream: &mut TcpStream) -> Option<(u8, Vec<u8>)> {
    tokio::time::timeout(READ_TIMEOUT, async {
        let mut header = [0u8; 5];
        stream.read_exact(&mut header).await.ok()?;
        let len = i32::from_be_bytes([header[1], header[2], header[3], header[4]]);
        let len = usize::try_from(len).ok()?.checked_sub(4)?;
        let mut body = vec![0u8; len];
        stream.read_exact(&mut body).await.ok()?;
        Some((header[0], body))
    })
    .await
    .ok()
    .flatten()
}

/// The SQLSTATE (`C` field) of an ErrorResponse body.
pub fn error_code(body: &[u8]) -> Option<String> {
    body.split(|b| *b == 0)
        .find(|f| f.first() == Some(&b'C'))
        .map(|f| String::from_utf8_lossy(&f[1..]).into_owned())
}

/// Reads messages until ReadyForQuery or an ErrorResponse; returns the error's SQLSTATE, if any.
pub async fn read_until_ready(stream: &mut TcpStream) -> Result<(), Option<String>> {
    for _ in 0..10_000 {
        match read_message(stream).await {
            Some((b'Z', _)) => return Ok(()),
            Some((b'E', body)) => return Err(error_code(&body)),
            Some(_) => {}
            None => return Err(None),
        }
    }
    Err(None)
}

/// The `M` field (the message) of an ErrorResponse body; empty when it has none.
pub fn error_message(body: &[u8]) -> String {
    body.split(|b| *b == 0)
        .find_map(|f| f.strip_prefix(b"M"))
        .map(|m| String::from_utf8_lossy(m).into_owned())
        .unwrap_or_default()
}

/// The (name, value) of a ParameterStatus body.
pub fn parameter_status(body: &[u8]) -> (String, String) {
    let mut parts = body.split(|b| *b == 0);
    let name = String::from_utf8_lossy(parts.next().unwrap_or_default()).into_owned();
    let value = String::from_utf8_lossy(parts.next().unwrap_or_default()).into_owned();
    (name, value)
}

/// The first column of a DataRow body; `None` for SQL NULL (or a row without columns).
pub fn first_column(body: &[u8]) -> Option<String> {
    let len = i32::from_be_bytes(body.get(2..6)?.try_into().ok()?);
    let len = usize::try_from(len).ok()?;
    let value = body.get(6..6 + len)?;
    Some(String::from_utf8_lossy(value).into_owned())
}

/// Reads one query's answer up to ReadyForQuery: the first column of its first row (`None`
/// when there is no row or it is NULL), or the ErrorResponse's (SQLSTATE, message). A
/// connection that closes before ReadyForQuery is the error it sent, or `("", "connection
/// closed")`.
pub async fn read_value(stream: &mut TcpStream) -> Result<Option<String>, (String, String)> {
    let mut value = None;
    let mut error = None;
    for _ in 0..10_000 {
        match read_message(stream).await {
            Some((b'D', body)) if value.is_none() => value = first_column(&body),
            Some((b'E', body)) => {
                error = Some((error_code(&body).unwrap_or_default(), error_message(&body)));
            }
            Some((b'Z', _)) => return error.map_or(Ok(value), Err),
            Some(_) => {}
            None => break,
        }
    }
    Err(error.unwrap_or_else(|| (String::new(), "connection closed".to_owned())))
}

/// What a raw login read: every message from the first reply up to and including
/// ReadyForQuery or an ErrorResponse (or up to EOF), and the stream to go on with.
pub struct Login {
    /// The connection, after the last message read.
    pub stream: TcpStream,
    /// Every message read, in order.
    pub messages: Vec<(u8, Vec<u8>)>,
}

impl Login {
    /// The login ended with ReadyForQuery.
    pub fn is_ready(&self) -> bool {
        self.messages.last().map(|m| m.0) == Some(b'Z')
    }

    /// The (SQLSTATE, message) of the ErrorResponse that ended the login, if one did.
    pub fn error(&self) -> Option<(String, String)> {
        self.messages
            .iter()
            .find(|m| m.0 == b'E')
            .map(|(_, body)| (error_code(body).unwrap_or_default(), error_message(body)))
    }

    /// The ParameterStatus reports, in order.
    pub fn parameters(&self) -> Vec<(String, String)> {
        self.messages
            .iter()
            .filter(|m| m.0 == b'S')
            .map(|(_, body)| parameter_status(body))
            .collect()
    }

    /// The BackendKeyData `(pid, key)`; `(0, 0)` when none came.
    pub fn backend_key(&self) -> (i32, i32) {
        self.messages
            .iter()
            .find(|m| m.0 == b'K' && m.1.len() >= 8)
            .map_or((0, 0), |(_, body)| {
                (
                    i32::from_be_bytes(body[..4].try_into().unwrap()),
                    i32::from_be_bytes(body[4..8].try_into().unwrap()),
                )
            })
    }

    /// The stream after ReadyForQuery, or the ErrorResponse's (SQLSTATE, message); a
    /// connection closed without either is `("", "connection closed")`.
    pub fn ready(self) -> Result<TcpStream, (String, String)> {
        if self.is_ready() {
            return Ok(self.stream);
        }
        Err(self
            .error()
            .unwrap_or_else(|| (String::new(), "connection closed".to_owned())))
    }
}

/// The PasswordMessage answering an AuthenticationRequest body (`code` first), for cleartext
/// (3) and md5 (5); trust's AuthenticationOk (0) needs none.
fn password_reply(body: &[u8], user: &str, password: &str) -> Option<Vec<u8>> {
    let code = i32::from_be_bytes(body.get(..4)?.try_into().ok()?);
    let mut reply = match code {
        0 => return None,
        3 => password.as_bytes().to_vec(),
        5 => {
            let inner = hex(&Md5::digest(format!("{password}{user}")));
            let mut h = Md5::new();
            h.update(inner.as_bytes());
            h.update(&body[4..8]);
            format!("md5{}", hex(&h.finalize())).into_bytes()
        }
        other => panic!("auth method {other} not supported by the raw client"),
    };
    reply.push(0);
    Some(message(b'p', &reply))
}

/// Connects to `port`, sends the startup `packet`, answers a cleartext or md5 challenge with
/// `user`'s `password` (trust needs none), and reads until ReadyForQuery, an ErrorResponse or
/// EOF (bounded: every read by [`READ_TIMEOUT`], at most 1,000 messages).
pub async fn login_with(port: u16, packet: &[u8], user: &str, password: &str) -> Login {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    stream.write_all(packet).await.unwrap();
    let mut messages = Vec::new();
    for _ in 0..1000 {
        let Some((tag, body)) = read_message(&mut stream).await else {
            return Login { stream, messages };
        };
        if tag == b'R' {
            if let Some(reply) = password_reply(&body, user, password) {
                stream.write_all(&reply).await.unwrap();
            }
        }
        let end = tag == b'Z' || tag == b'E';
        messages.push((tag, body));
        if end {
            return Login { stream, messages };
        }
    }
    panic!("raw login: no end after 1,000 messages");
}

/// Logs in over a raw socket (trust, cleartext or md5 challenge) and waits for ReadyForQuery.
/// Returns the stream and the BackendKeyData `(pid, key)`.
pub async fn login(port: u16, user: &str, password: &str, db: &str) -> (TcpStream, (i32, i32)) {
    let login = login_with(port, &startup_packet(user, db), user, password).await;
    let key = login.backend_key();
    match login.ready() {
        Ok(stream) => (stream, key),
        Err(e) => panic!("raw login refused: {e:?}"),
    }
}

/// Reads until EOF (at most 100 messages); returns every ErrorResponse seen as (SQLSTATE,
/// message), after checking the connection is closed.
pub async fn errors_then_eof(s: &mut TcpStream) -> Vec<(String, String)> {
    let mut errors = Vec::new();
    for _ in 0..100 {
        match read_message(s).await {
            Some((b'E', body)) => {
                errors.push((error_code(&body).unwrap_or_default(), error_message(&body)));
            }
            Some(_) => {}
            None => break,
        }
    }
    assert_closed(s).await;
    errors
}

/// The connection is closed: a read yields EOF (or a reset), not a hang.
pub async fn assert_closed(s: &mut TcpStream) {
    let mut byte = [0u8; 64];
    for _ in 0..1000 {
        let read = tokio::time::timeout(Duration::from_secs(10), s.read(&mut byte)).await;
        match read.expect("connection still open") {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
    }
    panic!("connection keeps sending");
}

/// Lower-case hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes.iter().fold(String::new(), |mut out, b| {
        let _ = write!(out, "{b:02x}");
        out
    })
}

/// Sends a CancelRequest for `(pid, key)` to `port`.
pub async fn send_cancel(port: u16, pid: i32, key: i32) {
    if let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)).await {
        let mut pkt = 16_i32.to_be_bytes().to_vec();
        pkt.extend_from_slice(&80_877_102_i32.to_be_bytes());
        pkt.extend_from_slice(&pid.to_be_bytes());
        pkt.extend_from_slice(&key.to_be_bytes());
        let _ = s.write_all(&pkt).await;
        let mut sink = [0u8; 16];
        let _ = tokio::time::timeout(Duration::from_secs(5), s.read(&mut sink)).await;
    }
}

/// A field of /proc/<pid>/status in kB (e.g. `VmRSS`).
pub fn proc_status_kb(pid: u32, field: &str) -> u64 {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    text.lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// Open file descriptors of a process.
pub fn fd_count(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, Iterator::count)
}

/// pgsluice run as its own process (the test binary's sibling), killed by PID on drop.
pub struct PoolerProcess {
    child: Child,
    /// The port it listens on.
    pub port: u16,
    /// Its config dir.
    pub dir: TempDir,
}

impl PoolerProcess {
    /// Writes the ini like `Pooler::start` does and starts the binary on a free port.
    pub fn start(databases: &str, settings: &str, userlist: &str) -> PoolerProcess {
        let dir = TempDir::new("pgsluice-proc");
        let port = free_port();
        let auth_file = dir.write("userlist.txt", userlist);
        let ini = format!(
            "[databases]\n{databases}\n[pgbouncer]\nlisten_addr = 127.0.0.1\nlisten_port = {port}\nunix_socket_dir =\nauth_file = {}\n{settings}\n",
            auth_file.display()
        );
        let path: PathBuf = dir.write("pgbouncer.ini", &ini);
        let mut child = Command::new(env!("CARGO_BIN_EXE_pgsluice"))
            .arg("-q")
            .arg(&path)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("pgsluice binary starts");
        for _ in 0..200 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return PoolerProcess { child, port, dir };
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        let _ = child.wait();
        panic!("pgsluice process did not listen on {port}");
    }

    /// Its PID.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for PoolerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
