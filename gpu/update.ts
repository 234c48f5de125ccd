/**
 * The optimiser step for the templates θ, run where they live, on the GPU, as a
 * proximal gradient step for the Laplace term −λ‖θ‖₁:
 *
 *   θ'_i = update(i, θ_i, gradientScale · G_i, lr, t),   θ_i ← sign(θ'_i) max(|θ'_i| − lr λ, 0)
 *
 * with G the data gradient the engine left in its gradient buffer and `update` the WGSL
 * of an optimiser plugin. The soft threshold shrinks pixels to exactly 0, where a
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
  let moved = update(i, theta[i], P.gradientScale * gradient[i], P.learningRate, P.step);
  theta[i] = sign(moved) * max(abs(moved) - P.learningRate * P.lambda, 0.0);
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
}

/** Applies an optimiser plugin to a parameter buffer in place, with its state on the GPU. */
export class GpuOptimiser {
  private readonly kernel: CompiledKernel;
  private readonly params: GPUBuffer;
  private readonly state: GPUBuffer;
  private readonly group: GPUBindGroup;

  constructor(
    private readonly device: GPUDevice,
    plugin: OptimiserPlugin,
    hyper: HyperParameters,
    parameters: GPUBuffer,
    gradient: GPUBuffer,
    private readonly elements: number,
  ) {
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
    this.group = bindKernel(
      device,
      this.kernel,
      { P: this.params, theta: parameters, gradient, state: this.state },
      `${plugin.name} update bind group`,
    );
  }

  /** Submits one update of every element. */
  apply(step: UpdateStep): void {
    const view = makeParamsView();
    view.set({ elements: this.elements, ...step });
    this.device.queue.writeBuffer(this.params, 0, view.arrayBuffer);
    const encoder = this.device.createCommandEncoder({ label: 'optimiser step' });
    const pass = encoder.beginComputePass({ label: 'optimiser step pass' });
    pass.setPipeline(this.kernel.pipeline);
    pass.setBindGroup(0, this.group);
    const groups = Math.ceil(this.elements / UPDATE_WORKGROUP);
    pass.dispatchWorkgroups(...dispatchSize(groups, this.device.limits.maxComputeWorkgroupsPerDimension));
    pass.end();
    this.device.queue.submit([encoder.finish()]);
  }

  destroy(): void {
    this.params.destroy();
    this.state.destroy();
  }
}
