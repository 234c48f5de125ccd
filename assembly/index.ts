// Quadrature rules, prior densities and the log(weight × prior) arrays of the pose grid, in f64.
//
// These functions do not validate their arguments: src/numerics.ts checks counts and ranges
// before it calls them, because an AssemblyScript abort reaches JavaScript as a bare
// "unreachable" or a message without the caller's field names.
//
// An axis with a single node is a fixed parameter, not a quadrature: its weight is 1 and its
// log(weight × prior) is 0, whatever the range and the prior.

/** ln(2π). */
const LOG_TWO_PI: f64 = 1.8378770664093453;

/** 2π. */
const TWO_PI: f64 = 6.283185307179586;

/** Nodes start + period·p / count for p = 0 … count − 1 (the periodic trapezoid rule). */
export function periodicNodes(count: i32, start: f64, period: f64): Float64Array {
  const nodes = new Float64Array(count);
  for (let p = 0; p < count; p++) {
    nodes[p] = start + (period * <f64>p) / <f64>count;
  }
  return nodes;
}

/** Weights of the periodic trapezoid rule: period / count each, or 1 for a single node. */
export function periodicWeights(count: i32, period: f64): Float64Array {
  const weights = new Float64Array(count);
  const weight = count == 1 ? 1.0 : period / <f64>count;
  weights.fill(weight);
  return weights;
}

/**
 * Uniform nodes lo + p·h, h = (hi − lo) / (count − 1), or the centre (lo + hi) / 2 for a
 * single node. The end nodes are lo and hi exactly, so that a support check on the range
 * also holds for the nodes. The second half is computed from hi, which makes the nodes of
 * [−x, x] exact negatives of each other and the middle node of an odd count exactly 0.
 */
export function intervalNodes(count: i32, lo: f64, hi: f64): Float64Array {
  const nodes = new Float64Array(count);
  if (count == 1) {
    nodes[0] = 0.5 * (lo + hi);
    return nodes;
  }
  const last = count - 1;
  const width = hi - lo;
  for (let p = 0; p < count; p++) {
    if (2 * p <= last) {
      nodes[p] = lo + width * (<f64>p / <f64>last);
    } else {
      nodes[p] = hi - width * (<f64>(last - p) / <f64>last);
    }
  }
  nodes[0] = lo;
  nodes[last] = hi;
  return nodes;
}

/** Weights h·(½, 1, …, 1, ½) of the ordinary trapezoid rule, or 1 for a single node. */
export function intervalWeights(count: i32, lo: f64, hi: f64): Float64Array {
  const weights = new Float64Array(count);
  if (count == 1) {
    weights[0] = 1.0;
    return weights;
  }
  const h = (hi - lo) / <f64>(count - 1);
  weights.fill(h);
  weights[0] = 0.5 * h;
  weights[count - 1] = 0.5 * h;
  return weights;
}

/** Log density of N(mean, sd²) at x. */
export function logNormal(x: f64, mean: f64, sd: f64): f64 {
  const z = (x - mean) / sd;
  return -0.5 * z * z - Math.log(sd) - 0.5 * LOG_TWO_PI;
}

/** Log density of U[lo, hi] at x: −ln(hi − lo) inside the closed interval, −∞ outside. */
export function logUniform(x: f64, lo: f64, hi: f64): f64 {
  if (x < lo || x > hi) return -Infinity;
  return -Math.log(hi - lo);
}

/** Laplace log prior −λ‖θ‖₁ of a template, unnormalised. */
export function laplaceLogPrior(theta: Float64Array, lambda: f64): f64 {
  let norm = 0.0;
  for (let i = 0; i < theta.length; i++) {
    norm += Math.abs(unchecked(theta[i]));
  }
  return -lambda * norm;
}

