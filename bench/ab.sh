#!/usr/bin/env bash
# Two mlgate builds side by side (A = before a change, B = after): client-credentials grants,
# management reads (GET of a workspace with the admin's bearer token, authorization on) and ONNX
# scoring, each server on its own data dir and port, plain HTTP on 127.0.0.1, one wrk
# at a time, A and B alternating order every round. Prints per-round B/A ratios, their median
# and spread, and the load average at each round.
#
# usage: bench/ab.sh A_BIN B_BIN
#        (e.g. git worktree add /tmp/a <rev> && cargo build --release in it, for A)
# env:   WHAT="token read score" ROUNDS=7 CONNS=32 DURATION=8s WARMUP=2s INPUTS=64 OUTPUTS=16
#        MODEL=examples/linear.onnx INPUTS=3: use a ready model instead of building one
#        A_SERVE_ARGS / B_SERVE_ARGS: extra `serve` flags for one side, to compare one binary
#        with itself (e.g. A_SERVE_ARGS="--signin-log off" bench/ab.sh BIN BIN)
#        A_ENV / B_ENV: extra environment for one side ("MLGATE_LOG=info" puts the access log
#        back, which both sides otherwise run without: MLGATE_LOG=warn)
# Output: bench/out/ab-<timestamp>/ (raw wrk output per run, logs, summary.txt).
set -euo pipefail

