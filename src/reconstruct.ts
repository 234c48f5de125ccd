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
 */
import { PoseEngine } from '../gpu/engine.js';
import { GpuOptimiser } from '../gpu/update.js';
import { decodePoseIndex, type BatchOutput } from '../gpu/batch.js';
import { loadNumerics, type Numerics, type PoseGridSpec } from './numerics.js';
import { resolveOptions, type ReconstructionOptions, type ResolvedOptions } from './options.js';
import { gridFields, type GridFields } from './pose-grid.js';
import { scoreTemplate } from './metrics.js';
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
  /** θ [N, N] when this step is a snapshot step. */
  template?: Float32Array;
}

export interface ImagePose {
  /** Rotation ψ, radians. */
  psi: number;
  /** Shift along x (columns), pixels. */
  shiftX: number;
  /** Shift along y (rows, +y down), pixels. */
  shiftY: number;
  scale: number;
  /** Posterior weight γ of this pose node. */
  weight: number;
}

export interface ReconstructionResult {
  /** θ [N, N]. */
  template: Float32Array;
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
    const output = await this.engine.evaluate({ images, logClassWeights: [0], ...fields, sigma }, { gradient: false, ...extra });
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
  const { options, pixels, n } = run;
  if (options.init === 'zeros') return new Float32Array(pixels);
  const normal = normalDeviates(seededRandom(options.seed + 0x9e3779b9));
  if (options.init === 'random') return Float32Array.from({ length: pixels }, normal);
  // Jensen bound: Q(θ) = −λ‖θ‖₁ − Σ_i Σ_φ (w P)_φ ‖X_i − R_φ θ‖² / 2. With a flat
  // likelihood and σ = 1 the engine returns Σ_φ γ R_φᵀ (X − R_φ θ) with γ = (w P)/W, so
  // ∂Q/∂θ = W Σ_i G_i − λ sign θ, whose curvature is about nW; each iteration takes the
  // step 1/(nW) along it.
  const theta = new Float64Array(pixels);
  const totalWeight = run.numerics.poseGrid(gridSpec(options, undefined)).logWeights.reduce((sum, w) => sum + Math.exp(w), 0);
  for (let iteration = 0; iteration < options.jensenIterations; iteration++) {
    run.engine.setTemplates(theta);
    const step = new Float64Array(pixels);
    for (let start = 0; start < n; start += options.batchSize) {
      const indices = Array.from({ length: Math.min(options.batchSize, n - start) }, (_, i) => start + i);
      const { output } = await run.evaluate(indices, 1, { flatLikelihood: true, gradient: true });
      for (let j = 0; j < pixels; j++) step[j] += output.gradient[j];
    }
    for (let j = 0; j < pixels; j++) theta[j] += (step[j] - (options.lambda / totalWeight) * Math.sign(theta[j])) / n;
  }
  return Float32Array.from(theta);
}

/**
 * Evaluates ℓ at the current θ and σ over the whole stack on the full rotation circle,
 * and, when asked, each image's most probable pose node.
 */
