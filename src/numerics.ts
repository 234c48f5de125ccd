// CPU-side numerics of the pose model, compiled from assembly/index.ts to WebAssembly.
//
// A pose φ = (ψ, a, b, c) is a rotation ψ in radians, shifts a (x) and b (y) in pixels and a
// scale c. The priors are ψ ~ U[0, 2π), a, b ~ N(0, s²) and c ~ U[1 − ε_c, 1 + ε_c]. The
// pose integral is a trapezoid sum over a 4-D grid, and its weights times the prior density
// enter the objective as log(w P). The template prior is Laplace, log P(θ) = −λ‖θ‖₁.
//
// The module is compiled from bytes embedded by scripts/embed-wasm.js, with no fs or fetch,
// so loading is the same in Node and in a browser worker.

import { instantiate, type NumericsRawExports } from './generated/numerics-bindings.js';
import { numericsWasmBase64 } from './generated/numerics-wasm.js';

/** A shift axis (pixels) or the scale axis (dimensionless) of the pose grid. */
export interface AxisSpec {
  /** Number of nodes, ≥ 1. One node fixes the parameter at (min + max) / 2. */
  count: number;
  /** First node. */
  min: number;
  /** Last node, which must exceed min when count > 1. */
  max: number;
}

/** The rotation axis of the pose grid. */
export interface RotationSpec {
  /** Number of nodes, ≥ 1. One node fixes ψ at each image's centre ψ*. */
  count: number;
  /**
   * Half-width ε in radians of the window [ψ* − ε, ψ* + ε] around each image's centre ψ*,
   * integrated with the ordinary trapezoid rule. Absent or ≥ π selects the full circle and
   * the periodic trapezoid rule.
   */
  halfWidth?: number;
}

/** The 4-D pose grid and the prior parameters that its log(w P) depends on. */
export interface PoseGridSpec {
  rotation: RotationSpec;
  /** Shift a along x, pixels. */
  shiftX: AxisSpec;
  /** Shift b along y, pixels. */
  shiftY: AxisSpec;
  /** Scale c. Every node must lie in [1 − scaleHalfRange, 1 + scaleHalfRange]. */
  scale: AxisSpec;
  /** Standard deviation s of the shift prior N(0, s²), pixels (see defaultShiftSd). */
  shiftSd: number;
  /** Half-range ε_c of the scale prior U[1 − ε_c, 1 + ε_c], in [0, 1). */
  scaleHalfRange: number;
}

/** The nodes of a pose grid and its combined log(w P). */
export interface PoseGrid {
  /** ψ_p − ψ* per rotation node, radians, length rotation.count. */
  rotationOffsets: Float64Array<ArrayBuffer>;
  /** Shift nodes a_q, pixels, length shiftX.count. */
  shiftX: Float64Array<ArrayBuffer>;
  /** Shift nodes b_r, pixels, length shiftY.count. */
  shiftY: Float64Array<ArrayBuffer>;
  /** Scale nodes c_m, length scale.count. */
  scale: Float64Array<ArrayBuffer>;
  /** Combined log(w P), length Mψ·Ma·Mb·Mc, row-major [ψ, a, b, c] (see gridLogWeights). */
  logWeights: Float64Array<ArrayBuffer>;
}

