-- Deadlines for bounded waits in specs. `make valgrind` and `make asan` set
-- GRAPHCALL_MEMCHECK=1; the suite then runs about 20 times slower (valgrind;
-- ASan about 3), so a wait that is a hang guard gets 20 times its time
-- there. Such a deadline only stops a spec that would never finish: it is no
-- performance assertion (those are measured in bench/, never in make test).
--
--   local memcheck = require "support.memcheck"
--   memcheck.on                     -- true under valgrind or ASan
--   memcheck.deadline(5)            -- 5, or 100 under valgrind or ASan
local M = {}

M.on = os.getenv("GRAPHCALL_MEMCHECK") == "1"
M.factor = M.on and 20 or 1

function M.deadline(seconds)
  return seconds * M.factor
end

return M
