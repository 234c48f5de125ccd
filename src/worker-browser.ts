/// <reference lib="webworker" />
/** Browser module-worker entry: WebGPU from navigator.gpu. */
import { serveReconstruction } from './worker-core.js';

serveReconstruction(self as unknown as import('comlink').Endpoint, async () => {
  if (!('gpu' in navigator) || !navigator.gpu) {
    throw new Error('WebGPU is not available in this browser (navigator.gpu is missing); use a browser with WebGPU enabled');
  }
  const adapter = await navigator.gpu.requestAdapter({ powerPreference: 'high-performance' });
  if (!adapter) throw new Error('WebGPU found no adapter: requestAdapter() returned null');
  const device = await adapter.requestDevice({ label: 'classify2d device' });
  const info = adapter.info;
  return { device, info: { vendor: info.vendor, architecture: info.architecture, device: info.device, description: info.description } };
});
