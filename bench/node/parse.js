// Notification parsing in-process with JSON.parse, extracting the same
// fields as graphcall.parse_notifications (change_type, resource_url,
// call_id, kind, state, ...), for SECONDS of the main thread's CPU time
// after a warm-up. Prints "rate <notifications per second>".
//   node parse.js FIXTURE SECONDS
"use strict";
const fs = require("fs");

const [fixture, secondsText] = process.argv.slice(2);
const seconds = Number(secondsText || "1");
const body = fs.readFileSync(fixture, "utf8");

function str(v, what) {
  if (v === undefined || v === null) return undefined;
  if (typeof v !== "string") throw new Error(`${what}: expected a string`);
  return v;
}
const lowerFirst = (s) => (s === undefined ? undefined : s.charAt(0).toLowerCase() + s.slice(1));
const CALL = /\/calls\/([^/]+)(.*)$/;

function extract(item) {
  const ct = str(item.changeType, "changeType");
  if (ct === undefined) return null;
  const n = { change_type: ct.toLowerCase() };
  n.resource = str(item.resource, "resource");
  n.resource_url = str(item.resourceUrl, "resourceUrl") || n.resource;
  n.callback_uri = str(item.callbackUri, "callbackUri");
  if (!n.resource_url) return null;
  const m = CALL.exec(n.resource_url);
  let kind = "other";
  if (m) {
    n.call_id = m[1];
    const rest = m[2];
    if (rest === "" || rest === "/") kind = "call";
    else if (/^\/participants(\/|$)/.test(rest)) kind = "participants";
    else if (/^\/operations\/./.test(rest)) { kind = "operation"; n.operation_id = rest.slice(12); }
    else if (/^\/contentsharingsessions/i.test(rest)) kind = "content_sharing";
  }
  n.kind = kind;
  const data = item.resourceData;
  if (data !== null && typeof data === "object") {
    n.resource_data = data;
    if (Array.isArray(data)) {
      if (data.length && typeof data[0] === "object") n.odata_type = str(data[0]["@odata.type"], "@odata.type");
    } else {
      n.odata_type = str(data["@odata.type"], "@odata.type");
      n.etag = str(data["@odata.etag"], "@odata.etag");
      n.state = lowerFirst(str(data.state, "state"));
      n.direction = lowerFirst(str(data.direction, "direction"));
      n.status = lowerFirst(str(data.status, "status"));
      n.client_context = str(data.clientContext, "clientContext");
      const ri = data.resultInfo;
      if (ri !== null && typeof ri === "object") {
        n.result_info = { code: Number(ri.code), subcode: Number(ri.subcode ?? ri.subCode), message: str(ri.message, "message") };
      }
    }
  }
  return n;
}

function parse(text) {
  const doc = JSON.parse(text);
  if (doc === null || typeof doc !== "object" || !Array.isArray(doc.value)) return null;
  const out = [];
  for (const item of doc.value) {
    const n = item !== null && typeof item === "object" ? extract(item) : null;
    if (!n) return null;
    out.push(n);
  }
  return out;
}

let sink = 0;
function round() {
  const batch = parse(body);
  for (let i = 0; i < batch.length; i++) {
    const n = batch[i];
    if (n.change_type && n.call_id && n.kind && (n.state || n.odata_type)) sink++;
  }
}

// CPU time of this thread only would need a native module; the whole
// process's CPU time also counts V8's helper threads (GC), which is fair.
const cpu = () => { const u = process.cpuUsage(); return (u.user + u.system) / 1e6; };
let t = cpu();
while (cpu() - t < 0.1) for (let i = 0; i < 200; i++) round();
let count = 0;
const t0 = cpu();
do {
  for (let i = 0; i < 200; i++) round();
  count += 200;
} while (cpu() - t0 < seconds);
const elapsed = cpu() - t0;
if (sink === 0) throw new Error("nothing parsed");
process.stdout.write(`rate ${(count / elapsed).toFixed(1)}\n`);
