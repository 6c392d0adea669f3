//! pgsluice: a multi-threaded PostgreSQL connection pooler, drop-in compatible with PgBouncer.
//!
//! Layers (a module uses only lower ones): `protocol`, `config`, `stats`, `control`, `worker` (0);
//! `auth`, `tls` (1); `net` (2); `server` (3); `pool` (4); `client`, `admin`, `metrics`, `alerts`
//! (5); `app` (6). See `docs/architecture.md`. `fuzzing` (hidden) is test support: the fuzz
//! harnesses, over parsers of every layer; nothing else uses it.

pub mod admin;
pub mod alerts;
pub mod app;
pub mod auth;
pub mod client;
pub mod config;
pub mod control;
#[doc(hidden)]
pub mod fuzzing;
pub mod metrics;
pub mod net;
pub mod pool;
pub mod protocol;
pub mod server;
pub mod stats;
pub mod tls;
pub mod worker;
