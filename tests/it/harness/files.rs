//! Temporary config directories (pgbouncer.ini, userlist.txt, pgsluice.toml) for tests.
//!
//! Owns: a tiny RAII temp dir (the `tempfile` crate would be one more dependency for ten lines)
//! and PgBouncer's userlist.txt quoting.
//!
//! Invariants: every `TempDir` has a name unique within the machine (PID + counter + clock) and is
//! removed when dropped, even if the test panics (unwinding runs `Drop`).

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// A directory under the system temp dir, removed with its contents on drop.
#[derive(Debug)]
pub struct TempDir {
    path: PathBuf,
}

impl TempDir {
    /// Creates `<temp>/pgsluice-it-<prefix>-<pid>-<n>-<nanos>`.
    pub fn new(prefix: &str) -> TempDir {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let path = std::env::temp_dir().join(format!(
            "pgsluice-it-{prefix}-{}-{}-{nanos:09}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        fs::create_dir_all(&path)
            .unwrap_or_else(|e| panic!("creating temp dir {}: {e}", path.display()));
        TempDir { path }
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A path inside the directory.
    pub fn join(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }

    /// Writes `name` inside the directory; see [`write_file`].
    pub fn write(&self, name: &str, text: &str) -> PathBuf {
        write_file(&self.path, name, text)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        // Best effort: a leftover dir under /tmp is not worth a panic during unwinding.
        let _ = fs::remove_dir_all(&self.path);
    }
}

/// Writes `text` to `dir/name` (creating parent dirs), returning the file's path.
pub fn write_file(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).unwrap_or_else(|e| panic!("creating {}: {e}", parent.display()));
    }
    fs::write(&path, text).unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
    path
}

/// One userlist.txt line, `"user" "secret"`, with `"` doubled as PgBouncer expects.
pub fn userlist_line(user: &str, secret: &str) -> String {
    format!("{} {}", quote(user), quote(secret))
}

/// A whole userlist.txt: one line per `(user, secret)`, newline-terminated.
pub fn userlist(entries: &[(&str, &str)]) -> String {
    entries
        .iter()
        .map(|(user, secret)| userlist_line(user, secret) + "\n")
        .collect()
}

fn quote(text: &str) -> String {
    format!("\"{}\"", text.replace('"', "\"\""))
}
