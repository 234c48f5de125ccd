import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { writeReport } from '../scripts/experiments/report.js';
import { runExperiments, TINY_CONFIG, type Results, type RunSummary } from '../scripts/experiments/run.js';
import { readPng } from '../src/png.js';
import { openTestGpu } from './gpu.js';

/**
 * The report generator on its tiny configuration (12² boxes, 2 epochs): every experiment
 * runs on the test GPU, and the report and its figures are written to a temporary folder.
 * The bounds are loose versions of what that configuration gave on SwiftShader
 * (r 0.62 to 0.90).
 */
let folder: string;
let results: Results;
let written: string[];

beforeAll(async () => {
  const { device } = await openTestGpu();
  folder = mkdtempSync(join(tmpdir(), 'classify2d-experiments-'));
  results = await runExperiments(device, TINY_CONFIG, 'test adapter');
  written = await writeReport(results, folder, 'npm run experiments -- --tiny');
}, 300_000);

afterAll(() => {
  if (folder) rmSync(folder, { recursive: true, force: true });
});

function allRuns(): RunSummary[] {
  return [
    ...results.grid.map((cell) => cell.run),
    ...results.initialisations.map((entry) => entry.run),
    ...results.optimisers,
    ...results.reparameterisations,
    ...results.refinement.map((entry) => entry.run),
    results.splitHalf.run,
  ];
}

describe('experiments report', () => {
  it('runs every experiment', () => {
    expect(results.grid).toHaveLength(4);
    expect(results.initialisations.map((entry) => entry.init)).toEqual(['random', 'zeros', 'jensen']);
    expect(results.optimisers.map((run) => run.label)).toEqual(['sgd', 'momentum', 'nesterov', 'adam']);
    expect(results.reparameterisations.map((run) => run.label)).toEqual(['exp', 'softplus', 'sigmoid']);
    expect(results.refinement.map((entry) => entry.refine)).toEqual([true, false]);
  });

  it('gives finite numbers in range', () => {
    for (const run of allRuns()) {
      expect(run.r, `${run.label}: r`).toBeGreaterThan(0.4);
      expect(run.r, `${run.label}: r`).toBeLessThanOrEqual(1);
      expect(run.sigma, `${run.label}: σ`).toBeGreaterThan(0.2 * run.trueSigma);
      expect(run.sigma, `${run.label}: σ`).toBeLessThan(5 * run.trueSigma);
      expect(run.objectivePerEpoch, `${run.label}: objective per epoch`).toHaveLength(TINY_CONFIG.epochs);
      for (const value of run.objectivePerEpoch) expect(Number.isFinite(value), `${run.label}: objective ${value}`).toBe(true);
      if (run.crossing05 !== null) {
        expect(run.crossing05, `${run.label}: FRC crossing`).toBeGreaterThanOrEqual(0);
        expect(run.crossing05, `${run.label}: FRC crossing`).toBeLessThanOrEqual(0.5);
      }
    }
    for (const seconds of Object.values(results.seconds)) expect(seconds).toBeGreaterThan(0);
  });

  it('keeps one θ per epoch per initialisation', () => {
    for (const { init, epochTemplates } of results.initialisations) {
      expect(epochTemplates, init).toHaveLength(TINY_CONFIG.epochs);
    }
  });

  it('compares split halves with the truth', () => {
    const split = results.splitHalf;
    expect(split.halvesFrc).toHaveLength(split.frequencies.length);
    expect(split.truthFrc).toHaveLength(split.frequencies.length);
    expect(split.halves.r).toBeGreaterThan(0.3);
    for (const value of [...split.halvesFrc, ...split.truthFrc]) {
      expect(value).toBeGreaterThanOrEqual(-1);
      expect(value).toBeLessThanOrEqual(1);
    }
  });

  it('writes the page and its figures', () => {
    const page = readFileSync(join(folder, 'experiments.md'), 'utf8');
    for (const heading of ['## SNR and stack size', '## Initialisation', '## Optimisers and σ reparameterisations', '## Rotation-window refinement', '## Split-half validation']) {
      expect(page).toContain(heading);
    }
    expect(page).toContain('Adapter: test adapter.');
    const links = [...page.matchAll(/!\[[^\]]*\]\(([^)]+)\)/g)].map((match) => match[1]);
    // The grid's 4 cells and its strip, 3 initialisation strips and a chart, 2 charts, the halves and their FRC.
    expect(links).toHaveLength(13);
    for (const link of links) {
      const path = join(folder, link);
      expect(existsSync(path), link).toBe(true);
      const png = readPng(new Uint8Array(readFileSync(path)), link);
      expect(png.width, link).toBeGreaterThan(20);
    }
    expect(written).toContain(join(folder, 'experiments.md'));
    // The grid strip: the truth and 4 reconstructions of 12², magnified 4 times, with 1-pixel gaps.
    const grid = readPng(new Uint8Array(readFileSync(join(folder, 'experiments', 'grid.png'))));
    expect(grid.width).toBe((5 * 12 + 4) * 4);
  });
});
