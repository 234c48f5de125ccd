/**
 * Metrics that compare a reconstructed template θ with a reference A: the true template,
 * or the other half of a split-half run. Images are row-major [N, N], x the column and
 * y the row, with the package's pose conventions (see `resample` in gpu/host.ts).
 *
 * - `pearson`: correlation over all pixels.
 * - `alignTemplates`: the rotation, shift and scale that best lay one template on the other.
 * - `fourierRingCorrelation`: FRC per ring of the 2-D DFT, and where it crosses a threshold.
 * - `scoreTemplate`: alignment followed by the FRC of the aligned pair.
 */
import { resample, type HostPose } from '../gpu/host.js';

const DEGREE = Math.PI / 180;
const TWO_PI = 2 * Math.PI;

/** Default coarse rotation step of the alignment search, radians. */
export const DEFAULT_ANGLE_STEP = 2 * DEGREE;
/** Default ε of the scale search range [1 − ε, 1 + ε]. */
export const DEFAULT_SCALE_RANGE = 0.1;
/** Default number of scale nodes in the coarse alignment grid. */
export const DEFAULT_SCALE_NODES = 5;

/** The coarse alignment search runs on a copy downsampled by powers of 2 to at most this box. */
const COARSE_MAX_SIZE = 32;
/**
 * Number of coarse grid maxima refined on the coarse level, and number of those refined
 * again on the full images. Both sets are kept at least CANDIDATE_SEPARATION apart in ψ.
 */
const COARSE_CANDIDATES = 8;
const FINE_CANDIDATES = 2;
const CANDIDATE_SEPARATION = 10 * DEGREE;
/** Bound on objective evaluations in one local refinement, so that it always stops. */
const MAX_EVALUATIONS = 4000;
/** Final step sizes of the refinement in ψ (radians), shift (pixels) and scale. */
const FINAL_STEPS = [0.005 * DEGREE, 0.002, 0.002, 0.0001];

/**
 * A ring whose power is at most this fraction of its image's total power counts as empty.
 * Rounding in the float64 DFT leaves about 1e−30 of the total in rings that should be
 * empty (measured on single cosines at 15² to 128²).
 */
const EMPTY_RING_POWER = 1e-20;

// ---------------------------------------------------------------------------
// Input checks

function checkSize(caller: string, size: number): void {
  if (!Number.isInteger(size) || size < 1) {
    throw new RangeError(`${caller}: size must be a positive integer, got ${size}`);
  }
}

function checkFinite(caller: string, name: string, values: ArrayLike<number>): void {
  for (let i = 0; i < values.length; i++) {
    if (!Number.isFinite(values[i])) {
      throw new RangeError(`${caller}: ${name}[${i}] is ${values[i]}; expected a finite number`);
    }
  }
}

/** Throws a RangeError naming `name` unless `image` has size² finite values. */
function checkImage(caller: string, name: string, image: ArrayLike<number>, size: number): void {
  if (image.length !== size * size) {
    throw new RangeError(
      `${caller}: ${name} has length ${image.length}, but size ${size} needs size² = ${size * size}`,
    );
  }
  checkFinite(caller, name, image);
}

// ---------------------------------------------------------------------------
// Pearson correlation

/**
 * Returns the Pearson correlation of `a` and `b` over all elements, in [−1, 1].
 * Returns 0 when either input is constant, because a constant has no variance to
 * correlate, so the result is never NaN.
 * @throws RangeError when the inputs are empty, differ in length or hold a non-finite value
 */
export function pearson(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length === 0) throw new RangeError('pearson: a is empty; expected at least one value');
  if (b.length !== a.length) {
    throw new RangeError(
      `pearson: b has length ${b.length}, but a has length ${a.length}; expected equal lengths`,
    );
  }
  checkFinite('pearson', 'a', a);
  checkFinite('pearson', 'b', b);
  return correlation(a, b);
}

/** Returns whether every value equals the first, as in an image with no contrast. */
export function isConstant(values: ArrayLike<number>): boolean {
  const first = values[0];
  for (let i = 1; i < values.length; i++) if (values[i] !== first) return false;
  return true;
}

/** Pearson correlation without input checks: two passes, float64 sums. */
function correlation(a: ArrayLike<number>, b: ArrayLike<number>): number {
  // A constant's deviations from its rounded mean are rounding noise, not variance.
  if (isConstant(a) || isConstant(b)) return 0;
  const n = a.length;
  let meanA = 0;
  let meanB = 0;
  for (let i = 0; i < n; i++) {
    meanA += a[i];
    meanB += b[i];
  }
  meanA /= n;
  meanB /= n;
  let cross = 0;
  let normA = 0;
  let normB = 0;
  for (let i = 0; i < n; i++) {
    const da = a[i] - meanA;
    const db = b[i] - meanB;
    cross += da * db;
    normA += da * da;
    normB += db * db;
  }
  return Math.max(-1, Math.min(1, cross / Math.sqrt(normA * normB)));
}

