/**
 * The objective ℓ(θ, σ) and its gradients from one batch's pose integrals:
 *
 *   ℓ = −λ‖θ‖₁ − nJ log σ + (n/|B|) Σ_{b∈B} log Ĩ_b
 *   ∂ℓ/∂θ = (n/|B|) Σ_b Σ_φ γ R_φᵀ (X_b − R_φ θ) / σ² − λ sign θ
 *   ∂ℓ/∂σ = (n/|B|) Σ_b Σ_φ γ ‖X_b − R_φ θ‖² / σ³ − nJ / σ
 *
 * With the whole stack as the batch (|B| = n) these are exact; a minibatch gives
 * unbiased estimates of the data terms.
 */
import type { BatchOutput } from '../gpu/batch.js';
import type { Numerics } from './numerics.js';

export interface ObjectiveContext {
  /** θ [K, N, N], the templates the batch was evaluated at. */
  templates: ArrayLike<number>;
  /** σ the batch was evaluated at. */
  sigma: number;
  /** λ of the Laplace prior on θ, per unit intensity. */
  lambda: number;
  /** n: images in the whole stack. */
  datasetSize: number;
  /** |B|: images in this batch. */
  batchSize: number;
  /** J: pixels per image. */
  pixels: number;
}

export interface ObjectiveValue {
  value: number;
  /** [K, N, N] ∂ℓ/∂θ. */
  gradTheta: Float64Array;
  gradSigma: number;
}

export function composeObjective(numerics: Numerics, batch: BatchOutput, context: ObjectiveContext): ObjectiveValue {
  const { templates, sigma, lambda, datasetSize, batchSize, pixels } = context;
  if (!Number.isSafeInteger(batchSize) || batchSize < 1 || batch.logIntegral.length !== batchSize) {
    throw new RangeError(`composeObjective: batchSize is ${batchSize}, but the batch has ${batch.logIntegral.length} images`);
  }
  if (batch.gradient.length !== templates.length) {
    throw new RangeError(
      `composeObjective: the batch gradient has ${batch.gradient.length} values and the templates ${templates.length}; ` +
        'evaluate with the gradient read back (EvaluateOptions.gradient not false)',
    );
  }
  if (!(sigma > 0) || !Number.isFinite(sigma)) {
    throw new RangeError(`composeObjective: sigma is ${sigma}; it must be finite and > 0`);
  }
  const scale = datasetSize / batchSize;
  let logIntegral = 0;
  let weightedEnergy = 0;
  for (let b = 0; b < batch.logIntegral.length; b++) {
    logIntegral += batch.logIntegral[b];
    weightedEnergy += batch.weightedEnergy[b];
  }
  const noise = datasetSize * pixels;
  const value = numerics.laplaceLogPrior(templates, lambda) - noise * Math.log(sigma) + scale * logIntegral;
  const gradTheta = numerics.laplaceLogPriorGradient(templates, lambda);
  for (let e = 0; e < gradTheta.length; e++) gradTheta[e] += scale * batch.gradient[e];
  const gradSigma = (scale * weightedEnergy) / sigma ** 3 - noise / sigma;
  return { value, gradTheta, gradSigma };
}
