import { readFileSync } from 'node:fs';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { resample } from '../gpu/host.js';
import { ClassWeights, classResponsibilities, emptyClasses, summariseClasses, templateScales, worstFitImages } from '../src/classes.js';
import type { Reconstructor } from '../src/client.js';
import { alignTemplates } from '../src/metrics.js';
import { createNodeReconstructor } from '../src/node-client.js';
import { resolveOptions } from '../src/options.js';
import { templateFromPicture } from '../src/picture.js';
import { readPng } from '../src/png.js';
import type { ReconstructionResult } from '../src/reconstruct.js';
import { blobTemplate, figureTemplate, seededRandom, simulateStack, unitVariance } from '../src/synthetic.js';

describe('class weights', () => {
  it('start uniform and sum to 1', () => {
    const weights = new ClassWeights(4).weights();
    for (const weight of weights) expect(weight).toBeCloseTo(0.25, 12);
  });

  it('step towards the batch responsibilities', () => {
    const classWeights = new ClassWeights(2);
    // Every image belongs to class 0 with probability 0.8.
    const batch = Float64Array.from([0.8, 0.2, 0.8, 0.2, 0.8, 0.2]);
    for (let step = 0; step < 200; step++) classWeights.step(batch, 3, 0.2);
    expect(classWeights.weights()[0]).toBeCloseTo(0.8, 3);
  });

  it('split halves a class weight', () => {
    const classWeights = new ClassWeights(3);
    classWeights.logits.set([Math.log(0.6), Math.log(0.3), Math.log(0.1)]);
    classWeights.split(0, 2);
    const weights = classWeights.weights();
    expect(weights[0]).toBeCloseTo(0.3 / 0.9, 12);
    expect(weights[2]).toBeCloseTo(0.3 / 0.9, 12);
    expect(weights[1]).toBeCloseTo(0.3 / 0.9, 12);
  });

  it('exclude drops a class to the floor', () => {
    const classWeights = new ClassWeights(3);
    classWeights.exclude(1);
    const logWeights = classWeights.logWeights();
    expect(logWeights[1]).toBe(-1e15);
    expect(Math.exp(logWeights[0])).toBeCloseTo(0.5, 12);
  });
});

describe('class helpers', () => {
  it('sums responsibilities over poses', () => {
    // Two images, two classes, three poses each.
    const gamma = Float64Array.from([0.1, 0.2, 0.3, 0.4, 0, 0, 0, 0, 0.5, 0.25, 0.25, 0]);
    expect([...classResponsibilities(gamma, 2, 2)].map((v) => Number(v.toFixed(12)))).toEqual([0.6, 0.4, 0.5, 0.5]);
    // Sums that miss 1 are renormalised.
    expect([...classResponsibilities([0.3, 0.3, 0.2, 0.2], 1, 2)]).toEqual([0.6, 0.4]);
  });

  it('scales templates by the images each class holds', () => {
    // Four images: 3 in class 0, 1 in class 1, none in class 2 (floored at one image).
    const membership = Float64Array.from([1, 0, 0, 1, 0, 0, 1, 0, 0, 0, 1, 0]);
    expect([...templateScales(membership, 4, 3)]).toEqual([4 / 3, 4, 4]);
    expect([...templateScales(new Float64Array(5).fill(1), 5, 1)]).toEqual([1]);
  });

  it('finds empty classes below the threshold', () => {
    // n = 100, K = 4: the threshold is 0.2 · 25 = 5 images.
    expect(emptyClasses([60, 4.9, 30, 5.1], 100, 0.2)).toEqual([1]);
    expect(emptyClasses([60, 4.9, 30, 5.1], 100, 0)).toEqual([]);
  });

  it('picks the images with the lowest log integral', () => {
    expect(worstFitImages([-3, -10, 2, -7, 0], 2)).toEqual([1, 3]);
    expect(worstFitImages([1, 2], 5)).toEqual([0, 1]);
  });

  it('sorts the summary by size and flags copies', () => {
    const size = 16;
    const figure = figureTemplate(size);
    const blob = blobTemplate(size, seededRandom(3));
    // Class 2 is class 0 turned by a quarter turn, so it is a copy up to rotation.
    const turned = new Float32Array(size * size);
    for (let y = 0; y < size; y++) for (let x = 0; x < size; x++) turned[x * size + (size - 1 - y)] = figure[y * size + x];
    const templates = new Float32Array(3 * size * size);
    templates.set(figure, 0);
    templates.set(blob, size * size);
    templates.set(turned, 2 * size * size);
    const assigned = [0, 0, 0, 0, 1, 1, 2, 2, 2];
    const summary = summariseClasses(templates, size, [0.4, 0.25, 0.35], [4, 2, 3], assigned, [0, 1, 0], [false, false, false], 0.2);
    expect(summary.map((c) => c.index)).toEqual([0, 2, 1]);
    expect(summary.map((c) => c.images)).toEqual([4, 3, 2]);
    expect(summary[1].duplicateOf).toBe(0);
    expect(summary[2].duplicateOf).toBeNull();
    expect(summary[2].reseeds).toBe(1);
    expect(summary.every((c) => !c.empty)).toBe(true);
  });
});

