import { beforeAll, describe, expect, it } from 'vitest';

import type { BatchInput, BatchOutput } from '../gpu/batch.js';
import { PoseEngine } from '../gpu/engine.js';
import { fftKernel, fftSizeFor, inputOrder, radicesOf, twiddles, type FftAxis, type FftDirection } from '../gpu/fft.js';
import { evaluateHost, hostGradientMagnitude } from '../gpu/host.js';
import { bindKernel, compileKernel, dispatchSize, makeParamsView } from '../gpu/kernel.js';
import { loadNumerics, type Numerics } from '../src/numerics.js';
import { resolveOptions } from '../src/options.js';
import { openTestGpu } from './gpu.js';
import { makeProblem, type Problem, type ProblemOptions } from './problem.js';
import { makeNormal, makeRandom, testSeed } from './random.js';

const EPS32 = 2 ** -24;

let numerics: Numerics;
let device: GPUDevice;
let seed: number;

beforeAll(async () => {
  numerics = await loadNumerics();
  device = (await openTestGpu()).device;
  seed = testSeed();
});

describe('FFT sizes', () => {
  it('picks the smallest 2^a 3^b 5^c at or above the request', () => {
    expect([1, 2, 7, 13, 68, 76, 121, 129, 257].map(fftSizeFor)).toEqual([2, 2, 8, 15, 72, 80, 125, 135, 270]);
    expect(radicesOf(72)).toEqual([4, 2, 3, 3]);
    expect(radicesOf(14)).toBeUndefined();
  });

  it('orders the input as a permutation that undoes the stages', () => {
    for (const size of [12, 30, 64, 90]) {
      const order = Array.from(inputOrder(radicesOf(size)!));
      expect([...order].sort((x, y) => x - y), `L = ${size}`).toEqual(Array.from({ length: size }, (_, i) => i));
    }
  });
});

