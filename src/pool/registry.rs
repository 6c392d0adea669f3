//! The map from (database, user) to [`Pool`], built lazily from the config as clients arrive, and
//! the shared `max_db_connections` / `max_user_connections` counters.
//!
//! On reload (no connected client or open transaction is dropped):
//! - a pool keeps its servers and takes its new settings, secret and limits live;
//! - if its server changed (address, database, login user, startup parameters,
//!   `connect_query`, server TLS), the pool takes the new spec and its servers are marked
//!   `close_needed` as RECONNECT does: idle ones close at once, busy ones when released;
//! - a pool whose database is gone (or now forces another user) is retired: its clients keep
//!   being served until they leave (new logins get `3D000`), then it closes.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use parking_lot::{Mutex, RwLock};

use super::control::FlagMap;
use super::limit::{ClientAdmission, ClientLimitHit};
use super::resize::{ReloadSummary, same_server, spec_changed};
use super::{ConnLimit, LoginPolicy, Pool, PoolControl, PoolSettings};
use crate::config::{Config, DatabaseDef, Secret};
use crate::net::KeepaliveSettings;
use crate::server::{HostRotation, ServerAddr, ServerSpec};
use crate::stats::conns::ConnDirectory;

/// All pools of the process.
#[derive(Debug)]
pub struct Registry {
    config: RwLock<Arc<Config>>,
    policy: RwLock<LoginPolicy>,
    pools: Mutex<HashMap<(String, String), Arc<Pool>>>,
    db_limits: Mutex<HashMap<String, Arc<ConnLimit>>>,
    user_limits: Mutex<HashMap<String, Arc<ConnLimit>>>,
    db_client_limits: Mutex<HashMap<String, Arc<ConnLimit>>>,
    user_client_limits: Mutex<HashMap<String, Arc<ConnLimit>>>,
    /// Pools of databases removed by a reload that still have clients.
    retired: Mutex<Vec<Arc<Pool>>>,
    /// `pool_idle_timeout`: since when each pool has had no client and no server.
    unused_since: Mutex<HashMap<(String, String), tokio::time::Instant>>,
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
        hosts: Arc::new(HostRotation::new(
            db.load_balance_hosts.as_deref() != Some("disable"),
        )),
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
            pools: Mutex::new(HashMap::new()),
            db_limits: Mutex::new(HashMap::new()),
            user_limits: Mutex::new(HashMap::new()),
            db_client_limits: Mutex::new(HashMap::new()),
            user_client_limits: Mutex::new(HashMap::new()),
            retired: Mutex::new(Vec::new()),
            unused_since: Mutex::new(HashMap::new()),
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
        // PgBouncer's line for the first use of a name the `*` entry stands in for.
        if !config.databases.iter().any(|d| d.name == db.name)
            && !pools.keys().any(|(name, _)| *name == db.name)
        {
            tracing::info!("registered new auto-database: {}", db.name);
        }
        let policy = self.policy();
        let pool = Arc::new(self.build_pool(&config, &policy, db, user));
        pool.db_limit.add_member(&pool);
        pool.user_limit.add_member(&pool);
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
        let (db_limit, user_limit) = self.limits(config, db, user);
        Pool::new(
            db.name.clone(),
            user.to_owned(),
            server_spec(config, policy, db, user),
            PoolSettings::resolve(config, db, user),
            db_limit,
            user_limit,
            Arc::clone(&self.ids),
            PoolControl {
                db: self.flags.get(&db.name),
                global_pause: Arc::clone(&self.flags.global_pause),
                conns: Arc::clone(&self.conns),
            },
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

    /// Counts a client logging in to `db` as `login_user` against `max_db_client_connections`
    /// and `max_user_client_connections` (as configured now, so a reload applies to the next
    /// login); the admission gives both back when it drops.
    pub fn admit_client(
        &self,
        db: &DatabaseDef,
        login_user: &str,
    ) -> Result<ClientAdmission, ClientLimitHit> {
        let config = self.config();
        let g = &config.general;
        let db_max = db
            .max_db_client_connections
            .unwrap_or(g.max_db_client_connections);
        let user_max = config
            .users
            .get(login_user)
            .and_then(|u| u.max_user_client_connections)
            .unwrap_or(g.max_user_client_connections);
        ClientAdmission::take(
            limit(&self.db_client_limits, &db.name, db_max),
            limit(&self.user_client_limits, login_user, user_max),
        )
    }

    /// Counts a console login as `login_user` against the client limits of the console
    /// database `db_name` (the global `max_db_client_connections`) and of the user. An
    /// `admin_users` member is counted but never refused (PgBouncer).
    pub fn admit_console_client(
        &self,
        db_name: &str,
        login_user: &str,
    ) -> Result<ClientAdmission, ClientLimitHit> {
        let config = self.config();
        let g = &config.general;
        let user_max = config
            .users
            .get(login_user)
            .and_then(|u| u.max_user_client_connections)
            .unwrap_or(g.max_user_client_connections);
        let db = limit(&self.db_client_limits, db_name, g.max_db_client_connections);
        let user = limit(&self.user_client_limits, login_user, user_max);
        if g.admin_users.iter().any(|u| u == login_user) {
            Ok(ClientAdmission::counted(db, user))
        } else {
            ClientAdmission::take(db, user)
        }
    }

    /// Every pool, in a stable order (database, then user).
    pub fn pools(&self) -> Vec<Arc<Pool>> {
        let mut pools: Vec<Arc<Pool>> = self.pools.lock().values().cloned().collect();
        pools.sort_by(|a, b| (&a.database, &a.user).cmp(&(&b.database, &b.user)));
        pools
    }

    /// Applies a new config (see the module doc): the TLS and HBA files are re-read (if they
    /// cannot be loaded, the previous policy stays in force) and every pool is updated in place
    /// or retired.
    pub fn reload(&self, config: &Arc<Config>) -> ReloadSummary {
        let policy = LoginPolicy::load(config).unwrap_or_else(|e| {
            tracing::error!("{e}; keeping the previous TLS and HBA settings");
            self.policy()
        });
        *self.config.write() = Arc::clone(config);
        *self.policy.write() = policy.clone();
        let mut summary = ReloadSummary::default();
        let mut retired = Vec::new();
        self.pools.lock().retain(|(db_name, user), pool| {
            let db = config
                .database(db_name)
                .filter(|db| db.user.as_deref().is_none_or(|forced| forced == user));
            let Some(db) = db else {
                summary.retired += 1;
                retired.push(Arc::clone(pool));
                return false;
            };
            let running = pool.spec();
            let mut spec = server_spec(config, &policy, &db, user);
            // What client logins taught the pool stays valid for the same role.
            spec.learned = Arc::clone(&running.learned);
            // The counters are shared by name, so this updates every pool that uses them.
            let _ = self.limits(config, &db, user);
            let settings = PoolSettings::resolve(config, &db, user);
            if !same_server(&spec, &running) {
                summary.reconnected += 1;
                pool.forget_login_failure();
                pool.apply(settings, spec);
                pool.reconnect_all();
            } else if settings != *pool.settings() || spec_changed(&spec, &running) {
                summary.updated += 1;
                pool.apply(settings, spec);
            }
            true
        });
        self.retired.lock().extend(retired);
        summary
    }

    /// `pool_idle_timeout` (PgBouncer 1.26): a pool that has had no client and no server for
    /// that long is freed, its statistics with it (as PgBouncer). A pool of a forced user that
    /// keeps `min_pool_size` servers is never freed: the janitor would only make it again.
    fn free_unused_pools(&self, config: &Config) {
        let timeout = config.general.pool_idle_timeout;
        let mut since = self.unused_since.lock();
        if timeout.is_zero() {
            since.clear();
            return;
        }
        let now = tokio::time::Instant::now();
        let mut freed = Vec::new();
        self.pools.lock().retain(|key, pool| {
            let kept_warm = config.databases.iter().any(|d| {
                d.name == key.0
                    && d.user.is_some()
                    && d.min_pool_size.unwrap_or(config.general.min_pool_size) > 0
            });
            if kept_warm || !pool.is_unused() {
                since.remove(key);
                return true;
            }
            let idle_for = now.duration_since(*since.entry(key.clone()).or_insert(now));
            if idle_for <= timeout {
                return true;
            }
            since.remove(key);
            freed.push((Arc::clone(pool), idle_for));
            false
        });
        drop(since);
        for (pool, idle_for) in freed {
            tracing::info!(
                "cleaning up idle pool for user {} on db {} because: pool idle timeout (age= {}s)",
                pool.user,
                pool.database,
                idle_for.as_secs()
            );
            pool.close();
        }
    }

    /// One janitor round: maintains every pool, retired ones included, and closes retired
    /// pools whose last client has left.
    pub fn maintain(&self) {
        // A database with a forced user and min_pool_size keeps its servers open before any
        // client comes (PgBouncer creates that pool in its janitor).
        let config = self.config();
        for db in config.databases.iter().filter(|d| d.user.is_some()) {
            if db.min_pool_size.unwrap_or(config.general.min_pool_size) > 0 {
                if let Some(user) = db.user.as_deref() {
                    self.pool_for(db, user);
                }
            }
        }
        for pool in self.pools() {
            pool.maintain();
        }
        if config.general.server_fast_close {
            self.fast_close_sessions();
        }
        self.free_unused_pools(&config);
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
