/**
 * The training loop: maximises ℓ(θ, σ) over a stack by minibatch stochastic gradient
 * ascent, with the pose integrated out on the GPU (see src/objective.ts for ℓ).
 *
 * Each step evaluates one minibatch, moves σ on the host and θ on the GPU, where θ stays
 * between steps. The θ step uses the preconditioned gradient (σ²/n) ∂ℓ/∂θ, whose
 * curvature is about 1 per pixel, and the σ step (∂ℓ/∂u)/nJ, so the learning rates do
 * not depend on the stack's size or intensity scale. After each epoch the rotation nodes
 * of every image narrow to a window around its most probable rotation, and the
 * convergence test looks at the last three epoch objectives.
 *
 * With K classes, each image's integral also runs over the class, with weights π_k.
 * Each template's step is preconditioned by the images its class contains in the batch,
 * and π moves by natural-gradient steps (src/classes.ts). After each epoch, a class that
 * contains too little of the stack is re-seeded from the images the classes fit worst,
 * and at the end classes that the stack gives no evidence for are removed.
 */
import { PoseEngine } from '../gpu/engine.js';
import { GpuOptimiser } from '../gpu/update.js';
import { decodePoseIndex, type BatchOutput } from '../gpu/batch.js';
import { loadNumerics, type Numerics, type PoseGridSpec } from './numerics.js';
import { resolveOptions, type ReconstructionOptions, type ResolvedOptions } from './options.js';
import { gridFields, type GridFields } from './pose-grid.js';
import { scoreTemplate } from './metrics.js';
import { ClassWeights, classResponsibilities, emptyClasses, EXCLUDED_LOG_WEIGHT, summariseClasses, templateScales, worstFitImages, type ClassSummary } from './classes.js';
import { normalDeviates, seededRandom } from './synthetic.js';

export type RunPhase = 'full' | 'half 1' | 'half 2';

/** Agreement of two independent half-stack reconstructions, aligned onto each other. */
export interface SplitHalfValidation {
  /** Ring centres, cycles per pixel, 0 … 0.5. */
  frequencies: Float64Array;
  /** Fourier ring correlation of the aligned halves per ring. */
  frc: Float64Array;
  /** Cycles per pixel where the FRC first falls below 0.5, or null if it never does. */
  crossing05: number | null;
  /** Cycles per pixel where the FRC first falls below 0.143, or null if it never does. */
  crossing0143: number | null;
  /** Pearson r of the halves after alignment. */
  r: number;
  /** θ of each half [N, N]. */
  halves: [Float32Array, Float32Array];
}

/** A stack of n square images, row-major [n, N, N]. */
export interface Stack {
  images: Float32Array;
  size: number;
}

export interface Progress {
  /** The run the step belongs to: the whole stack, or one half of a split-half validation. */
  phase: RunPhase;
  epoch: number;
  /** Steps done in this run, from 1. */
  step: number;
  totalSteps: number;
  /** The minibatch estimate of ℓ at this step, without the Laplace term (θ stays on the GPU). */
  objective: number;
  sigma: number;
  elapsedSeconds: number;
  /** Estimate from the mean step time so far, assuming every epoch runs. */
  remainingSeconds: number;
  /** θ [K, N, N] when this step is a snapshot step, classes in the engine's order. */
  template?: Float32Array;
  /** Messages about the run since the previous progress event, such as a re-seeded class. */
  notices?: string[];
}

export interface ImagePose {
  /** Rotation ψ, radians. */
  psi: number;
  /** Shift along x (columns), pixels. */
  shiftX: number;
  /** Shift along y (rows, +y down), pixels. */
  shiftY: number;
  scale: number;
  /** Posterior weight γ of this pose node, within the image's class. */
  weight: number;
  /** The image's most probable class: 1-based position in `ReconstructionResult.classes`. */
  classNumber: number;
  /** Probability r_ik = Σ_φ γ of that class. */
  classProbability: number;
}

export interface ReconstructionResult {
  /** θ [N, N] of the first class of `classes`, the largest; with K = 1 the template. */
  template: Float32Array;
  /** θ [K, N, N] in the order of `classes`. */
  templates: Float32Array;
  /** The classes sorted by the images assigned to them, largest first; one entry when K = 1. */
  classes: ClassSummary[];
  /** Messages about the run, such as each re-seeded class. */
  notices: string[];
  size: number;
  sigma: number;
  /**
   * One ℓ estimate per completed epoch: the Laplace term at the epoch's final θ plus each
   * step's Σ log Ĩ − |B| J log σ at that step's σ, which adds up to one pass over the stack.
   */
  objectivePerEpoch: number[];
  /** Each image's most probable pose node at the final θ and σ, on the full rotation circle; empty when cancelled. */
  poses: ImagePose[];
  /** ℓ over the whole stack at the initial θ and σ, on the full rotation circle. */
  initialObjective: number;
  /** ℓ over the whole stack at the final θ and σ, on the full rotation circle; absent when cancelled. */
  finalObjective?: number;
  /** Initial σ. */
  initialSigma: number;
  epochs: number;
  converged: boolean;
  cancelled: boolean;
  /** Present when the splitHalf option is set and the run was not cancelled. */
  validation?: SplitHalfValidation;
}

