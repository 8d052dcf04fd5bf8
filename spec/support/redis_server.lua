-- A real redis-server for specs, in a scratch directory: no persistence, a
-- unix socket (dir/redis.sock) and a free loopback TCP port.
--
--   local srv = redis_server.start(dir)   -- waits until it answers PING
--   redis_server.new(dir)                 -- the same, not started yet
--   srv.path, srv.port                    -- where it listens
--   srv:kill()                            -- SIGKILL, mid-flight
--   srv:stop()                            -- SIGTERM; both wait for the exit
--   srv:start()                           -- again, on the same socket and port
--   local start, stop = redis_server.fixture(function(srv) ... end)
--   setup(start); teardown(stop)          -- a describe's server, in a scratch directory
--
-- The server is a direct child (io.popen of "exec redis-server"), so
-- stopping it waits for it with pclose: nothing outlives the spec.
local socket = require "socket"
local unix = require "socket.unix"

local M = {}

local process = require "support.process"
local scratch = require "support.scratch"
local q, free_port = process.q, process.free_port

-- One PING over the unix socket; true when the server answered PONG.
local function pong(path)
  local c = unix()
  c:settimeout(0.2)
  local ok = c:connect(path)
  local line
  if ok and c:send("PING\r\n") then line = c:receive("*l") end
  c:close()
  return line == "+PONG"
end

local Server = {}
Server.__index = Server

function Server:start()
  assert(not self.proc, "redis-server already running")
  os.remove(self.path)
  local cmd = ("echo $$; exec redis-server --port %d --bind 127.0.0.1 --unixsocket %s --save '' "
    .. "--appendonly no --dir %s --logfile %s --daemonize no"):format(self.port, q(self.path), q(self.dir),
    q(self.dir .. "/redis.log"))
  self.proc = assert(io.popen(cmd, "r"))
  self.pid = assert(tonumber(self.proc:read("l")), "redis-server: no pid")
  local deadline = socket.gettime() + 5
  while not pong(self.path) do
    if socket.gettime() > deadline then
      self:kill()
      error("redis-server did not answer within 5 s")
    end
    socket.sleep(0.01)
  end
  return self
end

local function halt(self, signal)
  if not self.proc then return end
  os.execute(("kill -%s %d 2>/dev/null"):format(signal, self.pid))
  self.proc:close() -- waits for the exit
  self.proc, self.pid = nil, nil
end

function Server:kill() halt(self, "KILL") end
function Server:stop() halt(self, "TERM") end

-- new(dir) -> a server for dir, not started yet; start(dir) -> one running.
function M.new(dir)
  return setmetatable({ dir = dir, path = dir .. "/redis.sock", port = free_port() }, Server)
end

function M.start(dir)
  return M.new(dir):start()
end

-- For a describe's setup and teardown (busted gives those to spec files
-- only): `start` runs a server in a scratch directory and hands it to
-- `use`; `stop` stops it and removes the directory.
function M.fixture(use)
  local srv
  local function start()
    srv = M.start(scratch.open())
    use(srv)
  end
  local function stop()
    if srv then srv:stop() end
    scratch.close()
  end
  return start, stop
end

return M
