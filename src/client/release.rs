//! The release rule: when the server a client holds is provably idle and may go back to the
//! pool, decided from message tags alone.
//!
//! Owns: the protocol position of one server as seen from the relayed stream (replies still
//! owed, extended-protocol messages not yet closed by Sync, the last ReadyForQuery status).
//! Pure: no sockets, no clock, no session; the relay feeds it tags in stream order.
//!
//! Rule: Query, FunctionCall and Sync each owe one ReadyForQuery; any other extended-protocol
//! message (Parse, Bind, Describe, Execute, Close, Flush) leaves the stream "unsynced" until the
//! next Sync; CopyData, CopyDone and CopyFail belong to a command already counted; Terminate is
//! kept from the server. The server is released on a ReadyForQuery `I` with nothing owed,
//! nothing unsynced, and the client stream at a message boundary with nothing unsent.
//!
//! COPY IN through the extended protocol: PostgreSQL ignores Sync (and Flush) while it is in
//! copy-in mode, so a Sync sent after the COPY's Execute and before its CopyDone/CopyFail is owed
//! nothing (drivers send Execute+Sync, then the data, then CopyDone+Sync). When the server says
//! CopyInResponse, those Syncs are forgotten (`on_server` returns how many, for the
//! prepared-statement pipeline), as PgBouncer clears them from its outstanding requests.

use crate::config::PoolMode;
use crate::pool::ServerState;
use crate::protocol::TxStatus;

/// What a client message means for the relay.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientStep {
    /// Relay it; the server was idle before it (a query or transaction clock may start).
    Started,
    /// Relay it.
    Continue,
    /// Terminate: the client is leaving; the server never sees it.
    Terminate,
}

/// What a ReadyForQuery means for the relay.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Keep relaying.
    Continue,
    /// The server is idle: relay this ReadyForQuery, then give the server back.
    Release,
    /// Statement mode and a transaction is open: the client gets an error in its place.
    StatementModeViolation,
}

/// The server's protocol position.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReleaseRule {
    /// ReadyForQuery messages still owed.
    pending: usize,
    /// Extended-protocol messages sent since the last Sync.
    unsynced: bool,
    /// Status of the last ReadyForQuery.
    tx_status: TxStatus,
    /// Syncs counted since the last Execute, Query or FunctionCall.
    trailing_syncs: usize,
    /// Syncs between an Execute and a CopyDone/CopyFail the server has not yet answered with
    /// CopyInResponse (a client that sent its COPY data without waiting).
    stashed_syncs: Option<usize>,
    /// The server is in copy-in mode.
    copy_in: bool,
    /// ... and the client already ended the data (CopyDone/CopyFail).
    copy_data_done: bool,
}

impl Default for ReleaseRule {
    fn default() -> Self {
        Self::new()
    }
}

impl ReleaseRule {
    /// A server just checked out: idle, nothing owed.
    pub const fn new() -> Self {
        Self {
            pending: 0,
            unsynced: false,
            tx_status: TxStatus::Idle,
            trailing_syncs: 0,
            stashed_syncs: None,
            copy_in: false,
            copy_data_done: false,
        }
    }

    /// ReadyForQuery messages still owed.
    pub fn pending(&self) -> usize {
        self.pending
    }

    /// Whether the server answered everything and the client has no command in flight but is
    /// inside a transaction (`idle_transaction_timeout` applies).
    pub fn idle_in_transaction(&self) -> bool {
        self.pending == 0 && self.tx_status != TxStatus::Idle
    }

