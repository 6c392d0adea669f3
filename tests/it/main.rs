//! pgsluice integration tests: ONE test binary (`cargo test --test it`), one module per area.
//!
//! Every test starts from `harness::postgres::PgCluster::shared()` (a real PostgreSQL started
//! on first use and stopped when this process ends) and takes its own database from
//! `create_database`, so tests run concurrently without seeing each other's tables.

// For the whole test binary, harness helpers included (clippy's allow-*-in-tests covers only
// `#[test]` functions, not the helpers they call).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "integration tests and their helpers report failure by panicking"
)]

// Not every test module uses every helper; the harness is an API, not dead code.
#[allow(dead_code)]
mod harness;

// ---------------------------------------------------------------------------------------------
// Test modules: add one `mod <area>;` line per file below (e.g. `mod pooler_auth;`,
// `mod admin_console;`). Pooler start/stop helpers belong in `harness/pooler.rs`, declared in
// `harness/mod.rs`, next to `postgres`, `files` and `tools`.
// ---------------------------------------------------------------------------------------------
mod admin_console;
mod admin_docs;
mod admin_exporter;
mod admin_pgbouncer_compat;
mod auth_rules;
mod core_auth;
mod core_binary;
mod core_pooling;
mod core_smoke;
mod core_timeouts;
mod docker_entrypoint;
mod faults;
mod faults_load;
mod harness_selftest;
mod host_lists;
mod hostile;
mod idle_memory;
mod isolation;
mod login_failures;
mod metrics_alerts;
mod metrics_alerts_webhook;
mod ops_conn_log;
mod ops_listen;
mod ops_logging;
mod ops_reload;
mod ops_restart;
mod ops_shutdown;
mod params_tracking;
mod prepared;
mod prepared_drivers;
mod prepared_model;
mod protocol_compat;
mod queue_giveup;
mod relay_bounds;
mod replication;
mod soak;
mod tls_auth;
mod tls_openssl_certs;
