-- The emulator's dashboard (/_emulator/) in a real browser: Debian's headless
-- chromium, driven over W3C WebDriver by chromedriver, both children of this
-- process, while this process steps the loop that runs the emulator and a
-- bot (client and receiver). The page must render the bot's call, its
-- states over time and the notifications, and a click on "Ring the bot"
-- must reach the bot as an incoming call.
local graphcall = require "graphcall"
local emulator = require "graphcall.emulator"
local browser = require "support.browser"
local scratch = require "support.scratch"

local APP_ID = "8A34A46B-3D17-4ADC-8DCE-DC4E7D572698"
local HEIDI = { id = "550fae72-d251-43ec-868c-373732c2704f", name = "Heidi Steen" }

describe("the dashboard in headless chromium", function()
  local loop, emu, client, rx, wd, dir
  local incoming = {}

  setup(function()
    assert(browser.available(), "chromium and chromium-driver are needed (make deps installs them)")
    dir = scratch.open()
    loop = graphcall.new_loop { timeout = 5 }
    emu = assert(emulator.start { loop = loop, token = "tok", app_id = APP_ID })
    client = graphcall.new { app_id = APP_ID, token = "tok", graph_url = emu.url, loop = loop }
    rx = assert(client:receiver { openid_url = emu.openid_url })
    client:on("incoming", function(call) incoming[#incoming + 1] = call end)
    wd = browser.driver(loop, dir)
  end)

  teardown(function()
    if wd then wd:quit() end
    if rx then rx:close() end
    if emu then emu:close() end
    if loop then loop:close() end
    scratch.close()
  end)

  -- the values of attribute `name` of the elements matching `css`; their texts
  local function attrs(css, name) return wd:read_all(css, name) end
  local function texts(css) return wd:read_all(css) end

  it("renders the call, its states over time and its notifications", function()
    local call = assert(client:call { callback_uri = rx:url(), subject = "dashboard spec",
      targets = { graphcall.user(HEIDI) } })
    assert.is_true(call:wait("established", 5))

    wd:go(emu.url .. "/_emulator/")
    local row = ('tr.call[data-call="%s"]'):format(call.id)
    assert.truthy(wd:wait_for(function() return texts(row)[1] end, 5), "the call's row did not appear")
    assert.same({ "established" }, attrs(row, "data-state"))
    assert.same({ "outgoing" }, texts(row .. " td:nth-child(2)"))
    -- its states over time, in the table and on the SVG timeline
    assert.matches("^establishing @ [%d.]+ s → established @ [%d.]+ s$", texts(row .. " td.states")[1])
    assert.same({ "establishing", "established" },
      attrs(('#timeline g.segment[data-call="%s"]'):format(call.id), "data-state"))
    -- the notifications the bot was sent, newest first, each answered 202
    local notes = ('#notifications tr.notification[data-call="%s"]'):format(call.id)
    assert.same({ "established", "establishing" }, attrs(notes, "data-state"))
    for _, answer in ipairs(texts(notes .. " td:last-child")) do assert.equal("202", answer) end
    -- the bot's request, with the emulator's answer
    -- the requests, newest first: the bot placed the call, then its receiver fetched the signing
    -- keys to verify the first notification
    assert.same({ "GET /v1/keys", "GET /v1/.well-known/OpenIdConfiguration", "POST /v1.0/communications/calls" },
      texts("#requests tr.request td:nth-child(3) > code"))
    local statuses = texts("#requests tr.request td:nth-child(4)") -- the status, then the answer's size
    for i, t in ipairs(statuses) do statuses[i] = t:match("^(%d+)\n%d+ bytes$") end
    assert.same({ "200", "200", "201" }, statuses)

    -- the page follows the call as it ends (it polls the state)
    assert.truthy(call:hangup())
    assert.is_true(call:wait("terminated", 5))
    assert.truthy(wd:wait_for(function() return attrs(row, "data-state")[1] == "terminated" end, 5),
      "the page did not show the call terminated")
    assert.same({ "establishing", "established", "terminating", "terminated" },
      attrs(('#timeline g.segment[data-call="%s"]'):format(call.id), "data-state"))
  end)

  it("rings the bot when 'Ring the bot' is clicked", function()
    -- the page offers the bot's receiver as the callback URI (from the bot's last call)
    local callback = wd:find("#callback")[1]
    assert.equal(rx:url(), wd:session_cmd("GET", "/element/" .. callback .. "/property/value"))
    assert.same({}, incoming)
    assert.same({}, texts('tr.call[data-state="incoming"]'))

    wd:click(assert(wd:find("#ring")[1], "no ring button"))
    assert.truthy(wd:wait_for(function() return incoming[1] end, 5), "the bot heard no incoming call")
    assert.equal(1, #incoming)
    local call = incoming[1]
    assert.equal("incoming", call.state)
    assert.equal("incoming", emu.calls[call.id].direction)
    assert.equal(rx:url(), emu.calls[call.id].callback_uri)

    -- the page reports the ring and shows the incoming call
    local row = ('tr.call[data-call="%s"]'):format(call.id)
    assert.truthy(wd:wait_for(function() return texts(row)[1] end, 5), "the incoming call did not appear")
    assert.same({ "incoming" }, texts(row .. " td:nth-child(2)"))
    assert.equal(('ring: {"id":"%s"}'):format(call.id), wd:text(wd:find("#message")[1]))

    -- the bot answers: the page follows
    assert.truthy(call:answer { modalities = { "audio" } })
    assert.is_true(call:wait("established", 5))
    assert.truthy(wd:wait_for(function() return attrs(row, "data-state")[1] == "established" end, 5),
      "the page did not show the answered call established")
    assert.truthy(call:hangup())
    assert.is_true(call:wait("terminated", 5))
  end)
end)
