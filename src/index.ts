/** The public API of classify2d; runs in browsers, workers and Node alike. */
export { PoseEngine, GpuError, type EngineOptions, type EnginePlan } from '../gpu/engine.js';
export type { BatchInput, BatchOutput, EngineInput, EngineShape, EvaluateOptions } from '../gpu/batch.js';
export { evaluateHost, hostGradientMagnitude, hostLogIntegralSum, resample, type HostPose } from '../gpu/host.js';
export { GpuOptimiser } from '../gpu/update.js';
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
export {
  reconstruct,
  stackDeviation,
  type ImagePose,
  type Progress,
  type ReconstructionResult,
  type RunControl,
  type Stack,
} from './reconstruct.js';
export { resolveOptions, type Initialisation, type ReconstructionOptions } from './options.js';
export { createBrowserReconstructor, wrapWorker, type Reconstructor, type RunOptions, type WorkerHandle } from './client.js';
export { WorkerTerminatedError, type WorkerApi } from './protocol.js';
export {
  blobTemplate,
  figureTemplate,
  normalDeviates,
  seededRandom,
  simulateStack,
  unitVariance,
  type SimulatedStack,
  type SimulationOptions,
  type TruePose,
} from './synthetic.js';
export { optimisers, resolveHyperParameters, type HyperParameters, type OptimiserPlugin } from '../plugins/optimisers.js';
export { reparameterisations, SIGMA_FLOOR, type ReparameterisationPlugin } from '../plugins/reparameterisations.js';
export { Registry, type NamedPlugin } from '../plugins/registry.js';
export {
  alignTemplates,
  fourierRingCorrelation,
  frcCrossing,
  pearson,
  resolutionAngstrom,
  scoreTemplate,
  type Alignment,
  type AlignmentOptions,
  type AlignmentPose,
  type FourierRingCorrelation,
  type TemplateScore,
} from './metrics.js';
export {
  checkImages,
  decodeFloat16,
  imagesOf,
  MrcError,
  readMrc,
  writeMrc,
  type CheckedImages,
  type ImageStack,
  type MrcFile,
  type MrcHeader,
} from './mrc.js';
export {
  parseStar,
  readParticles,
  resolveStackPath,
  StarError,
  writeParticleStar,
  type ParticleStarRow,
  type StarFile,
  type StarParticle,
} from './star.js';
export { montage, PngError, readPng, squareImage, writePng, type PngImage } from './png.js';
export { resultFiles, supportedClasses, type ResultFileOptions } from './result-files.js';
export { discMask, resizeImage, templateFromPicture, type DiscMaskOptions } from './picture.js';
export { ClassWeights, type ClassSummary } from './classes.js';
