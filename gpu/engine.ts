/**
 * The WebGPU engine: log Ĩ_b, the responsibilities and both gradients of the pose
 * integral for a batch of images, in one queue submission per batch.
 *
 * With the reference kernel, the command encoder records four kernels per sub-batch of
 * images:
 *
 *   energy          E[b, k, φ] = ‖X_b − R_φ θ_k‖²            one workgroup per term
 *   logsumexp       log Ĩ_b, γ[b, k, φ], Σ γ E               one workgroup per image
 *   gradientPartial Σ over a chunk of (b, φ) of γ R_φᵀ r     one invocation per (chunk, k, j)
 *   gradientReduce  Σ over chunks / σ², added to ∂/∂θ          one invocation per (k, j)
 *
 * The FFT kernel (`correlate.ts`) computes the same E and gradient from one rotated and
 * scaled template per (image, class, rotation node, scale node), a block, with every
 * whole-pixel shift at once by FFT cross-correlation; logsumexp and gradientReduce are
 * shared. Blocks are processed in chunks that fit one work buffer.
 *
 * Sub-batches exist because a storage binding is limited to maxStorageBufferBindingSize
 * bytes (128 MiB by default). Images are grouped so that no per-image buffer (images,
 * rotations, E, γ) exceeds it. Dispatches past 65 535 workgroups are laid out in 2-D.
 */
import { bindKernel, compileKernel, dispatchSize, makeParamsView, type CompiledKernel } from './kernel.js';
import { energyKernel } from './energy.js';
import { logsumexpKernel } from './logsumexp.js';
import { GRADIENT_TARGET_INVOCATIONS, GRADIENT_WORKGROUP, gradientPartialKernel, gradientReduceKernel, REDUCE_WORKGROUP } from './gradient.js';
import { posesOf, validateBatch, validateShape, validateTemplates, type BatchOutput, type EngineInput, type EngineShape, type EvaluateOptions } from './batch.js';
import {
  ELEMENT_WORKGROUP,
  GATHER_WORKGROUP,
  gammaFlagsKernel,
  gammaMapKernel,
  gradientGatherKernel,
  groupFlagsKernel,
  groupSumKernel,
  residualMapKernel,
  sharedProductKernel,
  rotatedTemplatesKernel,
  shiftEnergyKernel,
  spectraInputKernel,
  spectrumProductKernel,
  tilesPerBlock,
} from './correlate.js';
import { fftKernel, fftSizeFor, inputOrder, LINE_WORKGROUP, lineCount, MAX_FFT_SIZE, radicesOf, twiddles, type FftLines } from './fft.js';
import type { ParamsValues } from './params.js';

/** 'reference' resamples every pose; 'fft' correlates over whole-pixel shifts (see the module comment). */
export type EngineKernel = 'reference' | 'fft';

/**
 * Bytes of the FFT path's work buffer unless the binding limit is lower: 32 MiB holds
 * 256 blocks at L = 128 and keeps the engine's footprint modest in a browser tab.
 */
export const FFT_WORK_BYTES = 32 * 1024 * 1024;

export interface EngineOptions {
  /** Kernel that evaluates the energies and the gradient. Default 'reference'. */
  kernel?: EngineKernel;
  /**
   * With kernel 'fft': the largest |shift node| in whole pixels that evaluations may
   * pass, which sets the FFT size L, the smallest 2^a 3^b 5^c ≥ N + 2·shiftReach. Default
   * ⌊(shifts − 1) / 2⌋ of the larger shift axis, right for nodes −D … D in steps of 1.
   */
  shiftReach?: number;
  /** With kernel 'fft': bytes of the work buffer, at most maxBindingBytes. Default FFT_WORK_BYTES. */
  workBytes?: number;
  /**
   * Largest storage binding, bytes; defaults to the device's maxStorageBufferBindingSize.
   * A smaller value forces more sub-batches and gradient chunks, which tests use to
   * exercise the splitting on small inputs.
   */
  maxBindingBytes?: number;
}

/** Raised when the device reports a validation or out-of-memory error during an evaluation. */
export class GpuError extends Error {
  override name = 'GpuError';
}

const BYTES = 4;

/** Buffers and bind groups of the FFT path for one sub-batch. */
interface FftSubBatch {
  spectra: GPUBuffer;
  norms: GPUBuffer;
  spectraGroups: { input: GPUBindGroup; rows: GPUBindGroup; columns: GPUBindGroup };
  /** One params buffer and bind-group set per chunk of blocks. */
  chunks: { params: GPUBuffer; groups: Record<FftChunkKernel, GPUBindGroup> }[];
  /** Whether the last evaluation's images all had the same rotation nodes. */
  shared: boolean;
}

type FftChunkKernel =
  | 'rotated' | 'rowsForwardExtended' | 'rowsForwardShifts' | 'columnsForward' | 'columnsInverse'
  | 'rowsInverseShifts' | 'rowsInverseExtended'
  | 'productEnergy' | 'productGradient' | 'sharedProduct' | 'groupSum' | 'groupFlags'
  | 'shiftEnergy' | 'gammaFlags' | 'gammaMap' | 'residualMap' | 'gather' | 'reduce';

