/**
 * The FFT path of the engine: the same E, γ and gradient as the reference kernels, with
 * the shift handled by cross-correlation instead of resampling every pose.
 *
 * With whole-pixel shifts d, the pose (ψ, d, c) samples the template as
 *   (R_φ θ)(q) = U(q − d),   U(y) = θ( R(−ψ)(y − o) / c + o ),
 * so one rotated and scaled template U per (image, class, rotation node, scale node),
 * a block, serves every shift. U lives on the extended grid y ∈ [−D, N − 1 + D]², D the
 * largest |shift|, because q − d leaves the box while its source may not. Then
 *
 *   E(d) = ‖X‖² + Re Σ_q Z(q) conj(A(q − d)),   Z = −2X + iκ·1_box,   A = U + i·U²/κ,
 *
 * the real part being −2⟨X, T_d U⟩ + Σ_{q in box} U(q − d)², whatever κ > 0. κ, the images'
 * RMS value, keeps both parts of Z and of A near the size of the data, because the FFT
 * mixes them and the rounding of a part far larger than the other would swamp it (with
 * κ = 1 the error grew with the cube of the data's scale). On an L × L periodic grid
 * with L ≥ N + 2D no index wraps onto another, so the sum over q is the circular
 * correlation IFFT(FFT(Z) · conj(FFT(A))) read at d.
 *
 * The gradient of Σ_d γ(d) E(d) with respect to U is −2 (H − U·W), with
 *   H(y) + iκ·W(y) = Σ_d γ(d) Z′(y + d),   Z′ = X + iκ·1_box,
 * the correlation IFFT(FFT(Z′) · conj(FFT(Γ))) of Z′ with the responsibility map Γ of the
 * block, so G_k = Σ_blocks S_ψcᵀ (H − U·W) / σ², S_ψc the bilinear resampling that made U.
 * `residualMap` forms H − U·W and `gradientGather` applies S_ψcᵀ as a gather over the
 * extended grid, as the reference gradient kernel does over the box.
 *
 * Blocks are numbered ((k · rotations + p) · scales + m) · B + b within a sub-batch, so the
 * B images of one (class, rotation, scale), a group, are neighbours. One dispatch covers
 * blocks [P.firstBlock, P.firstBlock + P.blockCount) of it, whole groups, stored from 0 in
 * `blocks` [capacity, L, L] (complex). A block index is local to that range unless named
 * `block`.
 *
 * When every image of the sub-batch has the same rotation nodes (P.sharedNodes = 1, as on the
 * full circle), the images of a group share U: it is built and transformed for the
 * group's first image only and multiplied into every image's spectrum, and the gradient
 * sums the group's spectra H + iW before the one inverse transform, residual and gather.
 */
import { PARAMS_BINDING, type KernelSpec } from './kernel.js';
import { POSE_BINDINGS, POSE_WGSL } from './pose.js';

/** 64 invocations for the element-wise kernels. */
export const ELEMENT_WORKGROUP = 64;

const ELEMENT_WGSL = /* wgsl */ `
const LL: u32 = P_FFT_AREA;

struct Block {
  b: u32,
  k: u32,
  p: u32,
  m: u32,
}

fn decodeBlock(local: u32) -> Block {
  let block = P.firstBlock + local;
  let b = block % P.images;
  let group = block / P.images;
  let m = group % P.scales;
  let p = (group / P.scales) % P.rotations;
  let k = group / (P.scales * P.rotations);
  return Block(b, k, p, m);
}

// Coordinate on the extended grid of a periodic index: i for i < N + D, i − L above,
// which is ≥ −D on the extended grid.
fn signedIndex(i: u32) -> i32 {
  if (i < P.size + P.reach) {
    return i32(i);
  }
  return i32(i) - i32(P.fftSize);
}

fn onExtendedGrid(i: u32) -> bool {
  return i < P.size + P.reach || i >= P.fftSize - P.reach;
}

fn elementIndex(wg: vec3u, groups: vec3u, lane: u32) -> u32 {
  return (wg.y * groups.x + wg.x) * WG + lane;
}
`;

function elementWgsl(fftSize: number): string {
  return ELEMENT_WGSL.replace('P_FFT_AREA', `${fftSize * fftSize}u`);
}

