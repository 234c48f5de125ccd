/**
 * `classify2d reconstruct`: reads a stack or a particle file, runs the reconstruction in
 * the Node worker and writes the template, the poses and a report. An interrupt stops the
 * run after its current step and still writes what was finished.
 */
import { join, resolve } from 'node:path';

import { writeMrc } from '../mrc.js';
import { createNodeReconstructor } from '../node-client.js';
import { resolveOptions, type ReconstructionOptions, type ResolvedOptions } from '../options.js';
import type { ReconstructionResult } from '../reconstruct.js';
import { resolutionAngstrom } from '../metrics.js';
import { resultFiles, supportedClasses } from '../result-files.js';
import type { AdapterDescription } from '../node-gpu.js';
import { booleanFlag, listFlag, numberFlag, stringFlag, UsageError, type CommandSpec, type Flag, type ParsedCommand } from './args.js';
import { interruptExitStatus, type CommandContext } from './context.js';
import { imageName, loadStack, prepareOutputFolder, removeStaleOutputs, writeOutput, type LoadedStack } from './files.js';
import { formatJson } from './json.js';
import { ProgressBar } from './progress.js';
import { packageVersion } from './version.js';

/** A flag that sets one reconstruction option. */
interface OptionFlag extends Flag {
  option: keyof ReconstructionOptions;
}

const OPTION_FLAGS: readonly OptionFlag[] = [
  { name: 'rotations', option: 'rotations', kind: 'integer', help: 'Rotation nodes on the full circle and in each refined window (default 36).' },
  { name: 'shift-range', option: 'shiftRange', kind: 'number', value: 'PIXELS', help: 'Shift nodes run from −range to +range on each axis (default ⌊2 × shift-sd⌋).' },
  { name: 'shift-step', option: 'shiftStep', kind: 'number', value: 'PIXELS', help: 'Spacing of the shift nodes (default 1).' },
  { name: 'kernel', option: 'kernel', kind: 'string', choices: ['fft', 'reference'], help: "Engine kernel (default 'fft' for whole-pixel shift steps, else 'reference'): FFT correlation over all shifts, or resampling per pose." },
  { name: 'shift-sd', option: 'shiftSd', kind: 'number', value: 'PIXELS', help: 'Standard deviation of the Gaussian shift prior (default 5 % of the box).' },
  { name: 'scales', option: 'scales', kind: 'integer', help: 'Scale nodes over the scale prior (default 3).' },
  { name: 'scale-half-range', option: 'scaleHalfRange', kind: 'number', value: 'E', help: 'Scale prior U[1 − E, 1 + E] (default 0.05).' },
  { name: 'lambda', option: 'lambda', kind: 'number', value: 'L', help: 'Weight of the Laplace prior −L‖θ‖₁ (default 1).' },
  { name: 'batch-size', option: 'batchSize', kind: 'integer', help: 'Images per minibatch (default 5).' },
  { name: 'epochs', option: 'maxEpochs', kind: 'integer', help: 'Largest number of epochs (default 12).' },
  { name: 'tolerance', option: 'tolerance', kind: 'number', value: 'T', help: 'Stop when the epoch objective changes by less than T relative (default 1e-4).' },
  { name: 'optimiser', option: 'optimiser', kind: 'string', help: "Optimiser plugin (default 'nesterov'): sgd, momentum, nesterov, adam." },
  { name: 'learning-rate-theta', option: 'learningRateTheta', kind: 'number', value: 'RATE', help: 'Learning rate of θ on the preconditioned gradient (default 0.2).' },
  { name: 'learning-rate-sigma', option: 'learningRateSigma', kind: 'number', value: 'RATE', help: "Learning rate of σ's parameter (default 0.05)." },
  { name: 'schedule-every', option: 'scheduleEvery', kind: 'integer', value: 'EPOCHS', help: 'Epochs between learning-rate drops (default 4).' },
  { name: 'schedule-factor', option: 'scheduleFactor', kind: 'number', value: 'F', help: 'Factor applied to both learning rates at each drop (default 0.1).' },
  { name: 'reparameterisation', option: 'reparameterisation', kind: 'string', help: "σ reparameterisation plugin (default 'softplus'): exp, softplus, sigmoid." },
  { name: 'init', option: 'init', kind: 'string', choices: ['jensen', 'zeros', 'random'], help: "Initial template (default 'jensen')." },
  { name: 'jensen-iterations', option: 'jensenIterations', kind: 'integer', help: 'Passes over the stack of the Jensen-bound initialisation (default 1).' },
  { name: 'initial-sigma', option: 'initialSigma', kind: 'number', value: 'SIGMA', help: "Initial noise σ (default half the stack's pixel standard deviation)." },
  { name: 'classes', option: 'classes', kind: 'integer', value: 'K', help: 'Classes to sort the images into, each with its own template (default 1).' },
  { name: 'empty-class-fraction', option: 'emptyClassFraction', kind: 'number', value: 'F', help: 'A class holding less than F × n/K images of responsibility in an epoch is re-seeded, and reported empty at the end (default 0.2).' },
  { name: 'learning-rate-class-weights', option: 'learningRateClassWeights', kind: 'number', value: 'RATE', help: 'Learning rate of the class weights (default 0.5).' },
  { name: 'seed', option: 'seed', kind: 'integer', help: 'Seed of the shuffling and of the random initialisation (default 1).' },
];

