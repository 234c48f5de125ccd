/**
 * The demo's inputs: the built-in example, a simulation from a dropped PNG, an MRC stack,
 * or a RELION particle file with its stacks, all read in the page.
 */
import mandrillUrl from 'baboon-image/baboon.png?inline';

import { resample } from '../gpu/host.js';
import { checkImages, imagesOf, MrcError, readMrc, type MrcFile } from '../src/mrc.js';
import { templateFromPicture } from '../src/picture.js';
import { readPng } from '../src/png.js';
import { parseStar, readParticles, StarError } from '../src/star.js';
import { figureTemplate, seededRandom, simulateStack, unitVariance } from '../src/synthetic.js';

export interface Dataset {
  /** [count, size, size]. */
  images: Float32Array;
  size: number;
  count: number;
  /** The template the images were simulated from, when known. */
  truth?: Float32Array;
  /** `_rlnImageName` of each image, for poses.star. */
  imageNames: string[];
  pixelSize: number;
  /** Description of the dataset for the status line. */
  description: string;
  /** Notes on images left out or constant. */
  notes: string[];
}

export interface SimulationSettings {
  images: number;
  snr: number;
  size: number;
  seed: number;
}

/** Decodes the inlined data: URL of the mandrill PNG without a fetch. */
function mandrillBytes(): Uint8Array {
  const base64 = mandrillUrl.slice(mandrillUrl.indexOf(',') + 1);
  const text = atob(base64);
  const bytes = new Uint8Array(text.length);
  for (let i = 0; i < text.length; i++) bytes[i] = text.charCodeAt(i);
  return bytes;
}

function checkSettings(settings: SimulationSettings): void {
  const { images, snr, size, seed } = settings;
  if (!Number.isSafeInteger(images) || images < 1) throw new RangeError(`Images is ${images}; it must be an integer of at least 1`);
  if (!(snr > 0) || !Number.isFinite(snr)) throw new RangeError(`SNR is ${snr}; it must be a number > 0`);
  if (!Number.isSafeInteger(size) || size < 8 || size > 256) throw new RangeError(`Box size is ${size}; it must be an integer from 8 to 256 pixels`);
  if (!Number.isSafeInteger(seed) || seed < 0) throw new RangeError(`Seed is ${seed}; it must be an integer ≥ 0`);
}

/** Simulates a stack from a PNG picture, as `classify2d simulate` does, with fixed scale 1. */
function simulateFromPng(bytes: Uint8Array, name: string, settings: SimulationSettings): Dataset {
  checkSettings(settings);
  const png = readPng(bytes, name);
  const truth = templateFromPicture(png.image, png.width, png.height, settings.size);
  const stack = simulateStack(truth, settings.size, { count: settings.images, snr: settings.snr, seed: settings.seed, scaleHalfRange: 0 }, resample);
  return {
    images: stack.images,
    size: settings.size,
    count: settings.images,
    truth,
    imageNames: stack.poses.map((_, i) => `${String(i + 1).padStart(6, '0')}@simulated.mrcs`),
    pixelSize: 1,
    description: `${settings.images} images of ${settings.size}² simulated from ${name} at SNR ${settings.snr} (noise σ ${stack.sigma.toPrecision(4)})`,
    notes: [],
  };
}

/**
 * Simulates the built-in example: the mandrill alone, or with two views, half the images
 * of the mandrill and half of a synthetic figure scaled to the same pixel variance, in a
 * seeded random order.
 */
export function exampleDataset(settings: SimulationSettings, views: 1 | 2 = 1): Dataset {
  if (views === 1) return simulateFromPng(mandrillBytes(), 'the mandrill picture', settings);
  checkSettings(settings);
  const { size, snr, seed } = settings;
  const png = readPng(mandrillBytes(), 'the mandrill picture');
  const figure = unitVariance(figureTemplate(size));
  const templates = [templateFromPicture(png.image, png.width, png.height, size), figure];
  const counts = [Math.ceil(settings.images / 2), Math.floor(settings.images / 2)];
  const stacks = templates.map((template, v) => simulateStack(template, size, { count: Math.max(counts[v], 1), snr, seed: seed + v, scaleHalfRange: 0 }, resample));
  const sources = counts.flatMap((count, v) => Array.from({ length: count }, (_, i) => [v, i] as const));
  const random = seededRandom(seed ^ 0x2545f491);
  for (let i = sources.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [sources[i], sources[j]] = [sources[j], sources[i]];
  }
  const pixels = size * size;
  const images = new Float32Array(sources.length * pixels);
  sources.forEach(([v, i], slot) => images.set(stacks[v].images.subarray(i * pixels, (i + 1) * pixels), slot * pixels));
  return {
    images,
    size,
    count: sources.length,
    imageNames: sources.map((_, i) => `${String(i + 1).padStart(6, '0')}@simulated.mrcs`),
    pixelSize: 1,
    description: `${sources.length} images of ${size}² of two views (${counts[0]} of the mandrill, ${counts[1]} of a figure) at SNR ${snr}`,
    notes: [],
  };
}

