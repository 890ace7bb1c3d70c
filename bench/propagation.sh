#!/usr/bin/env bash
# Propagation: how long a change made through one node takes to be in force on another that
# shares its store (issue 11). Two `mlgate serve` processes over one data directory (one
# SQLite file, WAL), one master key, one public URL; bench/lib/propagation.py deletes and
# re-creates a role assignment through node A CHANGES times and probes node B every 5 ms.
#
# usage: bench/propagation.sh [path-to-mlgate]   (default: the release binary if built,
#        else the debug one; the figure is bound by the 250 ms poll, not by CPU)
# env:   CHANGES=200  MLGATE_TEST_POSTGRES_URL=postgres://... (runs both nodes on PostgreSQL,
#        once the binary has --store)
set -euo pipefail

BENCH="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(dirname "$BENCH")"
CHANGES="${CHANGES:-200}"
TMP="$(mktemp -d)"
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$TMP"; }
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

TARGET="${CARGO_TARGET_DIR:-$ROOT/target}"
if [ -n "${1:-}" ]; then MLGATE="$1"
elif [ -x "$TARGET/release/mlgate" ]; then MLGATE="$TARGET/release/mlgate"
else (cd "$ROOT" && cargo build -q -p mlgate-cli); MLGATE="$TARGET/debug/mlgate"; fi

PW="p$(python3 -c 'import secrets; print(secrets.token_urlsafe(20))')"
KEY="$(python3 -c 'import base64, os; print(base64.urlsafe_b64encode(os.urandom(32)).decode().rstrip("="))')"
STORE=()
[ -n "${MLGATE_TEST_POSTGRES_URL:-}" ] && STORE=(--store "$MLGATE_TEST_POSTGRES_URL")
PA="$(free_port)"; PB="$(free_port)"
start() { # PORT
  MLGATE_LOG=warn MLGATE_BOOTSTRAP_PASSWORD="$PW" MLGATE_MASTER_KEY="$KEY" "$MLGATE" serve \
    --data-dir "$TMP/data" --listen "127.0.0.1:$1" --insecure-http \
    --public-url "http://127.0.0.1:$PA" "${STORE[@]}" >>"$TMP/serve.log" 2>&1 &
  PIDS+=($!)
  for _ in $(seq 300); do curl -fs "http://127.0.0.1:$1/readyz" >/dev/null && return; sleep 0.1; done
  cat "$TMP/serve.log" >&2; exit 1
}
start "$PA"; start "$PB"
echo "mlgate: $MLGATE; store: $([ -n "${MLGATE_TEST_POSTGRES_URL:-}" ] && echo PostgreSQL || echo "SQLite (one shared file)")"
echo "$PW" | python3 "$BENCH/lib/propagation.py" "http://127.0.0.1:$PA" "http://127.0.0.1:$PB" "$CHANGES"
