//! Process-level duties of the binary: the pidfile, switching user (`-u`, `user`), and leaving
//! the terminal's session in daemon mode.
//!
//! Owns: PgBouncer's pidfile rule (refuse to start while the pidfile names a live process;
//! remove a stale one), removal at exit only of a pidfile that still names this process.
//! Does not: fork (the binary re-executes itself for `-d`).
//! Invariants: with `so_reuseport = 1`, a second process may take the pidfile over from a live
//! one (the rolling-restart procedure); the old process then leaves the file alone at exit.

use std::path::{Path, PathBuf};

use nix::sys::signal::kill;
use nix::unistd::Pid;

/// The pid a pidfile names, if it holds one.
pub fn read_pid(path: &Path) -> Option<i32> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// Whether a process with this pid exists (it may belong to another user).
pub fn is_alive(pid: i32) -> bool {
    pid > 0
        && !matches!(
            kill(Pid::from_raw(pid), None),
            Err(nix::errno::Errno::ESRCH)
        )
}

/// PgBouncer's start-up check: a pidfile naming a live process (other than this one) stops
/// the start, unless `take_over` (so_reuseport), which returns that process's pid for the
/// caller to log; a stale pidfile is removed.
pub fn check_pidfile(path: &Path, take_over: bool) -> Result<Option<i32>, String> {
    let Some(pid) = read_pid(path) else {
        return Ok(None);
    };
    let own = i32::try_from(std::process::id()).unwrap_or(0);
    if pid != own && is_alive(pid) {
        if take_over {
            return Ok(Some(pid));
        }
        return Err(format!(
            "pidfile {} names a running process ({pid}); is another pgsluice running?",
            path.display()
        ));
    }
    let _ = std::fs::remove_file(path);
    Ok(None)
}

/// A written pidfile, removed on drop if it still names this process.
#[derive(Debug)]
pub struct Pidfile {
    path: PathBuf,
    pid: u32,
}

impl Pidfile {
    /// Writes this process's pid to `path`.
    pub fn create(path: &Path) -> Result<Pidfile, String> {
        let pid = std::process::id();
        // Write then rename, so a reader never sees a half-written file.
        let tmp = path.with_extension(format!("tmp.{pid}"));
        std::fs::write(&tmp, format!("{pid}\n"))
            .and_then(|()| std::fs::rename(&tmp, path))
            .map_err(|e| format!("cannot write pidfile {}: {e}", path.display()))?;
        Ok(Pidfile {
            path: path.to_path_buf(),
            pid,
        })
    }
}

impl Drop for Pidfile {
    fn drop(&mut self) {
        if read_pid(&self.path).and_then(|p| u32::try_from(p).ok()) == Some(self.pid) {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// Switches to `name`'s uid, gid and supplementary groups (`-u`, `user`).
pub fn switch_user(name: &str) -> Result<(), String> {
    let user = nix::unistd::User::from_name(name)
        .map_err(|e| format!("cannot look up user {name}: {e}"))?
        .ok_or_else(|| format!("no such user: {name}"))?;
    let cname = std::ffi::CString::new(name).map_err(|_| format!("invalid user name: {name}"))?;
    // Only root may change groups; an unprivileged process that already is `name` carries on.
    if nix::unistd::geteuid().is_root() {
        nix::unistd::initgroups(&cname, user.gid)
            .map_err(|e| format!("initgroups({name}) failed: {e}"))?;
    }
    nix::unistd::setgid(user.gid).map_err(|e| format!("setgid failed: {e}"))?;
    nix::unistd::setuid(user.uid).map_err(|e| format!("setuid failed: {e}"))?;
    Ok(())
}

/// Leaves the terminal's session (the daemon side of `-d`).
pub fn detach() -> Result<(), String> {
    nix::unistd::setsid()
        .map(drop)
        .map_err(|e| format!("setsid failed: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pidfile_rules() {
        let dir = std::env::temp_dir().join(format!("pgsluice-pid-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("p.pid");
        // Stale: a pid that cannot exist.
        std::fs::write(&path, "2147483646\n").unwrap();
        assert_eq!(check_pidfile(&path, false), Ok(None));
        assert!(!path.exists());
        // Live: pid 1 always exists.
        std::fs::write(&path, "1\n").unwrap();
        assert!(check_pidfile(&path, false).is_err());
        assert_eq!(check_pidfile(&path, true), Ok(Some(1)));
        // Own file: written, then removed on drop only while it names us.
        let own = Pidfile::create(&path).unwrap();
        assert_eq!(read_pid(&path), i32::try_from(std::process::id()).ok());
        drop(own);
        assert!(!path.exists());
        let own = Pidfile::create(&path).unwrap();
        std::fs::write(&path, "1\n").unwrap();
        drop(own);
        assert!(path.exists());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
