std = "lua54"
max_line_length = 120
files["spec"] = { std = "+busted" }
exclude_files = { "build", "spec/fixtures" }
-- types/: LuaLS ---@meta definitions of the C module; stubs with unused
-- arguments (212), method tables never read (241) and long type lines.
files["types"] = { ignore = { "212", "241" }, max_line_length = false }
-- wrk's scripts (bench/wrk_*.lua): wrk's table and the hooks wrk calls
files["bench/wrk_*.lua"] = { std = "luajit", globals = { "wrk", "setup", "init", "request", "response", "done" } }
