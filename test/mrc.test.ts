import { describe, expect, it } from 'vitest';

import { checkImages, decodeFloat16, imagesOf, IMOD_STAMP, MrcError, readMrc, writeMrc } from '../src/mrc.js';
import { makeRandom } from './random.js';

/** Header fields of a test file; unset fields take a valid little-endian float32 header's values. */
interface TestHeader {
  nx: number;
  ny: number;
  nz: number;
  mode?: number;
  littleEndian?: boolean;
  /** Bytes 212 and 213. */
  stamp?: [number, number];
  nsymbt?: number;
  exttyp?: string;
  /** Word at byte 152 and, with it, IMOD flags at byte 156. */
  imod?: { stamp: number; flags: number };
  /** Cell length along x, Å; mx is nx. */
  cellX?: number;
}

const BYTES_PER_VALUE: Record<number, number> = { 0: 1, 1: 2, 2: 4, 6: 2, 12: 2 };

/** Writes a 1024-byte MRC header byte by byte. */
function buildHeader(fields: TestHeader): Uint8Array {
  const bytes = new Uint8Array(1024);
  const view = new DataView(bytes.buffer);
  const little = fields.littleEndian ?? true;
  const int = (offset: number, value: number) => view.setInt32(offset, value, little);
  int(0, fields.nx);
  int(4, fields.ny);
  int(8, fields.nz);
  int(12, fields.mode ?? 2);
  int(28, fields.nx);
  int(32, fields.ny);
  int(36, fields.nz);
  view.setFloat32(40, fields.cellX ?? 0, little);
  int(64, 1);
  int(68, 2);
  int(72, 3);
  int(92, fields.nsymbt ?? 0);
  const exttyp = fields.exttyp ?? '';
  for (let i = 0; i < exttyp.length; i++) bytes[104 + i] = exttyp.charCodeAt(i);
  int(108, 20140);
  if (fields.imod) {
    int(152, fields.imod.stamp);
    int(156, fields.imod.flags);
  }
  'MAP '.split('').forEach((char, i) => (bytes[208 + i] = char.charCodeAt(0)));
  const stamp = fields.stamp ?? (little ? [0x44, 0x44] : [0x11, 0x11]);
  bytes[212] = stamp[0];
  bytes[213] = stamp[1];
  return bytes;
}

/** Writes values in the header's mode and byte order; for mode 12 the values are binary16 words. */
function encodeValues(values: ArrayLike<number>, mode: number, littleEndian: boolean): Uint8Array {
  const size = BYTES_PER_VALUE[mode];
  const bytes = new Uint8Array(values.length * size);
  const view = new DataView(bytes.buffer);
  for (let i = 0; i < values.length; i++) {
    const value = values[i];
    if (mode === 0) view.setUint8(i, value);
    else if (mode === 1) view.setInt16(2 * i, value, littleEndian);
    else if (mode === 2) view.setFloat32(4 * i, value, littleEndian);
    else view.setUint16(2 * i, value, littleEndian);
  }
  return bytes;
}

function concat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((total, part) => total + part.length, 0));
  let offset = 0;
  for (const part of parts) {
    out.set(part, offset);
    offset += part.length;
  }
  return out;
}

/** Builds a whole file: header, an extended header of nsymbt bytes of 0x7F, and the values. */
function buildMrc(fields: TestHeader, values: ArrayLike<number>): Uint8Array {
  const extended = new Uint8Array(fields.nsymbt ?? 0).fill(0x7f);
  const data = encodeValues(values, fields.mode ?? 2, fields.littleEndian ?? true);
  return concat(buildHeader(fields), extended, data);
}

function seededValues(count: number, seed: number): Float32Array {
  const random = makeRandom(seed);
  return Float32Array.from({ length: count }, () => 200 * random() - 100);
}