/** Layout of the FFT path's work. */
export interface FftPlan {
  /** L: side of the periodic grid, the smallest 2^a 3^b 5^c ≥ N + 2·reach. */
  size: number;
  /** D: the largest |shift node| accepted, whole pixels. */
  reach: number;
  /** Blocks (image, class, rotation node, scale node) of one image: K · rotations · scales. */
  blocksPerImage: number;
  /** Groups (class, rotation node, scale node) per chunk; a group is one block per image. */
  groupsPerChunk: number;
  /** Blocks the work buffer holds: groupsPerChunk times the images of a sub-batch. */
  blocksPerChunk: number;
  /** Gather chunks per chunk of blocks: invocations per (k, j) of the gradient gather. */
  gatherChunks: number;
}

interface SubBatch {
  first: number;
  capacity: number;
  params: GPUBuffer;
  images: GPUBuffer;
  rotations: GPUBuffer;
  energy: GPUBuffer;
  gamma: GPUBuffer;
  logIntegral: GPUBuffer;
  weightedEnergy: GPUBuffer;
  groups: { energy: GPUBindGroup; logsumexp: GPUBindGroup; partial: GPUBindGroup; reduce: GPUBindGroup };
  fft?: FftSubBatch;
}

/** Splitting of a batch into sub-batches and of a sub-batch's (image, pose) pairs into chunks. */
export interface EnginePlan {
  imagesPerSubBatch: number;
  subBatches: number;
  /** Chunks of a full sub-batch, each summed by one gradient invocation per (k, j). */
  chunks: number;
  /** The FFT path's layout, with kernel 'fft'. */
  fft?: FftPlan;
}

export class PoseEngine {
  readonly device: GPUDevice;
  readonly shape: EngineShape;
  readonly plan: EnginePlan;
  readonly kernel: EngineKernel;
  private readonly kernels: Record<'energy' | 'logsumexp' | 'partial' | 'reduce', CompiledKernel>;
  private readonly fftKernels?: Record<Exclude<FftChunkKernel, 'reduce'> | 'spectraInput', CompiledKernel>;
  private readonly shared: Record<string, GPUBuffer>;
  private readonly subBatches: SubBatch[];
  private readonly buffers: GPUBuffer[] = [];
  private readonly maxBindingBytes: number;
  private readonly workBytes: number;
  private destroyed = false;
  private templatesSet = false;

  /**
   * Builds an engine and waits for its pipelines, so that a shader or buffer the device
   * rejects raises a GpuError here with the device's message.
   */
  static async create(device: GPUDevice, shape: EngineShape, options: EngineOptions = {}): Promise<PoseEngine> {
    device.pushErrorScope('out-of-memory');
    device.pushErrorScope('validation');
    let engine: PoseEngine | undefined;
    try {
      engine = new PoseEngine(device, shape, options);
    } finally {
      const validation = await device.popErrorScope();
      const memory = await device.popErrorScope();
      const failure = validation ?? memory;
      if (failure) {
        engine?.destroy();
        throw new GpuError(`building the pose engine failed on the device: ${failure.message}`);
      }
    }
    return engine;
  }

