import { beforeAll, describe, expect, it } from 'vitest';

import { resample, type HostPose } from '../gpu/host.js';
import {
  alignTemplates,
  dft2d,
  fourierRingCorrelation,
  frcCrossing,
  pearson,
  radialPowerSpectrum,
  resolutionAngstrom,
  scoreTemplate,
  type AlignmentOptions,
  type AlignmentPose,
} from '../src/metrics.js';
import { blobTemplate } from '../src/synthetic.js';
import { makeNormal, makeRandom, testSeed } from './random.js';

const DEGREE = Math.PI / 180;

let seed: number;

beforeAll(() => {
  seed = testSeed();
});

function noiseImage(pixels: number, sd: number, random: () => number): Float64Array {
  const normal = makeNormal(random);
  return Float64Array.from({ length: pixels }, () => sd * normal());
}

function addNoise(image: ArrayLike<number>, sd: number, random: () => number): Float64Array {
  const noise = noiseImage(image.length, sd, random);
  return noise.map((value, i) => value + image[i]);
}

function sumOfSquares(values: ArrayLike<number>): number {
  let total = 0;
  for (let i = 0; i < values.length; i++) total += values[i] * values[i];
  return total;
}

function toHostPose(pose: AlignmentPose): HostPose {
  return { cos: Math.cos(pose.psi), sin: Math.sin(pose.psi), a: pose.a, b: pose.b, scale: pose.scale };
}

function resampled(size: number, image: ArrayLike<number>, pose: AlignmentPose): Float64Array {
  const out = new Float64Array(size * size);
  resample(size, image, toHostPose(pose), out);
  return out;
}

/**
 * Returns the pose that undoes `pose`. With (R_φ θ)(q) = θ(R(−ψ)(q − o − d)/c + o), a pose maps
 * template point p to o + d + c R(ψ)(p − o), so its inverse has −ψ, 1/c and the shift
 * −R(−ψ) d / c, where R(−ψ) maps (a, b) to (a cos ψ − b sin ψ, a sin ψ + b cos ψ).
 */
function inversePose(pose: AlignmentPose): AlignmentPose {
  const cos = Math.cos(pose.psi);
  const sin = Math.sin(pose.psi);
  return {
    psi: -pose.psi,
    a: -(cos * pose.a - sin * pose.b) / pose.scale,
    b: -(sin * pose.a + cos * pose.b) / pose.scale,
    scale: 1 / pose.scale,
  };
}

function angleError(found: number, expected: number): number {
  const difference = Math.abs(found - expected) % (2 * Math.PI);
  return Math.min(difference, 2 * Math.PI - difference);
}

/** ψ uniform on [0, 2π), shifts uniform on ±3 px, scale uniform on [0.95, 1.05]. */
function randomPose(random: () => number): AlignmentPose {
  const psi = 2 * Math.PI * random();
  const a = 6 * random() - 3;
  const b = 6 * random() - 3;
  return { psi, a, b, scale: 0.95 + 0.1 * random() };
}

/**
 * blobTemplate tapered to zero beyond radius 0.38 N (cosine from 0.28 N), so that no
 * content leaves the box under the poses of `randomPose`.
 */
function discTemplate(size: number, random: () => number): Float32Array {
  const template = blobTemplate(size, random);
  const centre = Math.floor(size / 2);
  for (let y = 0; y < size; y++) {
    for (let x = 0; x < size; x++) {
      const radius = Math.hypot(x - centre, y - centre) / size;
      const taper = 0.5 + 0.5 * Math.cos((Math.PI * (radius - 0.28)) / 0.1);
      if (radius > 0.38) template[y * size + x] = 0;
      else if (radius > 0.28) template[y * size + x] *= taper;
    }
  }
  return template;
}

interface PoseCase {
  pose: AlignmentPose;
  template: Float32Array;
  moved: Float64Array;
  before: number;
}

/**
 * Draws a pose and a template until the pose lowers the correlation below 0.8, so that
 * each case needs a real search: a small pose, or a nearly rotation-symmetric template,
 * can leave it above.
 */
