#!/usr/bin/env bash
# Resident memory of a release build: idle, after 10,000 client-credentials grants and after 100
# password sign-ins (the first one is what used to keep argon2's 19 MiB), then after 10 s quiet.
# Prints VmRSS and its anonymous part (the rest is the binary's own pages).
#
# usage: bench/rss.sh [path-to-mlgate]   (default: the cargo target dir's release/mlgate)
set -euo pipefail
BENCH="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(dirname "$BENCH")"
TARGET="$(cd "$ROOT" && cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')"
MLGATE="$(realpath "${1:-$TARGET/release/mlgate}")"
TMP="$(mktemp -d)"; PID=
cleanup() { [ -z "$PID" ] || kill "$PID" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$TMP"; }
trap cleanup EXIT
"$BENCH/setup.sh" >/dev/null
PORT="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
PW="p$(python3 -c 'import secrets; print(secrets.token_urlsafe(20))')"
MLGATE_LOG=warn MLGATE_BOOTSTRAP_PASSWORD="$PW" "$MLGATE" serve --data-dir "$TMP/d" --listen "127.0.0.1:$PORT" --insecure-http >"$TMP/log" 2>&1 &
PID=$!
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$PORT/readyz" >/dev/null && break; sleep 0.2; done
export MLGATE_CONFIG_DIR="$TMP/cli"
"$MLGATE" --server "http://127.0.0.1:$PORT" login -u admin@mlgate.local --password="$PW" >/dev/null
"$MLGATE" ad sp create-for-rbac --sdk-auth --name bench >"$TMP/sp.json"
read -r TENANT CID SECRET < <(python3 -c 'import json, sys; d = json.load(open(sys.argv[1]))
print(d["tenantId"], d["clientId"], d["clientSecret"])' "$TMP/sp.json")
rss() { printf '%-34s RSS %6.1f MiB (anonymous %5.1f MiB)  load %s\n' "$1" \
  "$(awk '/^VmRSS/ {print $2 / 1024}' /proc/$PID/status)" "$(awk '/^Anonymous/ {print $2 / 1024}' /proc/$PID/smaps_rollup)" \
  "$(cut -d' ' -f1 /proc/loadavg)"; }
# Start from a server that has not hashed a password since it started.
kill "$PID"; wait "$PID" 2>/dev/null || true
MLGATE_LOG=warn "$MLGATE" serve --data-dir "$TMP/d" --listen "127.0.0.1:$PORT" --insecure-http >>"$TMP/log" 2>&1 &
PID=$!
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$PORT/readyz" >/dev/null && break; sleep 0.2; done
sleep 2; rss "idle"
BODY="$(python3 -c 'import sys, urllib.parse as u; print(u.urlencode({"grant_type": "client_credentials", "client_id": sys.argv[1], "client_secret": sys.argv[2], "scope": "https://management.azure.com/.default"}))' "$CID" "$SECRET")"
WRK_PATH="/$TENANT/oauth2/v2.0/token" WRK_BODY="$BODY" wrk -t1 -c8 -d3s -s "$BENCH/wrk/token.lua" "http://127.0.0.1:$PORT" >"$TMP/wrk.txt"
n="$(awk '/requests in/ {print $1}' "$TMP/wrk.txt")"
grep -q '^non-200: 0$' "$TMP/wrk.txt" || { cat "$TMP/wrk.txt"; exit 1; }
[ "$n" -ge 10000 ] || { echo "only $n grants"; exit 1; }
rss "after $n grants"
PBODY="$(python3 -c 'import sys, urllib.parse as u; print(u.urlencode({"grant_type": "password", "client_id": "04b07795-8ddb-461a-bbee-02f9e1bf7b46", "username": "admin@mlgate.local", "password": sys.argv[1], "scope": "https://management.azure.com/.default"}))' "$PW")"
for i in $(seq 100); do
  [ "$(curl -s -o /dev/null -w '%{http_code}' -X POST --data "$PBODY" "http://127.0.0.1:$PORT/mlgate.local/oauth2/v2.0/token")" = 200 ] || { echo "sign-in $i failed"; exit 1; }
  [ "$i" = 1 ] && rss "after the first password sign-in"
done
rss "after 100 password sign-ins"
sleep 10; rss "10 s later"
# DETAIL=1: where the resident memory is, mapping by mapping and section by section.
[ -z "${DETAIL:-}" ] || python3 "$BENCH/smaps.py" "$PID"
[ -z "${PAUSE:-}" ] || { echo "PID $PID; waiting $PAUSE s"; sleep "$PAUSE"; }
