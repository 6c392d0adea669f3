//! Renders `docs/configuration.md` from the settings table and the key lists.
//!
//! Owns: the text of the configuration reference. A unit test compares it with the committed
//! file (and rewrites the file when `UPDATE_DOCS=1`), so the docs cannot drift from the code.
//! Does not: read files.
//! Invariants: output is deterministic (table order, no timestamps).

use std::fmt::Write as _;

use super::settings::{self, Support};
use super::{connstr, users};

/// The whole markdown document.
pub fn render() -> String {
    let mut md = String::new();
    md.push_str(INTRO);
    for (group, list) in settings::GROUPS {
        let _ = writeln!(md, "\n### {group}\n");
        md.push_str("| setting | default | reload | pgsluice | meaning |\n|---|---|---|---|---|\n");
        for s in *list {
            let default = if s.default.is_empty() {
                "(empty)".to_owned()
            } else {
                format!("`{}`", s.default.replace('|', "\\|"))
            };
            let support = match s.support {
                Support::Ignored(why) => format!("ignored: {why}"),
                other => other.label().to_owned(),
            };
            let reload = if s.reload { "yes" } else { "restart" };
            let _ = writeln!(
                md,
                "| `{}` | {default} | {reload} | {support} | {} |",
                s.name, s.doc
            );
        }
    }
    md.push_str(
        "\nKeys of the awslabs pgbouncer-rr fork are accepted with a warning and ignored: ",
    );
    let rr: Vec<String> = settings::PGBOUNCER_RR_KEYS
        .iter()
        .map(|k| format!("`{k}`"))
        .collect();
    md.push_str(&rr.join(", "));
    md.push_str(".\n");
    md.push_str(DATABASES);
    key_table(&mut md, connstr::KEYS);
    md.push_str(
        "\npgsluice also accepts these per-database alert keys (kept for the alerts module): ",
    );
    let alerts: Vec<String> = connstr::ALERT_KEYS
        .iter()
        .map(|k| format!("`{k}`"))
        .collect();
    md.push_str(&alerts.join(", "));
    md.push_str(".\n");
    md.push_str(USERS);
    key_table(&mut md, users::KEYS);
    md.push_str(PEERS);
    md.push_str(STARTUP);
    md.push_str(REST);
    md
}

fn key_table(md: &mut String, keys: &[(&str, &str)]) {
    md.push_str("\n| key | meaning |\n|---|---|\n");
    for (k, doc) in keys {
        let _ = writeln!(md, "| `{k}` | {doc} |");
    }
}

const INTRO: &str = "# Configuration

<!-- Generated from src/config/settings.rs by `UPDATE_DOCS=1 cargo test --lib config`. Do not edit. -->

pgsluice reads an unchanged PgBouncer `pgbouncer.ini` and `userlist.txt`, or the same settings
in TOML (`pgsluice.toml`, chosen by the `.toml` extension).

## The ini file

- Sections: `[pgbouncer]` (required), `[databases]`, `[users]`, `[peers]`, and pgsluice's own
  `[pgsluice]`. Any other section is an error, as in PgBouncer.
- `key = value` lines; blanks around both are trimmed; lines starting with `;` or `#` are
  comments (a `;` later in a line is part of the value).
- Names are case-sensitive, as in PgBouncer (`Listen_Port` is an unknown parameter). The values
  of `pool_mode`, `auth_type` and the TLS modes are case-insensitive.
