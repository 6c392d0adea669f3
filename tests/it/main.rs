//! pgsluice integration tests: ONE test binary (`cargo test --test it`), one module per area.
//!
//! Every test starts from `harness::postgres::PgCluster::shared()` (a real PostgreSQL started
//! on first use and stopped when this process ends) and takes its own database from
//! `create_database`, so tests run concurrently without seeing each other's tables.

// Not every test module uses every helper; the harness is an API, not dead code.
#[allow(dead_code)]
mod harness;

// ---------------------------------------------------------------------------------------------
// Test modules: add one `mod <area>;` line per file below (e.g. `mod pooler_auth;`,
// `mod admin_console;`). Pooler start/stop helpers belong in `harness/pooler.rs`, declared in
// `harness/mod.rs`, next to `postgres`, `files` and `tools`.
// ---------------------------------------------------------------------------------------------
mod core_auth;
mod core_binary;
mod core_pooling;
mod core_smoke;
mod core_timeouts;
mod harness_selftest;