// ---------------------------------------------------------------------------
// Alignment

/** A pose in the package's convention: ψ in radians, shifts (a, b) in pixels along x and y. */
export interface AlignmentPose {
  /** Rotation in [0, 2π); positive turns the displayed image counter-clockwise. */
  psi: number;
  a: number;
  b: number;
  scale: number;
}

export interface AlignmentOptions {
  /** Largest shift searched along x and along y, pixels; default ⌈0.15 N⌉. */
  maxShift?: number;
  /** ε of the scale range [1 − ε, 1 + ε], in [0, 1); default 0.1. */
  scaleRange?: number;
  /** Whether to search the scale at all; with false the scale is fixed to 1. Default true. */
  searchScale?: boolean;
  /** Rotation step of the coarse grid over [0, 2π), radians in (0, π/4]; default 2°. */
  angleStep?: number;
  /** Scale nodes of the coarse grid, spread evenly over the scale range; default 5. */
  scaleNodes?: number;
}

export interface Alignment {
  /** The pose φ that maximises pearson(reference, R_φ moving). */
  pose: AlignmentPose;
  /** R_φ moving [N, N], resampled by `resample`. */
  aligned: Float64Array;
  /** pearson(reference, aligned). */
  r: number;
}

interface SearchSettings {
  maxShift: number;
  scaleRange: number;
  angleStep: number;
  scaleNodes: number[];
  /** Spacing of the scale nodes, or the whole range with one node; 0 when scale is fixed. */
  scaleSpacing: number;
}

function resolveSettings(size: number, options: AlignmentOptions): SearchSettings {
  const maxShift = options.maxShift ?? Math.ceil(0.15 * size);
  if (!Number.isFinite(maxShift) || maxShift < 0 || maxShift > size) {
    throw new RangeError(
      `alignTemplates: maxShift must be in [0, size = ${size}] pixels, got ${maxShift}`,
    );
  }
  const angleStep = options.angleStep ?? DEFAULT_ANGLE_STEP;
  if (!Number.isFinite(angleStep) || angleStep <= 0 || angleStep > Math.PI / 4) {
    throw new RangeError(
      `alignTemplates: angleStep must be in (0, π/4] radians, got ${angleStep}`,
    );
  }
  const searchScale = options.searchScale ?? true;
  const scaleRange = searchScale ? (options.scaleRange ?? DEFAULT_SCALE_RANGE) : 0;
  if (!Number.isFinite(scaleRange) || scaleRange < 0 || scaleRange >= 1) {
    throw new RangeError(`alignTemplates: scaleRange must be in [0, 1), got ${scaleRange}`);
  }
  const nodes = options.scaleNodes ?? DEFAULT_SCALE_NODES;
  if (!Number.isInteger(nodes) || nodes < 1) {
    throw new RangeError(`alignTemplates: scaleNodes must be a positive integer, got ${nodes}`);
  }
  const count = scaleRange === 0 ? 1 : nodes;
  const scaleNodes = Array.from({ length: count }, (_, i) =>
    count === 1 ? 1 : 1 - scaleRange + (2 * scaleRange * i) / (count - 1),
  );
  const scaleSpacing = count === 1 ? scaleRange : (2 * scaleRange) / (count - 1);
  return { maxShift, scaleRange, angleStep, scaleNodes, scaleSpacing };
}

/** Point [ψ, a, b, scale] of the search; shifts in full-resolution pixels. */
type PosePoint = number[];

/**
 * One level of the search: both images on a box of `size` whose pixel j lies at
 * full-resolution position o + factor · (j − ⌊size/2⌋), so poses carry over unchanged
 * except that shifts divide by `factor`.
 */
interface Level {
  size: number;
  factor: number;
  reference: ArrayLike<number>;
  moving: ArrayLike<number>;
}

function hostPose(point: PosePoint, factor: number): HostPose {
  const [psi, a, b, scale] = point;
  return { cos: Math.cos(psi), sin: Math.sin(psi), a: a / factor, b: b / factor, scale };
}

/** Smallest power of 2 that brings the box down to at most COARSE_MAX_SIZE. */
function coarseFactor(size: number): number {
  let factor = 1;
  while (size / factor > COARSE_MAX_SIZE) factor *= 2;
  return factor;
}

/**
 * Box of the coarse grid: the most coarse pixels whose full-resolution positions stay
 * inside [0, N − 1] with the coarse centre ⌊m/2⌋ on the full centre ⌊N/2⌋.
 */
function coarseSize(size: number, factor: number): number {
  const centre = Math.floor(size / 2);
  const below = Math.floor(centre / factor);
  const above = Math.floor((size - 1 - centre) / factor);
  return above + Math.min(below, above + 1) + 1;
}