describe('class options', () => {
  it('reject zeros and split halves with classes', () => {
    expect(() => resolveOptions({ classes: 2, init: 'zeros' }, 16, 20)).toThrow("option init is \"zeros\"; it must be 'jensen' or 'random' when classes > 1");
    expect(() => resolveOptions({ classes: 2, splitHalf: true }, 16, 20)).toThrow('option splitHalf is true');
    expect(() => resolveOptions({ classes: 21 }, 16, 20)).toThrow('option classes is 21; it must be at most the 20 images');
    expect(() => resolveOptions({ classes: 0 }, 16, 20)).toThrow('option classes is 0');
    expect(() => resolveOptions({ emptyClassFraction: 1 }, 16, 20)).toThrow('option emptyClassFraction is 1');
  });

  it('check the initial templates', () => {
    expect(() => resolveOptions({ classes: 2, initialTemplates: new Float32Array(256) }, 16, 20)).toThrow('512 values, one template per class');
    const bad = new Float32Array(256);
    bad[7] = NaN;
    expect(() => resolveOptions({ initialTemplates: bad }, 16, 20)).toThrow('non-finite (NaN) at index 7');
  });
});

/**
 * End-to-end classification in a Node worker at SNR 1, sized for SwiftShader: 20² boxes,
 * 20 images per true class, 13 rotation nodes and no scale axis. The true templates are
 * scaled to unit pixel variance, so one σ fits every class, and they differ clearly after
 * alignment (pairwise r 0.5 to 0.83).
 */
const SIZE = 20;
const PER_CLASS = 20;
const GRID = { rotations: 13, scales: 1, scaleHalfRange: 0, maxEpochs: 5 };

function truths(): Float32Array[] {
  const path = new URL('../node_modules/baboon-image/baboon.png', import.meta.url);
  const png = readPng(new Uint8Array(readFileSync(path)));
  return [
    figureTemplate(SIZE),
    templateFromPicture(png.image, png.width, png.height, SIZE),
    blobTemplate(SIZE, seededRandom(11)),
  ].map(unitVariance);
}

/** Simulates PER_CLASS images of each template and shuffles them (seeded); returns the stack and each image's true class. */
function mixture(templates: Float32Array[]): { images: Float32Array; labels: number[] } {
  const pixels = SIZE * SIZE;
  const stacks = templates.map((template, c) =>
    simulateStack(template, SIZE, { count: PER_CLASS, snr: 1, seed: 100 + c, scaleHalfRange: 0 }, resample).images,
  );
  const order = Array.from({ length: templates.length * PER_CLASS }, (_, i) => i);
  const random = seededRandom(5);
  for (let i = order.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [order[i], order[j]] = [order[j], order[i]];
  }
  const images = new Float32Array(order.length * pixels);
  const labels = order.map((source, slot) => {
    const c = Math.floor(source / PER_CLASS);
    const i = source % PER_CLASS;
    images.set(stacks[c].subarray(i * pixels, (i + 1) * pixels), slot * pixels);
    return c;
  });
  return { images, labels };
}