BENCH="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(dirname "$BENCH")"
A_BIN="$(realpath "${1:?usage: bench/ab.sh A_BIN B_BIN}")"
B_BIN="$(realpath "${2:?usage: bench/ab.sh A_BIN B_BIN}")"
ROUNDS="${ROUNDS:-7}" CONNS="${CONNS:-32}" DURATION="${DURATION:-8s}" WARMUP="${WARMUP:-2s}"
INPUTS="${INPUTS:-64}" OUTPUTS="${OUTPUTS:-16}"
OUT="$BENCH/out/ab-$(date +%Y%m%d-%H%M%S)"
mkdir -p "$OUT"
TMP="$(mktemp -d)"
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$TMP"; }
trap cleanup EXIT
die() { echo "ab: $*" >&2; exit 1; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
form() { python3 -c 'import sys, urllib.parse as u; print(u.urlencode(list(zip(*[iter(sys.argv[1:])]*2))))' "$@"; }

"$BENCH/setup.sh" >/dev/null
if [ -n "${MODEL:-}" ]; then # a ready ONNX model of INPUTS inputs (skips building the example)
  cp "$MODEL" "$TMP/model.onnx"
else
  (cd "$ROOT" && cargo run --release -q -p mlgate-serving --example linear_onnx -- "$TMP/model.onnx" "$INPUTS" "$OUTPUTS")
fi
echo '{"runtime": "onnx"}' > "$TMP/ic.json"
echo '{"computeType": "instance", "cpu_cores": 2}' > "$TMP/dc.json"
BODY_SCORE="$(python3 -c "import json; print(json.dumps({'data': [[round((i % 7) / 7, 3) for i in range($INPUTS)]]}))")"

declare -A PORT SPID TOKEN_PATH TOKEN_BODY WS_PATH BEARER
start() { # NAME BIN: a server with a service principal and a deployed ONNX service
  local name=$1 bin=$2 pw port extra_var="${1}_SERVE_ARGS" env_var="${1}_ENV"
  local -a extra envs
  read -r -a extra <<<"${!extra_var:-}"
  read -r -a envs <<<"${!env_var:-}"
  pw="$(python3 -c 'import secrets; print("p" + secrets.token_urlsafe(20))')"
  port="$(free_port)"
  env MLGATE_LOG=warn "${envs[@]}" MLGATE_BOOTSTRAP_PASSWORD="$pw" "$bin" serve --data-dir "$TMP/$name" \
    --listen "127.0.0.1:$port" --insecure-http "${extra[@]}" >"$OUT/$name.log" 2>&1 &
  SPID[$name]=$!; PIDS+=($!)
  PORT[$name]=$port
  for _ in $(seq 100); do curl -sf "http://127.0.0.1:$port/readyz" >/dev/null && break; sleep 0.2; done
  local m=("$bin" --server "http://127.0.0.1:$port")
  export MLGATE_CONFIG_DIR="$TMP/cli-$name"
  "${m[@]}" login -u admin@mlgate.local --password="$pw" >/dev/null 2>>"$OUT/cli.log" || die "$name: login failed"
  "$bin" ad sp create-for-rbac --sdk-auth --name bench >"$TMP/sp-$name.json" 2>>"$OUT/cli.log" || die "$name: sp"
  "$bin" group create -n bench >/dev/null 2>>"$OUT/cli.log"
  "$bin" ml workspace create -w bench-ws -g bench >"$TMP/ws-$name.json" 2>>"$OUT/cli.log"
  WS_PATH[$name]="$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["id"])' "$TMP/ws-$name.json")"
  BEARER[$name]="Bearer $("$bin" account get-access-token 2>>"$OUT/cli.log" | python3 -c 'import json, sys; print(json.load(sys.stdin)["accessToken"])')"
  "$bin" ml model register -n linear -p "$TMP/model.onnx" -w bench-ws -g bench >/dev/null 2>>"$OUT/cli.log" || die "$name: register"
  "$bin" ml model deploy -n svc -m linear:1 --ic "$TMP/ic.json" --dc "$TMP/dc.json" -w bench-ws -g bench >/dev/null 2>>"$OUT/cli.log" || die "$name: deploy"
  local tenant cid secret
  read -r tenant cid secret < <(python3 -c 'import json, sys; d = json.load(open(sys.argv[1]))
print(d["tenantId"], d["clientId"], d["clientSecret"])' "$TMP/sp-$name.json")
  TOKEN_PATH[$name]="/$tenant/oauth2/v2.0/token"
  TOKEN_BODY[$name]="$(form grant_type client_credentials client_id "$cid" client_secret "$secret" scope https://management.azure.com/.default)"
  [ "$(curl -s -o /dev/null -w '%{http_code}' -X POST --data "${TOKEN_BODY[$name]}" "http://127.0.0.1:$port${TOKEN_PATH[$name]}")" = 200 ] || die "$name: grant"
  [ "$(curl -s -o /dev/null -w '%{http_code}' -X POST -H 'content-type: application/json' -d "$BODY_SCORE" "http://127.0.0.1:$port/api/v1/service/svc/score")" = 200 ] || die "$name: score"
  [ "$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: ${BEARER[$name]}" "http://127.0.0.1:$port${WS_PATH[$name]}?api-version=2023-10-01")" = 200 ] || die "$name: read"
}
start A "$A_BIN"
start B "$B_BIN"

run_wrk() { # NAME WHAT DURATION [OUTFILE]
  local name=$1 what=$2 path= body= ctype= method=POST auth=
  if [ "$what" = token ]; then
    path="${TOKEN_PATH[$name]}" body="${TOKEN_BODY[$name]}" ctype=application/x-www-form-urlencoded
  elif [ "$what" = read ]; then
    path="${WS_PATH[$name]}?api-version=2023-10-01" method=GET auth="${BEARER[$name]}"
  else
    path=/api/v1/service/svc/score body="$BODY_SCORE" ctype=application/json
  fi
  WRK_PATH="$path" WRK_BODY="$body" WRK_CONTENT_TYPE="$ctype" WRK_METHOD="$method" WRK_AUTHORIZATION="$auth" \
    wrk -t1 -c"$CONNS" -d"$3" --latency -s "$BENCH/wrk/token.lua" "http://127.0.0.1:${PORT[$name]}" > "${4:-/dev/null}"
}
{
  echo "date: $(date -Is); nproc: $(nproc); kernel: $(uname -r)"
  echo "A: $A_BIN ${A_ENV:-} ${A_SERVE_ARGS:-}"; echo "B: $B_BIN ${B_ENV:-} ${B_SERVE_ARGS:-}"
  echo "wrk -t1 -c$CONNS -d$DURATION --latency; rounds: $ROUNDS; scoring: linear $INPUTS->$OUTPUTS ONNX, instance, cpu_cores 2"
} | tee "$OUT/facts.txt"
for what in ${WHAT:-token read score}; do
  for n in A B; do run_wrk "$n" "$what" "$WARMUP"; done
  for r in $(seq "$ROUNDS"); do
    if [ $((r % 2)) = 1 ]; then order=(A B); else order=(B A); fi
    echo "$what round $r/$ROUNDS ($(cut -d' ' -f1-3 /proc/loadavg)): ${order[*]}" | tee -a "$OUT/facts.txt"
    for n in "${order[@]}"; do run_wrk "$n" "$what" "$DURATION" "$OUT/$what-$n-r$r.txt"; done
  done
done
python3 - "$OUT" "$ROUNDS" "${WHAT:-token read score}" <<'PY' | tee "$OUT/summary.txt"
import pathlib, re, statistics, sys
out, rounds = pathlib.Path(sys.argv[1]), int(sys.argv[2])
def rps(f):
    t = f.read_text()
    if int(re.search(r"^non-200: (\d+)", t, re.M).group(1)):
        sys.exit(f"{f.name}: non-200 answers")
    return float(re.search(r"^Requests/sec:\s+([\d.]+)", t, re.M).group(1))
for what in sys.argv[3].split():
    a = [rps(out / f"{what}-A-r{r}.txt") for r in range(1, rounds + 1)]
    b = [rps(out / f"{what}-B-r{r}.txt") for r in range(1, rounds + 1)]
    ratios = [y / x for x, y in zip(a, b)]
    print(f"{what}: A median {statistics.median(a):.0f} req/s, B median {statistics.median(b):.0f} req/s; "
          f"paired B/A median {statistics.median(ratios):.3f} (min {min(ratios):.3f}, max {max(ratios):.3f}) "
          f"per round: {' '.join(f'{x:.3f}' for x in ratios)}")
PY
echo "raw output: $OUT"
