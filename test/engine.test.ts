import { beforeAll, describe, expect, it } from 'vitest';

import type { BatchInput, BatchOutput, EngineShape } from '../gpu/batch.js';
import { PoseEngine } from '../gpu/engine.js';
import { evaluateHost, hostGradientMagnitude } from '../gpu/host.js';
import { loadNumerics, type Numerics } from '../src/numerics.js';
import { openTestGpu } from './gpu.js';
import { makeProblem, type Problem, type ProblemOptions } from './problem.js';
import { testSeed } from './random.js';

/** Unit roundoff of float32. */
const EPS32 = 2 ** -24;

/**
 * Float32 error budget of one squared residual sum E, relative to E. Each residual
 * x − Σ w θ carries a few roundings of the larger of |x| and |θ| (bilinear weights,
 * products, three additions), and the sum adds J/64 sequential steps and log2(64) tree
 * levels: about 26 ε in the worst case at 32², while independent roundings grow like the
 * square root of the steps. Over nine random problems of these sizes the largest error
 * measured was 5.3 ε; 16 ε is the bound.
 */
const ENERGY_RELATIVE = 16 * EPS32;

/**
 * A term L = −E/2σ² + log π + log(w P) inherits E's relative error in absolute terms:
 * |ΔL| ≤ ENERGY_RELATIVE · max E/2σ² (plus an ulp of the log weights). log Ĩ moves by
 * at most max |ΔL|, each γ by at most 2 γ max |ΔL| (numerator and normaliser), and the
 * gradient's terms by the same relative amount on top of their own residual error.
 */
function termTolerance(shape: EngineShape, input: BatchInput, host: Required<BatchOutput>): number {
  let peak = 0;
  for (const e of host.energy) peak = Math.max(peak, e / (2 * input.sigma * input.sigma));
  return ENERGY_RELATIVE * peak + 8 * EPS32 * Math.max(1, ...Array.from(input.logWeights, Math.abs));
}

let numerics: Numerics;
let device: GPUDevice;
let seed: number;

beforeAll(async () => {
  numerics = await loadNumerics();
  device = (await openTestGpu()).device;
  seed = testSeed();
});

async function runBoth(problem: Problem, engine?: PoseEngine) {
  const own = engine ?? (await PoseEngine.create(device, problem.shape));
  const gpu = await own.evaluate(problem.input, { responsibilities: true, energy: true });
  if (!engine) own.destroy();
  const host = evaluateHost(problem.shape, problem.input);
  return { gpu, host };
}

/** Checks every output of the engine against the host twin within the float32 budget. */
function expectTwinMatch(problem: Problem, gpu: BatchOutput, host: Required<BatchOutput>): void {
  const { shape, input } = problem;
  const tolL = termTolerance(shape, input, host);
  const context = `seed ${seed}`;
  for (let b = 0; b < host.logIntegral.length; b++) {
    expect(Math.abs(gpu.logIntegral[b] - host.logIntegral[b]), `${context}: log Ĩ of image ${b}`).toBeLessThanOrEqual(
      tolL + 4 * EPS32 * Math.abs(host.logIntegral[b]),
    );
    expect(
      Math.abs(gpu.weightedEnergy[b] - host.weightedEnergy[b]),
      `${context}: Σ γ E of image ${b}`,
    ).toBeLessThanOrEqual((2 * tolL + ENERGY_RELATIVE) * host.weightedEnergy[b]);
  }
  const energy = gpu.energy!;
  for (let i = 0; i < host.energy.length; i++) {
    expect(Math.abs(energy[i] - host.energy[i]), `${context}: E of term ${i}`).toBeLessThanOrEqual(
      ENERGY_RELATIVE * host.energy[i],
    );
  }
  const gamma = gpu.responsibilities!;
  let worstGamma = 0;
  for (let i = 0; i < host.responsibilities.length; i++) {
    const excess = Math.abs(gamma[i] - host.responsibilities[i]) - (2 * tolL * host.responsibilities[i] + 2 * EPS32);
    worstGamma = Math.max(worstGamma, excess);
  }
  expect(worstGamma, `${context}: γ beyond 2 γ |ΔL| + 2ε`).toBeLessThanOrEqual(0);
  const magnitude = hostGradientMagnitude(shape, input, host.responsibilities);
  const gradientRelative = 2 * tolL + 2 * ENERGY_RELATIVE;
  let worstGradient = 0;
  for (let e = 0; e < host.gradient.length; e++) {
    const excess = Math.abs(gpu.gradient[e] - host.gradient[e]) - gradientRelative * magnitude[e] - 1e-30;
    worstGradient = Math.max(worstGradient, excess);
  }
  expect(worstGradient, `${context}: ∂/∂θ beyond its float32 budget`).toBeLessThanOrEqual(0);
}

