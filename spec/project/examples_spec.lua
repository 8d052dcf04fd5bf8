-- The examples run as a user runs them: against the emulator in its own
-- process (bin/graphcall-run), or offline.
local function run(cmd)
  local p = assert(io.popen(cmd .. " 2>&1"))
  local out = p:read("a")
  local ok = p:close()
  return ok, out
end

describe("examples", function()
  it("the demo bot does every step against the emulator in its own process", function()
    local ok, out = run("bin/graphcall-run lua5.4 examples/demo_bot.lua")
    assert.is_true(ok, out)
    assert.matches("demo: 10 of 10 steps done", out, 1, true)
    local url = out:match("emulator%s+(http://127%.0%.0%.1:%d+)")
    assert.truthy(url, out)
    assert.matches("dashboard%s+" .. url:gsub("%p", "%%%0") .. "/_emulator/", out)
    local _, operations = out:gsub("notification: operation%s+completed", "")
    local _, terminated = out:gsub("notification: call%s+terminated", "")
    assert.same({ 1, 2 }, { operations, terminated })
  end)

  it("the demo bot also runs with the emulator in the same process", function()
    local ok, out = run("LUA_PATH='./lua/?.lua;./lua/?/init.lua;;' LUA_CPATH='./build/?.so;;' "
      .. "lua5.4 examples/demo_bot.lua")
    assert.is_true(ok, out)
    assert.matches("demo: 10 of 10 steps done", out, 1, true)
  end)

  it("a bot for each seed scenario establishes and hangs up", function()
    local ok, out = run("bin/graphcall-run lua5.4 examples/seed_bot.lua")
    assert.is_true(ok, out)
    local _, done = out:gsub("established and hung up", "")
    assert.equal(6, done)
    ok, out = run("bin/graphcall-run lua5.4 examples/seed_bot.lua group_call")
    assert.is_true(ok, out)
    assert.matches("^group_call%s+established and hung up", out)
  end)

  it("the answering bot answers an incoming call, greets and hangs up", function()
    local ok, out = run("bin/graphcall-run lua5.4 examples/answer_bot.lua")
    assert.is_true(ok, out)
    assert.matches("incoming call [%x%-]+ from Test User", out)
    assert.matches("answered, greeted and hung up", out, 1, true)
  end)

  it("seed_requests prints the six seed requests and the two seed notifications", function()
    local ok, out = run("LUA_PATH='./lua/?.lua;./lua/?/init.lua;;' LUA_CPATH='./build/?.so;;' "
      .. "lua5.4 examples/seed_requests.lua")
    assert.is_true(ok, out)
    local _, posts = out:gsub("POST https://graph.microsoft.com/beta/app/calls", "")
    assert.equal(6, posts)
    assert.matches("notification: updated call 57DAB8B1894C409AB240BD8BEAE78896 -> established", out, 1, true)
  end)

  it("examples/fleet/run: three instances, nginx, Redis and the emulator with one command", function()
    -- without the sanitizer runtime `make asan` preloads: nginx and
    -- redis-server are not built for it (nginx hangs under it)
    local ok, out = run("env -u LD_PRELOAD examples/fleet/run")
    assert.is_true(ok, out)
    local _, placed = out:gsub("\nbot%-%d%s+placed%s", "")
    local _, adopted = out:gsub("\nbot%-[23]%s+adopted%s+[%x%-]+%s+[12]", "")
    assert.same({ 6, 2 }, { placed, adopted })
    assert.matches("bot%-2%s+drained%s+TERM%s+%d", out)
    assert.matches("calls the emulator ended: 0 ", out, 1, true)
  end)

  it("bin/graphcall-run passes the command's failure on", function()
    local ok = run("bin/graphcall-run lua5.4 -e 'os.exit(3)'")
    assert.is_falsy(ok)
  end)

  it("bin/graphcall-emulator rejects unknown flags", function()
    local ok, out = run("bin/graphcall-emulator --colour red")
    assert.is_falsy(ok)
    assert.matches("usage: graphcall-emulator", out, 1, true)
  end)
end)
