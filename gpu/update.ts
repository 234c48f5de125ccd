/**
 * The optimiser step for the templates θ, run where they live, on the GPU, as a
 * proximal gradient step for the Laplace term −λ‖θ‖₁:
 *
 *   θ'_i = update(i, θ_i, s_g · gradientScale · G_i, lr, t),   θ_i ← sign(θ'_i) max(|θ'_i| − lr s_g λ, 0)
 *
 * with G the data gradient the engine left in its gradient buffer and `update` the WGSL
 * of an optimiser plugin. The parameters form equal groups (one template θ_k each), and
 * s_g is group g's scale: the preconditioner of a class, whose curvature grows with the
 * images it holds. The soft threshold shrinks pixels to exactly 0, where a
 * subgradient step −λ sign θ would make them oscillate around 0 for a large λ. The
 * pipeline is built per plugin and hyper-parameter set.
 */
import type { HyperParameters, OptimiserPlugin } from '../plugins/optimisers.js';
import { bindKernel, compileKernel, dispatchSize, makeParamsView, PARAMS_BINDING, type CompiledKernel, type KernelSpec } from './kernel.js';

/** 64 invocations, one parameter each. */
export const UPDATE_WORKGROUP = 64;

function hyperConstants(hyper: HyperParameters): string {
  return Object.entries(hyper)
    .map(([name, value]) => `const H_${name}: f32 = ${Math.fround(value).toExponential()};`)
    .join('\n');
}

export function updateKernel(plugin: OptimiserPlugin, hyper: HyperParameters): KernelSpec {
  const settings = Object.entries(hyper)
    .map(([name, value]) => `${name}=${value}`)
    .join(',');
  return {
    name: `update ${plugin.name}(${settings})`,
    workgroupSize: UPDATE_WORKGROUP,
    bindings: [
      PARAMS_BINDING,
      { name: 'theta', access: 'write', type: 'array<f32>' }, // [elements]
      { name: 'gradient', access: 'read', type: 'array<f32>' }, // [elements]
      { name: 'state', access: 'write', type: 'array<f32>' }, // [stateCount, elements]
      { name: 'groupScale', access: 'read', type: 'array<f32>' }, // [groups]
    ],
    body: /* wgsl */ `
${hyperConstants(hyper)}

fn readState(k: u32, i: u32) -> f32 {
  return state[k * P.elements + i];
}

fn writeState(k: u32, i: u32, v: f32) {
  state[k * P.elements + i] = v;
}

fn update(i: u32, value: f32, grad: f32, lr: f32, t: f32) -> f32 {
${plugin.wgsl}
}

fn main(
  @builtin(workgroup_id) wg: vec3u,
  @builtin(num_workgroups) groups: vec3u,
  @builtin(local_invocation_index) lane: u32,
) {
  let i = (wg.y * groups.x + wg.x) * WG + lane;
  if (i >= P.elements) {
    return;
  }
  let s = groupScale[i / P.groupSize];
  let moved = update(i, theta[i], s * P.gradientScale * gradient[i], P.learningRate, P.step);
  theta[i] = sign(moved) * max(abs(moved) - P.learningRate * s * P.lambda, 0.0);
}
`,
  };
}

export interface UpdateStep {
  learningRate: number;
  /** Step count t, from 1. */
  step: number;
  gradientScale: number;
  lambda: number;
  /** Scale s_g of each group, applied to its gradient and its λ; all 1 when absent. */
  groupScales?: ArrayLike<number>;
}

/** Applies an optimiser plugin to a parameter buffer in place, with its state on the GPU. */
export class GpuOptimiser {
  private readonly kernel: CompiledKernel;
  private readonly params: GPUBuffer;
  private readonly state: GPUBuffer;
  private readonly scales: GPUBuffer;
  private readonly group: GPUBindGroup;
  private readonly groupSize: number;
  private readonly stateCount: number;

  constructor(
    private readonly device: GPUDevice,
    plugin: OptimiserPlugin,
    hyper: HyperParameters,
    parameters: GPUBuffer,
    gradient: GPUBuffer,
    private readonly elements: number,
    private readonly groups = 1,
  ) {
    if (!Number.isSafeInteger(groups) || groups < 1 || elements % groups !== 0) {
      throw new RangeError(`GpuOptimiser: ${elements} elements do not split into ${groups} equal groups`);
    }
    this.groupSize = elements / groups;
    this.stateCount = plugin.stateCount;
    this.kernel = compileKernel(device, updateKernel(plugin, hyper));
    this.params = device.createBuffer({
      label: `${plugin.name} update params`,
      size: makeParamsView().arrayBuffer.byteLength,
      usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST,
    });
    // A zero-state plugin still binds a state buffer, of one element.
    this.state = device.createBuffer({
      label: `${plugin.name} optimiser state`,
      size: Math.max(plugin.stateCount * elements, 1) * 4,
      usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST,
    });
    this.scales = device.createBuffer({
      label: `${plugin.name} group scales`,
      size: groups * 4,
      usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST,
    });
    this.group = bindKernel(
      device,
      this.kernel,
      { P: this.params, theta: parameters, gradient, state: this.state, groupScale: this.scales },
      `${plugin.name} update bind group`,
    );
  }

  /** Submits one update of every element. */
  apply(step: UpdateStep): void {
    const { groupScales, ...values } = step;
    const scales = new Float32Array(this.groups).fill(1);
    if (groupScales !== undefined) {
      if (groupScales.length !== this.groups) {
        throw new RangeError(`GpuOptimiser.apply: ${groupScales.length} group scales for ${this.groups} groups`);
      }
      scales.set(Array.from(groupScales));
    }
    const view = makeParamsView();
    view.set({ elements: this.elements, groupSize: this.groupSize, ...values });
    this.device.queue.writeBuffer(this.params, 0, view.arrayBuffer);
    this.device.queue.writeBuffer(this.scales, 0, scales);
    const encoder = this.device.createCommandEncoder({ label: 'optimiser step' });
    const pass = encoder.beginComputePass({ label: 'optimiser step pass' });
    pass.setPipeline(this.kernel.pipeline);
    pass.setBindGroup(0, this.group);
    const groups = Math.ceil(this.elements / UPDATE_WORKGROUP);
    pass.dispatchWorkgroups(...dispatchSize(groups, this.device.limits.maxComputeWorkgroupsPerDimension));
    pass.end();
    this.device.queue.submit([encoder.finish()]);
  }

  /** Zeroes the optimiser state (momentum, moments) of one group, as for a fresh start. */
  resetGroup(group: number): void {
    if (!Number.isSafeInteger(group) || group < 0 || group >= this.groups) {
      throw new RangeError(`GpuOptimiser.resetGroup: group ${group} is not in 0 … ${this.groups - 1}`);
    }
    const zeros = new Float32Array(this.groupSize);
    for (let slot = 0; slot < this.stateCount; slot++) {
      this.device.queue.writeBuffer(this.state, (slot * this.elements + group * this.groupSize) * 4, zeros);
    }
  }

  destroy(): void {
    this.params.destroy();
    this.state.destroy();
    this.scales.destroy();
  }
}
