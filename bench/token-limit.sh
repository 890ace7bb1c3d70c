#!/usr/bin/env bash
# How close mlgate's client-credentials endpoint comes to this machine's limit: the bare axum
# endpoint of crates/server/examples/bare_token.rs (same form, same secret check, same claims,
# same cached ES256 signer, same TLS configuration; nothing else). Both servers run at once,
# over HTTP and over HTTPS; wrk drives one at a time, keep-alive, the order alternating every
# round, so each round pairs mlgate with the limit under the same load. Prints every round's
# load average and mlgate/limit ratio, then the medians and spread, and each server's CPU time
# per grant (user + system from /proc, 100 ticks a second), which the load on the host sways less.
#
# usage: bench/token-limit.sh [path-to-mlgate]   (default: target/release/mlgate, built first)
# env:   ROUNDS=7 CONNS=32 DURATION=8s WARMUP=2s
#        PERF=1: also `perf record` each server during each run (OUT/NAME-rN.txt.perf)
# Output: bench/out/token-limit-<timestamp>/ (raw wrk output, logs, summary.txt).
set -euo pipefail

BENCH="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(dirname "$BENCH")"
ROUNDS="${ROUNDS:-7}" CONNS="${CONNS:-32}" DURATION="${DURATION:-8s}" WARMUP="${WARMUP:-2s}"
OUT="$BENCH/out/token-limit-$(date +%Y%m%d-%H%M%S)"
mkdir -p "$OUT"
TMP="$(mktemp -d)"
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$TMP"; }
trap cleanup EXIT
die() { echo "token-limit: $*" >&2; exit 1; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
form() { python3 -c 'import sys, urllib.parse as u; print(u.urlencode(list(zip(*[iter(sys.argv[1:])]*2))))' "$@"; }

"$BENCH/setup.sh" >/dev/null
TARGET="$(cd "$ROOT" && cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')"
(cd "$ROOT" && cargo build --release -q -p mlgate-cli && cargo build --release -q -p mlgate-server --example bare_token)
MLGATE="$(realpath "${1:-$TARGET/release/mlgate}")"
BARE="$TARGET/release/examples/bare_token"

# mlgate, on HTTP and on HTTPS (two servers over one data directory would share a store; use two)
PW="p$(python3 -c 'import secrets; print(secrets.token_urlsafe(20))')"
start_mlgate() { # NAME PORT [serve flags]
  MLGATE_LOG=warn MLGATE_BOOTSTRAP_PASSWORD="$PW" "$MLGATE" serve --data-dir "$TMP/$1" --listen "127.0.0.1:$2" "${@:3}" \
    >"$OUT/$1.log" 2>&1 &
  PIDS+=($!)
}
HPORT="$(free_port)"; start_mlgate mlgate-http "$HPORT" --insecure-http
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$HPORT/readyz" >/dev/null && break; sleep 0.2; done
export MLGATE_CONFIG_DIR="$TMP/cli"
"$MLGATE" --server "http://127.0.0.1:$HPORT" login -u admin@mlgate.local --password="$PW" >/dev/null 2>>"$OUT/cli.log" || die "login"
"$MLGATE" ad sp create-for-rbac --sdk-auth --name bench >"$TMP/sp.json" 2>>"$OUT/cli.log" || die "create-for-rbac"
read -r TENANT CID SECRET < <(python3 -c 'import json, sys; d = json.load(open(sys.argv[1]))
print(d["tenantId"], d["clientId"], d["clientSecret"])' "$TMP/sp.json")
# The HTTPS instance serves a copy of the same store, so the same principal signs in there.
kill "${PIDS[0]}"; wait "${PIDS[0]}" 2>/dev/null || true; PIDS=()
cp -a "$TMP/mlgate-http" "$TMP/mlgate-https"
declare -A SPID
start_mlgate mlgate-http "$HPORT" --insecure-http; SPID[mlgate-http]=$!
SPORT="$(free_port)"; start_mlgate mlgate-https "$SPORT"; SPID[mlgate-https]=$!
CA="$TMP/mlgate-https/tls/ca.pem"
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$HPORT/readyz" >/dev/null && curl -sf --cacert "$CA" "https://127.0.0.1:$SPORT/readyz" >/dev/null && break; sleep 0.2; done

# The limit, on HTTP and on HTTPS (with mlgate's own certificate and key)
BPORT="$(free_port)"; BSPORT="$(free_port)"
"$BARE" "127.0.0.1:$BPORT" "$CID" "$SECRET" >"$OUT/bare-http.log" 2>&1 & PIDS+=($!); SPID[bare-http]=$!
"$BARE" "127.0.0.1:$BSPORT" "$CID" "$SECRET" "$TMP/mlgate-https/tls/server.pem" "$TMP/mlgate-https/tls/server-key.pem" \
  >"$OUT/bare-https.log" 2>&1 & PIDS+=($!); SPID[bare-https]=$!
sleep 1

BODY="$(form grant_type client_credentials client_id "$CID" client_secret "$SECRET" scope https://management.azure.com/.default)"
declare -A URL=([mlgate-http]="http://127.0.0.1:$HPORT" [mlgate-https]="https://127.0.0.1:$SPORT"
                [bare-http]="http://127.0.0.1:$BPORT" [bare-https]="https://127.0.0.1:$BSPORT")
for n in "${!URL[@]}"; do
  code="$(curl -s --cacert "$CA" -o "$OUT/$n-check.json" -w '%{http_code}' -X POST --data "$BODY" "${URL[$n]}/$TENANT/oauth2/v2.0/token")"
  [ "$code" = 200 ] || die "$n answered $code: $(cat "$OUT/$n-check.json")"
done
python3 - "$OUT" <<'PY' || die "the two endpoints' tokens differ in shape"
import base64, json, sys
def claims(f):
    t = json.load(open(f))["access_token"].split(".")[1]
    return json.loads(base64.urlsafe_b64decode(t + "=" * (-len(t) % 4)))
a, b = claims(f"{sys.argv[1]}/mlgate-http-check.json"), claims(f"{sys.argv[1]}/bare-http-check.json")
assert sorted(a) == sorted(b), (sorted(a), sorted(b))
PY

# The server's CPU time (user + system, clock ticks) so far.
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
# Context switches so far, all threads (a wake-up the limit does not have shows here).
switches() { cat /proc/"$1"/task/*/status 2>/dev/null | awk '/ctxt_switches/ {n += $2} END {print n}'; }
run_wrk() { # NAME DURATION [OUTFILE]: also writes the server's CPU ticks spent to OUTFILE.cpu
  local before perf="" sw; before="$(ticks "${SPID[$1]}")"; sw="$(switches "${SPID[$1]}")"
  if [ -n "${PERF:-}" ] && [ -n "${3:-}" ]; then # a profile of the server during the run
    perf record -q -F 1999 -g -p "${SPID[$1]}" -o "$3.perf" -- sleep "${2%s}" >/dev/null 2>&1 & perf=$!
  fi
  WRK_PATH="/$TENANT/oauth2/v2.0/token" WRK_BODY="$BODY" \
    wrk -t1 -c"$CONNS" -d"$2" --latency -s "$BENCH/wrk/token.lua" "${URL[$1]}" > "${3:-/dev/null}"
  [ -n "${3:-}" ] && echo $(( $(ticks "${SPID[$1]}") - before )) > "$3.cpu"
  [ -n "${3:-}" ] && echo $(( $(switches "${SPID[$1]}") - sw )) > "$3.switches"
  [ -n "$perf" ] && wait "$perf"
  return 0
}
{
  echo "date: $(date -Is); nproc: $(nproc); kernel: $(uname -r)"
  echo "mlgate: $MLGATE; limit: $BARE"
  echo "wrk -t1 -c$CONNS -d$DURATION --latency; rounds: $ROUNDS; same claims, same signer, same TLS config"
} | tee "$OUT/facts.txt"
for n in bare-http mlgate-http bare-https mlgate-https; do run_wrk "$n" "$WARMUP"; done
for r in $(seq "$ROUNDS"); do
  for proto in http https; do
    if [ $((r % 2)) = 1 ]; then order=("bare-$proto" "mlgate-$proto"); else order=("mlgate-$proto" "bare-$proto"); fi
    echo "round $r/$ROUNDS $proto (load $(cut -d' ' -f1-3 /proc/loadavg)): ${order[*]}" | tee -a "$OUT/facts.txt"
    for n in "${order[@]}"; do run_wrk "$n" "$DURATION" "$OUT/$n-r$r.txt"; done
  done
done
python3 - "$OUT" "$ROUNDS" <<'PY' | tee "$OUT/summary.txt"
import pathlib, re, statistics, sys
out, rounds = pathlib.Path(sys.argv[1]), int(sys.argv[2])
def rps(name, r):
    t = (out / f"{name}-r{r}.txt").read_text()
    if int(re.search(r"^non-200: (\d+)", t, re.M).group(1)):
        sys.exit(f"{name}-r{r}: non-200 answers")
    return float(re.search(r"^Requests/sec:\s+([\d.]+)", t, re.M).group(1))
def cpu_us(name, r):
    """The server's CPU time per request (user + system), in microseconds."""
    t = (out / f"{name}-r{r}.txt").read_text()
    n = int(re.search(r"^\s+(\d+) requests in", t, re.M).group(1))
    return int((out / f"{name}-r{r}.txt.cpu").read_text()) * 10_000 / n
for proto in ("http", "https"):
    m = [rps(f"mlgate-{proto}", r) for r in range(1, rounds + 1)]
    b = [rps(f"bare-{proto}", r) for r in range(1, rounds + 1)]
    ratios = [x / y for x, y in zip(m, b)]
    print(f"{proto}: limit median {statistics.median(b):.0f}/s, mlgate median {statistics.median(m):.0f}/s; "
          f"mlgate/limit paired median {statistics.median(ratios):.3f} (min {min(ratios):.3f}, max {max(ratios):.3f}); "
          f"rounds: {' '.join(f'{x:.3f}' for x in ratios)}")
    mc = [cpu_us(f"mlgate-{proto}", r) for r in range(1, rounds + 1)]
    bc = [cpu_us(f"bare-{proto}", r) for r in range(1, rounds + 1)]
    print(f"{proto}: server CPU per grant: limit median {statistics.median(bc):.1f} us, mlgate median "
          f"{statistics.median(mc):.1f} us; limit/mlgate paired median "
          f"{statistics.median([b / m for b, m in zip(bc, mc)]):.3f}")
    def switches(name, r):
        t = (out / f"{name}-r{r}.txt").read_text()
        n = int(re.search(r"^\s+(\d+) requests in", t, re.M).group(1))
        return int((out / f"{name}-r{r}.txt.switches").read_text()) / n
    ms = [switches(f"mlgate-{proto}", r) for r in range(1, rounds + 1)]
    bs = [switches(f"bare-{proto}", r) for r in range(1, rounds + 1)]
    print(f"{proto}: context switches per grant: limit median {statistics.median(bs):.3f}, "
          f"mlgate median {statistics.median(ms):.3f}")
PY
echo "raw output: $OUT"
