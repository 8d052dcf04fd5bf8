-- make bench: graphcall against its peers on this machine, as ratios
-- measured in the same run (bench/README.md says what is measured how). Run through bench/run,
-- which builds the C helpers, installs the Node peers and sets the Lua paths.
--
--   lua5.4 bench/bench.lua [--quick]
--
-- Prints one table and writes it, with the machine, the versions, the
-- commands and the verdict on every target, to bench/RESULTS.md.
local socket = require "socket"
local cjson = require "cjson"

local QUICK = arg[1] == "--quick"
local B = "bench"                    -- paths are relative to the repository root
local BUILD = B .. "/build"

-- Sizes of the runs (the whole suite stays well under 10 minutes).
local CFG = {
  reps = QUICK and 3 or 5,           -- runs of each command, alternated
  n1 = 1000, n2 = 5000,              -- sequential create-call: CPU differenced between two N
  strace_n1 = 200, strace_n2 = 1000, -- system calls: the same difference under strace -f -c
  conc_n = 2000,                     -- concurrent create-call: N, 32 in flight
  parse_seconds = QUICK and 0.3 or 0.5,
  wrk_seconds = QUICK and 2 or 3, wrk_connections = 16,
  mem_n = QUICK and 20000 or 100000,
}

local T0 = socket.gettime()
local LOAD_START = (io.open("/proc/loadavg"):read("l"):match("^(%S+ %S+ %S+)"))
local tmp = assert(io.popen("mktemp -d /tmp/graphcall-bench.XXXXXX")):read("l")
local cleanup = {}                   -- functions run at exit, last first

---------------------------------------------------------------------------
-- helpers

local function sh(cmd)
  local ok, how, code = os.execute(cmd)
  if not ok then error(("command failed (%s %s): %s"):format(how, tostring(code), cmd), 2) end
end

local function capture(cmd)
  local p = assert(io.popen(cmd, "r"))
  local out = p:read("a")
  local ok, how, code = p:close()
  if not ok then error(("command failed (%s %s): %s\n%s"):format(how, tostring(code), cmd, out), 2) end
  return out
end

local function q(s) return "'" .. tostring(s):gsub("'", "'\\''") .. "'" end