/** The numerics module: quadrature rules, prior densities and pose-grid log weights. */
export interface Numerics {
  /**
   * Returns the rotation offsets ψ_p − ψ* in radians, so that the nodes of image i are
   * centre_i + offsets. The full circle gives 2π·p / M for p = 0 … M − 1, and a window gives
   * M uniform nodes from −halfWidth to halfWidth. A single node gives [0].
   */
  rotationOffsets(spec: RotationSpec): Float64Array<ArrayBuffer>;
  /**
   * Returns log(w P) of each rotation node under the uniform prior 1 / 2π, in the order of
   * rotationOffsets. The sum of exp(·) is 1 for the full circle and 2ε / 2π for a window.
   * A single node gives [0].
   */
  rotationLogWeights(spec: RotationSpec): Float64Array<ArrayBuffer>;
  /** Returns the M uniform nodes from min to max, or [(min + max) / 2] for one node. */
  axisNodes(spec: AxisSpec): Float64Array<ArrayBuffer>;
  /**
   * Returns log(w P) of each node of a shift axis (pixels) under the prior N(0, shiftSd²).
   * A single node gives [0].
   */
  shiftLogWeights(spec: AxisSpec, shiftSd: number): Float64Array<ArrayBuffer>;
  /**
   * Returns log(w P) of each node of the scale axis under the prior
   * U[1 − scaleHalfRange, 1 + scaleHalfRange]. A single node gives [0].
   * Throws a RangeError if a node lies outside the prior's support.
   */
  scaleLogWeights(spec: AxisSpec, scaleHalfRange: number): Float64Array<ArrayBuffer>;
  /**
   * Returns the combined log(w P) of the 4-D grid, the sum of the four axes' values, of length
   * Mψ·Ma·Mb·Mc. Node (p, q, r, m) of (ψ, a, b, c) is at index ((p·Ma + q)·Mb + r)·Mc + m.
   */
  gridLogWeights(spec: PoseGridSpec): Float64Array<ArrayBuffer>;
  /** Returns the nodes of every axis and gridLogWeights(spec), validating the spec once. */
  poseGrid(spec: PoseGridSpec): PoseGrid;
  /**
   * Returns the nodes start + period·p / count, p = 0 … count − 1, of the periodic
   * trapezoid rule.
   */
  periodicNodes(count: number, start: number, period: number): Float64Array<ArrayBuffer>;
  /**
   * Returns the weights of the periodic trapezoid rule over one period: period / count each.
   * A single node is a fixed parameter, not a quadrature, and gets weight 1.
   */
  periodicWeights(count: number, period: number): Float64Array<ArrayBuffer>;
  /** Returns count uniform nodes from lo to hi, or [(lo + hi) / 2] for one node. */
  intervalNodes(count: number, lo: number, hi: number): Float64Array<ArrayBuffer>;
  /**
   * Returns the weights h·(½, 1, …, 1, ½), h = (hi − lo) / (count − 1), of the ordinary
   * trapezoid rule. A single node is a fixed parameter, not a quadrature, and gets weight 1.
   */
  intervalWeights(count: number, lo: number, hi: number): Float64Array<ArrayBuffer>;
  /** Returns the log density of N(mean, sd²) at x. */
  logNormal(x: number, mean: number, sd: number): number;
  /** Returns the log density of U[lo, hi] at x: −ln(hi − lo) inside, −Infinity outside. */
  logUniform(x: number, lo: number, hi: number): number;
  /** Returns the unnormalised Laplace log prior −λ‖θ‖₁ of a template θ of any shape. */
  laplaceLogPrior(theta: ArrayLike<number>, lambda: number): number;
  /**
   * Returns the subgradient −λ·sign(θ) of laplaceLogPrior, with sign(0) = 0, one entry per
   * entry of θ. A NaN entry gives NaN.
   */
  laplaceLogPriorGradient(theta: ArrayLike<number>, lambda: number): Float64Array<ArrayBuffer>;
  /**
   * Returns the rotation window half-width ε = 2π (20/360 + 0.75^epoch) radians after
   * `epoch` ≥ 1 completed epochs; ε ≥ π means the full circle.
   */
  rotationWindowHalfWidth(epoch: number): number;
  /**
   * Sums γ [images, classes, poses] over classes and over the shift and scale nodes of
   * each rotation node; returns [images, rotations].
   */
  marginaliseRotations(gamma: ArrayLike<number>, images: number, classes: number, rotations: number): Float64Array<ArrayBuffer>;
  /** Returns each image's most probable rotation node, in [0, 2π); both inputs are [images, rotations]. */
  windowCentres(marginal: ArrayLike<number>, nodes: ArrayLike<number>, rotations: number): Float64Array<ArrayBuffer>;
  /** Returns |(e₁ − e₀)/e₀| + |(e₂ − e₀)/e₀| ≤ tolerance for epoch objectives e₂, e₁, e₀ (newest last). */
  hasConverged(beforePrevious: number, previous: number, current: number, tolerance: number): boolean;
}

