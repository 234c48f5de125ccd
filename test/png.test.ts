import { encode } from 'fast-png';
import { describe, expect, it } from 'vitest';

import { montage, PngError, readPng, squareImage, writePng } from '../src/png.js';
import { makeRandom } from './random.js';

/** Returns `count` seeded values in [low, high). */
function seededValues(seed: number, count: number, low: number, high: number): Float32Array {
  const random = makeRandom(seed);
  const values = new Float32Array(count);
  for (let i = 0; i < count; i++) values[i] = low + (high - low) * random();
  return values;
}

function scaled(values: ArrayLike<number>, min: number, max: number): number[] {
  return Array.from(values, (v) => (v - min) / (max - min));
}

describe('writePng and readPng round trip', () => {
  const width = 7;
  const height = 5;
  const values = seededValues(11, width * height, -3, 4);
  const min = Math.min(...values);
  const max = Math.max(...values);

  it('keeps 8-bit grey within 1/255', () => {
    const png = readPng(writePng(values, width, height), 'round8.png');
    expect(png.width).toBe(width);
    expect(png.height).toBe(height);
    expect(png.depth).toBe(8);
    expect(png.channels).toBe(1);
    const expected = scaled(values, min, max);
    for (let i = 0; i < expected.length; i++) {
      expect(Math.abs(png.image[i] - expected[i])).toBeLessThanOrEqual(1 / 255);
    }
    expect(png.image[values.indexOf(min)]).toBe(0);
    expect(png.image[values.indexOf(max)]).toBe(1);
  });

  it('keeps 16-bit grey within 1/65535', () => {
    const png = readPng(writePng(values, width, height, { depth: 16 }), 'round16.png');
    expect(png.depth).toBe(16);
    // Float32 storage of the read values adds about 6e-8, so the bound allows 1e-6 more.
    const expected = scaled(values, min, max);
    for (let i = 0; i < expected.length; i++) {
      expect(Math.abs(png.image[i] - expected[i])).toBeLessThanOrEqual(1 / 65535 + 1e-6);
    }
  });
});

describe('readPng colour conversion', () => {
  it('reduces RGB to Rec. 709 luma', () => {
    const data = new Uint8Array([255, 0, 0, 0, 255, 0, 0, 0, 255, 255, 255, 255]);
    const png = readPng(encode({ width: 4, height: 1, data, depth: 8, channels: 3 }));
    expect(png.channels).toBe(3);
    expect(png.image[0]).toBeCloseTo(0.2126, 6);
    expect(png.image[1]).toBeCloseTo(0.7152, 6);
    expect(png.image[2]).toBeCloseTo(0.0722, 6);
    expect(png.image[3]).toBeCloseTo(1, 6);
  });

  it('ignores alpha in RGBA', () => {
    const data = new Uint8Array([255, 0, 0, 0, 0, 255, 0, 128, 255, 255, 255, 255]);
    const png = readPng(encode({ width: 3, height: 1, data, depth: 8, channels: 4 }));
    expect(png.channels).toBe(4);
    expect(png.image[0]).toBeCloseTo(0.2126, 6);
    expect(png.image[1]).toBeCloseTo(0.7152, 6);
    expect(png.image[2]).toBeCloseTo(1, 6);
  });

  it('ignores alpha in grey + alpha', () => {
    const data = new Uint16Array([65535, 0, 0, 65535, 32768, 1000]);
    const png = readPng(encode({ width: 3, height: 1, data, depth: 16, channels: 2 }));
    expect(Array.from(png.image)).toEqual([1, 0, Math.fround(32768 / 65535)]);
  });

  it('reads 16-bit RGB on the 65535 scale', () => {
    const data = new Uint16Array([65535, 0, 0, 0, 0, 65535]);
    const png = readPng(encode({ width: 2, height: 1, data, depth: 16, channels: 3 }));
    expect(png.image[0]).toBeCloseTo(0.2126, 6);
    expect(png.image[1]).toBeCloseTo(0.0722, 6);
  });

  it('expands a palette image', () => {
    const palette = [
      [255, 0, 0],
      [0, 255, 0],
      [10, 20, 30],
    ];
    const data = new Uint8Array([2, 0, 1, 0]);
    const png = readPng(encode({ width: 2, height: 2, data, depth: 8, channels: 1, palette }));
    const dark = (0.2126 * 10 + 0.7152 * 20 + 0.0722 * 30) / 255;
    expect(png.image[0]).toBeCloseTo(dark, 6);
    expect(png.image[1]).toBeCloseTo(0.2126, 6);
    expect(png.image[2]).toBeCloseTo(0.7152, 6);
    expect(png.image[3]).toBeCloseTo(0.2126, 6);
  });

  it('unpacks 2-bit grey', () => {
    // Row of 3 pixels 0, 1, 3 packed into one byte: 00 01 11 00.
    const data = new Uint8Array([0b00011100]);
    const png = readPng(encode({ width: 3, height: 1, data, depth: 2, channels: 1 }));
    expect(Array.from(png.image)).toEqual([0, Math.fround(1 / 3), 1]);
  });
});

