-- POSTs one form body to one path, over wrk's keep-alive connections.
--   WRK_PATH  request path, e.g. /token or /<tenant>/oauth2/v2.0/token
--   WRK_BODY  the body (WRK_CONTENT_TYPE, default application/x-www-form-urlencoded)
-- done() prints the status-code histogram and "non-200: N" so an erroring server can't look fast.
--   WRK_METHOD  GET sends no body (default POST)
wrk.method = os.getenv("WRK_METHOD") or "POST"
wrk.path = assert(os.getenv("WRK_PATH"), "WRK_PATH is required")
if wrk.method == "POST" then
  wrk.body = assert(os.getenv("WRK_BODY"), "WRK_BODY is required")
  wrk.headers["Content-Type"] = os.getenv("WRK_CONTENT_TYPE") or "application/x-www-form-urlencoded"
end
--   WRK_AUTHORIZATION  an Authorization header value (optional)
if os.getenv("WRK_AUTHORIZATION") and os.getenv("WRK_AUTHORIZATION") ~= "" then
  wrk.headers["Authorization"] = os.getenv("WRK_AUTHORIZATION")
end

local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  statuses = {}
end

function response(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
end

function done(summary, latency, requests)
  local total, non200 = {}, 0
  for _, t in ipairs(threads) do
    for status, n in pairs(t:get("statuses")) do
      total[status] = (total[status] or 0) + n
      if status ~= 200 then non200 = non200 + n end
    end
  end
  for status, n in pairs(total) do
    io.write(string.format("status %d: %d\n", status, n))
  end
  io.write(string.format("non-200: %d\n", non200))
end