  /** Prefer `PoseEngine.create`, which reports device errors; this constructor does not wait for them. */
  constructor(device: GPUDevice, shape: EngineShape, options: EngineOptions = {}) {
    validateShape(shape);
    this.device = device;
    this.shape = { ...shape };
    // A binding can be no larger than its buffer, so maxBufferSize caps it too.
    const deviceLimit = Math.min(device.limits.maxStorageBufferBindingSize, device.limits.maxBufferSize);
    this.maxBindingBytes = options.maxBindingBytes ?? deviceLimit;
    if (!(this.maxBindingBytes >= 256) || this.maxBindingBytes > deviceLimit) {
      throw new RangeError(
        `engine options: maxBindingBytes is ${options.maxBindingBytes}; it must lie in [256, ${deviceLimit}] ` +
          '(the smaller of the device\'s maxStorageBufferBindingSize and maxBufferSize)',
      );
    }
    this.kernel = options.kernel ?? 'reference';
    if (this.kernel !== 'reference' && this.kernel !== 'fft') {
      throw new RangeError(`engine options: kernel is ${JSON.stringify(options.kernel)}; it must be 'reference' or 'fft'`);
    }
    this.workBytes = Math.min(options.workBytes ?? FFT_WORK_BYTES, this.maxBindingBytes);
    if (!(this.workBytes > 0)) {
      throw new RangeError(`engine options: workBytes is ${options.workBytes}; it must be a positive number of bytes`);
    }
    this.plan = this.makePlan(options);
    this.kernels = {
      energy: compileKernel(device, energyKernel),
      logsumexp: compileKernel(device, logsumexpKernel),
      partial: compileKernel(device, gradientPartialKernel),
      reduce: compileKernel(device, gradientReduceKernel),
    };
    const { size, classes, shiftsX, shiftsY, scales } = shape;
    const pixels = size * size;
    const poses = posesOf(shape);
    this.shared = {
      templates: this.storage('templates', classes * pixels),
      shiftX: this.storage('shift x nodes', shiftsX),
      shiftY: this.storage('shift y nodes', shiftsY),
      scales: this.storage('scale nodes', scales),
      logWeight: this.storage('log(w P) of pose nodes', poses),
      logClass: this.storage('log class weights', classes),
      partial: this.storage('gradient partial sums', this.plan.chunks * classes * pixels),
      gradient: this.storage('template gradient', classes * pixels),
    };
    const fft = this.plan.fft;
    if (fft) {
      const L = fft.size;
      this.fftKernels = {
        spectraInput: compileKernel(device, spectraInputKernel(L)),
        rotated: compileKernel(device, rotatedTemplatesKernel(L)),
        rowsForwardExtended: compileKernel(device, fftKernel(L, 'rows', 'forward', 'extended')),
        rowsForwardShifts: compileKernel(device, fftKernel(L, 'rows', 'forward', 'shifts')),
        columnsForward: compileKernel(device, fftKernel(L, 'columns', 'forward')),
        columnsInverse: compileKernel(device, fftKernel(L, 'columns', 'inverse')),
        rowsInverseShifts: compileKernel(device, fftKernel(L, 'rows', 'inverse', 'shifts')),
        rowsInverseExtended: compileKernel(device, fftKernel(L, 'rows', 'inverse', 'extended')),
        productEnergy: compileKernel(device, spectrumProductKernel(L, 'energy')),
        productGradient: compileKernel(device, spectrumProductKernel(L, 'gradient')),
        sharedProduct: compileKernel(device, sharedProductKernel(L)),
        groupSum: compileKernel(device, groupSumKernel(L)),
        groupFlags: compileKernel(device, groupFlagsKernel()),
        shiftEnergy: compileKernel(device, shiftEnergyKernel(L)),
        gammaFlags: compileKernel(device, gammaFlagsKernel()),
        gammaMap: compileKernel(device, gammaMapKernel(L)),
        residualMap: compileKernel(device, residualMapKernel(L)),
        gather: compileKernel(device, gradientGatherKernel(L)),
      };
      this.shared.blocks = this.storage('FFT work blocks', fft.blocksPerChunk * L * L * 2);
      this.shared.flags = this.storage('FFT block flags', fft.blocksPerChunk);
      this.shared.twiddle = this.storage('FFT twiddles', 2 * L);
      this.shared.order = this.storage('FFT input order', L);
      this.shared.nodeX = this.storage('shift x node of each periodic index', L);
      this.shared.nodeY = this.storage('shift y node of each periodic index', L);
      this.shared.ones = this.storage('FFT flags of the image spectra', 2 * this.plan.imagesPerSubBatch);
      device.queue.writeBuffer(this.shared.twiddle, 0, twiddles(L));
      device.queue.writeBuffer(this.shared.order, 0, inputOrder(radicesOf(L) as number[]));
      device.queue.writeBuffer(this.shared.ones, 0, new Uint32Array(2 * this.plan.imagesPerSubBatch).fill(1));
    }
    this.subBatches = [];
    for (let s = 0; s < this.plan.subBatches; s++) {
      this.subBatches.push(this.makeSubBatch(s));
    }
  }

  private makePlan(options: EngineOptions): EnginePlan {
    const { size, classes, rotations, scales, batch } = this.shape;
    const pixels = size * size;
    const poses = posesOf(this.shape);
    const limit = this.maxBindingBytes;
    const check = (buffer: string, bytes: number) => {
      if (bytes > limit) {
        throw new RangeError(
          `engine shape: ${buffer} needs ${bytes} bytes in one binding, above the limit of ${limit}; ` +
            'use fewer classes, poses or pixels',
        );
      }
    };
    check('the templates [K, N, N]', classes * pixels * BYTES);
    check('log(w P) [M]', poses * BYTES);
    let perImage = Math.max(pixels * BYTES, classes * poses * BYTES, rotations * 2 * BYTES);
    check('one image\'s terms [K, M]', perImage);
    const target = Math.ceil(GRADIENT_TARGET_INVOCATIONS / (classes * pixels));
    const fit = Math.floor(limit / (classes * pixels * BYTES));
    if (this.kernel === 'fft') {
      const reach = options.shiftReach ?? Math.floor((Math.max(this.shape.shiftsX, this.shape.shiftsY) - 1) / 2);
      if (!Number.isSafeInteger(reach) || reach < 0) {
        throw new RangeError(`engine options: shiftReach is ${options.shiftReach}; it must be a whole number of pixels ≥ 0`);
      }
      const L = fftSizeFor(size + 2 * reach);
      if (L > MAX_FFT_SIZE) {
        throw new RangeError(
          `engine shape: the FFT kernel needs a periodic grid of ${L}² for N = ${size} and shifts up to ${reach} pixels, ` +
            `above ${MAX_FFT_SIZE}²; use the reference kernel or a smaller shift range`,
        );
      }
      const blockBytes = L * L * 2 * BYTES;
      check('one FFT block [L, L] (complex)', blockBytes);
      if (blockBytes > this.workBytes) {
        throw new RangeError(`engine options: workBytes ${this.workBytes} is too small for one FFT block of ${blockBytes} bytes (L = ${L}); raise workBytes`);
      }
      check('one image\'s spectra [2, L, L] (complex)', 2 * blockBytes);
      perImage = Math.max(perImage, 2 * blockBytes);
      const imagesPerSubBatch = Math.min(batch, Math.floor(limit / perImage));
      const blocksPerImage = classes * rotations * scales;
      // Chunks contain whole groups, at least one even where it exceeds workBytes. A
      // sub-batch's images fit one binding twice over (their spectra), so one group does.
      const groupsPerChunk = Math.max(1, Math.min(Math.floor(this.workBytes / (blockBytes * imagesPerSubBatch)), blocksPerImage));
      const blocksPerChunk = groupsPerChunk * imagesPerSubBatch;
      const gatherChunks = Math.max(1, Math.min(target, fit, blocksPerChunk));
      return {
        imagesPerSubBatch,
        subBatches: Math.ceil(batch / imagesPerSubBatch),
        chunks: gatherChunks,
        fft: { size: L, reach, blocksPerImage, groupsPerChunk, blocksPerChunk, gatherChunks },
      };
    }
    const imagesPerSubBatch = Math.min(batch, Math.floor(limit / perImage));
    const units = imagesPerSubBatch * poses;
    const chunks = Math.max(1, Math.min(target, fit, units));
    return { imagesPerSubBatch, subBatches: Math.ceil(batch / imagesPerSubBatch), chunks };
  }

