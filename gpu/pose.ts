/**
 * WGSL shared by the kernels that resample a template: decoding a pose index, the map
 * from image to template coordinates and bilinear sampling. The float64 host twin in
 * `host.ts` implements the same formulas.
 *
 * Coordinates: x is the column, y the row (+y down), pixel centres at integers, rotation
 * centre o = (⌊N/2⌋, ⌊N/2⌋). A pose (ψ, a, b, c) maps template to image as
 *   (R_φ θ)(q) = θ( R(−ψ) (q − o − d) / c + o ),  d = (a, b),
 * with R(ψ) = [[cos ψ, sin ψ], [−sin ψ, cos ψ]] in these y-down coordinates, which turns
 * the displayed picture counter-clockwise. Samples outside the box read as zero.
 */
import type { BindingSpec } from './kernel.js';

/** Bindings the pose helpers read; a kernel that uses them lists these. */
export const POSE_BINDINGS: readonly BindingSpec[] = [
  { name: 'templates', access: 'read', type: 'array<f32>' }, // [K, N, N]
  { name: 'rotations', access: 'read', type: 'array<vec2f>' }, // [B, rotations] (cos ψ, sin ψ)
  { name: 'shiftX', access: 'read', type: 'array<f32>' }, // [shiftsX] pixels
  { name: 'shiftY', access: 'read', type: 'array<f32>' }, // [shiftsY] pixels
  { name: 'scales', access: 'read', type: 'array<f32>' }, // [scales]
];

/**
 * Poses are numbered row-major over (rotation, shift x, shift y, scale), scale fastest:
 *   φ = ((p * shiftsX + q) * shiftsY + r) * scales + m.
 */
export const POSE_WGSL = /* wgsl */ `
struct Pose {
  cs: vec2f,     // (cos psi, sin psi)
  shift: vec2f,  // (a, b), pixels
  scale: f32,
}

fn decodePose(image: u32, phi: u32) -> Pose {
  let m = phi % P.scales;
  var rest = phi / P.scales;
  let r = rest % P.shiftsY;
  rest = rest / P.shiftsY;
  let q = rest % P.shiftsX;
  let p = rest / P.shiftsX;
  return Pose(rotations[image * P.rotations + p], vec2f(shiftX[q], shiftY[r]), scales[m]);
}

// Template coordinates of image point q: R(-psi) (q - o - d) / c + o.
fn toTemplate(pose: Pose, q: vec2f) -> vec2f {
  let u = q - vec2f(P.centre) - pose.shift;
  let c = pose.cs.x;
  let s = pose.cs.y;
  return vec2f(c * u.x - s * u.y, s * u.x + c * u.y) / pose.scale + vec2f(P.centre);
}

// Image coordinates of template point t: R(psi) c (t - o) + o + d, the inverse of toTemplate.
fn toImage(pose: Pose, t: vec2f) -> vec2f {
  let u = (t - vec2f(P.centre)) * pose.scale;
  let c = pose.cs.x;
  let s = pose.cs.y;
  return vec2f(c * u.x + s * u.y, -s * u.x + c * u.y) + vec2f(P.centre) + pose.shift;
}

fn texel(k: u32, x: i32, y: i32) -> f32 {
  let n = i32(P.size);
  if (x < 0 || y < 0 || x >= n || y >= n) {
    return 0.0;
  }
  return templates[k * P.pixels + u32(y * n + x)];
}

// Bilinear sample of template k at t. The taps are floor(t) + {0, 1}^2 with weights
// (1 - f) and f per axis, f = t - floor(t); the gradient kernel applies the same weights.
fn sampleTemplate(k: u32, t: vec2f) -> f32 {
  let base = floor(t);
  let f = t - base;
  let x = i32(base.x);
  let y = i32(base.y);
  let top = (1.0 - f.x) * texel(k, x, y) + f.x * texel(k, x + 1, y);
  let bottom = (1.0 - f.x) * texel(k, x, y + 1) + f.x * texel(k, x + 1, y + 1);
  return (1.0 - f.y) * top + f.y * bottom;
}

// Bilinear weight of template pixel j in the sample at t: the factor sampleTemplate gives
// that tap, or 0 when j is not one of the four taps.
fn tapWeight(j: vec2i, t: vec2f) -> f32 {
  let base = floor(t);
  let f = t - base;
  let d = j - vec2i(base);
  var wx = 0.0;
  if (d.x == 0) {
    wx = 1.0 - f.x;
  } else if (d.x == 1) {
    wx = f.x;
  }
  var wy = 0.0;
  if (d.y == 0) {
    wy = 1.0 - f.y;
  } else if (d.y == 1) {
    wy = f.y;
  }
  return wx * wy;
}

// Image points q whose source toTemplate(q) lies within one pixel of template point tj
// fill the image of the square tj + (-1, 1)^2: a square of half-width c (|cos| + |sin|)
// around toImage(tj). Returns its integer corners (lo.x, lo.y, hi.x, hi.y) clamped to
// [low, high] on both axes; the square is empty where lo > hi.
fn gatherWindow(pose: Pose, tj: vec2f, low: f32, high: f32) -> vec4f {
  let centre = toImage(pose, tj);
  let half = pose.scale * (abs(pose.cs.x) + abs(pose.cs.y)) + 1e-3;
  let lo = clamp(ceil(centre - vec2f(half)), vec2f(low), vec2f(high + 1.0));
  let hi = clamp(floor(centre + vec2f(half)), vec2f(low - 1.0), vec2f(high));
  return vec4f(lo, hi);
}

// Work of one gather invocation: template pixel j of class k in one chunk. A workgroup
// covers WG consecutive pixels; workgroups run over pixels, then classes, then chunks.
struct GatherTarget {
  k: u32,
  chunk: u32,
  j: u32,
  inside: bool,
}

fn gatherTarget(wg: vec3u, groups: vec3u, lane: u32) -> GatherTarget {
  let tiles = (P.pixels + WG - 1u) / WG;
  let group = linearWorkgroup(wg, groups);
  let chunk = group / (tiles * P.classes);
  let j = (group % tiles) * WG + lane;
  return GatherTarget((group / tiles) % P.classes, chunk, j, chunk < P.chunks && j < P.pixels);
}

fn pixelPoint(index: u32) -> vec2f {
  return vec2f(f32(index % P.size), f32(index / P.size));
}

fn linearWorkgroup(wg: vec3u, groups: vec3u) -> u32 {
  return wg.y * groups.x + wg.x;
}
`;
