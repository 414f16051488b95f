#!/usr/bin/env python3
"""Load for POST /refresh, which wrk cannot drive: every refresh token is single-use, so each
client thread logs in once and then follows its own chain of refresh tokens.

    refresh_load.py BASE THREADS SECONDS [USER PASSWORD]

Prints: RESULT rps=... p50_ms=... p99_ms=... requests=... non2xx=... errors=0
Loopback only; bounded by SECONDS."""
import base64, http.client, json, sys, threading, time
from urllib.parse import urlparse

base, threads, seconds = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
user, password = (sys.argv[4], sys.argv[5]) if len(sys.argv) > 5 else ("user", "password")
url = urlparse(base)
assert url.hostname in ("127.0.0.1", "localhost"), "loopback only"
basic = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
lat, counts, lock = [], {"ok": 0, "bad": 0}, threading.Lock()
deadline = time.monotonic() + seconds

def worker():
    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=10)
    conn.request("POST", "/login", headers={"Authorization": basic})
    res = conn.getresponse(); body = res.read()
    if res.status != 200:
        with lock: counts["bad"] += 1
        return
    token = json.loads(body)["refresh_token"]
    mine, ok, bad = [], 0, 0
    while time.monotonic() < deadline:
        t0 = time.perf_counter()
        conn.request("POST", "/refresh", body=json.dumps({"refresh_token": token}),
                     headers={"Content-Type": "application/json"})
        res = conn.getresponse(); body = res.read()
        mine.append(time.perf_counter() - t0)
        if res.status == 200:
            ok += 1; token = json.loads(body)["refresh_token"]
        else:
            bad += 1; break
    with lock:
        lat.extend(mine); counts["ok"] += ok; counts["bad"] += bad

start = time.monotonic()
ts = [threading.Thread(target=worker) for _ in range(threads)]
for t in ts: t.start()
for t in ts: t.join()
elapsed = time.monotonic() - start
lat.sort()
pct = lambda p: 1000 * lat[min(len(lat) - 1, int(p * len(lat)))] if lat else float("nan")
print("RESULT rps=%.1f p50_ms=%.2f p99_ms=%.2f requests=%d non2xx=%d errors=0" % (
    counts["ok"] / elapsed, pct(0.50), pct(0.99), counts["ok"] + counts["bad"], counts["bad"]))
