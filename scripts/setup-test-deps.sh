#!/usr/bin/env bash
# Installs the real client libraries used by the compatibility tests:
#   .deps/venv  Python venv (adal, msal, azure-identity, PyJWT, pytest, requests)
#   .deps/node  Node packages (adal-node, jose, @azure/msal-node; axe-core, which the console's
#               browser tests inject into each page for the accessibility check)
#   Debian's chromium and chromium-driver (the sign-in page tests), tmux, jq, yq and
#   libnss3-tools (the CLI's tests), with apt (needs root)
#   .deps/az-venv   -> a cached venv with azure-cli 2.91 (Microsoft's own CLI)
#   .deps/aml-venv  -> a cached venv with azureml-core 1.61 (the Azure ML SDK v1)
#   .deps/aml2-venv -> a cached venv with azure-ai-ml 1.35.2 (the Azure ML SDK v2)
# Each has its own venv (az and azureml-core conflict on knack; azure-ai-ml pins its own
# azure-* versions). They are large (about 740, 290 and 150 MB, about 4, 2.5 and 1.5 minutes
# to install on 2 cores), so they live once per machine in
# ${XDG_CACHE_HOME:-~/.cache}/mlgate-test-deps/<name>-<hash of requirements>, outside the
# clone, and .deps/ links to them.
# Idempotent: each part is skipped when its stamp matches the hash of its requirement list.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
DEPS="$ROOT/.deps"
VENV="$DEPS/venv"
NODE_DIR="$DEPS/node"
mkdir -p "$DEPS"

PY_REQS='adal==1.2.7
msal==1.39.0
azure-identity==1.27.0
pyjwt[crypto]==2.15.1
pytest
requests
selenium==4.45.0'

NODE_PKG='{
  "name": "mlgate-compat-deps",
  "private": true,
  "version": "0.0.0",
  "description": "Client libraries for mlgate compatibility tests",
  "dependencies": {
    "@azure/msal-node": "^7.0.0",
    "adal-node": "0.2.4",
    "axe-core": "4.11.0",
    "jose": "^6.0.0"
  }
}'

hash_of() { printf '%s' "$1" | sha256sum | cut -d' ' -f1; }

# --- Python ---------------------------------------------------------------
py_hash="$(hash_of "$PY_REQS|$(python3 --version 2>&1)")"
py_stamp="$VENV/.mlgate-stamp"
if [ -x "$VENV/bin/python" ] && [ "$(cat "$py_stamp" 2>/dev/null || true)" = "$py_hash" ]; then
  py_msg="python venv up to date"
else
  [ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
  printf '%s\n' "$PY_REQS" > "$DEPS/requirements.txt"
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -r "$DEPS/requirements.txt"
  printf '%s\n' "$py_hash" > "$py_stamp"
  py_msg="python venv installed ($VENV)"
fi

# --- Microsoft's clients, each in its own cached venv -----------------------------------
AZ_REQS='azure-cli==2.91.*
pytest
requests'
AML_REQS='azureml-core==1.61.*
pytest
requests'
AML2_REQS='azure-ai-ml==1.35.2
azure-identity==1.27.0
pytest
requests'
CACHE="${XDG_CACHE_HOME:-$HOME/.cache}/mlgate-test-deps"
mkdir -p "$CACHE"

# cached_venv NAME REQUIREMENTS: prints what it did; links .deps/NAME-venv to the venv.
cached_venv() {
  local name="$1" reqs="$2" hash dir started
  hash="$(hash_of "$reqs|$(python3 --version 2>&1)" | cut -c1-16)"
  dir="$CACHE/$name-$hash"
  (
    # One installer per venv at a time (CI jobs or a developer's parallel runs).
    flock 9
    if [ "$(cat "$dir/.mlgate-stamp" 2>/dev/null || true)" != "$hash" ]; then
      started=$SECONDS
      rm -rf "$dir"
      python3 -m venv "$dir"
      printf '%s\n' "$reqs" > "$dir/requirements.txt"
      "$dir/bin/python" -m pip install --quiet --disable-pip-version-check -r "$dir/requirements.txt"
      printf '%s\n' "$hash" > "$dir/.mlgate-stamp"
      echo "$name venv installed in $((SECONDS - started)) s ($dir)"
    else
      echo "$name venv up to date"
    fi
  ) 9>"$CACHE/$name.lock"
  ln -sfn "$dir" "$DEPS/$name-venv"
}
az_msg="$(cached_venv az "$AZ_REQS")"
aml_msg="$(cached_venv aml "$AML_REQS")"
aml2_msg="$(cached_venv aml2 "$AML2_REQS")"

# --- Node -----------------------------------------------------------------
node_hash="$(hash_of "$NODE_PKG|$(node --version 2>&1)")"
node_stamp="$NODE_DIR/.mlgate-stamp"
if [ -d "$NODE_DIR/node_modules" ] && [ "$(cat "$node_stamp" 2>/dev/null || true)" = "$node_hash" ]; then
  node_msg="node modules up to date"
else
  mkdir -p "$NODE_DIR"
  printf '%s\n' "$NODE_PKG" > "$NODE_DIR/package.json"
  (cd "$NODE_DIR" && npm install --silent --no-audit --no-fund >/dev/null)
  printf '%s\n' "$node_hash" > "$node_stamp"
  node_msg="node modules installed ($NODE_DIR)"
fi

# --- Debian packages: the browser, and the tools the CLI tests drive ---------------------
# chromium + chromium-driver: the sign-in page tests; tmux: the password prompt on a terminal;
# jq, yq: what -o tsv/yaml and --query print is checked against them; libnss3-tools
# (certutil): `mlgate tls trust` installs the CA for Chromium.
missing=()
for pair in chromium:/usr/bin/chromium chromium-driver:/usr/bin/chromedriver tmux:/usr/bin/tmux \
            jq:/usr/bin/jq yq:/usr/bin/yq libnss3-tools:/usr/bin/certutil; do
  [ -x "${pair#*:}" ] || missing+=("${pair%%:*}")
done
if [ "${#missing[@]}" -eq 0 ]; then
  apt_msg="debian packages present"
else
  export DEBIAN_FRONTEND=noninteractive
  if ! apt-get install -y -qq "${missing[@]}" >/dev/null 2>&1; then
    apt-get update -qq >/dev/null
    apt-get install -y -qq "${missing[@]}" >/dev/null
  fi
  apt_msg="installed ${missing[*]}"
fi

echo "setup-test-deps: $py_msg; $az_msg; $aml_msg; $aml2_msg; $node_msg; $apt_msg"
