/**
 * The uniform block shared by every kernel. One struct for all kernels keeps the
 * packing in one place; each kernel reads the fields it needs.
 */
export const PARAMS_WGSL = /* wgsl */ `
struct Params {
  size: u32,          // N: image side, pixels
  pixels: u32,        // J = N * N
  images: u32,        // images in this sub-batch
  classes: u32,       // K templates
  rotations: u32,     // rotation nodes per image
  shiftsX: u32,       // shift nodes along x
  shiftsY: u32,       // shift nodes along y
  scales: u32,        // scale nodes
  poses: u32,         // M = rotations * shiftsX * shiftsY * scales
  chunkUnits: u32,    // (image, pose) pairs summed by one gradient invocation
  chunks: u32,        // number of such chunks for this sub-batch
  accumulate: u32,    // 1: the gradient reduction adds to its output, 0: overwrites it
  centre: f32,        // rotation centre o = floor(N / 2), pixels
  invTwoSigma2: f32,  // 1 / (2 sigma^2)
  invSigma2: f32,     // 1 / sigma^2
  elements: u32,      // parameters updated by the optimiser kernel
  learningRate: f32,  // optimiser step size
  step: f32,          // optimiser step count t = 1, 2, ...
  gradientScale: f32, // factor on the data gradient before the prior term is added
  lambda: f32,        // Laplace prior weight: the update adds -lambda * sign(theta)
  groupSize: u32,     // parameters per group of the optimiser kernel (one template)
  fftSize: u32,       // L: side of the periodic grid of the FFT path
  reach: u32,         // D: largest |shift node| of the FFT path, whole pixels
  firstBlock: u32,    // first block (image, class, rotation, scale) of an FFT-path dispatch
  blockCount: u32,    // blocks (or lines' blocks) in that dispatch
  invFftArea: f32,    // 1 / L^2, the normalisation of the inverse FFT
  sharedNodes: u32,   // 1: every image of the sub-batch has the same rotation nodes
  kappa: f32,         // FFT path: scale of the imaginary parts, the images' RMS value
}
`;

/** Field values of `Params`, in the units its comments give. */
export interface ParamsValues {
  size: number;
  pixels: number;
  images: number;
  classes: number;
  rotations: number;
  shiftsX: number;
  shiftsY: number;
  scales: number;
  poses: number;
  chunkUnits: number;
  chunks: number;
  accumulate: number;
  centre: number;
  invTwoSigma2: number;
  invSigma2: number;
  /** The optimiser fields; the pose-integral kernels leave them 0. */
  elements?: number;
  learningRate?: number;
  step?: number;
  gradientScale?: number;
  lambda?: number;
  groupSize?: number;
  /** The FFT-path fields; the other kernels leave them 0. */
  fftSize?: number;
  reach?: number;
  firstBlock?: number;
  blockCount?: number;
  invFftArea?: number;
  sharedNodes?: number;
  kappa?: number;
}
