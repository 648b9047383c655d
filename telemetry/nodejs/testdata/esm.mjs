// An ES-module app: top-level await, import.meta, then a clean exit.
import { setTimeout as sleep } from 'node:timers/promises';
console.log('esm: start', typeof require, import.meta.url.endsWith('esm.mjs'));
console.log('NODE_OPTIONS:', process.env.NODE_OPTIONS ?? '(unset)');
await sleep(Number(process.env.WAIT_MS || 1500));
console.error('esm: done');