const SMALL: ProblemOptions = { size: 16, batch: 3, rotations: 8, shifts: 3, scales: 2 };

describe('PoseEngine against the float64 twin', () => {
  it('matches on the full circle', async () => {
    const problem = makeProblem(numerics, seed, SMALL);
    const { gpu, host } = await runBoth(problem);
    expectTwinMatch(problem, gpu, host);
  });

  it('matches on rotation windows with an odd box', async () => {
    const problem = makeProblem(numerics, seed + 1, { ...SMALL, size: 15, halfWidth: 0.4, rotations: 5, shifts: 5 });
    const { gpu, host } = await runBoth(problem);
    expectTwinMatch(problem, gpu, host);
  });

  it('matches with two classes', async () => {
    const problem = makeProblem(numerics, seed + 2, { ...SMALL, classes: 2 });
    const { gpu, host } = await runBoth(problem);
    expectTwinMatch(problem, gpu, host);
  });

  it('matches with a flat likelihood', async () => {
    const problem = makeProblem(numerics, seed + 5, SMALL);
    const engine = await PoseEngine.create(device, problem.shape);
    const gpu = await engine.evaluate(problem.input, { responsibilities: true, flatLikelihood: true });
    engine.destroy();
    const host = evaluateHost(problem.shape, problem.input, { flatLikelihood: true });
    const weights = Array.from(problem.input.logWeights, Math.exp);
    const total = weights.reduce((sum, w) => sum + w, 0);
    for (let i = 0; i < host.responsibilities.length; i++) {
      const prior = weights[i % weights.length] / total;
      expect(Math.abs(host.responsibilities[i] - prior), `twin γ of term ${i}`).toBeLessThan(1e-12);
      expect(Math.abs(gpu.responsibilities![i] - prior), `engine γ of term ${i}`).toBeLessThan(4 * EPS32);
    }
    let worst = 0;
    let scale = 0;
    for (let e = 0; e < host.gradient.length; e++) {
      worst = Math.max(worst, Math.abs(gpu.gradient[e] - host.gradient[e]));
      scale = Math.max(scale, Math.abs(host.gradient[e]));
    }
    expect(worst / scale, `seed ${seed}: ∂/∂θ`).toBeLessThan(64 * EPS32);
  });

  it('responsibilities sum to one per image', async () => {
    const problem = makeProblem(numerics, seed + 3, SMALL);
    const { gpu } = await runBoth(problem);
    const terms = gpu.responsibilities!.length / 3;
    for (let b = 0; b < 3; b++) {
      let sum = 0;
      for (const g of gpu.responsibilities!.subarray(b * terms, (b + 1) * terms)) sum += g;
      expect(Math.abs(sum - 1), `image ${b}`).toBeLessThan(terms * 2 * EPS32);
    }
  });

  it('stays correct when the engine is reused', async () => {
    const problem = makeProblem(numerics, seed + 4, SMALL);
    const engine = await PoseEngine.create(device, problem.shape);
    const first = await runBoth(problem, engine);
    expectTwinMatch(problem, first.gpu, first.host);
    const templates = problem.input.templates.map((v, i) => v * 0.5 + 0.01 * (i % 7));
    const changed = { ...problem, input: { ...problem.input, templates, sigma: problem.input.sigma * 0.8 } };
    const second = await runBoth(changed, engine);
    expectTwinMatch(changed, second.gpu, second.host);
    engine.destroy();
  });
});
