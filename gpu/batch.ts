/**
 * The inputs and outputs of one evaluation of the pose integral over a batch of images,
 * shared by the WebGPU engine and its float64 host twin, and their validation.
 *
 * Shapes are row-major; N is the box side in pixels, J = N², K the number of classes,
 * M = rotations · shiftsX · shiftsY · scales the poses per image.
 */

/** Sizes fixed for the life of an engine. */
export interface EngineShape {
  /** N: image and template side, pixels. */
  size: number;
  /** K: templates evaluated at once, each with its own log class weight. */
  classes: number;
  /** Rotation nodes per image. */
  rotations: number;
  shiftsX: number;
  shiftsY: number;
  scales: number;
  /** Largest number of images passed to one evaluation. */
  batch: number;
}

export interface BatchInput {
  /** [B, N, N] images, 1 ≤ B ≤ shape.batch. The engine rounds float64 values to float32. */
  images: Float32Array | Float64Array;
  /** [K, N, N] templates θ_k. */
  templates: Float32Array | Float64Array;
  /** [K] log π_k; a single class takes [0]. */
  logClassWeights: ArrayLike<number>;
  /** [B, rotations] rotation nodes ψ of each image, radians. */
  rotations: ArrayLike<number>;
  /** [shiftsX] shift nodes a along x (columns), pixels. */
  shiftsX: ArrayLike<number>;
  /** [shiftsY] shift nodes b along y (rows, +y down), pixels. */
  shiftsY: ArrayLike<number>;
  /** [scales] scale nodes c, each > 0. */
  scales: ArrayLike<number>;
  /** [M] log(w P) of each pose node in the pose order of `pose.ts`. */
  logWeights: ArrayLike<number>;
  /** Noise standard deviation σ, in image intensity units. */
  sigma: number;
}

export interface BatchOutput {
  /** [B] log Ĩ_b = logsumexp over (k, φ) of −E/2σ² + log π_k + log(w P)_φ. */
  logIntegral: Float64Array;
  /** [B] Σ_{k,φ} γ E: the expected squared residual; ∂(Σ_b log Ĩ_b)/∂σ = Σ_b of it / σ³. */
  weightedEnergy: Float64Array;
  /** [K, N, N] Σ_b Σ_φ γ R_φᵀ (X_b − R_φ θ_k) / σ² = ∂(Σ_b log Ĩ_b)/∂θ_k; empty if not read back. */
  gradient: Float64Array;
  /** [B, K, M] responsibilities γ, when requested. */
  responsibilities?: Float32Array | Float64Array;
  /** [B, K, M] squared residuals E = ‖X_b − R_φ θ_k‖², when requested. */
  energy?: Float32Array | Float64Array;
}

export interface EvaluateOptions {
  /** Read back the responsibilities γ [B, K, M]. */
  responsibilities?: boolean;
  /** Read back the squared residuals E [B, K, M]. */
  energy?: boolean;
  /** Read back the gradient [K, N, N] (default true); it stays on the GPU either way. */
  gradient?: boolean;
  /**
   * Compute the gradient at all (default true). Without it the evaluation skips the two
   * gradient kernels, leaves the GPU gradient as it was, and returns an empty gradient.
   */
  computeGradient?: boolean;
  /**
   * Drop the likelihood from the responsibilities: γ ∝ π_k (w P)_φ, as σ → ∞. The gradient
   * keeps its 1/σ² factor, so with σ = 1 it is Σ_b Σ_φ γ R_φᵀ (X_b − R_φ θ_k), the
   * gradient of the Jensen lower bound up to the factor Σ_φ (w P)_φ.
   */
  flatLikelihood?: boolean;
}

/** Input of the engine: the templates may be left out to use those already on the GPU. */
export type EngineInput = Omit<BatchInput, 'templates'> & { templates?: BatchInput['templates'] };

/** Largest finite float32; 1/(2σ²) must stay below it on the GPU. */
const FLOAT32_MAX = 3.4028234663852886e38;

/**
 * Largest input magnitude accepted: squares and sums of J such values stay finite in
 * float32 for J up to 2^20 pixels, (1e16)² · 2^20 ≈ 1e38.
 */
const FLOAT32_LIMIT = 1e16;

/** Scales accepted; outside this range the gather window or the sampling step degenerates. */
const SCALE_RANGE = [1e-3, 1e3] as const;
/** Node indices of one pose: rotation p, shift x q, shift y r, scale m. */
export interface PoseIndex {
  p: number;
  q: number;
  r: number;
  m: number;
}

/** Splits a pose index φ = ((p · shiftsX + q) · shiftsY + r) · scales + m into its node indices. */
export function decodePoseIndex(shape: Pick<EngineShape, 'shiftsX' | 'shiftsY' | 'scales'>, phi: number): PoseIndex {
  const m = phi % shape.scales;
  let rest = Math.floor(phi / shape.scales);
  const r = rest % shape.shiftsY;
  rest = Math.floor(rest / shape.shiftsY);
  const q = rest % shape.shiftsX;
  return { p: Math.floor(rest / shape.shiftsX), q, r, m };
}

