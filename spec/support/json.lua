-- Compare JSON by decoding both sides. A JSON null counts as an absent
-- member, as it does for Graph (the seed writes "replyChainMessageId": null
-- where a client may equally leave the member out).
local cjson = require("cjson.safe").new()

local M = {}

local function strip_nulls(v)
  if type(v) ~= "table" then return v end
  local out = {}
  for k, x in pairs(v) do
    if x ~= cjson.null then out[k] = strip_nulls(x) end
  end
  return out
end

function M.decode(text)
  local v, err = cjson.decode(text)
  assert(v ~= nil, err)
  return strip_nulls(v)
end

function M.fixture(path)
  local f = assert(io.open("spec/fixtures/" .. path, "rb"))
  local text = f:read("a")
  f:close()
  return text
end

M.null = cjson.null
return M
