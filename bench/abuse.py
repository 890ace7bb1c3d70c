#!/usr/bin/env python3
"""What abusive clients cost a release build of mlgate (issue 9's figures for BENCHMARKS.md).

Starts `mlgate serve` on loopback (plain HTTP, so the figures are the server's and not TLS's),
and measures the server's resident memory (VmRSS, sampled every 50 ms) and the latency of
`GET /healthz` on a *new* connection each time (what a load balancer's health check or a new
client sees), in three phases:

  quiet       nothing else going on (the baseline);
  idle-conns  1,000 silent TCP connections held open (closed ones are re-opened at once, as an
              attacker would);
  pw-flood    400 wrong password grants in flight at all times, for unknown users (each costs a
              full argon2 check unless throttled) from 200 loopback source addresses (under
              every per-source lock-out), each sender re-sending as soon as it is answered.

The probe runs in its own process so that the flood's client work does not delay it. Prints one
JSON line per phase and a Markdown table.

usage: bench/abuse.py [path-to-mlgate]  (default: the cargo target dir's release/mlgate)
env:   PROBES=400 (health checks per phase, one every 20 ms)
"""

import asyncio
import json
import os
import re
import resource
import secrets
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PROBES = int(os.environ.get("PROBES", "400"))
IDLE = 1000
FLOOD = 400
SOURCES = 200


def target_dir():
    out = subprocess.check_output(
        ["cargo", "metadata", "--format-version", "1", "--no-deps"], cwd=ROOT
    )
    return json.loads(out)["target_directory"]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        m = re.search(r"VmRSS:\s+(\d+)", f.read())
    return int(m.group(1))


class RssSampler(threading.Thread):
    def __init__(self, pid):
        super().__init__(daemon=True)
        self.pid, self.peak, self.stop_flag = pid, 0, False

    def run(self):
        while not self.stop_flag:
            self.peak = max(self.peak, rss_kib(self.pid))
            time.sleep(0.05)


PROBE = r"""
import json, socket, sys, time
port, n = int(sys.argv[1]), int(sys.argv[2])
req = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
lat, failures = [], 0
for _ in range(n):
    t = time.perf_counter()
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
            s.sendall(req)
            data = b""
            while True:
                chunk = s.recv(4096)
                if not chunk:
                    break
                data += chunk
        if not data.startswith(b"HTTP/1.1 200"):
            failures += 1
        else:
            lat.append((time.perf_counter() - t) * 1000)
    except OSError:
        failures += 1
    time.sleep(0.02)
print(json.dumps({"lat": lat, "failures": failures}))
"""


def probe(port):
    out = subprocess.check_output([sys.executable, "-c", PROBE, str(port), str(PROBES)])
    return json.loads(out)


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


async def hold_idle(port, n, stop):
    """Keeps n silent connections open; re-opens those the server closes."""
    reopened = 0

    async def one():
        nonlocal reopened
        first = True
        while not stop.is_set():
            try:
                r, w = await asyncio.open_connection("127.0.0.1", port)
            except OSError:
                await asyncio.sleep(0.05)
                continue
            if not first:
                reopened += 1
            first = False
            stop_task = asyncio.ensure_future(stop.wait())
            read_task = asyncio.ensure_future(r.read(1))
            await asyncio.wait({stop_task, read_task}, return_when=asyncio.FIRST_COMPLETED)
            stop_task.cancel()
            read_task.cancel()
            w.close()

    tasks = [asyncio.ensure_future(one()) for _ in range(n)]
    return tasks, lambda: reopened


