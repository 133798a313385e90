-- POST JSON bodies read from a file, one per line, in turn (each thread starts
-- at its own line). With a key prefix as the second argument, every request
-- carries a fresh Idempotency-Key: <prefix>-<thread>-<counter>.
--
--   wrk -s post.lua URL -- BODIES_FILE [KEY_PREFIX]

local threads = 0

function setup(thread)
  threads = threads + 1
  thread:set("thread_number", threads)
end

function init(args)
  bodies = {}
  for line in io.lines(args[1]) do
    if #line > 0 then
      bodies[#bodies + 1] = line
    end
  end
  assert(#bodies > 0, "no request bodies in " .. args[1])
  key_prefix = args[2]
  counter = 0
  next_body = (thread_number * 7919) % #bodies
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
end

function request()
  counter = counter + 1
  if key_prefix then
    wrk.headers["Idempotency-Key"] = key_prefix .. "-" .. thread_number .. "-" .. counter
  end
  next_body = next_body % #bodies + 1
  return wrk.format(nil, nil, nil, bodies[next_body])
end
