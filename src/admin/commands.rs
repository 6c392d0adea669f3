//! Running console commands: dispatch by command word, the rights check, the version gates, the
//! SHOW table, and the control commands sent as `control::Request`s.
//!
//! Owns: PgBouncer's command list and its error texts for arguments ("a database is required",
//! "cannot pause admin db: …", "admin access needed", "invalid client pointer supplied"…), and
//! the tags of the replies (`PAUSE`, `SET key=value`, …).
//! Does not: execute control requests (the app's control loop does) or render rows (the
//! `show_*` modules do).
//! Invariants: commands of one query string run in order and stop at the first error, after
//! which one ReadyForQuery follows; SHUTDOWN (immediate) sends nothing, as in PgBouncer.

use bytes::BytesMut;

use super::access::Rights;
use super::parse::{self, Command, ParseError};
use super::table::{Version, v};
use super::{
    ADMIN_DB, AdminContext, show_alerts, show_conns, show_databases, show_misc, show_pools,
    show_stats,
};
use crate::control::{Request, ShutdownMode};
use crate::protocol::PoolerError;
use crate::protocol::backend::{self, Severity};
use crate::protocol::sqlstate;

/// One console session's view for running commands.
#[derive(Debug, Clone, Copy)]
pub struct Console<'a> {
    /// Shared console state.
    pub ctx: &'a AdminContext,
    /// The session's rights.
    pub rights: Rights,
    /// The emulated PgBouncer version.
    pub version: Version,
}

/// How a query string ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    /// Send ReadyForQuery and read the next query.
    Ready,
    /// Send nothing more: the pooler is shutting down now.
    Hold,
}

type Done = Result<Flow, PoolerError>;

fn unsupported(what: &str, why: &str) -> PoolerError {
    PoolerError::with_state(
        sqlstate::FEATURE_NOT_SUPPORTED,
        format!("{what} is not supported by pgsluice: {why}"),
    )
}

// Returns `Done` so every command arm can end with it.
#[allow(clippy::unnecessary_wraps)]
fn complete(out: &mut BytesMut, tag: &str) -> Done {
    backend::command_complete(out, tag);
    Ok(Flow::Ready)
}

fn syntax(text: &str) -> PoolerError {
    PoolerError::new(ParseError::Syntax(text.to_owned()).to_string())
}

