//! The console against a real PgBouncer: where Debian's `pgbouncer` package is installed (1.18 on
//! bookworm), every SHOW of pgsluice with `admin_compat_version` set to that version must send
//! the same RowDescription (names and type OIDs) and, for the row-shaped commands (LISTS,
//! TOTALS, STATE), the same row names. Skipped with a message where no PgBouncer is installed.
//!
//! A raw protocol client is used so type OIDs can be compared (tokio-postgres's simple query
//! API hides them, and the console refuses the extended protocol).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::harness::files::TempDir;
use crate::harness::pooler::{Pooler, db_line, free_port};
use crate::harness::postgres::PgCluster;
use crate::harness::tools::required;

const PGBOUNCER: &str = "/usr/sbin/pgbouncer";

/// One result set as seen on the wire.
#[derive(Debug, Default, PartialEq, Eq)]
struct Described {
    columns: Vec<(String, u32)>,
    first_cells: Vec<String>,
}

fn message(stream: &mut TcpStream) -> (u8, Vec<u8>) {
    let mut header = [0u8; 5];
    stream.read_exact(&mut header).unwrap();
    let len = u32::from_be_bytes([header[1], header[2], header[3], header[4]]) as usize;
    let mut body = vec![0u8; len - 4];
    stream.read_exact(&mut body).unwrap();
    (header[0], body)
}

fn cstr(body: &[u8], at: &mut usize) -> String {
    let end = *at + body[*at..].iter().position(|&b| b == 0).unwrap();
    let s = String::from_utf8_lossy(&body[*at..end]).into_owned();
    *at = end + 1;
    s
}

/// Logs in (no password: `auth_type = any`) and runs each query, describing its result.
fn describe(port: u16, user: &str, queries: &[&str]) -> Vec<Result<Described, String>> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut startup = Vec::new();
    startup.extend_from_slice(&196_608u32.to_be_bytes());
    for s in ["user", user, "database", "pgbouncer", ""] {
        startup.extend_from_slice(s.as_bytes());
        startup.push(0);
    }
    let mut packet = u32::try_from(startup.len() + 4)
        .unwrap()
        .to_be_bytes()
        .to_vec();
    packet.extend(startup);
    stream.write_all(&packet).unwrap();
    loop {
        let (tag, body) = message(&mut stream);
        assert_ne!(
            tag,
            b'E',
            "login refused: {}",
            String::from_utf8_lossy(&body)
        );
        if tag == b'Z' {
            break;
        }
    }
    let mut results = Vec::new();
    for q in queries {
        let mut body = q.as_bytes().to_vec();
        body.push(0);
        let mut msg = vec![b'Q'];
        msg.extend(u32::try_from(body.len() + 4).unwrap().to_be_bytes());
        msg.extend(body);
        stream.write_all(&msg).unwrap();
        let mut result = Ok(Described::default());
        loop {
            let (tag, body) = message(&mut stream);
            match tag {
                b'T' => {
                    let mut at = 2;
                    let n = u16::from_be_bytes([body[0], body[1]]);
                    let columns = (0..n)
                        .map(|_| {
                            let name = cstr(&body, &mut at);
                            let oid = u32::from_be_bytes(body[at + 6..at + 10].try_into().unwrap());
                            at += 18;
                            (name, oid)
                        })
                        .collect();
                    if let Ok(d) = &mut result {
                        d.columns = columns;
                    }
                }
                b'D' => {
                    let len = i32::from_be_bytes(body[2..6].try_into().unwrap());
                    let first = usize::try_from(len)
                        .map(|l| String::from_utf8_lossy(&body[6..6 + l]).into_owned())
                        .unwrap_or_default();
                    if let Ok(d) = &mut result {
                        d.first_cells.push(first);
                    }
                }
                b'E' => result = Err(String::from_utf8_lossy(&body).into_owned()),
                b'Z' => break,
                _ => {}
            }
        }
        results.push(result);
    }
    results
}

struct RealBouncer {
    child: Child,
    port: u16,
    _dir: TempDir,
}