/** Subgradient −λ·sign(θ) of the Laplace log prior, with sign(0) = 0. */
export function laplaceLogPriorGradient(theta: Float64Array, lambda: f64): Float64Array {
  const length = theta.length;
  const gradient = new Float64Array(length);
  for (let i = 0; i < length; i++) {
    const value = unchecked(theta[i]);
    let g = 0.0;
    if (value > 0) g = -lambda;
    else if (value < 0) g = lambda;
    else if (value != value) g = value;
    unchecked((gradient[i] = g));
  }
  return gradient;
}

/**
 * Rotation offsets ψ_p − ψ* in radians. halfWidth ≥ π selects the full circle, with periodic
 * nodes from 0. A smaller halfWidth selects uniform nodes on [−halfWidth, halfWidth].
 */
export function rotationOffsets(count: i32, halfWidth: f64): Float64Array {
  if (halfWidth >= Math.PI) return periodicNodes(count, 0.0, TWO_PI);
  return intervalNodes(count, -halfWidth, halfWidth);
}

/**
 * log(w P) of the rotation nodes from rotationOffsets, under the uniform prior 1 / 2π on the
 * circle.
 */
export function rotationLogWeights(count: i32, halfWidth: f64): Float64Array {
  const weights =
    halfWidth >= Math.PI
      ? periodicWeights(count, TWO_PI)
      : intervalWeights(count, -halfWidth, halfWidth);
  const logWeights = new Float64Array(count);
  if (count == 1) return logWeights;
  for (let p = 0; p < count; p++) {
    logWeights[p] = Math.log(weights[p]) - LOG_TWO_PI;
  }
  return logWeights;
}

/** log(w P) of the intervalNodes of [lo, hi] under the prior N(mean, sd²). */
export function normalAxisLogWeights(
  count: i32,
  lo: f64,
  hi: f64,
  mean: f64,
  sd: f64,
): Float64Array {
  const logWeights = new Float64Array(count);
  if (count == 1) return logWeights;
  const nodes = intervalNodes(count, lo, hi);
  const weights = intervalWeights(count, lo, hi);
  for (let q = 0; q < count; q++) {
    logWeights[q] = Math.log(weights[q]) + logNormal(nodes[q], mean, sd);
  }
  return logWeights;
}

/**
 * log(w P) of the intervalNodes of [lo, hi] under the prior U[priorLo, priorHi]. A node
 * outside the prior's support gets −∞.
 */
export function uniformAxisLogWeights(
  count: i32,
  lo: f64,
  hi: f64,
  priorLo: f64,
  priorHi: f64,
): Float64Array {
  const logWeights = new Float64Array(count);
  if (count == 1) return logWeights;
  const nodes = intervalNodes(count, lo, hi);
  const weights = intervalWeights(count, lo, hi);
  for (let m = 0; m < count; m++) {
    logWeights[m] = Math.log(weights[m]) + logUniform(nodes[m], priorLo, priorHi);
  }
  return logWeights;
}

/**
 * Outer sum of four per-axis log(w P) arrays, row-major [ψ, a, b, c] with c fastest: entry
 * ((p·Ma + q)·Mb + r)·Mc + m is rotation[p] + shiftX[q] + shiftY[r] + scale[m].
 */
export function outerSumLogWeights(
  rotation: Float64Array,
  shiftX: Float64Array,
  shiftY: Float64Array,
  scale: Float64Array,
): Float64Array {
  const countRotation = rotation.length;
  const countX = shiftX.length;
  const countY = shiftY.length;
  const countScale = scale.length;
  const combined = new Float64Array(countRotation * countX * countY * countScale);
  let index = 0;
  for (let p = 0; p < countRotation; p++) {
    const rotationValue = unchecked(rotation[p]);
    for (let q = 0; q < countX; q++) {
      const partialX = rotationValue + unchecked(shiftX[q]);
      for (let r = 0; r < countY; r++) {
        const partialY = partialX + unchecked(shiftY[r]);
        for (let m = 0; m < countScale; m++) {
          unchecked((combined[index] = partialY + unchecked(scale[m])));
          index++;
        }
      }
    }
  }
  return combined;
}

export { rotationWindowHalfWidth, marginaliseRotations, windowCentres, hasConverged } from './training';
