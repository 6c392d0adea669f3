//! The one table of `[pgbouncer]` settings.
//!
//! Owns: for every setting PgBouncer knows: its name, its default as SHOW CONFIG prints it
//! (integers `%d`, times `%g` seconds), whether RELOAD can change it, whether pgsluice acts on
//! it, its value kind, and a one-line description. Defaults of [`General`](super::General),
//! the value checks of both file forms, SHOW CONFIG and `docs/configuration.md` all come from
//! here.
//! Does not: store values (see `general.rs`).
//! Invariants: names are unique and sorted within their group; every default parses under its
//! own kind (a unit test applies them all).

/// Whether pgsluice acts on a setting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Support {
    /// Implemented.
    Supported,
    /// Accepted and validated, not acted on yet; logged once at start when set.
    NotYet,
    /// Accepted and deliberately ignored, for the reason given.
    Ignored(&'static str),
}

impl Support {
    /// Short text for docs.
    pub fn label(self) -> &'static str {
        match self {
            Support::Supported => "yes",
            Support::NotYet => "not yet",
            Support::Ignored(_) => "ignored",
        }
    }
}

/// How a value is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `strtol` integer (base 0).
    Int,
    /// Integer used as a boolean.
    Bool,
    /// Seconds, fractional allowed.
    Time,
    /// Free text.
    Str,
    /// Comma-separated list.
    List,
    /// A file name.
    Path,
    /// One of the listed words, case-insensitive.
    Choice(&'static [&'static str]),
}

/// One `[pgbouncer]` setting.
#[derive(Debug, Clone, Copy)]
pub struct Setting {
    /// Name in the ini file.
    pub name: &'static str,
    /// Default, as SHOW CONFIG prints it.
    pub default: &'static str,
    /// Whether RELOAD applies a change (SHOW CONFIG `changeable`).
    pub reload: bool,
    /// Whether pgsluice acts on it.
    pub support: Support,
    /// How the value is read.
    pub kind: Kind,
    /// Whether PgBouncer lists it in SHOW CONFIG on non-Windows systems.
    pub shown: bool,
    /// One-line description.
    pub doc: &'static str,
}

/// The reference group a setting is documented under.
pub const GROUPS: &[(&str, &[Setting])] = &[
    ("Generic", GENERIC),
    ("Authentication", AUTH),
    ("Logging", LOGGING),
    ("Console access", CONSOLE),
    ("Connection sanity checks and timeouts", SANITY),
    ("TLS", TLS),
    ("\"Dangerous\" timeouts", DANGEROUS),
    ("Low-level network", NETWORK),
];

/// Keys of the awslabs pgbouncer-rr fork: accepted with a warning and ignored.
pub const PGBOUNCER_RR_KEYS: &[&str] = &[
    "rewrite_query_disconnect_on_failure",
    "rewrite_query_py_module_file",
    "routing_rules_py_module_file",
];

/// Finds a setting by exact (case-sensitive, as PgBouncer) name.
pub fn find(name: &str) -> Option<&'static Setting> {
    all().find(|s| s.name == name)
}

/// Every setting, group by group.
pub fn all() -> impl Iterator<Item = &'static Setting> {
    GROUPS.iter().flat_map(|(_, list)| list.iter())
}

/// The 1.24.1+ default `auth_query`.
pub const DEFAULT_AUTH_QUERY: &str = "SELECT rolname, CASE WHEN rolvaliduntil < now() THEN NULL ELSE rolpassword END FROM pg_authid WHERE rolname=$1 AND rolcanlogin";

const POOL_MODES: &[&str] = &["session", "transaction", "statement"];
const AUTH_TYPES: &[&str] = &[
    "cert",
    "md5",
    "scram-sha-256",
    "plain",
    "trust",
    "any",
    "hba",
    "ldap",
    "pam",
];
const SSLMODES: &[&str] = &[
    "disable",
    "allow",
    "prefer",
    "require",
    "verify-ca",
    "verify-full",
];

use Kind::{Bool, Choice, Int, List, Path, Str, Time};
use Support::{Ignored, NotYet, Supported};

const fn s(
    name: &'static str,
    default: &'static str,
    reload: bool,
    support: Support,
    kind: Kind,
    doc: &'static str,
) -> Setting {
    Setting {
        name,
        default,
        reload,
        support,
        kind,
        shown: true,
        doc,
    }
}

const fn hidden(mut st: Setting) -> Setting {
    st.shown = false;
    st
}

