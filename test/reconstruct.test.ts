import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { resample } from '../gpu/host.js';
import type { Reconstructor } from '../src/client.js';
import { alignTemplates } from '../src/metrics.js';
import { createNodeReconstructor } from '../src/node-client.js';
import type { ReconstructionOptions } from '../src/options.js';
import { WorkerTerminatedError } from '../src/protocol.js';
import type { Progress, ReconstructionResult } from '../src/reconstruct.js';
import { blobTemplate, figureTemplate, seededRandom, simulateStack, type SimulatedStack } from '../src/synthetic.js';

/**
 * End-to-end runs in a Node worker, sized for SwiftShader: boxes of 32² or less, and 13
 * rotation nodes, an odd count, so each refined window's centre is a node. Shifts span
 * ±2 standard deviations of the prior at 1 px steps, and there is no scale axis.
 */
const GRID: ReconstructionOptions = { rotations: 13, scales: 1, scaleHalfRange: 0 };

let worker: Reconstructor;

beforeAll(async () => {
  worker = await createNodeReconstructor();
});

afterAll(async () => {
  await worker?.terminate();
});

function simulate(
  size: number,
  count: number,
  snr: number,
  seed: number,
  shape: 'blobs' | 'figure' = 'blobs',
): { truth: Float32Array; stack: SimulatedStack } {
  const truth = shape === 'figure' ? figureTemplate(size) : blobTemplate(size, seededRandom(seed));
  return { truth, stack: simulateStack(truth, size, { count, snr, seed: seed + 1, scaleHalfRange: 0 }, resample) };
}

function stackMean(stack: SimulatedStack): Float64Array {
  const pixels = stack.size * stack.size;
  const count = stack.images.length / pixels;
  const mean = new Float64Array(pixels);
  for (let i = 0; i < stack.images.length; i++) mean[i % pixels] += stack.images[i] / count;
  return mean;
}

async function run(stack: SimulatedStack, options: ReconstructionOptions): Promise<ReconstructionResult> {
  return worker.reconstruct({ images: stack.images, size: stack.size }, { ...GRID, ...options });
}

describe('reconstruction in a Node worker', () => {
  it('recovers the template at SNR 12', async () => {
    const { truth, stack } = simulate(32, 60, 12, 7);
    // At this SNR σ absorbs the residual of the nearest grid pose until the rotation
    // windows narrow: 11 % high after 4 epochs, 6 % after 6, 3 % after 8 in this stack.
    const result = await run(stack, { init: 'zeros', maxEpochs: 6 });
    const r = alignTemplates(truth, result.template, 32).r;
    expect(r, 'r after alignment').toBeGreaterThanOrEqual(0.95);
    expect(Math.abs(result.sigma / stack.sigma - 1), `σ ${result.sigma} against ${stack.sigma}`).toBeLessThanOrEqual(0.1);
    expect(result.finalObjective!).toBeGreaterThan(result.initialObjective);
    expect(result.poses).toHaveLength(60);
    expect(result.epochs).toBe(6);
  });

  it('recovers the template at SNR 0.42', async () => {
    // The figure has no rotational symmetry, so the stack's mean (near its rotational average) scores low.
    const { truth, stack } = simulate(32, 60, 0.42, 11, 'figure');
    const result = await run(stack, { init: 'zeros', maxEpochs: 4 });
    const r = alignTemplates(truth, result.template, 32).r;
    const meanR = alignTemplates(truth, stackMean(stack), 32).r;
    expect(r, 'r after alignment').toBeGreaterThanOrEqual(0.7);
    expect(r - meanR, `r ${r} against the stack mean's ${meanR}`).toBeGreaterThanOrEqual(0.1);
    expect(Math.abs(result.sigma / stack.sigma - 1), `σ ${result.sigma} against ${stack.sigma}`).toBeLessThanOrEqual(0.1);
  });
});

