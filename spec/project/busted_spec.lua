-- Plain `busted` (Debian's launcher starts under Lua 5.1) runs specs under
-- Lua 5.4: from this checkout, and from a bot's own project set up as
-- doc/testing.md says, with its .busted and its spec/bot_spec.lua as
-- written there.
local function sh(cmd)
  local p = assert(io.popen(cmd .. " 2>&1"))
  local out = p:read("a")
  local ok = p:close()
  return ok, out
end

-- The ```lua block of doc/testing.md whose first line is `first`.
local function guide_block(first)
  local text = assert(io.open("doc/testing.md")):read("a")
  for code in text:gmatch("```lua\n(.-)```") do
    if code:sub(1, #first) == first then return code end
  end
  error("no block starting with " .. first .. " in doc/testing.md")
end

local function write(path, text)
  local f = assert(io.open(path, "w"))
  f:write(text)
  f:close()
end

describe("plain busted", function()
  it("runs a spec file of this checkout under Lua 5.4", function()
    local ok, out = sh("busted spec/unit/joinlink_spec.lua")
    assert.is_true(ok, out)
    local passed, failed = out:match("(%d+) passed, (%d+) failed")
    assert.is_truthy(passed, out)
    assert.is_true(tonumber(passed) > 0)
    assert.equal("0", failed)
  end)

  it("runs a bot project's specs as doc/testing.md sets them up", function()
    local root = os.tmpname()
    os.remove(root)
    local checkout = assert(io.popen("pwd")):read("l")
    finally(function() sh(("rm -rf %q"):format(root)) end)
    -- the project next to a checkout, as the guide's .busted expects: link this one
    assert(sh(("mkdir -p %q/bot/spec && ln -s %q %q/graphcall"):format(root, checkout, root)))
    write(root .. "/bot/.busted", guide_block("-- .busted"))
    write(root .. "/bot/spec/bot_spec.lua", guide_block("-- spec/bot_spec.lua"))
    write(root .. "/bot/spec/version_spec.lua",
      'it("runs under 5.4", function() assert.equal("Lua 5.4", _VERSION) end)\n')
    local ok, out = sh(("cd %q/bot && busted"):format(root))
    assert.is_true(ok, out)
    assert.matches("3 successes / 0 failures / 0 errors / 0 pending", out)
  end)
end)
