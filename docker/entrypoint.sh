#!/bin/sh
# pgsluice container entrypoint.
#
# Uses /etc/pgbouncer/pgbouncer.ini when one is mounted. Otherwise writes pgbouncer.ini and
# userlist.txt from environment variables, with the variable names the common PgBouncer images
# use (DATABASE_URL or DB_HOST/DB_PORT/DB_NAME/DB_USER/DB_PASSWORD, POOL_MODE, ...; the bitnami
# POSTGRESQL_* and PGBOUNCER_* names too). docs/docker.md lists every variable.
#
# Then validates the file with `pgsluice --check` and execs pgsluice, so signals (SIGHUP
# reload, SIGTERM drain) reach it directly.
#
# Controls (not settings):
#   PGSLUICE_CONFIG_DIR      where the files are read or written (default /etc/pgbouncer)
#   PGSLUICE_GENERATE_ONLY=1 write the files and exit (used by the test suite)
#   PGSLUICE_FORCE_GENERATE=1 write the files even if pgbouncer.ini exists
#   PGSLUICE_BIN             the pgsluice binary (default: pgsluice on PATH)
set -eu

CONFIG_DIR=${PGSLUICE_CONFIG_DIR:-/etc/pgbouncer}
INI=$CONFIG_DIR/pgbouncer.ini
USERLIST=$CONFIG_DIR/userlist.txt
BIN=${PGSLUICE_BIN:-pgsluice}

log() { printf 'entrypoint: %s\n' "$*" >&2; }
fail() { log "ERROR: $*"; exit 1; }

# %XX decoding for the user, password and database parts of DATABASE_URL.
urldecode() {
  printf '%s' "$1" | awk '
    BEGIN { hex = "0123456789abcdef" }
    {
      out = ""; s = $0
      while ((i = index(s, "%")) > 0) {
        h = tolower(substr(s, i + 1, 2))
        a = index(hex, substr(h, 1, 1)); b = index(hex, substr(h, 2, 1))
        if (length(h) == 2 && a > 0 && b > 0) {
          out = out substr(s, 1, i - 1) sprintf("%c", (a - 1) * 16 + b - 1); s = substr(s, i + 3)
        } else {
          out = out substr(s, 1, i); s = substr(s, i + 1)
        }
      }
      printf "%s", out s
    }'
}

