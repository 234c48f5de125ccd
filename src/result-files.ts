/**
 * The files of a finished reconstruction, encoded in memory, so that the command line
 * writes them and the demo offers them as downloads from the same bytes. Uses no Node APIs.
 */
import { writeMrc } from './mrc.js';
import { montage, writePng } from './png.js';
import type { ReconstructionResult } from './reconstruct.js';
import { writeParticleStar, type Microscope } from './star.js';

export interface ResultFileOptions {
  /** Pixel size written to the MRC headers and poses.star, Å. */
  pixelSize: number;
  /** `_rlnImageName` of each image, in the order of result.poses. */
  imageNames: string[];
  /** Microscope values for the optics table of poses.star; relion_import's defaults where absent. */
  microscope?: Microscope;
}

/**
 * Returns the number of classes that images were assigned to. They come first in
 * result.classes, which is sorted by size, so they are the images of classes.mrcs and
 * each image's _rlnClassNumber indexes that stack.
 */
export function supportedClasses(result: ReconstructionResult): number {
  return result.classes.filter((summary) => summary.images > 0).length;
}

/**
 * Encodes the result's files by name. template.mrc and template.png (the largest class)
 * always come first. classes.mrcs and classes.png follow when there are several classes
 * and images were assigned to them, poses.star when the run computed poses, and
 * halves.mrcs after a split-half validation.
 */
export function resultFiles(result: ReconstructionResult, options: ResultFileOptions): Map<string, Uint8Array | string> {
  const { size } = result;
  const { pixelSize } = options;
  const pixels = size * size;
  const files = new Map<string, Uint8Array | string>();
  files.set('template.mrc', writeMrc(result.template, size, size, 1, { pixelSize, labels: ['classify2d template'] }));
  files.set('template.png', writePng(result.template, size, size));

  const supported = supportedClasses(result);
  if (result.classes.length > 1 && supported > 0) {
    const averages = result.templates.slice(0, supported * pixels);
    files.set('classes.mrcs', writeMrc(averages, size, size, supported, { pixelSize, labels: ['classify2d class averages, largest class first'] }));
    const tiles = Array.from({ length: supported }, (_, k) => averages.subarray(k * pixels, (k + 1) * pixels));
    const gallery = montage(tiles, size);
    files.set('classes.png', writePng(gallery.image, gallery.width, gallery.height));
  }

  if (result.poses.length > 0) {
    const rows = result.poses.map((pose, i) => ({ imageName: options.imageNames[i], ...pose }));
    files.set('poses.star', writeParticleStar(rows, { pixelSize, imageSize: size, ...options.microscope }));
  }

  if (result.validation) {
    const halves = new Float32Array(2 * pixels);
    halves.set(result.validation.halves[0], 0);
    halves.set(result.validation.halves[1], pixels);
    files.set('halves.mrcs', writeMrc(halves, size, size, 2, { pixelSize, labels: ['classify2d split-half templates'] }));
  }
  return files;
}