/** Elements of one block that an invocation of a tiled kernel visits, WG apart. */
const TILE_ELEMENTS = 8;

/** Workgroups of a tiled kernel per block of side `fftSize`: tiles of WG · TILE_ELEMENTS elements. */
export function tilesPerBlock(fftSize: number): number {
  return Math.ceil((fftSize * fftSize) / (ELEMENT_WORKGROUP * TILE_ELEMENTS));
}

/**
 * ELEMENT_WGSL and the entry point of a tiled kernel, which visits blocks
 * [0, P.blockCount) element by element: dispatch P.blockCount · tilesPerBlock(L)
 * workgroups. Each workgroup covers one tile of one block. It calls the kernel's
 * fn visitBlock(local, leader), true where the block is to be visited (leader is true
 * in one invocation per block), then fn element(local, i) for its elements i < L².
 *
 * Blocks are skipped per workgroup, before a loop, because SwiftShader 5.0 runs the
 * straight-line code after an early return for the lanes that took it (masked), and
 * skips only a loop that no lane enters. A test kernel of 24 loads per element ran over
 * 1.15 M elements (2 cores). Returning at once from every element still cost half as
 * much as computing them all, and with this layout it cost under a tenth.
 */
function tiledKernelWgsl(fftSize: number): string {
  return `${elementWgsl(fftSize)}
const TILES: u32 = ${tilesPerBlock(fftSize)}u;
const TILE_ELEMENTS: u32 = ${TILE_ELEMENTS}u;

fn main(
  @builtin(workgroup_id) wg: vec3u,
  @builtin(num_workgroups) groups: vec3u,
  @builtin(local_invocation_index) lane: u32,
) {
  let tile = wg.y * groups.x + wg.x;
  let local = tile / TILES;
  if (local >= P.blockCount) {
    return;
  }
  if (!visitBlock(local, tile % TILES == 0u && lane == 0u)) {
    return;
  }
  let first = (tile % TILES) * WG * TILE_ELEMENTS + lane;
  for (var r = 0u; r < TILE_ELEMENTS; r++) {
    let i = first + r * WG;
    if (i >= LL) {
      break;
    }
    element(local, i);
  }
}
`;
}

/** visitBlock of the tiled kernels that visit the blocks whose flag is set. */
const FLAGGED_BLOCKS_WGSL = /* wgsl */ `
fn visitBlock(local: u32, leader: bool) -> bool {
  return flags[local] != 0u;
}
`;

/** U at periodic index (ix, iy) of a block, for kernels that also include POSE_WGSL. */
const ROTATED_SAMPLE_WGSL = /* wgsl */ `
fn rotatedSample(block: Block, ix: u32, iy: u32) -> f32 {
  let pose = Pose(rotations[block.b * P.rotations + block.p], vec2f(0.0), scales[block.m]);
  let point = vec2f(f32(signedIndex(ix)), f32(signedIndex(iy)));
  return sampleTemplate(block.k, toTemplate(pose, point));
}
`;

/**
 * Z = −2X + iκ·1_box and Z′ = X + iκ·1_box of every image, zero outside the box, as
 * spectra [2B, L, L]: Z of image b at 2b, Z′ at 2b + 1. The forward FFT follows.
 */
export function spectraInputKernel(fftSize: number): KernelSpec {
  return {
    name: `spectraInput${fftSize}`,
    workgroupSize: ELEMENT_WORKGROUP,
    bindings: [
      PARAMS_BINDING,
      { name: 'images', access: 'read', type: 'array<f32>' }, // [B, N, N]
      { name: 'spectra', access: 'write', type: 'array<vec2f>' }, // [2B, L, L]
    ],
    body: /* wgsl */ `
${elementWgsl(fftSize)}

fn main(
  @builtin(workgroup_id) wg: vec3u,
  @builtin(num_workgroups) groups: vec3u,
  @builtin(local_invocation_index) lane: u32,
) {
  let e = elementIndex(wg, groups, lane);
  if (e >= 2u * P.images * LL) {
    return;
  }
  let slot = e / LL;
  let b = slot / 2u;
  let i = e % LL;
  let x = i % P.fftSize;
  let y = i / P.fftSize;
  var value = vec2f(0.0);
  if (x < P.size && y < P.size) {
    let pixel = images[b * P.pixels + y * P.size + x];
    if (slot % 2u == 0u) {
      value = vec2f(-2.0 * pixel, P.kappa);
    } else {
      value = vec2f(pixel, P.kappa);
    }
  }
  spectra[e] = value;
}
`,
  };
}

