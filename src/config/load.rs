//! Building a [`Config`] from parsed files.
//!
//! Owns: `Config::load`, `Config::load_with_extra`, `Config::from_ini_str`,
//! `Config::from_toml_str`; the section rules of the ini form (`[pgbouncer]`, `[databases]`,
//! `[users]`, `[peers]`, plus pgsluice's `[pgsluice]`); reading `auth_file` at load; the
//! [`Builder`] both file forms feed, so defaults, checks and error texts are shared.
//! Does not: watch files, or decide what a reload changes.
//! Invariants: as in PgBouncer, section and key names are case-sensitive, an unknown section or
//! `[pgbouncer]` key is an error (pgbouncer-rr's keys are accepted with a warning), a later
//! value for the same key or database wins, and `[pgbouncer]` must be present. Relative paths
//! (`%include`, `auth_file`) are relative to the working directory, as in PgBouncer.

use std::collections::BTreeMap;
use std::path::Path;

use super::error::{Error, Loc};
use super::ini::{self, Item};
use super::types::{Config, General};
use super::{connstr, general, settings, userlist, users, validate};

/// Sections the ini form accepts.
const SECTIONS: &[&str] = &["pgbouncer", "databases", "users", "peers", "pgsluice"];

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

    /// Pool size of (db, user): the user's `pool_size`, else the database's, else
    /// `default_pool_size` (PgBouncer's order).
    pub fn pool_size_for(&self, db: &str, user: &str) -> u32 {
        self.users
            .get(user)
            .and_then(|u| u.pool_size)
            .or_else(|| self.database(db).and_then(|d| d.pool_size))
            .unwrap_or(self.general.default_pool_size)
    }

    /// Pool mode of (db, user): the user's `pool_mode`, else the database's, else the global
    /// one (PgBouncer's order).
    pub fn pool_mode_for(&self, db: &str, user: &str) -> crate::config::PoolMode {
        self.users
            .get(user)
            .and_then(|u| u.pool_mode)
            .or_else(|| self.database(db).and_then(|d| d.pool_mode))
            .unwrap_or(self.general.pool_mode)
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

/// Collects values from either file form and checks them the same way.
pub(crate) struct Builder {
    pub(crate) cfg: Config,
    /// Where each `[pgbouncer]` key was set, for validation errors.
    pub(crate) locs: BTreeMap<String, Loc>,
    got_main: bool,
    /// The main file's name, for "main section missing".
    pub(crate) name: String,
    /// The extra file may only hold `[pgsluice]`.
    only_pgsluice: bool,
}

impl Builder {
    pub(crate) fn new() -> Self {
        Builder {
            cfg: Config {
                source: None,
                general: General::default(),
                databases: Vec::new(),
                fallback_database: None,
                users: BTreeMap::new(),
                auth_users: BTreeMap::new(),
                pgsluice: BTreeMap::new(),
                peers: BTreeMap::new(),
            },
            locs: BTreeMap::new(),
            got_main: false,
            name: String::new(),
            only_pgsluice: false,
        }
    }

    fn ini_items(&mut self, items: Vec<Item>) -> Result<(), Error> {
        let mut section: Option<String> = None;
        for item in items {
            match item {
                Item::Section { loc, name } => {
                    self.section(&name, &loc)?;
                    section = Some(name);
                }
                Item::Pair { loc, key, value } => {
                    let Some(sect) = section.as_deref() else {
                        return Err(loc.err(format!("value without section: {key}")));
                    };
                    match sect {
                        "pgbouncer" => self.general(&key, &value, &loc)?,
                        "databases" => self.database_str(&key, &value, &loc)?,
                        "users" => self.user_str(&key, &value, &loc)?,
                        "peers" => self.peer(&key, &value, &loc)?,
                        _ => self.pgsluice(&key, value),
                    }
                }
            }
        }
        Ok(())
    }

    pub(crate) fn section(&mut self, name: &str, loc: &Loc) -> Result<(), Error> {
        let allowed = if self.only_pgsluice {
            name == "pgsluice"
        } else {
            SECTIONS.contains(&name)
        };
        if !allowed {
            return Err(loc.err(format!("invalid section \"{name}\"")));
        }
        if name == "pgbouncer" {
            self.got_main = true;
        }
        Ok(())
    }

    pub(crate) fn general(&mut self, key: &str, value: &str, loc: &Loc) -> Result<(), Error> {
        if settings::PGBOUNCER_RR_KEYS.contains(&key) {
            tracing::warn!(file = %loc.file, line = loc.line, key, "pgbouncer-rr setting ignored");
        } else if settings::find(key).is_none() {
            let lower = key.to_ascii_lowercase();
            let hint = if lower != key && settings::find(&lower).is_some() {
                format!(" (names are case-sensitive; did you mean {lower}?)")
            } else {
                String::new()
            };
            let reason = format!("unknown parameter: pgbouncer/{key}{hint}");
            return Err(loc.err(reason));
        } else {
            general::apply(&mut self.cfg.general, key, value).map_err(|e| {
                loc.err(format!(
                    "invalid value \"{value}\" for parameter {key}: {e}"
                ))
            })?;
        }
        self.cfg
            .general
            .raw
            .insert(key.to_owned(), value.to_owned());
        self.locs.insert(key.to_owned(), loc.clone());
        Ok(())
    }

    fn database_str(&mut self, name: &str, value: &str, loc: &Loc) -> Result<(), Error> {
        let pairs = connstr::split_pairs(value).map_err(|e| loc.err(e))?;
        self.database(name, pairs, loc)
    }

    pub(crate) fn database(
        &mut self,
        name: &str,
        pairs: Vec<(String, String)>,
        loc: &Loc,
    ) -> Result<(), Error> {
        let db = connstr::build(name, pairs).map_err(|e| loc.err(e))?;
        if name == "*" {
            self.cfg.fallback_database = Some(db);
        } else if let Some(old) = self.cfg.databases.iter_mut().find(|d| d.name == name) {
            *old = db;
        } else {
            self.cfg.databases.push(db);
        }
        Ok(())
    }

    fn user_str(&mut self, name: &str, value: &str, loc: &Loc) -> Result<(), Error> {
        let u = users::parse(name, value).map_err(|e| loc.err(e))?;
        self.cfg.users.insert(name.to_owned(), u);
        Ok(())
    }

    pub(crate) fn user(
        &mut self,
        name: &str,
        pairs: Vec<(String, String)>,
        loc: &Loc,
    ) -> Result<(), Error> {
        let u = users::build(name, pairs).map_err(|e| loc.err(e))?;
        self.cfg.users.insert(name.to_owned(), u);
        Ok(())
    }

    pub(crate) fn peer(&mut self, name: &str, value: &str, loc: &Loc) -> Result<(), Error> {
        let peer = super::peers::parse(name, value).map_err(|e| loc.err(e))?;
        self.cfg.peers.insert(peer.id, peer);
        Ok(())
    }

    pub(crate) fn pgsluice(&mut self, key: &str, value: String) {
        self.cfg.pgsluice.insert(key.to_owned(), value);
    }

    /// Checks the whole, then reads `auth_file` if `read_auth`.
    pub(crate) fn finish(mut self, read_auth: bool) -> Result<Config, Error> {
        if !self.got_main {
            return Err(Error::at(
                &self.name,
                1,
                "main section missing from config file",
            ));
        }
        validate::check(&self.cfg, &self.locs)?;
        if read_auth {
            if let Some(path) = self.cfg.general.auth_file.clone() {
                self.cfg.auth_users = read_auth_file(&path)?;
            }
        }
        Ok(self.cfg)
    }
}

/// Reads `auth_file`; a broken line is logged and ends the reading, as in PgBouncer.
pub fn read_auth_file(path: &Path) -> Result<BTreeMap<String, crate::config::Secret>, Error> {
    let text = std::fs::read_to_string(path).map_err(|source| Error::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let list = userlist::parse(&text);
    if let Some((line, reason)) = list.broken {
        tracing::warn!(file = %path.display(), line, "{reason}; entries after this line are ignored");
    }
    Ok(list.users)
}
