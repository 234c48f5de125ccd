/**
 * One classify2d reconstruction in this process, timed at every epoch end and at the
 * snapshots between them and scored against the truth there, with the scoring time kept
 * off the clock.
 */
import type { KernelChoice, ReconstructionOptions } from '../../src/options.js';
import { resolveOptions } from '../../src/options.js';
import { reconstruct, type Progress, type ReconstructionResult, type Stack } from '../../src/reconstruct.js';
import { scoreAgainstTruth, type Checkpoint, type MethodResult, type Probe } from './results.js';

/** Seconds between progress lines on stderr within an epoch or the initialisation. */
const LOG_INTERVAL = 60;

export interface Classify2dRun {
  result: MethodResult;
  /** The final template [N, N], absent when the run failed. */
  template?: Float32Array;
  /** θ [N, N] at the end of epoch 1, absent when no epoch finished. */
  firstEpochTemplate?: Float32Array;
  /** Each epoch's σ estimate at its last step. */
  sigmaPerEpoch: number[];
  converged: boolean;
}

/** Most θ snapshots per epoch, the epoch end included. */
const PROBES_PER_EPOCH = 8;

/**
 * Returns the steps between θ snapshots: the smallest divisor of the steps per epoch that
 * is at least 1/PROBES_PER_EPOCH of them, so that every epoch end is a snapshot.
 */
export function snapshotInterval(stepsPerEpoch: number): number {
  for (let steps = Math.ceil(stepsPerEpoch / PROBES_PER_EPOCH); steps < stepsPerEpoch; steps++) {
    if (stepsPerEpoch % steps === 0) return steps;
  }
  return stepsPerEpoch;
}

/**
 * Returns the option set of one kernel's run: `base` with the kernel, its epoch limit and
 * θ snapshots at up to PROBES_PER_EPOCH steps of every epoch, its last step among them.
 * Every epoch has ⌈n / batch size⌉ steps, so the multiples of that count are the epoch ends.
 * @throws RangeError from resolveOptions for an option it rejects
 */
export function kernelOptions(base: ReconstructionOptions, kernel: KernelChoice, maxEpochs: number, size: number, images: number): ReconstructionOptions {
  const { batchSize } = resolveOptions(base, size, images);
  return { ...base, kernel, maxEpochs, snapshotEvery: snapshotInterval(Math.ceil(images / batchSize)) };
}

/**
 * Runs `reconstruct` on `device` and records, at each epoch end, the wall time since the
 * call and r against `truth`, and r at the snapshots between epoch ends as probes. The epoch's stamp is taken at its last step's progress
 * event, so the window refinement and convergence test after that step count towards the
 * next epoch. A failed run returns the epochs finished before it, with the error.
 */
