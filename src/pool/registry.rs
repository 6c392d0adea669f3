//! The map from (database, user) to [`Pool`], built lazily from the config as clients arrive, and
//! the shared `max_db_connections` / `max_user_connections` counters.
//!
//! On reload, pools whose settings or server changed are closed and replaced; clients of a
//! replaced pool move to the new one at their next checkout.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use parking_lot::{Mutex, RwLock};

use super::control::FlagMap;
use super::{ConnLimit, LoginPolicy, Pool, PoolControl, PoolSettings};
use crate::config::{Config, DatabaseDef, Secret};
use crate::net::KeepaliveSettings;
use crate::server::{ServerAddr, ServerSpec};
use crate::stats::conns::ConnDirectory;

/// All pools of the process.
#[derive(Debug)]
pub struct Registry {
    config: RwLock<Arc<Config>>,
    policy: RwLock<LoginPolicy>,
    auth_cache: super::auth_cache::AuthCache,
    pools: Mutex<HashMap<(String, String), Arc<Pool>>>,
    db_limits: Mutex<HashMap<String, Arc<ConnLimit>>>,
    user_limits: Mutex<HashMap<String, Arc<ConnLimit>>>,
    ids: Arc<AtomicU64>,
    pub(super) flags: FlagMap,
    pub(super) conns: Arc<ConnDirectory>,
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

fn server_spec(config: &Config, policy: &LoginPolicy, db: &DatabaseDef, user: &str) -> ServerSpec {
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
        tls: policy.tls.server.clone(),
        learned: Arc::default(),
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
    /// A registry for `config` without TLS or HBA rules (tests), with no pools yet.
    pub fn new(config: Arc<Config>) -> Self {
        Self::with_policy(config, LoginPolicy::default())
    }

    /// A registry for `config` and the TLS/HBA `policy` loaded from it, with no pools yet.
    pub fn with_policy(config: Arc<Config>, policy: LoginPolicy) -> Self {
        Self {
            config: RwLock::new(config),
            policy: RwLock::new(policy),
            auth_cache: super::auth_cache::AuthCache::default(),
            pools: Mutex::new(HashMap::new()),
            db_limits: Mutex::new(HashMap::new()),
            user_limits: Mutex::new(HashMap::new()),
            ids: Arc::new(AtomicU64::new(1)),
            flags: FlagMap::default(),
            conns: Arc::new(ConnDirectory::default()),
        }
    }

    /// The directory of logged-in clients and open servers (SHOW CLIENTS / SERVERS).
    pub fn conns(&self) -> &Arc<ConnDirectory> {
        &self.conns
    }

    /// Server connections open for database `db` (SHOW DATABASES `current_connections`).
    pub fn db_connections(&self, db: &str) -> usize {
        self.db_limits.lock().get(db).map_or(0, |l| l.current())
    }

    /// Server connections open for user `user` (SHOW USERS `current_connections`).
    pub fn user_connections(&self, user: &str) -> usize {
        self.user_limits.lock().get(user).map_or(0, |l| l.current())
    }

    /// The config in effect.
    pub fn config(&self) -> Arc<Config> {
        Arc::clone(&self.config.read())
    }

    /// The TLS contexts and HBA rules in effect.
    pub fn policy(&self) -> LoginPolicy {
        self.policy.read().clone()
    }

    /// Recent `auth_query` answers.
    pub fn auth_cache(&self) -> &super::auth_cache::AuthCache {
        &self.auth_cache
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
        let policy = self.policy();
        let pool = Arc::new(self.build_pool(&config, &policy, db, user));
        pools.insert(key, Arc::clone(&pool));
        pool
    }

    fn build_pool(
        &self,
        config: &Config,
        policy: &LoginPolicy,
        db: &DatabaseDef,
        user: &str,
    ) -> Pool {
        let g = &config.general;
        let user_max = config
            .users
            .get(user)
            .and_then(|u| u.max_user_connections)
            .unwrap_or(g.max_user_connections);
        Pool::new(
            db.name.clone(),
            user.to_owned(),
            server_spec(config, policy, db, user),
            PoolSettings::resolve(config, db, user),
            limit(
                &self.db_limits,
                &db.name,
                db.max_db_connections.unwrap_or(g.max_db_connections),
            ),
            limit(&self.user_limits, user, user_max),
            Arc::clone(&self.ids),
            PoolControl {
                db: self.flags.get(&db.name),
                global_pause: Arc::clone(&self.flags.global_pause),
                conns: Arc::clone(&self.conns),
            },
        )
    }

    /// Every pool, in a stable order (database, then user).
    pub fn pools(&self) -> Vec<Arc<Pool>> {
        let mut pools: Vec<Arc<Pool>> = self.pools.lock().values().cloned().collect();
        pools.sort_by(|a, b| (&a.database, &a.user).cmp(&(&b.database, &b.user)));
        pools
    }

    /// Applies a new config: the TLS and HBA files are re-read (if they cannot be loaded, the
    /// previous policy stays in force); pools whose database is gone or whose settings or server
    /// TLS changed are closed and dropped from the map (their clients get the new pool at the
    /// next checkout; servers already checked out finish their work first).
    pub fn reload(&self, config: &Arc<Config>) {
        let policy = LoginPolicy::load(config).unwrap_or_else(|e| {
            tracing::error!("{e}; keeping the previous TLS and HBA settings");
            self.policy()
        });
        *self.config.write() = Arc::clone(config);
        *self.policy.write() = policy.clone();
        self.auth_cache.clear();
        let mut pools = self.pools.lock();
        pools.retain(|(db_name, user), pool| {
            let keep = self.database(db_name).is_some_and(|db| {
                let rebuilt = self.build_pool(config, &policy, &db, user);
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
