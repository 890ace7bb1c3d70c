#!/usr/bin/env bash
# The whole test suite, from a fresh clone: installs what the tests need (a Python venv and
# Node packages under .deps/, git-ignored), runs the Rust suite (unit tests and the one
# integration binary), then the client-compatibility suites, where the real ADAL, MSAL,
# azure-identity, adal-node, msal-node, PyJWT and jose libraries, and Microsoft's own Azure CLI
# and Azure ML SDK, talk to a live `mlgate serve`.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/setup-test-deps.sh
cargo test --workspace --locked
cargo build --locked -p mlgate-cli
# Wherever cargo puts its output (CARGO_TARGET_DIR is common), not ./target.
BIN="$(bash scripts/target-dir.sh)/debug/mlgate"
bash scripts/compat.sh "$BIN"
bash scripts/compat-azure.sh "$BIN"
bash scripts/walkthrough.sh "$BIN"
