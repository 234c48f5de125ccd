import { beforeAll, describe, expect, it } from 'vitest';

import {
  MAX_ARRAY_LENGTH,
  defaultShiftSd,
  loadNumerics,
  type Numerics,
  type PoseGridSpec,
} from '../src/numerics.js';
import { makeRandom as createRandom } from './random.js';

const TWO_PI = 2 * Math.PI;

function uniform(random: () => number, lo: number, hi: number): number {
  return lo + (hi - lo) * random();
}

function sum(values: ArrayLike<number>): number {
  let total = 0;
  for (let i = 0; i < values.length; i++) total += values[i];
  return total;
}

function sumExp(values: ArrayLike<number>): number {
  let total = 0;
  for (let i = 0; i < values.length; i++) total += Math.exp(values[i]);
  return total;
}

function dot(weights: ArrayLike<number>, nodes: ArrayLike<number>, f: (x: number) => number) {
  let total = 0;
  for (let i = 0; i < weights.length; i++) total += weights[i] * f(nodes[i]);
  return total;
}

/**
 * erf(x) from the series (2/√π)·e^(−x²)·Σ 2ⁿx^(2n+1) / (1·3·…·(2n+1)). Its terms are all
 * positive, so it keeps about 15 digits for |x| ≤ 6. Beyond that erf(x) = ±1 in f64.
 */
function erf(x: number): number {
  if (x < 0) return -erf(-x);
  if (x > 6) return 1;
  let term = x;
  let total = x;
  for (let n = 1; n < 500; n++) {
    term *= (2 * x * x) / (2 * n + 1);
    total += term;
    if (term < 1e-17 * total) break;
  }
  return (2 / Math.sqrt(Math.PI)) * Math.exp(-x * x) * total;
}

function normalPdf(x: number, sd: number): number {
  return Math.exp(-0.5 * (x / sd) ** 2) / (sd * Math.sqrt(TWO_PI));
}

/** Mass of N(0, sd²) on [lo, hi]. */
function normalMass(lo: number, hi: number, sd: number): number {
  return 0.5 * (erf(hi / (sd * Math.SQRT2)) - erf(lo / (sd * Math.SQRT2)));
}

/**
 * Trapezoid sum of the N(0, sd²) density f on [lo, hi] with count nodes, predicted from the
 * Euler–Maclaurin formula T = I + h²/12·[f′] − h⁴/720·[f‴] + O(h⁶).
 * Here [g] = g(hi) − g(lo) and I is the exact mass.
 */
function predictedNormalTrapezoid(lo: number, hi: number, sd: number, count: number): number {
  const h = (hi - lo) / (count - 1);
  const first = (x: number) => (-x / sd ** 2) * normalPdf(x, sd);
  const third = (x: number) => ((3 * (x / sd) - (x / sd) ** 3) / sd ** 3) * normalPdf(x, sd);
  return (
    normalMass(lo, hi, sd) +
    ((h * h) / 12) * (first(hi) - first(lo)) -
    (h ** 4 / 720) * (third(hi) - third(lo))
  );
}

let numerics: Numerics;

beforeAll(async () => {
  numerics = await loadNumerics();
});

describe('loadNumerics', () => {
  it('returns the cached instance', async () => {
    expect(await loadNumerics()).toBe(numerics);
  });
});