# Splits DATABASE_URL (postgres://user:pass@host:port/db?sslmode=...) into the DB_* variables;
# explicit DB_* variables win.
parse_database_url() {
  url=$1
  case $url in
    postgres://* | postgresql://*) rest=${url#*://} ;;
    *) fail "DATABASE_URL must start with postgres:// or postgresql://" ;;
  esac
  query=
  case $rest in *\?*) query=${rest#*\?}; rest=${rest%%\?*} ;; esac
  path=
  case $rest in */*) path=${rest#*/}; rest=${rest%%/*} ;; esac
  userinfo=
  case $rest in *@*) userinfo=${rest%@*}; rest=${rest##*@} ;; esac
  hostport=$rest
  case $hostport in
    \[*\]:*) url_host=${hostport%%]*}; url_host=${url_host#[}; url_port=${hostport##*]:} ;;
    \[*\]) url_host=${hostport#[}; url_host=${url_host%]}; url_port= ;;
    *:*) url_host=${hostport%%:*}; url_port=${hostport#*:} ;;
    *) url_host=$hostport; url_port= ;;
  esac
  url_user=; url_password=
  if [ -n "$userinfo" ]; then
    case $userinfo in
      *:*) url_user=${userinfo%%:*}; url_password=${userinfo#*:} ;;
      *) url_user=$userinfo ;;
    esac
  fi
  DB_HOST=${DB_HOST:-$url_host}
  DB_PORT=${DB_PORT:-$url_port}
  DB_USER=${DB_USER:-$(urldecode "$url_user")}
  DB_PASSWORD=${DB_PASSWORD:-$(urldecode "$url_password")}
  DB_NAME=${DB_NAME:-$(urldecode "$path")}
  # sslmode is the one URL parameter with a pooler equivalent.
  old_ifs=$IFS; IFS='&'
  for pair in $query; do
    case $pair in
      sslmode=*) SERVER_TLS_SSLMODE=${SERVER_TLS_SSLMODE:-${pair#sslmode=}} ;;
      *) log "DATABASE_URL parameter ignored: ${pair%%=*}" ;;
    esac
  done
  IFS=$old_ifs
}

# A connection-string value, single-quoted when it needs to be ('' escapes a quote).
connstr_value() {
  case $1 in
    *[\ \'\\]* | '') printf "'%s'" "$(printf '%s' "$1" | sed "s/'/''/g")" ;;
    *) printf '%s' "$1" ;;
  esac
}

# A userlist.txt field: double-quoted, "" escapes a quote.
userlist_field() {
  printf '"%s"' "$(printf '%s' "$1" | sed 's/"/""/g')"
}

# Every [pgbouncer] setting the bare variable names (POOL_MODE=...) may set. Connection,
# listener and auth-file settings are written separately below.
SETTINGS="pool_mode max_client_conn default_pool_size min_pool_size reserve_pool_size
reserve_pool_timeout max_db_connections max_db_client_connections max_user_connections
max_user_client_connections server_round_robin disable_pqexec application_name_add_host
max_prepared_statements track_extra_parameters stats_period log_connections log_disconnections
log_pooler_errors log_stats verbose syslog syslog_ident syslog_facility logfile pidfile
stats_users server_reset_query server_reset_query_always server_check_delay server_check_query
server_fast_close server_lifetime server_idle_timeout server_connect_timeout server_login_retry
client_login_timeout autodb_idle_timeout dns_max_ttl dns_nxdomain_ttl query_wait_notify
client_tls_sslmode client_tls_key_file client_tls_cert_file client_tls_ca_file
client_tls_protocols client_tls_ciphers client_tls13_ciphers client_tls_ecdhcurve
client_tls_dheparams server_tls_sslmode server_tls_ca_file server_tls_key_file
server_tls_cert_file server_tls_protocols server_tls_ciphers server_tls13_ciphers query_timeout
query_wait_timeout cancel_wait_timeout client_idle_timeout idle_transaction_timeout
transaction_timeout suspend_timeout pkt_buf max_packet_size listen_backlog sbuf_loopcnt
so_reuseport tcp_defer_accept tcp_socket_buffer tcp_keepalive tcp_keepcnt tcp_keepidle
tcp_keepintvl tcp_user_timeout auth_hba_file auth_user auth_query auth_dbname user
unix_socket_mode unix_socket_group"

# The value of the variable named $1, or nothing.
env_value() { eval "printf '%s' \"\${$1:-}\""; }

upper() { printf '%s' "$1" | tr '[:lower:]' '[:upper:]'; }
lower() { printf '%s' "$1" | tr '[:upper:]' '[:lower:]'; }

check_value() {
  case $2 in
    *'
'*) fail "$1 contains a newline" ;;
  esac
}

generate() {
  # bitnami names, mapped onto the edoburu ones.
  DB_HOST=${DB_HOST:-${POSTGRESQL_HOST:-}}
  DB_PORT=${DB_PORT:-${POSTGRESQL_PORT:-}}
  DB_USER=${DB_USER:-${POSTGRESQL_USERNAME:-}}
  DB_PASSWORD=${DB_PASSWORD:-${POSTGRESQL_PASSWORD:-}}
  DB_NAME=${DB_NAME:-${POSTGRESQL_DATABASE:-}}
  LISTEN_PORT=${LISTEN_PORT:-${PGBOUNCER_PORT:-6432}}
  if [ -n "${DATABASE_URL:-}" ]; then
    parse_database_url "$DATABASE_URL"
  fi
  [ -n "${DB_HOST:-}" ] || fail "set DATABASE_URL or DB_HOST (or mount $INI)"
  # The name clients use: PGBOUNCER_DATABASE (bitnami), else DB_NAME, else every name (*).
  alias=${PGBOUNCER_DATABASE:-${DB_NAME:-*}}
  db_line="host=$(connstr_value "$DB_HOST") port=$(connstr_value "${DB_PORT:-5432}")"
  if [ -n "${DB_NAME:-}" ]; then
    db_line="$db_line dbname=$(connstr_value "$DB_NAME")"
  fi
  [ -z "${POOL_SIZE:-}" ] || db_line="$db_line pool_size=$(connstr_value "$POOL_SIZE")"
  [ -z "${CLIENT_ENCODING:-}" ] || db_line="$db_line client_encoding=$(connstr_value "$CLIENT_ENCODING")"
  [ -z "${TIMEZONE:-}" ] || db_line="$db_line timezone=$(connstr_value "$TIMEZONE")"
  check_value DB_HOST "$DB_HOST"

  mkdir -p "$CONFIG_DIR"
  tmp=$INI.tmp.$$
  {
    echo ";; Written by docker/entrypoint.sh from environment variables; mount your own"
    echo ";; $INI to use it instead."
    echo "[databases]"
    echo "$alias = $db_line"
    echo
    echo "[pgbouncer]"
    echo "listen_addr = ${LISTEN_ADDR:-*}"
    echo "listen_port = $LISTEN_PORT"
    echo "unix_socket_dir = ${UNIX_SOCKET_DIR:-}"
    echo "auth_type = ${AUTH_TYPE:-${PGBOUNCER_AUTH_TYPE:-md5}}"
    echo "auth_file = ${AUTH_FILE:-$USERLIST}"
    echo "admin_users = ${ADMIN_USERS:-${PGBOUNCER_ADMIN_USERS:-postgres}}"
    echo "ignore_startup_parameters = ${IGNORE_STARTUP_PARAMETERS:-${PGBOUNCER_IGNORE_STARTUP_PARAMETERS:-extra_float_digits}}"
    for name in $SETTINGS; do
      # The bare name (POOL_MODE) wins over the bitnami one (PGBOUNCER_POOL_MODE).
      var=$(upper "$name")
      value=
      # A shell's own USER variable must not switch the pooler's user: PGBOUNCER_USER only.
      [ "$var" = USER ] || value=$(env_value "$var")
      [ -n "$value" ] || value=$(env_value "PGBOUNCER_$var")
      if [ -n "$value" ]; then
        check_value "$var" "$value"
        echo "$name = $value"
      fi
    done
    pgsluice_section
  } >"$tmp"
  mv "$tmp" "$INI"
  log "wrote $INI"
  write_userlist
}

# [pgsluice] from PGSLUICE_<NAME> variables, except the entrypoint's own controls.
pgsluice_section() {
  echo
  echo "[pgsluice]"
  env | sed -n 's/^PGSLUICE_\([A-Z0-9_]*\)=.*/\1/p' | sort | while read -r var; do
    case $var in
      CONFIG_DIR | GENERATE_ONLY | FORCE_GENERATE | BIN) continue ;;
    esac
    value=$(env_value "PGSLUICE_$var")
    check_value "PGSLUICE_$var" "$value"
    echo "$(lower "$var") = $value"
  done
}

