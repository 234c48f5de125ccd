/**
 * `classify2d simulate`: makes a stack of noisy images of a template at random poses,
 * with the truth beside it, as files that `reconstruct`, `score` and RELION read.
 */
import { join, resolve } from 'node:path';

import { resample } from '../../gpu/host.js';
import { writeMrc } from '../mrc.js';
import { resizeImage, templateFromPicture } from '../picture.js';
import { writePng } from '../png.js';
import { writeParticleStar } from '../star.js';
import { simulateStack, type SimulatedStack } from '../synthetic.js';
import { booleanFlag, numberFlag, stringFlag, UsageError, type CommandSpec, type ParsedCommand } from './args.js';
import type { CommandContext } from './context.js';
import { loadPicture, prepareOutputFolder, writeOutput } from './files.js';
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
    { name: 'size', kind: 'integer', help: `Box side of the template, pixels (default ${DEFAULT_PNG_SIZE} for a PNG, the file's own for an MRC).` },
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
  let truth: Float32Array;
  let size: number;
  if (picture.kind === 'png') {
    size = requestedSize ?? Math.min(DEFAULT_PNG_SIZE, picture.width, picture.height);
    truth = templateFromPicture(picture.image, picture.width, picture.height, size);
  } else {
    if (picture.width !== picture.height) {
      throw new UsageError('simulate', `classify2d simulate: ${input} contains ${picture.width} × ${picture.height} images, but a template must be square`);
    }
    size = requestedSize ?? picture.width;
    truth = size === picture.width ? picture.image : resizeImage(picture.image, picture.width, size);
  }
  const pixelSize = pixelSizeFlag ?? picture.pixelSize ?? 1;
  await prepareOutputFolder('simulate', out, OUTPUTS, booleanFlag(parsed, 'force'));

  const stack = simulateStack(truth, size, { count, snr, shiftSd, scaleHalfRange, seed }, resample);
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
  await writeOutput(join(out, 'simulation.json'), `${JSON.stringify(summary, null, 2)}\n`);
}
