import { spawn, type SpawnOptions } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { InterruptError, processContext } from '../src/cli/context.js';
import { main } from '../src/cli/main.js';
import { readMrc, writeMrc } from '../src/mrc.js';
import { writePng } from '../src/png.js';
import { parseStar, readParticles } from '../src/star.js';
import { figureTemplate, unitVariance } from '../src/synthetic.js';

/**
 * The `classify2d` command, run as a real process from the TypeScript sources, on the
 * mandrill picture that the baboon-image package ships, at 16² so SwiftShader is quick.
 */
const ROOT = fileURLToPath(new URL('..', import.meta.url));
const BIN = join(ROOT, 'src', 'cli', 'bin.ts');
const MANDRILL = join(ROOT, 'node_modules', 'baboon-image', 'baboon.png');
const GRID = ['--rotations', '8', '--scales', '1', '--scale-half-range', '0'];

interface Outcome {
  status: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/**
 * Runs the command and resolves when it exits. `onStderr` is called with the stderr text
 * so far after each chunk, and with the child process, so that it can send a signal.
 */
function classify2d(
  args: string[],
  onStderr?: (text: string, child: ReturnType<typeof spawn>) => void,
  options: Pick<SpawnOptions, 'uid' | 'gid'> = {},
): Promise<Outcome> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', BIN, ...args], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'], ...options });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => {
      stderr += chunk;
      onStderr?.(stderr, child);
    });
    child.on('error', reject);
    child.on('close', (status, signal) => resolve({ status, signal, stdout, stderr }));
  });
}

/**
 * Runs the command in this process through main(), for checks that end before the worker
 * starts. `interrupt` stands for the signal that the process would have received.
 */
async function classify2dInProcess(args: string[], interrupt = new AbortController().signal): Promise<Outcome> {
  let stdout = '';
  let stderr = '';
  const status = await main(args, {
    stdout: { write: (text) => ((stdout += text), true) },
    stderr: { write: (text) => ((stderr += text), true) },
    log: (message) => (stderr += `${message}\n`),
    interrupt,
  });
  return { status, signal: null, stdout, stderr };
}

function readJson(path: string): Record<string, any> {
  return JSON.parse(readFileSync(path, 'utf8')) as Record<string, any>;
}

/** Circular distance of two angles in degrees, in [0, 180]. */
function angleDistance(a: number, b: number): number {
  const d = (((a - b) % 360) + 360) % 360;
  return Math.min(d, 360 - d);
}

function psiColumn(path: string): number[] {
  const star = parseStar(readFileSync(path, 'utf8'), path);
  const particles = star.blocks.find((block) => block.name === 'particles')!.loops[0];
  const column = particles.labels.indexOf('rlnAnglePsi');
  return particles.rows.map((row) => Number(row[column]));
}

let folder: string;
let data: string;

beforeAll(async () => {
  folder = mkdtempSync(join(tmpdir(), 'classify2d-cli-'));
  data = join(folder, 'data');
  const outcome = await classify2d([
    'simulate', MANDRILL, '--n', '24', '--snr', '4', '--size', '16', '--scale-half-range', '0',
    '--pixel-size', '2.5', '--seed', '3', '--out', data,
  ]);
  if (outcome.status !== 0) throw new Error(`simulate failed with status ${outcome.status}: ${outcome.stderr}`);
});

afterAll(() => {
  if (folder) rmSync(folder, { recursive: true, force: true });
});