describe('periodic trapezoid rule', () => {
  it('integrates trigonometric polynomials below degree M exactly', () => {
    const random = createRandom(1);
    for (const count of [2, 3, 7, 16, 31]) {
      const start = uniform(random, -Math.PI, Math.PI);
      const nodes = numerics.periodicNodes(count, start, TWO_PI);
      const weights = numerics.periodicWeights(count, TWO_PI);
      expect(nodes.length).toBe(count);
      expect(weights.length).toBe(count);

      for (let k = 0; k < count; k++) {
        const phase = uniform(random, 0, TWO_PI);
        const integral = dot(weights, nodes, (x) => Math.cos(k * x + phase));
        const expected = k === 0 ? TWO_PI * Math.cos(phase) : 0;
        expect(Math.abs(integral - expected), `M = ${count}, k = ${k}`).toBeLessThan(1e-12);
      }

      const coefficients = Array.from({ length: count }, () => uniform(random, -1, 1));
      const phases = Array.from({ length: count }, () => uniform(random, 0, TWO_PI));
      const polynomial = (x: number) =>
        coefficients.reduce((total, c, k) => total + c * Math.cos(k * x + phases[k]), 0);
      const scale = TWO_PI * sum(coefficients.map(Math.abs));
      const exact = TWO_PI * coefficients[0] * Math.cos(phases[0]);
      const error = dot(weights, nodes, polynomial) - exact;
      expect(Math.abs(error), `M = ${count}`).toBeLessThan(1e-12 * scale);
    }
  });

  it('aliases degree M onto the constant', () => {
    const random = createRandom(2);
    for (const count of [2, 5, 12]) {
      const start = uniform(random, -Math.PI, Math.PI);
      // Pick a phase whose aliased value is far from 0, so the check cannot pass vacuously.
      let phase = 0;
      do phase = uniform(random, 0, TWO_PI);
      while (Math.abs(Math.cos(count * start + phase)) < 0.5);
      const nodes = numerics.periodicNodes(count, start, TWO_PI);
      const weights = numerics.periodicWeights(count, TWO_PI);
      const integral = dot(weights, nodes, (x) => Math.cos(count * x + phase));
      // The integral of cos(Mψ + φ) over a period is 0, but at every node it equals cos(Mψ₀ + φ).
      expect(integral, `M = ${count}`).toBeCloseTo(TWO_PI * Math.cos(count * start + phase), 11);
      expect(Math.abs(integral), `M = ${count}`).toBeGreaterThan(Math.PI - 1e-9);
    }
  });

  it('scales to a period other than 2π', () => {
    const period = 3.7;
    const count = 9;
    const nodes = numerics.periodicNodes(count, 0.25, period);
    const weights = numerics.periodicWeights(count, period);
    expect(sum(weights)).toBeCloseTo(period, 13);
    expect(nodes[1] - nodes[0]).toBeCloseTo(period / count, 13);
    for (let k = 1; k < count; k++) {
      const integral = dot(weights, nodes, (x) => Math.sin((TWO_PI * k * x) / period));
      expect(Math.abs(integral), `k = ${k}`).toBeLessThan(1e-12);
    }
  });
});

describe('interval trapezoid rule', () => {
  it('integrates linear functions exactly', () => {
    const random = createRandom(3);
    for (let trial = 0; trial < 20; trial++) {
      const lo = uniform(random, -10, 10);
      const hi = lo + uniform(random, 0.01, 20);
      const count = 2 + Math.floor(random() * 40);
      const alpha = uniform(random, -5, 5);
      const beta = uniform(random, -5, 5);
      const nodes = numerics.intervalNodes(count, lo, hi);
      const weights = numerics.intervalWeights(count, lo, hi);
      const integral = dot(weights, nodes, (x) => alpha + beta * x);
      const expected = alpha * (hi - lo) + (beta * (hi * hi - lo * lo)) / 2;
      const scale = (Math.abs(alpha) + Math.abs(beta) * Math.max(-lo, hi)) * (hi - lo);
      expect(Math.abs(integral - expected), `trial ${trial}`).toBeLessThan(1e-13 * scale);
    }
  });

  it('misses quadratics by (hi − lo)·h²·f″/12', () => {
    const random = createRandom(4);
    for (const count of [2, 3, 5, 9, 17]) {
      const lo = uniform(random, -3, 1);
      const hi = lo + uniform(random, 0.5, 4);
      const [a, b, c] = [uniform(random, -2, 2), uniform(random, -2, 2), uniform(random, 1, 2)];
      const nodes = numerics.intervalNodes(count, lo, hi);
      const weights = numerics.intervalWeights(count, lo, hi);
      const trapezoid = dot(weights, nodes, (x) => a + b * x + c * x * x);
      const exact =
        a * (hi - lo) + (b * (hi ** 2 - lo ** 2)) / 2 + (c * (hi ** 3 - lo ** 3)) / 3;
      const h = (hi - lo) / (count - 1);
      const predicted = ((hi - lo) * h * h * (2 * c)) / 12;
      expect(trapezoid - exact, `M = ${count}`).toBeCloseTo(predicted, 11);
      expect(Math.abs(predicted), `M = ${count}`).toBeGreaterThan(1e-4);
    }
  });

  it('places uniform nodes with exact ends', () => {
    const nodes = numerics.intervalNodes(5, -2, 6);
    expect(Array.from(nodes)).toEqual([-2, 0, 2, 4, 6]);
    expect(Array.from(numerics.intervalWeights(5, -2, 6))).toEqual([1, 2, 2, 2, 1]);

    const symmetric = numerics.intervalNodes(7, -0.3, 0.3);
    expect(symmetric[3]).toBe(0);
    for (let p = 0; p < 7; p++) {
      expect(symmetric[p] + symmetric[6 - p], `node ${p}`).toBe(0);
    }
  });
});

