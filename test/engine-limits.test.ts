import { beforeAll, describe, expect, it } from 'vitest';

import type { BatchOutput } from '../gpu/batch.js';
import { PoseEngine } from '../gpu/engine.js';
import { evaluateHost } from '../gpu/host.js';
import { loadNumerics, type Numerics } from '../src/numerics.js';
import { openTestGpu } from './gpu.js';
import { makeProblem, type Problem } from './problem.js';
import { testSeed } from './random.js';

let numerics: Numerics;
let device: GPUDevice;
let seed: number;

beforeAll(async () => {
  numerics = await loadNumerics();
  device = (await openTestGpu()).device;
  seed = testSeed();
});

function expectAllFinite(name: string, values: ArrayLike<number>): void {
  let bad = -1;
  for (let i = 0; i < values.length && bad < 0; i++) if (!Number.isFinite(values[i])) bad = i;
  expect(bad, `${name}: first non-finite element (value ${values[bad]})`).toBe(-1);
}

function responsibilitySums(output: BatchOutput, images: number): number[] {
  const gamma = output.responsibilities!;
  const terms = gamma.length / images;
  return Array.from({ length: images }, (_, b) => {
    let sum = 0;
    for (let i = b * terms; i < (b + 1) * terms; i++) sum += gamma[i];
    return sum;
  });
}

/** Largest |gpu − host| of an output relative to the largest |host|. */
function relativeError(gpu: ArrayLike<number>, host: ArrayLike<number>): number {
  let error = 0;
  let scale = 0;
  for (let i = 0; i < host.length; i++) {
    error = Math.max(error, Math.abs(gpu[i] - host[i]));
    scale = Math.max(scale, Math.abs(host[i]));
  }
  return error / scale;
}

async function evaluate(problem: Problem, engine?: PoseEngine) {
  const own = engine ?? (await PoseEngine.create(device, problem.shape));
  const output = await own.evaluate(problem.input, { responsibilities: true, energy: true });
  if (!engine) own.destroy();
  return output;
}

describe('PoseEngine numerical range', () => {
  it('handles images ×1e4 with σ = 1e-6', async () => {
    const problem = makeProblem(numerics, seed, { size: 12, batch: 2, rotations: 6, shifts: 3, scales: 1 });
    const images = problem.input.images.map((v) => v * 1e4);
    const scaled = { ...problem, input: { ...problem.input, images, sigma: 1e-6 } };
    const output = await evaluate(scaled);
    expectAllFinite('log Ĩ', output.logIntegral);
    expectAllFinite('γ', output.responsibilities!);
    expectAllFinite('Σ γ E', output.weightedEnergy);
    expectAllFinite('∂/∂θ', output.gradient);
    for (const [b, sum] of responsibilitySums(output, 2).entries()) {
      expect(Math.abs(sum - 1), `Σ γ of image ${b}`).toBeLessThan(1e-5);
    }
    const host = evaluateHost(scaled.shape, scaled.input);
    // Terms near −1e23 in float32: log Ĩ agrees to float32 relative precision.
    for (let b = 0; b < 2; b++) {
      expect(Math.abs(output.logIntegral[b] / host.logIntegral[b] - 1), `log Ĩ of image ${b}`).toBeLessThan(1e-5);
    }
  });

  it('handles every term far below float range', async () => {
    // σ chosen so every exp(L) underflows float64 as well as float32: L ≈ −1e6.
    const problem = makeProblem(numerics, seed + 1, { size: 12, batch: 2, rotations: 6, shifts: 3, scales: 2 });
    const host0 = evaluateHost(problem.shape, problem.input, { gradient: false });
    const minEnergy = Math.min(...Array.from(host0.energy));
    const sigma = Math.sqrt(minEnergy / 2e6);
    const tiny = { ...problem, input: { ...problem.input, sigma } };
    const output = await evaluate(tiny);
    const host = evaluateHost(tiny.shape, tiny.input);
    expectAllFinite('log Ĩ', output.logIntegral);
    expectAllFinite('γ', output.responsibilities!);
    for (let b = 0; b < 2; b++) {
      expect(host.logIntegral[b], `twin log Ĩ of image ${b}`).toBeLessThan(-1e6 + 100);
      expect(Math.abs(output.logIntegral[b] / host.logIntegral[b] - 1), `log Ĩ of image ${b}`).toBeLessThan(1e-5);
    }
    for (const [b, sum] of responsibilitySums(output, 2).entries()) {
      expect(Math.abs(sum - 1), `Σ γ of image ${b}`).toBeLessThan(1e-5);
    }
  });
});

