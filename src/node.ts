/** Node-only entry point: WebGPU through Dawn, with the SwiftShader fallback. */
export { describeAdapter, requestNodeGpu, SWIFTSHADER_ICD, type AdapterDescription, type NodeGpu } from './node-gpu.js';
