#!/usr/bin/env bash
# Microsoft's own clients against mlgate: starts a live `mlgate serve` on 127.0.0.1, seeds a
# workspace with two web services and two service principals through the mlgate CLI, then runs
#   tests/compat/azure/test_az.py   with azure-cli 2.91 (the `az` program, driven by pytest)
#   tests/compat/azure/test_sdk.py  with azureml-core 1.61 (the Azure ML SDK v1)
#   tests/compat/azure/test_sdk_v2.py  with azure-ai-ml 1.35.2 (the Azure ML SDK v2)
# each from its own cached virtualenv (scripts/setup-test-deps.sh). No package is patched,
# mocked or wrapped: they get only what a user sets (environment, `az cloud register`, files).
#
# Usage: scripts/compat-azure.sh [path/to/mlgate]   (default: $MLGATE_BIN or the debug build in cargo's target directory)
# Set MLGATE_KEEP_TMP=1 to keep the temp dir (server data, the clients' debug logs), and
# MLGATE_COMPAT_ONLY=az|sdk|sdk2 to run one client's tests only (the others count as skipped).
# Never prints the admin password or a client secret.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"

BIN="${1:-${MLGATE_BIN:-$(bash "$ROOT/scripts/target-dir.sh")/debug/mlgate}}"
case "$BIN" in /*) ;; *) BIN="$ROOT/$BIN" ;; esac
if [ ! -x "$BIN" ]; then
  echo "compat-azure: mlgate binary not found or not executable: $BIN" >&2
  exit 2
fi

bash "$ROOT/scripts/setup-test-deps.sh"
AZ_VENV="$ROOT/.deps/az-venv"
AML_VENV="$ROOT/.deps/aml-venv"
AML2_VENV="$ROOT/.deps/aml2-venv"
ONLY="${MLGATE_COMPAT_ONLY:-}"
case "$ONLY" in ""|az|sdk|sdk2) ;; *) echo "compat-azure: MLGATE_COMPAT_ONLY must be az, sdk or sdk2" >&2; exit 2 ;; esac

TMP="$(mktemp -d "${TMPDIR:-/tmp}/mlgate-azure.XXXXXX")"
SERVER_PID=""
PW=""
FAILED=1
SECRETS_FILE="$TMP/secrets"
: > "$SECRETS_FILE"

# Replaces the admin password and every client secret seen in whatever passes through.
REDACT_PY='
import sys
secrets = [s.strip() for s in open(sys.argv[1]) if len(s.strip()) >= 4]
for line in sys.stdin:
    for s in secrets:
        line = line.replace(s, "***")
    sys.stdout.write(line)
    sys.stdout.flush()
'
redact() { python3 -u -c "$REDACT_PY" "$SECRETS_FILE"; }

cleanup() {
  local rc=$?
  if [ -n "$SERVER_PID" ] && kill -0 "$SERVER_PID" 2>/dev/null; then
    kill "$SERVER_PID" 2>/dev/null || true
    for _ in 1 2 3 4 5 6 7 8 9 10; do
      kill -0 "$SERVER_PID" 2>/dev/null || break
      sleep 0.5
    done
    kill -9 "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
  fi
  if [ "$FAILED" -ne 0 ] || [ "$rc" -ne 0 ]; then
    for log in "$TMP/cli.log" "$TMP/server.log"; do
      if [ -s "$log" ]; then
        echo "---- last 60 lines of ${log##*/} ----" >&2
        tail -n 60 "$log" | redact >&2
      fi
    done
    [ "$rc" -ne 0 ] || rc=1
  fi
  if [ "${MLGATE_KEEP_TMP:-0}" = 1 ]; then
    echo "compat-azure: kept $TMP" >&2
  else
    rm -rf "$TMP"
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

PORT="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')"
PW="$(python3 -c 'import secrets; print(secrets.token_urlsafe(24))')"
echo "$PW" >> "$SECRETS_FILE"
URL="https://127.0.0.1:$PORT"
CA="$TMP/data/tls/ca.pem"

# --- start the server --------------------------------------------------------
MLGATE_BOOTSTRAP_PASSWORD="$PW" "$BIN" serve --data-dir "$TMP/data" --listen "127.0.0.1:$PORT" \
  >"$TMP/server.log" 2>&1 &
SERVER_PID=$!
ready=0
for _ in $(seq 1 60); do
  if ! kill -0 "$SERVER_PID" 2>/dev/null; then
    echo "compat-azure: server exited during startup" >&2
    exit 1
  fi
  if [ -f "$CA" ] && [ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 --cacert "$CA" "$URL/readyz" || true)" = 200 ]; then
    ready=1
    break
  fi
  sleep 0.5
