/** The public API of classify2d; runs in browsers, workers and Node alike. */
export { PoseEngine, GpuError, type EngineOptions, type EnginePlan } from '../gpu/engine.js';
export type { BatchInput, BatchOutput, EngineShape, EvaluateOptions } from '../gpu/batch.js';
export { evaluateHost, hostGradientMagnitude, hostLogIntegralSum, resample, type HostPose } from '../gpu/host.js';
export {
  defaultShiftSd,
  loadNumerics,
  type AxisSpec,
  type Numerics,
  type PoseGrid,
  type PoseGridSpec,
  type RotationSpec,
} from './numerics.js';
export { gridFields, type GridFields } from './pose-grid.js';
export { composeObjective, type ObjectiveContext, type ObjectiveValue } from './objective.js';
export { blobTemplate, normalDeviates, seededRandom } from './synthetic.js';