const OUTPUTS = ['template.mrc', 'template.png', 'classes.mrcs', 'classes.png', 'poses.star', 'report.json', 'halves.mrcs', 'template.partial.mrc'];

export const reconstructCommand: CommandSpec = {
  name: 'reconstruct',
  usage: 'reconstruct <stack.mrcs | particles.star> --out DIR [options]',
  summary:
    'Reconstructs templates from a stack of noisy images. There is one template, or with --classes K one ' +
    'per class. The rotation, shift and scale of each image, and its class, are integrated out on a grid, on the local ' +
    'GPU (or SwiftShader where there is none). Writes template.mrc, template.png, poses.star and ' +
    'report.json to DIR, and with K > 1 the class averages as classes.mrcs and classes.png.',
  positionals: 1,
  flags: [
    { name: 'out', kind: 'string', value: 'DIR', required: true, help: 'Folder for the results, created if missing.' },
    ...OPTION_FLAGS,
    { name: 'optimiser-option', kind: 'list', value: 'NAME=VALUE', help: 'Optimiser hyper-parameter, such as momentum=0.5; repeatable.' },
    { name: 'no-refine-rotations', kind: 'boolean', help: 'Keep every rotation node on the full circle instead of narrowing each image to a window.' },
    { name: 'split-half', kind: 'boolean', help: 'Also reconstruct two random halves and report their FRC (three times the work).' },
    { name: 'pixel-size', kind: 'number', value: 'ANGSTROM', help: 'Pixel size in Å, replacing the one in the files (default: from the files, else 1).' },
    { name: 'drop-bad-images', kind: 'boolean', help: 'Leave out images with a NaN or infinite pixel instead of stopping.' },
    { name: 'force', kind: 'boolean', help: "Replace results already in DIR, and remove an earlier run's files that this run does not write." },
  ],
  notes: [
    'Ctrl-C (or SIGTERM) stops the run after its current step and writes the template reached so far, with ' +
      '"cancelled": true in report.json; the initialisation before the first step runs to its end. ' +
      'A second Ctrl-C quits at once. poses.star holds each ' +
      "image's most probable class and pose: psi in degrees, origins in Å, the pose scale in " +
      '_classify2dScale, its posterior weight in _rlnMaxValueProbDistribution, and the class probability ' +
      'in _classify2dClassProbability.',
    'With K > 1, classes.mrcs holds the classes that images were assigned to, largest first, so that ' +
      "_rlnClassNumber N is image N of the stack; template.mrc is the largest class. Classes without " +
      'evidence in the stack (BIC) are removed at the end, and report.json lists each class with its size, ' +
      'weight, flags (empty, redundant, copy of another) and re-seeds.',
  ],
};

