#!/usr/bin/env bash
# Regenerates crates/cli/link/symbol-order.txt, the order in which the linker lays out the
# functions of the release `mlgate` (crates/cli/build.rs passes it to lld). Functions a server
# runs are packed at the start of the code, so that a server maps about 5 MiB of code instead of
# a 128 KiB block around every function it runs, all over 35 MiB (BENCHMARKS.md, "Resident
# memory").
#
# Two runs of a release `mlgate serve` under valgrind's callgrind, which names every function
# that runs:
#   1. bench/rss.sh's workload: start-up, client-credentials grants over HTTP, password sign-ins;
#   2. README.md's walkthrough (scripts/walkthrough.sh): HTTPS, the management API, role
#      assignments, deployments, scoring.
# The file lists run 1's functions, then run 2's others, each group sorted by name. A function
# the list does not name (new code, or one whose mangled name changed with a dependency's
# version) is laid out after them, as without the list: a stale list costs memory, never
# correctness. Rerun after dependency upgrades; bench/rss.sh shows the effect.
#
# usage: bench/symbol-order.sh [path-to-release-mlgate]   (needs valgrind: apt-get install valgrind)
set -euo pipefail
BENCH="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(dirname "$BENCH")"
TARGET="$(bash "$ROOT/scripts/target-dir.sh")"
[ -n "${1:-}" ] || (cd "$ROOT" && cargo build --release -q -p mlgate-cli)
MLGATE="$(realpath "${1:-$TARGET/release/mlgate}")"
command -v valgrind >/dev/null || { echo "symbol-order: needs valgrind (apt-get install valgrind)" >&2; exit 1; }
"$BENCH/setup.sh" >/dev/null
TMP="$(mktemp -d)"; PID=
cleanup() { [ -z "$PID" ] || kill "$PID" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$TMP"; }
trap cleanup EXIT
mkdir -p "$TMP/cg"
callgrind() { # OUTPUT-PREFIX ARGS...: becomes mlgate ARGS under callgrind (run it with &)
  local out="$1"; shift
  exec valgrind -q --tool=callgrind --demangle=no --compress-strings=no --compress-pos=no \
    --dump-instr=no --dump-line=no --callgrind-out-file="$TMP/cg/$out.%p" "$MLGATE" "$@"
}
ready() { for _ in $(seq 300); do curl -sf "http://127.0.0.1:$1/readyz" >/dev/null && return; sleep 0.5; done; echo "symbol-order: no server" >&2; exit 1; }

# 1. The resident-memory workload. The first start (bootstrap, the CLI's sign-in, a service
# principal) runs natively; the measured server is the second start.
PORT="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
PW="p$(python3 -c 'import secrets; print(secrets.token_urlsafe(20))')"
MLGATE_LOG=warn MLGATE_BOOTSTRAP_PASSWORD="$PW" "$MLGATE" serve --data-dir "$TMP/d" --listen "127.0.0.1:$PORT" --insecure-http >"$TMP/log" 2>&1 &
PID=$!; ready "$PORT"
export MLGATE_CONFIG_DIR="$TMP/cli"
"$MLGATE" --server "http://127.0.0.1:$PORT" login -u admin@mlgate.local --password="$PW" >/dev/null
"$MLGATE" ad sp create-for-rbac --sdk-auth --name bench >"$TMP/sp.json"
kill "$PID"; wait "$PID" 2>/dev/null || true
MLGATE_LOG=warn callgrind serve serve --data-dir "$TMP/d" --listen "127.0.0.1:$PORT" --insecure-http >>"$TMP/log" 2>&1 &
PID=$!; ready "$PORT"
read -r TENANT CID SECRET < <(python3 -c 'import json, sys; d = json.load(open(sys.argv[1]))
print(d["tenantId"], d["clientId"], d["clientSecret"])' "$TMP/sp.json")
BODY="$(python3 -c 'import sys, urllib.parse as u; print(u.urlencode({"grant_type": "client_credentials", "client_id": sys.argv[1], "client_secret": sys.argv[2], "scope": "https://management.azure.com/.default"}))' "$CID" "$SECRET")"
WRK_PATH="/$TENANT/oauth2/v2.0/token" WRK_BODY="$BODY" wrk -t1 -c8 -d10s -s "$BENCH/wrk/token.lua" "http://127.0.0.1:$PORT" >"$TMP/wrk.txt"
grep -q '^non-200: 0$' "$TMP/wrk.txt" || { cat "$TMP/wrk.txt"; exit 1; }
PBODY="$(python3 -c 'import sys, urllib.parse as u; print(u.urlencode({"grant_type": "password", "client_id": "04b07795-8ddb-461a-bbee-02f9e1bf7b46", "username": "admin@mlgate.local", "password": sys.argv[1], "scope": "https://management.azure.com/.default"}))' "$PW")"
for _ in $(seq 40); do
  curl -sf -o /dev/null -X POST --data "$PBODY" "http://127.0.0.1:$PORT/mlgate.local/oauth2/v2.0/token"
done
sleep 2
kill "$PID"; wait "$PID" 2>/dev/null || true; PID=
echo "symbol-order: $(awk '/requests in/ {print $1}' "$TMP/wrk.txt") grants profiled" >&2

# 2. The walkthrough, with `mlgate serve` under callgrind (other commands run natively).
cat >"$TMP/mlgate" <<WRAP
#!/usr/bin/env bash
if [ "\$1" = serve ]; then
  exec valgrind -q --tool=callgrind --demangle=no --compress-strings=no --compress-pos=no \
    --dump-instr=no --dump-line=no --callgrind-out-file="$TMP/cg/walkthrough.%p" "$MLGATE" "\$@"
fi
exec "$MLGATE" "\$@"
WRAP
chmod +x "$TMP/mlgate"
bash "$ROOT/scripts/walkthrough.sh" "$TMP/mlgate" >"$TMP/walkthrough.log" 2>&1 || { tail -40 "$TMP/walkthrough.log"; exit 1; }
# The walkthrough stops its server as it ends; callgrind writes its profile as the server exits.
for _ in $(seq 120); do pgrep -f "callgrind-out-file=$TMP" >/dev/null || break; sleep 0.5; done

python3 - "$MLGATE" "$ROOT/crates/cli/link/symbol-order.txt" "$TMP"/cg/serve.* -- "$TMP"/cg/walkthrough.* <<'PY'
import collections, re, subprocess, sys
exe, out, rest = sys.argv[1], sys.argv[2], sys.argv[3:]
split = rest.index("--")
def functions(paths):
    """Self cost (instructions) of each function of `exe` in callgrind profiles."""
    cost = collections.Counter()
    for path in paths:
        ob = fn = None
        call = False
        for line in open(path, errors="replace"):
            if line.startswith("ob="):
                ob = line[3:].strip()
            elif line.startswith("fn="):
                fn = line[3:].strip() if ob == exe else None
                if fn:
                    cost[fn] += 0
            elif line.startswith("calls="):
                call = True  # the next cost line is the call's inclusive cost
            elif line[:1].isdigit():
                if fn and not call:
                    cost[fn] += int(line.split()[1])
                call = False
    # Callgrind marks recursion depth ("f'2") and names code without a symbol by its address.
    names = [f.split("'")[0] for f, _ in cost.most_common()]
    return list(dict.fromkeys(f for f in names if not f.startswith(("(", "0x")) and f != "main"))
first = functions(rest[:split])
# Under valgrind, aws-lc picks its code for the CPU valgrind emulates (no AVX-512, no SHA
# extensions), so a function's variants for other CPUs come with it: sha256_block_data_order_avx
# brings ..._shaext, gcm_init_avx brings gcm_init_avx512.
variant = re.compile(r"^(aws_lc_\w+?)_(avx512|avx2|avx|ssse3|shaext|nohw|hw|adx|bmi2|clmul|x86_64)$")
stems = {m[1] for f in first if (m := variant.match(f))}
nm = subprocess.run(["nm", "--defined-only", exe], capture_output=True, text=True, check=True).stdout
defined = {line.split()[-1] for line in nm.splitlines()}
siblings = sorted(f for f in defined if (m := variant.match(f)) and m[1] in stems)
if any("aesni_gcm" in f for f in first):  # AES-GCM's AVX-512 code has names of its own
    siblings += sorted(f for f in defined if re.match(r"aws_lc_\w*gcm\w*_avx512$", f))
# The entry point and the C runtime's start-up run before anything valgrind sees by name.
crt = ["_start", "main", "frame_dummy", "register_tm_clones", "deregister_tm_clones"]
first = crt + first + [f for f in siblings if f not in set(first)]
# SQLite's (C) functions that the walkthrough ran and the workload did not are B-tree and
# journal paths that depend on how much the database holds: every server comes to run them.
walkthrough = functions(rest[split + 1:])
first += [f for f in walkthrough if f not in set(first) and not f.startswith(("_ZN", "_R", "aws_lc_"))]
seen = set(first)
# Sorted by name within each group, so that a new profile changes only the lines it must.
order = crt + sorted(set(first) - set(crt)) + sorted(f for f in set(walkthrough) if f not in seen)
if len(first) < 1000 or len(order) < 2000:
    sys.exit(f"symbol-order: only {len(first)}/{len(order)} functions profiled; not writing")
with open(out, "w") as f:
    f.write("\n".join(order) + "\n")
print(f"symbol-order: {len(first)} functions from the workload, {len(order)} in all -> {out}", file=sys.stderr)
PY
