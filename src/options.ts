/**
 * Options of a reconstruction, their defaults and their validation. Every option is
 * checked before any work starts, and an error names the option and the value.
 */
import { optimisers, resolveHyperParameters, type HyperParameters, type OptimiserPlugin } from '../plugins/optimisers.js';
import { reparameterisations, type ReparameterisationPlugin } from '../plugins/reparameterisations.js';

export type Initialisation = 'random' | 'zeros' | 'jensen';

/**
 * Kernel that evaluates the pose integral. 'fft' builds each rotated and scaled template
 * once and gets every integer shift from one FFT cross-correlation. 'reference' resamples
 * the template for every pose. Both compute the same sums.
 */
export type KernelChoice = 'fft' | 'reference';

export interface ReconstructionOptions {
  /** K: classes, each with its own template θ_k and weight π_k. Default 1. */
  classes?: number;
  /** Learning rate of the class-weight logits (natural-gradient step). Default 0.5. */
  learningRateClassWeights?: number;
  /**
   * A class whose summed responsibility over an epoch is below this fraction of n/K is
   * empty: it is re-seeded after the epoch and, at the end, reported as empty. Default 0.2.
   */
  emptyClassFraction?: number;
  /** Rotation nodes on the full circle, and in each refined window. Default 36. */
  rotations?: number;
  /** Shift nodes run from −shiftRange to +shiftRange pixels on each axis. Default ⌊2 shiftSd⌋. */
  shiftRange?: number;
  /** Spacing of the shift nodes, pixels. Default 1. */
  shiftStep?: number;
  /**
   * Engine kernel (see KernelChoice). Default 'fft' when the shift nodes are whole
   * pixels (shiftStep an integer), else 'reference'; 'fft' needs whole-pixel shifts.
   */
  kernel?: KernelChoice;
  /** Standard deviation of the shift prior N(0, s²), pixels. Default 5 % of the box. */
  shiftSd?: number;
  /** Scale nodes, spread evenly over the scale prior's support. Default 3. */
  scales?: number;
  /** Half-range ε_c of the scale prior U[1 − ε_c, 1 + ε_c]. Default 0.05. */
  scaleHalfRange?: number;
  /** λ of the Laplace prior −λ‖θ‖₁, per unit intensity. Default 1. */
  lambda?: number;
  /** Images per minibatch. Default 5. */
  batchSize?: number;
  /** Largest number of epochs. Default 12. */
  maxEpochs?: number;
  /** Convergence tolerance on the relative change of the epoch objective. Default 1e-4. */
  tolerance?: number;
  /** Optimiser plugin name (see `optimisers`). Default 'nesterov'. */
  optimiser?: string;
  /** Hyper-parameters overriding the optimiser's defaults, e.g. { momentum: 0.5 }. */
  optimiserOptions?: Record<string, number>;
  /** Learning rate of θ on the preconditioned gradient (σ²/n) ∂ℓ/∂θ. Default 0.2. */
  learningRateTheta?: number;
  /** Learning rate of σ's parameter u on the gradient (∂ℓ/∂u) / nJ. Default 0.05. */
  learningRateSigma?: number;
  /** Epochs between learning-rate drops. Default 4. */
  scheduleEvery?: number;
  /** Factor applied to both learning rates at each drop. Default 0.1. */
  scheduleFactor?: number;
  /** σ reparameterisation plugin name (see `reparameterisations`). Default 'softplus'. */
  reparameterisation?: string;
  /** Initial template. Default 'jensen'. */
  init?: Initialisation;
  /**
   * Gradient iterations of the Jensen-bound initialisation, each one pass over the stack.
   * Default 1, which from θ = 0 gives the prior-weighted mean of the back-transformed images.
   */
  jensenIterations?: number;
  /** Initial σ; default: half the stack's pixel standard deviation. */
  initialSigma?: number;
  /**
   * Starting templates [K, N, N], such as references or an earlier run's result; they
   * replace `init`. Default none.
   */
  initialTemplates?: Float32Array | Float64Array;
  /** Narrow each image's rotation nodes to a window around its most probable rotation after each epoch. Default true. */
  refineRotations?: boolean;
  /** Seed of the shuffling and of the random initialisation. Default 1. */
  seed?: number;
  /** Steps between θ snapshots in progress events; 0 for none. Default 0. */
  snapshotEvery?: number;
  /**
   * Also reconstruct two random halves of the stack independently and report their
   * agreement (FRC and its 0.5 and 0.143 crossings), which needs no ground truth. Triples
   * the work. Default false.
   */
  splitHalf?: boolean;
}

