//! SHOW CONFIG rows, computed from the settings table and the values set.
//!
//! Owns: the `key, value, default, changeable` text PgBouncer prints: one row per setting it
//! lists off Windows, sorted by name (PgBouncer 1.25+), integers as `%d` (so `0777` shows as
//! `511`), times as `%g` seconds, lookups as their lower-case name.
//! Does not: format protocol messages (the admin console does).
//! Invariants: values set in the file are shown normalised exactly as their defaults are.

use super::duration::{format_secs, parse_c_long, parse_secs};
use super::settings::{self, Kind, Setting};
use super::types::Config;

/// One SHOW CONFIG row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShowRow {
    /// `key`.
    pub key: &'static str,
    /// `value`.
    pub value: String,
    /// `default`.
    pub default: &'static str,
    /// `changeable`: whether RELOAD applies it.
    pub changeable: bool,
}

/// The rows of SHOW CONFIG for `cfg`.
pub fn show_config(cfg: &Config) -> Vec<ShowRow> {
    let mut rows: Vec<ShowRow> = settings::all()
        .filter(|s| s.shown)
        .map(|s| ShowRow {
            key: s.name,
            value: current(cfg, s),
            default: s.default,
            changeable: s.reload,
        })
        .collect();
    rows.sort_by_key(|r| r.key);
    rows
}

fn current(cfg: &Config, s: &Setting) -> String {
    if s.name == "conffile" {
        if let Some(p) = &cfg.source {
            return p.display().to_string();
        }
    }
    let Some(raw) = cfg.general.raw.get(s.name) else {
        return s.default.to_owned();
    };
    // Values were validated at load, so these conversions succeed; fall back to the raw text.
    match s.kind {
        Kind::Int | Kind::Bool => parse_c_long(raw).map_or_else(|_| raw.clone(), |v| v.to_string()),
        Kind::Time => parse_secs(raw).map_or_else(|_| raw.clone(), format_secs),
        Kind::Choice(_) => raw.to_ascii_lowercase(),
        Kind::Str | Kind::List | Kind::Path => raw.clone(),
    }
}
