//! Who authenticates a user, and where: `auth_query` run at every login (no reuse of an old
//! answer), `auth_dbname` globally, per database and on the auto-database, the auth database's
//! own checks (not configured, disabled, the reserved console), the console reached through
//! `auth_query`, `[users]` entries without a password, the CVE-2025-12819 rule that a client's
//! startup parameters never reach the `auth_query` server, and HBA `map=` with
//! `auth_ident_file` for `peer` (unix socket) and `cert`.

use tokio_postgres::{Client, NoTls};

use crate::harness::certs::TestCa;
use crate::harness::files::{TempDir, userlist};
use crate::harness::pooler::{Pooler, db_line, first_value, free_port, sqlstate};
use crate::harness::postgres::{PgCluster, password};
use crate::harness::tools::psql_conninfo;

const SECRETS_QUERY: &str = "SELECT usename, passwd FROM auth_secrets WHERE usename = $1";

/// The server's (or pooler's) message of a failed call.
fn message(e: &tokio_postgres::Error) -> String {
    e.as_db_error()
        .map_or_else(|| e.to_string(), |d| d.message().to_owned())
}

/// A table `auth_secrets(usename, passwd)` in `db` holding md5_user's real md5 secret; tests
/// change its rows instead of the shared cluster's roles.
fn secrets_table(pg: &PgCluster, db: &str) {
    let secret = pg.md5_secret("md5_user");
    pg.superuser_exec(
        db,
        &[
            "CREATE TABLE auth_secrets(usename text, passwd text)",
            &format!("INSERT INTO auth_secrets VALUES ('md5_user', '{secret}')"),
        ],
    );
}

async fn current_user(client: &Client) -> Option<String> {
    first_value(client, "select current_user").await.unwrap()
}

/// `auth_query` runs at each login, in the global `auth_dbname`; the console's stats user is
/// found the same way; the auth database must be configured, enabled and not the console.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth_query_runs_in_auth_dbname_at_every_login() {
    let pg = PgCluster::shared();
    let db = pg.create_database("authdbname");
    secrets_table(pg, &db);
    let dbs = format!(
        "{}{}{}{}",
        db_line("app", &db, ""),
        db_line("authdb", &db, ""),
        db_line("elsewhere", &db, "auth_dbname=nowhere"),
        db_line("reserved", &db, "auth_dbname=pgbouncer"),
    );
    let settings = format!(
        "auth_type = md5\nauth_user = postgres\nauth_dbname = authdb\nauth_query = {SECRETS_QUERY}\n\
         admin_users = trust_user\nstats_users = md5_user"
    );
    let users = userlist(&[("postgres", ""), ("trust_user", "trust_user_pw")]);
    let pooler = Pooler::start(&dbs, &settings, &users);
    let pw = password("md5_user");
    let client = pooler.connect("md5_user", &pw, "app").await.unwrap();
    assert_eq!(current_user(&client).await.as_deref(), Some("md5_user"));

    // A changed answer counts at the very next login: nothing is reused.
    pg.superuser_exec(&db, &["UPDATE auth_secrets SET passwd = NULL"]);
    let err = pooler.connect("md5_user", &pw, "app").await.unwrap_err();
    assert_eq!(sqlstate(&err).as_deref(), Some("28P01"), "{err:?}");
    let secret = pg.md5_secret("md5_user");
    pg.superuser_exec(
        &db,
        &[&format!("UPDATE auth_secrets SET passwd = '{secret}'")],
    );
    pooler.connect("md5_user", &pw, "app").await.unwrap();
    let ghost = pooler.connect("ghost", "x", "app").await.unwrap_err();
    assert_eq!(message(&ghost), "no such user");

    // The console: md5_user is in stats_users, and its secret comes from auth_query.
    let console = pooler.connect("md5_user", &pw, "pgbouncer").await.unwrap();
    console.simple_query("SHOW VERSION").await.unwrap();

    for dbname in ["elsewhere", "reserved"] {
        let err = pooler.connect("md5_user", &pw, dbname).await.unwrap_err();
        assert_eq!(message(&err), "bouncer config error", "{dbname}");
        assert_eq!(sqlstate(&err).as_deref(), Some("08P01"));
    }

    let admin = pooler
        .connect("trust_user", &password("trust_user"), "pgbouncer")
        .await
        .unwrap();
    admin.simple_query("DISABLE authdb").await.unwrap();
    let err = pooler.connect("md5_user", &pw, "app").await.unwrap_err();
    assert_eq!(
        message(&err),
        "authentication database \"authdb\" is disabled"
    );
    // A user of auth_file needs no auth database.
    let listed = pooler
        .connect("trust_user", &password("trust_user"), "app")
        .await
        .unwrap();
    assert_eq!(current_user(&listed).await.as_deref(), Some("trust_user"));
    admin.simple_query("ENABLE authdb").await.unwrap();
    pooler.connect("md5_user", &pw, "app").await.unwrap();
    pooler.stop().await;
}

