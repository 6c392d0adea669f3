//! SHOW CLIENTS, SHOW SERVERS, SHOW SOCKETS and SHOW ACTIVE_SOCKETS (one row shape), from the
//! connection directory.
//!
//! Owns: the 21 columns and their versions, the 7 buffer columns SOCKETS adds, state names per
//! version (`idle` clients exist since 1.25; before, they are `active`; SOCKETS names them by
//! list, `cl_active`, `sv_idle`…), and row order: per pool, clients active then waiting, servers
//! active, idle, used, tested, new; by id within a state.
//! Does not: track connections (`stats::conns` does, fed by the client task and the pool).
//! Invariants: `ptr` is the address of the connection's directory record and `link` the
//! address of the linked connection's record, so `link` of one side equals `ptr` of the other;
//! `wait` is non-zero only while a client waits for a server. pgsluice keeps no per-socket
//! buffer positions (a connection's buffer is not shared with the console), so the buffer
//! columns are 0 and ACTIVE_SOCKETS, the sockets with buffered data, lists none.

use std::sync::Arc;

use bytes::BytesMut;

use super::AdminContext;
use super::table::{Cell, Col, ResultSet, Version, int, n, s, text, timestamp, v};
use crate::stats::conns::{ConnInfo, ConnState, Side, now_micros};

const COLUMNS: &[Col] = &[
    text("type"),
    text("user"),
    text("database"),
    text("replication").since(v(1, 23)),
    text("state"),
    text("addr"),
    int("port"),
    text("local_addr"),
    int("local_port"),
    text("connect_time"),
    text("request_time"),
    int("wait").since(v(1, 8)),
    int("wait_us").since(v(1, 8)),
    int("close_needed").since(v(1, 9)),
    text("ptr"),
    text("link"),
    int("remote_pid"),
    text("tls"),
    text("application_name").since(v(1, 18)),
    int("prepared_statements").since(v(1, 21)),
    int("id").since(v(1, 24)),
];

/// SHOW SOCKETS: the same columns, then PgBouncer's buffer positions.
const SOCKET_COLUMNS: &[Col] = &[
    text("type"),
    text("user"),
    text("database"),
    text("replication").since(v(1, 23)),
    text("state"),
    text("addr"),
    int("port"),
    text("local_addr"),
    int("local_port"),
    text("connect_time"),
    text("request_time"),
    int("wait").since(v(1, 8)),
    int("wait_us").since(v(1, 8)),
    int("close_needed").since(v(1, 9)),
    text("ptr"),
    text("link"),
    int("remote_pid"),
    text("tls"),
    text("application_name").since(v(1, 18)),
    int("prepared_statements").since(v(1, 21)),
    int("id").since(v(1, 24)),
    int("recv_pos"),
    int("pkt_pos"),
    int("pkt_remain"),
    int("send_pos"),
    int("send_remain"),
    int("pkt_avail"),
    int("send_avail"),
];

fn ptr(info: &Arc<ConnInfo>) -> String {
    format!("{:p}", Arc::as_ptr(info))
}

struct Row {
    key: (String, String, u8, u64),
    cells: Vec<Cell>,
}

/// The state's name and its rank in PgBouncer's list order within a pool.
fn state_name(
    info: &ConnInfo,
    version: Version,
    used_after_us: u64,
    now: u64,
) -> (&'static str, u8) {
    match info.state() {
        ConnState::ClientIdle if version >= v(1, 25) => ("idle", 0),
        ConnState::ClientIdle | ConnState::ClientActive | ConnState::ServerActive => ("active", 0),
        ConnState::ClientWaiting => ("waiting", 1),
        ConnState::ServerIdle if now.saturating_sub(info.idle_since()) > used_after_us => {
            ("used", 2)
        }
        ConnState::ServerIdle => ("idle", 1),
        ConnState::ServerTested => ("tested", 3),
        ConnState::ServerLogin => ("new", 4),
    }
}

/// SHOW SOCKETS names a connection by the list PgBouncer keeps it in.
fn socket_state(info: &ConnInfo, used_after_us: u64, now: u64) -> (&'static str, u8) {
    match info.state() {
        ConnState::ClientIdle | ConnState::ClientActive => ("cl_active", 0),
        ConnState::ClientWaiting => ("cl_waiting", 1),
        ConnState::ServerActive => ("sv_active", 2),
        ConnState::ServerIdle if now.saturating_sub(info.idle_since()) > used_after_us => {
            ("sv_used", 4)
        }
        ConnState::ServerIdle => ("sv_idle", 3),
        ConnState::ServerTested => ("sv_tested", 5),
        ConnState::ServerLogin => ("sv_login", 6),
    }
}

