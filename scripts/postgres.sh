#!/usr/bin/env bash
# A private PostgreSQL cluster for the tests, started idempotently; prints its URL on stdout
# (everything else goes to stderr):
#
#   export MLGATE_TEST_POSTGRES_URL="$(bash scripts/postgres.sh)"
#   bash scripts/postgres.sh stop
#
# - installs Debian's `postgresql` package when no server binaries are found (needs root);
# - keeps the cluster outside the clone: $MLGATE_PG_DIR, by default
#   ${XDG_CACHE_HOME:-~/.cache}/mlgate-test-deps/pg for a normal user, or
#   /var/tmp/mlgate-test-deps/pg for root (whose home the server's `postgres` user cannot
#   enter; PostgreSQL refuses to run as root, so root runs it as `postgres`);
# - listens on 127.0.0.1 only, on a free port chosen once and kept in $DIR/port, with
#   `trust` authentication for its one superuser `mlgate` (a test cluster: durability is
#   switched off for speed);
# - creates the database `mlgate` and drops the per-test databases (`mlgate_t_*`) that
#   earlier runs left.
set -euo pipefail

log() { echo "postgres.sh: $*" >&2; }

if [ "$(id -u)" = 0 ]; then
  DIR="${MLGATE_PG_DIR:-/var/tmp/mlgate-test-deps/pg}"
else
  DIR="${MLGATE_PG_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/mlgate-test-deps/pg}"
fi
DATA="$DIR/data"

find_bin() {
  local d
  d="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)"
  if [ -n "$d" ] && [ -x "$d/initdb" ]; then echo "$d"; return 0; fi
  if command -v initdb >/dev/null 2>&1; then dirname "$(command -v initdb)"; return 0; fi
  return 1
}

BIN="$(find_bin || true)"
if [ -z "$BIN" ]; then
  if [ "$(id -u)" != 0 ]; then
    log "PostgreSQL's server is not installed; run as root (or apt-get install postgresql)"
    exit 1
  fi
  log "installing Debian's postgresql package"
  apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >&2
  BIN="$(find_bin)"
fi

# Runs a server program as the cluster's owner.
as_owner() {
  if [ "$(id -u)" = 0 ]; then
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

running() {
  [ -f "$DATA/postmaster.pid" ] && as_owner "$BIN/pg_ctl" -D "$DATA" status >/dev/null 2>&1
}

if [ "${1:-}" = stop ]; then
  if running; then as_owner "$BIN/pg_ctl" -D "$DATA" -m fast -w stop >&2; fi
  exit 0
fi

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

mkdir -p "$DIR"
if [ "$(id -u)" = 0 ]; then chown postgres: "$DIR"; chmod 700 "$DIR"; fi

if [ ! -f "$DATA/PG_VERSION" ]; then
  log "initialising a cluster in $DATA"
  as_owner "$BIN/initdb" -D "$DATA" -U mlgate --auth=trust -E UTF8 --locale=C >/dev/null
  cat >> "$DATA/postgresql.conf" <<'CONF'
# mlgate's test cluster: loopback only, speed over durability.
listen_addresses = '127.0.0.1'
max_connections = 300
fsync = off
synchronous_commit = off
full_page_writes = off
CONF
fi

if ! running; then
  port="$(cat "$DIR/port" 2>/dev/null || true)"
  # A remembered port another program took since is given up for a free one.
  if [ -z "$port" ] || (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
    port="$(free_port)"
  fi
  echo "$port" > "$DIR/port"
  log "starting on 127.0.0.1:$port"
  as_owner "$BIN/pg_ctl" -D "$DATA" -l "$DIR/server.log" -w -t 60 \
    -o "-p $port -k $DIR" start >&2
fi
port="$(cat "$DIR/port")"

psql_() { "$BIN/psql" -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$port" -U mlgate "$@"; }

if [ "$(psql_ -d postgres -tAc "SELECT 1 FROM pg_database WHERE datname = 'mlgate'")" != 1 ]; then
  psql_ -d postgres -c "CREATE DATABASE mlgate" >&2
fi
# Per-test databases of earlier runs (kept when a test restarts the cluster under itself:
# MLGATE_PG_KEEP_TEST_DBS=1).
[ -n "${MLGATE_PG_KEEP_TEST_DBS:-}" ] || for db in $(psql_ -d postgres -tAc "SELECT datname FROM pg_database WHERE datname LIKE 'mlgate\_t\_%'"); do
  psql_ -d postgres -c "DROP DATABASE IF EXISTS \"$db\" WITH (FORCE)" >/dev/null
done

echo "postgres://mlgate@127.0.0.1:$port/mlgate"
