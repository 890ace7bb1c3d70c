"""Summarises the raw wrk outputs of one bench/token-grants.sh run.

usage: summarize.py OUT_DIR [BASELINE]     (BASELINE: the server ratios compare against, default node)
Reads OUT_DIR/<server>-r<round>.txt (wrk --latency output plus token.lua's status lines) and
OUT_DIR/<server>-r<round>.cpu (server CPU ticks, 1/100 s, used during the run); prints one row per server
with medians over rounds, and mlgate/node ratios. Exits 1 if any response was not a 200.
"""
import pathlib
import re
import statistics
import sys

UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def parse(text):
    rps = float(re.search(r"^Requests/sec:\s+([\d.]+)", text, re.M).group(1))
    val, unit = re.search(r"^\s+99%\s+([\d.]+)(us|ms|s)\s*$", text, re.M).groups()
    non200 = int(re.search(r"^non-200: (\d+)", text, re.M).group(1))
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    sock = sum(map(int, m.groups())) if m else 0
    secs = float(re.search(r"requests in ([\d.]+)s", text).group(1))
    return rps, float(val) * UNITS[unit], non200, sock, secs


def main(out, baseline="node"):
    runs = {}
    order = {baseline: 0, "mlgate": 1}
    for f in sorted(out.glob("*-r*.txt"), key=lambda f: (order.get(f.name.rsplit("-r", 1)[0], 2), f.name)):
        server = f.name.rsplit("-r", 1)[0]
        cpu_file = f.with_suffix(".cpu")
        *stats, secs = parse(f.read_text())
        cpu = int(cpu_file.read_text()) / 100 / secs if cpu_file.exists() else float("nan")
        runs.setdefault(server, []).append((*stats, cpu))
    if not runs:
        sys.exit(f"no wrk outputs in {out}")

    med = {s: [statistics.median(col) for col in zip(*rows)] for s, rows in runs.items()}
    print(f"{'server':<14}{'rounds':>7}{'req/s':>11}{'p99 ms':>9}{'non-200':>9}{'sock err':>9}{'srv cores':>10}")
    for s, rows in runs.items():
        rps, p99, _, _, cpu = med[s]
        non200 = sum(r[2] for r in rows)
        sock = sum(r[3] for r in rows)
        print(f"{s:<14}{len(rows):>7}{rps:>11.0f}{p99:>9.2f}{non200:>9}{sock:>9}{cpu:>10.2f}")
    if baseline in med:
        for s in (s for s in med if s.startswith("mlgate") and s != baseline):
            print(f"ratio {s}/{baseline}: req/s x{med[s][0] / med[baseline][0]:.2f}, "
                  f"p99 x{med[s][1] / med[baseline][1]:.2f}")
    # Rounds run back to back, so pairing each round with the baseline's run of the same round
    # cancels the machine's drift over the run.
    rps = {}
    for f in out.glob("*-r*.txt"):
        server, r = f.stem.rsplit("-r", 1)
        rps.setdefault(server, {})[r] = parse(f.read_text())[0]
    if baseline in rps:
        for s in (s for s in rps if s != baseline):
            pairs = [rps[s][r] / rps[baseline][r] for r in rps[s] if r in rps[baseline]]
            if pairs:
                print(f"paired ratio {s}/{baseline}: median x{statistics.median(pairs):.3f} over "
                      f"{len(pairs)} rounds (min {min(pairs):.3f}, max {max(pairs):.3f})")
    print("(medians over rounds; non-200 and socket errors are totals; srv cores = server CPU-s per s)")
    bad = sum(r[2] for rows in runs.values() for r in rows)
    if bad:
        print(f"FAIL: {bad} non-200 responses; these figures measure errors, not the work")
        sys.exit(1)


if __name__ == "__main__":
    main(pathlib.Path(sys.argv[1]), *(sys.argv[2:3]))
