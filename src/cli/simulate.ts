/**
 * `classify2d simulate`: makes a stack of noisy images of a template at random poses,
 * with the truth beside it, as files that `reconstruct`, `score` and RELION read.
 */
import { join, resolve } from 'node:path';

import { resample } from '../../gpu/host.js';
import { isConstant } from '../metrics.js';
import { writeMrc } from '../mrc.js';
import { resizeImage, templateFromPicture } from '../picture.js';
import { writePng } from '../png.js';
import { writeParticleStar } from '../star.js';
import { simulateStack, type SimulatedStack } from '../synthetic.js';
import { booleanFlag, numberFlag, stringFlag, UsageError, type CommandSpec, type ParsedCommand } from './args.js';
import type { CommandContext } from './context.js';
import { loadPicture, prepareOutputFolder, writeOutput } from './files.js';
import { formatJson } from './json.js';
import { packageVersion } from './version.js';

/** Box side of a template made from a PNG when --size is not given. */
const DEFAULT_PNG_SIZE = 64;

const OUTPUTS = ['stack.mrcs', 'particles.star', 'truth.mrc', 'truth.png', 'simulation.json'];

export const simulateCommand: CommandSpec = {
  name: 'simulate',
  usage: 'simulate <image.png | template.mrc> --n N --snr S --out DIR [options]',
  summary:
    'Simulates a stack of noisy images of a template. Each image is X = R_φ A + σ·noise, with the pose φ ' +
    'drawn from the priors. ' +
    'Writes stack.mrcs, particles.star (the true poses), truth.mrc, truth.png and simulation.json to DIR.',
  positionals: 1,
  flags: [
    { name: 'n', kind: 'integer', required: true, help: 'Number of images.' },
    { name: 'snr', kind: 'number', value: 'S', required: true, help: "Signal-to-noise ratio: the template's pixel variance over σ²." },
    { name: 'out', kind: 'string', value: 'DIR', required: true, help: 'Folder for the files, created if missing.' },
    {
      name: 'size',
      kind: 'integer',
      help: `Box side of the template, pixels (default for a PNG: its shorter side, at most ${DEFAULT_PNG_SIZE}; for an MRC: its own).`,
    },
    { name: 'shift-sd', kind: 'number', value: 'PIXELS', help: 'Standard deviation of the Gaussian shifts (default 5 % of the box).' },
    { name: 'scale-half-range', kind: 'number', value: 'E', help: 'Scales drawn from U[1 − E, 1 + E] (default 0.05).' },
    { name: 'pixel-size', kind: 'number', value: 'ANGSTROM', help: "Pixel size written to the files, Å (default: the MRC's, else 1)." },
    { name: 'seed', kind: 'integer', help: 'Seed of the poses and the noise (default 1).' },
    { name: 'force', kind: 'boolean', help: 'Replace files already in DIR.' },
  ],
  notes: [
    'A PNG becomes a template as follows: its central square is shrunk by area averaging to --size, ' +
      'its mean is removed, it is scaled to unit standard deviation and faded to 0 outside a disc ' +
      'of radius 0.38 box. An MRC template is used as it is, resized only when --size is given.',
  ],
};

export interface Simulation {
  truth: Float32Array;
  size: number;
  stack: SimulatedStack;
  pixelSize: number;
}

