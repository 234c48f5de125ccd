/**
 * Reads and writes STAR files, and RELION particle tables in them.
 *
 * STAR syntax read here (Hall, J. Chem. Inf. Comput. Sci. 31 (1991), as RELION writes it):
 * a file is a list of `data_NAME` blocks (`data_` alone names the block ''). A block holds
 * key–value pairs (`_label value`) and tables: `loop_`, then one `_label` per line, then one
 * row of values per line. A `#` outside quotes starts a comment, so RELION's `_rlnImageName #1`
 * is the label alone. A value with spaces is quoted with ' or ", and the quote ends only where
 * the same quote is followed by white space or the end of the line. Labels are stored without
 * their leading underscore. Unlike general STAR, a table row must fit on one line, as RELION
 * requires, so a row with too few or too many values is an error with its line number.
 *
 * RELION particle tables (labels from RELION's metadata label list, versions 3.0 and 3.1):
 * - 3.0: one table, in a block named `data_` or `data_images` or the file's only block, with
 *   `_rlnImageName` and optionally `_rlnOriginX`/`_rlnOriginY` (pixels), `_rlnPixelSize` (Å) or
 *   `_rlnDetectorPixelSize` (µm) with `_rlnMagnification`.
 * - 3.1 and later: `data_optics` with `_rlnOpticsGroup` and `_rlnImagePixelSize` (Å), and
 *   `data_particles` with `_rlnImageName`, `_rlnOpticsGroup`, `_rlnAnglePsi` (degrees) and
 *   `_rlnOriginXAngst`/`_rlnOriginYAngst` (Å).
 * `_rlnImageName` is `N@path`, N the 1-based image in the stack at path, such as
 * `000012@Particles/stack.mrcs`. A relative path is relative to the STAR file's folder.
 *
 * Pose conventions of writeParticleStar, against this package's pose
 * (R_φ θ)(q) = θ(R(−ψ)(q − o − d)/c + o) with R(ψ) = [[cos ψ, sin ψ], [−sin ψ, cos ψ]]
 * in x-column, y-row coordinates (see gpu/pose.ts):
 * - ψ: RELION's matrix for (rot, tilt, psi) = (0, 0, ψ) is [[cos ψ, sin ψ], [−sin ψ, cos ψ]]
 *   (the ZYZ convention of Heymann, Chagoyen and Belnap, J. Struct. Biol. 151 (2005), as listed
 *   for RELION and Xmipp in the 3DEM-conventions notes). RELION's Projector::project samples
 *   the reference at A⁻¹ q for each image point q (its source comments "Use the inverse
 *   matrix"), so the reference content at p appears at A p, the same map as R(ψ) here. RELION's images also use x for the column and
 *   y for the row. So `_rlnAnglePsi` is ψ in degrees with the same sign.
 * - Origins: a RELION origin is the shift that moves the particle to the box centre. The
 *   particle sits at the box centre minus the origin. The ASPIRE-Python developers found this
 *   with images that relion_project made, and recentring scripts subtract the origin from the
 *   picked coordinate. Here the template centre sits at o + d, so `_rlnOriginXAngst` = −shiftX ·
 *   pixel size and `_rlnOriginYAngst` = −shiftY · pixel size.
 * test/interop.test.ts checks both signs and the centre o against RELION 3.1.3: it resamples a
 * template at known poses, and `relion_stack_create --apply_transformation` on the file from
 * writeParticleStar turns every image back into the template, for even and odd box sizes.
 */

/** An error in a STAR file's contents or in the arguments of writeParticleStar. */
export class StarError extends Error {
  override name = 'StarError';
}

/** A `_label value` pair, with its 1-based line. */
export interface StarValue {
  value: string;
  line: number;
}

/** A `loop_` table: its labels (without the underscore) and one row of strings per line. */
export interface StarLoop {
  /** Line of `loop_`, 1-based. */
  line: number;
  labels: string[];
  rows: string[][];
  /** Line of each row, 1-based. */
  rowLines: number[];
}

