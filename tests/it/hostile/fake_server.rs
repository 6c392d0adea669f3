//! A tiny hostile PostgreSQL *server*: the attacker in the `hostile_server` tests, which are
//! about what a malicious or compromised server can do to the pooler. It speaks just enough of
//! the protocol to reach the message under test; it mocks no Postgres behaviour a test relies
//! on (everything else runs against the real cluster).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::harness::raw;

/// What the server does once a login reaches it.
#[derive(Clone, Debug)]
pub enum Script {
    /// SASL with this server-first, built from the client's nonce.
    ServerFirst(fn(&str) -> String),
    /// A valid server-first (4096 iterations), then this server-final.
    ServerFinal(Vec<u8>),
    /// A FATAL ErrorResponse with these fields (no SQLSTATE among them) instead of any login.
    LoginError(Vec<(u8, &'static str)>),
    /// A login without authentication; every Query is answered by an ErrorResponse with these
    /// fields, then ReadyForQuery.
    QueryError(Vec<(u8, &'static str)>),
    /// A login without authentication; every Query is answered by the header of a
    /// NoticeResponse declaring a 1 GiB body, and nothing more.
    OversizedReply,
}

/// A running fake server.
pub struct FakeServer {
    /// Its port.
    pub port: u16,
    /// How many SCRAM client-final messages arrived (the pooler computed a proof).
    pub client_finals: Arc<AtomicUsize>,
    /// How many connections the pooler closed after an oversized header
    /// ([`Script::OversizedReply`]).
    pub hung_up_on: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FakeServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FakeServer {
    /// Listens on a free loopback port and runs `script` for every connection.
    pub async fn start(script: Script) -> FakeServer {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let client_finals = Arc::new(AtomicUsize::new(0));
        let hung_up_on = Arc::new(AtomicUsize::new(0));
        let counters = (Arc::clone(&client_finals), Arc::clone(&hung_up_on));
        let task = tokio::spawn(async move {
            while let Ok((s, _)) = listener.accept().await {
                let (script, counters) = (script.clone(), counters.clone());
                tokio::spawn(async move {
                    let _ = serve(s, script, (&counters.0, &counters.1)).await;
                });
            }
        });
        FakeServer {
            port,
            client_finals,
            hung_up_on,
            task,
        }
    }
}

/// An ErrorResponse or NoticeResponse body from fields.
pub fn fields_body(fields: &[(u8, &str)]) -> Vec<u8> {
    let mut body = Vec::new();
    for (k, v) in fields {
        body.push(*k);
        body.extend_from_slice(v.as_bytes());
        body.push(0);
    }
    body.push(0);
    body
}

fn auth(code: i32, data: &[u8]) -> Vec<u8> {
    let mut body = code.to_be_bytes().to_vec();
    body.extend_from_slice(data);
    raw::message(b'R', &body)
}

/// Reads the untagged startup packet, answering `N` to an SSLRequest first.
async fn read_startup(s: &mut TcpStream) -> std::io::Result<()> {
    loop {
        let mut len = [0u8; 4];
        s.read_exact(&mut len).await?;
        let len = usize::try_from(i32::from_be_bytes(len)).unwrap_or(0);
        let mut body = vec![0u8; len.saturating_sub(4).min(10_000)];
        s.read_exact(&mut body).await?;
        if body.get(..4) == Some(&[0x04, 0xd2, 0x16, 0x2f]) {
            s.write_all(b"N").await?;
            continue;
        }
        return Ok(());
    }
}

async fn read_tagged(s: &mut TcpStream) -> std::io::Result<(u8, Vec<u8>)> {
    let mut header = [0u8; 5];
    s.read_exact(&mut header).await?;
    let len = i32::from_be_bytes([header[1], header[2], header[3], header[4]]);
    let mut body = vec![
        0u8;
        usize::try_from(len)
            .unwrap_or(4)
            .saturating_sub(4)
            .min(1 << 20)
    ];
    s.read_exact(&mut body).await?;
    Ok((header[0], body))
}

/// The client nonce of a SASLInitialResponse body (`SCRAM-SHA-256\0`, length, `n,,n=,r=...`).
fn client_nonce(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    text.rsplit("r=").next().unwrap_or_default().to_owned()
}

async fn welcome(s: &mut TcpStream) -> std::io::Result<()> {
    let mut out = auth(0, &[]);
    for (k, v) in [
        ("server_version", "15.0"),
        ("client_encoding", "UTF8"),
        ("DateStyle", "ISO, MDY"),
        ("TimeZone", "UTC"),
        ("standard_conforming_strings", "on"),
        ("integer_datetimes", "on"),
    ] {
        let mut body = k.as_bytes().to_vec();
        body.push(0);
        body.extend_from_slice(v.as_bytes());
        body.push(0);
        out.extend(raw::message(b'S', &body));
    }
    out.extend(raw::message(b'K', &[0, 0, 0, 7, 0, 0, 0, 9]));
    out.extend(raw::message(b'Z', b"I"));
    s.write_all(&out).await
}

async fn serve(
    mut s: TcpStream,
    script: Script,
    (finals, hung_up_on): (&AtomicUsize, &AtomicUsize),
) -> std::io::Result<()> {
    read_startup(&mut s).await?;
    let server_first: fn(&str) -> String = match &script {
        Script::LoginError(fields) => {
            s.write_all(&raw::message(b'E', &fields_body(fields)))
                .await?;
            return Ok(());
        }
        Script::QueryError(fields) => {
            welcome(&mut s).await?;
            loop {
                let (tag, _) = read_tagged(&mut s).await?;
                match tag {
                    b'Q' => {
                        let mut out = raw::message(b'E', &fields_body(fields));
                        out.extend(raw::message(b'Z', b"I"));
                        s.write_all(&out).await?;
                    }
                    b'X' => return Ok(()),
                    _ => {}
                }
            }
        }
        Script::OversizedReply => {
            welcome(&mut s).await?;
            loop {
                let (tag, _) = read_tagged(&mut s).await?;
                match tag {
                    b'Q' => {
                        s.write_all(&[b'N', 0x40, 0, 0, 4]).await?;
                        // The body never comes; the pooler must hang up.
                        let mut sink = [0u8; 256];
                        while s.read(&mut sink).await? > 0 {}
                        hung_up_on.fetch_add(1, Ordering::Relaxed);
                        return Ok(());
                    }
                    b'X' => return Ok(()),
                    _ => {}
                }
            }
        }
        Script::ServerFirst(f) => *f,
        Script::ServerFinal(_) => |nonce| format!("r={nonce}srv,s=c2FsdHNhbHRzYWx0,i=4096"),
    };
    s.write_all(&auth(10, b"SCRAM-SHA-256\0\0")).await?;
    let (_, initial) = read_tagged(&mut s).await?;
    let first = server_first(&client_nonce(&initial));
    s.write_all(&auth(11, first.as_bytes())).await?;
    let _ = read_tagged(&mut s).await?;
    finals.fetch_add(1, Ordering::Relaxed);
    if let Script::ServerFinal(last) = &script {
        s.write_all(&auth(12, last)).await?;
    }
    // Hold the connection until the pooler closes it.
    let mut sink = [0u8; 256];
    while s.read(&mut sink).await? > 0 {}
    Ok(())
}
