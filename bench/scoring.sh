#!/usr/bin/env bash
# Scoring throughput and p99, mlgate's in-process ONNX runtime vs a reference Python service
# (Flask + onnxruntime under gunicorn) serving the same model file, on 127.0.0.1, one wrk at a
# time, alternating each round; then the memory each further deployed mlgate instance adds.
#
# usage: bench/scoring.sh            (builds target/release/mlgate first)
# env:   ROUNDS=3 CONNS=32 DURATION=10s WARMUP=3s PY_WORKERS=2 INPUTS=64 OUTPUTS=16 INSTANCES=10
# Output: bench/out/scoring-<timestamp>/ (raw wrk output, logs, summary.txt).
set -euo pipefail

BENCH="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(dirname "$BENCH")"
ROUNDS="${ROUNDS:-3}" CONNS="${CONNS:-32}" DURATION="${DURATION:-10s}" WARMUP="${WARMUP:-3s}"
PY_WORKERS="${PY_WORKERS:-2}" INPUTS="${INPUTS:-64}" OUTPUTS="${OUTPUTS:-16}" INSTANCES="${INSTANCES:-10}"
OUT="$BENCH/out/scoring-$(date +%Y%m%d-%H%M%S)"
mkdir -p "$OUT"
NAME=scoring
source "$BENCH/lib/mlgate-model.sh"
rss_kb() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }
tree_rss_kb() { local t=0; for p in "$1" $(pgrep -P "$1"); do t=$((t + $(rss_kb "$p"))); done; echo "$t"; }

"$BENCH/setup.sh" >/dev/null
# The reference service's packages, in a git-ignored venv.
PYV="$BENCH/.deps/pyvenv"
REQS="onnxruntime==1.32.0 numpy==2.4.6 flask==3.1.3 gunicorn"
if [ "$(cat "$PYV/.stamp" 2>/dev/null || true)" != "$REQS" ]; then
  python3 -m venv "$PYV" && "$PYV/bin/pip" install -q $REQS && echo "$REQS" > "$PYV/.stamp"
fi

# --- mlgate, with the model registered and deployed -------------------------------------
start_mlgate_with_model
echo '{"computeType": "instance", "cpu_cores": 2}' > "$TMP/dc.json"
m ml model deploy -n bench-svc -m linear:1 --ic "$TMP/ic.json" --dc "$TMP/dc.json" -w bench-ws -g bench >/dev/null || die "deploy failed"

# --- the reference Python service --------------------------------------------------------
PPORT="$(free_port)"
(cd "$BENCH/python-scoring" && MODEL="$TMP/model.onnx" exec "$PYV/bin/gunicorn" -w "$PY_WORKERS" -b "127.0.0.1:$PPORT" app:app) >"$OUT/python.log" 2>&1 &
PPID_=$!; PIDS+=("$PPID_")
# Up once it answers at all (exit 7 is "connection refused"; the probe's body is deliberately wrong).
for _ in $(seq 150); do rc=0; curl -s -o /dev/null "http://127.0.0.1:$PPORT/score" || rc=$?; [ "$rc" -ne 7 ] && break; sleep 0.2; done

BODY="$(python3 -c "import json; print(json.dumps({'data': [[round((i % 7) / 7, 3) for i in range($INPUTS)]]}))")"
# Both must answer the same numbers before anything is timed.
A="$(curl -sf -X POST -H 'content-type: application/json' -d "$BODY" "http://127.0.0.1:$MPORT/api/v1/service/bench-svc/score")" || die "mlgate scoring failed"
B="$(curl -sf -X POST -H 'content-type: application/json' -d "$BODY" "http://127.0.0.1:$PPORT/score")" || die "python scoring failed"
python3 - "$A" "$B" <<'PY' || die "the two services disagree"
import json, sys
a, b = (json.loads(x)["result"][0] for x in sys.argv[1:3])
assert len(a) == len(b) and all(abs(x - y) < 1e-4 for x, y in zip(a, b)), (a, b)
PY

declare -A URL=([mlgate]="http://127.0.0.1:$MPORT" [python]="http://127.0.0.1:$PPORT")
declare -A WPATH=([mlgate]="/api/v1/service/bench-svc/score" [python]="/score")
declare -A SPID=([mlgate]="$MPID" [python]="$PPID_")
cpu_ticks() { { cat "/proc/$1/stat" $(pgrep -P "$1" | sed 's|.*|/proc/&/stat|') 2>/dev/null || true; } | awk '{t += $14 + $15} END {print t + 0}'; }
run_wrk() { # NAME DURATION [OUTFILE]
  local before after
  before="$(cpu_ticks "${SPID[$1]}")"
  WRK_PATH="${WPATH[$1]}" WRK_BODY="$BODY" WRK_CONTENT_TYPE=application/json \
    wrk -t1 -c"$CONNS" -d"$2" --latency -s "$BENCH/wrk/token.lua" "${URL[$1]}" > "${3:-/dev/null}"
  after="$(cpu_ticks "${SPID[$1]}")"
  [ -z "${3:-}" ] || echo $((after - before)) > "${3%.txt}.cpu"
}
{
  echo "date: $(date -Is); nproc: $(nproc); model: linear $INPUTS->$OUTPUTS, one row per request"
  echo "python: $("$PYV/bin/python" --version), onnxruntime 1.32.0, flask 3.1.3, gunicorn -w $PY_WORKERS"
  echo "wrk -t1 -c$CONNS -d$DURATION --latency, rounds: $ROUNDS"
} | tee "$OUT/facts.txt"
names=(python mlgate)
for n in "${names[@]}"; do run_wrk "$n" "$WARMUP"; done
for r in $(seq "$ROUNDS"); do
  order=("${names[@]}"); [ $((r % 2)) -eq 0 ] && order=(mlgate python)
  for n in "${order[@]}"; do echo "round $r/$ROUNDS: $n"; run_wrk "$n" "$DURATION" "$OUT/$n-r$r.txt"; done
done
python3 "$BENCH/wrk/summarize.py" "$OUT" python | tee "$OUT/summary.txt"

# --- memory: what each further deployed instance adds to mlgate --------------------------
before="$(rss_kb "$MPID")"
for i in $(seq "$INSTANCES"); do
  m ml model deploy -n "extra-$i" -m linear:1 --ic "$TMP/ic.json" --dc "$TMP/dc.json" -w bench-ws -g bench >/dev/null || die "deploy $i failed"
done
after="$(rss_kb "$MPID")"
py_total="$(tree_rss_kb "$PPID_")"
{
  echo "mlgate RSS: $before kB with 1 service, $after kB with $((INSTANCES + 1)); per further instance: $(( (after - before) / INSTANCES )) kB"
  echo "python reference service RSS (gunicorn master + $PY_WORKERS workers, one model): $py_total kB"
} | tee -a "$OUT/summary.txt"
echo "raw output: $OUT"