/**
 * Downsamples [N, N] by `factor` onto the coarse grid of `coarseSize`, after an
 * anti-aliasing filter of width factor + 1 (weights 1/factor, halved at both ends).
 * Samples outside the box read 0. Returns [m, m].
 */
function downsample(image: ArrayLike<number>, size: number, factor: number): Float64Array {
  const m = coarseSize(size, factor);
  const centre = Math.floor(size / 2);
  const coarseCentre = Math.floor(m / 2);
  const half = factor / 2;
  const weight = (offset: number) => (Math.abs(offset) === half ? 0.5 : 1) / factor;
  const rows = new Float64Array(size * m);
  for (let y = 0; y < size; y++) {
    for (let j = 0; j < m; j++) {
      const x0 = centre + factor * (j - coarseCentre);
      let sum = 0;
      for (let offset = -half; offset <= half; offset++) {
        const x = x0 + offset;
        if (x >= 0 && x < size) sum += weight(offset) * image[y * size + x];
      }
      rows[y * m + j] = sum;
    }
  }
  const out = new Float64Array(m * m);
  for (let i = 0; i < m; i++) {
    const y0 = centre + factor * (i - coarseCentre);
    for (let j = 0; j < m; j++) {
      let sum = 0;
      for (let offset = -half; offset <= half; offset++) {
        const y = y0 + offset;
        if (y >= 0 && y < size) sum += weight(offset) * rows[y * m + j];
      }
      out[i * m + j] = sum;
    }
  }
  return out;
}

/** Embeds [m, m] in the middle of a zero [m + 2·pad, m + 2·pad], so the centre pixel stays the centre. */
function padImage(image: ArrayLike<number>, m: number, pad: number): Float64Array {
  const big = m + 2 * pad;
  const out = new Float64Array(big * big);
  for (let y = 0; y < m; y++) {
    for (let x = 0; x < m; x++) out[(y + pad) * big + x + pad] = image[y * m + x];
  }
  return out;
}

/** Writes summed-area tables [(M + 1)²] of `image` [M, M] and of its square. */
function summedAreaTables(
  image: Float64Array,
  size: number,
  sums: Float64Array,
  squares: Float64Array,
): void {
  const stride = size + 1;
  for (let y = 0; y < size; y++) {
    let row = 0;
    let rowSquares = 0;
    for (let x = 0; x < size; x++) {
      const value = image[y * size + x];
      row += value;
      rowSquares += value * value;
      sums[(y + 1) * stride + x + 1] = sums[y * stride + x + 1] + row;
      squares[(y + 1) * stride + x + 1] = squares[y * stride + x + 1] + rowSquares;
    }
  }
}

/** Sum over the [m, m] window with top-left corner (x0, y0) from a summed-area table. */
function windowSum(table: Float64Array, stride: number, x0: number, y0: number, m: number): number {
  const top = y0 * stride;
  const bottom = (y0 + m) * stride;
  return table[bottom + x0 + m] - table[top + x0 + m] - table[bottom + x0] + table[top + x0];
}

interface ShiftScore {
  dx: number;
  dy: number;
  score: number;
}

/**
 * Returns the integer shift d in ±reach (coarse pixels) that maximises the correlation
 * of the reference with R_(ψ, d, c) moving. `extended` [M, M], M = m + 2·reach, is
 * R_(ψ, 0, c) of the padded moving image, and its window at offset reach − d is exactly
 * R_(ψ, d, c) moving on the m box, because a pose applies its shift last.
 */
function bestShift(
  centred: Float64Array,
  referenceNorm: number,
  extended: Float64Array,
  m: number,
  reach: number,
  sums: Float64Array,
  squares: Float64Array,
): ShiftScore {
  const big = m + 2 * reach;
  const pixels = m * m;
  let best: ShiftScore = { dx: 0, dy: 0, score: -Infinity };
  for (let dy = -reach; dy <= reach; dy++) {
    const y0 = reach - dy;
    for (let dx = -reach; dx <= reach; dx++) {
      const x0 = reach - dx;
      let cross = 0;
      for (let y = 0; y < m; y++) {
        const source = (y0 + y) * big + x0;
        const target = y * m;
        for (let x = 0; x < m; x++) cross += centred[target + x] * extended[source + x];
      }
      const sum = windowSum(sums, big + 1, x0, y0, m);
      const variance = windowSum(squares, big + 1, x0, y0, m) - (sum * sum) / pixels;
      const score = variance > 0 ? cross / Math.sqrt(referenceNorm * variance) : 0;
      if (score > best.score) best = { dx, dy, score };
    }
  }
  return best;
}

interface Candidate {
  point: PosePoint;
  score: number;
}

/** Returns `image` less its mean, and the sum of squares of the result. */
function subtractMean(image: ArrayLike<number>): { centred: Float64Array; norm: number } {
  let mean = 0;
  for (let i = 0; i < image.length; i++) mean += image[i];
  mean /= image.length;
  const centred = new Float64Array(image.length);
  let norm = 0;
  for (let i = 0; i < image.length; i++) {
    centred[i] = image[i] - mean;
    norm += centred[i] * centred[i];
  }
  return { centred, norm };
}

