//! Test harness shared by every integration test module.
//!
//! * `postgres` — one throwaway PostgreSQL cluster per test process, with a role per auth method.
//! * `pooler` — an in-process pooler on a free port (`Pooler::start`), its connections, and the
//!   bounded wait on a condition (`eventually`) that every test uses instead of a sleep.
//! * `raw` — raw-socket clients (startup packets, logins with any parameters and protocol
//!   version, reading replies message by message) and pgsluice run as its own process.
//! * `certs` — a throwaway CA and the certificates the TLS tests need.
//! * `files` — temporary config directories and userlist.txt lines.
//! * `tools` — `psql` / `pgbench` as subprocesses with timeouts.
//! * `logs` — the log lines of in-process poolers (a global `tracing` subscriber, opt-in).
//! * `metrics` — a pooler's `/metrics` page and admin console rows.
//! * `webhook` — loopback receivers for the alert webhook (recording, slow, closed port).
//!
//! Everything here is blocking std code or plain async over tokio-postgres: each
//! `#[tokio::test]` has its own runtime, so nothing may keep a runtime handle in a static.

pub mod certs;
pub mod files;
pub mod logs;
pub mod metrics;
pub mod pooler;
pub mod postgres;
pub mod raw;
pub mod tools;
pub mod webhook;
