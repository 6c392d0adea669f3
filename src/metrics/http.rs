//! A minimal HTTP/1.1 server for `GET /metrics`: one request per connection, then close.
//!
//! Owns: reading a request head (at most [`MAX_REQUEST`] bytes, within [`REQUEST_TIMEOUT`] for
//! the whole exchange), routing (`GET`/`HEAD /metrics` → 200, other paths → 404, other methods
//! → 405, junk → 400), and at most [`MAX_CONNECTIONS`] exchanges at once (extra connections are
//! closed at once).
//! Does not: keep connections alive, read request bodies, or do TLS.

use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

/// Largest request head accepted.
pub const MAX_REQUEST: usize = 8192;
/// Time limit for one whole exchange.
pub const REQUEST_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);
/// Concurrent exchanges.
pub const MAX_CONNECTIONS: usize = 16;

/// Builds the page body for a scrape.
pub type Render = Arc<dyn Fn() -> String + Send + Sync>;

/// A response: status line text, extra headers, body.
#[derive(Debug, PartialEq, Eq)]
pub struct Response {
    /// e.g. `200 OK`.
    pub status: &'static str,
    /// `Content-Type`.
    pub content_type: &'static str,
    /// Extra header lines, each ending in CRLF.
    pub extra: &'static str,
    /// Body (left out for HEAD, but counted in Content-Length).
    pub body: String,
    /// Whether to send the body.
    pub send_body: bool,
}

fn plain(status: &'static str, body: &str) -> Response {
    Response {
        status,
        content_type: "text/plain; charset=utf-8",
        extra: "",
        body: body.to_owned(),
        send_body: true,
    }
}

/// Decides the response to a request head (`head` is everything up to the blank line).
pub fn route(head: &[u8], render: &Render) -> Response {
    let line = head.split(|&b| b == b'\n').next().unwrap_or_default();
    let line = String::from_utf8_lossy(line);
    let mut parts = line.trim_end_matches('\r').split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return plain("400 Bad Request", "bad request\n");
    };
    if !version.starts_with("HTTP/1.") {
        return plain("400 Bad Request", "bad request\n");
    }
    let path = target.split('?').next().unwrap_or_default();
    if path != "/metrics" {
        return plain("404 Not Found", "not found; try /metrics\n");
    }
    match method {
        "GET" | "HEAD" => Response {
            status: "200 OK",
            content_type: super::text::CONTENT_TYPE,
            extra: "",
            body: render(),
            send_body: method == "GET",
        },
        _ => Response {
            extra: "Allow: GET, HEAD\r\n",
            ..plain("405 Method Not Allowed", "method not allowed\n")
        },
    }
}

/// Reads a request head; `None` if the peer closed or sent too much.
async fn read_head(stream: &mut TcpStream) -> std::io::Result<Option<Vec<u8>>> {
    let mut buf = vec![0u8; MAX_REQUEST];
    let mut filled = 0;
    loop {
        if let Some(end) = buf[..filled].windows(4).position(|w| w == b"\r\n\r\n") {
            buf.truncate(end);
            return Ok(Some(buf));
        }
        if filled == buf.len() {
            return Ok(None);
        }
        let n = stream.read(&mut buf[filled..]).await?;
        if n == 0 {
            return Ok(None);
        }
        filled += n;
    }
}

async fn exchange(mut stream: TcpStream, render: Render) -> std::io::Result<()> {
    let response = match read_head(&mut stream).await? {
        Some(head) => route(&head, &render),
        None => plain("400 Bad Request", "bad or oversized request\n"),
    };
    let head = format!(
        "HTTP/1.1 {}\r\nContent-Type: {}\r\nContent-Length: {}\r\n{}Connection: close\r\n\r\n",
        response.status,
        response.content_type,
        response.body.len(),
        response.extra
    );
    stream.write_all(head.as_bytes()).await?;
    if response.send_body {
        stream.write_all(response.body.as_bytes()).await?;
    }
    stream.shutdown().await?;
    // Lingering close: drain what the client still sends (briefly, boundedly), so unread input
    // does not turn the close into a reset that could destroy the response in flight.
    let mut sink = [0u8; 1024];
    let drain = async {
        let mut left = 64 * 1024usize;
        while left > 0 {
            match stream.read(&mut sink).await {
                Ok(0) | Err(_) => break,
                Ok(n) => left = left.saturating_sub(n),
            }
        }
    };
    let _ = tokio::time::timeout(std::time::Duration::from_secs(1), drain).await;
    Ok(())
}

/// Accepts scrapes until `stop`.
pub async fn serve(listener: TcpListener, render: Render, stop: CancellationToken) {
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let accepted = tokio::select! {
            () = stop.cancelled() => return,
            accepted = listener.accept() => accepted,
        };
        let stream = match accepted {
            Ok((stream, _)) => stream,
            Err(error) => {
                tracing::debug!(%error, "metrics accept failed");
                // Out of fds or similar: do not spin.
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        let Ok(permit) = Arc::clone(&slots).try_acquire_owned() else {
            continue; // too many scrapes at once: close this one
        };
        let render = Arc::clone(&render);
        tokio::spawn(async move {
            let _ = tokio::time::timeout(REQUEST_TIMEOUT, exchange(stream, render)).await;
            drop(permit);
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn render() -> Render {
        Arc::new(|| "m 1\n".to_owned())
    }

    #[test]
    fn routes() {
        let r = route(b"GET /metrics HTTP/1.1\r\nHost: x", &render());
        assert_eq!(
            (r.status, r.body.as_str(), r.send_body),
            ("200 OK", "m 1\n", true)
        );
        let r = route(b"GET /metrics?x=1 HTTP/1.0", &render());
        assert_eq!(r.status, "200 OK");
        let r = route(b"HEAD /metrics HTTP/1.1", &render());
        assert_eq!((r.status, r.send_body), ("200 OK", false));
        assert_eq!(route(b"GET / HTTP/1.1", &render()).status, "404 Not Found");
        let r = route(b"POST /metrics HTTP/1.1", &render());
        assert_eq!(
            (r.status, r.extra),
            ("405 Method Not Allowed", "Allow: GET, HEAD\r\n")
        );
        assert_eq!(route(b"garbage", &render()).status, "400 Bad Request");
        assert_eq!(
            route(b"GET /metrics SPDY/3", &render()).status,
            "400 Bad Request"
        );
    }

    #[tokio::test]
    async fn serves_over_tcp_and_bounds_requests() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let stop = CancellationToken::new();
        tokio::spawn(serve(listener, render(), stop.clone()));
        let ask = |req: Vec<u8>| async move {
            let mut s = TcpStream::connect(addr).await.unwrap();
            let _ = s.write_all(&req).await;
            let mut out = String::new();
            let _ = s.read_to_string(&mut out).await;
            out
        };
        let ok = ask(b"GET /metrics HTTP/1.1\r\nHost: a\r\n\r\n".to_vec()).await;
        assert!(ok.starts_with("HTTP/1.1 200 OK\r\n"), "{ok}");
        assert!(ok.contains("Content-Length: 4\r\n") && ok.ends_with("\r\n\r\nm 1\n"));
        let big = ask(vec![b'a'; MAX_REQUEST + 10]).await;
        assert!(big.starts_with("HTTP/1.1 400"), "{big}");
        stop.cancel();
    }
}