describe('readMrc mode 0', () => {
  it('reads signed bytes without IMOD stamp', () => {
    const file = readMrc(buildMrc({ nx: 4, ny: 1, nz: 1, mode: 0 }, [0x80, 0x81, 0x00, 0x7f]));
    expect(Array.from(file.data)).toEqual([-128, -127, 0, 127]);
    expect(file.header.signedBytes).toBe(true);
  });

  it('reads unsigned bytes with IMOD flags 0', () => {
    const fields = { nx: 1, ny: 1, nz: 1, mode: 0, imod: { stamp: IMOD_STAMP, flags: 0 } };
    const file = readMrc(buildMrc(fields, [0xc8]));
    expect(file.data[0]).toBe(200);
    expect(file.header.signedBytes).toBe(false);
  });

  it('reads signed bytes with IMOD flags 1', () => {
    const fields = { nx: 1, ny: 1, nz: 1, mode: 0, imod: { stamp: IMOD_STAMP, flags: 1 } };
    expect(readMrc(buildMrc(fields, [0xc8])).data[0]).toBe(-56);
  });

  it('IMOD stamp spells IMOD', () => {
    const bytes = buildMrc({ nx: 1, ny: 1, nz: 1, mode: 0, imod: { stamp: IMOD_STAMP, flags: 0 } }, [0]);
    expect(String.fromCharCode(...bytes.subarray(152, 156))).toBe('IMOD');
  });
});

describe('readMrc byte order', () => {
  const values = seededValues(8 * 8 * 2, 11);

  it('reads big-endian like little-endian', () => {
    const little = readMrc(buildMrc({ nx: 8, ny: 8, nz: 2 }, values));
    const big = readMrc(buildMrc({ nx: 8, ny: 8, nz: 2, littleEndian: false }, values));
    expect(big.header.endianness).toBe('big');
    expect(little.header.endianness).toBe('little');
    expect(big.data).toEqual(values);
    expect(little.data).toEqual(values);
    expect(big.warnings).toEqual([]);
  });

  it('accepts stamp 0x44 0x41 as little-endian', () => {
    const file = readMrc(buildMrc({ nx: 8, ny: 8, nz: 2, stamp: [0x44, 0x41] }, values));
    expect(file.header.endianness).toBe('little');
    expect(file.warnings).toEqual([]);
  });

  it('guesses big-endian from zero stamp', () => {
    const fields = { nx: 8, ny: 8, nz: 2, littleEndian: false, stamp: [0, 0] as [number, number] };
    const file = readMrc(buildMrc(fields, values), 'old.mrc');
    expect(file.header.endianness).toBe('big');
    expect(file.data).toEqual(values);
    expect(file.warnings).toHaveLength(1);
    expect(file.warnings[0]).toContain('old.mrc: unusual machine stamp 0x00 0x00 at byte 212');
    expect(file.warnings[0]).toContain('read as big-endian');
  });

  it('guesses little-endian from zero stamp', () => {
    const file = readMrc(buildMrc({ nx: 8, ny: 8, nz: 2, stamp: [0, 0] }, values));
    expect(file.header.endianness).toBe('little');
    expect(file.data).toEqual(values);
    expect(file.warnings).toHaveLength(1);
  });

  it('rejects a header implausible in both orders', () => {
    const bytes = buildMrc({ nx: 8, ny: 8, nz: 2, mode: 7, stamp: [0, 0] }, []);
    expect(() => readMrc(bytes, 'noise.bin')).toThrow(/^noise\.bin: not an MRC file: the machine stamp/);
  });
});

describe('readMrc extended header', () => {
  const values = seededValues(8 * 8 * 13, 12);
  const fields = { nx: 8, ny: 8, nz: 13, nsymbt: 15360, exttyp: 'FEI2' };

  it('skips an FEI2 extended header', () => {
    const bytes = buildMrc(fields, values);
    const firstPixel = new DataView(bytes.buffer).getFloat32(16384, true);
    const file = readMrc(bytes);
    expect(file.header.exttyp).toBe('FEI2');
    expect(file.header.nsymbt).toBe(15360);
    expect(file.data[0]).toBe(firstPixel);
    expect(file.data).toEqual(values);
    expect(file.warnings).toEqual([]);
  });

  it('rejects a missing extended header', () => {
    const bytes = concat(buildHeader(fields), encodeValues(values, 2, true));
    expect(() => readMrc(bytes, 'falcon.mrcs')).toThrow(
      'falcon.mrcs: file too short: expected 19712 bytes for the header (1024 bytes), ' +
        'extended header (nsymbt 15360 bytes) and data (8 × 8 × 13 values of mode 2, 4 bytes each), ' +
        'but the file has 4352 bytes',
    );
  });
});