/// Without `auth_dbname` the console has no database to run `auth_query` in.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_auth_query_needs_auth_dbname() {
    let pg = PgCluster::shared();
    let db = pg.create_database("consoleauth");
    secrets_table(pg, &db);
    let settings = format!(
        "auth_type = md5\nauth_user = postgres\nauth_query = {SECRETS_QUERY}\nstats_users = md5_user"
    );
    let pooler = Pooler::start(
        &db_line("app", &db, ""),
        &settings,
        &userlist(&[("postgres", "")]),
    );
    let pw = password("md5_user");
    // Per database, the client's own database is the auth database.
    pooler.connect("md5_user", &pw, "app").await.unwrap();
    let err = pooler
        .connect("md5_user", &pw, "pgbouncer")
        .await
        .unwrap_err();
    assert_eq!(message(&err), "bouncer config error");
    pooler.stop().await;
}

/// The auto-database's `auth_dbname` applies to every database it creates: the secrets table
/// exists only in the auth database, not in the one the client asks for.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auto_database_auth_dbname() {
    let pg = PgCluster::shared();
    let auth = pg.create_database("autoauth");
    let target = pg.create_database("autotarget");
    secrets_table(pg, &auth);
    let dbs = format!(
        "{}* = host={} port={} auth_dbname=authdb\n",
        db_line("authdb", &auth, ""),
        pg.host(),
        pg.port()
    );
    let settings = format!("auth_type = md5\nauth_user = postgres\nauth_query = {SECRETS_QUERY}");
    let pooler = Pooler::start(&dbs, &settings, &userlist(&[("postgres", "")]));
    let client = pooler
        .connect("md5_user", &password("md5_user"), &target)
        .await
        .unwrap();
    assert_eq!(
        first_value(&client, "select current_database()")
            .await
            .unwrap(),
        Some(target)
    );
    pooler.stop().await;
}

/// A `[users]` entry gives no password: its user still goes through `auth_query`, and gets the
/// entry's pool mode; statement mode refuses a transaction with PgBouncer's 08P01 disconnect.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_section_entry_logs_in_through_auth_query() {
    let pg = PgCluster::shared();
    let db = pg.create_database("usersaq");
    secrets_table(pg, &db);
    let dbs = format!(
        "{}\n[users]\nmd5_user = pool_mode=statement\n",
        db_line("app", &db, "")
    );
    let settings = format!(
        "auth_type = md5\nauth_user = postgres\nauth_query = {SECRETS_QUERY}\npool_mode = session"
    );
    let pooler = Pooler::start(&dbs, &settings, &userlist(&[("postgres", "")]));
    let client = pooler
        .connect("md5_user", &password("md5_user"), "app")
        .await
        .unwrap();
    assert_eq!(current_user(&client).await.as_deref(), Some("md5_user"));
    let err = client.batch_execute("begin").await.unwrap_err();
    assert_eq!(
        message(&err),
        "transaction blocks not allowed in statement pooling mode"
    );
    assert_eq!(sqlstate(&err).as_deref(), Some("08P01"));
    pooler.stop().await;
}

/// CVE-2025-12819: the server that runs `auth_query` never gets the unauthenticated client's
/// startup parameters; the client's own server does once it is in.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth_query_server_gets_no_client_parameters() {
    let pg = PgCluster::shared();
    let db = pg.create_database("aqnoset");
    secrets_table(pg, &db);
    pg.superuser_exec(
        &db,
        &[
            "CREATE FUNCTION guarded_lookup(name text) RETURNS TABLE(usename text, passwd text) \
           LANGUAGE plpgsql AS $$ BEGIN \
             IF current_setting('application_name') = 'intruder' \
                OR current_setting('TimeZone') = 'Asia/Kathmandu' THEN \
               RAISE EXCEPTION 'client parameters reached the auth_query server'; \
             END IF; \
             RETURN QUERY SELECT s.usename, s.passwd FROM auth_secrets s WHERE s.usename = name; \
           END $$",
        ],
    );
    let settings =
        "auth_type = md5\nauth_user = postgres\nauth_query = SELECT * FROM guarded_lookup($1)";
    let pooler = Pooler::start(
        &db_line("app", &db, ""),
        settings,
        &userlist(&[("postgres", "")]),
    );
    let conn = format!(
        "{} application_name=intruder options='-c TimeZone=Asia/Kathmandu'",
        pooler.conn_string("md5_user", &password("md5_user"), "app")
    );
    // Whether `options` is accepted or refused, it must not reach the auth_query server.
    let with_options = tokio_postgres::connect(&conn, NoTls).await;
    if let Err(e) = &with_options {
        assert!(!message(e).contains("auth_query"), "{e:?}");
    }
    let plain = format!(
        "{} application_name=intruder",
        pooler.conn_string("md5_user", &password("md5_user"), "app")
    );
    let (client, connection) = tokio_postgres::connect(&plain, NoTls).await.unwrap();
    tokio::spawn(connection);
    assert_eq!(
        first_value(&client, "show application_name")
            .await
            .unwrap()
            .as_deref(),
        Some("intruder")
    );
    pooler.stop().await;
}

