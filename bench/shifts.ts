/**
 * Throughput of the FFT kernel against the reference kernel of the pose engine, per shift
 * grid, in one run on the machine's WebGPU adapter.
 *
 * Each case is a box size N and a square grid of whole-pixel shifts: 5 × 5, 13 × 13, or
 * every shift of the box (−N/2 … N/2 on each axis). Both kernels evaluate the same images
 * with the same 36 rotations (full circle) and 3 scales: energies, log-sum-exp, gradient and
 * readback. The figure of merit is pose-pixel terms B·K·M·N² per second of one evaluate().
 * The reference kernel's cost is linear in the number of images and rotation nodes, so where
 * its call would take long it is timed on the first few rotation nodes (and then on one
 * image) only, and its rate is per term as usual; where even that would take longer than
 * `--reference-seconds`, its rate is carried over from the largest shift grid it ran at that
 * box size, marked "est.".
 *
 * A peak figure for the adapter comes from a kernel of independent fused multiply-adds, so
 * that the FFT path's arithmetic rate can be read as a fraction of it.
 *
 *   npm run bench:shifts
 *   npm run bench:shifts -- --sizes 64 --json out.json
 */
import { writeFileSync } from 'node:fs';
import os from 'node:os';
import { parseArgs } from 'node:util';

import { posesOf, type BatchInput, type EngineShape } from '../gpu/batch.js';
import { PoseEngine, type EngineKernel } from '../gpu/engine.js';
import { lineCount } from '../gpu/fft.js';
import { resample } from '../gpu/host.js';
import { bindKernel, compileKernel, PARAMS_BINDING } from '../gpu/kernel.js';
import { requestNodeGpu, type AdapterDescription } from '../src/node-gpu.js';
import { loadNumerics, type Numerics, type PoseGridSpec } from '../src/numerics.js';
import { gridFields } from '../src/pose-grid.js';
import { blobTemplate, normalDeviates, seededRandom } from '../src/synthetic.js';

const SEED = 20_261_204;
const IMAGES = 5;
const ROTATIONS = 36;
const SCALES = 3;
/**
 * Noise sd over the template's RMS. At 20 every responsibility is nonzero in float32, so
 * both kernels do their whole gradient: the worst case for each.
 */
const NOISE = 20;

const USAGE = `usage: npm run bench:shifts -- [--sizes LIST] [--shifts LIST] [--reference-seconds S] [--json FILE]
  --sizes LIST           box sides N in pixels (default 64,128)
  --shifts LIST          shift nodes per axis, or 'all' for every shift of the box (default 5,13,all)
  --reference-seconds S  longest reference call to attempt, seconds (default 60)
  --json FILE            also write every figure to FILE as JSON`;

class UsageError extends Error {
  override name = 'UsageError';
}

interface Options {
  sizes: number[];
  shifts: (number | 'all')[];
  referenceSeconds: number;
  jsonPath?: string;
}

function parseOptions(argv: string[]): Options {
  let values;
  try {
    values = parseArgs({
      args: argv,
      options: {
        sizes: { type: 'string', default: '64,128' },
        shifts: { type: 'string', default: '5,13,all' },
        'reference-seconds': { type: 'string', default: '60' },
        json: { type: 'string' },
        help: { type: 'boolean', short: 'h', default: false },
      },
    }).values;
  } catch (error) {
    throw new UsageError(error instanceof Error ? error.message : String(error));
  }
  if (values.help) {
    console.log(USAGE);
    process.exit(0);
  }
  const sizes = values.sizes.split(',').map((text) => {
    const size = Number(text);
    if (!Number.isInteger(size) || size < 4) throw new UsageError(`--sizes: '${text}' must be an integer ≥ 4 (pixels)`);
    return size;
  });
  const shifts = values.shifts.split(',').map((text) => {
    if (text === 'all') return 'all' as const;
    const count = Number(text);
    if (!Number.isInteger(count) || count < 1 || count % 2 === 0) {
      throw new UsageError(`--shifts: '${text}' must be 'all' or an odd integer ≥ 1 (nodes per axis)`);
    }
    return count;
  });
  const referenceSeconds = Number(values['reference-seconds']);
  if (!(referenceSeconds > 0)) throw new UsageError(`--reference-seconds: '${values['reference-seconds']}' must be a number > 0`);
  return { sizes, shifts, referenceSeconds, jsonPath: values.json };
}

