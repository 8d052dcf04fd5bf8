std = "lua54"
max_line_length = 120
files["spec"] = { std = "+busted" }
exclude_files = { "build", "spec/fixtures" }
-- wrk's scripts (bench/wrk_*.lua): wrk's table and the hooks wrk calls
files["bench/wrk_*.lua"] = { std = "luajit", globals = { "wrk", "setup", "init", "request", "response", "done" } }