/// The OS user of this test process, as the pooler sees a unix-socket peer.
fn os_user() -> String {
    nix::unistd::User::from_uid(nix::unistd::geteuid())
        .unwrap()
        .expect("the test user has a passwd entry")
        .name
}

async fn connect_unix(
    dir: &std::path::Path,
    port: u16,
    user: &str,
) -> Result<Client, tokio_postgres::Error> {
    let conn = format!(
        "host={} port={port} user={user} dbname=app connect_timeout=10",
        dir.display()
    );
    let (client, connection) = tokio_postgres::connect(&conn, NoTls).await?;
    tokio::spawn(connection);
    Ok(client)
}

/// `peer` with `map=`: the map decides which database users the socket's OS user may be; a
/// reload re-reads the map; an HBA rule naming an unknown map is refused as a whole file.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peer_auth_through_an_ident_map() {
    let pg = PgCluster::shared();
    let db = pg.create_database("peermap");
    let me = os_user();
    let sock = TempDir::new("peer-sock");
    let port = free_port();
    let files = TempDir::new("peer-map");
    let ident = files.write(
        "ident.conf",
        &format!("# OS user to roles\nm {me} trust_user\n"),
    );
    let hba = files.write("hba.conf", "local all all peer map=m\n");
    let settings = format!(
        "listen_port = {port}\nunix_socket_dir = {}\nauth_type = hba\nauth_hba_file = {}\n\
         auth_ident_file = {}",
        sock.path().display(),
        hba.display(),
        ident.display()
    );
    let users = userlist(&[
        ("trust_user", "trust_user_pw"),
        ("md5_user", &pg.md5_secret("md5_user")),
    ]);
    let pooler = Pooler::start(&db_line("app", &db, ""), &settings, &users);
    let client = connect_unix(sock.path(), port, "trust_user").await.unwrap();
    assert_eq!(current_user(&client).await.as_deref(), Some("trust_user"));
    let err = connect_unix(sock.path(), port, "md5_user")
        .await
        .unwrap_err();
    assert_eq!(message(&err), "unix socket login rejected");
    // Over TCP no `local` rule applies.
    let tcp = pooler
        .connect("trust_user", &password("trust_user"), "app")
        .await
        .unwrap_err();
    assert_eq!(message(&tcp), "no authentication method is found");

    files.write("ident.conf", &format!("m {me} all\n"));
    pooler.app().reload().unwrap();
    let client = connect_unix(sock.path(), port, "md5_user").await.unwrap();
    assert_eq!(current_user(&client).await.as_deref(), Some("md5_user"));

    // An unknown map makes the new HBA file unusable, so the rules in force stay.
    files.write(
        "hba.conf",
        "local all all peer map=unknown\nlocal all all trust\n",
    );
    let _ = pooler.app().reload();
    connect_unix(sock.path(), port, "md5_user").await.unwrap();
    let err = connect_unix(sock.path(), port, "ghost").await.unwrap_err();
    assert_eq!(message(&err), "unix socket login rejected");
    pooler.stop().await;
}

/// `cert` with `map=`: the certificate's name is the system user of the map.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cert_auth_through_an_ident_map() {
    let pg = PgCluster::shared();
    let db = pg.create_database("certmap");
    let ca = TestCa::new("cert-map");
    let server = ca.issue("pooler", "pgsluice", &["localhost", "127.0.0.1"]);
    let robot = ca.issue("robot", "deploy-robot", &[]);
    let files = TempDir::new("cert-map");
    let ident = files.write("ident.conf", "robots deploy-robot trust_user\n");
    let hba = files.write("hba.conf", "hostssl all all 127.0.0.1/32 cert map=robots\n");
    let settings = format!(
        "auth_type = hba\nauth_hba_file = {}\nauth_ident_file = {}\n\
         client_tls_sslmode = verify-full\nclient_tls_cert_file = {}\nclient_tls_key_file = {}\n\
         client_tls_ca_file = {}",
        hba.display(),
        ident.display(),
        server.cert.display(),
        server.key.display(),
        ca.ca_file().display()
    );
    let users = userlist(&[("trust_user", ""), ("md5_user", "")]);
    let pooler = Pooler::start(&db_line("app", &db, ""), &settings, &users);
    let conninfo = |user: &str| {
        format!(
            "host=localhost hostaddr=127.0.0.1 port={} user={user} dbname=app connect_timeout=10 \
             sslmode=verify-full sslrootcert={} sslcert={} sslkey={}",
            pooler.port,
            ca.ca_file().display(),
            robot.cert.display(),
            robot.key.display()
        )
    };
    let ok = psql_conninfo(&conninfo("trust_user"), "select current_user", &[]).await;
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&ok.stdout).trim(), "trust_user");
    let refused = psql_conninfo(&conninfo("md5_user"), "select 1", &[]).await;
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("certificate authentication failed"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
    pooler.stop().await;
}