fn row(
    ctx: &AdminContext,
    info: &Arc<ConnInfo>,
    (version, sockets): (Version, bool),
    used_after_us: u64,
) -> Row {
    let now = now_micros();
    let (state, rank) = if sockets {
        socket_state(info, used_after_us, now)
    } else {
        state_name(info, version, used_after_us, now)
    };
    let linked = match info.link() {
        0 => None,
        id => ctx.registry.conns().get(id),
    };
    let wait = match info.wait_start() {
        0 => 0,
        start if info.state() == ConnState::ClientWaiting => now.saturating_sub(start),
        _ => 0,
    };
    let app = match info.side {
        Side::Client => info.application_name(),
        Side::Server => linked
            .as_ref()
            .map(|c| c.application_name())
            .unwrap_or_default(),
    };
    let e = info.endpoints();
    let mut cells = vec![
        s(if info.side == Side::Client { "C" } else { "S" }),
        s(info.user.clone()),
        s(info.database.clone()),
        s(info.replication),
        s(state),
        s(e.addr),
        n(e.port),
        s(e.local_addr),
        n(e.local_port),
        s(timestamp(info.connect_time)),
        s(timestamp(info.request_time())),
        n(i32::try_from(wait / 1_000_000).unwrap_or(i32::MAX)),
        n(wait % 1_000_000),
        n(i32::from(info.close_needed())),
        s(ptr(info)),
        s(linked.as_ref().map(ptr).unwrap_or_default()),
        n(info.remote_pid()),
        s(info.tls()),
        s(app),
        n(i32::try_from(info.prepared()).unwrap_or(i32::MAX)),
        n(i32::try_from(info.id).unwrap_or(i32::MAX)),
    ];
    if sockets {
        // recv_pos, pkt_pos, pkt_remain, send_pos, send_remain, pkt_avail, send_avail.
        cells.extend((0..7).map(|_| n(0)));
    }
    Row {
        key: (info.database.clone(), info.pool_user.clone(), rank, info.id),
        cells,
    }
}

/// Which connections a SHOW lists.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Listing {
    Clients,
    Servers,
    Sockets,
    /// Sockets with buffered data: none, as pgsluice reports no buffered bytes.
    ActiveSockets,
}

fn write(ctx: &AdminContext, listing: Listing, version: Version, out: &mut BytesMut) {
    let sockets = matches!(listing, Listing::Sockets | Listing::ActiveSockets);
    let config = ctx.registry.config();
    let used_after =
        u64::try_from(config.general.server_check_delay.as_micros()).unwrap_or(u64::MAX);
    let mut rows: Vec<Row> = ctx
        .registry
        .conns()
        .all()
        .iter()
        .filter(|c| match listing {
            Listing::Clients => c.side == Side::Client,
            Listing::Servers => c.side == Side::Server,
            Listing::Sockets => true,
            Listing::ActiveSockets => false,
        })
        .map(|c| row(ctx, c, (version, sockets), used_after))
        .collect();
    rows.sort_by(|a, b| a.key.cmp(&b.key));
    let mut rs = ResultSet::new(if sockets { SOCKET_COLUMNS } else { COLUMNS });
    for r in rows {
        rs.row(r.cells);
    }
    rs.write(out, version);
}

/// SHOW CLIENTS.
pub(super) fn clients(ctx: &AdminContext, version: Version, out: &mut BytesMut) {
    write(ctx, Listing::Clients, version, out);
}

/// SHOW SERVERS.
pub(super) fn servers(ctx: &AdminContext, version: Version, out: &mut BytesMut) {
    write(ctx, Listing::Servers, version, out);
}

/// SHOW SOCKETS: every client and server, with the buffer columns.
pub(super) fn sockets(ctx: &AdminContext, version: Version, out: &mut BytesMut) {
    write(ctx, Listing::Sockets, version, out);
}

/// SHOW ACTIVE_SOCKETS: the sockets with buffered data.
pub(super) fn active_sockets(ctx: &AdminContext, version: Version, out: &mut BytesMut) {
    write(ctx, Listing::ActiveSockets, version, out);
}
