-- Headless Chromium (Debian's `chromium` and `chromium-driver`) for the
-- dashboard spec and `make screenshot`. Chromium runs as a child while the
-- caller keeps stepping its graphcall loop, so an emulator on that loop
-- answers the page; every wait is bounded and everything started here is
-- killed by its process group at the end.
--
--   browser.available()                 -- chromium and chromedriver are installed
--   browser.FLAGS                       -- the flags of every run (no network, no sandbox)
--   local p = browser.spawn(cmd, log)   -- `cmd` in its own process group, output to `log`
--   p:exited()                          -- true once `cmd` returned (p.status: its exit code)
--   p:stop()                            -- TERM, then KILL, the whole group; waits for it
--   local wd = browser.driver(loop, dir) -- chromedriver + a session (W3C WebDriver over HTTP)
--   wd:go(url); wd:find(css); wd:text(el); wd:attr(el, name); wd:click(el); wd:quit()
--   wd:read_all(css[, attribute])     -- the texts (or attribute values) of the matches, at once
local socket = require "socket"
local cjson = require("cjson.safe").new()
local process = require "support.process"

local M = {}

M.CHROMIUM = "/usr/bin/chromium"
M.CHROMEDRIVER = "/usr/bin/chromedriver"

-- No first-run UI, no background traffic to anywhere (updates, sync, QUIC
-- probes): the page and the emulator on loopback are all it talks to.
M.FLAGS = { "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
  "--disable-background-networking", "--disable-component-update", "--disable-sync",
  "--disable-default-apps", "--disable-extensions", "--disable-dev-shm-usage", "--mute-audio" }

local q, free_port = process.q, process.free_port
M.q = q

local function executable(path)
  return os.execute("test -x " .. q(path)) == true
end

function M.available()
  return executable(M.CHROMIUM) and executable(M.CHROMEDRIVER)
end

local function read(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local s = f:read("a")
  f:close()
  return s
end
M.read = read

local Process = {}
Process.__index = Process

-- `cmd` (a shell command) in a new session, so that it and whatever it
-- starts (chromedriver's chromium and chromium's helpers) share one process
-- group: the popen'd shell execs setsid, which execs a shell running `cmd`,
-- all in one pid, the group's id. The pipe only carries that pid; the
-- output goes to `log`; the exit code to `log .. ".status"` (so `cmd` must
-- not exec).
function M.spawn(cmd, log)
  local status = log .. ".status"
  os.remove(status)
  local inner = cmd .. "; echo $? >" .. q(status)
  -- without the sanitizer runtime `make asan` preloads into this process:
  -- chromium and chromedriver hang under it
  local proc = assert(io.popen(("echo $$; exec env -u LD_PRELOAD setsid sh -c %s >%s 2>&1 </dev/null")
    :format(q(inner), q(log)), "r"))
  local pid = assert(tonumber(proc:read("l")), "spawn: no pid")
  return setmetatable({ proc = proc, pid = pid, log = log, status_file = status }, Process)
end

function Process:exited()
  if self.status == nil then
    local s = read(self.status_file)
    if s and s:find("\n") then self.status = tonumber(s) end
  end
  return self.status ~= nil
end

local function group_alive(pid)
  return os.execute(("kill -0 -%d 2>/dev/null"):format(pid)) == true
end

-- Idempotent. TERM to the group, up to 2 s for it to go, then KILL.
function Process:stop()
  if not self.proc then return end
  os.execute(("kill -TERM -%d 2>/dev/null"):format(self.pid))
  local deadline = socket.gettime() + 2
  while group_alive(self.pid) and socket.gettime() < deadline do socket.sleep(0.02) end
  os.execute(("kill -KILL -%d 2>/dev/null"):format(self.pid))
  self.proc:close() -- reaps the group's leader
  self.proc = nil
end

-- WebDriver ---------------------------------------------------------------

local ELEMENT = "element-6066-11e4-a52e-4f735466cecf" -- the W3C key of an element reference

local Driver = {}
Driver.__index = Driver

-- One WebDriver command over graphcall's HTTP client; the loop steps (and
-- the emulator serves the page) while it waits. Returns the `value`, or
-- raises with WebDriver's error.
function Driver:cmd(method, path, body, timeout)
  local result
  self.loop:request({ method = method, url = self.url .. path,
    headers = { ["Content-Type"] = "application/json; charset=utf-8" },
    body = body and cjson.encode(body) or nil }, function(r) result = r end)
  timeout = timeout or 10
  if not self.loop:wait(function() return result ~= nil end, timeout) then
    error(("webdriver: %s %s: no answer within %g s"):format(method, path, timeout), 2)
  end
  local doc = result.body and cjson.decode(result.body)
  if result.status ~= 200 or type(doc) ~= "table" then
    local v = type(doc) == "table" and type(doc.value) == "table" and doc.value or {}
    error(("webdriver: %s %s: %s %s: %s"):format(method, path, tostring(result.status or result.failure),
      tostring(v.error), tostring(v.message or result.body)), 2)
  end
  return doc.value
end

function Driver:session_cmd(method, path, body, timeout)
  return self:cmd(method, "/session/" .. self.session .. path, body, timeout)
end

function Driver:go(url)
  return self:session_cmd("POST", "/url", { url = url }, 20)
end

-- Every element matching `css` (a list of references; empty when none).
function Driver:find(css)
  local found = self:session_cmd("POST", "/elements", { using = "css selector", value = css })
  local out = {}
  for i, e in ipairs(found) do out[i] = e[ELEMENT] end
  return out
end

function Driver:text(el) return self:session_cmd("GET", "/element/" .. el .. "/text") end
function Driver:attr(el, name) return self:session_cmd("GET", "/element/" .. el .. "/attribute/" .. name) end
function Driver:click(el) return self:session_cmd("POST", "/element/" .. el .. "/click", {}) end
function Driver:script(js, ...)
  return self:session_cmd("POST", "/execute/sync", { script = js, args = { ... } })
end

-- What the page shows for every element matching `css`, read in one
-- script (the dashboard redraws its tables every 500 ms, which makes element
-- references stale between two commands): each one's rendered text, or with
-- `attribute`, that attribute's value.
function Driver:read_all(css, attribute)
  return self:script([[
    return Array.from(document.querySelectorAll(arguments[0]),
      (e) => arguments[1] ? e.getAttribute(arguments[1]) : e.innerText);]], css, attribute or false)
end

-- Step the loop until `fn()` returns a true value (returned), polling every
-- 50 ms; nil after `timeout` seconds.
function Driver:wait_for(fn, timeout)
  local deadline = socket.gettime() + (timeout or 5)
  repeat
    local v = fn()
    if v then return v end
    self.loop:wait(function() return false end, 0.05)
  until socket.gettime() > deadline
  return nil
end

-- Idempotent: ends the session (chromedriver closes chromium), then stops
-- chromedriver's process group.
function Driver:quit()
  if self.session then
    pcall(self.session_cmd, self, "DELETE", "", nil, 5)
    self.session = nil
  end
  if self.process then self.process:stop() end
end

-- chromedriver on a free loopback port, and a session of headless chromium
-- with a scratch profile in `dir`. `opts.window` is "W,H" (default 1280,900).
function M.driver(loop, dir, opts)
  opts = opts or {}
  local port = free_port()
  local self = setmetatable({ loop = loop, url = "http://127.0.0.1:" .. port }, Driver)
  self.process = M.spawn(("%s --port=%d --allowed-ips=127.0.0.1 --log-path=%s"):format(
    q(M.CHROMEDRIVER), port, q(dir .. "/chromedriver.log")), dir .. "/chromedriver.out")
  local ok, err = pcall(function()
    local ready = self:wait_for(function()
      local up, status = pcall(self.cmd, self, "GET", "/status", nil, 1)
      return up and type(status) == "table" and status.ready
    end, 10)
    assert(ready, "chromedriver did not become ready within 10 s")
    local args = { "--user-data-dir=" .. dir .. "/profile", "--window-size=" .. (opts.window or "1280,900") }
    for _, f in ipairs(M.FLAGS) do args[#args + 1] = f end
    local value = self:cmd("POST", "/session", { capabilities = { alwaysMatch = {
      browserName = "chrome", pageLoadStrategy = "normal",
      ["goog:chromeOptions"] = { binary = M.CHROMIUM, args = args },
    } } }, 30)
    self.session = assert(value.sessionId, "webdriver: no session id")
  end)
  if not ok then
    self:quit()
    error(err, 0)
  end
  return self
end

return M
