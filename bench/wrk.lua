-- wrk script for bench/load.sh. Environment:
--   WRK_METHOD  GET (default) or POST;  WRK_AUTH  a whole Authorization header value, if any;
--   WRK_COOKIE  a whole Cookie header value, if any
-- Prints one machine-readable line at the end:
--   RESULT rps=... p50_ms=... p99_ms=... requests=... non2xx=... errors=...
wrk.method = os.getenv("WRK_METHOD") or "GET"
local auth = os.getenv("WRK_AUTH")
if auth and auth ~= "" then
  wrk.headers["Authorization"] = auth
end
local cookie = os.getenv("WRK_COOKIE")
if cookie and cookie ~= "" then
  wrk.headers["Cookie"] = cookie
end
if wrk.method == "POST" then
  wrk.body = ""
end

done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "RESULT rps=%.1f p50_ms=%.2f p99_ms=%.2f requests=%d non2xx=%d errors=%d\n",
    summary.requests / (summary.duration / 1e6), latency:percentile(50) / 1000,
    latency:percentile(99) / 1000, summary.requests, e.status,
    e.connect + e.read + e.write + e.timeout))
end