/**
 * Builds A = U + i·U²/κ of every block on the extended grid (zero elsewhere) and sets each
 * block's flag; with P.sharedNodes only the first block of each group, flagging the others 0.
 */
export function rotatedTemplatesKernel(fftSize: number): KernelSpec {
  return {
    name: `rotatedTemplates${fftSize}`,
    workgroupSize: ELEMENT_WORKGROUP,
    bindings: [
      PARAMS_BINDING,
      ...POSE_BINDINGS,
      { name: 'flags', access: 'write', type: 'array<u32>' }, // [capacity]
      { name: 'blocks', access: 'write', type: 'array<vec2f>' }, // [capacity, L, L]
    ],
    body: /* wgsl */ `
${POSE_WGSL}
${tiledKernelWgsl(fftSize)}
${ROTATED_SAMPLE_WGSL}

// Every block is built unless the images share their nodes: then only a group's first.
fn visitBlock(local: u32, leader: bool) -> bool {
  let first = P.sharedNodes == 0u || decodeBlock(local).b == 0u;
  if (leader) {
    flags[local] = select(0u, 1u, first);
  }
  return first;
}

fn element(local: u32, i: u32) {
  let e = local * LL + i;
  let ix = i % P.fftSize;
  let iy = i / P.fftSize;
  var value = vec2f(0.0);
  if (onExtendedGrid(ix) && onExtendedGrid(iy)) {
    let u = rotatedSample(decodeBlock(local), ix, iy);
    value = vec2f(u, u * u / P.kappa);
  }
  blocks[e] = value;
}
`,
  };
}

/**
 * Builds blocks ← S · conj(blocks) element-wise, S the spectrum of the block's image: Z
 * for the energy, Z′ for the gradient.
 */
export function spectrumProductKernel(fftSize: number, spectrum: 'energy' | 'gradient'): KernelSpec {
  const slot = spectrum === 'energy' ? 0 : 1;
  return {
    name: `spectrumProduct${fftSize}-${spectrum}`,
    workgroupSize: ELEMENT_WORKGROUP,
    bindings: [
      PARAMS_BINDING,
      { name: 'spectra', access: 'read', type: 'array<vec2f>' }, // [2B, L, L]
      { name: 'flags', access: 'read', type: 'array<u32>' }, // [capacity]
      { name: 'blocks', access: 'write', type: 'array<vec2f>' }, // [capacity, L, L]
    ],
    body: /* wgsl */ `
${tiledKernelWgsl(fftSize)}
${FLAGGED_BLOCKS_WGSL}

fn element(local: u32, i: u32) {
  let e = local * LL + i;
  let block = decodeBlock(local);
  let s = spectra[(2u * block.b + ${slot}u) * LL + i];
  let a = blocks[e];
  // s · conj(a)
  blocks[e] = vec2f(s.x * a.x + s.y * a.y, s.y * a.x - s.x * a.y);
}
`,
  };
}

/**
 * Builds blocks ← Z_b · conj(Â) for every image b of each group, Â the group's first block
 * (the shared rotated template), and flags every block. One invocation per element of a
 * group, so the first block is read before any block is written.
 */
export function sharedProductKernel(fftSize: number): KernelSpec {
  return {
    name: `sharedProduct${fftSize}`,
    workgroupSize: ELEMENT_WORKGROUP,
    bindings: [
      PARAMS_BINDING,
      { name: 'spectra', access: 'read', type: 'array<vec2f>' }, // [2B, L, L]
      { name: 'flags', access: 'write', type: 'array<u32>' }, // [capacity]
      { name: 'blocks', access: 'write', type: 'array<vec2f>' }, // [capacity, L, L]
    ],
    body: /* wgsl */ `
${elementWgsl(fftSize)}

fn main(
  @builtin(workgroup_id) wg: vec3u,
  @builtin(num_workgroups) groups: vec3u,
  @builtin(local_invocation_index) lane: u32,
) {
  let e = elementIndex(wg, groups, lane);
  if (e >= (P.blockCount / P.images) * LL) {
    return;
  }
  let first = (e / LL) * P.images;
  let i = e % LL;
  let a = blocks[first * LL + i];
  for (var b = 0u; b < P.images; b++) {
    let s = spectra[2u * b * LL + i];
    blocks[(first + b) * LL + i] = vec2f(s.x * a.x + s.y * a.y, s.y * a.x - s.x * a.y);
    if (i == 0u) {
      flags[first + b] = 1u;
    }
  }
}
`,
  };
}

