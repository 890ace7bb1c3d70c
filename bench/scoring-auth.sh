#!/usr/bin/env bash
# What web-service authentication costs on the scoring path: one mlgate server, one ONNX model
# deployed three times (no auth, key auth, token auth; same compute and concurrency), each
# scored by wrk in turn with the credential its mode needs, alternating order each round.
#
# usage: bench/scoring-auth.sh       (builds target/release/mlgate first)
# env:   ROUNDS=3 CONNS=32 DURATION=10s WARMUP=3s INPUTS=64 OUTPUTS=16
# Output: bench/out/scoring-auth-<timestamp>/ (raw wrk output, logs, summary.txt).
set -euo pipefail

BENCH="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(dirname "$BENCH")"
ROUNDS="${ROUNDS:-3}" CONNS="${CONNS:-32}" DURATION="${DURATION:-10s}" WARMUP="${WARMUP:-3s}"
INPUTS="${INPUTS:-64}" OUTPUTS="${OUTPUTS:-16}"
OUT="$BENCH/out/scoring-auth-$(date +%Y%m%d-%H%M%S)"
mkdir -p "$OUT"
NAME=scoring-auth
source "$BENCH/lib/mlgate-model.sh"

"$BENCH/setup.sh" >/dev/null
start_mlgate_with_model
PORT="$MPORT" SPID="$MPID"
echo '{"computeType": "instance", "cpu_cores": 2}' > "$TMP/none.json"
echo '{"computeType": "instance", "cpu_cores": 2, "auth_enabled": true}' > "$TMP/key.json"
echo '{"computeType": "cluster", "cpu_cores": 2, "replicas": 1, "token_auth_enabled": true}' > "$TMP/token.json"
for mode in none key token; do
  m ml model deploy -n "svc-$mode" -m linear:1 --ic "$TMP/ic.json" --dc "$TMP/$mode.json" -w bench-ws -g bench >/dev/null || die "deploy $mode failed"
done
KEY="$(m ml service get-keys -n svc-key -w bench-ws -g bench | python3 -c 'import json,sys; print(json.load(sys.stdin)["primaryKey"])')"
TOKEN="$(m ml service get-token -n svc-token -w bench-ws -g bench | python3 -c 'import json,sys; print(json.load(sys.stdin)["accessToken"])')"
declare -A AUTHZ=([mlgate-none]="" [mlgate-key]="Bearer $KEY" [mlgate-token]="Bearer $TOKEN")
declare -A SVC=([mlgate-none]=svc-none [mlgate-key]=svc-key [mlgate-token]=svc-token)

BODY="$(python3 -c "import json; print(json.dumps({'data': [[round((i % 7) / 7, 3) for i in range($INPUTS)]]}))")"
# Every mode must answer the same before anything is timed, and refuse a request without its credential.
REF=""
for n in mlgate-none mlgate-key mlgate-token; do
  A="$(curl -sf -X POST -H 'content-type: application/json' -H "authorization: ${AUTHZ[$n]}" -d "$BODY" "http://127.0.0.1:$PORT/api/v1/service/${SVC[$n]}/score")" || die "$n scoring failed"
  [ -z "$REF" ] && REF="$A"
  [ "$A" = "$REF" ] || die "$n answers differently"
done
for n in mlgate-key mlgate-token; do
  code="$(curl -s -o /dev/null -w '%{http_code}' -X POST -H 'content-type: application/json' -d "$BODY" "http://127.0.0.1:$PORT/api/v1/service/${SVC[$n]}/score")"
  [ "$code" = 401 ] || die "$n answered $code without a credential"
done

cpu_ticks() { awk '{print $14 + $15}' "/proc/$SPID/stat"; }
run_wrk() { # NAME DURATION [OUTFILE]
  local before after
  before="$(cpu_ticks)"
  WRK_PATH="/api/v1/service/${SVC[$1]}/score" WRK_BODY="$BODY" WRK_CONTENT_TYPE=application/json WRK_AUTHORIZATION="${AUTHZ[$1]}" \
    wrk -t1 -c"$CONNS" -d"$2" --latency -s "$BENCH/wrk/token.lua" "http://127.0.0.1:$PORT" > "${3:-/dev/null}"
  after="$(cpu_ticks)"
  [ -z "${3:-}" ] || echo $((after - before)) > "${3%.txt}.cpu"
}
{
  echo "date: $(date -Is); nproc: $(nproc); model: linear $INPUTS->$OUTPUTS, one row per request"
  echo "wrk -t1 -c$CONNS -d$DURATION --latency, rounds: $ROUNDS; services: instance/none, instance/key, cluster(1 replica)/token; cpu_cores 2 each"
} | tee "$OUT/facts.txt"
names=(mlgate-none mlgate-key mlgate-token)
for n in "${names[@]}"; do run_wrk "$n" "$WARMUP"; done
for r in $(seq "$ROUNDS"); do
  case $((r % 3)) in
    1) order=(mlgate-none mlgate-key mlgate-token) ;;
    2) order=(mlgate-token mlgate-none mlgate-key) ;;
    0) order=(mlgate-key mlgate-token mlgate-none) ;;
  esac
  for n in "${order[@]}"; do echo "round $r/$ROUNDS: $n"; run_wrk "$n" "$DURATION" "$OUT/$n-r$r.txt"; done
done
python3 "$BENCH/wrk/summarize.py" "$OUT" mlgate-none | tee "$OUT/summary.txt"
echo "raw output: $OUT"
