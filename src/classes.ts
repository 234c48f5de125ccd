/**
 * The class axis of a K-class reconstruction: the class weights π = softmax(a), each
 * image's class responsibilities, empty classes and their re-seeding, and the summary
 * of the classes at the end.
 */
import { alignTemplates } from './metrics.js';

/** Smallest summed responsibility of a batch used in a preconditioner, in images. */
const MEMBERSHIP_FLOOR = 1;

/** Bound on one step of a class-weight logit, so a noisy minibatch cannot empty a class at once. */
const LOGIT_STEP_CLIP = 2;

/**
 * log π of a class left out of an evaluation: finite and within the engine's input
 * range (magnitude ≤ 1e16), and far below any energy difference, so that the class's
 * terms of the log-sum-exp are exactly 0.
 */
export const EXCLUDED_LOG_WEIGHT = -1e15;

/** Aligned templates that correlate at least this well are reported as copies of one class. */
export const DUPLICATE_R = 0.9;

/** Class weights π_k = exp(a_k) / Σ exp(a), kept as logits a. */
export class ClassWeights {
  readonly logits: Float64Array;

  constructor(readonly classes: number) {
    this.logits = new Float64Array(classes);
  }

  /** log π_k, computed stably; an excluded class gets EXCLUDED_LOG_WEIGHT. */
  logWeights(): Float64Array {
    let max = -Infinity;
    for (const a of this.logits) max = Math.max(max, a);
    let sum = 0;
    for (const a of this.logits) sum += Math.exp(a - max);
    const logSum = max + Math.log(sum);
    return this.logits.map((a) => Math.max(a - logSum, EXCLUDED_LOG_WEIGHT));
  }

  weights(): Float64Array {
    return this.logWeights().map(Math.exp);
  }

  /**
   * Moves the logits one natural-gradient step towards the batch's mean responsibilities
   * r̄: a_k += rate (r̄_k / π_k − 1). The gradient of ℓ in a_k is Σ_i (r_ik − π_k), and
   * dividing by π_k undoes the softmax's curvature; the fixed point is π = r̄.
   * @param responsibilities [B, K] class responsibilities of the batch's images
   */
  step(responsibilities: Float64Array, images: number, rate: number): void {
    const weights = this.weights();
    for (let k = 0; k < this.classes; k++) {
      let mean = 0;
      for (let b = 0; b < images; b++) mean += responsibilities[b * this.classes + k];
      mean /= images;
      const move = rate * (mean / weights[k] - 1);
      this.logits[k] += Math.max(-LOGIT_STEP_CLIP, Math.min(LOGIT_STEP_CLIP, move));
    }
  }

  /** Sets class k's weight to 0 for good, for a class removed from the model. */
  exclude(k: number): void {
    this.logits[k] = -Infinity;
  }

  /** Gives class k half of class j's weight, which keeps the other half; k's own weight is dropped. */
  split(j: number, k: number): void {
    const logWeights = this.logWeights();
    this.logits.set(logWeights);
    this.logits[j] = logWeights[j] - Math.LN2;
    this.logits[k] = logWeights[j] - Math.LN2;
  }
}

/**
 * Returns the preconditioner scale of each class's template step, |B| / Σ_b r_bk with the
 * sum floored at MEMBERSHIP_FLOOR. The curvature of the batch's ℓ in θ_k is about
 * Σ_b r_bk / σ², so each class moves towards the mean of its images in the batch at the
 * same rate as a single class would. With K = 1 the scale is 1.
 * @param membership [B, K] class responsibilities of the batch's images
 */
export function templateScales(membership: ArrayLike<number>, images: number, classes: number): Float64Array {
  const scales = new Float64Array(classes);
  for (let k = 0; k < classes; k++) {
    let sum = 0;
    for (let b = 0; b < images; b++) sum += membership[b * classes + k];
    scales[k] = images / Math.max(sum, MEMBERSHIP_FLOOR);
  }
  return scales;
}

/**
 * Sums γ [B, K, M] over the poses: r_bk = Σ_φ γ_bkφ, the probability that image b
 * belongs to class k. Each image's r is renormalised to sum to 1, because γ arrives in
 * float32 and its sum can miss 1 by a few ulps.
 */
