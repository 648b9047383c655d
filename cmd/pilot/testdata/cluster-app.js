// A Node app as teams write it, unchanged for pilot: it listens on its port
// (pilot's agent hands it the socket pilot holds) and says it is ready the
// PM2 way. It answers with who served the request.
//
//   APP_PORT        the port to listen on
//   NOT_READY_FLAG  a file: while it exists, new processes never say ready
//   GEN             a label echoed back (tells a config reload's processes)
//   GET /grow       keeps 64 MiB more (for maxMemory)
const http = require('http');
const fs = require('fs');

const hog = [];
const server = http.createServer((req, res) => {
  if (req.url === '/grow') hog.push(Buffer.alloc(64 << 20, 1));
  res.setHeader('content-type', 'text/plain');
  res.end(`${process.pid} ${process.env.PILOT_INSTANCE} ${process.env.GEN || ''}\n`);
});
server.listen(Number(process.env.APP_PORT), () => {
  const flag = process.env.NOT_READY_FLAG;
  if (!(flag && fs.existsSync(flag))) process.send('ready');
});
