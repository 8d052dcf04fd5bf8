--- Drive a graphcall loop from luv (libuv): a poll handle on `loop:fd()`,
-- a timer for `loop:timeout()`, re-armed before libuv waits (a prepare
-- handle). Blocking graphcall calls made from luv callbacks would stop the
-- host loop: use their callback form, or run them in `loop:spawn(fn)`.
--
--    local uv = require "luv"
--    local adapter = require("graphcall.adapters.luv").attach(loop)
--    loop:spawn(function() local call = client:call(spec) ... end)
--    uv.run()
-- @module graphcall.adapters.luv
local uv = require "luv"
local graphcall_loop = require "graphcall.loop"

local M = {}

---@class graphcall.LuvAdapter
local Adapter = {}
Adapter.__index = Adapter

--- Attach `loop` (default: graphcall's default loop) to luv's default loop.
-- Raises when libuv refuses the loop's descriptor: EEXIST means a poll
-- handle of luv's loop still watches that descriptor number (an adapter
-- that was not closed before its graphcall loop was, whose descriptor
-- number the kernel has handed out again).
---@param loop? graphcall.Loop
---@return graphcall.LuvAdapter
function M.attach(loop)
  loop = loop or graphcall_loop.default()
  local fd = loop:fd()
  local poll, err = uv.new_poll(fd)
  if not poll then
    error(("graphcall.adapters.luv: libuv cannot poll the loop's descriptor %d: %s"):format(fd, tostring(err)), 2)
  end
  local self = setmetatable({ loop = loop, poll = poll, timer = uv.new_timer(),
    prepare = uv.new_prepare() }, Adapter)
  local function step() loop:step(0) end
  self.poll:start("r", step)
  -- before libuv sleeps: wake no later than graphcall's next timer
  self.prepare:start(function()
    local t = loop:timeout()
    self.timer:stop()
    if t then self.timer:start(math.ceil(t * 1000), 0, step) end
  end)
  return self
end

--- Detach from luv (idempotent); the graphcall loop stays open. Close the
-- adapter before the graphcall loop: its poll handle watches the loop's
-- descriptor. libuv closes handles in its next run: run it once more
-- (`uv.run("nowait")`) before Lua exits, or luv crashes closing them from a
-- state that is going away.
function Adapter:close()
  if self.closed then return end
  self.closed = true
  for _, h in ipairs { self.poll, self.timer, self.prepare } do
    if not h:is_closing() then h:close() end
  end
end

return M
