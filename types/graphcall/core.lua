---@meta graphcall.core
-- LuaLS definitions of graphcall.core, the C module (src/): its functions
-- and the userdata types it makes, one class per metatable (the class is
-- named after the metatable, `graphcall.<type>`). Never loaded at run time:
-- lua-language-server reads it through .luarc.json (`workspace.library`).
-- spec/unit/annotations_spec.lua checks that every function of the module and
-- every method of its userdata appear here.

---@class graphcall.core
---@field _VERSION string graphcall's version
---@field curl_version string the libcurl version the module runs with
---@field null lightuserdata JSON null (lua-cjson's)
local core = {}

-- Requests -----------------------------------------------------------------

--- A validated create-call or join request: its method, URL and JSON body.
---@class graphcall.request
---@field method string "POST"
---@field url string the full URL (graph_url, endpoint, calls path)
---@field path string the path of the URL
---@field body string the JSON body
---@field kind string "call" | "join"

--- Validate a call or join spec and write its request.
---@param app_id string the bot's application id (a GUID)
---@param spec table the call or join spec (see doc/calls.md)
---@param mode "call"|"join"
---@param callback_uri string? the client's callbackUri (the spec's wins)
---@param graph_url string e.g. "https://graph.microsoft.com"
---@param endpoint string "v1.0" | "beta" | "app" | "applications"
---@return graphcall.request
function core.build_request(app_id, spec, mode, callback_uri, graph_url, endpoint) end

--- The body build_request writes, as Lua tables.
---@param app_id string
---@param spec table
---@param mode "call"|"join"
---@param callback_uri? string
---@return table
function core.build_body(app_id, spec, mode, callback_uri) end

--- The pieces of an operation's body (answer, redirect, transfer, invite),
-- built and checked like a call's: targets, mediaConfig, requestedModalities, callbackUri.
---@param app_id string
---@param spec table
---@return table
function core.build_parts(app_id, spec) end

--- Raise unless `url` is acceptable as `name` (an http(s) URL).
---@param url string
---@param name string the option's name, for the error
function core.check_url(url, name) end

--- Raise unless `s` is a GUID.
---@param s string
---@param name string the option's name, for the error
function core.check_guid(s, name) end

--- The calls collection's path for an endpoint: "/v1.0/communications/calls", ...
---@param endpoint string "v1.0" | "beta" | "app" | "applications"
---@param app_id string
---@return string
function core.calls_path(endpoint, app_id) end

--- What a Teams join link stands for.
---@param url string
---@return table|nil, graphcall.error? # { kind = "meetup_join", chat_info, organizer, tenant } or { kind = "meeting_id", meeting_id, passcode? }; or nil, err
function core.parse_join_url(url) end

-- Notifications ------------------------------------------------------------

