#!/usr/bin/env python3
"""Where a process's resident memory is: each mapping's resident and anonymous KiB, grouped by
what is mapped, and for the executable's own file the resident pages per ELF section.

usage: bench/smaps.py PID   (reading another process's pagemap needs the same user or root)
"""
import os
import re
import struct
import sys

pid = int(sys.argv[1])
exe = os.path.realpath(f"/proc/{pid}/exe")

maps = []  # (start, end, perms, offset, path, rss_kib, anon_kib)
with open(f"/proc/{pid}/smaps") as f:
    cur = None
    for line in f:
        m = re.match(r"([0-9a-f]+)-([0-9a-f]+) (\S+) ([0-9a-f]+) \S+ \d+\s*(.*)", line)
        if m:
            cur = [int(m[1], 16), int(m[2], 16), m[3], int(m[4], 16), m[5].strip(), 0, 0]
            maps.append(cur)
        elif line.startswith("Rss:"):
            cur[5] = int(line.split()[1])
        elif line.startswith("Anonymous:"):
            cur[6] = int(line.split()[1])

groups = {}
for start, end, perms, off, path, rss, anon in maps:
    name = "exe " + perms if path == exe else (os.path.basename(path) if path.startswith("/") else (path or "[anon]"))
    g = groups.setdefault(name, [0, 0])
    g[0] += rss
    g[1] += anon
total = sum(g[0] for g in groups.values())
print(f"{'mapping':32} {'RSS KiB':>9} {'anon KiB':>9}")
for name, (rss, anon) in sorted(groups.items(), key=lambda kv: -kv[1][0]):
    if rss:
        print(f"{name:32} {rss:9} {anon:9}")
print(f"{'total':32} {total:9}")

# Resident pages of the executable file, by section (file offset -> section).
sections = []
with open(exe, "rb") as f:
    ident = f.read(64)
    shoff, = struct.unpack_from("<Q", ident, 0x28)
    shentsize, shnum, shstrndx = struct.unpack_from("<HHH", ident, 0x3A)
    f.seek(shoff)
    raw = f.read(shentsize * shnum)
    hdrs = [struct.unpack_from("<IIQQQQIIQQ", raw, i * shentsize) for i in range(shnum)]
    f.seek(hdrs[shstrndx][4])
    names = f.read(hdrs[shstrndx][5])
    for h in hdrs:
        name = names[h[0]:names.index(b"\0", h[0])].decode()
        if h[1] != 8 and h[5] and h[3]:  # not NOBITS, non-empty, loaded
            sections.append((h[4], h[4] + h[5], name))

page = os.sysconf("SC_PAGE_SIZE")
per = {}
with open(f"/proc/{pid}/pagemap", "rb") as pm:
    for start, end, perms, off, path, rss, anon in maps:
        if path != exe:
            continue
        pm.seek(start // page * 8)
        data = pm.read((end - start) // page * 8)
        for i in range(len(data) // 8):
            entry, = struct.unpack_from("<Q", data, i * 8)
            if not entry >> 63 & 1:
                continue
            fo = off + i * page
            name = next((n for s, e, n in sections if s <= fo < e or (fo <= s < fo + page)), "?")
            per[name] = per.get(name, 0) + 1
print("\nexecutable pages resident, by section:")
for name, n in sorted(per.items(), key=lambda kv: -kv[1]):
    print(f"  {name:24} {n * page // 1024:7} KiB")
