/**
 * Interoperability with the field's tools, run for real: python3-mrcfile and RELION read the MRC
 * and STAR files that this package writes, readMrc and readParticles read the files that they
 * write, and relion_stack_create checks the pose conventions of writeParticleStar. Written
 * against Debian 12's packages, mrcfile 1.4.3 and RELION 3.1.3. A missing tool fails the tests;
 * `bash scripts/setup.sh` installs both.
 */
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { resample } from '../gpu/host.js';
import { readMrc, writeMrc, type MrcFile } from '../src/mrc.js';
import {
  parseStar,
  psiToRelionDegrees,
  readParticles,
  writeParticleStar,
  type ParticleStarRow,
  type StarLoop,
} from '../src/star.js';
import { figureTemplate, normalDeviates, seededRandom } from '../src/synthetic.js';
import {
  discCorrelation,
  once,
  parseRelionStats,
  requireTools,
  runPython,
  runRelion,
  type RelionImageStats,
} from './interop/tools.js';

let root: string | undefined;

beforeAll(() => {
  root = mkdtempSync(join(tmpdir(), 'classify2d-interop-'));
});

afterAll(() => {
  if (root !== undefined) rmSync(root, { recursive: true, force: true });
});

// Without the tools, this test fails naming the missing one, and so does every other test,
// because each suite's setup calls workDir.
it('finds RELION and mrcfile', () => {
  requireTools();
});

/** Checks the tools and makes a fresh folder under this file's temporary folder. */
function workDir(name: string): string {
  requireTools();
  if (root === undefined) throw new Error('the temporary folder is missing because the first beforeAll failed');
  const dir = join(root, name);
  mkdirSync(dir);
  return dir;
}

function readMrcFile(path: string): MrcFile {
  return readMrc(new Uint8Array(readFileSync(path)), path);
}

function starLoop(path: string, block: string): StarLoop {
  const star = parseStar(readFileSync(path, 'utf8'), path);
  const found = star.blocks.find((b) => b.name === block);
  if (found === undefined || found.loops.length === 0) throw new Error(`${path}: no loop_ found in data_${block}`);
  return found.loops[0];
}

/** Values of one column of a loop_, by label without the underscore. */
function column(loop: StarLoop, label: string): string[] {
  const index = loop.labels.indexOf(label);
  if (index < 0) throw new Error(`no _${label} column; the labels are ${loop.labels.join(' ')}`);
  return loop.rows.map((row) => row[index]);
}

const NX = 16;
const NY = 12;
const NZ = 3;
const PIXEL_SIZE = 1.7;

/** Returns a 16 × 12 × 3 stack: a smooth pattern plus noise, offset by the image index. */
function testStack(): Float32Array {
  const normal = normalDeviates(seededRandom(7));
  const data = new Float32Array(NX * NY * NZ);
  for (let z = 0; z < NZ; z++) {
    for (let y = 0; y < NY; y++) {
      for (let x = 0; x < NX; x++) {
        data[(z * NY + y) * NX + x] = 2 * Math.sin(0.4 * x) * Math.cos(0.3 * y) + z + 0.5 * normal();
      }
    }
  }
  return data;
}

/** Mean, population standard deviation, min and max of one image, in float64. */
function imageStats(data: Float32Array, z: number): { mean: number; stddev: number; min: number; max: number } {
  const image = data.subarray(z * NX * NY, (z + 1) * NX * NY);
  let sum = 0;
  for (const value of image) sum += value;
  const mean = sum / image.length;
  let squares = 0;
  for (const value of image) squares += (value - mean) ** 2;
  return { mean, stddev: Math.sqrt(squares / image.length), min: Math.min(...image), max: Math.max(...image) };
}

/** Checks whether a value that RELION printed with 6 significant digits matches the float64 one. */
function matchesPrinted(printed: number, exact: number): boolean {
  return Math.abs(printed - exact) <= 1e-5 * Math.abs(exact) + 1e-12;
}

