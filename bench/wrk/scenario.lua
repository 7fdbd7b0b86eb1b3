-- One wrk script for every scenario: wrk -s scenario.lua URL -- SCENARIO DATA.lua THREADS
-- Requests are spread over many users' tokens (bench/prepare.py writes DATA.lua). At the end
-- one line "BENCH_RESULT {json}" carries the figures the runner reads.

local threads = {}
local thread_count = 0

function setup(thread)
  thread_count = thread_count + 1
  thread:set("thread_number", thread_count)
  table.insert(threads, thread)
end

local scenario, data, users
local counter = 0
-- Globals, not locals: done() reads them back from each thread with thread:get(), which sees
-- only a thread's globals (as locals, every non-2xx answer went uncounted).
statuses = {}         -- non-2xx answers by status code
-- Bulk answers that completed fewer tasks than their batch holds: the batch had been completed
-- before, so the request measured less than the scenario. bench/run.py counts them as errors.
short_batches = 0
local task_owner = {} -- recurring task id -> token, to complete the next occurrence in turn
local pending = {}    -- recurring task ids not completed yet
local batches = {}    -- {token, ids}
local FILTERED = {
  "?completed=false&priority=high,medium&ordering=due_date",
  "?search=report&ordering=-priority",
  "?tag=home&has_due=true&ordering=due_date,-priority",
  "?completed=false&search=meeting&ordering=-updated_at",
  "?priority=high&overdue=true&ordering=title",
}

local function json_header(token)
  return {["Authorization"] = "Bearer " .. token, ["Content-Type"] = "application/json"}
end

local function auth_header(token)
  return {["Authorization"] = "Bearer " .. token}
end

function init(args)
  scenario = args[1]
  data = dofile(args[2])
  users = data.users
  -- Each thread starts somewhere else in the user list.
  counter = (thread_number or 1) * 7919
  math.randomseed(thread_number or 1)
  for _, user in ipairs(users) do
    for _, id in ipairs(user.recurring) do
      task_owner[id] = user.token
      table.insert(pending, id)
    end
    for _, ids in ipairs(user.bulk) do
      table.insert(batches, {token = user.token, ids = ids})
    end
  end
  -- Threads take disjoint shares of the one-shot work (recurring tasks, bulk batches).
  local total = tonumber(args[3]) or 1
  local me = (thread_number or 1) % total
  local mine, mine_batches = {}, {}
  for i, id in ipairs(pending) do
    if i % total == me then table.insert(mine, id) end
  end
  for i, batch in ipairs(batches) do
    if i % total == me then
      table.insert(mine_batches, batch)
    end
  end
  pending, batches = mine, mine_batches
end