  private storage(label: string, count: number, extra = 0): GPUBuffer {
    const buffer = this.device.createBuffer({
      label,
      size: Math.max(count, 1) * BYTES,
      usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST | GPUBufferUsage.COPY_SRC | extra,
    });
    this.buffers.push(buffer);
    return buffer;
  }

  private makeSubBatch(index: number): SubBatch {
    const { size, classes, rotations } = this.shape;
    const pixels = size * size;
    const terms = classes * posesOf(this.shape);
    const first = index * this.plan.imagesPerSubBatch;
    const capacity = Math.min(this.plan.imagesPerSubBatch, this.shape.batch - first);
    const tag = `sub-batch ${index}`;
    const params = this.device.createBuffer({
      label: `${tag} params`,
      size: makeParamsView().arrayBuffer.byteLength,
      usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST,
    });
    this.buffers.push(params);
    const own = {
      params,
      images: this.storage(`${tag} images`, capacity * pixels),
      rotations: this.storage(`${tag} rotation cos/sin`, capacity * rotations * 2),
      energy: this.storage(`${tag} squared residuals`, capacity * terms),
      gamma: this.storage(`${tag} responsibilities`, capacity * terms),
      logIntegral: this.storage(`${tag} log integrals`, capacity),
      weightedEnergy: this.storage(`${tag} weighted squared residuals`, capacity),
    };
    const buffers = { ...this.shared, ...own, P: params };
    const groups = {
      energy: bindKernel(this.device, this.kernels.energy, buffers, `${tag} energy bind group`),
      logsumexp: bindKernel(this.device, this.kernels.logsumexp, buffers, `${tag} logsumexp bind group`),
      partial: bindKernel(this.device, this.kernels.partial, buffers, `${tag} gradient bind group`),
      reduce: bindKernel(this.device, this.kernels.reduce, buffers, `${tag} reduce bind group`),
    };
    const sub: SubBatch = { first, capacity, ...own, groups };
    if (this.plan.fft) sub.fft = this.makeFftSubBatch(tag, capacity, buffers);
    return sub;
  }

  private makeFftSubBatch(tag: string, capacity: number, buffers: Record<string, GPUBuffer>): FftSubBatch {
    const fft = this.plan.fft as FftPlan;
    const kernels = this.fftKernels as NonNullable<PoseEngine['fftKernels']>;
    const L = fft.size;
    const spectra = this.storage(`${tag} image spectra`, 2 * capacity * L * L * 2);
    const norms = this.storage(`${tag} image norms`, capacity);
    const own = { ...buffers, spectra, norms };
    const spectraBuffers = { ...own, blocks: spectra, flags: this.shared.ones };
    const bind = (kernel: CompiledKernel, set: Record<string, GPUBuffer>, label: string) => bindKernel(this.device, kernel, set, `${tag} ${label}`);
    const spectraGroups = {
      input: bind(kernels.spectraInput, own, 'spectra input'),
      rows: bind(kernels.rowsForwardExtended, spectraBuffers, 'spectra rows FFT'),
      columns: bind(kernels.columnsForward, spectraBuffers, 'spectra columns FFT'),
    };
    const chunkCount = Math.ceil(fft.blocksPerImage / fft.groupsPerChunk);
    const chunks: FftSubBatch['chunks'] = [];
    for (let c = 0; c < chunkCount; c++) {
      const params = this.device.createBuffer({
        label: `${tag} chunk ${c} params`,
        size: makeParamsView().arrayBuffer.byteLength,
        usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST,
      });
      this.buffers.push(params);
      const set = { ...own, P: params };
      const label = `chunk ${c}`;
      const groups = {} as Record<FftChunkKernel, GPUBindGroup>;
      for (const name of Object.keys(kernels) as (keyof typeof kernels)[]) {
        if (name === 'spectraInput') continue;
        groups[name] = bind(kernels[name], set, `${label} ${name}`);
      }
      groups.reduce = bind(this.kernels.reduce, set, `${label} reduce`);
      chunks.push({ params, groups });
    }
    return { spectra, norms, spectraGroups, chunks, shared: false };
  }

  /** The templates θ [K, N, N] as the kernels read them, for callers that update them on the GPU. */
  get templateBuffer(): GPUBuffer {
    return this.shared.templates;
  }