export interface RunControl {
  onProgress?: (progress: Progress) => void;
  /** Aborting stops the run after the step in flight; the result keeps what was done. */
  signal?: AbortSignal;
  /**
   * Awaited after each step's progress event; the run pauses until the promise resolves.
   * It must also resolve when `signal` aborts, or a paused run cannot be cancelled.
   */
  whilePaused?: () => Promise<void>;
}

/** Largest initial σ as a fraction of the stack's pixel standard deviation. */
const MAX_INITIAL_SIGMA = 0.9;

/** Bound on |(∂ℓ/∂u)/nJ| per σ step: with exp, lr 0.05 moves σ by at most e^0.5 a step. */
const SIGMA_GRADIENT_CLIP = 10;

/** Pixel standard deviation of the whole stack: an upper bound on the noise σ. */
export function stackDeviation(images: Float32Array): number {
  let sum = 0;
  for (const value of images) sum += value;
  const mean = sum / images.length;
  let squares = 0;
  for (const value of images) squares += (value - mean) ** 2;
  return Math.sqrt(squares / images.length);
}

function validateStack(stack: Stack): number {
  const { images, size } = stack;
  const array: unknown = images;
  if (!(array instanceof Float32Array || array instanceof Float64Array)) {
    throw new TypeError('stack images must be a Float32Array or Float64Array of [n, N, N] pixels');
  }
  if (!Number.isSafeInteger(size) || size < 2) {
    throw new RangeError(`stack size is ${size}; it must be an integer ≥ 2 (pixels per side)`);
  }
  const pixels = size * size;
  if (images.length === 0 || images.length % pixels !== 0) {
    throw new RangeError(`stack has ${images.length} values, not a positive multiple of size² = ${pixels}`);
  }
  for (let i = 0; i < images.length; i++) {
    if (!Number.isFinite(images[i])) {
      throw new RangeError(`stack image ${Math.floor(i / pixels)} has a non-finite pixel (${images[i]}) at index ${i % pixels}`);
    }
  }
  if (stackDeviation(images) === 0) {
    throw new RangeError('stack is constant (pixel standard deviation 0), so there is nothing to reconstruct');
  }
  return images.length / pixels;
}

function gridSpec(options: ResolvedOptions, halfWidth: number | undefined): PoseGridSpec {
  const shifts = Math.floor(options.shiftRange / options.shiftStep) * 2 + 1;
  const reach = ((shifts - 1) / 2) * options.shiftStep;
  const epsilon = options.scaleHalfRange;
  return {
    rotation: { count: options.rotations, halfWidth },
    shiftX: { count: shifts, min: -reach, max: reach },
    shiftY: { count: shifts, min: -reach, max: reach },
    scale: { count: options.scales, min: 1 - epsilon, max: 1 + epsilon },
    shiftSd: options.shiftSd,
    scaleHalfRange: epsilon,
  };
}

function shuffled(count: number, random: () => number): number[] {
  const order = Array.from({ length: count }, (_, i) => i);
  for (let i = count - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [order[i], order[j]] = [order[j], order[i]];
  }
  return order;
}

/** One reconstruction run; `reconstruct` creates and drives it. */
class Run {
  readonly n: number;
  readonly pixels: number;
  readonly bound: number;
  centres: Float64Array;
  halfWidth: number | undefined;
  sigma: number;
  u: number;
  readonly sigmaState: Float64Array;
  step = 0;
  readonly classes: number;
  readonly classWeights: ClassWeights;
  /** log Ĩ of each image at its latest step, for choosing the images that fit worst. */
  readonly lastLogIntegral: Float64Array;
  /** Re-seeds of each class so far. */
  readonly reseeds: number[];
  /** Each image's most probable class at its latest step. */
  readonly lastClass: Int32Array;
  /** Classes removed at the end for lack of evidence. */
  readonly pruned: boolean[];
  /** Messages not yet sent with a progress event. */
  pendingNotices: string[] = [];
  readonly notices: string[] = [];

