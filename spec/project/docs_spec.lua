-- Every code block of the README and of doc/*.md runs here, so the
-- documentation cannot drift from the code.
--
-- A fence names its language. ```lua blocks run, in the order of the page,
-- all of one page in one environment: a block's top-level locals are seen
-- by the page's later blocks, as a reader reads them. ```sh blocks
-- (commands) and ```text blocks (listings) are not run. A fence without a
-- language fails the spec, so nothing is left out by accident.
--
-- `print(...) --> text` says what the line prints (a long one may put the
-- `--> text` on the next line): the block must print a line like it, in
-- that order (white space collapsed; `...` stands for anything).
-- `--> e.g. text` is an illustration and is not checked.
--
-- In a page, `describe` and `it` run their function at once (a guide's
-- example spec runs inside this one) and `assert` is busted's.

local function read(path)
  local f = assert(io.open(path, "rb"))
  local text = f:read("a")
  f:close()
  return text
end

local function pages()
  local list = { "README.md" }
  local p = assert(io.popen("ls doc/*.md"))
  for path in p:lines() do list[#list + 1] = path end
  p:close()
  return list
end

-- The fenced blocks of a page: { lang =, code =, line = } (line: the fence's).
local function blocks(text)
  local list, open = {}, nil
  local n = 0
  for line in (text .. "\n"):gmatch("(.-)\n") do
    n = n + 1
    if open then
      if line:match("^```%s*$") then
        list[#list + 1] = open
        open = nil
      else
        open.code = open.code .. line .. "\n"
      end
    else
      local lang = line:match("^```(.*)$")
      if lang then open = { lang = lang:match("^%s*(.-)%s*$"), code = "", line = n } end
    end
  end
  assert(open == nil, "a fence is not closed")
  return list
end

local function squash(s)
  return (s:gsub("%s+", " "):gsub("^ ", ""):gsub(" $", ""))
end

-- `print(...) --> text` lines of a block, as patterns of whole lines.
local function expectations(code)
  local list = {}
  for line in code:gmatch("[^\n]+") do
    local text = line:match("print%b().-%-%->%s*(.-)%s*$") or line:match("^%s*%-%->%s*(.-)%s*$")
    if text and not text:match("^e%.g%.") then
      local pattern = squash(text):gsub("[%^%$%(%)%%%.%[%]%*%+%-%?]", "%%%0"):gsub("%%%.%%%.%%%.", ".-")
      list[#list + 1] = { text = text, pattern = "^" .. pattern .. "$" }
    end
  end
  return list
end

-- Close what a page left open (emulators, receivers, loops), so the next
-- page and the next spec file start clean.
local function close_all(env)
  for _, v in pairs(env) do
    local mt = getmetatable(v)
    local name = type(mt) == "table" and rawget(mt, "__name")
    if type(name) == "string" and (name:match("emulator") or name:match("receiver") or name:match("loop")) then
      pcall(v.close, v)
    end
  end
end

local function run_page(path, text)
  local printed = {}
  local env = setmetatable({}, { __index = _G })
  env.print = function(...)
    local parts = table.pack(...)
    for i = 1, parts.n do parts[i] = tostring(parts[i]) end
    printed[#printed + 1] = table.concat(parts, "\t", 1, parts.n)
  end
  env.describe = function(_, fn) fn() end
  env.it = function(_, fn) fn() end
  env.assert = assert
  -- a block's top-level locals become the page's variables
  env.__export = function()
    local i = 1
    while true do
      local name, value = debug.getlocal(2, i)
      if not name then break end
      if name:sub(1, 1) ~= "(" then rawset(env, name, value) end
      i = i + 1
    end
  end
  local ran = 0
  local ok, err = pcall(function()
    for _, b in ipairs(blocks(text)) do
      assert(b.lang ~= "", ("%s:%d: a fence without a language (lua, sh or text)"):format(path, b.line))
      assert(b.lang == "lua" or b.lang == "sh" or b.lang == "text",
        ("%s:%d: unknown fence language '%s'"):format(path, b.line, b.lang))
      if b.lang == "lua" then
        local first = #printed + 1
        local name = ("@%s:%d"):format(path, b.line)
        -- a block that ends in `return` (a .busted file) exports nothing
        local chunk = load(b.code .. "\n;__export()", name, "t", env) or assert(load(b.code, name, "t", env))
        chunk()
        ran = ran + 1
        -- the lines this block printed, in order, against its `-->` comments
        local at = first
        for _, want in ipairs(expectations(b.code)) do
          while at <= #printed and not squash(printed[at]):match(want.pattern) do at = at + 1 end
          assert(at <= #printed, ("%s:%d: expected a line like %q; the block printed:\n%s"):format(
            path, b.line, want.text, table.concat(printed, "\n", first)))
          at = at + 1
        end
      end
    end
  end)
  close_all(env)
  assert(ok, err)
  return ran, printed, env
end

describe("documentation", function()
  local list = pages()

  it("covers the README and the guides", function()
    local names = {}
    for _, p in ipairs(list) do names[p] = true end
    for _, p in ipairs { "README.md", "doc/calls.md", "doc/notifications.md", "doc/control.md", "doc/tokens.md",
                         "doc/testing.md", "doc/security.md", "doc/performance.md", "doc/layout.md",
                         "doc/fleet.md" } do
      assert.is_true(names[p] ~= nil, p)
    end
  end)

  for _, path in ipairs(list) do
    it(path .. ": every lua block runs and prints what it says", function()
      local text = read(path)
      local want = 0
      for _, b in ipairs(blocks(text)) do if b.lang == "lua" then want = want + 1 end end
      local ran = run_page(path, text)
      assert.equal(want, ran)
    end)
  end

  it("README: the quick start builds the seed's first request, and the sending example hears it established", function()
    local ran, printed = run_page("README.md", read("README.md"))
    assert.is_true(ran >= 2)
    assert.same({ "POST", "https://graph.microsoft.com/beta/app/calls" }, { printed[1], printed[2] })
    local body = require("cjson").decode(printed[3])
    assert.equal("Test Call", body.subject)
    assert.equal("Heidi Steen", body.targets[1].identity.user.displayName)
    assert.equal("https://bot.contoso.com/api/calls", body.callbackUri)
    local states = {}
    for _, line in ipairs(printed) do states[#states + 1] = line:match("^[^\t]+\t(establish%a*)$") end
    assert.same({ "establishing", "established" }, states)
  end)

  it("README is under 10 KB and links every guide", function()
    local text = read("README.md")
    assert.is_true(#text < 10 * 1024, #text .. " bytes")
    for _, path in ipairs(list) do
      if path ~= "README.md" then assert.is_truthy(text:find("(" .. path .. ")", 1, true), path) end
    end
    assert.is_truthy(text:find("(doc/api.md)", 1, true))
  end)

  it("relative links between pages point at files that exist", function()
    for _, path in ipairs(list) do
      local dir = path:match("^(.*)/") or "."
      for target in read(path):gmatch("%]%(([^)#%s]+)[^)]*%)") do
        if not target:match("^%a+:") and target ~= "doc/api.md" and target ~= "api.md" then
          local f = io.open(dir .. "/" .. target)
          assert.is_truthy(f, path .. " links to a missing " .. target)
          if f then f:close() end
        end
      end
    end
  end)

  it("checks what it claims: a wrong --> comment or a raising block fails", function()
    assert.has_error(function() run_page("t.md", "```lua\nprint(1 + 1)  --> 3\n```\n") end)
    assert.has_error(function() run_page("t.md", "```lua\nerror('boom')\n```\n") end)
    assert.has_error(function() run_page("t.md", "```\nplain\n```\n") end)
    local ran, printed = run_page("t.md", "```lua\nlocal x = 2\n```\n```sh\nexit 1\n```\n"
      .. "```lua\nprint(x, 'a b')  --> 2  a ...\nprint('z')  --> e.g. y\n```\n")
    assert.equal(2, ran)
    assert.same({ "2\ta b", "z" }, printed)
  end)
end)