/**
 * Maximum length of a Float64Array that the AssemblyScript runtime allocates: a block payload
 * of at most 2³⁰ − 4 bytes, less the 16-byte object header.
 */
export const MAX_ARRAY_LENGTH = Math.floor(((1 << 30) - 4 - 16) / 8);

/** Returns the default standard deviation of the shift prior, 5 % of the box size, pixels. */
export function defaultShiftSd(boxSize: number): number {
  if (!(Number.isFinite(boxSize) && boxSize > 0)) {
    throw new RangeError(
      `boxSize must be a positive number of pixels, got ${formatValue(boxSize)}.`,
    );
  }
  return 0.05 * boxSize;
}

let numericsPromise: Promise<Numerics> | undefined;

/**
 * Compiles and instantiates the numerics module on the first call and returns the same
 * instance afterwards. A failed load is not cached, so a later call tries again.
 */
export function loadNumerics(): Promise<Numerics> {
  numericsPromise ??= createNumerics().catch((error: unknown) => {
    numericsPromise = undefined;
    throw error;
  });
  return numericsPromise;
}

// Loading uses only WebAssembly.compile, atob and typed arrays; it has run under Node and in
// a browser module worker (headless Chromium 156).
async function createNumerics(): Promise<Numerics> {
  const module = await WebAssembly.compile(decodeBase64(numericsWasmBase64));
  const raw = await instantiate(module, { env: {} });
  // The raw bindings copy each returned array out of the wasm memory with slice(), so the
  // copy owns a fresh ArrayBuffer (never a SharedArrayBuffer) and can go to GPU uploads.
  return bindNumerics(raw as ArrayBufferBacked<NumericsRawExports>);
}

/** The raw exports, with every Float64Array return type narrowed to an ArrayBuffer-backed one. */
type ArrayBufferBacked<T> = {
  [K in keyof T]: T[K] extends (...args: infer A) => Float64Array
    ? (...args: A) => Float64Array<ArrayBuffer>
    : T[K];
};

function decodeBase64(text: string): Uint8Array<ArrayBuffer> {
  const binary = atob(text);
  const bytes = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) {
    bytes[i] = binary.charCodeAt(i);
  }
  return bytes;
}

