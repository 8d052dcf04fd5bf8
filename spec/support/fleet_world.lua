-- A fleet on loopback with every part a real process, for the fleet spec
-- and the fleet benchmark: redis-server (support.redis_server), the Graph
-- emulator (bin/graphcall-emulator), nginx as the load balancer
-- (examples/fleet/nginx.conf.in) and instances of examples/fleet/bot.lua.
--
--   local w = fleet_world.start { keep_alive = 1, keep_alive_timeout = 3 }
--   w:start_bot("bot-1", { CALLS = 4 })     -- an instance, placing 4 calls
--   w:stop_bot("bot-1", "KILL")             -- kill -9 (or "TERM": a graceful hand-off)
--   w:events()                              -- every line the bots wrote, parsed
--   w:records()                             -- the emulator's requests, notifications, calls
--   w:control("tone", { call_id =, tone = }) -- drive the emulator
--   w:redis { "HGET", ... }                 -- ask Redis
--   w:wait_for(fn, seconds)                 -- step until fn() is true
--   w:close()                               -- stop everything, remove the scratch directory
--
-- Each process is a direct child (io.popen of "exec ..."), so stopping one
-- waits for it: nothing outlives the world.
local socket = require "socket"
local cjson = require("cjson.safe").new()
local graphcall = require "graphcall"
local redis = require "graphcall.redis"
local redis_server = require "support.redis_server"
local process = require "support.process"

local M = {}

M.APP_ID = "8A34A46B-3D17-4ADC-8DCE-DC4E7D572698"
M.TOKEN = "fleet-token"
M.NAMES = { "bot-1", "bot-2", "bot-3" }

local q, free_port, alive = process.q, process.free_port, process.alive

local function accepts(port)
  local c = socket.tcp()
  c:settimeout(0.2)
  local ok = c:connect("127.0.0.1", port)
  c:close()
  return ok ~= nil
end

-- Start `cmd` as a child whose first line on stdout is its pid. The
-- children run without the sanitizer runtime `make asan` preloads into
-- this process (nginx and curl-like clients hang under it).
local function spawn(cmd)
  local proc = assert(io.popen("echo $$; exec env -u LD_PRELOAD " .. cmd, "r"))
  local pid = assert(tonumber(proc:read("l")), "no pid from: " .. cmd)
  return { proc = proc, pid = pid }
end

local World = {}
World.__index = World

--- Step the world's loop until `fn()` is true or `seconds` pass.
function World:wait_for(fn, seconds)
  local deadline = socket.gettime() + seconds
  while not fn() do
    if socket.gettime() >= deadline then return false end
    self.loop:step(0.02)
  end
  return true
end

-- Stop child `p` with `signal`, waiting at most `grace` seconds before
-- kill -9; returns the seconds it took to go.
local function halt(self, p, signal, grace)
  local started = socket.gettime()
  os.execute(("kill -%s %d 2>/dev/null"):format(signal, p.pid))
  if not self:wait_for(function() return not alive(p.pid) end, grace or 5) then
    os.execute(("kill -KILL %d 2>/dev/null"):format(p.pid))
  end
  p.proc:close()
  return socket.gettime() - started
end

