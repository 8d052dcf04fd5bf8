-- Loaded by busted before any spec file (.busted: helper). busted insulates
-- each file: it unloads the modules a file required. luv must not be
-- unloaded: once the collector has closed libuv's default loop, requiring
-- luv again in the same Lua state leaves libuv with stale descriptors
-- ("EEXIST" on a new poll handle, then a crash). Loaded here, before the
-- first file, it stays loaded for the whole run.
require "luv"