export async function runSimulate(parsed: ParsedCommand, context: CommandContext): Promise<number> {
  const input = parsed.positionals[0];
  const out = resolve(stringFlag(parsed, 'out')!);
  const count = numberFlag(parsed, 'n')!;
  const snr = numberFlag(parsed, 'snr')!;
  const requestedSize = numberFlag(parsed, 'size');
  const pixelSizeFlag = numberFlag(parsed, 'pixel-size');
  const shiftSd = numberFlag(parsed, 'shift-sd');
  const scaleHalfRange = numberFlag(parsed, 'scale-half-range');
  const seed = numberFlag(parsed, 'seed') ?? 1;
  const invalid = (flag: string, value: number, rule: string) =>
    new UsageError('simulate', `classify2d simulate: --${flag} is ${value}; it must be ${rule}`);
  if (count < 1) throw invalid('n', count, 'at least 1');
  if (!(snr > 0)) throw invalid('snr', snr, 'a number > 0');
  if (requestedSize !== undefined && requestedSize < 2) throw invalid('size', requestedSize, 'at least 2 pixels');
  if (pixelSizeFlag !== undefined && !(pixelSizeFlag > 0)) throw invalid('pixel-size', pixelSizeFlag, 'a positive number of Å');
  if (shiftSd !== undefined && !(shiftSd > 0)) throw invalid('shift-sd', shiftSd, 'a number of pixels > 0');
  if (scaleHalfRange !== undefined && !(scaleHalfRange >= 0 && scaleHalfRange < 1)) throw invalid('scale-half-range', scaleHalfRange, 'in [0, 1)');
  if (seed < 0) throw invalid('seed', seed, 'an integer ≥ 0');

  const picture = await loadPicture(input);
  // templateFromPicture would scale the rounding error of a constant picture up to unit
  // standard deviation, so such a picture is rejected here.
  // A picture that varies only outside the disc mask passes this check, and
  // templateFromPicture rejects it.
  if (isConstant(picture.image)) {
    throw new Error(`${input}: every pixel of the ${picture.kind === 'png' ? 'picture' : 'first image'} is ${picture.image[0]}, so it has no contrast to simulate`);
  }
  let truth: Float32Array;
  let size: number;
  if (picture.kind === 'png') {
    size = requestedSize ?? Math.min(DEFAULT_PNG_SIZE, picture.width, picture.height);
    if (size < 2) throw new Error(`${input}: the picture is ${picture.width} × ${picture.height} pixels; pass --size 2 or more`);
    try {
      truth = templateFromPicture(picture.image, picture.width, picture.height, size);
    } catch (error) {
      // templateFromPicture names its arguments, not the file they came from.
      if (error instanceof RangeError) throw new Error(`${input}: ${error.message}`);
      throw error;
    }
  } else {
    if (picture.width !== picture.height) {
      throw new Error(`${input}: images are ${picture.width} × ${picture.height} pixels, but a template must be square`);
    }
    size = requestedSize ?? picture.width;
    truth = size === picture.width ? picture.image : resizeImage(picture.image, picture.width, size);
  }
  const pixelSize = pixelSizeFlag ?? picture.pixelSize ?? 1;
  await prepareOutputFolder('simulate', out, OUTPUTS, booleanFlag(parsed, 'force'));

  let stack: SimulatedStack;
  try {
    stack = simulateStack(truth, size, { count, snr, shiftSd, scaleHalfRange, seed }, resample);
  } catch (error) {
    // simulateStack names its arguments, not the file they came from.
    if (error instanceof RangeError) throw new Error(`${input}: ${error.message}`);
    throw error;
  }
  await writeSimulation(out, { truth, size, stack, pixelSize }, { input: resolve(input), snr, seed, shiftSd, scaleHalfRange });
  context.log(`${count} images of ${size}² at SNR ${snr} (noise σ ${stack.sigma.toPrecision(4)}) in ${join(out, 'stack.mrcs')}`);
  return 0;
}

/** Writes a simulated stack, its particle file with the true poses, the truth and a summary. */
export async function writeSimulation(
  out: string,
  simulation: Simulation,
  settings: { input: string; snr: number; seed: number; shiftSd?: number; scaleHalfRange?: number },
): Promise<void> {
  const { truth, size, stack, pixelSize } = simulation;
  const count = stack.poses.length;
  await writeOutput(join(out, 'stack.mrcs'), writeMrc(stack.images, size, size, count, { pixelSize, labels: ['classify2d simulated stack'] }));
  const rows = stack.poses.map((pose, i) => ({
    imageName: `${String(i + 1).padStart(6, '0')}@stack.mrcs`,
    psi: pose.psi,
    shiftX: pose.shiftX,
    shiftY: pose.shiftY,
    scale: pose.scale,
    weight: 1,
  }));
  await writeOutput(join(out, 'particles.star'), writeParticleStar(rows, { pixelSize, imageSize: size }));
  await writeOutput(join(out, 'truth.mrc'), writeMrc(truth, size, size, 1, { pixelSize, labels: ['classify2d simulation truth'] }));
  await writeOutput(join(out, 'truth.png'), writePng(truth, size, size));
  const summary = {
    program: 'classify2d',
    version: packageVersion(),
    source: settings.input,
    images: count,
    size,
    pixelSize,
    snr: settings.snr,
    sigma: stack.sigma,
    seed: settings.seed,
    shiftSd: settings.shiftSd ?? 0.05 * size,
    scaleHalfRange: settings.scaleHalfRange ?? 0.05,
  };
  await writeOutput(join(out, 'simulation.json'), formatJson(summary));
}