/** Sums the flagged blocks of each group into its first block, element-wise. */
export function groupSumKernel(fftSize: number): KernelSpec {
  return {
    name: `groupSum${fftSize}`,
    workgroupSize: ELEMENT_WORKGROUP,
    bindings: [
      PARAMS_BINDING,
      { name: 'flags', access: 'read', type: 'array<u32>' }, // [capacity]
      { name: 'blocks', access: 'write', type: 'array<vec2f>' }, // [capacity, L, L]
    ],
    body: /* wgsl */ `
${elementWgsl(fftSize)}

fn main(
  @builtin(workgroup_id) wg: vec3u,
  @builtin(num_workgroups) groups: vec3u,
  @builtin(local_invocation_index) lane: u32,
) {
  let e = elementIndex(wg, groups, lane);
  if (e >= (P.blockCount / P.images) * LL) {
    return;
  }
  let first = (e / LL) * P.images;
  let i = e % LL;
  var sum = vec2f(0.0);
  for (var b = 0u; b < P.images; b++) {
    if (flags[first + b] != 0u) {
      sum += blocks[(first + b) * LL + i];
    }
  }
  blocks[first * LL + i] = sum;
}
`,
  };
}

/** After groupSum: flags each group's first block if any of its blocks was, and clears the rest. */
export function groupFlagsKernel(): KernelSpec {
  return {
    name: 'groupFlags',
    workgroupSize: ELEMENT_WORKGROUP,
    bindings: [
      PARAMS_BINDING,
      { name: 'flags', access: 'write', type: 'array<u32>' }, // [capacity]
    ],
    body: /* wgsl */ `
${elementWgsl(2)}

fn main(
  @builtin(workgroup_id) wg: vec3u,
  @builtin(num_workgroups) groups: vec3u,
  @builtin(local_invocation_index) lane: u32,
) {
  let group = elementIndex(wg, groups, lane);
  if (group >= P.blockCount / P.images) {
    return;
  }
  let first = group * P.images;
  var seen = 0u;
  for (var b = 0u; b < P.images; b++) {
    seen = max(seen, flags[first + b]);
    flags[first + b] = 0u;
  }
  flags[first] = seen;
}
`,
  };
}

/** E[b, k, φ] = ‖X_b‖² + Re(correlation at d) / L² for every shift node of every block. */
export function shiftEnergyKernel(fftSize: number): KernelSpec {
  return {
    name: `shiftEnergy${fftSize}`,
    workgroupSize: ELEMENT_WORKGROUP,
    bindings: [
      PARAMS_BINDING,
      { name: 'shiftX', access: 'read', type: 'array<f32>' }, // [shiftsX] whole pixels
      { name: 'shiftY', access: 'read', type: 'array<f32>' }, // [shiftsY] whole pixels
      { name: 'norms', access: 'read', type: 'array<f32>' }, // [B] ‖X_b‖²
      { name: 'blocks', access: 'read', type: 'array<vec2f>' }, // [capacity, L, L]
      { name: 'energy', access: 'write', type: 'array<f32>' }, // [B, K, M]
    ],
    body: /* wgsl */ `
${elementWgsl(fftSize)}

fn periodic(d: f32) -> u32 {
  let n = i32(P.fftSize);
  return u32(((i32(round(d)) % n) + n) % n);
}

fn main(
  @builtin(workgroup_id) wg: vec3u,
  @builtin(num_workgroups) groups: vec3u,
  @builtin(local_invocation_index) lane: u32,
) {
  let e = elementIndex(wg, groups, lane);
  let shifts = P.shiftsX * P.shiftsY;
  if (e >= P.blockCount * shifts) {
    return;
  }
  let local = e / shifts;
  let r = e % P.shiftsY;
  let q = (e / P.shiftsY) % P.shiftsX;
  let block = decodeBlock(local);
  let value = blocks[local * LL + periodic(shiftY[r]) * P.fftSize + periodic(shiftX[q])].x;
  let phi = ((block.p * P.shiftsX + q) * P.shiftsY + r) * P.scales + block.m;
  // A sum of squares: rounding in the cancellation of ‖X‖² against the correlation can
  // leave it slightly below zero, where an exact fit makes it 0.
  energy[(block.b * P.classes + block.k) * P.poses + phi] = max(norms[block.b] + value * P.invFftArea, 0.0);
}
`,
  };
}

