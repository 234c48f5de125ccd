/**
 * One contract for every compute kernel: a kernel declares its bindings and its body,
 * and this module generates the WGSL declarations, the bind group layout and the
 * pipeline, cached per device.
 */
import { makeShaderDataDefinitions, makeStructuredView } from 'webgpu-utils';

import { PARAMS_WGSL } from './params.js';

/** Access mode of a binding: the uniform parameters, a read-only or a writable storage array. */
export type BindingAccess = 'uniform' | 'read' | 'write';

export interface BindingSpec {
  name: string;
  access: BindingAccess;
  /** WGSL type of the binding, e.g. `array<f32>`; `Params` for the uniform block. */
  type: string;
}

export interface KernelSpec {
  /** Names the pipeline and every GPU object built for it. */
  name: string;
  bindings: readonly BindingSpec[];
  /** Invocations per workgroup; the body reads it as the constant `WG`. */
  workgroupSize: number;
  /**
   * WGSL that follows the generated declarations: helper functions and
   * `fn main(...)` without its `@compute @workgroup_size` attributes.
   */
  body: string;
}

/** The uniform block that every kernel binds at binding 0. */
export const PARAMS_BINDING: BindingSpec = { name: 'P', access: 'uniform', type: 'Params' };

function declaration(binding: BindingSpec, index: number): string {
  const space =
    binding.access === 'uniform'
      ? 'uniform'
      : binding.access === 'read'
        ? 'storage, read'
        : 'storage, read_write';
  return `@group(0) @binding(${index}) var<${space}> ${binding.name}: ${binding.type};`;
}

/** Builds the full WGSL source of a kernel. */
export function kernelSource(spec: KernelSpec): string {
  const declarations = spec.bindings.map(declaration).join('\n');
  const body = spec.body.replace(/\bfn main\b/, `@compute @workgroup_size(WG) fn main`);
  return `const WG: u32 = ${spec.workgroupSize}u;\n${PARAMS_WGSL}\n${declarations}\n${body}`;
}

export interface CompiledKernel {
  spec: KernelSpec;
  pipeline: GPUComputePipeline;
  layout: GPUBindGroupLayout;
}

const compiled = new WeakMap<GPUDevice, Map<string, CompiledKernel>>();

function layoutEntry(binding: BindingSpec, index: number): GPUBindGroupLayoutEntry {
  const type: GPUBufferBindingType =
    binding.access === 'uniform'
      ? 'uniform'
      : binding.access === 'read'
        ? 'read-only-storage'
        : 'storage';
  return { binding: index, visibility: GPUShaderStage.COMPUTE, buffer: { type } };
}

/** Returns the kernel's pipeline on this device, compiling it on first use. */
export function compileKernel(device: GPUDevice, spec: KernelSpec): CompiledKernel {
  let cache = compiled.get(device);
  if (!cache) {
    cache = new Map();
    compiled.set(device, cache);
  }
  const key = `${spec.name}/${spec.workgroupSize}`;
  const hit = cache.get(key);
  if (hit) {
    return hit;
  }
  const module = device.createShaderModule({ label: `${spec.name} shader`, code: kernelSource(spec) });
  const layout = device.createBindGroupLayout({
    label: `${spec.name} bind group layout`,
    entries: spec.bindings.map(layoutEntry),
  });
  const pipeline = device.createComputePipeline({
    label: `${spec.name} pipeline`,
    layout: device.createPipelineLayout({ label: `${spec.name} layout`, bindGroupLayouts: [layout] }),
    compute: { module, entryPoint: 'main' },
  });
  const kernel = { spec, pipeline, layout };
  cache.set(key, kernel);
  return kernel;
}

/** Binds buffers by the names the kernel declared. */
export function bindKernel(
  device: GPUDevice,
  kernel: CompiledKernel,
  buffers: Record<string, GPUBuffer>,
  label: string,
): GPUBindGroup {
  const entries = kernel.spec.bindings.map((binding, index) => {
    const buffer = buffers[binding.name];
    if (!buffer) {
      throw new Error(`kernel ${kernel.spec.name}: no buffer for binding '${binding.name}'`);
    }
    return { binding: index, resource: { buffer } };
  });
  return device.createBindGroup({ label, layout: kernel.layout, entries });
}

/**
 * Lays a count of workgroups out on a 2-D dispatch, because one dimension takes at
 * most `maxPerDimension` (65 535 by default). Kernels rebuild the linear index as
 * `workgroup_id.y * num_workgroups.x + workgroup_id.x` and skip indices past the count.
 */
export function dispatchSize(count: number, maxPerDimension: number): [number, number] {
  if (count <= maxPerDimension) {
    return [Math.max(count, 1), 1];
  }
  const rows = Math.ceil(count / maxPerDimension);
  if (rows > maxPerDimension) {
    throw new RangeError(
      `dispatch of ${count} workgroups exceeds ${maxPerDimension}² ; use a smaller batch or pose grid`,
    );
  }
  return [Math.ceil(count / rows), rows];
}

/** Typed view of the `Params` uniform struct, generated from its WGSL by webgpu-utils. */
export function makeParamsView() {
  const definitions = makeShaderDataDefinitions(PARAMS_WGSL);
  return makeStructuredView(definitions.structs.Params);
}
