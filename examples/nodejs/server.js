'use strict';
// A small HTTP service written the way pilot expects a Node app to behave:
// it answers /health, and on SIGTERM it stops accepting connections, lets
// in-flight requests finish, and exits 0.
const http = require('node:http');
const fs = require('node:fs');

const port = Number(process.env.PORT || 3000);
const slowMs = Number(process.env.SLOW_MS || 0); // to demo draining
// While this file exists /health answers 503: a way to see what pilot,
// Consul and Docker do when the app turns unhealthy, without breaking it:
//   docker exec CONTAINER touch /tmp/app-down   # then rm it to recover
const downFile = process.env.DOWN_FILE || '/tmp/app-down';
let inFlight = 0;

const server = http.createServer((req, res) => {
  if (req.url === '/health') {
    if (fs.existsSync(downFile)) {
      res.writeHead(503, { 'content-type': 'text/plain' });
      res.end(`down (${downFile} exists)\n`);
      return;
    }
    res.writeHead(200, { 'content-type': 'text/plain' });
    res.end('ok\n');
    return;
  }
  inFlight++;
  setTimeout(() => {
    res.writeHead(200, { 'content-type': 'application/json', connection: 'close' });
    res.end(JSON.stringify({ hello: 'world', pid: process.pid, host: require('node:os').hostname() }) + '\n');
    inFlight--;
  }, slowMs);
});

server.keepAliveTimeout = 5000;
server.listen(port, () => {
  console.log(`listening on :${port} (pid ${process.pid})`);
});

function shutdown(signal) {
  console.log(`${signal}: closing, ${inFlight} request(s) in flight`);
  server.close(() => {
    console.log('all requests done, exiting');
    process.exit(0);
  });
  server.closeIdleConnections();
}
process.on('SIGTERM', shutdown);
process.on('SIGINT', shutdown);