  /** The gradient [K, N, N] of the last evaluation, `BatchOutput.gradient` on the GPU. */
  get gradientBuffer(): GPUBuffer {
    return this.shared.gradient;
  }

  /** Uploads templates θ [K, N, N]; later evaluations that omit `templates` use them. */
  setTemplates(templates: ArrayLike<number>): void {
    this.checkAlive('setTemplates');
    const pixels = this.shape.size * this.shape.size;
    validateTemplates(templates, this.shape.classes * pixels, pixels);
    this.uploadTemplates(templates);
  }

  private uploadTemplates(templates: ArrayLike<number>): void {
    this.device.queue.writeBuffer(this.shared.templates, 0, toFloat32(templates));
    this.templatesSet = true;
  }

  /** Reads the templates θ [K, N, N] now on the GPU. */
  async readTemplates(): Promise<Float32Array> {
    this.checkAlive('readTemplates');
    const count = this.shape.classes * this.shape.size * this.shape.size;
    const staging = this.readBuffer(count, 'templates');
    const encoder = this.device.createCommandEncoder({ label: 'templates readback' });
    encoder.copyBufferToBuffer(this.shared.templates, 0, staging, 0, count * BYTES);
    this.device.queue.submit([encoder.finish()]);
    return readFloat32(staging);
  }

  /**
   * Fills every output and intermediate buffer with `value`. Tests call it with NaN
   * before an evaluation to show that the kernels overwrite every element.
   */
  fillOutputs(value: number): void {
    this.checkAlive('fillOutputs');
    const names = ['energy', 'gamma', 'logIntegral', 'weightedEnergy'] as const;
    const fill = (buffer: GPUBuffer) =>
      this.device.queue.writeBuffer(buffer, 0, new Float32Array(buffer.size / BYTES).fill(value));
    fill(this.shared.partial);
    fill(this.shared.gradient);
    for (const sub of this.subBatches) {
      for (const name of names) fill(sub[name]);
    }
  }

  /** Evaluates the batch on the GPU; see `BatchOutput` for what each field holds. */
  async evaluate(input: EngineInput, options: EvaluateOptions = {}): Promise<BatchOutput> {
    this.checkAlive('evaluate');
    const count = validateBatch(this.shape, input);
    if (!input.templates && !this.templatesSet) {
      throw new Error('PoseEngine.evaluate: no templates given and none uploaded; pass templates or call setTemplates first');
    }
    const device = this.device;
    const { size, classes } = this.shape;
    const pixels = size * size;
    const terms = classes * posesOf(this.shape);
    const images = toFloat32(input.images);
    const queue = device.queue;
    // Shift nodes the FFT kernel cannot take are rejected before anything is uploaded.
    const nodes = this.plan.fft ? this.shiftNodeTables(input) : undefined;
    // validateBatch has checked the templates already.
    if (input.templates) this.uploadTemplates(input.templates);
    queue.writeBuffer(this.shared.shiftX, 0, toFloat32(input.shiftsX));
    queue.writeBuffer(this.shared.shiftY, 0, toFloat32(input.shiftsY));
    queue.writeBuffer(this.shared.scales, 0, toFloat32(input.scales));
    queue.writeBuffer(this.shared.logWeight, 0, toFloat32(input.logWeights));
    queue.writeBuffer(this.shared.logClass, 0, toFloat32(input.logClassWeights));
    if (nodes) {
      queue.writeBuffer(this.shared.nodeX, 0, nodes.x);
      queue.writeBuffer(this.shared.nodeY, 0, nodes.y);
    }

    const active = this.subBatches.filter((sub) => sub.first < count);
    // Readbacks are per sub-batch, so none exceeds the sizes the storage bindings obey.
    const readbacks: { sub: SubBatch; images: number; scalars: GPUBuffer; gamma?: GPUBuffer; energy?: GPUBuffer }[] = [];
    let gradient: GPUBuffer | undefined;
    device.pushErrorScope('out-of-memory');
    device.pushErrorScope('validation');
    try {
      const encoder = device.createCommandEncoder({ label: 'pose integral batch' });
      active.forEach((sub, index) => {
        const subImages = Math.min(sub.capacity, count - sub.first);
        this.writeSubBatch(sub, images, input, subImages, index > 0, options.flatLikelihood === true);
        const withGradient = options.computeGradient !== false;
        if (sub.fft) this.encodeFftSubBatch(encoder, sub, subImages, index, withGradient);
        else this.encodeSubBatch(encoder, sub, subImages, index, withGradient);
        const readback = {
          sub,
          images: subImages,
          scalars: this.readBuffer(2 * subImages, `sub-batch ${index} log integrals`),
          gamma: options.responsibilities ? this.readBuffer(subImages * terms, `sub-batch ${index} responsibilities`) : undefined,
          energy: options.energy ? this.readBuffer(subImages * terms, `sub-batch ${index} squared residuals`) : undefined,
        };
        readbacks.push(readback);
        encoder.copyBufferToBuffer(sub.logIntegral, 0, readback.scalars, 0, subImages * BYTES);
        encoder.copyBufferToBuffer(sub.weightedEnergy, 0, readback.scalars, subImages * BYTES, subImages * BYTES);
        if (readback.gamma) encoder.copyBufferToBuffer(sub.gamma, 0, readback.gamma, 0, subImages * terms * BYTES);
        if (readback.energy) encoder.copyBufferToBuffer(sub.energy, 0, readback.energy, 0, subImages * terms * BYTES);
      });
      if (options.gradient !== false && options.computeGradient !== false) {
        gradient = this.readBuffer(classes * pixels, 'template gradient');
        encoder.copyBufferToBuffer(this.shared.gradient, 0, gradient, 0, classes * pixels * BYTES);
      }
      queue.submit([encoder.finish()]);
    } finally {
      const validation = await device.popErrorScope();
      const memory = await device.popErrorScope();
      const failure = validation ?? memory;
      if (failure) {
        for (const readback of readbacks) [readback.scalars, readback.gamma, readback.energy].forEach((b) => b?.destroy());
        gradient?.destroy();
        throw new GpuError(`pose integral batch failed on the device: ${failure.message}`);
      }
    }

    const output: BatchOutput = {
      logIntegral: new Float64Array(count),
      weightedEnergy: new Float64Array(count),
      gradient: new Float64Array(0),
    };
    if (options.responsibilities) output.responsibilities = new Float32Array(count * terms);
    if (options.energy) output.energy = new Float32Array(count * terms);
    try {
      await Promise.all([
        ...readbacks.map(async (readback) => {
          const { sub } = readback;
          const scalars = await readFloat32(readback.scalars);
          output.logIntegral.set(scalars.subarray(0, readback.images), sub.first);
          output.weightedEnergy.set(scalars.subarray(readback.images), sub.first);
          if (readback.gamma) (output.responsibilities as Float32Array).set(await readFloat32(readback.gamma), sub.first * terms);
          if (readback.energy) (output.energy as Float32Array).set(await readFloat32(readback.energy), sub.first * terms);
        }),
        gradient ? readFloat32(gradient).then((values) => (output.gradient = Float64Array.from(values))) : undefined,
      ]);
    } catch (error) {
      const detail = error instanceof Error ? `${error.name}: ${error.message || 'no message'}` : String(error);
      throw new GpuError(`reading the pose integral batch back failed (the device may be lost or destroyed): ${detail}`);
    }
    checkRange(output);
    return output;
  }

