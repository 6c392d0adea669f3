//! Raw-socket PostgreSQL clients (for hostile input, slow readers and abrupt disconnects) and
//! pgsluice run as a separate process (for RSS and fd counts of the pooler alone).

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use md5::{Digest, Md5};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::files::TempDir;

/// Every raw read waits at most this long.
pub const READ_TIMEOUT: Duration = Duration::from_secs(20);

/// A v3 startup packet for `user`/`database`.
pub fn startup_packet(user: &str, database: &str) -> Vec<u8> {
    let mut body = Vec::new();
    body.extend_from_slice(&196_608_i32.to_be_bytes());
    for (k, v) in [("user", user), ("database", database)] {
        body.extend_from_slice(k.as_bytes());
        body.push(0);
        body.extend_from_slice(v.as_bytes());
        body.push(0);
    }
    body.push(0);
    let mut out = (i32::try_from(body.len() + 4).unwrap())
        .to_be_bytes()
        .to_vec();
    out.extend_from_slice(&body);
    out
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

/// Logs in over a raw socket (trust, cleartext or md5 challenge) and waits for ReadyForQuery.
/// Returns the stream and the BackendKeyData `(pid, key)`.
pub async fn login(port: u16, user: &str, password: &str, db: &str) -> (TcpStream, (i32, i32)) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    s.write_all(&startup_packet(user, db)).await.unwrap();
    let mut key = (0, 0);
    for _ in 0..100 {
        let (tag, body) = read_message(&mut s).await.expect("login reply");
        match tag {
            b'R' => {
                let code = i32::from_be_bytes(body[..4].try_into().unwrap());
                match code {
                    0 => {}
                    3 => {
                        let mut b = password.as_bytes().to_vec();
                        b.push(0);
                        s.write_all(&message(b'p', &b)).await.unwrap();
                    }
                    5 => {
                        let inner = hex(&Md5::digest(format!("{password}{user}")));
                        let mut h = Md5::new();
                        h.update(inner.as_bytes());
                        h.update(&body[4..8]);
                        let mut b = format!("md5{}", hex(&h.finalize())).into_bytes();
                        b.push(0);
                        s.write_all(&message(b'p', &b)).await.unwrap();
                    }
                    other => panic!("auth method {other} not supported by the raw client"),
                }
            }
            b'K' => {
                key = (
                    i32::from_be_bytes(body[..4].try_into().unwrap()),
                    i32::from_be_bytes(body[4..8].try_into().unwrap()),
                );
            }
            b'Z' => return (s, key),
            b'E' => panic!("raw login refused: {:?}", error_code(&body)),
            _ => {}
        }
    }
    panic!("raw login: no ReadyForQuery");
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
        let port = std::net::TcpListener::bind(("127.0.0.1", 0))
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
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
