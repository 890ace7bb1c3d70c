#!/usr/bin/env bash
# Checks that a release `mlgate` was linked with its code packed (crates/cli/build.rs and
# link/symbol-order.txt; BENCHMARKS.md, "Resident memory"): `main` and the listed functions sit
# at the start of the code. Fails if the list was not applied where build.rs should apply it;
# warns (without failing) when fewer than half of the list's names are left in the binary, which
# means a dependency upgrade changed them: rerun bench/symbol-order.sh.
#
# usage: scripts/release-check.sh path/to/release/mlgate
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
BIN="$1"
if [ -n "${MLGATE_NO_SYMBOL_ORDER:-}" ] || [ "$(uname -sm)" != "Linux x86_64" ]; then
  echo "release-check: the symbol order does not apply here; skipped"
  exit 0
fi
python3 - "$BIN" "$ROOT/crates/cli/link/symbol-order.txt" <<'PY'
import subprocess, sys
binary, listing = sys.argv[1], sys.argv[2]
nm = subprocess.run(["nm", "-n", "-S", "--defined-only", binary], capture_output=True, text=True, check=True).stdout
text = {}
for line in nm.splitlines():
    parts = line.split()
    if len(parts) == 4 and parts[2] in "tTwW":
        text.setdefault(parts[3], (int(parts[0], 16), int(parts[1], 16)))
listed = [n for n in open(listing).read().split() if n]
found = [n for n in listed if n in text]
start = min(a for a, _ in text.values())
packed = sum(text[n][1] for n in found)
# Packed, the listed functions end within their own total size (plus alignment) of the start.
end = max(text[n][0] + text[n][1] for n in found) - start
print(f"release-check: {len(found)} of {len(listed)} listed functions in the binary, "
      f"{packed / 2**20:.1f} MiB, laid out within the first {end / 2**20:.1f} MiB of code; "
      f"main at +{(text['main'][0] - start) // 1024} KiB")
if text["main"][0] - start > 64 * 1024 or end > 2 * packed + 2**20:
    sys.exit("release-check: the release binary was not linked with crates/cli/link/symbol-order.txt")
if len(found) < len(listed) // 2:
    print("release-check: WARNING: most of the list's names are gone (new dependency versions?); "
          "rerun bench/symbol-order.sh to pack the code again", file=sys.stderr)
PY
