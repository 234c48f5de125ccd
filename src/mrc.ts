/**
 * Reads and writes MRC2014 files: image stacks (nz images of nx × ny pixels) and volumes.
 *
 * Layout of the 1024-byte main header, as byte offsets from 0. Every field is a 32-bit word
 * in the file's byte order unless noted. Source: the MRC2014 specification, Cheng et al.,
 * J. Struct. Biol. (2015), doi:10.1016/j.jsb.2015.04.002.
 *
 * | byte    | field                   | contents                                                      |
 * | ------- | ----------------------- | ------------------------------------------------------------- |
 * | 0–8     | nx ny nz                | int32 columns, rows, sections (images of a stack)             |
 * | 12      | mode                    | int32 0 int8, 1 int16, 2 float32, 6 uint16, 12 float16        |
 * | 16–24   | nxstart nystart nzstart | int32 index of the first column, row, section                 |
 * | 28–36   | mx my mz                | int32 sampling: grid intervals along the cell                 |
 * | 40–48   | cella                   | float32 cell lengths, Å                                       |
 * | 52–60   | cellb                   | float32 cell angles, degrees                                  |
 * | 64–72   | mapc mapr maps          | int32 axis of columns, rows, sections (1 2 3 = x y z)         |
 * | 76–84   | dmin dmax dmean         | float32 density statistics                                    |
 * | 88      | ispg                    | int32 space group: 0 image or image stack, 1 volume           |
 * | 92      | nsymbt                  | int32 bytes of extended header after the main header          |
 * | 104     | exttyp                  | 4 ASCII characters naming the extended header ('FEI1', …)     |
 * | 108     | nversion                | int32 format version, 20140 for MRC2014                       |
 * | 152     | IMOD stamp              | int32 1146047817 in files that IMOD wrote                     |
 * | 156     | IMOD flags              | int32, bit 0 set: mode 0 bytes are signed                     |
 * | 196–204 | origin                  | float32 origin, Å                                             |
 * | 208     | map                     | 4 ASCII characters 'MAP '                                     |
 * | 212     | machst                  | machine stamp: 0x44 0x44 or 0x44 0x41 little, 0x11 0x11 big   |
 * | 216     | rms                     | float32 RMS deviation of the densities from dmean             |
 * | 220     | nlabl                   | int32 labels in use                                           |
 * | 224     | labels                  | 10 labels of 80 ASCII characters                              |
 *
 * The data start at byte 1024 + nsymbt, x fastest, then y, then z.
 */
import { isConstant } from './metrics.js';


/** Bytes in the main header. */
export const MRC_HEADER_BYTES = 1024;

/** Value of the IMOD stamp at byte 152. */
export const IMOD_STAMP = 1146047817;

/** MRC2014 format version written at byte 108. */
export const MRC_VERSION = 20140;

const LABEL_COUNT = 10;
const LABEL_LENGTH = 80;
const LABELS_OFFSET = 224;

/** Modes that readMrc decodes, with their bytes per value. */
const MODE_BYTES: Readonly<Record<number, number>> = { 0: 1, 1: 2, 2: 4, 6: 2, 12: 2 };

/**
 * Modes defined by MRC2014 and IMOD, including the complex modes 3 and 4, IMOD's RGB mode 16
 * and packed 4-bit mode 101 that readMrc rejects. A header is plausible in a byte order only
 * with one of these.
 */
const KNOWN_MODES = new Set([0, 1, 2, 3, 4, 6, 12, 16, 101]);

/**
 * Largest nx, ny or nz of a plausible header. It bounds the guess of the byte order only:
 * a byte-swapped small count (64 reads as 1073741824) exceeds it, real stacks do not.
 */
const MAX_PLAUSIBLE_COUNT = 2 ** 24;

export type Endianness = 'little' | 'big';

export interface Vector3 {
  x: number;
  y: number;
  z: number;
}

/** Density statistics as stored in the header, which may be stale or unset. */
export interface MrcStats {
  min: number;
  max: number;
  mean: number;
  /** RMS deviation from the mean. */
  rms: number;
}

