-- The create-call spec every graphcall driver sends (its body is ~900 bytes),
-- and the constants the drivers share.
local graphcall = require "graphcall"

local M = {}

M.APP_ID = "8A34A46B-3D17-4ADC-8DCE-DC4E7D572698"
M.CALLBACK = "https://bot.example/cb"

function M.spec()
  return {
    subject     = "Test Call",
    language_id = "languageId-value",
    region      = "region-value",
    tenant      = "72f988bf-86f1-41af-91ab-2d7cd011db47",
    targets = {
      graphcall.user { id = "550fae72-d251-43ec-868c-373732c2704f",
                       tenant = "72f988bf-86f1-41af-91ab-2d7cd011db47", name = "Heidi Steen" },
      graphcall.phone { id = "+12345678890", name = "+12345678890" },
    },
    modalities = { "audio" },
    media = graphcall.prompts {
      { uri = "https://cdn.contoso.com/beep.wav", resource_id = "1D6DE2D4-CD51-4309-8DAA-70768651088E" },
      { uri = "https://cdn.contoso.com/cool.wav", resource_id = "1D6DE2D4-CD51-4309-8DAA-70768651088F" },
      { uri = "https://cdn.contoso.com/welcome.wav", resource_id = "1D6DE2D4-CD51-4309-8DAA-707686510890" },
    },
  }
end

-- A client against the stand-in for Graph at `url`.
function M.client(url, loop)
  return graphcall.new { app_id = M.APP_ID, token = "x", graph_url = url, callback_uri = M.CALLBACK,
                         loop = loop }
end

return M