function bindNumerics(raw: ArrayBufferBacked<NumericsRawExports>): Numerics {
  const rotationOffsets = (spec: RotationSpec, name: string): Float64Array<ArrayBuffer> => {
    validateRotation(spec, name);
    return raw.rotationOffsets(spec.count, rotationHalfWidth(spec));
  };
  const rotationLogWeights = (spec: RotationSpec, name: string): Float64Array<ArrayBuffer> => {
    validateRotation(spec, name);
    return raw.rotationLogWeights(spec.count, rotationHalfWidth(spec));
  };
  const axisNodes = (spec: AxisSpec, name: string): Float64Array<ArrayBuffer> => {
    validateAxis(spec, name);
    return raw.intervalNodes(spec.count, spec.min, spec.max);
  };
  const shiftLogWeights = (
    spec: AxisSpec,
    shiftSd: number,
    name: string,
  ): Float64Array<ArrayBuffer> => {
    validateAxis(spec, name);
    validatePositive(shiftSd, 'shiftSd', 'pixels');
    return raw.normalAxisLogWeights(spec.count, spec.min, spec.max, 0, shiftSd);
  };
  const scaleLogWeights = (
    spec: AxisSpec,
    scaleHalfRange: number,
    name: string,
  ): Float64Array<ArrayBuffer> => {
    validateAxis(spec, name);
    validateScaleHalfRange(scaleHalfRange);
    // Nodes within a few ulps outside the support count as inside, because 1 − 0.18 and
    // 0.82 differ in float64; the support then widens to them, changing the density by ~1e-16.
    const slack = 4 * Number.EPSILON;
    const priorLo = Math.min(1 - scaleHalfRange, Math.max(spec.min, 1 - scaleHalfRange - slack));
    const priorHi = Math.max(1 + scaleHalfRange, Math.min(spec.max, 1 + scaleHalfRange + slack));
    const nodes = raw.intervalNodes(spec.count, spec.min, spec.max);
    for (const node of nodes) {
      if (!(node >= priorLo && node <= priorHi)) {
        throw new RangeError(
          `${name} node ${node} (${name}.min = ${spec.min}, ${name}.max = ${spec.max}, ` +
            `${name}.count = ${spec.count}) is outside the support [${1 - scaleHalfRange}, ${1 + scaleHalfRange}] ` +
            `of the scale prior, set by scaleHalfRange = ${scaleHalfRange}. ` +
            `Narrow ${name}.min and ${name}.max or widen scaleHalfRange.`,
        );
      }
    }
    return raw.uniformAxisLogWeights(spec.count, spec.min, spec.max, priorLo, priorHi);
  };
  const poseGrid = (spec: PoseGridSpec): PoseGrid => {
    validateGridSize(spec);
    const logRotation = rotationLogWeights(spec.rotation, 'rotation');
    const logShiftX = shiftLogWeights(spec.shiftX, spec.shiftSd, 'shiftX');
    const logShiftY = shiftLogWeights(spec.shiftY, spec.shiftSd, 'shiftY');
    const logScale = scaleLogWeights(spec.scale, spec.scaleHalfRange, 'scale');
    return {
      rotationOffsets: raw.rotationOffsets(spec.rotation.count, rotationHalfWidth(spec.rotation)),
      shiftX: raw.intervalNodes(spec.shiftX.count, spec.shiftX.min, spec.shiftX.max),
      shiftY: raw.intervalNodes(spec.shiftY.count, spec.shiftY.min, spec.shiftY.max),
      scale: raw.intervalNodes(spec.scale.count, spec.scale.min, spec.scale.max),
      logWeights: finiteLogWeights(raw.outerSumLogWeights(logRotation, logShiftX, logShiftY, logScale), spec),
    };
  };

  return {
    rotationOffsets: (spec) => rotationOffsets(spec, 'rotation'),
    rotationLogWeights: (spec) => rotationLogWeights(spec, 'rotation'),
    axisNodes: (spec) => axisNodes(spec, 'axis'),
    shiftLogWeights: (spec, shiftSd) => shiftLogWeights(spec, shiftSd, 'axis'),
    scaleLogWeights: (spec, scaleHalfRange) => scaleLogWeights(spec, scaleHalfRange, 'axis'),
    gridLogWeights: (spec) => poseGrid(spec).logWeights,
    poseGrid,
    periodicNodes(count, start, period) {
      validateCount(count, 'count');
      validateFinite(start, 'start');
      validatePositive(period, 'period', 'the unit of the nodes');
      return raw.periodicNodes(count, start, period);
    },
    periodicWeights(count, period) {
      validateCount(count, 'count');
      validatePositive(period, 'period', 'the unit of the nodes');
      return raw.periodicWeights(count, period);
    },
    intervalNodes(count, lo, hi) {
      validateCount(count, 'count');
      validateRange(lo, hi, 'lo', 'hi');
      return raw.intervalNodes(count, lo, hi);
    },
    intervalWeights(count, lo, hi) {
      validateCount(count, 'count');
      validateRange(lo, hi, 'lo', 'hi');
      return raw.intervalWeights(count, lo, hi);
    },
    logNormal(x, mean, sd) {
      validatePositive(sd, 'sd', 'the unit of x');
      return raw.logNormal(x, mean, sd);
    },
    logUniform(x, lo, hi) {
      validateRange(lo, hi, 'lo', 'hi');
      if (!(hi > lo)) {
        throw new RangeError(
          `hi must exceed lo for a uniform density, got lo = ${lo}, hi = ${hi}.`,
        );
      }
      return raw.logUniform(x, lo, hi);
    },
    laplaceLogPrior(theta, lambda) {
      validateLambda(lambda);
      return raw.laplaceLogPrior(toFloat64Array(theta), lambda);
    },
    laplaceLogPriorGradient(theta, lambda) {
      validateLambda(lambda);
      return raw.laplaceLogPriorGradient(toFloat64Array(theta), lambda);
    },
    rotationWindowHalfWidth(epoch) {
      validateCount(epoch, 'epoch');
      return raw.rotationWindowHalfWidth(epoch);
    },
    marginaliseRotations(gamma, images, classes, rotations) {
      validateCount(images, 'images');
      validateCount(classes, 'classes');
      validateCount(rotations, 'rotations');
      if (gamma.length === 0 || gamma.length % (images * classes * rotations) !== 0) {
        throw new RangeError(
          `gamma has ${gamma.length} entries, not a positive multiple of images × classes × ` +
            `rotations = ${images} × ${classes} × ${rotations}.`,
        );
      }
      return raw.marginaliseRotations(toFloat64Array(gamma, 'gamma'), images, classes, rotations);
    },
    windowCentres(marginal, nodes, rotations) {
      validateCount(rotations, 'rotations');
      if (marginal.length !== nodes.length || marginal.length % rotations !== 0) {
        throw new RangeError(
          `marginal (${marginal.length} entries) and nodes (${nodes.length}) must both be ` +
            `[images, rotations] with rotations = ${rotations}.`,
        );
      }
      return raw.windowCentres(toFloat64Array(marginal, 'marginal'), toFloat64Array(nodes, 'nodes'), rotations);
    },
    hasConverged(beforePrevious, previous, current, tolerance) {
      validateFinite(beforePrevious, 'beforePrevious');
      validateFinite(previous, 'previous');
      validateFinite(current, 'current');
      if (!(tolerance >= 0)) {
        throw new RangeError(`tolerance must be ≥ 0, got ${formatValue(tolerance)}.`);
      }
      return raw.hasConverged(beforePrevious, previous, current, tolerance);
    },
  };
}

