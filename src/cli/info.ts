/**
 * `classify2d info`: prints a file's header and statistics computed from its values as JSON,
 * for an MRC file, a STAR file or a PNG.
 */
import { readFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { extname, resolve } from 'node:path';

import { checkImages, readMrc } from '../mrc.js';
import { readPng } from '../png.js';
import { parseStar, readParticles, resolveStackPath, StarError } from '../star.js';
import type { CommandSpec, ParsedCommand } from './args.js';
import type { CommandContext } from './context.js';
import { formatJson } from './json.js';

export const infoCommand: CommandSpec = {
  name: 'info',
  usage: 'info <file.mrc | file.mrcs | file.star | file.png>',
  summary:
    "Prints a file's header and its statistics as JSON. For MRC files the statistics are computed " +
    'from the values (the header\'s own are printed apart, as stored); for STAR files, the blocks, their ' +
    'labels and row counts, and for particle files the stacks they name.',
  positionals: 1,
  flags: [],
};

interface Statistics {
  min: number;
  max: number;
  mean: number;
  standardDeviation: number;
  nonFinite: number;
}

/** Statistics over the finite values, in float64, with the count of the others. */
export function statisticsOf(values: ArrayLike<number>): Statistics {
  let count = 0;
  let nonFinite = 0;
  let min = Infinity;
  let max = -Infinity;
  let mean = 0;
  let squares = 0;
  for (let i = 0; i < values.length; i++) {
    const value = values[i];
    if (!Number.isFinite(value)) {
      nonFinite++;
      continue;
    }
    count++;
    min = Math.min(min, value);
    max = Math.max(max, value);
    // Welford's update, which stays accurate for large stacks with a large mean.
    const delta = value - mean;
    mean += delta / count;
    squares += delta * (value - mean);
  }
  if (count === 0) return { min: NaN, max: NaN, mean: NaN, standardDeviation: NaN, nonFinite };
  return { min, max, mean, standardDeviation: Math.sqrt(squares / count), nonFinite };
}

async function mrcInfo(path: string, bytes: Uint8Array) {
  const file = readMrc(bytes, path);
  const checked = checkImages(file, { dropNonFinite: true });
  return {
    format: 'MRC',
    path: resolve(path),
    header: file.header,
    statistics: statisticsOf(file.data),
    imagesWithNonFinitePixels: checked.dropped,
    constantImages: checked.constant,
    warnings: file.warnings,
  };
}

function starInfo(path: string, bytes: Uint8Array) {
  const star = parseStar(new TextDecoder().decode(bytes), path);
  const blocks = star.blocks.map((block) => ({
    name: block.name,
    line: block.line,
    values: Object.fromEntries([...block.values].map(([label, entry]) => [label, entry.value])),
    loops: block.loops.map((loop) => ({ line: loop.line, labels: loop.labels, rows: loop.rows.length })),
  }));
  let particles: unknown = null;
  try {
    const read = readParticles(star, path);
    const stacks = new Map<string, number>();
    for (const particle of read.particles) {
      const stackPath = resolveStackPath(path, particle.stackPath);
      stacks.set(stackPath, (stacks.get(stackPath) ?? 0) + 1);
    }
    particles = {
      version: read.version,
      count: read.particles.length,
      pixelSizes: [...new Set(read.particles.map((particle) => particle.pixelSize))],
      stacks: [...stacks].map(([stackPath, images]) => ({ path: stackPath, images, exists: existsSync(stackPath) })),
    };
  } catch (error) {
    // A STAR file need not be a particle file; its blocks are printed either way.
    if (!(error instanceof StarError)) throw error;
    particles = { error: error.message };
  }
  return { format: 'STAR', path: resolve(path), blocks, particles };
}

function pngInfo(path: string, bytes: Uint8Array) {
  const png = readPng(bytes, path);
  return {
    format: 'PNG',
    path: resolve(path),
    width: png.width,
    height: png.height,
    depth: png.depth,
    channels: png.channels,
    lumaStatistics: statisticsOf(png.image),
  };
}

export async function runInfo(parsed: ParsedCommand, context: CommandContext): Promise<number> {
  const path = parsed.positionals[0];
  let bytes: Uint8Array;
  try {
    bytes = new Uint8Array(await readFile(path));
  } catch (error) {
    throw new Error(`cannot read ${path}: ${(error as Error).message}`);
  }
  const extension = extname(path).toLowerCase();
  const info = extension === '.star' ? starInfo(path, bytes) : extension === '.png' ? pngInfo(path, bytes) : await mrcInfo(path, bytes);
  context.stdout.write(formatJson(info));
  return 0;
}
