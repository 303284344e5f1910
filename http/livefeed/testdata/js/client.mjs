// Connects the real socket.io-client to a PEBA live feed and prints what each
// client receives as JSON lines. Used by socketio_test.go.
//
// usage: node client.mjs <url> <stop-event-id> <spec-json>
// spec: [{"name":..., "opts":{...socket.io-client options...}, "inject":bool}]
// Each client prints {"client","connected"} on connect, {"client","event"}
// per hpfeedevent, {"client","error"} on connect_error, and stops after the
// event whose event_id is <stop-event-id> (or after a connect_error).
import { io } from "socket.io-client";

const [url, stopID, specJSON] = process.argv.slice(2);
const spec = JSON.parse(specJSON);
let pending = spec.length;
const out = (o) => process.stdout.write(JSON.stringify(o) + "\n");
const finish = (sock) => {
  sock.close();
  if (--pending === 0) process.exit(0);
};
setTimeout(() => { out({ timeout: true }); process.exit(2); }, 20000);

for (const c of spec) {
  const sock = io(url, { ...c.opts, reconnection: false, forceNew: true });
  sock.on("connect", () => {
    out({ client: c.name, connected: true, transport: sock.io.engine.transport.name });
    if (c.inject) {
      // SecKC re-broadcast this to every viewer (seckc.md §4.5); we must not.
      sock.emit("hpfeedevent", { src_ip: "192.0.2.99", event_id: "injected", injected: true });
    }
  });
  sock.on("connect_error", (err) => { out({ client: c.name, error: err.message }); finish(sock); });
  sock.on("hpfeedevent", (ev) => {
    out({ client: c.name, event: ev, transport: sock.io.engine.transport.name });
    if (ev.event_id === stopID) finish(sock);
  });
}