/** Returns the grid's log(w P), or throws when a node's weight under- or overflows float64. */
function finiteLogWeights(logWeights: Float64Array<ArrayBuffer>, spec: PoseGridSpec): Float64Array<ArrayBuffer> {
  const bad = logWeights.findIndex((value) => !Number.isFinite(value));
  if (bad >= 0) {
    throw new RangeError(
      `log(w P) of pose node ${bad} is ${logWeights[bad]}: a shift node lies too far out for shiftSd = ` +
        `${spec.shiftSd} (shiftX ${spec.shiftX.min} … ${spec.shiftX.max}, shiftY ${spec.shiftY.min} … ` +
        `${spec.shiftY.max}); narrow the shift range or widen shiftSd`,
    );
  }
  return logWeights;
}

// halfWidth ≥ π (or absent) selects the full circle inside the wasm functions.
function rotationHalfWidth(spec: RotationSpec): number {
  return spec.halfWidth ?? Infinity;
}

function toFloat64Array(values: ArrayLike<number>, field = 'theta'): Float64Array {
  if (values.length > MAX_ARRAY_LENGTH) {
    throw new RangeError(
      `${field} has ${values.length} entries, more than the ${MAX_ARRAY_LENGTH} that fit in ` +
        'one WebAssembly array. Split the template into parts and add their priors.',
    );
  }
  return values instanceof Float64Array ? values : Float64Array.from(values);
}

function formatValue(value: unknown): string {
  return typeof value === 'string' ? JSON.stringify(value) : String(value);
}

