/** The end-to-end benchmark's table and speed ratio, as printed. */
import { firstOnTarget, firstProbeOnTarget, lastScored, meanDuration, TARGET_R, timedCheckpoints, type MethodResult } from './results.js';

function seconds(value: number | null | undefined): string {
  return value === null || value === undefined ? '–' : `${value.toFixed(1)} s`;
}

function describeTarget(result: MethodResult): string {
  const probe = firstProbeOnTarget(result);
  if (probe !== undefined) return `${seconds(probe.wallSeconds)} (epoch ${probe.epoch}, step ${probe.step})`;
  const hit = firstOnTarget(result);
  if (hit !== undefined) return `${seconds(hit.wallSeconds)} (${result.unit} ${hit.index})`;
  return 'not reached';
}

/** Returns the table lines: one row per method, then each method's error and notes. */
export function formatTable(results: readonly MethodResult[]): string[] {
  const header = ['method', `time to r ≥ ${TARGET_R}`, 'final r', 'gain', 'epochs/iter.', 'total', 'per epoch/iter.', 'set-up'];
  const rows = results.map((result) => {
    const last = lastScored(result);
    return [
      result.error === undefined ? result.method : `${result.method} (failed)`,
      describeTarget(result),
      last?.r?.toFixed(4) ?? '–',
      last?.gain?.toPrecision(3) ?? '–',
      String(timedCheckpoints(result).length),
      seconds(result.totalSeconds),
      seconds(meanDuration(result)),
      seconds(result.setupSeconds),
    ];
  });
  const widths = header.map((title, column) => Math.max(title.length, ...rows.map((row) => row[column].length)));
  const format = (row: string[]) => row.map((cell, column) => (column === 0 ? cell.padEnd(widths[column]) : cell.padStart(widths[column]))).join('  ').trimEnd();
  const lines = [format(header), widths.map((width) => '-'.repeat(width)).join('  '), ...rows.map(format)];
  for (const result of results) {
    if (result.error !== undefined) lines.push(`${result.method}: failed: ${result.error}`);
    for (const note of result.notes) lines.push(`${result.method}: ${note}`);
  }
  return lines;
}

/** Per-checkpoint lines of one method: wall time, duration and r of every epoch or iteration. */
export function formatCheckpoints(result: MethodResult): string[] {
  return result.checkpoints.map((checkpoint) => {
    const r = checkpoint.r === null ? `r – (${checkpoint.error ?? 'not scored'})` : `r ${checkpoint.r.toFixed(4)}`;
    return `  ${result.unit} ${String(checkpoint.index).padStart(2)}: at ${seconds(checkpoint.wallSeconds).padStart(9)}, took ${seconds(checkpoint.durationSeconds).padStart(9)}, ${r}`;
  });
}

export interface SpeedRatio {
  /** Mean reference epoch time over mean fft epoch time. */
  meanEpochs: number;
  /** Reference epoch 1 over fft epoch 1: the same rotation grid (the full circle) on both. */
  firstEpoch: number;
}

/** Returns the reference-over-fft ratios of epoch times, or null unless both runs timed an epoch. */
export function speedRatio(reference: MethodResult | undefined, fft: MethodResult | undefined): SpeedRatio | null {
  if (reference === undefined || fft === undefined) return null;
  const referenceMean = meanDuration(reference);
  const fftMean = meanDuration(fft);
  const referenceFirst = reference.checkpoints.find((checkpoint) => checkpoint.index === 1);
  const fftFirst = fft.checkpoints.find((checkpoint) => checkpoint.index === 1);
  if (referenceMean === null || fftMean === null || referenceFirst === undefined || fftFirst === undefined) return null;
  return { meanEpochs: referenceMean / fftMean, firstEpoch: referenceFirst.durationSeconds / fftFirst.durationSeconds };
}
