/** Synthetic templates for examples and tests. */

/**
 * Returns an N×N template, row-major, of four Gaussian blobs placed in the middle 40 % of
 * the box, with widths of 6–16 % of the box and heights in [−0.5, 1.5).
 * @param random uniform deviates in [0, 1), e.g. a seeded generator
 */
export function blobTemplate(size: number, random: () => number): Float32Array {
  const template = new Float32Array(size * size);
  for (let blob = 0; blob < 4; blob++) {
    const cx = size * (0.3 + 0.4 * random());
    const cy = size * (0.3 + 0.4 * random());
    const width = size * (0.06 + 0.1 * random());
    const height = 2 * random() - 0.5;
    for (let y = 0; y < size; y++) {
      for (let x = 0; x < size; x++) {
        template[y * size + x] += height * Math.exp(-((x - cx) ** 2 + (y - cy) ** 2) / (2 * width * width));
      }
    }
  }
  return template;
}

/**
 * Returns an N×N template, row-major, with no rotational symmetry: three elongated
 * Gaussian bars meeting off-centre like a tilted 'F', and a negative blob between them.
 * Its rotational average, which a stack's plain mean tends to, correlates poorly with it.
 */
export function figureTemplate(size: number): Float32Array {
  const template = new Float32Array(size * size);
  const o = Math.floor(size / 2);
  // Each bar: centre (x, y) in box units from the rotation centre, angle, length and width in box units, height.
  const bars = [
    { x: -0.08, y: 0.0, angle: Math.PI / 2 + 0.15, length: 0.22, width: 0.035, height: 1 },
    { x: 0.06, y: -0.17, angle: 0.15, length: 0.13, width: 0.035, height: 1 },
    { x: 0.04, y: -0.02, angle: 0.15, length: 0.09, width: 0.035, height: 0.8 },
    { x: 0.14, y: 0.12, angle: 0, length: 0.05, width: 0.05, height: -0.6 },
  ];
  for (const bar of bars) {
    const cos = Math.cos(bar.angle);
    const sin = Math.sin(bar.angle);
    for (let y = 0; y < size; y++) {
      for (let x = 0; x < size; x++) {
        const dx = (x - o) / size - bar.x;
        const dy = (y - o) / size - bar.y;
        const along = cos * dx + sin * dy;
        const across = -sin * dx + cos * dy;
        template[y * size + x] += bar.height * Math.exp(-(along ** 2) / (2 * bar.length ** 2) - across ** 2 / (2 * bar.width ** 2));
      }
    }
  }
  return template;
}

/**
 * Returns the template divided by its pixel standard deviation, so that templates of
 * different contrast give the same SNR at one σ. The mean is kept.
 */
export function unitVariance(template: Float32Array): Float32Array {
  let mean = 0;
  for (const value of template) mean += value / template.length;
  let variance = 0;
  for (const value of template) variance += (value - mean) ** 2 / template.length;
  return template.map((value) => value / Math.sqrt(variance));
}

/** Mulberry32: a small seeded generator of uniform deviates in [0, 1). */
export function seededRandom(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Standard normal deviates from a uniform generator, by Box–Muller. */
export function normalDeviates(random: () => number): () => number {
  return () => {
    const u = 1 - random();
    const v = random();
    return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
  };
}

/** Truth of a simulated image: its pose, drawn from the priors. */
export interface TruePose {
  /** Radians. */
  psi: number;
  /** Pixels. */
  shiftX: number;
  shiftY: number;
  scale: number;
}

export interface SimulationOptions {
  /** Images to make. */
  count: number;
  /** Signal-to-noise ratio: the template's pixel variance over σ². */
  snr: number;
  /** Standard deviation of the shift prior, pixels. Default 5 % of the box. */
  shiftSd?: number;
  /** Half-range ε_c of the scale prior U[1 − ε_c, 1 + ε_c]; 0 fixes the scale at 1. Default 0.05. */
  scaleHalfRange?: number;
  seed?: number;
}

export interface SimulatedStack {
  /** [count, N, N]. */
  images: Float32Array;
  size: number;
  /** The noise standard deviation used. */
  sigma: number;
  poses: TruePose[];
}

/**
 * Simulates X_i = R_φi A + σ N_i: each image is the template at a pose drawn from the
 * priors (ψ ~ U[0, 2π), shifts ~ N(0, s²), c ~ U[1 − ε_c, 1 + ε_c]) plus white Gaussian
 * noise whose σ gives the requested SNR.
 * @param resample the resampling R_φ, as `resample` in gpu/host.ts
 */
export function simulateStack(
  template: ArrayLike<number>,
  size: number,
  options: SimulationOptions,
  resample: (size: number, template: ArrayLike<number>, pose: { cos: number; sin: number; a: number; b: number; scale: number }, out: Float64Array) => void,
): SimulatedStack {
  const pixels = size * size;
  if (template.length !== pixels) {
    throw new RangeError(`simulateStack: template has ${template.length} values, expected size² = ${pixels}`);
  }
  if (!Number.isSafeInteger(options.count) || options.count < 1) {
    throw new RangeError(`simulateStack: count is ${options.count}; it must be an integer ≥ 1`);
  }
  if (!(options.snr > 0) || !Number.isFinite(options.snr)) {
    throw new RangeError(`simulateStack: snr is ${options.snr}; it must be finite and > 0`);
  }
  let mean = 0;
  for (let q = 0; q < pixels; q++) mean += template[q];
  mean /= pixels;
  let variance = 0;
  for (let q = 0; q < pixels; q++) variance += (template[q] - mean) ** 2;
  variance /= pixels;
  if (!(variance > 0)) throw new RangeError('simulateStack: the template is constant, so no SNR can be set');
  const sigma = Math.sqrt(variance / options.snr);
  const shiftSd = options.shiftSd ?? 0.05 * size;
  const epsilon = options.scaleHalfRange ?? 0.05;
  const random = seededRandom(options.seed ?? 1);
  const normal = normalDeviates(random);
  const images = new Float32Array(options.count * pixels);
  const model = new Float64Array(pixels);
  const poses: TruePose[] = [];
  for (let i = 0; i < options.count; i++) {
    const pose = {
      psi: 2 * Math.PI * random(),
      shiftX: shiftSd * normal(),
      shiftY: shiftSd * normal(),
      scale: 1 + epsilon * (2 * random() - 1),
    };
    poses.push(pose);
    resample(size, template, { cos: Math.cos(pose.psi), sin: Math.sin(pose.psi), a: pose.shiftX, b: pose.shiftY, scale: pose.scale }, model);
    for (let q = 0; q < pixels; q++) images[i * pixels + q] = model[q] + sigma * normal();
  }
  return { images, size, sigma, poses };
}