export interface ResolvedOptions extends Required<Omit<ReconstructionOptions, 'initialSigma' | 'initialTemplates' | 'optimiserOptions' | 'shiftRange' | 'shiftSd' | 'kernel'>> {
  kernel: KernelChoice;
  initialTemplates?: Float32Array | Float64Array;
  shiftRange: number;
  shiftSd: number;
  initialSigma?: number;
  optimiserPlugin: OptimiserPlugin;
  hyperParameters: HyperParameters;
  reparameterisationPlugin: ReparameterisationPlugin;
}

const DEFAULTS = {
  classes: 1,
  learningRateClassWeights: 0.5,
  emptyClassFraction: 0.2,
  rotations: 36,
  shiftStep: 1,
  scales: 3,
  scaleHalfRange: 0.05,
  lambda: 1,
  batchSize: 5,
  maxEpochs: 12,
  tolerance: 1e-4,
  optimiser: 'nesterov',
  learningRateTheta: 0.2,
  learningRateSigma: 0.05,
  scheduleEvery: 4,
  scheduleFactor: 0.1,
  reparameterisation: 'softplus',
  init: 'jensen' as Initialisation,
  jensenIterations: 1,
  refineRotations: true,
  seed: 1,
  snapshotEvery: 0,
  splitHalf: false,
};

const KNOWN = new Set<string>([...Object.keys(DEFAULTS), 'kernel', 'shiftRange', 'shiftSd', 'initialSigma', 'initialTemplates', 'optimiserOptions']);

function fail(option: string, value: unknown, rule: string): never {
  const shown = typeof value === 'string' ? JSON.stringify(value) : String(value);
  throw new RangeError(`option ${option} is ${shown}; it must be ${rule}`);
}

function integer(option: string, value: number, min: number): void {
  if (!Number.isSafeInteger(value) || value < min) fail(option, value, `an integer ≥ ${min}`);
}

function positive(option: string, value: number): void {
  if (!(value > 0) || !Number.isFinite(value)) fail(option, value, 'a finite number > 0');
}

function nonNegative(option: string, value: number): void {
  if (!(value >= 0) || !Number.isFinite(value)) fail(option, value, 'a finite number ≥ 0');
}

function checkInitialTemplates(templates: unknown, length: number): void {
  if (!(templates instanceof Float32Array || templates instanceof Float64Array)) {
    throw new RangeError('option initialTemplates must be a Float32Array or Float64Array of [K, N, N] values');
  }
  if (templates.length !== length) {
    fail('initialTemplates', `an array of ${templates.length} values`, `K·N² = ${length} values, one template per class`);
  }
  const bad = templates.findIndex((value) => !Number.isFinite(value));
  if (bad >= 0) fail('initialTemplates', `non-finite (${templates[bad]}) at index ${bad}`, 'finite everywhere');
}

/**
 * Fills in the defaults and checks every option.
 * @param size box side N in pixels, for the size-dependent defaults
 * @param images images in the stack, which the batch size may not exceed
 */
