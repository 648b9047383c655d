'use strict';
// Waits for "go" on stdin, then blocks its event loop for BLOCK_MS, says
// "unblocked", and stays (timers) until stdin closes.
const blockMs = Number(process.env.BLOCK_MS || 2000);
let buf = '';
process.stdin.setEncoding('utf8');
process.stdin.on('data', (d) => {
  buf += d;
  if (buf.includes('go\n')) {
    buf = '';
    const end = Date.now() + blockMs;
    while (Date.now() < end) { /* busy */ }
    console.log('unblocked');
  }
});
process.stdin.on('end', () => process.exit(0));
