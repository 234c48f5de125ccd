/**
 * Throughput of one full pose-integral evaluation (energies, log-sum-exp, responsibilities,
 * template gradient and readback) on the WebGPU engine and on its float64 host twin.
 *
 * The figure of merit is pose-pixel terms per second: B · K · M · J terms, where B is the
 * number of images, K the classes, M the poses and J = N² the pixels of one image, divided
 * by the wall time of one `evaluate()` call.
 *
 *   npm run bench                                  box sizes 64 and 128
 *   npm run bench -- --quick                       a 16 × 16 box and a small grid, for a smoke test
 *   npm run bench -- --sizes 32,64 --json out.json
 */
import { writeFileSync } from 'node:fs';
import os from 'node:os';
import { parseArgs } from 'node:util';
import { posesOf, type BatchInput, type BatchOutput, type EngineShape } from '../gpu/batch.js';
import { PoseEngine } from '../gpu/engine.js';
import { evaluateHost, resample } from '../gpu/host.js';
import { requestNodeGpu, type AdapterDescription } from '../src/node-gpu.js';
import { defaultShiftSd, loadNumerics, type Numerics, type PoseGridSpec } from '../src/numerics.js';
import { gridFields } from '../src/pose-grid.js';
import { normalDeviates, seededRandom } from '../src/synthetic.js';

const SEED = 20_240_601;
const IMAGES = 5;
const CLASSES = 1;
/** Default noise standard deviation relative to the template's root-mean-square value. */
const DEFAULT_NOISE = 3;

/** Pose grid of one run: rotations over the full circle, shifts in pixels, scales around 1. */
interface GridSettings {
  rotations: number;
  shifts: number;
  maxShift: number;
  scales: number;
  /** Scale nodes run from 1 − maxScaleOffset to 1 + maxScaleOffset. */
  maxScaleOffset: number;
  /** Half-range ε_c of the scale prior U[1 − ε_c, 1 + ε_c], at least maxScaleOffset. */
  scaleHalfRange: number;
}

const FULL_GRID: GridSettings = {
  rotations: 36,
  shifts: 5,
  maxShift: 2,
  scales: 3,
  maxScaleOffset: 0.05,
  scaleHalfRange: 0.05,
};

const QUICK_GRID: GridSettings = { ...FULL_GRID, rotations: 8, shifts: 3, maxShift: 1 };

/** Upper bounds on the timed calls per size. Calls stop early once the budget is spent. */
interface RepeatPolicy {
  gpuRepeats: number;
  hostRepeats: number;
  /** Time after which no further call of one engine on one size starts, seconds. */
  budgetSeconds: number;
}

interface Options {
  sizes: number[];
  grid: GridSettings;
  repeats: RepeatPolicy;
  /** Noise standard deviation σ over the template's root-mean-square value. */
  noise: number;
  jsonPath?: string;
}

interface Timing {
  repeats: number;
  /** Wall time of each timed call, milliseconds. */
  milliseconds: number[];
  medianMilliseconds: number;
  termsPerSecond: number;
}

interface SizeResult {
  size: number;
  poses: number;
  terms: number;
  plan: PoseEngine['plan'];
  gpu: Timing;
  host: Timing;
  /** GPU terms per second over host terms per second. */
  speedup: number;
  /** Mean over images of 1 / Σ γ², the effective number of poses that carry the mass. */
  effectivePoses: number;
  /**
   * Fraction of the B · K · M responsibilities that are nonzero in float32 on the GPU and in
   * float64 on the host. Both gradients skip a pose whose γ is exactly 0, so this fraction
   * sets how much of the gradient work an evaluation does.
   */
  nonzeroGpu: number;
  nonzeroHost: number;
  /** max_b |log Ĩ_b(GPU) − log Ĩ_b(host)|. */
  logIntegralDifference: number;
  /** ‖G(GPU) − G(host)‖ / ‖G(host)‖ over the template gradient. */
  gradientRelativeDifference: number;
}

interface Machine {
  adapter: AdapterDescription;
  node: string;
  cpu: string;
  cores: number;
}

