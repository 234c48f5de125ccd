import { describe, expect, it } from 'vitest';

import {
  parseStar,
  psiToRelionDegrees,
  readParticles,
  relionOriginToShift,
  resolveStackPath,
  StarError,
  writeParticleStar,
  type ParticleStarRow,
} from '../src/star.js';

/** Joins lines with '\n', so line numbers in messages are the array index + 1. */
function lines(...text: string[]): string {
  return text.join('\n');
}

function errorOf(action: () => unknown): StarError {
  try {
    action();
  } catch (error) {
    expect(error).toBeInstanceOf(StarError);
    return error as StarError;
  }
  throw new Error('expected a StarError, but nothing was thrown');
}

const RELION_30 = lines(
  '# RELION 3.0 particles',
  'data_',
  '',
  'loop_',
  '_rlnImageName #1',
  '_rlnOriginX #2',
  '_rlnDetectorPixelSize #3',
  '_rlnMagnification #4',
  '000012@Particles/stack.mrcs 1.5 5.0 50000.0',
  '000001@../other/b.mrcs -2.0 5.0 50000.0',
);

const RELION_31 = lines(
  '# version 30001',
  '',
  'data_optics',
  '',
  'loop_',
  '_rlnOpticsGroupName #1',
  '_rlnOpticsGroup #2',
  '_rlnImagePixelSize #3',
  'opticsGroup1 1 1.244531',
  'opticsGroup2 2 0.885000',
  '',
  '# version 30001',
  '',
  'data_particles',
  '',
  'loop_',
  '_rlnImageName #1',
  '_rlnOpticsGroup #2',
  '_rlnAnglePsi #3',
  '000012@Extract/job007/a.mrcs 2 30.0',
  '000003@/data/b.mrcs 1 -45.0',
  '',
);