const WINDOWS: Support =
    Ignored("Windows service name; pgsluice does not run as a Windows service");

// One setting per line, so the table reads as a table.
#[rustfmt::skip]
const GENERIC: &[Setting] = &[
    s("logfile", "", true, Supported, Path, "Log file; reopened on RELOAD/SIGHUP."),
    s("pidfile", "", false, Supported, Path, "PID file; needed with -d."),
    s("listen_addr", "", false, Supported, List, "Comma-separated addresses to listen on, `*` for all; empty means the unix socket only."),
    s("listen_port", "6432", false, Supported, Int, "TCP port; also part of the unix socket name."),
    s("unix_socket_dir", "/tmp", false, Supported, Str, "Unix socket directory; empty disables the socket."),
    s("unix_socket_mode", "511", false, Supported, Int, "Permissions of the socket file (0777 = 511)."),
    s("unix_socket_group", "", false, Supported, Str, "Group of the socket file."),
    s("user", "", false, Supported, Str, "Unix user to switch to at start (like -u), before any file is created."),
    s("pool_mode", "session", true, Supported, Choice(POOL_MODES), "When a server goes back to the pool: session, transaction or statement."),
    s("max_client_conn", "100", true, Supported, Int, "Maximum client connections in total."),
    s("default_pool_size", "20", true, Supported, Int, "Servers per (database, user) pool unless overridden; 0 means unlimited."),
    s("min_pool_size", "0", true, Supported, Int, "Keep at least this many servers in a pool."),
    s("reserve_pool_size", "0", true, Supported, Int, "Extra servers allowed when a client has waited reserve_pool_timeout."),
    s("reserve_pool_timeout", "5", true, Supported, Time, "How long a client waits before the reserve pool is used."),
    s("max_db_connections", "0", true, Supported, Int, "Servers per database over all users; 0 means unlimited."),
    s("max_db_client_connections", "0", true, Supported, Int, "Clients per database (also per database in [databases]); 0 means unlimited. Further logins get `client connections exceeded (max_db_client_connections)`, SQLSTATE 08P01 (as PgBouncer); console logins count too, `admin_users` are never refused."),
    s("max_user_connections", "0", true, Supported, Int, "Servers per user over all databases; 0 means unlimited."),
    s("max_user_client_connections", "0", true, Supported, Int, "Clients per user (also per user in [users]); 0 means unlimited. Further logins get `client connections exceeded (max_user_client_connections)`, SQLSTATE 08P01 (as PgBouncer); console logins count too, `admin_users` are never refused."),
    s("server_round_robin", "0", true, Supported, Bool, "Reuse servers in FIFO instead of LIFO order."),
    s("track_extra_parameters", "IntervalStyle", false, Supported, List, "Extra reported parameters tracked per client, added to the defaults."),
    s("ignore_startup_parameters", "", true, Supported, List, "Startup parameters accepted and ignored (e.g. extra_float_digits)."),
    s("peer_id", "0", true, Supported, Int, "This process's id in a peer group (1-16383; 0 disables peering): it is encoded in every cancel key, and cancels carrying another id are forwarded to that `[peers]` entry."),
    s("disable_pqexec", "0", false, NotYet, Bool, "Reject the simple query protocol."),
    s("application_name_add_host", "0", true, Supported, Bool, "Append the client address and port to application_name."),
    s("conffile", "", true, Supported, Path, "The configuration file RELOAD reads."),
    hidden(s("service_name", "pgbouncer", false, WINDOWS, Str, "Windows service name.")),
    hidden(s("job_name", "pgbouncer", false, WINDOWS, Str, "Alias of service_name.")),
    s("stats_period", "60", true, Supported, Int, "Seconds between stats averages and the stats log line."),
    s("max_prepared_statements", "200", true, Supported, Int, "Named protocol-level prepared statements kept per server (LRU) in transaction and statement mode; 0 turns tracking off."),
    s("scram_iterations", "4096", true, NotYet, Int, "Iterations used when computing SCRAM secrets."),
    s("pool_idle_timeout", "0", true, Supported, Time, "Free a pool with no clients and no servers after this long."),
    s("login_notify_message", "", true, Supported, Str, "NOTICE sent to clients after login."),
];

