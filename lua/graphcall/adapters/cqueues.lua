--- Drive a graphcall loop from cqueues: graphcall's loop is a pollable
-- (`pollfd`, `events`, `timeout`), stepped by one coroutine of the
-- controller. Blocking graphcall calls made from other cqueues coroutines
-- would stop the controller: use their callback form, or run them in
-- `loop:spawn(fn)`.
--
--    local cq = require("cqueues").new()
--    local adapter = require("graphcall.adapters.cqueues").attach(cq, loop)
--    loop:spawn(function() local call = client:call(spec) ... end)
--    assert(cq:loop())
-- @module graphcall.adapters.cqueues
local cqueues = require "cqueues"
local condition = require "cqueues.condition"
local graphcall_loop = require "graphcall.loop"

local M = {}

---@class graphcall.CqueuesAdapter
local Adapter = {}
Adapter.__index = Adapter

--- cqueues' polling protocol: the descriptor to wait on (the loop's).
---@return integer
function Adapter:pollfd() return self.loop:fd() end
--- cqueues' polling protocol: wait for it to be readable.
---@return string
function Adapter.events() return "r" end
--- cqueues' polling protocol: seconds until the loop has a timer due.
---@return number|nil
function Adapter:timeout() return self.loop:timeout() end

--- Attach `loop` (default: graphcall's default loop) to the controller `cq`.
---@param cq table a cqueues controller
---@param loop? graphcall.Loop
---@return graphcall.CqueuesAdapter
function M.attach(cq, loop)
  loop = loop or graphcall_loop.default()
  local self = setmetatable({ loop = loop, changed = condition.new() }, Adapter)
  -- a timer made from another coroutine shortens the wait
  loop:set_wakeup(function() self.changed:signal() end)
  cq:wrap(function()
    while not self.closed do
      cqueues.poll(self, self.changed)
      if not self.closed then loop:step(0) end
    end
  end)
  return self
end

--- Stop driving the loop (idempotent); the graphcall loop stays open.
function Adapter:close()
  if self.closed then return end
  self.closed = true
  self.loop:set_wakeup(nil)
  self.changed:signal()
end

return M