function drawCase(
  size: number,
  drawPose: () => AlignmentPose,
  random: () => number,
  makeTemplate: (size: number, random: () => number) => Float32Array,
): PoseCase {
  for (let attempt = 0; attempt < 50; attempt++) {
    const pose = drawPose();
    const template = makeTemplate(size, random);
    const moved = resampled(size, template, pose);
    const before = pearson(template, moved);
    if (before < 0.8) return { pose, template, moved, before };
  }
  throw new Error(`seed ${seed}: no pose and template among 50 drawn correlate below 0.8`);
}

function expectPose(
  found: AlignmentPose,
  expected: AlignmentPose,
  tolerance: AlignmentPose,
  context: string,
): void {
  expect(angleError(found.psi, expected.psi), `${context}: ψ error, radians`).toBeLessThan(tolerance.psi);
  expect(Math.abs(found.a - expected.a), `${context}: shift a error, px`).toBeLessThan(tolerance.a);
  expect(Math.abs(found.b - expected.b), `${context}: shift b error, px`).toBeLessThan(tolerance.b);
  expect(Math.abs(found.scale - expected.scale), `${context}: scale error`).toBeLessThan(tolerance.scale);
}

/** The pose of the alignment test; a rotation of 70.7° with sub-pixel shifts. */
const KNOWN_POSE: AlignmentPose = { psi: 1.234, a: 2.3, b: -1.7, scale: 1.04 };

describe('pearson', () => {
  it('of a vector with itself, its negative and affine maps', () => {
    const random = makeRandom(seed);
    const a = noiseImage(500, 1, random);
    const context = `seed ${seed}`;
    expect(pearson(a, a), context).toBeCloseTo(1, 12);
    expect(pearson(a, a.map((v) => -v)), context).toBeCloseTo(-1, 12);
    expect(pearson(a, a.map((v) => 3 * v + 2)), context).toBeCloseTo(1, 12);
    expect(pearson(a, a.map((v) => -0.5 * v + 7)), context).toBeCloseTo(-1, 12);
    expect(pearson(Float32Array.from(a), a), context).toBeCloseTo(1, 6);
  });

  it('of independent noise is within 5/√n of 0', () => {
    // The sample correlation of independent samples has standard deviation ≈ 1/√n.
    const random = makeRandom(seed + 1);
    const n = 4096;
    for (let trial = 0; trial < 4; trial++) {
      const r = pearson(noiseImage(n, 1, random), noiseImage(n, 2, random));
      expect(Math.abs(r), `seed ${seed}, trial ${trial}`).toBeLessThan(5 / Math.sqrt(n));
    }
  });

  it('of a constant input is 0', () => {
    const constant = new Float64Array(10).fill(0.1);
    const varying = Float64Array.from({ length: 10 }, (_, i) => i);
    expect(pearson(constant, varying)).toBe(0);
    expect(pearson(varying, constant)).toBe(0);
    expect(pearson(constant, constant)).toBe(0);
  });
});

