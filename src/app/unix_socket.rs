//! The unix socket listener: `<unix_socket_dir>/.s.PGSQL.<listen_port>` (the name psql and
//! libpq look for), `unix_socket_mode`, `unix_socket_group`, `listen_backlog`, and
//! `unix_socket_dir = @name` for Linux's abstract namespace.
//!
//! Owns: binding, taking over the socket file from a running process during a rolling restart
//! (`so_reuseport = 1`), and removing the file at exit only while it is still ours.
//! Does not: accept (listener.rs).
//! Invariants: a socket file a live process answers on is never removed; with `so_reuseport`
//! the new socket replaces it atomically (bind beside, then rename), so every connect either
//! reaches the old process (which drains it) or the new one, never nothing.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use socket2::{Domain, SockAddr, Socket, Type};
use tokio::net::UnixListener;

use super::AppError;
use crate::config::Config;

/// A bound unix socket.
#[derive(Debug)]
pub(super) struct UnixBound {
    pub(super) listener: UnixListener,
    /// The socket file, or `None` in the abstract namespace.
    pub(super) file: Option<SocketFile>,
    /// What clients are told / what logs show.
    pub(super) display: PathBuf,
}

/// The socket file and the identity of the inode this process created.
#[derive(Debug, Clone)]
pub struct SocketFile {
    path: PathBuf,
    dev: u64,
    ino: u64,
}

impl SocketFile {
    /// Removes the file if it is still the one this process bound (a process started for a
    /// rolling restart may have replaced it).
    pub fn remove_if_ours(&self) {
        if let Ok(meta) = std::fs::symlink_metadata(&self.path) {
            if meta.dev() == self.dev && meta.ino() == self.ino {
                let _ = std::fs::remove_file(&self.path);
            }
        }
    }
}

fn listen(addr: &SockAddr, backlog: i32) -> std::io::Result<UnixListener> {
    let socket = Socket::new(Domain::UNIX, Type::STREAM, None)?;
    socket.bind(addr)?;
    socket.listen(backlog)?;
    socket.set_nonblocking(true)?;
    UnixListener::from_std(socket.into())
}

/// Sets `unix_socket_mode` and `unix_socket_group` on a freshly bound socket file.
fn set_owner_and_mode(path: &Path, config: &Config) -> std::io::Result<()> {
    let g = &config.general;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(g.unix_socket_mode))?;
    if let Some(name) = &g.unix_socket_group {
        let group = nix::unistd::Group::from_name(name)
            .map_err(std::io::Error::from)?
            .ok_or_else(|| {
                std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    format!("unix_socket_group: no such group: {name}"),
                )
            })?;
        std::os::unix::fs::chown(path, None, Some(group.gid.as_raw()))?;
    }
    Ok(())
}

/// Binds the unix socket for `port`.
pub(super) fn bind(config: &Config, port: u16) -> Result<UnixBound, AppError> {
    let g = &config.general;
    let backlog = i32::try_from(g.listen_backlog).unwrap_or(128);
    let dir = &g.unix_socket_dir;
    let display = PathBuf::from(format!("{dir}/.s.PGSQL.{port}"));
    let wrap = |source| AppError::Bind {
        addr: display.display().to_string(),
        source,
    };
    if let Some(name) = dir.strip_prefix('@') {
        // A leading NUL byte makes the name abstract: no file, nothing to remove.
        let abstract_name = format!("\0{name}/.s.PGSQL.{port}");
        let addr = SockAddr::unix(abstract_name).map_err(wrap)?;
        let listener = listen(&addr, backlog).map_err(wrap)?;
        return Ok(UnixBound {
            listener,
            file: None,
            display,
        });
    }
    let path = display.clone();
    let live = path.exists() && std::os::unix::net::UnixStream::connect(&path).is_ok();
    let listener = if live {
        if !g.so_reuseport {
            return Err(wrap(std::io::Error::new(
                std::io::ErrorKind::AddrInUse,
                "another process is listening on this socket (set so_reuseport = 1 to take it over for a rolling restart)",
            )));
        }
        let tmp = path.with_file_name(format!(".s.PGSQL.{port}.{}.new", std::process::id()));
        let _ = std::fs::remove_file(&tmp);
        let listener = listen(&SockAddr::unix(&tmp).map_err(wrap)?, backlog).map_err(wrap)?;
        set_owner_and_mode(&tmp, config)
            .and_then(|()| std::fs::rename(&tmp, &path))
            .map_err(|e| {
                let _ = std::fs::remove_file(&tmp);
                wrap(e)
            })?;
        tracing::info!(socket = %path.display(), "took over the unix socket from the running process");
        listener
    } else {
        // A file left by a process that is gone would block the bind.
        if path.exists() {
            let _ = std::fs::remove_file(&path);
        }
        let listener = listen(&SockAddr::unix(&path).map_err(wrap)?, backlog).map_err(wrap)?;
        set_owner_and_mode(&path, config).map_err(wrap)?;
        listener
    };
    let meta = std::fs::symlink_metadata(&path).map_err(wrap)?;
    Ok(UnixBound {
        listener,
        file: Some(SocketFile {
            path,
            dev: meta.dev(),
            ino: meta.ino(),
        }),
        display,
    })
}