/** Builds the reconstruction options from the flags given; absent flags are left to the defaults. */
function optionsOf(parsed: ParsedCommand): ReconstructionOptions {
  const options: Record<string, unknown> = {};
  for (const flag of OPTION_FLAGS) {
    const value = parsed.values.get(flag.name);
    if (value !== undefined) options[flag.option] = value;
  }
  if (booleanFlag(parsed, 'no-refine-rotations')) options.refineRotations = false;
  if (booleanFlag(parsed, 'split-half')) options.splitHalf = true;
  const hyper: Record<string, number> = {};
  for (const entry of listFlag(parsed, 'optimiser-option')) {
    const match = /^([A-Za-z_][\w]*)=(.+)$/.exec(entry);
    const value = match ? Number(match[2]) : NaN;
    if (!match || !Number.isFinite(value)) {
      throw new UsageError('reconstruct', `classify2d reconstruct: --optimiser-option is '${entry}'; it must be NAME=NUMBER, such as momentum=0.5`);
    }
    if (match[1] in hyper) {
      throw new UsageError('reconstruct', `classify2d reconstruct: --optimiser-option sets ${match[1]} twice (${hyper[match[1]]} and ${value}); set it once`);
    }
    hyper[match[1]] = value;
  }
  if (Object.keys(hyper).length > 0) options.optimiserOptions = hyper;
  return options as ReconstructionOptions;
}

/** Resolves the options, rewording an invalid option's message in terms of its flag. */
function validateOptions(options: ReconstructionOptions, stack: LoadedStack): ResolvedOptions {
  try {
    return resolveOptions(options, stack.size, stack.count);
  } catch (error) {
    if (!(error instanceof Error)) throw error;
    let message = error.message;
    for (const flag of OPTION_FLAGS) message = message.replace(new RegExp(`\\boption ${flag.option}\\b`), `--${flag.name}`);
    message = message.replace(/\boption refineRotations\b/, '--no-refine-rotations').replace(/\boption splitHalf\b/, '--split-half');
    // Options named inside the message, such as "at least shiftStep" or "when scales > 1".
    // Only camel-case names are replaced everywhere, because words such as "optimiser" also
    // appear in plain text.
    for (const flag of OPTION_FLAGS) {
      if (/[A-Z]/.test(flag.option)) message = message.replace(new RegExp(`\\b${flag.option}\\b`, 'g'), `--${flag.name}`);
    }
    message = message.replace(/\bwhen scales\b/, 'when --scales').replace(/\bsplitHalf is set\b/, '--split-half is given');
    throw new UsageError('reconstruct', `classify2d reconstruct: ${message}`);
  }
}

/** Returns the resolved options as plain values for the report, without the plugin objects. */
function plainOptions(resolved: ResolvedOptions): Record<string, unknown> {
  // snapshotEvery is set by this command for its own use, not by the user.
  const { optimiserPlugin, reparameterisationPlugin, snapshotEvery, ...rest } = resolved;
  void optimiserPlugin;
  void reparameterisationPlugin;
  void snapshotEvery;
  return rest;
}