const USAGE = `usage: npm run bench -- [--quick] [--sizes LIST] [--noise RATIO] [--repeats N] [--json FILE]
  --quick         a 16 × 16 box and an 8 × 3 × 3 × 3 pose grid, for a smoke test
  --sizes LIST    comma-separated box sides N in pixels (default 64,128)
  --noise RATIO   noise sd over the template's root-mean-square value (default ${DEFAULT_NOISE});
                  more noise spreads the responsibilities over more poses
  --repeats N     at most N timed calls per engine and size (default 5 GPU, 3 host); no call
                  starts once an engine has spent 60 s on one size (10 s with --quick)
  --json FILE     also write the machine description and every figure to FILE as JSON`;

/** An invalid command line; the message names the option and the value. */
class UsageError extends Error {
  override name = 'UsageError';
}

function parseOptions(argv: string[]): Options {
  const values = parseFlags(argv);
  if (values.help) {
    console.log(USAGE);
    process.exit(0);
  }
  const quick = values.quick;
  let sizes = quick ? [16] : [64, 128];
  if (values.sizes !== undefined) sizes = parseSizes(values.sizes);
  const repeats: RepeatPolicy = quick
    ? { gpuRepeats: 3, hostRepeats: 1, budgetSeconds: 10 }
    : { gpuRepeats: 5, hostRepeats: 3, budgetSeconds: 60 };
  if (values.repeats !== undefined) {
    const cap = parsePositive('--repeats', values.repeats, true);
    repeats.gpuRepeats = cap;
    repeats.hostRepeats = cap;
  }
  const noise = values.noise === undefined ? DEFAULT_NOISE : parsePositive('--noise', values.noise, false);
  return { sizes, grid: quick ? QUICK_GRID : FULL_GRID, repeats, noise, jsonPath: values.json };
}

function parseFlags(argv: string[]) {
  try {
    const { values } = parseArgs({
      args: argv,
      options: {
        quick: { type: 'boolean', default: false },
        sizes: { type: 'string' },
        noise: { type: 'string' },
        repeats: { type: 'string' },
        json: { type: 'string' },
        help: { type: 'boolean', short: 'h', default: false },
      },
    });
    return values;
  } catch (error) {
    throw new UsageError(error instanceof Error ? error.message : String(error));
  }
}

function parsePositive(flag: string, text: string, integer: boolean): number {
  const value = Number(text);
  if (!(value > 0) || !Number.isFinite(value) || (integer && !Number.isInteger(value))) {
    throw new UsageError(`${flag}: '${text}' must be a positive ${integer ? 'integer' : 'number'}`);
  }
  return value;
}

function parseSizes(text: string): number[] {
  const sizes = text.split(',').map((part) => Number(part.trim()));
  for (const size of sizes) {
    if (!Number.isInteger(size) || size < 1) {
      throw new UsageError(`--sizes: '${text}' must be a comma-separated list of positive integers (pixels)`);
    }
  }
  return sizes;
}

function gridSpec(grid: GridSettings, size: number): PoseGridSpec {
  const shift = { count: grid.shifts, min: -grid.maxShift, max: grid.maxShift };
  return {
    rotation: { count: grid.rotations },
    shiftX: shift,
    shiftY: shift,
    scale: { count: grid.scales, min: 1 - grid.maxScaleOffset, max: 1 + grid.maxScaleOffset },
    shiftSd: defaultShiftSd(size),
    scaleHalfRange: grid.scaleHalfRange,
  };
}

/**
 * Builds a smooth template [N, N]: six Gaussian blobs centred in the middle half of the box,
 * each negative with probability 1/4.
 */
function makeTemplate(size: number, random: () => number): Float32Array {
  const template = new Float32Array(size * size);
  const centre = Math.floor(size / 2);
  for (let blob = 0; blob < 6; blob++) {
    const cx = centre + (random() - 0.5) * 0.5 * size;
    const cy = centre + (random() - 0.5) * 0.5 * size;
    const width = size * (0.04 + 0.08 * random());
    const amplitude = (random() < 0.25 ? -0.5 : 1) * (0.5 + random());
    for (let y = 0; y < size; y++) {
      for (let x = 0; x < size; x++) {
        const r2 = (x - cx) ** 2 + (y - cy) ** 2;
        template[y * size + x] += amplitude * Math.exp(-r2 / (2 * width * width));
      }
    }
  }
  return template;
}

