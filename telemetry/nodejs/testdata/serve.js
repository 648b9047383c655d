'use strict';
// An app written for a fixed port, unaware of pilot: it listens on PORT
// (HOST when set) with FRAMEWORK = http (default), express, fastify, or fd
// (it takes fd 3 itself), answers every request with its pid, and also
// listens on OTHER_PORT when set (a port pilot does not hold). READY=1:
// process.send('ready') once listening. APP_SIGTERM=1: its own SIGTERM
// handler, which says "app: sigterm", waits until its server has no
// connection left, says "app: drained" and exits 7 when stdin closes.
// Without it, the app exits 0 when stdin closes.
const http = require('node:http');

const port = process.env.PORT;
const host = process.env.HOST || undefined;
const fw = process.env.FRAMEWORK || 'http';
const say = (m) => process.stdout.write(m + '\n');

function handler(req, res) {
  const body = String(process.pid);
  // A little work, so that requests are in flight when SIGTERM lands.
  setTimeout(() => res.end(body), Number(process.env.DELAY_MS || 0));
}

function listening(server, what) {
  const a = server.address();
  say(`listening ${what} ${a.address} ${a.port}`);
  if (process.env.READY === '1') process.send('ready');
}

let main;
if (fw === 'express' || fw === 'fastify') {
  const mod = require(require.resolve(fw, { paths: [process.env.FW_DIR] }));
  if (fw === 'express') {
    const app = mod();
    app.get('/', handler);
    main = app.listen(Number(port), host, () => listening(main, 'express'));
  } else {
    const app = mod();
    app.get('/', (req, reply) => {
      setTimeout(() => reply.send(String(process.pid)), Number(process.env.DELAY_MS || 0));
    });
    app.listen({ port: Number(port), host: host }).then(() => { main = app.server; listening(main, 'fastify'); },
      (err) => { say('fastify error ' + err.message); process.exit(1); });
  }
} else {
  main = http.createServer(handler);
  if (fw === 'fd') main.listen({ fd: 3 }, () => listening(main, 'fd'));
  else if (host) main.listen(port, host, () => listening(main, 'http'));
  else main.listen(port, () => listening(main, 'http'));
}

if (process.env.OTHER_PORT) {
  const other = http.createServer(handler);
  other.listen(Number(process.env.OTHER_PORT), '127.0.0.1', () => say(`other ${other.address().port}`));
}

if (process.env.APP_SIGTERM === '1') {
  process.on('SIGTERM', () => {
    say('app: sigterm');
    const t = setInterval(() => {
      const s = main;
      s.getConnections((err, n) => {
        if (!err && n === 0 && !s.listening) { clearInterval(t); say('app: drained'); }
      });
    }, 20);
  });
}
process.stdin.resume();
process.stdin.on('end', () => process.exit(process.env.APP_SIGTERM === '1' ? 7 : 0));