describe('PoseEngine work splitting', () => {
  it('dispatches more than 65 535 workgroups', async () => {
    // 2 images × 720 rotations × 7 × 7 shifts = 70 560 energy workgroups.
    const problem = makeProblem(numerics, seed + 2, { size: 8, batch: 2, rotations: 720, shifts: 7, scales: 1 });
    const output = await evaluate(problem);
    const host = evaluateHost(problem.shape, problem.input);
    expect(2 * 720 * 49).toBeGreaterThan(device.limits.maxComputeWorkgroupsPerDimension);
    expect(relativeError(output.energy!, host.energy), 'E').toBeLessThan(1e-6);
    expect(relativeError(output.responsibilities!, host.responsibilities), 'γ').toBeLessThan(1e-4);
    expect(relativeError(output.logIntegral, host.logIntegral), 'log Ĩ').toBeLessThan(1e-5);
    expect(relativeError(output.gradient, host.gradient), '∂/∂θ').toBeLessThan(1e-4);
  });

  it('splits sub-batches and chunks at a small binding limit', async () => {
    // Per image: 64 pixels, 72 terms of 4 bytes = 288 bytes, so 3 images fit in 1 KiB.
    const problem = makeProblem(numerics, seed + 3, { size: 8, batch: 7, rotations: 8, shifts: 3, scales: 1 });
    const engine = await PoseEngine.create(device, problem.shape, { maxBindingBytes: 1024 });
    expect(engine.plan).toEqual({ imagesPerSubBatch: 3, subBatches: 3, chunks: 4 });
    engine.fillOutputs(Number.NaN);
    const output = await evaluate(problem, engine);
    engine.destroy();
    const host = evaluateHost(problem.shape, problem.input);
    expect(relativeError(output.energy!, host.energy), 'E').toBeLessThan(1e-6);
    expect(relativeError(output.responsibilities!, host.responsibilities), 'γ').toBeLessThan(1e-4);
    expect(relativeError(output.logIntegral, host.logIntegral), 'log Ĩ').toBeLessThan(1e-5);
    expect(relativeError(output.weightedEnergy, host.weightedEnergy), 'Σ γ E').toBeLessThan(1e-5);
    expect(relativeError(output.gradient, host.gradient), '∂/∂θ').toBeLessThan(1e-4);
  });

  it('evaluates fewer images than its batch', async () => {
    const problem = makeProblem(numerics, seed + 4, { size: 8, batch: 5, rotations: 4, shifts: 3, scales: 1 });
    const engine = await PoseEngine.create(device, { ...problem.shape, batch: 9 }, { maxBindingBytes: 512 });
    const output = await evaluate(problem, engine);
    engine.destroy();
    const host = evaluateHost(problem.shape, problem.input);
    expect(output.logIntegral.length).toBe(5);
    expect(relativeError(output.logIntegral, host.logIntegral), 'log Ĩ').toBeLessThan(1e-5);
    expect(relativeError(output.gradient, host.gradient), '∂/∂θ').toBeLessThan(1e-4);
  });

  it('overwrites outputs filled with NaN', async () => {
    const problem = makeProblem(numerics, seed + 5, { size: 10, batch: 3, rotations: 6, shifts: 3, scales: 2 });
    const engine = await PoseEngine.create(device, problem.shape);
    engine.fillOutputs(Number.NaN);
    const output = await evaluate(problem, engine);
    engine.destroy();
    expectAllFinite('log Ĩ', output.logIntegral);
    expectAllFinite('Σ γ E', output.weightedEnergy);
    expectAllFinite('∂/∂θ', output.gradient);
    expectAllFinite('γ', output.responsibilities!);
    expectAllFinite('E', output.energy!);
    expect(output.energy!.length).toBe(3 * 6 * 9 * 2);
  });
});

