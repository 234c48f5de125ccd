/**
 * One WebGPU device per test file, on the machine's GPU or SwiftShader. Opening it
 * throws when no adapter exists, so GPU tests fail rather than skip. dawn.node does not
 * deliver `uncapturederror` events to JavaScript, so an error scope held open for the
 * whole file catches any validation or out-of-memory error that no inner scope took,
 * and fails the file when it closes.
 */
import { afterAll, expect } from 'vitest';

import { requestNodeGpu, type NodeGpu } from '../src/node-gpu.js';

export async function openTestGpu(): Promise<NodeGpu> {
  const gpu = await requestNodeGpu();
  gpu.device.pushErrorScope('out-of-memory');
  gpu.device.pushErrorScope('validation');
  afterAll(async () => {
    const validation = await gpu.device.popErrorScope();
    const memory = await gpu.device.popErrorScope();
    gpu.device.destroy();
    expect(validation?.message ?? null, 'WebGPU validation error outside the engine').toBeNull();
    expect(memory?.message ?? null, 'WebGPU out-of-memory error outside the engine').toBeNull();
  });
  return gpu;
}
