-- core.http keeps the last few URLs it sent to parsed (libcurl's URL API,
-- CURLOPT_CURLU) and shares each among the transfers in flight that use
-- it. Every request must still reach its own URL, whether its URL was kept,
-- parsed now, or (every kept one in use) given to libcurl as a string; and a
-- URL libcurl cannot parse gets libcurl's own verdict, as before. A result
-- can carry only the response headers a request names (read_headers), with
-- the values the table of all of them has.
local graphcall = require "graphcall"
local core = require "graphcall.core"

local function env()
  local server = assert(core.server { port = 0 })
  local loop = graphcall.new_loop { timeout = 5, max_in_flight = 4 }
  local base = ("http://127.0.0.1:%d"):format(server:port())
  -- answers with what it was asked: method, path and query
  loop:add_server(server, function(req)
    server:respond(req.id, 200, req.method .. " " .. req.path .. "?" .. (req.query or ""))
  end)
  return loop, base, function()
    loop:close()
    server:close()
  end
end

-- Send every { method, url } at once; the results in the same order.
local function send_all(loop, requests)
  local results, left = {}, #requests
  for i, r in ipairs(requests) do
    loop:request({ method = r[1], url = r[2], body = r[1] ~= "GET" and "{}" or nil }, function(res)
      results[i] = res
      left = left - 1
    end)
  end
  assert.is_true(loop:run_until(function() return left == 0 end, 10))
  return results
end

describe("core.http URLs", function()
  it("reach their own URL when more differ at once than are kept, and when they repeat", function()
    local loop, base, close = env()
    local requests, expected = {}, {}
    for i = 1, 24 do -- 12 distinct URLs (more than the 8 kept), two requests each, all submitted at once
      local path = ("/calls/c%d"):format(i % 12)
      requests[i] = { i % 3 == 0 and "GET" or "POST", base .. path .. "?n=" .. (i % 12) }
      expected[i] = requests[i][1] .. " " .. path .. "?n=" .. (i % 12)
    end
    for round = 1, 3 do
      local results = send_all(loop, requests)
      for i, r in ipairs(results) do
        assert.is_nil(r.failure, r.message)
        assert.same({ 200, expected[i] }, { r.status, r.body }, "round " .. round .. ", request " .. i)
      end
    end
    -- one URL after another, each again right after: kept ones are taken, the oldest go
    for i = 1, 40 do
      local path = ("/one/u%d"):format(i % 10)
      local r = send_all(loop, { { "DELETE", base .. path } })[1]
      assert.same({ 200, "DELETE " .. path .. "?" }, { r.status, r.body })
    end
    close()
  end)

  it("leave a URL libcurl's parser refuses to libcurl, with its verdict", function()
    local loop, base, close = env()
    local results = send_all(loop, {
      { "GET", base .. "/with space" },          -- refused by the URL API and by libcurl
      { "GET", "127.0.0.1:" .. base:match("%d+$") .. "/no-scheme" }, -- libcurl guesses http
      { "GET", base .. "/fine" },
    })
    assert.equal("network", results[1].failure)
    assert.matches("URL", results[1].message)
    assert.same({ 200, "GET /no-scheme?" }, { results[2].status, results[2].body })
    assert.same({ 200, "GET /fine?" }, { results[3].status, results[3].body })
    close()
  end)

  it("read_headers gives the values all headers give, for the names asked, in any case, repeated", function()
    local server = assert(core.server { port = 0 })
    local loop = graphcall.new_loop { timeout = 5 }
    local url = ("http://127.0.0.1:%d/h"):format(server:port())
    -- "X-Rep" and "x-rep" are one name twice: the table of all keeps the last sent
    local headers = { Location = "https://graph/x", ["Request-Id"] = "r-1", ["X-Rep"] = "first",
                      ["x-rep"] = "second", ["retry-after"] = "7", Other = "o" }
    loop:add_server(server, function(req) server:respond(req.id, 201, "{}", headers) end)
    local function fetch(read)
      local result
      loop:request({ method = "POST", url = url, body = "{}", read_headers = read }, function(r) result = r end)
      assert.is_true(loop:run_until(function() return result end, 5))
      return result
    end
    local all = fetch(nil).headers
    assert.equal("o", all.other)
    assert.is_truthy(all["x-rep"] == "first" or all["x-rep"] == "second")
    local names = { "location", "request-id", "x-rep", "retry-after", "missing" }
    local some = fetch(names)
    assert.equal(201, some.status)
    assert.same({ location = all.location, ["request-id"] = all["request-id"], ["x-rep"] = all["x-rep"],
                  ["retry-after"] = "7" }, some.headers)
    assert.equal("https://graph/x", some.headers.location)
    for _, bad in ipairs { {}, { "Location" }, { "a b" }, { 1 }, "location", { ("x"):rep(128) } } do
      assert.has_error(function() loop:request({ method = "GET", url = url, read_headers = bad }, print) end)
    end
    local many = {}
    for i = 1, 17 do many[i] = "h" .. i end
    assert.has_error(function() loop:request({ method = "GET", url = url, read_headers = many }, print) end)
    loop:close()
    server:close()
  end)
end)

-- libcurl says REMOVE for a kept-alive connection after each request;
-- core.http leaves it in the epoll set (no epoll_ctl per request) until
-- libcurl asks for it again, an event comes for it, or libcurl closes it.
describe("core.http kept-alive connections", function()
  -- steps of at most 0.1 s that run in `seconds`: a few when the loop
  -- sleeps, thousands when its descriptor stays readable
  local function steps_in(loop, seconds)
    local n, stop = 0, core.monotonic() + seconds
    while core.monotonic() < stop do
      loop:step(0.1)
      n = n + 1
    end
    return n
  end

  it("one the server closes while idle leaves the loop asleep", function()
    local server = assert(core.server { port = 0 })
    local loop = graphcall.new_loop { timeout = 5 }
    local url = ("http://127.0.0.1:%d/k"):format(server:port())
    loop:add_server(server, function(req) server:respond(req.id, 200, "ok") end)
    for i = 1, 3 do
      local result
      loop:request({ method = "GET", url = url }, function(r) result = r end)
      assert.is_true(loop:run_until(function() return result end, 5))
      assert.equal(200, result.status, "request " .. i)
    end
    -- the server goes, and its connection with it: the client's socket
    -- reads EOF while libcurl is not waiting on it
    loop:remove_server(server)
    server:close()
    local n = steps_in(loop, 0.3)
    assert.is_true(n <= 10, ("the loop woke %d times in 0.3 s"):format(n))
    loop:close()
  end)
end)
