#!/usr/bin/env bash
# The team tracking server (`make server`, `make server-stop`): a PostgreSQL cluster as MLflow's backend store
# (runs, params, metrics, the model registry) and `mlflow server` in front of it with a proxied artifact store
# (clients upload and download artifacts through the server, which keeps them in <dir>/artifacts), with MLflow's
# basic-auth app on: every request but /health needs a user name and password (HTTP basic auth; MLflow's clients
# send MLFLOW_TRACKING_USERNAME / MLFLOW_TRACKING_PASSWORD), others get 401. The first start creates the user
# `admin` with a generated password in <dir>/admin-password; the admin adds teammates (<URI>/signup, or
# mlflow.server.get_app_client("basic-auth")), who may read and log runs in any experiment (default permission
# EDIT) but delete only in experiments (and models) they created or were granted MANAGE on.
#
#   scripts/server.sh start [--host H] [--port P] [other `mlflow server` options, e.g. --allowed-hosts]
#       in the foreground; Ctrl-C (or SIGTERM) stops mlflow server and PostgreSQL. Binds 127.0.0.1:5001.
#   scripts/server.sh stop
#       stops the server that `start` runs (from another terminal), or what is left of one.
#
# Settings (environment):
#   MTT_SERVER_DIR      folder of everything the server keeps (default <repo>/.server, git-ignored):
#                       pgdata/ (the PostgreSQL cluster), artifacts/, logs/, and, mode 600: pg-password,
#                       admin-password (MLflow's user admin), flask-secret-key (the auth app's CSRF key),
#                       pgpass (libpq's password file), auth.ini (the auth app's configuration)
#   MTT_PG_PORT         PostgreSQL's port, on 127.0.0.1 only (default 5433, beside a system cluster on 5432)
#   MTT_PG_USER, MTT_PG_DATABASE   the role and database MLflow uses (default mlflow, mlflow); the auth app's
#                       users and permissions live in database <MTT_PG_DATABASE>_auth of the same cluster
#   MTT_PG_PASSWORD     the role's password (default: generated on the first start into <dir>/pg-password)
#   MTT_MLFLOW          the mlflow executable (default <repo>/.venv/bin/mlflow)
#   MTT_SERVER_START_TIMEOUT   seconds to wait for mlflow server to answer (default 180: the first start
#                       creates MLflow's schema)
# PostgreSQL refuses to run as root: as root, the cluster runs as the Debian package's user `postgres`.
# No secret is ever an argument of a program (every user sees those in `ps`): passwords go through files of mode
# 600 (libpq's PGPASSFILE, the auth app's config), SQL on stdin, or the environment (readable by its owner only).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DIR=$(realpath -m "${MTT_SERVER_DIR:-$ROOT/.server}")
PGDATA_DIR=$DIR/pgdata
SOCKETS=$DIR/run
LOGS=$DIR/logs
PGLOG=$LOGS/postgres.log
MLFLOW_LOG=$LOGS/mlflow.log
ARTIFACTS=$DIR/artifacts
PWFILE=$DIR/pg-password
ADMIN_PWFILE=$DIR/admin-password
SECRET_KEY_FILE=$DIR/flask-secret-key
PGPASS=$DIR/pgpass
AUTH_CONFIG=$DIR/auth.ini
ADMIN_USER=admin
SERVER_PID_FILE=$DIR/server.pid
MLFLOW_PID_FILE=$DIR/mlflow.pid
PG_PORT=${MTT_PG_PORT:-5433}
PG_USER=${MTT_PG_USER:-mlflow}
PG_DB=${MTT_PG_DATABASE:-mlflow}
AUTH_DB=${PG_DB}_auth
MLFLOW=${MTT_MLFLOW:-$ROOT/.venv/bin/mlflow}
START_TIMEOUT=${MTT_SERVER_START_TIMEOUT:-180}
PG_OWNER=postgres
unset PGPASSWORD  # libpq would prefer it to the password file this script writes

