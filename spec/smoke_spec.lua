describe("smoke", function()
  it("loads", function() assert.equal("graphcall", require("graphcall")._NAME) end)
end)
