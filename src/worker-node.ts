/** Node worker_threads entry: WebGPU from Dawn, falling back to SwiftShader. */
import { parentPort } from 'node:worker_threads';

import nodeEndpoint from 'comlink/dist/esm/node-adapter.mjs';

import { describeAdapter, requestNodeGpu } from './node-gpu.js';
import { serveReconstruction } from './worker-core.js';

if (!parentPort) {
  throw new Error('worker-node: load this module with new Worker(...), not as a main script');
}
serveReconstruction(nodeEndpoint(parentPort), async () => {
  const gpu = await requestNodeGpu();
  return { device: gpu.device, info: describeAdapter(gpu.adapter) };
});