/** Scores every (ψ, scale) node of the coarse grid at its best integer shift. */
function scoreCoarseGrid(level: Level, settings: SearchSettings): Candidate[] {
  const { size: m, factor } = level;
  const reach = Math.floor(settings.maxShift / factor);
  const big = m + 2 * reach;
  const padded = padImage(level.moving, m, reach);
  const { centred, norm: referenceNorm } = subtractMean(level.reference);

  const extended = new Float64Array(big * big);
  const sums = new Float64Array((big + 1) * (big + 1));
  const squares = new Float64Array((big + 1) * (big + 1));
  const angles = Math.ceil(TWO_PI / settings.angleStep - 1e-9);

  const candidates: Candidate[] = [];
  for (let p = 0; p < angles; p++) {
    const psi = (TWO_PI * p) / angles;
    for (const scale of settings.scaleNodes) {
      resample(big, padded, { cos: Math.cos(psi), sin: Math.sin(psi), a: 0, b: 0, scale }, extended);
      summedAreaTables(extended, big, sums, squares);
      const best = bestShift(centred, referenceNorm, extended, m, reach, sums, squares);
      const a = Math.max(-settings.maxShift, Math.min(settings.maxShift, best.dx * factor));
      const b = Math.max(-settings.maxShift, Math.min(settings.maxShift, best.dy * factor));
      candidates.push({ point: [psi, a, b, scale], score: best.score });
    }
  }
  return candidates;
}

function angularDistance(first: number, second: number): number {
  const difference = Math.abs(first - second) % TWO_PI;
  return Math.min(difference, TWO_PI - difference);
}

/** Returns the best `count` candidates whose rotations lie at least CANDIDATE_SEPARATION apart. */
function distinctBest(candidates: Candidate[], count: number): Candidate[] {
  const sorted = [...candidates].sort((x, y) => y.score - x.score);
  const chosen: Candidate[] = [];
  for (const candidate of sorted) {
    if (chosen.length === count) break;
    const psi = candidate.point[0];
    const distinct = chosen.every((other) => angularDistance(other.point[0], psi) >= CANDIDATE_SEPARATION);
    if (distinct) chosen.push(candidate);
  }
  return chosen;
}

/**
 * Maximises `objective` by Hooke–Jeeves pattern search: exploratory moves of ± one step
 * along each coordinate, pattern moves along the last improvement, and all steps halved
 * when no move improves. Stops when every step is at most its `minSteps` entry or after
 * MAX_EVALUATIONS evaluations. A step of 0 keeps that coordinate fixed.
 */
function patternSearch(
  objective: (point: PosePoint) => number,
  start: PosePoint,
  initialSteps: number[],
  minSteps: number[],
  clampPoint: (point: PosePoint) => PosePoint,
): Candidate {
  let evaluations = 0;
  const evaluate = (point: PosePoint) => {
    evaluations++;
    return objective(point);
  };
  const steps = [...initialSteps];
  const explore = (from: Candidate): Candidate => {
    let current = from;
    for (let i = 0; i < steps.length; i++) {
      if (steps[i] === 0) continue;
      for (const sign of [1, -1]) {
        const trial = [...current.point];
        trial[i] += sign * steps[i];
        const point = clampPoint(trial);
        const score = evaluate(point);
        if (score > current.score) {
          current = { point, score };
          break;
        }
      }
    }
    return current;
  };
  const startPoint = clampPoint([...start]);
  let base: Candidate = { point: startPoint, score: evaluate(startPoint) };
  while (evaluations < MAX_EVALUATIONS && steps.some((step, i) => step > minSteps[i])) {
    let moved = explore(base);
    if (moved.score <= base.score) {
      for (let i = 0; i < steps.length; i++) steps[i] /= 2;
      continue;
    }
    while (moved.score > base.score && evaluations < MAX_EVALUATIONS) {
      const patternPoint = clampPoint(moved.point.map((value, i) => 2 * value - base.point[i]));
      base = moved;
      moved = explore({ point: patternPoint, score: evaluate(patternPoint) });
    }
  }
  return base;
}

/** Offset (gx − o, gy − o) of a template's pivot from the rotation centre o, pixels. */
type Pivot = [number, number];

/**
 * Returns the centroid of |∇θ|² (central differences, zero outside the box) relative to
 * the rotation centre. Rotating and scaling about this point barely moves the template's
 * edges on average, which decouples ψ and scale from the shift in the local refinement.
 */
