-- wrk script: POST one Chatwoot message_created per request, each with a message id never sent before, so every
-- request takes the full path (lock + enqueue), never the cheaper "already_queued" answer.
-- Env: BODY_FILE (a JSON body with the placeholder 424242424242 as its message id), WEBHOOK_PATH (path + query).

local counter = 0

function setup(thread)
  counter = counter + 1
  thread:set("thread_id", counter)
end

function init(args)
  local file = assert(io.open(os.getenv("BODY_FILE"), "rb"))
  local body = file:read("*a")
  file:close()
  -- The message id appears more than once (the event's own id, and its conversation's last message): replace all.
  parts = {}
  local from = 1
  while true do
    local at = string.find(body, "424242424242", from, true)
    if not at then break end
    table.insert(parts, string.sub(body, from, at - 1))
    from = at + 12
  end
  assert(#parts > 0, "placeholder id not in body")
  table.insert(parts, string.sub(body, from))
  next_id = thread_id * 1000000000 + math.floor(os.time() % 100000) * 10000
  path = os.getenv("WEBHOOK_PATH")
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
end

function request()
  next_id = next_id + 1
  return wrk.format(nil, path, nil, table.concat(parts, tostring(next_id)))
end

-- One JSON line for the harness: counts and latency percentiles (microseconds) that wrk's own text does not give.
function done(summary, latency, requests)
  io.write(string.format(
    '{"wrk":true,"requests":%d,"durationUs":%d,"non2xx":%d,"socketErrors":%d,"p50":%d,"p95":%d,"p99":%d,"max":%d}\n',
    summary.requests, summary.duration, summary.errors.status,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    latency:percentile(50), latency:percentile(95), latency:percentile(99), latency.max))
end