export interface StarBlock {
  /** Name after `data_`; '' for `data_` alone. */
  name: string;
  /** Line of `data_NAME`, 1-based. */
  line: number;
  /** Key–value pairs by label, without the underscore. */
  values: Map<string, StarValue>;
  loops: StarLoop[];
}

export interface StarFile {
  name: string;
  blocks: StarBlock[];
}

/**
 * Parses STAR text into its data blocks, key–value pairs and tables; all values stay strings.
 * @param name file name for messages
 * @throws StarError naming the file and line. The causes are text before the first `data_`,
 *   a `loop_` without labels, a label repeated in a block or table, or a row whose count of
 *   values differs from the table's labels. An unclosed quote or a value without a label also throws.
 */
export function parseStar(text: string, name = 'STAR data'): StarFile {
  const blocks: StarBlock[] = [];
  let block: StarBlock | null = null;
  let loop: StarLoop | null = null;
  // A table reads labels until its first row, and rows after.
  let readingLabels = false;

  const lines = text.split(/\r\n|\n|\r/);
  for (let index = 0; index < lines.length; index++) {
    const lineNumber = index + 1;
    const tokens = tokenize(lines[index], name, lineNumber);
    if (tokens.length === 0) continue;
    const first = tokens[0];

    if (first.text.startsWith('data_') && !first.quoted) {
      requireAlone(tokens, name, lineNumber, 'a data_ line');
      block = { name: first.text.slice('data_'.length), line: lineNumber, values: new Map(), loops: [] };
      blocks.push(block);
      loop = null;
      continue;
    }
    if (block === null) {
      throw new StarError(
        `${name}: line ${lineNumber}: '${first.text}' appears before the first data_ block. ` +
          'Start the file with a data_NAME line.',
      );
    }
    if (first.text === 'loop_' && !first.quoted) {
      requireAlone(tokens, name, lineNumber, 'a loop_ line');
      endLoop(loop, name);
      loop = { line: lineNumber, labels: [], rows: [], rowLines: [] };
      block.loops.push(loop);
      readingLabels = true;
      continue;
    }
    if (first.text.startsWith('_') && !first.quoted) {
      const label = first.text.slice(1);
      if (loop !== null && readingLabels) {
        requireAlone(tokens, name, lineNumber, `label _${label} of the loop_ at line ${loop.line}`);
        if (loop.labels.includes(label)) {
          throw new StarError(
            `${name}: line ${lineNumber}: label _${label} is repeated in the loop_ at line ${loop.line}. ` +
              'Remove the repeated label.',
          );
        }
        loop.labels.push(label);
        continue;
      }
      // A label after a table's rows ends the table and starts key–value pairs.
      endLoop(loop, name);
      loop = null;
      addValue(block, label, tokens, name, lineNumber);
      continue;
    }
    if (loop === null) {
      throw new StarError(
        `${name}: line ${lineNumber}: value '${first.text}' has no label; it is neither in a loop_ ` +
          'table nor after a _label. Add the label or remove the line.',
      );
    }
    if (readingLabels) {
      if (loop.labels.length === 0) throwNoLabels(loop, name);
      readingLabels = false;
    }
    if (tokens.length !== loop.labels.length) {
      throw new StarError(
        `${name}: line ${lineNumber}: row has ${tokens.length} values, but the loop_ at line ${loop.line} ` +
          `has ${loop.labels.length} labels (${loop.labels.map((l) => `_${l}`).join(' ')}). ` +
          'Each row must be on one line with one value per label; quote values that contain spaces.',
      );
    }
    loop.rows.push(tokens.map((token) => token.text));
    loop.rowLines.push(lineNumber);
  }
  endLoop(loop, name);
  return { name, blocks };
}

interface Token {
  text: string;
  quoted: boolean;
}