local function next_user()
  counter = counter + 1
  return users[(counter % #users) + 1]
end

local function pick(list)
  return list[math.random(#list)]
end

local priorities = {"none", "low", "medium", "high"}

function request()
  if scenario == "list" then
    return wrk.format("GET", "/api/v1/tasks/", auth_header(next_user().token))
  elseif scenario == "me" then
    return wrk.format("GET", "/api/v1/auth/me/", auth_header(next_user().token))
  elseif scenario == "list_heavy" then
    return wrk.format("GET", "/api/v1/tasks/", auth_header(data.heavy.token))
  elseif scenario == "list_filtered" then
    local user = next_user()
    local query = FILTERED[(counter % #FILTERED) + 1]
    return wrk.format("GET", "/api/v1/tasks/" .. query, auth_header(user.token))
  elseif scenario == "get" then
    local user = next_user()
    return wrk.format("GET", "/api/v1/tasks/" .. pick(user.ids) .. "/", auth_header(user.token))
  elseif scenario == "get_counted" then
    -- The floor's get, counted against the user's rate limit in Redis as the API's is.
    local user = next_user()
    local headers = auth_header(user.token)
    headers["X-Floor-Rate-Limit"] = "count"
    return wrk.format("GET", "/api/v1/tasks/" .. pick(user.ids) .. "/", headers)
  elseif scenario == "create" then
    local user = next_user()
    local body = '{"title":"' .. data.created_title .. ' ' .. counter .. '","description":' ..
      '"made by the benchmark","priority":"medium","list":"' .. user.list ..
      '","tags":["home","work"],"due_date":"2030-01-15","due_time":"09:30"}'
    return wrk.format("POST", "/api/v1/tasks/", json_header(user.token), body)
  elseif scenario == "patch" then
    local user = next_user()
    local body = '{"priority":"' .. priorities[(counter % 4) + 1] .. '"}'
    return wrk.format("PATCH", "/api/v1/tasks/" .. pick(user.siblings) .. "/",
      json_header(user.token), body)
  elseif scenario == "complete_recurring" then
    local id
    if #pending > 0 then
      local index = math.random(#pending)
      id = pending[index]
      pending[index] = pending[#pending]
      pending[#pending] = nil
    else
      -- Out of open recurring tasks: completing a completed one again (makes no copy).
      id = next(task_owner)
    end
    return wrk.format("PATCH", "/api/v1/tasks/" .. id .. "/", json_header(task_owner[id]),
      '{"completed":true}')
  elseif scenario == "move" then
    local user = next_user()
    local task, after = pick(user.siblings), pick(user.siblings)
    while after == task do after = pick(user.siblings) end
    return wrk.format("POST", "/api/v1/tasks/" .. task .. "/move/", json_header(user.token),
      '{"after":"' .. after .. '"}')
  elseif scenario == "bulk_complete_100" then
    counter = counter + 1
    local batch = batches[(counter % #batches) + 1]
    return wrk.format("POST", "/api/v1/tasks/bulk/", json_header(batch.token),
      '{"action":"complete","ids":["' .. table.concat(batch.ids, '","') .. '"]}')
  end
  error("unknown scenario " .. tostring(scenario))
end

function response(status, headers, body)
  if status < 200 or status > 299 then
    statuses[status] = (statuses[status] or 0) + 1
  elseif scenario == "bulk_complete_100" then
    if tonumber(string.match(body, '"updated":%s*(%d+)')) ~= data.bulk_size then
      short_batches = short_batches + 1
    end
  elseif scenario == "complete_recurring" then
    local id = string.match(body, '"id":"([%x%-]+)"')
    local next_id = string.match(body, '"next_occurrence":"([%x%-]+)"')
    if id and next_id and task_owner[id] then
      task_owner[next_id] = task_owner[id]
      table.insert(pending, next_id)
    end
  end
end

function done(summary, latency, requests)
  local counts, non_2xx, short = {}, 0, 0
  for _, thread in ipairs(threads) do
    short = short + (thread:get("short_batches") or 0)
    for status, count in pairs(thread:get("statuses") or {}) do
      counts[status] = (counts[status] or 0) + count
      non_2xx = non_2xx + count
    end
  end
  local bad = {}
  for status, count in pairs(counts) do
    bad[#bad + 1] = string.format('"%s":%d', tostring(status), count)
  end
  local errors = summary.errors
  -- Runs in rounds are merged by bench/run.py: it asks for the latency distribution too, as
  -- the 999 quantiles 0.1 %, 0.2 %, ... 99.9 % (each a walk of wrk's histogram: on request).
  local quantiles = {}
  if os.getenv("BENCH_QUANTILES") then
    for i = 1, 999 do quantiles[i] = latency:percentile(i / 10) end
  end
  io.write(string.format(
    'BENCH_RESULT {"requests":%d,"duration_us":%d,"p50_us":%d,"p95_us":%d,"p99_us":%d,' ..
    '"max_us":%d,"non_2xx":%d,"connect":%d,"read":%d,"write":%d,"timeout":%d,"short":%d,' ..
    '"status":{%s},"quantiles_us":[%s]}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(95),
    latency:percentile(99), latency.max, non_2xx, errors.connect, errors.read,
    errors.write, errors.timeout, short, table.concat(bad, ","), table.concat(quantiles, ",")))
end
