-- busted output handler: the usual terminal report, then one last line
-- "N passed, N failed[, N skipped]" that CI and `make test` read.
return function(options)
  local busted = require "busted"
  local handler = require("busted.outputHandlers.utfTerminal")(options)
  local subscribe = handler.subscribe

  function handler:subscribe(opts)
    subscribe(self, opts)
    busted.subscribe({ "suite", "end" }, function()
      local skipped = handler.pendingsCount
      io.write(("%d passed, %d failed%s\n"):format(
        handler.successesCount,
        handler.failuresCount + handler.errorsCount,
        skipped > 0 and (", %d skipped"):format(skipped) or ""))
      io.flush()
      return nil, true
    end)
  end

  return handler
end