export function posesOf(shape: EngineShape): number {
  return shape.rotations * shape.shiftsX * shape.shiftsY * shape.scales;
}

function checkCount(field: string, value: number): void {
  if (!Number.isSafeInteger(value) || value < 1) {
    throw new RangeError(`engine shape: ${field} must be a positive integer, got ${value}`);
  }
}

export function validateShape(shape: EngineShape): void {
  if (typeof shape !== 'object' || shape === null) {
    throw new TypeError(`engine shape must be an object with size, classes, rotations, shiftsX, shiftsY, scales and batch, got ${shape}`);
  }
  for (const field of ['size', 'classes', 'rotations', 'shiftsX', 'shiftsY', 'scales', 'batch'] as const) {
    checkCount(field, shape[field]);
  }
}

function checkLength(field: string, values: ArrayLike<number>, expected: number, layout: string): void {
  if (values.length !== expected) {
    throw new RangeError(`batch input: ${field} has ${values.length} values, expected ${expected} (${layout})`);
  }
}

/**
 * Checks that every value is a number the GPU can hold: finite, and within float32's
 * range, since the kernels compute in float32.
 */
function checkFinite(field: string, values: ArrayLike<number>, stride = 1, unit = 'index'): void {
  for (let i = 0; i < values.length; i++) {
    const value = values[i];
    if (typeof value !== 'number' || !Number.isFinite(value) || Math.abs(value) > FLOAT32_LIMIT) {
      const where = stride === 1 ? `${unit} ${i}` : `${unit} ${Math.floor(i / stride)}, element ${i % stride}`;
      const shown = typeof value === 'number' ? String(value) : JSON.stringify(value);
      throw new RangeError(
        `batch input: ${field} is ${shown} at ${where}; every value must be a finite number of magnitude ≤ ${FLOAT32_LIMIT}`,
      );
    }
  }
}

const FIELDS = ['images', 'logClassWeights', 'rotations', 'shiftsX', 'shiftsY', 'scales', 'logWeights'] as const;

/** Checks templates [K, N, N] for length and float32 range. */
export function validateTemplates(templates: ArrayLike<number>, expected: number, pixels: number): void {
  checkLength('templates', templates, expected, '[K, N, N]');
  checkFinite('templates', templates, pixels, 'class');
}

/** Checks every field against the shape; returns B, the number of images. */
export function validateBatch(shape: EngineShape, input: EngineInput): number {
  for (const field of FIELDS) {
    if (input?.[field] === undefined || typeof input[field].length !== 'number') {
      throw new TypeError(`batch input: ${field} is missing; it must be an array of numbers`);
    }
  }
  const pixels = shape.size * shape.size;
  if (input.images.length % pixels !== 0 || input.images.length === 0) {
    throw new RangeError(
      `batch input: images has ${input.images.length} values, not a positive multiple of N² = ${pixels}`,
    );
  }
  const count = input.images.length / pixels;
  if (count > shape.batch) {
    throw new RangeError(`batch input: ${count} images exceed the engine's batch of ${shape.batch}`);
  }
  if (input.templates) validateTemplates(input.templates, shape.classes * pixels, pixels);
  checkLength('logClassWeights', input.logClassWeights, shape.classes, '[K]');
  checkLength('rotations', input.rotations, count * shape.rotations, '[B, rotations]');
  checkLength('shiftsX', input.shiftsX, shape.shiftsX, '[shiftsX]');
  checkLength('shiftsY', input.shiftsY, shape.shiftsY, '[shiftsY]');
  checkLength('scales', input.scales, shape.scales, '[scales]');
  checkLength('logWeights', input.logWeights, posesOf(shape), '[rotations · shiftsX · shiftsY · scales]');
  checkFinite('images', input.images, pixels, 'image');
  checkFinite('logClassWeights', input.logClassWeights);
  checkFinite('rotations', input.rotations, shape.rotations, 'image');
  checkFinite('shiftsX', input.shiftsX);
  checkFinite('shiftsY', input.shiftsY);
  checkFinite('logWeights', input.logWeights);
  checkFinite('scales', input.scales);
  for (let m = 0; m < input.scales.length; m++) {
    if (!(input.scales[m] >= SCALE_RANGE[0] && input.scales[m] <= SCALE_RANGE[1])) {
      throw new RangeError(
        `batch input: scales is ${input.scales[m]} at index ${m}; scales must lie in [${SCALE_RANGE[0]}, ${SCALE_RANGE[1]}]`,
      );
    }
  }
  const sigma = input.sigma;
  if (typeof sigma !== 'number' || !(sigma > 0) || !(1 / (sigma * sigma) < FLOAT32_MAX) || !Number.isFinite(sigma)) {
    throw new RangeError(
      `batch input: sigma is ${JSON.stringify(sigma) ?? sigma}; it must be a finite number with 1/σ² finite in float32 (σ ≥ 6e-20)`,
    );
  }
  return count;
}