say() { echo "server: $*"; }
die() { echo "server: $*" >&2; exit 1; }

if [ "$(id -u)" -eq 0 ]; then
  AS_PG=(runuser -u "$PG_OWNER" --)
else
  AS_PG=()
fi

# run a PostgreSQL program as the cluster's owner
pg() { "${AS_PG[@]}" "$PGBIN/$1" "${@:2}"; }

# a folder (or file) that the cluster's owner owns
own() { if [ "$(id -u)" -eq 0 ]; then chown "$PG_OWNER": "$@"; fi; }

# whether a process runs (a zombie does not)
alive() {
  local state
  state=$(sed -E 's/.*\) ([A-Za-z]).*/\1/' "/proc/$1/stat" 2>/dev/null) || return 1
  [ -n "$state" ] && [ "$state" != Z ]
}

# the last line of a log that says what went wrong, on one line
last_error() {
  local line
  line=$(grep -E 'FATAL' "$1" 2>/dev/null | tail -1 || true)
  [ -n "$line" ] || line=$(grep -E 'Error|ERROR|error' "$1" 2>/dev/null \
    | grep -v -E '^\s*(raise|File |\^|\(Background on this error)' | tail -1 || true)
  [ -n "$line" ] || line=$(tail -1 "$1" 2>/dev/null || true)
  echo "$line" | tr -s ' ' | cut -c1-400
}

port_taken() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# a random secret of about 32 letters and digits (never an argument of a program)
new_secret() { head -c 24 /dev/urandom | base64 | tr -dc 'A-Za-z0-9'; }

# write stdin to a file only its owner reads, never readable by others even for a moment
private_file() { (umask 077 && cat > "$1.tmp" && chmod 600 "$1.tmp" && mv -f "$1.tmp" "$1"); }

# the first line of a secret file, generated on the first start (mode 600) and kept after
secret_in() {
  [ -s "$1" ] || new_secret | private_file "$1"
  chmod 600 "$1"
  head -1 "$1"
}

