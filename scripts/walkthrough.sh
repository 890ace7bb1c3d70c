#!/usr/bin/env bash
# Runs README.md's walkthrough exactly as written: every ```bash walkthrough block, in order,
# in one shell (so later blocks use the variables earlier ones set), and every ```python
# walkthrough block with the test venv's Python, against the server the first block starts.
# A failing command fails the run and names its block; what the README shows is what runs.
#
# The walkthrough runs in a fresh HOME (so ~/.local/share/mlgate and ~/.mlgate are new), in a
# scratch folder where `examples` is the repository's, with `mlgate` on PATH. As root it runs
# in its own network namespace, so the README's 127.0.0.1:8443 is free whatever else runs.
#
# Usage: scripts/walkthrough.sh [path/to/mlgate]   (default: $MLGATE_BIN or the debug build)
# Set MLGATE_KEEP_TMP=1 to keep the scratch folder (server log, files the walkthrough made).
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
BIN="${1:-${MLGATE_BIN:-$(bash "$ROOT/scripts/target-dir.sh")/debug/mlgate}}"
case "$BIN" in /*) ;; *) BIN="$ROOT/$BIN" ;; esac
if [ ! -x "$BIN" ]; then
  echo "walkthrough: mlgate binary not found or not executable: $BIN" >&2
  exit 2
fi

if [ -z "${MLGATE_WALKTHROUGH_INNER:-}" ]; then
  # Needs the network: before entering the namespace.
  bash "$ROOT/scripts/setup-test-deps.sh" >/dev/null
  if [ "$(id -u)" = 0 ] && unshare -n true 2>/dev/null; then
    exec unshare -n env MLGATE_WALKTHROUGH_INNER=1 \
      bash -c 'ip link set lo up && exec bash "$0" "$1"' "$0" "$BIN"
  fi
  if ! python3 -c 'import socket; socket.socket().bind(("127.0.0.1", 8443))' 2>/dev/null; then
    echo "walkthrough: 127.0.0.1:8443 is in use; run as root (own network namespace) or free it" >&2
    exit 1
  fi
fi

TMP="$(mktemp -d "${TMPDIR:-/tmp}/mlgate-walkthrough.XXXXXX")"
cleanup() {
  local rc=$?
  if [ "$rc" -ne 0 ] && [ -s "$TMP/work/serve.log" ]; then
    echo "---- last 40 lines of serve.log ----" >&2
    tail -n 40 "$TMP/work/serve.log" >&2
  fi
  if [ "${MLGATE_KEEP_TMP:-0}" = 1 ]; then echo "walkthrough: kept $TMP" >&2; else rm -rf "$TMP"; fi
  exit "$rc"
}
trap cleanup EXIT
mkdir -p "$TMP/home" "$TMP/work" "$TMP/bin"
ln -s "$ROOT/examples" "$TMP/work/examples"
ln -s "$BIN" "$TMP/bin/mlgate"

# The README's blocks, as one script.
python3 - "$ROOT/README.md" "$TMP" "$ROOT/.deps/venv/bin/python" <<'PY'
import pathlib, re, shlex, sys
readme, tmp, python = sys.argv[1], pathlib.Path(sys.argv[2]), sys.argv[3]
lines = pathlib.Path(readme).read_text().splitlines()
out = ["set -euo pipefail",
       # The server the walkthrough starts in the background goes when the walkthrough ends.
       "trap 'kill $(jobs -p) 2>/dev/null || true' EXIT",
       "trap 'echo \"walkthrough: block $BLOCK (README.md line $LINE) failed at: $BASH_COMMAND\" >&2' ERR"]
i, n = 0, 0
while i < len(lines):
    m = re.match(r"^```(bash|python) walkthrough\s*$", lines[i])
    if not m:
        i += 1
        continue
    start = i + 1
    j = start
    while not lines[j].startswith("```"):
        j += 1
    n += 1
    body = "\n".join(lines[start:j])
    out.append(f"BLOCK={n} LINE={start}; echo '--- block {n} (README.md line {start})' >&2")
    if m.group(1) == "bash":
        out.append(body)
    else:
        script = tmp / f"block-{n}.py"
        script.write_text(body + "\n")
        out.append(f"{shlex.quote(python)} {shlex.quote(str(script))}")
    i = j + 1
if n < 5:
    sys.exit(f"README.md has only {n} walkthrough blocks: the markers were lost")
(tmp / "walkthrough.sh").write_text("\n".join(out) + "\n")
print(f"walkthrough: {n} blocks from README.md", file=sys.stderr)
PY

# pyenv's shims find their versions from PYENV_ROOT, which defaults to the real HOME.
if [ -d "$HOME/.pyenv" ]; then export PYENV_ROOT="${PYENV_ROOT:-$HOME/.pyenv}"; fi
(
  cd "$TMP/work"
  env -u MLGATE_SERVER -u MLGATE_CA_FILE -u MLGATE_DATA_DIR -u MLGATE_CONFIG_DIR \
    -u MLGATE_BOOTSTRAP_PASSWORD -u REQUESTS_CA_BUNDLE -u SSL_CERT_FILE -u XDG_DATA_HOME \
    HOME="$TMP/home" PATH="$TMP/bin:$PATH" timeout 900 bash "$TMP/walkthrough.sh"
)
echo "walkthrough: every block of README.md's walkthrough passed"
