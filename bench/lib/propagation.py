#!/usr/bin/env python3
"""Propagation time between two mlgate nodes sharing one store: a change made through node A
(a role assignment deleted, then made again) until node B decides by it (403, then 200).

Each change is timed from the moment A's answer arrived to B's first answer that shows it,
B being probed every 5 ms. Prints p50, p90, p99 and max over all changes.

usage: propagation.py URL_A URL_B CHANGES
"""
import json
import random
import statistics
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

A, B, N = sys.argv[1], sys.argv[2], int(sys.argv[3])
CLI = "04b07795-8ddb-461a-bbee-02f9e1bf7b46"
ARM = "https://management.azure.com/.default"


def call(method, url, token=None, body=None, form=None):
    data, headers = None, {}
    if token:
        headers["authorization"] = f"Bearer {token}"
    if body is not None:
        data, headers["content-type"] = json.dumps(body).encode(), "application/json"
    if form is not None:
        data = urllib.parse.urlencode(form).encode()
        headers["content-type"] = "application/x-www-form-urlencoded"
    req = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            raw = r.read()
            return r.status, (json.loads(raw) if raw else None)
    except urllib.error.HTTPError as e:
        return e.code, None


def token(node, form):
    status, body = call("POST", f"{node}/mlgate.local/oauth2/v2.0/token", form=form)
    assert status == 200, status
    return body["access_token"]


admin = token(A, {"grant_type": "password", "client_id": CLI, "username": "admin@mlgate.local",
                  "password": sys.stdin.readline().strip(), "scope": ARM})
_, subs = call("GET", f"{A}/subscriptions", admin)
sub = subs["value"][0]["subscriptionId"]
rg = f"/subscriptions/{sub}/resourceGroups/prop"
ws = f"{rg}/providers/Microsoft.MachineLearningServices/workspaces/prop-ws"
assert call("PUT", f"{A}{rg}?api-version=2024-04-01", admin, {"location": "local"})[0] in (200, 201)
assert call("PUT", f"{A}{ws}?api-version=2024-04-01", admin, {"location": "local"})[0] in (200, 201)
_, ws_obj = call("GET", f"{A}{ws}?api-version=2024-04-01", admin)
status, sp = call("POST", f"{A}/api/v1/servicePrincipals", admin, {"displayName": "prop-reader"})
assert status in (200, 201), status
reader = token(B, {"grant_type": "client_credentials", "client_id": sp["appId"],
                   "client_secret": sp["password"], "scope": ARM})


def assign():
    status, a = call("POST", f"{A}/api/v1/roleAssignments", admin,
                     {"assignee": sp["appId"], "role": "Reader", "scope": ws_obj["id"]})
    assert status in (200, 201), status
    return a["name"]


def wait_on_b(want):
    while True:
        status, _ = call("GET", f"{B}{ws}?api-version=2024-04-01", reader)
        if status == want:
            return time.monotonic()
        time.sleep(0.005)


times = []
assignment = assign()
wait_on_b(200)
for i in range(N):
    # A random pause first: B noticed the last change right after one of its polls, so a
    # change made at once would always wait a whole poll interval (the loop would lock onto
    # B's phase and report the worst case every time).
    time.sleep(random.uniform(0, 0.3))
    if i % 2 == 0:
        assert call("DELETE", f"{A}/api/v1/roleAssignments/{assignment}", admin)[0] == 200
        t0 = time.monotonic()
        times.append(wait_on_b(403) - t0)
    else:
        assignment = assign()
        t0 = time.monotonic()
        times.append(wait_on_b(200) - t0)

times.sort()
q = lambda p: times[min(len(times) - 1, int(p * len(times)))] * 1000
print(f"changes: {len(times)}")
print(f"p50: {q(0.50):.0f} ms  p90: {q(0.90):.0f} ms  p99: {q(0.99):.0f} ms  "
      f"max: {times[-1] * 1000:.0f} ms  mean: {statistics.mean(times) * 1000:.0f} ms")
