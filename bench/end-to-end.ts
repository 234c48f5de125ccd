/**
 * End-to-end benchmark: classify2d and RELION 3.1 side by side on one simulated stack.
 *
 *   npm run build:wasm && node --import tsx bench/end-to-end.ts [flags]
 *
 * It simulates 200 images of 64² at SNR 0.42 from the mandrill picture of the baboon-image
 * package, through the command line's `simulate` (no scale change, fixed seed), into a
 * work folder. Then it runs `reconstruct` in this process once per classify2d kernel, and
 * relion_refine (2-D classification, K = 1, CPU threads, no CTF) on the same images. For
 * each method it prints the wall time until r against the truth first reaches 0.8, the
 * final r, and the time per epoch or iteration. `--help` lists the flags.
 */
import { mkdirSync, mkdtempSync, readFileSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import os from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

import { processContext } from '../src/cli/context.js';
import { loadMrc, loadStack, type LoadedStack } from '../src/cli/files.js';
import { main as cli } from '../src/cli/main.js';
import { writeMrc } from '../src/mrc.js';
import { requestNodeGpu } from '../src/node-gpu.js';
import { resolveOptions, type KernelChoice, type ReconstructionOptions } from '../src/options.js';
import { kernelOptions, runClassify2d, sameFirstEpoch, type Classify2dRun } from './e2e/classify2d.js';
import { checkRelionFolder, relionVersion, runRelion, type RelionRun, type RelionSettings } from './e2e/relion.js';
import { formatCheckpoints, formatTable, speedRatio } from './e2e/report.js';
import type { MethodResult } from './e2e/results.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const MANDRILL = join(ROOT, 'node_modules', 'baboon-image', 'baboon.png');

/** Seed of the simulated poses and noise. */
const SIMULATION_SEED = 2026;
/** Seed of classify2d's shuffling and of RELION's random numbers. */
const RUN_SEED = 1;
/** relion_refine threads (--j). Fixed, not taken from the machine, so that RELION rows from different machines use one setting. */
const RELION_THREADS = 2;

const KERNELS: readonly KernelChoice[] = ['fft', 'reference'];

/** The benchmark's data and its per-method defaults. */
interface Scenario {
  images: number;
  size: number;
  snr: number;
  /** classify2d rotation nodes. RELION's psi step is 360° over this count. */
  rotations: number;
  fftEpochs: number;
  referenceEpochs: number;
  relionIterations: number;
}

const FULL: Scenario = { images: 200, size: 64, snr: 0.42, rotations: 36, fftEpochs: 12, referenceEpochs: 1, relionIterations: 25 };
const QUICK: Scenario = { images: 40, size: 32, snr: 0.42, rotations: 12, fftEpochs: 2, referenceEpochs: 1, relionIterations: 2 };

const HELP = `usage: node --import tsx bench/end-to-end.ts [flags]   (after npm run build:wasm)

Simulates ${FULL.images} images of ${FULL.size}² at SNR ${FULL.snr} from the mandrill picture and times
classify2d (each kernel) and RELION's relion_refine on them, with r against the truth.

flags:
  --work DIR               Work folder for the data and RELION's output (default: a new folder
                           under ${os.tmpdir()}). stack.mrcs, particles.star and truth.mrc in it
                           are replaced; DIR/relion must hold no earlier RELION output.
  --kernels LIST           classify2d kernels to run, comma-separated from fft, reference
                           (default fft,reference), or none to run RELION alone.
  --fft-epochs N           Largest number of epochs of the fft run (default ${FULL.fftEpochs}).
  --reference-epochs N     Largest number of epochs of the reference run (default ${FULL.referenceEpochs}).
  --relion-iterations N    relion_refine --iter (default ${FULL.relionIterations}); 0 skips RELION.
  --relion PATH            relion_refine executable (default relion_refine on PATH).
  --json FILE              Also write every figure, with each epoch's and iteration's time and r.
  --quick                  A smoke test: ${QUICK.images} images of ${QUICK.size}², ${QUICK.rotations} rotations, ${QUICK.fftEpochs} fft epochs,
                           ${QUICK.referenceEpochs} reference epoch, ${QUICK.relionIterations} RELION iterations (flags above still apply).
  -h, --help               Print this help and exit.
`;

class UsageError extends Error {
  override name = 'UsageError';
}

interface Settings {
  scenario: Scenario;
  quick: boolean;
  work: string | undefined;
  kernels: KernelChoice[];
  relionBinary: string;
  json: string | undefined;
}

function parseCount(flag: string, text: string | undefined, fallback: number, min: number): number {
  if (text === undefined) return fallback;
  const value = Number(text);
  if (text.trim() === '' || !Number.isSafeInteger(value) || value < min) {
    throw new UsageError(`--${flag} is '${text}'; it must be an integer ≥ ${min}`);
  }
  return value;
}

function parseKernels(text: string): KernelChoice[] {
  if (text.trim() === 'none') return [];
  const names = text.split(',').map((name) => name.trim());
  for (const name of names) {
    if (!KERNELS.includes(name as KernelChoice)) {
      throw new UsageError(`--kernels is '${text}'; each entry must be one of ${KERNELS.join(', ')}, got '${name}', or the whole value none`);
    }
  }
  if (new Set(names).size !== names.length) throw new UsageError(`--kernels is '${text}'; it names a kernel twice`);
  return names as KernelChoice[];
}

function parseFlags(argv: string[]): Settings | 'help' {
  let values;
  try {
    ({ values } = parseArgs({
      args: argv,
      strict: true,
      allowPositionals: false,
      options: {
        work: { type: 'string' },
        kernels: { type: 'string' },
        'fft-epochs': { type: 'string' },
        'reference-epochs': { type: 'string' },
        'relion-iterations': { type: 'string' },
        relion: { type: 'string' },
        json: { type: 'string' },
        quick: { type: 'boolean', default: false },
        help: { type: 'boolean', short: 'h', default: false },
      },
    }));
  } catch (error) {
    throw new UsageError((error as Error).message);
  }
  if (values.help) return 'help';
  const base = values.quick ? QUICK : FULL;
  for (const flag of ['work', 'relion', 'json'] as const) {
    if (values[flag] === '') throw new UsageError(`--${flag} is empty; it must name a path`);
  }
  const scenario: Scenario = {
    ...base,
    fftEpochs: parseCount('fft-epochs', values['fft-epochs'], base.fftEpochs, 1),
    referenceEpochs: parseCount('reference-epochs', values['reference-epochs'], base.referenceEpochs, 1),
    relionIterations: parseCount('relion-iterations', values['relion-iterations'], base.relionIterations, 0),
  };
  const kernels = parseKernels(values.kernels ?? KERNELS.join(','));
  if (kernels.length === 0 && scenario.relionIterations === 0) {
    throw new UsageError('--kernels none with --relion-iterations 0 leaves nothing to run; drop one of them');
  }
  return {
    scenario,
    quick: values.quick,
    work: values.work,
    kernels,
    relionBinary: values.relion ?? 'relion_refine',
    json: values.json,
  };
}

const log = (message: string) => process.stderr.write(`${message}\n`);

/** Simulates the stack through the CLI's `simulate` and returns its wall time in seconds. */
async function simulate(work: string, scenario: Scenario): Promise<number> {
  const args = [
    'simulate', MANDRILL,
    '--n', String(scenario.images),
    '--snr', String(scenario.snr),
    '--size', String(scenario.size),
    '--scale-half-range', '0',
    '--seed', String(SIMULATION_SEED),
    '--out', work,
    '--force',
  ];
  console.log(`data: classify2d ${args.join(' ')}`);
  const started = performance.now();
  const status = await cli(args, processContext());
  if (status !== 0) throw new Error(`classify2d simulate exited with status ${status}`);
  return (performance.now() - started) / 1000;
}

/** Returns the option set shared by both kernels. kernelOptions adds the kernel, maxEpochs and snapshotEvery per run. */
function baseOptions(scenario: Scenario): ReconstructionOptions {
  return { rotations: scenario.rotations, scales: 1, scaleHalfRange: 0, seed: RUN_SEED };
}

function describeResolved(options: ReconstructionOptions, size: number, images: number): string {
  const resolved = resolveOptions(options, size, images);
  const shifts = 2 * Math.floor(resolved.shiftRange / resolved.shiftStep) + 1;
  return (
    `resolved: init ${resolved.init}, batchSize ${resolved.batchSize}, shiftSd ${resolved.shiftSd} px, ` +
    `shiftRange ±${resolved.shiftRange} px at ${resolved.shiftStep} px (${shifts}² shift nodes), ` +
    `optimiser ${resolved.optimiser}, lambda ${resolved.lambda}, learningRateTheta ${resolved.learningRateTheta}, ` +
    `scheduleEvery ${resolved.scheduleEvery}, refineRotations ${resolved.refineRotations}, tolerance ${resolved.tolerance}`
  );
}

interface KernelRun {
  kernel: KernelChoice;
  options: ReconstructionOptions;
  run: Classify2dRun;
}

/** Runs classify2d once per kernel of `settings`, printing each run's epochs, and writes each final template to `work`. */
async function runKernels(
  device: GPUDevice,
  stack: LoadedStack,
  truth: Float32Array,
  base: ReconstructionOptions,
  settings: Settings,
  work: string,
): Promise<KernelRun[]> {
  const runs: KernelRun[] = [];
  for (const kernel of settings.kernels) {
    const method = `classify2d ${kernel}`;
    const maxEpochs = kernel === 'fft' ? settings.scenario.fftEpochs : settings.scenario.referenceEpochs;
    let options: ReconstructionOptions;
    try {
      options = kernelOptions(base, kernel, maxEpochs, stack.size, stack.count);
    } catch (error) {
      const message = `options rejected: ${(error as Error).message}`;
      log(`${method}: ${message}`);
      const result: MethodResult = { method, unit: 'epoch', error: message, checkpoints: [], totalSeconds: 0, setupSeconds: null, notes: [] };
      runs.push({ kernel, options: { ...base, kernel, maxEpochs }, run: { result, sigmaPerEpoch: [], converged: false } });
      continue;
    }

    const run = await runClassify2d(device, { images: stack.images, size: stack.size }, truth, options, method, log);
    if (run.template !== undefined) {
      const path = join(work, `classify2d-${kernel}.mrc`);
      await writeFile(path, writeMrc(run.template, stack.size, stack.size, 1, { pixelSize: stack.pixelSize ?? 1, labels: [method] }));
    }
    runs.push({ kernel, options, run });
    let ending = 'stopped at the epoch limit';
    if (run.result.error !== undefined) ending = 'failed';
    else if (run.converged) ending = 'converged';
    console.log('');
    console.log(`${method} (${ending}):`);
    for (const line of formatCheckpoints(run.result)) console.log(line);
  }
  return runs;
}

/** Runs relion_refine with the search ranges of classify2d's resolved options and prints its iterations. */
async function runRelionStep(
  work: string,
  stack: LoadedStack,
  truth: Float32Array,
  base: ReconstructionOptions,
  settings: Settings,
  version: string,
): Promise<RelionRun> {
  const resolved = resolveOptions(base, stack.size, stack.count);
  const relionSettings: RelionSettings = {
    binary: settings.relionBinary,
    iterations: settings.scenario.relionIterations,
    threads: RELION_THREADS,
    psiStep: 360 / settings.scenario.rotations,
    offsetRange: resolved.shiftRange,
    offsetStep: resolved.shiftStep,
    shiftSd: resolved.shiftSd,
    seed: RUN_SEED,
  };
  const relion = await runRelion(work, relionSettings, version, truth, stack.size, log);
  console.log('');
  console.log(`RELION command: (cd ${work} && ${settings.relionBinary} ${relion.args.join(' ')})`);
  console.log(
    `  particle diameter ${relion.particleDiameter.toFixed(1)} Å: twice the radius outside which the truth is 0 ` +
      `(0.46 of the ${stack.size}-pixel box at ${relion.pixelSize} Å per pixel)`,
  );
  for (const line of formatCheckpoints(relion.result)) console.log(line);
  return relion;
}

async function main(): Promise<number> {
  let settings: Settings | 'help';
  try {
    settings = parseFlags(process.argv.slice(2));
  } catch (error) {
    if (!(error instanceof UsageError)) throw error;
    log(`end-to-end: ${error.message}`);
    log("Run 'node --import tsx bench/end-to-end.ts --help' for the flags.");
    return 2;
  }
  if (settings === 'help') {
    process.stdout.write(HELP);
    return 0;
  }
  const { scenario } = settings;
  const started = performance.now();
  // Checked before any long run, so that a missing RELION fails at once.
  const version = scenario.relionIterations > 0 ? relionVersion(settings.relionBinary) : null;

  const gpu = await requestNodeGpu();
  const cpus = os.cpus();
  const header = {
    date: new Date().toISOString(),
    adapter: gpu.info,
    node: process.version,
    cpu: { model: cpus[0]?.model ?? 'unknown', cores: os.availableParallelism() },
    relion: version,
  };
  console.log(`date     ${header.date}`);
  console.log(`adapter  ${gpu.info.description} (vendor ${gpu.info.vendor}, architecture ${gpu.info.architecture}, device ${gpu.info.device})`);
  console.log(`node     ${header.node}`);
  console.log(`cpu      ${header.cpu.model}, ${header.cpu.cores} cores`);
  if (version !== null) console.log(`relion   ${settings.relionBinary}: ${version}`);

  const work = settings.work === undefined ? mkdtempSync(join(os.tmpdir(), 'classify2d-e2e-')) : resolve(settings.work);
  mkdirSync(work, { recursive: true });
  if (version !== null) checkRelionFolder(work);
  console.log(`work     ${work}${settings.quick ? '  (--quick)' : ''}`);
  const simulateSeconds = await simulate(work, scenario);
  const stack = await loadStack(join(work, 'particles.star'));
  for (const warning of stack.warnings) log(`particles.star: ${warning}`);
  const truth = (await loadMrc(join(work, 'truth.mrc'))).data;
  const simulation = JSON.parse(readFileSync(join(work, 'simulation.json'), 'utf8')) as { sigma: number; pixelSize: number };
  console.log(`         ${stack.count} images of ${stack.size}², pixel ${stack.pixelSize} Å, noise σ ${simulation.sigma.toPrecision(4)}, simulated in ${simulateSeconds.toFixed(1)} s`);

  const base = baseOptions(scenario);
  console.log('');
  console.log(`classify2d options: ${JSON.stringify(base)} + kernel, maxEpochs (fft ${scenario.fftEpochs}, reference ${scenario.referenceEpochs}), snapshotEvery (one epoch of steps)`);
  console.log(describeResolved(base, stack.size, stack.count));

  const classify2d = await runKernels(gpu.device, stack, truth, base, settings, work);
  gpu.device.destroy();
  const fftRun = classify2d.find((entry) => entry.kernel === 'fft')?.run;
  const referenceRun = classify2d.find((entry) => entry.kernel === 'reference')?.run;
  if (fftRun !== undefined && referenceRun !== undefined && sameFirstEpoch(fftRun, referenceRun)) {
    // Two kernels that sum in different orders almost always differ in the last bits of float32 results.
    fftRun.result.notes.push("θ after epoch 1 is bit-identical to the reference kernel's, so this run most likely used the same kernel");
  }

  const relion = version === null ? undefined : await runRelionStep(work, stack, truth, base, settings, version);

  const results = [...classify2d.map((entry) => entry.run.result), ...(relion ? [relion.result] : [])];
  console.log('');
  for (const line of formatTable(results)) console.log(line);
  const ratio = speedRatio(referenceRun?.result, fftRun?.result);
  console.log('');
  if (ratio === null) {
    console.log('speed ratio: needs a finished epoch from both kernels (--kernels fft,reference)');
  } else {
    console.log(`speed ratio, reference / fft time per epoch: ${ratio.meanEpochs.toFixed(2)}× (mean), ${ratio.firstEpoch.toFixed(2)}× (epoch 1 against epoch 1)`);
  }
  const totalSeconds = (performance.now() - started) / 1000;
  console.log(`whole benchmark: ${totalSeconds.toFixed(1)} s of wall time; timings are noisy when other jobs share the cores`);

  if (settings.json !== undefined) {
    const report = {
      ...header,
      argv: process.argv.slice(2),
      work,
      data: { images: stack.count, size: stack.size, snr: scenario.snr, seed: SIMULATION_SEED, scaleHalfRange: 0, pixelSize: stack.pixelSize, sigma: simulation.sigma, simulateSeconds },
      classify2d: classify2d.map(({ kernel, options, run }) => ({ kernel, options, converged: run.converged, sigmaPerEpoch: run.sigmaPerEpoch, ...run.result })),
      relion: relion === undefined ? null : { command: [settings.relionBinary, ...relion.args], cwd: work, particleDiameter: relion.particleDiameter, pixelSize: relion.pixelSize, ...relion.result },
      speedRatio: ratio,
      totalSeconds,
    };
    await writeFile(settings.json, `${JSON.stringify(report, null, 2)}\n`);
    console.log(`figures: ${resolve(settings.json)}`);
  }
  return 0;
}

try {
  process.exitCode = await main();
} catch (error) {
  log(`end-to-end: ${error instanceof Error ? error.message : String(error)}`);
  process.exitCode = 1;
}