function rootMeanSquare(values: ArrayLike<number>): number {
  let sum = 0;
  for (let i = 0; i < values.length; i++) sum += values[i] * values[i];
  return Math.sqrt(sum / values.length);
}

/**
 * Builds a batch of IMAGES images, each the template at a random off-grid pose (any
 * rotation, shifts and scale within the grid's range) plus Gaussian noise of sd σ.
 */
function makeBatch(numerics: Numerics, options: Options, size: number, seed: number): BatchInput {
  const { grid } = options;
  const random = seededRandom(seed);
  const normal = normalDeviates(random);
  const pixels = size * size;
  const template = makeTemplate(size, random);
  const sigma = options.noise * rootMeanSquare(template);
  const images = new Float32Array(IMAGES * pixels);
  const model = new Float64Array(pixels);
  for (let b = 0; b < IMAGES; b++) {
    const psi = 2 * Math.PI * random();
    const pose = {
      cos: Math.cos(psi),
      sin: Math.sin(psi),
      a: (2 * random() - 1) * grid.maxShift,
      b: (2 * random() - 1) * grid.maxShift,
      scale: 1 + (2 * random() - 1) * grid.maxScaleOffset,
    };
    resample(size, template, pose, model);
    for (let q = 0; q < pixels; q++) images[b * pixels + q] = model[q] + sigma * normal();
  }
  const fields = gridFields(numerics, gridSpec(grid, size), new Float64Array(IMAGES));
  return { images, templates: template, logClassWeights: [0], sigma, ...fields };
}

function median(values: number[]): number {
  const sorted = [...values].sort((x, y) => x - y);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2;
}

/**
 * Times `call` up to `maxRepeats` times, at least once, and stops starting new calls once
 * `budgetSeconds` have passed. Returns the timing and the output of the last call.
 */
async function timeRepeats<T>(
  call: () => T | Promise<T>,
  maxRepeats: number,
  budgetSeconds: number,
  terms: number,
): Promise<{ timing: Timing; output: T }> {
  const milliseconds: number[] = [];
  let output: T | undefined;
  let spent = 0;
  while (milliseconds.length < maxRepeats && (milliseconds.length === 0 || spent < budgetSeconds * 1000)) {
    const start = performance.now();
    output = await call();
    const elapsed = performance.now() - start;
    milliseconds.push(elapsed);
    spent += elapsed;
  }
  const medianMilliseconds = median(milliseconds);
  const timing = {
    repeats: milliseconds.length,
    milliseconds,
    medianMilliseconds,
    termsPerSecond: terms / (medianMilliseconds / 1000),
  };
  return { timing, output: output as T };
}

function checkFinite(label: string, output: BatchOutput): void {
  for (const [field, values] of Object.entries(output)) {
    const array = values as ArrayLike<number>;
    for (let i = 0; i < array.length; i++) {
      if (!Number.isFinite(array[i])) {
        throw new Error(`${label}: ${field}[${i}] is ${array[i]}, expected a finite value`);
      }
    }
  }
}

function effectivePoses(responsibilities: ArrayLike<number>, images: number): number {
  const terms = responsibilities.length / images;
  let total = 0;
  for (let b = 0; b < images; b++) {
    let sumSquares = 0;
    for (let i = 0; i < terms; i++) sumSquares += responsibilities[b * terms + i] ** 2;
    total += 1 / sumSquares;
  }
  return total / images;
}

function nonzeroFraction(values: ArrayLike<number>): number {
  let count = 0;
  for (let i = 0; i < values.length; i++) if (values[i] !== 0) count++;
  return count / values.length;
}