# userlist.txt gets DB_USER with its plain password (which logs in to servers with md5 or
# SCRAM alike); an existing file keeps its other lines.
write_userlist() {
  file=${AUTH_FILE:-$USERLIST}
  [ -n "${DB_USER:-}" ] || { [ -e "$file" ] || : >"$file"; return 0; }
  if [ -z "${DB_PASSWORD:-}" ]; then
    log "DB_USER without DB_PASSWORD: $DB_USER must already be in $file"
    [ -e "$file" ] || : >"$file"
    return 0
  fi
  check_value DB_PASSWORD "$DB_PASSWORD"
  line="$(userlist_field "$DB_USER") $(userlist_field "$DB_PASSWORD")"
  umask 077
  if [ -e "$file" ]; then
    tmp=$file.tmp.$$
    grep -v "^$(userlist_field "$DB_USER" | sed 's/[].[*^$\\/]/\\&/g') " "$file" >"$tmp" || true
    echo "$line" >>"$tmp"
    mv "$tmp" "$file"
  else
    echo "$line" >"$file"
  fi
  log "wrote $file (user $DB_USER)"
}

# `docker run IMAGE sh` and the like: another command than pgsluice (its first argument does
# not start with -). It gets the generated files when there are variables to write them from,
# and runs without them otherwise.
other_command=0
if [ $# -gt 0 ] && [ "${1#-}" = "$1" ]; then
  other_command=1
fi

if [ ! -e "$INI" ] || [ "${PGSLUICE_FORCE_GENERATE:-0}" = 1 ]; then
  if [ "$other_command" = 1 ] && [ -z "${DATABASE_URL:-}${DB_HOST:-}${POSTGRESQL_HOST:-}" ]; then
    :
  else
    generate
  fi
else
  log "using $INI"
fi

if [ "${PGSLUICE_GENERATE_ONLY:-0}" = 1 ]; then
  exit 0
fi

if [ "$other_command" = 1 ]; then
  exec "$@"
fi

"$BIN" --check "$INI" >/dev/null || fail "$INI is not valid"
exec "$BIN" "$@" "$INI"
