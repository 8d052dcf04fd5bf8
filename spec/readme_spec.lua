-- The README's runnable examples run as written, so the documentation
-- cannot drift from the code.
local function readme_block(after)
  local text = assert(io.open("README.md")):read("a")
  local start = assert(text:find(after, 1, true), after)
  local code = text:match("```lua\n(.-)```", start)
  return (assert(code, "no lua block after " .. after))
end

local function run(code, env_extra)
  local printed = {}
  local env = setmetatable({ print = function(...) printed[#printed + 1] = table.concat({ ... }, "\t") end },
    { __index = _G })
  for k, v in pairs(env_extra or {}) do env[k] = v end
  local chunk = assert(load(code, "=README", "t", env))
  chunk()
  return printed
end

describe("README", function()
  it("the quick start builds the seed's first request", function()
    local printed = run(readme_block("## Quick start"))
    assert.same({ "POST", "https://graph.microsoft.com/beta/app/calls" }, { printed[1], printed[2] })
    local body = require("cjson").decode(printed[3])
    assert.equal("Test Call", body.subject)
    assert.equal("Heidi Steen", body.targets[1].identity.user.displayName)
  end)

  it("the sending example places a call on the emulator and hears it established", function()
    local printed = run(readme_block("To send it, give the client"), { graphcall = require "graphcall" })
    assert.equal(2, #printed)
    assert.matches("\testablishing$", printed[1])
    assert.matches("\testablished$", printed[2])
  end)

  it("the bot-testing example passes as a spec", function()
    local body = readme_block("## Testing your bot")
    local ran = false
    run(body, { it = function(_, fn) fn(); ran = true end, assert = assert })
    assert.is_true(ran)
  end)
end)
