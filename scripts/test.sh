#!/usr/bin/env bash
# The whole test suite, from a fresh clone: installs what the tests need (a Python venv and
# Node packages under .deps/, git-ignored, and a private PostgreSQL cluster), runs the Rust
# suite (unit tests, the store's conformance suite on SQLite and PostgreSQL, and the one
# integration binary, on SQLite and again on PostgreSQL), then the client-compatibility
# suites, where the real ADAL, MSAL, azure-identity, adal-node, msal-node, PyJWT and jose libraries, and Microsoft's own Azure CLI
# and Azure ML SDK, talk to a live `mlgate serve`.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/setup-test-deps.sh
# A private PostgreSQL (Debian's package, installed if missing) for the store's conformance
# suite, which runs every test on SQLite and on PostgreSQL, and for a second run of the
# integration suite with every test server's store in PostgreSQL.
MLGATE_TEST_POSTGRES_URL="$(bash scripts/postgres.sh)"
export MLGATE_TEST_POSTGRES_URL
cargo test --workspace --locked
MLGATE_IT_STORE=postgres cargo test --locked -p mlgate-cli --test it
# Three nodes with PostgreSQL stopped and started again under them: alone, since it stops the
# cluster every other test uses.
# (Absolute paths: cargo runs the test in the crate's folder.)
MLGATE_TEST_POSTGRES_STOP="bash '$PWD/scripts/postgres.sh' stop" \
MLGATE_TEST_POSTGRES_START="MLGATE_PG_KEEP_TEST_DBS=1 bash '$PWD/scripts/postgres.sh' >/dev/null" \
  cargo test --locked -p mlgate-cli --test it -- --exact \
  multinode::the_store_going_away_leaves_scoring_and_verification_running
cargo build --locked -p mlgate-cli
# Wherever cargo puts its output (CARGO_TARGET_DIR is common), not ./target.
BIN="$(bash scripts/target-dir.sh)/debug/mlgate"
bash scripts/compat.sh "$BIN"
bash scripts/compat-azure.sh "$BIN"
# The README's walkthrough runs the README's server: the release build, linked with its code
# packed (crates/cli/build.rs), which is checked first.
cargo build --locked --release -p mlgate-cli
RELEASE="$(bash scripts/target-dir.sh)/release/mlgate"
bash scripts/release-check.sh "$RELEASE"
bash scripts/walkthrough.sh "$RELEASE"
