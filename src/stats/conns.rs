//! The connection directory: one small record per logged-in client and per open server, for
//! SHOW CLIENTS, SHOW SERVERS, KILL_CLIENT and the per-database/per-user connection counts.
//!
//! Owns: [`ConnDirectory`] (a sharded `id → Arc<ConnInfo>` map) and [`ConnInfo`] (atomics for
//! what changes: state, link, request time, wait start, close_needed; a mutex only for the
//! addresses a server learns once after connecting). A record is in the map exactly as long as
//! its [`ConnEntry`] lives; dropping the entry removes it, so a record cannot outlive its
//! connection.
//!
//! Does not: decide states (the pool and the client task report them), render anything, or
//! signal a connection beyond raising its kill token (the client task watches it).
//!
//! Invariants: updated at login, checkout, release and logout, never per message; a shard lock is
//! held only for an insert, a remove or a copy of the `Arc`s, never across an `.await`. Times are
//! wall-clock microseconds since the Unix epoch (what SHOW prints), 0 meaning "not set". The one
//! non-std piece is tokio-util's `CancellationToken` for the kill signal; the only crate-internal
//! use is the string table of [`super::intern`], itself layer 0. Strings that many connections
//! share (`application_name`, TLS summary, addresses) are shared copies from that table, so an
//! idle client's record holds no string of its own for them.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU8, AtomicU32, AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use parking_lot::Mutex;
use tokio_util::sync::CancellationToken;

use super::intern::{empty_str, intern_str};

const SHARDS: usize = 16;

/// Which side of the pooler a connection is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// A client of the pooler (including admin console sessions).
    Client,
    /// A connection to a PostgreSQL server.
    Server,
}

/// The state SHOW CLIENTS / SHOW SERVERS prints, in PgBouncer's vocabulary.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum ConnState {
    /// Client logged in, no server and nothing pending (`idle` since 1.25, `active` before).
    ClientIdle = 0,
    /// Client linked to a server.
    ClientActive = 1,
    /// Client waiting for a server.
    ClientWaiting = 2,
    /// Server logging in (`new`).
    ServerLogin = 3,
    /// Server unused and ready (`idle`, or `used` once past `server_check_delay`).
    ServerIdle = 4,
    /// Server linked to a client.
    ServerActive = 5,
    /// Server running the check, reset or rollback query (`tested`).
    ServerTested = 6,
}

impl ConnState {
    fn from_u8(v: u8) -> ConnState {
        match v {
            1 => ConnState::ClientActive,
            2 => ConnState::ClientWaiting,
            3 => ConnState::ServerLogin,
            4 => ConnState::ServerIdle,
            5 => ConnState::ServerActive,
            6 => ConnState::ServerTested,
            _ => ConnState::ClientIdle,
        }
    }
}

/// Why a connection was asked to close (KILL, KILL_CLIENT).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum KillReason {
    /// Not killed.
    None = 0,
    /// KILL of its database: PgBouncer says "database removed".
    DatabaseKilled = 1,
    /// KILL_CLIENT: "admin forced disconnect".
    AdminForced = 2,
}

impl KillReason {
    /// PgBouncer's text for the error sent to the client.
    pub fn text(self) -> &'static str {
        match self {
            KillReason::None => "",
            KillReason::DatabaseKilled => "database removed",
            KillReason::AdminForced => "admin forced disconnect",
        }
    }
}

/// Network endpoints of a connection, learned once.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Endpoints {
    /// Peer address (`unix` for a unix socket).
    pub addr: String,
    /// Peer port.
    pub port: u16,
    /// Local address.
    pub local_addr: String,
    /// Local port.
    pub local_port: u16,
}

/// [`Endpoints`] as a record keeps them: the addresses are shared strings (most clients come
/// from a few addresses, and the local one is the listener's), formatted back on request.
#[derive(Debug)]
struct SharedEndpoints {
    addr: Arc<str>,
    port: u16,
    local_addr: Arc<str>,
    local_port: u16,
}

impl SharedEndpoints {
    fn empty() -> SharedEndpoints {
        SharedEndpoints {
            addr: empty_str(),
            port: 0,
            local_addr: empty_str(),
            local_port: 0,
        }
    }
}

/// Wall-clock microseconds since the Unix epoch.
pub fn now_micros() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
}

