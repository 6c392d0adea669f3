//! Building a [`Config`] from parsed files.
//!
//! Owns: `Config::load`, `Config::load_with_extra`, `Config::from_ini_str`,
//! `Config::from_toml_str`; the section rules of the ini form (`[pgbouncer]`, `[databases]`,
//! `[users]`, `[peers]`, plus pgsluice's `[pgsluice]`, in `builder`); which file form a path is.
//! Does not: hold values while reading (that is `builder::Builder`, which both file forms feed,
//! so defaults, checks and error texts are shared), watch files, or decide what a reload changes.
//! Invariants: as in PgBouncer, section and key names are case-sensitive, an unknown section or
//! `[pgbouncer]` key is an error (pgbouncer-rr's keys are accepted with a warning), a later
//! value for the same key or database wins, and `[pgbouncer]` must be present. Relative paths
//! (`%include`, `auth_file`) are relative to the working directory, as in PgBouncer.

use std::path::Path;

use super::builder::Builder;
use super::error::Error;
use super::ini;
use super::types::Config;

impl Config {
    /// Loads `path`: TOML if it ends in `.toml`, else PgBouncer ini; then its `auth_file`.
    pub fn load(path: &Path) -> Result<Config, Error> {
        Self::load_with_extra(path, None)
    }

    /// Like [`Config::load`], then merges the `[pgsluice]` section of `extra` (ini or TOML),
    /// whose values win over the main file's.
    pub fn load_with_extra(path: &Path, extra: Option<&Path>) -> Result<Config, Error> {
        let mut b = Builder::new();
        b.cfg.source = Some(path.to_path_buf());
        b.name = path.display().to_string();
        read_any(path, &mut b)?;
        if let Some(extra) = extra {
            let mut eb = Builder::new();
            eb.only_pgsluice = true;
            read_any(extra, &mut eb)?;
            b.cfg.pgsluice.extend(eb.cfg.pgsluice);
        }
        b.finish(true)
    }

    /// Parses ini text named `name` (for errors); `%include` and `auth_file` are resolved
    /// against the working directory.
    pub fn from_ini_str(text: &str, name: &str) -> Result<Config, Error> {
        let mut b = Builder::new();
        name.clone_into(&mut b.name);
        b.ini_items(ini::parse(text, name, &mut ini::Fs)?)?;
        b.finish(true)
    }

    /// Parses ini text whose `%include`s come from `src`, and checks it as a load would,
    /// without reading `auth_file` (the fuzz targets use it on in-memory files).
    #[doc(hidden)]
    pub fn from_ini_source(
        text: &str,
        name: &str,
        src: &mut dyn ini::Source,
    ) -> Result<Config, Error> {
        let mut b = Builder::new();
        name.clone_into(&mut b.name);
        b.ini_items(ini::parse(text, name, src)?)?;
        b.finish(false)
    }

    /// Parses the TOML form; `auth_file` is resolved against the working directory.
    pub fn from_toml_str(text: &str, name: &str) -> Result<Config, Error> {
        let mut b = Builder::new();
        name.clone_into(&mut b.name);
        super::toml::read(text, name, &mut b)?;
        b.finish(true)
    }

    /// The `[databases]` entry for `name`: the exact entry, else the `*` fallback with its
    /// name set to `name` (its `dbname` then defaults to `name` too).
    pub fn database(&self, name: &str) -> Option<crate::config::DatabaseDef> {
        if let Some(db) = self.databases.iter().find(|d| d.name == name) {
            return Some(db.clone());
        }
        self.fallback_database.as_ref().map(|fb| {
            let mut db = fb.clone();
            name.clone_into(&mut db.name);
            db
        })
    }
}

impl Default for Config {
    /// Every setting at its default, no databases, users or auth entries.
    fn default() -> Self {
        Builder::new().cfg
    }
}

fn read_any(path: &Path, b: &mut Builder) -> Result<(), Error> {
    if path.extension().is_some_and(|e| e == "toml") {
        let text = std::fs::read_to_string(path).map_err(|source| Error::Io {
            path: path.to_path_buf(),
            source,
        })?;
        super::toml::read(&text, &path.display().to_string(), b)
    } else {
        b.ini_items(ini::parse_file(path, &mut ini::Fs)?)
    }
}