describe('PoseEngine input validation', () => {
  const cases: [string, (p: Problem) => void, RegExp][] = [
    ['a NaN pixel', (p) => (p.input.images[64 + 5] = Number.NaN), /images is NaN at image 1, element 5/],
    ['a short template', (p) => (p.input.templates = p.input.templates.subarray(1)), /templates has 63 values, expected 64/],
    ['σ = 0', (p) => (p.input.sigma = 0), /sigma is 0/],
    ['a zero scale', (p) => (p.input.scales = [0]), /scales is 0 at index 0/],
    ['rotations of the wrong length', (p) => (p.input.rotations = [0]), /rotations has 1 values, expected 8/],
    ['too many images', (p) => (p.input.images = new Float32Array(64 * 3)), /3 images exceed the engine's batch of 2/],
    ['σ whose 1/σ² overflows float32', (p) => (p.input.sigma = 5e-20), /sigma is 5e-20/],
    ['a pixel beyond float32 range', (p) => (p.input.images = Float64Array.from(p.input.images, (v, i) => (i === 3 ? 1e20 : v))), /images is 100000000000000000000 at image 0, element 3/],
    ['a scale of 1e-6', (p) => (p.input.scales = [1e-6]), /scales is 0.000001 at index 0; scales must lie in \[0.001, 1000\]/],
    ['a string weight', (p) => (p.input.logClassWeights = ['0'] as unknown as number[]), /logClassWeights is "0" at index 0/],
    ['a missing field', (p) => delete (p.input as Partial<typeof p.input>).shiftsX, /shiftsX is missing/],
  ];
  for (const [name, corrupt, message] of cases) {
    it(`rejects ${name}`, async () => {
      const problem = makeProblem(numerics, seed, { size: 8, batch: 2, rotations: 4, shifts: 1, scales: 1 });
      const engine = await PoseEngine.create(device, problem.shape);
      corrupt(problem);
      await expect(engine.evaluate(problem.input)).rejects.toThrow(message);
      engine.destroy();
    });
  }

  it('rejects overflow of E/2σ² with a clear error', async () => {
    const problem = makeProblem(numerics, seed, { size: 8, batch: 2, rotations: 4, shifts: 1, scales: 1 });
    const engine = await PoseEngine.create(device, problem.shape);
    const images = problem.input.images.map((v) => v * 1e12);
    await expect(engine.evaluate({ ...problem.input, images, sigma: 1e-12 })).rejects.toThrow(/E\/2σ² overflowed/);
    engine.destroy();
  });

  it('accepts plain arrays', async () => {
    const problem = makeProblem(numerics, seed, { size: 8, batch: 2, rotations: 4, shifts: 3, scales: 1 });
    const engine = await PoseEngine.create(device, problem.shape);
    const typed = await engine.evaluate(problem.input);
    const plain = await engine.evaluate({ ...problem.input, images: Array.from(problem.input.images) as unknown as Float32Array });
    engine.destroy();
    expect(Array.from(plain.logIntegral)).toEqual(Array.from(typed.logIntegral));
  });

  it('requires templates before the first evaluation', async () => {
    const problem = makeProblem(numerics, seed, { size: 8, batch: 2, rotations: 4, shifts: 1, scales: 1 });
    const engine = await PoseEngine.create(device, problem.shape);
    const { templates, ...rest } = problem.input;
    await expect(engine.evaluate(rest)).rejects.toThrow(/no templates given and none uploaded/);
    expect(() => engine.setTemplates(templates.map((v, i) => (i === 2 ? Number.NaN : v)))).toThrow(/templates is NaN at class 0, element 2/);
    engine.setTemplates(templates);
    const resident = await engine.evaluate(rest);
    const passed = await engine.evaluate(problem.input);
    expect(Array.from(resident.logIntegral)).toEqual(Array.from(passed.logIntegral));
    engine.destroy();
    await expect(engine.readTemplates()).rejects.toThrow(/readTemplates: the engine was destroyed/);
    expect(() => engine.setTemplates(templates)).toThrow(/setTemplates: the engine was destroyed/);
  });

  it('rejects a shape with no pixels', async () => {
    await expect(
      PoseEngine.create(device, { size: 0, classes: 1, rotations: 1, shiftsX: 1, shiftsY: 1, scales: 1, batch: 1 }),
    ).rejects.toThrow(/size must be a positive integer, got 0/);
  });

  it('rejects a binding limit the device lacks', async () => {
    const shape = { size: 8, classes: 1, rotations: 1, shiftsX: 1, shiftsY: 1, scales: 1, batch: 1 };
    await expect(PoseEngine.create(device, shape, { maxBindingBytes: 100 })).rejects.toThrow(/maxBindingBytes is 100/);
  });
});
