/**
 * Reading the command line's inputs (MRC stacks, RELION particle files, PNG pictures) and
 * writing its outputs without leaving half-written files.
 */
import { existsSync } from 'node:fs';
import { mkdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { extname, join, relative, resolve } from 'node:path';

import { checkImages, imagesOf, MrcError, readMrc, type MrcFile } from '../mrc.js';
import { readPng } from '../png.js';
import { parseStar, readParticles, resolveStackPath, StarError, type Microscope } from '../star.js';
import { UsageError } from './args.js';

/** Origin of an image of a loaded stack: its file and position. */
export interface ImageSource {
  /** Absolute path of the MRC stack. */
  stackPath: string;
  /** Image in that stack, 0-based. */
  index: number;
}

export interface LoadedStack {
  /** The kept images, [count, size, size]. */
  images: Float32Array;
  size: number;
  count: number;
  /** Å per pixel from the file, or null when the file gives none. */
  pixelSize: number | null;
  /** Source of each kept image, in order. */
  sources: ImageSource[];
  /** Images left out for a NaN or infinite pixel (only with dropNonFinite). */
  dropped: ImageSource[];
  /** Positions in `sources` of kept images whose pixels are all equal. */
  constant: number[];
  /** Problems that did not stop the read. */
  warnings: string[];
  /** Microscope values that every particle of a STAR file shares; empty otherwise. */
  microscope: Microscope;
}

export interface LoadStackOptions {
  /** Leave out images with a NaN or infinite pixel instead of raising. */
  dropNonFinite?: boolean;
}

/** Reads an MRC file, with the path in every message. */
export async function loadMrc(path: string): Promise<MrcFile> {
  return readMrc(await readBytes(path), path);
}

async function readBytes(path: string): Promise<Uint8Array> {
  try {
    return new Uint8Array(await readFile(path));
  } catch (error) {
    throw new Error(`${path}: cannot read the file: ${(error as Error).message}`);
  }
}

/**
 * Reads a stack of square images from an MRC stack or from a RELION particle file (`.star`)
 * and the stacks its `_rlnImageName` column names.
 * @throws MrcError or StarError naming the file, the field and the value
 */
export async function loadStack(path: string, options: LoadStackOptions = {}): Promise<LoadedStack> {
  if (extname(path).toLowerCase() === '.star') return loadParticleFile(path, options);
  const file = await loadMrc(path);
  const checked = checkImages(file, { dropNonFinite: options.dropNonFinite });
  imagesOf(file); // raises for images that are not square
  const stackPath = resolve(path);
  return {
    images: checked.data,
    size: file.header.nx,
    count: checked.kept.length,
    pixelSize: file.header.pixelSize,
    sources: checked.kept.map((index) => ({ stackPath, index })),
    dropped: checked.dropped.map((index) => ({ stackPath, index })),
    constant: checked.constant,
    warnings: [...file.warnings],
    microscope: {},
  };
}

async function loadParticleFile(path: string, options: LoadStackOptions): Promise<LoadedStack> {
  const text = new TextDecoder().decode(await readBytes(path));
  const { particles } = readParticles(parseStar(text, path), path);
  if (particles.length === 0) throw new StarError(`${path}: the particle table has no rows`);

  const stacks = new Map<string, { file: MrcFile; kept: Map<number, number>; constant: Set<number> }>();
  const warnings: string[] = [];
  for (const particle of particles) {
    const stackPath = resolve(resolveStackPath(path, particle.stackPath));
    if (stacks.has(stackPath)) continue;
    if (!existsSync(stackPath)) {
      throw new StarError(
        `${path}: _rlnImageName names the stack '${particle.stackPath}', but ${stackPath} does not exist. ` +
          'Paths are relative to the folder of the STAR file.',
      );
    }
    const file = await loadMrc(stackPath);
    imagesOf(file); // raises for images that are not square
    const checked = checkImages(file, { dropNonFinite: options.dropNonFinite });
    stacks.set(stackPath, {
      file,
      kept: new Map(checked.kept.map((z, i) => [z, i])),
      constant: new Set(checked.constant),
    });
    warnings.push(...file.warnings);
  }

  const first = stacks.values().next().value!.file.header;
  for (const [stackPath, { file }] of stacks) {
    if (file.header.nx !== first.nx) {
      throw new MrcError(
        `${stackPath}: images are ${file.header.nx}² pixels, but the other stacks of ${path} hold ` +
          `${first.nx}² images; all particles of one run must have the same box size`,
      );
    }
  }

  const size = first.nx;
  const pixelSize = commonPixelSize(path, particles.map((p) => p.pixelSize));
  const sources: ImageSource[] = [];
  const dropped: ImageSource[] = [];
  const constant: number[] = [];
  const kept: Float32Array[] = [];
  particles.forEach((particle, row) => {
    const stackPath = resolve(resolveStackPath(path, particle.stackPath));
    const stack = stacks.get(stackPath)!;
    const nz = stack.file.header.nz;
    if (particle.index >= nz) {
      throw new StarError(
        `${path}: particle ${row + 1} has _rlnImageName '${particle.index + 1}@${particle.stackPath}', ` +
          `but ${stackPath} holds ${nz} images (nz in its header)`,
      );
    }
    if (!stack.kept.has(particle.index)) {
      dropped.push({ stackPath, index: particle.index });
      return;
    }
    if (stack.constant.has(particle.index)) constant.push(sources.length);
    const pixels = size * size;
    kept.push(stack.file.data.subarray(particle.index * pixels, (particle.index + 1) * pixels));
    sources.push({ stackPath, index: particle.index });
  });

  const images = new Float32Array(kept.length * size * size);
  kept.forEach((image, i) => images.set(image, i * size * size));
  const headerPixelSize = first.pixelSize;
  return {
    images,
    size,
    count: kept.length,
    pixelSize: pixelSize ?? headerPixelSize,
    sources,
    dropped,
    constant,
    warnings,
    microscope: commonMicroscope(particles.map((particle) => particle.microscope), warnings, path),
  };
}

/**
 * Returns the microscope values that all particles share, so that poses.star can carry
 * them. Where they differ, returns none and warns, because poses.star has one optics group.
 */
function commonMicroscope(microscopes: Microscope[], warnings: string[], path: string): Microscope {
  const key = (microscope: Microscope) => JSON.stringify([microscope.voltage, microscope.sphericalAberration, microscope.amplitudeContrast]);
  const distinct = new Set(microscopes.map(key));
  if (distinct.size === 1) return microscopes[0];
  warnings.push(
    `${path}: the particles have ${distinct.size} different sets of voltage, Cs and amplitude contrast; ` +
      "poses.star has one optics group, so it gets relion_import's defaults instead",
  );
  return {};
}

function commonPixelSize(path: string, sizes: (number | null)[]): number | null {
  const known = [...new Set(sizes.filter((size): size is number => size !== null))];
  if (known.length > 1) {
    throw new StarError(
      `${path}: the particles have different pixel sizes (${known.slice(0, 4).join(', ')} Å); ` +
        'one reconstruction needs one pixel size, so split the file by optics group',
    );
  }
  return known[0] ?? null;
}

/** A grey picture or template read from a PNG or from the first image of an MRC file. */
export interface LoadedPicture {
  image: Float32Array;
  width: number;
  height: number;
  pixelSize: number | null;
  kind: 'png' | 'mrc';
}

/** Reads a PNG (as luma in [0, 1]) or an MRC file's first image. */
export async function loadPicture(path: string): Promise<LoadedPicture> {
  const bytes = await readBytes(path);
  if (extname(path).toLowerCase() === '.png') {
    const png = readPng(bytes, path);
    return { image: png.image, width: png.width, height: png.height, pixelSize: null, kind: 'png' };
  }
  const file = readMrc(bytes, path);
  const { nx, ny } = file.header;
  const image = file.data.slice(0, nx * ny);
  const bad = image.findIndex((value) => !Number.isFinite(value));
  if (bad >= 0) {
    throw new MrcError(`${path}: image 0 has a non-finite pixel ${image[bad]} at x ${bad % nx}, y ${Math.floor(bad / nx)}`);
  }
  return { image, width: nx, height: ny, pixelSize: file.header.pixelSize, kind: 'mrc' };
}

/**
 * Creates the output folder and checks that this process can write in it and that none of
 * the files about to be written exists. So an earlier run's results are never replaced by
 * accident, and a folder that rejects writes stops the command before the run, not after.
 * @throws UsageError naming --out when it is an existing file, cannot be created or cannot
 *   be written in, or naming the first existing file, unless force is set
 */
export async function prepareOutputFolder(command: string, folder: string, names: readonly string[], force: boolean): Promise<void> {
  const invalid = (reason: string) =>
    new UsageError(command, `classify2d ${command}: --out ${folder} ${reason}; choose another --out`);
  const existing = await stat(folder).catch(() => undefined);
  if (existing !== undefined && !existing.isDirectory()) throw invalid('is an existing file, not a folder');
  try {
    await mkdir(folder, { recursive: true });
  } catch (error) {
    throw invalid(`cannot be created (${(error as Error).message})`);
  }
  // Writing a file tests what the run does at its end. access() would check the real
  // user id, not the effective one that the writes use.
  const probe = join(folder, `.classify2d-write-test-${process.pid}`);
  try {
    await writeFile(probe, '');
    await rm(probe, { force: true });
  } catch (error) {
    throw invalid(`is not writable (${(error as Error).message})`);
  }
  if (force) return;
  for (const name of names) {
    const path = join(folder, name);
    if (existsSync(path)) {
      throw new UsageError(command, `classify2d ${command}: ${path} already exists; pass --force to replace it, or choose another --out`);
    }
  }
}

/**
 * Removes the files of `names` in the folder that this run did not write, so that after a
 * run with --force no file of an earlier run sits beside the new results. The caller runs
 * it after writing its own files.
 */
export async function removeStaleOutputs(folder: string, names: readonly string[], written: readonly string[]): Promise<void> {
  for (const name of names) {
    if (!written.includes(name)) await rm(join(folder, name), { force: true });
  }
}

/** Writes a file through a temporary name and a rename, so a crash never leaves it half-written. */
export async function writeOutput(path: string, data: Uint8Array | string): Promise<void> {
  const partial = `${path}.partial-${process.pid}`;
  try {
    await writeFile(partial, data);
    await rename(partial, path);
  } catch (error) {
    await rm(partial, { force: true });
    throw error;
  }
}

/** `_rlnImageName` of an image, with the stack path relative to the folder the STAR file is written in. */
export function imageName(source: ImageSource, starFolder: string): string {
  const path = relative(resolve(starFolder), source.stackPath).split('\\').join('/');
  return `${String(source.index + 1).padStart(6, '0')}@${path}`;
}