function gradientCentroid(image: ArrayLike<number>, size: number): Pivot {
  const at = (x: number, y: number) => {
    const inside = x >= 0 && x < size && y >= 0 && y < size;
    return inside ? image[y * size + x] : 0;
  };
  let total = 0;
  let sumX = 0;
  let sumY = 0;
  for (let y = 0; y < size; y++) {
    for (let x = 0; x < size; x++) {
      const gx = at(x + 1, y) - at(x - 1, y);
      const gy = at(x, y + 1) - at(x, y - 1);
      const weight = gx * gx + gy * gy;
      total += weight;
      sumX += weight * x;
      sumY += weight * y;
    }
  }
  const centre = Math.floor(size / 2);
  return total > 0 ? [sumX / total - centre, sumY / total - centre] : [0, 0];
}

/**
 * Returns the pose with its shift replaced by τ = d + c R(ψ)(g − o) − (g − o), the
 * refinement's shift coordinate: how far the pose moves the pivot g. A pose maps
 * template point p to o + d + c R(ψ)(p − o), with R(ψ) taking (x, y) to
 * (x cos ψ + y sin ψ, −x sin ψ + y cos ψ).
 */
function pivotShiftOf(pose: PosePoint, pivot: Pivot): PosePoint {
  const [psi, a, b, scale] = pose;
  const cos = Math.cos(psi);
  const sin = Math.sin(psi);
  const [gx, gy] = pivot;
  const tx = a + scale * (cos * gx + sin * gy) - gx;
  const ty = b + scale * (-sin * gx + cos * gy) - gy;
  return [psi, tx, ty, scale];
}

/** Inverse of `pivotShiftOf`: the pose [ψ, a, b, scale] of a refinement point. */
function poseOfPivotShift(point: PosePoint, pivot: Pivot): PosePoint {
  const [psi, tx, ty, scale] = point;
  const cos = Math.cos(psi);
  const sin = Math.sin(psi);
  const [gx, gy] = pivot;
  const a = tx - scale * (cos * gx + sin * gy) + gx;
  const b = ty - scale * (-sin * gx + cos * gy) + gy;
  return [psi, a, b, scale];
}

/**
 * Refines the pose `start` [ψ, a, b, scale] on one level by pattern search on
 * pearson(reference, R_φ moving), with the shift measured at the pivot (see
 * `pivotShiftOf`). Shifts and scale are clamped to their search ranges. Returns the
 * refined pose [ψ, a, b, scale] and its r.
 */
function refineOnLevel(
  level: Level,
  settings: SearchSettings,
  pivot: Pivot,
  start: PosePoint,
  initialSteps: number[],
  minSteps: number[],
): Candidate {
  const buffer = new Float64Array(level.size * level.size);
  const objective = (point: PosePoint) => {
    resample(level.size, level.moving, hostPose(poseOfPivotShift(point, pivot), level.factor), buffer);
    return correlation(level.reference, buffer);
  };
  const clampPoint = (point: PosePoint) => {
    const pose = clampPose(poseOfPivotShift(point, pivot), settings);
    return pivotShiftOf(pose, pivot);
  };
  const best = patternSearch(objective, pivotShiftOf(start, pivot), initialSteps, minSteps, clampPoint);
  // Clamped again because the round trip through τ can leave a shift an ulp outside its range.
  return { point: clampPose(poseOfPivotShift(best.point, pivot), settings), score: best.score };
}

/** Clamps the shifts of a pose [ψ, a, b, scale] to ±maxShift and its scale to [1 − ε, 1 + ε]. */
function clampPose(pose: PosePoint, settings: SearchSettings): PosePoint {
  const { maxShift, scaleRange } = settings;
  const clampShift = (shift: number) => Math.max(-maxShift, Math.min(maxShift, shift));
  const scale = Math.max(1 - scaleRange, Math.min(1 + scaleRange, pose[3]));
  return [pose[0], clampShift(pose[1]), clampShift(pose[2]), scale];
}

/**
 * Finds the pose φ that maximises pearson(reference, R_φ moving), for two templates
 * [size, size] in the package's conventions. Mirrors are not searched.
 *
 * The search first scores a coarse grid on copies downsampled by a power of 2 to at most
 * 32². The grid takes every rotation step over [0, 2π), every scale node and every whole
 * coarse-pixel shift within ±maxShift, all shifts at once by a sliding window. The 8 best
 * grid points (at least 10° apart in ψ) are refined on the coarse copies, and the best 2
 * of those on the full images. Each refinement is a pattern search that stops at steps of
 * 0.005°, 0.002 px and 0.0001 in scale, and keeps shifts and scale inside their ranges.
 * NOTE: the maximum is global only among the refined grid points. A smooth template can
 * score within 0.005 of its true pose at many rotations on the coarse copy, so the true
 * basin can be missed: 2 of 300 random poses at 15², none of 1500 at 33² or 900 at 48².
 * @throws RangeError on a size, image length, non-finite pixel or option out of range, or
 *   when either image is constant, because a constant image has no pose
 */
