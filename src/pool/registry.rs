//! The map from (database, user) to [`Pool`], built lazily from the config as clients arrive, and
//! the shared `max_db_connections` / `max_user_connections` counters.
//!
//! On reload (no connected client or open transaction is dropped):
//! - a pool whose server is the same (address, database, user, startup parameters,
//!   `connect_query`) keeps its servers and takes the new settings, secret and limits live;
//! - a pool whose server changed is closed: its idle servers go at once, the others when their
//!   client releases them, and its clients move to the new pool at their next checkout;
//! - a pool whose database is gone is retired: its clients keep being served until they leave
//!   (new logins get `3D000`), then it closes.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use parking_lot::{Mutex, RwLock};

use super::{ConnLimit, Pool, PoolSettings};
use crate::config::{Config, DatabaseDef, Secret};
use crate::net::KeepaliveSettings;
use crate::server::{ServerAddr, ServerSpec};

/// All pools of the process.
#[derive(Debug)]
pub struct Registry {
    config: RwLock<Arc<Config>>,
    pools: Mutex<HashMap<(String, String), Arc<Pool>>>,
    db_limits: Mutex<HashMap<String, Arc<ConnLimit>>>,
    user_limits: Mutex<HashMap<String, Arc<ConnLimit>>>,
    /// Pools of databases removed by a reload that still have clients.
    retired: Mutex<Vec<Arc<Pool>>>,
    ids: Arc<AtomicU64>,
}

/// What a reload did to the pools, for the log line.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReloadSummary {
    /// Pools kept with their servers, whose settings, secret or limits changed.
    pub updated: usize,
    /// Pools closed because their server changed.
    pub replaced: usize,
    /// Pools of removed databases, kept until their clients leave.
    pub retired: usize,
}

/// Whether servers opened for `a` can serve `b`: same address, database, login and startup.
fn same_server(a: &ServerSpec, b: &ServerSpec) -> bool {
    a.addr == b.addr
        && a.dbname == b.dbname
        && a.user == b.user
        && a.startup_params == b.startup_params
        && a.connect_query == b.connect_query
}

/// Whether anything a running pool uses for new servers differs (compared by value).
fn spec_changed(a: &ServerSpec, b: &ServerSpec) -> bool {
    a.secret != b.secret
        || a.connect_timeout != b.connect_timeout
        || a.max_packet_size != b.max_packet_size
        || a.keepalive != b.keepalive
}

/// Socket options from the config.
pub fn keepalive_settings(config: &Config) -> KeepaliveSettings {
    let g = &config.general;
    KeepaliveSettings {
        enabled: g.tcp_keepalive,
        idle: g.tcp_keepidle,
        interval: g.tcp_keepintvl,
        count: g.tcp_keepcnt,
        user_timeout_ms: g.tcp_user_timeout,
        socket_buffer: g.tcp_socket_buffer,
    }
}

fn server_spec(config: &Config, db: &DatabaseDef, user: &str) -> ServerSpec {
    let secret = match (&db.user, &db.password) {
        (_, Some(password)) => Some(Secret::Plain(password.clone())),
        (Some(forced), None) => config.auth_users.get(forced).cloned(),
        (None, None) => config.auth_users.get(user).cloned(),
    };
    let startup_params = [
        ("client_encoding", &db.client_encoding),
        ("datestyle", &db.datestyle),
        ("timezone", &db.timezone),
        ("application_name", &db.application_name),
    ]
    .into_iter()
    .filter_map(|(k, v)| v.as_ref().map(|v| (k.to_owned(), v.clone())))
    .collect();
    ServerSpec {
        addr: ServerAddr::new(db.host.as_deref(), db.port),
        dbname: db.dbname.clone().unwrap_or_else(|| db.name.clone()),
        user: user.to_owned(),
        secret,
        startup_params,
        connect_query: db.connect_query.clone(),
        connect_timeout: config.general.server_connect_timeout,
        keepalive: keepalive_settings(config),
        max_packet_size: usize::try_from(config.general.max_packet_size).unwrap_or(usize::MAX),
    }
}

fn limit(map: &Mutex<HashMap<String, Arc<ConnLimit>>>, name: &str, max: u32) -> Arc<ConnLimit> {
    let max = usize::try_from(max).unwrap_or(usize::MAX);
    let mut map = map.lock();
    let entry = map
        .entry(name.to_owned())
        .or_insert_with(|| Arc::new(ConnLimit::new(max)));
    entry.set_max(max);
    Arc::clone(entry)
}