--- Start instance `name` (one of M.NAMES) with extra environment `env`.
function World:start_bot(name, env)
  local vars = {
    INSTANCE = name, PORT = self.ports[name], GRAPH_URL = self.graph_url, REDIS_URL = self.redis_url,
    CALLBACK_URI = self.lb_url .. "/api/calls", GRAPHCALL_TOKEN = M.TOKEN, GRAPHCALL_APP_ID = M.APP_ID,
    KEEP_ALIVE = self.opts.keep_alive, HEARTBEAT = self.opts.heartbeat, LIVENESS_TTL = self.opts.liveness_ttl,
    EVENTS = self.dir .. "/events-" .. name .. ".log",
    LUA_PATH = "./lua/?.lua;./lua/?/init.lua;;", LUA_CPATH = "./build/?.so;;",
  }
  for k, v in pairs(env or {}) do vars[k] = v end
  local parts = {}
  for k, v in pairs(vars) do parts[#parts + 1] = k .. "=" .. q(v) end
  local bot = spawn(table.concat(parts, " ") .. " lua5.4 examples/fleet/bot.lua 2>>"
    .. q(self.dir .. "/bot-stderr.log"))
  self.bots[name] = bot
  local ready = self:wait_for(function()
    for _, e in ipairs(self:events()) do
      if e.instance == name and e.what == "ready" and e.seq > (self.ready_seen[name] or 0) then
        self.ready_seen[name] = e.seq
        return true
      end
    end
    return false
  end, 10)
  assert(ready, name .. " did not start: " .. (self:read("bot-stderr.log") or ""))
  return bot
end

--- Stop instance `name`: "KILL" (kill -9) or "TERM" (it hands its calls
-- over first). Returns the seconds it took to exit.
function World:stop_bot(name, signal)
  local bot = assert(self.bots[name], name .. " is not running")
  self.bots[name] = nil
  return halt(self, bot, signal, 10)
end

function World:read(name)
  local f = io.open(self.dir .. "/" .. name, "rb")
  if not f then return nil end
  local s = f:read("a")
  f:close()
  return s
end

--- Every event line the bots wrote: { instance, t, what, a, b, ..., seq }
-- in the order of each file (t: CLOCK_MONOTONIC seconds, as
-- core.monotonic; seq counts lines per instance).
function World:events()
  local out = {}
  for _, name in ipairs(M.NAMES) do
    local seq = 0
    for line in (self:read("events-" .. name .. ".log") or ""):gmatch("[^\n]+") do
      local f = {}
      for field in (line .. "\t"):gmatch("([^\t]*)\t") do f[#f + 1] = field end
      seq = seq + 1
      out[#out + 1] = { instance = f[1], t = tonumber(f[2]), what = f[3], seq = seq, table.unpack(f, 4) }
    end
  end
  return out
end

-- An HTTP request to the emulator on the world's loop: status, decoded body.
local function http(self, method, path, body)
  local result
  self.loop:request({ method = method, url = self.graph_url .. path, body = body and cjson.encode(body),
    headers = body and { ["Content-Type"] = "application/json" } or nil }, function(r) result = r end)
  assert(self.loop:wait(function() return result ~= nil end, 10), "the emulator did not answer " .. path)
  return result.status, cjson.decode(result.body or "")
end

--- The emulator's full record (graphcall.emulator.records).
function World:records()
  local status, doc = http(self, "GET", "/_emulator/records")
  assert(status == 200, "records: HTTP " .. tostring(status))
  return doc
end

--- POST one of the emulator's controls (tone, end, fault, redeliver, ring).
function World:control(name, body)
  return http(self, "POST", "/_emulator/" .. name, body)
end

--- A Redis command on the world's own connection: reply, err.
function World:redis(args)
  return self.conn:call(args)
end

--- Stop Redis (SIGKILL, its data gone: it keeps none) / start it again.
function World:redis_down() self.redis_srv:kill() end
function World:redis_up() self.redis_srv:start() end

--- Stop every process and remove the scratch directory.
function World:close()
  if os.getenv("GRAPHCALL_KEEP_SCRATCH") and self.emulator then
    local ok, r = pcall(self.records, self)
    local f = io.open(self.dir .. "/records.json", "w")
    if ok and f then f:write(cjson.encode(r)); f:close() end
  end
  for name in pairs(self.bots) do self:stop_bot(name, "KILL") end
  if self.conn then self.conn:close() end
  if self.nginx then halt(self, self.nginx, "TERM", 5) end
  if self.emulator then halt(self, self.emulator, "TERM", 5) end
  if self.redis_srv then self.redis_srv:kill() end
  self.loop:close()
  -- GRAPHCALL_KEEP_SCRATCH=1: leave the logs (events, emulator, nginx, Redis) for a post-mortem
  if os.getenv("GRAPHCALL_KEEP_SCRATCH") then
    io.stderr:write("fleet world kept in ", self.dir, "\n")
  else
    os.execute("rm -rf " .. q(self.dir))
  end
end

--- Options of `start`, with defaults.
M.DEFAULTS = {
  keep_alive = 1,            -- the bots' keepAlive interval (seconds)
  keep_alive_timeout = 3,    -- the emulator ends a call not kept alive that long (408)
  heartbeat = 0.25,          -- the fleet's heartbeat and liveness (seconds)
  liveness_ttl = 1,
  notify_delay = 0.002,
}

--- Start Redis, the emulator and nginx (no bots yet).
function M.start(opts)
  local o = {}
  for k, v in pairs(M.DEFAULTS) do o[k] = (opts or {})[k] or v end
  local dir = os.tmpname()
  os.remove(dir)
  assert(os.execute("mkdir -p " .. q(dir)))
  local self = setmetatable({ dir = dir, opts = o, bots = {}, ready_seen = {}, ports = {},
    loop = graphcall.new_loop() }, World)
  local ok, err = pcall(function()
    self.redis_srv = redis_server.start(dir)
    self.redis_url = "unix://" .. self.redis_srv.path
    self.conn = redis.new(self.loop, { url = self.redis_url })
    assert(self.conn:wait_up(5), "redis: no connection")

    self.emulator = spawn(("LUA_PATH='./lua/?.lua;./lua/?/init.lua;;' LUA_CPATH='./build/?.so;;' "
      .. "lua5.4 bin/graphcall-emulator --port 0 --token %s --app-id %s --keep-alive-timeout %s "
      .. "--notify-delay %s 2>>%s"):format(M.TOKEN, M.APP_ID, o.keep_alive_timeout, o.notify_delay,
      q(dir .. "/emulator.log")))
    local line = self.emulator.proc:read("l") or ""
    self.graph_url = assert(line:match("listening on (%S+)"), "the emulator did not start: " .. line)

    local conf = assert(io.open("examples/fleet/nginx.conf.in")):read("a")
    local lb_port = free_port()
    local values = { DIR = dir, PORT = lb_port }
    for i, name in ipairs(M.NAMES) do
      self.ports[name] = free_port()
      values["PORT" .. i] = self.ports[name]
    end
    conf = conf:gsub("@(%w+)@", function(k) return tostring(assert(values[k], k)) end)
    local f = assert(io.open(dir .. "/nginx.conf", "w"))
    f:write(conf)
    f:close()
    self.nginx = spawn(("nginx -p %s -c %s -e %s 2>&1"):format(q(dir), q(dir .. "/nginx.conf"),
      q(dir .. "/nginx-error.log")))
    self.lb_url = "http://127.0.0.1:" .. lb_port
    assert(self:wait_for(function() return accepts(lb_port) end, 5),
      "nginx did not start: " .. (self:read("nginx-error.log") or ""))
  end)
  if not ok then
    self:close()
    error(err, 2)
  end
  return self
end

return M