/** The main header's fields, decoded in the file's byte order. */
export interface MrcHeader {
  nx: number;
  ny: number;
  nz: number;
  mode: number;
  /** nxstart, nystart, nzstart. */
  start: Vector3;
  /** mx, my, mz: grid intervals along the cell. */
  sampling: Vector3;
  /** cella: cell lengths, Å. */
  cell: Vector3;
  /** cellb: cell angles, degrees. */
  cellAngles: { alpha: number; beta: number; gamma: number };
  /** mapc, mapr, maps: the axis (1 x, 2 y, 3 z) of columns, rows and sections. */
  axes: { column: number; row: number; section: number };
  /** Pixel size along x, Å/pixel: cella.x / mx; null where either is 0 or the ratio is not finite. */
  pixelSize: number | null;
  ispg: number;
  /** Bytes of extended header between the main header and the data. */
  nsymbt: number;
  /** Extended header type with trailing NULs and spaces removed; '' where unset. */
  exttyp: string;
  nversion: number;
  /** Origin, Å. */
  origin: Vector3;
  /** The first nlabl labels, trailing NULs and spaces removed. */
  labels: string[];
  endianness: Endianness;
  /** dmin, dmax, dmean, rms as stored; readMrc never uses them. */
  stats: MrcStats;
  /** Whether mode 0 bytes were read as signed int8. */
  signedBytes: boolean;
}

export interface MrcFile {
  /** The name given to readMrc, used in later error messages. */
  name: string;
  header: MrcHeader;
  /** nx·ny·nz values, x fastest, then y, then z (the image index of a stack). */
  data: Float32Array;
  /** Problems that did not stop the read, such as trailing bytes or a guessed byte order. */
  warnings: string[];
}

/** An error in an MRC file's contents or in the arguments of writeMrc. */
export class MrcError extends Error {
  override name = 'MrcError';
}

/**
 * Decodes an MRC file into its header and its values as float32.
 * Extended headers of any exttyp are skipped, not parsed.
 * @param name file name for messages
 * @throws MrcError naming the file, the field and its value, for an unsupported mode,
 *   a non-positive nx, ny or nz, a negative nsymbt, or a file shorter than its header and data
 */
export function readMrc(bytes: Uint8Array, name = 'MRC data'): MrcFile {
  const warnings: string[] = [];
  requireLength(bytes.length, MRC_HEADER_BYTES, name, 'the 1024-byte header');
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const littleEndian = detectByteOrder(view, name, warnings) === 'little';
  const header = decodeHeader(view, littleEndian);
  validateHeader(header, name);
  checkHeaderMarkers(bytes, header, name, warnings);

  const bytesPerValue = MODE_BYTES[header.mode];
  const dataOffset = MRC_HEADER_BYTES + header.nsymbt;
  // BigInt, because nx·ny·nz·bytes of a corrupt header can exceed 2^53.
  const dataBytes = BigInt(header.nx) * BigInt(header.ny) * BigInt(header.nz) * BigInt(bytesPerValue);
  const expected = BigInt(dataOffset) + dataBytes;
  // Checked before the output array is allocated, so a header that claims gigabytes fails at once.
  requireLength(bytes.length, expected, name, describeLayout(header, bytesPerValue));
  const extra = BigInt(bytes.length) - expected;
  if (extra > 0n) {
    const unit = extra === 1n ? 'byte' : 'bytes';
    warnings.push(
      `${name}: ${extra} extra ${unit} after the ${expected} bytes of header and data were ignored`,
    );
  }

  const data = decodeValues(view, dataOffset, header, littleEndian);
  return { name, header, data, warnings };
}

function requireLength(actual: number, expected: number | bigint, name: string, layout: string): void {
  if (BigInt(actual) < BigInt(expected)) {
    throw new MrcError(
      `${name}: file too short: expected ${expected} bytes for ${layout}, ` +
        `but the file has ${actual} bytes. Check that the file was copied completely.`,
    );
  }
}

function describeLayout(header: MrcHeader, bytesPerValue: number): string {
  const { nx, ny, nz, nsymbt, mode } = header;
  return (
    `the header (1024 bytes), extended header (nsymbt ${nsymbt} bytes) and data ` +
    `(${nx} × ${ny} × ${nz} values of mode ${mode}, ${bytesPerValue} bytes each)`
  );
}

/**
 * Returns the byte order from the machine stamp at bytes 212–213. With an unusual stamp
 * (old writers leave it zero), it guesses from which order gives a plausible header, and warns.
 */