/// One connection as the admin console shows it.
#[derive(Debug)]
pub struct ConnInfo {
    /// Process-wide unique id (SHOW CLIENTS/SERVERS `id`, the KILL_CLIENT argument).
    pub id: u64,
    /// Client or server.
    pub side: Side,
    /// Database name (as clients use it).
    pub database: String,
    /// User name (the login user for clients, the server login user for servers).
    pub user: String,
    /// The pool's user, for counting per pool (equal to `user` except with a forced user).
    pub pool_user: String,
    /// SHOW CLIENTS/SERVERS `replication`: `none`, `logical` or `physical`.
    pub replication: &'static str,
    /// Shared strings (`stats::intern`): clients of one application hold one copy.
    application_name: Mutex<Arc<str>>,
    /// The TLS summary (`TLSv1.3/TLS_AES_256_GCM_SHA384/ECDH=X25519`), empty for plain text.
    tls: Mutex<Arc<str>>,
    /// When the connection was made (µs since the epoch).
    pub connect_time: u64,
    endpoints: Mutex<SharedEndpoints>,
    state: AtomicU8,
    request_time: AtomicU64,
    wait_start: AtomicU64,
    idle_since: AtomicU64,
    link: AtomicU64,
    remote_pid: AtomicI32,
    close_needed: AtomicBool,
    prepared: AtomicU32,
    kill_reason: AtomicU8,
    kill: CancellationToken,
    stop_when_idle: CancellationToken,
}

impl ConnInfo {
    /// A new record; times start now.
    pub fn new(
        id: u64,
        side: Side,
        database: &str,
        user: &str,
        pool_user: &str,
        state: ConnState,
    ) -> ConnInfo {
        let now = now_micros();
        ConnInfo {
            id,
            side,
            database: database.to_owned(),
            user: user.to_owned(),
            pool_user: pool_user.to_owned(),
            replication: "none",
            application_name: Mutex::new(empty_str()),
            tls: Mutex::new(empty_str()),
            connect_time: now,
            endpoints: Mutex::new(SharedEndpoints::empty()),
            state: AtomicU8::new(state as u8),
            request_time: AtomicU64::new(now),
            wait_start: AtomicU64::new(0),
            idle_since: AtomicU64::new(now),
            link: AtomicU64::new(0),
            remote_pid: AtomicI32::new(0),
            close_needed: AtomicBool::new(false),
            prepared: AtomicU32::new(0),
            kill_reason: AtomicU8::new(KillReason::None as u8),
            kill: CancellationToken::new(),
            stop_when_idle: CancellationToken::new(),
        }
    }

    /// Ties a client's kill signals to the pooler's shutdown stages: its kill token also fires
    /// when everything must close (`immediate`), its idle-stop token also when clients are to
    /// leave at their next idle moment (`drain`). A client task then waits on one token of its
    /// own instead of also on the global ones, whose shared wait lists every client would lock
    /// on every wake-up.
    #[must_use]
    pub fn with_shutdown(
        mut self,
        immediate: &CancellationToken,
        drain: &CancellationToken,
    ) -> ConnInfo {
        self.kill = immediate.child_token();
        self.stop_when_idle = drain.child_token();
        self
    }

    /// Marks a replication connection (`logical` or `physical`, before registration).
    #[must_use]
    pub fn with_replication(mut self, label: &'static str) -> ConnInfo {
        self.replication = label;
        self
    }

    /// Sets `application_name` (before registration).
    #[must_use]
    pub fn with_application_name(self, name: &str) -> ConnInfo {
        self.set_application_name(name);
        self
    }

    /// Updates a client's `application_name` (it may change with SET); looks up the shared
    /// copy only when it changed.
    pub fn set_application_name(&self, name: &str) {
        if **self.application_name.lock() != *name {
            let shared = shared_or_empty(name);
            *self.application_name.lock() = shared;
        }
    }

    /// A client's `application_name` (empty when none).
    pub fn application_name(&self) -> String {
        self.application_name.lock().to_string()
    }

    /// Sets the TLS summary (SHOW CLIENTS/SERVERS `tls`).
    pub fn set_tls(&self, summary: &str) {
        let shared = shared_or_empty(summary);
        *self.tls.lock() = shared;
    }

    /// The TLS summary, empty for a plain-text connection.
    pub fn tls(&self) -> String {
        self.tls.lock().to_string()
    }