    /// Accounts for one client message (by tag) on its way to the server.
    pub fn on_client(&mut self, tag: u8) -> ClientStep {
        match tag {
            b'S' if self.copy_in && !self.copy_data_done => {
                // Ignored by a server in copy-in mode.
                self.unsynced = false;
            }
            b'Q' | b'F' | b'S' => {
                let started = self.pending == 0;
                self.pending += 1;
                self.unsynced = false;
                if tag == b'S' {
                    self.trailing_syncs += 1;
                } else {
                    self.trailing_syncs = 0;
                }
                if started {
                    return ClientStep::Started;
                }
            }
            b'X' => return ClientStep::Terminate,
            b'd' => {}
            b'c' | b'f' => {
                if self.copy_in {
                    self.copy_data_done = true;
                } else if self.stashed_syncs.is_none() {
                    self.stashed_syncs = Some(self.trailing_syncs);
                    self.trailing_syncs = 0;
                }
            }
            b'E' => {
                self.trailing_syncs = 0;
                self.stashed_syncs = None;
                self.unsynced = true;
            }
            _ => self.unsynced = true,
        }
        ClientStep::Continue
    }

    /// Accounts for a server message other than ReadyForQuery (by tag); returns how many Syncs
    /// already sent the server will ignore (non-zero only on CopyInResponse).
    pub fn on_server(&mut self, tag: u8) -> usize {
        match tag {
            b'G' => {
                self.copy_in = true;
                self.copy_data_done = self.stashed_syncs.is_some();
                let ignored = self
                    .stashed_syncs
                    .take()
                    .unwrap_or(self.trailing_syncs)
                    .min(self.pending);
                self.pending -= ignored;
                self.trailing_syncs = 0;
                ignored
            }
            b'C' | b'E' if self.copy_in => {
                self.copy_in = false;
                self.copy_data_done = false;
                0
            }
            _ => 0,
        }
    }

    /// Accounts for a ReadyForQuery with `status` from the server.
    pub fn on_ready(
        &mut self,
        status: TxStatus,
        mode: PoolMode,
        client_at_boundary: bool,
    ) -> Verdict {
        self.pending = self.pending.saturating_sub(1);
        self.tx_status = status;
        if self.pending > 0 || self.unsynced {
            Verdict::Continue
        } else if mode == PoolMode::Statement && status != TxStatus::Idle {
            Verdict::StatementModeViolation
        } else if mode != PoolMode::Session && status == TxStatus::Idle && client_at_boundary {
            Verdict::Release
        } else {
            Verdict::Continue
        }
    }

