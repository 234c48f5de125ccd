/**
 * RELION 3.1 2-D classification (relion_refine, CPU, no MPI) on the benchmark's particles,
 * timed from spawn to each iteration's output files and scored against the truth.
 */
import { spawn, spawnSync } from 'node:child_process';
import { closeSync, existsSync, openSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

import { readMrc } from '../../src/mrc.js';
import { parseStar, readParticles, writeParticleStar } from '../../src/star.js';
import { scoreAgainstTruth, type Checkpoint, type MethodResult } from './results.js';

/**
 * Radius outside which the simulated template is exactly 0, as a fraction of the box:
 * the disc mask of templateFromPicture (src/picture.ts) is 1 to 0.38 and falls to 0 by 0.46.
 */
const TEMPLATE_RADIUS_FRACTION = 0.46;

/** Folder of RELION's output inside the work folder, and the output root in it. */
export const RELION_FOLDER = 'relion';
const OUTPUT_ROOT = 'run';

/** Particle file without poses that RELION reads, written beside stack.mrcs. */
export const UNALIGNED_STAR = 'particles-unaligned.star';

/** Milliseconds between looks at RELION's output folder while it runs. */
const POLL_MS = 250;

export interface RelionSettings {
  /** relion_refine executable, a path or a name looked up on PATH. */
  binary: string;
  iterations: number;
  threads: number;
  /** In-plane rotation step before oversampling, degrees. */
  psiStep: number;
  /** Shift search range and step before oversampling, pixels. */
  offsetRange: number;
  offsetStep: number;
  /** Standard deviation of the shift prior, pixels. RELION's --offset takes it in Å. */
  shiftSd: number;
  seed: number;
}

export interface RelionRun {
  result: MethodResult;
  /** The relion_refine arguments, relative to the work folder. */
  args: string[];
  /** relion_refine's first line of --version output. */
  version: string;
  /** Pixel size from the optics table of particles.star, Å. */
  pixelSize: number;
  particleDiameter: number;
}

/** Returns the first line of `relion_refine --version`, or throws naming the binary and the fix. */
export function relionVersion(binary: string): string {
  const result = spawnSync(binary, ['--version'], { encoding: 'utf8', timeout: 30_000 });
  if (result.error !== undefined) {
    throw new Error(
      `${binary} --version failed to start (${result.error.message}); install Debian's relion package, ` +
        'pass --relion PATH, or skip RELION with --relion-iterations 0',
    );
  }
  const line = `${result.stdout}${result.stderr}`.split('\n').find((text) => /version/i.test(text));
  return line?.trim() ?? 'unknown version';
}

/**
 * Writes the particles of particles.star with every pose set to 0 (ψ 0, origin 0), so
 * that RELION starts as classify2d does, from no pose information. The simulated file
 * carries the true poses, and RELION centres its first shift search on the input origins.
 * The optics table gets _rlnImageSize, without which relion_refine 3.1.3 stops with
 * "ObservationModel::getBoxSize: box sizes not available". Returns the pixel size, Å.
 */
async function writeUnalignedStar(work: string, size: number): Promise<number> {
  const path = join(work, 'particles.star');
  const { particles } = readParticles(parseStar(readFileSync(path, 'utf8'), path), path);
  const pixelSize = particles[0].pixelSize;
  if (pixelSize === null) throw new Error(`${path}: the optics table gives no pixel size (_rlnImagePixelSize)`);
  const rows = particles.map((particle) => ({
    imageName: `${String(particle.index + 1).padStart(6, '0')}@${particle.stackPath}`,
    psi: 0,
    shiftX: 0,
    shiftY: 0,
    scale: 1,
    weight: 1,
  }));
  await writeFile(join(work, UNALIGNED_STAR), writeParticleStar(rows, { pixelSize, imageSize: size, ...particles[0].microscope }));
  return pixelSize;
}

/** Returns the relion_refine arguments, relative to the work folder. */
export function relionArguments(settings: RelionSettings, pixelSize: number, particleDiameter: number): string[] {
  return [
    '--i', UNALIGNED_STAR,
    '--o', `${RELION_FOLDER}/${OUTPUT_ROOT}`,
    '--K', '1',
    '--iter', String(settings.iterations),
    '--tau2_fudge', '2',
    '--particle_diameter', particleDiameter.toFixed(1),
    '--flatten_solvent',
    '--zero_mask',
    '--oversampling', '1',
    '--psi_step', String(settings.psiStep),
    '--offset_range', String(settings.offsetRange),
    '--offset_step', String(settings.offsetStep),
    '--offset', (settings.shiftSd * pixelSize).toFixed(3),
    '--dont_combine_weights_via_disc',
    '--pool', '10',
    '--j', String(settings.threads),
    '--random_seed', String(settings.seed),
  ];
}

/**
 * Throws when `work`/relion already contains RELION output, because its files would be
 * taken for this run's.
 */
export function checkRelionFolder(work: string): void {
  const folder = join(work, RELION_FOLDER);
  if (existsSync(folder) && readdirSync(folder).some((name) => name.startsWith(`${OUTPUT_ROOT}_`))) {
    throw new Error(`${folder} already contains RELION output (${OUTPUT_ROOT}_*); remove that folder or pass another --work`);
  }
}

/** Returns the iteration numbers whose model file is in `folder`, ascending. */
function finishedIterations(folder: string): number[] {
  const pattern = new RegExp(`^${OUTPUT_ROOT}_it(\\d{3})_model\\.star$`);
  return readdirSync(folder)
    .map((name) => pattern.exec(name)?.[1])
    .filter((digits): digits is string => digits !== undefined)
    .map(Number)
    .sort((a, b) => a - b);
}

/** Returns the latest modification time of iteration `iteration`'s files, ms since the epoch. */
function iterationWritten(folder: string, iteration: number): number {
  const prefix = `${OUTPUT_ROOT}_it${String(iteration).padStart(3, '0')}_`;
  return Math.max(...readdirSync(folder).filter((name) => name.startsWith(prefix)).map((name) => statSync(join(folder, name)).mtimeMs));
}

/** Scores the first class average of one iteration. A reader error becomes the checkpoint's error. */
function scoreIteration(folder: string, iteration: number, truth: Float32Array, size: number, notes: string[]): Pick<Checkpoint, 'r' | 'gain' | 'error'> {
  const path = join(folder, `${OUTPUT_ROOT}_it${String(iteration).padStart(3, '0')}_classes.mrcs`);
  if (!existsSync(path)) return { r: null, gain: null, error: `${path} is missing` };
  let file;
  try {
    file = readMrc(new Uint8Array(readFileSync(path)), path);
  } catch (error) {
    return { r: null, gain: null, error: `readMrc failed on RELION's file: ${(error as Error).message}` };
  }
  notes.push(...file.warnings.map((warning) => `readMrc warning: ${warning}`));
  const { nx, ny } = file.header;
  if (nx !== size || ny !== size) {
    return { r: null, gain: null, error: `${path} has ${nx} × ${ny} images, expected ${size} × ${size}` };
  }
  const average = file.data.subarray(0, size * size);
  try {
    return scoreAgainstTruth(truth, average, size);
  } catch (error) {
    return { r: null, gain: null, error: `scoring failed: ${(error as Error).message}` };
  }
}

/**
 * Runs relion_refine in `work` (which contains particles.star and stack.mrcs from simulate)
 * and scores every iteration's class average against `truth` once RELION has exited, so
 * that the scoring does not take CPU from it. Each iteration's wall time is the latest
 * modification time of its output files minus the spawn time.
 * @throws Error from checkRelionFolder
 */
export async function runRelion(work: string, settings: RelionSettings, version: string, truth: Float32Array, size: number, log: (message: string) => void): Promise<RelionRun> {
  checkRelionFolder(work);
  const folder = join(work, RELION_FOLDER);
  await mkdir(folder, { recursive: true });
  const pixelSize = await writeUnalignedStar(work, size);
  const particleDiameter = 2 * TEMPLATE_RADIUS_FRACTION * size * pixelSize;
  const args = relionArguments(settings, pixelSize, particleDiameter);
  const method = `RELION ${version.replace(/^RELION version:\s*/i, '')}`;
  log(`$ (cd ${work} && ${settings.binary} ${args.join(' ')})`);

  const stdout = openSync(join(folder, 'stdout.txt'), 'w');
  const stderr = openSync(join(folder, 'stderr.txt'), 'w');
  const spawned = Date.now();
  const child = spawn(settings.binary, args, { cwd: work, stdio: ['ignore', stdout, stderr] });
  let reported = -1;
  const poll = setInterval(() => {
    for (const iteration of finishedIterations(folder)) {
      if (iteration <= reported) continue;
      reported = iteration;
      log(`${method}: iteration ${iteration} written at ${((Date.now() - spawned) / 1000).toFixed(1)} s`);
    }
  }, POLL_MS);
  const exit = await new Promise<{ code: number | null; signal: NodeJS.Signals | null; error?: Error }>((resolve) => {
    child.once('error', (error) => resolve({ code: null, signal: null, error }));
    child.once('close', (code, signal) => resolve({ code, signal }));
  });
  const totalSeconds = (Date.now() - spawned) / 1000;
  clearInterval(poll);
  closeSync(stdout);
  closeSync(stderr);

  const notes: string[] = [];
  const checkpoints: Checkpoint[] = [];
  for (const iteration of finishedIterations(folder)) {
    const wallSeconds = (iterationWritten(folder, iteration) - spawned) / 1000;
    const previous = checkpoints.at(-1)?.wallSeconds ?? 0;
    checkpoints.push({ index: iteration, wallSeconds, durationSeconds: wallSeconds - previous, ...scoreIteration(folder, iteration, truth, size, notes) });
  }
  const initial = checkpoints.find((checkpoint) => checkpoint.index === 0);
  const result: MethodResult = { method, unit: 'iteration', checkpoints, totalSeconds, setupSeconds: initial?.wallSeconds ?? null, notes };
  if (exit.error !== undefined) {
    result.error = `${settings.binary} failed to start: ${exit.error.message}`;
  } else if (exit.code !== 0) {
    const tail = readFileSync(join(folder, 'stderr.txt'), 'utf8').trim().split('\n').slice(-5).join(' | ');
    result.error = `${settings.binary} exited with ${exit.code === null ? `signal ${exit.signal}` : `status ${exit.code}`}: ${tail}`;
  }
  for (const checkpoint of checkpoints) {
    if (checkpoint.error !== undefined) log(`${method}: iteration ${checkpoint.index}: ${checkpoint.error}`);
  }
  return { result, args, version, pixelSize, particleDiameter };
}
