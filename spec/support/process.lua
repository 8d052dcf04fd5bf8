-- What the specs that run real processes (redis-server, nginx, chromium,
-- the emulator, bots) share: quoting for the shell, a free loopback port,
-- and whether a child is still running.
local socket = require "socket"

local M = {}

--- `s` quoted for sh.
function M.q(s)
  return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end

--- A loopback TCP port nobody listens on right now.
function M.free_port()
  local s = assert(socket.bind("127.0.0.1", 0))
  local _, port = s:getsockname()
  s:close()
  return tonumber(port)
end

--- Running, not yet exited: a child that exited stays a zombie until
-- pclose reaps it, and kill -0 would still call it alive.
function M.alive(pid)
  local f = io.open(("/proc/%d/stat"):format(pid))
  if not f then return false end
  local stat = f:read("a")
  f:close()
  local state = stat:match("%) (%a)")
  return state ~= nil and state ~= "Z" and state ~= "X"
end

return M