async def flood(port, tenant, stop, counts):
    """FLOOD senders, each with its own source address, re-sending as soon as answered."""
    seq = iter(range(10**9))

    async def sender(i):
        local = f"127.0.{1 + i % 2}.{2 + (i // 2) % (SOURCES // 2)}"
        r = w = None
        while not stop.is_set():
            try:
                if w is None:
                    r, w = await asyncio.open_connection("127.0.0.1", port, local_addr=(local, 0))
                body = urllib.parse.urlencode(
                    {
                        "grant_type": "password",
                        "client_id": "04b07795-8ddb-461a-bbee-02f9e1bf7b46",
                        "username": f"nobody-{next(seq)}@{tenant}",
                        "password": "wrong",
                        "scope": "https://management.azure.com/.default",
                    }
                ).encode()
                w.write(
                    f"POST /{tenant}/oauth2/v2.0/token HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                    f"Content-Type: application/x-www-form-urlencoded\r\n"
                    f"Content-Length: {len(body)}\r\n\r\n".encode()
                    + body
                )
                await w.drain()
                head = await r.readuntil(b"\r\n\r\n")
                status = int(head.split(b" ", 2)[1])
                m = re.search(rb"(?i)content-length:\s*(\d+)", head)
                await r.readexactly(int(m.group(1)) if m else 0)
                counts[status] = counts.get(status, 0) + 1
                if re.search(rb"(?i)connection:\s*close", head):
                    w.close()
                    w = None
            except (OSError, asyncio.IncompleteReadError, ValueError):
                counts["error"] = counts.get("error", 0) + 1
                if w is not None:
                    w.close()
                w = None
                await asyncio.sleep(0.01)
        if w is not None:
            w.close()

    return [asyncio.ensure_future(sender(i)) for i in range(FLOOD)]


async def run_phase(name, pid, port, tenant):
    sampler = RssSampler(pid)
    sampler.start()
    stop = asyncio.Event()
    tasks, extra, counts = [], {}, {}
    reopened = None
    if name == "idle-conns":
        tasks, reopened = await hold_idle(port, IDLE, stop)
        await asyncio.sleep(2)  # all connected
    elif name == "pw-flood":
        tasks = await flood(port, tenant, stop, counts)
        await asyncio.sleep(2)  # the flood under way
    loop = asyncio.get_running_loop()
    t0 = time.monotonic()
    result = await loop.run_in_executor(None, probe, port)
    took = time.monotonic() - t0
    rss_during = rss_kib(pid)
    stop.set()
    await asyncio.gather(*tasks, return_exceptions=True)
    sampler.stop_flag = True
    sampler.join()
    await asyncio.sleep(3)
    if reopened:
        extra["reopened"] = reopened()
    if counts:
        extra["answers"] = {str(k): v for k, v in sorted(counts.items(), key=str)}
        extra["answers_per_s"] = round(sum(v for k, v in counts.items() if k != "error") / took)
    lat = result["lat"]
    row = {
        "phase": name,
        "healthz_ok": len(lat),
        "healthz_failed": result["failures"],
        "p50_ms": round(statistics.median(lat), 2) if lat else None,
        "p99_ms": round(pct(lat, 99), 2) if lat else None,
        "max_ms": round(max(lat), 2) if lat else None,
        "rss_during_mib": round(rss_during / 1024, 1),
        "rss_peak_mib": round(sampler.peak / 1024, 1),
        "rss_after_mib": round(rss_kib(pid) / 1024, 1),
        "loadavg": os.getloadavg()[0],
        **extra,
    }
    print(json.dumps(row), flush=True)
    return row


def main():
    binary = sys.argv[1] if len(sys.argv) > 1 else os.path.join(target_dir(), "release", "mlgate")
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    data = tempfile.mkdtemp(prefix="mlgate-abuse-")
    port = free_port()
    env = dict(
        os.environ,
        MLGATE_LOG="warn",
        MLGATE_BOOTSTRAP_PASSWORD="p" + secrets.token_urlsafe(20),
    )
    server = subprocess.Popen(
        [binary, "serve", "--data-dir", data, "--listen", f"127.0.0.1:{port}", "--insecure-http"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=open(os.path.join(data, "server.log"), "w"),
    )
    try:
        for _ in range(200):
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    break
            except OSError:
                time.sleep(0.1)
        time.sleep(1)
        print(f"# mlgate {binary}, {os.cpu_count()} cores, {PROBES} probes per phase", flush=True)
        rows = [
            asyncio.run(run_phase(p, server.pid, port, "mlgate.local"))
            for p in ("quiet", "idle-conns", "pw-flood")
        ]
        print()
        print("| phase | /healthz p50 | p99 | max | failed | RSS during | peak | after |")
        print("|---|---|---|---|---|---|---|---|")
        for r in rows:
            print(
                f"| {r['phase']} | {r['p50_ms']} ms | {r['p99_ms']} ms | {r['max_ms']} ms | "
                f"{r['healthz_failed']} | {r['rss_during_mib']} MiB | {r['rss_peak_mib']} MiB | "
                f"{r['rss_after_mib']} MiB |"
            )
    finally:
        server.terminate()
        server.wait()
        shutil.rmtree(data, ignore_errors=True)


if __name__ == "__main__":
    main()
