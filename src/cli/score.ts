/**
 * `classify2d score`: aligns a reconstruction onto the truth and prints r and the FRC
 * crossings as JSON.
 */
import { isConstant, resolutionAngstrom, scoreTemplate, type TemplateScore } from '../metrics.js';
import { resizeImage } from '../picture.js';
import { numberFlag, UsageError, type CommandSpec, type ParsedCommand } from './args.js';
import type { CommandContext } from './context.js';
import { loadPicture, type LoadedPicture } from './files.js';
import { formatJson } from './json.js';

export const scoreCommand: CommandSpec = {
  name: 'score',
  usage: 'score <truth.mrc> <result.mrc> [--pixel-size ANGSTROM]',
  summary:
    'Scores a reconstruction against the truth. The result is aligned onto the truth over rotation, shift ' +
    'and scale, and the Pearson r after alignment, the pose found and the Fourier ring correlation with its ' +
    '0.5 and 0.143 crossings are printed as JSON.',
  positionals: 2,
  flags: [
    { name: 'pixel-size', kind: 'number', value: 'ANGSTROM', help: "Pixel size for the resolutions in Å (default: the truth's, else 1)." },
  ],
  notes: [
    'Each file is an MRC (its first image) or a PNG. A result of another box size is resized to the ' +
      "truth's by area averaging first; crossings are in cycles per pixel of the truth's box.",
  ],
};

export interface ScoreReport {
  r: number;
  pose: { psiDegrees: number; shiftX: number; shiftY: number; scale: number };
  crossing05: number | null;
  crossing0143: number | null;
  resolution05Angstrom: number | null;
  resolution0143Angstrom: number | null;
  pixelSize: number;
  frc: { frequency: number; value: number }[];
}

/** Reduces a template score to the numbers `score` prints. */
export function scoreReport(score: TemplateScore, pixelSize: number): ScoreReport {
  return {
    r: score.r,
    pose: {
      psiDegrees: (score.pose.psi * 180) / Math.PI,
      shiftX: score.pose.a,
      shiftY: score.pose.b,
      scale: score.pose.scale,
    },
    crossing05: score.crossing05,
    crossing0143: score.crossing0143,
    resolution05Angstrom: resolutionAngstrom(score.crossing05, pixelSize),
    resolution0143Angstrom: resolutionAngstrom(score.crossing0143, pixelSize),
    pixelSize,
    frc: [...score.frc.frequencies].map((frequency, i) => ({ frequency, value: score.frc.frc[i] })),
  };
}

/**
 * Warns when both files give a pixel size and their boxes cover different widths in Å,
 * because the resize to the truth's box assumes that both cover the same field of view.
 */
function warnOnFieldOfView(context: CommandContext, truthPath: string, truth: LoadedPicture, resultPath: string, result: LoadedPicture): void {
  if (truth.pixelSize === null || result.pixelSize === null) return;
  const truthWidth = truth.width * truth.pixelSize;
  const resultWidth = result.width * result.pixelSize;
  if (Math.abs(truthWidth - resultWidth) <= 0.01 * truthWidth) return;
  context.log(
    `warning: ${truthPath} is ${truth.width} pixels of ${truth.pixelSize} Å (${truthWidth.toPrecision(4)} Å wide), but ` +
      `${resultPath} is ${result.width} pixels of ${result.pixelSize} Å (${resultWidth.toPrecision(4)} Å wide); ` +
      "the result is resized to the truth's box all the same",
  );
}

export async function runScore(parsed: ParsedCommand, context: CommandContext): Promise<number> {
  const [truthPath, resultPath] = parsed.positionals;
  const pixelSizeFlag = numberFlag(parsed, 'pixel-size');
  if (pixelSizeFlag !== undefined && !(pixelSizeFlag > 0)) {
    throw new UsageError('score', `classify2d score: --pixel-size is ${pixelSizeFlag}; it must be a positive number of Å`);
  }
  const truth = await loadPicture(truthPath);
  const result = await loadPicture(resultPath);
  for (const [path, picture] of [[truthPath, truth], [resultPath, result]] as const) {
    if (picture.width !== picture.height) {
      throw new Error(`${path} is ${picture.width} × ${picture.height} pixels; both images must be square`);
    }
    if (isConstant(picture.image)) {
      throw new Error(`${path}: every pixel is ${picture.image[0]}, so the image has no contrast to align`);
    }
  }
  warnOnFieldOfView(context, truthPath, truth, resultPath, result);
  const size = truth.width;
  const estimate = result.width === size ? result.image : resizeImage(result.image, result.width, size);
  const score = scoreTemplate(truth.image, estimate, size);
  const report = scoreReport(score, pixelSizeFlag ?? truth.pixelSize ?? 1);
  context.stdout.write(formatJson(report));
  return 0;
}