describe('single node', () => {
  it('gets weight 1 from both rules', () => {
    expect(Array.from(numerics.periodicWeights(1, TWO_PI))).toEqual([1]);
    expect(Array.from(numerics.intervalWeights(1, -4, 10))).toEqual([1]);
    expect(Array.from(numerics.intervalNodes(1, -4, 10))).toEqual([3]);
  });

  it('gets log weight 0 on every axis', () => {
    expect(Array.from(numerics.rotationLogWeights({ count: 1 }))).toEqual([0]);
    expect(Array.from(numerics.rotationLogWeights({ count: 1, halfWidth: 0.2 }))).toEqual([0]);
    expect(Array.from(numerics.rotationOffsets({ count: 1, halfWidth: 0.2 }))).toEqual([0]);
    expect(Array.from(numerics.shiftLogWeights({ count: 1, min: 2, max: 2 }, 3))).toEqual([0]);
    expect(Array.from(numerics.scaleLogWeights({ count: 1, min: 1, max: 1 }, 0))).toEqual([0]);
  });

  it('fixes every parameter of a one-node grid', () => {
    const spec: PoseGridSpec = {
      rotation: { count: 1 },
      shiftX: { count: 1, min: -1, max: 3 },
      shiftY: { count: 1, min: 0, max: 0 },
      scale: { count: 1, min: 0.98, max: 1.02 },
      shiftSd: 2,
      scaleHalfRange: 0.05,
    };
    const grid = numerics.poseGrid(spec);
    expect(Array.from(grid.logWeights)).toEqual([0]);
    expect(Array.from(grid.shiftX)).toEqual([1]);
    expect(grid.scale[0]).toBeCloseTo(1, 15);
  });
});