# a string as a SQL literal ('...' with quotes doubled; standard_conforming_strings keeps backslashes)
sql_literal() { local quoted=${1//\'/\'\'}; printf "'%s'" "$quoted"; }

# a field of libpq's password file (':' and '\' escaped)
pgpass_field() { local field=${1//\\/\\\\}; printf '%s' "${field//:/\\:}"; }

# a value of the auth app's config (configparser: '%' doubled)
ini_value() { printf '%s' "${1//%/%%}"; }

# a query over the cluster's socket, as its superuser; the script on stdin, psql variables as arguments
psql_admin() { pg psql -X -q -tA -v ON_ERROR_STOP=1 -h "$SOCKETS" -p "$PG_PORT" -U postgres -d postgres "$@"; }

stop_mlflow() {
  local pid=$1 i
  kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
  for i in $(seq 100); do alive "$pid" || return 0; sleep 0.2; done
  kill -KILL -- "-$pid" 2>/dev/null || true
}

stop_postgres() {
  if [ -f "$PGDATA_DIR/postmaster.pid" ] && pg pg_ctl -D "$PGDATA_DIR" status >/dev/null 2>&1; then
    pg pg_ctl -D "$PGDATA_DIR" -m fast -w -t 60 stop >/dev/null 2>&1 || true
  fi
}

start() {
  local host=${MTT_SERVER_HOST:-127.0.0.1} port=${MTT_SERVER_PORT:-5001} workers=2 args=()
  while [ $# -gt 0 ]; do
    case $1 in
      --host|-h) host=$2; shift 2 ;;
      --host=*) host=${1#*=}; shift ;;
      --port|-p) port=$2; shift 2 ;;
      --port=*) port=${1#*=}; shift ;;
      --workers|-w) workers=$2; shift 2 ;;
      --workers=*) workers=${1#*=}; shift ;;
      --backend-store-uri*|--artifacts-destination*|--default-artifact-root*|--registry-store-uri*)
        die "${1%%=*} is this script's to set (PostgreSQL in $PGDATA_DIR, artifacts in $ARTIFACTS): see MTT_SERVER_DIR" ;;
      --app-name*)
        die "--app-name is this script's to set (basic-auth: the server asks every client who it is)" ;;
      *) args+=("$1"); shift ;;
    esac
  done
  [ -x "$MLFLOW" ] || die "no mlflow at $MLFLOW: run \`make server\` (it sets up .venv) or set MTT_MLFLOW"
  local python
  python=$(dirname "$MLFLOW")/python
  if [ -f "$SERVER_PID_FILE" ] && alive "$(cat "$SERVER_PID_FILE")"; then
    die "a server of $DIR already runs (pid $(cat "$SERVER_PID_FILE")): \`make server-stop\` stops it"
  fi
  port_taken "$port" && die "port $port on this machine is taken: stop what listens there or choose another (--port, or make server SERVER_ARGS=\"--port 5002\")"
  PGBIN=$(bash "$ROOT/scripts/setup-postgres.sh")

  mkdir -p "$DIR" "$LOGS" "$ARTIFACTS" "$SOCKETS"
  if [ "$(id -u)" -eq 0 ] && ! runuser -u "$PG_OWNER" -- test -x "$DIR"; then
    die "PostgreSQL runs as user $PG_OWNER, which cannot enter $DIR: let it (chmod o+x on the folders above) or set MTT_SERVER_DIR to a folder it can reach"
  fi
  touch "$PGLOG"
  own "$SOCKETS" "$PGLOG"
  chmod 700 "$SOCKETS" "$ARTIFACTS"  # artifacts only through the server, which asks who you are

  local password admin_password secret_key
  if [ -n "${MTT_PG_PASSWORD:-}" ]; then
    password=$MTT_PG_PASSWORD
    [ -s "$PWFILE" ] || printf '%s\n' "$password" | private_file "$PWFILE"
  else
    password=$(secret_in "$PWFILE")
  fi
  chmod 600 "$PWFILE"
  admin_password=$(secret_in "$ADMIN_PWFILE")
  secret_key=$(secret_in "$SECRET_KEY_FILE")
  # libpq's password file, for this script's psql and mlflow server's psycopg (PGPASSFILE)
  printf '127.0.0.1:%s:*:%s:%s\n' "$PG_PORT" "$(pgpass_field "$PG_USER")" "$(pgpass_field "$password")" \
    | private_file "$PGPASS"

  if [ ! -f "$PGDATA_DIR/PG_VERSION" ]; then
    say "creating a PostgreSQL cluster in $PGDATA_DIR ($("$PGBIN/postgres" --version))"
    mkdir -p "$PGDATA_DIR"
    own "$PGDATA_DIR"
    chmod 700 "$PGDATA_DIR"
    # the superuser only over the socket in $SOCKETS (mode 700); TCP (127.0.0.1 only) with a password
    pg initdb -D "$PGDATA_DIR" -U postgres --auth-local=trust --auth-host=scram-sha-256 -E UTF8 --locale=C \
      > "$LOGS/initdb.log" 2>&1 || die "initdb failed (see $LOGS/initdb.log): $(last_error "$LOGS/initdb.log")"
  fi

  STARTED_PG=0
  MLFLOW_PID=""
  trap cleanup EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM
  echo $$ > "$SERVER_PID_FILE"
  if pg pg_ctl -D "$PGDATA_DIR" status >/dev/null 2>&1; then
    say "PostgreSQL of $PGDATA_DIR was left running (by a start that was killed): using it"
    STARTED_PG=1  # this script's cluster: stopped with the server
  else
    port_taken "$PG_PORT" && die "PostgreSQL's port $PG_PORT is taken: set MTT_PG_PORT to a free one"
    pg pg_ctl -D "$PGDATA_DIR" -l "$PGLOG" -w -t 60 \
      -o "-p $PG_PORT -k '$SOCKETS' -c listen_addresses=127.0.0.1" start >/dev/null 2>&1 \
      || die "PostgreSQL did not start (see $PGLOG): $(last_error "$PGLOG")"
    STARTED_PG=1
  fi

  # the role and the databases, on the first start (a later start keeps the role's password); the password
  # reaches psql in the SQL on its stdin (a builtin's output), never as an argument
  if [ "$(echo "SELECT 1 FROM pg_roles WHERE rolname = :'name'" | psql_admin -v name="$PG_USER")" != 1 ]; then
    echo "CREATE ROLE :\"name\" LOGIN PASSWORD $(sql_literal "$password")" | psql_admin -v name="$PG_USER" \
      || die "could not create PostgreSQL role $PG_USER"
  fi
  local db
  for db in "$PG_DB" "$AUTH_DB"; do
    if [ "$(echo "SELECT 1 FROM pg_database WHERE datname = :'db'" | psql_admin -v db="$db")" != 1 ]; then
      echo "CREATE DATABASE :\"db\" OWNER :\"name\"" | psql_admin -v db="$db" -v name="$PG_USER" \
        || die "could not create PostgreSQL database $db"
    fi
  done
  # what mlflow server would otherwise fail on after a long traceback: the password, checked in one line
  local answer
  if ! answer=$(PGPASSFILE=$PGPASS PGCONNECT_TIMEOUT=10 "$PGBIN/psql" -X -w -tA -h 127.0.0.1 -p "$PG_PORT" \
      -U "$PG_USER" -d "$PG_DB" -c "SELECT 1" 2>&1); then
    die "PostgreSQL on 127.0.0.1:$PG_PORT refuses user $PG_USER ($(echo "$answer" | grep -m1 -o 'FATAL.*' | tr -s ' ' || echo "$answer" | head -1)): the password must be the one the role was created with (MTT_PG_PASSWORD, or the first line of $PWFILE)"
  fi

  # the auth app: its users and permissions in $AUTH_DB, the admin (created on the first start) with the
  # password of $ADMIN_PWFILE; a user the admin adds may read and log anywhere, delete only in what they created
  {
    echo "[mlflow]"
    echo "default_permission = EDIT"
    echo "database_uri = postgresql+psycopg://$PG_USER@127.0.0.1:$PG_PORT/$AUTH_DB"
    echo "admin_username = $ADMIN_USER"
    echo "admin_password = $(ini_value "$admin_password")"
    echo "authorization_function = mlflow.server.auth:authenticate_request_basic_auth"
    # a password check costs ~0.1 s of CPU (scrypt) and every request of a training run pays it: each worker
    # remembers a good login for 30 s (a password changed or a user deleted is refused by the other worker
    # after at most that long)
    echo "auth_cache_ttl_seconds = 30"
  } | private_file "$AUTH_CONFIG"

  : > "$MLFLOW_LOG"
  # the database password reaches psycopg through libpq's PGPASSFILE, the admin's through the auth config file,
  # the CSRF key through the environment: none on the command line (ps shows that to every user)
  PGPASSFILE=$PGPASS MLFLOW_AUTH_CONFIG_PATH=$AUTH_CONFIG MLFLOW_FLASK_SERVER_SECRET_KEY=$secret_key \
    MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false MLFLOW_DISABLE_TELEMETRY=true \
    setsid "$MLFLOW" server --app-name basic-auth \
    --backend-store-uri "postgresql+psycopg://$PG_USER@127.0.0.1:$PG_PORT/$PG_DB" \
    --artifacts-destination "$ARTIFACTS" --host "$host" --port "$port" --workers "$workers" "${args[@]}" \
    >> "$MLFLOW_LOG" 2>&1 < /dev/null &
  MLFLOW_PID=$!
  echo "$MLFLOW_PID" > "$MLFLOW_PID_FILE"
  local probe=$host i
  case $host in 0.0.0.0|::|'[::]') probe=127.0.0.1 ;; esac
  case $probe in *:*) probe="[$probe]" ;; esac
  for ((i = 0; i < START_TIMEOUT * 2; i++)); do
    alive "$MLFLOW_PID" || die "mlflow server did not start (see $MLFLOW_LOG): $(last_error "$MLFLOW_LOG")"
    # mlflow server retries a database it cannot use for minutes: say why at once instead
    if grep -q 'Operation will be retried' "$MLFLOW_LOG"; then
      die "mlflow server cannot use the database (see $MLFLOW_LOG): $(last_error "$MLFLOW_LOG")"
    fi
    if "$python" -c "import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=2)" \
        "http://$probe:$port/health" 2>/dev/null; then
      break
    fi
    sleep 0.5
  done
  ((i < START_TIMEOUT * 2)) || die "mlflow server did not answer on http://$probe:$port within ${START_TIMEOUT} s (see $MLFLOW_LOG)"

  local shown=$host
  case $host in 0.0.0.0|::|'[::]') shown=$(hostname -f 2>/dev/null || hostname) ;; esac
  case $shown in *:*) shown="[$shown]" ;; esac
  say "MLflow tracking server on http://$shown:$port: PostgreSQL database $PG_DB on 127.0.0.1:$PG_PORT (data in $PGDATA_DIR), artifacts in $ARTIFACTS, logs in $LOGS"
  say "every request needs a user name and password (basic auth); admin password in $ADMIN_PWFILE (readable by its owner only)"
  say "to log in: export MLFLOW_TRACKING_USERNAME=$ADMIN_USER MLFLOW_TRACKING_PASSWORD=\"\$(cat '$ADMIN_PWFILE')\" (teammates: their own user, which the admin adds at http://$shown:$port/signup)"
  say "to log there: export MLFLOW_TRACKING_URI=http://$shown:$port"
  say "Ctrl-C here (or \`make server-stop\`) stops mlflow server and PostgreSQL"
  local status=0
  wait "$MLFLOW_PID" || status=$?
  MLFLOW_PID=""
  die "mlflow server exited ($status, see $MLFLOW_LOG): $(last_error "$MLFLOW_LOG")"
}

