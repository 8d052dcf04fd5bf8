-- wrk script (make bench): POST the notification body in BENCH_BODY to
-- /api/calls, with "Authorization: Bearer <BENCH_TOKEN>" when it is set.
local f = assert(io.open(os.getenv("BENCH_BODY"), "rb"))
wrk.method = "POST"
wrk.path = "/api/calls"
wrk.body = f:read("*a")
f:close()
wrk.headers["Content-Type"] = "application/json"
local token = os.getenv("BENCH_TOKEN")
if token and token ~= "" then wrk.headers["Authorization"] = "Bearer " .. token end