function makeInput(numerics: Numerics, size: number, shifts: number, rotations: number, count = IMAGES): BatchInput {
  const random = seededRandom(SEED + size);
  const normal = normalDeviates(random);
  const pixels = size * size;
  const template = blobTemplate(size, random);
  let sum = 0;
  for (const value of template) sum += value * value;
  const sigma = NOISE * Math.sqrt(sum / pixels);
  const reach = (shifts - 1) / 2;
  const images = new Float32Array(count * pixels);
  const model = new Float64Array(pixels);
  for (let b = 0; b < count; b++) {
    const psi = 2 * Math.PI * random();
    const pose = { cos: Math.cos(psi), sin: Math.sin(psi), a: 2 * random() - 1, b: 2 * random() - 1, scale: 0.97 + 0.06 * random() };
    resample(size, template, pose, model);
    for (let q = 0; q < pixels; q++) images[b * pixels + q] = model[q] + sigma * normal();
  }
  const spec: PoseGridSpec = {
    rotation: { count: ROTATIONS },
    shiftX: { count: shifts, min: -reach, max: reach },
    shiftY: { count: shifts, min: -reach, max: reach },
    scale: { count: SCALES, min: 0.95, max: 1.05 },
    shiftSd: 0.05 * size,
    scaleHalfRange: 0.05,
  };
  const fields = gridFields(numerics, spec, new Float64Array(count));
  // The first `rotations` rotation nodes of each image, and their poses' log weights.
  const perRotation = shifts * shifts * SCALES;
  const firstRotations = new Float64Array(count * rotations);
  for (let b = 0; b < count; b++) {
    for (let p = 0; p < rotations; p++) firstRotations[b * rotations + p] = fields.rotations[b * ROTATIONS + p];
  }
  return {
    images,
    templates: template,
    logClassWeights: [0],
    sigma,
    ...fields,
    rotations: firstRotations,
    logWeights: Array.from(fields.logWeights).slice(0, rotations * perRotation),
  };
}

interface Measurement {
  kernel: EngineKernel;
  images: number;
  rotations: number;
  /** Wall time of each timed call, ms. */
  milliseconds: number[];
  /** Wall time of one call without the gradient, ms. */
  energyMilliseconds?: number;
  termsPerSecond: number;
  /** Carried over from a smaller shift grid rather than measured. */
  estimated: boolean;
  fftSize?: number;
  nonzero?: number;
}

function median(values: number[]): number {
  const sorted = [...values].sort((x, y) => x - y);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2;
}

async function measure(device: GPUDevice, input: BatchInput, shape: EngineShape, kernel: EngineKernel, repeats: number): Promise<Measurement> {
  const engine = await PoseEngine.create(device, shape, { kernel });
  try {
    const warm = await engine.evaluate(input, { responsibilities: true });
    let nonzero = 0;
    for (const g of warm.responsibilities!) if (g !== 0) nonzero++;
    const milliseconds: number[] = [];
    for (let i = 0; i < repeats; i++) {
      const start = performance.now();
      await engine.evaluate(input);
      milliseconds.push(performance.now() - start);
    }
    // The same call without the gradient: its share of the time is the energies' and γ's.
    const start = performance.now();
    await engine.evaluate(input, { computeGradient: false });
    const energyMilliseconds = performance.now() - start;
    const terms = (input.images.length / (shape.size * shape.size)) * posesOf(shape) * shape.size * shape.size;
    return {
      kernel,
      images: input.images.length / (shape.size * shape.size),
      rotations: shape.rotations,
      milliseconds,
      energyMilliseconds,
      termsPerSecond: terms / (median(milliseconds) / 1000),
      estimated: false,
      fftSize: engine.plan.fft?.size,
      nonzero: nonzero / warm.responsibilities!.length,
    };
  } finally {
    engine.destroy();
  }
}

/**
 * Floating-point operations of one FFT-path group (one rotation and scale, B images that
 * share their rotation nodes, as on the full circle) with the gradient, counted from the
 * kernels: 5 L log2 L per complex line transform of L points (the radix-2 count), 6 per
 * complex product, about 20 per bilinear sample and 30 per tap of the gather.
 */