export function classResponsibilities(gamma: ArrayLike<number>, images: number, classes: number): Float64Array {
  const poses = gamma.length / (images * classes);
  const out = new Float64Array(images * classes);
  for (let b = 0; b < images; b++) {
    let total = 0;
    for (let k = 0; k < classes; k++) {
      const t = b * classes + k;
      let sum = 0;
      for (let i = 0; i < poses; i++) sum += gamma[t * poses + i];
      out[t] = sum;
      total += sum;
    }
    if (total > 0) for (let k = 0; k < classes; k++) out[b * classes + k] /= total;
  }
  return out;
}

/** Returns the classes whose summed responsibility is below fraction · n / K. */
export function emptyClasses(totals: ArrayLike<number>, images: number, fraction: number): number[] {
  const classes = totals.length;
  const threshold = (fraction * images) / classes;
  const empty: number[] = [];
  for (let k = 0; k < classes; k++) if (totals[k] < threshold) empty.push(k);
  return empty;
}

/**
 * Picks the images to re-seed an empty class from: the `count` images with the lowest
 * log Ĩ (the images the current classes fit worst), which are the likeliest members
 * of a view that no class represents yet.
 */
export function worstFitImages(logIntegral: ArrayLike<number>, count: number): number[] {
  const order = Array.from({ length: logIntegral.length }, (_, i) => i);
  order.sort((a, b) => logIntegral[a] - logIntegral[b]);
  return order.slice(0, Math.min(count, order.length));
}

/** One class of a finished reconstruction. */
export interface ClassSummary {
  /** Position of the class in the engine, 0-based, before sorting by size. */
  index: number;
  /** Images whose most probable class this is. */
  images: number;
  /** Estimated class weight π_k. */
  weight: number;
  /** Σ_i r_ik over the stack at the final θ and σ. */
  responsibility: number;
  /** Whether the class has no image, or less than the empty-class threshold of the responsibility. */
  empty: boolean;
  /** Whether the class was removed at the end because the stack gives no evidence for it. */
  redundant: boolean;
  /**
   * Position in the sorted list of a larger class whose template this one copies up to
   * rotation and shift (r ≥ DUPLICATE_R after alignment), or null.
   */
  duplicateOf: number | null;
  /** Times the class was re-seeded after an epoch in which it was empty. */
  reseeds: number;
}

/**
 * Summarises the classes, sorted by images assigned (then by responsibility), and flags
 * empty classes and copies of larger ones.
 * @param templates [K, N, N]
 * @param assigned each image's most probable class
 */
export function summariseClasses(
  templates: Float32Array,
  size: number,
  weights: ArrayLike<number>,
  responsibilityTotals: ArrayLike<number>,
  assigned: ArrayLike<number>,
  reseeds: ArrayLike<number>,
  redundant: ArrayLike<boolean>,
  emptyFraction: number,
): ClassSummary[] {
  const classes = weights.length;
  const counts = new Array<number>(classes).fill(0);
  for (let i = 0; i < assigned.length; i++) counts[assigned[i]] += 1;
  const empty = new Set(emptyClasses(responsibilityTotals, assigned.length, emptyFraction));
  const summaries: ClassSummary[] = Array.from({ length: classes }, (_, k) => ({
    index: k,
    images: counts[k],
    weight: weights[k],
    responsibility: responsibilityTotals[k],
    empty: empty.has(k) || counts[k] === 0,
    redundant: redundant[k],
    duplicateOf: null,
    reseeds: reseeds[k],
  }));
  summaries.sort((a, b) => b.images - a.images || b.responsibility - a.responsibility);
  const pixels = size * size;
  const templateOf = (k: number) => templates.subarray(k * pixels, (k + 1) * pixels);
  for (let j = 1; j < summaries.length; j++) {
    if (summaries[j].empty) continue;
    for (let i = 0; i < j; i++) {
      if (summaries[i].empty || summaries[i].duplicateOf !== null) continue;
      const r = alignTemplates(templateOf(summaries[i].index), templateOf(summaries[j].index), size, { searchScale: false }).r;
      if (r >= DUPLICATE_R) {
        summaries[j].duplicateOf = i;
        break;
      }
    }
  }
  return summaries;
}
