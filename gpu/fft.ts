/**
 * Batched 2-D FFTs of L × L complex blocks, L = 2^a 3^b 5^c, for the shift correlations of
 * the FFT path (`correlate.ts`).
 *
 * A 2-D transform is two dispatches, one over rows and one over columns, and each can be
 * limited to the lines that are nonzero on input or read on output. One invocation
 * transforms one line in private memory: an in-place decimation-in-time FFT with radix-4,
 * 2, 3 and 5 stages after a load in digit-reversed order. No workgroup barriers: on
 * SwiftShader, which runs the kernels on the CPU, a barrier per stage made the transform
 * about 7 times slower. The twiddle factors e^(−2πik/L) come from a table computed in
 * float64 on the host, since WGSL promises cos and sin only to 2⁻¹¹. The inverse uses
 * conjugate twiddles and is not normalised: it returns L² times the inverse transform,
 * and the kernels that read it divide by L².
 *
 * A block whose flag is 0 is left as it is, so the gradient path skips blocks whose
 * responsibilities are all zero.
 *
 * NOTE: measured on SwiftShader only. On a hardware GPU a private line of L complex values
 * may spill to slow memory, where a workgroup-shared transform could be the faster one.
 */
import { PARAMS_BINDING, type KernelSpec } from './kernel.js';

/** Largest L: one invocation keeps a line of L complex values in private memory. */
export const MAX_FFT_SIZE = 1024;

/** Lines per workgroup: one invocation transforms one line. */
export const LINE_WORKGROUP = 64;

/** Radices of the butterfly stages. */
const RADICES = [4, 2, 3, 5] as const;

/** Smallest L = 2^a 3^b 5^c ≥ n, L ≥ 2: the FFT sizes the kernels take. */
export function fftSizeFor(n: number): number {
  for (let size = Math.max(2, Math.ceil(n)); ; size++) {
    if (radicesOf(size)) return size;
  }
}

/** Returns the stage radices of an FFT of length `size`, first stage first, or undefined for another prime factor. */
export function radicesOf(size: number): number[] | undefined {
  const radices: number[] = [];
  let rest = size;
  for (const radix of RADICES) {
    while (rest % radix === 0) {
      radices.push(radix);
      rest /= radix;
    }
  }
  return rest === 1 ? radices : undefined;
}

/**
 * Returns the input order of the in-place decimation-in-time FFT: position j of the
 * line starts as x[order[j]]. The last stage of radix r combines r sub-transforms of length L/r, the
 * t-th of which transforms x[t + r·i] and sits at [t·L/r, (t + 1)·L/r).
 */
export function inputOrder(radices: readonly number[]): Uint32Array<ArrayBuffer> {
  let order = new Uint32Array([0]);
  for (const radix of radices) {
    const span = order.length;
    const next = new Uint32Array(span * radix);
    for (let t = 0; t < radix; t++) {
      for (let i = 0; i < span; i++) next[t * span + i] = t + radix * order[i];
    }
    order = next;
  }
  return order;
}

/** Twiddles (cos, −sin)(2πk/L) for k < L, interleaved, rounded from float64. */
export function twiddles(size: number): Float32Array<ArrayBuffer> {
  const table = new Float32Array(2 * size);
  for (let k = 0; k < size; k++) {
    const angle = (2 * Math.PI * k) / size;
    table[2 * k] = Math.cos(angle);
    table[2 * k + 1] = -Math.sin(angle);
  }
  return table;
}

export type FftAxis = 'rows' | 'columns';
export type FftDirection = 'forward' | 'inverse';
/**
 * Lines a dispatch transforms. 'all' is every line, 'extended' the lines of the extended
 * grid (indices [0, N + D) and [L − D, L)), 'shifts' those of the shift nodes ([0, D] and
 * [L − D, L)). The lines left out are zero on input or not read on output.
 */
export type FftLines = 'all' | 'extended' | 'shifts';

/** Lines per block of each kind of line set. */
export function lineCount(lines: FftLines, fftSize: number, size: number, reach: number): number {
  if (lines === 'all') return fftSize;
  return lines === 'extended' ? size + 2 * reach : 2 * reach + 1;
}

function stageWgsl(radix: number, span: number): string {
  const length = span * radix;
  const loads = Array.from({ length: radix }, (_, t) =>
    t === 0 ? `    let z0 = values[base];` : `    let z${t} = twiddled(values[base + ${t * span}u], ${t}u * position * (L / ${length}u));`,
  ).join('\n');
  const stores: Record<number, string> = {
    2: `    values[base] = z0 + z1;
    values[base + ${span}u] = z0 - z1;`,
    4: `    let s02 = z0 + z2;
    let d02 = z0 - z2;
    let s13 = z1 + z3;
    let d13 = rotate(z1 - z3);
    values[base] = s02 + s13;
    values[base + ${span}u] = d02 + d13;
    values[base + ${2 * span}u] = s02 - s13;
    values[base + ${3 * span}u] = d02 - d13;`,
    3: `    let t1 = z0 - 0.5 * (z1 + z2);
    let t2 = SIN3 * rotate(z1 - z2);
    values[base] = z0 + z1 + z2;
    values[base + ${span}u] = t1 + t2;
    values[base + ${2 * span}u] = t1 - t2;`,
    5: `    let p14 = z1 + z4;
    let p23 = z2 + z3;
    let m14 = z1 - z4;
    let m23 = z2 - z3;
    let a1 = z0 + COS5A * p14 + COS5B * p23;
    let a2 = z0 + COS5B * p14 + COS5A * p23;
    let b1 = rotate(SIN5A * m14 + SIN5B * m23);
    let b2 = rotate(SIN5B * m14 - SIN5A * m23);
    values[base] = z0 + p14 + p23;
    values[base + ${span}u] = a1 + b1;
    values[base + ${2 * span}u] = a2 + b2;
    values[base + ${3 * span}u] = a2 - b2;
    values[base + ${4 * span}u] = a1 - b1;`,
  };
  return `  // radix ${radix}, sub-transforms of length ${length}
  for (var start = 0u; start < L; start += ${length}u) {
    for (var position = 0u; position < ${span}u; position++) {
    let base = start + position;
${loads}
${stores[radix]}
    }
  }`;
}

