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
import { posesOf, validateBatch, validateShape, type BatchOutput, type EngineInput, type EngineShape, type EvaluateOptions } from './batch.js';
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
    this.maxBindingBytes = options.maxBindingBytes ?? device.limits.maxStorageBufferBindingSize;
    if (!(this.maxBindingBytes >= 256) || this.maxBindingBytes > device.limits.maxStorageBufferBindingSize) {
      throw new RangeError(
        `engine options: maxBindingBytes is ${options.maxBindingBytes}; it must lie in ` +
          `[256, ${device.limits.maxStorageBufferBindingSize}] (the device's maxStorageBufferBindingSize)`,
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
    const expected = this.shape.classes * this.shape.size * this.shape.size;
    if (templates.length !== expected) {
      throw new RangeError(`setTemplates: ${templates.length} values, expected ${expected} ([K, N, N])`);
    }
    this.device.queue.writeBuffer(this.shared.templates, 0, toFloat32(templates));
  }

  /** Reads the templates θ [K, N, N] now on the GPU. */
  async readTemplates(): Promise<Float32Array> {
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
    if (this.destroyed) {
      throw new Error('PoseEngine.evaluate: the engine was destroyed; create a new one');
    }
    const count = validateBatch(this.shape, input);
    const device = this.device;
    const { size, classes, rotations } = this.shape;
    const pixels = size * size;
    const poses = posesOf(this.shape);
    const terms = classes * poses;
    const queue = device.queue;
    if (input.templates) queue.writeBuffer(this.shared.templates, 0, toFloat32(input.templates));
    queue.writeBuffer(this.shared.shiftX, 0, toFloat32(input.shiftsX));
    queue.writeBuffer(this.shared.shiftY, 0, toFloat32(input.shiftsY));
    queue.writeBuffer(this.shared.scales, 0, toFloat32(input.scales));
    queue.writeBuffer(this.shared.logWeight, 0, toFloat32(input.logWeights));
    queue.writeBuffer(this.shared.logClass, 0, toFloat32(input.logClassWeights));

    device.pushErrorScope('out-of-memory');
    device.pushErrorScope('validation');
    const encoder = device.createCommandEncoder({ label: 'pose integral batch' });
    const scalars = this.readBuffer(2 * count, 'log integrals and weighted squared residuals');
    const gradient = options.gradient === false ? undefined : this.readBuffer(classes * pixels, 'template gradient');
    const gamma = options.responsibilities ? this.readBuffer(count * terms, 'responsibilities') : undefined;
    const energy = options.energy ? this.readBuffer(count * terms, 'squared residuals') : undefined;
    const active = this.subBatches.filter((sub) => sub.first < count);
    active.forEach((sub, index) => {
      const images = Math.min(sub.capacity, count - sub.first);
      this.writeSubBatch(sub, input, images, index > 0, options.flatLikelihood === true);
      const maxGroups = device.limits.maxComputeWorkgroupsPerDimension;
      const units = images * poses;
      const chunkUnits = Math.ceil(units / this.plan.chunks);
      const chunks = Math.ceil(units / chunkUnits);
      const pass = encoder.beginComputePass({ label: `sub-batch ${index} pass` });
      pass.setPipeline(this.kernels.energy.pipeline);
      pass.setBindGroup(0, sub.groups.energy);
      pass.dispatchWorkgroups(...dispatchSize(images * terms, maxGroups));
      pass.setPipeline(this.kernels.logsumexp.pipeline);
      pass.setBindGroup(0, sub.groups.logsumexp);
      pass.dispatchWorkgroups(...dispatchSize(images, maxGroups));
      pass.setPipeline(this.kernels.partial.pipeline);
      pass.setBindGroup(0, sub.groups.partial);
      const tiles = Math.ceil(pixels / GRADIENT_WORKGROUP);
      pass.dispatchWorkgroups(...dispatchSize(chunks * classes * tiles, maxGroups));
      pass.setPipeline(this.kernels.reduce.pipeline);
      pass.setBindGroup(0, sub.groups.reduce);
      pass.dispatchWorkgroups(...dispatchSize(Math.ceil((classes * pixels) / REDUCE_WORKGROUP), maxGroups));
      pass.end();
      encoder.copyBufferToBuffer(sub.logIntegral, 0, scalars, sub.first * BYTES, images * BYTES);
      encoder.copyBufferToBuffer(sub.weightedEnergy, 0, scalars, (count + sub.first) * BYTES, images * BYTES);
      if (gamma) encoder.copyBufferToBuffer(sub.gamma, 0, gamma, sub.first * terms * BYTES, images * terms * BYTES);
      if (energy) encoder.copyBufferToBuffer(sub.energy, 0, energy, sub.first * terms * BYTES, images * terms * BYTES);
    });
    if (gradient) encoder.copyBufferToBuffer(this.shared.gradient, 0, gradient, 0, classes * pixels * BYTES);
    queue.submit([encoder.finish()]);
    const validation = await device.popErrorScope();
    const memory = await device.popErrorScope();
    const failure = validation ?? memory;
    const staging = [scalars, gradient, gamma, energy].filter((b): b is GPUBuffer => b !== undefined);
    if (failure) {
      staging.forEach((buffer) => buffer.destroy());
      throw new GpuError(`pose integral batch failed on the device: ${failure.message}`);
    }
    const [scalarValues, gradientValues, gammaValues, energyValues] = await Promise.all(
      [scalars, gradient, gamma, energy].map((buffer) => (buffer ? readFloat32(buffer) : undefined)),
    );
    const output: BatchOutput = {
      logIntegral: Float64Array.from(scalarValues!.subarray(0, count)),
      weightedEnergy: Float64Array.from(scalarValues!.subarray(count, 2 * count)),
      gradient: gradientValues ? Float64Array.from(gradientValues) : new Float64Array(0),
    };
    if (gammaValues) output.responsibilities = gammaValues;
    if (energyValues) output.energy = energyValues;
    return output;
  }

  private writeSubBatch(sub: SubBatch, input: EngineInput, images: number, accumulate: boolean, flat: boolean): void {
    const { size, classes, rotations, shiftsX, shiftsY, scales } = this.shape;
    const pixels = size * size;
    const poses = posesOf(this.shape);
    const queue = this.device.queue;
    queue.writeBuffer(sub.images, 0, toFloat32(input.images.subarray(sub.first * pixels, (sub.first + images) * pixels)));
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

  /** Releases every buffer the engine created; the engine is unusable afterwards. */
  destroy(): void {
    for (const buffer of this.buffers) buffer.destroy();
    this.buffers.length = 0;
    this.destroyed = true;
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
