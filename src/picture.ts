/**
 * Turns an ordinary picture into a template: crops the central square, shrinks it by
 * area averaging and fades it to zero outside a disc. Uses no Node APIs.
 */
import { squareImage } from './png.js';

/**
 * Resizes a square image of side `size` to side `target` by area averaging: each output
 * pixel is the mean of the input over its footprint, with partial pixels weighted by the
 * overlap. Shrinking by an integer factor is plain binning. Enlarging repeats pixels.
 * @throws RangeError for sizes that are not positive integers or an image of the wrong length
 */
export function resizeImage(image: ArrayLike<number>, size: number, target: number): Float32Array {
  for (const [name, value] of [['size', size], ['target', target]] as const) {
    if (!Number.isSafeInteger(value) || value < 1) {
      throw new RangeError(`resizeImage: ${name} is ${value}; it must be a positive integer`);
    }
  }
  if (image.length !== size * size) {
    throw new RangeError(`resizeImage: the image has ${image.length} values, expected size² = ${size * size}`);
  }
  const weights = footprintWeights(size, target);
  const rows = new Float64Array(target * size);
  // Separable: average along x into [size rows, target columns], then along y.
  for (let y = 0; y < size; y++) {
    for (const { output, input, weight } of weights) {
      rows[y * target + output] += weight * image[y * size + input];
    }
  }
  const out = new Float32Array(target * target);
  for (const { output, input, weight } of weights) {
    for (let x = 0; x < target; x++) {
      out[output * target + x] += weight * rows[input * target + x];
    }
  }
  return out;
}

interface FootprintWeight {
  output: number;
  input: number;
  weight: number;
}

/** Overlap of output pixel j's footprint [j·s, (j + 1)·s), s = size/target, with each input pixel, divided by s. */
function footprintWeights(size: number, target: number): FootprintWeight[] {
  const step = size / target;
  const weights: FootprintWeight[] = [];
  for (let output = 0; output < target; output++) {
    const start = output * step;
    const end = start + step;
    for (let input = Math.floor(start); input < Math.min(size, Math.ceil(end)); input++) {
      const overlap = Math.min(end, input + 1) - Math.max(start, input);
      if (overlap > 0) weights.push({ output, input, weight: overlap / step });
    }
  }
  return weights;
}

export interface DiscMaskOptions {
  /** Radius where the mask starts to fall, as a fraction of the box side. Default 0.38. */
  radius?: number;
  /** Width of the raised-cosine edge from 1 to 0, as a fraction of the box side. Default 0.08. */
  edge?: number;
}

/**
 * Returns a mask [size, size]: 1 inside the disc of the given radius around the rotation
 * centre (⌊N/2⌋, ⌊N/2⌋), falling to 0 along a raised cosine of the given width, 0 beyond.
 */
export function discMask(size: number, options: DiscMaskOptions = {}): Float32Array {
  const radius = (options.radius ?? 0.38) * size;
  const edge = (options.edge ?? 0.08) * size;
  if (!(radius > 0) || !(edge >= 0) || !Number.isFinite(radius + edge)) {
    throw new RangeError(`discMask: radius ${options.radius} and edge ${options.edge} must be finite, with radius > 0 and edge ≥ 0`);
  }
  const centre = Math.floor(size / 2);
  const mask = new Float32Array(size * size);
  for (let y = 0; y < size; y++) {
    for (let x = 0; x < size; x++) {
      const distance = Math.hypot(x - centre, y - centre);
      let value = 0;
      if (distance <= radius) value = 1;
      else if (distance < radius + edge) value = 0.5 * (1 + Math.cos((Math.PI * (distance - radius)) / edge));
      mask[y * size + x] = value;
    }
  }
  return mask;
}

/**
 * Makes a template of side `size` from a picture [height, width]. The central square is
 * resized by area averaging and scaled to mean 0 and unit standard deviation inside the
 * mask, then multiplied by `discMask`. So the background is exactly 0, and nothing of the
 * template leaves the box when it rotates.
 * @throws PngError (from squareImage) for a picture of the wrong length or a non-finite pixel,
 *   and RangeError for a picture that is constant inside the mask
 */
export function templateFromPicture(
  picture: ArrayLike<number>,
  width: number,
  height: number,
  size: number,
  mask: DiscMaskOptions = {},
): Float32Array {
  const { image: square, size: side } = squareImage(picture, width, height);
  const resized = resizeImage(square, side, size);
  const weights = discMask(size, mask);
  let weightSum = 0;
  let mean = 0;
  for (let q = 0; q < resized.length; q++) {
    weightSum += weights[q];
    mean += weights[q] * resized[q];
  }
  mean /= weightSum;
  let variance = 0;
  for (let q = 0; q < resized.length; q++) variance += weights[q] * (resized[q] - mean) ** 2;
  const deviation = Math.sqrt(variance / weightSum);
  let largest = 0;
  for (const value of resized) largest = Math.max(largest, Math.abs(value));
  // Below 1e-6 of the values' magnitude, the variation is float32 rounding, not signal.
  if (!(deviation > 1e-6 * largest)) {
    throw new RangeError('templateFromPicture: the picture is constant inside the mask, so it has no signal');
  }

  const template = new Float32Array(size * size);
  for (let q = 0; q < template.length; q++) {
    // Written as +0 outside the mask, where the product would give −0 below the mean.
    template[q] = weights[q] === 0 ? 0 : (weights[q] * (resized[q] - mean)) / deviation;
  }
  return template;
}