export function alignTemplates(
  reference: ArrayLike<number>,
  moving: ArrayLike<number>,
  size: number,
  options: AlignmentOptions = {},
): Alignment {
  checkSize('alignTemplates', size);
  checkImage('alignTemplates', 'reference', reference, size);
  checkImage('alignTemplates', 'moving', moving, size);
  if (isConstant(reference)) {
    throw new RangeError(
      'alignTemplates: reference is constant, so it has no pose; pass an image with contrast',
    );
  }
  if (isConstant(moving)) {
    throw new RangeError(
      'alignTemplates: moving is constant, so it has no pose; pass an image with contrast',
    );
  }
  const settings = resolveSettings(size, options);

  const full: Level = { size, factor: 1, reference, moving };
  const factor = coarseFactor(size);
  const coarse: Level = factor === 1 ? full : {
    size: coarseSize(size, factor),
    factor,
    reference: downsample(reference, size, factor),
    moving: downsample(moving, size, factor),
  };

  const scaleStep = settings.scaleSpacing / 2;
  const coarseSteps = [settings.angleStep / 2, factor / 2, factor / 2, scaleStep];
  const coarseMinSteps = [settings.angleStep / 16, factor / 16, factor / 16, scaleStep / 8];
  const fineSteps = coarseMinSteps.map((step) => 2 * step);
  const pivot = gradientCentroid(moving, size);
  const gridBest = distinctBest(scoreCoarseGrid(coarse, settings), COARSE_CANDIDATES);
  const coarseRefined = gridBest.map((candidate) =>
    refineOnLevel(coarse, settings, pivot, candidate.point, coarseSteps, coarseMinSteps),
  );
  let final: Candidate | undefined;
  for (const candidate of distinctBest(coarseRefined, FINE_CANDIDATES)) {
    const refined = refineOnLevel(full, settings, pivot, candidate.point, fineSteps, FINAL_STEPS);
    if (!final || refined.score > final.score) final = refined;
  }

  const [rotation, a, b, scale] = final!.point;
  const psi = ((rotation % TWO_PI) + TWO_PI) % TWO_PI;
  const pose: AlignmentPose = { psi, a, b, scale };
  const aligned = new Float64Array(size * size);
  // From the wrapped ψ, so that `aligned` is exactly resample(size, moving, pose).
  resample(size, moving, hostPose([psi, pose.a, pose.b, pose.scale], 1), aligned);
  return { pose, aligned, r: correlation(reference, aligned) };
}

// ---------------------------------------------------------------------------
// Discrete Fourier transform and rings

/** Real and imaginary parts of a 2-D DFT [N, N], row-major, index (v, u) for frequencies (u, v). */
export interface Spectrum {
  re: Float64Array;
  im: Float64Array;
}

/**
 * Transforms `size` lines of `size` complex values, F(k) = Σ_n x(n) e^(−2πi kn/N); line
 * l starts at l · lineStride and steps by elementStride.
 */
function transformLines(
  source: Spectrum,
  target: Spectrum,
  size: number,
  lineStride: number,
  elementStride: number,
  twiddle: Spectrum,
): void {
  for (let line = 0; line < size; line++) {
    const base = line * lineStride;
    for (let k = 0; k < size; k++) {
      let sumRe = 0;
      let sumIm = 0;
      let index = 0;
      for (let n = 0; n < size; n++) {
        const at = base + n * elementStride;
        const cos = twiddle.re[index];
        const sin = twiddle.im[index];
        sumRe += source.re[at] * cos + source.im[at] * sin;
        sumIm += source.im[at] * cos - source.re[at] * sin;
        index += k;
        if (index >= size) index -= size;
      }
      target.re[base + k * elementStride] = sumRe;
      target.im[base + k * elementStride] = sumIm;
    }
  }
}

/**
 * Returns the 2-D DFT F(u, v) = Σ_x Σ_y f(x, y) e^(−2πi (ux + vy)/N) of a real image
 * [size, size], unnormalised, so Σ |F|² = N² Σ f² (Parseval).
 * A plain separable DFT with a twiddle table costs 2N³ complex multiply-adds (4 M at
 * 128²), cheap enough at template sizes that no FFT library is needed, and works for any N.
 */
export function dft2d(image: ArrayLike<number>, size: number): Spectrum {
  checkSize('dft2d', size);
  checkImage('dft2d', 'image', image, size);
  const pixels = size * size;
  const twiddle: Spectrum = { re: new Float64Array(size), im: new Float64Array(size) };
  for (let k = 0; k < size; k++) {
    twiddle.re[k] = Math.cos((TWO_PI * k) / size);
    twiddle.im[k] = Math.sin((TWO_PI * k) / size);
  }
  const input: Spectrum = { re: Float64Array.from(image), im: new Float64Array(pixels) };
  const rows: Spectrum = { re: new Float64Array(pixels), im: new Float64Array(pixels) };
  const out: Spectrum = { re: new Float64Array(pixels), im: new Float64Array(pixels) };
  transformLines(input, rows, size, size, 1, twiddle);
  transformLines(rows, out, size, 1, size, twiddle);
  return out;
}