describe('parseStar', () => {
  it('reads key-value blocks', () => {
    const star = parseStar(lines('data_general', '_rlnFinalResolution 3.5', "_rlnNote 'two words'"));
    expect(star.blocks).toHaveLength(1);
    const block = star.blocks[0];
    expect(block.name).toBe('general');
    expect(block.line).toBe(1);
    expect(block.values.get('rlnFinalResolution')).toEqual({ value: '3.5', line: 2 });
    expect(block.values.get('rlnNote')).toEqual({ value: 'two words', line: 3 });
    expect(block.loops).toHaveLength(0);
  });

  it('reads loops with label comments', () => {
    const star = parseStar(lines('data_t', 'loop_', '_a #1', '_b #2', '1 2', '  3   4  # trailing comment'));
    const loop = star.blocks[0].loops[0];
    expect(loop.line).toBe(2);
    expect(loop.labels).toEqual(['a', 'b']);
    expect(loop.rows).toEqual([['1', '2'], ['3', '4']]);
    expect(loop.rowLines).toEqual([5, 6]);
  });

  it('reads quoted values with spaces', () => {
    const star = parseStar(lines('data_t', 'loop_', '_a', '_b', '_c', `'x y' "z # not a comment" it's`));
    expect(star.blocks[0].loops[0].rows[0]).toEqual(['x y', 'z # not a comment', "it's"]);
  });

  it('skips comments and blank lines', () => {
    const text = lines('# header', '', 'data_t', '# inside', 'loop_', '_a', '', '# between', '7', '');
    const star = parseStar(text);
    expect(star.blocks[0].loops[0].rows).toEqual([['7']]);
    expect(star.blocks[0].loops[0].rowLines).toEqual([9]);
  });

  it('reads several blocks and loops', () => {
    const star = parseStar(
      lines(
        'data_', '_k v', 'loop_', '_a', '1', 'loop_', '_b', '2', '_after 3',
        'data_images', 'loop_', '_c', '4',
      ),
    );
    expect(star.blocks.map((b) => b.name)).toEqual(['', 'images']);
    const [first, second] = star.blocks;
    expect(first.loops.map((l) => l.labels)).toEqual([['a'], ['b']]);
    expect(first.values.get('k')?.value).toBe('v');
    expect(first.values.get('after')).toEqual({ value: '3', line: 9 });
    expect(second.loops[0].rows).toEqual([['4']]);
  });

  it('accepts CRLF line ends', () => {
    const star = parseStar('data_t\r\nloop_\r\n_a\r\n5\r\n');
    expect(star.blocks[0].loops[0].rows).toEqual([['5']]);
  });

  it('rejects a short row with its line', () => {
    const text = lines('data_t', 'loop_', '_a', '_b', '_c', '_d', '_e', '_f', '1 2 3 4 5 6', '1 2 3 4 5');
    const error = errorOf(() => parseStar(text, 'run_data.star'));
    expect(error.message).toContain('run_data.star: line 10:');
    expect(error.message).toContain('row has 5 values');
    expect(error.message).toContain('has 6 labels');
  });

  it('rejects a long row with its line', () => {
    const error = errorOf(() => parseStar(lines('data_t', 'loop_', '_a', '1 2'), 'x.star'));
    expect(error.message).toContain('x.star: line 4: row has 2 values');
  });

  it('rejects text before data_', () => {
    const error = errorOf(() => parseStar(lines('# c', 'loop_'), 'x.star'));
    expect(error.message).toContain('x.star: line 2:');
    expect(error.message).toContain('before the first data_ block');
  });

  it('rejects an unclosed quote', () => {
    const error = errorOf(() => parseStar(lines('data_t', "_a 'open"), 'x.star'));
    expect(error.message).toContain('x.star: line 2: quote');
    expect(error.message).toContain('not closed');
  });

  it('rejects a loop without labels', () => {
    const error = errorOf(() => parseStar(lines('data_t', 'loop_', '1 2'), 'x.star'));
    expect(error.message).toContain('x.star: line 2: loop_ has no labels');
  });

  it('rejects a repeated label', () => {
    const loopError = errorOf(() => parseStar(lines('data_t', 'loop_', '_a', '_a'), 'x.star'));
    expect(loopError.message).toContain('x.star: line 4: label _a is repeated');
    const valueError = errorOf(() => parseStar(lines('data_t', '_k 1', '_k 2'), 'x.star'));
    expect(valueError.message).toContain('x.star: line 3: _k is repeated');
  });

  it('rejects a key without a value', () => {
    const error = errorOf(() => parseStar(lines('data_t', '_k'), 'x.star'));
    expect(error.message).toContain('x.star: line 2: _k has no value');
  });

  it('rejects a value without a label', () => {
    const error = errorOf(() => parseStar(lines('data_t', '42'), 'x.star'));
    expect(error.message).toContain('x.star: line 2:');
    expect(error.message).toContain("value '42' has no label");
  });
});