function fileBytes(file: File): Promise<Uint8Array> {
  return file.arrayBuffer().then((buffer) => new Uint8Array(buffer));
}

function baseName(path: string): string {
  return path.slice(path.lastIndexOf('/') + 1);
}

/**
 * Reads the dropped files: one PNG (simulated from), one MRC stack, or one STAR file and
 * the stacks it names, matched by file name because a page cannot read folders.
 * @throws MrcError, StarError, PngError or RangeError naming the file and the value
 */
export async function datasetFromFiles(files: File[], settings: SimulationSettings, dropNonFinite: boolean): Promise<Dataset> {
  if (files.length === 0) throw new RangeError('No files chosen: drop a .mrcs stack, a .star file with its stacks, or a .png');
  const byExtension = (extension: string) => files.filter((file) => file.name.toLowerCase().endsWith(extension));
  const stars = byExtension('.star');
  const pngs = byExtension('.png');
  if (stars.length > 1) throw new RangeError(`Several STAR files were dropped (${stars.map((f) => f.name).join(', ')}); drop one with its stacks`);
  if (stars.length === 1) return datasetFromStar(stars[0], files, dropNonFinite);
  if (pngs.length > 0) return simulateFromPng(await fileBytes(pngs[0]), pngs[0].name, settings);
  const stacks = files.filter((file) => /\.(mrcs?|st)$/i.test(file.name));
  if (stacks.length !== 1) {
    throw new RangeError(`Drop exactly one .mrcs stack (or a .star file naming several); got ${files.map((f) => f.name).join(', ')}`);
  }
  const file = readMrc(await fileBytes(stacks[0]), stacks[0].name);
  const checked = checkImages(file, { dropNonFinite });
  const { size } = imagesOf(file);
  return {
    images: checked.data,
    size,
    count: checked.kept.length,
    imageNames: checked.kept.map((z) => `${String(z + 1).padStart(6, '0')}@${file.name}`),
    pixelSize: file.header.pixelSize ?? 1,
    description: `${checked.kept.length} images of ${size}² from ${file.name}`,
    notes: describeChecks(file.name, checked.dropped, checked.constant),
  };
}

function describeChecks(name: string, dropped: number[], constant: number[]): string[] {
  const notes: string[] = [];
  if (dropped.length > 0) notes.push(`${name}: left out ${dropped.length} images with NaN or infinite pixels (z = ${dropped.slice(0, 8).join(', ')})`);
  if (constant.length > 0) notes.push(`${name}: ${constant.length} images are constant and carry no signal`);
  return notes;
}

async function datasetFromStar(star: File, files: File[], dropNonFinite: boolean): Promise<Dataset> {
  const { particles } = readParticles(parseStar(await star.text(), star.name), star.name);
  if (particles.length === 0) throw new StarError(`${star.name}: the particle table has no rows`);
  const stacks = new Map<string, { file: MrcFile; kept: Set<number> }>();
  const notes: string[] = [];
  for (const particle of particles) {
    const name = baseName(particle.stackPath);
    if (stacks.has(name)) continue;
    const dropped = files.find((file) => file.name === name);
    if (!dropped) {
      throw new StarError(`${star.name} names the stack '${particle.stackPath}', which was not dropped; drop ${name} together with ${star.name}`);
    }
    const file = readMrc(await fileBytes(dropped), name);
    imagesOf(file);
    const checked = checkImages(file, { dropNonFinite });
    stacks.set(name, { file, kept: new Set(checked.kept) });
    notes.push(...describeChecks(name, checked.dropped, checked.constant));
  }

  const sizes = new Set([...stacks.values()].map(({ file }) => file.header.nx));
  if (sizes.size > 1) throw new MrcError(`The stacks of ${star.name} have different box sizes (${[...sizes].join(', ')} pixels)`);
  const size = [...sizes][0];
  const pixels = size * size;
  const images: Float32Array[] = [];
  const imageNames: string[] = [];
  particles.forEach((particle, row) => {
    const { file, kept } = stacks.get(baseName(particle.stackPath))!;
    if (particle.index >= file.header.nz) {
      throw new StarError(`${star.name}: particle ${row + 1} is image ${particle.index + 1} of ${file.name}, which contains ${file.header.nz} images`);
    }
    if (!kept.has(particle.index)) return;
    images.push(file.data.subarray(particle.index * pixels, (particle.index + 1) * pixels));
    imageNames.push(`${String(particle.index + 1).padStart(6, '0')}@${particle.stackPath}`);
  });

  const data = new Float32Array(images.length * pixels);
  images.forEach((image, i) => data.set(image, i * pixels));
  const pixelSize = particles[0].pixelSize ?? [...stacks.values()][0].file.header.pixelSize ?? 1;
  return {
    images: data,
    size,
    count: images.length,
    imageNames,
    pixelSize,
    description: `${images.length} images of ${size}² from ${star.name}`,
    notes,
  };
}