  private encodeSubBatch(encoder: GPUCommandEncoder, sub: SubBatch, images: number, index: number, withGradient: boolean): void {
    const { size, classes } = this.shape;
    const pixels = size * size;
    const poses = posesOf(this.shape);
    const maxGroups = this.device.limits.maxComputeWorkgroupsPerDimension;
    const units = images * poses;
    const chunks = Math.ceil(units / Math.ceil(units / this.plan.chunks));
    const pass = encoder.beginComputePass({ label: `sub-batch ${index} pass` });
    pass.setPipeline(this.kernels.energy.pipeline);
    pass.setBindGroup(0, sub.groups.energy);
    pass.dispatchWorkgroups(...dispatchSize(images * classes * poses, maxGroups));
    pass.setPipeline(this.kernels.logsumexp.pipeline);
    pass.setBindGroup(0, sub.groups.logsumexp);
    pass.dispatchWorkgroups(...dispatchSize(images, maxGroups));
    if (!withGradient) {
      pass.end();
      return;
    }
    pass.setPipeline(this.kernels.partial.pipeline);
    pass.setBindGroup(0, sub.groups.partial);
    const tiles = Math.ceil(pixels / GRADIENT_WORKGROUP);
    pass.dispatchWorkgroups(...dispatchSize(chunks * classes * tiles, maxGroups));
    pass.setPipeline(this.kernels.reduce.pipeline);
    pass.setBindGroup(0, sub.groups.reduce);
    pass.dispatchWorkgroups(...dispatchSize(Math.ceil((classes * pixels) / REDUCE_WORKGROUP), maxGroups));
    pass.end();
  }

  /**
   * Maps each periodic index of the FFT grid to the shift node there (or −1). Shifts must
   * be whole pixels within the reach the engine was built for.
   */
  private shiftNodeTables(input: EngineInput): { x: Int32Array<ArrayBuffer>; y: Int32Array<ArrayBuffer> } {
    const { size, reach } = this.plan.fft as FftPlan;
    const table = (field: 'shiftsX' | 'shiftsY'): Int32Array<ArrayBuffer> => {
      const nodes = new Int32Array(size).fill(-1);
      const values = input[field];
      for (let q = 0; q < values.length; q++) {
        // Nodes from a float64 linspace may miss a whole pixel by rounding.
        const d = Math.round(values[q]);
        if (!(Math.abs(values[q] - d) <= 1e-6) || Math.abs(d) > reach) {
          throw new RangeError(
            `batch input: ${field} is ${values[q]} at index ${q}; the FFT kernel takes whole-pixel shifts within ±${reach} ` +
              '(the engine\'s shiftReach); use the reference kernel for other shifts',
          );
        }
        const index = ((d % size) + size) % size;
        if (nodes[index] >= 0) {
          throw new RangeError(`batch input: ${field} has ${d} twice (indices ${nodes[index]} and ${q}); shift nodes must differ`);
        }
        nodes[index] = q;
      }
      return nodes;
    };
    return { x: table('shiftsX'), y: table('shiftsY') };
  }