/**
 * Ring of each DFT coefficient [N, N]: the integer nearest to the radius √(kx² + ky²),
 * where kx, ky ∈ (−N/2, N/2] are the signed frequency indices; −1 outside ring ⌊N/2⌋
 * (the corners of the spectrum).
 */
function ringIndices(size: number): Int32Array {
  const last = Math.floor(size / 2);
  const signed = (index: number) => (index <= size / 2 ? index : index - size);
  const rings = new Int32Array(size * size);
  for (let v = 0; v < size; v++) {
    for (let u = 0; u < size; u++) {
      const ring = Math.round(Math.hypot(signed(u), signed(v)));
      rings[v * size + u] = ring <= last ? ring : -1;
    }
  }
  return rings;
}

/** Spatial frequency of each ring centre k = 0 … ⌊N/2⌋: k/N cycles per pixel. */
function ringFrequencies(size: number): Float64Array {
  return Float64Array.from({ length: Math.floor(size / 2) + 1 }, (_, k) => k / size);
}

/**
 * Returns the power Σ |F|² of the unnormalised DFT over each ring k = 0 … ⌊N/2⌋ of
 * integer radius (see `fourierRingCorrelation`); the corners beyond ring ⌊N/2⌋ are left out.
 */
export function radialPowerSpectrum(image: ArrayLike<number>, size: number): Float64Array {
  const spectrum = dft2d(image, size);
  const rings = ringIndices(size);
  const power = new Float64Array(Math.floor(size / 2) + 1);
  for (let i = 0; i < rings.length; i++) {
    if (rings[i] >= 0) power[rings[i]] += spectrum.re[i] ** 2 + spectrum.im[i] ** 2;
  }
  return power;
}

// ---------------------------------------------------------------------------
// Fourier ring correlation

export interface FourierRingCorrelation {
  /** Ring centres k/N, k = 0 … ⌊N/2⌋, cycles per pixel: up to 0.5 for even N, (N − 1)/2N for odd. */
  frequencies: Float64Array;
  /** FRC per ring, in [−1, 1]; 0 where either image has no power in the ring. */
  frc: Float64Array;
  /** Number of DFT coefficients in each ring. */
  ringSizes: Int32Array;
  /** `frcCrossing` of this curve: cycles per pixel, or null. */
  crossing(threshold: number): number | null;
}

/**
 * Returns the Fourier ring correlation of two images [size, size]:
 * FRC(k) = Re Σ_ring F_a F_b* / √(Σ_ring |F_a|² · Σ_ring |F_b|²) over the rings of
 * integer radius k = 0 … ⌊N/2⌋ (each DFT coefficient goes to the ring nearest its radius).
 * A ring in which either image has at most 1e−20 of that image's total power counts as
 * empty and gets FRC 0, because its coefficients are rounding noise of the DFT.
 * @throws RangeError on a size, image length or non-finite pixel that does not fit
 */
export function fourierRingCorrelation(
  a: ArrayLike<number>,
  b: ArrayLike<number>,
  size: number,
): FourierRingCorrelation {
  checkSize('fourierRingCorrelation', size);
  checkImage('fourierRingCorrelation', 'a', a, size);
  checkImage('fourierRingCorrelation', 'b', b, size);
  const sums = ringSums(dft2d(a, size), dft2d(b, size), size);

  const frc = new Float64Array(sums.cross.length);
  for (let k = 0; k < frc.length; k++) {
    const emptyA = sums.powerA[k] <= EMPTY_RING_POWER * sums.totalA;
    const emptyB = sums.powerB[k] <= EMPTY_RING_POWER * sums.totalB;
    const value = sums.cross[k] / Math.sqrt(sums.powerA[k] * sums.powerB[k]);
    frc[k] = emptyA || emptyB ? 0 : Math.max(-1, Math.min(1, value));
  }
  const frequencies = ringFrequencies(size);
  const crossing = (threshold: number) => frcCrossing(frequencies, frc, threshold);
  return { frequencies, frc, ringSizes: sums.ringSizes, crossing };
}

interface RingSums {
  /** Re Σ_ring F_a F_b* per ring. */
  cross: Float64Array;
  powerA: Float64Array;
  powerB: Float64Array;
  ringSizes: Int32Array;
  /** Σ |F|² over the whole spectrum, corners included. */
  totalA: number;
  totalB: number;
}

