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
//! signal a connection beyond raising its stop flags and waking the one task that waits on them.
//!
//! Invariants: updated at login, checkout, release and logout, never per message; a shard lock is
//! held only for an insert, a remove or a copy of the `Arc`s, never across an `.await`. Times are
//! wall-clock microseconds since the Unix epoch (what SHOW prints), 0 meaning "not set".
//!
//! Stopping a connection (KILL, KILL_CLIENT, a drain or an immediate shutdown) is a flag in its
//! record plus the stored waker of the task serving it: no per-connection cancellation tokens,
//! and a poll of the flag is one atomic load and one uncontended lock. Shutdown stages reach
//! every record registered `with_shutdown` through [`ConnDirectory::stop_followers`]; a record
//! registered after a stage started gets that stage's flags as it is inserted. The only
//! non-std piece left is the lazily made [`ConnInfo::kill_token`], kept for code not yet moved to
//! [`ConnInfo::poll_killed`] (only this file's tests still call it); the only crate-internal use is the string table of
//! [`super::intern`], itself layer 0. Strings that many connections share (`application_name`,
//! TLS summary, addresses) are shared copies from that table, so an idle client's record holds
//! no string of its own for them.

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU8, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll, Waker};
use std::time::{SystemTime, UNIX_EPOCH};

use parking_lot::Mutex;
use tokio_util::sync::CancellationToken;

use super::intern::{empty_str, intern_str};

const SHARDS: usize = 16;

/// Stop flag: close the connection now (KILL, KILL_CLIENT, an immediate shutdown).
const STOP_KILL: u8 = 1;
/// Stop flag: close the client at its next moment without a server (a drain; a kill implies it).
const STOP_IDLE: u8 = 2;

/// A shutdown stage as it reaches the connections that follow it ([`ConnInfo::with_shutdown`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShutdownStage {
    /// Clients leave at their next moment without a server (SHUTDOWN WAIT_FOR_SERVERS, SIGINT).
    Drain,
    /// Everything closes now.
    Immediate,
}

impl ShutdownStage {
    fn flags(self) -> u8 {
        match self {
            ShutdownStage::Drain => STOP_IDLE,
            ShutdownStage::Immediate => STOP_KILL | STOP_IDLE,
        }
    }
}

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
    /// `server_fast_close`: its session's server is `close_needed` (RECONNECT, a reload that
    /// changed the server); the session ends when its current transaction does.
    ConfigChanged = 3,
}

impl KillReason {
    /// PgBouncer's text for the error sent to the client.
    pub fn text(self) -> &'static str {
        match self {
            KillReason::None => "",
            KillReason::DatabaseKilled => "database removed",
            KillReason::AdminForced => "admin forced disconnect",
            KillReason::ConfigChanged => "database configuration changed",
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
    /// `STOP_KILL` / `STOP_IDLE` bits; only ever raised.
    stop: AtomicU8,
    /// Whether shutdown stages reach this record (`with_shutdown`).
    follows_shutdown: bool,
    /// The task waiting on the stop flags (the one serving this connection).
    waker: Mutex<Option<Waker>>,
    /// Made on first use only, for callers not yet on [`ConnInfo::poll_killed`].
    legacy_kill: OnceLock<CancellationToken>,
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
            stop: AtomicU8::new(0),
            follows_shutdown: false,
            waker: Mutex::new(None),
            legacy_kill: OnceLock::new(),
        }
    }

    /// Ties a client's stop flags to the pooler's shutdown stages ([`ConnDirectory::
    /// stop_followers`]): a drain asks it to leave at its next idle moment, an immediate
    /// shutdown kills it. A client task then waits on its own record only, never on the global
    /// tokens, whose shared wait lists every client would lock on every wake-up.
    #[must_use]
    pub fn with_shutdown(mut self) -> ConnInfo {
        self.follows_shutdown = true;
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
        self.raise(STOP_KILL | STOP_IDLE);
    }

    /// Raises stop flags and wakes the waiting task.
    fn raise(&self, flags: u8) {
        let before = self.stop.fetch_or(flags, Ordering::SeqCst);
        if before | flags == before {
            return;
        }
        if flags & STOP_KILL != 0
            && let Some(token) = self.legacy_kill.get()
        {
            token.cancel();
        }
        if let Some(waker) = self.waker.lock().take() {
            waker.wake();
        }
    }

    /// Ready once any of `flags` is raised; otherwise stores the task's waker (replacing it
    /// only when it would wake another task).
    fn poll_flags(&self, flags: u8, cx: &mut Context<'_>) -> Poll<()> {
        if self.stop.load(Ordering::Acquire) & flags != 0 {
            return Poll::Ready(());
        }
        {
            let mut slot = self.waker.lock();
            match slot.as_ref() {
                Some(w) if w.will_wake(cx.waker()) => {}
                _ => *slot = Some(cx.waker().clone()),
            }
        }
        // Raised between the load and the store: the raiser may have found no waker.
        if self.stop.load(Ordering::SeqCst) & flags != 0 {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }

    /// Ready once the connection must close now: a kill, or (`with_shutdown`) an immediate
    /// shutdown. One task per connection may wait (the latest waker polled is the one woken).
    pub fn poll_killed(&self, cx: &mut Context<'_>) -> Poll<()> {
        self.poll_flags(STOP_KILL, cx)
    }

    /// Ready once the connection must close at its next moment without a server: a kill, or
    /// (`with_shutdown`) a drain or an immediate shutdown.
    pub fn poll_stop_when_idle(&self, cx: &mut Context<'_>) -> Poll<()> {
        self.poll_flags(STOP_KILL | STOP_IDLE, cx)
    }

    /// [`ConnInfo::poll_killed`] as a future.
    pub fn killed(&self) -> impl Future<Output = ()> + '_ {
        std::future::poll_fn(|cx| self.poll_killed(cx))
    }

    /// [`ConnInfo::poll_stop_when_idle`] as a future.
    pub fn stop_when_idle(&self) -> impl Future<Output = ()> + '_ {
        std::future::poll_fn(|cx| self.poll_stop_when_idle(cx))
    }

    /// Whether the connection must close now.
    pub fn is_killed(&self) -> bool {
        self.stop.load(Ordering::Acquire) & STOP_KILL != 0
    }

    /// Whether the connection must close at its next moment without a server.
    pub fn is_stopping(&self) -> bool {
        self.stop.load(Ordering::Acquire) != 0
    }

    /// Why the connection was killed.
    pub fn kill_reason(&self) -> KillReason {
        match self.kill_reason.load(Ordering::Relaxed) {
            1 => KillReason::DatabaseKilled,
            2 => KillReason::AdminForced,
            3 => KillReason::ConfigChanged,
            _ => KillReason::None,
        }
    }

    /// A token cancelled when [`ConnInfo::poll_killed`] would be ready, made on first use.
    /// Prefer `poll_killed`/`killed`: a token costs a tree node and a lock per poll.
    pub fn kill_token(&self) -> &CancellationToken {
        let token = self.legacy_kill.get_or_init(CancellationToken::new);
        // Raised before the token existed: `raise` found none to cancel.
        if self.stop.load(Ordering::SeqCst) & STOP_KILL != 0 {
            token.cancel();
        }
        token
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
    /// The stop flags of the shutdown stages started so far, for records registered later.
    shutdown: AtomicU8,
}