const MRCFILE_REPORT = String.raw`
import io, json, sys
import mrcfile, numpy as np

messages = io.StringIO()
valid = mrcfile.validate(sys.argv[1], print_file=messages)
with mrcfile.open(sys.argv[1], permissive=False) as mrc:
    header, data = mrc.header, mrc.data
    print(json.dumps({
        'valid': bool(valid),
        'messages': messages.getvalue(),
        'shape': list(data.shape),
        'dtype': data.dtype.name,
        'voxelSize': [float(mrc.voxel_size.x), float(mrc.voxel_size.y), float(mrc.voxel_size.z)],
        'mode': int(header.mode),
        'machst': [int(byte) for byte in header.machst],
        'ispg': int(header.ispg),
        'imageStack': bool(mrc.is_image_stack()),
        'nversion': int(header.nversion),
        'labels': [header.label[i].decode('ascii').rstrip() for i in range(int(header.nlabl))],
        'headerStats': [float(header.dmin), float(header.dmax), float(header.dmean), float(header.rms)],
        'numpyStats': [float(data.min()), float(data.max()), float(data.mean(dtype=np.float64)),
                       float(data.std(dtype=np.float64))],
        'values': data.astype(np.float64).ravel().tolist(),
    }))
`;

interface MrcfileReport {
  valid: boolean;
  messages: string;
  shape: number[];
  dtype: string;
  voxelSize: number[];
  mode: number;
  machst: number[];
  ispg: number;
  imageStack: boolean;
  nversion: number;
  labels: string[];
  headerStats: number[];
  numpyStats: number[];
  values: number[];
}

describe('mrcfile reads writeMrc output', () => {
  const data = testStack();
  const readBack = once(() => {
    const dir = workDir('mrcfile-reads');
    const path = join(dir, 'stack.mrcs');
    writeFileSync(path, writeMrc(data, NX, NY, NZ, { pixelSize: PIXEL_SIZE, labels: ['classify2d interop'] }));
    return runPython<MrcfileReport>(MRCFILE_REPORT, [path], dir);
  });

  it('passes mrcfile.validate', () => {
    const report = readBack();
    expect(report.valid, report.messages).toBe(true);
  });

  it('reads shape and dtype', () => {
    const report = readBack();
    expect(report.shape).toEqual([NZ, NY, NX]);
    expect(report.dtype).toBe('float32');
    expect(report.mode).toBe(2);
  });

  it('reads an image stack', () => {
    const report = readBack();
    expect(report.ispg).toBe(0);
    expect(report.imageStack).toBe(true);
  });

  it('reads voxel size', () => {
    const report = readBack();
    // mrcfile divides the float32 cella by mx, my, mz, so 20.4 / 12 reads as 1.6999999.
    for (const size of report.voxelSize) expect(size).toBeCloseTo(PIXEL_SIZE, 6);
  });

  it('reads stamp, version and labels', () => {
    const report = readBack();
    expect(report.machst).toEqual([0x44, 0x44, 0, 0]);
    expect(report.nversion).toBe(20140);
    expect(report.labels).toEqual(['classify2d interop']);
  });

  it('reads values exactly', () => {
    const report = readBack();
    expect(report.values).toEqual(Array.from(data));
  });

  it('header statistics match numpy', () => {
    const report = readBack();
    const [dmin, dmax, dmean, rms] = report.headerStats;
    const [min, max, mean, std] = report.numpyStats;
    expect(dmin).toBe(min);
    expect(dmax).toBe(max);
    // The header stores the float64 mean and RMS deviation rounded to float32.
    expect(Math.abs(dmean - mean)).toBeLessThanOrEqual(2 ** -24 * Math.abs(mean));
    expect(Math.abs(rms - std)).toBeLessThanOrEqual(2 ** -24 * std);
  });
});