/**
 * Builds the line-FFT kernel for blocks of side `fftSize` = 2^a 3^b 5^c, along one axis,
 * in one direction, over one set of lines of blocks [0, P.blockCount) of `blocks`.
 */
export function fftKernel(fftSize: number, axis: FftAxis, direction: FftDirection, lines: FftLines = 'all'): KernelSpec {
  const radices = radicesOf(fftSize);
  if (!radices || fftSize < 2 || fftSize > MAX_FFT_SIZE) {
    throw new RangeError(`FFT size ${fftSize} is invalid: it must be 2^a 3^b 5^c in [2, ${MAX_FFT_SIZE}]`);
  }

  // Rows are contiguous; a column steps by L elements.
  const stride = axis === 'rows' ? 1 : fftSize;
  const lineStart = axis === 'rows' ? 'line * L' : 'line';
  const sign = direction === 'forward' ? '1.0' : '-1.0';
  const lineMap = {
    all: 'return l;',
    extended: 'if (l < P.size + P.reach) { return l; }\n  return l + L - (P.size + 2u * P.reach);',
    shifts: 'if (l <= P.reach) { return l; }\n  return l + L - (2u * P.reach + 1u);',
  }[lines];
  const lineTotal = { all: 'L', extended: '(P.size + 2u * P.reach)', shifts: '(2u * P.reach + 1u)' }[lines];
  let span = 1;
  const stages: string[] = [];
  for (const radix of radices) {
    stages.push(stageWgsl(radix, span));
    span *= radix;
  }
  return {
    name: `fft${fftSize}-${axis}-${direction}-${lines}`,
    workgroupSize: LINE_WORKGROUP,
    bindings: [
      PARAMS_BINDING,
      { name: 'twiddle', access: 'read', type: 'array<vec2f>' }, // [L] (cos, −sin)(2πk/L)
      { name: 'order', access: 'read', type: 'array<u32>' }, // [L] input order of the in-place FFT
      { name: 'flags', access: 'read', type: 'array<u32>' }, // [capacity] 1: transform the block
      { name: 'blocks', access: 'write', type: 'array<vec2f>' }, // [capacity, L, L]
    ],
    body: /* wgsl */ `
const L: u32 = ${fftSize}u;
const STRIDE: u32 = ${stride}u;
// 1 for the forward transform; -1 conjugates every twiddle for the inverse.
const SIGN: f32 = ${sign};
const SIN3: f32 = ${Math.sqrt(3) / 2};
const COS5A: f32 = ${Math.cos((2 * Math.PI) / 5)};
const COS5B: f32 = ${Math.cos((4 * Math.PI) / 5)};
const SIN5A: f32 = ${Math.sin((2 * Math.PI) / 5)};
const SIN5B: f32 = ${Math.sin((4 * Math.PI) / 5)};

// z times e^(-2 pi i k / L), or its conjugate for the inverse.
fn twiddled(z: vec2f, k: u32) -> vec2f {
  let w = twiddle[k % L];
  let wi = SIGN * w.y;
  return vec2f(z.x * w.x - z.y * wi, z.x * wi + z.y * w.x);
}

// z times -i, or +i for the inverse.
fn rotate(z: vec2f) -> vec2f {
  return SIGN * vec2f(z.y, -z.x);
}

fn lineOf(l: u32) -> u32 {
  ${lineMap}
}

fn main(
  @builtin(workgroup_id) wg: vec3u,
  @builtin(num_workgroups) groups: vec3u,
  @builtin(local_invocation_index) lane: u32,
) {
  let lines = ${lineTotal};
  let index = (wg.y * groups.x + wg.x) * WG + lane;
  let block = index / lines;
  if (block >= P.blockCount) {
    return;
  }
  if (flags[block] == 0u) {
    return;
  }
  let line = lineOf(index % lines);
  let origin = block * L * L + ${lineStart};
  var values: array<vec2f, L>;
  for (var i = 0u; i < L; i++) {
    values[i] = blocks[origin + order[i] * STRIDE];
  }
${stages.join('\n')}
  for (var i = 0u; i < L; i++) {
    blocks[origin + i * STRIDE] = values[i];
  }
}
`,
  };
}
