/**
 * Reads PNG images as grey templates and writes grey PNGs for viewing, through fast-png 8.
 * Uses no Node APIs, so it runs in browsers too.
 */
import { convertIndexedToRgb, decode, encode } from 'fast-png';
import type { DecodedPng } from 'fast-png';

export class PngError extends Error {
  override name = 'PngError';
}

/** A decoded PNG as a grey image. */
export interface PngImage {
  /** Luminance in [0, 1], row-major [height, width]. */
  image: Float32Array;
  width: number;
  height: number;
  /** Bits per stored sample, as in the file: for palette images, bits per palette index. */
  depth: number;
  /** Channels as stored: 1 grey or palette index, 2 grey + alpha, 3 RGB, 4 RGBA. */
  channels: number;
}

export interface WritePngOptions {
  /** Value written as black. The default is the image's minimum. */
  min?: number;
  /** Value written as white. The default is the image's maximum. */
  max?: number;
  /** Bits per sample, 8 (default) or 16. */
  depth?: 8 | 16;
}

export interface MontageOptions {
  /** Tiles per row. The default is ceil(sqrt(number of images)). */
  columns?: number;
  /** Pixels between tiles, at the background value 0. The default is 1. */
  gap?: number;
}

/**
 * Rec. 709 luminance coefficients, applied to the stored (gamma-encoded) values as they are.
 * NOTE: no gamma linearisation is done, so this is luma Y' rather than linear luminance.
 */
const LUMA_RED = 0.2126;
const LUMA_GREEN = 0.7152;
const LUMA_BLUE = 0.0722;

/**
 * Decodes a PNG into a grey image in [0, 1]. Grey is taken as is, the alpha channel is
 * ignored, RGB is reduced to Rec. 709 luma, and palette images are expanded through the palette.
 * Samples are divided by 2^depth − 1 (255 for 8-bit, 65535 for 16-bit).
 */
export function readPng(bytes: Uint8Array, name = 'PNG data'): PngImage {
  let png: DecodedPng;
  try {
    png = decode(bytes);
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    throw new PngError(
      `${name}: PNG decoding failed: ${message}. Check that the file is a complete PNG image.`,
    );
  }

  const { width, height, depth, channels } = png;
  const image = png.palette ? paletteLuminance(png, name) : sampleLuminance(png, name);
  return { image, width, height, depth, channels };
}

function paletteLuminance(png: DecodedPng, name: string): Float32Array {
  let rgb: Uint8Array;
  try {
    rgb = convertIndexedToRgb(png);
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    throw new PngError(`${name}: palette expansion failed: ${message}. Check that the PNG is valid.`);
  }
  // The palette colours have 3 entries, or 4 where a tRNS chunk adds alpha.
  const entries = png.palette![0]?.length ?? 3;
  return luminance(rgb, png.width * png.height, entries, 255);
}

function sampleLuminance(png: DecodedPng, name: string): Float32Array {
  const { width, height, depth, channels } = png;
  const pixels = width * height;
  if (depth === 8 || depth === 16) {
    return luminance(png.data, pixels, channels, depth === 8 ? 255 : 65535);
  }
  if (channels !== 1) {
    throw new PngError(
      `${name}: bit depth ${depth} with ${channels} channels is invalid in PNG, because ` +
        'only grey and palette images may have fewer than 8 bits per sample.',
    );
  }
  return luminance(unpackGrey(png.data, width, height, depth), pixels, 1, 2 ** depth - 1);
}

/** Expands grey samples of 1, 2 or 4 bits, packed big-end first with each row byte-aligned. */
function unpackGrey(data: ArrayLike<number>, width: number, height: number, depth: number): Uint8Array {
  const out = new Uint8Array(width * height);
  const rowBytes = Math.ceil((width * depth) / 8);
  const mask = 2 ** depth - 1;
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const bit = x * depth;
      const byte = data[y * rowBytes + (bit >> 3)];
      out[y * width + x] = (byte >> (8 - depth - (bit & 7))) & mask;
    }
  }
  return out;
}

/** Converts interleaved samples to luma in [0, 1], ignoring a second (grey) or fourth (RGB) channel as alpha. */
function luminance(data: ArrayLike<number>, pixels: number, channels: number, maxValue: number): Float32Array {
  const image = new Float32Array(pixels);
  for (let i = 0; i < pixels; i++) {
    const base = i * channels;
    if (channels <= 2) {
      image[i] = data[base] / maxValue;
    } else {
      const y = LUMA_RED * data[base] + LUMA_GREEN * data[base + 1] + LUMA_BLUE * data[base + 2];
      image[i] = y / maxValue;
    }
  }
  return image;
}

