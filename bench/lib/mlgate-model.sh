# Sourced by the scoring benchmarks: temp dir and cleanup, and `start_mlgate_with_model`, which
# builds mlgate (release), generates the linear ONNX model ($INPUTS -> $OUTPUTS), starts a
# plain-HTTP server on a free loopback port and registers the model as linear:1 in workspace
# bench-ws. Needs BENCH, ROOT, OUT, INPUTS, OUTPUTS and NAME (for messages) set.
# Sets: TMP, PIDS, MLGATE, MPORT, MPID, m (the CLI, stderr to $OUT/cli.log).

TMP="$(mktemp -d)"
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$TMP"; }
trap cleanup EXIT
die() { echo "$NAME: $*" >&2; exit 1; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
m() { "$MLGATE" "$@" 2>>"$OUT/cli.log"; }

start_mlgate_with_model() {
  (cd "$ROOT" && cargo build --release -q -p mlgate-cli \
    && cargo run --release -q -p mlgate-serving --example linear_onnx -- "$TMP/model.onnx" "$INPUTS" "$OUTPUTS")
  MLGATE="$(bash "$ROOT/scripts/target-dir.sh")/release/mlgate"
  local pw
  pw="$(python3 -c 'import secrets; print("p" + secrets.token_urlsafe(20))')"
  MPORT="$(free_port)"
  MLGATE_LOG=warn MLGATE_BOOTSTRAP_PASSWORD="$pw" "$MLGATE" serve --data-dir "$TMP/data" \
    --listen "127.0.0.1:$MPORT" --insecure-http >"$OUT/mlgate.log" 2>&1 &
  MPID=$!; PIDS+=("$MPID")
  for _ in $(seq 100); do curl -sf "http://127.0.0.1:$MPORT/readyz" >/dev/null && break; sleep 0.2; done
  export MLGATE_CONFIG_DIR="$TMP/cli" MLGATE_SERVER="http://127.0.0.1:$MPORT"
  m login -u admin@mlgate.local --password="$pw" >/dev/null || die "login failed"
  m group create -n bench >/dev/null && m ml workspace create -w bench-ws -g bench >/dev/null
  m ml model register -n linear -p "$TMP/model.onnx" -w bench-ws -g bench >/dev/null || die "register failed"
  echo '{"runtime": "onnx"}' > "$TMP/ic.json"
}
