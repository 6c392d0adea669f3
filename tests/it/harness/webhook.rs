//! Loopback HTTP receivers for the alert webhook: one that answers 200 and keeps every body, one
//! that accepts and answers only after a long delay, and a port where nothing listens.
//!
//! Each receiver runs on the calling test's runtime and ends with it.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Reads one HTTP request with a `Content-Length` body; returns the body (`None` on EOF).
async fn read_request(s: &mut TcpStream) -> Option<String> {
    let mut req = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = s.read(&mut buf).await.unwrap_or(0);
        if n == 0 {
            return None;
        }
        req.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&req).into_owned();
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let len: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("Content-Length: "))
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            if body.len() >= len {
                return Some(body.to_owned());
            }
        }
    }
}

/// A receiver that answers 200 to every POST and keeps the bodies; returns its port.
pub async fn recording() -> (u16, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let bodies = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::clone(&bodies);
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            let seen = Arc::clone(&seen);
            tokio::spawn(async move {
                let Some(body) = read_request(&mut s).await else {
                    return;
                };
                seen.lock().unwrap().push(body);
                let _ = s
                    .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                    .await;
            });
        }
    });
    (port, bodies)
}

/// A receiver that accepts, reads the request, then waits `delay` before answering 200; returns
/// its port and the number of connections accepted so far.
pub async fn slow(delay: Duration) -> (u16, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = Arc::clone(&accepted);
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            count.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                if read_request(&mut s).await.is_some() {
                    tokio::time::sleep(delay).await;
                    let _ = s
                        .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
                        .await;
                }
            });
        }
    });
    (port, accepted)
}

/// A loopback port where nothing listens (bound, then closed), so a connect is refused.
pub fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

/// Waits until a body in `bodies` holds an alert for `rule` and `database` in `state`
/// (`firing` / `resolved`); returns that alert. Panics after 30 s.
pub async fn wait_for_post(
    bodies: &Mutex<Vec<String>>,
    rule: &str,
    database: &str,
    state: &str,
) -> serde_json::Value {
    for _ in 0..600 {
        let found = bodies.lock().unwrap().iter().find_map(|b| {
            let v: serde_json::Value = serde_json::from_str(b).ok()?;
            v.as_array()?
                .iter()
                .find(|a| {
                    a["labels"]["rule"] == rule
                        && a["labels"]["database"] == database
                        && a["annotations"]["state"] == state
                })
                .cloned()
        });
        if let Some(alert) = found {
            return alert;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!(
        "no {state} POST for {rule} on {database}; got {:?}",
        bodies.lock().unwrap()
    );
}