    /// What the pool must do with the server if the relay stops now.
    pub fn state(&self, client_at_boundary: bool) -> ServerState {
        // A server in copy-in mode owes nothing once its ignored Syncs are forgotten, yet it is
        // mid-command: only CopyDone/CopyFail and its answer make it idle again.
        if self.pending > 0 || self.unsynced || self.copy_in || !client_at_boundary {
            ServerState::Unknown
        } else if self.tx_status == TxStatus::Idle {
            ServerState::Idle
        } else {
            ServerState::InTransaction
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TX: PoolMode = PoolMode::Transaction;
    const I: TxStatus = TxStatus::Idle;
    const T: TxStatus = TxStatus::InTransaction;
    const E: TxStatus = TxStatus::Failed;

    fn feed(rule: &mut ReleaseRule, tags: &[u8]) -> Vec<ClientStep> {
        tags.iter().map(|&t| rule.on_client(t)).collect()
    }

    #[test]
    fn simple_query_releases_on_idle_ready() {
        let mut r = ReleaseRule::new();
        assert_eq!(r.state(true), ServerState::Idle);
        assert_eq!(r.on_client(b'Q'), ClientStep::Started);
        assert_eq!(r.state(true), ServerState::Unknown);
        assert_eq!(r.on_ready(I, TX, true), Verdict::Release);
        assert_eq!(r.state(true), ServerState::Idle);
    }

    #[test]
    fn open_transaction_keeps_the_server_in_transaction_mode() {
        let mut r = ReleaseRule::new();
        r.on_client(b'Q');
        assert_eq!(r.on_ready(T, TX, true), Verdict::Continue);
        assert!(r.idle_in_transaction());
        assert_eq!(r.state(true), ServerState::InTransaction);
        assert_eq!(r.on_client(b'Q'), ClientStep::Started);
        assert!(!r.idle_in_transaction());
        assert_eq!(r.on_ready(E, TX, true), Verdict::Continue);
        r.on_client(b'Q');
        assert_eq!(r.on_ready(I, TX, true), Verdict::Release);
    }

    #[test]
    fn pipelined_queries_release_only_after_the_last_ready() {
        let mut r = ReleaseRule::new();
        assert_eq!(
            feed(&mut r, b"QQQ"),
            [
                ClientStep::Started,
                ClientStep::Continue,
                ClientStep::Continue
            ]
        );
        assert_eq!(r.on_ready(I, TX, true), Verdict::Continue);
        assert_eq!(r.on_ready(I, TX, true), Verdict::Continue);
        assert_eq!(r.pending(), 1);
        assert_eq!(r.on_ready(I, TX, true), Verdict::Release);
    }

    #[test]
    fn extended_protocol_needs_a_sync() {
        let mut r = ReleaseRule::new();
        feed(&mut r, b"PBDE");
        assert_eq!(r.state(true), ServerState::Unknown);
        assert_eq!(r.on_client(b'S'), ClientStep::Started);
        assert_eq!(r.on_ready(I, TX, true), Verdict::Release);
        // Without a Sync (Flush only) nothing is released even if a ReadyForQuery shows up
        // from an earlier Sync.
        let mut r = ReleaseRule::new();
        feed(&mut r, b"PBES");
        feed(&mut r, b"PBEH");
        assert_eq!(r.on_ready(I, TX, true), Verdict::Continue);
        assert_eq!(r.state(true), ServerState::Unknown);
        r.on_client(b'S');
        assert_eq!(r.on_ready(I, TX, true), Verdict::Release);
    }

    #[test]
    fn errors_in_a_pipeline_still_end_with_one_ready_per_sync() {
        // Parse/Bind/Execute/Sync three times; the first Execute fails: the server skips to
        // the first Sync, answers it with ReadyForQuery, then runs the other two.
        let mut r = ReleaseRule::new();
        feed(&mut r, b"PBESPBESPBES");
        assert_eq!(r.pending(), 3);
        assert_eq!(r.on_ready(I, TX, true), Verdict::Continue);
        assert_eq!(r.on_ready(I, TX, true), Verdict::Continue);
        assert_eq!(r.on_ready(I, TX, true), Verdict::Release);
        // An error inside an explicit transaction leaves it failed (E): kept.
        let mut r = ReleaseRule::new();
        feed(&mut r, b"Q");
        assert_eq!(r.on_ready(E, TX, true), Verdict::Continue);
        assert_eq!(r.state(true), ServerState::InTransaction);
    }

    #[test]
    fn copy_in_out_and_both() {
        // COPY FROM STDIN: the Query is owed one ReadyForQuery; CopyData/CopyDone are its.
        let mut r = ReleaseRule::new();
        feed(&mut r, b"Qdddc");
        assert_eq!(r.pending(), 1);
        assert_eq!(r.on_ready(I, TX, true), Verdict::Release);
        // CopyFail ends it the same way.
        let mut r = ReleaseRule::new();
        feed(&mut r, b"Qdf");
        assert_eq!(r.on_ready(I, TX, true), Verdict::Release);
        // COPY TO STDOUT: the client sends nothing more.
        let mut r = ReleaseRule::new();
        r.on_client(b'Q');
        assert_eq!(r.on_ready(I, TX, true), Verdict::Release);
        // CopyBoth (replication, session mode): never released by a ReadyForQuery.
        let mut r = ReleaseRule::new();
        feed(&mut r, b"Qddd");
        assert_eq!(r.on_ready(I, PoolMode::Session, true), Verdict::Continue);
        // COPY through the extended protocol: Sync owes the ReadyForQuery.
        let mut r = ReleaseRule::new();
        feed(&mut r, b"PBESddc");
        assert_eq!(r.on_ready(I, TX, true), Verdict::Release);
    }

    #[test]
    fn syncs_during_extended_copy_in_are_owed_nothing() {
        // tokio-postgres: Bind, Execute, Sync; CopyInResponse; data; CopyDone, Sync.
        let mut r = ReleaseRule::new();
        feed(&mut r, b"BES");
        assert_eq!(r.pending(), 1);
        assert_eq!(r.on_server(b'2'), 0);
        assert_eq!(r.on_server(b'G'), 1);
        assert_eq!(r.pending(), 0);
        // Nothing is owed, but a client that vanishes now leaves a server mid-COPY.
        assert_eq!(r.state(true), ServerState::Unknown);
        feed(&mut r, b"dd");
        assert_eq!(r.state(true), ServerState::Unknown);
        feed(&mut r, b"SdcS");
        assert_eq!(r.pending(), 1);
        assert_eq!(r.on_server(b'C'), 0);
        assert_eq!(r.on_ready(I, TX, true), Verdict::Release);
        // A client that sends everything before the server answers.
        let mut r = ReleaseRule::new();
        feed(&mut r, b"BESddcS");
        assert_eq!(r.pending(), 2);
        assert_eq!(r.on_server(b'G'), 1);
        r.on_server(b'C');
        assert_eq!(r.on_ready(I, TX, true), Verdict::Release);
        // Simple-query COPY: the Query is still owed its ReadyForQuery.
        let mut r = ReleaseRule::new();
        feed(&mut r, b"Q");
        assert_eq!(r.on_server(b'G'), 0);
        feed(&mut r, b"dc");
        r.on_server(b'C');
        assert_eq!(r.on_ready(I, TX, true), Verdict::Release);
        // The COPY fails mid-data: the server skips to the next Sync and answers it.
        let mut r = ReleaseRule::new();
        feed(&mut r, b"BES");
        r.on_server(b'G');
        feed(&mut r, b"dd");
        r.on_server(b'E');
        feed(&mut r, b"dcS");
        assert_eq!(r.on_ready(I, TX, true), Verdict::Release);
    }

    #[test]
    fn function_call_is_owed_a_ready() {
        let mut r = ReleaseRule::new();
        assert_eq!(r.on_client(b'F'), ClientStep::Started);
        assert_eq!(r.state(true), ServerState::Unknown);
        assert_eq!(r.on_ready(I, TX, true), Verdict::Release);
    }

    #[test]
    fn terminate_mid_transaction() {
        let mut r = ReleaseRule::new();
        r.on_client(b'Q');
        r.on_ready(T, TX, true);
        assert_eq!(r.on_client(b'X'), ClientStep::Terminate);
        // The pool rolls it back before reuse.
        assert_eq!(r.state(true), ServerState::InTransaction);
        // Terminate with a query still running: the server is not reusable.
        let mut r = ReleaseRule::new();
        r.on_client(b'Q');
        assert_eq!(r.on_client(b'X'), ClientStep::Terminate);
        assert_eq!(r.state(true), ServerState::Unknown);
    }

    #[test]
    fn partial_client_message_blocks_release() {
        let mut r = ReleaseRule::new();
        r.on_client(b'Q');
        assert_eq!(r.on_ready(I, TX, false), Verdict::Continue);
        assert_eq!(r.state(false), ServerState::Unknown);
        assert_eq!(r.state(true), ServerState::Idle);
    }

    #[test]
    fn pool_modes() {
        let mut r = ReleaseRule::new();
        r.on_client(b'Q');
        assert_eq!(r.on_ready(I, PoolMode::Session, true), Verdict::Continue);
        r.on_client(b'Q');
        assert_eq!(
            r.on_ready(T, PoolMode::Statement, true),
            Verdict::StatementModeViolation
        );
        let mut r = ReleaseRule::new();
        r.on_client(b'Q');
        assert_eq!(r.on_ready(I, PoolMode::Statement, true), Verdict::Release);
    }
}
