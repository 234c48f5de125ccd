import { describe, expect, it } from 'vitest';

import { discMask, resizeImage, templateFromPicture } from '../src/picture.js';
import { PngError } from '../src/png.js';
import { makeRandom, testSeed } from './random.js';

function sum(values: ArrayLike<number>): number {
  let total = 0;
  for (let i = 0; i < values.length; i++) total += values[i];
  return total;
}

describe('resizeImage', () => {
  it('bins by an integer factor', () => {
    const image = Float32Array.from({ length: 16 }, (_, i) => i);
    const binned = resizeImage(image, 4, 2);
    // Pixels 0 1 4 5, 2 3 6 7, 8 9 12 13, 10 11 14 15.
    expect([...binned]).toEqual([2.5, 4.5, 10.5, 12.5]);
  });

  it('keeps the mean at a fractional factor', () => {
    const random = makeRandom(testSeed());
    const image = Float32Array.from({ length: 49 }, () => random());
    const resized = resizeImage(image, 7, 3);
    expect(sum(resized) / 9).toBeCloseTo(sum(image) / 49, 6);
  });

  it('weights partial pixels by overlap', () => {
    // 3 → 2: output 0 covers input 0 and half of input 1 on each axis.
    const image = new Float32Array(9);
    image[0] = 1;
    const resized = resizeImage(image, 3, 2);
    expect(resized[0]).toBeCloseTo((1 / 1.5) ** 2, 6);
    expect(resized[1]).toBe(0);
  });

  it('rejects sizes and lengths that do not fit', () => {
    expect(() => resizeImage(new Float32Array(16), 4, 0)).toThrow('target is 0');
    expect(() => resizeImage(new Float32Array(15), 4, 2)).toThrow('15 values, expected size² = 16');
  });
});

describe('discMask', () => {
  it('is 1 inside, 0 outside, half on the edge', () => {
    const mask = discMask(40, { radius: 0.25, edge: 0.1 });
    const at = (x: number, y: number) => mask[y * 40 + x];
    expect(at(20, 20)).toBe(1);
    expect(at(30, 20)).toBe(1);
    // Distance 12 is halfway along the edge from 10 to 14 pixels.
    expect(at(32, 20)).toBeCloseTo(0.5, 6);
    expect(at(34, 20)).toBe(0);
    expect(at(0, 0)).toBe(0);
  });
});

describe('templateFromPicture', () => {
  const random = makeRandom(testSeed());
  const width = 30;
  const height = 20;
  const picture = Float32Array.from({ length: width * height }, () => random());
  const template = templateFromPicture(picture, width, height, 10);

  it('has zero mean and unit deviation inside the mask', () => {
    const mask = discMask(10);
    // θ = m (x − μ)/s, so Σ θ = 0 and Σ θ²/m = Σ m (x − μ)²/s² = Σ m.
    let weighted = 0;
    let squares = 0;
    for (let q = 0; q < 100; q++) {
      weighted += template[q];
      if (mask[q] > 0) squares += template[q] ** 2 / mask[q];
    }
    expect(weighted).toBeCloseTo(0, 4);
    expect(squares).toBeCloseTo(sum(mask), 3);
  });

  it('is +0 outside the mask', () => {
    expect(Object.is(template[0], 0)).toBe(true);
    expect(Object.is(template[99], 0)).toBe(true);
  });

  it('uses the central square', () => {
    // A picture whose outer columns are huge gives the same template once they are cropped.
    const framed = picture.slice();
    for (let y = 0; y < height; y++) {
      for (const x of [0, 1, 2, 3, 4, 25, 26, 27, 28, 29]) framed[y * width + x] = 1e6;
    }
    expect([...templateFromPicture(framed, width, height, 10)]).toEqual([...template]);
  });

  it('rejects a constant or non-finite picture', () => {
    expect(() => templateFromPicture(new Float32Array(100).fill(3), 10, 10, 5)).toThrow('constant inside the mask');
    // Contrast only in the corners, which the disc mask removes.
    const corners = new Float32Array(1600).fill(0.3);
    for (const q of [0, 39, 1560, 1599]) corners[q] = 1;
    expect(() => templateFromPicture(corners, 40, 40, 20)).toThrow('constant inside the mask');
    const bad = picture.slice();
    bad[5 * width + 15] = NaN;
    expect(() => templateFromPicture(bad, width, height, 10)).toThrow(PngError);
  });
});