  private encodeFftSubBatch(encoder: GPUCommandEncoder, sub: SubBatch, images: number, index: number, withGradient: boolean): void {
    const fft = this.plan.fft as FftPlan;
    const own = sub.fft as FftSubBatch;
    const { size, classes, shiftsX, shiftsY } = this.shape;
    const pixels = size * size;
    const L = fft.size;
    const kernels = this.fftKernels as NonNullable<PoseEngine['fftKernels']>;
    const maxGroups = this.device.limits.maxComputeWorkgroupsPerDimension;
    const elements = (count: number) => dispatchSize(Math.ceil(count / ELEMENT_WORKGROUP), maxGroups);
    const blockTiles = (blocks: number) => dispatchSize(blocks * tilesPerBlock(L), maxGroups);
    const chunkCount = own.chunks.length;
    const shared = own.shared;
    const pass = encoder.beginComputePass({ label: `sub-batch ${index} FFT pass` });
    const run = (kernel: CompiledKernel, group: GPUBindGroup, size: [number, number]) => {
      pass.setPipeline(kernel.pipeline);
      pass.setBindGroup(0, group);
      pass.dispatchWorkgroups(...size);
    };
    // A line set's lines of `count` blocks, LINE_WORKGROUP lines a workgroup.
    const lines = (set: FftLines, count: number) =>
      dispatchSize(Math.ceil((count * lineCount(set, L, size, fft.reach)) / LINE_WORKGROUP), maxGroups);
    run(kernels.spectraInput, own.spectraGroups.input, elements(2 * images * L * L));
    // Z is zero outside rows [0, N), which the extended rows include.
    run(kernels.rowsForwardExtended, own.spectraGroups.rows, lines('extended', 2 * images));
    run(kernels.columnsForward, own.spectraGroups.columns, lines('all', 2 * images));
    const countOf = (c: number) => Math.min(fft.groupsPerChunk, fft.blocksPerImage - c * fft.groupsPerChunk) * images;
    for (let c = 0; c < chunkCount; c++) {
      const { groups } = own.chunks[c];
      const count = countOf(c);
      // A is zero off the extended rows; E is read on the shift rows only.
      run(kernels.rotated, groups.rotated, blockTiles(count));
      run(kernels.rowsForwardExtended, groups.rowsForwardExtended, lines('extended', count));
      run(kernels.columnsForward, groups.columnsForward, lines('all', count));
      if (shared) run(kernels.sharedProduct, groups.sharedProduct, elements((count / images) * L * L));
      else run(kernels.productEnergy, groups.productEnergy, blockTiles(count));
      run(kernels.columnsInverse, groups.columnsInverse, lines('all', count));
      run(kernels.rowsInverseShifts, groups.rowsInverseShifts, lines('shifts', count));
      run(kernels.shiftEnergy, groups.shiftEnergy, elements(count * shiftsX * shiftsY));
    }
    run(this.kernels.logsumexp, sub.groups.logsumexp, dispatchSize(images, maxGroups));
    if (withGradient) {
      const tiles = Math.ceil(pixels / GATHER_WORKGROUP);
      for (let c = 0; c < chunkCount; c++) {
        const { groups } = own.chunks[c];
        const count = countOf(c);
        const gatherChunks = Math.ceil(count / Math.ceil(count / fft.gatherChunks));
        run(kernels.gammaFlags, groups.gammaFlags, dispatchSize(count, maxGroups));
        // Γ is zero off the shift rows; H + iW is read on the extended rows only.
        run(kernels.gammaMap, groups.gammaMap, blockTiles(count));
        run(kernels.rowsForwardShifts, groups.rowsForwardShifts, lines('shifts', count));
        run(kernels.columnsForward, groups.columnsForward, lines('all', count));
        run(kernels.productGradient, groups.productGradient, blockTiles(count));
        if (shared) {
          // The inverse transform is linear: one per group, of the sum of its spectra.
          run(kernels.groupSum, groups.groupSum, elements((count / images) * L * L));
          run(kernels.groupFlags, groups.groupFlags, elements(count / images));
        }
        run(kernels.columnsInverse, groups.columnsInverse, lines('all', count));
        run(kernels.rowsInverseExtended, groups.rowsInverseExtended, lines('extended', count));
        run(kernels.residualMap, groups.residualMap, blockTiles(count));
        run(kernels.gather, groups.gather, dispatchSize(gatherChunks * classes * tiles, maxGroups));
        run(this.kernels.reduce, groups.reduce, dispatchSize(Math.ceil((classes * pixels) / REDUCE_WORKGROUP), maxGroups));
      }
    }
    pass.end();
  }