async function fullPass(run: Run, withPoses: boolean): Promise<{ objective: number; poses: ImagePose[] }> {
  const { options, n, pixels, engine, numerics } = run;
  const spec = gridSpec(options, undefined);
  const shifts = spec.shiftX.count;
  const poses: ImagePose[] = [];
  let dataTerm = 0;
  for (let start = 0; start < n; start += options.batchSize) {
    const indices = Array.from({ length: Math.min(options.batchSize, n - start) }, (_, i) => start + i);
    const images = new Float32Array(indices.length * pixels);
    images.set(run.stack.images.subarray(start * pixels, (start + indices.length) * pixels));
    const fields = gridFields(numerics, spec, new Float64Array(indices.length));
    const output = await engine.evaluate(
      { images, logClassWeights: [0], ...fields, sigma: run.sigma },
      { computeGradient: false, responsibilities: withPoses },
    );
    for (const value of output.logIntegral) dataTerm += value;
    if (!withPoses) continue;
    const gamma = output.responsibilities!;
    const terms = gamma.length / indices.length;
    indices.forEach((_, slot) => {
      let best = 0;
      for (let i = 1; i < terms; i++) if (gamma[slot * terms + i] > gamma[slot * terms + best]) best = i;
      const { p, q, r, m } = decodePoseIndex({ shiftsX: shifts, shiftsY: shifts, scales: options.scales }, best);
      poses.push({
        psi: fields.rotations[slot * options.rotations + p],
        shiftX: fields.shiftsX[q],
        shiftY: fields.shiftsY[r],
        scale: fields.scales[m],
        weight: gamma[slot * terms + best],
      });
    });
  }
  const theta = await engine.readTemplates();
  const objective = numerics.laplaceLogPrior(theta, options.lambda) - n * pixels * Math.log(run.sigma) + dataTerm;
  return { objective, poses };
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
  const engine = await PoseEngine.create(device, {
    size: stack.size,
    classes: 1,
    rotations: resolved.rotations,
    shiftsX: grid.shiftX.count,
    shiftsY: grid.shiftY.count,
    scales: resolved.scales,
    batch: resolved.batchSize,
  });
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
 * Runs one epoch: a step per minibatch in `order`. Returns the epoch's estimate of ℓ
 * without the prior term (Σ over steps of Σ log Ĩ − |B| J log σ, each at its step's σ),
 * whether the run was cancelled, and each image's rotation marginal and nodes for the
 * window refinement.
 */
async function runEpoch(run: Run, context: TrainingContext, epoch: number, order: number[]) {
  const { options, numerics, n, pixels, engine } = run;
  const { optimiser, control } = context;
  const drop = options.scheduleFactor ** Math.floor((epoch - 1) / options.scheduleEvery);
  const marginal = new Float64Array(n * options.rotations);
  const nodes = new Float64Array(n * options.rotations);
  // Each step's ℓ estimate weighted by its share of the stack, at that step's σ.
  let estimate = 0;
  for (let start = 0; start < n; start += options.batchSize) {
    const indices = order.slice(start, start + options.batchSize);
    const sigma = run.sigma;
    const { output, fields } = await run.evaluate(indices, sigma, { responsibilities: options.refineRotations });
    run.step += 1;
    const logIntegral = output.logIntegral.reduce((sum, value) => sum + value, 0);
    estimate += logIntegral - indices.length * pixels * Math.log(sigma);
    run.stepSigma(output, indices.length, options.learningRateSigma * drop);
    optimiser.apply({
      learningRate: options.learningRateTheta * drop,
      step: run.step,
      gradientScale: (sigma * sigma) / indices.length,
      lambda: (options.lambda * sigma * sigma) / n,
    });

    if (options.refineRotations) {
      const rotationMarginal = numerics.marginaliseRotations(output.responsibilities!, indices.length, 1, options.rotations);
      indices.forEach((image, slot) => {
        for (let p = 0; p < options.rotations; p++) {
          marginal[image * options.rotations + p] = rotationMarginal[slot * options.rotations + p];
          nodes[image * options.rotations + p] = fields.rotations[slot * options.rotations + p];
        }
      });
    }

    const elapsed = (performance.now() - context.started) / 1000;
    const snapshot = options.snapshotEvery > 0 && run.step % options.snapshotEvery === 0;
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
    });
    await control.whilePaused?.();
    if (control.signal?.aborted) return { estimate, cancelled: true, marginal, nodes };
  }
  return { estimate, cancelled: false, marginal, nodes };
}

async function train(run: Run, control: RunControl, phase: RunPhase): Promise<ReconstructionResult> {
  const { options, engine, numerics, n, pixels } = run;
  const random = seededRandom(options.seed);
  engine.setTemplates(await initialTemplate(run));
  const initialSigma = run.sigma;
  const initial = await fullPass(run, false);
  const optimiser = new GpuOptimiser(engine.device, options.optimiserPlugin, options.hyperParameters, engine.templateBuffer, engine.gradientBuffer, pixels);
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
  try {
    for (let epoch = 1; epoch <= options.maxEpochs && !converged && !cancelled; epoch++) {
      const outcome = await runEpoch(run, context, epoch, shuffled(n, random));
      cancelled = outcome.cancelled;
      if (cancelled) break;
      const theta = await engine.readTemplates();
      objectivePerEpoch.push(numerics.laplaceLogPrior(theta, options.lambda) + outcome.estimate);
      if (options.refineRotations) {
        run.centres = numerics.windowCentres(outcome.marginal, outcome.nodes, options.rotations);
        const halfWidth = numerics.rotationWindowHalfWidth(epoch);
        run.halfWidth = halfWidth < Math.PI ? halfWidth : undefined;
      }
      const k = objectivePerEpoch.length;
      if (k >= 3) converged = numerics.hasConverged(objectivePerEpoch[k - 3], objectivePerEpoch[k - 2], objectivePerEpoch[k - 1], options.tolerance);
    }
  } finally {
    optimiser.destroy();
  }

  const template = await engine.readTemplates();
  // A cancelled run skips the pass over the stack that the poses need.
  const final = cancelled ? { objective: undefined, poses: [] } : await fullPass(run, true);
  return {
    template,
    size: run.stack.size,
    sigma: run.sigma,
    objectivePerEpoch,
    poses: final.poses,
    initialObjective: initial.objective,
    finalObjective: final.objective,
    initialSigma,
    epochs: objectivePerEpoch.length,
    converged,
    cancelled,
  };
}
