// Sends events to Vigil with npm @fluent-org/logger in one event mode, with
// acks required: every emit resolves only once Vigil acknowledged it.
//
// Usage: node fluent_org_logger.js HOST PORT TAG MODE COUNT [SHARED_KEY]
// MODE: Message | Forward | PackedForward | CompressedPackedForward.
// With VIGIL_TLS_CA set to a PEM file, connects over TLS trusting that CA.
// Exits 1 if an emit is rejected or not acknowledged in time.
const fs = require("fs");
const { FluentClient, EventTime } = require("@fluent-org/logger");

const [host, port, tag, mode, count, sharedKey] = process.argv.slice(2);
const options = {
  socket: { host, port: Number(port), timeout: 10000 },
  eventMode: mode,
  ack: { ackTimeout: 10000 },
};
if (process.env.VIGIL_TLS_CA) {
  options.socket.tls = { ca: fs.readFileSync(process.env.VIGIL_TLS_CA) };
}
if (sharedKey) {
  options.security = { clientHostname: "node-client", sharedKey };
}

async function main() {
  const client = new FluentClient(tag, options);
  const sent = [];
  for (let i = 0; i < Number(count); i++) {
    const time = i % 2 ? new EventTime(1795168800, i) : 1795168800 + i;
    sent.push(client.emit("node", { message: `${mode}-${i}`, index: i }, time));
  }
  await Promise.all(sent);
  await client.shutdown();
}

main().then(
  () => process.exit(0),
  (error) => {
    console.error(`${mode}: ${error && error.stack ? error.stack : error}`);
    process.exit(1);
  },
);