export async function runReconstruct(parsed: ParsedCommand, context: CommandContext): Promise<number> {
  // Reading the signal installs the Ctrl-C handlers, so that a Ctrl-C while the input is
  // read ends the command cleanly, with nothing written.
  const interrupt = context.interrupt;
  const started = new Date();
  const input = parsed.positionals[0];
  const out = resolve(stringFlag(parsed, 'out')!);
  const options = optionsOf(parsed);
  const pixelSizeFlag = numberFlag(parsed, 'pixel-size');
  if (pixelSizeFlag !== undefined && !(pixelSizeFlag > 0)) {
    throw new UsageError('reconstruct', `classify2d reconstruct: --pixel-size is ${pixelSizeFlag}; it must be a positive number of Å`);
  }

  const readStart = performance.now();
  const stack = await loadStack(input, { dropNonFinite: booleanFlag(parsed, 'drop-bad-images') });
  const readSeconds = (performance.now() - readStart) / 1000;
  for (const warning of stack.warnings) context.log(`warning: ${warning}`);
  if (stack.dropped.length > 0) context.log(`left out ${stack.dropped.length} images with NaN or infinite pixels`);
  if (stack.constant.length === stack.count) {
    throw new Error(`${input}: all ${stack.count} images are constant, so there is nothing to reconstruct`);
  }
  if (stack.constant.length > 0) context.log(`warning: ${stack.constant.length} images are constant and carry no signal`);
  const resolved = validateOptions(options, stack);
  let pixelSize = pixelSizeFlag ?? stack.pixelSize;
  if (pixelSize === null) {
    context.log(`warning: ${input} gives no pixel size; writing 1 Å per pixel (set it with --pixel-size)`);
    pixelSize = 1;
  }
  if (interrupt.aborted) {
    context.log('interrupted before the reconstruction started; nothing was written');
    return interruptExitStatus(interrupt);
  }
  const force = booleanFlag(parsed, 'force');
  await prepareOutputFolder('reconstruct', out, OUTPUTS, force);

  const worker = await createNodeReconstructor();
  const bar = new ProgressBar(context.stderr, resolved.maxEpochs);
  const epochSeconds: number[] = [];
  let snapshot: Float32Array | undefined;
  let adapter: AdapterDescription | undefined;
  let result: ReconstructionResult | undefined;
  const runStart = performance.now();
  let stepped = false;
  // The worker checks the signal only after each step, so the initialisation before the
  // first step runs to its end.
  const stopOnInterrupt = () =>
    bar.log(
      stepped
        ? 'interrupted: stopping after the current step (a second Ctrl-C quits at once)'
        : 'interrupted: stopping after the initialisation and the first step (a second Ctrl-C quits at once)',
    );
  if (interrupt.aborted) stopOnInterrupt();
  else interrupt.addEventListener('abort', stopOnInterrupt, { once: true });
  try {
    adapter = await worker.adapter();
    context.log(`adapter: ${adapter.description || adapter.device} (${adapter.vendor}, ${adapter.architecture})`);
    context.log(`${stack.count} images of ${stack.size}² pixels from ${input}, ${pixelSize} Å per pixel`);
    const snapshotEvery = Math.max(1, Math.ceil(stack.count / resolved.batchSize));
    result = await worker.reconstruct(
      { images: stack.images, size: stack.size },
      { ...options, snapshotEvery },
      {
        signal: interrupt,
        onProgress: (progress) => {
          stepped = true;
          for (const notice of progress.notices ?? []) bar.log(notice);
          bar.update(progress);
          if (progress.template && progress.phase === 'full') snapshot = progress.template;
          if (progress.phase === 'full') epochSeconds[progress.epoch - 1] = progress.elapsedSeconds;
        },
      },
    );
    bar.finish();
  } catch (error) {
    bar.finish();
    const report = {
      ...reportHeader(started, input, stack, pixelSize, resolved, adapter),
      error: error instanceof Error ? `${error.name}: ${error.message}` : String(error),
      template: snapshot ? 'template.partial.mrc' : null,
    };
    if (snapshot) {
      const classes = snapshot.length / (stack.size * stack.size);
      await writeOutput(join(out, 'template.partial.mrc'), writeMrc(snapshot, stack.size, stack.size, classes, { pixelSize }));
    }
    await writeOutput(join(out, 'report.json'), formatJson(report));
    context.log(`the run failed; ${snapshot ? 'the last template snapshot is in template.partial.mrc, and ' : ''}report.json records the error`);
    throw error;
  } finally {
    interrupt.removeEventListener('abort', stopOnInterrupt);
    await worker.terminate();
  }
  const runSeconds = (performance.now() - runStart) / 1000;

  const writeStart = performance.now();
  const written = [...(await writeResults(out, stack, result, pixelSize)), 'report.json'];
  const report = {
    ...reportHeader(started, input, stack, pixelSize, resolved, adapter),
    cancelled: result.cancelled,
    converged: result.converged,
    epochs: result.epochs,
    sigma: result.sigma,
    initialSigma: result.initialSigma,
    initialObjective: result.initialObjective,
    finalObjective: result.finalObjective ?? null,
    objectivePerEpoch: result.objectivePerEpoch,
    classes: classReport(result),
    reseeds: result.classes.reduce((sum, summary) => sum + summary.reseeds, 0),
    notices: result.notices,
    validation: validationReport(result, pixelSize),
    timings: {
      readSeconds,
      reconstructSeconds: runSeconds,
      epochEndSeconds: epochSeconds.slice(0, result.epochs),
      writeSeconds: (performance.now() - writeStart) / 1000,
    },
    outputs: written,
  };
  await writeOutput(join(out, 'report.json'), formatJson(report));
  // Only a finished or stopped run removes an earlier run's files. A failed one keeps
  // them, because they may be the only results.
  if (force) await removeStaleOutputs(out, OUTPUTS, written);
  let state = 'stopped at the epoch limit';
  if (result.converged) state = 'converged';
  if (result.cancelled) state = 'cancelled';
  context.log(`${state} after ${result.epochs} epochs in ${runSeconds.toFixed(1)} s; σ ${result.sigma.toPrecision(4)}`);
  context.log(`wrote ${written.map((name) => join(out, name)).join(', ')}`);
  return result.cancelled ? interruptExitStatus(interrupt) : 0;
}