function detectByteOrder(view: DataView, name: string, warnings: string[]): Endianness {
  const first = view.getUint8(212);
  const second = view.getUint8(213);
  if (first === 0x44 && (second === 0x44 || second === 0x41)) return 'little';
  if (first === 0x11 && second === 0x11) return 'big';

  const stamp = `0x${hexByte(first)} 0x${hexByte(second)}`;
  const little = isPlausibleHeader(view, true);
  const big = isPlausibleHeader(view, false);
  if (!little && !big) {
    throw new MrcError(
      `${name}: not an MRC file: the machine stamp at byte 212 is ${stamp}, and the header is ` +
        `implausible in both byte orders (nx ny nz mode read ${describeDims(view, true)} little-endian, ` +
        `${describeDims(view, false)} big-endian). Check that the file is an MRC file.`,
    );
  }
  const order: Endianness = little ? 'little' : 'big';
  const reason = little && big
    ? 'both byte orders give a plausible header'
    : `only ${order}-endian gives a plausible header`;
  warnings.push(
    `${name}: unusual machine stamp ${stamp} at byte 212; read as ${order}-endian because ${reason}`,
  );
  return order;
}

function isPlausibleHeader(view: DataView, littleEndian: boolean): boolean {
  for (const offset of [0, 4, 8]) {
    const count = view.getInt32(offset, littleEndian);
    if (count < 1 || count > MAX_PLAUSIBLE_COUNT) return false;
  }
  return KNOWN_MODES.has(view.getInt32(12, littleEndian)) && view.getInt32(92, littleEndian) >= 0;
}

function describeDims(view: DataView, littleEndian: boolean): string {
  return [0, 4, 8, 12].map((offset) => view.getInt32(offset, littleEndian)).join(' ');
}

function hexByte(value: number): string {
  return value.toString(16).padStart(2, '0').toUpperCase();
}

function decodeHeader(view: DataView, littleEndian: boolean): MrcHeader {
  const int = (offset: number) => view.getInt32(offset, littleEndian);
  const float = (offset: number) => view.getFloat32(offset, littleEndian);
  const sampling = { x: int(28), y: int(32), z: int(36) };
  const cell = { x: float(40), y: float(44), z: float(48) };
  const mode = int(12);
  return {
    nx: int(0),
    ny: int(4),
    nz: int(8),
    mode,
    start: { x: int(16), y: int(20), z: int(24) },
    sampling,
    cell,
    cellAngles: { alpha: float(52), beta: float(56), gamma: float(60) },
    axes: { column: int(64), row: int(68), section: int(72) },
    pixelSize: pixelSizeOf(cell.x, sampling.x),
    ispg: int(88),
    nsymbt: int(92),
    exttyp: trimText(readAscii(view, 104, 4)),
    nversion: int(108),
    origin: { x: float(196), y: float(200), z: float(204) },
    labels: decodeLabels(view, int(220)),
    endianness: littleEndian ? 'little' : 'big',
    stats: { min: float(76), max: float(80), mean: float(84), rms: float(216) },
    signedBytes: mode === 0 && isSignedByteMode(int(152), int(156)),
  };
}

function pixelSizeOf(cellLength: number, intervals: number): number | null {
  if (cellLength === 0 || intervals === 0) return null;
  const size = cellLength / intervals;
  return Number.isFinite(size) ? size : null;
}

/**
 * Mode 0 is signed int8 in MRC2014. IMOD writes unsigned bytes and marks them with its stamp
 * and flags bit 0 clear, so only that combination reads as uint8.
 */
function isSignedByteMode(imodStamp: number, imodFlags: number): boolean {
  return imodStamp !== IMOD_STAMP || (imodFlags & 1) !== 0;
}

function readAscii(view: DataView, offset: number, length: number): string {
  let text = '';
  for (let i = 0; i < length; i++) text += String.fromCharCode(view.getUint8(offset + i));
  return text;
}

function trimText(text: string): string {
  return text.replace(/[\0 ]+$/, '');
}

function decodeLabels(view: DataView, nlabl: number): string[] {
  const count = Math.min(Math.max(nlabl, 0), LABEL_COUNT);
  const labels: string[] = [];
  for (let i = 0; i < count; i++) {
    labels.push(trimText(readAscii(view, LABELS_OFFSET + i * LABEL_LENGTH, LABEL_LENGTH)));
  }
  return labels;
}

