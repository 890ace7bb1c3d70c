#!/usr/bin/env bash
# The store's backend: one mlgate build serving from SQLite (A) and from PostgreSQL (B),
# each on its own data dir and port, plain HTTP on 127.0.0.1, one wrk at a time, A and B
# alternating order every round. Two loads: client-credentials grants (each reads the
# client cache, signs, and writes nothing) and an API read (GET one workspace with a bearer
# token: verify the token, authorize from memory, read the workspace from the store).
#
# usage: bench/store.sh [MLGATE_BIN]   (default target/release/mlgate)
# env:   ROUNDS=7 CONNS=32 DURATION=8s WARMUP=2s
#        MLGATE_TEST_POSTGRES_URL (else scripts/postgres.sh starts the test cluster)
# Output: bench/out/store-<timestamp>/ (raw wrk output per run, logs, summary.txt).
set -euo pipefail

BENCH="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(dirname "$BENCH")"
BIN="$(realpath "${1:-$ROOT/target/release/mlgate}")"
ROUNDS="${ROUNDS:-7}" CONNS="${CONNS:-32}" DURATION="${DURATION:-8s}" WARMUP="${WARMUP:-2s}"
OUT="$BENCH/out/store-$(date +%Y%m%d-%H%M%S)"
mkdir -p "$OUT"
TMP="$(mktemp -d)"
PIDS=()
DB=""
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$TMP"
  [ -z "$DB" ] || psql "$BASE" -qc "DROP DATABASE IF EXISTS $DB WITH (FORCE)" >/dev/null 2>&1 || true
}
trap cleanup EXIT
die() { echo "store: $*" >&2; exit 1; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
form() { python3 -c 'import sys, urllib.parse as u; print(u.urlencode(list(zip(*[iter(sys.argv[1:])]*2))))' "$@"; }

"$BENCH/setup.sh" >/dev/null
BASE="${MLGATE_TEST_POSTGRES_URL:-$(bash "$ROOT/scripts/postgres.sh")}"
DB="mlgate_bench_$(date +%s)"
psql "$BASE" -qc "CREATE DATABASE $DB" >/dev/null
PG_URL="${BASE%/*}/$DB"

declare -A PORT TOKEN_PATH TOKEN_BODY WS_PATH BEARER
start() { # NAME [serve options]: a server with a service principal and a workspace
  local name=$1 pw port; shift
  pw="$(python3 -c 'import secrets; print("p" + secrets.token_urlsafe(20))')"
  port="$(free_port)"
  MLGATE_LOG=warn MLGATE_BOOTSTRAP_PASSWORD="$pw" "$BIN" serve --data-dir "$TMP/$name" \
    --listen "127.0.0.1:$port" --insecure-http "$@" >"$OUT/$name.log" 2>&1 &
  PIDS+=($!)
  PORT[$name]=$port
  for _ in $(seq 100); do curl -sf "http://127.0.0.1:$port/readyz" >/dev/null && break; sleep 0.2; done
  export MLGATE_CONFIG_DIR="$TMP/cli-$name"
  "$BIN" --server "http://127.0.0.1:$port" login -u admin@mlgate.local --password="$pw" >/dev/null 2>>"$OUT/cli.log" || die "$name: login failed"
  "$BIN" group create -n bench >/dev/null 2>>"$OUT/cli.log"
  "$BIN" ml workspace create -w bench-ws -g bench >/dev/null 2>>"$OUT/cli.log"
  local tenant cid secret sub
  sub="$("$BIN" account show | python3 -c 'import json, sys; print(json.load(sys.stdin)["id"])')"
  # The principal reads the workspace as a Reader of its group (the RBAC check runs).
  "$BIN" ad sp create-for-rbac --sdk-auth --name bench --role Reader \
    --scopes "/subscriptions/$sub/resourceGroups/bench" >"$TMP/sp-$name.json" 2>>"$OUT/cli.log" || die "$name: sp"
  read -r tenant cid secret < <(python3 -c 'import json, sys; d = json.load(open(sys.argv[1]))
print(d["tenantId"], d["clientId"], d["clientSecret"])' "$TMP/sp-$name.json")
  TOKEN_PATH[$name]="/$tenant/oauth2/v2.0/token"
  TOKEN_BODY[$name]="$(form grant_type client_credentials client_id "$cid" client_secret "$secret" scope https://management.azure.com/.default)"
  WS_PATH[$name]="/subscriptions/$sub/resourceGroups/bench/providers/Microsoft.MachineLearningServices/workspaces/bench-ws"
  BEARER[$name]="Bearer $(curl -s -X POST --data "${TOKEN_BODY[$name]}" "http://127.0.0.1:$port${TOKEN_PATH[$name]}" | python3 -c 'import json, sys; print(json.load(sys.stdin)["access_token"])')"
  [ "$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: ${BEARER[$name]}" "http://127.0.0.1:$port${WS_PATH[$name]}")" = 200 ] || die "$name: the workspace read failed"
}
start A
start B --store "$PG_URL"

run_wrk() { # NAME WHAT DURATION [OUTFILE]
  local name=$1 what=$2
  if [ "$what" = token ]; then
    WRK_PATH="${TOKEN_PATH[$name]}" WRK_BODY="${TOKEN_BODY[$name]}" \
      wrk -t1 -c"$CONNS" -d"$3" --latency -s "$BENCH/wrk/token.lua" "http://127.0.0.1:${PORT[$name]}" > "${4:-/dev/null}"
  else
    WRK_METHOD=GET WRK_PATH="${WS_PATH[$name]}" WRK_AUTHORIZATION="${BEARER[$name]}" \
      wrk -t1 -c"$CONNS" -d"$3" --latency -s "$BENCH/wrk/token.lua" "http://127.0.0.1:${PORT[$name]}" > "${4:-/dev/null}"
  fi
}
{
  echo "date: $(date -Is); nproc: $(nproc); kernel: $(uname -r); $(psql "$BASE" -tAc 'SELECT version()' | cut -d, -f1)"
  echo "binary: $BIN; A: SQLite in the data dir; B: --store postgres (loopback, fsync off: the test cluster)"
  echo "wrk -t1 -c$CONNS -d$DURATION --latency; rounds: $ROUNDS"
} | tee "$OUT/facts.txt"
for what in token read; do
  for n in A B; do run_wrk "$n" "$what" "$WARMUP"; done
  for r in $(seq "$ROUNDS"); do
    if [ $((r % 2)) = 1 ]; then order=(A B); else order=(B A); fi
    echo "$what round $r/$ROUNDS ($(cut -d' ' -f1-3 /proc/loadavg)): ${order[*]}" | tee -a "$OUT/facts.txt"
    for n in "${order[@]}"; do run_wrk "$n" "$what" "$DURATION" "$OUT/$what-$n-r$r.txt"; done
  done
done
python3 - "$OUT" "$ROUNDS" <<'PY' | tee "$OUT/summary.txt"
import pathlib, re, statistics, sys
out, rounds = pathlib.Path(sys.argv[1]), int(sys.argv[2])
def rps(f):
    t = f.read_text()
    if int(re.search(r"^non-200: (\d+)", t, re.M).group(1)):
        sys.exit(f"{f.name}: non-200 answers")
    return float(re.search(r"^Requests/sec:\s+([\d.]+)", t, re.M).group(1))
for what in ("token", "read"):
    a = [rps(out / f"{what}-A-r{r}.txt") for r in range(1, rounds + 1)]
    b = [rps(out / f"{what}-B-r{r}.txt") for r in range(1, rounds + 1)]
    ratios = [y / x for x, y in zip(a, b)]
    print(f"{what}: SQLite median {statistics.median(a):.0f} req/s, PostgreSQL median {statistics.median(b):.0f} req/s; "
          f"paired PG/SQLite median {statistics.median(ratios):.3f} (min {min(ratios):.3f}, max {max(ratios):.3f}); "
          f"SQLite per round: {' '.join(f'{x:.0f}' for x in a)}; PostgreSQL per round: {' '.join(f'{x:.0f}' for x in b)}")
PY
echo "raw output: $OUT"
