/**
 * Squared residual of every (image, class, pose) term:
 *   E[b, k, φ] = ‖X_b − R_φ θ_k‖²  over the J pixels.
 * One workgroup per term. Its invocations stride over the pixels, and the partial sums
 * meet in a tree, so the float32 rounding error grows with J/WG + log2(WG) steps
 * rather than with J.
 */
import { PARAMS_BINDING, type KernelSpec } from './kernel.js';
import { POSE_BINDINGS, POSE_WGSL } from './pose.js';

/** 64 invocations: the smallest box in use (8 × 8) still fills every lane once. */
export const ENERGY_WORKGROUP = 64;

export const energyKernel: KernelSpec = {
  name: 'energy',
  workgroupSize: ENERGY_WORKGROUP,
  bindings: [
    PARAMS_BINDING,
    ...POSE_BINDINGS,
    { name: 'images', access: 'read', type: 'array<f32>' }, // [B, N, N]
    { name: 'energy', access: 'write', type: 'array<f32>' }, // [B, K, M]
  ],
  body: /* wgsl */ `
${POSE_WGSL}

var<workgroup> partial: array<f32, WG>;

fn main(
  @builtin(workgroup_id) wg: vec3u,
  @builtin(num_workgroups) groups: vec3u,
  @builtin(local_invocation_index) lane: u32,
) {
  let term = linearWorkgroup(wg, groups);
  if (term >= P.images * P.classes * P.poses) {
    return;
  }
  let phi = term % P.poses;
  let k = (term / P.poses) % P.classes;
  let b = term / (P.poses * P.classes);
  let pose = decodePose(b, phi);

  var sum = 0.0;
  for (var q = lane; q < P.pixels; q += WG) {
    let residual = images[b * P.pixels + q] - sampleTemplate(k, toTemplate(pose, pixelPoint(q)));
    sum += residual * residual;
  }
  partial[lane] = sum;
  workgroupBarrier();
  for (var stride = WG / 2u; stride > 0u; stride /= 2u) {
    if (lane < stride) {
      partial[lane] += partial[lane + stride];
    }
    workgroupBarrier();
  }
  if (lane == 0u) {
    energy[term] = partial[0];
  }
}
`,
};