/** Crops the central square of side min(width, height). An odd margin leaves its extra pixel at the end. */
export function squareImage(
  image: ArrayLike<number>,
  width: number,
  height: number,
): { image: Float32Array; size: number } {
  checkDimensions('squareImage', image, width, height);
  checkFinite('squareImage', image);
  const size = Math.min(width, height);
  const left = Math.floor((width - size) / 2);
  const top = Math.floor((height - size) / 2);
  const out = new Float32Array(size * size);
  for (let y = 0; y < size; y++) {
    for (let x = 0; x < size; x++) {
      out[y * size + x] = image[(top + y) * width + left + x];
    }
  }
  return { image: out, size };
}

/**
 * Encodes a grey PNG, mapping [min, max] linearly onto [0, 2^depth − 1] and clipping values
 * outside. Where min equals max (a constant image by default), pixels equal to it are mid-grey.
 */
export function writePng(
  image: ArrayLike<number>,
  width: number,
  height: number,
  options: WritePngOptions = {},
): Uint8Array {
  checkDimensions('writePng', image, width, height);
  checkFinite('writePng', image);
  const depth = options.depth ?? 8;
  if (depth !== 8 && depth !== 16) {
    throw new PngError(`writePng: depth is ${String(depth)}. Pass 8 or 16`);
  }
  const range = imageRange(image);
  const min = options.min ?? range.min;
  const max = options.max ?? range.max;
  checkRangeOption('min', min);
  checkRangeOption('max', max);
  if (min > max) {
    throw new PngError(`writePng: min ${min} is greater than max ${max}. Pass min ≤ max`);
  }

  const maxValue = depth === 8 ? 255 : 65535;
  const data = depth === 8 ? new Uint8Array(image.length) : new Uint16Array(image.length);
  for (let i = 0; i < image.length; i++) {
    data[i] = Math.round(scaleToUnit(image[i], min, max) * maxValue);
  }
  return encode({ width, height, data, depth, channels: 1 });
}

/**
 * Tiles square images of side `size` in rows, left to right then top to bottom, each scaled to
 * [0, 1] by its own min and max (a constant tile is 0.5). Gaps and unused cells are 0.
 */
export function montage(
  images: ArrayLike<number>[],
  size: number,
  options: MontageOptions = {},
): { image: Float32Array; width: number; height: number } {
  if (images.length === 0) throw new PngError('montage: no images were given. Pass at least one');
  checkCount('montage', 'size', size, 1);
  const columns = options.columns ?? Math.ceil(Math.sqrt(images.length));
  const gap = options.gap ?? 1;
  checkCount('montage', 'columns', columns, 1);
  checkCount('montage', 'gap', gap, 0);

  const rows = Math.ceil(images.length / columns);
  const width = columns * size + (columns - 1) * gap;
  const height = rows * size + (rows - 1) * gap;
  const out = new Float32Array(width * height);
  images.forEach((tile, n) => {
    const label = `montage: image ${n}`;
    if (tile.length !== size * size) {
      throw new PngError(
        `${label} has ${tile.length} values, but expected size × size = ${size * size}`,
      );
    }
    checkFinite(label, tile);
    const { min, max } = imageRange(tile);
    const left = (n % columns) * (size + gap);
    const top = Math.floor(n / columns) * (size + gap);
    for (let y = 0; y < size; y++) {
      for (let x = 0; x < size; x++) {
        out[(top + y) * width + left + x] = scaleToUnit(tile[y * size + x], min, max);
      }
    }
  });
  return { image: out, width, height };
}

/** Maps [min, max] onto [0, 1], clipped. Where min equals max, that value maps to 0.5. */
function scaleToUnit(value: number, min: number, max: number): number {
  if (value <= min && value < max) return 0;
  if (value >= max && value > min) return 1;
  if (max === min) return 0.5;
  return (value - min) / (max - min);
}

function imageRange(image: ArrayLike<number>): { min: number; max: number } {
  let min = Infinity;
  let max = -Infinity;
  for (let i = 0; i < image.length; i++) {
    if (image[i] < min) min = image[i];
    if (image[i] > max) max = image[i];
  }
  return { min, max };
}

function checkFinite(label: string, image: ArrayLike<number>): void {
  for (let i = 0; i < image.length; i++) {
    if (!Number.isFinite(image[i])) {
      throw new PngError(
        `${label}: value ${image[i]} at index ${i} is not finite. Replace NaN and infinite values first`,
      );
    }
  }
}

function checkDimensions(label: string, image: ArrayLike<number>, width: number, height: number): void {
  checkCount(label, 'width', width, 1);
  checkCount(label, 'height', height, 1);
  if (image.length !== width * height) {
    throw new PngError(
      `${label}: image has ${image.length} values, but expected width × height = ${width} × ${height} = ${width * height}`,
    );
  }
}

function checkCount(label: string, field: string, value: number, least: number): void {
  if (!Number.isInteger(value) || value < least) {
    throw new PngError(`${label}: ${field} is ${value}, but it must be an integer ≥ ${least}`);
  }
}

function checkRangeOption(field: string, value: number): void {
  if (!Number.isFinite(value)) {
    throw new PngError(`writePng: ${field} is ${value}, but it must be a finite number`);
  }
}