describe('RELION reads writeMrc output', () => {
  const data = testStack();
  const setup = once(() => {
    const dir = workDir('relion-reads');
    writeFileSync(join(dir, 'stack.mrcs'), writeMrc(data, NX, NY, NZ, { pixelSize: PIXEL_SIZE }));
    const stats = (input: string) => {
      const { stdout } = runRelion('relion_image_handler', ['--i', input, '--stats'], dir);
      return parseRelionStats(stdout);
    };
    const stackStats = stats('stack.mrcs');

    // The STAR file lists the images in reverse, so RELION's order shows how it reads N@path.
    const rows: ParticleStarRow[] = [3, 2, 1].map((n) => ({
      imageName: `${n}@stack.mrcs`, psi: 0, shiftX: 0, shiftY: 0, scale: 1, weight: 1,
    }));
    writeFileSync(join(dir, 'particles.star'), writeParticleStar(rows, { pixelSize: PIXEL_SIZE }));
    return { stackStats, starStats: stats('particles.star') };
  });

  it('prints one line per image', () => {
    const { stackStats } = setup();
    expect(stackStats.map((s) => s.name)).toEqual(['000001@stack.mrcs', '000002@stack.mrcs', '000003@stack.mrcs']);
  });

  it('reads image size and pixel size', () => {
    const { stackStats } = setup();
    for (const stats of stackStats) {
      expect([stats.x, stats.y, stats.z, stats.n]).toEqual([NX, NY, 1, 1]);
      expect(stats.pixelSize).toBe(PIXEL_SIZE);
    }
  });

  it('image statistics match ours', () => {
    const { stackStats } = setup();
    stackStats.forEach((printed, z) => {
      const ours = imageStats(data, z);
      // RELION's stddev divides by the pixel count. Dividing by count − 1 would change it by 0.26 %,
      // far beyond the tolerance of matchesPrinted.
      for (const field of ['mean', 'stddev', 'min', 'max'] as const) {
        const where = `${printed.name} ${field}: RELION ${printed[field]}, ours ${ours[field]}`;
        expect(matchesPrinted(printed[field], ours[field]), where).toBe(true);
      }
    });
  });

  it('reads images named in STAR', () => {
    const { starStats } = setup();
    expect(starStats.map((s) => s.name)).toEqual(['3@stack.mrcs', '2@stack.mrcs', '1@stack.mrcs']);
    starStats.forEach((printed, i) => {
      const ours = imageStats(data, 2 - i);
      expect(matchesPrinted(printed.mean, ours.mean), `${printed.name} mean ${printed.mean}`).toBe(true);
    });
  });
});

/** A pose of this package, with ψ in radians and shifts in pixels. The scale is 1 throughout. */
interface Pose {
  psi: number;
  shiftX: number;
  shiftY: number;
}

/**
 * Poses for the convention test. The first six put every template pixel on an image pixel
 * (ψ a multiple of 90°, integer shifts), so both resamplings are exact there.
 */
const POSES: readonly Pose[] = [
  { psi: 0, shiftX: 0, shiftY: 0 },
  { psi: 0, shiftX: 3, shiftY: 0 },
  { psi: 0, shiftX: 0, shiftY: -2 },
  { psi: Math.PI / 2, shiftX: 0, shiftY: 0 },
  { psi: Math.PI, shiftX: 0, shiftY: 0 },
  { psi: -Math.PI / 2, shiftX: 1, shiftY: 1 },
  { psi: 0.6, shiftX: 0, shiftY: 0 },
  { psi: -2.2, shiftX: 2.5, shiftY: -1.5 },
  { psi: 2.9, shiftX: -1.25, shiftY: 3 },
];
const GRID_POSES = 6;

function describePose(pose: Pose): string {
  return `ψ ${pose.psi.toFixed(4)} rad, shift (${pose.shiftX}, ${pose.shiftY})`;
}

/** STAR files for the convention test: the true poses, and each sign flipped on its own. */
const VARIANTS = {
  true: (pose: Pose) => pose,
  flippedPsi: (pose: Pose) => ({ ...pose, psi: -pose.psi }),
  flippedOrigin: (pose: Pose) => ({ ...pose, shiftX: -pose.shiftX, shiftY: -pose.shiftY }),
};
type Variant = keyof typeof VARIANTS;

