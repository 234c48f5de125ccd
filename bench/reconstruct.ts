/**
 * Accuracy and wall time of whole reconstructions on simulated stacks, in one process on
 * the machine's WebGPU adapter: the configurations the end-to-end tests use, with the
 * figures the tests only bound.
 *
 *   npm run bench:reconstruct
 */
import os from 'node:os';

import { resample } from '../gpu/host.js';
import { alignTemplates } from '../src/metrics.js';
import { requestNodeGpu } from '../src/node-gpu.js';
import type { ReconstructionOptions } from '../src/options.js';
import { reconstruct } from '../src/reconstruct.js';
import { blobTemplate, figureTemplate, seededRandom, simulateStack } from '../src/synthetic.js';

interface Case {
  name: string;
  size: number;
  count: number;
  snr: number;
  seed: number;
  shape: 'blobs' | 'figure';
  options: ReconstructionOptions;
}

const GRID: ReconstructionOptions = { rotations: 13, scales: 1, scaleHalfRange: 0 };

const CASES: Case[] = [
  { name: 'SNR 12', size: 32, count: 60, snr: 12, seed: 7, shape: 'blobs', options: { ...GRID, init: 'zeros', maxEpochs: 6 } },
  { name: 'SNR 0.42', size: 32, count: 60, snr: 0.42, seed: 11, shape: 'figure', options: { ...GRID, init: 'zeros', maxEpochs: 4 } },
  ...(['random', 'zeros', 'jensen'] as const).map((init) => ({
    name: `init ${init}`,
    size: 24,
    count: 20,
    snr: 1,
    seed: 71,
    shape: 'figure' as const,
    options: { ...GRID, rotations: 9, maxEpochs: 3, init },
  })),
];

function stackMean(images: Float32Array, pixels: number): Float64Array {
  const mean = new Float64Array(pixels);
  const count = images.length / pixels;
  for (let i = 0; i < images.length; i++) mean[i % pixels] += images[i] / count;
  return mean;
}

async function main(): Promise<void> {
  const gpu = await requestNodeGpu();
  const cpus = os.cpus();
  console.log(`adapter ${gpu.info.description} (${gpu.info.vendor}, ${gpu.info.architecture}, ${gpu.info.device})`);
  console.log(`node    ${process.version}, ${cpus[0]?.model ?? 'unknown CPU'}, ${cpus.length} cores`);
  console.log('');
  console.log('case          box  images   SNR  epochs      r  mean r  σ/σtrue  ℓ start → end              time');
  for (const test of CASES) {
    const truth = test.shape === 'figure' ? figureTemplate(test.size) : blobTemplate(test.size, seededRandom(test.seed));
    const stack = simulateStack(truth, test.size, { count: test.count, snr: test.snr, seed: test.seed + 1, scaleHalfRange: 0 }, resample);
    const started = performance.now();
    const result = await reconstruct(gpu.device, { images: stack.images, size: test.size }, test.options);
    const seconds = (performance.now() - started) / 1000;
    const r = alignTemplates(truth, result.template, test.size).r;
    const meanR = alignTemplates(truth, stackMean(stack.images, test.size ** 2), test.size).r;
    const objective = `${result.initialObjective.toFixed(0)} → ${result.finalObjective?.toFixed(0)}`;
    console.log(
      `${test.name.padEnd(12)} ${`${test.size}²`.padStart(4)} ${String(test.count).padStart(7)} ${String(test.snr).padStart(5)} ` +
        `${String(result.epochs).padStart(7)} ${r.toFixed(4).padStart(6)} ${meanR.toFixed(4).padStart(7)} ` +
        `${(result.sigma / stack.sigma).toFixed(3).padStart(8)}  ${objective.padEnd(24)} ${seconds.toFixed(1).padStart(6)} s`,
    );
  }
  gpu.device.destroy();
}

await main();