describe('prior mass of the grid', () => {
  it('is 1 on the full rotation circle', () => {
    for (const count of [2, 3, 36, 360]) {
      const logWeights = numerics.rotationLogWeights({ count });
      expect(sumExp(logWeights), `M = ${count}`).toBeCloseTo(1, 13);
      expect(logWeights[0], `M = ${count}`).toBeCloseTo(-Math.log(count), 13);
    }
    const offsets = numerics.rotationOffsets({ count: 4, halfWidth: Math.PI });
    expect(Array.from(offsets)).toEqual([0, Math.PI / 2, Math.PI, (3 * Math.PI) / 2]);
  });

  it('is 2ε/2π on a rotation window', () => {
    const random = createRandom(5);
    for (const count of [2, 5, 64]) {
      const halfWidth = uniform(random, 0.01, 3);
      const logWeights = numerics.rotationLogWeights({ count, halfWidth });
      expect(sumExp(logWeights), `M = ${count}`).toBeCloseTo((2 * halfWidth) / TWO_PI, 13);
      const offsets = numerics.rotationOffsets({ count, halfWidth });
      expect(offsets[0]).toBe(-halfWidth);
      expect(offsets[count - 1]).toBe(halfWidth);
    }
  });

  it('is the normal mass on a shift range', () => {
    const random = createRandom(6);
    for (let trial = 0; trial < 6; trial++) {
      const sd = uniform(random, 1, 8);
      const lo = -uniform(random, 0.5, 3) * sd;
      const hi = uniform(random, 0.5, 3) * sd;
      const count = 201 + Math.floor(random() * 200);
      const total = sumExp(numerics.shiftLogWeights({ count, min: lo, max: hi }, sd));
      const predicted = predictedNormalTrapezoid(lo, hi, sd, count);
      expect(total, `trial ${trial}`).toBeCloseTo(predicted, 13);
      // The plain error bound (hi − lo)·h²/12·max|f″|, with max|f″| = |f″(0)| = 1/(sd³√2π).
      const h = (hi - lo) / (count - 1);
      const bound = ((hi - lo) * h * h) / (12 * sd ** 3 * Math.sqrt(TWO_PI));
      expect(Math.abs(total - normalMass(lo, hi, sd)), `trial ${trial}`).toBeLessThan(bound);
      expect(total, `trial ${trial}`).toBeLessThan(0.99);
    }
  });

  it('is (hi − lo)/2ε_c on a scale range', () => {
    const random = createRandom(7);
    for (const count of [2, 3, 11]) {
      const halfRange = uniform(random, 0.02, 0.3);
      const lo = 1 - halfRange * uniform(random, 0, 1);
      const hi = 1 + halfRange * uniform(random, 0, 1);
      const total = sumExp(numerics.scaleLogWeights({ count, min: lo, max: hi }, halfRange));
      expect(total, `M = ${count}`).toBeCloseTo((hi - lo) / (2 * halfRange), 13);
    }
    const whole = numerics.scaleLogWeights({ count: 5, min: 0.9, max: 1.1 }, 0.1);
    expect(sumExp(whole)).toBeCloseTo(1, 13);
  });

  it('is the product of the axis masses in 4-D', () => {
    const spec: PoseGridSpec = {
      rotation: { count: 7, halfWidth: 0.4 },
      shiftX: { count: 61, min: -6, max: 8 },
      shiftY: { count: 41, min: -5, max: 5 },
      scale: { count: 5, min: 0.95, max: 1.05 },
      shiftSd: 3,
      scaleHalfRange: 0.1,
    };
    const logWeights = numerics.gridLogWeights(spec);
    expect(logWeights.length).toBe(7 * 61 * 41 * 5);

    const axisProduct =
      sumExp(numerics.rotationLogWeights(spec.rotation)) *
      sumExp(numerics.shiftLogWeights(spec.shiftX, spec.shiftSd)) *
      sumExp(numerics.shiftLogWeights(spec.shiftY, spec.shiftSd)) *
      sumExp(numerics.scaleLogWeights(spec.scale, spec.scaleHalfRange));
    const total = sumExp(logWeights);
    expect(Math.abs(total / axisProduct - 1)).toBeLessThan(1e-12);

    const predicted =
      (2 * 0.4) / TWO_PI *
      predictedNormalTrapezoid(-6, 8, 3, 61) *
      predictedNormalTrapezoid(-5, 5, 3, 41) *
      (0.1 / 0.2);
    // The shift sums carry an O(h⁶) residual beyond the predicted h² and h⁴ terms.
    expect(Math.abs(total / predicted - 1)).toBeLessThan(1e-9);
  });

  it('is the product with a full circle and a fixed scale', () => {
    const spec: PoseGridSpec = {
      rotation: { count: 24 },
      shiftX: { count: 101, min: -10, max: 10 },
      shiftY: { count: 101, min: -10, max: 10 },
      scale: { count: 1, min: 1, max: 1 },
      shiftSd: defaultShiftSd(64),
      scaleHalfRange: 0,
    };
    const total = sumExp(numerics.gridLogWeights(spec));
    const shiftMass = predictedNormalTrapezoid(-10, 10, 3.2, 101);
    expect(Math.abs(total / (shiftMass * shiftMass) - 1)).toBeLessThan(1e-11);
  });
});

