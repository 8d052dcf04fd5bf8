--- The emulator's dashboard: a page at `/_emulator/` that shows, live, every
-- call with its state over time (a timeline drawn in SVG), the requests the
-- bot sent with their bodies, the notifications the emulator posted with the
-- bot's answers, the operations and the roster; and from which a developer
-- rings the bot, presses a DTMF tone, ends a call or queues a fault (429,
-- 503, drop). The page is plain HTML, CSS and JavaScript held here (no build
-- step, nothing fetched from elsewhere); its data is `/_emulator/state`
-- (JSON, which specs read too), its buttons POST to the controls below.
--
--   GET  /_emulator/        the page (`?ring=1` rings the bot once it loaded)
--   GET  /_emulator/state   the JSON the page draws
--   POST /_emulator/ring    {callback_uri?, app_id?, caller?}: an incoming call; {id}
--   POST /_emulator/tone    {call_id, tone}: the caller presses a key; {sent}
--   POST /_emulator/end     {call_id}: the other side hangs up
--   POST /_emulator/fault   {status = 429|503|504, retry_after?} or {mode = "drop"}: the next request fails
-- @module graphcall.emulator.dashboard
local core = require "graphcall.core"
local calls = require "graphcall.emulator.calls"
local cjson = require("cjson.safe").new()

local M = {}
local EMPTY, encode, result_info = calls.EMPTY, calls.encode, calls.result_info

-- How many requests and notifications the state keeps (the newest).
M.KEEP = 200
-- How much of a body the state shows.
M.BODY_MAX = 8192

local function clip(s)
  if type(s) ~= "string" then return "" end
  if #s > M.BODY_MAX then return s:sub(1, M.BODY_MAX) .. ("... (%d bytes)"):format(#s) end
  return s
end

-- A body as the page may show it: secrets of the token endpoint are blanked.
local function shown_body(path, body)
  if path:find("/oauth2/v2%.0/token$") then
    body = (body or ""):gsub("(client_secret=)[^&]*", "%1REDACTED"):gsub("(client_assertion=)[^&]*", "%1REDACTED")
  end
  return clip(body)
end

local function list(t) return #t > 0 and t or EMPTY end

