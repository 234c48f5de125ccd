/**
 * The experiments of the report, each a seeded run on stacks simulated from the mandrill
 * picture: the SNR × stack-size grid, the initialisations, the optimisers and σ
 * reparameterisations, the rotation-window refinement, and split-half validation.
 */
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';

import { resample } from '../../gpu/host.js';
import { alignTemplates, fourierRingCorrelation, scoreTemplate } from '../../src/metrics.js';
import type { Initialisation, ReconstructionOptions } from '../../src/options.js';
import { templateFromPicture } from '../../src/picture.js';
import { readPng } from '../../src/png.js';
import { reconstruct, type ReconstructionResult } from '../../src/reconstruct.js';
import { simulateStack } from '../../src/synthetic.js';

export interface ExperimentConfig {
  name: string;
  /** Box side, pixels. */
  size: number;
  /** SNRs and stack sizes of the grid. */
  gridSnrs: number[];
  gridImages: number[];
  /** Stack size and SNR of the other experiments. */
  images: number;
  snr: number;
  rotations: number;
  epochs: number;
}

/** Sized so that the whole report takes under 30 minutes on 2 cores with SwiftShader. */
export const DEFAULT_CONFIG: ExperimentConfig = {
  name: 'default',
  size: 24,
  gridSnrs: [0.42, 12],
  gridImages: [20, 100],
  images: 60,
  snr: 1,
  rotations: 13,
  epochs: 6,
};

/** For a real GPU: a 64² box, 36 rotation nodes and 12 epochs. */
export const LARGE_CONFIG: ExperimentConfig = {
  name: 'large',
  size: 64,
  gridSnrs: [0.42, 12],
  gridImages: [20, 100],
  images: 200,
  snr: 1,
  rotations: 36,
  epochs: 12,
};

/** For the tests of the generator: seconds on SwiftShader. */
export const TINY_CONFIG: ExperimentConfig = {
  name: 'tiny',
  size: 12,
  gridSnrs: [0.42, 12],
  gridImages: [6, 12],
  images: 10,
  snr: 1,
  rotations: 6,
  epochs: 2,
};

export interface RunSummary {
  label: string;
  r: number;
  /** FRC 0.5 crossing against the truth, cycles per pixel, or null if it never falls below. */
  crossing05: number | null;
  sigma: number;
  trueSigma: number;
  objectivePerEpoch: number[];
  seconds: number;
  /** θ aligned onto the truth [N, N]. */
  aligned: Float64Array;
}

export interface Results {
  config: ExperimentConfig;
  adapter: string;
  truth: Float32Array;
  grid: { snr: number; images: number; run: RunSummary }[];
  initialisations: { init: Initialisation; run: RunSummary; epochTemplates: Float64Array[] }[];
  optimisers: RunSummary[];
  reparameterisations: RunSummary[];
  refinement: { refine: boolean; run: RunSummary }[];
  splitHalf: {
    run: RunSummary;
    frequencies: number[];
    halvesFrc: number[];
    truthFrc: number[];
    halves: { crossing05: number | null; crossing0143: number | null; r: number };
    /** The two half reconstructions, each aligned onto the truth for display [N, N]. */
    halfImages: [Float64Array, Float64Array];
    truth: { crossing05: number | null; crossing0143: number | null };
  };
  /** Wall time of each experiment, seconds. */
  seconds: Record<string, number>;
}

/** Makes the truth: the mandrill picture that the baboon-image package ships, as a template. */
export function mandrillTemplate(size: number): Float32Array {
  const require = createRequire(import.meta.url);
  const png = readPng(new Uint8Array(readFileSync(require.resolve('baboon-image/baboon.png'))), 'baboon.png');
  return templateFromPicture(png.image, png.width, png.height, size);
}

class Runner {
  constructor(
    readonly device: GPUDevice,
    readonly config: ExperimentConfig,
    readonly truth: Float32Array,
    readonly log: (message: string) => void,
  ) {}

  simulate(images: number, snr: number, seed: number) {
    return simulateStack(this.truth, this.config.size, { count: images, snr, seed, scaleHalfRange: 0 }, resample);
  }