/** Sums the cross term and both powers of two spectra [N, N] over each ring. */
function ringSums(fa: Spectrum, fb: Spectrum, size: number): RingSums {
  const rings = ringIndices(size);
  const count = Math.floor(size / 2) + 1;
  const sums: RingSums = {
    cross: new Float64Array(count),
    powerA: new Float64Array(count),
    powerB: new Float64Array(count),
    ringSizes: new Int32Array(count),
    totalA: 0,
    totalB: 0,
  };
  for (let i = 0; i < rings.length; i++) {
    const pa = fa.re[i] ** 2 + fa.im[i] ** 2;
    const pb = fb.re[i] ** 2 + fb.im[i] ** 2;
    sums.totalA += pa;
    sums.totalB += pb;
    const ring = rings[i];
    if (ring < 0) continue;
    sums.cross[ring] += fa.re[i] * fb.re[i] + fa.im[i] * fb.im[i];
    sums.powerA[ring] += pa;
    sums.powerB[ring] += pb;
    sums.ringSizes[ring]++;
  }
  return sums;
}

/**
 * Returns the first spatial frequency at which the FRC falls below `threshold`, or null
 * if it never does. The frequency is interpolated linearly between ring centres and is
 * in the units of `frequencies` (cycles per pixel for `fourierRingCorrelation`).
 * The search starts at ring 1, because ring 0 only compares the two means and is empty
 * for mean-free images. If ring 1 is already below, the crossing is interpolated from
 * ring 0 when ring 0 is at or above the threshold, and is frequencies[0] otherwise
 * (0 cycles per pixel: nothing is resolved).
 * The usual thresholds are 0.143 between two independent half-set reconstructions and
 * 0.5 against a known truth: C = √(2 FRC / (1 + FRC)) takes the first to the second.
 * @throws RangeError when the arrays differ in length, hold fewer than 2 rings or a
 *   non-finite value, or the threshold is not finite
 */
export function frcCrossing(
  frequencies: ArrayLike<number>,
  frc: ArrayLike<number>,
  threshold: number,
): number | null {
  if (frc.length !== frequencies.length) {
    throw new RangeError(
      `frcCrossing: frc has length ${frc.length}, but frequencies has length ${frequencies.length}; ` +
        'expected equal lengths',
    );
  }
  if (frc.length < 2) {
    throw new RangeError(`frcCrossing: frc has ${frc.length} rings; expected at least 2`);
  }
  checkFinite('frcCrossing', 'frequencies', frequencies);
  checkFinite('frcCrossing', 'frc', frc);
  if (!Number.isFinite(threshold)) {
    throw new RangeError(`frcCrossing: threshold must be finite, got ${threshold}`);
  }
  for (let k = 1; k < frc.length; k++) {
    if (frc[k] >= threshold) continue;
    const above = frc[k - 1] - threshold;
    const fraction = above <= 0 ? 0 : above / (frc[k - 1] - frc[k]);
    return frequencies[k - 1] + fraction * (frequencies[k] - frequencies[k - 1]);
  }
  return null;
}

/**
 * Converts a spatial frequency in cycles per pixel to a resolution in ångström:
 * pixelSize / frequency, so 0 gives Infinity and null (no crossing) gives null.
 * @param pixelSize Å per pixel, positive
 * @throws RangeError on a pixel size that is not positive and finite, or a negative or
 *   non-finite frequency
 */
export function resolutionAngstrom(frequency: number | null, pixelSize: number): number | null {
  if (!Number.isFinite(pixelSize) || pixelSize <= 0) {
    throw new RangeError(
      `resolutionAngstrom: pixelSize must be a positive number of Å, got ${pixelSize}`,
    );
  }
  if (frequency === null) return null;
  if (!Number.isFinite(frequency) || frequency < 0) {
    throw new RangeError(
      `resolutionAngstrom: frequency must be a finite number ≥ 0 cycles per pixel, got ${frequency}`,
    );
  }
  return pixelSize / frequency;
}

// ---------------------------------------------------------------------------
// Template score

export interface TemplateScore extends Alignment {
  /** FRC of the truth against the aligned estimate. */
  frc: FourierRingCorrelation;
  /** Cycles per pixel where that FRC first falls below 0.5, or null. */
  crossing05: number | null;
  /** Cycles per pixel where that FRC first falls below 0.143, or null. */
  crossing0143: number | null;
}

/**
 * Aligns `estimate` onto `truth` (both [size, size]) with `alignTemplates`, and scores
 * the aligned pair: r after alignment, its FRC curve and the 0.5 and 0.143 crossings.
 * Resampling the estimate bilinearly damps its high frequencies. The FRC ignores a gain
 * that is the same over a whole ring, so only the part of the damping that varies with
 * direction or position changes it, and that part can lower the highest rings.
 */
export function scoreTemplate(
  truth: ArrayLike<number>,
  estimate: ArrayLike<number>,
  size: number,
  options: AlignmentOptions = {},
): TemplateScore {
  const alignment = alignTemplates(truth, estimate, size, options);
  const frc = fourierRingCorrelation(truth, alignment.aligned, size);
  return {
    ...alignment,
    frc,
    crossing05: frc.crossing(0.5),
    crossing0143: frc.crossing(0.143),
  };
}