// One setting per line, so the table reads as a table.
#[rustfmt::skip]
const AUTH: &[Setting] = &[
    s("auth_type", "md5", true, Supported, Choice(AUTH_TYPES), "trust, any, plain, md5, scram-sha-256, cert and hba are supported; pam and ldap are not."),
    s("auth_hba_file", "", true, Supported, Path, "HBA file used with auth_type = hba (local/host/hostssl/hostnossl; trust, reject, md5, scram-sha-256, password, cert, peer); re-read on RELOAD."),
    s("auth_ident_file", "", true, Supported, Path, "User-name maps (pg_ident.conf subset) for HBA cert and peer rules with map=; re-read on RELOAD."),
    s("auth_file", "", true, Supported, Path, "The userlist file; relative paths are relative to the working directory."),
    s("auth_user", "", true, Supported, Str, "User that runs auth_query for users missing from auth_file."),
    s("auth_query", DEFAULT_AUTH_QUERY, true, Supported, Str, "Query that fetches a user's password hash; run at every login of a user missing from auth_file."),
    s("auth_dbname", "", true, Supported, Str, "Database auth_query runs in."),
    s("auth_ldap_options", "", true, NotYet, Str, "LDAP options for auth_type = ldap."),
];

// One setting per line, so the table reads as a table.
#[rustfmt::skip]
const LOGGING: &[Setting] = &[
    s("syslog", "0", true, Supported, Bool, "Log to syslog (RFC 3164 lines to /dev/log, or [pgsluice] syslog_socket)."),
    s("syslog_ident", "pgbouncer", true, Supported, Str, "Syslog ident."),
    s("syslog_facility", "daemon", true, Supported, Str, "Syslog facility: auth, authpriv, daemon, user, local0-local7."),
    s("log_connections", "1", true, Supported, Bool, "Log successful logins."),
    s("log_disconnections", "1", true, Supported, Bool, "Log disconnections with their reason."),
    s("log_pooler_errors", "1", true, Supported, Bool, "Log the errors sent to clients."),
    s("log_stats", "1", true, Supported, Bool, "Log a stats line every stats_period."),
    s("verbose", "0", true, Supported, Int, "Verbosity, like -v."),
];

// One setting per line, so the table reads as a table.
#[rustfmt::skip]
const CONSOLE: &[Setting] = &[
    s("admin_users", "", true, Supported, List, "Users allowed every console command."),
    s("stats_users", "", true, Supported, List, "Users allowed the read-only SHOW commands."),
];

// One setting per line, so the table reads as a table.
#[rustfmt::skip]
const SANITY: &[Setting] = &[
    s("server_reset_query", "DISCARD ALL", true, Supported, Str, "Run when a server is released (session mode unless server_reset_query_always)."),
    s("server_reset_query_always", "0", true, Supported, Bool, "Run server_reset_query in every pool mode."),
    s("server_check_delay", "30", true, Supported, Time, "How long a released server may be reused without a check."),
    s("server_check_query", "<empty>", true, Supported, Str, "Health check query; `<empty>` sends an empty query, an empty value disables the check."),
    s("server_fast_close", "0", true, Supported, Bool, "In session mode, close servers needing a close at transaction end."),
    s("server_lifetime", "3600", true, Supported, Time, "Close unused servers older than this; 0 means use once."),
    s("server_idle_timeout", "600", true, Supported, Time, "Close servers idle this long; 0 disables."),
    s("server_connect_timeout", "15", true, Supported, Time, "Time limit for connect plus login."),
    s("server_login_retry", "15", true, Supported, Time, "Wait after a failed server login before the next attempt; meanwhile, with no server open, clients that need one get `server login has been failing, cached error: ...`."),
    s("client_login_timeout", "60", true, Supported, Time, "Time a client has to finish logging in; 0 disables."),
    s("autodb_idle_timeout", "3600", true, Supported, Time, "Free databases created from `*` after idle this long."),
    s("dns_max_ttl", "15", true, NotYet, Time, "How long DNS answers are cached."),
    s("dns_nxdomain_ttl", "15", true, NotYet, Time, "How long DNS errors are cached."),
    s("dns_zone_check_period", "0", true, NotYet, Time, "SOA serial polling period (c-ares)."),
    s("resolv_conf", "", false, NotYet, Path, "A custom resolv.conf."),
    s("query_wait_notify", "5", true, Supported, Time, "NOTICE to a client queued this long; 0 disables."),
];