function validateHeader(header: MrcHeader, name: string): void {
  if (MODE_BYTES[header.mode] === undefined) {
    throw new MrcError(
      `${name}: unsupported mode ${header.mode} in header field mode; ` +
        'readMrc reads modes 0 (int8), 1 (int16), 2 (float32), 6 (uint16) and 12 (float16). ' +
        'Convert the file to mode 2 (float32) first, e.g. with IMOD newstack -mode 2.',
    );
  }
  const counts = [
    ['nx', header.nx],
    ['ny', header.ny],
    ['nz', header.nz],
  ] as const;
  for (const [field, value] of counts) {
    if (value < 1) {
      throw new MrcError(
        `${name}: invalid header field ${field} = ${value}; it must be a positive count. ` +
          'Check that the file is an MRC file and is not corrupted.',
      );
    }
  }
  if (header.nsymbt < 0) {
    throw new MrcError(
      `${name}: invalid header field nsymbt = ${header.nsymbt}; the extended header size must be ` +
        '0 or more bytes. Check that the file is not corrupted.',
    );
  }
}

function checkHeaderMarkers(bytes: Uint8Array, header: MrcHeader, name: string, warnings: string[]): void {
  const map = String.fromCharCode(...bytes.subarray(208, 212));
  if (map !== 'MAP ') {
    warnings.push(
      `${name}: no 'MAP ' at byte 208 (found ${JSON.stringify(map)}); the header is read as MRC anyway`,
    );
  }
  const { column, row, section } = header.axes;
  const standard = column === 1 && row === 2 && section === 3;
  const unset = column === 0 && row === 0 && section === 0;
  if (!standard && !unset) {
    warnings.push(
      `${name}: header fields mapc mapr maps are ${column} ${row} ${section}, not 1 2 3; ` +
        'the data are returned in file order, columns fastest, without reordering the axes',
    );
  }
}

function decodeValues(
  view: DataView,
  offset: number,
  header: MrcHeader,
  littleEndian: boolean,
): Float32Array {
  const count = header.nx * header.ny * header.nz;
  const data = new Float32Array(count);
  switch (header.mode) {
    case 0:
      if (header.signedBytes) for (let i = 0; i < count; i++) data[i] = view.getInt8(offset + i);
      else for (let i = 0; i < count; i++) data[i] = view.getUint8(offset + i);
      break;
    case 1:
      for (let i = 0; i < count; i++) data[i] = view.getInt16(offset + 2 * i, littleEndian);
      break;
    case 2:
      for (let i = 0; i < count; i++) data[i] = view.getFloat32(offset + 4 * i, littleEndian);
      break;
    case 6:
      for (let i = 0; i < count; i++) data[i] = view.getUint16(offset + 2 * i, littleEndian);
      break;
    case 12:
      for (let i = 0; i < count; i++) data[i] = decodeFloat16(view.getUint16(offset + 2 * i, littleEndian));
      break;
  }
  return data;
}

/**
 * Decodes an IEEE 754 binary16 word exactly, subnormals, ±0, ±Inf and NaN included.
 * Every binary16 value is exact in float32, so nothing is rounded.
 */
export function decodeFloat16(word: number): number {
  const sign = word & 0x8000 ? -1 : 1;
  const exponent = (word >> 10) & 0x1f;
  const fraction = word & 0x3ff;
  if (exponent === 0) return sign * fraction * 2 ** -24;
  if (exponent === 0x1f) return fraction === 0 ? sign * Infinity : NaN;
  return sign * (1 + fraction / 1024) * 2 ** (exponent - 15);
}

export interface WriteMrcOptions {
  /** Pixel size, Å/pixel; cella is (nx, ny, 1) times it. Unset writes cella 0, read back as null. */
  pixelSize?: number;
  /** At most 10 labels of at most 80 printable ASCII characters. */
  labels?: string[];
}

