#!/usr/bin/env bash
# Client-credentials token grants per second, mlgate vs node-oidc-provider, over keep-alive
# connections on 127.0.0.1, one wrk at a time, servers alternating order each round.
#
# usage: bench/token-grants.sh [path-to-mlgate-binary]   (default target/release/mlgate)
# env:   ROUNDS=3 CONNS=32 DURATION=10s WARMUP=3s
#        NODE_WORKERS=2   node-oidc-provider processes via node:cluster. One node process runs JS on
#                         one core; 2 gives it the same 2 cores a multi-threaded mlgate can use.
#                         NODE_WORKERS=1 measures a single process.
#        HTTPS=1          also measure both over HTTPS, paired in their own rounds: "node-https"
#                         (node's own TLS, mlgate's certificate) against "mlgate-https"
#        NODE_ONLY=1      measure node-oidc-provider alone (no mlgate binary needed)
# No CPU pinning: wrk and the server under test share both cores through the scheduler, as a
# client on the same host would; the idle server of the pair is not loaded. Both servers get the
# same wrk flags and the same url-encoded form, and every response is counted by status.
# Output: bench/out/<timestamp>/ (facts.txt, raw wrk output per run, server logs, summary.txt).
set -euo pipefail

BENCH="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(dirname "$BENCH")"
MLGATE="$(realpath -m "${1:-$(bash "$ROOT/scripts/target-dir.sh")/release/mlgate}")"
ROUNDS="${ROUNDS:-3}" CONNS="${CONNS:-32}" DURATION="${DURATION:-10s}" WARMUP="${WARMUP:-3s}"
NODE_WORKERS="${NODE_WORKERS:-2}" HTTPS="${HTTPS:-1}" NODE_ONLY="${NODE_ONLY:-0}"
[ "$NODE_ONLY" = 1 ] || [ -x "$MLGATE" ] || { echo "no mlgate binary at $MLGATE (cargo build --release?)" >&2; exit 1; }

