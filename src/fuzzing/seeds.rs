//! Valid inputs for every target (the mutations start from these) and the words the mutator
//! splices in. The corpus files under `fuzz/seeds/` are written from here (see fuzz/README.md).

use bytes::{BufMut, BytesMut};

use super::{CLIENT_NONCE, SERVER_NONCE, scram_fixture};
use crate::auth::{ScramClient, ScramServer};
use crate::config::Secret;
use crate::protocol::backend::{self, Severity};
use crate::protocol::frontend;

/// One tagged message.
fn msg(tag: u8, body: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    out.extend_from_slice(&u32::try_from(body.len() + 4).unwrap_or(0).to_be_bytes());
    out.extend_from_slice(body);
    out
}

/// The messages of a real SCRAM exchange with the fixture secret and the fixed nonces:
/// client-first, server-first, client-final, server-final.
pub fn scram_exchange() -> [Vec<u8>; 4] {
    let (secret, _) = scram_fixture();
    let mut client = ScramClient::with_password("fuzz password");
    let first = client.client_first_with_nonce("", CLIENT_NONCE);
    let Ok(mut server) = ScramServer::new(&Secret::Scram(secret.clone()), "fuzz") else {
        return Default::default();
    };
    let server_first = server
        .client_first_with_nonce(&first, SERVER_NONCE)
        .unwrap_or_default();
    let client_final = client.server_first(&server_first).unwrap_or_default();
    let server_final = server.client_final(&client_final).unwrap_or_default();
    [first, server_first, client_final, server_final]
}

fn joined(parts: &[&[u8]]) -> Vec<u8> {
    parts.join(&0u8)
}

fn startup_seeds() -> Vec<Vec<u8>> {
    let mut startup = BytesMut::new();
    frontend::startup_message(
        &mut startup,
        [
            ("user", "app"),
            ("database", "db"),
            ("application_name", "psql"),
            ("options", "-c search_path=a,b --datestyle=ISO,\\ DMY"),
        ],
    );
    let mut ssl = BytesMut::new();
    frontend::ssl_request(&mut ssl);
    let mut cancel = BytesMut::new();
    frontend::cancel_request(&mut cancel, 1234, -5678);
    let gss = [0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x30];
    let mut sasl = BytesMut::new();
    frontend::sasl_initial_response(&mut sasl, "SCRAM-SHA-256", &scram_exchange()[0]);
    vec![
        startup.to_vec(),
        ssl.to_vec(),
        cancel.to_vec(),
        gss.to_vec(),
        sasl[5..].to_vec(),
        b"secret password\0".to_vec(),
    ]
}

fn backend_stream() -> Vec<u8> {
    let mut buf = BytesMut::new();
    backend::parameter_status(&mut buf, "TimeZone", "UTC");
    backend::backend_key_data(&mut buf, 42, -7);
    backend::command_complete(&mut buf, "SELECT 1");
    backend::data_row(&mut buf, [Some("hello"), None, Some("")]);
    buf.put_slice(&msg(b'1', b""));
    backend::notice_response(&mut buf, "01000", "note", Some("detail"));
    backend::ready_for_query(&mut buf, crate::protocol::TxStatus::Idle);
    buf.to_vec()
}

fn backend_seeds() -> Vec<Vec<u8>> {
    let [_, server_first, _, server_final] = scram_exchange();
    let mut sasl = BytesMut::new();
    backend::auth_sasl(&mut sasl, &["SCRAM-SHA-256"]);
    backend::auth_sasl_continue(&mut sasl, &server_first);
    backend::auth_sasl_final(&mut sasl, &server_final);
    backend::auth_ok(&mut sasl);
    sasl.put_slice(&backend_stream());
    let mut md5 = BytesMut::new();
    backend::auth_md5(&mut md5, [1, 2, 3, 4]);
    backend::auth_cleartext(&mut md5);
    backend::error_response(
        &mut md5,
        Severity::Fatal,
        "28P01",
        "password authentication failed",
    );
    let mut row = BytesMut::new();
    row.put_slice(&msg(b'R', &[0, 0, 0, 7]));
    backend::data_row(&mut row, [Some("SCRAM-SHA-256$4096:c2FsdA==$a:b"), None]);
    vec![sasl.to_vec(), md5.to_vec(), row.to_vec()]
}

fn scan_seeds() -> Vec<Vec<u8>> {
    let mut a = vec![0x01, 0x00, b'S', 3];
    a.extend_from_slice(&backend_stream());
    let mut b = vec![0x00, 0x40, b'D', 40];
    b.extend_from_slice(&backend_stream());
    vec![a, b]
}