done
if [ "$ready" -ne 1 ]; then
  echo "compat-azure: server not ready on $URL/readyz after 30 s" >&2
  exit 1
fi
echo "compat-azure: server ready on $URL (pid $SERVER_PID)"

# --- seed: a workspace, a model, a key-auth and a token-auth service, two principals ------
export MLGATE_CONFIG_DIR="$TMP/cli"
mlgate() { "$BIN" "$@" 2>>"$TMP/cli.log"; }
mlgate --server "$URL" --ca-file "$CA" login -u admin@mlgate.local --password="$PW" >/dev/null \
  || { echo "compat-azure: 'mlgate login' failed" >&2; exit 1; }
RG=aml-rg WS=aml-ws
mlgate group create -n "$RG" >/dev/null || { echo "compat-azure: group create failed" >&2; exit 1; }
WS_ID="$(mlgate ml workspace create -w "$WS" -g "$RG" | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')" \
  || { echo "compat-azure: workspace create failed" >&2; exit 1; }
mkdir -p "$TMP/svc/model"
echo '{"coef": [1.0, 2.0], "bias": 0.5}' > "$TMP/svc/model/coef.json"
cat > "$TMP/svc/score.py" <<'PY'
import json, os

def init():
    global model
    with open(os.path.join(os.environ["AZUREML_MODEL_DIR"], "coef.json")) as f:
        model = json.load(f)

def run(raw_data):
    data = json.loads(raw_data)["data"]
    return [sum(c * x for c, x in zip(model["coef"], row)) + model["bias"] for row in data]
PY
echo '{"runtime": "python", "entryScript": "score.py"}' > "$TMP/svc/ic.json"
echo '{"computeType": "cluster", "cpu_cores": 1}' > "$TMP/svc/key.json"
echo '{"computeType": "cluster", "cpu_cores": 1, "token_auth_enabled": true}' > "$TMP/svc/token.json"
mlgate ml model register -n coef -p "$TMP/svc/model" -w "$WS" -g "$RG" >/dev/null \
  || { echo "compat-azure: model register failed" >&2; exit 1; }
for mode in key token; do
  mlgate ml model deploy -n "aml-$mode" -m coef:1 --ic "$TMP/svc/ic.json" --dc "$TMP/svc/$mode.json" \
    -w "$WS" -g "$RG" >/dev/null || { echo "compat-azure: deploy ($mode) failed" >&2; exit 1; }
done
# For the SDK v2: an ONNX model and three services, one per auth mode the SDK knows.
mlgate ml model register -n linear -p "$ROOT/tests/compat/azure/linear.onnx" -w "$WS" -g "$RG" >/dev/null \
  || { echo "compat-azure: model register (ONNX) failed" >&2; exit 1; }
echo '{"runtime": "onnx"}' > "$TMP/svc/onnx.json"
for mode in key aml_token aad_token; do
  echo "{\"computeType\": \"cluster\", \"auth_mode\": \"$mode\"}" > "$TMP/svc/v2-$mode.json"
  mlgate ml model deploy -n "v2-${mode//_/-}" -m linear:1 --ic "$TMP/svc/onnx.json" --dc "$TMP/svc/v2-$mode.json" \
    -w "$WS" -g "$RG" >/dev/null || { echo "compat-azure: deploy (v2 $mode) failed" >&2; exit 1; }
done
umask 077
mlgate ad sp create-for-rbac --sdk-auth --name aml-sp --role Contributor --scopes "$WS_ID" >"$TMP/sp.json" \
  || { echo "compat-azure: create-for-rbac (Contributor) failed" >&2; exit 1; }
mlgate ad sp create-for-rbac --sdk-auth --name aml-reader --role Reader --scopes "$WS_ID" >"$TMP/reader.json" \
  || { echo "compat-azure: create-for-rbac (Reader) failed" >&2; exit 1; }
python3 -c 'import json,sys; [print(json.load(open(f))["clientSecret"]) for f in sys.argv[1:]]' \
  "$TMP/sp.json" "$TMP/reader.json" >> "$SECRETS_FILE"