describe('initialisations', () => {
  it('rank jensen, zeros, random', async () => {
    // 20 images of 24² at SNR 1, 9 rotation nodes, 3 epochs. Measured on this stack, jensen
    // and zeros reach r 0.94, and jensen's ℓ is higher at the start and the end. Random
    // N(0, 1) pixels are far larger than the data, so r stays at 0.69 and σ 6× too high.
    const { truth, stack } = simulate(24, 20, 1, 71, 'figure');
    const options = { ...GRID, rotations: 9, maxEpochs: 3 };
    const results = {
      random: await run(stack, { ...options, init: 'random' }),
      zeros: await run(stack, { ...options, init: 'zeros' }),
      jensen: await run(stack, { ...options, init: 'jensen' }),
    };
    const r = Object.fromEntries(Object.entries(results).map(([name, result]) => [name, alignTemplates(truth, result.template, 24).r]));
    expect(results.jensen.initialObjective, 'ℓ at the start: jensen above zeros').toBeGreaterThan(results.zeros.initialObjective);
    expect(results.zeros.initialObjective, 'ℓ at the start: zeros above random').toBeGreaterThan(results.random.initialObjective);
    expect(results.jensen.finalObjective!, 'ℓ at the end: jensen above zeros').toBeGreaterThan(results.zeros.finalObjective!);
    expect(results.zeros.finalObjective!, 'ℓ at the end: zeros above random').toBeGreaterThan(results.random.finalObjective!);
    expect(r.jensen, 'r of jensen').toBeGreaterThanOrEqual(0.9);
    expect(r.zeros, 'r of zeros').toBeGreaterThanOrEqual(0.9);
    expect(r.random, 'r of random').toBeLessThan(r.zeros - 0.15);
  });
});

describe('split-half validation', () => {
  it('reports the FRC of two half reconstructions', async () => {
    const { stack } = simulate(24, 40, 3, 81, 'figure');
    const result = await run(stack, { rotations: 9, maxEpochs: 2, init: 'zeros', splitHalf: true });
    const validation = result.validation!;
    expect(validation, 'validation present').toBeDefined();
    expect(validation.frequencies).toHaveLength(13);
    expect(validation.frc).toHaveLength(13);
    expect(validation.halves[0]).toHaveLength(24 * 24);
    expect(validation.r, 'halves agree after alignment').toBeGreaterThan(0.8);
    expect(validation.frc[1], 'FRC at the lowest ring').toBeGreaterThan(0.9);
    expect(validation.crossing0143 ?? 0.5, '0.143 crossing beyond the 0.5 one').toBeGreaterThanOrEqual(validation.crossing05 ?? 0.5);
  });
});

describe('plugins in training', () => {
  const small = () => simulate(24, 20, 3, 21).stack;

  for (const optimiser of ['sgd', 'momentum', 'nesterov', 'adam']) {
    it(`${optimiser} raises the objective`, async () => {
      const result = await run(small(), { optimiser, init: 'zeros', maxEpochs: 2, batchSize: 5 });
      expect(result.finalObjective!, `from ${result.initialObjective}`).toBeGreaterThan(result.initialObjective);
    });
  }

  for (const reparameterisation of ['exp', 'softplus', 'sigmoid']) {
    it(`${reparameterisation} σ raises the objective`, async () => {
      const result = await run(small(), { reparameterisation, init: 'zeros', maxEpochs: 2 });
      expect(result.finalObjective!, `from ${result.initialObjective}`).toBeGreaterThan(result.initialObjective);
      expect(result.sigma, 'σ moved').not.toBe(result.initialSigma);
    });
  }

  it('trains with a user plugin loaded into the worker', async () => {
    await worker.loadModules([new URL('./fixtures/sign-sgd.ts', import.meta.url).href]);
    const result = await run(small(), { optimiser: 'sign-sgd', learningRateTheta: 0.01, init: 'zeros', maxEpochs: 2 });
    expect(result.finalObjective!).toBeGreaterThan(result.initialObjective);
  });
});

