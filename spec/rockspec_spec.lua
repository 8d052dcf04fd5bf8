-- The rockspec installs a working module: build it with LuaRocks into a
-- temporary tree (from a copy of the sources, since the builtin build writes
-- object files next to them) and use graphcall from there in a fresh Lua.
local function sh(cmd)
  local p = assert(io.popen(cmd .. " 2>&1"))
  local out = p:read("a")
  local ok, _, code = p:close()
  return ok, out, code
end

describe("rockspec/graphcall-scm-1.rockspec", function()
  local dir

  setup(function()
    dir = os.tmpname()
    os.remove(dir)
    assert(sh(("mkdir -p %q && cp -r src lua bin rockspec %q/"):format(dir, dir)))
  end)

  teardown(function()
    if dir then sh(("rm -rf %q"):format(dir)) end
  end)

  it("installs with luarocks make --deps-mode=none and is usable from the tree", function()
    local ok, out = sh(("cd %q && luarocks --lua-version 5.4 make --deps-mode=none --tree %q/tree "
      .. "rockspec/graphcall-scm-1.rockspec"):format(dir, dir))
    assert.is_true(ok, out)
    assert.matches("graphcall scm%-1 is now installed", out)

    local script = [[
      local g = require "graphcall"
      local c = g.new { app_id = "8A34A46B-3D17-4ADC-8DCE-DC4E7D572698", callback_uri = "https://bot.contoso.com/cb" }
      local r = c:prepare_call { targets = { g.user { id = "u" } } }
      assert(require("graphcall.emulator").start { port = 0 }):close()
      print(package.searchpath("graphcall.core", package.cpath), g._VERSION, r.method, r.path)
    ]]
    local env = ("LUA_PATH='%s/tree/share/lua/5.4/?.lua;%s/tree/share/lua/5.4/?/init.lua;;' "
      .. "LUA_CPATH='%s/tree/lib/lua/5.4/?.so;;'"):format(dir, dir, dir)
    ok, out = sh(("cd / && env %s lua5.4 -e %q"):format(env, script))
    assert.is_true(ok, out)
    assert.equal(("%s/tree/lib/lua/5.4/graphcall/core.so\t%s\tPOST\t/v1.0/communications/calls\n")
      :format(dir, require("graphcall")._VERSION), out)
    -- every Lua module and the emulator command are installed
    for _, m in ipairs { "init", "client", "call", "control", "events", "loop", "transport", "token", "keys",
                         "receiver", "operation", "participant", "emulator/init", "emulator/calls",
                         "emulator/actions", "emulator/resources", "emulator/identity", "emulator/faults", "redis" } do
      assert.is_truthy(io.open(("%s/tree/share/lua/5.4/graphcall/%s.lua"):format(dir, m)), m)
    end
    assert.is_truthy(io.open(dir .. "/tree/bin/graphcall-emulator"))
  end)
end)