/** Flag of each block: 1 if any of its responsibilities is nonzero. One workgroup per block. */
export function gammaFlagsKernel(): KernelSpec {
  return {
    name: 'gammaFlags',
    workgroupSize: ELEMENT_WORKGROUP,
    bindings: [
      PARAMS_BINDING,
      { name: 'gamma', access: 'read', type: 'array<f32>' }, // [B, K, M]
      { name: 'flags', access: 'write', type: 'array<u32>' }, // [capacity]
    ],
    body: /* wgsl */ `
${elementWgsl(2)}

var<workgroup> found: array<u32, WG>;

fn main(
  @builtin(workgroup_id) wg: vec3u,
  @builtin(num_workgroups) groups: vec3u,
  @builtin(local_invocation_index) lane: u32,
) {
  let local = wg.y * groups.x + wg.x;
  if (local >= P.blockCount) {
    return;
  }
  let block = decodeBlock(local);
  let offset = (block.b * P.classes + block.k) * P.poses;
  let shifts = P.shiftsX * P.shiftsY;
  var seen = 0u;
  for (var s = lane; s < shifts; s += WG) {
    let phi = (block.p * shifts + s) * P.scales + block.m;
    if (gamma[offset + phi] != 0.0) {
      seen = 1u;
    }
  }
  found[lane] = seen;
  workgroupBarrier();
  for (var stride = WG / 2u; stride > 0u; stride /= 2u) {
    if (lane < stride) {
      found[lane] = max(found[lane], found[lane + stride]);
    }
    workgroupBarrier();
  }
  if (lane == 0u) {
    flags[local] = found[0];
  }
}
`,
  };
}

/** Γ of each flagged block: γ at the periodic index of each shift node, zero elsewhere. */
export function gammaMapKernel(fftSize: number): KernelSpec {
  return {
    name: `gammaMap${fftSize}`,
    workgroupSize: ELEMENT_WORKGROUP,
    bindings: [
      PARAMS_BINDING,
      { name: 'gamma', access: 'read', type: 'array<f32>' }, // [B, K, M]
      { name: 'nodeX', access: 'read', type: 'array<i32>' }, // [L] shift x node at a periodic index, or −1
      { name: 'nodeY', access: 'read', type: 'array<i32>' }, // [L] shift y node at a periodic index, or −1
      { name: 'flags', access: 'read', type: 'array<u32>' }, // [capacity]
      { name: 'blocks', access: 'write', type: 'array<vec2f>' }, // [capacity, L, L]
    ],
    body: /* wgsl */ `
${tiledKernelWgsl(fftSize)}
${FLAGGED_BLOCKS_WGSL}

fn element(local: u32, i: u32) {
  let e = local * LL + i;
  let q = nodeX[i % P.fftSize];
  let r = nodeY[i / P.fftSize];
  var value = 0.0;
  if (q >= 0 && r >= 0) {
    let block = decodeBlock(local);
    let phi = ((block.p * P.shiftsX + u32(q)) * P.shiftsY + u32(r)) * P.scales + block.m;
    value = gamma[(block.b * P.classes + block.k) * P.poses + phi];
  }
  blocks[e] = vec2f(value, 0.0);
}
`,
  };
}

/**
 * Builds the residual H − U·W / L² of each flagged block on the extended grid in the real
 * part, from the inverse transform H + iκW, for the gather to back-project. U is sampled
 * once per grid point here rather than once per tap in the gather.
 */