describe('grid layout', () => {
  it('is row-major [ψ, a, b, c] with c fastest', () => {
    const spec: PoseGridSpec = {
      rotation: { count: 3, halfWidth: 1 },
      shiftX: { count: 4, min: -3, max: 5 },
      // Asymmetric shift ranges, so that reversing a shift axis changes its log weights.
      shiftY: { count: 5, min: -2, max: 3 },
      scale: { count: 2, min: 0.9, max: 1.05 },
      shiftSd: 2.5,
      scaleHalfRange: 0.1,
    };
    const grid = numerics.poseGrid(spec);
    const rotation = numerics.rotationLogWeights(spec.rotation);
    const shiftX = numerics.shiftLogWeights(spec.shiftX, spec.shiftSd);
    const shiftY = numerics.shiftLogWeights(spec.shiftY, spec.shiftSd);
    const scale = numerics.scaleLogWeights(spec.scale, spec.scaleHalfRange);
    expect(grid.logWeights.length).toBe(3 * 4 * 5 * 2);

    const mismatches: string[] = [];
    for (let p = 0; p < 3; p++) {
      for (let q = 0; q < 4; q++) {
        for (let r = 0; r < 5; r++) {
          for (let m = 0; m < 2; m++) {
            const index = ((p * 4 + q) * 5 + r) * 2 + m;
            const expected = rotation[p] + shiftX[q] + shiftY[r] + scale[m];
            if (Math.abs(grid.logWeights[index] - expected) > 1e-14 * Math.abs(expected)) {
              mismatches.push(`(${p}, ${q}, ${r}, ${m}) at ${index}`);
            }
          }
        }
      }
    }
    expect(mismatches).toEqual([]);

    expect(Array.from(grid.rotationOffsets)).toEqual([-1, 0, 1]);
    expect(Array.from(grid.shiftX)).toEqual(Array.from(numerics.axisNodes(spec.shiftX)));
    expect(Array.from(grid.scale)).toEqual([0.9, 1.05]);
    expect(Array.from(numerics.gridLogWeights(spec))).toEqual(Array.from(grid.logWeights));
  });

  it('matches log w + log P at one node', () => {
    // Full circle with 8 nodes, shift nodes -2, 0, 2 (h = 2) and scale nodes 0.9, 1.1.
    const spec: PoseGridSpec = {
      rotation: { count: 8 },
      shiftX: { count: 3, min: -2, max: 2 },
      shiftY: { count: 3, min: -2, max: 2 },
      scale: { count: 2, min: 0.9, max: 1.1 },
      shiftSd: 1.5,
      scaleHalfRange: 0.1,
    };
    const logWeights = numerics.gridLogWeights(spec);
    // Node (p, q, r, m) = (5, 0, 1, 1): ψ weight 2π/8, a = −2 (an end, weight 1),
    // b = 0 (weight 2) and c = 1.1 (an end, weight 0.1).
    const expected =
      Math.log(TWO_PI / 8) - Math.log(TWO_PI) +
      Math.log(1) + Math.log(normalPdf(-2, 1.5)) +
      Math.log(2) + Math.log(normalPdf(0, 1.5)) +
      Math.log(0.1) - Math.log(0.2);
    expect(logWeights[((5 * 3 + 0) * 3 + 1) * 2 + 1]).toBeCloseTo(expected, 12);
  });
});

describe('densities', () => {
  it('logNormal matches the formula', () => {
    const random = createRandom(8);
    for (let trial = 0; trial < 20; trial++) {
      const x = uniform(random, -20, 20);
      const mean = uniform(random, -5, 5);
      const sd = uniform(random, 0.1, 10);
      const expected = Math.log(normalPdf(x - mean, sd));
      expect(numerics.logNormal(x, mean, sd), `trial ${trial}`).toBeCloseTo(expected, 11);
    }
  });

  it('logUniform is −ln(hi − lo) inside only', () => {
    expect(numerics.logUniform(0.5, 0, 4)).toBeCloseTo(-Math.log(4), 15);
    expect(numerics.logUniform(0, 0, 4)).toBeCloseTo(-Math.log(4), 15);
    expect(numerics.logUniform(4, 0, 4)).toBeCloseTo(-Math.log(4), 15);
    expect(numerics.logUniform(4.000001, 0, 4)).toBe(-Infinity);
    expect(numerics.logUniform(-1e-9, 0, 4)).toBe(-Infinity);
  });
});

