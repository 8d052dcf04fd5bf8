--- graphcall.options: the one reader of option tables in the Lua layer
-- (the C core's is src/common/options.c).
--
-- Every function that takes options (`graphcall.new`, `new_loop`,
-- `client:receiver`, the call actions, ...) checks them here, so that they
-- all raise alike, naming the function and the key:
--
--     graphcall.loop.new: unknown option 'tmeout'
--     graphcall.receiver: expected an options table, got string
--
-- `level` is the error level as `error` counts it from the function that
-- calls `check` or `read` (default 2: its caller, the code that passed the
-- options).
-- @module graphcall.options
local M = {}

--- Check `opts` (nil: no options) against `known`, a table whose keys are
-- the option names: raises for a non-table or an unknown key. Returns
-- `opts` itself (a new empty table for nil).
---@param name string the function, for the message ("graphcall.new")
---@param opts table|nil
---@param known table option name -> anything but nil
---@param level? integer
---@return table
function M.check(name, opts, known, level)
  level = (level or 2) + 1
  if opts == nil then return {} end
  if type(opts) ~= "table" then
    error(("%s: expected an options table, got %s"):format(name, type(opts)), level)
  end
  for k in pairs(opts) do
    if known[k] == nil then error(("%s: unknown option '%s'"):format(name, tostring(k)), level) end
  end
  return opts
end

--- `check`, then a new table: the options given, and the default of every
-- other one (`defaults`: option name -> its default, false for none).
---@param name string
---@param opts table|nil
---@param defaults table option name -> default (false: none)
---@param level? integer
---@return table
function M.read(name, opts, defaults, level)
  M.check(name, opts, defaults, (level or 2) + 1)
  local out = {}
  if opts then
    for k, v in pairs(opts) do out[k] = v end
  end
  for k, v in pairs(defaults) do
    if out[k] == nil and v ~= false then out[k] = v end
  end
  return out
end

return M
