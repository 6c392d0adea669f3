//! Configuration: the typed [`Config`] every other module reads.
//!
//! Owns: parsing `pgbouncer.ini` (with `%include`), the `[databases]` connection strings, the
//! `[users]` section, the `auth_file` (userlist.txt), the native TOML form, the table of known
//! settings with their defaults, and validation. Errors name the file, line and reason.
//!
//! Does not: open sockets, resolve hosts, or decide policy at run time. A `Config` is immutable
//! once built; a reload builds a new one and the app swaps the whole `Arc`.
//!
//! Layout: `ini.rs` (lexer) → `load.rs` (which file form) → `builder.rs` (sections) →
//! `general.rs` (values of `[pgbouncer]`, driven by `settings.rs`), `connstr.rs`, `users.rs`,
//! `userlist.rs`; `toml.rs` feeds the same builder; `validate.rs` checks the whole; `docs.rs` renders
//! `docs/configuration.md` from the table.

mod builder;
pub mod connstr;
pub mod docs;
pub mod duration;
mod error;
mod general;
pub mod ini;
mod load;
pub mod peers;
pub mod restart;
mod set;
pub mod settings;
mod show;
mod toml;
mod types;
pub mod userlist;
pub mod users;
mod validate;

#[cfg(test)]
mod tests;

pub use builder::read_auth_file;
pub use error::{Error, Loc};
pub use set::set_online;
pub use show::{ShowRow, show_config};
pub use types::*;

use settings::Support;

/// The settings in `cfg` that pgsluice accepts but does not act on yet, for the app to log
/// once at start. Only values set in the file and different from the default count, plus
/// `auth_type` values not implemented (pam, ldap).
pub fn not_supported(cfg: &Config) -> Vec<&'static str> {
    let mut out: Vec<&'static str> = settings::all()
        .filter(|s| s.support == Support::NotYet)
        .filter(|s| {
            cfg.general.raw.get(s.name).is_some_and(|v| {
                v != s.default && !(s.name.ends_with("_sslmode") && v == "disable")
            })
        })
        .map(|s| s.name)
        .collect();
    if matches!(cfg.general.auth_type, AuthType::Pam | AuthType::Ldap) {
        out.push("auth_type");
    }
    out
}
