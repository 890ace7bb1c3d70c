#!/usr/bin/env bash
# What recording metrics costs (issue 12): client-credentials grants/s and scoring req/s of one
# release binary run twice over copies of one data directory, "off" (MLGATE_BENCH_DISABLE_METRICS=1:
# no request, token, scoring or store recording) and "on" (everything recorded, /metrics on a
# --metrics-listen address scraped every 5 s as Prometheus would). Both plain HTTP; wrk drives
# one at a time, the order alternating every round, so each round pairs on with off under the
# same machine load. Prints every round's on/off ratio and the paired medians.
#
# usage: bench/metrics.sh        (builds target/release/mlgate first)
# env:   ROUNDS=7 CONNS=32 DURATION=8s WARMUP=2s INPUTS=64 OUTPUTS=16
# Output: bench/out/metrics-<timestamp>/ (raw wrk output, logs, summary.txt).
set -euo pipefail

BENCH="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(dirname "$BENCH")"
ROUNDS="${ROUNDS:-7}" CONNS="${CONNS:-32}" DURATION="${DURATION:-8s}" WARMUP="${WARMUP:-2s}"
INPUTS="${INPUTS:-64}" OUTPUTS="${OUTPUTS:-16}"
OUT="$BENCH/out/metrics-$(date +%Y%m%d-%H%M%S)"
mkdir -p "$OUT"
NAME=metrics
source "$BENCH/lib/mlgate-model.sh"
form() { python3 -c 'import sys, urllib.parse as u; print(u.urlencode(list(zip(*[iter(sys.argv[1:])]*2))))' "$@"; }