/** Runs one line-FFT kernel over `blocks` [count, L, L] (interleaved complex) and reads them back. */
async function runLines(size: number, axis: FftAxis, direction: FftDirection, blocks: Float32Array, count: number): Promise<Float32Array> {
  const kernel = compileKernel(device, fftKernel(size, axis, direction));
  const storage = (data: ArrayBufferView<ArrayBuffer>) => {
    const buffer = device.createBuffer({ size: data.byteLength, usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST | GPUBufferUsage.COPY_SRC });
    device.queue.writeBuffer(buffer, 0, data);
    return buffer;
  };
  const view = makeParamsView();
  view.set({ fftSize: size, blockCount: count, size: 1, reach: 0 });
  const params = device.createBuffer({ size: view.arrayBuffer.byteLength, usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST });
  device.queue.writeBuffer(params, 0, view.arrayBuffer);
  const buffers = {
    P: params,
    twiddle: storage(twiddles(size)),
    order: storage(inputOrder(radicesOf(size)!)),
    flags: storage(new Uint32Array(count).fill(1)),
    blocks: storage(blocks as Float32Array<ArrayBuffer>),
  };
  const readback = device.createBuffer({ size: blocks.byteLength, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
  const encoder = device.createCommandEncoder();
  const pass = encoder.beginComputePass();
  pass.setPipeline(kernel.pipeline);
  pass.setBindGroup(0, bindKernel(device, kernel, buffers, 'FFT test'));
  pass.dispatchWorkgroups(...dispatchSize(Math.ceil((count * size) / 64), device.limits.maxComputeWorkgroupsPerDimension));
  pass.end();
  encoder.copyBufferToBuffer(buffers.blocks, 0, readback, 0, blocks.byteLength);
  device.queue.submit([encoder.finish()]);
  await readback.mapAsync(GPUMapMode.READ);
  const out = new Float32Array(readback.getMappedRange().slice(0));
  readback.destroy();
  for (const buffer of [params, ...Object.values(buffers)]) buffer.destroy();
  return out;
}

/** Returns the unnormalised 1-D DFT in float64 (sign −1 forward) of every line of one block along `axis`. */
function hostLines(size: number, axis: FftAxis, direction: FftDirection, block: ArrayLike<number>): Float64Array {
  const out = new Float64Array(2 * size * size);
  const sign = direction === 'forward' ? -1 : 1;
  const at = (line: number, i: number) => (axis === 'rows' ? line * size + i : i * size + line);
  for (let line = 0; line < size; line++) {
    for (let k = 0; k < size; k++) {
      let re = 0;
      let im = 0;
      for (let n = 0; n < size; n++) {
        const angle = (sign * 2 * Math.PI * ((k * n) % size)) / size;
        const c = Math.cos(angle);
        const s = Math.sin(angle);
        const xr = block[2 * at(line, n)];
        const xi = block[2 * at(line, n) + 1];
        re += xr * c - xi * s;
        im += xr * s + xi * c;
      }
      out[2 * at(line, k)] = re;
      out[2 * at(line, k) + 1] = im;
    }
  }
  return out;
}

describe('line FFT kernel against a float64 DFT', () => {
  // Every radix (2, 3, 4, 5) and mixed sizes, rows and columns, both directions.
  it.each([2, 12, 18, 20, 45, 64, 80])('matches at L = %i', async (size) => {
    const random = makeRandom(seed + size);
    const normal = makeNormal(random);
    const count = 2;
    const blocks = new Float32Array(2 * count * size * size).map(() => normal());
    for (const axis of ['rows', 'columns'] as const) {
      for (const direction of ['forward', 'inverse'] as const) {
        const gpu = await runLines(size, axis, direction, blocks, count);
        // Rounding of a radix-r FFT grows like log2 L; the input's rms is 1, the output's √L.
        const tolerance = 4 * Math.log2(size) * EPS32 * Math.sqrt(size) * 4;
        let worst = 0;
        for (let c = 0; c < count; c++) {
          const offset = 2 * c * size * size;
          const host = hostLines(size, axis, direction, blocks.subarray(offset, offset + 2 * size * size));
          for (let i = 0; i < host.length; i++) worst = Math.max(worst, Math.abs(gpu[offset + i] - host[i]));
        }
        expect(worst, `seed ${seed}: L = ${size}, ${axis}, ${direction}`).toBeLessThanOrEqual(tolerance);
      }
    }
  });
});

/**
 * Float32 budget of E on the FFT path. E(d) = ‖X‖² + Re(correlation), and the correlation's
 * rounding error scales with the magnitudes of its two operands rather than with E: about
 * log2 L roundings of terms as large as ‖X‖² and Σ U². The bound is 8 log2(L) ε (‖X‖² + E),
 * since Σ U² over the box is at most 2 ‖X‖² + 2 E. The largest measured over these
 * problems was about 17 ε (‖X‖² + E) at L = 18, where the images nearly equal the model.
 */
function energyBound(fftSize: number, norm: number, energy: number): number {
  return 8 * Math.log2(fftSize) * EPS32 * (norm + energy);
}

function imageNorms(input: BatchInput, pixels: number): Float64Array {
  const count = input.images.length / pixels;
  const norms = new Float64Array(count);
  for (let b = 0; b < count; b++) {
    for (let j = 0; j < pixels; j++) norms[b] += input.images[b * pixels + j] ** 2;
  }
  return norms;
}

/**
 * Checks the FFT engine's outputs against the float64 twin. From the bound on E follow
 * |ΔL| ≤ max ΔE / 2σ² =: τ, |Δ log Ĩ| ≤ τ, |Δγ| ≤ 2γτ + 2ε, as on the reference path. The
 * gradient's correlation H − U·W rounds relative to the sizes of X and U, so its budget is
 * (2τ + 16 log2(L) ε) times the largest element of Σ γ Rᵀ |X − Rθ| / σ² plus the
 * X-scaled share; measured errors were below a tenth of it.
 */
function expectFftMatch(problem: Problem, fftSize: number, gpu: BatchOutput, host: Required<BatchOutput>): void {
  const { shape, input } = problem;
  const pixels = shape.size * shape.size;
  const norms = imageNorms(input, pixels);
  const terms = host.energy.length / norms.length;
  const context = `seed ${seed}`;
  let tau = 0;
  const energy = gpu.energy!;
  for (let i = 0; i < host.energy.length; i++) {
    const bound = energyBound(fftSize, norms[Math.floor(i / terms)], host.energy[i]);
    expect(Math.abs(energy[i] - host.energy[i]), `${context}: E of term ${i}`).toBeLessThanOrEqual(bound);
    tau = Math.max(tau, bound / (2 * input.sigma * input.sigma));
  }
  tau += 8 * EPS32 * Math.max(1, ...Array.from(input.logWeights, Math.abs));
  for (let b = 0; b < norms.length; b++) {
    expect(Math.abs(gpu.logIntegral[b] - host.logIntegral[b]), `${context}: log Ĩ of image ${b}`).toBeLessThanOrEqual(
      tau + 4 * EPS32 * Math.abs(host.logIntegral[b]),
    );
    expect(Math.abs(gpu.weightedEnergy[b] - host.weightedEnergy[b]), `${context}: Σ γ E of image ${b}`).toBeLessThanOrEqual(
      2 * tau * host.weightedEnergy[b] + energyBound(fftSize, norms[b], host.weightedEnergy[b]),
    );
  }
  const gamma = gpu.responsibilities!;
  let worstGamma = 0;
  for (let i = 0; i < host.responsibilities.length; i++) {
    worstGamma = Math.max(worstGamma, Math.abs(gamma[i] - host.responsibilities[i]) - (2 * tau * host.responsibilities[i] + 2 * EPS32));
  }
  expect(worstGamma, `${context}: γ beyond 2 γ τ + 2ε`).toBeLessThanOrEqual(0);
  const magnitude = hostGradientMagnitude(shape, input, host.responsibilities);
  let peak = 0;
  for (const value of magnitude) peak = Math.max(peak, value);
  let xScale = 0;
  for (const value of input.images) xScale = Math.max(xScale, Math.abs(value));
  const relative = 2 * tau + 16 * Math.log2(fftSize) * EPS32;
  let worstGradient = 0;
  for (let e = 0; e < host.gradient.length; e++) {
    const budget = relative * (magnitude[e] + peak) + 16 * Math.log2(fftSize) * EPS32 * xScale * norms.length / (input.sigma * input.sigma);
    worstGradient = Math.max(worstGradient, Math.abs(gpu.gradient[e] - host.gradient[e]) - budget);
  }
  expect(worstGradient, `${context}: ∂/∂θ beyond its float32 budget`).toBeLessThanOrEqual(0);
}

async function runFft(problem: Problem, options: Parameters<typeof PoseEngine.create>[2] = {}) {
  const engine = await PoseEngine.create(device, problem.shape, { kernel: 'fft', ...options });
  engine.fillOutputs(Number.NaN);
  const gpu = await engine.evaluate(problem.input, { responsibilities: true, energy: true });
  const plan = engine.plan;
  engine.destroy();
  return { gpu, plan, fftSize: plan.fft!.size };
}

const SMALL: ProblemOptions = { size: 16, batch: 3, rotations: 8, shifts: 3, scales: 2 };

describe('FFT engine against the float64 twin', () => {
  it('matches on the full circle', async () => {
    // Every image has the same rotation nodes, so the images of a group share U.
    const problem = makeProblem(numerics, seed, SMALL);
    const { gpu, fftSize } = await runFft(problem);
    expectFftMatch(problem, fftSize, gpu, evaluateHost(problem.shape, problem.input));
  });

  it('matches when one image has other rotation nodes', async () => {
    const base = makeProblem(numerics, seed + 7, SMALL);
    const rotations = Float64Array.from(base.input.rotations);
    for (let p = 0; p < SMALL.rotations; p++) rotations[SMALL.rotations + p] += 0.1;
    const problem = { shape: base.shape, input: { ...base.input, rotations } };
    const { gpu, fftSize } = await runFft(problem);
    expectFftMatch(problem, fftSize, gpu, evaluateHost(problem.shape, problem.input));
  });

  it('matches an odd box with wrapping shifts', async () => {
    // N = 15 with shifts −7 … 7, where a box-sized FFT would wrap: the extended grid of
    // 29 needs L = 30, twice the box.
    const problem = makeProblem(numerics, seed + 1, { size: 15, batch: 2, rotations: 5, shifts: 15, scales: 1, halfWidth: 0.4 });
    const { gpu, fftSize } = await runFft(problem);
    expect(fftSize).toBe(30);
    expectFftMatch(problem, fftSize, gpu, evaluateHost(problem.shape, problem.input));
  });

  it('matches with two classes, three scales and an odd box', async () => {
    const problem = makeProblem(numerics, seed + 2, { size: 17, classes: 2, batch: 3, rotations: 4, shifts: 5, scales: 3, noise: 1 });
    const { gpu, fftSize } = await runFft(problem);
    expectFftMatch(problem, fftSize, gpu, evaluateHost(problem.shape, problem.input));
  });

  it('matches with uneven shift nodes of different counts per axis', async () => {
    const base = makeProblem(numerics, seed + 3, { ...SMALL, shifts: 3 });
    const shiftsX = [-3, -1, 2];
    const shiftsY = [-2, 0, 1];
    const problem = { shape: base.shape, input: { ...base.input, shiftsX, shiftsY } };
    const { gpu, fftSize } = await runFft(problem, { shiftReach: 3 });
    expectFftMatch(problem, fftSize, gpu, evaluateHost(problem.shape, problem.input));
  });

  it('matches when the blocks are split into chunks and the images into sub-batches', async () => {
    const problem = makeProblem(numerics, seed + 4, { ...SMALL, batch: 5, rotations: 6 });
    // L = 18: a block is 18² complex values, 2 592 bytes. The binding limit fits the
    // spectra of 4 images, and the work buffer one group of 4 blocks of the 12 groups.
    const { gpu, plan, fftSize } = await runFft(problem, { workBytes: 7 * 2592, maxBindingBytes: 4 * 2 * 2592 });
    expect(plan.imagesPerSubBatch).toBe(4);
    expect(plan.subBatches).toBe(2);
    expect(plan.fft!.groupsPerChunk).toBe(1);
    expect(plan.fft!.blocksPerChunk).toBe(4);
    expectFftMatch(problem, fftSize, gpu, evaluateHost(problem.shape, problem.input));
  });

  it('agrees with the reference kernel', async () => {
    const problem = makeProblem(numerics, seed + 5, { size: 15, batch: 3, rotations: 6, shifts: 7, scales: 2 });
    const { gpu } = await runFft(problem);
    const engine = await PoseEngine.create(device, problem.shape, { kernel: 'reference' });
    const reference = await engine.evaluate(problem.input, { responsibilities: true });
    engine.destroy();
    const host = evaluateHost(problem.shape, problem.input);
    let scale = 0;
    for (const value of host.gradient) scale = Math.max(scale, Math.abs(value));
    for (let b = 0; b < 3; b++) {
      expect(Math.abs(gpu.logIntegral[b] - reference.logIntegral[b]), `seed ${seed}: log Ĩ of image ${b}`).toBeLessThan(
        1e-3 + 1e-6 * Math.abs(host.logIntegral[b]),
      );
    }
    // Each γ carries the rounding of its log Ĩ (1e-3 above) as a relative error.
    let worstGamma = 0;
    for (let i = 0; i < host.responsibilities.length; i++) {
      const difference = Math.abs(gpu.responsibilities![i] - reference.responsibilities![i]);
      worstGamma = Math.max(worstGamma, difference - (2e-3 * host.responsibilities[i] + 1e-6));
    }
    expect(worstGamma, `seed ${seed}: γ, FFT against reference, beyond 2e-3 γ + 1e-6`).toBeLessThanOrEqual(0);
    let worst = 0;
    for (let e = 0; e < host.gradient.length; e++) worst = Math.max(worst, Math.abs(gpu.gradient[e] - reference.gradient[e]));
    expect(worst / scale, `seed ${seed}: ∂/∂θ, FFT against reference`).toBeLessThan(1e-4);
  });

  it('keeps its accuracy when the data are scaled up', async () => {
    // Images, templates and σ scaled by 10⁴ change nothing in exact arithmetic.
    const base = makeProblem(numerics, seed + 9, SMALL);
    const scale = 1e4;
    const input = {
      ...base.input,
      images: base.input.images.map((value) => scale * value),
      templates: base.input.templates.map((value) => scale * value),
      sigma: scale * base.input.sigma,
    };
    const problem = { shape: base.shape, input };
    const { gpu, fftSize } = await runFft(problem);
    expectFftMatch(problem, fftSize, gpu, evaluateHost(problem.shape, problem.input));
  });

  it('returns E ≥ 0 where a pose fits exactly', async () => {
    const base = makeProblem(numerics, seed + 10, { ...SMALL, batch: 1, shifts: 1, scales: 1, rotations: 4 });
    // The image is the template with an offset at the first node (ψ = 0, no shift, scale 1).
    const templates = base.input.templates.map((value) => value + 5);
    const problem = { shape: base.shape, input: { ...base.input, templates, images: templates.slice(), scales: [1], sigma: 0.05 } };
    const { gpu } = await runFft(problem);
    expect(Math.min(...gpu.energy!), `seed ${seed}: smallest E`).toBeGreaterThanOrEqual(0);
  });

  it('skips blocks whose responsibilities are all zero and still matches', async () => {
    // A small σ concentrates the responsibilities, so most blocks underflow to 0.
    const base = makeProblem(numerics, seed + 6, { ...SMALL, noise: 0.05, rotations: 12 });
    const problem = { shape: base.shape, input: { ...base.input, sigma: 0.05 } };
    const { gpu, fftSize } = await runFft(problem);
    const host = evaluateHost(problem.shape, problem.input);
    const gamma = gpu.responsibilities!;
    const perBlock = problem.shape.shiftsX * problem.shape.shiftsY;
    let empty = 0;
    let blocks = 0;
    // Poses run (rotation, shift x, shift y, scale): a block is one rotation and scale.
    for (let offset = 0; offset < gamma.length; offset += problem.shape.scales * perBlock) {
      for (let m = 0; m < problem.shape.scales; m++) {
        let any = false;
        for (let s = 0; s < perBlock; s++) any ||= gamma[offset + s * problem.shape.scales + m] !== 0;
        blocks++;
        if (!any) empty++;
      }
    }
    expect(empty / blocks, `seed ${seed}: blocks with every γ zero`).toBeGreaterThan(0.5);
    expectFftMatch(problem, fftSize, gpu, host);
  });
});

describe('flat-likelihood gradient', () => {
  // The Jensen initialisation evaluates one summed image instead of every batch.
  it.each(['fft', 'reference'] as const)('is linear in the images and template with the %s kernel', async (kernel) => {
    const problem = makeProblem(numerics, seed + 8, { size: 24, batch: 6, rotations: 12, shifts: 7, scales: 1 });
    const pixels = 24 * 24;
    const engine = await PoseEngine.create(device, problem.shape, { kernel });
    const perImage = await engine.evaluate({ ...problem.input, sigma: 1 }, { flatLikelihood: true });
    const sum = new Float32Array(pixels);
    for (let b = 0; b < 6; b++) {
      for (let j = 0; j < pixels; j++) sum[j] += problem.input.images[b * pixels + j];
    }
    const summed = await engine.evaluate(
      {
        ...problem.input,
        images: sum,
        rotations: Array.from(problem.input.rotations).slice(0, 12),
        templates: problem.input.templates.map((value) => 6 * value),
        sigma: 1,
      },
      { flatLikelihood: true },
    );
    engine.destroy();
    let worst = 0;
    let scale = 0;
    for (let j = 0; j < pixels; j++) {
      worst = Math.max(worst, Math.abs(perImage.gradient[j] - summed.gradient[j]));
      scale = Math.max(scale, Math.abs(perImage.gradient[j]));
    }
    expect(worst / scale, `seed ${seed}`).toBeLessThan(64 * EPS32);
  });
});

describe('FFT engine input checks', () => {
  it('rejects shifts that are not whole pixels or beyond the reach', async () => {
    const problem = makeProblem(numerics, seed, SMALL);
    const engine = await PoseEngine.create(device, problem.shape, { kernel: 'fft' });
    await expect(engine.evaluate({ ...problem.input, shiftsX: [-1, 0.5, 1] })).rejects.toThrow(
      /shiftsX is 0\.5 at index 1; the FFT kernel takes whole-pixel shifts within ±1/,
    );
    await expect(engine.evaluate({ ...problem.input, shiftsY: [-2, 0, 1] })).rejects.toThrow(/shiftsY is -2 at index 0/);
    engine.destroy();
  });

  it('keeps the uploaded templates when it rejects the shifts', async () => {
    const problem = makeProblem(numerics, seed, SMALL);
    const engine = await PoseEngine.create(device, problem.shape, { kernel: 'fft' });
    engine.setTemplates(problem.input.templates);
    const other = problem.input.templates.map((value) => value + 1);
    await expect(engine.evaluate({ ...problem.input, templates: other, shiftsX: [-1, 0.5, 1] })).rejects.toThrow(/shiftsX is 0\.5/);
    const afterRejection = await engine.readTemplates();
    engine.destroy();
    expect(Array.from(afterRejection)).toEqual(Array.from(Float32Array.from(problem.input.templates)));
  });

  it('rejects a binding limit below one image\'s spectra', async () => {
    // L = 18: a block is 2 592 bytes and one image's two spectra need 5 184.
    const { shape } = makeProblem(numerics, seed, SMALL);
    await expect(PoseEngine.create(device, shape, { kernel: 'fft', maxBindingBytes: 4000 })).rejects.toThrow(
      /one image's spectra \[2, L, L\] \(complex\) needs 5184 bytes in one binding, above the limit of 4000/,
    );
  });

  it('rejects an unknown kernel and a grid beyond the largest FFT', async () => {
    const { shape } = makeProblem(numerics, seed, SMALL);
    await expect(PoseEngine.create(device, shape, { kernel: 'fast' as 'fft' })).rejects.toThrow(/kernel is "fast"/);
    await expect(PoseEngine.create(device, { ...shape, size: 900 }, { kernel: 'fft', shiftReach: 100 })).rejects.toThrow(
      /periodic grid of 1125² .* use the reference kernel/,
    );
  });

  it('chooses the kernel from the shift step in the options', () => {
    expect(resolveOptions({}, 32, 10).kernel).toBe('fft');
    expect(resolveOptions({ shiftStep: 0.5 }, 32, 10).kernel).toBe('reference');
    expect(() => resolveOptions({ kernel: 'fft', shiftStep: 0.5 }, 32, 10)).toThrow(/option shiftStep is 0.5; .*kernel 'fft'/);
    expect(() => resolveOptions({ kernel: 'gpu' as 'fft' }, 32, 10)).toThrow(/option kernel is "gpu"; it must be 'fft' or 'reference'/);
  });
});
