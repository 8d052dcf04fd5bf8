// Peer: the official JavaScript SDK (@microsoft/microsoft-graph-client),
// N sequential POST /communications/calls, each answer parsed to an object.
// The SDK's AuthenticationHandler attaches tokens only to https Graph URLs,
// so a small middleware right before the HTTP handler sets the header for
// the http:// stand-in.
//   node create_sdk.js URL N
"use strict";
const fs = require("fs");
const path = require("path");
const {
  Client, AuthenticationHandler, RetryHandler, RedirectHandler, TelemetryHandler, HTTPMessageHandler,
} = require("@microsoft/microsoft-graph-client");

const [url, nText] = process.argv.slice(2);
const n = Number(nText);
const body = JSON.parse(fs.readFileSync(path.join(__dirname, "..", "fixtures", "create_body.json"), "utf8"));

const authProvider = { getAccessToken: async () => "x" };
const bearer = {
  setNext(next) { this.next = next; },
  async execute(context) {
    context.options = context.options || {};
    const headers = context.options.headers;
    if (headers instanceof Headers) headers.set("Authorization", "Bearer x");
    else context.options.headers = { ...(headers || {}), Authorization: "Bearer x" };
    return this.next.execute(context);
  },
};
const client = Client.initWithMiddleware({
  baseUrl: url, defaultVersion: "v1.0",
  middleware: [new AuthenticationHandler(authProvider), new RetryHandler(), new RedirectHandler(),
               new TelemetryHandler(), bearer, new HTTPMessageHandler()],
});

(async () => {
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < n; i++) {
    const call = await client.api("/communications/calls").post(body);
    if (typeof call.id !== "string") throw new Error(`request ${i + 1}: no id`);
  }
  process.stdout.write(`elapsed ${(Number(process.hrtime.bigint() - t0) / 1e9).toFixed(6)}\n`);
})().catch((e) => { console.error(e); process.exit(1); });
