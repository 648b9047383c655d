'use strict';
// A plain CommonJS app: writes to stdout and stderr, keeps its loop busy with
// timers for a while (so that the agent connects and reports), then exits 3
// on its own.
let n = 0;
console.log('plain: start', typeof require, process.env.NODE_OPTIONS === undefined ? 'no NODE_OPTIONS' : 'NODE_OPTIONS=' + process.env.NODE_OPTIONS);
console.error('plain: to stderr');
console.log('pilot vars:', Object.keys(process.env).filter((k) => k.startsWith('PILOT_NODE')).join(',') || 'none');
const t = setInterval(() => {
  n++;
  process.stdout.write(`tick ${n}\n`);
  if (n === 3) {
    clearInterval(t);
    process.exitCode = 3;
  }
}, Number(process.env.TICK_MS || 500));
