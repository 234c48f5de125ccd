/** Starts the reconstruction worker on a Node worker thread. */
import { Worker } from 'node:worker_threads';

import nodeEndpoint from 'comlink/dist/esm/node-adapter.mjs';

import { wrapWorker, type Reconstructor } from './client.js';
import { selectVulkanDriver } from './node-gpu.js';

/**
 * Starts `worker-node` beside this module, after choosing the Vulkan driver on this
 * thread (see selectVulkanDriver). Run from TypeScript sources (tests, tsx), the worker
 * loads them through tsx's loader, which must then be installed.
 */
export async function createNodeReconstructor(): Promise<Reconstructor> {
  await selectVulkanDriver();
  const worker = import.meta.url.endsWith('.ts')
    ? new Worker(new URL('./worker-from-source.mjs', import.meta.url), {
        workerData: { target: new URL('./worker-node.ts', import.meta.url).href },
      })
    : new Worker(new URL('./worker-node.js', import.meta.url));
  const listeners: ((reason: string) => void)[] = [];
  const notify = (reason: string) => listeners.forEach((listener) => listener(reason));
  worker.on('error', (error) => notify(`${error.name}: ${error.message}`));
  worker.on('exit', (code) => notify(`exit code ${code}`));
  return wrapWorker({
    endpoint: nodeEndpoint(worker),
    terminate: async () => {
      await worker.terminate();
    },
    onExit: (listener) => listeners.push(listener),
  });
}