describe('alignTemplates', () => {
  // Aligning a template onto its own resampled copy has its maximum, r = 1, exactly at the
  // pose that made the copy. What is left is where the pattern search stops on a flat
  // ridge: at most 0.06°, 0.004 px and 0.0003 in scale over 100 templates at 48² and 33².
  const exactTolerance: AlignmentPose = { psi: 0.25 * DEGREE, a: 0.03, b: 0.03, scale: 0.002 };

  it('recovers a known pose at 48²', () => {
    const random = makeRandom(seed + 2);
    const { template, moved, before } = drawCase(48, () => KNOWN_POSE, random, blobTemplate);
    const found = alignTemplates(moved, template, 48);
    const context = `seed ${seed}`;
    expectPose(found.pose, KNOWN_POSE, exactTolerance, context);
    expect(found.r, `${context}: r after alignment`).toBeGreaterThan(0.9999);
    expect(before, `${context}: r before alignment`).toBeLessThan(0.8);
  });

  it.each([48, 33])('recovers random poses at %i²', (size) => {
    const random = makeRandom(seed + 3 + size);
    for (let trial = 0; trial < 3; trial++) {
      const { pose, template, moved } = drawCase(size, () => randomPose(random), random, blobTemplate);
      const found = alignTemplates(moved, template, size);
      const context = `seed ${seed}, ${size}², trial ${trial}, pose ${JSON.stringify(pose)}`;
      expectPose(found.pose, pose, exactTolerance, context);
      expect(found.r, `${context}: r after alignment`).toBeGreaterThan(0.9999);
    }
  });

  it('aligns a moved copy back at 48²', () => {
    // Moving the copy back resamples twice. Each bilinear resampling blurs by a variance of
    // f(1 − f) px² per axis at sub-pixel offset f (1/6 on average), which widens features
    // 2–5 px wide enough to bias the maximum. Over 100 templates here the errors reached
    // 0.36°, 0.12 px and 0.012 in scale, so the tolerances are 1°, 0.3 px and 0.025. The disc
    // templates keep content from leaving the box, which would bias the maximum further.
    const tolerance: AlignmentPose = { psi: DEGREE, a: 0.3, b: 0.3, scale: 0.025 };
    const random = makeRandom(seed + 4);
    const drawPoses = [() => KNOWN_POSE, () => randomPose(random), () => randomPose(random)];
    for (const [trial, drawPose] of drawPoses.entries()) {
      const { pose, template, moved, before } = drawCase(48, drawPose, random, discTemplate);
      const expected = inversePose(pose);
      const found = alignTemplates(template, moved, 48);
      const atTruth = pearson(template, resampled(48, moved, expected));
      const context = `seed ${seed}, trial ${trial}, pose ${JSON.stringify(pose)}`;
      expectPose(found.pose, expected, tolerance, context);
      expect(found.r, `${context}: r after alignment`).toBeGreaterThan(0.99);
      expect(found.r, `${context}: r against r at the true inverse`).toBeGreaterThanOrEqual(atTruth - 1e-9);
      expect(before, `${context}: r before alignment`).toBeLessThan(0.8);
    }
  });

  it('aligns a moved copy back at 128² within 1°, 0.3 px, 0.01', () => {
    // Features here are 8–20 px wide, so the double resampling biases the maximum far less:
    // 0.013°, 0.018 px and 0.0008 in scale over 8 templates.
    const tolerance: AlignmentPose = { psi: DEGREE, a: 0.3, b: 0.3, scale: 0.01 };
    const random = makeRandom(seed + 5);
    const { template, moved } = drawCase(128, () => KNOWN_POSE, random, discTemplate);
    const found = alignTemplates(template, moved, 128);
    expectPose(found.pose, inversePose(KNOWN_POSE), tolerance, `seed ${seed}`);
    expect(found.r, `seed ${seed}: r after alignment`).toBeGreaterThan(0.99);
  });

  it('returns the resampled moving image and its r', () => {
    const random = makeRandom(seed + 6);
    const template = blobTemplate(33, random);
    const moved = resampled(33, template, randomPose(random));
    const found = alignTemplates(template, moved, 33);
    const expected = resampled(33, moved, found.pose);
    expect(Array.from(found.aligned)).toEqual(Array.from(expected));
    expect(found.r).toBeCloseTo(pearson(template, expected), 12);
    expect(found.pose.psi).toBeGreaterThanOrEqual(0);
    expect(found.pose.psi).toBeLessThan(2 * Math.PI);
  });

  it('keeps scale 1 with searchScale false', () => {
    const random = makeRandom(seed + 7);
    const pose: AlignmentPose = { psi: 4.1, a: -1.2, b: 2.6, scale: 1 };
    const { template, moved } = drawCase(48, () => pose, random, blobTemplate);
    const found = alignTemplates(moved, template, 48, { searchScale: false });
    expect(found.pose.scale).toBe(1);
    expectPose(found.pose, pose, exactTolerance, `seed ${seed}`);
  });

  it('keeps shifts and scale inside the set ranges', () => {
    const random = makeRandom(seed + 8);
    const pose: AlignmentPose = { psi: 0.7, a: 5, b: -5, scale: 1.08 };
    const { template, moved } = drawCase(48, () => pose, random, blobTemplate);
    const found = alignTemplates(moved, template, 48, { maxShift: 2, scaleRange: 0.03 });
    const context = `seed ${seed}: pose ${JSON.stringify(found.pose)}`;
    expect(Math.abs(found.pose.a), context).toBeLessThanOrEqual(2);
    expect(Math.abs(found.pose.b), context).toBeLessThanOrEqual(2);
    expect(found.pose.scale, context).toBeLessThanOrEqual(1.03);
    expect(found.pose.scale, context).toBeGreaterThanOrEqual(0.97);
  });

  it('recovers a pose with a finer angle step and one scale node', () => {
    const random = makeRandom(seed + 9);
    const { pose, template, moved } = drawCase(33, () => randomPose(random), random, blobTemplate);
    const found = alignTemplates(moved, template, 33, { angleStep: DEGREE, scaleNodes: 1 });
    expectPose(found.pose, pose, exactTolerance, `seed ${seed}, pose ${JSON.stringify(pose)}`);
  });
});

