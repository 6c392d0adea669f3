//! Settings a reload cannot change (PgBouncer's `CF_NO_RELOAD`: `listen_addr`, `listen_port`,
//! `unix_socket_*`, `so_reuseport`, `pidfile`, `user`, ...; and pgsluice's `worker_threads`,
//! `metrics_listen`).
//!
//! Owns: comparing a freshly loaded config with the running one and carrying the running
//! values of those settings over, so what the process reports matches what it does.
//! Does not: log (the app does, as "needs restart").
//! Invariants: after [`keep_restart_only`], every restart-only setting of the new config has
//! the running value, both typed and in `raw`.

use super::settings;
use super::types::Config;

/// `[pgsluice]` keys read once at start.
pub const PGSLUICE_RESTART_ONLY: &[&str] = &["worker_threads", "metrics_listen"];

/// A restart-only setting whose value in the file differs from the running one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NeedsRestart {
    /// Setting name (`[pgsluice]` ones are prefixed `pgsluice.`).
    pub name: String,
    /// Value in effect.
    pub running: String,
    /// Value now in the file.
    pub file: String,
}

/// Puts the running values of restart-only settings back into `new`, and returns the ones the
/// file changed.
pub fn keep_restart_only(running: &Config, new: &mut Config) -> Vec<NeedsRestart> {
    let mut changed = Vec::new();
    for s in settings::all().filter(|s| !s.reload) {
        let old = running.general.raw.get(s.name).map(String::as_str);
        let now = new
            .general
            .raw
            .get(s.name)
            .map_or_else(|| s.default.to_owned(), Clone::clone);
        if old.unwrap_or(s.default).trim() == now.trim() {
            continue;
        }
        // The running value was accepted when it was loaded, so it applies again.
        let _ = super::general::apply(&mut new.general, s.name, old.unwrap_or(s.default));
        match old {
            Some(v) => new.general.raw.insert(s.name.to_owned(), v.to_owned()),
            None => new.general.raw.remove(s.name),
        };
        changed.push(NeedsRestart {
            name: s.name.to_owned(),
            running: old.unwrap_or(s.default).to_owned(),
            file: now,
        });
    }
    for &name in PGSLUICE_RESTART_ONLY {
        let old = running.pgsluice.get(name).cloned();
        let now = new.pgsluice.get(name).cloned();
        if old == now {
            continue;
        }
        match &old {
            Some(v) => new.pgsluice.insert(name.to_owned(), v.clone()),
            None => new.pgsluice.remove(name),
        };
        changed.push(NeedsRestart {
            name: format!("pgsluice.{name}"),
            running: old.unwrap_or_default(),
            file: now.unwrap_or_default(),
        });
    }
    changed
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(body: &str) -> Config {
        Config::from_ini_str(&format!("[pgbouncer]\n{body}"), "t.ini").unwrap()
    }

    #[test]
    fn restart_only_settings_keep_their_running_values() {
        let running = cfg("listen_port = 6432\nso_reuseport = 1\n[pgsluice]\nworker_threads = 2\n");
        let mut new = cfg(
            "listen_port = 7000\nunix_socket_dir =\ndefault_pool_size = 5\n[pgsluice]\nworker_threads = 4\n",
        );
        let changed = keep_restart_only(&running, &mut new);
        let names: Vec<&str> = changed.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "listen_port",
                "unix_socket_dir",
                "so_reuseport",
                "pgsluice.worker_threads"
            ]
        );
        assert_eq!(new.general.listen_port, 6432);
        assert_eq!(new.general.unix_socket_dir, "/tmp");
        assert!(!new.general.raw.contains_key("unix_socket_dir"));
        assert!(new.general.so_reuseport);
        assert_eq!(new.pgsluice.get("worker_threads").unwrap(), "2");
        // Reloadable settings take the file's value.
        assert_eq!(new.general.default_pool_size, 5);
        assert_eq!(changed[0].running, "6432");
        assert_eq!(changed[0].file, "7000");
    }

    #[test]
    fn unchanged_files_need_no_restart() {
        let running = cfg("listen_port = 6432\n");
        let mut new = cfg("listen_port = 6432\n");
        assert!(keep_restart_only(&running, &mut new).is_empty());
    }
}