    /// Sets the endpoints (before registration, or once a server has connected).
    #[allow(
        clippy::needless_pass_by_value,
        reason = "callers build the value for this call; the signature predates shared strings"
    )]
    pub fn set_endpoints(&self, endpoints: Endpoints) {
        let shared = SharedEndpoints {
            addr: shared_or_empty(&endpoints.addr),
            port: endpoints.port,
            local_addr: shared_or_empty(&endpoints.local_addr),
            local_port: endpoints.local_port,
        };
        *self.endpoints.lock() = shared;
    }

    /// The endpoints.
    pub fn endpoints(&self) -> Endpoints {
        let e = self.endpoints.lock();
        Endpoints {
            addr: e.addr.to_string(),
            port: e.port,
            local_addr: e.local_addr.to_string(),
            local_port: e.local_port,
        }
    }

    /// The state now.
    pub fn state(&self) -> ConnState {
        ConnState::from_u8(self.state.load(Ordering::Relaxed))
    }

    /// Changes the state; entering `ClientWaiting` starts the wait clock, entering a linked or
    /// waiting state stamps `request_time`, entering `ServerIdle` stamps the idle clock.
    pub fn set_state(&self, state: ConnState) {
        let now = now_micros();
        match state {
            ConnState::ClientWaiting => {
                self.wait_start.store(now, Ordering::Relaxed);
                self.request_time.store(now, Ordering::Relaxed);
            }
            ConnState::ClientActive | ConnState::ServerActive => {
                self.wait_start.store(0, Ordering::Relaxed);
                self.request_time.store(now, Ordering::Relaxed);
            }
            ConnState::ServerIdle => {
                self.idle_since.store(now, Ordering::Relaxed);
                self.link.store(0, Ordering::Relaxed);
            }
            ConnState::ClientIdle => {
                self.wait_start.store(0, Ordering::Relaxed);
                self.link.store(0, Ordering::Relaxed);
            }
            ConnState::ServerLogin | ConnState::ServerTested => {
                self.link.store(0, Ordering::Relaxed);
            }
        }
        self.state.store(state as u8, Ordering::Relaxed);
    }

    /// Stamps `request_time` without changing the state (a console command).
    pub fn touch(&self) {
        self.request_time.store(now_micros(), Ordering::Relaxed);
    }

    /// Links to the connection on the other side (0 = none).
    pub fn set_link(&self, other: u64) {
        self.link.store(other, Ordering::Relaxed);
    }

    /// The linked connection's id (0 = none).
    pub fn link(&self) -> u64 {
        self.link.load(Ordering::Relaxed)
    }

    /// When the latest request started (µs since the epoch).
    pub fn request_time(&self) -> u64 {
        self.request_time.load(Ordering::Relaxed)
    }

    /// When the current wait for a server started (0 = not waiting).
    pub fn wait_start(&self) -> u64 {
        self.wait_start.load(Ordering::Relaxed)
    }

    /// When a server last became idle.
    pub fn idle_since(&self) -> u64 {
        self.idle_since.load(Ordering::Relaxed)
    }

    /// Sets the peer process id (a server's backend pid).
    pub fn set_remote_pid(&self, pid: i32) {
        self.remote_pid.store(pid, Ordering::Relaxed);
    }

    /// The peer process id (0 = unknown).
    pub fn remote_pid(&self) -> i32 {
        self.remote_pid.load(Ordering::Relaxed)
    }

    /// Sets the number of prepared statements (a client's names, or those on a server).
    pub fn set_prepared(&self, count: usize) {
        self.prepared
            .store(u32::try_from(count).unwrap_or(u32::MAX), Ordering::Relaxed);
    }

    /// The number of prepared statements last reported.
    pub fn prepared(&self) -> u32 {
        self.prepared.load(Ordering::Relaxed)
    }

    /// Marks a server to be closed instead of reused (RECONNECT).
    pub fn set_close_needed(&self) {
        self.close_needed.store(true, Ordering::Relaxed);
    }

    /// Whether the server will be closed when released.
    pub fn close_needed(&self) -> bool {
        self.close_needed.load(Ordering::Relaxed)
    }

    /// Asks the connection's task to disconnect it.
    pub fn kill(&self, reason: KillReason) {
        self.kill_reason.store(reason as u8, Ordering::Relaxed);
        self.kill.cancel();
        self.stop_when_idle.cancel();
    }

    /// Why the connection was killed.
    pub fn kill_reason(&self) -> KillReason {
        match self.kill_reason.load(Ordering::Relaxed) {
            1 => KillReason::DatabaseKilled,
            2 => KillReason::AdminForced,
            _ => KillReason::None,
        }
    }

    /// The token a client task selects on to notice a kill (and, for clients registered
    /// `with_shutdown`, an immediate shutdown).
    pub fn kill_token(&self) -> &CancellationToken {
        &self.kill
    }

    /// The token an idle client waits on: a kill, or (`with_shutdown`) a drain.
    pub fn idle_stop_token(&self) -> &CancellationToken {
        &self.stop_when_idle
    }
}

/// The shared copy of a string; the empty string needs no table lookup.
fn shared_or_empty(value: &str) -> Arc<str> {
    if value.is_empty() {
        empty_str()
    } else {
        intern_str(value)
    }
}

/// Every registered connection.
#[derive(Debug)]
pub struct ConnDirectory {
    shards: Vec<Mutex<HashMap<u64, Arc<ConnInfo>>>>,
}

impl Default for ConnDirectory {
    fn default() -> Self {
        ConnDirectory {
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
        }
    }
}