function fftFlopsPerGroup(size: number, reach: number, fftSize: number, images: number): number {
  const line = 5 * fftSize * Math.log2(fftSize);
  const lines = (set: 'all' | 'extended' | 'shifts') => lineCount(set, fftSize, size, reach) * line;
  const extended = (size + 2 * reach) ** 2;
  const product = 6 * fftSize * fftSize;
  // Once per group: A and its transform; the summed spectra's inverse, residual and gather.
  const group = 20 * extended + lines('extended') + lines('all') + lines('all') + lines('extended') + 20 * extended + 30 * 6.5 * size * size;
  // Once per image: its product and inverse for E; Γ's transform and product for the gradient.
  const image = product + lines('all') + lines('shifts') + lines('shifts') + lines('all') + product + 2 * fftSize * fftSize;
  return group + images * image;
}

/** Fused multiply-adds per second of a WGSL kernel with 8 independent vec4 chains per invocation. */
async function peakFlops(device: GPUDevice): Promise<number> {
  const iterations = 4096;
  const invocations = 64 * 1024;
  const kernel = compileKernel(device, {
    name: 'peakFlops',
    workgroupSize: 64,
    bindings: [PARAMS_BINDING, { name: 'out', access: 'write', type: 'array<vec4f>' }],
    body: /* wgsl */ `
fn main(@builtin(global_invocation_id) id: vec3u) {
  var a = array<vec4f, 8>();
  for (var c = 0u; c < 8u; c++) {
    a[c] = vec4f(f32(id.x + c) * 1e-7);
  }
  let m = vec4f(0.999999);
  let k = vec4f(1e-7);
  for (var i = 0u; i < ${iterations}u; i++) {
    a[0] = fma(a[0], m, k); a[1] = fma(a[1], m, k); a[2] = fma(a[2], m, k); a[3] = fma(a[3], m, k);
    a[4] = fma(a[4], m, k); a[5] = fma(a[5], m, k); a[6] = fma(a[6], m, k); a[7] = fma(a[7], m, k);
  }
  out[id.x] = a[0] + a[1] + a[2] + a[3] + a[4] + a[5] + a[6] + a[7];
}
`,
  });
  const params = device.createBuffer({ size: 256, usage: GPUBufferUsage.UNIFORM });
  const out = device.createBuffer({ size: invocations * 16, usage: GPUBufferUsage.STORAGE });
  const group = bindKernel(device, kernel, { P: params, out }, 'peak FMA');
  const run = async () => {
    const encoder = device.createCommandEncoder();
    const pass = encoder.beginComputePass();
    pass.setPipeline(kernel.pipeline);
    pass.setBindGroup(0, group);
    pass.dispatchWorkgroups(invocations / 64);
    pass.end();
    device.queue.submit([encoder.finish()]);
    await device.queue.onSubmittedWorkDone();
  };
  await run();
  const start = performance.now();
  await run();
  const seconds = (performance.now() - start) / 1000;
  params.destroy();
  out.destroy();
  // 8 chains × 4 lanes × 2 flops per fma.
  return (invocations * iterations * 8 * 4 * 2) / seconds;
}

interface CaseResult {
  size: number;
  shifts: number;
  fft: Measurement;
  reference: Measurement;
  ratio: number;
  fftFlopsPerSecond: number;
}

function formatTable(rows: string[][]): string {
  const widths = rows[0].map((_, column) => Math.max(...rows.map((row) => row[column].length)));
  const lines = rows.map((row) => row.map((cell, column) => (column === 0 ? cell.padEnd(widths[column]) : cell.padStart(widths[column]))).join('  '));
  lines.splice(1, 0, widths.map((width) => '-'.repeat(width)).join('  '));
  return lines.join('\n');
}

function machine(adapter: AdapterDescription) {
  const cpus = os.cpus();
  return { adapter, node: process.version, cpu: cpus[0]?.model ?? 'unknown', cores: cpus.length };
}

