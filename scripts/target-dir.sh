#!/usr/bin/env bash
# Prints cargo's target directory for this workspace (honours CARGO_TARGET_DIR,
# .cargo/config.toml's build.target-dir and the like), so scripts never assume ./target.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo metadata --format-version 1 --no-deps \
  | python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])'
