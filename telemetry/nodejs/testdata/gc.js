'use strict';
// Run with --expose-gc: on "go" forces a few major GCs and allocates enough
// for minor ones, says "collected", then stays until stdin closes.
process.stdin.setEncoding('utf8');
let keep = [];
process.stdin.on('data', (d) => {
  if (!d.includes('go')) return;
  for (let i = 0; i < 50; i++) {
    keep.push(new Array(10000).fill(i));
    if (keep.length > 20) keep = [];
  }
  for (let i = 0; i < 3; i++) global.gc();
  console.log('collected');
});
process.stdin.on('end', () => process.exit(0));
