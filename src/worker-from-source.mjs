// Starts a TypeScript worker module from source: registers tsx's loader in this worker
// thread, then imports workerData.target. Node 20 ignores `--import` in a worker's
// execArgv, so the loader cannot be passed there. Used only when running from src/
// (tests, tsx); the built package starts dist/src/worker-node.js directly.
import { workerData } from 'node:worker_threads';
import { register } from 'tsx/esm/api';

register();
await import(workerData.target);
