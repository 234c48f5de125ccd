/**
 * The WebGPU engine: log Ĩ_b, the responsibilities and both gradients of the pose
 * integral for a batch of images, in one queue submission per batch.
 *
 * Per sub-batch of images the command encoder records four kernels:
 *
 *   energy          E[b, k, φ] = ‖X_b − R_φ θ_k‖²            one workgroup per term
 *   logsumexp       log Ĩ_b, γ[b, k, φ], Σ γ E               one workgroup per image
 *   gradientPartial Σ over a chunk of (b, φ) of γ R_φᵀ r     one invocation per (chunk, k, j)
 *   gradientReduce  Σ over chunks / σ², added to ∂/∂θ          one invocation per (k, j)
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
import type { ParamsValues } from './params.js';

export interface EngineOptions {
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
}

/** Splitting of a batch into sub-batches and of a sub-batch's (image, pose) pairs into chunks. */
export interface EnginePlan {
  imagesPerSubBatch: number;
  subBatches: number;
  /** Chunks of a full sub-batch, each summed by one gradient invocation per (k, j). */
  chunks: number;
}

export class PoseEngine {
  readonly device: GPUDevice;
  readonly shape: EngineShape;
  readonly plan: EnginePlan;
  private readonly kernels: Record<'energy' | 'logsumexp' | 'partial' | 'reduce', CompiledKernel>;
  private readonly shared: Record<string, GPUBuffer>;
  private readonly subBatches: SubBatch[];
  private readonly buffers: GPUBuffer[] = [];
  private readonly maxBindingBytes: number;
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
    this.plan = this.makePlan();
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
    this.subBatches = [];
    for (let s = 0; s < this.plan.subBatches; s++) {
      this.subBatches.push(this.makeSubBatch(s));
    }
  }

  private makePlan(): EnginePlan {
    const { size, classes, rotations, batch } = this.shape;
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
    const perImage = Math.max(pixels * BYTES, classes * poses * BYTES, rotations * 2 * BYTES);
    check('one image\'s terms [K, M]', perImage);
    const imagesPerSubBatch = Math.min(batch, Math.floor(limit / perImage));
    const units = imagesPerSubBatch * poses;
    const target = Math.ceil(GRADIENT_TARGET_INVOCATIONS / (classes * pixels));
    const fit = Math.floor(limit / (classes * pixels * BYTES));
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
    return { first, capacity, ...own, groups };
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
    // validateBatch has checked the templates already.
    if (input.templates) this.uploadTemplates(input.templates);
    queue.writeBuffer(this.shared.shiftX, 0, toFloat32(input.shiftsX));
    queue.writeBuffer(this.shared.shiftY, 0, toFloat32(input.shiftsY));
    queue.writeBuffer(this.shared.scales, 0, toFloat32(input.scales));
    queue.writeBuffer(this.shared.logWeight, 0, toFloat32(input.logWeights));
    queue.writeBuffer(this.shared.logClass, 0, toFloat32(input.logClassWeights));

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
        this.encodeSubBatch(encoder, sub, subImages, index, options.computeGradient !== false);
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
    const view = makeParamsView();
    view.set(values);
    queue.writeBuffer(sub.params, 0, view.arrayBuffer);
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