describe('readParticles', () => {
  it('reads a RELION 3.0 file', () => {
    const { particles, version } = readParticles(parseStar(RELION_30, 'p30.star'));
    expect(version).toBe('3.0');
    expect(particles).toHaveLength(2);
    expect(particles[0].stackPath).toBe('Particles/stack.mrcs');
    expect(particles[0].index).toBe(11);
    expect(particles[1].stackPath).toBe('../other/b.mrcs');
    expect(particles[1].index).toBe(0);
    // 5 µm · 10⁴ / 50000 = 1 Å.
    expect(particles[0].pixelSize).toBeCloseTo(1, 12);
    expect(particles[0].opticsGroup).toBeUndefined();
  });

  it('reads rlnPixelSize in a data_images block', () => {
    const text = lines('data_images', 'loop_', '_rlnImageName', '_rlnPixelSize', '2@s.mrcs 1.7');
    const { particles } = readParticles(parseStar(text));
    expect(particles).toEqual([{ stackPath: 's.mrcs', index: 1, pixelSize: 1.7, microscope: {} }]);
  });

  it('gives null pixel size when absent', () => {
    const text = lines('data_', 'loop_', '_rlnImageName', '1@s.mrcs');
    expect(readParticles(parseStar(text)).particles[0].pixelSize).toBeNull();
  });

  it('reads a single-particle key-value block', () => {
    const text = lines('data_', "_rlnImageName '000004@my stack.mrcs'");
    expect(readParticles(parseStar(text)).particles).toEqual([
      { stackPath: 'my stack.mrcs', index: 3, pixelSize: null, microscope: {} },
    ]);
  });

  it('reads a RELION 3.1 file', () => {
    const { particles, version } = readParticles(parseStar(RELION_31, 'p31.star'));
    expect(version).toBe('3.1');
    expect(particles).toEqual([
      { stackPath: 'Extract/job007/a.mrcs', index: 11, pixelSize: 0.885, opticsGroup: 2, microscope: {} },
      { stackPath: '/data/b.mrcs', index: 2, pixelSize: 1.244531, opticsGroup: 1, microscope: {} },
    ]);
  });

  it('uses the only optics group without the column', () => {
    const text = lines(
      'data_optics', 'loop_', '_rlnOpticsGroup', '_rlnImagePixelSize', '3 1.1',
      'data_particles', 'loop_', '_rlnImageName', '1@a.mrcs',
    );
    expect(readParticles(parseStar(text)).particles).toEqual([
      { stackPath: 'a.mrcs', index: 0, pixelSize: 1.1, opticsGroup: 3, microscope: {} },
    ]);
  });

  it('reads microscope values', () => {
    const text31 = lines(
      'data_optics', 'loop_', '_rlnOpticsGroup', '_rlnImagePixelSize', '_rlnVoltage', '_rlnSphericalAberration', '_rlnAmplitudeContrast',
      '1 1.1 200 0.01 0.07', '2 1.1 300 2.7 0.1',
      'data_particles', 'loop_', '_rlnImageName', '_rlnOpticsGroup', '1@a.mrcs 2', '2@a.mrcs 1',
    );
    const particles = readParticles(parseStar(text31)).particles;
    expect(particles[0].microscope).toEqual({ voltage: 300, sphericalAberration: 2.7, amplitudeContrast: 0.1 });
    expect(particles[1].microscope).toEqual({ voltage: 200, sphericalAberration: 0.01, amplitudeContrast: 0.07 });
    const text30 = lines('data_', 'loop_', '_rlnImageName', '_rlnVoltage', '1@s.mrcs 120');
    expect(readParticles(parseStar(text30)).particles[0].microscope).toEqual({ voltage: 120 });
  });

  it('rejects invalid microscope values', () => {
    const voltage = lines('data_', 'loop_', '_rlnImageName', '_rlnVoltage', '1@s.mrcs -5');
    expect(() => readParticles(parseStar(voltage, 'v.star'))).toThrow("v.star: line 5: _rlnVoltage is '-5'; it must be a positive number in kV.");
    const contrast = lines('data_', 'loop_', '_rlnImageName', '_rlnAmplitudeContrast', '1@s.mrcs 1.5');
    expect(() => readParticles(parseStar(contrast, 'c.star'))).toThrow("c.star: line 5: _rlnAmplitudeContrast is '1.5'; it must be a fraction in [0, 1).");
  });

  it('rejects a missing rlnImageName column', () => {
    const text = lines('data_', 'loop_', '_rlnAnglePsi', '10');
    const error = errorOf(() => readParticles(parseStar(text, 'p.star')));
    expect(error.message).toContain('p.star:');
    expect(error.message).toContain('the loop_ at line 2 of data_ at line 1');
    expect(error.message).toContain('no _rlnImageName column');
    expect(error.message).toContain('_rlnAnglePsi');
  });

  it('rejects a non-numeric image number', () => {
    const text = lines('data_', 'loop_', '_rlnImageName', '1@ok.mrcs', 'abc@x.mrcs');
    const error = errorOf(() => readParticles(parseStar(text, 'p.star')));
    expect(error.message).toContain('p.star: line 5:');
    expect(error.message).toContain("'abc@x.mrcs'");
    expect(error.message).toContain('N@path');
  });

  it('rejects a name without @', () => {
    const text = lines('data_', 'loop_', '_rlnImageName', 'x.mrcs');
    const error = errorOf(() => readParticles(parseStar(text, 'p.star')));
    expect(error.message).toContain("p.star: line 4: _rlnImageName 'x.mrcs'");
  });

  it('rejects image number 0', () => {
    const text = lines('data_', 'loop_', '_rlnImageName', '0@x.mrcs');
    const error = errorOf(() => readParticles(parseStar(text, 'p.star')));
    expect(error.message).toContain('p.star: line 4:');
    expect(error.message).toContain("'0@x.mrcs'");
    expect(error.message).toContain('at least 1');
  });

  it('rejects an unknown optics group', () => {
    const text = RELION_31.replace('000003@/data/b.mrcs 1', '000003@/data/b.mrcs 7');
    const error = errorOf(() => readParticles(parseStar(text, 'p31.star')));
    expect(error.message).toContain('p31.star: line 21:');
    expect(error.message).toContain('_rlnOpticsGroup is 7');
    expect(error.message).toContain('only groups 1, 2');
  });

  it('rejects a missing particles block', () => {
    const text = lines('data_optics', 'loop_', '_rlnOpticsGroup', '1');
    const error = errorOf(() => readParticles(parseStar(text, 'p.star')));
    expect(error.message).toContain('p.star: the file has data_optics but no data_particles');
  });

  it('rejects an invalid pixel size', () => {
    const text = lines('data_', 'loop_', '_rlnImageName', '_rlnPixelSize', '1@a.mrcs -1');
    const error = errorOf(() => readParticles(parseStar(text, 'p.star')));
    expect(error.message).toContain("p.star: line 5: _rlnPixelSize is '-1'");
  });

  it('rejects an ambiguous file', () => {
    const text = lines('data_a', '_k 1', 'data_b', '_k 2');
    const error = errorOf(() => readParticles(parseStar(text, 'p.star')));
    expect(error.message).toContain('p.star: no particle table');
    expect(error.message).toContain('data_a, data_b');
  });
});