/** Splits one line into values, dropping a comment and the quotes around quoted values. */
function tokenize(line: string, name: string, lineNumber: number): Token[] {
  const tokens: Token[] = [];
  let position = 0;
  while (position < line.length) {
    const char = line[position];
    if (char === ' ' || char === '\t') {
      position++;
      continue;
    }
    if (char === '#') break;
    if (char === "'" || char === '"') {
      const end = findClosingQuote(line, position);
      if (end < 0) {
        throw new StarError(
          `${name}: line ${lineNumber}: quote ${char} at column ${position + 1} is not closed. ` +
            `Close the value with ${char} followed by a space or the end of the line.`,
        );
      }
      tokens.push({ text: line.slice(position + 1, end), quoted: true });
      position = end + 1;
      continue;
    }
    let end = position;
    while (end < line.length && line[end] !== ' ' && line[end] !== '\t') end++;
    tokens.push({ text: line.slice(position, end), quoted: false });
    position = end;
  }
  return tokens;
}

/** Returns the index of the quote that closes the one at start, or −1. */
function findClosingQuote(line: string, start: number): number {
  const quote = line[start];
  for (let i = start + 1; i < line.length; i++) {
    const next = line[i + 1];
    if (line[i] === quote && (next === undefined || next === ' ' || next === '\t')) return i;
  }
  return -1;
}

function requireAlone(tokens: Token[], name: string, lineNumber: number, what: string): void {
  if (tokens.length > 1) {
    throw new StarError(
      `${name}: line ${lineNumber}: ${what} has extra text '${tokens[1].text}'. ` +
        'Put it on a line of its own, or start a comment with #.',
    );
  }
}

function endLoop(loop: StarLoop | null, name: string): void {
  if (loop !== null && loop.labels.length === 0) throwNoLabels(loop, name);
}

function throwNoLabels(loop: StarLoop, name: string): never {
  throw new StarError(
    `${name}: line ${loop.line}: loop_ has no labels. List one _label per line after loop_.`,
  );
}

function addValue(block: StarBlock, label: string, tokens: Token[], name: string, lineNumber: number): void {
  if (tokens.length !== 2) {
    const problem = tokens.length === 1 ? 'has no value' : `has ${tokens.length - 1} values`;
    throw new StarError(
      `${name}: line ${lineNumber}: _${label} ${problem}; ` +
        'a key–value pair outside loop_ needs exactly one. ' +
        'Quote a value that contains spaces.',
    );
  }
  const previous = block.values.get(label);
  if (previous !== undefined) {
    throw new StarError(
      `${name}: line ${lineNumber}: _${label} is repeated in data_${block.name} (first at line ` +
        `${previous.line}). Remove one of them.`,
    );
  }
  block.values.set(label, { value: tokens[1].text, line: lineNumber });
}

/** One image of a particle table. */
export interface StarParticle {
  /** Stack path as written in `_rlnImageName`; resolveStackPath joins it onto the STAR file's folder. */
  stackPath: string;
  /** Image in the stack, 0-based (RELION's N − 1). */
  index: number;
  /** Pixel size, Å; null when the file gives none. */
  pixelSize: number | null;
  /** `_rlnOpticsGroup`, in 3.1 files. */
  opticsGroup?: number;
  /** The microscope values given for the particle (3.0) or its optics group (3.1). */
  microscope: Microscope;
}

/** Microscope values of a particle; each is absent where the file has no column for it. */
export interface Microscope {
  /** `_rlnVoltage`, kV. */
  voltage?: number;
  /** `_rlnSphericalAberration`, Cs in mm. */
  sphericalAberration?: number;
  /** `_rlnAmplitudeContrast`, a fraction. */
  amplitudeContrast?: number;
}

/** Reads the microscope columns of one row that the table has. */
function readMicroscope(labels: string[], row: string[], name: string, line: number): Microscope {
  const microscope: Microscope = {};
  const column = (label: string) => labels.indexOf(label);
  if (column('rlnVoltage') >= 0) microscope.voltage = parsePositive(row[column('rlnVoltage')], 'rlnVoltage', 'kV', name, line);
  if (column('rlnSphericalAberration') >= 0) {
    const value = row[column('rlnSphericalAberration')];
    const cs = Number(value);
    if (value.trim() === '' || !Number.isFinite(cs)) {
      throw new StarError(`${name}: line ${line}: _rlnSphericalAberration is '${value}'; it must be a finite number in mm.`);
    }
    microscope.sphericalAberration = cs;
  }
  if (column('rlnAmplitudeContrast') >= 0) {
    const value = row[column('rlnAmplitudeContrast')];
    const contrast = Number(value);
    if (value.trim() === '' || !(contrast >= 0 && contrast < 1)) {
      throw new StarError(`${name}: line ${line}: _rlnAmplitudeContrast is '${value}'; it must be a fraction in [0, 1).`);
    }
    microscope.amplitudeContrast = contrast;
  }
  return microscope;
}