  constructor(
    readonly numerics: Numerics,
    readonly engine: PoseEngine,
    readonly stack: Stack,
    readonly options: ResolvedOptions,
  ) {
    this.n = stack.images.length / (stack.size * stack.size);
    this.pixels = stack.size * stack.size;
    this.bound = stackDeviation(stack.images);
    this.centres = new Float64Array(this.n);
    // σ starts at most at 0.9 of its upper bound, where the sigmoid's slope is still 9 % of
    // its maximum. Closer to the bound, a sigmoid σ could barely move.
    this.sigma = Math.min(options.initialSigma ?? this.bound / 2, MAX_INITIAL_SIGMA * this.bound);
    const reparameterisation = options.reparameterisationPlugin;
    this.u = reparameterisation.fromSigma(this.sigma, this.bound);
    this.sigma = reparameterisation.toSigma(this.u, this.bound);
    this.sigmaState = new Float64Array(options.optimiserPlugin.stateCount);
    this.classes = options.classes;
    this.classWeights = new ClassWeights(options.classes);
    this.lastLogIntegral = new Float64Array(this.n);
    this.lastClass = new Int32Array(this.n);
    this.reseeds = new Array<number>(options.classes).fill(0);
    this.pruned = new Array<boolean>(options.classes).fill(false);
  }

  notice(message: string): void {
    this.pendingNotices.push(message);
    this.notices.push(message);
  }

  /** Returns the engine fields of the images `indices` at the current windows. */
  batch(indices: number[]): { images: Float32Array; fields: GridFields } {
    const images = new Float32Array(indices.length * this.pixels);
    indices.forEach((image, slot) => {
      images.set(this.stack.images.subarray(image * this.pixels, (image + 1) * this.pixels), slot * this.pixels);
    });
    const centres = indices.map((image) => this.centres[image]);
    return { images, fields: gridFields(this.numerics, gridSpec(this.options, this.halfWidth), centres) };
  }

  async evaluate(indices: number[], sigma: number, extra: { responsibilities?: boolean; flatLikelihood?: boolean; gradient?: boolean } = {}) {
    const { images, fields } = this.batch(indices);
    const logClassWeights = this.classWeights.logWeights();
    const output = await this.engine.evaluate({ images, logClassWeights, ...fields, sigma }, { gradient: false, ...extra });
    return { output, fields };
  }

  /** Moves σ by one optimiser step from the minibatch's Σ γ E. */
  stepSigma(output: BatchOutput, batchSize: number, learningRate: number): void {
    const { n, pixels, bound, sigma } = this;
    let weightedEnergy = 0;
    for (const value of output.weightedEnergy) weightedEnergy += value;
    const gradSigma = ((n / batchSize) * weightedEnergy) / sigma ** 3 - (n * pixels) / sigma;
    const plugin = this.options.reparameterisationPlugin;
    // Clipped, because far below the data's σ the gradient grows like (σ_data/σ)² and one
    // step would overshoot by orders of magnitude.
    const raw = (gradSigma * plugin.derivative(this.u, bound)) / (n * pixels);
    const gradU = Math.max(-SIGMA_GRADIENT_CLIP, Math.min(SIGMA_GRADIENT_CLIP, raw));
    this.u = this.options.optimiserPlugin.step(this.u, gradU, this.sigmaState, learningRate, this.step, this.options.hyperParameters);
    this.sigma = plugin.toSigma(this.u, bound);
  }
}

async function initialTemplate(run: Run): Promise<Float32Array> {
  const { options, pixels, n, classes } = run;
  if (options.initialTemplates) return Float32Array.from(options.initialTemplates);
  if (options.init === 'zeros') return new Float32Array(classes * pixels);
  const normal = normalDeviates(seededRandom(options.seed + 0x9e3779b9));
  if (options.init === 'random') return Float32Array.from({ length: classes * pixels }, normal);
  if (classes === 1) return Float32Array.from(await jensenBound(run, 0, Array.from({ length: n }, (_, i) => i), new Float64Array(pixels)));
  return Float32Array.from(await seedClasses(run));
}

/**
 * Seeds K > 1 classes with images of the stack, chosen as k-means++ chooses centres:
 * the first at random, each next one at random among the quarter of the images that the
 * classes so far fit worst (lowest log Ĩ with pose integrated out). The choice is seeded
 * by the run's seed, and images of views far from every seed are the likeliest picks.
 */