fn parse_msg(name: &str, sql: &str) -> Vec<u8> {
    msg(
        b'P',
        &[name.as_bytes(), b"\0", sql.as_bytes(), b"\0\0\0"].concat(),
    )
}

/// Records for the `rewrite` target: direction byte, length byte, bytes.
fn records(out: &mut Vec<u8>, dir: u8, stream: &[u8]) {
    for chunk in stream.chunks(200) {
        out.push(dir);
        out.push(u8::try_from(chunk.len()).unwrap_or(0));
        out.extend_from_slice(chunk);
    }
}

fn rewrite_seeds() -> Vec<Vec<u8>> {
    let bind = |name: &str| msg(b'B', &[b"\0", name.as_bytes(), b"\0\0\0\0\0\0\0"].concat());
    let describe = |name: &str| msg(b'D', &[b"S", name.as_bytes(), b"\0"].concat());
    let close = |name: &str| msg(b'C', &[b"S", name.as_bytes(), b"\0"].concat());
    let sync = msg(b'S', b"");
    let execute = msg(b'E', b"\0\0\0\0\0");
    let ready = msg(b'Z', b"I");
    let ok = |tag: u8| msg(tag, b"");
    let complete = |tag: &str| msg(b'C', &[tag.as_bytes(), b"\0"].concat());
    let mut a = vec![1];
    records(
        &mut a,
        0,
        &[
            parse_msg("s0", "select 1"),
            bind("s0"),
            describe("s0"),
            execute.clone(),
            sync.clone(),
        ]
        .concat(),
    );
    records(
        &mut a,
        1,
        &[
            ok(b'1'),
            ok(b'2'),
            ok(b'n'),
            complete("SELECT 1"),
            ready.clone(),
        ]
        .concat(),
    );
    records(
        &mut a,
        0,
        &[
            parse_msg("s1", "select 2"),
            bind("s1"),
            close("s0"),
            sync.clone(),
        ]
        .concat(),
    );
    records(
        &mut a,
        1,
        &[ok(b'3'), ok(b'1'), ok(b'1'), ok(b'2'), ready.clone()].concat(),
    );
    records(&mut a, 0, &msg(b'Q', b"DEALLOCATE s1\0"));
    records(
        &mut a,
        1,
        &[complete("PREPARE"), complete("DEALLOCATE"), ready.clone()].concat(),
    );
    let mut b = vec![0];
    records(
        &mut b,
        0,
        &[
            describe(""),
            parse_msg("x", "select 3"),
            sync.clone(),
            msg(b'Q', b"DISCARD ALL\0"),
        ]
        .concat(),
    );
    let error = msg(b'E', b"SERROR\0C26000\0Mnope\0\0");
    records(
        &mut b,
        1,
        &[error, ready.clone(), complete("DISCARD ALL"), ready].concat(),
    );
    vec![a, b]
}

fn scram_seeds(server_side: bool) -> Vec<Vec<u8>> {
    let [first, server_first, client_final, server_final] = scram_exchange();
    if server_side {
        vec![
            joined(&[&first, &client_final]),
            joined(&[b"y,,n=user,r=abc,x=ext", b"c=eSws,r=abc,p=AAAA"]),
        ]
    } else {
        vec![
            joined(&[&server_first, &server_final]),
            joined(&[&server_first, b"e=invalid-proof"]),
        ]
    }
}