impl Registry {
    /// A registry for `config`, with no pools yet.
    pub fn new(config: Arc<Config>) -> Self {
        Self {
            config: RwLock::new(config),
            pools: Mutex::new(HashMap::new()),
            db_limits: Mutex::new(HashMap::new()),
            user_limits: Mutex::new(HashMap::new()),
            retired: Mutex::new(Vec::new()),
            ids: Arc::new(AtomicU64::new(1)),
        }
    }

    /// The config in effect.
    pub fn config(&self) -> Arc<Config> {
        Arc::clone(&self.config.read())
    }

    /// The process-wide id counter for connections (SHOW CLIENTS/SERVERS `id`).
    pub fn ids(&self) -> &Arc<AtomicU64> {
        &self.ids
    }

    /// The `[databases]` entry for a name, or the `*` fallback adapted to it.
    pub fn database(&self, name: &str) -> Option<DatabaseDef> {
        self.config.read().database(name)
    }

    /// The pool a client of `db` logging in as `client_user` uses (created on first use).
    pub fn pool_for(&self, db: &DatabaseDef, client_user: &str) -> Arc<Pool> {
        let user = db.user.as_deref().unwrap_or(client_user);
        let key = (db.name.clone(), user.to_owned());
        let mut pools = self.pools.lock();
        if let Some(pool) = pools.get(&key) {
            return Arc::clone(pool);
        }
        let config = self.config();
        let pool = Arc::new(self.build_pool(&config, db, user));
        pools.insert(key, Arc::clone(&pool));
        pool
    }

    fn build_pool(&self, config: &Config, db: &DatabaseDef, user: &str) -> Pool {
        let (db_limit, user_limit) = self.limits(config, db, user);
        Pool::new(
            db.name.clone(),
            user.to_owned(),
            server_spec(config, db, user),
            PoolSettings::resolve(config, db, user),
            db_limit,
            user_limit,
            Arc::clone(&self.ids),
        )
    }

    /// The shared `max_db_connections` and `max_user_connections` counters of a pool, with
    /// their maximums set from `config`.
    fn limits(
        &self,
        config: &Config,
        db: &DatabaseDef,
        user: &str,
    ) -> (Arc<ConnLimit>, Arc<ConnLimit>) {
        let g = &config.general;
        let user_max = config
            .users
            .get(user)
            .and_then(|u| u.max_user_connections)
            .unwrap_or(g.max_user_connections);
        (
            limit(
                &self.db_limits,
                &db.name,
                db.max_db_connections.unwrap_or(g.max_db_connections),
            ),
            limit(&self.user_limits, user, user_max),
        )
    }

    /// Every pool, in a stable order (database, then user).
    pub fn pools(&self) -> Vec<Arc<Pool>> {
        let mut pools: Vec<Arc<Pool>> = self.pools.lock().values().cloned().collect();
        pools.sort_by(|a, b| (&a.database, &a.user).cmp(&(&b.database, &b.user)));
        pools
    }

    /// Applies a new config to the running pools (see the module doc).
    pub fn reload(&self, config: &Arc<Config>) -> ReloadSummary {
        *self.config.write() = Arc::clone(config);
        let mut summary = ReloadSummary::default();
        let mut retired = Vec::new();
        self.pools.lock().retain(|(db_name, user), pool| {
            let Some(db) = config.database(db_name) else {
                summary.retired += 1;
                retired.push(Arc::clone(pool));
                return false;
            };
            let spec = server_spec(config, &db, user);
            let running = pool.spec();
            if !same_server(&spec, &running) {
                summary.replaced += 1;
                pool.close();
                return false;
            }
            // The counters are shared by name, so this updates every pool that uses them.
            let _ = self.limits(config, &db, user);
            let settings = PoolSettings::resolve(config, &db, user);
            if settings != *pool.settings() || spec_changed(&spec, &running) {
                summary.updated += 1;
                pool.apply(settings, spec);
            }
            true
        });
        self.retired.lock().extend(retired);
        summary
    }

    /// One janitor round: maintains every pool, retired ones included, and closes retired
    /// pools whose last client has left.
    pub fn maintain(&self) {
        for pool in self.pools() {
            pool.maintain();
        }
        let retired: Vec<Arc<Pool>> = {
            let mut retired = self.retired.lock();
            retired.retain(|pool| {
                let keep = pool.client_count() > 0;
                if !keep {
                    tracing::info!(db = %pool.database, user = %pool.user, "closing the pool of a removed database: its last client left");
                    pool.close();
                }
                keep
            });
            retired.clone()
        };
        for pool in retired {
            pool.maintain();
        }
    }

    /// Closes every pool (shutdown).
    pub fn close_all(&self) {
        for pool in self.pools.lock().values() {
            pool.close();
        }
        for pool in self.retired.lock().drain(..) {
            pool.close();
        }
    }
}
