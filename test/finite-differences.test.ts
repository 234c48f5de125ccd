import { beforeAll, describe, expect, it } from 'vitest';

import { PoseEngine } from '../gpu/engine.js';
import { evaluateHost, hostLogIntegralSum } from '../gpu/host.js';
import { composeObjective } from '../src/objective.js';
import { loadNumerics, type Numerics } from '../src/numerics.js';
import { openTestGpu } from './gpu.js';
import { makeProblem, type Problem } from './problem.js';
import { makeRandom, testSeed } from './random.js';

let numerics: Numerics;
let device: GPUDevice;
let seed: number;

beforeAll(async () => {
  numerics = await loadNumerics();
  device = (await openTestGpu()).device;
  seed = testSeed();
});

function smallProblem(offset: number): Problem {
  return makeProblem(numerics, seed + offset, { size: 12, batch: 2, rotations: 6, shifts: 3, scales: 2, halfWidth: 1.2 });
}

/** Returns the problem's input at θ and σ; θ is float64 because the steps are below float32 resolution. */
function withTemplates(problem: Problem, templates: Float64Array, sigma: number) {
  return { ...problem.input, templates, sigma };
}

/**
 * Central difference (f(x + h) − f(x − h)) / 2h. Σ log Ĩ is smooth in θ (each E is
 * quadratic in θ) and in σ, so its truncation error is O(h²) ≈ 1e-8 relative for
 * h = 1e-4 of the parameter scale, and rounding adds about 1e-16 / h.
 */
function centralDifference(f: (step: number) => number, h: number): number {
  return (f(h) - f(-h)) / (2 * h);
}

describe('gradients against central differences', () => {
  it.each(['reference', 'fft'] as const)('∂ Σ log Ĩ / ∂θ of the twin and the %s engine', async (kernel) => {
    const problem = smallProblem(0);
    const templates = Float64Array.from(problem.input.templates);
    const sigma = problem.input.sigma;
    const host = evaluateHost(problem.shape, withTemplates(problem, templates, sigma));
    const engine = await PoseEngine.create(device, problem.shape, { kernel });
    const gpu = await engine.evaluate(problem.input);
    engine.destroy();
    const random = makeRandom(seed);
    const scale = Math.max(...Array.from(host.gradient, Math.abs));
    for (let trial = 0; trial < 12; trial++) {
      const j = Math.floor(random() * templates.length);
      const numeric = centralDifference((step) => {
        const moved = templates.slice();
        moved[j] += step;
        return hostLogIntegralSum(problem.shape, withTemplates(problem, moved, sigma));
      }, 1e-4);
      expect(Math.abs(host.gradient[j] - numeric), `seed ${seed}: twin, pixel ${j}`).toBeLessThan(1e-6 * (scale + 1));
      // The engine runs in float32 on a float32 θ: its budget is the one the twin comparison states.
      expect(Math.abs(gpu.gradient[j] - numeric), `seed ${seed}: ${kernel} engine, pixel ${j}`).toBeLessThan(1e-3 * (scale + 1));
    }
  });

  it('∂ Σ log Ĩ / ∂σ of the twin', () => {
    const problem = smallProblem(1);
    const templates = Float64Array.from(problem.input.templates);
    const sigma = problem.input.sigma;
    const host = evaluateHost(problem.shape, withTemplates(problem, templates, sigma));
    const analytic = host.weightedEnergy.reduce((sum, value) => sum + value, 0) / sigma ** 3;
    const numeric = centralDifference(
      (step) => hostLogIntegralSum(problem.shape, withTemplates(problem, templates, sigma + step)),
      1e-5 * sigma,
    );
    expect(Math.abs(analytic - numeric), `seed ${seed}`).toBeLessThan(1e-6 * Math.abs(analytic));
  });

  it('ℓ(θ, σ) of composeObjective on a minibatch', () => {
    const problem = smallProblem(2);
    const templates = Float64Array.from(problem.input.templates);
    const sigma = problem.input.sigma;
    const pixels = problem.shape.size ** 2;
    const context = (theta: Float64Array, s: number) => ({
      templates: theta,
      sigma: s,
      lambda: 0.7,
      datasetSize: 40,
      batchSize: 2,
      pixels,
    });
    const objective = (theta: Float64Array, s: number) =>
      composeObjective(numerics, evaluateHost(problem.shape, withTemplates(problem, theta, s), { gradient: false }), context(theta, s))
        .value;
    const exact = composeObjective(
      numerics,
      evaluateHost(problem.shape, withTemplates(problem, templates, sigma)),
      context(templates, sigma),
    );
    const random = makeRandom(seed + 2);
    for (let trial = 0; trial < 8; trial++) {
      const j = Math.floor(random() * templates.length);
      // Steps stay on one side of the kink of |θ_j| at 0.
      const h = Math.min(1e-4, Math.abs(templates[j]) / 2);
      const numeric = centralDifference((step) => {
        const moved = templates.slice();
        moved[j] += step;
        return objective(moved, sigma);
      }, h);
      expect(Math.abs(exact.gradTheta[j] - numeric), `seed ${seed}: pixel ${j}`).toBeLessThan(
        1e-6 * (Math.abs(exact.gradTheta[j]) + 1),
      );
    }
    const numericSigma = centralDifference((step) => objective(templates, sigma + step), 1e-5 * sigma);
    expect(Math.abs(exact.gradSigma - numericSigma), `seed ${seed}: σ`).toBeLessThan(1e-6 * Math.abs(exact.gradSigma) + 1e-6);
  });
});