fn text_seeds(target: &str) -> Vec<&'static str> {
    match target {
        "console" => vec![
            "SHOW POOLS;",
            "show help; SHOW \"databases\"",
            "SET default_pool_size = 10",
            "set server_reset_query TO 'DISCARD ALL; select ''x'''",
            "KILL db; RESUME",
            "SHOW STATS_TOTALS ; reload",
        ],
        "ini" => vec![
            "[databases]\ndb = host=127.0.0.1 port=5432 dbname=app pool_size=5\n\
             \"quoted db\" = host=/var/run/postgresql user='u' password='p''w'\n* = host=localhost\n\
             [pgbouncer]\nlisten_addr = 127.0.0.1\nlisten_port = 6432\n\
             auth_type = md5 ; comment stays\nauth_file = users.txt\n\
             pool_mode = transaction\nmax_client_conn = 100\n%include a.ini\n\
             [users]\napp = pool_mode=session max_user_connections=3\n\0\
             ; included\nadmin_users = admin, root\nserver_lifetime = 3600\n%include b.ini\n\0\
             [pgsluice]\nmetrics_port = 9127\n",
            "[pgbouncer] listen_port = 5000\nunix_socket_dir =\n[peers]\n1 = host=/var/run/postgresql port=6433\n",
        ],
        "connstr" => vec![
            "host=127.0.0.1 port=5432 dbname=app user='a b' pool_size=5 pool_mode=transaction",
            "host=a,b,c load_balance_hosts=disable connect_query='select ''1''' \
             server_lifetime=60 max_db_connections=-1 application_name=x",
        ],
        "userlist" => vec![
            "\"app\" \"secret\"\n\"md5user\" \"md52d3f4c1e1d9b2ccf04b4ba40f9c2a3fb\"\n\
             ; comment\n\"scram\" \"SCRAM-SHA-256$4096:c2FsdHNhbHRzYWx0$\
             bmg+8G/ZGh4VpRwrPhKOnL9xJgRrWvzMT5nlDG5+g0g=:\
             1bNx7iBwYeFjGg0zqLvqqI5I+3lYeVnwXl9J5yX+ck0=\"\n\"q\"\"uote\" \"a\"\"b\" extra\n",
            "\"u\" \"p\"\n\"broken\n\"after\" \"x\"\n",
        ],
        "hba" => vec![
            "# comment\nlocal all all peer map=m\n\
             host all all 127.0.0.1/32 md5\nhostssl db1,db2 @a.ini 10.0.0.0 255.0.0.0 cert\n\
             hostnossl \"quoted db\" all ::1/128 scram-sha-256\n\
             host replication all all trust\nhost sameuser all 0.0.0.0/0 reject\n\0\
             alice bob\n\"carol, dave\"\n",
        ],
        "ident" => vec![
            "# MAP SYSTEM DB\nm alice bob\nm carol all\nm /re x\nn \"quoted user\" \"all\"\n\0\
             m dave erin\nm +grp x\n",
        ],
        _ => Vec::new(),
    }
}

/// The seed inputs of `target`.
pub fn seeds(target: &str) -> Vec<Vec<u8>> {
    match target {
        "startup" => startup_seeds(),
        "scan" => scan_seeds(),
        "backend" => backend_seeds(),
        "rewrite" => rewrite_seeds(),
        "scram_server" => scram_seeds(true),
        "scram_client" => scram_seeds(false),
        other => text_seeds(other)
            .into_iter()
            .map(|s| s.as_bytes().to_vec())
            .collect(),
    }
}

/// Words the mutator inserts for `target` (keywords, delimiters, numbers at edges).
pub fn dictionary(target: &str) -> &'static [&'static [u8]] {
    match target {
        "startup" => &[
            b"user\0",
            b"options\0",
            b"-c ",
            b"--",
            b"\\ ",
            b"=",
            b"\x04\xd2\x16\x2f",
        ],
        "scan" | "backend" | "rewrite" => &[
            b"\0\0\0\x04",
            b"\x7f\xff\xff\xff",
            b"\xff\xff\xff\xff",
            b"\0\0\0\x0a",
            b"SCRAM-SHA-256\0",
            b"r=",
            b",s=",
            b",i=",
            b"v=",
            b"DEALLOCATE ",
            b"DISCARD ALL\0",
            b"\0\0\x01\0",
        ],
        "scram_server" | "scram_client" => &[
            b"n,,",
            b"p=tls-server-end-point,",
            b",r=",
            b",s=",
            b",i=4096",
            b",i=0",
            b",p=",
            b"c=biws",
            b"m=ext",
            b"e=",
            b"v=",
            b"==",
        ],
        "console" => &[
            b"\"", b"'", b";", b"=", b" TO ", b"SET ", b"SHOW ", b"''", b"\"\"",
        ],
        "ini" => &[
            b"%include ",
            b"a.ini",
            b"[pgbouncer]\n",
            b"[databases]\n",
            b"[users]\n",
            b"[peers]\n",
            b" = ",
            b"\n",
            b"\0",
            b"'",
            b"\"",
            b"-1",
            b"4294967296",
        ],
        "connstr" => &[
            b"='",
            b"''",
            b" host=",
            b"port=",
            b"pool_size=",
            b"-1",
            b"99999999999",
        ],
        "userlist" => &[
            b"\"",
            b"\"\"",
            b"\n",
            b"md5",
            b"SCRAM-SHA-256$",
            b"$",
            b":",
            b"==",
        ],
        "hba" => &[
            b"host ",
            b"local ",
            b"all ",
            b"@a.ini",
            b"/32",
            b"/129",
            b"255.255.0.0",
            b"::/0",
            b" map=",
            b"\"",
            b"#",
            b"\0",
        ],
        "ident" => &[b"\"", b"all", b"/", b"+", b"\n", b"include ", b"\0"],
        _ => &[],
    }
}
