-- graphcall.parse_notifications: the body Graph POSTs to the callbackUri.
-- Everything goes through the public API; fixtures are read relative to the
-- repository root (busted runs from there).
local graphcall = require "graphcall"

local CALL_ID = "57DAB8B1894C409AB240BD8BEAE78896"

local function fixture(path)
  local f = assert(io.open("spec/fixtures/" .. path, "rb"))
  local text = f:read("a")
  f:close()
  return text
end

-- A commsNotifications envelope around the given JSON items.
local function envelope(...)
  return '{"value":[' .. table.concat({ ... }, ",") .. "]}"
end

-- One JSON notification; `data` is raw JSON for resourceData (optional).
local function item(change_type, url, data)
  return ('{"changeType":"%s","resourceUrl":"%s"%s}'):format(
    change_type, url, data and (',"resourceData":' .. data) or "")
end

local function call_item(data)
  return item("updated", "/communications/calls/" .. CALL_ID, data)
end

-- Whole bodies holding that one notification.
local function body_of(change_type, url, data)
  return envelope(item(change_type, url, data))
end

local function call_body(data)
  return envelope(call_item(data))
end

-- Parse a body that must give exactly one notification; return it.
local function parse_one(body, opts)
  local batch, err = graphcall.parse_notifications(body, opts)
  assert.is_nil(err)
  assert.is_userdata(batch)
  assert.equal(1, #batch)
  return batch[1], batch
end

-- Assert the full shape of a rejection; `what` is a plain substring that the
-- message must contain. Returns the error for further checks.
local function assert_rejected(body, what, opts)
  local result, err = graphcall.parse_notifications(body, opts)
  assert.is_nil(result)
  assert.is_table(err)
  assert.equal("bad_notification", err.kind)
  assert.is_string(err.message)
  assert.matches(what, err.message, 1, true)
  assert.equal("bad_notification: " .. err.message, tostring(err))
  assert.equal(1, tostring(err):find("bad_notification: ", 1, true))
  return err
end

-- All keys a notification exposes through pairs, sorted.
local function keys_of(n)
  local keys = {}
  for k, v in pairs(n) do
    assert.equal(n[k], v)
    keys[#keys + 1] = k
  end
  table.sort(keys)
  return keys
end

-- A Lua error raised by a call made from this file (error level 2 points here).
local function raised(fn)
  local ok, msg = pcall(fn)
  assert.is_false(ok)
  assert.is_string(msg)
  assert.matches("notification_spec%.lua:%d+: graphcall%.parse_notifications: ", msg)
  return msg
end

describe("graphcall.parse_notifications", function()
  describe("accepts", function()
    it("the seed's establishing notification (legacy resource only)", function()
      local n, batch = parse_one(fixture("seed/notification_establishing.json"))
      assert.equal("updated", n.change_type)
      assert.equal("/app/calls/" .. CALL_ID, n.resource)
      assert.equal("/app/calls/" .. CALL_ID, n.resource_url)
      assert.equal(CALL_ID, n.call_id)
      assert.equal("call", n.kind)
      assert.is_nil(n.operation_id)
      assert.equal("#microsoft.graph.call", n.odata_type)
      assert.equal("establishing", n.state)
      assert.equal("outgoing", n.direction)
      assert.is_nil(n.etag)
      assert.is_nil(n.status)
      assert.is_nil(n.client_context)
      assert.is_nil(n.result_info)
      assert.is_nil(n.callback_uri)
      assert.same({
        ["@odata.type"] = "#microsoft.graph.call",
        ["@odata.id"] = "/app/calls/" .. CALL_ID,
        state = "establishing",
        direction = "outgoing",
      }, n.resource_data)
      assert.same({ "call_id", "change_type", "direction", "kind", "odata_type", "resource",
        "resource_data", "resource_url", "state" }, keys_of(n))
      assert.equal("graphcall.notification: updated /app/calls/" .. CALL_ID .. " establishing", tostring(n))
      assert.equal("graphcall.notifications: 1 notification(s)", tostring(batch))
      assert.is_nil(batch[99])
      assert.is_nil(batch[0])
      assert.is_nil(batch[2])
    end)

    it("the seed's established notification, with its etag", function()
      local n, batch = parse_one(fixture("seed/notification_established.json"))
      assert.equal("updated", n.change_type)
      assert.equal("/app/calls/" .. CALL_ID, n.resource)
      assert.equal(n.resource, n.resource_url)
      assert.equal(CALL_ID, n.call_id)
      assert.equal("call", n.kind)
      assert.equal("established", n.state)
      assert.equal('W/"5445"', n.etag)
      assert.is_nil(n.direction)
      assert.equal("#microsoft.graph.call", n.odata_type)
      assert.same({ "call_id", "change_type", "etag", "kind", "odata_type", "resource",
        "resource_data", "resource_url", "state" }, keys_of(n))
      assert.equal("graphcall.notification: updated /app/calls/" .. CALL_ID .. " established", tostring(n))
      assert.equal("graphcall.notifications: 1 notification(s)", tostring(batch))
      assert.equal(n, batch[1])
      assert.is_nil(batch[99])
    end)

    it("the documented envelope example, with resultInfo 200/5001", function()
      local id = "2f1a1100-f5ea-4c5c-a3a4-2ae5c8e0a3e1"
      local n = parse_one(fixture("notifications/envelope_example.json"))
      assert.equal("updated", n.change_type)
      assert.equal("/app/calls/" .. id, n.resource)
      assert.equal("/communications/calls/" .. id, n.resource_url)
      assert.equal("https://bot.contoso.com/callback", n.callback_uri)
      assert.equal(id, n.call_id)
      assert.equal("call", n.kind)
      assert.equal("#microsoft.graph.call", n.odata_type)
      assert.equal('W/"5445"', n.etag)
      assert.equal("established", n.state)
      assert.equal("outgoing", n.direction)
      assert.same({ code = 200, subcode = 5001, message = "..." }, n.result_info)
      assert.equal("integer", math.type(n.result_info.code))
      assert.equal("integer", math.type(n.result_info.subcode))
      assert.equal(id, n.resource_data.id)
      assert.same({ "call_id", "callback_uri", "change_type", "direction", "etag", "kind", "odata_type",
        "resource", "resource_data", "resource_url", "result_info", "state" }, keys_of(n))
    end)

    it("an incoming call", function()
      local n = parse_one(fixture("notifications/incoming_call.json"))
      assert.equal("created", n.change_type)
      assert.is_nil(n.resource)
      assert.equal("/communications/calls/" .. CALL_ID, n.resource_url)
      assert.equal(CALL_ID, n.call_id)
      assert.equal("call", n.kind)
      assert.equal("incoming", n.state)
      assert.equal("incoming", n.direction)
      assert.equal('W/"5445"', n.etag)
      assert.equal("#microsoft.graph.call", n.odata_type)
      local data = n.resource_data
      assert.equal("Test User", data.source.identity.user.displayName)
      assert.equal("westus", data.source.region)
      assert.equal(1, #data.targets)
      assert.equal("Test BOT", data.targets[1].identity.application.displayName)
      assert.same({ "audio" }, data.requestedModalities)
      assert.equal("graphcall.notification: created /communications/calls/" .. CALL_ID .. " incoming",
        tostring(n))
    end)

    it("changeType \"Created\", normalised, with both resource and resourceUrl", function()
      local n = parse_one(fixture("notifications/created_capitalised.json"))
      assert.equal("created", n.change_type)
      assert.equal("/app/calls/" .. CALL_ID, n.resource)
      assert.equal("/communications/calls/" .. CALL_ID, n.resource_url)
      assert.not_equal(n.resource, n.resource_url)
      assert.equal(CALL_ID, n.call_id)
      assert.equal("call", n.kind)
      assert.equal("incoming", n.state)
      assert.equal("Test User", n.resource_data.source.identity.user.displayName)
    end)

    it("a terminated call, with codes given as strings", function()
      local n = parse_one(fixture("notifications/terminated.json"))
      assert.equal("deleted", n.change_type)
      assert.equal("57dab8b1-894c-409a-b240-bd8beae78896", n.call_id)
      assert.equal("call", n.kind)
      assert.equal("terminated", n.state)
      assert.same({ code = 200, subcode = 5001, message = "The conversation has ended." }, n.result_info)
      assert.equal("integer", math.type(n.result_info.code))
      assert.equal("integer", math.type(n.result_info.subcode))
      assert.is_string(n.result_info.message)
      -- resource_data keeps the raw values
      assert.equal("200", n.resource_data.resultInfo.code)
    end)

    it("a completed operation", function()
      local op = "0FE0623FD62842EDB4BD8AC290072CC5"
      local n = parse_one(fixture("notifications/operation_completed.json"))
      assert.equal("deleted", n.change_type)
      assert.equal("/communications/calls/" .. CALL_ID .. "/operations/" .. op, n.resource_url)
      assert.equal("operation", n.kind)
      assert.equal(CALL_ID, n.call_id)
      assert.equal(op, n.operation_id)
      assert.equal("completed", n.status)
      assert.equal("d45324c1-fcb5-430a-902c-f20af696537c", n.client_context)
      assert.equal("#microsoft.graph.playPromptOperation", n.odata_type)
      assert.equal('W/"54451"', n.etag)
      assert.is_nil(n.state)
      assert.same({ code = 200, subcode = 0, message = "Action completed successfully." }, n.result_info)
      assert.same({ "call_id", "change_type", "client_context", "etag", "kind", "odata_type",
        "operation_id", "resource_data", "resource_url", "result_info", "status" }, keys_of(n))
    end)

    it("a roster update whose resourceData is an array", function()
      local n = parse_one(fixture("notifications/participants.json"))
      assert.equal("updated", n.change_type)
      assert.equal("participants", n.kind)
      assert.equal(CALL_ID, n.call_id)
      assert.is_nil(n.operation_id)
      assert.is_nil(n.state)
      assert.is_nil(n.etag)
      assert.is_nil(n.result_info)
      assert.equal("#microsoft.graph.participant", n.odata_type)
      local data = n.resource_data
      assert.is_table(data)
      assert.equal(2, #data)
      assert.equal("Heidi Steen", data[1].info.identity.user.displayName)
      assert.is_true(data[1].isMuted)
      assert.equal("Calling Bot", data[2].info.identity.application.displayName)
      assert.is_false(data[2].isMuted)
      assert.equal("sendReceive", data[2].mediaStreams[1].direction)
      assert.same({ "call_id", "change_type", "kind", "odata_type", "resource_data", "resource_url" },
        keys_of(n))
      assert.equal("graphcall.notification: updated /communications/calls/" .. CALL_ID .. "/participants",
        tostring(n))
    end)

    it("a roster array whose first element has no @odata.type", function()
      local n = parse_one(body_of("updated", "/communications/calls/c1/participants/p1",
        '[{"id":"a"},{"@odata.type":"#microsoft.graph.participant","id":"b"}]'))
      assert.equal("participants", n.kind)
      assert.equal("c1", n.call_id)
      assert.is_nil(n.odata_type)
      assert.equal(2, #n.resource_data)
      assert.equal("b", n.resource_data[2].id)
    end)

    it("three notifications in one envelope, in order", function()
      local body = envelope(
        call_item('{"state":"establishing"}'),
        call_item('{"state":"established"}'),
        item("deleted", "/communications/calls/" .. CALL_ID, '{"state":"terminated"}'))
      local batch, err = graphcall.parse_notifications(body)
      assert.is_nil(err)
      assert.equal(3, #batch)
      assert.equal("graphcall.notifications: 3 notification(s)", tostring(batch))
      local states, changes = {}, {}
      for i, n in ipairs(batch) do
        assert.equal(batch[i], n)
        assert.equal(CALL_ID, n.call_id)
        states[i], changes[i] = n.state, n.change_type
      end
      assert.same({ "establishing", "established", "terminated" }, states)
      assert.same({ "updated", "updated", "deleted" }, changes)
      assert.equal("terminated", batch[3].state)
      assert.is_nil(batch[4])
      assert.is_nil(batch[99])
    end)

    it("exactly 1000 notifications", function()
      local items = {}
      for i = 1, 1000 do items[i] = item("updated", "/communications/calls/c" .. i) end
      local batch, err = graphcall.parse_notifications(envelope(table.unpack(items)))
      assert.is_nil(err)
      assert.equal(1000, #batch)
      assert.equal("c1", batch[1].call_id)
      assert.equal("c1000", batch[1000].call_id)
      assert.is_nil(batch[1001])
    end)

    it("the subCode spelling and string/integer codes", function()
      local n = parse_one(call_body('{"resultInfo":{"code":"404","subCode":"2203","message":"gone"}}'))
      assert.same({ code = 404, subcode = 2203, message = "gone" }, n.result_info)
      assert.equal("integer", math.type(n.result_info.subcode))
      n = parse_one(call_body('{"resultInfo":{"code":0,"subCode":-1}}'))
      assert.same({ code = 0, subcode = -1 }, n.result_info)
    end)

    it("lowers the first letter of state, direction and status only", function()
      local n = parse_one(call_body('{"state":"Established","direction":"Outgoing","status":"Completed"}'))
      assert.equal("established", n.state)
      assert.equal("outgoing", n.direction)
      assert.equal("completed", n.status)
      n = parse_one(call_body('{"state":"TransferAccepted"}'))
      assert.equal("transferAccepted", n.state)
      n = parse_one(call_body('{"state":"transferAccepted"}'))
      assert.equal("transferAccepted", n.state)
      -- resource_data keeps the original spelling
      assert.equal("transferAccepted", n.resource_data.state)
    end)

    it("treats JSON null as absent, as Graph writes it", function()
      local n = parse_one(call_body('{"state":"established","resultInfo":null,"clientContext":null,'
        .. '"@odata.etag":null}'))
      assert.equal("established", n.state)
      assert.is_nil(n.result_info)
      assert.is_nil(n.client_context)
      assert.is_nil(n.etag)
    end)

    it("lowers every letter of changeType", function()
      local n = parse_one(body_of("UPDATED", "/communications/calls/x"))
      assert.equal("updated", n.change_type)
      assert.is_nil(n.resource_data)
    end)

    it("lowers the first letter of a long state too (64 bytes or more)", function()
      local long = "Established" .. ("X"):rep(60)
      local n = parse_one(call_body('{"state":"' .. long .. '"}'))
      assert.equal("e" .. long:sub(2), n.state)
    end)

    it("a content sharing resource", function()
      local n = parse_one(body_of("created", "/communications/calls/c9/contentSharingSessions",
        '[{"@odata.type":"#microsoft.graph.contentSharingSession","id":"s1"}]'))
      assert.equal("content_sharing", n.kind)
      assert.equal("c9", n.call_id)
      assert.equal("#microsoft.graph.contentSharingSession", n.odata_type)
      assert.equal("s1", n.resource_data[1].id)
    end)

    it("an unknown resource path, as kind \"other\" without call_id", function()
      local n = parse_one(body_of("updated", "/communications/onlineMeetings/m1", '{"state":"Active"}'))
      assert.equal("other", n.kind)
      assert.is_nil(n.call_id)
      assert.is_nil(n.operation_id)
      assert.equal("/communications/onlineMeetings/m1", n.resource_url)
      assert.equal("active", n.state)
      assert.same({ "change_type", "kind", "resource_data", "resource_url", "state" }, keys_of(n))
    end)

    it("a call sub-resource it does not know, as kind \"other\" with call_id", function()
      local n = parse_one(body_of("updated", "/communications/calls/c2/audioRoutingGroups/g"))
      assert.equal("other", n.kind)
      assert.equal("c2", n.call_id)
    end)

    it("a body of exactly max_bytes", function()
      local body = call_body('{"state":"established"}')
      local n = parse_one(body, { max_bytes = #body })
      assert.equal("established", n.state)
    end)

    it("nesting of exactly 32 levels", function()
      -- envelope, value and the item are 3 levels; 29 more inside resourceData
      local n = parse_one(call_body(("["):rep(29) .. ("]"):rep(29)))
      assert.equal("call", n.kind)
      assert.is_table(n.resource_data)
    end)

    it("gives read-only userdata", function()
      local n, batch = parse_one(call_body('{"state":"established"}'))
      assert.equal("graphcall.notifications", tostring(batch):match("^[%w.]+"))
      assert.equal("graphcall.notification", tostring(n):match("^[%w.]+"))
      assert.is_false(pcall(function() batch[1] = false end))
      assert.is_false(pcall(function() n.state = "terminated" end))
      assert.equal("established", batch[1].state)
      assert.is_nil(batch["1"])
      assert.is_nil(n.no_such_field)
    end)

    it("does not let pairs change a notification", function()
      local n = parse_one(call_body('{"state":"established"}'))
      local _, state = pairs(n)
      if type(state) == "table" then
        state.state = "terminated"
        state.change_type = "deleted"
      end
      assert.equal("established", n.state)
      assert.equal("updated", n.change_type)
    end)

    it("indexes the batch with integral float keys like a table", function()
      local _, batch = parse_one(call_body('{"state":"established"}'))
      assert.equal(batch[1], batch[1.0])
      assert.equal("established", batch[#batch / 1].state)
    end)
  end)

  describe("rejects", function()
    local valid = call_body('{"state":"established"}')

    it("an empty body", function()
      assert_rejected("", "empty body")
    end)

    it("a body over the default 1 MiB limit", function()
      local body = valid .. (" "):rep(1024 * 1024 - #valid + 1)
      assert.equal(1024 * 1024 + 1, #body)
      assert_rejected(body, "over the limit of 1048576 bytes")
      -- one byte less is accepted: only the size was wrong
      local n = parse_one(body:sub(1, -2))
      assert.equal("established", n.state)
    end)

    it("a body over a custom max_bytes", function()
      local short = body_of("updated", "/communications/calls/c1")
      local body = short .. (" "):rep(101 - #short)
      assert.equal(101, #body)
      local err = assert_rejected(body, "over the limit of 100 bytes", { max_bytes = 100 })
      assert.matches("101 bytes", err.message, 1, true)
      -- the same body is fine under the default limit
      assert.equal("c1", parse_one(body).call_id)
    end)

    it("a body that is not JSON", function()
      assert_rejected("hello, world", "not valid JSON")
      assert_rejected('{"value":[', "not valid JSON")
    end)

    it("trailing data after the JSON", function()
      assert_rejected(valid .. " x", "not valid JSON")
      assert_rejected(valid .. valid, "not valid JSON")
    end)

    it("an embedded NUL after valid JSON", function()
      local err = assert_rejected(valid .. '\0{"b":2}', "NUL byte")
      assert.matches("offset " .. #valid, err.message, 1, true)
    end)

    it("invalid UTF-8: a \\xff byte inside a string", function()
      local body = call_body('{"state":"est\xffablished"}')
      assert_rejected(body, "invalid UTF-8 at byte " .. body:find("\xff", 1, true))
    end)

    it("invalid UTF-8: a truncated 2-byte sequence", function()
      local body = call_body('{"state":"caf\xc3"}')
      assert_rejected(body, "invalid UTF-8 at byte " .. body:find("\xc3", 1, true))
      assert_rejected(valid .. "\xc3", "invalid UTF-8 at byte " .. (#valid + 1))
    end)

    it("invalid UTF-8: an encoded surrogate", function()
      local body = call_body('{"state":"\xed\xa0\x80"}')
      assert_rejected(body, "invalid UTF-8 at byte " .. body:find("\xed", 1, true))
    end)

    it("invalid UTF-8: an overlong encoding", function()
      assert_rejected(call_body('{"state":"\xc0\xaf"}'), "invalid UTF-8")
    end)

    it("a top level that is an array", function()
      assert_rejected("[" .. valid .. "]", "not a JSON object")
    end)

    it("a top level that is a string", function()
      assert_rejected('"value"', "not a JSON object")
    end)

    it("an envelope without value", function()
      assert_rejected('{"@odata.type":"#microsoft.graph.commsNotifications"}', "value: missing")
    end)

    it("a value that is an object", function()
      assert_rejected('{"value":' .. call_item() .. "}", "value: must be a non-empty array")
    end)

    it("a value that is an empty array", function()
      assert_rejected('{"value":[]}', "value: must be a non-empty array")
    end)

    it("a value that is a string", function()
      assert_rejected('{"value":"x"}', "value: missing or not an array")
    end)

    it("an item that is not an object", function()
      assert_rejected(envelope(call_item(), "42"), "value[2]: not an object")
      assert_rejected(envelope("[1]"), "value[1]: not an object")
      assert_rejected(envelope("null"), "value[1]: not an object")
    end)

    it("a whole batch when one item is bad", function()
      assert_rejected(envelope(call_item(), call_item(), '{"resourceUrl":"/x"}'), "value[3].changeType")
    end)

    it("a missing changeType", function()
      assert_rejected(envelope('{"resourceUrl":"/communications/calls/x"}'), "value[1].changeType")
    end)

    it("a changeType that is a number", function()
      assert_rejected(envelope('{"changeType":1,"resourceUrl":"/communications/calls/x"}'),
        "value[1].changeType: expected a string")
    end)

    it("neither resourceUrl nor resource", function()
      assert_rejected(envelope('{"changeType":"updated","resourceData":{}}'), "value[1].resourceUrl")
    end)

    it("a resourceUrl that is not a string", function()
      assert_rejected(envelope('{"changeType":"updated","resourceUrl":["/x"]}'), "value[1].resourceUrl")
      assert_rejected(envelope('{"changeType":"updated","resource":7}'), "value[1].resource")
    end)

    it("a resourceData that is a string", function()
      assert_rejected(call_body('"established"'), "value[1].resourceData: expected an object or an array")
    end)

    it("a state that is a number", function()
      assert_rejected(call_body('{"state":3}'), "value[1].resourceData.state: expected a string")
    end)

    it("a resultInfo.code that is not numeric", function()
      assert_rejected(call_body('{"resultInfo":{"code":"abc"}}'),
        "value[1].resourceData.resultInfo.code: expected an integer code")
    end)

    it("a resultInfo.code that is not an integer", function()
      assert_rejected(call_body('{"resultInfo":{"code":200.5}}'), "value[1].resourceData.resultInfo.code")
      assert_rejected(call_body('{"resultInfo":{"subcode":true}}'), "value[1].resourceData.resultInfo.subcode")
    end)

    it("resultInfo codes that are not plain decimal integers", function()
      assert_rejected(call_body('{"resultInfo":{"code":"0x10"}}'), "value[1].resourceData.resultInfo.code")
      assert_rejected(call_body('{"resultInfo":{"code":" 200 "}}'), "value[1].resourceData.resultInfo.code")
      assert_rejected(call_body('{"resultInfo":{"code":1e300}}'), "value[1].resourceData.resultInfo.code")
      assert_rejected(call_body('{"resultInfo":{"code":"99999999999"}}'), "value[1].resourceData.resultInfo.code")
    end)

    it("a resultInfo.message that is not a string", function()
      assert_rejected(call_body('{"resultInfo":{"code":200,"message":5}}'), "resultInfo.message")
    end)

    it("a first roster element with a non-string @odata.type", function()
      assert_rejected(body_of("updated", "/communications/calls/c/participants", '[{"@odata.type":1}]'),
        "resourceData[1].@odata.type")
    end)

    it("nesting deeper than 32 levels inside resourceData", function()
      assert_rejected(call_body(("["):rep(30) .. ("]"):rep(30)), "nested deeper than 32 levels")
      assert_rejected(call_body(('{"a":'):rep(40) .. "1" .. ("}"):rep(40)), "nested deeper than 32 levels")
    end)

    it("more than 1000 items in value", function()
      local items = {}
      for i = 1, 1001 do items[i] = item("updated", "/communications/calls/c" .. i) end
      assert_rejected(envelope(table.unpack(items)), "1001 notifications, over the limit of 1000")
    end)

    it("NaN and Infinity literals", function()
      assert_rejected(call_body('{"x":NaN}'), "not valid JSON")
      assert_rejected(call_body('{"x":Infinity}'), "not valid JSON")
      assert_rejected(call_body('{"x":-Infinity}'), "not valid JSON")
      assert_rejected(call_body('{"resultInfo":{"code":NaN}}'), "not valid JSON")
    end)

    it("hexadecimal number literals", function()
      assert_rejected(call_body('{"x":0x10}'), "not valid JSON")
    end)

    -- The raw body has no NUL, but a \u0000 escape decodes to one; C string
    -- handling of resource_url would then disagree with the Lua string.
    it("a \\u0000 escape in resourceUrl", function()
      assert_rejected(body_of("updated", "/communications/calls/abc\\u0000/participants", "[]"), "NUL")
    end)
  end)

  -- The fast pass (simdjson) reads only the fields; resource_data stays JSON
  -- text until first read. Bodies simdjson does not take go through lua-cjson
  -- as before. Either way the results must be the same as lua-cjson's.
  describe("resource_data and the two passes", function()
    it("decodes resource_data once, on first read, and keeps the table", function()
      local n = parse_one(call_body('{"state":"established","id":"x1","deep":{"a":[1,{"b":true}]}}'))
      local data = n.resource_data
      assert.is_table(data)
      assert.equal(data, n.resource_data)
      assert.is_true(rawequal(data, n.resource_data))
      assert.equal("x1", data.id)
      assert.is_true(data.deep.a[2].b)
      local listed
      for k, v in pairs(n) do
        if k == "resource_data" then listed = v end
      end
      assert.is_true(rawequal(data, listed))
    end)

    it("gives resource_json, the text Graph sent, without decoding it, in a batch too", function()
      local text = '{"state" : "established", "id":"x3", "n":[1, 2.5]}'
      local n = parse_one(call_body(text))
      assert.equal(text, n.resource_json)
      for k in pairs(n) do assert.not_equal("resource_json", k) end
      -- once decoded, lua-cjson's writing of the same table
      local data = n.resource_data
      assert.same(data, require("cjson").decode(n.resource_json))
      assert.is_nil(parse_one(call_body(nil)).resource_json)
      local batch = assert(graphcall.parse_notifications(envelope(call_item('{"a":1}'), call_item('[{"b":2}]'))))
      assert.equal('[{"b":2}]', batch[2].resource_json)
      assert.equal('{"a":1}', batch[1].resource_json)
      assert.equal(2, batch[2].resource_data[1].b)
      -- a body only the reference pass takes: the table written again, or nil when cjson cannot
      local ref = parse_one(call_body('{"a":"x\ty"}')) -- a raw tab: simdjson refuses it, lua-cjson takes it
      assert.same({ a = "x\ty" }, require("cjson").decode(ref.resource_json))
      assert.is_nil(parse_one(call_body('{"a":1e999}')).resource_json)
    end)

    it("lists resource_data in pairs before it was ever read", function()
      local n = parse_one(call_body('{"state":"established","id":"x2"}'))
      local listed
      for k, v in pairs(n) do
        if k == "resource_data" then listed = v end
      end
      assert.same({ state = "established", id = "x2" }, listed)
      assert.is_true(rawequal(listed, n.resource_data))
    end)

    it("gives each notification of a batch its own resource_data, read in any order", function()
      local body = envelope(
        call_item('{"state":"establishing","n":1}'),
        item("updated", "/communications/calls/c2/participants", '[{"id":"p1"},{"id":"p2"}]'),
        item("deleted", "/communications/calls/c3"),
        call_item('{"state":"terminated","n":4,"resultInfo":{"code":200}}'))
      local batch = assert(graphcall.parse_notifications(body))
      assert.equal(4, #batch)
      assert.same({ state = "terminated", n = 4, resultInfo = { code = 200 } }, batch[4].resource_data)
      assert.is_nil(batch[3].resource_data)
      assert.same({ { id = "p1" }, { id = "p2" } }, batch[2].resource_data)
      assert.same({ state = "establishing", n = 1 }, batch[1].resource_data)
      assert.same({ code = 200 }, batch[4].result_info)
      assert.equal(batch[4].result_info, batch[4].result_info)
    end)

    it("rejects at parse time a body whose error is deep inside resourceData", function()
      assert_rejected(call_body('{"state":"established","a":[1,2,{"b":tru}]}'), "not valid JSON")
      assert_rejected(call_body('{"state":"established","a":"\\ud800"}'), "not valid JSON")
      assert_rejected(envelope(call_item('{"state":"ok"}'), call_item('{"a":[1,}')), "not valid JSON")
    end)

    it("applies the depth limit to objects as to arrays", function()
      local n = parse_one(call_body(('{"a":'):rep(29) .. "1" .. ("}"):rep(29)))
      local data = n.resource_data
      for _ = 1, 28 do data = data.a end
      assert.equal(1, data.a)
      assert_rejected(call_body(('{"a":'):rep(30) .. "1" .. ("}"):rep(30)), "nested deeper than 32 levels")
      -- in the second notification of a batch too
      assert_rejected(envelope(call_item("{}"), call_item(("["):rep(30) .. ("]"):rep(30))),
        "nested deeper than 32 levels")
    end)

    it("keeps lua-cjson's numbers in resource_data: 1e999, big integers, 1.", function()
      local n = parse_one(call_body('{"state":"established","x":1e999,"y":-1e999,'
        .. '"z":123456789012345678901234567890,"w":1.,"v":-.5,"u":1e-999}'))
      assert.equal("established", n.state)
      local data = n.resource_data
      assert.equal(math.huge, data.x)
      assert.equal(-math.huge, data.y)
      assert.equal(1.2345678901234568e29, data.z)
      assert.equal(1.0, data.w)
      assert.equal(-0.5, data.v)
      assert.equal(0.0, data.u)
      n = parse_one(call_body('{"n":18446744073709551615}'))
      assert.equal(18446744073709551615.0, n.resource_data.n)
    end)

    it("keeps \\u0000 and control characters inside strings of resource_data", function()
      local n = parse_one(call_body('{"x":"a\\u0000b","state":"a\tb"}'))
      assert.equal("a\0b", n.resource_data.x)
      assert.equal("a\tb", n.state)
      assert.equal("a\tb", n.resource_data.state)
      assert_rejected(call_body('{"state":"a\\u0000b"}'), "value[1].resourceData.state: contains a NUL byte")
    end)

    it("takes the last of duplicate keys, like lua-cjson", function()
      local n = parse_one(call_body('{"state":"One","state":"Two","x":{"a":1},"x":[2]}'))
      assert.equal("two", n.state)
      assert.same({ state = "Two", x = { 2 } }, n.resource_data)
      local batch = assert(graphcall.parse_notifications('{"value":[' .. call_item('{"state":"A"}')
        .. '],"value":[' .. item("deleted", "/communications/calls/c9") .. "]}"))
      assert.equal(1, #batch)
      assert.equal("deleted", batch[1].change_type)
      assert.equal("c9", batch[1].call_id)
      assert.is_nil(batch[1].resource_data)
      n = parse_one(body_of("updated", "/communications/calls/c/participants",
        '[{"@odata.type":"t","@odata.type":"u"}]'))
      assert.equal("u", n.odata_type)
    end)

    it("reads escaped keys and values", function()
      local n = parse_one(call_body('{"st\\u0061te":"Esc\\u0041PED","@odata.etag":"W/\\"1\\""}'))
      assert.equal("escAPED", n.state)
      assert.equal('W/"1"', n.etag)
      assert.equal("EscAPED", n.resource_data.state)
    end)

    it("treats an empty array as lua-cjson does: an empty table", function()
      local n = parse_one(call_body("[]"))
      assert.same({}, n.resource_data)
      assert.is_nil(n.odata_type)
      n = parse_one(call_body('{"resultInfo":[]}'))
      assert.same({}, n.result_info)
      n = parse_one(call_body('{"resultInfo":[1,2]}'))
      assert.same({}, n.result_info)
      assert_rejected("[]", "value: missing or not an array")
      assert_rejected(envelope("[]"), "value[1].changeType: missing")
    end)

    it("gives integer codes from integral floats and rejects codes out of range", function()
      local n = parse_one(call_body('{"resultInfo":{"code":4294967295.0,"subcode":-2147483648,"message":"m"}}'))
      assert.same({ code = 4294967295, subcode = -2147483648, message = "m" }, n.result_info)
      assert.equal("integer", math.type(n.result_info.code))
      n = parse_one(call_body('{"resultInfo":{"code":1e2,"subCode":"-0"}}'))
      assert.same({ code = 100, subcode = 0 }, n.result_info)
      assert_rejected(call_body('{"resultInfo":{"code":4294967296}}'), "resultInfo.code: expected an integer code")
      assert_rejected(call_body('{"resultInfo":{"code":18446744073709551615}}'), "resultInfo.code")
    end)

    it("parses a body over 64 KiB, then small ones again", function()
      local big = {}
      for i = 1, 300 do
        big[i] = call_item(('{"state":"established","pad":"%s","i":%d}'):format(("x"):rep(250), i))
      end
      local body = envelope(table.unpack(big))
      assert.is_true(#body > 64 * 1024)
      local batch = assert(graphcall.parse_notifications(body))
      assert.equal(300, #batch)
      assert.equal(300, batch[300].resource_data.i)
      assert.equal(1, batch[1].resource_data.i)
      assert.equal("established", parse_one(call_body('{"state":"established"}')).state)
    end)

    it("gives the same tostring whether or not fields were read", function()
      local body = call_body('{"state":"Established"}')
      local a, b = parse_one(body), parse_one(body)
      assert.equal("established", b.state)
      assert.equal(tostring(b), tostring(a))
      assert.equal("graphcall.notification: updated /communications/calls/" .. CALL_ID .. " established",
        tostring(a))
    end)
  end)

  describe("misuse", function()
    local valid = call_body('{"state":"established"}')

    it("raises for a nil body", function()
      local msg = raised(function() graphcall.parse_notifications(nil) end)
      assert.matches("expected a string body, got nil", msg, 1, true)
    end)

    it("raises for a number body", function()
      assert.error_matches(function() graphcall.parse_notifications(42) end,
        "expected a string body, got number", 1, true)
      raised(function() graphcall.parse_notifications(42) end)
    end)

    it("raises for opts that are not a table", function()
      local msg = raised(function() graphcall.parse_notifications(valid, 100) end)
      assert.matches("opts must be a table", msg, 1, true)
    end)

    it("raises for an unknown option", function()
      local msg = raised(function() graphcall.parse_notifications(valid, { max_size = 10 }) end)
      assert.matches("unknown option 'max_size'", msg, 1, true)
    end)

    it("raises for max_bytes = 0", function()
      local msg = raised(function() graphcall.parse_notifications(valid, { max_bytes = 0 }) end)
      assert.matches("max_bytes must be a positive integer", msg, 1, true)
    end)

    it("raises for max_bytes = 1.5", function()
      local msg = raised(function() graphcall.parse_notifications(valid, { max_bytes = 1.5 }) end)
      assert.matches("max_bytes must be a positive integer", msg, 1, true)
    end)

    it("raises for max_bytes given as a string", function()
      assert.has_error(function() graphcall.parse_notifications(valid, { max_bytes = "100" }) end)
      local n = parse_one(valid, { max_bytes = 4096 })
      assert.equal("established", n.state)
    end)
  end)

  describe("memory", function()
    it("does not grow over 10,000 valid and invalid parses", function()
      local bodies = {
        fixture("notifications/envelope_example.json"),
        call_body('{"state":3}'),
        fixture("notifications/participants.json"),
        "not json",
        fixture("notifications/terminated.json"),
        call_body('{"x":1}') .. '\0{"b":2}',
      }
      local accepted, rejected = 0, 0
      local function run(times)
        for i = 1, times do
          local batch, err = graphcall.parse_notifications(bodies[(i - 1) % #bodies + 1])
          if batch then
            accepted = accepted + 1
            for _, n in ipairs(batch) do assert(n.kind) end
          else
            rejected = rejected + 1
            assert(err.kind == "bad_notification")
          end
        end
      end
      run(#bodies) -- warm up (interned strings, metatables)
      collectgarbage("collect")
      collectgarbage("collect")
      local before = collectgarbage("count")
      accepted, rejected = 0, 0
      run(10000)
      collectgarbage("collect")
      collectgarbage("collect")
      local growth = collectgarbage("count") - before
      assert.equal(5000, accepted)
      assert.equal(5000, rejected)
      assert.is_true(growth < 200, ("heap grew by %.1f KB"):format(growth))
    end)
  end)
end)
