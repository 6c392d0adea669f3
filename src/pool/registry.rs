//! The map from (database, user) to [`Pool`], built lazily from the config as clients arrive, and
//! the shared `max_db_connections` / `max_user_connections` counters.
//!
//! On reload, pools whose settings or server changed are closed and replaced; clients of a
//! replaced pool move to the new one at their next checkout.

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
    ids: Arc<AtomicU64>,
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
        let g = &config.general;
        let user_max = config
            .users
            .get(user)
            .and_then(|u| u.max_user_connections)
            .unwrap_or(g.max_user_connections);
        Pool::new(
            db.name.clone(),
            user.to_owned(),
            server_spec(config, db, user),
            PoolSettings::resolve(config, db, user),
            limit(
                &self.db_limits,
                &db.name,
                db.max_db_connections.unwrap_or(g.max_db_connections),
            ),
            limit(&self.user_limits, user, user_max),
            Arc::clone(&self.ids),
        )
    }

    /// Every pool, in a stable order (database, then user).
    pub fn pools(&self) -> Vec<Arc<Pool>> {
        let mut pools: Vec<Arc<Pool>> = self.pools.lock().values().cloned().collect();
        pools.sort_by(|a, b| (&a.database, &a.user).cmp(&(&b.database, &b.user)));
        pools
    }

    /// Applies a new config: pools whose database is gone or whose settings changed are closed
    /// and dropped from the map (their clients get the new pool at the next checkout).
    pub fn reload(&self, config: &Arc<Config>) {
        *self.config.write() = Arc::clone(config);
        let mut pools = self.pools.lock();
        pools.retain(|(db_name, user), pool| {
            let keep = self.database(db_name).is_some_and(|db| {
                let rebuilt = self.build_pool(config, &db, user);
                rebuilt.settings() == pool.settings()
                    && format!("{:?}", rebuilt.spec()) == format!("{:?}", pool.spec())
            });
            if !keep {
                pool.close();
            }
            keep
        });
    }

    /// Closes every pool (shutdown).
    pub fn close_all(&self) {
        for pool in self.pools.lock().values() {
            pool.close();
        }
    }
}