describe('readMrc mode 12', () => {
  it('decodes float16 words exactly', () => {
    const words = [0x3c00, 0xc000, 0x7bff, 0x0001, 0x7c00, 0x7e00];
    const file = readMrc(buildMrc({ nx: 6, ny: 1, nz: 1, mode: 12 }, words));
    expect(file.data[0]).toBe(1);
    expect(file.data[1]).toBe(-2);
    expect(file.data[2]).toBe(65504);
    expect(file.data[3]).toBe(2 ** -24);
    expect(file.data[3]).toBeCloseTo(5.96e-8, 10);
    expect(file.data[4]).toBe(Infinity);
    expect(file.data[5]).toBeNaN();
  });

  it('decodes signed zero, -Inf and the largest subnormal', () => {
    expect(Object.is(decodeFloat16(0x8000), -0)).toBe(true);
    expect(decodeFloat16(0xfc00)).toBe(-Infinity);
    expect(decodeFloat16(0x03ff)).toBe(1023 * 2 ** -24);
    expect(decodeFloat16(0x0400)).toBe(2 ** -14);
  });
});

describe('readMrc sizes', () => {
  it('rejects a 3.2 GB header with 1 MB data', () => {
    const bytes = concat(buildHeader({ nx: 4096, ny: 4096, nz: 50 }), new Uint8Array(1 << 20));
    const started = performance.now();
    expect(() => readMrc(bytes, 'big.mrcs')).toThrow(
      /^big\.mrcs: file too short: expected 3355444224 bytes for .*, but the file has 1049600 bytes/,
    );
    // Allocating and filling 3.2 GB would take seconds; the size check comes first.
    expect(performance.now() - started).toBeLessThan(1000);
  });

  it('rejects nz 0', () => {
    expect(() => readMrc(buildMrc({ nx: 8, ny: 8, nz: 0 }, []), 'empty.mrc')).toThrow(
      'empty.mrc: invalid header field nz = 0; it must be a positive count',
    );
  });

  it('rejects negative nx', () => {
    expect(() => readMrc(buildMrc({ nx: -8, ny: 8, nz: 1 }, []), 'neg.mrc')).toThrow(
      'neg.mrc: invalid header field nx = -8; it must be a positive count',
    );
  });

  it('rejects negative nsymbt', () => {
    expect(() => readMrc(buildHeader({ nx: 1, ny: 1, nz: 1, nsymbt: -4 }))).toThrow(
      'MRC data: invalid header field nsymbt = -4',
    );
  });

  it('rejects a file shorter than the header', () => {
    expect(() => readMrc(new Uint8Array(100), 'stub.mrc')).toThrow(
      'stub.mrc: file too short: expected 1024 bytes for the 1024-byte header, but the file has 100 bytes',
    );
  });

  it('warns of one trailing byte', () => {
    const values = seededValues(16, 13);
    const bytes = concat(buildMrc({ nx: 4, ny: 4, nz: 1 }, values), new Uint8Array([0]));
    const file = readMrc(bytes, 'tail.mrc');
    expect(file.data).toEqual(values);
    expect(file.warnings).toEqual([
      'tail.mrc: 1 extra byte after the 1088 bytes of header and data were ignored',
    ]);
  });
});

