// Peer: plain Node fetch (undici, keep-alive), N sequential POSTs, each
// body built with JSON.stringify and each answer parsed with res.json().
//   node create_fetch.js URL N
"use strict";
const fs = require("fs");
const path = require("path");

const [url, nText] = process.argv.slice(2);
const n = Number(nText);
const body = JSON.parse(fs.readFileSync(path.join(__dirname, "..", "fixtures", "create_body.json"), "utf8"));
const target = `${url}/v1.0/communications/calls`;

(async () => {
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < n; i++) {
    const res = await fetch(target, {
      method: "POST", body: JSON.stringify(body),
      headers: { Authorization: "Bearer x", Accept: "application/json", "Content-Type": "application/json" },
    });
    const call = await res.json();
    if (res.status !== 201 || typeof call.id !== "string") throw new Error(`request ${i + 1}: HTTP ${res.status}`);
  }
  process.stdout.write(`elapsed ${(Number(process.hrtime.bigint() - t0) / 1e9).toFixed(6)}\n`);
})().catch((e) => { console.error(e); process.exit(1); });
