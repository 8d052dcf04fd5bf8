--- Event handlers, as calls and clients have them: `on(event, fn)` adds a
-- handler, `emit` runs each under the loop's protection (an error goes to
-- the loop's error hook and the other handlers still run).
-- @module graphcall.events
local M = {}

--- Add `fn` to `handlers[event]`; `who` names the method in errors.
---@param handlers table<string, function[]> the handlers by event
---@param event string the event's name
---@param fn function
---@param who string the method, for the error
function M.on(handlers, event, fn, who)
  if type(event) ~= "string" or type(fn) ~= "function" then
    error(("graphcall: %s(event, fn) expects a string and a function"):format(who), 3)
  end
  local list = handlers[event] or {}
  list[#list + 1] = fn
  handlers[event] = list
end

--- Run the handlers of `event` with the arguments.
---@param loop graphcall.Loop
---@param handlers table<string, function[]> the handlers by event
---@param event string the event's name
---@param ... any the handlers' arguments
function M.emit(loop, handlers, event, ...)
  local list = handlers[event]
  if not list then return end -- most events have no handler: no table made
  for _, fn in ipairs(list) do loop:protect(fn, ...) end
end

return M