/// A registered record; the record leaves the directory when this is dropped.
#[derive(Debug)]
pub struct ConnEntry {
    directory: Arc<ConnDirectory>,
    info: Arc<ConnInfo>,
}

impl ConnEntry {
    /// The record.
    pub fn info(&self) -> &Arc<ConnInfo> {
        &self.info
    }
}

impl std::ops::Deref for ConnEntry {
    type Target = ConnInfo;
    fn deref(&self) -> &ConnInfo {
        &self.info
    }
}

impl Drop for ConnEntry {
    fn drop(&mut self) {
        self.directory
            .shard(self.info.id)
            .lock()
            .remove(&self.info.id);
    }
}

impl ConnDirectory {
    fn shard(&self, id: u64) -> &Mutex<HashMap<u64, Arc<ConnInfo>>> {
        let index = usize::try_from(id % SHARDS as u64).unwrap_or(0);
        &self.shards[index]
    }

    /// Adds a record; it stays until the returned entry is dropped.
    pub fn register(self: &Arc<Self>, info: ConnInfo) -> ConnEntry {
        let info = Arc::new(info);
        self.shard(info.id)
            .lock()
            .insert(info.id, Arc::clone(&info));
        ConnEntry {
            directory: Arc::clone(self),
            info,
        }
    }

    /// The record with this id.
    pub fn get(&self, id: u64) -> Option<Arc<ConnInfo>> {
        self.shard(id).lock().get(&id).cloned()
    }

    /// Every record, ordered by id (the order connections were made).
    pub fn all(&self) -> Vec<Arc<ConnInfo>> {
        let mut out: Vec<Arc<ConnInfo>> = Vec::new();
        for shard in &self.shards {
            out.extend(shard.lock().values().cloned());
        }
        out.sort_by_key(|c| c.id);
        out
    }

    /// Number of records on one side.
    pub fn count(&self, side: Side) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().values().filter(|c| c.side == side).count())
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_leave_when_dropped() {
        let dir = Arc::new(ConnDirectory::default());
        let a = dir.register(ConnInfo::new(
            7,
            Side::Client,
            "db",
            "u",
            "u",
            ConnState::ClientIdle,
        ));
        let b = dir.register(ConnInfo::new(
            3,
            Side::Server,
            "db",
            "u",
            "u",
            ConnState::ServerLogin,
        ));
        assert_eq!(
            dir.all().iter().map(|c| c.id).collect::<Vec<_>>(),
            vec![3, 7]
        );
        assert_eq!(dir.count(Side::Client), 1);
        drop(a);
        assert!(dir.get(7).is_none());
        assert_eq!(dir.get(3).map(|c| c.id), Some(3));
        drop(b);
        assert!(dir.all().is_empty());
    }

    #[test]
    fn states_stamp_times_and_links() {
        let info = ConnInfo::new(1, Side::Client, "db", "u", "u", ConnState::ClientIdle);
        info.set_state(ConnState::ClientWaiting);
        assert!(info.wait_start() > 0);
        info.set_state(ConnState::ClientActive);
        info.set_link(9);
        assert_eq!((info.wait_start(), info.link()), (0, 9));
        info.set_state(ConnState::ClientIdle);
        assert_eq!(info.link(), 0);
        info.kill(KillReason::AdminForced);
        assert!(info.kill_token().is_cancelled());
        assert_eq!(info.kill_reason().text(), "admin forced disconnect");
    }

    #[test]
    fn names_and_addresses_round_trip_and_are_shared() {
        let a = ConnInfo::new(1, Side::Client, "db", "u", "u", ConnState::ClientIdle)
            .with_application_name("billing");
        let b = ConnInfo::new(2, Side::Client, "db", "u", "u", ConnState::ClientIdle)
            .with_application_name("billing");
        assert!(Arc::ptr_eq(
            &a.application_name.lock(),
            &b.application_name.lock()
        ));
        let endpoints = Endpoints {
            addr: "::1".into(),
            port: 5000,
            local_addr: "127.0.0.1".into(),
            local_port: 6432,
        };
        a.set_endpoints(endpoints.clone());
        b.set_endpoints(endpoints.clone());
        assert_eq!(a.endpoints(), endpoints);
        assert!(Arc::ptr_eq(
            &a.endpoints.lock().addr,
            &b.endpoints.lock().addr
        ));
        a.set_application_name("");
        assert_eq!(a.application_name(), "");
        assert_eq!(b.application_name(), "billing");
        assert_eq!(a.tls(), "");
        a.set_tls("TLSv1.3/TLS_AES_256_GCM_SHA384/ECDH=X25519");
        assert_eq!(a.tls(), "TLSv1.3/TLS_AES_256_GCM_SHA384/ECDH=X25519");
    }
}
