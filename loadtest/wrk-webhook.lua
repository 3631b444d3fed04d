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
  local at = assert(string.find(body, "424242424242", 1, true), "placeholder id not in body")
  prefix = string.sub(body, 1, at - 1)
  suffix = string.sub(body, at + 12)
  next_id = thread_id * 1000000000 + math.floor(os.time() % 100000) * 10000
  path = os.getenv("WEBHOOK_PATH")
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
end

function request()
  next_id = next_id + 1
  return wrk.format(nil, path, nil, prefix .. next_id .. suffix)
end
