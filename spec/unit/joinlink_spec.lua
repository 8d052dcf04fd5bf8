-- Teams join links: classic meetup-join links and short /meet/ links become
-- the meeting info of a join request.
local graphcall = require "graphcall"
local json = require "support.json"

local APP_ID = "8A34A46B-3D17-4ADC-8DCE-DC4E7D572698"
local TID = "72f988bf-86f1-41af-91ab-2d7cd011db47"
local OID = "4b444206-207c-42f8-92a6-e332b41c88a2"
local THREAD = "19:meeting_NTg0NmQ3NTctZDVkZC00YzRhLThmNmEtOGQ3M2E0ODdmZDZk@thread.v2"

-- The link from Graph's call resource page, fully percent-encoded.
local ENCODED = "https://teams.microsoft.com/l/meetup-join/"
  .. "19%3ameeting_NTg0NmQ3NTctZDVkZC00YzRhLThmNmEtOGQ3M2E0ODdmZDZk%40thread.v2/0"
  .. "?context=%7b%22Tid%22%3a%2272f988bf-86f1-41af-91ab-2d7cd011db47%22%2c%22Oid%22%3a%22"
  .. "4b444206-207c-42f8-92a6-e332b41c88a2%22%7d"

local client = graphcall.new { app_id = APP_ID, callback_uri = "https://bot.contoso.com/api/calls" }

describe("graphcall.parse_join_url", function()
  it("reads a fully encoded meetup-join link", function()
    local link = assert(graphcall.parse_join_url(ENCODED))
    assert.same({
      kind = "meetup_join",
      chat_info = { thread_id = THREAD, message_id = "0" },
      organizer = { type = "user", id = OID, tenant = TID },
      tenant = TID,
    }, link)
  end)

  it("reads partially encoded and unencoded links the same way", function()
    local partial = "https://teams.microsoft.com/l/meetup-join/" .. THREAD:gsub(":", "%%3a") .. "/0"
      .. '?context=%7B%22Tid%22:%22' .. TID .. '%22,%22Oid%22:%22' .. OID .. '%22%7D'
    local plain = "https://teams.microsoft.com/l/meetup-join/" .. THREAD .. "/0"
      .. '?context={"Tid":"' .. TID .. '","Oid":"' .. OID .. '"}'
    local expected = assert(graphcall.parse_join_url(ENCODED))
    assert.same(expected, assert(graphcall.parse_join_url(partial)))
    assert.same(expected, assert(graphcall.parse_join_url(plain)))
  end)

  it("takes a channel meeting's reply chain from the context, ignoring other parameters", function()
    local link = assert(graphcall.parse_join_url(
      "https://teams.microsoft.com/l/meetup-join/19:cd9ce3da56624fe69c9d7cd026f9126d@thread.skype/1509579179399"
      .. '?context={"Tid":"' .. TID .. '","Oid":"' .. OID .. '","MessageId":"1536978844957"}&anon=true'))
    assert.same({
      thread_id = "19:cd9ce3da56624fe69c9d7cd026f9126d@thread.skype",
      message_id = "1509579179399",
      reply_chain_message_id = "1536978844957",
    }, link.chat_info)
  end)

  it("reads short /meet/ links with and without a passcode", function()
    assert.same({ kind = "meeting_id", meeting_id = "2414128301281", passcode = "NzhDLMLT8b07DrkwkE" },
      assert(graphcall.parse_join_url("https://teams.microsoft.com/meet/2414128301281?p=NzhDLMLT8b07DrkwkE")))
    assert.same({ kind = "meeting_id", meeting_id = "2414128301281" },
      assert(graphcall.parse_join_url("https://teams.microsoft.com/meet/2414128301281")))
  end)

  it("takes an empty passcode as none, and keeps other parameters out of it", function()
    assert.same({ kind = "meeting_id", meeting_id = "123" },
      assert(graphcall.parse_join_url("https://teams.microsoft.com/meet/123?p=&x=evil")))
    assert.same({ kind = "meeting_id", meeting_id = "123", passcode = "abc" },
      assert(graphcall.parse_join_url("https://teams.microsoft.com/meet/123/?x=1&p=abc&y=2")))
  end)

  it("returns nil, err with kind bad_join_url for links it cannot use", function()
    local cases = {
      { "", "not a valid URL" },
      { "teams.microsoft.com/meet/1", "not a valid URL" },
      { "http://teams.microsoft.com/meet/1", "not an https link" },
      { "https://teams.example.com/meet/1", "not a Teams link" },
      { "https://teams.microsoft.com/l/chat/0/0", "not a meeting join link" },
      { "https://teams.microsoft.com/meet/", "meet link has no meeting id" },
      { "https://teams.microsoft.com/l/meetup-join/", "no thread id" },
      { "https://teams.microsoft.com/l/meetup-join/19%3ax", "no message id" },
      { "https://teams.microsoft.com/l/meetup-join/19%3ax/0/extra?context={}", "extra path segments" },
      { "https://teams.microsoft.com/l/meetup-join/19%3ax/0", "no context parameter" },
      { "https://teams.microsoft.com/l/meetup-join/19%3ax/0?context=nope", "context is not a JSON object" },
      { "https://teams.microsoft.com/l/meetup-join/19%3ax/0?context=%7B%7D", "no tenant id (Tid)" },
      { 'https://teams.microsoft.com/l/meetup-join/19%3ax/0?context={"Tid":"t"}', "no organizer id (Oid)" },
      { 'https://teams.microsoft.com/l/meetup-join/19%3ax/0?context={"Tid":"t","Oid":7}', "no organizer id (Oid)" },
      { "https://teams.microsoft.com/l/meetup-join/19%0ax/0?context={}", "no thread id" },
      { "https://teams.microsoft.com/meet/1?p=%ff", "invalid passcode" },
      { "https://teams.microsoft.com/meet/123?p=abc\0junk", "not a valid URL" },
      { "https://user:pw@teams.microsoft.com/meet/1", "no user name or port" },
      { "https://teams.microsoft.com:9999/meet/1", "no user name or port" },
      { "https://teams.microsoft.com/meet/1/2", "meet link has no meeting id" },
    }
    for _, case in ipairs(cases) do
      local link, err = graphcall.parse_join_url(case[1])
      assert.is_nil(link, case[1])
      assert.equal("bad_join_url", err.kind)
      assert.matches(case[2], err.message, 1, true)
      assert.equal("bad_join_url: " .. err.message, tostring(err))
    end
  end)

  it("raises for a non-string argument", function()
    assert.has_error(function() graphcall.parse_join_url(nil) end,
      "graphcall.parse_join_url: expected a string, got nil")
  end)
end)