  private writeSubBatch(
    sub: SubBatch,
    allImages: Float32Array<ArrayBuffer>,
    input: EngineInput,
    images: number,
    accumulate: boolean,
    flat: boolean,
  ): void {
    const { size, classes, rotations, shiftsX, shiftsY, scales } = this.shape;
    const pixels = size * size;
    const poses = posesOf(this.shape);
    const queue = this.device.queue;
    queue.writeBuffer(sub.images, 0, allImages.subarray(sub.first * pixels, (sub.first + images) * pixels));
    const cosSin = new Float32Array(images * rotations * 2);
    for (let i = 0; i < images * rotations; i++) {
      // cos and sin in float64 here: WGSL guarantees them only to 2^-11 absolute.
      const psi = input.rotations[sub.first * rotations + i];
      cosSin[2 * i] = Math.cos(psi);
      cosSin[2 * i + 1] = Math.sin(psi);
    }
    queue.writeBuffer(sub.rotations, 0, cosSin);
    const units = images * poses;
    const chunkUnits = Math.ceil(units / this.plan.chunks);
    const values: ParamsValues = {
      size,
      pixels,
      images,
      classes,
      rotations,
      shiftsX,
      shiftsY,
      scales,
      poses,
      chunkUnits,
      chunks: Math.ceil(units / chunkUnits),
      accumulate: accumulate ? 1 : 0,
      centre: Math.floor(size / 2),
      invTwoSigma2: flat ? 0 : 1 / (2 * input.sigma * input.sigma),
      invSigma2: 1 / (input.sigma * input.sigma),
    };
    const fft = this.plan.fft;
    if (!fft || !sub.fft) {
      const view = makeParamsView();
      view.set(values);
      queue.writeBuffer(sub.params, 0, view.arrayBuffer);
      return;
    }
    const L = fft.size;
    const common = { ...values, fftSize: L, reach: fft.reach, invFftArea: 1 / (L * L) };
    const view = makeParamsView();
    const norms = new Float32Array(images);
    let total = 0;
    for (let b = 0; b < images; b++) {
      let sum = 0;
      const offset = (sub.first + b) * pixels;
      for (let j = 0; j < pixels; j++) sum += allImages[offset + j] * allImages[offset + j];
      norms[b] = sum;
      total += sum;
    }
    // κ, the images' RMS value, or 1 for blank images (see the module comment of correlate.ts).
    const kappa = total > 0 ? Math.sqrt(total / (images * pixels)) : 1;
    // The sub-batch's own params serve logsumexp and the image spectra (2 blocks per image).
    view.set({ ...common, kappa, firstBlock: 0, blockCount: 2 * images });
    queue.writeBuffer(sub.params, 0, view.arrayBuffer);
    queue.writeBuffer(sub.fft.norms, 0, norms);
    const shared = sameRotations(input.rotations, sub.first, images, rotations);
    sub.fft.shared = shared;
    sub.fft.chunks.forEach((chunk, c) => {
      const firstGroup = c * fft.groupsPerChunk;
      const blockCount = Math.min(fft.groupsPerChunk, fft.blocksPerImage - firstGroup) * images;
      const unitsPerChunk = Math.ceil(blockCount / fft.gatherChunks);
      view.set({
        ...common,
        kappa,
        sharedNodes: shared ? 1 : 0,
        firstBlock: firstGroup * images,
        blockCount,
        chunkUnits: unitsPerChunk,
        chunks: Math.ceil(blockCount / unitsPerChunk),
        accumulate: accumulate || c > 0 ? 1 : 0,
      });
      queue.writeBuffer(chunk.params, 0, view.arrayBuffer);
    });
  }

  private readBuffer(count: number, label: string): GPUBuffer {
    return this.device.createBuffer({
      label: `${label} readback`,
      size: Math.max(count, 1) * BYTES,
      usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST,
    });
  }

  private checkAlive(method: string): void {
    if (this.destroyed) {
      throw new Error(`PoseEngine.${method}: the engine was destroyed; create a new one`);
    }
  }

  /** Releases every buffer the engine created; the engine is unusable afterwards. */
  destroy(): void {
    for (const buffer of this.buffers) buffer.destroy();
    this.buffers.length = 0;
    this.destroyed = true;
  }
}

/**
 * Rejects outputs that float32 could not represent: a term E/2σ² beyond float32's range
 * makes log Ĩ the lowest float32 or NaN, and γ NaN.
 */
function checkRange(output: BatchOutput): void {
  for (let b = 0; b < output.logIntegral.length; b++) {
    const logIntegral = output.logIntegral[b];
    if (!Number.isFinite(logIntegral) || logIntegral <= -3.4e38 || !Number.isFinite(output.weightedEnergy[b])) {
      throw new RangeError(
        `image ${b} of the batch: log Ĩ is ${logIntegral} and Σ γ E is ${output.weightedEnergy[b]}, beyond float32; ` +
          'E/2σ² overflowed, so raise σ or scale the images and templates down',
      );
    }
  }
}

/** Returns whether images [first, first + count) of the batch have the same rotation nodes. */
function sameRotations(rotations: ArrayLike<number>, first: number, count: number, perImage: number): boolean {
  for (let b = 1; b < count; b++) {
    for (let p = 0; p < perImage; p++) {
      if (rotations[(first + b) * perImage + p] !== rotations[first * perImage + p]) return false;
    }
  }
  return true;
}

/** Float32 view for writeBuffer: the array itself where it already is one, else a copy. */
function toFloat32(values: ArrayLike<number>): Float32Array<ArrayBuffer> {
  if (values instanceof Float32Array && values.buffer instanceof ArrayBuffer) {
    return values as Float32Array<ArrayBuffer>;
  }
  return Float32Array.from(values);
}

async function readFloat32(buffer: GPUBuffer): Promise<Float32Array> {
  await buffer.mapAsync(GPUMapMode.READ);
  const values = new Float32Array(buffer.getMappedRange().slice(0));
  buffer.unmap();
  buffer.destroy();
  return values;
}
