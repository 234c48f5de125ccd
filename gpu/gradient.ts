/**
 * Data term of ∂ℓ/∂θ for a sub-batch,
 *   G_k = Σ_b Σ_φ γ[b, k, φ] R_φᵀ (X_b − R_φ θ_k) / σ²,
 * in two kernels and without float atomics.
 *
 * `gradientPartial` gathers: each invocation owns one template pixel j of one class and
 * one chunk of (image, pose) pairs. For each pair it visits the image pixels q whose
 * source point toTemplate(q) lies within one pixel of j. Only their bilinear samples have
 * a tap on j, and each adds γ · weight(q → j) · residual(q). The weights
 * are the forward kernel's own (1 − f, f) factors, so this is the exact adjoint of the
 * resampling up to float rounding. Chunks give the GPU enough invocations when K·J is
 * small; each chunk writes its own slice of `partial` [chunks, K, J].
 *
 * `gradientReduce` sums the chunks per pixel, scales by 1/σ² and writes or adds to the
 * gradient [K, J], so sub-batches accumulate in one submission.
 */
import { PARAMS_BINDING, type KernelSpec } from './kernel.js';
import { POSE_BINDINGS, POSE_WGSL } from './pose.js';

/** 64 invocations over consecutive template pixels: neighbours share image pixels in cache. */
export const GRADIENT_WORKGROUP = 64;

/** 64 invocations, one output pixel each. */
export const REDUCE_WORKGROUP = 64;

/**
 * Invocations to aim for in `gradientPartial`; more chunks cost a larger `partial`
 * buffer and more reduction work. 2^16 keeps a discrete GPU busy while `partial`
 * stays within 256 KiB plus one template set.
 */
export const GRADIENT_TARGET_INVOCATIONS = 65_536;

export const gradientPartialKernel: KernelSpec = {
  name: 'gradientPartial',
  workgroupSize: GRADIENT_WORKGROUP,
  bindings: [
    PARAMS_BINDING,
    ...POSE_BINDINGS,
    { name: 'images', access: 'read', type: 'array<f32>' }, // [B, N, N]
    { name: 'gamma', access: 'read', type: 'array<f32>' }, // [B, K, M]
    { name: 'partial', access: 'write', type: 'array<f32>' }, // [chunks, K, J]
  ],
  body: /* wgsl */ `
${POSE_WGSL}

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
  let last = f32(P.size - 1u);

  let units = P.images * P.poses;
  let start = chunk * P.chunkUnits;
  let stop = min(start + P.chunkUnits, units);
  // Kahan summation over the chunk: a chunk can hold thousands of terms of both signs.
  var sum = 0.0;
  var carry = 0.0;
  for (var u = start; u < stop; u++) {
    let b = u / P.poses;
    let phi = u % P.poses;
    let g = gamma[(b * P.classes + k) * P.poses + phi];
    if (g == 0.0) {
      continue;
    }
    let pose = decodePose(b, phi);
    let window = gatherWindow(pose, tj, 0.0, last);
    var local = 0.0;
    for (var y = i32(window.y); y <= i32(window.w); y++) {
      for (var x = i32(window.x); x <= i32(window.z); x++) {
        let q = vec2f(f32(x), f32(y));
        let t = toTemplate(pose, q);
        let w = tapWeight(vec2i(jx, jy), t);
        if (w != 0.0) {
          let residual = images[b * P.pixels + u32(y) * P.size + u32(x)] - sampleTemplate(k, t);
          local += w * residual;
        }
      }
    }
    let term = g * local - carry;
    let next = sum + term;
    carry = (next - sum) - term;
    sum = next;
  }
  partial[(chunk * P.classes + k) * P.pixels + j] = sum;
}
`,
};

export const gradientReduceKernel: KernelSpec = {
  name: 'gradientReduce',
  workgroupSize: REDUCE_WORKGROUP,
  bindings: [
    PARAMS_BINDING,
    { name: 'partial', access: 'read', type: 'array<f32>' }, // [chunks, K, J]
    { name: 'gradient', access: 'write', type: 'array<f32>' }, // [K, J]
  ],
  body: /* wgsl */ `
fn main(
  @builtin(workgroup_id) wg: vec3u,
  @builtin(num_workgroups) groups: vec3u,
  @builtin(local_invocation_index) lane: u32,
) {
  let e = (wg.y * groups.x + wg.x) * WG + lane;
  let count = P.classes * P.pixels;
  if (e >= count) {
    return;
  }
  var sum = 0.0;
  var carry = 0.0;
  for (var c = 0u; c < P.chunks; c++) {
    let term = partial[c * count + e] - carry;
    let next = sum + term;
    carry = (next - sum) - term;
    sum = next;
  }
  let value = sum * P.invSigma2;
  if (P.accumulate == 1u) {
    gradient[e] += value;
  } else {
    gradient[e] = value;
  }
}
`,
};
