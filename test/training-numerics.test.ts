import { beforeAll, describe, expect, it } from 'vitest';

import { loadNumerics, type Numerics } from '../src/numerics.js';

let numerics: Numerics;

beforeAll(async () => {
  numerics = await loadNumerics();
});

describe('rotation window refinement', () => {
  it('narrows from the full circle to ±20°', () => {
    const widths = [1, 2, 3, 10, 60].map((epoch) => numerics.rotationWindowHalfWidth(epoch));
    expect(widths[0]).toBeCloseTo(2 * Math.PI * (20 / 360 + 0.75), 12);
    expect(widths[1], 'epoch 2 still covers the circle').toBeGreaterThanOrEqual(Math.PI);
    expect(widths[2], 'epoch 3 is a window').toBeLessThan(Math.PI);
    expect(widths[3]).toBeCloseTo(2 * Math.PI * (20 / 360 + 0.75 ** 10), 12);
    expect(widths[4]).toBeCloseTo((20 / 180) * Math.PI, 6);
  });

  it('marginalises γ over class, shift and scale', () => {
    // 2 images, 2 classes, 3 rotations × 2 other nodes: γ[b, k, p, r] = 1000 b + 100 k + 10 p + r.
    const gamma = new Float64Array(2 * 2 * 6);
    for (let b = 0; b < 2; b++)
      for (let k = 0; k < 2; k++)
        for (let p = 0; p < 3; p++) for (let r = 0; r < 2; r++) gamma[((b * 2 + k) * 3 + p) * 2 + r] = 1000 * b + 100 * k + 10 * p + r;
    const marginal = numerics.marginaliseRotations(gamma, 2, 2, 3);
    const expected = [0, 1].flatMap((b) => [0, 1, 2].map((p) => 4 * (1000 * b + 10 * p) + 2 * 100 + 2 * 1));
    expect(Array.from(marginal)).toEqual(expected);
  });

  it('centres each window on the most probable node', () => {
    const nodes = [0.5, 1.5, 2.5, 7.0, 8.0, 9.0];
    const marginal = [0.1, 0.7, 0.2, 0.1, 0.2, 0.6];
    const centres = numerics.windowCentres(marginal, nodes, 3);
    expect(centres[0]).toBeCloseTo(1.5, 14);
    expect(centres[1], 'reduced to [0, 2π)').toBeCloseTo(9.0 - 2 * Math.PI, 14);
  });

  it('rejects mismatched shapes', () => {
    expect(() => numerics.windowCentres([1, 2, 3], [1, 2], 3)).toThrow(/marginal \(3 entries\) and nodes \(2\)/);
    expect(() => numerics.marginaliseRotations([1, 2, 3], 2, 1, 2)).toThrow(/gamma has 3 entries/);
    expect(() => numerics.rotationWindowHalfWidth(0)).toThrow(/epoch must be an integer ≥ 1/);
  });
});

describe('convergence test', () => {
  it('uses the relative changes of the last three epochs', () => {
    // |(-100.5 + 100)/-100| + |(-101 + 100)/-100| = 0.015.
    expect(numerics.hasConverged(-101, -100.5, -100, 0.015 + 1e-12)).toBe(true);
    expect(numerics.hasConverged(-101, -100.5, -100, 0.015 - 1e-12)).toBe(false);
    expect(numerics.hasConverged(5, 5, 5, 0)).toBe(true);
  });

  it('rejects a negative tolerance', () => {
    expect(() => numerics.hasConverged(1, 1, 1, -1)).toThrow(/tolerance must be ≥ 0, got -1/);
  });
});
