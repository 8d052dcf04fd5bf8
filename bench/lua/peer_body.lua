-- The create-call body as a Lua table, for the pure-Lua peers (they encode
-- it with lua-cjson each time, as graphcall builds its body each time).
local cjson = require "cjson"

local f = assert(io.open((arg[0]:match("^(.*)/lua/[^/]*$") or ".") .. "/fixtures/create_body.json", "rb"))
local text = f:read("a")
f:close()
return cjson.decode(text)