- `%include FILE` may appear anywhere; relative paths are relative to the working directory
  (not the including file), and includes nest at most 10 deep
  (\"include nesting level too deep\").
- An unknown `[pgbouncer]` key is an error (\"unknown parameter: pgbouncer/KEY\"), as in
  PgBouncer.
- Every error is reported as `FILE:LINE: REASON`.

## Values

- Times in `[pgbouncer]` are seconds and may be fractional (`0.5`); PgBouncer accepts no unit
  suffixes in the ini file and neither does pgsluice. Negative times are rejected. Values are
  kept to the microsecond. `tcp_user_timeout` is in milliseconds; `stats_period` is whole
  seconds.
- Integers are read like C's `strtol` with base 0: `0777` is octal, `0x10` is hexadecimal.
  Negative values are rejected.
- Booleans are integers: `0` is false, any other integer is true. `on`, `yes` and `true` are
  rejected, as PgBouncer rejects them.
- In `[databases]` and `[users]`, numbers are read like C's `atoi` (whole seconds for times,
  so `1.5` means 1); `-1` means \"not set\". A value with no digits is an error.

## `[pgbouncer]` settings

The default column is what SHOW CONFIG prints (integers as `%d`, times as `%g` seconds).
\"pgsluice\" says whether pgsluice acts on the setting: \"not yet\" settings are accepted and
validated, and logged once at start when set.
";

const DATABASES: &str = "
## `[databases]`

Each line is `name = key=value key=value ...`. Values may be single-quoted; `''` inside quotes
is a quote. Empty values are a syntax error. A name made of other characters than
`[A-Za-z0-9_.-]` is written in double quotes (`\"my db\" = ...`, `\"\"` is a quote). `*` is the
fallback used for any database not listed, with `dbname` defaulting to the requested name.
`pgbouncer` is reserved. An unknown key fails with \"unrecognized connection parameter: KEY\".
";

const USERS: &str = "
## `[users]`

Each line is `username = key=value ...`. Timeouts are whole seconds. An unknown key fails with
\"unrecognized user parameter: KEY\".
";

const PEERS: &str = "
## `[peers]`

Several pgsluice (or PgBouncer 1.21+) processes behind one TCP load balancer, such as pooler
replicas behind one Kubernetes Service or processes sharing a port with `so_reuseport`, form a
peer group so that cancel requests work: a cancel arrives on a new connection, which the
balancer may send to another process than the one that runs the query. Give each process a
unique `peer_id` (1 to 16383) and list the group in `[peers]`:

```ini
[pgbouncer]
peer_id = 1

[peers]
1 = host=/var/run/pgsluice-1
2 = host=pooler-2.example.com port=6432
3 = host=10.0.0.3 port=6432 pool_size=20
```

Each process then puts its `peer_id` in every cancel key it hands out (PgBouncer's encoding: the
2nd and 3rd bytes of the 8-byte key, plus a 2-bit forwarding TTL in its last byte), and a
cancel that carries another id is forwarded, as it is, to that peer; after three hops it is
dropped. Keys are compatible with PgBouncer 1.21 and later, so mixed groups work. The entry
for the process's own `peer_id` may be listed (it is ignored), so every process can share one
`[peers]` section.

| key | meaning |
|---|---|
| `host` | host name, IP, or unix socket directory (starts with `/`); required |
| `port` | port (default 6432) |
| `pool_size` | most cancels in flight to this peer at once (default `default_pool_size`); more wait for a free slot, within `cancel_wait_timeout` |

An id outside 1..65535, a missing `host` or another key is an error, as in PgBouncer. A peer
id the section does not list drops the cancel (\"could not find peer to forward request
to\" in the log). With `peer_id = 0` (the default) keys are fully random and `[peers]` is not
used.
";

const STARTUP: &str = "
## Startup parameters

A client's StartupMessage may carry `user`, `database`, the tracked parameters, `_pq_.*`
protocol options (answered with NegotiateProtocolVersion and ignored), and anything listed in
`ignore_startup_parameters`. Any other parameter ends the login with \"unsupported startup
parameter: NAME\".

As PgBouncer 1.26, pgsluice tracks every writable parameter PostgreSQL reports:
`application_name`, `client_encoding`, `DateStyle`, `default_transaction_read_only`,
`IntervalStyle`, `scram_iterations`, `search_path`, `session_authorization`,
`standard_conforming_strings` and `TimeZone`, plus the names in `track_extra_parameters` (read
at start; names are case-insensitive, at most 32 tracked in all, `options` cannot be listed). A
tracked value the client gives at startup, in `options` or with `SET` (when the server reports
it) follows the client: whenever it gets a server whose value differs, pgsluice sends `SET`
first. A parameter the server does not report (`search_path` before PostgreSQL 18) is carried
from the startup packet and `options` to every server the client uses, pgsluice remembering
what it set on each server; a plain `SET` of such a parameter stays on that server, so use
`server_reset_query_always` or session mode if clients do that. The `auth_query` connection
never gets a client's parameters.

`options` is read as PostgreSQL reads it, within PgBouncer's limits: only `-c name=value`,
`-cname=value` and `--name=value` arguments, separated by blanks, with `\\` making the next
character literal (`options=-c datestyle=German,\\ YMD`). Each pair is treated like a startup
parameter of that name: tracked ones are applied to the client's session, names in
`ignore_startup_parameters` are skipped, and any other name fails with \"unsupported startup
parameter in options: NAME\", unless `options` itself is in `ignore_startup_parameters` (then
unknown pairs are skipped and tracked ones still apply). Any other argument (`-d 5`, `-c name`
without a value) fails with \"unsupported options startup parameter: only '-c config=val' and
'--config=val' are allowed\".

A client that asks for a newer protocol minor version than 3.0 (PostgreSQL 18's 3.2, or the
3.9999 \"grease\" of PostgreSQL 19's libpq) or sends `_pq_.` options gets one
NegotiateProtocolVersion (3.0 and the options not recognised) and logs in on 3.0.

At login, besides the server's parameters, a client gets PgBouncer 1.26's reports as
ParameterStatus: `pgbouncer.version` (the emulated version, `1.26.0` by default),
`pgbouncer.pool_mode` (the pool's mode) and `pgbouncer.max_prepared_statements`; they are left
out when `admin_compat_version` in `[pgsluice]` names an older PgBouncer. A non-empty
`login_notify_message` is sent as a NOTICE (SQLSTATE 00000) just before the first
ReadyForQuery.
";

const REST: &str = "
## `auth_file` (userlist.txt)

- One user per line: `\"username\" \"secret\"`; `\"\"` inside a field is a quote; anything after
  the second field is ignored; lines starting with `;` are comments.
- A malformed line ends the reading there, as in PgBouncer (\"broken auth file\"): the users
  before it are kept and a warning names the file and line.
- User names must be shorter than 128 bytes; secrets at most 65535 bytes.
- Secrets: `md5` followed by exactly 32 lower-case hex digits is an MD5 secret;
  `SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>` (base64, 32-byte keys) is a SCRAM
  secret; anything else, including a malformed SCRAM string, is a plain-text password (the
  rule PgBouncer and PostgreSQL use).
- A relative `auth_file` path is relative to the working directory. The file is read at load
  and on every reload.

## The TOML form

`pgsluice.toml` holds the same settings:

```toml
[pgbouncer]
listen_addr = \"127.0.0.1\"
listen_port = 6432
pool_mode = \"transaction\"
server_idle_timeout = 600        # seconds, or a string with a unit: \"10min\"
query_wait_timeout = \"2min\"
log_connections = true           # booleans may be TOML booleans or 0/1
admin_users = [\"admin\"]          # lists may be arrays or comma-separated strings
auth_file = \"config/userlist.txt\"

[databases.app]
host = \"127.0.0.1\"
port = 5432
dbname = \"app\"

[users.app]
pool_mode = \"session\"

[pgsluice]
metrics_listen = \"127.0.0.1:9127\"
```

Time strings accept the units `us`, `ms`, `s`, `min`, `h`, `d` (a pgsluice extension; the ini
form has none). `[databases.\"*\"]` is the fallback. Every other rule, default and error is the
ini form's.

## `[pgsluice]`

pgsluice's own settings (metrics, alerts) live in a `[pgsluice]` section, either in the main
file or in a separate file given on the command line (ini or TOML; only `[pgsluice]` is
allowed there, and its values win). PgBouncer itself rejects an unknown section, so keep
`[pgsluice]` in the separate file if the same `pgbouncer.ini` must also run under PgBouncer.
The values are kept as text for the modules that own them; see `metrics-and-alerts.md`.

Operations keys (`operations.md`):

| key | default | reload | meaning |
|---|---|---|---|
| `log_format` | `text` | yes | `text`, or `json` for one JSON object per line (stderr and `logfile`) |
| `syslog_socket` | `/dev/log` | yes | the local syslog socket `syslog = 1` writes to |
| `worker_threads` | one per core (following a cgroup CPU limit) | restart | threads of the runtime; on a small host shared with Postgres, 1 costs less CPU per transaction (docs/performance.md) |
";