function maxAbsoluteDifference(x: ArrayLike<number>, y: ArrayLike<number>): number {
  let max = 0;
  for (let i = 0; i < x.length; i++) max = Math.max(max, Math.abs(x[i] - y[i]));
  return max;
}

function relativeDifference(x: ArrayLike<number>, reference: ArrayLike<number>): number {
  let difference = 0;
  let norm = 0;
  for (let i = 0; i < x.length; i++) {
    difference += (x[i] - reference[i]) ** 2;
    norm += reference[i] ** 2;
  }
  return Math.sqrt(difference / norm);
}

async function benchSize(
  device: GPUDevice,
  numerics: Numerics,
  options: Options,
  size: number,
): Promise<SizeResult> {
  const { grid, repeats } = options;
  const shape: EngineShape = {
    size,
    classes: CLASSES,
    rotations: grid.rotations,
    shiftsX: grid.shifts,
    shiftsY: grid.shifts,
    scales: grid.scales,
    batch: IMAGES,
  };
  const poses = posesOf(shape);
  const terms = IMAGES * CLASSES * poses * size * size;
  const input = makeBatch(numerics, options, size, SEED + size);

  const engine = await PoseEngine.create(device, shape);
  try {
    const warmUp = await engine.evaluate(input, { responsibilities: true });
    checkFinite(`GPU warm-up at N = ${size}`, warmUp);
    const gpuRun = await timeRepeats(
      () => engine.evaluate(input),
      repeats.gpuRepeats,
      repeats.budgetSeconds,
      terms,
    );
    checkFinite(`GPU at N = ${size}`, gpuRun.output);
    const hostRun = await timeRepeats(
      () => evaluateHost(shape, input),
      repeats.hostRepeats,
      repeats.budgetSeconds,
      terms,
    );
    checkFinite(`host twin at N = ${size}`, hostRun.output);
    return {
      size,
      poses,
      terms,
      plan: engine.plan,
      gpu: gpuRun.timing,
      host: hostRun.timing,
      speedup: gpuRun.timing.termsPerSecond / hostRun.timing.termsPerSecond,
      effectivePoses: effectivePoses(hostRun.output.responsibilities, IMAGES),
      nonzeroGpu: nonzeroFraction(warmUp.responsibilities!),
      nonzeroHost: nonzeroFraction(hostRun.output.responsibilities),
      logIntegralDifference: maxAbsoluteDifference(gpuRun.output.logIntegral, hostRun.output.logIntegral),
      gradientRelativeDifference: relativeDifference(gpuRun.output.gradient, hostRun.output.gradient),
    };
  } finally {
    engine.destroy();
  }
}

function describeMachine(adapter: AdapterDescription): Machine {
  const cpus = os.cpus();
  return { adapter, node: process.version, cpu: cpus[0]?.model ?? 'unknown', cores: cpus.length };
}

function formatRate(termsPerSecond: number): string {
  return `${(termsPerSecond / 1e6).toFixed(1)} M/s`;
}

function formatPercent(fraction: number): string {
  return `${(100 * fraction).toFixed(1)} %`;
}

function formatTime(timing: Timing): string {
  return `${timing.medianMilliseconds.toFixed(0)} ms (${timing.repeats})`;
}

/** Joins the rows into columns padded to their widest cell. Every column but the first aligns right. */
function formatTable(rows: string[][]): string {
  const widths = rows[0].map((_, column) => Math.max(...rows.map((row) => row[column].length)));
  const pad = (cell: string, column: number) =>
    column === 0 ? cell.padEnd(widths[column]) : cell.padStart(widths[column]);
  const lines = rows.map((row) => row.map(pad).join('  '));
  lines.splice(1, 0, widths.map((width) => '-'.repeat(width)).join('  '));
  return lines.join('\n');
}

function formatResults(results: SizeResult[]): string {
  const header = [
    'N',
    'poses M',
    'terms',
    'GPU time (n)',
    'GPU rate',
    'host time (n)',
    'host rate',
    'GPU/host',
  ];
  const rows = results.map((result) => [
    `${result.size}²`,
    String(result.poses),
    result.terms.toExponential(2),
    formatTime(result.gpu),
    formatRate(result.gpu.termsPerSecond),
    formatTime(result.host),
    formatRate(result.host.termsPerSecond),
    `${result.speedup.toFixed(2)}×`,
  ]);
  return formatTable([header, ...rows]);
}