describe('classify2d command line', () => {
  it('prints help for each command', async () => {
    for (const command of ['reconstruct', 'simulate', 'score', 'info']) {
      const outcome = await classify2d([command, '--help']);
      expect(outcome.status, `${command} --help status`).toBe(0);
      expect(outcome.stdout, `${command} --help`).toContain(`usage: classify2d ${command}`);
    }
    const top = await classify2d(['--help']);
    expect(top.stdout).toContain('reconstruct');
  });

  it('rejects an unknown flag with status 2', async () => {
    const outcome = await classify2d(['reconstruct', join(data, 'stack.mrcs'), '--out', join(folder, 'x'), '--rotation', '8']);
    expect(outcome.status).toBe(2);
    expect(outcome.stderr).toContain("Unknown option '--rotation'");
    expect(existsSync(join(folder, 'x')), 'output folder').toBe(false);
  });

  it('names the flag of an invalid option', async () => {
    const outcome = await classify2d(['reconstruct', join(data, 'stack.mrcs'), '--out', join(folder, 'x'), '--rotations', '0']);
    expect(outcome.status).toBe(2);
    expect(outcome.stderr).toContain('--rotations is 0');
    const batch = await classify2d(['reconstruct', join(data, 'stack.mrcs'), '--out', join(folder, 'x'), '--batch-size', '100']);
    expect(batch.status).toBe(2);
    expect(batch.stderr).toContain('--batch-size is 100');
    expect(existsSync(join(folder, 'x')), 'output folder').toBe(false);
  });

  it('help wins over other mistakes', async () => {
    const invalid = await classify2dInProcess(['reconstruct', '--rotations', 'abc', '--help']);
    expect(invalid.status, invalid.stderr).toBe(0);
    expect(invalid.stdout).toContain('usage: classify2d reconstruct');
    const short = await classify2dInProcess(['simulate', '-h']);
    expect(short.status, short.stderr).toBe(0);
    expect(short.stdout).toContain('usage: classify2d simulate');
    const topic = await classify2dInProcess(['help', 'score']);
    expect(topic.status, topic.stderr).toBe(0);
    expect(topic.stdout).toContain('usage: classify2d score <truth.mrc> <result.mrc> [--pixel-size ANGSTROM]');
  });

  it('help lines fit 88 columns', async () => {
    for (const args of [['--help'], ['reconstruct', '--help'], ['simulate', '--help'], ['score', '--help'], ['info', '--help']]) {
      const { stdout } = await classify2dInProcess(args);
      const long = stdout.split('\n').filter((line) => [...line].length > 88);
      expect(long, `${args.join(' ')}`).toEqual([]);
    }
  });

  it('rejects a flag given twice', async () => {
    const out = join(folder, 'twice');
    const rotations = await classify2dInProcess(['reconstruct', join(data, 'stack.mrcs'), '--out', out, '--rotations', '8', '--rotations', '9']);
    expect(rotations.status).toBe(2);
    expect(rotations.stderr).toContain("--rotations is given 2 times ('8', '9'); give it once");
    const hyper = await classify2dInProcess([
      'reconstruct', join(data, 'stack.mrcs'), '--out', out, '--optimiser-option', 'momentum=0.5', '--optimiser-option', 'momentum=0.6',
    ]);
    expect(hyper.status).toBe(2);
    expect(hyper.stderr).toContain('--optimiser-option sets momentum twice (0.5 and 0.6)');
    expect(existsSync(out), 'output folder').toBe(false);
  });

  it('names flags inside option messages', async () => {
    const outcome = await classify2dInProcess(['reconstruct', join(data, 'stack.mrcs'), '--out', join(folder, 'x'), '--shift-range', '0.5']);
    expect(outcome.status).toBe(2);
    expect(outcome.stderr).toContain('--shift-range is 0.5; it must be 0 or at least --shift-step (1 pixels)');
    const kernel = await classify2dInProcess([
      'reconstruct', join(data, 'stack.mrcs'), '--out', join(folder, 'x'), '--kernel', 'fft', '--shift-step', '0.5',
    ]);
    expect(kernel.status).toBe(2);
    expect(kernel.stderr).toContain("--shift-step is 0.5; it must be a whole number of pixels with kernel 'fft'");
  });

  it('rejects --out naming a file', async () => {
    const file = join(folder, 'a-file');
    writeFileSync(file, 'kept');
    const outcome = await classify2dInProcess(['simulate', MANDRILL, '--n', '4', '--snr', '1', '--size', '8', '--out', file]);
    expect(outcome.status).toBe(2);
    expect(outcome.stderr).toContain(`--out ${file} is an existing file, not a folder`);
    expect(readFileSync(file, 'utf8')).toBe('kept');
  });

  it('rejects an unwritable --out', async () => {
    const locked = join(folder, 'locked');
    mkdirSync(locked);
    chmodSync(locked, 0o555);
    // Root writes through the mode bits, so as root the command runs as the unprivileged
    // user 65534 (nobody), which needs to reach the stack through the test's folder.
    const root = process.getuid?.() === 0;
    if (root) chmodSync(folder, 0o755);
    const outcome = await classify2d(['reconstruct', join(data, 'stack.mrcs'), '--out', locked, ...GRID], undefined, root ? { uid: 65534, gid: 65534 } : {});
    expect(outcome.status, outcome.stderr).toBe(2);
    expect(outcome.stderr).toContain(`--out ${locked} is not writable`);
  });

  it('rejects a constant stack early', async () => {
    const stack = join(folder, 'constant.mrcs');
    writeFileSync(stack, writeMrc(new Float32Array(6 * 16 * 16).fill(1), 16, 16, 6));
    const out = join(folder, 'constant');
    const outcome = await classify2dInProcess(['reconstruct', stack, '--out', out, ...GRID]);
    expect(outcome.status).toBe(1);
    expect(outcome.stderr).toContain(`${stack}: all 6 images are constant`);
    expect(existsSync(out), 'output folder').toBe(false);
  });

  it('interrupt before the worker writes nothing', async () => {
    const out = join(folder, 'early');
    const controller = new AbortController();
    controller.abort(new InterruptError('SIGTERM'));
    const outcome = await classify2dInProcess(['reconstruct', join(data, 'stack.mrcs'), '--out', out, ...GRID], controller.signal);
    expect(outcome.status, 'status after SIGTERM').toBe(143);
    expect(outcome.stderr).toContain('nothing was written');
    expect(existsSync(out), 'output folder').toBe(false);
  });

  it('context installs handlers when read', () => {
    const before = process.listeners('SIGINT');
    const context = processContext();
    expect(process.listenerCount('SIGINT'), 'SIGINT listeners before reading interrupt').toBe(before.length);
    expect(context.interrupt.aborted).toBe(false);
    const added = process.listeners('SIGINT').filter((listener) => !before.includes(listener));
    expect(added, 'SIGINT listeners added by reading interrupt').toHaveLength(1);
    for (const listener of added) {
      process.removeListener('SIGINT', listener);
      process.removeListener('SIGTERM', listener);
    }
  });

  it('simulate rejects a constant picture', async () => {
    const picture = join(folder, 'flat.png');
    writeFileSync(picture, writePng(new Float32Array(12 * 10).fill(0.3), 12, 10));
    const out = join(folder, 'flat');
    const outcome = await classify2dInProcess(['simulate', picture, '--n', '4', '--snr', '1', '--out', out]);
    expect(outcome.status).toBe(1);
    expect(outcome.stderr).toContain(`${picture}: every pixel of the picture is`);
    expect(existsSync(out), 'output folder').toBe(false);
  });

  it('bad files exit with status 1', async () => {
    const rectangle = join(folder, 'rectangle.mrc');
    writeFileSync(rectangle, writeMrc(Float32Array.from({ length: 16 * 12 }, (_, i) => i), 16, 12, 1));
    const outcome = await classify2dInProcess(['score', join(data, 'truth.mrc'), rectangle]);
    expect(outcome.status).toBe(1);
    expect(outcome.stderr).toContain(`${rectangle} is 16 × 12 pixels; both images must be square`);
    const missing = await classify2dInProcess(['info', join(folder, 'missing.mrc')]);
    expect(missing.status, 'info on a missing file').toBe(1);
    expect(missing.stderr).toContain(`cannot read ${join(folder, 'missing.mrc')}`);
  });

  it('score writes no resolution as Infinity', async () => {
    const size = 16;
    const blob = Float32Array.from({ length: size * size }, (_, q) => Math.exp(-(((q % size) - 8) ** 2 + (Math.floor(q / size) - 5) ** 2) / 8));
    let state = 26;
    const noise = Float32Array.from({ length: size * size }, () => (state = (state * 16807) % 2147483647) / 2147483647 - 0.8);
    const truth = join(folder, 'blob.mrc');
    const result = join(folder, 'noise.mrc');
    writeFileSync(truth, writeMrc(blob, size, size, 1, { pixelSize: 2 }));
    writeFileSync(result, writeMrc(noise, size, size, 1, { pixelSize: 2 }));
    const outcome = await classify2dInProcess(['score', truth, result]);
    expect(outcome.status, outcome.stderr).toBe(0);
    const scored = JSON.parse(outcome.stdout);
    // Ring 0 of the FRC compares the means, whose signs differ, and with this seed ring 1
    // is below 0.5 too. So the FRC crosses 0.5 at 0 cycles per pixel: nothing is resolved.
    expect(scored.crossing05).toBe(0);
    expect(scored.resolution05Angstrom).toBe('Infinity');
  });

  it('score checks the field of view', async () => {
    const truth = readMrc(new Uint8Array(readFileSync(join(data, 'truth.mrc'))));
    const finer = join(folder, 'finer.mrc');
    writeFileSync(finer, writeMrc(truth.data, 16, 16, 1, { pixelSize: 1 }));
    const outcome = await classify2dInProcess(['score', join(data, 'truth.mrc'), finer]);
    expect(outcome.status, outcome.stderr).toBe(0);
    expect(outcome.stderr).toContain('(40.00 Å wide)');
    expect(outcome.stderr).toContain('(16.00 Å wide)');
  });

  it('simulate writes the stack and the truth', async () => {
    const stack = readMrc(new Uint8Array(readFileSync(join(data, 'stack.mrcs'))));
    expect(stack.header.nx).toBe(16);
    expect(stack.header.nz).toBe(24);
    expect(stack.header.pixelSize).toBeCloseTo(2.5, 6);
    const particles = readParticles(parseStar(readFileSync(join(data, 'particles.star'), 'utf8')));
    expect(particles.particles).toHaveLength(24);
    expect(particles.particles[23].index).toBe(23);
    expect(particles.particles[0].pixelSize).toBeCloseTo(2.5, 6);
    const simulation = readJson(join(data, 'simulation.json'));
    expect(simulation.sigma).toBeGreaterThan(0);
    const truth = readMrc(new Uint8Array(readFileSync(join(data, 'truth.mrc'))));
    // The template is faded to 0 outside its disc, so the corner pixel is exactly 0.
    expect(truth.data[0]).toBe(0);
  });

  it('info prints MRC and STAR contents', async () => {
    const mrc = await classify2d(['info', join(data, 'stack.mrcs')]);
    expect(mrc.status).toBe(0);
    const header = JSON.parse(mrc.stdout);
    expect(header.header.nz).toBe(24);
    expect(header.header.mode).toBe(2);
    expect(header.statistics.nonFinite).toBe(0);
    const values = readMrc(new Uint8Array(readFileSync(join(data, 'stack.mrcs')))).data;
    const mean = values.reduce((sum, value) => sum + value, 0) / values.length;
    expect(header.statistics.mean).toBeCloseTo(mean, 5);

    const star = await classify2d(['info', join(data, 'particles.star')]);
    expect(star.status).toBe(0);
    const parsed = JSON.parse(star.stdout);
    expect(parsed.particles.count).toBe(24);
    expect(parsed.particles.stacks[0].exists).toBe(true);
  });

  it('reconstruct writes template, poses and report', async () => {
    const out = join(folder, 'result');
    const outcome = await classify2d(['reconstruct', join(data, 'particles.star'), '--out', out, ...GRID, '--epochs', '3']);
    expect(outcome.status, outcome.stderr).toBe(0);
    expect(outcome.stderr).toContain('100 %');

    const template = readMrc(new Uint8Array(readFileSync(join(out, 'template.mrc'))));
    expect(template.header.nx).toBe(16);
    expect(template.header.pixelSize).toBeCloseTo(2.5, 6);
    expect(existsSync(join(out, 'template.png'))).toBe(true);

    const score = await classify2d(['score', join(data, 'truth.mrc'), join(out, 'template.mrc')]);
    expect(score.status).toBe(0);
    const scored = JSON.parse(score.stdout);
    expect(scored.r, 'r against the truth').toBeGreaterThan(0.85);
    expect(scored.pixelSize).toBeCloseTo(2.5, 6);

    const report = readJson(join(out, 'report.json'));
    expect(report.cancelled).toBe(false);
    expect(report.epochs).toBe(3);
    expect(report.objectivePerEpoch).toHaveLength(3);
    expect(report.options.rotations).toBe(8);
    expect(report.options.kernel).toBe('fft');
    expect(report.input.images).toBe(24);
    expect(report.adapter.vendor.length).toBeGreaterThan(0);
    const simulation = readJson(join(data, 'simulation.json'));
    // On 8 rotation nodes σ also absorbs the residual of the nearest grid pose: 1.6 × the truth here.
    const ratio = report.sigma / simulation.sigma;
    expect(ratio, `σ ${report.sigma} against ${simulation.sigma}`).toBeGreaterThan(0.8);
    expect(ratio, `σ ${report.sigma} against ${simulation.sigma}`).toBeLessThan(2);

    // Each image's ψ differs from its true ψ by the rotation between the template and the truth.
    const estimated = psiColumn(join(out, 'poses.star'));
    const truePsi = psiColumn(join(data, 'particles.star'));
    expect(estimated).toHaveLength(24);
    const offsets = estimated.map((psi, i) => psi - truePsi[i]);
    const agreeing = offsets.map((offset) => offsets.filter((other) => angleDistance(offset, other) <= 25).length);
    expect(Math.max(...agreeing), `ψ offsets ${offsets.map((o) => o.toFixed(0)).join(' ')}`).toBeGreaterThanOrEqual(20);
    const names = readParticles(parseStar(readFileSync(join(out, 'poses.star'), 'utf8'))).particles;
    expect(names[5].stackPath).toBe('../data/stack.mrcs');
    expect(names[5].index).toBe(5);
  });

  it('sorts two views into classes', async () => {
    // A second view: the figure template at unit pixel variance, simulated beside the mandrill.
    const template = join(folder, 'figure.mrc');
    writeFileSync(template, writeMrc(unitVariance(figureTemplate(16)), 16, 16, 1, { pixelSize: 2.5 }));
    const second = join(folder, 'second');
    const simulated = await classify2d(['simulate', template, '--n', '24', '--snr', '4', '--scale-half-range', '0', '--seed', '4', '--out', second]);
    expect(simulated.status, simulated.stderr).toBe(0);
    // One particle file over both stacks, the second view's images after the first's.
    const rows = (dir: string) => readFileSync(join(dir, 'particles.star'), 'utf8').split('\n').filter((line) => /^\d+@/.test(line));
    const lines = readFileSync(join(data, 'particles.star'), 'utf8').split('\n');
    const header = lines.slice(0, lines.findIndex((line) => /^\d+@/.test(line)));
    const star = join(folder, 'both.star');
    const both = [
      ...rows(data).map((line) => line.replace('@stack.mrcs', '@data/stack.mrcs')),
      ...rows(second).map((line) => line.replace('@stack.mrcs', '@second/stack.mrcs')),
    ];
    // A 200 kV microscope in the optics table, which poses.star must keep.
    writeFileSync(star, [...header, ...both, ''].join('\n').replace(' 300.000000 ', ' 200.000000 '));

    const out = join(folder, 'classes');
    const outcome = await classify2d(['reconstruct', star, '--out', out, ...GRID, '--epochs', '4', '--classes', '2']);
    expect(outcome.status, outcome.stderr).toBe(0);
    const averages = readMrc(new Uint8Array(readFileSync(join(out, 'classes.mrcs'))));
    expect(averages.header.nz).toBe(2);
    expect(existsSync(join(out, 'classes.png'))).toBe(true);
    const report = readJson(join(out, 'report.json'));
    expect(report.classes.map((c: { images: number }) => c.images)).toEqual([24, 24]);
    expect(report.options.classes).toBe(2);
    const particles = parseStar(readFileSync(join(out, 'poses.star'), 'utf8')).blocks[1].loops[0];
    const classColumn = particles.labels.indexOf('rlnClassNumber');
    const classes = particles.rows.map((row) => Number(row[classColumn]));
    expect(new Set(classes.slice(0, 24)).size, 'classes of the mandrill images').toBe(1);
    expect(new Set(classes.slice(24)).size, 'classes of the figure images').toBe(1);
    expect(classes[0]).not.toBe(classes[24]);
    const optics = parseStar(readFileSync(join(out, 'poses.star'), 'utf8')).blocks[0].loops[0];
    expect(optics.rows[0][optics.labels.indexOf('rlnVoltage')]).toBe('200.000000');
    const probability = particles.labels.indexOf('classify2dClassProbability');
    expect(particles.rows.every((row) => Number(row[probability]) > 0.9)).toBe(true);
  });

  it('keeps existing results without --force', async () => {
    const out = join(folder, 'kept');
    const outcome1 = await classify2d(['simulate', MANDRILL, '--n', '4', '--snr', '1', '--size', '8', '--out', out]);
    expect(outcome1.status).toBe(0);
    const before = readFileSync(join(out, 'stack.mrcs'));
    const outcome2 = await classify2d(['simulate', MANDRILL, '--n', '5', '--snr', '1', '--size', '8', '--out', out]);
    expect(outcome2.status).toBe(2);
    expect(outcome2.stderr).toContain(`${join(out, 'stack.mrcs')} already exists`);
    expect(readFileSync(join(out, 'stack.mrcs')).equals(before), 'stack.mrcs unchanged').toBe(true);
    const outcome3 = await classify2d(['simulate', MANDRILL, '--n', '5', '--snr', '1', '--size', '8', '--out', out, '--force']);
    expect(outcome3.status).toBe(0);
    expect(readMrc(new Uint8Array(readFileSync(join(out, 'stack.mrcs')))).header.nz).toBe(5);
  });

  it('names a missing stack of a STAR file', async () => {
    const star = join(folder, 'missing.star');
    writeFileSync(star, readFileSync(join(data, 'particles.star'), 'utf8').replaceAll('@stack.mrcs', '@gone.mrcs'));
    const outcome = await classify2d(['reconstruct', star, '--out', join(folder, 'y')]);
    expect(outcome.status).toBe(1);
    expect(outcome.stderr).toContain(star);
    expect(outcome.stderr).toContain(`${join(folder, 'gone.mrcs')} does not exist`);
    expect(existsSync(join(folder, 'y', 'template.mrc'))).toBe(false);
  });

  it('stops at a NaN pixel unless told to drop the image', async () => {
    const values = readMrc(new Uint8Array(readFileSync(join(data, 'stack.mrcs')))).data.slice();
    const bytes = writeMrc(values, 16, 16, 24, { pixelSize: 2.5 });
    // Pixel (x 2, y 1) of image 3, after the 1024-byte header.
    new DataView(bytes.buffer).setFloat32(1024 + 4 * (3 * 256 + 16 + 2), NaN, true);
    const stack = join(folder, 'nan.mrcs');
    writeFileSync(stack, bytes);

    const stopped = await classify2d(['reconstruct', stack, '--out', join(folder, 'nan')]);
    expect(stopped.status).toBe(1);
    expect(stopped.stderr).toContain('image 3');
    expect(stopped.stderr).toContain('x 2, y 1');

    const out = join(folder, 'nan');
    const dropped = await classify2d(['reconstruct', stack, '--out', out, ...GRID, '--epochs', '1', '--drop-bad-images']);
    expect(dropped.status, dropped.stderr).toBe(0);
    const report = readJson(join(out, 'report.json'));
    expect(report.input.images).toBe(23);
    expect(report.input.droppedImages).toEqual([`4@${stack}`]);
    const names = readParticles(parseStar(readFileSync(join(out, 'poses.star'), 'utf8'))).particles;
    expect(names.map((particle) => particle.index)).not.toContain(3);
    expect(names).toHaveLength(23);
  });

  it('writes the template reached when interrupted', async () => {
    const out = join(folder, 'interrupted');
    // Files of an earlier run, which --force replaces or removes.
    mkdirSync(out);
    writeFileSync(join(out, 'poses.star'), 'earlier');
    writeFileSync(join(out, 'halves.mrcs'), 'earlier');
    let sent = false;
    const outcome = await classify2d(
      ['reconstruct', join(data, 'stack.mrcs'), '--out', out, ...GRID, '--epochs', '50', '--batch-size', '2', '--force'],
      (text, child) => {
        if (!sent && /step [1-9]\d*\//.test(text)) {
          sent = true;
          child.kill('SIGINT');
        }
      },
    );
    expect(sent, 'a progress line was seen').toBe(true);
    expect(outcome.status, outcome.stderr).toBe(130);
    expect(outcome.stderr).toContain('interrupted');
    const report = readJson(join(out, 'report.json'));
    expect(report.cancelled).toBe(true);
    expect(report.epochs).toBeLessThan(50);
    const template = readMrc(new Uint8Array(readFileSync(join(out, 'template.mrc'))));
    expect(template.data.every((value) => Number.isFinite(value))).toBe(true);
    expect(existsSync(join(out, 'poses.star')), 'poses.star of an interrupted run').toBe(false);
    expect(existsSync(join(out, 'halves.mrcs')), 'halves.mrcs of the earlier run').toBe(false);
  });

  it('second interrupt kills at once', async () => {
    const out = join(folder, 'killed');
    let first = false;
    let second = false;
    // Many Jensen passes keep the worker in its initialisation, inside Dawn, at both signals.
    const outcome = await classify2d(
      ['reconstruct', join(data, 'stack.mrcs'), '--out', out, ...GRID, '--jensen-iterations', '50'],
      (text, child) => {
        if (!first && text.includes('pixels from')) {
          first = true;
          child.kill('SIGINT');
        }
        if (!second && text.includes('interrupted')) {
          second = true;
          child.kill('SIGINT');
        }
      },
    );
    expect(second, 'the first interrupt was reported').toBe(true);
    expect(outcome.signal, outcome.stderr).toBe('SIGINT');
    expect(outcome.stderr).toContain('stopping after the initialisation and the first step');
    expect(existsSync(join(out, 'template.mrc')), 'template.mrc').toBe(false);
  });
});