// One setting per line, so the table reads as a table.
#[rustfmt::skip]
const TLS: &[Setting] = &[
    s("client_tls_sslmode", "disable", true, Supported, Choice(SSLMODES), "TLS mode towards clients; require and above refuse plain-text logins over TCP."),
    s("client_tls_key_file", "", true, Supported, Path, "Private key for client TLS (PEM); re-read on RELOAD."),
    s("client_tls_cert_file", "", true, Supported, Path, "Certificate chain for client TLS (PEM); re-read on RELOAD."),
    s("client_tls_ca_file", "", true, Supported, Path, "CA to verify client certificates (required from verify-ca up)."),
    s("client_tls_protocols", "secure", true, Supported, Str, "Allowed TLS versions towards clients; only TLS 1.2 and 1.3 exist in rustls."),
    s("client_tls_ciphers", "default", true, Supported, Str, "Cipher list for TLS <= 1.2 towards clients; names rustls lacks are ignored with a warning."),
    s("client_tls13_ciphers", "", true, Supported, Str, "TLS 1.3 cipher suites towards clients."),
    s("client_tls_ecdhcurve", "auto", true, Ignored("rustls negotiates X25519, P-256 or P-384 itself"), Str, "ECDH curve towards clients."),
    s("client_tls_dheparams", "auto", true, Ignored("rustls offers no finite-field DH suites"), Str, "DH parameters towards clients."),
    s("server_tls_sslmode", "prefer", true, Supported, Choice(SSLMODES), "TLS mode towards servers, with libpq's meanings (allow behaves as prefer)."),
    s("server_tls_ca_file", "", true, Supported, Path, "CA to verify servers (required for verify-ca and verify-full; makes require check the chain)."),
    s("server_tls_key_file", "", true, Supported, Path, "Private key for a client certificate towards servers."),
    s("server_tls_cert_file", "", true, Supported, Path, "Client certificate towards servers."),
    s("server_tls_protocols", "secure", true, Supported, Str, "Allowed TLS versions towards servers; only TLS 1.2 and 1.3 exist in rustls."),
    s("server_tls_ciphers", "default", true, Supported, Str, "Cipher list for TLS <= 1.2 towards servers."),
    s("server_tls13_ciphers", "", true, Supported, Str, "TLS 1.3 cipher suites towards servers."),
];

// One setting per line, so the table reads as a table.
#[rustfmt::skip]
const DANGEROUS: &[Setting] = &[
    s("query_timeout", "0", true, Supported, Time, "Cancel queries running longer than this; 0 disables."),
    s("query_wait_timeout", "120", true, Supported, Time, "Disconnect a client not given a server within this time; 0 waits forever."),
    s("cancel_wait_timeout", "10", true, Supported, Time, "Give up forwarding a cancel request after this."),
    s("client_idle_timeout", "0", true, Supported, Time, "Close clients idle this long; 0 disables."),
    s("idle_transaction_timeout", "0", true, Supported, Time, "Disconnect clients idle inside a transaction this long; 0 disables."),
    s("transaction_timeout", "0", true, Supported, Time, "Disconnect clients whose transaction is open this long; 0 disables."),
    s("suspend_timeout", "10", true, NotYet, Time, "Buffer flush limit during SUSPEND."),
];

// One setting per line, so the table reads as a table.
#[rustfmt::skip]
const NETWORK: &[Setting] = &[
    s("pkt_buf", "4096", false, Supported, Int, "Internal packet buffer size."),
    s("max_packet_size", "2147483647", true, Supported, Int, "Largest packet accepted."),
    s("listen_backlog", "128", false, Supported, Int, "listen(2) backlog."),
    s("sbuf_loopcnt", "5", true, Ignored("the multi-threaded runtime schedules connections fairly by itself"), Int, "Rounds one connection is served before moving on."),
    s("so_reuseport", "0", false, Supported, Bool, "Set SO_REUSEPORT so several processes share the port."),
    s("tcp_defer_accept", "1", true, Ignored("no safe binding sets TCP_DEFER_ACCEPT; accepting at once costs one wake-up per connection"), Int, "TCP_DEFER_ACCEPT (Linux)."),
    s("tcp_socket_buffer", "0", true, Supported, Int, "Socket buffer size; 0 keeps the OS default."),
    s("tcp_keepalive", "1", true, Supported, Bool, "SO_KEEPALIVE."),
    s("tcp_keepcnt", "0", true, Supported, Int, "Keepalive probe count; 0 keeps the OS default."),
    s("tcp_keepidle", "0", true, Supported, Int, "Keepalive idle seconds; 0 keeps the OS default."),
    s("tcp_keepintvl", "0", true, Supported, Int, "Keepalive interval seconds; 0 keeps the OS default."),
    s("tcp_user_timeout", "0", true, Supported, Int, "TCP_USER_TIMEOUT in milliseconds (Linux); 0 disables."),
];