export async function runClassify2d(
  device: GPUDevice,
  stack: Stack,
  truth: Float32Array,
  options: ReconstructionOptions,
  method: string,
  log: (message: string) => void,
): Promise<Classify2dRun> {
  const pixels = stack.size * stack.size;
  const stepsPerEpoch = Math.ceil(stack.images.length / pixels / resolveOptions(options, stack.size, stack.images.length / pixels).batchSize);
  const checkpoints: Checkpoint[] = [];
  const probes: Probe[] = [];
  const sigmaPerEpoch: number[] = [];
  let firstEpochTemplate: Float32Array | undefined;
  let scoringMs = 0;
  let trainingStart: number | null = null;
  let lastLog = 0;
  const started = performance.now();
  const clock = () => (performance.now() - started - scoringMs) / 1000;

  const onProgress = (progress: Progress) => {
    // Split-half runs would restart the epoch count, and the benchmark times the full stack only.
    if (progress.phase !== 'full') return;
    const wall = clock();
    // No scoring time is subtracted before the first epoch end, so the engine's elapsedSeconds
    // places the start of training on this clock.
    if (trainingStart === null) trainingStart = wall - progress.elapsedSeconds;
    if (progress.template === undefined) {
      if (wall - lastLog >= LOG_INTERVAL) {
        lastLog = wall;
        log(`${method}: epoch ${progress.epoch}, step ${progress.step}/${progress.totalSteps} at ${wall.toFixed(1)} s, about ${progress.remainingSeconds.toFixed(0)} s left if every epoch runs`);
      }
      return;
    }
    if (progress.step % stepsPerEpoch !== 0) {
      // A snapshot inside the epoch: scored for the time to the target only.
      const scoringStart = performance.now();
      try {
        const { r } = scoreAgainstTruth(truth, progress.template.subarray(0, pixels), stack.size);
        probes.push({ epoch: progress.epoch, step: progress.step, wallSeconds: wall, r });
      } catch {
        // θ = 0 cannot be aligned; the epoch-end checkpoint records such errors.
      }
      scoringMs += performance.now() - scoringStart;
      return;
    }
    const previous = checkpoints.at(-1)?.wallSeconds ?? trainingStart;
    const checkpoint: Checkpoint = { index: progress.epoch, wallSeconds: wall, durationSeconds: wall - previous, r: null, gain: null };
    const scoringStart = performance.now();
    try {
      Object.assign(checkpoint, scoreAgainstTruth(truth, progress.template.subarray(0, pixels), stack.size));
    } catch (error) {
      // alignTemplates rejects a constant template, such as θ = 0.
      checkpoint.error = `scoring failed: ${(error as Error).message}`;
    }
    scoringMs += performance.now() - scoringStart;
    checkpoints.push(checkpoint);
    sigmaPerEpoch.push(progress.sigma);
    firstEpochTemplate ??= progress.template.slice(0, pixels);
    lastLog = wall;
    const r = checkpoint.r === null ? checkpoint.error : `r ${checkpoint.r.toFixed(4)}`;
    log(`${method}: epoch ${progress.epoch} done at ${wall.toFixed(1)} s (${(wall - previous).toFixed(1)} s), ${r}, σ ${progress.sigma.toPrecision(4)}`);
  };

  // reconstruct sends no progress before the first step, and the initialisation can take
  // minutes, so a timer reports it.
  const heartbeat = setInterval(() => {
    if (trainingStart === null) log(`${method}: initialising (initial template and objective) for ${clock().toFixed(0)} s`);
  }, LOG_INTERVAL * 1000);
  let outcome: ReconstructionResult;
  try {
    outcome = await reconstruct(device, stack, options, { onProgress });
  } catch (error) {
    clearInterval(heartbeat);
    const message = error instanceof Error ? `${error.name}: ${error.message}` : String(error);
    log(`${method}: failed after ${clock().toFixed(1)} s: ${message}`);
    return {
      result: { method, unit: 'epoch', error: message, checkpoints, probes, totalSeconds: clock(), setupSeconds: trainingStart, notes: [] },
      firstEpochTemplate,
      sigmaPerEpoch,
      converged: false,
    };
  }
  const totalSeconds = clock();
  clearInterval(heartbeat);
  const notes = [...outcome.notices];
  if (outcome.epochs !== checkpoints.length) {
    notes.push(`the run reports ${outcome.epochs} epochs, but ${checkpoints.length} epoch-end snapshots arrived`);
  }
  return {
    result: { method, unit: 'epoch', checkpoints, probes, totalSeconds, setupSeconds: trainingStart, notes },
    template: outcome.template,
    firstEpochTemplate,
    sigmaPerEpoch,
    converged: outcome.converged,
  };
}

/** Returns whether two runs ended epoch 1 with bit-identical templates. */
export function sameFirstEpoch(a: Classify2dRun, b: Classify2dRun): boolean {
  const first = a.firstEpochTemplate;
  const second = b.firstEpochTemplate;
  if (first === undefined || second === undefined || first.length !== second.length) return false;
  return first.every((value, i) => Object.is(value, second[i]));
}