--- One notification of a batch (fields are read lazily; `pairs(n)` lists them).
---@class graphcall.notification
---@field change_type string "created" | "updated" | "deleted"
---@field resource string
---@field resource_url string
---@field callback_uri string?
---@field call_id string?
---@field kind string "call" | "operation" | "participants" | ...
---@field operation_id string?
---@field odata_type string?
---@field etag string?
---@field state string? the call's state, lower-case
---@field direction string?
---@field status string? an operation's status
---@field client_context string?
---@field result_info table? { code, subcode, message }
---@field resource_data table|nil the resourceData, decoded on first read
---@field resource_json string|nil the resourceData as the JSON text Graph sent (before resource_data is read; after, lua-cjson's encoding of it); not listed by pairs()

--- A parsed commsNotifications body: `#batch`, `batch[i]`, `ipairs(batch)`.
---@class graphcall.notifications
---@field [integer] graphcall.notification

--- Parse a commsNotifications body.
---@param body string
---@param max_bytes? integer refuse larger bodies
---@return graphcall.notifications|nil, graphcall.error?
function core.parse_notifications(body, max_bytes) end

--- The top-level string members named by the keys, of a JSON object.
---@param text string JSON
---@param ... string the keys
---@return table<string, string>|nil, string? # the members; nil (and lua-cjson's message) when not JSON
function core.json_fields(text, ...) end

-- Errors -------------------------------------------------------------------

--- graphcall's error: a table with a stable `kind`, printed as "kind: message".
---@class graphcall.error
---@field kind string "http" | "graph" | "timeout" | "connect" | "tls" | "bad_response" | ...
---@field message string?
---@field status integer? the HTTP status
---@field code string? Graph's error code
---@field request_id string?

--- Give a table the error metatable.
---@param t table
---@return graphcall.error
function core.new_error(t) end

-- HTTP client --------------------------------------------------------------

--- libcurl's multi interface on an epoll set: the loop's HTTP client.
---@class graphcall.http
local http = {}

--- Create an HTTP client.
---@param opts? {connect_timeout_ms?: integer, timeout_ms?: integer, max_response_bytes?: integer, max_in_flight?: integer, ca_file?: string}
---@return graphcall.http
function core.http(opts) end

--- Start a transfer; h:wait returns its result.
---@param req {method: string, url: string, headers?: table<string, string>, body?: string, create?: boolean, urgent?: boolean, read_headers?: string[]}
---@return integer # the transfer id
function http:submit(req) end

--- Wait up to timeout_ms; the finished transfers and the ready watched descriptors.
---@param timeout_ms integer
---@return table[] results # { id, sent, status?, headers?, body?, failure?, message? }
---@return integer[] ready # { token1, mask1, ... } (mask: 1 readable, 2 writable)
function http:wait(timeout_ms) end

--- Wait on a descriptor too; h:wait reports it by token.
---@param fd integer
---@param events "r"|"w"|"rw"
---@param token integer
---@return true|nil, graphcall.error?
function http:watch(fd, events, token) end

--- Stop watching a descriptor.
---@param fd integer
function http:unwatch(fd) end

--- The epoll descriptor: readable when anything the loop waits on is.
---@return integer
function http:fd() end

--- Transfers submitted and not yet returned by wait.
---@return integer
function http:pending() end

--- Milliseconds until libcurl needs to run for its own timers (-1: none).
---@return integer
function http:timeout() end

--- Close (idempotent; also __gc and __close).
function http:close() end

-- HTTP server --------------------------------------------------------------

--- A request the server received (srv:next(), or the handler's argument).
---@class graphcall.server_request
---@field id integer the id to answer with srv:respond
---@field method string
---@field path string
---@field query string?
---@field headers table<string, string> lower-case names
---@field body string
---@field remote string? the peer's address
---@field token string? the Bearer token, when the Authorization header is exactly one

--- libmicrohttpd, single-threaded: the receiver's and the emulator's server.
---@class graphcall.server
local server = {}

--- Start a server.
---@param opts? {host?: string, port?: integer, paths?: string[], methods?: string[], content_types?: string[], max_body?: integer, max_connections?: integer, max_per_ip?: integer, idle_timeout?: number, request_timeout?: number, tls_cert?: string, tls_key?: string}
---@return graphcall.server|nil, graphcall.error? # nil, err (kind "listen" or "tls") when it cannot start
function core.server(opts) end

--- The bound port (also when port 0 was asked).
---@return integer
function server:port() end

--- The epoll descriptor: readable when srv:run() has network work.
---@return integer
function server:fd() end

--- Milliseconds until srv:run() is due for the server's own timers (-1: none).
---@return integer
function server:timeout() end

--- One round of work, waiting up to wait_ms; with a handler, each complete request is handed to it.
---@param wait_ms? integer
---@param handler? fun(req: graphcall.server_request)
---@return integer # requests handed to the handler plus those waiting for srv:next()
function server:run(wait_ms, handler) end

--- The oldest complete request not yet taken, or nil.
---@return graphcall.server_request|nil
function server:next() end

--- Answer a taken request.
---@param id integer
---@param status integer
---@param body? string
---@param headers? table<string, string>
---@param how? string "truncate": half of the body, then the connection breaks
---@return true|nil, graphcall.error?
function server:respond(id, status, body, headers, how) end

--- Close a taken request's connection without an answer.
---@param id integer
function server:abort(id) end

--- Requests taken but not yet answered.
---@return integer
function server:pending() end

--- Close (idempotent; also __gc and __close).
function server:close() end

-- JWT ----------------------------------------------------------------------

--- Verifies the Bearer JWTs Graph signs its notifications with (RS256, OpenSSL).
---@class graphcall.jwt_verifier
local jwt_verifier = {}

--- Create a verifier.
---@param opts {audience: string, issuers?: string[], tenants?: string[], skew?: number, max_token_bytes?: integer, algorithms?: string[], cache_size?: integer}
---@return graphcall.jwt_verifier
function core.jwt_verifier(opts) end

--- Replace the keys with a JWKS document (atomic: on failure the old keys stay).
---@param jwks_json string
---@return integer|nil, graphcall.error? # the number of usable keys, or nil, err ("bad_keys")
function jwt_verifier:set_keys(jwks_json) end

--- The number of usable keys.
---@return integer
function jwt_verifier:key_count() end

--- Whether a key with this kid is loaded.
---@param kid string
---@return boolean
function jwt_verifier:has_key(kid) end

--- Verify a token at time `now`.
---@param token string
---@param now integer seconds since the epoch
---@return table|nil, graphcall.error? # the claims, or nil, err (err.reason says why)
function jwt_verifier:verify(token, now) end

--- How many verifications the cache answered.
---@return integer
function jwt_verifier:cache_hits() end

--- Empty the cache of verified tokens.
function jwt_verifier:clear_cache() end

--- Free the keys (idempotent; also __gc and __close).
function jwt_verifier:close() end

--- A parsed JWKS (internal to the verifier; no methods).
---@class graphcall.jwt_keyset

--- simdjson's parser state (internal to notification parsing; no methods).
---@class graphcall.json_scanner

-- Redis --------------------------------------------------------------------

--- A hiredis asynchronous connection, polled by the loop.
---@class graphcall.redis
local redis = {}

--- Connect (does not wait: r:status() says "connecting" until connected).
---@param opts {host?: string, port?: integer, path?: string}
---@return graphcall.redis|nil, graphcall.error? # nil, err (kind "connect")
function core.redis_connect(opts) end

--- A script's SHA-1 in hex (EVALSHA's name for it).
---@param script string
---@return string
function core.redis_sha1(script) end

--- The socket, or nil once the connection dropped.
---@return integer|nil
function redis:fd() end

--- What hiredis waits for: "r", "w", "rw" or "".
---@return string
function redis:events() end

--- Send a command.
---@param args (string|number)[]
---@return integer|nil, graphcall.error? # the command's id, or nil, err
function redis:command(args) end

--- Let hiredis read and write; the replies that finished, in order.
---@param readable boolean
---@param writable boolean
---@return table[] # { {id=, reply=} | {id=, err=}, ... }
function redis:handle(readable, writable) end

--- Commands sent or queued that have not finished.
---@return integer
function redis:pending() end

--- "connecting" | "connected" | "closed", and why it closed.
---@return string, string?
function redis:status() end

--- Close (idempotent; also __gc and __close); pending commands fail.
function redis:close() end

-- Signals ------------------------------------------------------------------

--- Process signals as a descriptor (signalfd): the signals are blocked
-- while the handle is open and read from it instead.
---@class graphcall.signals
local signals = {}

--- Block `names` and open a descriptor that is readable when one is pending.
---@param names string[] "TERM", "INT", "HUP", "USR1", "USR2", "QUIT"
---@return graphcall.signals
function core.signals(names) end

--- The descriptor to wait on for reading.
---@return integer
function signals:fd() end

--- The pending signals' names (empty when none); does not block.
---@return string[]
function signals:read() end

--- Close the descriptor and unblock the signals it blocked (idempotent).
function signals:close() end

-- Utilities ----------------------------------------------------------------

--- A random (version 4) UUID.
---@return string
function core.uuid() end

--- Percent-encode for a form or a query.
---@param s string
---@return string
function core.url_encode(s) end

--- Decode %XX and '+'; nil when the result is not clean UTF-8.
---@param s string
---@return string|nil
function core.url_decode(s) end

--- An HTTP date (IMF-fixdate, RFC 850, asctime) in seconds since the epoch, or nil.
---@param s string
---@return integer|nil
function core.http_date(s) end

--- Seconds from an arbitrary start, never going back.
---@return number
function core.monotonic() end

return core