"$BENCH/setup.sh"
OUT="$BENCH/out/$(date +%Y%m%d-%H%M%S)"
TMP="$(mktemp -d)"
mkdir -p "$OUT"
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$TMP"
}
trap cleanup EXIT
die() { echo "token-grants: $*" >&2; exit 1; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
rand() { python3 -c 'import secrets; print(secrets.token_urlsafe(24))'; }
form() { python3 -c 'import sys, urllib.parse as u; print(u.urlencode(list(zip(*[iter(sys.argv[1:])]*2))))' "$@"; }
wait_ready() { # URL PID
  for _ in $(seq 150); do
    kill -0 "$2" 2>/dev/null || die "server for $1 exited; see $OUT/*.log"
    [ "$(curl -sk -o /dev/null -w '%{http_code}' "$1" || true)" = 200 ] && return 0
    sleep 0.2
  done
  die "not ready after 30 s: $1"
}
# CPU ticks (1/100 s) used so far by a process and its children (node:cluster workers).
cpu_ticks() { { cat "/proc/$1/stat" $(pgrep -P "$1" | sed 's|.*|/proc/&/stat|') 2>/dev/null || true; } | awk '{t += $14 + $15} END {print t + 0}'; }

# Declares a target: NAME URL PATH BODY PID [curl options]; checks one grant returns a token.
declare -A URL WPATH BODY SPID
target() {
  URL[$1]=$2 WPATH[$1]=$3 BODY[$1]=$4 SPID[$1]=$5
  local code alg
  code="$(curl -sS "${@:6}" -o "$OUT/$1-check.json" -w '%{http_code}' -X POST \
    -H 'Content-Type: application/x-www-form-urlencoded' --data "$4" "$2$3")" || die "$1: token request failed"
  alg="$(python3 -c 'import json, sys, base64
t = json.load(open(sys.argv[1]))["access_token"]; h = t.split(".")[0]
print(json.loads(base64.urlsafe_b64decode(h + "=" * (-len(h) % 4)))["alg"])' "$OUT/$1-check.json" 2>/dev/null)" \
    || die "$1: HTTP $code without a JWT access_token: $(cat "$OUT/$1-check.json")"
  [ "$code" = 200 ] || die "$1: HTTP $code: $(cat "$OUT/$1-check.json")"
  echo "$1: POST $3 -> 200, access_token alg $alg" | tee -a "$OUT/facts.txt"
}
run_wrk() { # NAME DURATION [OUTFILE]
  local before after
  before="$(cpu_ticks "${SPID[$1]}")"
  WRK_PATH="${WPATH[$1]}" WRK_BODY="${BODY[$1]}" wrk -t1 -c"$CONNS" -d"$2" --latency \
    -s "$BENCH/wrk/token.lua" "${URL[$1]}" > "${3:-/dev/null}"
  after="$(cpu_ticks "${SPID[$1]}")"
  [ -z "${3:-}" ] || echo $((after - before)) > "${3%.txt}.cpu"
}
measure() { # NAME... : warm-up, then ROUNDS rounds, order reversed every other round
  local names=("$@") r n
  for n in "${names[@]}"; do run_wrk "$n" "$WARMUP"; done
  for r in $(seq "$ROUNDS"); do
    [ $((r % 2)) = 1 ] || names=($(printf '%s\n' "${names[@]}" | tac))
    for n in "${names[@]}"; do
      echo "round $r/$ROUNDS: $n"
      run_wrk "$n" "$DURATION" "$OUT/$n-r$r.txt"
    done
  done
}

{
  echo "date: $(date -Is)"
  echo "nproc: $(nproc); cpu: $(lscpu | sed -n 's/^Model name: *//p'); kernel: $(uname -r)"
  echo "loadavg at start: $(cut -d' ' -f1-3 /proc/loadavg)"
  echo "node: $(node --version); oidc-provider: $(node -p "require('$BENCH/.deps/node/node_modules/oidc-provider/package.json').version"); NODE_WORKERS=$NODE_WORKERS"
  echo "wrk: $(wrk -v 2>&1 | head -1 || true)"
  [ "$NODE_ONLY" = 1 ] || echo "mlgate: $MLGATE ($("$MLGATE" --version 2>/dev/null || echo 'no --version'))"
  echo "wrk -t1 -c$CONNS -d$DURATION --latency, rounds: $ROUNDS, warm-up: $WARMUP per server; no CPU pinning"
} | tee "$OUT/facts.txt"

# --- node-oidc-provider --------------------------------------------------------------------
NPORT="$(free_port)" NCLIENT=bench NSECRET="$(rand)"
NODE_ENV=production PORT="$NPORT" NODE_WORKERS="$NODE_WORKERS" BENCH_CLIENT_ID="$NCLIENT" BENCH_CLIENT_SECRET="$NSECRET" \
  node "$BENCH/oidc-provider/server.mjs" > "$OUT/node.log" 2>&1 &
NPID=$!
PIDS+=("$NPID")
wait_ready "http://127.0.0.1:$NPORT/.well-known/openid-configuration" "$NPID"
target node "http://127.0.0.1:$NPORT" /token \
  "$(form grant_type client_credentials client_id "$NCLIENT" client_secret "$NSECRET" resource https://management.azure.com/)" "$NPID"

# --- mlgate ---------------------------------------------------------------------------------
start_mlgate() { # PORT [extra serve flags]
  MLGATE_BOOTSTRAP_PASSWORD="$PW" "$MLGATE" serve --data-dir "$TMP/data" --listen "127.0.0.1:$1" "${@:2}" \
    >> "$OUT/mlgate.log" 2>&1 &
  PIDS+=($!)
}
if [ "$NODE_ONLY" != 1 ]; then
  PW="$(rand)" MPORT="$(free_port)"
  start_mlgate "$MPORT" --insecure-http
  MPID=$!
  wait_ready "http://127.0.0.1:$MPORT/readyz" "$MPID"
  export MLGATE_CONFIG_DIR="$TMP/cli"
  "$MLGATE" --server "http://127.0.0.1:$MPORT" login -u admin@mlgate.local --password="$PW" > "$OUT/mlgate-login.log" 2>&1 \
    || die "mlgate login failed: $(cat "$OUT/mlgate-login.log")"
  "$MLGATE" ad sp create-for-rbac --sdk-auth --name bench > "$TMP/sp.json" 2> "$OUT/mlgate-sp.log" \
    || die "create-for-rbac failed: $(cat "$OUT/mlgate-sp.log")"
  read -r TENANT CID CSECRET < <(python3 -c 'import json, sys; d = json.load(open(sys.argv[1]))
print(d["tenantId"], d["clientId"], d["clientSecret"])' "$TMP/sp.json") || die "bad create-for-rbac output: $(cat "$TMP/sp.json")"
  MBODY="$(form grant_type client_credentials client_id "$CID" client_secret "$CSECRET" scope https://management.azure.com/.default)"
  target mlgate "http://127.0.0.1:$MPORT" "/$TENANT/oauth2/v2.0/token" "$MBODY" "$MPID"
  measure node mlgate
  if [ "$HTTPS" = 1 ]; then # same data dir, so the same service principal; plain-HTTP instance stopped first
    kill "$MPID"; wait "$MPID" 2>/dev/null || true
    SPORT="$(free_port)"
    start_mlgate "$SPORT"
    SPID_TLS=$!
    wait_ready "https://127.0.0.1:$SPORT/readyz" "$SPID_TLS"
    target mlgate-https "https://127.0.0.1:$SPORT" "/$TENANT/oauth2/v2.0/token" "$MBODY" "$SPID_TLS" --cacert "$TMP/data/tls/ca.pem"
    # node over HTTPS with the same certificate, measured in the same rounds as mlgate-https
    kill "$NPID"; wait "$NPID" 2>/dev/null || true
    NSPORT="$(free_port)"
    NODE_ENV=production PORT="$NSPORT" NODE_WORKERS="$NODE_WORKERS" BENCH_CLIENT_ID="$NCLIENT" BENCH_CLIENT_SECRET="$NSECRET" \
      TLS_CERT="$TMP/data/tls/server.pem" TLS_KEY="$TMP/data/tls/server-key.pem" \
      node "$BENCH/oidc-provider/server.mjs" >> "$OUT/node.log" 2>&1 &
    NSPID=$!
    PIDS+=("$NSPID")
    wait_ready "https://127.0.0.1:$NSPORT/.well-known/openid-configuration" "$NSPID"
    target node-https "https://127.0.0.1:$NSPORT" /token \
      "$(form grant_type client_credentials client_id "$NCLIENT" client_secret "$NSECRET" resource https://management.azure.com/)" "$NSPID" \
      --cacert "$TMP/data/tls/ca.pem"
    measure node-https mlgate-https
  fi
else
  measure node
fi

echo "loadavg at end: $(cut -d' ' -f1-3 /proc/loadavg)" >> "$OUT/facts.txt"
echo
{ python3 "$BENCH/wrk/summarize.py" "$OUT"
  [ "$HTTPS" != 1 ] || python3 "$BENCH/wrk/summarize.py" "$OUT" node-https | grep '^paired ratio mlgate-https'
} | tee "$OUT/summary.txt"
echo "raw output: $OUT"
