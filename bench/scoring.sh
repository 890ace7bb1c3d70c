#!/usr/bin/env bash
# Scoring throughput and p99, mlgate's in-process ONNX runtime vs the two reference Python
# services a team would write today, each in the configuration its documentation recommends and
# with keep-alive on: FastAPI + onnxruntime under uvicorn (uvicorn[standard], one worker per core)
# and Flask + onnxruntime under gunicorn's threaded workers (2 x cores + 1 workers, 2 threads).
# Same model file, 127.0.0.1, one wrk at a time, the order rotating each round, the load average
# printed per round; then the memory each further deployed mlgate instance adds.
#
# usage: bench/scoring.sh            (builds target/release/mlgate first)
# env:   ROUNDS=5 CONNS=32 DURATION=10s WARMUP=3s INPUTS=64 OUTPUTS=16 INSTANCES=10
# Output: bench/out/scoring-<timestamp>/ (raw wrk output, logs, summary.txt).
set -euo pipefail

BENCH="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(dirname "$BENCH")"
ROUNDS="${ROUNDS:-5}" CONNS="${CONNS:-32}" DURATION="${DURATION:-10s}" WARMUP="${WARMUP:-3s}"
NPROC="$(nproc)" INPUTS="${INPUTS:-64}" OUTPUTS="${OUTPUTS:-16}" INSTANCES="${INSTANCES:-10}"
OUT="$BENCH/out/scoring-$(date +%Y%m%d-%H%M%S)"
mkdir -p "$OUT"
NAME=scoring
source "$BENCH/lib/mlgate-model.sh"
rss_kb() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }
tree_rss_kb() { local t=0; for p in "$1" $(pgrep -P "$1"); do t=$((t + $(rss_kb "$p"))); done; echo "$t"; }

"$BENCH/setup.sh" >/dev/null
# The reference service's packages, in a git-ignored venv.
PYV="$BENCH/.deps/pyvenv"
REQS="onnxruntime==1.32.0 numpy==2.4.6 flask==3.1.3 gunicorn==27.0.1 fastapi==0.165.0 uvicorn[standard]==0.54.0"
if [ "$(cat "$PYV/.stamp" 2>/dev/null || true)" != "$REQS" ]; then
  python3 -m venv "$PYV" && "$PYV/bin/pip" install -q $REQS && echo "$REQS" > "$PYV/.stamp"
fi

# --- mlgate, with the model registered and deployed -------------------------------------
start_mlgate_with_model
echo '{"computeType": "instance", "cpu_cores": 2}' > "$TMP/dc.json"
m ml model deploy -n bench-svc -m linear:1 --ic "$TMP/ic.json" --dc "$TMP/dc.json" -w bench-ws -g bench >/dev/null || die "deploy failed"

# --- the reference Python services ------------------------------------------------------
FPORT="$(free_port)"
(cd "$BENCH/python-scoring" && MODEL="$TMP/model.onnx" exec "$PYV/bin/uvicorn" --workers "$NPROC" --no-access-log \
  --host 127.0.0.1 --port "$FPORT" app_fastapi:app) >"$OUT/fastapi.log" 2>&1 &
FPID=$!; PIDS+=("$FPID")
GPORT="$(free_port)"
(cd "$BENCH/python-scoring" && MODEL="$TMP/model.onnx" exec "$PYV/bin/gunicorn" -k gthread -w $((2 * NPROC + 1)) --threads 2 \
  -b "127.0.0.1:$GPORT" app:app) >"$OUT/flask.log" 2>&1 &
GPID=$!; PIDS+=("$GPID")
# Up once they answer at all (exit 7 is "connection refused"; the probe's body is deliberately wrong).
for port in "$FPORT" "$GPORT"; do
  for _ in $(seq 150); do rc=0; curl -s -o /dev/null "http://127.0.0.1:$port/score" || rc=$?; [ "$rc" -ne 7 ] && break; sleep 0.2; done
done