describe('readPng errors', () => {
  it('names the file on corrupt bytes', () => {
    const bytes = writePng(seededValues(3, 16, 0, 1), 4, 4);
    const corrupt = bytes.slice(0, 40);
    corrupt[0] = 0;
    expect(() => readPng(corrupt, 'class-03.png')).toThrow(PngError);
    expect(() => readPng(corrupt, 'class-03.png')).toThrow(/^class-03\.png: PNG decoding failed: /);
  });

  it('names the file on truncated bytes', () => {
    const bytes = writePng(seededValues(4, 16, 0, 1), 4, 4).slice(0, 30);
    expect(() => readPng(bytes, 'short.png')).toThrow(/^short\.png: /);
  });
});

describe('writePng scaling', () => {
  it('writes a constant image as mid-grey', () => {
    const png8 = readPng(writePng(new Float32Array(6).fill(2.5), 3, 2));
    expect(Array.from(png8.image)).toEqual(new Array(6).fill(Math.fround(128 / 255)));
    const png16 = readPng(writePng(new Float32Array(6).fill(-1), 3, 2, { depth: 16 }));
    expect(Array.from(png16.image)).toEqual(new Array(6).fill(Math.fround(32768 / 65535)));
  });

  it('clips to the min and max options', () => {
    const values = [-5, 0, 0.5, 1, 9];
    const png = readPng(writePng(values, 5, 1, { min: 0, max: 1 }));
    expect(png.image[0]).toBe(0);
    expect(png.image[1]).toBe(0);
    expect(png.image[2]).toBe(Math.fround(128 / 255));
    expect(png.image[3]).toBe(1);
    expect(png.image[4]).toBe(1);
  });

  it('rejects a non-finite value by index', () => {
    expect(() => writePng([0, 1, NaN, 2], 2, 2)).toThrow(/NaN at index 2/);
    expect(() => writePng([0, Infinity, 1, 2], 2, 2)).toThrow(/index 1/);
  });

  it('rejects bad dimensions and options', () => {
    expect(() => writePng([0, 1, 2], 2, 2)).toThrow(/expected width × height = 2 × 2 = 4/);
    expect(() => writePng([0, 1], 2, 1, { min: 2, max: 1 })).toThrow(/min 2 is greater than max 1/);
    expect(() => writePng([0, 1], 2, 1, { depth: 4 as 8 })).toThrow(/depth is 4/);
  });
});

describe('squareImage', () => {
  it('crops a wide image centrally', () => {
    // In a 5 × 3 image the square is columns 1–3, so crop pixel (x 0, y 1) is source (1, 1) = 6.
    const image = Array.from({ length: 15 }, (_, i) => i);
    const { image: square, size } = squareImage(image, 5, 3);
    expect(size).toBe(3);
    expect(square[1 * 3 + 0]).toBe(6);
    expect(Array.from(square)).toEqual([1, 2, 3, 6, 7, 8, 11, 12, 13]);
  });

  it('crops a tall image centrally', () => {
    // 2 × 6: the square is rows 2–3.
    const image = Array.from({ length: 12 }, (_, i) => i);
    const { image: square, size } = squareImage(image, 2, 6);
    expect(size).toBe(2);
    expect(Array.from(square)).toEqual([4, 5, 6, 7]);
  });

  it('rejects a non-finite value by index', () => {
    expect(() => squareImage([0, 1, 2, -Infinity], 2, 2)).toThrow(/index 3/);
  });
});

describe('montage', () => {
  const size = 3;
  const tiles = [0, 1, 2, 3, 4].map((seed) => seededValues(seed + 20, size * size, -1, 1));

  it('lays out tiles in rows with gaps', () => {
    const { image, width, height } = montage(tiles, size, { columns: 2 });
    // 2 columns and 3 rows of 3-pixel tiles with 1-pixel gaps.
    expect(width).toBe(2 * 3 + 1);
    expect(height).toBe(3 * 3 + 2);
    expect(image.length).toBe(width * height);

    // The 3rd tile (index 2) starts at row 1, column 0: top 4, left 0.
    const third = tiles[2];
    const min = Math.min(...third);
    const max = Math.max(...third);
    const expected = (third[1 * size + 2] - min) / (max - min);
    expect(image[(4 + 1) * width + 0 + 2]).toBeCloseTo(expected, 6);

    // Gap column 3 and gap row 3 are background.
    for (let y = 0; y < height; y++) expect(image[y * width + 3]).toBe(0);
    for (let x = 0; x < width; x++) expect(image[3 * width + x]).toBe(0);
    // Unused cell (row 2, column 1) is background.
    expect(image[8 * width + 4]).toBe(0);
  });

  it('scales each tile to its own range', () => {
    const { image, width } = montage([[0, 10, 20, 30], [5, 5, 5, 5]], 2, { gap: 0 });
    expect(width).toBe(4);
    expect(Array.from(image)).toEqual([0, Math.fround(1 / 3), 0.5, 0.5, Math.fround(2 / 3), 1, 0.5, 0.5]);
  });

  it('defaults to a near-square grid', () => {
    const { width, height } = montage(tiles, size);
    // 5 tiles: 3 columns and 2 rows.
    expect(width).toBe(3 * 3 + 2);
    expect(height).toBe(2 * 3 + 1);
  });

  it('rejects bad tiles and a non-finite value', () => {
    expect(() => montage([], 3)).toThrow(/no images/);
    expect(() => montage([[0, 1, 2]], 2)).toThrow(/image 0 has 3 values, but expected size × size = 4/);
    expect(() => montage([[0, 1, 2, 3], [0, NaN, 2, 3]], 2)).toThrow(/image 1: value NaN at index 1/);
  });
});
