//! Configuration: the typed [`Config`] every other module reads.
//!
//! Owns: parsing `pgbouncer.ini` (with `%include`), the `[databases]` connection strings, the
//! `[users]` section, the `auth_file` (userlist.txt), the native TOML form, the table of known
//! settings with their defaults, and validation. Errors name the file, line and reason.
//!
//! Does not: open sockets, resolve hosts, or decide policy at run time. A `Config` is immutable
//! once built; a reload builds a new one and the app swaps the whole `Arc`.

mod types;

pub use types::*;