describe.each([32, 31])('relion_stack_create at size %i', (size) => {
  const pixels = size * size;
  const template = figureTemplate(size);
  // Pixels within this radius come from inside the box for every shift in POSES.
  const radius = size / 2 - 5;
  const setup = once(() => {
    const dir = workDir(`poses-${size}`);
    const images = new Float32Array(POSES.length * pixels);
    const model = new Float64Array(pixels);
    POSES.forEach((pose, i) => {
      const hostPose = { cos: Math.cos(pose.psi), sin: Math.sin(pose.psi), a: pose.shiftX, b: pose.shiftY, scale: 1 };
      resample(size, template, hostPose, model);
      images.set(model, i * pixels);
    });
    writeFileSync(join(dir, 'particles.mrcs'), writeMrc(images, size, size, POSES.length, { pixelSize: 2 }));

    const correlations = {} as Record<Variant, number[]>;
    let alignedStar: StarLoop | undefined;
    let stderr = '';
    for (const variant of Object.keys(VARIANTS) as Variant[]) {
      const rows = POSES.map((pose, i) => ({
        imageName: `${i + 1}@particles.mrcs`, ...VARIANTS[variant](pose), scale: 1, weight: 1,
      }));
      writeFileSync(join(dir, `${variant}.star`), writeParticleStar(rows, { pixelSize: 2, imageSize: size }));
      const args = ['--i', `${variant}.star`, '--o', `${variant}-aligned`, '--apply_transformation'];
      const output = runRelion('relion_stack_create', args, dir);
      const aligned = readMrcFile(join(dir, `${variant}-aligned.mrcs`));
      correlations[variant] = POSES.map((_, i) =>
        discCorrelation(aligned.data.subarray(i * pixels, (i + 1) * pixels), template, size, radius),
      );
      if (variant === 'true') {
        alignedStar = starLoop(join(dir, 'true-aligned.star'), 'particles');
        stderr = output.stderr;
      }
    }
    return { correlations, alignedStar: alignedStar!, stderr };
  });

  it('undoes true poses', () => {
    const { correlations } = setup();
    POSES.forEach((pose, i) => {
      expect(correlations.true[i], `r for ${describePose(pose)}`).toBeGreaterThan(0.98);
    });
  });

  it('undoes grid poses exactly', () => {
    const { correlations } = setup();
    // A half-pixel error in the rotation centre or shift would lower r here.
    POSES.slice(0, GRID_POSES).forEach((pose, i) => {
      expect(correlations.true[i], `r for ${describePose(pose)}`).toBeGreaterThan(0.9999);
    });
  });

  it('fails with flipped psi sign', () => {
    const { correlations } = setup();
    POSES.forEach((pose, i) => {
      if (Math.abs(Math.sin(pose.psi)) < 0.1) return;
      expect(correlations.flippedPsi[i], `r for ${describePose(pose)}`).toBeLessThan(0.9);
    });
  });

  it('fails with flipped origin sign', () => {
    const { correlations } = setup();
    POSES.forEach((pose, i) => {
      if (pose.shiftX === 0 && pose.shiftY === 0) return;
      expect(correlations.flippedOrigin[i], `r for ${describePose(pose)}`).toBeLessThan(0.9);
    });
  });

  it('zeroes the poses it applied', () => {
    const { alignedStar } = setup();
    for (const label of ['rlnAnglePsi', 'rlnOriginXAngst', 'rlnOriginYAngst']) {
      expect(column(alignedStar, label).map(Number), label).toEqual(POSES.map(() => 0));
    }
  });

  it('keeps the scale column', () => {
    const { alignedStar, stderr } = setup();
    expect(column(alignedStar, 'classify2dScale').map(Number)).toEqual(POSES.map(() => 1));
    expect(stderr).toContain('unknown label: classify2dScale');
  });
});