describe('Laplace prior', () => {
  function randomTemplate(random: () => number, length: number): Float64Array {
    const theta = new Float64Array(length);
    for (let i = 0; i < length; i++) {
      // About one entry in five is exactly 0. The others stay at least 0.01 away from 0.
      if (random() < 0.2) continue;
      const sign = random() < 0.5 ? -1 : 1;
      theta[i] = sign * uniform(random, 0.01, 3);
    }
    return theta;
  }

  it('is −λ‖θ‖₁', () => {
    const random = createRandom(9);
    for (const length of [0, 1, 17, 4096]) {
      const theta = randomTemplate(random, length);
      const lambda = uniform(random, 0.1, 3);
      const expected = -lambda * sum(Array.from(theta, Math.abs));
      const value = numerics.laplaceLogPrior(theta, lambda);
      expect(Math.abs(value - expected), `length ${length}`).toBeLessThan(
        1e-12 * Math.max(1, Math.abs(expected)),
      );
    }
    expect(numerics.laplaceLogPrior(new Float32Array([1.5, -2]), 2)).toBe(-7);
    expect(numerics.laplaceLogPrior([0.5, -0.25], 4)).toBe(-3);
  });

  it('gradient matches finite differences', () => {
    const random = createRandom(10);
    const theta = randomTemplate(random, 40);
    const lambda = uniform(random, 0.1, 3);
    const gradient = numerics.laplaceLogPriorGradient(theta, lambda);
    expect(gradient.length).toBe(theta.length);
    const step = 1e-6;
    const base = numerics.laplaceLogPrior(theta, lambda);
    let zeros = 0;
    for (let i = 0; i < theta.length; i++) {
      const plus = Float64Array.from(theta);
      const minus = Float64Array.from(theta);
      plus[i] += step;
      minus[i] -= step;
      const valuePlus = numerics.laplaceLogPrior(plus, lambda);
      const valueMinus = numerics.laplaceLogPrior(minus, lambda);
      if (theta[i] === 0) {
        zeros++;
        // sign(0) = 0 lies between the one-sided derivatives −λ and λ of the kink.
        expect(gradient[i], `entry ${i}`).toBe(0);
        expect((valuePlus - base) / step, `entry ${i}`).toBeCloseTo(-lambda, 6);
        expect((base - valueMinus) / step, `entry ${i}`).toBeCloseTo(lambda, 6);
      } else {
        const central = (valuePlus - valueMinus) / (2 * step);
        expect(gradient[i], `entry ${i}`).toBeCloseTo(central, 6);
        expect(gradient[i], `entry ${i}`).toBe(-lambda * Math.sign(theta[i]));
      }
    }
    expect(zeros).toBeGreaterThan(0);
    expect(zeros).toBeLessThan(theta.length);
  });

  it('gradient propagates NaN', () => {
    const gradient = numerics.laplaceLogPriorGradient([NaN, 1], 2);
    expect(gradient[0]).toBeNaN();
    expect(gradient[1]).toBe(-2);
  });
});