local function read(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local s = f:read("a")
  f:close()
  return s
end

-- the last line of this benchmark's part of RESULTS.md: what comes after it is kept
local END = "<!-- end of the output of bench/bench.lua -->"

local function write(path, text)
  local f = assert(io.open(path, "wb"))
  f:write(text)
  f:close()
end

local function log(fmt, ...)
  io.stderr:write(("[%6.1fs] "):format(socket.gettime() - T0), fmt:format(...), "\n")
end

local function median(xs)
  local s = {}
  for i, x in ipairs(xs) do s[i] = x end
  table.sort(s)
  local n = #s
  if n == 0 then return nil end
  if n % 2 == 1 then return s[(n + 1) // 2] end
  return (s[n // 2] + s[n // 2 + 1]) / 2
end

local function minmax(xs)
  local lo, hi = math.huge, -math.huge
  for _, x in ipairs(xs) do lo, hi = math.min(lo, x), math.max(hi, x) end
  return lo, hi
end

-- Start cmd in the background; returns its pid. It is killed at exit.
local function spawn(cmd, logfile)
  local pid = tonumber(capture(("%s > %s 2>&1 & echo $!"):format(cmd, q(logfile))))
  cleanup[#cleanup + 1] = function() os.execute(("kill %d 2>/dev/null"):format(pid)) end
  return pid
end

local function alive(pid)
  return os.execute(("kill -0 %d 2>/dev/null"):format(pid)) == true
end

local function stop(pid)
  os.execute(("kill %d 2>/dev/null"):format(pid))
  for _ = 1, 100 do
    if not alive(pid) then return end
    socket.sleep(0.05)
  end
  os.execute(("kill -9 %d 2>/dev/null"):format(pid))
end

local function wait_for_file(path, what, pid)
  for _ = 1, 200 do
    local s = read(path)
    if s and s ~= "" then return s end
    if pid and not alive(pid) then error(what .. " exited early") end
    socket.sleep(0.05)
  end
  error("timed out waiting for " .. what)
end

local function free_port()
  local s = assert(socket.bind("127.0.0.1", 0))
  local _, port = s:getsockname()
  s:close()
  return tonumber(port)
end

-- Run cmd under runstat: returns { user, sys, cpu, wall, rss, out = stdout }.
local function run_measured(cmd)
  local statfile = tmp .. "/stat"
  os.remove(statfile)
  local out = capture(("%s/runstat %s %s"):format(BUILD, q(statfile), cmd))
  local u, s, w, rss, code = read(statfile):match("(%S+) (%S+) (%S+) (%S+) (%S+)")
  if tonumber(code) ~= 0 then error("failed: " .. cmd .. "\n" .. out) end
  return { user = tonumber(u), sys = tonumber(s), cpu = tonumber(u) + tonumber(s), wall = tonumber(w),
           rss = tonumber(rss), out = out }
end

local function field(out, name)
  return tonumber(out:match(name .. " (%S+)"))
end

-- The peers of an experiment, run `reps` times in rotating order
-- (A B C, B C A, C A B, ...): fn(peer, rep) is called for each.
local function alternate(peers, reps, fn)
  for rep = 1, reps do
    for i = 0, #peers - 1 do
      local p = peers[(rep - 1 + i) % #peers + 1]
      fn(p, rep)
    end
  end
end

---------------------------------------------------------------------------
-- results

local rows = {}        -- { peer, figure, unit, values, better = "lower"|"higher", ref = row of graphcall }
local targets = {}     -- { text, measured, met }
local notes = {}
local commands = {}    -- the commands, by peer
local figure_ref = {}  -- figure -> graphcall row

local function add_row(figure, peer, values, unit, opts)
  local r = { figure = figure, peer = peer, values = values, unit = unit, digits = opts and opts.digits or 1,
              is_ref = opts and opts.ref, no_ratio = opts and opts.no_ratio }
  r.median = median(values)
  r.min, r.max = minmax(values)
  rows[#rows + 1] = r
  if r.is_ref then figure_ref[figure] = r end
  return r
end

local function target(text, measured, met)
  targets[#targets + 1] = { text = text, measured = measured, met = met }
end

---------------------------------------------------------------------------
-- the stand-in for Graph: nginx on loopback

local nginx_port, nginx_pid
local function start_nginx()
  local dir = tmp .. "/nginx"
  sh("mkdir -p " .. q(dir))
  nginx_port = free_port()
  local response = read(B .. "/fixtures/call_response.json"):gsub("%s+$", "")
  assert(not response:find("'", 1, true))
  response = response:gsub("%$", "${dollar}"):gsub("REQUEST_ID", "$request_id")
  local conf = read(B .. "/nginx.conf.in")
  conf = conf:gsub("@DIR@", dir):gsub("@PORT@", tostring(nginx_port))
  conf = conf:gsub("@RESPONSE@", function() return response end)
  write(dir .. "/nginx.conf", conf)
  nginx_pid = spawn(("nginx -p %s -c %s"):format(q(dir), q(dir .. "/nginx.conf")), dir .. "/stdout.log")
  for _ = 1, 100 do
    local c = socket.tcp()
    c:settimeout(0.2)
    if c:connect("127.0.0.1", nginx_port) then
      c:close()
      return
    end
    c:close()
    socket.sleep(0.05)
  end
  error("nginx did not start: " .. (read(dir .. "/error.log") or ""))
end

-- Pin nginx (master and worker) to `cpus` ("0", or "0,1" for both).
local function pin_nginx(cpus)
  sh(("taskset -a -p -c %s %d >/dev/null"):format(cpus, nginx_pid))
  for pid in capture(("pgrep -P %d"):format(nginx_pid)):gmatch("%d+") do
    sh(("taskset -a -p -c %s %s >/dev/null"):format(cpus, pid))
  end
end

local URL
local CALLS_URL
local PIN = "taskset -c 0 " -- the sequential client runs on CPU 0, with nginx

---------------------------------------------------------------------------
-- 1. sequential create-call

local CREATE = {
  { name = "graphcall",
    cmd = function(n) return (PIN .. "lua5.4 %s/lua/gc_create.lua %s %s seq"):format(B, URL, n) end },
  { name = "C libcurl loop (no decoding)",
    cmd = function(n)
      return (PIN .. "%s/curl_loop %s %s/fixtures/create_body.json %s"):format(BUILD, CALLS_URL, B, n)
    end },
  { name = "Lua socket.http + cjson (no keep-alive)",
    cmd = function(n) return (PIN .. "lua5.4 %s/lua/ls_http.lua %s %s"):format(B, URL, n) end },
  { name = "Lua raw luasocket keep-alive + cjson",
    cmd = function(n) return (PIN .. "lua5.4 %s/lua/ls_raw.lua %s %s"):format(B, URL, n) end },
  { name = "Node @microsoft/microsoft-graph-client",
    cmd = function(n) return (PIN .. "node %s/node/create_sdk.js %s %s"):format(B, URL, n) end },
  { name = "Node fetch",
    cmd = function(n) return (PIN .. "node %s/node/create_fetch.js %s %s"):format(B, URL, n) end },
}

local function bench_create()
  log("1. sequential create-call: N = %d and %d, %d runs each, alternated", CFG.n1, CFG.n2, CFG.reps)
  pin_nginx("0")
  local cpu, wall = {}, {}
  for _, p in ipairs(CREATE) do
    cpu[p.name], wall[p.name] = {}, {}
    commands[#commands + 1] = { p.name, p.cmd("N") }
  end
  -- one untimed run each first (page cache, nginx warm)
  for _, p in ipairs(CREATE) do run_measured(p.cmd(50)) end
  alternate(CREATE, CFG.reps, function(p)
    local a = run_measured(p.cmd(CFG.n1))
    local b = run_measured(p.cmd(CFG.n2))
    local per = (b.cpu - a.cpu) / (CFG.n2 - CFG.n1) * 1e6
    local w = (field(b.out, "elapsed") - field(a.out, "elapsed")) / (CFG.n2 - CFG.n1) * 1e6
    table.insert(cpu[p.name], per)
    table.insert(wall[p.name], w)
  end)
  for i, p in ipairs(CREATE) do
    add_row("create-call sequential: client CPU µs/request", p.name, cpu[p.name], "µs", { ref = i == 1 })
  end
  for i, p in ipairs(CREATE) do
    add_row("create-call sequential: wall µs/request", p.name, wall[p.name], "µs", { ref = i == 1 })
  end

  log("1b. system calls per request (strace -f -c, N = %d and %d)", CFG.strace_n1, CFG.strace_n2)
  local sys, breakdown = {}, {}
  for _, p in ipairs(CREATE) do
    local counts, each = {}, {}
    for k, n in ipairs { CFG.strace_n1, CFG.strace_n2 } do
      local file = tmp .. "/strace.txt"
      os.remove(file)
      capture(("strace -f -c -o %s %s"):format(q(file), p.cmd(n)))
      local total
      for line in io.lines(file) do
        local calls, name = line:match("^%s*[%d.]+%s+[%d.]+%s+%d+%s+(%d+)%s.-(%S+)%s*$")
        if name == "total" then
          total = tonumber(calls)
        elseif calls then
          each[name] = each[name] or { 0, 0 }
          each[name][k] = tonumber(calls)
        end
      end
      counts[#counts + 1] = assert(total, "no strace total")
    end
    sys[p.name] = (counts[2] - counts[1]) / (CFG.strace_n2 - CFG.strace_n1)
    local parts = {}
    for name, c in pairs(each) do
      local per = (c[2] - c[1]) / (CFG.strace_n2 - CFG.strace_n1)
      if per >= 0.01 then parts[#parts + 1] = { name, per } end
    end
    table.sort(parts, function(a, b) return a[2] > b[2] end)
    for i, x in ipairs(parts) do parts[i] = ("%s %.2f"):format(x[1], x[2]) end
    breakdown[p.name] = table.concat(parts, ", ")
  end
  pin_nginx("0,1")
  notes[#notes + 1] = "System calls per request, graphcall: " .. breakdown.graphcall .. "; C libcurl loop: "
    .. breakdown[CREATE[2].name] .. "."
  for i, p in ipairs(CREATE) do
    add_row("create-call sequential: system calls/request", p.name, { sys[p.name] }, "", { ref = i == 1, digits = 2 })
  end

  local gc = median(cpu.graphcall)
  local curl = median(cpu[CREATE[2].name])
  local sdk = median(cpu[CREATE[5].name])
  target("1a. graphcall CPU/request ≤ 1.0x the C libcurl loop",
    ("%.1f µs vs %.1f µs: %.2fx"):format(gc, curl, gc / curl), gc <= curl)
  target("1b. graphcall ≤ 5 system calls/request",
    ("%.2f"):format(sys.graphcall), sys.graphcall <= 5)
  target("1c. graphcall CPU/request ≥ 10x less than the JavaScript SDK",
    ("%.1f µs vs %.1f µs: %.1fx less"):format(gc, sdk, sdk / gc), sdk / gc >= 10)
end

---------------------------------------------------------------------------
-- 2. concurrent create-call

local function bench_concurrent()
  log("2. concurrent create-call: %d requests, 32 in flight vs sequential, %d runs each", CFG.conc_n, CFG.reps)
  local peers = {
    { name = "graphcall call_many (32 in flight)",
      cmd = ("lua5.4 %s/lua/gc_create.lua %s %d many"):format(B, URL, CFG.conc_n) },
    { name = "graphcall sequential",
      cmd = ("lua5.4 %s/lua/gc_create.lua %s %d seq"):format(B, URL, CFG.conc_n) },
  }
  local walls = {}
  for _, p in ipairs(peers) do
    walls[p.name] = {}
    commands[#commands + 1] = { p.name, p.cmd }
  end
  alternate(peers, CFG.reps, function(p)
    local r = run_measured(p.cmd)
    table.insert(walls[p.name], field(r.out, "elapsed") * 1000)
  end)
  local figure = ("create-call x %d: wall ms"):format(CFG.conc_n)
  add_row(figure, peers[1].name, walls[peers[1].name], "ms", { ref = true })
  add_row(figure, peers[2].name, walls[peers[2].name], "ms")
  local m, s = median(walls[peers[1].name]), median(walls[peers[2].name])
  target("2. concurrent wall time ≤ 0.5x sequential (same N)",
    ("%.0f ms vs %.0f ms: %.2fx"):format(m, s, m / s), m / s <= 0.5)
end

---------------------------------------------------------------------------
-- 3. notification parsing

local function bench_parse()
  log("3. notification parsing in-process, %.1f s of CPU per run, %d runs each", CFG.parse_seconds, CFG.reps)
  for _, kind in ipairs { "call", "participants" } do
    local fixture = ("%s/fixtures/notification_%s.json"):format(B, kind)
    local size = #read(fixture)
    local peers = {
      { name = "graphcall.parse_notifications",
        cmd = (PIN .. "lua5.4 %s/lua/parse.lua graphcall %s %s"):format(B, fixture, CFG.parse_seconds) },
      { name = "Lua lua-cjson + field extraction",
        cmd = (PIN .. "lua5.4 %s/lua/parse.lua cjson %s %s"):format(B, fixture, CFG.parse_seconds) },
      { name = "Node JSON.parse + field extraction",
        cmd = (PIN .. "node %s/node/parse.js %s %s"):format(B, fixture, CFG.parse_seconds) },
    }
    local rates = {}
    for _, p in ipairs(peers) do
      rates[p.name] = {}
      if kind == "call" then commands[#commands + 1] = { p.name, p.cmd } end
    end
    alternate(peers, CFG.reps, function(p)
      local r = run_measured(p.cmd)
      table.insert(rates[p.name], field(r.out, "rate"))
    end)
    local figure = ("parse %s notification (%d B): notifications/CPU s"):format(kind, size)
    for i, p in ipairs(peers) do add_row(figure, p.name, rates[p.name], "/s", { ref = i == 1, digits = 0 }) end
    local g, n = median(rates[peers[1].name]), median(rates[peers[3].name])
    target(("3. parsing %s notifications ≥ 1.0x Node JSON.parse"):format(kind),
      ("%.0f/s vs %.0f/s: %.2fx"):format(g, n, g / n), g >= n)
  end
end

---------------------------------------------------------------------------
-- 4. the receiver

local function wrk(port, token, seconds, body)
  local cmd = ("BENCH_BODY=%s BENCH_TOKEN=%s taskset -c 0 wrk -t1 -c%d -d%ds -s %s/wrk_post.lua "
    .. "http://127.0.0.1:%d/api/calls")
    :format(q(body or (B .. "/fixtures/notification_call.json")), q(token or ""), CFG.wrk_connections,
      seconds, B, port)
  local out = capture(cmd)
  if out:find("Non%-2xx") or out:find("Socket errors") then error("wrk saw errors:\n" .. out) end
  return assert(tonumber(out:match("Requests/sec:%s*([%d.]+)")), out), cmd
end

local function start_receiver(mode, extra, pin)
  local dir = tmp .. "/rx-" .. mode
  sh("rm -rf " .. q(dir) .. " && mkdir -p " .. q(dir))
  local cmd = ("%slua5.4 %s/lua/gc_receiver.lua %s %s %s"):format(pin or "", B, mode, q(dir), extra or "")
  local pid = spawn(cmd, dir .. "/out.log")
  local port = tonumber(wait_for_file(dir .. "/port", "the " .. mode .. " receiver", pid))
  return { pid = pid, port = port, token = read(dir .. "/token"), dir = dir, cmd = cmd }
end

local function bench_receiver()
  log("4. receiver: wrk -t1 -c%d on CPU 0, the server on CPU 1, %d s per run, %d runs each", CFG.wrk_connections,
    CFG.wrk_seconds, CFG.reps)
  -- the server under test on CPU 1, wrk on CPU 0
  pin_nginx("1")
  local on, off = start_receiver("on", nil, "taskset -c 1 "), start_receiver("off", nil, "taskset -c 1 ")
  local peers = {
    { name = "graphcall receiver, JWT on (cached)", port = on.port, token = on.token, cmd = on.cmd },
    -- the same requests (Graph always sends its token), left unverified
    { name = "graphcall receiver, JWT off", port = off.port, token = on.token, cmd = off.cmd },
    { name = "nginx 202", port = nginx_port, token = on.token, cmd = "nginx (the stand-in, location /api/calls)" },
  }
  local rps = {}
  for _, p in ipairs(peers) do
    rps[p.name] = {}
    wrk(p.port, p.token, 1) -- warm-up
  end
  local wrk_cmd
  alternate(peers, CFG.reps, function(p)
    local r, cmd = wrk(p.port, p.token, CFG.wrk_seconds)
    table.insert(rps[p.name], r)
    wrk_cmd = cmd
  end)
  for _, p in ipairs(peers) do commands[#commands + 1] = { p.name, p.cmd } end
  commands[#commands + 1] = { "load (each receiver)", (wrk_cmd:gsub("BENCH_TOKEN='[^']*'", "BENCH_TOKEN=<token>")
    :gsub(":%d+/api", ":<port>/api")) }
  stop(on.pid)
  stop(off.pid)
  pin_nginx("0,1")
  local figure = "receiver, call notifications over keep-alive: requests/s"
  for i, p in ipairs(peers) do add_row(figure, p.name, rps[p.name], "/s", { ref = i == 1, digits = 0 }) end
  local g_on, g_off, ngx = median(rps[peers[1].name]), median(rps[peers[2].name]), median(rps[peers[3].name])
  target("4a. receiver with JWT verification ≥ 0.5x nginx",
    ("%.0f/s vs %.0f/s: %.2fx"):format(g_on, ngx, g_on / ngx), g_on / ngx >= 0.5)
  local overhead = g_off / g_on - 1   -- extra time per request
  target("4b. JWT verification (cached) costs ≤ 15 % over verification off",
    ("%.0f/s vs %.0f/s: +%.1f %% time/request"):format(g_on, g_off, overhead * 100), overhead <= 0.15)
end

---------------------------------------------------------------------------
-- 5. memory

local function bench_memory()
  log("5. memory: peak RSS of %d create-call round trips and %d received notifications", CFG.mem_n, CFG.mem_n)
  local figure = ("peak RSS growth, 1,000 → %d: KiB"):format(CFG.mem_n)
  local results = {}
  local keep_n = CFG.mem_n // 10
  for _, policy in ipairs { "end", "keep" } do
    local n = policy == "end" and CFG.mem_n or keep_n
    local cmd = ("lua5.4 %s/lua/gc_mem_create.lua %s %d %s"):format(B, URL, n, policy)
    local r = run_measured(cmd)
    results[policy] = field(r.out, "rss_last") - field(r.out, "rss_first")
    commands[#commands + 1] = { "memory, create-call (" .. policy .. ")", cmd }
  end
  local rx = start_receiver("mem", tostring(CFG.mem_n))
  local load = spawn(("BENCH_BODY=%s BENCH_TOKEN=%s wrk -t1 -c%d -d600s -s %s/wrk_post.lua "
    .. "http://127.0.0.1:%d/api/calls")
    :format(q(B .. "/fixtures/notification_call.json"), q(rx.token), CFG.wrk_connections, B, rx.port),
    tmp .. "/wrk-mem.log")
  local deadline = socket.gettime() + 120
  while alive(rx.pid) and socket.gettime() < deadline do socket.sleep(0.1) end
  stop(load)
  local out = read(rx.dir .. "/out.log") or ""
  local first, last = field(out, "rss_first"), field(out, "rss_last")
  if not (first and last) then error("the memory receiver did not finish:\n" .. out) end
  results.rx = last - first
  commands[#commands + 1] = { "memory, receiver", rx.cmd .. "  (loaded by wrk as above)" }
  add_row(figure, "graphcall create-call, each call terminated", { results["end"] }, "KiB",
    { no_ratio = true, digits = 0 })
  add_row(("peak RSS growth, 1,000 → %d: KiB"):format(keep_n), "graphcall create-call, calls never terminated",
    { results.keep }, "KiB", { digits = 0, no_ratio = true })
  add_row(figure, "graphcall receiver, JWT on", { results.rx }, "KiB", { digits = 0, no_ratio = true })
  target(("5a. create-call peak RSS grows ≤ 2 MiB from 1,000 to %d round trips"):format(CFG.mem_n),
    ("%d KiB"):format(results["end"]), results["end"] <= 2048)
  target(("5b. receiver peak RSS grows ≤ 2 MiB from 1,000 to %d notifications"):format(CFG.mem_n),
    ("%d KiB"):format(results.rx), results.rx <= 2048)
  notes[#notes + 1] = ("Calls that never end stay in `client.calls` by design (the registry holds a call until "
    .. "Graph says it terminated): from 1,000 to %d live calls the peak RSS grew %d KiB, about %.1f KiB a call. "
    .. "The 5a figure ends each call with a terminated notification, as Graph does.")
    :format(keep_n, results.keep, results.keep / (keep_n - 1000))
end

local function bench_valgrind()
  log("5c. valgrind --leak-check=full on the spec suite")
  local dir = tmp .. "/valgrind"
  sh("mkdir -p " .. q(dir))
  local cmd = ("GRAPHCALL_MEMCHECK=1 valgrind --leak-check=full --errors-for-leak-kinds=definite "
    .. "--undef-value-errors=no --trace-children=no --log-file=%s/vg.%%p.log lua5.4 /usr/bin/busted"):format(dir)
  local t = socket.gettime()
  local p = io.popen(cmd .. " 2>&1")
  local out = p:read("a")
  p:close()
  local secs = socket.gettime() - t
  local summary = out:match("(%d+ passed, %d+ failed[^\n]*)") or "no summary"
  local lost, logs, summaries = 0, 0, 0
  for f in io.popen("ls " .. q(dir)):lines() do
    local text = read(dir .. "/" .. f)
    if text:find("Command: lua5.4 /usr/bin/busted", 1, true) then
      logs = logs + 1
      local def = text:match("definitely lost: ([%d,]+) bytes")
      if def then
        lost, summaries = lost + tonumber((def:gsub(",", ""))), summaries + 1
      elseif text:find("no leaks are possible", 1, true) then
        summaries = summaries + 1
      end
    end
  end
  commands[#commands + 1] = { "valgrind, spec suite", cmd }
  add_row("spec suite under valgrind: definitely lost bytes", "graphcall (" .. summary .. ")", { lost }, "B",
    { no_ratio = true, digits = 0 })
  target("5c. valgrind: no definitely lost bytes in the spec suite",
    ("%d bytes (%s, %.0f s)"):format(lost, summary, secs), lost == 0 and summaries > 0)
end

---------------------------------------------------------------------------
-- report

local function fmt(x, digits)
  if x == nil then return "-" end
  if digits == 0 then return ("%.0f"):format(x) end
  return ("%." .. digits .. "f"):format(x)
end

local function table_text()
  local out = {}
  out[#out + 1] = "| Peer | Figure | Median | Min | Max | Ratio to graphcall |"
  out[#out + 1] = "|---|---|---:|---:|---:|---:|"
  for _, r in ipairs(rows) do
    local ref = figure_ref[r.figure]
    local ratio = (ref and ref.median and ref.median ~= 0) and ("%.2f"):format(r.median / ref.median) or "-"
    if r.is_ref then ratio = "1.00" end
    if r.no_ratio then ratio = "-" end
    local unit = r.unit ~= "" and (" " .. r.unit) or ""
    out[#out + 1] = ("| %s | %s | %s%s | %s | %s | %s |"):format(r.peer, r.figure, fmt(r.median, r.digits), unit,
      fmt(r.min, r.digits), fmt(r.max, r.digits), ratio)
  end
  return table.concat(out, "\n")
end

local function targets_text()
  local out = { "| Target | Measured | Verdict |", "|---|---|---|" }
  for _, t in ipairs(targets) do
    out[#out + 1] = ("| %s | %s | %s |"):format(t.text, t.measured, t.met and "met" or "MISSED")
  end
  return table.concat(out, "\n")
end

local function versions()
  local function try(cmd)
    local p = io.popen(cmd .. " 2>&1")
    local s = p:read("a") or ""
    p:close()
    return (s:gsub("%s+$", ""))
  end
  local sdk = cjson.decode(read(B .. "/node_modules/@microsoft/microsoft-graph-client/package.json")).version
  return {
    { "Machine", try("uname -srm") .. "; " .. try("grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'")
      .. "; " .. try("nproc") .. " CPUs; " .. try("free -m | awk '/Mem:/{print $2 \" MiB RAM\"}'") },
    { "OS", try(". /etc/os-release && echo \"$PRETTY_NAME\"") },
    { "Load average at the start / at the end", LOAD_START .. " / " .. try("cut -d' ' -f1-3 /proc/loadavg") },
    { "graphcall", try("lua5.4 -e 'print(require\"graphcall.core\"._VERSION)'") .. " (git "
      .. try("git rev-parse --short HEAD") .. (try("git status --porcelain lua src") ~= "" and ", modified" or "")
      .. ")" },
    { "Lua", try("lua5.4 -v") },
    { "lua-cjson / luasocket", try("lua5.4 -e 'print(require\"cjson\"._VERSION, require\"socket\"._VERSION)'") },
    { "libcurl", try("curl-config --version") },
    { "nginx", try("nginx -v") },
    { "wrk", try("wrk -v | head -1") },
    { "Node", try("node -v") .. ", @microsoft/microsoft-graph-client " .. sdk },
    { "strace / valgrind", try("strace -V | head -1") .. " / " .. try("valgrind --version") },
    { "Compiler (C peers)", try("cc --version | head -1") },
  }
end

local function write_results(runtime)
  local lines = {
    "# graphcall benchmark results",
    "",
    ("Produced by `make bench` (bench/run) on %s; the whole run took %.0f s."):format(os.date("!%Y-%m-%d %H:%M UTC"),
      runtime),
    "Every figure is the median of " .. CFG.reps .. " runs of each command, the commands of one",
    "experiment alternated (A B C, B C A, ...); ratios are against the graphcall row of",
    "the same figure, measured in the same run. Absolute times on a shared machine drift",
    "by ±30 %: compare the ratios.",
    "",
    table_text(),
    "",
    "## Targets",
    "",
    targets_text(),
    "",
  }
  if #notes > 0 then
    lines[#lines + 1] = "## Notes"
    lines[#lines + 1] = ""
    for _, n in ipairs(notes) do lines[#lines + 1] = "- " .. n end
    lines[#lines + 1] = ""
  end
  lines[#lines + 1] = "## How each figure is measured"
  lines[#lines + 1] = ""
  for _, s in ipairs {
    ("Client CPU per request: the client and nginx pinned to CPU 0 (taskset; so no run pays for cross-CPU "
      .. "wake-ups the others do not), user+sys of the whole client process (wait4 rusage, all threads, via "
      .. "bench/build/runstat), "
      .. "(CPU at N=%d − CPU at N=%d) / %d, so start-up cancels out. Wall per request: the same difference of "
      .. "the request phase timed in-process."):format(CFG.n2, CFG.n1, CFG.n2 - CFG.n1),
    ("System calls per request: `strace -f -c` totals (all threads), (N=%d − N=%d) / %d.")
      :format(CFG.strace_n2, CFG.strace_n1, CFG.strace_n2 - CFG.strace_n1),
    ("Concurrent create-call: wall time of the request phase, timed in-process, of %d `client:call_many` "
      .. "requests with at most 32 in flight (a loop with max_in_flight = 32) against %d sequential `client:call`; "
      .. "nothing pinned, nginx has the other CPU."):format(CFG.conc_n, CFG.conc_n),
    "Stand-in for Graph: nginx from Debian, 1 worker, loopback, keep-alive (keepalive_requests 1e8), access_log "
      .. "off; POST /v1.0/communications/calls → 201 with a 1.3 KB call object (a fresh id per call, Location, "
      .. "request-id and Graph-like headers); POST /api/calls → 202. Config: bench/nginx.conf.in.",
    "Create-call body: bench/fixtures/create_body.json (908 B, what graphcall builds from bench/lua/spec.lua); "
      .. "graphcall, Lua and Node peers build it (encode) every time and decode the 201; the C loop sends the "
      .. "file's bytes and decodes nothing.",
    ("Parsing: notifications per second of process CPU time (os.clock / process.cpuUsage), %.1f s per run after "
      .. "a warm-up, pinned to CPU 0; each round parses the body and reads change_type, call_id, kind and "
      .. "state/odata_type.")
      :format(CFG.parse_seconds),
    ("Receiver: `wrk -t1 -c%d -d%ds` (on CPU 0) POSTs the call notification with Content-Type and the same Bearer "
      .. "token every time (as Graph does; JWT off leaves it unverified) to the server under test (on CPU 1); "
      .. "the handler counts. Requests/s as wrk reports it.")
      :format(CFG.wrk_connections, CFG.wrk_seconds),
    "Memory: VmHWM (peak RSS) of the graphcall process after the first 1,000 and after the last round trip / "
      .. "notification.",
  } do lines[#lines + 1] = "- " .. s end
  lines[#lines + 1] = ""
  lines[#lines + 1] = "## Commands"
  lines[#lines + 1] = ""
  lines[#lines + 1] = "Run from the repository root with `LUA_PATH='./bench/lua/?.lua;./lua/?.lua;./lua/?/init.lua;;'"
    .. " LUA_CPATH='./build/?.so;;'`; URL is the nginx stand-in (`http://127.0.0.1:<port>`)."
  lines[#lines + 1] = ""
  for _, c in ipairs(commands) do
    local text = c[2]:gsub(URL:gsub("%p", "%%%0"), "URL"):gsub(tmp:gsub("%p", "%%%0"), "$TMP")
    lines[#lines + 1] = ("- %s: `%s`"):format(c[1], text)
  end
  lines[#lines + 1] = ""
  lines[#lines + 1] = "## Machine and versions"
  lines[#lines + 1] = ""
  for _, v in ipairs(versions()) do lines[#lines + 1] = ("- %s: %s"):format(v[1], v[2]) end
  lines[#lines + 1] = ""
  -- what follows this run's part (the sections other benchmarks and people
  -- wrote: TLS, the loop at scale, the fleet) stays as it is
  lines[#lines + 1] = END
  local old = io.open(B .. "/RESULTS.md", "rb")
  local rest = ""
  if old then
    local text = old:read("a")
    old:close()
    local at = text:find(END, 1, true)
    rest = at and text:sub(at + #END) or ""
  end
  write(B .. "/RESULTS.md", table.concat(lines, "\n") .. rest)
end

---------------------------------------------------------------------------

local function main()
  if tonumber(LOAD_START:match("^%S+")) > 0.5 then
    log("warning: load average %s at the start: something else is running; figures will drift", LOAD_START)
    notes[#notes + 1] = ("The load average was %s at the start: other work shared the machine during this run.")
      :format(LOAD_START)
  end
  start_nginx()
  URL = ("http://127.0.0.1:%d"):format(nginx_port)
  CALLS_URL = URL .. "/v1.0/communications/calls"
  log("nginx (the stand-in for Graph) on %s", URL)
  bench_create()
  bench_concurrent()
  bench_parse()
  bench_receiver()
  bench_memory()
  stop(nginx_pid)
  if not QUICK and os.getenv("BENCH_VALGRIND") ~= "0" then bench_valgrind() end
  local runtime = socket.gettime() - T0
  write_results(runtime)
  print(table_text())
  print()
  print(targets_text())
  for _, n in ipairs(notes) do print("\nNote: " .. n) end
  print(("\nmake bench: %.0f s; written to %s/RESULTS.md"):format(runtime, B))
end

local ok, err = xpcall(main, debug.traceback)
for i = #cleanup, 1, -1 do pcall(cleanup[i]) end
os.execute("rm -rf " .. q(tmp))
if not ok then
  io.stderr:write("make bench: ", tostring(err), "\n")
  os.exit(1)
end