describe('dft2d', () => {
  it('conserves power (Parseval) at 15² and 48²', () => {
    const random = makeRandom(seed + 10);
    for (const size of [15, 48]) {
      const image = noiseImage(size * size, 1, random);
      const { re, im } = dft2d(image, size);
      const power = sumOfSquares(re) + sumOfSquares(im);
      const expected = size * size * sumOfSquares(image);
      expect(Math.abs(power - expected) / expected, `seed ${seed}, ${size}²`).toBeLessThan(1e-12);
    }
  });

  it('matches the defining sum at 7²', () => {
    const size = 7;
    const image = noiseImage(size * size, 1, makeRandom(seed + 11));
    const { re, im } = dft2d(image, size);
    for (let v = 0; v < size; v++) {
      for (let u = 0; u < size; u++) {
        let sumRe = 0;
        let sumIm = 0;
        for (let y = 0; y < size; y++) {
          for (let x = 0; x < size; x++) {
            const angle = (-2 * Math.PI * (u * x + v * y)) / size;
            sumRe += image[y * size + x] * Math.cos(angle);
            sumIm += image[y * size + x] * Math.sin(angle);
          }
        }
        expect(re[v * size + u], `seed ${seed}: Re F(${u}, ${v})`).toBeCloseTo(sumRe, 10);
        expect(im[v * size + u], `seed ${seed}: Im F(${u}, ${v})`).toBeCloseTo(sumIm, 10);
      }
    }
  });

  it.each([
    { size: 32, kx: 3, ky: 4, ring: 5 },
    { size: 15, kx: 2, ky: 0, ring: 2 },
    { size: 48, kx: 7, ky: 7, ring: 10 },
  ])('puts a cosine of frequency ($kx, $ky) at $size² in ring $ring', ({ size, kx, ky, ring }) => {
    const image = new Float64Array(size * size);
    for (let y = 0; y < size; y++) {
      for (let x = 0; x < size; x++) image[y * size + x] = Math.cos((2 * Math.PI * (kx * x + ky * y)) / size);
    }
    const { re } = dft2d(image, size);
    // cos = (e^(iθ) + e^(−iθ)) / 2, so F(kx, ky) = N²/2.
    expect(re[ky * size + kx]).toBeCloseTo((size * size) / 2, 9);
    const power = radialPowerSpectrum(image, size);
    const total = size * size * sumOfSquares(image);
    expect(power[ring] / total).toBeCloseTo(1, 12);
    for (let k = 0; k < power.length; k++) {
      if (k !== ring) expect(power[k] / total, `ring ${k}`).toBeLessThan(1e-24);
    }
  });
});

