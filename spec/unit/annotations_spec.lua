-- The LuaLS annotations of the public API, checked without a language
-- server: every function a Lua file of graphcall defines at its top level
-- (`function M.x(...)`, `function Class:x(...)`; metamethods aside) has a
-- `---` doc comment, a `---@param` for each parameter and, when it returns
-- values (read from luac's listing of the file), a `---@return`; and
-- types/graphcall/core.lua (a `---@meta` file, never loaded) declares every
-- function of graphcall.core and every method of its userdata, as a fresh
-- Lua process enumerates them from the module and its metatables.
local META = "types/graphcall/core.lua"

local function read(path)
  local f = assert(io.open(path, "rb"))
  local s = f:read("a")
  f:close()
  return s
end

local function lines_of(text)
  local out = {}
  for l in (text .. (text:sub(-1) == "\n" and "" or "\n")):gmatch("(.-)\n") do out[#out + 1] = l end
  return out
end

-- The lines (of the file at `path`) of the functions that return values:
-- luac lists each function as `function <path:first,last>`, and a RETURN,
-- RETURN1 or TAILCALL whose comment is not "0 out" returns something.
local function returning(path)
  local p = assert(io.popen("luac5.4 -p -l -l " .. path .. " 2>&1"))
  local out, current = {}, nil
  for l in p:lines() do
    local first = l:match("^function <[^>]-:(%d+),%d+>")
    if first then current = tonumber(first) elseif l:find("^main <") then current = 0 end
    local op = l:match("^%s+%d+%s+%[%-?%d+%]%s+(%u+%d?)%s")
    local count = l:match("; (%S+) out")
    if current and (op == "RETURN" or op == "RETURN1" or op == "TAILCALL") and count ~= "0" then
      out[current] = true
    end
  end
  assert(p:close(), "luac5.4 failed on " .. path)
  return out
end

-- The problems of one file (its text, and the path luac reads): a list of
-- "path:line: name: what is missing".
local function problems(text, path)
  local lines, returns, out = lines_of(text), returning(path), {}
  for i, l in ipairs(lines) do
    local owner, name, params = l:match("^function ([%w_]+)[.:]([%w_]+)%s*%(([^)]*)%)")
    if owner and not name:find("^__") then
      local first = i
      while first > 1 and lines[first - 1]:find("^%-%-") do first = first - 1 end
      local block = table.concat(lines, "\n", first, i - 1)
      local where = ("%s:%d: %s.%s: "):format(path, i, owner, name)
      if first == i or not lines[first]:find("^%-%-%-") then
        out[#out + 1] = where .. "no --- doc comment"
      else
        for p in params:gmatch("[%w_]+") do
          if not (("\n" .. block .. "\n"):find("\n%-%-%-@param " .. p .. "%??[%s\n]")) then
            out[#out + 1] = where .. "no ---@param " .. p
          end
        end
        if params:find("...", 1, true) and not block:find("---@param ...", 1, true) then
          out[#out + 1] = where .. "no ---@param ..."
        end
        if returns[i] and not block:find("---@return", 1, true) then
          out[#out + 1] = where .. "returns values but has no ---@return"
        end
      end
    end
  end
  return out
end

local function file_problems(path)
  return problems(read(path), path)
end

-- graphcall.core as a fresh process sees it (no other spec's modules loaded):
-- { functions = {name...}, fields = {name...}, types = { [metatable name] = {method...} } }
local function runtime_core()
  local script = [[
    local core = require "graphcall.core"
    local function sorted(t) table.sort(t) return table.concat(t, " ") end
    local functions, fields = {}, {}
    for k, v in pairs(core) do
      if type(v) == "function" then functions[#functions + 1] = k else fields[#fields + 1] = k end
    end
    print("functions " .. sorted(functions))
    print("fields " .. sorted(fields))
    for name, mt in pairs(debug.getregistry()) do
      if type(name) == "string" and name:find("^graphcall%.") and type(mt) == "table" then
        local methods = {}
        if type(mt.__index) == "table" then
          for k, v in pairs(mt.__index) do if type(v) == "function" then methods[#methods + 1] = k end end
        end
        print("type " .. name .. " " .. sorted(methods))
      end
    end
  ]]
  local file = os.tmpname()
  local f = assert(io.open(file, "w"))
  f:write(script)
  f:close()
  local p = assert(io.popen("LUA_CPATH='./build/?.so;;' lua5.4 " .. file .. " 2>&1"))
  local out = { types = {} }
  for l in p:lines() do
    local what, rest = l:match("^(%S+) ?(.*)$")
    local words = {}
    for w in rest:gmatch("%S+") do words[#words + 1] = w end
    if what == "functions" or what == "fields" then
      out[what] = words
    elseif what == "type" then
      out.types[table.remove(words, 1)] = words
    else
      error("unexpected output: " .. l)
    end
  end
  p:close()
  os.remove(file)
  return out
end

-- What a meta file declares: `function core.x(`, `---@field x` of the
-- graphcall.core class, classes, and `function v:m(` where `local v = {}`
-- follows `---@class Name`.
local function declared(text)
  local d = { functions = {}, fields = {}, classes = {}, methods = {} }
  local class, var_class = nil, {}
  for _, l in ipairs(lines_of(text)) do
    local c = l:match("^%-%-%-@class ([%w_.]+)")
    if c then class = c; d.classes[c] = true; d.methods[c] = d.methods[c] or {} end
    local field = l:match("^%-%-%-@field ([%w_]+)")
    if field and class == "graphcall.core" then d.fields[field] = true end
    local var = l:match("^local ([%w_]+) = {}")
    if var and class then var_class[var] = class end
    local fn = l:match("^function core%.([%w_]+)%(")
    if fn then d.functions[fn] = true end
    local v, m = l:match("^function ([%w_]+):([%w_]+)%(")
    if v and var_class[v] then d.methods[var_class[v]][m] = true end
  end
  return d
end

-- The differences between what graphcall.core has and a meta file declares.
local function meta_problems(rt, text)
  local d, out = declared(text), {}
  if not text:find("^%-%-%-@meta") then out[#out + 1] = "not a ---@meta file" end
  for _, f in ipairs(rt.functions) do
    if not d.functions[f] then out[#out + 1] = "core." .. f .. " is not declared" end
  end
  for _, f in ipairs(rt.fields) do
    if not d.fields[f] then out[#out + 1] = "core." .. f .. " (a field) is not declared" end
  end
  for name, methods in pairs(rt.types) do
    if not d.classes[name] then
      out[#out + 1] = "no ---@class " .. name
    else
      local has = {}
      for _, m in ipairs(methods) do
        has[m] = true
        if not d.methods[name][m] then out[#out + 1] = name .. ":" .. m .. " is not declared" end
      end
      for m in pairs(d.methods[name]) do
        if not has[m] then out[#out + 1] = name .. ":" .. m .. " is declared but does not exist" end
      end
    end
  end
  table.sort(out)
  return out
end

describe("annotations", function()
  describe("the detector", function()
    local scratch = require "support.scratch"
    setup(scratch.open)
    teardown(scratch.close)

    it("reports a function without a doc comment, a @param or a @return", function()
      local source = table.concat({
        "local M = {}",
        "--- Documented.",
        "---@param a string",
        "---@param ... any",
        "---@return integer",
        "function M.good(a, ...) return #a + select('#', ...) end",
        "-- not a doc comment",
        "function M.plain(a) return a end",
        "--- No @param for b.",
        "---@param a string",
        "function M.half(a, b) print(a, b) end",
        "--- Returns without saying so.",
        "function M.silent() return 1 end",
        "--- Returns nothing: no @return needed.",
        "---@param t table",
        "function M.quiet(t) t.x = 1 end",
        "local Class = {}",
        "function Class:method(x) return x end",
        "function Class:__tostring() return 'metamethods are left out' end",
        "local function helper() return 1 end",
        "return M, Class, helper",
      }, "\n")
      local path = scratch.write("sample.lua", source)
      assert.same({
        path .. ":8: M.plain: no --- doc comment",
        path .. ":11: M.half: no ---@param b",
        path .. ":13: M.silent: returns values but has no ---@return",
        path .. ":18: Class.method: no --- doc comment",
      }, problems(source, path))
    end)

    it("reports what the meta file lacks or invents", function()
      local rt = { functions = { "uuid", "server" }, fields = { "null" },
        types = { ["graphcall.server"] = { "port", "close" }, ["graphcall.error"] = {} } }
      local meta = table.concat({
        "---@meta graphcall.core",
        "---@class graphcall.core",
        "local core = {}",
        "function core.uuid() end",
        "---@class graphcall.server",
        "local server = {}",
        "function server:port() end",
        "function server:bind() end",
      }, "\n")
      assert.same({
        "core.null (a field) is not declared",
        "core.server is not declared",
        "graphcall.server:bind is declared but does not exist",
        "graphcall.server:close is not declared",
        "no ---@class graphcall.error",
      }, meta_problems(rt, meta))
    end)
  end)

  it("every public function of the Lua layer is annotated", function()
    local p = assert(io.popen("find lua/graphcall -name '*.lua' | sort"))
    local all, files = {}, 0
    for path in p:lines() do
      files = files + 1
      for _, problem in ipairs(file_problems(path)) do all[#all + 1] = problem end
    end
    p:close()
    assert.is_true(files >= 20, "found only " .. files .. " files")
    assert.same({}, all)
  end)

  it("the meta file declares every function of graphcall.core and every method of its userdata", function()
    local rt = runtime_core()
    assert.is_true(#rt.functions >= 15, "graphcall.core has too few functions: did it load?")
    assert.truthy(rt.types["graphcall.server"], "no graphcall.server metatable")
    assert.truthy(rt.types["graphcall.http"], "no graphcall.http metatable")
    assert.same({}, meta_problems(rt, read(META)))
  end)

  it("the meta file is never loaded: outside lua/, not installed by the rockspecs, valid Lua", function()
    assert.truthy(loadfile(META), "the meta file does not compile")
    for _, rockspec in ipairs { "rockspec/graphcall-scm-1.rockspec", "rockspec/graphcall-0.1.0-1.rockspec" } do
      assert.is_nil(read(rockspec):find("types/", 1, true), rockspec)
    end
    assert.matches('"types"', read(".luarc.json"), 1, true)
  end)
end)