export function resolveOptions(options: ReconstructionOptions, size: number, images: number): ResolvedOptions {
  for (const name of Object.keys(options)) {
    if (!KNOWN.has(name)) {
      throw new RangeError(`unknown option '${name}'; the options are: ${[...KNOWN].sort().join(', ')}`);
    }
  }
  // An option given as undefined takes its default, as an absent one does.
  const given = Object.fromEntries(Object.entries(options).filter(([, value]) => value !== undefined));
  const merged = { ...DEFAULTS, ...given } as typeof DEFAULTS & ReconstructionOptions;
  const shiftSd = options.shiftSd ?? 0.05 * size;
  positive('shiftSd', shiftSd);
  const shiftRange = options.shiftRange ?? Math.floor(2 * shiftSd);
  nonNegative('shiftRange', shiftRange);
  integer('rotations', merged.rotations, 1);
  positive('shiftStep', merged.shiftStep);
  if (shiftRange > 0 && shiftRange < merged.shiftStep) {
    fail('shiftRange', shiftRange, `0 or at least shiftStep (${merged.shiftStep} pixels), or no shift node besides 0 fits`);
  }
  const wholeShifts = Number.isSafeInteger(merged.shiftStep);
  const kernel = options.kernel ?? (wholeShifts ? 'fft' : 'reference');
  if (kernel !== 'fft' && kernel !== 'reference') fail('kernel', kernel, "'fft' or 'reference'");
  if (kernel === 'fft' && !wholeShifts) {
    fail('shiftStep', merged.shiftStep, "a whole number of pixels with kernel 'fft', which shifts by whole pixels; use kernel 'reference' for other steps");
  }
  integer('scales', merged.scales, 1);
  if (!(merged.scaleHalfRange >= 0 && merged.scaleHalfRange < 1)) fail('scaleHalfRange', merged.scaleHalfRange, 'in [0, 1)');
  if (merged.scales > 1 && merged.scaleHalfRange === 0) fail('scaleHalfRange', 0, '> 0 when scales > 1');
  nonNegative('lambda', merged.lambda);
  integer('batchSize', merged.batchSize, 1);
  if (merged.batchSize > images) {
    const source = options.batchSize === undefined ? ' (the default)' : '';
    throw new RangeError(`option batchSize is ${merged.batchSize}${source}; it must be at most the ${images} images of the stack`);
  }
  integer('maxEpochs', merged.maxEpochs, 1);
  nonNegative('tolerance', merged.tolerance);
  positive('learningRateTheta', merged.learningRateTheta);
  positive('learningRateSigma', merged.learningRateSigma);
  integer('scheduleEvery', merged.scheduleEvery, 1);
  positive('scheduleFactor', merged.scheduleFactor);
  if (!['random', 'zeros', 'jensen'].includes(merged.init)) fail('init', merged.init, "'random', 'zeros' or 'jensen'");
  integer('jensenIterations', merged.jensenIterations, 1);
  if (options.initialSigma !== undefined) positive('initialSigma', options.initialSigma);
  if (options.initialTemplates !== undefined) checkInitialTemplates(options.initialTemplates, merged.classes * size * size);
  if (typeof merged.refineRotations !== 'boolean') fail('refineRotations', merged.refineRotations, 'true or false');
  integer('seed', merged.seed, 0);
  integer('classes', merged.classes, 1);
  if (merged.classes > images) fail('classes', merged.classes, `at most the ${images} images of the stack`);
  positive('learningRateClassWeights', merged.learningRateClassWeights);
  if (!(merged.emptyClassFraction >= 0 && merged.emptyClassFraction < 1)) fail('emptyClassFraction', merged.emptyClassFraction, 'in [0, 1)');
  if (merged.classes > 1 && merged.init === 'zeros') {
    fail('init', 'zeros', "'jensen' or 'random' when classes > 1, because K zero templates get the same gradient and never separate");
  }
  if (merged.classes > 1 && merged.splitHalf) fail('splitHalf', true, 'false when classes > 1; split-half validation compares single templates');
  integer('snapshotEvery', merged.snapshotEvery, 0);
  if (typeof merged.splitHalf !== 'boolean') fail('splitHalf', merged.splitHalf, 'true or false');
  if (merged.splitHalf && merged.batchSize > Math.floor(images / 2)) {
    fail('batchSize', merged.batchSize, `at most the ${Math.floor(images / 2)} images of a half stack when splitHalf is set`);
  }
  const optimiserPlugin = optimisers.get(merged.optimiser);
  return {
    ...merged,
    kernel,
    shiftSd,
    shiftRange,
    initialSigma: options.initialSigma,
    initialTemplates: options.initialTemplates,
    optimiserPlugin,
    hyperParameters: resolveHyperParameters(optimiserPlugin, options.optimiserOptions),
    reparameterisationPlugin: reparameterisations.get(merged.reparameterisation),
  };
}