-- The newest `n` entries of `t`, each mapped by fn (which may return nil).
local function newest(t, n, fn)
  local out = {}
  for i = math.max(1, #t - n + 1), #t do
    local v = fn(t[i], i)
    if v ~= nil then out[#out + 1] = v end
  end
  return list(out)
end

local function display_name(p)
  local identity = type(p.info) == "table" and p.info.identity or {}
  for _, kind in ipairs { "user", "application", "guest", "phone", "applicationInstance" } do
    local who = identity[kind]
    if type(who) == "table" then
      return (who.displayName or who.id or "?") .. " (" .. kind .. ")"
    end
  end
  return "?"
end

--- Hooks of the emulator (installed by graphcall.emulator): a call was
-- created (it joins `emu.history`, with its first state on its timeline).
---@param emu graphcall.Emulator
---@param call table the emulator's call
function M.call_created(emu, call)
  call.timeline = { { state = call.state, t = emu.loop.clock() - emu.started_at } }
  emu.history[#emu.history + 1] = call
  if call.callback_uri then emu.last_callback_uri = call.callback_uri end
end

--- A notification was queued: it is timed, and a change of the call's state
-- goes on the call's timeline.
---@param emu graphcall.Emulator
---@param call table the emulator's call
---@param data table the notification's resourceData
---@param resource? string the path under the call it is about
function M.notified(emu, call, data, resource)
  local t = emu.loop.clock() - emu.started_at
  local record = emu.notifications[#emu.notifications]
  if record then
    record.t = t
    if type(data.toneInfo) == "table" then record.tone = data.toneInfo.tone end
  end
  if resource == nil and type(data.state) == "string" and call.timeline then
    local last = call.timeline[#call.timeline]
    if not last or last.state ~= data.state then
      call.timeline[#call.timeline + 1] = { state = data.state, t = t }
    end
  end
end

--- A request arrived: it is timed, and a callbackUri it carries becomes the
-- page's default for "ring".
---@param emu graphcall.Emulator
---@param record table the request's record in `emu.requests`
function M.requested(emu, record)
  record.t = emu.loop.clock() - emu.started_at
  if type(record.json) == "table" and type(record.json.callbackUri) == "string" then
    emu.last_callback_uri = record.json.callbackUri
  end
end

--- What the page shows, as a table (encoded to JSON by `/_emulator/state`).
---@param emu graphcall.Emulator
---@return table
function M.state(emu)
  local now = emu.loop.clock() - emu.started_at
  local out_calls = {}
  for _, call in ipairs(emu.history) do
    local roster = {}
    for _, p in ipairs(call.roster or {}) do
      roster[#roster + 1] = { id = p.id, name = display_name(p), muted = p.isMuted == true,
        me = p.id == call.my_participant_id }
    end
    out_calls[#out_calls + 1] = {
      id = call.id, direction = call.direction, state = call.state, callback_uri = call.callback_uri,
      active = emu.calls[call.id] == call, subscribed_to_tones = call.tones and true or false,
      timeline = list(call.timeline or {}), roster = list(roster),
    }
  end
  local faults = {}
  for _, f in ipairs(emu.faults) do
    faults[#faults + 1] = f.status and tostring(f.status) or f.mode or (f.delay and "delay") or "?"
  end
  return {
    url = emu.url, now = now, app_id = emu.app_id or emu.last_app_id or cjson.null,
    callback_uri = emu.last_callback_uri or cjson.null,
    calls = list(out_calls),
    requests = newest(emu.requests, M.KEEP, function(r, i)
      return { seq = i, t = r.t, method = r.method, path = r.path, status = r.status or cjson.null,
        body = shown_body(r.path, r.body), response = clip(r.response) }
    end),
    notifications = newest(emu.notifications, M.KEEP, function(n, i)
      return { seq = i, t = n.t, call_id = n.call_id, change_type = n.change_type, state = n.state or cjson.null,
        resource = n.resource or cjson.null, tone = n.tone or cjson.null, status = n.status or cjson.null,
        failure = n.failure or cjson.null, body = clip(n.body) }
    end),
    operations = newest(emu.operations, M.KEEP, function(o)
      return { call_id = o.call_id, kind = o.kind, id = o.id, status = o.status,
        client_context = o.client_context or cjson.null }
    end),
    faults = list(faults),
  }
end

local function body_of(req)
  local body = req.body ~= "" and cjson.decode(req.body) or {}
  return type(body) == "table" and body or {}
end

local FAULTS = { [429] = true, [503] = true, [504] = true }

-- The controls: each takes the decoded body and returns status, answer.
local CONTROLS = {}

--- POST /_emulator/ring: an incoming call to the bot. Returns the status and {id}.
---@param emu graphcall.Emulator
---@param body table the request's JSON body, decoded
---@return integer, table|string # the status, and the answer or an error
function CONTROLS.ring(emu, body)
  local from = body.from
  if from == nil and type(body.caller) == "string" and body.caller ~= "" then
    from = { user = { id = core.uuid(), displayName = body.caller } }
  end
  local ok, id = pcall(emu.ring, emu, {
    callback_uri = body.callback_uri ~= "" and body.callback_uri or emu.last_callback_uri,
    app_id = body.app_id ~= "" and body.app_id or emu.app_id or emu.last_app_id,
    from = from, modalities = body.modalities,
  })
  if not ok then return 400, tostring(id) end
  return 200, { id = id }
end

--- POST /_emulator/tone: the caller presses a key. Returns the status and {sent}.
---@param emu graphcall.Emulator
---@param body table the request's JSON body, decoded
---@return integer, table|string # the status, and the answer or an error
function CONTROLS.tone(emu, body)
  if not emu.calls[body.call_id] then return 404, "no such call" end
  local ok, sent = pcall(emu.press_tone, emu, body.call_id, tostring(body.tone or ""))
  if not ok then return 400, tostring(sent) end
  return 200, { sent = sent }
end

CONTROLS["end"] = function(emu, body)
  local call = emu.calls[body.call_id]
  if not call then return 404, "no such call" end
  -- the other side hangs up (Graph's code for it is a guess: 200/5000)
  emu:notify(call, "updated", { state = "terminating" })
  emu:terminate(call, result_info(200, 5000, "The call was ended by the other party."))
  return 200, { id = call.id }
end

--- POST /_emulator/fault: the next request fails. Returns the status and {queued}.
---@param emu graphcall.Emulator
---@param body table the request's JSON body, decoded
---@return integer, table|string # the status, and the answer or an error
function CONTROLS.fault(emu, body)
  local status = tonumber(body.status)
  if status and FAULTS[status] then
    emu:fail_next { status = status, retry_after = tonumber(body.retry_after) or 0 }
  elseif body.mode == "drop" then
    emu:fail_next { mode = "drop" }
  else
    return 400, "a fault is {status = 429|503|504} or {mode = \"drop\"}"
  end
  return 200, { queued = #emu.faults }
end

local function answer(emu, req, status, body, content_type)
  emu:respond(req, status, body, { ["content-type"] = content_type, ["cache-control"] = "no-store" })
end

--- Serve a request under `/_emulator/`: true when it was one.
---@param emu graphcall.Emulator
---@param req table the server's request
---@return boolean
function M.route(emu, req)
  local name = req.path == "/_emulator" and "" or req.path:match("^/_emulator/(.*)$")
  if not name then return false end
  if req.method == "GET" and (name == "" or name == "index.html") then
    answer(emu, req, 200, M.PAGE, "text/html; charset=utf-8")
  elseif req.method == "GET" and name == "state" then
    answer(emu, req, 200, encode(M.state(emu)), "application/json")
  elseif req.method == "POST" and CONTROLS[name] then
    local status, result = CONTROLS[name](emu, body_of(req))
    if type(result) == "string" then result = { error = result } end
    answer(emu, req, status, encode(result), "application/json")
  else
    answer(emu, req, 404, '{"error":"no such page"}', "application/json")
  end
  return true
end

M.PAGE = [==[<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>graphcall emulator</title>
<link rel="icon" href="data:,">
<style>
  body { font: 14px/1.4 system-ui, sans-serif; margin: 0; color: #1d2330; background: #f4f6fa; }
  header { background: #283149; color: #fff; padding: 10px 18px; display: flex; gap: 16px; align-items: baseline; }
  header h1 { font-size: 18px; margin: 0; }
  header span { opacity: .75; font-size: 12px; }
  main { display: grid; grid-template-columns: 1fr 1fr; gap: 12px; padding: 12px; }
  section { background: #fff; border: 1px solid #d8dde8; border-radius: 6px; padding: 8px 12px; min-width: 0; }
  section.wide { grid-column: 1 / 3; }
  h2 { font-size: 14px; margin: 4px 0 8px; text-transform: uppercase; letter-spacing: .04em; color: #4a5570; }
  table { border-collapse: collapse; width: 100%; font-size: 12px; }
  td, th { text-align: left; padding: 3px 6px; border-bottom: 1px solid #eef0f5; vertical-align: top; }
  th { color: #6b7590; font-weight: 600; }
  code, pre { font: 11px/1.35 ui-monospace, monospace; }
  pre { margin: 2px 0; white-space: pre-wrap; word-break: break-all; max-height: 160px; overflow: auto;
        background: #f7f8fb; padding: 4px; }
  details summary { cursor: pointer; white-space: nowrap; }
  td.t, th, td.actions, td.status { white-space: nowrap; }
  .controls { display: flex; flex-wrap: wrap; gap: 8px; align-items: center; }
  .controls input { font: inherit; padding: 3px 6px; min-width: 320px; }
  button { font: inherit; padding: 3px 10px; border: 1px solid #98a2bb; border-radius: 4px; background: #fff;
           cursor: pointer; }
  button:hover { background: #eef2ff; }
  .s2xx { color: #1a7f37; } .s4xx, .s5xx, .sfail { color: #c22; }
  .state { padding: 0 5px; border-radius: 3px; color: #fff; font-size: 11px; }
  #message { font-size: 12px; color: #4a5570; }
  svg text { font: 11px system-ui, sans-serif; }
  .muted { color: #8a93a8; }
</style>
</head>
<body>
<header><h1>graphcall emulator</h1><span id="url"></span><span id="clock"></span></header>
<main>
<section class="wide">
  <h2>Controls</h2>
  <div class="controls">
    <label>callback URI <input id="callback" placeholder="the bot's receiver URL"></label>
    <button id="ring">Ring the bot</button>
    <span>next request:</span>
    <button data-fault="429">429</button><button data-fault="503">503</button>
    <button data-fault="drop">drop</button>
    <span id="faults" class="muted"></span>
    <span id="message"></span>
  </div>
</section>
<section class="wide">
  <h2>Calls</h2>
  <svg id="timeline" width="100%" height="40" role="img" aria-label="call states over time"></svg>
  <div id="calls"></div>
</section>
<section>
  <h2>Requests from the bot</h2>
  <table id="requests"><thead><tr><th>#</th><th>t</th><th>request</th><th>status</th></tr></thead>
  <tbody></tbody></table>
</section>
<section>
  <h2>Notifications to the bot</h2>
  <table id="notifications"><thead><tr><th>#</th><th>t</th><th>notification</th><th>bot's answer</th></tr></thead>
  <tbody></tbody></table>
</section>
<section class="wide">
  <h2>Operations</h2>
  <table id="operations"><thead><tr><th>call</th><th>operation</th><th>id</th><th>status</th></tr></thead>
  <tbody></tbody></table>
</section>
</main>
<script>
"use strict";
const COLORS = { incoming: "#b26b00", establishing: "#5b7bd5", established: "#1a7f37", transferring: "#7b4fc9",
  transferAccepted: "#7b4fc9", terminating: "#c46a6a", terminated: "#777" };
const $ = (s) => document.querySelector(s);
const el = (tag, attrs, ...kids) => {
  const e = document.createElement(tag);
  for (const k in attrs || {}) e.setAttribute(k, attrs[k]);
  for (const kid of kids) e.append(kid instanceof Node ? kid : document.createTextNode(String(kid)));
  return e;
};
const svgEl = (tag, attrs, text) => {
  const e = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const k in attrs) e.setAttribute(k, attrs[k]);
  if (text !== undefined) e.textContent = text;
  return e;
};
const secs = (t) => (typeof t === "number" ? t.toFixed(3) + " s" : "");
const statusClass = (s) => (typeof s === "number" ? "s" + String(s)[0] + "xx" : "sfail");
let last = null, callbackEdited = false;

function say(text) { $("#message").textContent = text; }

async function post(name, body) {
  const r = await fetch("/_emulator/" + name, { method: "POST", headers: { "Content-Type": "application/json" },
    body: JSON.stringify(body || {}) });
  const doc = await r.json().catch(() => ({}));
  say(r.ok ? name + ": " + JSON.stringify(doc) : name + " failed: " + (doc.error || r.status));
  await refresh();
  return doc;
}

function drawTimeline(state) {
  const svg = $("#timeline");
  svg.replaceChildren();
  const rows = state.calls, width = svg.clientWidth || 1200, left = 290, row = 26;
  const end = Math.max(state.now, 0.001);
  const x = (t) => left + (width - left - 10) * (t / end);
  svg.setAttribute("height", String(Math.max(1, rows.length) * row + 22));
  rows.forEach((call, i) => {
    const y = 4 + i * row;
    svg.append(svgEl("text", { x: 4, y: y + 15, class: "call-label" }, call.direction + " " + call.id));
    call.timeline.forEach((seg, j) => {
      const next = call.timeline[j + 1];
      const until = next ? next.t : (seg.state === "terminated" ? seg.t : end);
      const x0 = x(seg.t), w = Math.max(seg.state === "terminated" ? 6 : 2, x(until) - x0);
      const g = svgEl("g", { class: "segment", "data-call": call.id, "data-state": seg.state });
      g.append(svgEl("rect", { x: x0, y: y, width: w, height: row - 6, rx: 3, fill: COLORS[seg.state] || "#999" }));
      g.append(svgEl("title", {}, seg.state + " at " + secs(seg.t)));
      // the state's name where it fits (about 6.5 px a letter); the title has it anyway
      if (w >= seg.state.length * 6.5 + 6) g.append(svgEl("text", { x: x0 + 3, y: y + 14, fill: "#fff" }, seg.state));
      svg.append(g);
    });
  });
  svg.append(svgEl("text", { x: left, y: rows.length * row + 18, fill: "#6b7590" }, "0 s"));
  svg.append(svgEl("text", { x: width - 60, y: rows.length * row + 18, fill: "#6b7590" }, secs(state.now)));
}

function drawCalls(state) {
  const box = $("#calls");
  box.replaceChildren();
  if (!state.calls.length) box.append(el("p", { class: "muted" }, "No call yet: place one from the bot, or ring it."));
  const t = el("table", {}, el("tr", {}, el("th", {}, "call"), el("th", {}, "direction"), el("th", {}, "state"),
    el("th", {}, "states over time"), el("th", {}, "roster"), el("th", {}, "")));
  for (const call of state.calls.slice().reverse()) {
    const actions = el("td", { class: "actions" });
    if (call.active) {
      const tone = el("select", {});
      for (const k of ["1","2","3","4","5","6","7","8","9","0","*","#"]) tone.append(el("option", {}, k));
      const press = el("button", { class: "tone" }, "Press tone");
      press.onclick = () => post("tone", { call_id: call.id, tone: tone.value });
      const hang = el("button", { class: "end" }, "End call");
      hang.onclick = () => post("end", { call_id: call.id });
      actions.append(tone, press, " ", hang);
    }
    const roster = el("td", {});
    for (const p of call.roster) {
      roster.append(el("div", {}, p.name + (p.me ? " — the bot" : "") + (p.muted ? " (muted)" : "")));
    }
    t.append(el("tr", { class: "call", "data-call": call.id, "data-state": call.state },
      el("td", {}, el("code", {}, call.id)), el("td", {}, call.direction),
      el("td", {}, el("span", { class: "state", style: "background:" + (COLORS[call.state] || "#999") }, call.state)),
      el("td", { class: "states" }, call.timeline.map((s) => s.state + " @ " + secs(s.t)).join(" → ")),
      roster, actions));
  }
  box.append(t);
}

function body(text) {
  if (!text) return "";
  let shown = text;
  try { shown = JSON.stringify(JSON.parse(text), null, 2); } catch (e) { /* not JSON */ }
  return el("details", {}, el("summary", {}, text.length + " bytes"), el("pre", {}, shown));
}

function fill(id, rows) {
  const tbody = $(id + " tbody");
  tbody.replaceChildren(...rows);
}

function render(state) {
  last = state;
  $("#url").textContent = state.url;
  $("#clock").textContent = "t = " + secs(state.now);
  const cb = $("#callback");
  if (!callbackEdited && state.callback_uri && document.activeElement !== cb) cb.value = state.callback_uri;
  $("#faults").textContent = state.faults.length ? "queued: " + state.faults.join(", ") : "";
  drawTimeline(state);
  drawCalls(state);
  fill("#requests", state.requests.slice().reverse().map((r) => el("tr", { class: "request" },
    el("td", {}, r.seq), el("td", { class: "t" }, secs(r.t)),
    el("td", {}, el("code", {}, r.method + " " + r.path), body(r.body)),
    el("td", { class: "status " + statusClass(r.status) }, r.status === null ? "…" : r.status, body(r.response)))));
  fill("#notifications", state.notifications.slice().reverse().map((n) => el("tr", {
      class: "notification", "data-call": n.call_id, "data-state": n.state || "" },
    el("td", {}, n.seq), el("td", { class: "t" }, secs(n.t)),
    el("td", {}, el("code", {}, n.change_type + " " + (n.state || "") + " " + (n.resource || "")
      + (n.tone ? " tone " + n.tone : "") + " " + n.call_id),
      body(n.body)),
    el("td", { class: "status " + statusClass(n.status) }, n.status !== null ? n.status : (n.failure || "pending")))));
  fill("#operations", state.operations.slice().reverse().map((o) => el("tr", { class: "operation" },
    el("td", {}, el("code", {}, o.call_id)), el("td", {}, o.kind), el("td", {}, el("code", {}, o.id)),
    el("td", {}, o.status))));
}

async function refresh() {
  try {
    const r = await fetch("/_emulator/state", { cache: "no-store" });
    render(await r.json());
  } catch (e) { say("the emulator does not answer: " + e); }
}

$("#callback").addEventListener("input", () => { callbackEdited = true; });
$("#ring").onclick = () => post("ring", { callback_uri: $("#callback").value });
for (const b of document.querySelectorAll("[data-fault]")) {
  b.onclick = () => post("fault", b.dataset.fault === "drop" ? { mode: "drop" } : { status: Number(b.dataset.fault) });
}

(async () => {
  await refresh();
  // ?ring=1: press "Ring the bot" once the page has loaded (for specs and demos)
  if (new URLSearchParams(location.search).get("ring")) $("#ring").click();
  setInterval(refresh, 500);
})();
</script>
</body>
</html>
]==]

return M