describe('fourierRingCorrelation', () => {
  it('of an image with itself is 1 in every ring with power', () => {
    const random = makeRandom(seed + 12);
    for (const size of [48, 15]) {
      const image = blobTemplate(size, random);
      const { frc, frequencies, ringSizes } = fourierRingCorrelation(image, image, size);
      const power = radialPowerSpectrum(image, size);
      const total = size * size * sumOfSquares(image);
      expect(frc.length, `${size}²: ring count`).toBe(Math.floor(size / 2) + 1);
      const last = frequencies[frequencies.length - 1];
      expect(last, `${size}²: last ring`).toBeCloseTo(Math.floor(size / 2) / size, 15);
      expect(ringSizes[0], `${size}²: DC ring`).toBe(1);
      for (let k = 0; k < frc.length; k++) {
        const expected = power[k] > 1e-20 * total ? 1 : 0;
        expect(frc[k], `seed ${seed}, ${size}², ring ${k}`).toBeCloseTo(expected, 12);
      }
    }
  });

  it('of zero images is 0 in every ring', () => {
    const zeros = new Float64Array(16 * 16);
    const { frc } = fourierRingCorrelation(zeros, zeros, 16);
    expect(Array.from(frc)).toEqual(new Array(9).fill(0));
  });

  it('of independent noise is near 0 at high frequency', () => {
    // Each ring is a correlation of n_k real values (half of its coefficients are the
    // complex conjugates of the others), so its standard deviation is about 1/√n_k.
    const size = 128;
    const random = makeRandom(seed + 13);
    const first = noiseImage(size * size, 1, random);
    const second = noiseImage(size * size, 1, random);
    const { frc, ringSizes } = fourierRingCorrelation(first, second, size);
    for (let k = size / 4; k < frc.length; k++) {
      expect(Math.abs(frc[k]), `seed ${seed}: ring ${k}`).toBeLessThan(5 / Math.sqrt(ringSizes[k]));
    }
  });

  it.each([
    { noiseSd: 1, expected: 0.5 },
    { noiseSd: 2, expected: 0.2 },
  ])('of white signal plus noise sd $noiseSd is SNR/(1 + SNR) = $expected', ({ noiseSd, expected }) => {
    // b1 = s + n1 and b2 = s + n2 with white s (sd 1) and noise: every ring has
    // E Re Σ F1 F2* = Σ |F_s|² and E Σ |F_i|² = Σ |F_s|² + n_k N² σ², so FRC ≈ SNR/(1 + SNR)
    // with SNR = 1/σ². A ring's sd is about (1 − ρ²)/√n_k, and the n_k-weighted mean over
    // rings 2 … 64 has sd about (1 − ρ²)/√Σn_k, 0.007 at ρ = 0.5.
    const size = 128;
    const random = makeRandom(seed + 14 + noiseSd);
    const signal = noiseImage(size * size, 1, random);
    const first = addNoise(signal, noiseSd, random);
    const second = addNoise(signal, noiseSd, random);
    const { frc, ringSizes } = fourierRingCorrelation(first, second, size);
    const spread = 1 - expected * expected;
    let weighted = 0;
    let weights = 0;
    for (let k = 2; k < frc.length; k++) {
      const sd = spread / Math.sqrt(ringSizes[k]);
      expect(Math.abs(frc[k] - expected), `seed ${seed}: ring ${k}`).toBeLessThan(5 * sd);
      weighted += ringSizes[k] * frc[k];
      weights += ringSizes[k];
    }
    const meanError = Math.abs(weighted / weights - expected);
    expect(meanError, `seed ${seed}: weighted mean`).toBeLessThan(5 * (spread / Math.sqrt(weights)));
  });

  it('of a low-pass signal plus noise crosses 0.5 where predicted', () => {
    // s is white noise blurred circularly by [1, 2, 1]/4 along x and y `passes` times, whose
    // transfer function is H = (cos²(πu/N) cos²(πv/N))^passes. With white noise of sd σ
    // added twice, ring k has FRC ≈ Σ H² / (Σ H² + n_k σ²): 0.99 at ring 1, falling through
    // 0.5 near 0.2 cycles per pixel by about 0.1 per ring. A ring there has sd ≈ 0.75/√n_k
    // ≈ 0.06, so the crossing moves by about half a ring: at most 1 ring over 60 seeds.
    const size = 128;
    const passes = 6;
    const noiseSd = 0.08;
    const random = makeRandom(seed + 17);
    const signal = blurCircular(noiseImage(size * size, 1, random), size, passes);
    const first = addNoise(signal, noiseSd, random);
    const second = addNoise(signal, noiseSd, random);
    const measured = fourierRingCorrelation(first, second, size);
    const predicted = predictedLowPassFrc(size, passes, noiseSd);
    const expected = frcCrossing(measured.frequencies, predicted, 0.5)!;
    expect(expected).toBeGreaterThan(0.1);
    expect(expected).toBeLessThan(0.25);
    const crossing = measured.crossing(0.5);
    expect(crossing, `seed ${seed}`).not.toBeNull();
    const context = `seed ${seed}: crossing ${crossing}, predicted ${expected}`;
    expect(Math.abs(crossing! - expected), context).toBeLessThan(2.5 / size);
  });
});