describe('readMrc reads RELION output', () => {
  const data = testStack();
  const stackDir = once(() => {
    const dir = workDir('reads-relion');
    writeFileSync(join(dir, 'stack.mrcs'), writeMrc(data, NX, NY, NZ, { pixelSize: PIXEL_SIZE }));
    return dir;
  });

  it('reads relion_image_handler stack', () => {
    const dir = stackDir();
    const args = ['--i', 'stack.mrcs', '--o', 'scaled.mrcs', '--multiply_constant', '-1.5'];
    runRelion('relion_image_handler', args, dir);
    const file = readMrcFile(join(dir, 'scaled.mrcs'));
    expect([file.header.nx, file.header.ny, file.header.nz]).toEqual([NX, NY, NZ]);
    expect(file.header.mode).toBe(2);
    expect(file.header.pixelSize).toBeCloseTo(PIXEL_SIZE, 6);
    expect(file.warnings).toEqual([]);
    // RELION computes in double and stores float32, so each value is −1.5 x rounded once.
    expect(Array.from(file.data)).toEqual(Array.from(data, (value) => Math.fround(-1.5 * value)));
  });

  it('reads relion_stack_create stack and STAR', () => {
    const dir = stackDir();
    const rows: ParticleStarRow[] = [2, 3, 1].map((n) => ({
      imageName: `${n}@stack.mrcs`, psi: 0, shiftX: 0, shiftY: 0, scale: 1, weight: 1,
    }));
    writeFileSync(join(dir, 'particles.star'), writeParticleStar(rows, { pixelSize: PIXEL_SIZE }));
    runRelion('relion_stack_create', ['--i', 'particles.star', '--o', 'copy'], dir);

    const starPath = join(dir, 'copy.star');
    const { particles, version } = readParticles(parseStar(readFileSync(starPath, 'utf8'), starPath));
    expect(version).toBe('3.1');
    expect(particles.map((p) => [p.stackPath, p.index])).toEqual([
      ['copy.mrcs', 0],
      ['copy.mrcs', 1],
      ['copy.mrcs', 2],
    ]);
    for (const particle of particles) {
      expect(particle.pixelSize).toBe(PIXEL_SIZE);
      expect(particle.opticsGroup).toBe(1);
    }

    const file = readMrcFile(join(dir, 'copy.mrcs'));
    const pixels = NX * NY;
    [1, 2, 0].forEach((z, i) => {
      const expected = Array.from(data.subarray(z * pixels, (z + 1) * pixels));
      expect(Array.from(file.data.subarray(i * pixels, (i + 1) * pixels)), `copy image ${i}`).toEqual(expected);
    });
    // RELION 3.1.3 leaves cella 0 in this stack, so the pixel size is in the STAR file only.
    expect(file.header.pixelSize).toBeNull();
    expect(file.warnings).toEqual([]);
  });

  it('reads STAR that RELION rewrote', () => {
    const dir = stackDir();
    copyFileSync(join(dir, 'stack.mrcs'), join(dir, 'my stack.mrcs'));
    const rows: ParticleStarRow[] = [
      { imageName: '1@my stack.mrcs', psi: 0.7, shiftX: 1.25, shiftY: -2.5, scale: 1.03, weight: 0.9 },
      { imageName: '3@my stack.mrcs', psi: 5.5, shiftX: -1 / 3, shiftY: 0, scale: 0.97, weight: 0.25, classNumber: 2 },
    ];
    writeFileSync(join(dir, 'poses.star'), writeParticleStar(rows, { pixelSize: PIXEL_SIZE, voltage: 200 }));
    runRelion('relion_star_handler', ['--i', 'poses.star', '--o', 'rewritten.star'], dir);

    const path = join(dir, 'rewritten.star');
    const { particles } = readParticles(parseStar(readFileSync(path, 'utf8'), path));
    expect(particles.map((p) => [p.stackPath, p.index, p.pixelSize])).toEqual([
      ['my stack.mrcs', 0, PIXEL_SIZE],
      ['my stack.mrcs', 2, PIXEL_SIZE],
    ]);
    expect(column(starLoop(path, 'optics'), 'rlnVoltage').map(Number)).toEqual([200]);

    // RELION 3.1.3 rewrites some numbers with fewer digits, such as -34.37747 for −34.377468.
    const loop = starLoop(path, 'particles');
    const read = (label: string) => column(loop, label).map(Number);
    rows.forEach((row, i) => {
      expect(read('rlnAnglePsi')[i]).toBeCloseTo(psiToRelionDegrees(row.psi), 5);
      expect(read('rlnOriginXAngst')[i]).toBeCloseTo(-row.shiftX * PIXEL_SIZE, 5);
      expect(read('rlnOriginYAngst')[i]).toBeCloseTo(-row.shiftY * PIXEL_SIZE, 5);
      expect(read('rlnClassNumber')[i]).toBe(row.classNumber ?? 1);
      expect(read('rlnMaxValueProbDistribution')[i]).toBeCloseTo(row.weight, 6);
      expect(read('classify2dScale')[i]).toBe(row.scale);
    });
  });
});