describe('readMrc integer modes', () => {
  it('reads mode 1 int16 exactly', () => {
    const values = [-32768, -1, 0, 1, 12345, 32767];
    const file = readMrc(buildMrc({ nx: 6, ny: 1, nz: 1, mode: 1 }, values));
    expect(Array.from(file.data)).toEqual(values);
  });

  it('reads mode 6 uint16 exactly', () => {
    const values = [0, 1, 32768, 40000, 65535];
    const file = readMrc(buildMrc({ nx: 5, ny: 1, nz: 1, mode: 6, littleEndian: false }, values));
    expect(Array.from(file.data)).toEqual(values);
  });

  it('rejects mode 5', () => {
    expect(() => readMrc(buildMrc({ nx: 4, ny: 1, nz: 1, mode: 5 }, []), 'odd.mrc')).toThrow(
      'odd.mrc: unsupported mode 5 in header field mode',
    );
  });

  it('raises MrcError on mode 5', () => {
    expect(() => readMrc(buildMrc({ nx: 4, ny: 1, nz: 1, mode: 5 }, []))).toThrow(MrcError);
  });
});

describe('readMrc header fields', () => {
  it('computes pixel size from cella and mx', () => {
    const file = readMrc(buildMrc({ nx: 4, ny: 4, nz: 1, cellX: 4 * 1.5 }, new Float32Array(16)));
    expect(file.header.pixelSize).toBe(1.5);
  });

  it('returns null pixel size for cella 0', () => {
    expect(readMrc(buildMrc({ nx: 4, ny: 4, nz: 1 }, new Float32Array(16))).header.pixelSize).toBeNull();
  });
});

/** Statistics in float64, rms as the RMS deviation from the mean. */
function float64Stats(values: ArrayLike<number>) {
  const list = Array.from(values);
  const mean = list.reduce((total, value) => total + value, 0) / list.length;
  const variance = list.reduce((total, value) => total + (value - mean) ** 2, 0) / list.length;
  return { min: Math.min(...list), max: Math.max(...list), mean, rms: Math.sqrt(variance) };
}

describe('writeMrc', () => {
  const values = seededValues(8 * 8 * 3, 14);
  const labels = ['classify2d round trip', 'second label'];
  const bytes = writeMrc(values, 8, 8, 3, { pixelSize: 1.35, labels });

  it('round trips values and header', () => {
    const file = readMrc(bytes, 'written.mrcs');
    expect(bytes.length).toBe(1024 + 8 * 8 * 3 * 4);
    expect(file.data).toEqual(values);
    expect(file.warnings).toEqual([]);
    expect(file.header.mode).toBe(2);
    expect(file.header.nx).toBe(8);
    expect(file.header.ny).toBe(8);
    expect(file.header.nz).toBe(3);
    expect(file.header.sampling).toEqual({ x: 8, y: 8, z: 1 });
    expect(file.header.axes).toEqual({ column: 1, row: 2, section: 3 });
    expect(file.header.ispg).toBe(0);
    expect(file.header.nsymbt).toBe(0);
    expect(file.header.nversion).toBe(20140);
    expect(file.header.labels).toEqual(labels);
    expect(file.header.endianness).toBe('little');
  });

  it('round trips pixel size', () => {
    const { header } = readMrc(bytes);
    expect(header.pixelSize).toBeCloseTo(1.35, 6);
    expect(header.cell.x).toBe(Math.fround(8 * 1.35));
    // A stack has mz = 1, so cella.z is one pixel.
    expect(header.cell.z).toBe(Math.fround(1.35));
  });

  it('writes stats from float64', () => {
    const stats = readMrc(bytes).header.stats;
    const expected = float64Stats(values);
    expect(stats.min).toBe(Math.fround(expected.min));
    expect(stats.max).toBe(Math.fround(expected.max));
    expect(stats.mean).toBe(Math.fround(expected.mean));
    expect(stats.rms).toBe(Math.fround(expected.rms));
  });

  it('writes MAP, stamp and label bytes', () => {
    expect(String.fromCharCode(...bytes.subarray(208, 212))).toBe('MAP ');
    expect(Array.from(bytes.subarray(212, 216))).toEqual([0x44, 0x44, 0x00, 0x00]);
    expect(new DataView(bytes.buffer).getInt32(220, true)).toBe(2);
    const label = String.fromCharCode(...bytes.subarray(224, 304));
    expect(label).toBe(labels[0].padEnd(80, ' '));
  });

  it('rejects a NaN value by index', () => {
    const bad = Float32Array.from(values);
    bad[70] = NaN;
    expect(() => writeMrc(bad, 8, 8, 3)).toThrow('writeMrc: data[70] is NaN (image 1, x 6, y 0)');
  });

  it('rejects a wrong data length', () => {
    expect(() => writeMrc(values, 8, 8, 2)).toThrow('writeMrc: data has 192 values, but nx·ny·nz');
  });

  it('rejects a long label', () => {
    expect(() => writeMrc(values, 8, 8, 3, { labels: ['x'.repeat(81)] })).toThrow('writeMrc: label 0');
  });

  it('rejects a non-positive pixel size', () => {
    expect(() => writeMrc(values, 8, 8, 3, { pixelSize: 0 })).toThrow('writeMrc: pixelSize is 0');
  });
});