describe('resolveStackPath', () => {
  it('joins relative paths', () => {
    expect(resolveStackPath('/proj/Select/job010/particles.star', 'Extract/a.mrcs')).toBe(
      '/proj/Select/job010/Extract/a.mrcs',
    );
    expect(resolveStackPath('run/particles.star', 'a.mrcs')).toBe('run/a.mrcs');
    expect(resolveStackPath('particles.star', 'a.mrcs')).toBe('a.mrcs');
  });

  it('resolves ./ and ../', () => {
    expect(resolveStackPath('/proj/job/p.star', './a.mrcs')).toBe('/proj/job/a.mrcs');
    expect(resolveStackPath('/proj/job/p.star', '../Extract/./a.mrcs')).toBe('/proj/Extract/a.mrcs');
    expect(resolveStackPath('p.star', '../../a.mrcs')).toBe('../../a.mrcs');
    expect(resolveStackPath('x/p.star', '../../a.mrcs')).toBe('../a.mrcs');
    expect(resolveStackPath('/p.star', '../a.mrcs')).toBe('/a.mrcs');
  });

  it('keeps absolute paths', () => {
    expect(resolveStackPath('/proj/p.star', '/data/a.mrcs')).toBe('/data/a.mrcs');
    expect(resolveStackPath('rel/p.star', '/data/a.mrcs')).toBe('/data/a.mrcs');
  });
});