async function seedClasses(run: Run): Promise<Float64Array> {
  const { options, pixels, n, classes } = run;
  const random = seededRandom(options.seed ^ 0x27d4eb2d);
  const theta = new Float64Array(classes * pixels);
  const seeds = [Math.floor(random() * n)];
  const pick = (image: number, k: number) => theta.set(run.stack.images.subarray(image * pixels, (image + 1) * pixels), k * pixels);
  pick(seeds[0], 0);
  for (let k = 1; k < classes; k++) {
    run.engine.setTemplates(theta);
    const logWeights = Array.from({ length: classes }, (_, c) => (c < k ? -Math.log(k) : EXCLUDED_LOG_WEIGHT));
    const { logIntegrals } = await fullPass(run, false, Float64Array.from(logWeights));
    const worst = worstFitImages(logIntegrals, Math.max(1, Math.ceil(n / 4))).filter((image) => !seeds.includes(image));
    const image = worst[Math.floor(random() * worst.length)] ?? seeds[0];
    seeds.push(image);
    pick(image, k);
  }
  return theta;
}

/**
 * Returns θ_k from the Jensen bound on the images `members`, with the other classes'
 * templates left as `templates` [K, N, N].
 *
 * Jensen bound: Q(θ) = −λ‖θ‖₁ − Σ_i Σ_φ (w P)_φ ‖X_i − R_φ θ‖² / 2. With a flat likelihood
 * and σ = 1 the engine returns π_k Σ_φ γ R_φᵀ (X − R_φ θ_k) for class k, with γ = (w P)/W,
 * so ∂Q/∂θ = W Σ_i G_i / π_k − λ sign θ, whose curvature is about |members| W; each
 * iteration takes the step 1/(|members| W) along it.
 */
async function jensenBound(run: Run, k: number, members: number[], templates: Float64Array): Promise<Float64Array> {
  const { options, pixels } = run;
  const weight = Math.exp(run.classWeights.logWeights()[k]);
  const totalWeight = run.numerics.poseGrid(gridSpec(options, undefined)).logWeights.reduce((sum, w) => sum + Math.exp(w), 0);
  const current = templates.slice();
  const theta = new Float64Array(pixels);
  // With γ independent of the images, G is linear in (X, θ): the members' gradients sum to
  // that of one image Σ X at the template |members| θ, when all share their rotation nodes.
  const centre = run.centres[members[0]];
  const shared = members.every((image) => run.centres[image] === centre);
  const sum = new Float64Array(pixels);
  if (shared) {
    for (const image of members) {
      const offset = image * pixels;
      for (let j = 0; j < pixels; j++) sum[j] += run.stack.images[offset + j];
    }
  }
  for (let iteration = 0; iteration < options.jensenIterations; iteration++) {
    const step = new Float64Array(pixels);
    if (shared) {
      current.set(theta.map((value) => value * members.length), k * pixels);
      run.engine.setTemplates(current);
      const output = await run.engine.evaluate(
        {
          images: Float32Array.from(sum),
          logClassWeights: run.classWeights.logWeights(),
          ...gridFields(run.numerics, gridSpec(options, run.halfWidth), [centre]),
          sigma: 1,
        },
        { flatLikelihood: true },
      );
      for (let j = 0; j < pixels; j++) step[j] = output.gradient[k * pixels + j] / weight;
    } else {
      current.set(theta, k * pixels);
      run.engine.setTemplates(current);
      for (let start = 0; start < members.length; start += options.batchSize) {
        const indices = members.slice(start, start + options.batchSize);
        const { output } = await run.evaluate(indices, 1, { flatLikelihood: true, gradient: true });
        for (let j = 0; j < pixels; j++) step[j] += output.gradient[k * pixels + j] / weight;
      }
    }
    for (let j = 0; j < pixels; j++) {
      theta[j] += (step[j] - (options.lambda / totalWeight) * Math.sign(theta[j])) / members.length;
    }
  }
  return theta;
}

interface FullPass {
  objective: number;
  /** Each image's pose, with classNumber = engine class + 1; empty without poses. */
  poses: ImagePose[];
  /** Σ_i r_ik per class; zeros without poses. */
  responsibilityTotals: Float64Array;
  /** log Ĩ of each image. */
  logIntegrals: Float64Array;
}

/**
 * Evaluates ℓ at the current θ and σ over the whole stack on the full rotation circle,
 * and, when asked, each image's most probable class and its most probable pose node there.
 */
