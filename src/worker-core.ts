/**
 * The worker side, shared by the browser and Node entries: one device per worker, one
 * reconstruction at a time.
 */
import * as Comlink from 'comlink';

import type { AdapterDescription } from './node-gpu.js';
import { installErrorHandler, type WorkerApi } from './protocol.js';
import { reconstruct, type Progress } from './reconstruct.js';

export interface WorkerDevice {
  device: GPUDevice;
  info: AdapterDescription;
}

/** Exposes the reconstruction API on `endpoint`, opening the device on first use. */
export function serveReconstruction(endpoint: Comlink.Endpoint, openDevice: () => Promise<WorkerDevice>): void {
  installErrorHandler();
  let gpu: Promise<WorkerDevice> | undefined;
  let running: AbortController | undefined;
  let finished: Promise<unknown> = Promise.resolve();
  // Set while paused: resolving it releases the run.
  let release: (() => void) | undefined;
  let paused: Promise<void> | undefined;
  const resume = () => {
    release?.();
    release = undefined;
    paused = undefined;
  };
  const device = () => (gpu ??= openDevice());
  const api: WorkerApi = {
    async adapter() {
      return (await device()).info;
    },
    async loadModules(urls) {
      for (const url of urls) {
        try {
          await import(/* @vite-ignore */ url);
        } catch (error) {
          const detail = error instanceof Error ? error.message : String(error);
          throw new Error(`loadModules: importing ${url} failed: ${detail}`);
        }
      }
    },
    async reconstruct(stack, options, onProgress) {
      if (running) {
        throw new Error('reconstruct: a reconstruction is already running in this worker; cancel it or use another worker');
      }
      const controller = new AbortController();
      running = controller;
      controller.signal.addEventListener('abort', resume, { once: true });
      // A callback that throws on the caller's side stops the run with its error. Left
      // unhandled here, the rejection would end the thread with Dawn work in flight.
      let callbackError: unknown;
      const report = (progress: Progress) => {
        Promise.resolve(onProgress?.(progress)).catch((error: unknown) => {
          callbackError ??= error;
          controller.abort();
        });
      };
      const run = (async () => {
        const { device: gpuDevice } = await device();
        return reconstruct(gpuDevice, stack, options, {
          signal: controller.signal,
          onProgress: onProgress ? report : undefined,
          whilePaused: async () => paused,
        });
      })();
      finished = run.catch(() => undefined);
      try {
        const result = await run;
        if (callbackError !== undefined) throw callbackError;
        return Comlink.transfer(result, [result.template.buffer, result.templates.buffer]);
      } finally {
        running = undefined;
        resume();
      }
    },
    cancel() {
      running?.abort();
    },
    pause() {
      if (!running || paused) return;
      paused = new Promise<void>((resolve) => (release = resolve));
    },
    resume,
    async shutdown() {
      running?.abort();
      await finished;
      if (gpu) (await gpu.catch(() => undefined))?.device.destroy();
    },
  };
  Comlink.expose(api, endpoint);
}
