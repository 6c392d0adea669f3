//! Cancel requests. Every client gets a random pooler-issued (pid, key); the client's slot points
//! at the server it holds right now, and only that server's real key is ever sent onward.
//!
//! With `peer_id` set, the key also names this process (PgBouncer's encoding: the peer id in the
//! 2nd and 3rd bytes of the 8-byte key, a 2-bit forwarding TTL in its last bits), so a cancel
//! that a load balancer sends to another process of the group is forwarded to the owner
//! ([`route`]).
//!
//! Invariant: a server is not handed to another client while a cancel aimed at its previous
//! client is in flight. A cancel holds a [`CancelTicket`] from the moment it reads the slot until
//! the server has closed the cancel connection (it has signalled the backend by then), and
//! [`CancelRegistration::detach`] empties the slot and waits for the tickets before the session
//! gives the server back. This is PgBouncer's fix for a cancel that lands on the next client's
//! query (PgBouncer PR #717).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use parking_lot::Mutex;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpStream, UnixStream};
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};

use crate::protocol::frontend;
use crate::server::{CancelTarget, ServerAddr};

/// The low bits of the key that count how many more times a cancel may be forwarded to a peer.
const TTL_MASK: i32 = 0x03;

#[derive(Debug, Default)]
struct SlotState {
    target: Option<Arc<CancelTarget>>,
    in_flight: usize,
}

#[derive(Debug, Default)]
struct SlotInner {
    state: Mutex<SlotState>,
    /// Woken when the last in-flight cancel finishes.
    idle: Notify,
}

type Slot = Arc<SlotInner>;

/// Registered clients by their pooler-issued key, and the in-flight limits of forwarding to
/// peers.
#[derive(Debug, Default)]
pub struct CancelMap {
    clients: Mutex<HashMap<(i32, i32), Slot>>,
    /// Per peer id: the `pool_size` the semaphore was made for, and the semaphore.
    peers: Mutex<HashMap<u16, (usize, Arc<Semaphore>)>>,
}

/// A client's entry; removed from the map when dropped.
#[derive(Debug)]
pub struct CancelRegistration {
    map: Arc<CancelMap>,
    /// Pooler-issued backend pid.
    pub pid: i32,
    /// Pooler-issued secret key.
    pub key: i32,
    slot: Slot,
}

/// A cancel on its way to a server; the server stays with its client until this drops.
#[derive(Debug)]
pub struct CancelTicket {
    slot: Slot,
    /// Where the cancel goes.
    pub target: Arc<CancelTarget>,
}

impl Drop for CancelTicket {
    fn drop(&mut self) {
        let mut state = self.slot.state.lock();
        state.in_flight = state.in_flight.saturating_sub(1);
        if state.in_flight == 0 {
            self.slot.idle.notify_waiters();
        }
    }
}

fn take_ticket(slot: &Slot) -> Option<CancelTicket> {
    let mut state = slot.state.lock();
    let target = state.target.clone()?;
    state.in_flight += 1;
    Some(CancelTicket {
        slot: Arc::clone(slot),
        target,
    })
}

/// A fresh random (pid, key). With a `peer_id`, PgBouncer's layout: the pid's 2nd and 3rd bytes
/// hold the peer id (low byte first) and the key's TTL bits are all set; the pid stays positive.
pub fn new_key(peer_id: u16) -> (i32, i32) {
    let mut pid = rand::random::<i32>() & 0x7fff_ffff;
    let mut key = rand::random::<i32>();
    if peer_id > 0 {
        let [high, low] = peer_id.to_be_bytes();
        pid = (pid & !0x00ff_ff00) | (i32::from(low) << 16) | (i32::from(high) << 8);
        key |= TTL_MASK;
    }
    (pid, key)
}

/// The peer id a cancel key names.
fn peer_of(pid: i32) -> u16 {
    let [_, low, high, _] = pid.to_be_bytes();
    u16::from_le_bytes([low, high])
}

/// Where a cancel request goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// One of ours: look up (pid, key).
    Local {
        /// The key as registered.
        key: i32,
    },
    /// Another process of the peer group: forward (pid, key) to that `[peers]` entry.
    Peer {
        /// The peer id.
        peer: u16,
        /// The key with its TTL counted down.
        key: i32,
    },
    /// Forwarded too often already (a loop between misconfigured peers): dropped.
    Expired,
}