export interface StarParticles {
  particles: StarParticle[];
  /** '3.1' for files with a data_optics block (RELION 3.1 and later), else '3.0'. */
  version: '3.0' | '3.1';
}

/** A table as rows of strings, from a loop_ or from a block's key–value pairs (one row). */
interface Table {
  where: string;
  labels: string[];
  rows: string[][];
  rowLines: number[];
}

/**
 * Reads the images of a RELION particle table: stack paths, 0-based indices, pixel sizes,
 * optics groups and microscope values (voltage, Cs, amplitude contrast). Other columns are
 * not read.
 * @param name file name for messages
 * @throws StarError naming the file, line and value. The causes are a missing particle table
 *   or `_rlnImageName` column, or an image name not of the form N@path with an integer N ≥ 1.
 *   A particle's optics group missing from data_optics, an invalid pixel size, or an invalid
 *   voltage, Cs or amplitude contrast also throws.
 */
export function readParticles(star: StarFile, name = star.name): StarParticles {
  const optics = star.blocks.find((block) => block.name === 'optics');
  if (optics !== undefined) return { particles: readParticles31(star, optics, name), version: '3.1' };

  const onlyBlock = star.blocks.length === 1 ? star.blocks[0] : undefined;
  const block = star.blocks.find((b) => b.name === '' || b.name === 'images') ?? onlyBlock;
  if (block === undefined) {
    const names = star.blocks.map((b) => `data_${b.name}`).join(', ') || 'none';
    throw new StarError(
      `${name}: no particle table: expected data_optics with data_particles (RELION 3.1), or one block ` +
        `named data_ or data_images (RELION 3.0); the blocks are ${names}.`,
    );
  }
  const table = blockTable(block, name);
  const imageColumn = requireColumn(table, 'rlnImageName', name);
  const pixelSizeColumn = table.labels.indexOf('rlnPixelSize');
  const detectorColumn = table.labels.indexOf('rlnDetectorPixelSize');
  const magnificationColumn = table.labels.indexOf('rlnMagnification');

  const particles = table.rows.map((row, i) => {
    const line = table.rowLines[i];
    let pixelSize: number | null = null;
    if (pixelSizeColumn >= 0) {
      pixelSize = parsePositive(row[pixelSizeColumn], 'rlnPixelSize', 'Å', name, line);
    } else if (detectorColumn >= 0 && magnificationColumn >= 0) {
      // RELION 3.0: pixel size in Å = detector pixel size in µm · 10⁴ / magnification.
      const detector = parsePositive(row[detectorColumn], 'rlnDetectorPixelSize', 'µm', name, line);
      const magnification = parsePositive(row[magnificationColumn], 'rlnMagnification', '', name, line);
      pixelSize = (detector * 1e4) / magnification;
    }
    const microscope = readMicroscope(table.labels, row, name, line);
    return { ...parseImageName(row[imageColumn], name, line), pixelSize, microscope };
  });
  return { particles, version: '3.0' };
}

