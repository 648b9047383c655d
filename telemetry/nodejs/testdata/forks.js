'use strict';
// An app that starts Node children: child_process.fork of itself and a spawn
// of `node -e`. Each child prints what it sees of pilot's agent; none of them
// must load it. LEAK_ENV (JSON), when set, is an environment the app hands
// to one more child on purpose, to prove that pilot refuses a child that
// does load the agent.
const { fork, spawn, spawnSync } = require('node:child_process');

if (process.argv[2] === 'child') {
  const seen = Object.keys(process.env).filter((k) => k.startsWith('PILOT_NODE')).join(',') || 'none';
  console.log(`fork child: NODE_OPTIONS=${process.env.NODE_OPTIONS ?? '(unset)'} pilot vars=${seen} agent=${!!globalThis[Symbol.for('pilot.nodejs.agent')]}`);
  setTimeout(() => process.exit(0), Number(process.env.CHILD_MS || 1200));
  return;
}
if (process.argv[2] === 'leak') {
  // Stay until the parent says so (stdin closes), so that it can report.
  process.stdin.resume();
  process.stdin.on('end', () => process.exit(0));
  return;
}

console.log('forks: start');
const code = "console.log('spawn child: NODE_OPTIONS=' + (process.env.NODE_OPTIONS ?? '(unset)') + ' agent=' + !!globalThis[Symbol.for('pilot.nodejs.agent')])";
const r = spawnSync(process.execPath, ['-e', code], { encoding: 'utf8' });
process.stdout.write(r.stdout);

let leak = null;
if (process.env.LEAK_ENV) {
  leak = spawn(process.execPath, [__filename, 'leak'], { env: JSON.parse(process.env.LEAK_ENV), stdio: ['pipe', 'inherit', 'inherit'] });
  console.error('leak pid ' + leak.pid);
}
const child = fork(__filename, ['child']);
child.on('exit', (c) => {
  console.log('fork child exited', c);
  const s = spawn(process.execPath, ['-e', code], { stdio: 'inherit' });
  s.on('exit', (c2) => {
    console.log('spawn child exited', c2);
    if (leak) leak.stdin.end();
  });
});
