//! Cancel requests. Every client gets a random pooler-issued (pid, key); the client's slot points
//! at the server it holds right now, and only that server's real key is ever sent onward.

use std::collections::HashMap;
use std::sync::Arc;

use bytes::BytesMut;
use parking_lot::Mutex;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpStream, UnixStream};

use crate::protocol::frontend;
use crate::server::{CancelTarget, ServerAddr};

type Slot = Arc<Mutex<Option<Arc<CancelTarget>>>>;

/// Registered clients by their pooler-issued key.
#[derive(Debug, Default)]
pub struct CancelMap {
    clients: Mutex<HashMap<(i32, i32), Slot>>,
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

impl CancelMap {
    /// Registers a client under fresh random keys.
    pub fn register(self: &Arc<Self>) -> CancelRegistration {
        let slot: Slot = Arc::default();
        let mut clients = self.clients.lock();
        loop {
            // Keys are random, so a cancel for another client's session cannot be guessed from ours.
            let pid = rand::random::<i32>() & 0x7fff_ffff;
            let key = rand::random::<i32>();
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

    /// The server a cancel with these keys should reach, if that client holds one now.
    pub fn target(&self, pid: i32, key: i32) -> Option<Arc<CancelTarget>> {
        let slot = self.clients.lock().get(&(pid, key)).cloned()?;
        slot.lock().clone()
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
    /// Points the client's cancel at a server (or at nothing when it releases one).
    pub fn set_target(&self, target: Option<Arc<CancelTarget>>) {
        *self.slot.lock() = target;
    }
}

impl Drop for CancelRegistration {
    fn drop(&mut self) {
        self.map.clients.lock().remove(&(self.pid, self.key));
    }
}

/// Sends a CancelRequest to the server behind `target` on a new connection.
pub async fn send_cancel(target: &CancelTarget) -> std::io::Result<()> {
    let mut packet = BytesMut::with_capacity(16);
    frontend::cancel_request(&mut packet, target.pid, target.key);
    match &target.addr {
        ServerAddr::Tcp(host, port) => {
            let mut s = TcpStream::connect((host.as_str(), *port)).await?;
            s.write_all(&packet).await?;
            s.shutdown().await
        }
        ServerAddr::Unix(path) => {
            let mut s = UnixStream::connect(path).await?;
            s.write_all(&packet).await?;
            s.shutdown().await
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_registered_keys_resolve() {
        let map = Arc::new(CancelMap::default());
        let reg = map.register();
        let target = Arc::new(CancelTarget {
            addr: ServerAddr::Tcp("127.0.0.1".into(), 5432),
            pid: 1,
            key: 2,
        });
        assert_eq!(map.target(reg.pid, reg.key), None);
        reg.set_target(Some(target.clone()));
        assert_eq!(map.target(reg.pid, reg.key), Some(target));
        assert_eq!(map.target(reg.pid, reg.key ^ 1), None);
        drop(reg);
        assert!(map.is_empty());
    }
}
