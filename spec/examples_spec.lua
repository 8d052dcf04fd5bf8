-- The examples and the emulator's command line run as a user runs them.
local ENV = "LUA_PATH='./lua/?.lua;./lua/?/init.lua;;' LUA_CPATH='./build/?.so;;'"

local function run(cmd)
  local p = assert(io.popen(cmd .. " 2>&1"))
  local out = p:read("a")
  local ok, _, code = p:close()
  return ok, out, code
end

describe("examples", function()
  it("the demo bot does every step against the in-process emulator and exits 0", function()
    local ok, out = run(ENV .. " lua5.4 examples/demo_bot.lua")
    assert.is_true(ok, out)
    assert.matches("demo: 6 of 6 steps done", out, 1, true)
    local _, established = out:gsub("notification%s+established", "")
    local _, terminated = out:gsub("notification%s+terminated", "")
    assert.same({ 2, 2 }, { established, terminated })
  end)

  it("seed_requests prints the six seed requests and the two seed notifications", function()
    local ok, out = run(ENV .. " lua5.4 examples/seed_requests.lua")
    assert.is_true(ok, out)
    local _, posts = out:gsub("POST https://graph.microsoft.com/beta/app/calls", "")
    assert.equal(6, posts)
    assert.matches("notification: updated call 57DAB8B1894C409AB240BD8BEAE78896 -> established", out, 1, true)
  end)

  it("bin/graphcall-emulator serves the demo bot as a separate process", function()
    local log = os.tmpname()
    assert(os.execute(("bin/graphcall-emulator --port 0 --token demo-token > %q 2>&1 & echo $! > %q.pid")
      :format(log, log)))
    local pid = assert(io.open(log .. ".pid")):read("l")
    local url
    for _ = 1, 100 do
      local f = io.open(log)
      url = f and f:read("a"):match("listening on (http://127%.0%.0%.1:%d+)")
      if f then f:close() end
      if url then break end
      os.execute("sleep 0.02")
    end
    local ok, out = run(("GRAPH_URL=%s %s lua5.4 examples/demo_bot.lua"):format(url, ENV))
    os.execute("kill " .. pid)
    os.remove(log)
    os.remove(log .. ".pid")
    local ready = url ~= nil
    assert.is_true(ready)
    assert.is_true(ok, out)
    assert.matches("emulator%s+" .. url:gsub("%p", "%%%0"), out)
    assert.matches("demo: 6 of 6 steps done", out, 1, true)
  end)

  it("bin/graphcall-emulator rejects unknown flags", function()
    local ok, out = run("bin/graphcall-emulator --colour red")
    assert.is_falsy(ok)
    assert.matches("usage: graphcall-emulator", out, 1, true)
  end)
end)