BODY="$(python3 -c "import json; print(json.dumps({'data': [[round((i % 7) / 7, 3) for i in range($INPUTS)]]}))")"
# Both must answer the same numbers before anything is timed.
A="$(curl -sf -X POST -H 'content-type: application/json' -d "$BODY" "http://127.0.0.1:$MPORT/api/v1/service/bench-svc/score")" || die "mlgate scoring failed"
B="$(curl -sf -X POST -H 'content-type: application/json' -d "$BODY" "http://127.0.0.1:$FPORT/score")" || die "fastapi scoring failed"
C="$(curl -sf -X POST -H 'content-type: application/json' -d "$BODY" "http://127.0.0.1:$GPORT/score")" || die "flask scoring failed"
python3 - "$A" "$B" "$C" <<'PY' || die "the services disagree"
import json, sys
a, *others = (json.loads(x)["result"][0] for x in sys.argv[1:4])
for b in others:
    assert len(a) == len(b) and all(abs(x - y) < 1e-4 for x, y in zip(a, b)), (a, b)
PY
# Keep-alive on every side: one connection must serve two requests.
for port in "$MPORT" "$FPORT" "$GPORT"; do
  path=/score; [ "$port" = "$MPORT" ] && path=/api/v1/service/bench-svc/score
  n="$(curl -sf -o /dev/null -w '%{num_connects}\n' -X POST -H 'content-type: application/json' -d "$BODY" \
    "http://127.0.0.1:$port$path" --next -o /dev/null -X POST -H 'content-type: application/json' -d "$BODY" \
    "http://127.0.0.1:$port$path" | paste -sd+ | bc)"
  [ "$n" = 1 ] || die "port $port did not keep the connection alive ($n connects for 2 requests)"
done

declare -A URL=([mlgate]="http://127.0.0.1:$MPORT" [fastapi]="http://127.0.0.1:$FPORT" [flask]="http://127.0.0.1:$GPORT")
declare -A WPATH=([mlgate]="/api/v1/service/bench-svc/score" [fastapi]="/score" [flask]="/score")
declare -A SPID=([mlgate]="$MPID" [fastapi]="$FPID" [flask]="$GPID")
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
  echo "python: $("$PYV/bin/python" --version); $REQS"
  echo "fastapi: uvicorn --workers $NPROC (uvloop, httptools); flask: gunicorn -k gthread -w $((2 * NPROC + 1)) --threads 2"
  echo "wrk -t1 -c$CONNS -d$DURATION --latency, rounds: $ROUNDS"
} | tee "$OUT/facts.txt"
names=(fastapi flask mlgate)
for n in "${names[@]}"; do run_wrk "$n" "$WARMUP"; done
for r in $(seq "$ROUNDS"); do
  # rotate: each server goes first, second and third in turn
  k=$(( (r - 1) % 3 )); order=("${names[@]:$k}" "${names[@]:0:$k}")
  for n in "${order[@]}"; do
    echo "round $r/$ROUNDS: $n (load average $(cut -d' ' -f1-3 /proc/loadavg))" | tee -a "$OUT/rounds.txt"
    run_wrk "$n" "$DURATION" "$OUT/$n-r$r.txt"
  done
done
{ python3 "$BENCH/wrk/summarize.py" "$OUT" fastapi; python3 "$BENCH/wrk/summarize.py" "$OUT" flask | grep '^paired ratio mlgate'; } | tee "$OUT/summary.txt"

# --- memory: what each further deployed instance adds to mlgate --------------------------
before="$(rss_kb "$MPID")"
for i in $(seq "$INSTANCES"); do
  m ml model deploy -n "extra-$i" -m linear:1 --ic "$TMP/ic.json" --dc "$TMP/dc.json" -w bench-ws -g bench >/dev/null || die "deploy $i failed"
done
after="$(rss_kb "$MPID")"
fastapi_total="$(tree_rss_kb "$FPID")"; flask_total="$(tree_rss_kb "$GPID")"
{
  echo "mlgate RSS: $before kB with 1 service, $after kB with $((INSTANCES + 1)); per further instance: $(( (after - before) / INSTANCES )) kB"
  echo "fastapi (uvicorn + $NPROC workers, one model) RSS: $fastapi_total kB; flask (gunicorn + $((2 * NPROC + 1)) workers) RSS: $flask_total kB"
} | tee -a "$OUT/summary.txt"
echo "raw output: $OUT"
