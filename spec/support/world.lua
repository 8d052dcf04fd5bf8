-- The world most specs run in: a loop, the Graph emulator on it, a client
-- of the emulator and the client's receiver. A spec gives the options it
-- needs on top of the defaults and adds its own helpers to the world.
--
--   local w = world.new {
--     clock = 1000,                 -- a clock the spec moves (w.advance); default the real one
--     loop = { timeout = 5 },       -- graphcall.new_loop options
--     emulator = { notify_delay = 0 },
--     client = { max_retries = 1 }, -- graphcall.new options, or a function(emu) returning them
--     receiver = { handler = fn },
--   }
-- A value the defaults have is kept when the spec's is nil, and removed
-- when it is world.NONE.
--   w.loop, w.emu, w.client, w.rx
--   w.call(spec?)      -- a call placed to the receiver, established
--   w.advance(s)       -- move the clock s seconds and run what became due
--   w.settle()         -- until the emulator has had answers to its notifications
--   w.post(auth, body) -- POST a notification body to the receiver: the result
--   w.close()
local graphcall = require "graphcall"
local emulator = require "graphcall.emulator"
local cjson = require "cjson"
local assert = require "luassert"

local M = {}

M.APP_ID = "8A34A46B-3D17-4ADC-8DCE-DC4E7D572698"
M.TOKEN = "tok"
M.TARGET = { graphcall.user { id = "550fae72-d251-43ec-868c-373732c2704f" } }

M.NONE = setmetatable({}, { __name = "world.NONE" })

local function merge(defaults, over)
  local out = {}
  for k, v in pairs(defaults) do out[k] = v end
  for k, v in pairs(over or {}) do
    if v == M.NONE then out[k] = nil else out[k] = v end
  end
  return out
end

function M.new(opts)
  opts = opts or {}
  local w = {}
  local loop_opts = merge({ timeout = 5 }, opts.loop)
  if opts.clock then
    w.now = opts.clock
    loop_opts.clock = function() return w.now end
  end
  w.loop = graphcall.new_loop(loop_opts)
  w.emu = assert(emulator.start(merge({ loop = w.loop, token = M.TOKEN, notify_delay = 0 }, opts.emulator)))
  local client_opts = opts.client
  if type(client_opts) == "function" then client_opts = client_opts(w.emu) end
  w.client = graphcall.new(merge({ app_id = M.APP_ID, token = M.TOKEN, graph_url = w.emu.url, loop = w.loop },
    client_opts))
  w.rx = assert(w.client:receiver(merge({ openid_url = w.emu.openid_url }, opts.receiver)))

  function w.call(spec)
    spec = spec or { targets = M.TARGET }
    spec.callback_uri = spec.callback_uri or w.rx:url()
    local call = assert(w.client:call(spec))
    assert.is_true(call:wait("established", 5))
    return call
  end

  -- move the clock, then let the loop run what became due
  function w.advance(s)
    w.now = w.now + s
    for _ = 1, 20 do w.loop:step(0) end
  end

  function w.settle()
    return w.loop:wait(function() return w.emu:idle() end, 5)
  end

  -- POST `body` (default: one call notification) to the receiver with the
  -- given Authorization header
  function w.post(auth, body)
    local result
    w.loop:request({ method = "POST", url = w.rx:url(), body = body or cjson.encode { value = { {
      changeType = "updated", resourceUrl = "/communications/calls/c1", resourceData = { state = "established" },
    } } }, headers = { ["Content-Type"] = "application/json", Authorization = auth } },
      function(r) result = r end)
    assert.is_true(w.loop:wait(function() return result ~= nil end, 5))
    return result
  end

  function w.close()
    w.rx:close()
    w.emu:close()
    w.loop:close()
  end
  return w
end

return M