  /** Runs one reconstruction with the report's grid and scores it against the truth. */
  async run(
    label: string,
    stack: ReturnType<Runner['simulate']>,
    options: ReconstructionOptions,
    onTemplate?: (template: Float32Array) => void,
  ): Promise<{ summary: RunSummary; result: ReconstructionResult }> {
    const { size, rotations, epochs } = this.config;
    const started = performance.now();
    const result = await reconstruct(
      this.device,
      { images: stack.images, size },
      { rotations, scales: 1, scaleHalfRange: 0, maxEpochs: epochs, tolerance: 0, ...options },
      { onProgress: (progress) => progress.template && onTemplate?.(progress.template) },
    );
    const seconds = (performance.now() - started) / 1000;
    const score = scoreTemplate(this.truth, result.template, size, { searchScale: false });
    this.log(`${label}: r ${score.r.toFixed(3)}, σ ${result.sigma.toPrecision(3)} (truth ${stack.sigma.toPrecision(3)}), ${seconds.toFixed(1)} s`);
    const summary: RunSummary = {
      label,
      r: score.r,
      crossing05: score.crossing05,
      sigma: result.sigma,
      trueSigma: stack.sigma,
      objectivePerEpoch: result.objectivePerEpoch,
      seconds,
      aligned: score.aligned,
    };
    return { summary, result };
  }
}

async function timed<T>(seconds: Record<string, number>, name: string, work: () => Promise<T>): Promise<T> {
  const started = performance.now();
  const value = await work();
  seconds[name] = (performance.now() - started) / 1000;
  return value;
}

/** Runs every experiment of the report on `device`, one after another. */
export async function runExperiments(
  device: GPUDevice,
  config: ExperimentConfig,
  adapter: string,
  log: (message: string) => void = () => {},
): Promise<Results> {
  const truth = mandrillTemplate(config.size);
  const runner = new Runner(device, config, truth, log);
  const seconds: Record<string, number> = {};
  const batchSize = Math.min(5, ...config.gridImages);
  const stepsPerEpoch = Math.ceil(config.images / batchSize);

  const grid = await timed(seconds, 'grid', async () => {
    const cells: Results['grid'] = [];
    for (const snr of config.gridSnrs) {
      for (const images of config.gridImages) {
        const stack = runner.simulate(images, snr, 1000 + images);
        cells.push({ snr, images, run: (await runner.run(`SNR ${snr}, n ${images}`, stack, { batchSize })).summary });
      }
    }
    return cells;
  });

  const stack = runner.simulate(config.images, config.snr, 7);
  const initialisations = await timed(seconds, 'initialisations', async () => {
    const runs: Results['initialisations'] = [];
    for (const init of ['random', 'zeros', 'jensen'] as const) {
      const epochTemplates: Float64Array[] = [];
      const { summary } = await runner.run(`init ${init}`, stack, { init, batchSize, snapshotEvery: stepsPerEpoch }, (template) => {
        epochTemplates.push(alignTemplates(truth, template, config.size, { searchScale: false }).aligned);
      });
      runs.push({ init, run: summary, epochTemplates });
    }
    return runs;
  });

  const optimisers = await timed(seconds, 'optimisers', async () => {
    const runs: RunSummary[] = [];
    for (const optimiser of ['sgd', 'momentum', 'nesterov', 'adam']) {
      runs.push((await runner.run(optimiser, stack, { optimiser, batchSize })).summary);
    }
    return runs;
  });

  const reparameterisations = await timed(seconds, 'reparameterisations', async () => {
    const runs: RunSummary[] = [];
    for (const reparameterisation of ['exp', 'softplus', 'sigmoid']) {
      runs.push((await runner.run(reparameterisation, stack, { reparameterisation, batchSize })).summary);
    }
    return runs;
  });

  const refinement = await timed(seconds, 'refinement', async () => {
    const runs: Results['refinement'] = [];
    for (const refine of [true, false]) {
      const label = refine ? 'with refinement' : 'without refinement';
      runs.push({ refine, run: (await runner.run(label, stack, { refineRotations: refine, batchSize })).summary });
    }
    return runs;
  });

  const splitHalf = await timed(seconds, 'splitHalf', async () => {
    const halfBatch = Math.min(batchSize, Math.floor(config.images / 2));
    const { summary, result } = await runner.run('split-half', stack, { splitHalf: true, batchSize: halfBatch });
    const validation = result.validation!;
    const truthFrc = fourierRingCorrelation(truth, summary.aligned, config.size);
    return {
      run: summary,
      frequencies: [...validation.frequencies],
      halvesFrc: [...validation.frc],
      truthFrc: [...truthFrc.frc],
      halves: { crossing05: validation.crossing05, crossing0143: validation.crossing0143, r: validation.r },
      halfImages: validation.halves.map((half) => alignTemplates(truth, half, config.size, { searchScale: false }).aligned) as [Float64Array, Float64Array],
      truth: { crossing05: truthFrc.crossing(0.5), crossing0143: truthFrc.crossing(0.143) },
    };
  });

  return { config, adapter, truth, grid, initialisations, optimisers, reparameterisations, refinement, splitHalf, seconds };
}