function validateCount(value: unknown, field: string): void {
  if (!(Number.isInteger(value) && (value as number) >= 1)) {
    throw new RangeError(
      `${field} must be an integer ≥ 1 (1 fixes the parameter), got ${formatValue(value)}.`,
    );
  }
  if ((value as number) > MAX_ARRAY_LENGTH) {
    throw new RangeError(
      `${field} must be at most ${MAX_ARRAY_LENGTH}, the largest WebAssembly array, ` +
        `got ${formatValue(value)}.`,
    );
  }
}

function validateFinite(value: unknown, field: string): void {
  if (!Number.isFinite(value)) {
    throw new RangeError(`${field} must be a finite number, got ${formatValue(value)}.`);
  }
}

function validatePositive(value: unknown, field: string, unit: string): void {
  if (!(Number.isFinite(value) && (value as number) > 0)) {
    throw new RangeError(
      `${field} must be a positive finite number (${unit}), got ${formatValue(value)}.`,
    );
  }
}

function validateRange(lo: number, hi: number, loField: string, hiField: string): void {
  validateFinite(lo, loField);
  validateFinite(hi, hiField);
  if (hi < lo) {
    throw new RangeError(
      `${hiField} must be ≥ ${loField}, got ${loField} = ${lo}, ${hiField} = ${hi}. ` +
        'Swap them if they are reversed.',
    );
  }
}

function validateAxis(spec: AxisSpec, name: string): void {
  validateCount(spec.count, `${name}.count`);
  validateRange(spec.min, spec.max, `${name}.min`, `${name}.max`);
  if (spec.count > 1 && spec.max === spec.min) {
    throw new RangeError(
      `${name}.max must exceed ${name}.min when ${name}.count > 1, got ${name}.min = ` +
        `${name}.max = ${spec.min} with ${name}.count = ${spec.count}. ` +
        `Set ${name}.count to 1 to fix the parameter.`,
    );
  }
}

function validateRotation(spec: RotationSpec, name: string): void {
  validateCount(spec.count, `${name}.count`);
  const halfWidth = spec.halfWidth;
  if (halfWidth === undefined) return;
  if (!(typeof halfWidth === 'number' && halfWidth >= 0)) {
    throw new RangeError(
      `${name}.halfWidth must be a number ≥ 0 (radians), or absent for the full circle, ` +
        `got ${formatValue(halfWidth)}.`,
    );
  }
  if (spec.count > 1 && halfWidth === 0) {
    throw new RangeError(
      `${name}.halfWidth must be > 0 when ${name}.count > 1, got ${name}.halfWidth = 0 with ` +
        `${name}.count = ${spec.count}. Set ${name}.count to 1 to fix the rotation.`,
    );
  }
}

function validateScaleHalfRange(value: unknown): void {
  if (!(typeof value === 'number' && value >= 0 && value < 1)) {
    throw new RangeError(
      `scaleHalfRange must be a number in [0, 1), so that every scale in the prior is ` +
        `positive, got ${formatValue(value)}.`,
    );
  }
}

function validateLambda(value: unknown): void {
  if (!(Number.isFinite(value) && (value as number) >= 0)) {
    throw new RangeError(
      `lambda must be a finite number ≥ 0 (the Laplace prior's rate), got ${formatValue(value)}.`,
    );
  }
}

function validateGridSize(spec: PoseGridSpec): void {
  const counts = [spec.rotation.count, spec.shiftX.count, spec.shiftY.count, spec.scale.count];
  const length = counts.reduce((product, count) => product * count, 1);
  if (length > MAX_ARRAY_LENGTH) {
    throw new RangeError(
      `The pose grid has ${counts.join(' × ')} = ${length} nodes, more than the ` +
        `${MAX_ARRAY_LENGTH} that fit in one WebAssembly array. Reduce rotation.count, ` +
        'shiftX.count, shiftY.count or scale.count.',
    );
  }
}