async function fullPass(run: Run, withPoses: boolean, logClassWeights = run.classWeights.logWeights()): Promise<FullPass> {
  const { options, n, pixels, engine, numerics, classes } = run;
  const spec = gridSpec(options, undefined);
  const shifts = spec.shiftX.count;
  const poses: ImagePose[] = [];
  const responsibilityTotals = new Float64Array(classes);
  const logIntegrals = new Float64Array(n);
  let dataTerm = 0;
  for (let start = 0; start < n; start += options.batchSize) {
    const indices = Array.from({ length: Math.min(options.batchSize, n - start) }, (_, i) => start + i);
    const images = new Float32Array(indices.length * pixels);
    images.set(run.stack.images.subarray(start * pixels, (start + indices.length) * pixels));
    const fields = gridFields(numerics, spec, new Float64Array(indices.length));
    const output = await engine.evaluate(
      { images, logClassWeights, ...fields, sigma: run.sigma },
      { computeGradient: false, responsibilities: withPoses },
    );
    for (const value of output.logIntegral) dataTerm += value;
    logIntegrals.set(output.logIntegral, start);
    if (!withPoses) continue;
    const gamma = output.responsibilities!;
    const posesPerClass = gamma.length / (indices.length * classes);
    const membership = classResponsibilities(gamma, indices.length, classes);
    indices.forEach((_, slot) => {
      let k = 0;
      for (let c = 0; c < classes; c++) {
        responsibilityTotals[c] += membership[slot * classes + c];
        if (membership[slot * classes + c] > membership[slot * classes + k]) k = c;
      }
      const offset = (slot * classes + k) * posesPerClass;
      let best = 0;
      for (let i = 1; i < posesPerClass; i++) if (gamma[offset + i] > gamma[offset + best]) best = i;
      const { p, q, r, m } = decodePoseIndex({ shiftsX: shifts, shiftsY: shifts, scales: options.scales }, best);
      poses.push({
        psi: fields.rotations[slot * options.rotations + p],
        shiftX: fields.shiftsX[q],
        shiftY: fields.shiftsY[r],
        scale: fields.scales[m],
        weight: gamma[offset + best] / membership[slot * classes + k],
        classNumber: k + 1,
        classProbability: membership[slot * classes + k],
      });
    });
  }
  const theta = await engine.readTemplates();
  const objective = numerics.laplaceLogPrior(theta, options.lambda) - n * pixels * Math.log(run.sigma) + dataTerm;
  return { objective, poses, responsibilityTotals, logIntegrals };
}

/**
 * Reconstructs a template from a stack on `device`. Options are validated before any
 * GPU work; progress arrives after every step; aborting `control.signal` returns the
 * result so far with `cancelled: true`.
 */
export async function reconstruct(
  device: GPUDevice,
  stack: Stack,
  options: ReconstructionOptions = {},
  control: RunControl = {},
): Promise<ReconstructionResult> {
  const n = validateStack(stack);
  const resolved = resolveOptions(options, stack.size, n);
  const numerics = await loadNumerics();
  const grid = gridSpec(resolved, undefined);
  const engine = await PoseEngine.create(
    device,
    {
      size: stack.size,
      classes: resolved.classes,
      rotations: resolved.rotations,
      shiftsX: grid.shiftX.count,
      shiftsY: grid.shiftY.count,
      scales: resolved.scales,
      batch: resolved.batchSize,
    },
    { kernel: resolved.kernel, shiftReach: Math.round(grid.shiftX.max) },
  );
  try {
    const result = await train(new Run(numerics, engine, stack, resolved), control, 'full');
    if (resolved.splitHalf && !result.cancelled) {
      const validation = await validateHalves(numerics, engine, stack, resolved, control);
      if (validation) result.validation = validation;
      else result.cancelled = true;
    }
    return result;
  } finally {
    engine.destroy();
  }
}

/**
 * Reconstructs two random halves of the stack (split by the run's seed), aligns the
 * second onto the first and returns their FRC; undefined if cancelled on the way.
 */
async function validateHalves(
  numerics: Numerics,
  engine: PoseEngine,
  stack: Stack,
  options: ResolvedOptions,
  control: RunControl,
): Promise<SplitHalfValidation | undefined> {
  const pixels = stack.size * stack.size;
  const n = stack.images.length / pixels;
  const order = shuffled(n, seededRandom(options.seed ^ 0x5bd1e995));
  const halves: Float32Array[] = [];
  for (const [index, phase] of (['half 1', 'half 2'] as const).entries()) {
    const members = order.slice(index * Math.floor(n / 2), (index + 1) * Math.floor(n / 2));
    const images = new Float32Array(members.length * pixels);
    members.forEach((image, slot) => images.set(stack.images.subarray(image * pixels, (image + 1) * pixels), slot * pixels));
    const result = await train(new Run(numerics, engine, { images, size: stack.size }, options), control, phase);
    if (result.cancelled) return undefined;
    halves.push(result.template);
  }
  const score = scoreTemplate(halves[0], halves[1], stack.size);
  return {
    frequencies: score.frc.frequencies,
    frc: score.frc.frc,
    crossing05: score.crossing05,
    crossing0143: score.crossing0143,
    r: score.r,
    halves: [halves[0], halves[1]],
  };
}