impl Default for ConnDirectory {
    fn default() -> Self {
        ConnDirectory {
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            shutdown: AtomicU8::new(0),
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
        let mut shard = self.shard(info.id).lock();
        shard.insert(info.id, Arc::clone(&info));
        // Under the shard lock: a stage that starts now either sees this record or was seen.
        let stage = self.shutdown.load(Ordering::SeqCst);
        if info.follows_shutdown && stage != 0 {
            info.raise(stage);
        }
        drop(shard);
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

    /// Passes a shutdown stage to every record registered `with_shutdown`, now and later.
    pub fn stop_followers(&self, stage: ShutdownStage) {
        self.shutdown.fetch_or(stage.flags(), Ordering::SeqCst);
        for shard in &self.shards {
            for info in shard.lock().values().filter(|c| c.follows_shutdown) {
                info.raise(stage.flags());
            }
        }
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
        assert!(info.is_killed() && info.is_stopping());
        assert_eq!(info.kill_reason().text(), "admin forced disconnect");
    }

    fn poll_once<F: Future>(f: F) -> Poll<F::Output> {
        let mut f = std::pin::pin!(f);
        f.as_mut().poll(&mut Context::from_waker(Waker::noop()))
    }

    /// A waker that counts its wake-ups.
    struct Count(AtomicU32);
    impl std::task::Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[test]
    fn a_kill_wakes_the_waiting_task_once_and_stays_raised() {
        let info = ConnInfo::new(1, Side::Client, "db", "u", "u", ConnState::ClientIdle);
        let count = Arc::new(Count(AtomicU32::new(0)));
        let waker = Waker::from(Arc::clone(&count));
        let mut cx = Context::from_waker(&waker);
        assert!(info.poll_killed(&mut cx).is_pending());
        assert!(info.poll_stop_when_idle(&mut cx).is_pending());
        info.kill(KillReason::DatabaseKilled);
        info.kill(KillReason::DatabaseKilled);
        assert_eq!(count.0.load(Ordering::SeqCst), 1);
        assert!(info.poll_killed(&mut cx).is_ready());
        assert!(poll_once(info.stop_when_idle()).is_ready());
    }

    #[test]
    fn shutdown_stages_reach_followers_only_including_later_ones() {
        let dir = Arc::new(ConnDirectory::default());
        let client = ConnInfo::new(1, Side::Client, "db", "u", "u", ConnState::ClientIdle);
        let client = dir.register(client.with_shutdown());
        let console = dir.register(ConnInfo::new(
            2,
            Side::Client,
            "pgbouncer",
            "u",
            "u",
            ConnState::ClientIdle,
        ));
        let token = client.kill_token().clone();
        dir.stop_followers(ShutdownStage::Drain);
        assert!(poll_once(client.stop_when_idle()).is_ready());
        assert!(poll_once(client.killed()).is_pending());
        assert!(!console.is_stopping());
        let late = ConnInfo::new(3, Side::Client, "db", "u", "u", ConnState::ClientIdle);
        let late = dir.register(late.with_shutdown());
        assert!(late.is_stopping() && !late.is_killed());
        dir.stop_followers(ShutdownStage::Immediate);
        assert!(client.is_killed() && late.is_killed() && token.is_cancelled());
        assert!(!console.is_stopping());
        // A stop leaves the reason empty: the session says why from the shutdown itself.
        assert_eq!(client.kill_reason(), KillReason::None);
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
