/**
 * The protocol between a caller and the reconstruction worker: the API the worker
 * exposes through Comlink, and how errors cross the boundary.
 *
 * Errors keep their class (by name, for the classes listed in ERROR_CLASSES), message,
 * stack and own enumerable fields. Comlink's own handler would turn every error into a
 * plain Error whose name merely says what it was.
 */
import * as Comlink from 'comlink';

import { GpuError } from '../gpu/engine.js';
import { MrcError } from './mrc.js';
import { PngError } from './png.js';
import { StarError } from './star.js';
import type { AdapterDescription } from './node-gpu.js';
import type { ReconstructionOptions } from './options.js';
import type { Progress, ReconstructionResult, Stack } from './reconstruct.js';

/** The API the worker exposes. Each method runs in the worker; results are structured clones. */
export interface WorkerApi {
  /** The adapter the worker's device runs on. */
  adapter(): Promise<AdapterDescription>;
  /**
   * Imports modules into the worker, in order; a plugin module registers its plugins on
   * import (`optimisers.register(...)`), so later runs in this worker can name them.
   * @param urls absolute module URLs, e.g. `new URL('./my-plugin.js', import.meta.url).href`
   */
  loadModules(urls: string[]): Promise<void>;
  /**
   * Runs one reconstruction. `onProgress` is a Comlink proxy called after every step.
   * The stack's buffer is transferred to the worker.
   */
  reconstruct(stack: Stack, options: ReconstructionOptions, onProgress?: (progress: Progress) => void): Promise<ReconstructionResult>;
  /** Stops the running reconstruction after its current step; it then resolves with `cancelled: true`. */
  cancel(): void;
  /** Holds the running reconstruction after its current step until `resume`; a paused run can still be cancelled. */
  pause(): void;
  /** Lets a paused reconstruction go on. */
  resume(): void;
  /**
   * Cancels any run, waits for it to stop and destroys the device, so the worker can be
   * terminated safely: terminating a worker while Dawn has work in flight aborts the
   * whole process (seen with webgpu 0.6.2).
   */
  shutdown(): Promise<void>;
}

/** Raised on the caller's side when the worker ends with a call still pending. */
export class WorkerTerminatedError extends Error {
  override name = 'WorkerTerminatedError';
}

const ERROR_CLASSES: Record<string, new (message: string) => Error> = {
  Error,
  RangeError,
  TypeError,
  GpuError,
  MrcError,
  PngError,
  StarError,
  WorkerTerminatedError,
};

interface SerializedError {
  isError: true;
  name: string;
  message: string;
  stack?: string;
  fields: Record<string, unknown>;
}

type ThrownValue = { value: unknown };

/** Comlink's own handler, whose test recognises a thrown value by a marker it does not export. */
const comlinkThrowHandler = Comlink.transferHandlers.get('throw') as Comlink.TransferHandler<unknown, unknown>;

/** Installs the error handler; both sides call it before any message is sent. */
export function installErrorHandler(): void {
  const handler: Comlink.TransferHandler<ThrownValue, SerializedError | { isError: false; value: unknown }> = {
    canHandle: (value): value is ThrownValue => comlinkThrowHandler.canHandle(value),
    serialize({ value }) {
      if (value instanceof Error) {
        const fields: Record<string, unknown> = {};
        for (const [key, field] of Object.entries(value)) {
          if (key !== 'name' && key !== 'message' && key !== 'stack') fields[key] = field;
        }
        return [{ isError: true, name: value.name, message: value.message, stack: value.stack, fields }, []];
      }
      return [{ isError: false, value }, []];
    },
    deserialize(serialized) {
      if (!serialized.isError) throw serialized.value;
      const ErrorClass = ERROR_CLASSES[serialized.name] ?? Error;
      const error = new ErrorClass(serialized.message);
      Object.assign(error, serialized.fields);
      if (error.name !== serialized.name) Object.defineProperty(error, 'name', { value: serialized.name });
      if (serialized.stack) error.stack = serialized.stack;
      throw error;
    },
  };
  Comlink.transferHandlers.set('throw', handler as Comlink.TransferHandler<unknown, unknown>);
}
