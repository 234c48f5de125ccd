/**
 * Random pose-integral problems for the engine tests: a smooth random template, images
 * made from it by random poses plus Gaussian noise, and a pose grid around them.
 */
import type { BatchInput, EngineShape } from '../gpu/batch.js';
import { resample } from '../gpu/host.js';
import type { Numerics, PoseGridSpec } from '../src/numerics.js';
import { gridFields } from '../src/pose-grid.js';
import { blobTemplate } from '../src/synthetic.js';
import { makeNormal, makeRandom } from './random.js';

export interface ProblemOptions {
  size: number;
  classes?: number;
  batch: number;
  rotations: number;
  /** Half-width of each image's rotation window, radians; absent: the full circle. */
  halfWidth?: number;
  /** Shift nodes per axis, spanning ±(shifts − 1)/2 pixels. */
  shifts: number;
  scales: number;
  /** Noise standard deviation added to the images and used as σ. */
  noise?: number;
}

export interface Problem {
  shape: EngineShape;
  input: BatchInput;
}

export function makeProblem(numerics: Numerics, seed: number, options: ProblemOptions): Problem {
  const random = makeRandom(seed);
  const normal = makeNormal(random);
  const { size, batch, rotations, shifts, scales } = options;
  const classes = options.classes ?? 1;
  const noise = options.noise ?? 0.3;
  const pixels = size * size;
  const reach = (shifts - 1) / 2;
  const spec: PoseGridSpec = {
    rotation: { count: rotations, halfWidth: options.halfWidth },
    shiftX: { count: shifts, min: -reach, max: reach },
    shiftY: { count: shifts, min: -reach, max: reach },
    scale: { count: scales, min: 0.95, max: 1.05 },
    shiftSd: Math.max(1, 0.05 * size),
    scaleHalfRange: 0.06,
  };
  const templates = new Float32Array(classes * pixels);
  for (let k = 0; k < classes; k++) templates.set(blobTemplate(size, random), k * pixels);
  const images = new Float32Array(batch * pixels);
  const model = new Float64Array(pixels);
  const centres = new Float64Array(batch);
  for (let b = 0; b < batch; b++) {
    const psi = 2 * Math.PI * random();
    centres[b] = options.halfWidth === undefined ? 0 : psi + 0.3 * (random() - 0.5);
    const k = Math.floor(random() * classes);
    const pose = {
      cos: Math.cos(psi),
      sin: Math.sin(psi),
      a: reach * (2 * random() - 1),
      b: reach * (2 * random() - 1),
      scale: 0.95 + 0.1 * random(),
    };
    resample(size, templates.subarray(k * pixels, (k + 1) * pixels), pose, model);
    for (let q = 0; q < pixels; q++) images[b * pixels + q] = model[q] + noise * normal();
  }
  // The model is fitted from a perturbed template, so no pose matches exactly.
  for (let e = 0; e < templates.length; e++) templates[e] += 0.2 * normal();
  const logClassWeights = Array.from({ length: classes }, (_, k) => Math.log((k + 1) / ((classes * (classes + 1)) / 2)));
  const shape: EngineShape = { size, classes, rotations, shiftsX: shifts, shiftsY: shifts, scales, batch };
  const input: BatchInput = {
    images,
    templates,
    logClassWeights,
    ...gridFields(numerics, spec, centres),
    sigma: noise * 4,
  };
  return { shape, input };
}