/** Fixed for the whole of one run's training: what `runEpoch` reports progress against. */
interface TrainingContext {
  optimiser: GpuOptimiser;
  control: RunControl;
  phase: RunPhase;
  started: number;
  totalSteps: number;
}

/**
 * Runs one epoch of minibatch steps in `order`. Returns the epoch's ℓ estimate, each
 * image's rotation marginal at its last step, which the window refinement needs, and
 * each class's summed responsibility.
 */
async function runEpoch(run: Run, context: TrainingContext, epoch: number, order: number[]) {
  const { options, numerics, n, pixels, engine, classes } = run;
  const { optimiser, control } = context;
  const drop = options.scheduleFactor ** Math.floor((epoch - 1) / options.scheduleEvery);
  const marginal = new Float64Array(n * options.rotations);
  const nodes = new Float64Array(n * options.rotations);
  const classTotals = new Float64Array(classes);
  // Each step's ℓ estimate weighted by its share of the stack, at that step's σ.
  let estimate = 0;
  for (let start = 0; start < n; start += options.batchSize) {
    const indices = order.slice(start, start + options.batchSize);
    const sigma = run.sigma;
    const wantGamma = options.refineRotations || classes > 1;
    const { output, fields } = await run.evaluate(indices, sigma, { responsibilities: wantGamma });
    run.step += 1;
    const logIntegral = output.logIntegral.reduce((sum, value) => sum + value, 0);
    estimate += logIntegral - indices.length * pixels * Math.log(sigma);
    indices.forEach((image, slot) => (run.lastLogIntegral[image] = output.logIntegral[slot]));
    run.stepSigma(output, indices.length, options.learningRateSigma * drop);
    const membership = classes > 1 ? classResponsibilities(output.responsibilities!, indices.length, classes) : new Float64Array(indices.length).fill(1);
    optimiser.apply({
      learningRate: options.learningRateTheta * drop,
      step: run.step,
      gradientScale: (sigma * sigma) / indices.length,
      lambda: (options.lambda * sigma * sigma) / n,
      groupScales: templateScales(membership, indices.length, classes),
    });
    for (let t = 0; t < membership.length; t++) classTotals[t % classes] += membership[t];
    if (classes > 1) {
      indices.forEach((image, slot) => {
        let best = 0;
        for (let c = 1; c < classes; c++) if (membership[slot * classes + c] > membership[slot * classes + best]) best = c;
        run.lastClass[image] = best;
      });
      run.classWeights.step(membership, indices.length, options.learningRateClassWeights * drop);
    }

    if (options.refineRotations) {
      const rotationMarginal = numerics.marginaliseRotations(output.responsibilities!, indices.length, classes, options.rotations);
      indices.forEach((image, slot) => {
        for (let p = 0; p < options.rotations; p++) {
          marginal[image * options.rotations + p] = rotationMarginal[slot * options.rotations + p];
          nodes[image * options.rotations + p] = fields.rotations[slot * options.rotations + p];
        }
      });
    }

    const elapsed = (performance.now() - context.started) / 1000;
    const snapshot = options.snapshotEvery > 0 && run.step % options.snapshotEvery === 0;
    const notices = run.pendingNotices.length > 0 ? run.pendingNotices : undefined;
    run.pendingNotices = [];
    control.onProgress?.({
      phase: context.phase,
      epoch,
      step: run.step,
      totalSteps: context.totalSteps,
      objective: -n * pixels * Math.log(sigma) + (n / indices.length) * logIntegral,
      sigma: run.sigma,
      elapsedSeconds: elapsed,
      remainingSeconds: (elapsed / run.step) * (context.totalSteps - run.step),
      template: snapshot ? await engine.readTemplates() : undefined,
      notices,
    });
    await control.whilePaused?.();
    if (control.signal?.aborted) return { estimate, cancelled: true, marginal, nodes, classTotals };
  }
  return { estimate, cancelled: false, marginal, nodes, classTotals };
}

/**
 * Re-seeds each class in `empty` by splitting a neighbour. Its members are a share of
 * the images that the current classes fit worst, with disjoint shares when several
 * classes are empty. The neighbour is the class most of them belong to. The empty class starts
 * as a copy of the neighbour, which gives it half its weight, and then takes one Newton
 * step on ℓ over its members: θ_k = θ_j + σ² G_k / Σ_i r_ik. That moves it to the mean of
 * those images aligned at their current poses, which is where a view that no class
 * represents yet shows. Its optimiser state is cleared.
 */