async function main(): Promise<void> {
  const options = parseOptions(process.argv.slice(2));
  const started = performance.now();
  const gpu = await requestNodeGpu();
  const numerics = await loadNumerics();
  const host = machine(gpu.info);
  const { adapter } = host;
  console.log(`adapter  vendor ${adapter.vendor || '-'}, architecture ${adapter.architecture || '-'}, device ${adapter.device || '-'}, description ${adapter.description || '-'}`);
  console.log(`node     ${host.node}, ${host.cpu}, ${host.cores} cores`);
  console.log(`grid     ${ROTATIONS} rotations × shifts² × ${SCALES} scales, B = ${IMAGES} images, K = 1, noise sd ${NOISE} × template RMS`);
  const peak = await peakFlops(gpu.device);
  console.log(`peak     ${(peak / 1e9).toFixed(2)} Gflop/s of independent fused multiply-adds on this adapter`);

  const results: CaseResult[] = [];
  for (const size of options.sizes) {
    let referenceRate: number | undefined;
    for (const choice of options.shifts) {
      const shifts = choice === 'all' ? 2 * Math.floor(size / 2) + 1 : choice;
      const shape: EngineShape = { size, classes: 1, rotations: ROTATIONS, shiftsX: shifts, shiftsY: shifts, scales: SCALES, batch: IMAGES };
      const fft = await measure(gpu.device, makeInput(numerics, size, shifts, ROTATIONS), shape, 'fft', 3);
      // Reference: as many rotation nodes (and, below one node of all images, as few
      // images) as fit the time limit at the last measured rate.
      const guess = referenceRate ?? 1e6;
      const fit = (count: number) =>
        Math.min(ROTATIONS, Math.floor((options.referenceSeconds * guess) / (count * shifts * shifts * SCALES * size * size)));
      const count = fit(IMAGES) >= 1 ? IMAGES : 1;
      const rotations = fit(count);
      let reference: Measurement;
      if (rotations >= 1) {
        const small = { ...shape, rotations, batch: count };
        reference = await measure(gpu.device, makeInput(numerics, size, shifts, rotations, count), small, 'reference', 1);
        referenceRate = reference.termsPerSecond;
      } else {
        reference = { kernel: 'reference', images: 0, rotations: 0, milliseconds: [], termsPerSecond: referenceRate ?? Number.NaN, estimated: true };
      }
      const fftSize = fft.fftSize as number;
      const flops = fftFlopsPerGroup(size, (shifts - 1) / 2, fftSize, IMAGES) * ROTATIONS * SCALES;
      results.push({
        size,
        shifts,
        fft,
        reference,
        ratio: fft.termsPerSecond / reference.termsPerSecond,
        fftFlopsPerSecond: flops / (median(fft.milliseconds) / 1000),
      });
      console.log(`  done N = ${size}, ${shifts} × ${shifts} shifts (${((performance.now() - started) / 1000).toFixed(0)} s)`);
    }
  }
  // A reference rate is NaN where neither this case nor a smaller one of the size ran it.
  const rate = (value: number) => (Number.isNaN(value) ? '-' : `${(value / 1e6).toFixed(1)} M/s`);
  const rows = results.map((r) => [
    `${r.size}²`,
    `${r.shifts}×${r.shifts}`,
    String(r.fft.fftSize),
    `${median(r.fft.milliseconds).toFixed(0)} ms`,
    `${(r.fft.energyMilliseconds ?? 0).toFixed(0)} ms`,
    rate(r.fft.termsPerSecond),
    r.reference.estimated ? '-' : `${r.reference.images} × ${r.reference.rotations}`,
    r.reference.estimated ? 'not run' : `${median(r.reference.milliseconds).toFixed(0)} ms`,
    `${rate(r.reference.termsPerSecond)}${r.reference.estimated && !Number.isNaN(r.reference.termsPerSecond) ? ' est.' : ''}`,
    Number.isNaN(r.ratio) ? '-' : `${r.ratio.toFixed(1)}×`,
    `${((100 * r.fftFlopsPerSecond) / peak).toFixed(1)} %`,
  ]);
  console.log();
  console.log(
    formatTable([
      ['N', 'shifts', 'L', 'FFT time', 'FFT no gradient', 'FFT rate', 'ref. images × rotations', 'ref. time', 'ref. rate', 'FFT/ref.', 'FFT of peak'],
      ...rows,
    ]),
  );
  console.log(`\nγ > 0: ${results.map((r) => `${(100 * (r.fft.nonzero ?? 0)).toFixed(0)} %`).join(', ')} of the FFT runs' responsibilities`);
  console.log(`total ${((performance.now() - started) / 1000).toFixed(0)} s`);
  if (options.jsonPath) {
    writeFileSync(options.jsonPath, JSON.stringify({ date: new Date().toISOString(), machine: host, peakFlops: peak, results }, null, 2) + '\n');
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
