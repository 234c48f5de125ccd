/**
 * WebGPU for Node through Dawn (the `webgpu` package), with SwiftShader as the
 * fallback adapter on machines without a Vulkan-capable GPU.
 */
import { existsSync } from 'node:fs';
import { isMainThread } from 'node:worker_threads';
import { create, globals } from 'webgpu';

/** Vulkan ICD manifest of the SwiftShader CPU driver that Debian's `chromium` package ships. */
export const SWIFTSHADER_ICD = '/usr/lib/chromium/vk_swiftshader_icd.json';

/** The adapter's identity, for logs and benchmark reports. */
export interface AdapterDescription {
  vendor: string;
  architecture: string;
  device: string;
  description: string;
}

export interface NodeGpu {
  device: GPUDevice;
  adapter: GPUAdapter;
  info: AdapterDescription;
}

export function describeAdapter(adapter: GPUAdapter): AdapterDescription {
  const info = adapter.info;
  return {
    vendor: info.vendor,
    architecture: info.architecture,
    device: info.device,
    description: info.description,
  };
}

/**
 * Every `GPU` instance that handed out an adapter, kept for the life of the process.
 * Dawn frees an instance when it is garbage collected, even while its devices are in use,
 * and SwiftShader then crashes mid-dispatch (seen with webgpu 0.6.2).
 */
const instances: GPU[] = [];

async function requestAdapter(): Promise<GPUAdapter | null> {
  const gpu = create([]);
  const adapter = await gpu.requestAdapter({ powerPreference: 'high-performance' });
  if (adapter) instances.push(gpu);
  return adapter;
}

/**
 * Points the Vulkan loader at SwiftShader when Dawn finds no adapter and
 * `VK_ICD_FILENAMES` is unset; returns whether it did. Call it on the main thread before
 * starting a worker that opens a device: a worker's process.env is its own copy, which
 * the Vulkan loader never reads, so a worker cannot make this choice itself.
 */
export async function selectVulkanDriver(): Promise<boolean> {
  Object.assign(globalThis, globals);
  if (process.env.VK_ICD_FILENAMES || !existsSync(SWIFTSHADER_ICD)) return false;
  // The probe opens no device, so the instance may be collected afterwards.
  const adapter = await create([]).requestAdapter();
  if (adapter) return false;
  process.env.VK_ICD_FILENAMES = SWIFTSHADER_ICD;
  return true;
}

/**
 * Opens a WebGPU device in Node. Takes the first adapter Dawn offers; where there is
 * none and `VK_ICD_FILENAMES` is unset, points the Vulkan loader at SwiftShader and
 * tries once more. Throws when no adapter can be had, so GPU tests fail rather than skip.
 */
export async function requestNodeGpu(limits: Record<string, number> = {}): Promise<NodeGpu> {
  Object.assign(globalThis, globals);
  let adapter = await requestAdapter();
  if (!adapter && !process.env.VK_ICD_FILENAMES && existsSync(SWIFTSHADER_ICD)) {
    process.env.VK_ICD_FILENAMES = SWIFTSHADER_ICD;
    adapter = await requestAdapter();
  }
  if (!adapter) {
    const hint = isMainThread ? '' : ' In a worker thread, call selectVulkanDriver() on the main thread first.';
    throw new Error(
      `no WebGPU adapter found (VK_ICD_FILENAMES=${process.env.VK_ICD_FILENAMES ?? 'unset'}); ` +
        `install a Vulkan driver, or Debian's chromium and libvulkan1 for SwiftShader at ${SWIFTSHADER_ICD}.${hint}`,
    );
  }
  const requiredLimits: Record<string, number> = {};
  for (const [name, value] of Object.entries(limits)) {
    const supported = (adapter.limits as unknown as Record<string, number>)[name];
    requiredLimits[name] = Math.min(value, supported);
  }
  const device = await adapter.requestDevice({ label: 'classify2d device', requiredLimits });
  return { device, adapter, info: describeAdapter(adapter) };
}
