-- wrk script: POST /v1/requests with a small Deployment, a bearer token from the
-- environment (GEDGE_BENCH_TOKEN), and a fresh request ID per call.
local token = os.getenv("GEDGE_BENCH_TOKEN")
local counter = 0
local thread_id = 0

function setup(thread)
  thread:set("tid", thread_id)
  thread_id = thread_id + 1
end

function init(args)
  prefix = "bench-" .. tostring(os.time()) .. "-" .. tostring(tid) .. "-"
end

wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer " .. (token or "")

local body_tail = '","policy":"GMostRequestedPriority","workload":{"apiVersion":"apps/v1","kind":"Deployment",' ..
  '"metadata":{"name":"bench"},"spec":{"replicas":1,"template":{"spec":{"containers":[{"name":"c","image":"nginx",' ..
  '"resources":{"requests":{"cpu":"100m","memory":"64Mi"}}}]}}}}}'

function request()
  counter = counter + 1
  if os.getenv("GEDGE_BENCH_CLIENT_IDS") == "1" then
    return wrk.format(nil, "/v1/requests", nil, '{"request_id":"' .. prefix .. counter .. body_tail)
  end
  return wrk.format(nil, "/v1/requests", nil, "{" .. string.sub(body_tail, 3))
end

local statuses = {}
function response(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
end