/** Circular convolution with [1, 2, 1]/4 along x, then y, `passes` times. */
function blurCircular(image: Float64Array, size: number, passes: number): Float64Array {
  let current = image;
  for (let pass = 0; pass < passes; pass++) {
    const alongX = new Float64Array(size * size);
    const alongY = new Float64Array(size * size);
    for (let y = 0; y < size; y++) {
      for (let x = 0; x < size; x++) {
        const row = y * size;
        const left = current[row + ((x + size - 1) % size)];
        const right = current[row + ((x + 1) % size)];
        alongX[row + x] = 0.25 * left + 0.5 * current[row + x] + 0.25 * right;
      }
    }
    for (let y = 0; y < size; y++) {
      for (let x = 0; x < size; x++) {
        const up = alongX[((y + size - 1) % size) * size + x];
        const down = alongX[((y + 1) % size) * size + x];
        alongY[y * size + x] = 0.25 * up + 0.5 * alongX[y * size + x] + 0.25 * down;
      }
    }
    current = alongY;
  }
  return current;
}

/** Σ_ring H² / (Σ_ring H² + n_k σ²) per ring, for `blurCircular` of unit white noise. */
function predictedLowPassFrc(size: number, passes: number, noiseSd: number): Float64Array {
  const count = Math.floor(size / 2) + 1;
  const signal = new Float64Array(count);
  const members = new Float64Array(count);
  const signed = (index: number) => (index <= size / 2 ? index : index - size);
  for (let v = 0; v < size; v++) {
    for (let u = 0; u < size; u++) {
      const ring = Math.round(Math.hypot(signed(u), signed(v)));
      if (ring >= count) continue;
      const transfer = (Math.cos((Math.PI * u) / size) ** 2 * Math.cos((Math.PI * v) / size) ** 2) ** passes;
      signal[ring] += transfer * transfer;
      members[ring]++;
    }
  }
  return signal.map((power, k) => power / (power + members[k] * noiseSd * noiseSd));
}

describe('frcCrossing', () => {
  const frequencies = [0, 0.1, 0.2, 0.3, 0.4];

  it('interpolates linearly between ring centres', () => {
    const frc = [1, 0.9, 0.6, 0.4, 0.1];
    expect(frcCrossing(frequencies, frc, 0.5)).toBeCloseTo(0.25, 15);
    expect(frcCrossing(frequencies, frc, 0.143)).toBeCloseTo(0.3 + ((0.4 - 0.143) / 0.3) * 0.1, 15);
    expect(frcCrossing(frequencies, frc, 0.9)).toBeCloseTo(0.1, 15);
  });

  it('returns the first crossing of a curve that recovers', () => {
    expect(frcCrossing(frequencies, [1, 0.4, 0.7, 0.2, 0.1], 0.5)).toBeCloseTo((0.5 / 0.6) * 0.1, 15);
  });

  it('returns null when the curve stays at or above the threshold', () => {
    expect(frcCrossing(frequencies, [1, 0.9, 0.8, 0.7, 0.5], 0.5)).toBeNull();
  });

  it('returns 0 when ring 0 and ring 1 are both below', () => {
    expect(frcCrossing(frequencies, [0, 0.3, 0.9, 0.9, 0.9], 0.5)).toBe(0);
  });

  it('skips a low ring 0 when ring 1 is above', () => {
    expect(frcCrossing(frequencies, [0, 0.9, 0.9, 0.3, 0.9], 0.5)).toBeCloseTo(0.2 + (0.4 / 0.6) * 0.1, 15);
  });
});

describe('resolutionAngstrom', () => {
  it('divides the pixel size by the frequency', () => {
    expect(resolutionAngstrom(0.25, 1.2)).toBeCloseTo(4.8, 15);
    expect(resolutionAngstrom(0.5, 1.2)).toBeCloseTo(2.4, 15);
    expect(resolutionAngstrom(0, 1.2)).toBe(Infinity);
    expect(resolutionAngstrom(null, 1.2)).toBeNull();
  });
});