/// Decides where a cancel for (pid, key) goes when this process is `own_peer_id`.
pub fn route(own_peer_id: u16, pid: i32, key: i32) -> Route {
    if own_peer_id == 0 {
        return Route::Local { key };
    }
    let peer = peer_of(pid);
    if peer == own_peer_id {
        return Route::Local {
            key: key | TTL_MASK,
        };
    }
    if key & TTL_MASK == 0 {
        return Route::Expired;
    }
    Route::Peer { peer, key: key - 1 }
}

impl CancelMap {
    /// Registers a client under fresh random keys (carrying `peer_id` when it is set).
    pub fn register(self: &Arc<Self>, peer_id: u16) -> CancelRegistration {
        let slot: Slot = Arc::default();
        let mut clients = self.clients.lock();
        loop {
            // Keys are random, so a cancel for another client's session cannot be guessed from ours.
            let (pid, key) = new_key(peer_id);
            if let std::collections::hash_map::Entry::Vacant(e) = clients.entry((pid, key)) {
                e.insert(Arc::clone(&slot));
                return CancelRegistration {
                    map: Arc::clone(self),
                    pid,
                    key,
                    slot,
                };
            }
        }
    }

    /// A ticket to cancel the server the client with these keys holds now, if it holds one.
    pub fn ticket(&self, pid: i32, key: i32) -> Option<CancelTicket> {
        let slot = self.clients.lock().get(&(pid, key)).cloned()?;
        take_ticket(&slot)
    }

    /// Waits for one of the `pool_size` forwarding slots of `peer` (PgBouncer's per-peer limit
    /// of cancels in flight); the slot is free again when the permit drops. A changed
    /// `pool_size` (RELOAD) starts a fresh count.
    pub async fn peer_slot(&self, peer: u16, pool_size: usize) -> Option<OwnedSemaphorePermit> {
        let semaphore = {
            let mut peers = self.peers.lock();
            let entry = peers
                .entry(peer)
                .or_insert_with(|| (pool_size, Arc::new(Semaphore::new(pool_size))));
            if entry.0 != pool_size {
                *entry = (pool_size, Arc::new(Semaphore::new(pool_size)));
            }
            Arc::clone(&entry.1)
        };
        semaphore.acquire_owned().await.ok()
    }

    /// Number of registered clients.
    pub fn len(&self) -> usize {
        self.clients.lock().len()
    }

    /// Whether no client is registered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl CancelRegistration {
    /// Points the client's cancel at a server.
    pub fn set_target(&self, target: Arc<CancelTarget>) {
        self.slot.state.lock().target = Some(target);
    }

    /// A ticket to cancel the client's current server (the pooler's own `query_timeout`).
    pub fn ticket(&self) -> Option<CancelTicket> {
        take_ticket(&self.slot)
    }

    /// Points the client's cancel at nothing, then waits until no cancel aimed at the server it
    /// held is in flight, so the server can go to another client.
    pub async fn detach(&self) {
        {
            // One lock in the common case: no cancel in flight, nothing to wait for.
            let mut state = self.slot.state.lock();
            state.target = None;
            if state.in_flight == 0 {
                return;
            }
        }
        loop {
            let notified = self.slot.idle.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.slot.state.lock().in_flight == 0 {
                return;
            }
            notified.await;
        }
    }
}

impl Drop for CancelRegistration {
    fn drop(&mut self) {
        self.map.clients.lock().remove(&(self.pid, self.key));
    }
}

/// Sends a CancelRequest for (pid, key) to `addr` on a new connection and waits until the other
/// side closes it (PostgreSQL closes it once the backend is signalled), at most `timeout`
/// (zero: no limit).
pub async fn send_cancel(
    addr: &ServerAddr,
    pid: i32,
    key: i32,
    timeout: Duration,
) -> std::io::Result<()> {
    let exchange = async {
        match addr {
            ServerAddr::Tcp(host, port) => {
                exchange(TcpStream::connect((host.as_str(), *port)).await?, pid, key).await
            }
            ServerAddr::Unix(path) => exchange(UnixStream::connect(path).await?, pid, key).await,
        }
    };
    if timeout.is_zero() {
        return exchange.await;
    }
    tokio::time::timeout(timeout, exchange)
        .await
        .unwrap_or_else(|_| {
            Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "cancel_wait_timeout",
            ))
        })
}

