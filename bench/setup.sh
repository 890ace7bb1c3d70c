#!/usr/bin/env bash
# Installs what the token-grant benchmark needs; idempotent.
#   wrk                      from Debian (apt-get update only if the install needs it)
#   bench/.deps/node         oidc-provider 9.x (node-oidc-provider), the comparison server
set -euo pipefail

BENCH="$(cd "$(dirname "$0")" && pwd)"
NODE_DIR="$BENCH/.deps/node"

if ! command -v wrk >/dev/null; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -qq wrk >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq wrk >/dev/null; }
fi

NODE_PKG='{
  "name": "mlgate-bench-deps",
  "private": true,
  "version": "0.0.0",
  "description": "Comparison server for bench/token-grants.sh",
  "dependencies": { "oidc-provider": "^9.0.0" }
}'
stamp="$NODE_DIR/.mlgate-stamp"
want="$(printf '%s|%s' "$NODE_PKG" "$(node --version)" | sha256sum | cut -d' ' -f1)"
if [ ! -d "$NODE_DIR/node_modules/oidc-provider" ] || [ "$(cat "$stamp" 2>/dev/null || true)" != "$want" ]; then
  mkdir -p "$NODE_DIR"
  printf '%s\n' "$NODE_PKG" > "$NODE_DIR/package.json"
  (cd "$NODE_DIR" && npm install --silent --no-audit --no-fund >/dev/null)
  printf '%s\n' "$want" > "$stamp"
fi

echo "bench setup: $(wrk -v 2>&1 | head -1); oidc-provider $(node -p "require('$NODE_DIR/node_modules/oidc-provider/package.json').version")"