describe('scoreTemplate', () => {
  it('of a template against itself', () => {
    const template = blobTemplate(33, makeRandom(seed + 18));
    const score = scoreTemplate(template, template, 33);
    expect(score.r, `seed ${seed}`).toBeGreaterThan(0.99999);
    expect(angleError(score.pose.psi, 0), `seed ${seed}: ψ`).toBeLessThan(0.25 * DEGREE);
    expect(score.crossing05, `seed ${seed}`).toBeNull();
    expect(score.crossing0143, `seed ${seed}`).toBeNull();
  });

  it('of a moved noisy estimate', () => {
    const size = 48;
    const random = makeRandom(seed + 19);
    const truth = discTemplate(size, random);
    const moved = resampled(size, truth, KNOWN_POSE);
    const estimate = addNoise(moved, 0.05, random);
    const score = scoreTemplate(truth, estimate, size);
    const context = `seed ${seed}`;
    const alignment = alignTemplates(truth, estimate, size);
    expect(score.pose, context).toEqual(alignment.pose);
    expect(score.r, context).toBe(alignment.r);
    expect(score.r, context).toBeGreaterThan(pearson(truth, estimate));
    const frc = fourierRingCorrelation(truth, score.aligned, size).frc;
    expect(Array.from(score.frc.frc), context).toEqual(Array.from(frc));
    expect(score.crossing05, context).not.toBeNull();
    expect(score.crossing05!, context).toBeGreaterThan(0);
    expect(score.crossing0143!, context).toBeGreaterThanOrEqual(score.crossing05!);
    expect(score.crossing05, context).toBe(frcCrossing(score.frc.frequencies, score.frc.frc, 0.5));
  });
});

describe('invalid input', () => {
  const image = new Float64Array(16).map((_, i) => i);

  it('pearson rejects mismatched and empty inputs', () => {
    expect(() => pearson(image, new Float64Array(15))).toThrow(RangeError);
    expect(() => pearson(image, new Float64Array(15))).toThrow(/b has length 15, but a has length 16/);
    expect(() => pearson([], [])).toThrow(/a is empty/);
    expect(() => pearson(image, image.map((v, i) => (i === 3 ? NaN : v)))).toThrow(/b\[3\] is NaN/);
  });

  it('alignTemplates rejects a size that does not fit', () => {
    expect(() => alignTemplates(image, new Float64Array(25), 4)).toThrow(RangeError);
    expect(() => alignTemplates(image, new Float64Array(25), 4)).toThrow(
      /moving has length 25, but size 4 needs size² = 16/,
    );
    expect(() => alignTemplates(image, image, 5)).toThrow(
      /reference has length 16, but size 5 needs size² = 25/,
    );
    expect(() => alignTemplates(image, image, 4.5)).toThrow(/size must be a positive integer, got 4.5/);
  });

  it('alignTemplates rejects constant images and bad options', () => {
    expect(() => alignTemplates(new Float64Array(16), image, 4)).toThrow(/reference is constant/);
    expect(() => alignTemplates(image, new Float64Array(16).fill(2), 4)).toThrow(/moving is constant/);
    const align = (options: AlignmentOptions) => () => alignTemplates(image, image, 4, options);
    expect(align({ maxShift: -1 })).toThrow(/maxShift must be in \[0, size = 4\] pixels, got -1/);
    expect(align({ scaleRange: 1 })).toThrow(/scaleRange must be in \[0, 1\), got 1/);
    expect(align({ angleStep: 0 })).toThrow(/angleStep must be in \(0, π\/4\] radians, got 0/);
    expect(align({ scaleNodes: 0 })).toThrow(/scaleNodes must be a positive integer, got 0/);
  });

  it('fourierRingCorrelation and dft2d reject a size that does not fit', () => {
    expect(() => fourierRingCorrelation(image, new Float64Array(9), 4)).toThrow(RangeError);
    expect(() => fourierRingCorrelation(image, new Float64Array(9), 4)).toThrow(
      /b has length 9, but size 4 needs size² = 16/,
    );
    expect(() => fourierRingCorrelation(image, image, 3)).toThrow(
      /a has length 16, but size 3 needs size² = 9/,
    );
    expect(() => dft2d(image, 0)).toThrow(/size must be a positive integer, got 0/);
  });

  it('frcCrossing and resolutionAngstrom reject bad arguments', () => {
    expect(() => frcCrossing([0, 0.1, 0.2], [1, 0.5], 0.5)).toThrow(
      /frc has length 2, but frequencies has length 3/,
    );
    expect(() => frcCrossing([0, 0.1], [1, NaN], 0.5)).toThrow(/frc\[1\] is NaN/);
    expect(() => frcCrossing([0, 0.1], [1, 0.5], NaN)).toThrow(/threshold must be finite, got NaN/);
    expect(() => resolutionAngstrom(0.25, 0)).toThrow(/pixelSize must be a positive number of Å, got 0/);
    expect(() => resolutionAngstrom(-0.1, 1)).toThrow(
      /frequency must be a finite number ≥ 0 cycles per pixel, got -0.1/,
    );
  });
});