/** Returns the positions of the classes reported as distinct: not empty, redundant or a copy. */
function distinct(result: ReconstructionResult): number[] {
  return result.classes.flatMap((c, position) => (!c.empty && !c.redundant && c.duplicateOf === null ? [position] : []));
}

/**
 * Matches each true class with the reported class most of its images went to, and
 * returns that class's r against the truth and the share of the images assigned to it.
 */
function matchClasses(result: ReconstructionResult, templates: Float32Array[], labels: number[]) {
  const pixels = SIZE * SIZE;
  return templates.map((truth, c) => {
    const votes = new Map<number, number>();
    result.poses.forEach((pose, i) => {
      if (labels[i] === c) votes.set(pose.classNumber, (votes.get(pose.classNumber) ?? 0) + 1);
    });
    const [classNumber, count] = [...votes].sort((a, b) => b[1] - a[1])[0];
    const template = result.templates.subarray((classNumber - 1) * pixels, classNumber * pixels);
    return { classNumber, share: count / PER_CLASS, r: alignTemplates(truth, template, SIZE, { searchScale: false }).r };
  });
}

let worker: Reconstructor;

beforeAll(async () => {
  worker = await createNodeReconstructor();
});

afterAll(async () => {
  await worker?.terminate();
});

describe('classification in a Node worker', () => {
  for (const count of [2, 3]) {
    it(`separates ${count} views at SNR 1`, async () => {
      const templates = truths().slice(0, count);
      const { images, labels } = mixture(templates);
      const result = await worker.reconstruct({ images, size: SIZE }, { ...GRID, classes: count });
      const matches = matchClasses(result, templates, labels);
      const numbers = matches.map((match) => match.classNumber);
      expect(new Set(numbers).size, `classes matched: ${numbers.join(', ')}`).toBe(count);
      for (const [c, match] of matches.entries()) {
        expect(match.r, `view ${c}: r against the truth`).toBeGreaterThanOrEqual(0.9);
        expect(match.share, `view ${c}: share of its images in class ${match.classNumber}`).toBeGreaterThanOrEqual(0.9);
      }
      expect(distinct(result)).toHaveLength(count);
      expect(result.classes.map((c) => c.images).reduce((a, b) => a + b, 0)).toBe(count * PER_CLASS);
      for (const pose of result.poses) expect(pose.classProbability).toBeGreaterThan(0.5);
    });
  }

  it('leaves extra classes empty or flagged', async () => {
    const templates = truths().slice(0, 2);
    const { images, labels } = mixture(templates);
    const result = await worker.reconstruct({ images, size: SIZE }, { ...GRID, classes: 4 });
    const reported = distinct(result);
    expect(reported, `classes: ${JSON.stringify(result.classes)}`).toHaveLength(2);
    const matches = matchClasses(result, templates, labels);
    expect(matches.map((match) => match.classNumber).sort()).toEqual(reported.map((position) => position + 1).sort());
    for (const [c, match] of matches.entries()) {
      expect(match.r, `view ${c}: r against the truth`).toBeGreaterThanOrEqual(0.9);
    }
    for (const summary of result.classes.slice(2)) {
      expect(summary.empty || summary.redundant || summary.duplicateOf !== null, JSON.stringify(summary)).toBe(true);
    }
    expect(result.notices.some((notice) => notice.includes('removed at the end') || notice.includes('re-seeded'))).toBe(true);
  });
});