export function residualMapKernel(fftSize: number): KernelSpec {
  return {
    name: `residualMap${fftSize}`,
    workgroupSize: ELEMENT_WORKGROUP,
    bindings: [
      PARAMS_BINDING,
      ...POSE_BINDINGS,
      { name: 'flags', access: 'read', type: 'array<u32>' }, // [capacity]
      { name: 'blocks', access: 'write', type: 'array<vec2f>' }, // [capacity, L, L]
    ],
    body: /* wgsl */ `
${POSE_WGSL}
${tiledKernelWgsl(fftSize)}
${ROTATED_SAMPLE_WGSL}
${FLAGGED_BLOCKS_WGSL}

fn element(local: u32, i: u32) {
  let e = local * LL + i;
  let ix = i % P.fftSize;
  let iy = i / P.fftSize;
  if (!onExtendedGrid(ix) || !onExtendedGrid(iy)) {
    return;
  }
  let u = rotatedSample(decodeBlock(local), ix, iy);
  let hw = blocks[e];
  blocks[e] = vec2f((hw.x - u * hw.y / P.kappa) * P.invFftArea, 0.0);
}
`,
  };
}

/** 64 invocations over consecutive template pixels, as in the reference gather. */
export const GATHER_WORKGROUP = 64;

/**
 * partial[g, k, j] = Σ over the flagged blocks of class k in gather chunk g of
 * Σ_y w(y → j) r(y), y on the extended grid, w the bilinear weight the sample U(y) gave
 * template pixel j, r = (H − U·W) / L² the real part of blocks (`residualMap`).
 */
export function gradientGatherKernel(fftSize: number): KernelSpec {
  return {
    name: `gradientGather${fftSize}`,
    workgroupSize: GATHER_WORKGROUP,
    bindings: [
      PARAMS_BINDING,
      ...POSE_BINDINGS,
      { name: 'flags', access: 'read', type: 'array<u32>' }, // [capacity]
      { name: 'blocks', access: 'read', type: 'array<vec2f>' }, // [capacity, L, L]
      { name: 'partial', access: 'write', type: 'array<f32>' }, // [chunks, K, J]
    ],
    body: /* wgsl */ `
${POSE_WGSL}
${elementWgsl(fftSize)}

fn periodicIndex(v: i32) -> u32 {
  let n = i32(P.fftSize);
  return u32((v + n) % n);
}

fn main(
  @builtin(workgroup_id) wg: vec3u,
  @builtin(num_workgroups) groups: vec3u,
  @builtin(local_invocation_index) lane: u32,
) {
  let work = gatherTarget(wg, groups, lane);
  if (!work.inside) {
    return;
  }
  let k = work.k;
  let chunk = work.chunk;
  let j = work.j;
  let jx = i32(j % P.size);
  let jy = i32(j / P.size);
  let tj = vec2f(f32(jx), f32(jy));
  let low = -f32(P.reach);
  let high = f32(P.size - 1u + P.reach);

  let start = chunk * P.chunkUnits;
  let stop = min(start + P.chunkUnits, P.blockCount);
  var sum = 0.0;
  var carry = 0.0;
  for (var local = start; local < stop; local++) {
    // A loop of its own passes the unflagged blocks: SwiftShader 5.0 would run the rest
    // of this body, masked, for a block skipped by continue.
    while (local < stop && flags[local] == 0u) {
      local++;
    }
    if (local == stop) {
      break;
    }
    let block = decodeBlock(local);
    if (block.k != k) {
      continue;
    }
    let pose = Pose(rotations[block.b * P.rotations + block.p], vec2f(0.0), scales[block.m]);
    let window = gatherWindow(pose, tj, low, high);
    let offset = local * LL;
    var inner = 0.0;
    for (var y = i32(window.y); y <= i32(window.w); y++) {
      let row = offset + periodicIndex(y) * P.fftSize;
      for (var x = i32(window.x); x <= i32(window.z); x++) {
        let t = toTemplate(pose, vec2f(f32(x), f32(y)));
        let w = tapWeight(vec2i(jx, jy), t);
        if (w != 0.0) {
          inner += w * blocks[row + periodicIndex(x)].x;
        }
      }
    }
    let term = inner - carry;
    let next = sum + term;
    carry = (next - sum) - term;
    sum = next;
  }
  partial[(chunk * P.classes + k) * P.pixels + j] = sum;
}
`,
  };
}