impl Console<'_> {
    /// Runs every command in `query`, appending the replies (without the final ReadyForQuery).
    pub async fn execute(&self, query: &str, out: &mut BytesMut) -> Flow {
        let pieces = parse::split(query);
        if pieces.is_empty() {
            write_error(out, &syntax(query));
            return Flow::Ready;
        }
        let single = pieces.len() == 1;
        for piece in pieces {
            let shown = if single { query } else { piece };
            let result = match parse::parse(piece) {
                Ok(command) => self.run(command, shown, out).await,
                Err(ParseError::Syntax(_)) => Err(syntax(shown)),
                Err(e) => Err(PoolerError::new(e.to_string())),
            };
            match result {
                Ok(Flow::Ready) => {}
                Ok(Flow::Hold) => return Flow::Hold,
                Err(failure) => {
                    write_error(out, &failure);
                    break;
                }
            }
        }
        Flow::Ready
    }

    fn admin(&self) -> Result<(), PoolerError> {
        match self.rights {
            Rights::Admin => Ok(()),
            Rights::Stats => Err(PoolerError::new("admin access needed")),
        }
    }

    async fn control(&self, request: Request, out: &mut BytesMut, tag: &str) -> Done {
        self.ctx.control.request(request).await?;
        complete(out, tag)
    }

    async fn run(&self, command: Command, text: &str, out: &mut BytesMut) -> Done {
        let (cmd, arg) = match command {
            Command::Set { key, value } => return self.set(&key, &value, out).await,
            Command::Word { cmd, arg } => (cmd, arg),
        };
        let db = (!arg.is_empty()).then(|| arg.clone());
        match cmd.as_str() {
            "show" | "select" => self.show(&arg, text, out),
            "reload" if arg.is_empty() => {
                self.admin()?;
                self.control(Request::Reload, out, "RELOAD").await
            }
            "pause" => {
                self.admin()?;
                refuse_admin_db(&arg, "cannot pause admin db")?;
                self.control(Request::Pause(db), out, "PAUSE").await
            }
            "resume" => {
                self.admin()?;
                if arg == ADMIN_DB {
                    return Err(PoolerError::new(format!("database {arg} is not paused")));
                }
                self.control(Request::Resume(db), out, "RESUME").await
            }
            "disable" | "enable" => self.disable_enable(&cmd, arg, out).await,
            "reconnect" => {
                self.admin()?;
                refuse_admin_db(&arg, "cannot reconnect admin db")?;
                self.control(Request::Reconnect(db), out, "RECONNECT").await
            }
            "kill" => {
                self.admin()?;
                refuse_admin_db(&arg, "cannot kill admin db")?;
                if db.is_none() && self.version < v(1, 25) {
                    return Err(PoolerError::new("no such database: "));
                }
                self.control(Request::Kill(db), out, "KILL").await
            }
            "kill_client" if self.version >= v(1, 24) => {
                self.admin()?;
                let id = arg
                    .trim()
                    .parse::<u64>()
                    .map_err(|_| PoolerError::new("invalid client pointer supplied"))?;
                self.control(Request::KillClient(id), out, "KILL_CLIENT")
                    .await
            }
            "suspend" if self.version < v(1, 26) && arg.is_empty() => {
                self.admin()?;
                Err(unsupported("SUSPEND", "online restart is not available"))
            }
            "shutdown" => self.shutdown(&arg, text, out).await,
            "wait_close" => {
                self.admin()?;
                refuse_admin_db(&arg, "cannot wait in admin db")?;
                self.control(Request::WaitClose(db), out, "WAIT_CLOSE")
                    .await
            }
            _ => Err(syntax(text)),
        }
    }

    async fn disable_enable(&self, cmd: &str, arg: String, out: &mut BytesMut) -> Done {
        self.admin()?;
        if arg.is_empty() {
            return Err(PoolerError::new("a database is required"));
        }
        if arg == ADMIN_DB {
            return Err(PoolerError::new(format!("cannot {cmd} admin db: {arg}")));
        }
        if cmd == "disable" {
            self.control(Request::Disable(arg), out, "DISABLE").await
        } else {
            self.control(Request::Enable(arg), out, "ENABLE").await
        }
    }

    async fn shutdown(&self, arg: &str, text: &str, out: &mut BytesMut) -> Done {
        let mode = if arg.is_empty() {
            ShutdownMode::Immediate
        } else if arg.eq_ignore_ascii_case("wait_for_clients") {
            ShutdownMode::WaitForClients
        } else if arg.eq_ignore_ascii_case("wait_for_servers") {
            ShutdownMode::WaitForServers
        } else {
            return Err(syntax(text));
        };
        self.admin()?;
        self.ctx.control.request(Request::Shutdown(mode)).await?;
        if mode == ShutdownMode::Immediate {
            // PgBouncer does not answer: the connection closes when the process exits.
            return Ok(Flow::Hold);
        }
        complete(out, "SHUTDOWN")
    }

    async fn set(&self, key: &str, value: &str, out: &mut BytesMut) -> Done {
        if show_misc::fake_param(key, self.version).is_some() {
            backend::notice_response(out, "00000", "SET ignored", None);
            return complete(out, "SET");
        }
        self.admin()?;
        let request = Request::Set {
            key: key.to_owned(),
            value: value.to_owned(),
        };
        match self.ctx.control.request(request).await {
            Ok(()) => complete(out, &format!("SET {key}={value}")),
            Err(e) => {
                tracing::error!("SET {key} = {value} failed: {e}");
                Err(PoolerError::new("SET failed"))
            }
        }
    }

    fn show(&self, what: &str, text: &str, out: &mut BytesMut) -> Done {
        if let Some((name, value)) = show_misc::fake_param(what, self.version) {
            show_misc::show_fake(name, value, out);
            return Ok(Flow::Ready);
        }
        let (ctx, version) = (self.ctx, self.version);
        let v19 = version >= v(1, 19);
        match what.to_ascii_lowercase().as_str() {
            "help" => show_misc::help(version, out),
            "config" => show_misc::config(ctx, version, out),
            "databases" => show_databases::databases(ctx, version, out),
            "users" => show_databases::users(ctx, version, out),
            "peers" if v19 => show_databases::peers(ctx, version, out),
            "pools" => show_pools::pools(ctx, version, out),
            "peer_pools" if v19 => show_pools::peer_pools(version, out),
            "clients" => show_conns::clients(ctx, version, out),
            "servers" => show_conns::servers(ctx, version, out),
            "stats" => show_stats::stats(ctx, version, out),
            "stats_totals" if version >= v(1, 8) => show_stats::stats_totals(ctx, version, out),
            "stats_averages" if version >= v(1, 8) => show_stats::stats_averages(ctx, version, out),
            "totals" => show_stats::totals(ctx, version, out),
            "lists" => show_misc::lists(ctx, version, out),
            "version" => show_misc::version(version, out),
            "state" if v19 => show_misc::state(ctx, version, out),
            "mem" => show_misc::mem(ctx, version, out),
            "dns_hosts" => show_misc::dns_hosts(version, out),
            "dns_zones" => show_misc::dns_zones(version, out),
            "alerts" => show_alerts::alerts(ctx, version, out),
            "sockets" => show_conns::sockets(ctx, version, out),
            "active_sockets" => show_conns::active_sockets(ctx, version, out),
            "fds" if version < v(1, 26) => {
                self.admin()?;
                return Err(unsupported("SHOW FDS", "online restart is not available"));
            }
            _ => return Err(syntax(text)),
        }
        Ok(Flow::Ready)
    }
}

fn refuse_admin_db(arg: &str, what: &str) -> Result<(), PoolerError> {
    if arg == ADMIN_DB {
        Err(PoolerError::new(format!("{what}: {arg}")))
    } else {
        Ok(())
    }
}

/// Appends an ErrorResponse (severity ERROR) for a failed command.
pub fn write_error(out: &mut BytesMut, failure: &PoolerError) {
    failure.write(out, Severity::Error);
}