"$BENCH/setup.sh" >/dev/null
# One data directory with a principal and a deployed ONNX service, then two copies of it.
start_mlgate_with_model
echo '{"computeType": "instance", "cpu_cores": 2}' > "$TMP/dc.json"
m ml model deploy -n bench-svc -m linear:1 --ic "$TMP/ic.json" --dc "$TMP/dc.json" -w bench-ws -g bench >/dev/null || die "deploy failed"
m ad sp create-for-rbac --sdk-auth --name bench >"$TMP/sp.json" || die "create-for-rbac"
read -r TENANT CID SECRET < <(python3 -c 'import json, sys; d = json.load(open(sys.argv[1]))
print(d["tenantId"], d["clientId"], d["clientSecret"])' "$TMP/sp.json")
kill "$MPID"; wait "$MPID" 2>/dev/null || true; PIDS=()
cp -a "$TMP/data" "$TMP/on"; cp -a "$TMP/data" "$TMP/off"

OFFPORT="$(free_port)" ONPORT="$(free_port)" SCRAPEPORT="$(free_port)"
MLGATE_LOG=warn MLGATE_BENCH_DISABLE_METRICS=1 "$MLGATE" serve --data-dir "$TMP/off" \
  --listen "127.0.0.1:$OFFPORT" --insecure-http >"$OUT/off.log" 2>&1 & PIDS+=($!)
MLGATE_LOG=warn "$MLGATE" serve --data-dir "$TMP/on" --listen "127.0.0.1:$ONPORT" --insecure-http \
  --metrics-listen "127.0.0.1:$SCRAPEPORT" >"$OUT/on.log" 2>&1 & PIDS+=($!)
declare -A URL=([off]="http://127.0.0.1:$OFFPORT" [on]="http://127.0.0.1:$ONPORT")
SCORE='/api/v1/service/bench-svc/score'
SBODY="$(python3 -c "import json; print(json.dumps({'data': [[round((i % 7) / 7, 3) for i in range($INPUTS)]]}))")"
TBODY="$(form grant_type client_credentials client_id "$CID" client_secret "$SECRET" scope https://management.azure.com/.default)"
for n in off on; do
  for _ in $(seq 150); do
    curl -sf -o /dev/null -X POST -H 'content-type: application/json' -d "$SBODY" "${URL[$n]}$SCORE" && break
    sleep 0.2
  done
  curl -sf -o /dev/null -X POST --data "$TBODY" "${URL[$n]}/$TENANT/oauth2/v2.0/token" || die "$n: no token"
  curl -sf -o /dev/null -X POST -H 'content-type: application/json' -d "$SBODY" "${URL[$n]}$SCORE" || die "$n: no score"
done
curl -sf "http://127.0.0.1:$SCRAPEPORT/metrics" | grep -q '^mlgate_scoring_requests_total' || die "on: no metrics"
# The scraper of the "on" side, as Prometheus (every 5 s).
( while sleep 5; do curl -sf -o /dev/null "http://127.0.0.1:$SCRAPEPORT/metrics" || true; done ) & PIDS+=($!)

run_wrk() { # SIDE WORKLOAD DURATION [OUTFILE]
  if [ "$2" = token ]; then
    WRK_PATH="/$TENANT/oauth2/v2.0/token" WRK_BODY="$TBODY" \
      wrk -t1 -c"$CONNS" -d"$3" --latency -s "$BENCH/wrk/token.lua" "${URL[$1]}" > "${4:-/dev/null}"
  else
    WRK_PATH="$SCORE" WRK_BODY="$SBODY" WRK_CONTENT_TYPE=application/json \
      wrk -t1 -c"$CONNS" -d"$3" --latency -s "$BENCH/wrk/token.lua" "${URL[$1]}" > "${4:-/dev/null}"
  fi
}
{
  echo "date: $(date -Is); nproc: $(nproc); kernel: $(uname -r); mlgate: $MLGATE"
  echo "wrk -t1 -c$CONNS -d$DURATION --latency; rounds: $ROUNDS; off = MLGATE_BENCH_DISABLE_METRICS=1"
} | tee "$OUT/facts.txt"
for w in token score; do for n in off on; do run_wrk "$n" "$w" "$WARMUP"; done; done
for r in $(seq "$ROUNDS"); do
  for w in token score; do
    if [ $((r % 2)) = 1 ]; then order=(off on); else order=(on off); fi
    echo "round $r/$ROUNDS $w (load $(cut -d' ' -f1-3 /proc/loadavg)): ${order[*]}" | tee -a "$OUT/facts.txt"
    for n in "${order[@]}"; do run_wrk "$n" "$w" "$DURATION" "$OUT/$w-$n-r$r.txt"; done
  done
done
curl -sf "http://127.0.0.1:$SCRAPEPORT/metrics" > "$OUT/final-scrape.txt" || true
python3 - "$OUT" "$ROUNDS" <<'PY' | tee "$OUT/summary.txt"
import pathlib, re, statistics, sys
out, rounds = pathlib.Path(sys.argv[1]), int(sys.argv[2])
UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0}
def parse(w, side, r):
    t = (out / f"{w}-{side}-r{r}.txt").read_text()
    if int(re.search(r"^non-200: (\d+)", t, re.M).group(1)):
        sys.exit(f"{w}-{side}-r{r}: non-200 answers")
    rps = float(re.search(r"^Requests/sec:\s+([\d.]+)", t, re.M).group(1))
    v, u = re.search(r"^\s+99%\s+([\d.]+)(us|ms|s)\s*$", t, re.M).groups()
    return rps, float(v) * UNITS[u]
for w in ("token", "score"):
    on = [parse(w, "on", r) for r in range(1, rounds + 1)]
    off = [parse(w, "off", r) for r in range(1, rounds + 1)]
    ratios = [a[0] / b[0] for a, b in zip(on, off)]
    print(f"{w}: off median {statistics.median(x[0] for x in off):.0f}/s (p99 {statistics.median(x[1] for x in off):.2f} ms), "
          f"on median {statistics.median(x[0] for x in on):.0f}/s (p99 {statistics.median(x[1] for x in on):.2f} ms); "
          f"on/off paired median {statistics.median(ratios):.3f} (min {min(ratios):.3f}, max {max(ratios):.3f}); "
          f"rounds: {' '.join(f'{x:.3f}' for x in ratios)}")
PY
echo "raw output: $OUT"
