//! pgsluice started in-process on a free port, in front of the shared test cluster.

use std::path::PathBuf;

use pgsluice::app::{self, Running};
use pgsluice::config::Config;

use super::files::TempDir;
use super::postgres::PgCluster;

/// A running pooler and the files it was configured from.
pub struct Pooler {
    /// The running app.
    pub running: Option<Running>,
    /// The TCP port it listens on.
    pub port: u16,
    /// The config directory (pgbouncer.ini, userlist.txt).
    pub dir: TempDir,
}

/// `[databases]` line for `name` pointing at the shared cluster's `dbname`, plus `extra` keys.
pub fn db_line(name: &str, dbname: &str, extra: &str) -> String {
    let pg = PgCluster::shared();
    format!(
        "{name} = host={} port={} dbname={dbname} {extra}\n",
        pg.host(),
        pg.port()
    )
}

impl Pooler {
    /// Starts a pooler. `databases` is the body of `[databases]`, `settings` extra lines of
    /// `[pgbouncer]`, `userlist` the auth_file text. Listens on 127.0.0.1 on a free port, no
    /// unix socket.
    pub fn start(databases: &str, settings: &str, userlist: &str) -> Pooler {
        let dir = TempDir::new("pgsluice-it");
        let auth_file = dir.write("userlist.txt", userlist);
        let ini = format!(
            "[databases]\n{databases}\n[pgbouncer]\nlisten_addr = 127.0.0.1\nlisten_port = 0\nunix_socket_dir =\nauth_file = {}\n{settings}\n",
            auth_file.display()
        );
        let path = dir.write("pgbouncer.ini", &ini);
        let config = Config::load(&path).unwrap_or_else(|e| panic!("config: {e}\n{ini}"));
        let running = app::start(config).expect("pooler starts");
        let port = running.addr().expect("tcp listener").port();
        Pooler {
            running: Some(running),
            port,
            dir,
        }
    }

    /// The ini file path.
    pub fn ini_path(&self) -> PathBuf {
        self.dir.join("pgbouncer.ini")
    }

    /// Rewrites pgbouncer.ini as [`Pooler::start`] wrote it, with new `databases` and
    /// `settings` (for reload tests); `userlist`, if given, replaces the auth_file.
    pub fn rewrite(&self, databases: &str, settings: &str, userlist: Option<&str>) {
        if let Some(text) = userlist {
            self.dir.write("userlist.txt", text);
        }
        let ini = format!(
            "[databases]\n{databases}\n[pgbouncer]\nlisten_addr = 127.0.0.1\nlisten_port = 0\nunix_socket_dir =\nauth_file = {}\n{settings}\n",
            self.dir.join("userlist.txt").display()
        );
        self.dir.write("pgbouncer.ini", &ini);
    }

    /// The running app.
    pub fn app(&self) -> &Running {
        self.running.as_ref().expect("pooler running")
    }

    /// A libpq-style connection string through the pooler.
    pub fn conn_string(&self, user: &str, password: &str, db: &str) -> String {
        format!(
            "host=127.0.0.1 port={} user='{user}' password='{password}' dbname='{db}' connect_timeout=10",
            self.port
        )
    }

    /// Connects with tokio-postgres; the connection task is spawned.
    pub async fn connect(
        &self,
        user: &str,
        password: &str,
        db: &str,
    ) -> Result<tokio_postgres::Client, tokio_postgres::Error> {
        connect_spawned(&self.conn_string(user, password, db).parse().unwrap()).await
    }

    /// Connects like [`Pooler::connect`], with `options` as the `options` startup parameter.
    pub async fn connect_with_options(
        &self,
        user: &str,
        password: &str,
        db: &str,
        options: &str,
    ) -> Result<tokio_postgres::Client, tokio_postgres::Error> {
        let mut config: tokio_postgres::Config =
            self.conn_string(user, password, db).parse().unwrap();
        config.options(options);
        connect_spawned(&config).await
    }

    /// Stops the pooler at once and waits for it.
    pub async fn stop(mut self) {
        if let Some(running) = self.running.take() {
            running.shutdown().immediate();
            running.wait().await;
        }
    }
}

impl Drop for Pooler {
    fn drop(&mut self) {
        if let Some(running) = &self.running {
            running.shutdown().immediate();
        }
    }
}

/// Connects with tokio-postgres (no TLS) and spawns the connection task.
pub async fn connect_spawned(
    config: &tokio_postgres::Config,
) -> Result<tokio_postgres::Client, tokio_postgres::Error> {
    let (client, connection) = config.connect(tokio_postgres::NoTls).await?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(client)
}

/// The SQLSTATE of a failed call, if the server (or pooler) sent one.
pub fn sqlstate(e: &tokio_postgres::Error) -> Option<String> {
    e.as_db_error().map(|d| d.code().code().to_owned())
}

/// A loopback TCP port that was free a moment ago (for a pooler process, or a port nothing
/// listens on). The probe socket is closed before the caller binds, so another process may
/// take the port in between; the tests that bind it retry or fail loudly.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind(("127.0.0.1", 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// The first column of the first row of a simple query.
pub async fn first_value(
    client: &tokio_postgres::Client,
    sql: &str,
) -> Result<Option<String>, tokio_postgres::Error> {
    let messages = client.simple_query(sql).await?;
    Ok(messages.iter().find_map(|m| match m {
        tokio_postgres::SimpleQueryMessage::Row(r) => r.get(0).map(str::to_owned),
        _ => None,
    }))
}

/// The pooler still serves: `user` logs in to `db` and a query answers.
pub async fn assert_serves(pooler: &Pooler, user: &str, password: &str, db: &str) {
    let client = pooler
        .connect(user, password, db)
        .await
        .expect("pooler still accepts logins");
    assert_eq!(
        first_value(&client, "select 'alive'")
            .await
            .unwrap()
            .as_deref(),
        Some("alive")
    );
}

/// Polls `check` every 50 ms until it returns true or `seconds` pass; returns the last result.
pub async fn eventually<F, Fut>(seconds: u64, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    for _ in 0..seconds * 20 {
        if check().await {
            return true;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    check().await
}

/// Server connections (backends) open to database `db` right now, from pg_stat_activity.
pub async fn backends(superuser: &tokio_postgres::Client, db: &str, state: Option<&str>) -> i64 {
    let sql = match state {
        Some(s) => format!(
            "select count(*) from pg_stat_activity where datname = '{db}' and state = '{s}'"
        ),
        None => format!(
            "select count(*) from pg_stat_activity where datname = '{db}' and backend_type = 'client backend'"
        ),
    };
    first_value(superuser, &sql)
        .await
        .ok()
        .flatten()
        .and_then(|v| v.parse().ok())
        .unwrap_or(-1)
}