async fn exchange<S: AsyncRead + AsyncWrite + Unpin>(
    mut s: S,
    pid: i32,
    key: i32,
) -> std::io::Result<()> {
    let mut packet = BytesMut::with_capacity(16);
    frontend::cancel_request(&mut packet, pid, key);
    s.write_all(&packet).await?;
    s.flush().await?;
    // Nothing is ever sent back; EOF (or a reset) means the request was handled.
    let mut sink = [0u8; 64];
    loop {
        match s.read(&mut sink).await {
            Ok(0) | Err(_) => return Ok(()),
            Ok(_) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target() -> Arc<CancelTarget> {
        Arc::new(CancelTarget {
            addr: ServerAddr::Tcp("127.0.0.1".into(), 5432),
            pid: 1,
            key: 2,
        })
    }

    #[test]
    fn only_registered_keys_resolve() {
        let map = Arc::new(CancelMap::default());
        let reg = map.register(0);
        let target = target();
        assert!(map.ticket(reg.pid, reg.key).is_none());
        reg.set_target(Arc::clone(&target));
        let ticket = map.ticket(reg.pid, reg.key).unwrap();
        assert!(Arc::ptr_eq(&ticket.target, &target));
        assert!(map.ticket(reg.pid, reg.key ^ 1).is_none());
        drop(ticket);
        drop(reg);
        assert!(map.is_empty());
    }

    #[tokio::test]
    async fn detach_waits_for_cancels_in_flight() {
        let map = Arc::new(CancelMap::default());
        let reg = map.register(0);
        reg.set_target(target());
        let ticket = map.ticket(reg.pid, reg.key).unwrap();
        let mut detach = Box::pin(reg.detach());
        // Still in flight: the server must not go anywhere yet.
        assert!(futures_poll_once(detach.as_mut()).await.is_none());
        // No new ticket once detaching started.
        assert!(map.ticket(reg.pid, reg.key).is_none());
        drop(ticket);
        detach.await;
    }

    async fn futures_poll_once<F: Future + Unpin>(f: F) -> Option<F::Output> {
        let mut f = f;
        std::future::poll_fn(|cx| {
            std::task::Poll::Ready(match std::pin::Pin::new(&mut f).poll(cx) {
                std::task::Poll::Ready(v) => Some(v),
                std::task::Poll::Pending => None,
            })
        })
        .await
    }

    #[tokio::test]
    async fn peer_slots_cap_cancels_in_flight_per_peer() {
        let map = CancelMap::default();
        let first = map.peer_slot(2, 1).await.unwrap();
        let mut second = Box::pin(map.peer_slot(2, 1));
        assert!(futures_poll_once(second.as_mut()).await.is_none());
        // Another peer has its own slots.
        assert!(map.peer_slot(3, 1).await.is_some());
        drop(first);
        assert!(second.await.is_some());
    }

    #[test]
    fn keys_carry_the_peer_id_the_way_pgbouncer_lays_it_out() {
        for peer in [1u16, 2, 255, 256, 16383] {
            let (pid, key) = new_key(peer);
            assert!(pid >= 0);
            let bytes = pid.to_be_bytes();
            assert_eq!(u16::from(bytes[1]) + (u16::from(bytes[2]) << 8), peer);
            assert_eq!(key & TTL_MASK, TTL_MASK);
            assert_eq!(route(peer, pid, key), Route::Local { key });
        }
        let (pid, key) = new_key(0);
        assert_eq!(route(0, pid, key), Route::Local { key });
    }

    #[test]
    fn foreign_keys_go_to_their_peer_until_the_ttl_runs_out() {
        let (pid, key) = new_key(2);
        let Route::Peer { peer: 2, key: k1 } = route(1, pid, key) else {
            panic!("not forwarded");
        };
        assert_eq!(k1 & TTL_MASK, 2);
        let Route::Peer { key: k2, .. } = route(3, pid, k1) else {
            panic!("not forwarded");
        };
        let Route::Peer { key: k3, .. } = route(1, pid, k2) else {
            panic!("not forwarded");
        };
        assert_eq!(route(3, pid, k3), Route::Expired);
        // At its owner, whatever the TTL left, the key matches the registered one.
        assert_eq!(route(2, pid, k3), Route::Local { key });
    }
}