cleanup() {
  local status=$?
  trap - EXIT INT TERM
  if [ -n "${MLFLOW_PID:-}" ] && alive "$MLFLOW_PID"; then
    stop_mlflow "$MLFLOW_PID"
  fi
  if [ "${STARTED_PG:-0}" = 1 ]; then
    stop_postgres
  fi
  rm -f "$MLFLOW_PID_FILE" "$SERVER_PID_FILE"
  [ "$status" = 1 ] || say "stopped (mlflow server and PostgreSQL of $DIR)"  # a failure said it in one line
  exit "$status"
}

stop() {
  local pid i found=0
  if [ -f "$SERVER_PID_FILE" ] && pid=$(cat "$SERVER_PID_FILE") && alive "$pid"; then
    found=1
    kill -TERM "$pid"  # its trap stops mlflow server and PostgreSQL
    for i in $(seq 150); do alive "$pid" || break; sleep 0.2; done
  fi
  if [ -f "$MLFLOW_PID_FILE" ] && pid=$(cat "$MLFLOW_PID_FILE") && alive "$pid"; then
    found=1
    stop_mlflow "$pid"
  fi
  if [ -f "$PGDATA_DIR/postmaster.pid" ]; then
    found=1
    PGBIN=$(bash "$ROOT/scripts/setup-postgres.sh")
    stop_postgres
  fi
  rm -f "$MLFLOW_PID_FILE" "$SERVER_PID_FILE"
  if [ "$found" = 1 ]; then say "stopped the server of $DIR"; else say "no server of $DIR runs"; fi
}

case ${1:-start} in
  start) shift || true; start "$@" ;;
  stop) stop ;;
  *) die "usage: scripts/server.sh start [--host H] [--port P] [mlflow server options] | stop" ;;
esac
