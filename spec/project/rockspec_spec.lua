-- The rockspecs install a working module. Each is read the way LuaRocks
-- reads it (a chunk run without the standard library) and checked against
-- the tree: every C source and every Lua module is listed, the license file
-- matches. Then one is built with LuaRocks into a temporary tree (from a
-- copy of the sources, so a build never touches the checkout), and the
-- release rockspec is packed from a git repository with its tag and the
-- packed rock built and used.
local function sh(cmd)
  local p = assert(io.popen(cmd .. " 2>&1"))
  local out = p:read("a")
  local ok, _, code = p:close()
  return ok, out, code
end

local ROCKSPECS = { "rockspec/graphcall-scm-1.rockspec", "rockspec/graphcall-0.1.0-1.rockspec" }

local function load_rockspec(path)
  local env = {}
  local chunk = assert(loadfile(path, "t", env))
  chunk()
  return env
end

local function words(s)
  local list = {}
  for w in (s or ""):gmatch("%S+") do list[#list + 1] = w end
  return list
end

local function set(list)
  local s = {}
  for _, v in ipairs(list) do s[v] = true end
  return s
end

-- The files of the checkout matching a find(1) expression, sorted.
local function files(expr)
  local ok, out = sh("find " .. expr .. " | sort")
  assert(ok, out)
  return words(out)
end

-- The sources a rockspec compiles: the Makefile's SRC and CXXSRC as it passes them.
local function rock_sources(spec)
  local v = spec.build.build_variables
  local list = words(v.SRC)
  for _, f in ipairs(words(v.CXXSRC)) do list[#list + 1] = f end
  table.sort(list)
  return list
end

-- Library paths for a fresh Lua that uses an installed tree.
local function tree_env(tree)
  return ("LUA_PATH='%s/share/lua/5.4/?.lua;%s/share/lua/5.4/?/init.lua;;' LUA_CPATH='%s/lib/lua/5.4/?.so;;'")
    :format(tree, tree, tree)
end

-- What a fresh lua5.4 prints when it uses graphcall from `tree`.
local USE = [[
  local g = require "graphcall"
  local c = g.new { app_id = "8A34A46B-3D17-4ADC-8DCE-DC4E7D572698", callback_uri = "https://bot.contoso.com/cb" }
  local r = c:prepare_call { targets = { g.user { id = "u" } } }
  assert(require("graphcall.emulator").start { port = 0 }):close()
  print(package.searchpath("graphcall.core", package.cpath), g._VERSION, r.method, r.path)
]]

local function exports(so)
  local ok, out = sh(("nm -D --defined-only %q"):format(so))
  assert(ok, out)
  local names = {}
  for name in out:gmatch("%x+ [A-Za-z] (%S+)") do names[#names + 1] = name end
  return names
end

for _, path in ipairs(ROCKSPECS) do
  describe(path, function()
    local spec = load_rockspec(path)

    it("lists every C and C++ file under src/, and only files that exist", function()
      -- src/testing/ is the test-only module, built from the Makefile's own list
      local want = files("src -path src/testing -prune -o \\( -name '*.c' -o -name '*.cpp' \\) -print")
      assert.is_true(#want >= 10)
      local have = rock_sources(spec)
      local have_set, want_set = set(have), set(want)
      for _, f in ipairs(want) do assert.is_true(have_set[f] ~= nil, f .. " is missing from " .. path) end
      for _, f in ipairs(have) do assert.is_true(want_set[f] ~= nil, f .. " is listed but does not exist") end
      assert.same(want, have)
    end)

    it("maps every Lua module explicitly, graphcall to init.lua", function()
      local lua = spec.build.install.lua
      assert.equal("lua/graphcall/init.lua", lua.graphcall)
      local mapped = {}
      for name, file in pairs(lua) do
        local want = name == "graphcall" and "init" or name:match("^graphcall%.(.+)$"):gsub("%.", "/")
        local file_path = file:match("^lua/graphcall/(.+)%.lua$")
        assert.is_true(file_path == want or file_path == want .. "/init", name)
        mapped[#mapped + 1] = file
      end
      table.sort(mapped)
      assert.same(files("lua/graphcall -name '*.lua'"), mapped)
      assert.equal("build/rock/graphcall/core.so", spec.build.install.lib["graphcall.core"])
      assert.equal("bin/graphcall-emulator", spec.build.install.bin["graphcall-emulator"])
    end)

    it("compiles with make's flags (hidden visibility) and describes the package", function()
      assert.equal("make", spec.build.type)
      assert.equal("build/rock", spec.build.build_variables.OBJDIR)
      local makefile = assert(io.open("Makefile")):read("a")
      assert.matches("ALL_CFLAGS = [^\n]*%-fvisibility=hidden", makefile)
      assert.matches("ALL_CXXFLAGS = [^\n]*%-fvisibility=hidden", makefile)
      assert.equal("git+https://github.com/graphcall/graphcall.git", spec.source.url)
      assert.equal("https://github.com/graphcall/graphcall", spec.description.homepage)
      assert.same({ "linux" }, spec.supported_platforms)
      assert.same({ "doc", "examples" }, spec.build.copy_directories)
      assert.equal("MIT", spec.description.license)
      local license = assert(io.open("LICENSE")):read("a")
      assert.matches("^MIT License\n", license)
      assert.matches("Permission is hereby granted, free of charge", license, 1, true)
      if spec.version == "scm-1" then
        assert.equal("main", spec.source.branch)
      else
        assert.equal("v" .. spec.version:match("^(.-)%-%d+$"), spec.source.tag)
        assert.equal(spec.version:match("^(.-)%-%d+$"), require("graphcall")._VERSION)
      end
    end)
  end)
end

describe("LuaRocks", function()
  local dir

  setup(function()
    dir = os.tmpname()
    os.remove(dir)
    -- the repository as a release would have it: its files, committed, tagged
    assert(sh(("mkdir -p %q/graphcall && cp -r src lua bin rockspec doc examples Makefile LICENSE %q/graphcall/")
      :format(dir, dir)))
    local ok, out = sh(("cd %q/graphcall && git init -q && git add -A && "
      .. "git -c user.name=spec -c user.email=spec@invalid commit -qm release && git tag v0.1.0"):format(dir))
    assert(ok, out)
  end)

  teardown(function()
    if dir then sh(("rm -rf %q"):format(dir)) end
  end)

  it("luarocks make --deps-mode=none installs a usable module that exports only luaopen_graphcall_core", function()
    local tree = dir .. "/tree"
    local ok, out = sh(("cd %q/graphcall && luarocks --lua-version 5.4 make --deps-mode=none --tree %q "
      .. "rockspec/graphcall-scm-1.rockspec"):format(dir, tree))
    assert.is_true(ok, out)
    assert.matches("graphcall scm%-1 is now installed", out)
    assert.matches("%-fvisibility=hidden", out)

    ok, out = sh(("cd / && env %s lua5.4 -e %q"):format(tree_env(tree), USE))
    assert.is_true(ok, out)
    assert.equal(("%s/lib/lua/5.4/graphcall/core.so\t%s\tPOST\t/v1.0/communications/calls\n")
      :format(tree, require("graphcall")._VERSION), out)
    assert.same({ "luaopen_graphcall_core" }, exports(tree .. "/lib/lua/5.4/graphcall/core.so"))
    -- every Lua module, the emulator command, the guides and the examples are installed
    assert.is_truthy(io.open(tree .. "/share/lua/5.4/graphcall.lua"))
    for _, m in ipairs { "client", "call", "control", "events", "log", "loop", "transport", "token", "keys",
                         "receiver", "operation", "participant", "redis", "emulator", "emulator/calls",
                         "emulator/actions", "emulator/resources", "emulator/identity", "emulator/faults",
                         "adapters/luv", "adapters/cqueues" } do
      assert.is_truthy(io.open(("%s/share/lua/5.4/graphcall/%s.lua"):format(tree, m)), m)
    end
    assert.is_truthy(io.open(tree .. "/bin/graphcall-emulator"))
    local rock = tree .. "/lib/luarocks/rocks-5.4/graphcall/scm-1/"
    assert.is_truthy(io.open(rock .. "doc/fleet.md"))
    assert.is_truthy(io.open(rock .. "examples/demo_bot.lua"))
  end)

  it("luarocks pack makes a source rock of the release from its tag, and that rock builds", function()
    -- the release rockspec with its url pointed at the local repository
    local text = assert(io.open("rockspec/graphcall-0.1.0-1.rockspec")):read("a")
    local n
    text, n = text:gsub("git%+https://github%.com/graphcall/graphcall%.git", "git+file://" .. dir .. "/graphcall")
    assert.equal(1, n)
    local f = assert(io.open(dir .. "/graphcall-0.1.0-1.rockspec", "w"))
    f:write(text)
    f:close()

    local ok, out = sh(("cd %q && luarocks --lua-version 5.4 pack graphcall-0.1.0-1.rockspec"):format(dir))
    assert.is_true(ok, out)
    assert.matches("Packed: .*graphcall%-0%.1%.0%-1%.src%.rock", out)
    ok, out = sh(("unzip -l %q/graphcall-0.1.0-1.src.rock"):format(dir))
    assert.is_true(ok, out)
    for _, member in ipairs { "graphcall-0.1.0-1.rockspec", "graphcall/src/core.c", "graphcall/lua/graphcall/init.lua",
                              "graphcall/Makefile", "graphcall/LICENSE" } do
      assert.is_truthy(out:find(member, 1, true), member)
    end

    local tree = dir .. "/tree2"
    ok, out = sh(("cd %q && luarocks --lua-version 5.4 build --deps-mode=none --tree %q graphcall-0.1.0-1.src.rock")
      :format(dir, tree))
    assert.is_true(ok, out)
    assert.matches("graphcall 0%.1%.0%-1 is now installed", out)
    assert.same({ "luaopen_graphcall_core" }, exports(tree .. "/lib/lua/5.4/graphcall/core.so"))
    ok, out = sh(("cd / && env %s lua5.4 -e %q"):format(tree_env(tree), USE))
    assert.is_true(ok, out)
    assert.matches("\tPOST\t/v1.0/communications/calls\n$", out)
  end)
end)
