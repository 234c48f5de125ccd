/**
 * The caller's side of the reconstruction worker: a Comlink wrapper that forwards
 * progress, cancels through an AbortSignal, and rejects pending calls when the worker
 * ends instead of leaving them hanging.
 */
import * as Comlink from 'comlink';

import type { AdapterDescription } from './node-gpu.js';
import type { ReconstructionOptions } from './options.js';
import { installErrorHandler, WorkerTerminatedError, type WorkerApi } from './protocol.js';
import type { Progress, ReconstructionResult, Stack } from './reconstruct.js';

export interface RunOptions {
  onProgress?: (progress: Progress) => void;
  /** Aborting cancels the run after its current step; the promise resolves with the partial result. */
  signal?: AbortSignal;
}

export interface Reconstructor {
  adapter(): Promise<AdapterDescription>;
  /** Imports plugin modules into the worker; see WorkerApi.loadModules. */
  loadModules(urls: string[]): Promise<void>;
  /** Runs a reconstruction in the worker. The stack is copied, so the caller's array stays usable. */
  reconstruct(stack: Stack, options?: ReconstructionOptions, run?: RunOptions): Promise<ReconstructionResult>;
  cancel(): Promise<void>;
  /** Holds the running reconstruction after its current step; `resume` lets it go on and `cancel` still works. */
  pause(): Promise<void>;
  resume(): Promise<void>;
  /** Ends the worker; pending calls reject with WorkerTerminatedError. */
  terminate(): Promise<void>;
}

/** The parts of a worker that `wrapWorker` needs. */
export interface WorkerHandle {
  endpoint: Comlink.Endpoint;
  terminate(): Promise<void> | void;
  /** Registers a listener for the worker's end, with a reason for the error message. */
  onExit(listener: (reason: string) => void): void;
}

/** How long `terminate` waits for the worker to stop its run and release the device. */
const SHUTDOWN_TIMEOUT_MS = 30_000;

function withTimeout<T>(promise: Promise<T>, milliseconds: number): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`timed out after ${milliseconds} ms`)), milliseconds);
    promise.then(resolve, reject).finally(() => clearTimeout(timer));
  });
}

export function wrapWorker(handle: WorkerHandle): Reconstructor {
  installErrorHandler();
  const remote = Comlink.wrap<WorkerApi>(handle.endpoint);
  const pending = new Set<(error: Error) => void>();
  let ended: string | undefined;
  let terminated = false;
  const end = (reason: string) => {
    ended ??= reason;
    for (const reject of pending) reject(new WorkerTerminatedError(`the reconstruction worker ended: ${reason}`));
    pending.clear();
  };
  handle.onExit(end);

  /** Starts a remote call unless the worker has ended, and races it against the worker's end. */
  function call<T>(start: () => Promise<T>): Promise<T> {
    if (ended) return Promise.reject(new WorkerTerminatedError(`the reconstruction worker ended: ${ended}`));
    return new Promise<T>((resolve, reject) => {
      pending.add(reject);
      start()
        .then(resolve, reject)
        .finally(() => pending.delete(reject));
    });
  }

  return {
    adapter: () => call(() => remote.adapter()),
    loadModules: (urls) => call(() => remote.loadModules(urls)),
    async reconstruct(stack, options = {}, run = {}) {
      const copy: Stack = { images: stack.images.slice(), size: stack.size };
      const onAbort = () => void remote.cancel();
      const progress = run.onProgress ? Comlink.proxy(run.onProgress) : undefined;
      // The cancel message must follow the reconstruct message, which the worker handles first.
      const pendingRun = call(() => remote.reconstruct(Comlink.transfer(copy, [copy.images.buffer]), options, progress));
      if (run.signal?.aborted) onAbort();
      else run.signal?.addEventListener('abort', onAbort, { once: true });
      try {
        return await pendingRun;
      } finally {
        run.signal?.removeEventListener('abort', onAbort);
      }
    },
    cancel: () => call(() => remote.cancel()),
    pause: () => call(() => remote.pause()),
    resume: () => call(() => remote.resume()),
    async terminate() {
      if (terminated) return;
      terminated = true;
      end('terminated by the caller');
      try {
        await withTimeout(remote.shutdown(), SHUTDOWN_TIMEOUT_MS);
      } catch {
        // A worker that does not shut down in time is terminated all the same.
      }
      remote[Comlink.releaseProxy]();
      await handle.terminate();
    },
  };
}

/**
 * Drives a browser module worker running `worker-browser`. Without an argument it starts
 * `./worker-browser.js` beside this module, which resolves from the built package in
 * dist/. A page that bundles the TypeScript sources starts the worker itself, with
 * `new Worker(new URL('…/src/worker-browser.ts', import.meta.url), { type: 'module' })`,
 * so that its bundler finds the file, and passes it here.
 */
export function createBrowserReconstructor(worker?: Worker): Reconstructor {
  worker ??= new Worker(new URL('./worker-browser.js', import.meta.url), { type: 'module' });
  const listeners: ((reason: string) => void)[] = [];
  worker.addEventListener('error', (event) => listeners.forEach((listener) => listener(event.message || 'worker error')));
  return wrapWorker({
    endpoint: worker,
    terminate: () => worker.terminate(),
    onExit: (listener) => listeners.push(listener),
  });
}