/** Files that mrcfile writes from a numpy array of this dtype, and the header that readMrc must decode. */
const MRCFILE_CASES = [
  { name: 'float32', dtype: '<f4', mode: 2, endianness: 'little' },
  { name: 'big-endian float32', dtype: '>f4', mode: 2, endianness: 'big' },
  { name: 'int16', dtype: '<i2', mode: 1, endianness: 'little' },
  { name: 'big-endian int16', dtype: '>i2', mode: 1, endianness: 'big' },
  { name: 'int8', dtype: 'i1', mode: 0, endianness: 'little' },
  // mrcfile stores uint8 as mode 6, widened to uint16, because mode 0 is signed in MRC2014.
  { name: 'uint8', dtype: 'u1', mode: 6, endianness: 'little' },
  { name: 'uint16', dtype: '<u2', mode: 6, endianness: 'little' },
  { name: 'float16', dtype: '<f2', mode: 12, endianness: 'little' },
  { name: 'big-endian float16', dtype: '>f2', mode: 12, endianness: 'big' },
] as const;

/** Shape of the mrcfile cases, (z, y, x): odd and unequal, so a swapped axis shows. */
const CASE_SHAPE = [3, 5, 7] as const;

const MRCFILE_WRITER = String.raw`
import json, sys
import mrcfile, numpy as np

folder, cases, shape = sys.argv[1], json.loads(sys.argv[2]), tuple(json.loads(sys.argv[3]))
rng = np.random.default_rng(5)
report = {}
for case in cases:
    dtype = np.dtype(case['dtype'])
    if dtype.kind == 'f':
        values = rng.normal(0, 3, shape).astype(dtype)
        # Signed zero, the smallest subnormal and the largest value of float16.
        values.flat[:4] = [0.0, -0.0, 2.0 ** -24, 65504.0]
    else:
        info = np.iinfo(dtype)
        values = rng.integers(info.min, info.max, shape, endpoint=True).astype(dtype)
        values.flat[:2] = [info.min, info.max]
    path = folder + '/' + case['name'].replace(' ', '-') + '.mrc'
    with mrcfile.new(path, overwrite=True) as mrc:
        mrc.set_data(values)
        mrc.voxel_size = 1.5
    with mrcfile.open(path) as mrc:
        header = mrc.header
        report[case['name']] = {
            'path': path,
            'mode': int(header.mode),
            'machst': [int(byte) for byte in header.machst],
            'stats': [float(header.dmin), float(header.dmax), float(header.dmean), float(header.rms)],
            'values': mrc.data.astype(np.float64).ravel().tolist(),
        }
print(json.dumps(report))
`;

interface MrcfileWritten {
  path: string;
  mode: number;
  machst: number[];
  stats: number[];
  values: number[];
}

describe('readMrc reads mrcfile output', () => {
  const setup = once(() => {
    const dir = workDir('mrcfile-writes');
    const cases = JSON.stringify(MRCFILE_CASES.map(({ name, dtype }) => ({ name, dtype })));
    return runPython<Record<string, MrcfileWritten>>(MRCFILE_WRITER, [dir, cases, JSON.stringify(CASE_SHAPE)], dir);
  });

  it.each(MRCFILE_CASES)('reads $name file', ({ name, mode, endianness }) => {
    const report = setup()[name];
    const file = readMrcFile(report.path);
    const [nz, ny, nx] = CASE_SHAPE;
    expect(report.mode, `mrcfile mode for ${name}`).toBe(mode);
    expect(file.header.mode).toBe(mode);
    expect(file.header.endianness).toBe(endianness);
    expect([file.header.nx, file.header.ny, file.header.nz]).toEqual([nx, ny, nz]);
    expect(file.header.pixelSize).toBeCloseTo(1.5, 6);
    expect(file.warnings).toEqual([]);
    expect(Array.from(file.data)).toEqual(report.values);
    const { min, max, mean, rms } = file.header.stats;
    expect([min, max, mean, rms]).toEqual(report.stats);
  });

  it('writes big-endian stamp 0x11 0x11', () => {
    const written = setup();
    expect(written['big-endian float32'].machst).toEqual([0x11, 0x11, 0, 0]);
    expect(written.float32.machst).toEqual([0x44, 0x44, 0, 0]);
  });

  it('reads int8 as signed', () => {
    const written = setup();
    const file = readMrcFile(written.int8.path);
    expect(file.header.signedBytes).toBe(true);
    expect(Math.min(...file.data)).toBe(-128);
  });
});