async function reseedClasses(run: Run, optimiser: GpuOptimiser, empty: number[], epoch: number, totals: Float64Array): Promise<void> {
  const { options, n, pixels, engine, classes } = run;
  const share = Math.max(options.batchSize, Math.round(n / (2 * classes)));
  const worst = worstFitImages(run.lastLogIntegral, share * empty.length);
  const templates = Float64Array.from(await engine.readTemplates());
  for (const [position, k] of empty.entries()) {
    const members = worst.slice(position * share, (position + 1) * share);
    if (members.length === 0) break;
    const neighbour = await splitNeighbour(run, k, members, templates);
    optimiser.resetGroup(k);
    run.reseeds[k] += 1;
    run.notice(
      `epoch ${epoch}: class ${k + 1} held ${totals[k].toFixed(1)} of ${n} images' responsibility, below ` +
        `${((options.emptyClassFraction * n) / classes).toFixed(1)}; re-seeded it by splitting class ${neighbour + 1} ` +
        `along the ${members.length} images the classes fit worst`,
    );
  }
  engine.setTemplates(templates);
}

/** Splits the neighbour of `members` into class k, as reseedClasses describes; returns the neighbour. */
async function splitNeighbour(run: Run, k: number, members: number[], templates: Float64Array): Promise<number> {
  const { pixels, classes, options } = run;
  const votes = new Array<number>(classes).fill(0);
  for (const image of members) votes[run.lastClass[image]] += 1;
  let neighbour = k === 0 ? 1 : 0;
  for (let j = 0; j < classes; j++) if (j !== k && votes[j] > votes[neighbour]) neighbour = j;

  templates.copyWithin(k * pixels, neighbour * pixels, (neighbour + 1) * pixels);
  run.classWeights.split(neighbour, k);
  run.engine.setTemplates(templates);
  const step = new Float64Array(pixels);
  let responsibility = 0;
  for (let start = 0; start < members.length; start += options.batchSize) {
    const indices = members.slice(start, start + options.batchSize);
    const { output } = await run.evaluate(indices, run.sigma, { gradient: true, responsibilities: true });
    for (let j = 0; j < pixels; j++) step[j] += output.gradient[k * pixels + j];
    const membership = classResponsibilities(output.responsibilities!, indices.length, classes);
    for (let b = 0; b < indices.length; b++) responsibility += membership[b * classes + k];
  }
  if (responsibility > 0) {
    const factor = (run.sigma * run.sigma) / responsibility;
    for (let j = 0; j < pixels; j++) templates[k * pixels + j] += factor * step[j];
  }
  return neighbour;
}

async function train(run: Run, control: RunControl, phase: RunPhase): Promise<ReconstructionResult> {
  const { options, engine, numerics, n, pixels, classes } = run;
  const random = seededRandom(options.seed);
  engine.setTemplates(await initialTemplate(run));
  const initialSigma = run.sigma;
  const initial = await fullPass(run, false);
  const optimiser = new GpuOptimiser(
    engine.device,
    options.optimiserPlugin,
    options.hyperParameters,
    engine.templateBuffer,
    engine.gradientBuffer,
    classes * pixels,
    classes,
  );
  const context: TrainingContext = {
    optimiser,
    control,
    phase,
    started: performance.now(),
    totalSteps: Math.ceil(n / options.batchSize) * options.maxEpochs,
  };
  const objectivePerEpoch: number[] = [];
  let converged = false;
  let cancelled = false;
  // Epochs since the last re-seed: the rotation windows and the convergence test restart there.
  let settledEpochs = 0;
  try {
    for (let epoch = 1; epoch <= options.maxEpochs && !converged && !cancelled; epoch++) {
      const outcome = await runEpoch(run, context, epoch, shuffled(n, random));
      cancelled = outcome.cancelled;
      if (cancelled) break;
      settledEpochs += 1;
      const theta = await engine.readTemplates();
      objectivePerEpoch.push(numerics.laplaceLogPrior(theta, options.lambda) + outcome.estimate);
      const empty = classes > 1 && epoch < options.maxEpochs ? emptyClasses(outcome.classTotals, n, options.emptyClassFraction) : [];
      if (empty.length > 0) {
        await reseedClasses(run, optimiser, empty, epoch, outcome.classTotals);
        settledEpochs = 0;
        run.halfWidth = undefined;
        continue;
      }
      if (options.refineRotations) {
        run.centres = numerics.windowCentres(outcome.marginal, outcome.nodes, options.rotations);
        const halfWidth = numerics.rotationWindowHalfWidth(settledEpochs);
        run.halfWidth = halfWidth < Math.PI ? halfWidth : undefined;
      }
      const k = objectivePerEpoch.length;
      if (settledEpochs >= 3) converged = numerics.hasConverged(objectivePerEpoch[k - 3], objectivePerEpoch[k - 2], objectivePerEpoch[k - 1], options.tolerance);
    }
  } finally {
    optimiser.destroy();
  }

  const theta = await engine.readTemplates();
  if (!cancelled && classes > 1) await pruneClasses(run);
  // A cancelled run skips the pass over the stack that the poses need.
  const final = cancelled ? undefined : await fullPass(run, true);
  const summary = summariseRun(run, theta, final);
  return {
    template: summary.templates.slice(0, pixels),
    templates: summary.templates,
    classes: summary.classes,
    notices: run.notices,
    size: run.stack.size,
    sigma: run.sigma,
    objectivePerEpoch,
    poses: summary.poses,
    initialObjective: initial.objective,
    finalObjective: final?.objective,
    initialSigma,
    epochs: objectivePerEpoch.length,
    converged,
    cancelled,
  };
}