/**
 * Encodes nz images of nx × ny pixels (x fastest) as a little-endian MRC2014 file of mode 2
 * (float32), with the statistics computed in float64 from the float32 values written.
 * The header's ispg is 0, the MRC2014 value for an image or image stack, so readers treat
 * the sections as separate images and not as one volume.
 * @throws MrcError for non-positive sizes, a length other than nx·ny·nz, an invalid pixel size
 *   or label, or a non-finite value, which it names by index
 */
export function writeMrc(
  data: ArrayLike<number>,
  nx: number,
  ny: number,
  nz: number,
  options: WriteMrcOptions = {},
): Uint8Array {
  validateWriteArguments(data, nx, ny, nz, options);
  const values = toFiniteFloat32(data, nx, ny);
  const bytes = new Uint8Array(MRC_HEADER_BYTES + 4 * values.length);
  const view = new DataView(bytes.buffer);
  writeHeader(view, nx, ny, nz, options.pixelSize ?? 0, statsOf(values));
  writeLabels(bytes, view, options.labels ?? []);
  for (let i = 0; i < values.length; i++) view.setFloat32(MRC_HEADER_BYTES + 4 * i, values[i], true);
  return bytes;
}

function validateWriteArguments(
  data: ArrayLike<number>,
  nx: number,
  ny: number,
  nz: number,
  options: WriteMrcOptions,
): void {
  for (const [field, value] of [['nx', nx], ['ny', ny], ['nz', nz]] as const) {
    if (!Number.isInteger(value) || value < 1 || value > 2 ** 31 - 1) {
      throw new MrcError(`writeMrc: ${field} is ${value}; it must be a positive 32-bit integer`);
    }
  }
  if (data.length !== nx * ny * nz) {
    throw new MrcError(
      `writeMrc: data has ${data.length} values, but nx·ny·nz = ${nx} × ${ny} × ${nz} = ` +
        `${nx * ny * nz}; pass nz images of nx × ny pixels`,
    );
  }
  const { pixelSize } = options;
  if (pixelSize !== undefined && !(Number.isFinite(pixelSize) && pixelSize > 0)) {
    throw new MrcError(`writeMrc: pixelSize is ${pixelSize}; it must be a positive number of Å per pixel`);
  }
  validateLabels(options.labels ?? []);
}

function validateLabels(labels: string[]): void {
  if (labels.length > LABEL_COUNT) {
    throw new MrcError(
      `writeMrc: ${labels.length} labels given, but an MRC header has room for ${LABEL_COUNT}; ` +
        'pass fewer labels',
    );
  }
  labels.forEach((label, index) => {
    if (label.length > LABEL_LENGTH || !/^[\x20-\x7e]*$/.test(label)) {
      throw new MrcError(
        `writeMrc: label ${index} (${JSON.stringify(label)}) is invalid; ` +
          `a label is at most ${LABEL_LENGTH} printable ASCII characters`,
      );
    }
  });
}

function toFiniteFloat32(data: ArrayLike<number>, nx: number, ny: number): Float32Array {
  const values = Float32Array.from(data);
  for (let i = 0; i < values.length; i++) {
    if (!Number.isFinite(values[i])) {
      const pixel = i % (nx * ny);
      throw new MrcError(
        `writeMrc: data[${i}] is ${data[i]} (image ${Math.floor(i / (nx * ny))}, ` +
          `x ${pixel % nx}, y ${Math.floor(pixel / nx)}) after rounding to float32; ` +
          'MRC values must be finite, so replace or drop that image first',
      );
    }
  }
  return values;
}

/** Statistics of the values in float64; rms is the RMS deviation from the mean, as MRC2014 defines it. */
function statsOf(values: Float32Array): MrcStats {
  let min = Infinity;
  let max = -Infinity;
  let sum = 0;
  for (const value of values) {
    if (value < min) min = value;
    if (value > max) max = value;
    sum += value;
  }
  const mean = sum / values.length;
  let squares = 0;
  for (const value of values) squares += (value - mean) ** 2;
  return { min, max, mean, rms: Math.sqrt(squares / values.length) };
}