describe('worker protocol', () => {
  it('cancels within one step', async () => {
    const stack = simulate(24, 20, 3, 31).stack;
    const controller = new AbortController();
    const steps: number[] = [];
    const onProgress = (progress: Progress) => {
      steps.push(progress.step);
      if (progress.step === 2) controller.abort();
    };
    const result = await worker.reconstruct(
      { images: stack.images, size: 24 },
      { ...GRID, init: 'zeros', maxEpochs: 5 },
      { onProgress, signal: controller.signal },
    );
    expect(result.cancelled).toBe(true);
    expect(Math.max(...steps), `steps seen: ${steps.join(', ')}`).toBeLessThanOrEqual(3);
    expect(result.template).toHaveLength(24 * 24);
    expect(result.finalObjective).toBeUndefined();
  });

  it('pauses and resumes between steps', async () => {
    const stack = simulate(16, 10, 3, 35).stack;
    const steps: number[] = [];
    let pausedAt = 0;
    const onProgress = (progress: Progress) => {
      steps.push(progress.step);
      if (progress.step === 2) void worker.pause();
    };
    const run = worker.reconstruct({ images: stack.images, size: 16 }, { ...GRID, init: 'zeros', maxEpochs: 2 }, { onProgress });
    // Wait for the pause to take hold, then check that no step runs while paused.
    while (steps.length < 2) await new Promise((resolve) => setTimeout(resolve, 20));
    await new Promise((resolve) => setTimeout(resolve, 300));
    pausedAt = steps.length;
    await new Promise((resolve) => setTimeout(resolve, 1000));
    expect(steps.length, `steps seen while paused: ${steps.join(', ')}`).toBe(pausedAt);
    expect(pausedAt, 'steps before the pause took hold').toBeLessThanOrEqual(3);
    await worker.resume();
    const result = await run;
    expect(result.cancelled).toBe(false);
    expect(steps.at(-1)).toBe(4);
  });

  it('cancels a paused run', async () => {
    const stack = simulate(16, 10, 3, 37).stack;
    const controller = new AbortController();
    const onProgress = (progress: Progress) => {
      if (progress.step === 1) {
        void worker.pause().then(() => setTimeout(() => controller.abort(), 200));
      }
    };
    const result = await worker.reconstruct(
      { images: stack.images, size: 16 },
      { ...GRID, init: 'zeros', maxEpochs: 3 },
      { onProgress, signal: controller.signal },
    );
    expect(result.cancelled).toBe(true);
    expect(result.epochs).toBe(0);
  });

  it('cancels a run whose signal is already aborted', async () => {
    const stack = simulate(16, 10, 3, 33).stack;
    const controller = new AbortController();
    controller.abort();
    const steps: number[] = [];
    const result = await worker.reconstruct(
      { images: stack.images, size: 16 },
      { ...GRID, init: 'zeros', maxEpochs: 3 },
      { onProgress: (progress) => steps.push(progress.step), signal: controller.signal },
    );
    expect(result.cancelled).toBe(true);
    expect(steps.length, `steps seen: ${steps.join(', ')}`).toBeLessThanOrEqual(1);
  });

  it('rejects the run when the progress callback throws', async () => {
    const stack = simulate(16, 10, 3, 35).stack;
    const failing = worker.reconstruct(
      { images: stack.images, size: 16 },
      { ...GRID, init: 'zeros', maxEpochs: 3 },
      {
        onProgress: () => {
          throw new RangeError('progress display failed');
        },
      },
    );
    await expect(failing).rejects.toThrow(/progress display failed/);
    const after = await worker.reconstruct({ images: stack.images, size: 16 }, { ...GRID, init: 'zeros', maxEpochs: 1 });
    expect(after.cancelled, 'the worker still runs').toBe(false);
  });

  it('keeps the error class across the worker', async () => {
    const stack = simulate(16, 4, 3, 41).stack;
    const failure = worker.reconstruct({ images: stack.images, size: 16 }, { batchSize: 9 });
    await expect(failure).rejects.toBeInstanceOf(RangeError);
    await expect(failure).rejects.toThrow(/option batchSize is 9; it must be at most the 4 images of the stack/);
    const unknown = worker.reconstruct({ images: stack.images, size: 16 }, { batchSize: 2, optimiser: 'lbfgs' });
    await expect(unknown).rejects.toBeInstanceOf(RangeError);
    await expect(unknown).rejects.toThrow(/unknown optimiser 'lbfgs'; registered: sgd, momentum, nesterov, adam/);
  });

  it('rejects a pending call when the worker ends', async () => {
    const other = await createNodeReconstructor();
    const stack = simulate(24, 20, 3, 51).stack;
    const pending = other.reconstruct({ images: stack.images, size: 24 }, { ...GRID, init: 'zeros', maxEpochs: 5 });
    const outcome = pending.then(
      () => 'resolved',
      (error: unknown) => error,
    );
    await new Promise((resolve) => setTimeout(resolve, 200));
    await other.terminate();
    expect(await outcome).toBeInstanceOf(WorkerTerminatedError);
    await expect(other.adapter()).rejects.toThrow(/the reconstruction worker ended: terminated by the caller/);
    await expect(other.terminate(), 'a second terminate').resolves.toBeUndefined();
  });

  it('leaves the caller\'s stack intact', async () => {
    const stack = simulate(16, 5, 3, 61).stack;
    const before = stack.images.slice();
    await worker.reconstruct({ images: stack.images, size: 16 }, { ...GRID, init: 'zeros', maxEpochs: 1 });
    expect(stack.images.length).toBe(before.length);
    expect(stack.images).toEqual(before);
  });
});