describe('invalid specs', () => {
  const valid: PoseGridSpec = {
    rotation: { count: 8, halfWidth: 0.5 },
    shiftX: { count: 5, min: -4, max: 4 },
    shiftY: { count: 5, min: -4, max: 4 },
    scale: { count: 3, min: 0.9, max: 1.1 },
    shiftSd: 3,
    scaleHalfRange: 0.1,
  };

  const cases: Array<[string, PoseGridSpec, RegExp]> = [
    ['rotation count 0', { ...valid, rotation: { count: 0 } }, /rotation\.count .*got 0\./],
    [
      'fractional rotation count',
      { ...valid, rotation: { count: 2.5 } },
      /rotation\.count must be an integer .*got 2\.5\./,
    ],
    [
      'NaN rotation half-width',
      { ...valid, rotation: { count: 4, halfWidth: NaN } },
      /rotation\.halfWidth .*got NaN\./,
    ],
    [
      'negative rotation half-width',
      { ...valid, rotation: { count: 4, halfWidth: -0.1 } },
      /rotation\.halfWidth .*got -0\.1\./,
    ],
    [
      'zero rotation window with nodes',
      { ...valid, rotation: { count: 4, halfWidth: 0 } },
      /rotation\.halfWidth must be > 0 when rotation\.count > 1/,
    ],
    [
      'shiftX count 0',
      { ...valid, shiftX: { count: 0, min: -1, max: 1 } },
      /shiftX\.count .*got 0\./,
    ],
    [
      'string shiftY count',
      { ...valid, shiftY: { count: '5' as unknown as number, min: -1, max: 1 } },
      /shiftY\.count .*got "5"\./,
    ],
    [
      'NaN shiftX min',
      { ...valid, shiftX: { count: 3, min: NaN, max: 1 } },
      /shiftX\.min must be a finite number, got NaN\./,
    ],
    [
      'shiftY max below min',
      { ...valid, shiftY: { count: 3, min: 3, max: -3 } },
      /shiftY\.max must be ≥ shiftY\.min, got shiftY\.min = 3, shiftY\.max = -3\./,
    ],
    [
      'empty shift range with nodes',
      { ...valid, shiftX: { count: 3, min: 2, max: 2 } },
      /shiftX\.max must exceed shiftX\.min when shiftX\.count > 1/,
    ],
    ['zero shiftSd', { ...valid, shiftSd: 0 }, /shiftSd .*got 0\./],
    ['NaN shiftSd', { ...valid, shiftSd: NaN }, /shiftSd .*got NaN\./],
    ['negative scaleHalfRange', { ...valid, scaleHalfRange: -0.1 }, /scaleHalfRange .*got -0\.1\./],
    ['scaleHalfRange of 1', { ...valid, scaleHalfRange: 1 }, /scaleHalfRange .*got 1\./],
    [
      'scale node below the prior',
      { ...valid, scale: { count: 5, min: 0.8, max: 1.1 } },
      /scale node 0\.8 .*outside the support \[0\.9, 1\.1\].*scaleHalfRange = 0\.1/,
    ],
    [
      'scale node above the prior',
      { ...valid, scale: { count: 2, min: 1, max: 1.2 } },
      /scale node 1\.2 .*scale\.max = 1\.2/,
    ],
    [
      'fixed scale outside the prior',
      { ...valid, scale: { count: 1, min: 1.3, max: 1.3 } },
      /scale node 1\.3 /,
    ],
    [
      'grid beyond one wasm array',
      {
        ...valid,
        rotation: { count: 1000 },
        shiftX: { count: 1000, min: -1, max: 1 },
        shiftY: { count: 1000, min: -1, max: 1 },
      },
      /1000 × 1000 × 1000 × 3 = 3000000000 nodes/,
    ],
  ];

  it.each(cases)('rejects %s', (_name, spec, message) => {
    expect(() => numerics.gridLogWeights(spec)).toThrow(RangeError);
    expect(() => numerics.gridLogWeights(spec)).toThrow(message);
  });

  it('accepts the base spec', () => {
    expect(numerics.gridLogWeights(valid).length).toBe(8 * 5 * 5 * 3);
  });

  it('rejects invalid arguments of the rules and densities', () => {
    expect(() => numerics.intervalWeights(0, 0, 1)).toThrow(/count .*got 0\./);
    expect(() => numerics.periodicWeights(-2, TWO_PI)).toThrow(/count .*got -2\./);
    expect(() => numerics.periodicWeights(4, 0)).toThrow(/period .*got 0\./);
    expect(() => numerics.periodicNodes(4, NaN, TWO_PI)).toThrow(/start .*got NaN\./);
    expect(() => numerics.intervalNodes(3, 1, 0)).toThrow(/hi must be ≥ lo, got lo = 1, hi = 0/);
    expect(() => numerics.intervalNodes(3, 0, Infinity)).toThrow(/hi .*got Infinity\./);
    expect(() => numerics.intervalNodes(MAX_ARRAY_LENGTH + 1, 0, 1)).toThrow(/count .*at most/);
    expect(() => numerics.axisNodes({ count: 3, min: 1, max: -1 })).toThrow(/axis\.max/);
    expect(() => numerics.logNormal(0, 0, 0)).toThrow(/sd .*got 0\./);
    expect(() => numerics.logUniform(0, 1, 1)).toThrow(/hi must exceed lo.*lo = 1, hi = 1/);
    expect(() => numerics.laplaceLogPrior([1], -1)).toThrow(/lambda .*got -1\./);
    expect(() => numerics.laplaceLogPriorGradient([1], NaN)).toThrow(/lambda .*got NaN\./);
    expect(() => defaultShiftSd(0)).toThrow(/boxSize .*got 0\./);
  });

  it('keeps a degenerate interval rule valid', () => {
    // The raw rule allows hi = lo (all weights 0); only the grid axes reject it.
    expect(Array.from(numerics.intervalWeights(3, 2, 2))).toEqual([0, 0, 0]);
  });
});
