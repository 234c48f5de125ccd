/**
 * Float64 host twin of the engine: the same objective terms, responsibilities and
 * gradients as the WGSL kernels, for tests and for checking the kernels on new inputs.
 *
 * The twin builds R_φᵀ by scattering each residual pixel onto the four taps of its
 * bilinear sample, a different route from the kernels' gather, so the two check each other.
 */
import { decodePoseIndex, posesOf, validateBatch, type BatchInput, type BatchOutput, type EngineShape } from './batch.js';

/** A pose with its rotation as cos and sin; shifts in pixels. */
export interface HostPose {
  cos: number;
  sin: number;
  a: number;
  b: number;
  scale: number;
}

function decodePose(shape: EngineShape, input: BatchInput, image: number, phi: number): HostPose {
  const { p, q, r, m } = decodePoseIndex(shape, phi);
  const psi = input.rotations[image * shape.rotations + p];
  return { cos: Math.cos(psi), sin: Math.sin(psi), a: input.shiftsX[q], b: input.shiftsY[r], scale: input.scales[m] };
}

/** Template coordinates of image pixel (x, y): R(−ψ) (q − o − d) / c + o. */
function toTemplate(pose: HostPose, centre: number, x: number, y: number): [number, number] {
  const u = x - centre - pose.a;
  const v = y - centre - pose.b;
  return [(pose.cos * u - pose.sin * v) / pose.scale + centre, (pose.sin * u + pose.cos * v) / pose.scale + centre];
}

/**
 * Visits the bilinear taps of the sample at (tx, ty) that lie inside the N×N box, with
 * their weights. Taps outside read as zero, so they are skipped.
 */
function forEachTap(size: number, tx: number, ty: number, visit: (index: number, weight: number) => void): void {
  const x0 = Math.floor(tx);
  const y0 = Math.floor(ty);
  const fx = tx - x0;
  const fy = ty - y0;
  for (let dy = 0; dy < 2; dy++) {
    const y = y0 + dy;
    if (y < 0 || y >= size) continue;
    const wy = dy === 0 ? 1 - fy : fy;
    for (let dx = 0; dx < 2; dx++) {
      const x = x0 + dx;
      if (x < 0 || x >= size) continue;
      visit(y * size + x, (dx === 0 ? 1 - fx : fx) * wy);
    }
  }
}

/** Writes R_φ θ into `out` [N, N]; θ is one template [N, N]. */
export function resample(size: number, template: ArrayLike<number>, pose: HostPose, out: Float64Array): void {
  const centre = Math.floor(size / 2);
  for (let y = 0; y < size; y++) {
    for (let x = 0; x < size; x++) {
      const [tx, ty] = toTemplate(pose, centre, x, y);
      let value = 0;
      forEachTap(size, tx, ty, (index, weight) => {
        value += weight * template[index];
      });
      out[y * size + x] = value;
    }
  }
}

/** Adds weight · R_φᵀ r to `out` [N, N]. */
function addAdjoint(size: number, residual: Float64Array, pose: HostPose, weight: number, out: Float64Array): void {
  const centre = Math.floor(size / 2);
  for (let y = 0; y < size; y++) {
    for (let x = 0; x < size; x++) {
      const [tx, ty] = toTemplate(pose, centre, x, y);
      const r = weight * residual[y * size + x];
      forEachTap(size, tx, ty, (index, w) => {
        out[index] += w * r;
      });
    }
  }
}

/** Options of the twin beyond log Ĩ, γ and E, which it always computes. */
export interface HostOptions {
  /** Compute the gradient (default true); without it the gradient is all zeros. */
  gradient?: boolean;
  /** γ ∝ π_k (w P)_φ without the likelihood, as `EvaluateOptions.flatLikelihood`. */
  flatLikelihood?: boolean;
}