impl Drop for RealBouncer {
    fn drop(&mut self) {
        // Our own child, by PID.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_pgbouncer(databases: &str, settings: &str) -> RealBouncer {
    let dir = TempDir::new("pgbouncer-real");
    let port = free_port();
    let auth = dir.write("userlist.txt", "\"admin\" \"x\"\n");
    let ini = format!(
        "[databases]\n{databases}\n[pgbouncer]\nlisten_addr = 127.0.0.1\nlisten_port = {port}\nunix_socket_dir =\nauth_file = {}\n{settings}\n",
        auth.display()
    );
    let path = dir.write("pgbouncer.ini", &ini);
    // PgBouncer refuses to run as root; the harness cluster's `postgres` user can read /tmp.
    let _ = Command::new("chmod")
        .args(["-R", "a+rX"])
        .arg(dir.path())
        .status();
    let mut cmd = Command::new(PGBOUNCER);
    if nix::unistd::getuid().is_root() {
        cmd.args(["-u", "postgres"]);
    }
    let child = cmd
        .arg(&path)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    for _ in 0..100 {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    RealBouncer {
        child,
        port,
        _dir: dir,
    }
}

fn installed_version() -> Option<String> {
    if !Path::new(PGBOUNCER).exists() {
        return None;
    }
    let out = Command::new(PGBOUNCER).arg("--version").output().ok()?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let first = text.lines().next()?.strip_prefix("PgBouncer ")?.to_owned();
    let mut parts = first.split('.');
    Some(format!("{}.{}", parts.next()?, parts.next()?))
}

const QUERIES: &[&str] = &[
    "SHOW POOLS",
    "SHOW CLIENTS",
    "SHOW SERVERS",
    "SHOW STATS",
    "SHOW STATS_TOTALS",
    "SHOW STATS_AVERAGES",
    "SHOW TOTALS",
    "SHOW DATABASES",
    "SHOW USERS",
    "SHOW LISTS",
    "SHOW CONFIG",
    "SHOW VERSION",
    "SHOW MEM",
    "SHOW DNS_HOSTS",
    "SHOW DNS_ZONES",
    "SHOW STATE",
    "SHOW PEERS",
    "SHOW PEER_POOLS",
    "SHOW client_encoding",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PgBouncer (scripts/test.sh installs and runs it)"]
async fn result_sets_match_the_installed_pgbouncer_needs_pgbouncer() {
    let version = required(
        "PgBouncer (the Debian package pgbouncer), to compare with",
        installed_version().ok_or_else(|| format!("no PgBouncer at {PGBOUNCER}")),
    );
    let db = PgCluster::shared().create_database("admreal");
    let databases = db_line("app", &db, "");
    let settings = "auth_type = any\nadmin_users = admin\n";
    let real = start_pgbouncer(&databases, settings);
    let pooler = Pooler::start(
        &databases,
        &format!("{settings}\n[pgsluice]\nadmin_compat_version = {version}"),
        "\"admin\" \"x\"\n",
    );
    let port = pooler.port;
    let (theirs, ours) = tokio::task::spawn_blocking(move || {
        (
            describe(real.port, "admin", QUERIES),
            describe(port, "admin", QUERIES),
        )
    })
    .await
    .unwrap();
    let compared = theirs
        .iter()
        .zip(&ours)
        .filter(|(t, o)| t.is_ok() && o.is_ok())
        .count();
    assert!(
        compared >= 15,
        "too few result sets compared: {theirs:?} / {ours:?}"
    );
    for ((q, t), o) in QUERIES.iter().zip(&theirs).zip(&ours) {
        match (t, o) {
            (Ok(t), Ok(o)) => {
                assert_eq!(
                    o.columns, t.columns,
                    "{q}: columns and type OIDs vs PgBouncer {version}"
                );
                if ["SHOW LISTS", "SHOW TOTALS", "SHOW STATE"].contains(q) {
                    assert_eq!(o.first_cells, t.first_cells, "{q}: row names");
                }
            }
            (Err(_), Err(_)) => {}
            _ => panic!("{q}: PgBouncer {version} said {t:?}, pgsluice said {o:?}"),
        }
    }
    pooler.stop().await;
}