describe('imagesOf', () => {
  it('returns square images', () => {
    const file = readMrc(writeMrc(seededValues(32, 15), 4, 4, 2));
    const stack = imagesOf(file);
    expect(stack.size).toBe(4);
    expect(stack.images).toBe(file.data);
  });

  it('rejects non-square images', () => {
    const file = readMrc(writeMrc(seededValues(24, 16), 4, 3, 2), 'wide.mrcs');
    expect(() => imagesOf(file)).toThrow('wide.mrcs: images are 4 × 3 pixels (header fields nx 4, ny 3)');
  });
});

describe('checkImages', () => {
  /** Four 4×4 images: 0 and 3 noise, 1 with a NaN at x 1, y 2, 2 constant 5. */
  function stackWithProblems(): Uint8Array {
    const values = seededValues(4 * 16, 17);
    values[16 + 2 * 4 + 1] = NaN;
    values.fill(5, 32, 48);
    return buildMrc({ nx: 4, ny: 4, nz: 4 }, values);
  }

  it('rejects a NaN pixel naming the image', () => {
    const file = readMrc(stackWithProblems(), 'particles.mrcs');
    expect(() => checkImages(file)).toThrow(
      'particles.mrcs: image 1 (z = 1) has a non-finite pixel NaN at x 1, y 2',
    );
  });

  it('drops non-finite images when asked', () => {
    const file = readMrc(stackWithProblems());
    const checked = checkImages(file, { dropNonFinite: true });
    expect(checked.dropped).toEqual([1]);
    expect(checked.kept).toEqual([0, 2, 3]);
    expect(checked.data.length).toBe(3 * 16);
    expect(checked.data.subarray(0, 16)).toEqual(file.data.subarray(0, 16));
    expect(checked.data.subarray(32, 48)).toEqual(file.data.subarray(48, 64));
  });

  it('reports constant images without NaN', () => {
    const checked = checkImages(readMrc(stackWithProblems()), { dropNonFinite: true });
    expect(checked.constant).toEqual([2]);
    expect(checked.data.every((value) => Number.isFinite(value))).toBe(true);
  });

  it('rejects +Inf as well', () => {
    const values = seededValues(2 * 16, 18);
    values[20] = Infinity;
    const file = readMrc(buildMrc({ nx: 4, ny: 4, nz: 2 }, values), 'inf.mrcs');
    expect(() => checkImages(file)).toThrow(
      'inf.mrcs: image 1 (z = 1) has a non-finite pixel Infinity at x 0, y 1',
    );
  });

  it('returns clean stack unchanged', () => {
    const file = readMrc(buildMrc({ nx: 4, ny: 4, nz: 2 }, seededValues(32, 19)));
    const checked = checkImages(file);
    expect(checked.data).toBe(file.data);
    expect(checked.dropped).toEqual([]);
    expect(checked.constant).toEqual([]);
  });
});
