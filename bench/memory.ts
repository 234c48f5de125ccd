/**
 * Peak GPU buffer bytes of a reconstruction of a large stack, measured by counting every
 * buffer the device creates and destroys, in one run on the machine's WebGPU adapter.
 *
 * The stack stays in host memory and reaches the GPU one minibatch (or one batch of the
 * full pass) at a time, so the peak should not depend on the number of images. The run
 * reconstructs 10 000 images of 128² for one epoch on a small pose grid (1 rotation, the
 * default 25 × 25 shifts of a 128² box, 1 scale), which keeps the epoch short on a software
 * adapter. It then builds the engine alone at the default grid (36 rotations, 25 × 25
 * shifts, 3 scales) and evaluates one minibatch, for the footprint of a default run.
 *
 *   npm run bench:memory
 *   npm run bench:memory -- --images 2000
 */
import os from 'node:os';
import { parseArgs } from 'node:util';

import { PoseEngine } from '../gpu/engine.js';
import { resample } from '../gpu/host.js';
import { requestNodeGpu } from '../src/node-gpu.js';
import { loadNumerics } from '../src/numerics.js';
import { resolveOptions, type ReconstructionOptions } from '../src/options.js';
import { gridFields } from '../src/pose-grid.js';
import { reconstruct } from '../src/reconstruct.js';
import { blobTemplate, seededRandom, simulateStack } from '../src/synthetic.js';

const SIZE = 128;

/** Counts the bytes of the buffers a device has alive, and their peak. */
class BufferLedger {
  live = 0;
  peak = 0;
  created = 0;
  private readonly sizes = new Map<string, number>();

  constructor(device: GPUDevice) {
    const create = device.createBuffer.bind(device);
    device.createBuffer = (descriptor: GPUBufferDescriptor): GPUBuffer => {
      const buffer = create(descriptor);
      const size = descriptor.size;
      this.live += size;
      this.created++;
      this.peak = Math.max(this.peak, this.live);
      const label = descriptor.label ?? '(no label)';
      this.sizes.set(label, (this.sizes.get(label) ?? 0) + size);
      const destroy = buffer.destroy.bind(buffer);
      let alive = true;
      buffer.destroy = () => {
        if (alive) {
          alive = false;
          this.live -= size;
        }
        destroy();
      };
      return buffer;
    };
  }

  /** Starts a new measurement from the bytes alive now. */
  reset(): void {
    this.peak = this.live;
    this.sizes.clear();
  }

  /** Returns the labels with the most bytes created since the last reset, summed over their buffers. */
  largest(count: number): [string, number][] {
    return [...this.sizes.entries()].sort((x, y) => y[1] - x[1]).slice(0, count);
  }
}

const mebibytes = (bytes: number) => `${(bytes / 2 ** 20).toFixed(1)} MiB`;

async function main(): Promise<void> {
  const { values } = parseArgs({ args: process.argv.slice(2), options: { images: { type: 'string', default: '10000' } } });
  const count = Number(values.images);
  if (!Number.isInteger(count) || count < 10) throw new Error(`--images: '${values.images}' must be an integer ≥ 10`);
  const gpu = await requestNodeGpu();
  const { device } = gpu;
  const cpus = os.cpus();
  console.log(`adapter  ${gpu.info.description} (${gpu.info.vendor}, ${gpu.info.architecture})`);
  console.log(`node     ${process.version}, ${cpus[0]?.model ?? 'unknown CPU'}, ${cpus.length} cores`);
  const ledger = new BufferLedger(device);

  const random = seededRandom(5);
  const truth = blobTemplate(SIZE, random);
  const started = performance.now();
  const stack = simulateStack(truth, SIZE, { count, snr: 1, seed: 6, scaleHalfRange: 0 }, resample);
  const stackBytes = stack.images.byteLength;
  console.log(`stack    ${count} images of ${SIZE}², ${mebibytes(stackBytes)} in host memory (simulated in ${((performance.now() - started) / 1000).toFixed(0)} s)`);

  const small: ReconstructionOptions = { rotations: 1, scales: 1, scaleHalfRange: 0, maxEpochs: 1, init: 'zeros', refineRotations: false };
  ledger.reset();
  const runStart = performance.now();
  const result = await reconstruct(device, { images: stack.images, size: SIZE }, small);
  const runSeconds = (performance.now() - runStart) / 1000;
  const resolvedSmall = resolveOptions(small, SIZE, count);
  const smallShifts = 2 * Math.floor(resolvedSmall.shiftRange / resolvedSmall.shiftStep) + 1;
  console.log(
    `\nrun      1 epoch, 1 rotation × ${smallShifts} × ${smallShifts} shifts × 1 scale, batch ${resolvedSmall.batchSize}, ` +
      `kernel ${resolvedSmall.kernel}: ${runSeconds.toFixed(0)} s, ${result.epochs} epoch`,
  );
  console.log(`peak     ${mebibytes(ledger.peak)} of GPU buffers alive at once (${ledger.created} buffers created in all)`);
  console.log(`         ${(ledger.peak / stackBytes).toFixed(4)} of the stack's size; bytes created per label, summed over the run:`);
  for (const [label, bytes] of ledger.largest(4)) console.log(`         ${mebibytes(bytes).padStart(10)}  ${label}`);

  // The default grid: the engine and one minibatch, the same for any number of images.
  const options = resolveOptions({}, SIZE, count);
  const numerics = await loadNumerics();
  ledger.reset();
  const shifts = 2 * Math.floor(options.shiftRange / options.shiftStep) + 1;
  const reach = Math.floor(options.shiftRange / options.shiftStep) * options.shiftStep;
  const engine = await PoseEngine.create(
    device,
    { size: SIZE, classes: 1, rotations: options.rotations, shiftsX: shifts, shiftsY: shifts, scales: options.scales, batch: options.batchSize },
    { kernel: options.kernel, shiftReach: reach },
  );
  const epsilon = options.scaleHalfRange;
  const fields = gridFields(
    numerics,
    {
      rotation: { count: options.rotations },
      shiftX: { count: shifts, min: -reach, max: reach },
      shiftY: { count: shifts, min: -reach, max: reach },
      scale: { count: options.scales, min: 1 - epsilon, max: 1 + epsilon },
      shiftSd: options.shiftSd,
      scaleHalfRange: epsilon,
    },
    new Float64Array(options.batchSize),
  );
  const evalStart = performance.now();
  await engine.evaluate({
    images: stack.images.subarray(0, options.batchSize * SIZE * SIZE),
    templates: truth,
    logClassWeights: [0],
    sigma: 1,
    ...fields,
  });
  const evalSeconds = (performance.now() - evalStart) / 1000;
  console.log(`\ndefault  ${options.rotations} rotations × ${shifts} × ${shifts} shifts × ${options.scales} scales, batch ${options.batchSize}, kernel ${options.kernel} (L = ${engine.plan.fft?.size ?? '-'})`);
  console.log(`peak     ${mebibytes(ledger.peak)} of GPU buffers for the engine and one minibatch evaluation (${evalSeconds.toFixed(1)} s); the largest:`);
  for (const [label, bytes] of ledger.largest(4)) console.log(`         ${mebibytes(bytes).padStart(10)}  ${label}`);
  engine.destroy();
  device.destroy();
}

try {
  await main();
} catch (error) {
  console.error(`bench failed: ${error instanceof Error ? error.message : String(error)}`);
  process.exitCode = 1;
}
