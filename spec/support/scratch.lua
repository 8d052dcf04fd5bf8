-- A scratch directory for specs that talk to curl and bash through files:
-- scratch.open() in setup, scratch.close() in teardown; file/read/write name
-- files inside it; q quotes for the shell.
local M = {}

local dir

function M.q(s)
  return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end

function M.open()
  dir = os.tmpname()
  os.remove(dir)
  assert(os.execute("mkdir -p " .. M.q(dir)))
  return dir
end

function M.close()
  if dir then os.execute("rm -rf " .. M.q(dir)) end
  dir = nil
end

function M.file(name)
  return dir .. "/" .. name
end

function M.read(name)
  local f = io.open(M.file(name), "rb")
  if not f then return nil end
  local s = f:read("a")
  f:close()
  return s
end

function M.write(name, data)
  local f = assert(io.open(M.file(name), "wb"))
  f:write(data)
  f:close()
  return M.file(name)
end

return M