function readParticles31(star: StarFile, optics: StarBlock, name: string): StarParticle[] {
  const opticsTable = blockTable(optics, name);
  const groupColumn = requireColumn(opticsTable, 'rlnOpticsGroup', name);
  const opticsPixelColumn = opticsTable.labels.indexOf('rlnImagePixelSize');
  const pixelSizes = new Map<number, number | null>();
  const microscopes = new Map<number, Microscope>();
  opticsTable.rows.forEach((row, i) => {
    const line = opticsTable.rowLines[i];
    const group = parseGroup(row[groupColumn], name, line);
    microscopes.set(group, readMicroscope(opticsTable.labels, row, name, line));
    if (opticsPixelColumn < 0) {
      pixelSizes.set(group, null);
    } else {
      pixelSizes.set(group, parsePositive(row[opticsPixelColumn], 'rlnImagePixelSize', 'Å', name, line));
    }
  });

  const block = star.blocks.find((b) => b.name === 'particles');
  if (block === undefined) {
    throw new StarError(
      `${name}: the file has data_optics but no data_particles block. Check that the file is a ` +
        'RELION 3.1 particle file and not a micrograph file.',
    );
  }
  const table = blockTable(block, name);
  const imageColumn = requireColumn(table, 'rlnImageName', name);
  const particleGroupColumn = table.labels.indexOf('rlnOpticsGroup');
  const onlyGroup = pixelSizes.size === 1 ? [...pixelSizes.keys()][0] : undefined;
  if (particleGroupColumn < 0 && onlyGroup === undefined) {
    throw new StarError(
      `${name}: ${table.where} has no _rlnOpticsGroup column, and data_optics has ${pixelSizes.size} ` +
        'groups, so the pixel size of each particle is unknown. Add the _rlnOpticsGroup column.',
    );
  }

  return table.rows.map((row, i) => {
    const line = table.rowLines[i];
    // Without the column, every particle belongs to the only optics group.
    const group = particleGroupColumn >= 0 ? parseGroup(row[particleGroupColumn], name, line) : onlyGroup!;
    const pixelSize = pixelSizes.get(group);
    if (pixelSize === undefined) {
      throw new StarError(
        `${name}: line ${line}: _rlnOpticsGroup is ${group}, but data_optics at line ${optics.line} has ` +
          `only groups ${[...pixelSizes.keys()].join(', ') || 'none'}. Add the group to data_optics.`,
      );
    }
    return { ...parseImageName(row[imageColumn], name, line), pixelSize, opticsGroup: group, microscope: microscopes.get(group)! };
  });
}

/** Returns a block's table: its first loop_, or else its key–value pairs as one row. */
function blockTable(block: StarBlock, name: string): Table {
  const where = `data_${block.name} at line ${block.line}`;
  if (block.loops.length > 0) {
    const loop = block.loops[0];
    return { where: `the loop_ at line ${loop.line} of ${where}`, ...loop };
  }
  if (block.values.size > 0) {
    const entries = [...block.values.entries()];
    return {
      where,
      labels: entries.map(([label]) => label),
      rows: [entries.map(([, entry]) => entry.value)],
      // A key–value row has one line per value; messages cite the first.
      rowLines: [entries[0][1].line],
    };
  }
  throw new StarError(`${name}: ${where} is empty. Expected a loop_ table of particles.`);
}

function requireColumn(table: Table, label: string, name: string): number {
  const column = table.labels.indexOf(label);
  if (column < 0) {
    throw new StarError(
      `${name}: ${table.where} has no _${label} column; its labels are ` +
        `${table.labels.map((l) => `_${l}`).join(' ')}. Check that the file is a RELION particle file.`,
    );
  }
  return column;
}

function parseImageName(value: string, name: string, line: number): { stackPath: string; index: number } {
  const at = value.indexOf('@');
  const number = value.slice(0, at);
  const stackPath = value.slice(at + 1);
  if (at < 0 || !/^\d+$/.test(number) || stackPath === '') {
    throw new StarError(
      `${name}: line ${line}: _rlnImageName '${value}' is not of the form N@path, with N the 1-based ` +
        'image number, such as 000012@Particles/stack.mrcs.',
    );
  }
  const imageNumber = Number(number);
  if (imageNumber < 1 || !Number.isSafeInteger(imageNumber)) {
    throw new StarError(
      `${name}: line ${line}: _rlnImageName '${value}' has image number ${number}; RELION numbers ` +
        'the images of a stack from 1, so N must be at least 1.',
    );
  }
  return { stackPath, index: imageNumber - 1 };
}