function writeHeader(
  view: DataView,
  nx: number,
  ny: number,
  nz: number,
  pixelSize: number,
  stats: MrcStats,
): void {
  const int = (offset: number, value: number) => view.setInt32(offset, value, true);
  const float = (offset: number, value: number) => view.setFloat32(offset, value, true);
  // An image stack (ispg 0) has mz = 1, as MRC2014 sets for stacks and mrcfile and RELION write.
  const sampling = [nx, ny, 1];
  [nx, ny, nz].forEach((count, axis) => {
    int(4 * axis, count);
    int(28 + 4 * axis, sampling[axis]);
    float(40 + 4 * axis, sampling[axis] * pixelSize);
    float(52 + 4 * axis, 90);
    int(64 + 4 * axis, axis + 1);
  });
  int(12, 2);
  float(76, stats.min);
  float(80, stats.max);
  float(84, stats.mean);
  int(88, 0);
  int(92, 0);
  int(108, MRC_VERSION);
  [0x4d, 0x41, 0x50, 0x20].forEach((byte, i) => view.setUint8(208 + i, byte));
  [0x44, 0x44, 0x00, 0x00].forEach((byte, i) => view.setUint8(212 + i, byte));
  float(216, stats.rms);
}

function writeLabels(bytes: Uint8Array, view: DataView, labels: string[]): void {
  view.setInt32(220, labels.length, true);
  labels.forEach((label, index) => {
    // Each label is padded with spaces to 80 characters; unused label slots stay zero.
    const start = LABELS_OFFSET + index * LABEL_LENGTH;
    bytes.fill(0x20, start, start + LABEL_LENGTH);
    for (let i = 0; i < label.length; i++) bytes[start + i] = label.charCodeAt(i);
  });
}

/** A stack of square images, [count, size, size]. */
export interface ImageStack {
  images: Float32Array;
  size: number;
}

/**
 * Returns the file's data as a stack of nz square images.
 * @throws MrcError naming nx and ny where the images are not square
 */
export function imagesOf(file: MrcFile): ImageStack {
  const { nx, ny } = file.header;
  if (nx !== ny) {
    throw new MrcError(
      `${file.name}: images are ${nx} × ${ny} pixels (header fields nx ${nx}, ny ${ny}); ` +
        'the reconstruction needs square images, so crop or pad them to equal nx and ny',
    );
  }
  return { images: file.data, size: nx };
}

export interface CheckImagesOptions {
  /** Drop images with a NaN or infinite pixel instead of raising. Default false. */
  dropNonFinite?: boolean;
}

export interface CheckedImages {
  /** The kept images, nx·ny values each, in file order; file.data itself where none was dropped. */
  data: Float32Array;
  /** Original index z of each kept image. */
  kept: number[];
  /** Original indices of images dropped for a non-finite pixel. */
  dropped: number[];
  /** Original indices of kept images whose pixels are all equal, which carry no signal. */
  constant: number[];
}

/**
 * Checks each image of the file for non-finite pixels and constant values.
 * @throws MrcError naming the first image (z) with a NaN or infinite pixel, unless
 *   options.dropNonFinite is set
 */
export function checkImages(file: MrcFile, options: CheckImagesOptions = {}): CheckedImages {
  const { nx, ny, nz } = file.header;
  const pixels = nx * ny;
  const kept: number[] = [];
  const dropped: number[] = [];
  const constant: number[] = [];
  for (let z = 0; z < nz; z++) {
    const image = file.data.subarray(z * pixels, (z + 1) * pixels);
    const bad = image.findIndex((value) => !Number.isFinite(value));
    if (bad >= 0) {
      if (!options.dropNonFinite) throw nonFiniteError(file.name, z, bad, nx, image[bad]);
      dropped.push(z);
      continue;
    }
    kept.push(z);
    if (isConstant(image)) constant.push(z);
  }
  return { data: gatherImages(file.data, pixels, kept), kept, dropped, constant };
}

function nonFiniteError(name: string, z: number, pixel: number, nx: number, value: number): MrcError {
  return new MrcError(
    `${name}: image ${z} (z = ${z}) has a non-finite pixel ${value} at x ${pixel % nx}, ` +
      `y ${Math.floor(pixel / nx)}; fix the stack or pass { dropNonFinite: true } to drop such images`,
  );
}

function gatherImages(data: Float32Array, pixels: number, indices: number[]): Float32Array {
  if (indices.length * pixels === data.length) return data;
  const out = new Float32Array(indices.length * pixels);
  indices.forEach((z, i) => out.set(data.subarray(z * pixels, (z + 1) * pixels), i * pixels));
  return out;
}