describe("client:prepare_join with a link", function()
  it("builds chatInfo, organizerMeetingInfo and tenantId from a meetup-join link", function()
    local body = json.decode(client:prepare_join { url = ENCODED }.body)
    assert.same({ threadId = THREAD, messageId = "0" }, body.chatInfo)
    assert.same({
      ["@odata.type"] = "#microsoft.graph.organizerMeetingInfo",
      organizer = { user = { id = OID, tenantId = TID } },
    }, body.meetingInfo)
    assert.equal(TID, body.tenantId)
    assert.same({ identity = { application = { id = APP_ID } } }, body.source)
  end)

  it("lets an explicit tenant win and passes allow_conversation_without_host", function()
    local body = json.decode(client:prepare_join {
      url = ENCODED, tenant = "other-tenant", allow_conversation_without_host = true,
    }.body)
    assert.equal("other-tenant", body.tenantId)
    assert.is_true(body.meetingInfo.allowConversationWithoutHost)
  end)

  it("builds joinMeetingIdMeetingInfo from a short link, without chatInfo", function()
    local body = json.decode(client:prepare_join {
      url = "https://teams.microsoft.com/meet/2414128301281?p=NzhDLMLT8b07DrkwkE", tenant = TID,
    }.body)
    assert.same({
      ["@odata.type"] = "#microsoft.graph.joinMeetingIdMeetingInfo",
      joinMeetingId = "2414128301281",
      passcode = "NzhDLMLT8b07DrkwkE",
    }, body.meetingInfo)
    assert.is_nil(body.chatInfo)
    assert.equal(TID, body.tenantId)
  end)

  it("builds the same body from a plain meeting id and passcode", function()
    local from_link = client:prepare_join { url = "https://teams.microsoft.com/meet/1234567?p=psw123" }
    local from_id = client:prepare_join { meeting_id = "1234567", passcode = "psw123" }
    assert.same(json.decode(from_link.body), json.decode(from_id.body))
  end)

  it("joins with a meeting token", function()
    local body = json.decode(client:prepare_join { meeting_token = "tok" }.body)
    assert.same({ ["@odata.type"] = "#microsoft.graph.tokenMeetingInfo", token = "tok" }, body.meetingInfo)
  end)
end)