describe('writeParticleStar', () => {
  const rows: ParticleStarRow[] = [
    {
      imageName: '000001@Particles/s.mrcs', psi: 0.7, shiftX: 1.25, shiftY: -2.5, scale: 1.03, weight: 0.9,
      classNumber: 2,
    },
    {
      imageName: '000002@Particles/s.mrcs', psi: 5.5, shiftX: -0.333333, shiftY: 0, scale: 0.97,
      weight: 3.2e-9,
    },
    { imageName: '000003@my stack.mrcs', psi: -3.1, shiftX: 0, shiftY: 4, scale: 1, weight: 1 },
  ];
  const pixelSize = 1.34;

  it('writes the RELION 3.1 header labels', () => {
    const text = writeParticleStar(rows, { pixelSize, imageSize: 128, opticsGroupName: 'group A' });
    const star = parseStar(text, 'written.star');
    expect(star.blocks.map((b) => b.name)).toEqual(['optics', 'particles']);
    const optics = star.blocks[0].loops[0];
    expect(optics.labels).toEqual([
      'rlnOpticsGroup',
      'rlnOpticsGroupName',
      'rlnImagePixelSize',
      'rlnImageSize',
      'rlnImageDimensionality',
      'rlnVoltage',
      'rlnSphericalAberration',
      'rlnAmplitudeContrast',
    ]);
    // RELION 3.1.3 rejects an optics group without voltage and Cs. These are relion_import's defaults.
    expect(optics.rows).toEqual([['1', 'group A', '1.340000', '128', '2', '300.000000', '2.700000', '0.100000']]);
    expect(star.blocks[1].loops[0].labels).toEqual([
      'rlnImageName',
      'rlnOpticsGroup',
      'rlnAnglePsi',
      'rlnOriginXAngst',
      'rlnOriginYAngst',
      'rlnClassNumber',
      'rlnMaxValueProbDistribution',
      'classify2dScale',
      'classify2dClassProbability',
    ]);
  });

  it('writes class numbers and probabilities', () => {
    const classified = rows.map((row, i) => ({ ...row, classNumber: i + 2, classProbability: 0.25 * (i + 1) }));
    const loop = parseStar(writeParticleStar(classified, { pixelSize })).blocks[1].loops[0];
    const value = (row: number, label: string) => loop.rows[row][loop.labels.indexOf(label)];
    expect(value(0, 'rlnClassNumber')).toBe('2');
    expect(Number(value(1, 'classify2dClassProbability'))).toBe(0.5);
    expect(() => writeParticleStar([{ ...rows[0], classProbability: 1.5 }], { pixelSize })).toThrow('classProbability is 1.5; it must be in [0, 1]');
  });

  it('writes given microscope values', () => {
    const microscope = { voltage: 200, sphericalAberration: 0.01, amplitudeContrast: 0.07 };
    const text = writeParticleStar(rows, { pixelSize, ...microscope });
    const optics = parseStar(text).blocks[0].loops[0];
    const value = (label: string) => optics.rows[0][optics.labels.indexOf(label)];
    expect(value('rlnVoltage')).toBe('200.000000');
    expect(value('rlnSphericalAberration')).toBe('0.010000');
    expect(value('rlnAmplitudeContrast')).toBe('0.070000');
  });

  it('omits rlnImageSize when not given', () => {
    const star = parseStar(writeParticleStar(rows, { pixelSize }));
    expect(star.blocks[0].loops[0].labels).not.toContain('rlnImageSize');
    expect(star.blocks[0].loops[0].rows[0][1]).toBe('opticsGroup1');
  });

  it('round-trips through readParticles', () => {
    const star = parseStar(writeParticleStar(rows, { pixelSize }), 'written.star');
    const { particles, version } = readParticles(star);
    expect(version).toBe('3.1');
    expect(particles.map((p) => [p.stackPath, p.index])).toEqual([
      ['Particles/s.mrcs', 0],
      ['Particles/s.mrcs', 1],
      ['my stack.mrcs', 2],
    ]);
    for (const particle of particles) {
      expect(particle.pixelSize).toBe(pixelSize);
      expect(particle.opticsGroup).toBe(1);
    }
  });

  it('round-trips psi, origins, class, weight and scale', () => {
    const loop = parseStar(writeParticleStar(rows, { pixelSize })).blocks[1].loops[0];
    const column = (label: string) => loop.labels.indexOf(label);
    rows.forEach((row, i) => {
      const values = loop.rows[i];
      const psiDegrees = Number(values[column('rlnAnglePsi')]);
      expect(psiDegrees).toBeGreaterThan(-180);
      expect(psiDegrees).toBeLessThanOrEqual(180);
      // Compare ψ on the circle: the file keeps (−180°, 180°].
      const psiBack = (psiDegrees * Math.PI) / 180;
      expect(Math.cos(psiBack)).toBeCloseTo(Math.cos(row.psi), 6);
      expect(Math.sin(psiBack)).toBeCloseTo(Math.sin(row.psi), 6);
      const shiftX = relionOriginToShift(Number(values[column('rlnOriginXAngst')]), pixelSize);
      const shiftY = relionOriginToShift(Number(values[column('rlnOriginYAngst')]), pixelSize);
      // 6 decimals of Å are 5·10⁻⁷ Å, below 10⁻⁶ pixel at 1.34 Å per pixel.
      expect(Math.abs(shiftX - row.shiftX)).toBeLessThan(1e-6);
      expect(Math.abs(shiftY - row.shiftY)).toBeLessThan(1e-6);
      expect(Number(values[column('rlnClassNumber')])).toBe(row.classNumber ?? 1);
      expect(Number(values[column('rlnMaxValueProbDistribution')])).toBe(row.weight);
      expect(Number(values[column('classify2dScale')])).toBe(row.scale);
    });
  });

  it('writes origins as minus the shift in Å', () => {
    const loop = parseStar(writeParticleStar(rows, { pixelSize })).blocks[1].loops[0];
    expect(loop.rows[0][loop.labels.indexOf('rlnOriginXAngst')]).toBe('-1.675000');
    expect(loop.rows[0][loop.labels.indexOf('rlnOriginYAngst')]).toBe('3.350000');
    expect(loop.rows[1][loop.labels.indexOf('rlnOriginYAngst')]).toBe('0.000000');
  });

  it('writes psi in degrees with the same sign', () => {
    expect(psiToRelionDegrees(Math.PI / 6)).toBeCloseTo(30, 12);
    expect(psiToRelionDegrees(-Math.PI / 6)).toBeCloseTo(-30, 12);
    expect(psiToRelionDegrees((3 * Math.PI) / 2)).toBeCloseTo(-90, 12);
    expect(psiToRelionDegrees(Math.PI)).toBeCloseTo(180, 12);
    expect(psiToRelionDegrees(-Math.PI)).toBeCloseTo(180, 12);
  });

  it('rejects invalid arguments', () => {
    const row = rows[0];
    expect(errorOf(() => writeParticleStar(rows, { pixelSize: 0 })).message).toContain('pixelSize is 0');
    expect(errorOf(() => writeParticleStar(rows, { pixelSize, imageSize: 1.5 })).message).toContain(
      'imageSize is 1.5',
    );
    expect(errorOf(() => writeParticleStar([{ ...row, psi: NaN }], { pixelSize })).message).toContain(
      'row 0 (000001@Particles/s.mrcs): psi is NaN',
    );
    for (const imageName of ['x.mrcs', '0@x.mrcs']) {
      const error = errorOf(() => writeParticleStar([{ ...row, imageName }], { pixelSize }));
      expect(error.message).toContain(`imageName is '${imageName}'`);
    }
    expect(errorOf(() => writeParticleStar([{ ...row, classNumber: 0 }], { pixelSize })).message).toContain(
      'classNumber is 0',
    );
    expect(errorOf(() => writeParticleStar(rows, { pixelSize, voltage: 0 })).message).toContain('voltage is 0');
    expect(errorOf(() => writeParticleStar(rows, { pixelSize, sphericalAberration: NaN })).message).toContain(
      'sphericalAberration is NaN',
    );
    expect(errorOf(() => writeParticleStar(rows, { pixelSize, amplitudeContrast: 1 })).message).toContain(
      'amplitudeContrast is 1',
    );
  });
});