function parseGroup(value: string, name: string, line: number): number {
  const group = Number(value);
  if (!/^\s*\d+\s*$/.test(value) || !Number.isSafeInteger(group) || group < 1) {
    throw new StarError(
      `${name}: line ${line}: _rlnOpticsGroup is '${value}'; it must be an integer of at least 1.`,
    );
  }
  return group;
}

function parsePositive(value: string, label: string, unit: string, name: string, line: number): number {
  const number = Number(value);
  if (value.trim() === '' || !Number.isFinite(number) || number <= 0) {
    const inUnit = unit === '' ? '' : ` in ${unit}`;
    throw new StarError(
      `${name}: line ${line}: _${label} is '${value}'; it must be a positive number${inUnit}.`,
    );
  }
  return number;
}

/**
 * Joins a stack path from `_rlnImageName` onto the folder of the STAR file at starPath, with
 * POSIX path rules ('/' separators, '.' and '..' resolved). An absolute stackPath (starting
 * with '/') is returned unchanged. Leading '..' of a relative result are kept.
 */
export function resolveStackPath(starPath: string, stackPath: string): string {
  if (stackPath.startsWith('/')) return stackPath;
  const slash = starPath.lastIndexOf('/');
  const folder = slash < 0 ? '' : starPath.slice(0, slash + 1);
  return normalizePath(folder + stackPath);
}

function normalizePath(path: string): string {
  const absolute = path.startsWith('/');
  const parts: string[] = [];
  for (const part of path.split('/')) {
    if (part === '' || part === '.') continue;
    if (part === '..') {
      if (parts.length > 0 && parts[parts.length - 1] !== '..') parts.pop();
      else if (!absolute) parts.push('..');
      // '..' above the root stays at the root, as in POSIX.
      continue;
    }
    parts.push(part);
  }
  const joined = parts.join('/');
  if (absolute) return `/${joined}`;
  return joined === '' ? '.' : joined;
}

/** One particle and its pose, in this package's conventions. */
export interface ParticleStarRow {
  /** `_rlnImageName`, N@path with N 1-based. */
  imageName: string;
  /** Rotation ψ, radians; positive turns the displayed image counter-clockwise. */
  psi: number;
  /** Shift along x (columns), pixels. */
  shiftX: number;
  /** Shift along y (rows, +y down), pixels. */
  shiftY: number;
  scale: number;
  /** Posterior weight γ of the pose, written as `_rlnMaxValueProbDistribution`. */
  weight: number;
  /** `_rlnClassNumber`, 1-based; 1 when absent. */
  classNumber?: number;
  /** Probability of that class, written as `_classify2dClassProbability`; 1 when absent. */
  classProbability?: number;
}

export interface ParticleStarOptions {
  /** Pixel size of the images, Å. */
  pixelSize: number;
  /** `_rlnOpticsGroupName`; 'opticsGroup1' when absent, as RELION names its first group. */
  opticsGroupName?: string;
  /** `_rlnImageSize`, the box edge in pixels; omitted when absent. */
  imageSize?: number;
  /** `_rlnVoltage`, the acceleration voltage in kV. Default 300, as in relion_import. */
  voltage?: number;
  /** `_rlnSphericalAberration`, Cs in mm. Default 2.7, as in relion_import. */
  sphericalAberration?: number;
  /** `_rlnAmplitudeContrast`, a fraction in [0, 1). Default 0.1, as in relion_import. */
  amplitudeContrast?: number;
}

/** Microscope values written when the caller gives none: relion_import's defaults in RELION 3.1.3. */
const DEFAULT_OPTICS = { voltage: 300, sphericalAberration: 2.7, amplitudeContrast: 0.1 };

/** Label of the scale column, which RELION has no label for. */
export const SCALE_LABEL = 'classify2dScale';

/** Label of the class-probability column, which RELION 3.1 has no label for. */
export const CLASS_PROBABILITY_LABEL = 'classify2dClassProbability';

