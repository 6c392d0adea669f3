//! Half-open connections and slowloris logins: 200 at once, of four kinds (silent after
//! connect, a startup packet trickled a byte at a time, a password challenge never answered, a
//! client that half-closes at once). Other clients log in and run queries meanwhile; every slow
//! one is closed by `client_login_timeout` (the half-closed ones at once), and the
//! `max_client_conn` slots they held are free again afterwards.

use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use super::{USER, assert_closed, start};
use crate::harness::pooler::first_value;
use crate::harness::postgres::password;
use crate::harness::raw;

const SLOW: usize = 200;

async fn slow_client(port: u16, kind: usize) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    match kind {
        // Connects and says nothing.
        0 => {}
        // Trickles a startup packet, one byte every 100 ms, until the pooler closes.
        1 => {
            let packet = raw::startup_packet(USER, "app");
            let (mut read_half, mut write_half) = s.into_split();
            let trickle = async {
                for b in packet.iter().cycle().take(1000) {
                    if write_half.write_all(&[*b]).await.is_err() {
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            };
            let closed = async {
                let mut buf = [0u8; 256];
                loop {
                    match tokio::io::AsyncReadExt::read(&mut read_half, &mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(_) => {}
                    }
                }
            };
            tokio::select! {
                () = closed => {}
                () = trickle => panic!("trickled 1000 bytes without being closed"),
            }
            return;
        }
        // A whole startup packet, then never the password.
        2 => {
            s.write_all(&raw::startup_packet(USER, "app"))
                .await
                .unwrap();
        }
        // Half-open: the client's side is closed at once.
        _ => s.shutdown().await.unwrap(),
    }
    assert_closed(&mut s).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_and_half_open_logins_are_bounded_by_client_login_timeout() {
    let pooler = start("client_login_timeout = 3\nmax_client_conn = 210");
    let port = pooler.port;
    let slow: Vec<_> = (0..SLOW)
        .map(|i| tokio::spawn(slow_client(port, i % 4)))
        .collect();
    // Meanwhile, normal clients log in and work.
    for i in 0..5 {
        let client = pooler.connect(USER, &password(USER), "app").await.unwrap();
        assert_eq!(
            first_value(&client, &format!("select {i}")).await.unwrap(),
            Some(i.to_string())
        );
    }
    for task in slow {
        tokio::time::timeout(Duration::from_secs(30), task)
            .await
            .expect("every slow client is closed by the login timeout")
            .unwrap();
    }
    // Their max_client_conn slots are free: 50 clients at once fit again.
    let clients: Vec<_> = (0..50)
        .map(|_| {
            let conn = pooler.conn_string(USER, &password(USER), "app");
            tokio::spawn(async move {
                let (client, connection) = tokio_postgres::connect(&conn, tokio_postgres::NoTls)
                    .await
                    .expect("a slot is free");
                tokio::spawn(connection);
                first_value(&client, "select 1").await.unwrap();
                client
            })
        })
        .collect();
    let mut held = Vec::new();
    for c in clients {
        held.push(c.await.unwrap());
    }
    assert_eq!(held.len(), 50);
    pooler.stop().await;
}