/**
 * Removes classes that the stack gives no evidence for, one at a time: the class whose
 * removal lowers ℓ least goes, while that loss is below the class's BIC cost (J/2) ln n,
 * J parameters per template and n images. A class fitted to a few images' noise gains
 * only about J/2 over the template those images come from. So copies of one view and
 * classes without images are removed, while a distinct view costs its images more. The other templates are not re-fitted, which can only favour keeping a class.
 */
async function pruneClasses(run: Run): Promise<void> {
  const { classes, pixels, n } = run;
  const cost = 0.5 * pixels * Math.log(n);
  const active = new Set(Array.from({ length: classes }, (_, k) => k));
  const logWeightsWithout = (removed: number) => {
    const weights = run.classWeights.weights();
    let kept = 0;
    for (const k of active) if (k !== removed) kept += weights[k];
    return weights.map((weight, k) => (active.has(k) && k !== removed ? Math.log(weight / kept) : EXCLUDED_LOG_WEIGHT));
  };
  // ℓ with the active classes; after a removal it is the removed candidate's ℓ.
  let full = (await fullPass(run, false, logWeightsWithout(-1))).objective;
  while (active.size > 1) {
    let best = -1;
    let bestLoss = Infinity;
    let bestObjective = full;
    for (const k of active) {
      const without = (await fullPass(run, false, logWeightsWithout(k))).objective;
      if (full - without < bestLoss) {
        best = k;
        bestLoss = full - without;
        bestObjective = without;
      }
    }
    if (!(bestLoss < cost)) break;
    full = bestObjective;
    active.delete(best);
    run.classWeights.exclude(best);
    run.pruned[best] = true;
    run.notice(
      `class ${best + 1} removed at the end: without it ℓ falls by ${bestLoss.toFixed(1)}, less than its ` +
        `cost (J/2) ln n = ${cost.toFixed(1)}, so the stack gives no evidence for it`,
    );
  }
}

/**
 * Sorts the classes by size and renumbers each image's class to its position in that
 * order. Without a final pass (a cancelled run) the classes keep the engine's order and
 * carry no image counts.
 */
function summariseRun(run: Run, theta: Float32Array, final: FullPass | undefined) {
  const { pixels, classes, options } = run;
  const weights = run.classWeights.weights();
  if (!final) {
    const summaries: ClassSummary[] = Array.from({ length: classes }, (_, k) => ({
      index: k,
      images: 0,
      weight: weights[k],
      responsibility: 0,
      empty: false,
      redundant: false,
      duplicateOf: null,
      reseeds: run.reseeds[k],
    }));
    return { templates: theta, classes: summaries, poses: [] as ImagePose[] };
  }
  const assigned = final.poses.map((pose) => pose.classNumber - 1);
  const summaries = summariseClasses(theta, run.stack.size, weights, final.responsibilityTotals, assigned, run.reseeds, run.pruned, options.emptyClassFraction);
  const position = new Array<number>(classes);
  summaries.forEach((summary, i) => (position[summary.index] = i));
  const templates = new Float32Array(classes * pixels);
  summaries.forEach((summary, i) => templates.set(theta.subarray(summary.index * pixels, (summary.index + 1) * pixels), i * pixels));
  const poses = final.poses.map((pose) => ({ ...pose, classNumber: position[pose.classNumber - 1] + 1 }));
  return { templates, classes: summaries, poses };
}