/**
 * Writes particles and their poses as a RELION 3.1 particle file: data_optics with one group
 * and data_particles. ψ becomes `_rlnAnglePsi` in degrees, in (−180, 180], with the same sign;
 * the shifts become `_rlnOriginXAngst` = −shiftX · pixelSize and `_rlnOriginYAngst` =
 * −shiftY · pixelSize (see the file header for the sources of both signs).
 *
 * Angles and origins are written with 6 decimals, as RELION writes them, so they read back
 * within 5·10⁻⁷ degree or Å. The weight and scale are written with 9 significant digits,
 * because weights can be far below 10⁻⁶.
 *
 * The optics group always has `_rlnVoltage`, `_rlnSphericalAberration` and
 * `_rlnAmplitudeContrast`, because RELION 3.1.3 rejects a particle file whose optics group
 * lacks the voltage or Cs ("not all necessary variables defined in _optics.star file").
 * Their defaults are relion_import's. RELION jobs that model the CTF use them, so pass the
 * microscope's values for those.
 *
 * The scale goes in the column `_classify2dScale`, outside RELION's `rln` names so that no
 * RELION label can collide with it. RELION 3.1.3 reads the file with the warning "will ignore
 * (but maintain) values for the unknown label: classify2dScale" and keeps the column in the
 * STAR files it writes from it, as test/interop.test.ts checks.
 * @throws StarError for a non-positive pixel size, image size or voltage, a non-finite Cs,
 *   an amplitude contrast outside [0, 1), a non-finite pose value, an image name that is not
 *   N@path, or a class number below 1
 */
export function writeParticleStar(rows: readonly ParticleStarRow[], options: ParticleStarOptions): string {
  const { pixelSize } = options;
  const optics = formatOptics(options);
  const particleLabels = [
    'rlnImageName',
    'rlnOpticsGroup',
    'rlnAnglePsi',
    'rlnOriginXAngst',
    'rlnOriginYAngst',
    'rlnClassNumber',
    'rlnMaxValueProbDistribution',
    SCALE_LABEL,
    CLASS_PROBABILITY_LABEL,
  ];
  const particleRows = rows.map((row, i) => formatParticle(row, i, pixelSize));

  return [
    '# version 30001',
    '# Written by classify2d. _classify2dScale is the pose scale c and _classify2dClassProbability',
    '# the probability of the image\'s class; RELION has no labels for them.',
    '',
    ...formatLoop('optics', optics.labels, [optics.row]),
    '# version 30001',
    '',
    ...formatLoop('particles', particleLabels, particleRows),
  ].join('\n');
}

/** Validates the options and returns the labels and the one row of the optics table. */
function formatOptics(options: ParticleStarOptions): { labels: string[]; row: string[] } {
  const { pixelSize, imageSize } = options;
  const groupName = options.opticsGroupName ?? 'opticsGroup1';
  const voltage = options.voltage ?? DEFAULT_OPTICS.voltage;
  const sphericalAberration = options.sphericalAberration ?? DEFAULT_OPTICS.sphericalAberration;
  const amplitudeContrast = options.amplitudeContrast ?? DEFAULT_OPTICS.amplitudeContrast;
  if (!Number.isFinite(pixelSize) || pixelSize <= 0) {
    throw new StarError(
      `writeParticleStar: pixelSize is ${pixelSize}; it must be a positive number of Å per pixel`,
    );
  }
  if (imageSize !== undefined && (!Number.isSafeInteger(imageSize) || imageSize < 1)) {
    throw new StarError(
      `writeParticleStar: imageSize is ${imageSize}; it must be a positive integer of pixels`,
    );
  }
  if (!Number.isFinite(voltage) || voltage <= 0) {
    throw new StarError(`writeParticleStar: voltage is ${voltage}; it must be a positive number of kV`);
  }
  if (!Number.isFinite(sphericalAberration)) {
    throw new StarError(
      `writeParticleStar: sphericalAberration is ${sphericalAberration}; it must be a finite number of mm`,
    );
  }
  if (!(amplitudeContrast >= 0 && amplitudeContrast < 1)) {
    throw new StarError(
      `writeParticleStar: amplitudeContrast is ${amplitudeContrast}; it must be a fraction in [0, 1)`,
    );
  }

  const labels = ['rlnOpticsGroup', 'rlnOpticsGroupName', 'rlnImagePixelSize'];
  const row = ['1', quoteValue(groupName), formatFixed(pixelSize)];
  if (imageSize !== undefined) {
    labels.push('rlnImageSize');
    row.push(String(imageSize));
  }
  labels.push('rlnImageDimensionality', 'rlnVoltage', 'rlnSphericalAberration', 'rlnAmplitudeContrast');
  row.push('2', formatFixed(voltage), formatFixed(sphericalAberration), formatFixed(amplitudeContrast));
  return { labels, row };
}