/** Float64 twin of `PoseEngine.evaluate`; returns responsibilities and energies always. */
export function evaluateHost(shape: EngineShape, input: BatchInput, options: HostOptions = {}): Required<BatchOutput> {
  const withGradient = options.gradient ?? true;
  const count = validateBatch(shape, input);
  const { size, classes } = shape;
  const pixels = size * size;
  const poses = posesOf(shape);
  const terms = classes * poses;
  const energy = new Float64Array(count * terms);
  const responsibilities = new Float64Array(count * terms);
  const logIntegral = new Float64Array(count);
  const weightedEnergy = new Float64Array(count);
  const gradient = new Float64Array(classes * pixels);
  const model = new Float64Array(pixels);
  const residual = new Float64Array(pixels);
  const inverseTwoSigma2 = options.flatLikelihood ? 0 : 1 / (2 * input.sigma * input.sigma);

  for (let b = 0; b < count; b++) {
    const image = input.images.subarray(b * pixels, (b + 1) * pixels);
    const offset = b * terms;
    const logTerms = new Float64Array(terms);
    let peak = -Infinity;
    for (let k = 0; k < classes; k++) {
      const template = input.templates.subarray(k * pixels, (k + 1) * pixels);
      for (let phi = 0; phi < poses; phi++) {
        resample(size, template, decodePose(shape, input, b, phi), model);
        let sum = 0;
        for (let q = 0; q < pixels; q++) {
          const r = image[q] - model[q];
          sum += r * r;
        }
        const i = k * poses + phi;
        energy[offset + i] = sum;
        logTerms[i] = -sum * inverseTwoSigma2 + input.logClassWeights[k] + input.logWeights[phi];
        peak = Math.max(peak, logTerms[i]);
      }
    }
    let mass = 0;
    for (let i = 0; i < terms; i++) mass += Math.exp(logTerms[i] - peak);
    logIntegral[b] = peak + Math.log(mass);
    let moment = 0;
    for (let i = 0; i < terms; i++) {
      const gamma = Math.exp(logTerms[i] - logIntegral[b]);
      responsibilities[offset + i] = gamma;
      moment += gamma * energy[offset + i];
    }
    weightedEnergy[b] = moment;
    if (!withGradient) continue;

    for (let k = 0; k < classes; k++) {
      const template = input.templates.subarray(k * pixels, (k + 1) * pixels);
      const out = gradient.subarray(k * pixels, (k + 1) * pixels);
      for (let phi = 0; phi < poses; phi++) {
        const gamma = responsibilities[offset + k * poses + phi];
        if (gamma === 0) continue;
        const pose = decodePose(shape, input, b, phi);
        resample(size, template, pose, model);
        for (let q = 0; q < pixels; q++) residual[q] = image[q] - model[q];
        addAdjoint(size, residual, pose, gamma, out);
      }
    }
  }
  const inverseSigma2 = 1 / (input.sigma * input.sigma);
  for (let e = 0; e < gradient.length; e++) gradient[e] *= inverseSigma2;
  return { logIntegral, weightedEnergy, gradient, responsibilities, energy };
}

/**
 * Σ_b Σ_φ γ R_φᵀ |X_b − R_φ θ_k| / σ² [K, N, N]: the gradient with every residual taken
 * positive. It bounds how much rounding in each term can move each gradient element,
 * which cancellation between poses can make far smaller than its terms.
 */
export function hostGradientMagnitude(shape: EngineShape, input: BatchInput, responsibilities: ArrayLike<number>): Float64Array {
  const count = validateBatch(shape, input);
  const { size, classes } = shape;
  const pixels = size * size;
  const poses = posesOf(shape);
  const magnitude = new Float64Array(classes * pixels);
  const model = new Float64Array(pixels);
  const residual = new Float64Array(pixels);
  for (let b = 0; b < count; b++) {
    for (let k = 0; k < classes; k++) {
      const template = input.templates.subarray(k * pixels, (k + 1) * pixels);
      for (let phi = 0; phi < poses; phi++) {
        const gamma = responsibilities[(b * classes + k) * poses + phi];
        if (gamma === 0) continue;
        const pose = decodePose(shape, input, b, phi);
        resample(size, template, pose, model);
        for (let q = 0; q < pixels; q++) residual[q] = Math.abs(input.images[b * pixels + q] - model[q]);
        addAdjoint(size, residual, pose, gamma / (input.sigma * input.sigma), magnitude.subarray(k * pixels, (k + 1) * pixels));
      }
    }
  }
  return magnitude;
}

/** Σ_b log Ĩ_b in float64: the data term whose derivatives `evaluateHost` returns. */
export function hostLogIntegralSum(shape: EngineShape, input: BatchInput): number {
  return evaluateHost(shape, input, { gradient: false }).logIntegral.reduce((sum, value) => sum + value, 0);
}
