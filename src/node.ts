/** Node-only entry point: WebGPU through Dawn with the SwiftShader fallback, and the worker-thread client. */
export {
  describeAdapter,
  requestNodeGpu,
  selectVulkanDriver,
  SWIFTSHADER_ICD,
  type AdapterDescription,
  type NodeGpu,
} from './node-gpu.js';
export { createNodeReconstructor } from './node-client.js';