read -r TENANT_ID SUBSCRIPTION_ID < <(python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(d["tenantId"], d["subscriptionId"])' "$TMP/sp.json")
echo "compat-azure: seeded $WS_ID with services aml-key, aml-token, v2-key, v2-aml-token, v2-aad-token"

# --- run the clients ---------------------------------------------------------------
mkdir -p "$TMP/work"
export MLGATE_URL="$URL" MLGATE_CA="$CA" MLGATE_TENANT_ID="$TENANT_ID" \
  MLGATE_SUBSCRIPTION_ID="$SUBSCRIPTION_ID" MLGATE_ADMIN=admin@mlgate.local \
  MLGATE_ADMIN_PASSWORD="$PW" MLGATE_RESOURCE_GROUP="$RG" MLGATE_WORKSPACE="$WS" \
  MLGATE_KEY_SERVICE=aml-key MLGATE_TOKEN_SERVICE=aml-token MLGATE_MODEL=coef \
  MLGATE_SP_JSON="$TMP/sp.json" MLGATE_READER_JSON="$TMP/reader.json" MLGATE_WORK="$TMP/work"

# pytest's last line counts the steps: "N passed, M failed in S s".
summary() { tail -n 1 "$1" | tr -d '='; }

SKIPPED="0 passed (not run, MLGATE_COMPAT_ONLY is $ONLY)"
az_status=PASS
if [ -n "$ONLY" ] && [ "$ONLY" != az ]; then echo "$SKIPPED" > "$TMP/az-result.txt"; else
(
  cd "$TMP/work"
  env -u DISPLAY -u WAYLAND_DISPLAY MLGATE_AZ="$AZ_VENV/bin/az" HOME="$TMP/work/home-az" \
    REQUESTS_CA_BUNDLE="$CA" SSL_CERT_FILE="$CA" \
    "$AZ_VENV/bin/python" -m pytest -q -p no:cacheprovider -o console_output_style=classic \
    "$ROOT/tests/compat/azure/test_az.py"
) 2>&1 | redact | tee "$TMP/az-result.txt" || az_status=FAIL
fi

sdk_status=PASS
if [ -n "$ONLY" ] && [ "$ONLY" != sdk ]; then echo "$SKIPPED" > "$TMP/sdk-result.txt"; else
(
  cd "$TMP/work"
  # What a user of the SDK sets: the cloud's metadata URL, its name, the CA, a config dir.
  env -u DISPLAY -u WAYLAND_DISPLAY HOME="$TMP/work/home-sdk" \
    ARM_CLOUD_METADATA_URL="$URL/metadata/endpoints?api-version=2019-05-01" \
    AZUREML_CURRENT_CLOUD=mlgate AZURE_CONFIG_DIR="$TMP/work/aml-config" \
    REQUESTS_CA_BUNDLE="$CA" SSL_CERT_FILE="$CA" \
    "$AML_VENV/bin/python" -m pytest -q -p no:cacheprovider -o console_output_style=classic \
    "$ROOT/tests/compat/azure/test_sdk.py"
) 2>&1 | redact | tee "$TMP/sdk-result.txt" || sdk_status=FAIL
fi

sdk2_status=PASS
if [ -n "$ONLY" ] && [ "$ONLY" != sdk2 ]; then echo "$SKIPPED" > "$TMP/sdk2-result.txt"; else
(
  cd "$TMP/work"
  # What a user of azure-ai-ml sets: the cloud's metadata URL (the SDK picks the cloud whose
  # resource manager it names) and the CA. Nothing else: no cloud name, no config files.
  env -u DISPLAY -u WAYLAND_DISPLAY -u AZUREML_CURRENT_CLOUD HOME="$TMP/work/home-sdk2" \
    ARM_CLOUD_METADATA_URL="$URL/metadata/endpoints?api-version=2019-05-01" \
    REQUESTS_CA_BUNDLE="$CA" SSL_CERT_FILE="$CA" \
    MLGATE_V2_MODEL=linear MLGATE_V2_SERVICES="v2-key v2-aml-token v2-aad-token" \
    "$AML2_VENV/bin/python" -m pytest -q -p no:cacheprovider -p no:warnings -o console_output_style=classic \
    "$ROOT/tests/compat/azure/test_sdk_v2.py"
) 2>&1 | redact | tee "$TMP/sdk2-result.txt" || sdk2_status=FAIL
fi

# No password, client secret, service key or token the clients received may appear in the
# server's or the CLI's log.
cat "$TMP/work/seen-secrets" >> "$SECRETS_FILE" 2>/dev/null || true
if grep -F -q -f "$SECRETS_FILE" "$TMP/server.log" "$TMP/cli.log"; then
  echo "compat-azure: a secret appears in the server's or the CLI's log" >&2
  az_status=FAIL
else
  echo "compat-azure: none of the $(wc -l < "$SECRETS_FILE") secrets, keys and tokens seen appears in the logs"
fi

echo "compat-azure: az $az_status ($(summary "$TMP/az-result.txt")), azureml-core $sdk_status ($(summary "$TMP/sdk-result.txt")), azure-ai-ml $sdk2_status ($(summary "$TMP/sdk2-result.txt"))"
if [ "$az_status" = PASS ] && [ "$sdk_status" = PASS ] && [ "$sdk2_status" = PASS ]; then
  FAILED=0
fi
exit "$FAILED"