function formatChecks(results: SizeResult[]): string {
  const header = [
    'N',
    'sub-batches',
    'gradient chunks',
    'effective poses',
    'γ > 0 GPU',
    'γ > 0 host',
    'max |Δ log Ĩ|',
    'gradient rel. Δ',
  ];
  const rows = results.map((result) => [
    `${result.size}²`,
    String(result.plan.subBatches),
    String(result.plan.chunks),
    result.effectivePoses.toFixed(1),
    formatPercent(result.nonzeroGpu),
    formatPercent(result.nonzeroHost),
    result.logIntegralDifference.toExponential(1),
    result.gradientRelativeDifference.toExponential(1),
  ]);
  return formatTable([header, ...rows]);
}

function formatHeader(machine: Machine, options: Options): string {
  const { adapter } = machine;
  const { grid, repeats } = options;
  const shiftStep = grid.shifts > 1 ? (2 * grid.maxShift) / (grid.shifts - 1) : 0;
  const poses = grid.rotations * grid.shifts * grid.shifts * grid.scales;
  const lines = [
    ['adapter', `vendor ${adapter.vendor || '-'}, architecture ${adapter.architecture || '-'}, ` +
      `device ${adapter.device || '-'}, description ${adapter.description || '-'}`],
    ['node', machine.node],
    ['cpu', `${machine.cpu}, ${machine.cores} cores`],
    ['grid', `${grid.rotations} rotations (full circle) × ${grid.shifts} × ${grid.shifts} shifts ` +
      `(±${grid.maxShift} px, step ${shiftStep}) × ${grid.scales} scales ` +
      `(${1 - grid.maxScaleOffset} … ${1 + grid.maxScaleOffset}): M = ${poses} poses`],
    ['batch', `B = ${IMAGES} images, K = ${CLASSES} class, noise sd = ${options.noise} × template RMS`],
    ['rate', 'B·K·M·N² terms / median wall time of one evaluate() ' +
      '(energy, log-sum-exp, gradient, readback)'],
    ['timing', `GPU after one warm-up call, at most ${repeats.gpuRepeats} repeats; host twin at most ` +
      `${repeats.hostRepeats}; none started after ${repeats.budgetSeconds} s on one size; (n) = repeats`],
  ];
  return lines.map(([label, text]) => `${label.padEnd(8)}${text}`).join('\n');
}

async function main(): Promise<void> {
  const options = parseOptions(process.argv.slice(2));
  const started = performance.now();
  const gpu = await requestNodeGpu();
  const numerics = await loadNumerics();
  const machine = describeMachine(gpu.info);
  console.log(formatHeader(machine, options));

  const results: SizeResult[] = [];
  for (const size of options.sizes) {
    results.push(await benchSize(gpu.device, numerics, options, size));
  }
  console.log();
  console.log(formatResults(results));
  console.log();
  console.log('checks: GPU against the float64 twin, and the spread of the responsibilities');
  console.log(formatChecks(results));

  const totalSeconds = (performance.now() - started) / 1000;
  console.log(`\ntotal ${totalSeconds.toFixed(1)} s`);
  if (options.jsonPath) {
    const report = {
      date: new Date().toISOString(),
      machine,
      grid: options.grid,
      images: IMAGES,
      classes: CLASSES,
      noise: options.noise,
      repeats: options.repeats,
      results,
    };
    writeFileSync(options.jsonPath, JSON.stringify(report, null, 2) + '\n');
    console.log(`wrote ${options.jsonPath}`);
  }
  gpu.device.destroy();
}

try {
  await main();
} catch (error) {
  console.error(`bench failed: ${error instanceof Error ? error.message : String(error)}`);
  if (error instanceof UsageError) console.error(USAGE);
  process.exitCode = 1;
}
