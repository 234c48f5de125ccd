/**
 * Figures of one method's run in the end-to-end benchmark, and the scoring against the
 * truth that both methods share.
 */
import { alignTemplates } from '../../src/metrics.js';

/** Pearson r at which a reconstruction counts as recovered. */
export const TARGET_R = 0.8;

/** The state after one epoch (classify2d) or one iteration (RELION). */
export interface Checkpoint {
  /** Epoch or iteration number. RELION's iteration 0 is its initial reference. */
  index: number;
  /** Wall time from the start of the run to the end of this epoch or iteration, seconds. */
  wallSeconds: number;
  /** Wall time since the previous checkpoint, or since the run started for the first one, seconds. */
  durationSeconds: number;
  /** Pearson r against the truth after alignment, or null when the template could not be read. */
  r: number | null;
  /** Least-squares gain g in aligned template ≈ g · truth + offset, or null when r is null. */
  gain: number | null;
  /** Why r is missing, such as an MRC reader error. */
  error?: string;
}

/** A θ snapshot scored inside an epoch: classify2d's finer clock for the time to TARGET_R. */
export interface Probe {
  epoch: number;
  /** Steps done in the run, from 1. */
  step: number;
  wallSeconds: number;
  r: number;
}

export interface MethodResult {
  /** Row label, such as 'classify2d fft' or 'RELION 3.1.3'. */
  method: string;
  unit: 'epoch' | 'iteration';
  /** Snapshots scored between epoch ends, in order; absent for RELION, whose unit is the iteration. */
  probes?: Probe[];
  /** Present when the run failed. The figures then cover what finished before the failure. */
  error?: string;
  checkpoints: Checkpoint[];
  /** Wall time of the whole run, seconds: the reconstruct call, or RELION from spawn to exit. */
  totalSeconds: number;
  /**
   * Wall time before the first timed epoch or iteration, seconds: classify2d's
   * initialisation and initial objective pass, RELION's start-up to its iteration 0 files.
   */
  setupSeconds: number | null;
  /** Messages worth reading beside the figures, such as reader warnings. */
  notes: string[];
}

export interface TemplateScore {
  r: number;
  gain: number;
}

/**
 * Aligns `template` onto `truth` (rotation, shift and scale) and returns Pearson r with
 * the gain of a least-squares fit of the aligned template on the truth. r ignores the
 * intensity scale of the template, and the gain measures it.
 */
export function scoreAgainstTruth(truth: Float32Array, template: ArrayLike<number>, size: number): TemplateScore {
  const { r, aligned } = alignTemplates(truth, template, size);
  let truthMean = 0;
  let alignedMean = 0;
  for (let i = 0; i < truth.length; i++) {
    truthMean += truth[i];
    alignedMean += aligned[i];
  }
  truthMean /= truth.length;
  alignedMean /= truth.length;
  let cross = 0;
  let truthSquares = 0;
  for (let i = 0; i < truth.length; i++) {
    cross += (aligned[i] - alignedMean) * (truth[i] - truthMean);
    truthSquares += (truth[i] - truthMean) ** 2;
  }
  return { r, gain: cross / truthSquares };
}

/** Returns the first checkpoint whose r reaches TARGET_R, or undefined. */
export function firstOnTarget(result: MethodResult): Checkpoint | undefined {
  return result.checkpoints.find((checkpoint) => checkpoint.r !== null && checkpoint.r >= TARGET_R);
}

/** Returns the first probe whose r reaches TARGET_R if it comes before the first such checkpoint, or undefined. */
export function firstProbeOnTarget(result: MethodResult): Probe | undefined {
  const probe = result.probes?.find((entry) => entry.r >= TARGET_R);
  const checkpoint = firstOnTarget(result);
  if (probe === undefined || (checkpoint !== undefined && checkpoint.wallSeconds <= probe.wallSeconds)) return undefined;
  return probe;
}

/** Returns the last checkpoint that has an r, or undefined. */
export function lastScored(result: MethodResult): Checkpoint | undefined {
  return result.checkpoints.filter((checkpoint) => checkpoint.r !== null).at(-1);
}

/** Returns the checkpoints that time one whole epoch or iteration: all but RELION's iteration 0. */
export function timedCheckpoints(result: MethodResult): Checkpoint[] {
  return result.checkpoints.filter((checkpoint) => checkpoint.index >= 1);
}

/** Returns the mean wall time of one epoch or iteration in seconds, or null when none finished. */
export function meanDuration(result: MethodResult): number | null {
  const timed = timedCheckpoints(result);
  if (timed.length === 0) return null;
  return timed.reduce((sum, checkpoint) => sum + checkpoint.durationSeconds, 0) / timed.length;
}