function reportHeader(
  started: Date,
  input: string,
  stack: LoadedStack,
  pixelSize: number,
  resolved: ResolvedOptions,
  adapter: AdapterDescription | undefined,
) {
  return {
    program: 'classify2d',
    version: packageVersion(),
    started: started.toISOString(),
    input: {
      path: resolve(input),
      images: stack.count,
      size: stack.size,
      pixelSize,
      droppedImages: stack.dropped.map((source) => `${source.index + 1}@${source.stackPath}`),
      constantImages: stack.constant.length,
    },
    adapter: adapter ?? null,
    options: plainOptions(resolved),
  };
}

async function writeResults(out: string, stack: LoadedStack, result: ReconstructionResult, pixelSize: number): Promise<string[]> {
  const imageNames = stack.sources.map((source) => imageName(source, out));
  const files = resultFiles(result, { pixelSize, imageNames, microscope: stack.microscope });
  for (const [name, data] of files) await writeOutput(join(out, name), data);
  return [...files.keys()];
}

/** Lists the classes in the order of classes.mrcs with their flags; duplicateOf is a class number. */
function classReport(result: ReconstructionResult) {
  const supported = result.classes.length > 1 ? supportedClasses(result) : 0;
  return result.classes.map((summary, position) => ({
    classNumber: position + 1,
    images: summary.images,
    weight: summary.weight,
    responsibility: summary.responsibility,
    empty: summary.empty,
    redundant: summary.redundant,
    duplicateOf: summary.duplicateOf === null ? null : summary.duplicateOf + 1,
    reseeds: summary.reseeds,
    inClassesMrcs: position < supported,
  }));
}

function validationReport(result: ReconstructionResult, pixelSize: number) {
  const validation = result.validation;
  if (!validation) return null;
  return {
    r: validation.r,
    crossing05: validation.crossing05,
    crossing0143: validation.crossing0143,
    resolution05Angstrom: resolutionAngstrom(validation.crossing05, pixelSize),
    resolution0143Angstrom: resolutionAngstrom(validation.crossing0143, pixelSize),
    frequencies: [...validation.frequencies],
    frc: [...validation.frc],
  };
}
