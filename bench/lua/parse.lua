-- Notification parsing in-process, for SECONDS after a warm-up:
--   lua5.4 parse.lua graphcall FIXTURE SECONDS   graphcall.parse_notifications
--   lua5.4 parse.lua cjson FIXTURE SECONDS       lua-cjson + the same fields extracted in Lua
-- Each round parses the body and reads change_type, call_id, kind and state
-- (or odata_type) of every notification. Prints "rate <notifications per second>".
local impl, fixture, seconds = arg[1], arg[2], tonumber(arg[3] or "1")
local f = assert(io.open(fixture, "rb"))
local body = f:read("a")
f:close()
local clock = os.clock -- process CPU time: a single-threaded loop

local parse
if impl == "graphcall" then
  parse = require("graphcall").parse_notifications
elseif impl == "cjson" then
  local cjson = require "cjson.safe"
  local null = cjson.null
  local function str(v, what)
    if v == nil or v == null then return nil end
    if type(v) ~= "string" then error(what .. ": expected a string") end
    return v
  end
  local function lower_first(s) return s and (s:sub(1, 1):lower() .. s:sub(2)) end
  local function extract(item)
    local n = {}
    local ct = str(item.changeType, "changeType")
    if not ct then return nil end
    n.change_type = ct:lower()
    n.resource = str(item.resource, "resource")
    n.resource_url = str(item.resourceUrl, "resourceUrl") or n.resource
    n.callback_uri = str(item.callbackUri, "callbackUri")
    local url = n.resource_url
    if not url then return nil end
    local id, rest = url:match("/calls/([^/]+)(.*)$")
    local kind = "other"
    if id then
      n.call_id = id
      if rest == "" or rest == "/" then kind = "call"
      elseif rest:match("^/participants/?") then kind = "participants"
      elseif rest:match("^/operations/.") then kind = "operation"; n.operation_id = rest:sub(13)
      elseif rest:lower():match("^/contentsharingsessions") then kind = "content_sharing" end
    end
    n.kind = kind
    local data = item.resourceData
    if type(data) == "table" then
      n.resource_data = data
      if data[1] ~= nil then
        if type(data[1]) == "table" then n.odata_type = str(data[1]["@odata.type"], "@odata.type") end
      else
        n.odata_type = str(data["@odata.type"], "@odata.type")
        n.etag = str(data["@odata.etag"], "@odata.etag")
        n.state = lower_first(str(data.state, "state"))
        n.direction = lower_first(str(data.direction, "direction"))
        n.status = lower_first(str(data.status, "status"))
        n.client_context = str(data.clientContext, "clientContext")
        local ri = data.resultInfo
        if type(ri) == "table" then
          n.result_info = { code = math.tointeger(ri.code), subcode = math.tointeger(ri.subcode or ri.subCode),
                            message = str(ri.message, "message") }
        end
      end
    end
    return n
  end
  parse = function(text)
    local doc = cjson.decode(text)
    if type(doc) ~= "table" or type(doc.value) ~= "table" then return nil end
    local out = {}
    for i, item in ipairs(doc.value) do
      local n = type(item) == "table" and extract(item)
      if not n then return nil end
      out[i] = n
    end
    return out
  end
else
  error("impl: graphcall or cjson")
end

local sink = 0
local function round()
  local batch = assert(parse(body))
  for i = 1, #batch do
    local n = batch[i]
    if n.change_type and n.call_id and n.kind and (n.state or n.odata_type) then sink = sink + 1 end
  end
end

-- warm-up, then batches of 200 rounds until SECONDS of CPU time have passed
local t = clock()
while clock() - t < 0.1 do round() end
local count, t0 = 0, clock()
repeat
  for _ = 1, 200 do round() end
  count = count + 200
until clock() - t0 >= seconds
local elapsed = clock() - t0
assert(sink > 0)
io.write(("rate %.1f\n"):format(count / elapsed))