function formatParticle(row: ParticleStarRow, i: number, pixelSize: number): string[] {
  const where = `writeParticleStar: row ${i} (${row.imageName})`;
  for (const field of ['psi', 'shiftX', 'shiftY', 'scale', 'weight'] as const) {
    if (!Number.isFinite(row[field])) {
      throw new StarError(`${where}: ${field} is ${row[field]}; it must be a finite number`);
    }
  }
  if (!/^\d+@\S/.test(row.imageName) || /^0+@/.test(row.imageName)) {
    throw new StarError(
      `${where}: imageName is '${row.imageName}'; it must be N@path with N the 1-based image number`,
    );
  }
  const classNumber = row.classNumber ?? 1;
  if (!Number.isSafeInteger(classNumber) || classNumber < 1) {
    throw new StarError(`${where}: classNumber is ${classNumber}; it must be an integer of at least 1`);
  }
  const classProbability = row.classProbability ?? 1;
  if (!(classProbability >= 0 && classProbability <= 1)) {
    throw new StarError(`${where}: classProbability is ${classProbability}; it must be in [0, 1]`);
  }
  return [
    quoteValue(row.imageName),
    '1',
    formatFixed(psiToRelionDegrees(row.psi)),
    // RELION's origin moves the particle to the centre, so it is minus our shift, in Å.
    formatFixed(-row.shiftX * pixelSize),
    formatFixed(-row.shiftY * pixelSize),
    String(classNumber),
    formatSignificant(row.weight),
    formatSignificant(row.scale),
    formatSignificant(classProbability),
  ];
}

/** Converts ψ in radians to RELION's `_rlnAnglePsi` in degrees, same sign, in (−180, 180]. */
export function psiToRelionDegrees(psi: number): number {
  let degrees = ((psi * 180) / Math.PI) % 360;
  if (degrees > 180) degrees -= 360;
  if (degrees <= -180) degrees += 360;
  return degrees;
}

/** Converts RELION's `_rlnOriginXAngst`/`_rlnOriginYAngst` (Å) to this package's shift, pixels. */
export function relionOriginToShift(originAngst: number, pixelSize: number): number {
  return -originAngst / pixelSize;
}

function formatLoop(block: string, labels: string[], rows: string[][]): string[] {
  return [
    `data_${block}`,
    '',
    'loop_',
    ...labels.map((label, i) => `_${label} #${i + 1}`),
    ...rows.map((row) => row.join(' ')),
    '',
  ];
}

function formatFixed(value: number): string {
  const text = value.toFixed(6);
  // −0.000000 reads back as 0; write it without the sign.
  return /^-0\.0+$/.test(text) ? text.slice(1) : text;
}

function formatSignificant(value: number): string {
  return String(Number(value.toPrecision(9)));
}

/** Quotes a value that a STAR reader would otherwise split or take for syntax. */
function quoteValue(value: string): string {
  if (value === '' || /[\s#'"]/.test(value) || /^(data_|loop_|_)/.test(value)) {
    if (/'(\s|$)/.test(value)) {
      if (/"(\s|$)/.test(value)) {
        throw new StarError(`writeParticleStar: value ${value} contains both quote characters; rename it`);
      }
      return `"${value}"`;
    }
    return `'${value}'`;
  }
  return value;
}
