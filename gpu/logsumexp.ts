/**
 * Per image b, over every (class k, pose φ) term
 *   L[b, k, φ] = −E[b, k, φ] / 2σ² + log π_k + log(w P)_φ,
 * the log-integral log Ĩ_b = logsumexp L, the responsibilities γ = exp(L − log Ĩ_b)
 * and Σ γ E, the expected squared residual that ∂ℓ/∂σ needs.
 * One workgroup per image: a tree maximum, then tree sums of exp(L − max) and
 * exp(L − max)·E, so no term overflows and none of the sums loses small terms to a
 * long running total.
 */
import { PARAMS_BINDING, type KernelSpec } from './kernel.js';

/** 256 invocations: a 36×5×5×3 grid (2 700 terms) gives each about 11 terms. */
export const LOGSUMEXP_WORKGROUP = 256;

export const logsumexpKernel: KernelSpec = {
  name: 'logsumexp',
  workgroupSize: LOGSUMEXP_WORKGROUP,
  bindings: [
    PARAMS_BINDING,
    { name: 'energy', access: 'read', type: 'array<f32>' }, // [B, K, M]
    { name: 'logWeight', access: 'read', type: 'array<f32>' }, // [M] log(w P)
    { name: 'logClass', access: 'read', type: 'array<f32>' }, // [K] log π
    { name: 'gamma', access: 'write', type: 'array<f32>' }, // [B, K, M]
    { name: 'logIntegral', access: 'write', type: 'array<f32>' }, // [B]
    { name: 'weightedEnergy', access: 'write', type: 'array<f32>' }, // [B]
  ],
  body: /* wgsl */ `
const LOWEST: f32 = -0x1.fffffep+127f;

var<workgroup> first: array<f32, WG>;
var<workgroup> second: array<f32, WG>;

fn logTerm(offset: u32, i: u32) -> f32 {
  return -energy[offset + i] * P.invTwoSigma2 + logClass[i / P.poses] + logWeight[i % P.poses];
}

fn main(
  @builtin(workgroup_id) wg: vec3u,
  @builtin(num_workgroups) groups: vec3u,
  @builtin(local_invocation_index) lane: u32,
) {
  let b = wg.y * groups.x + wg.x;
  if (b >= P.images) {
    return;
  }
  let terms = P.classes * P.poses;
  let offset = b * terms;

  var peak = LOWEST;
  for (var i = lane; i < terms; i += WG) {
    peak = max(peak, logTerm(offset, i));
  }
  first[lane] = peak;
  workgroupBarrier();
  for (var stride = WG / 2u; stride > 0u; stride /= 2u) {
    if (lane < stride) {
      first[lane] = max(first[lane], first[lane + stride]);
    }
    workgroupBarrier();
  }
  peak = first[0];
  workgroupBarrier();

  var mass = 0.0;
  var moment = 0.0;
  for (var i = lane; i < terms; i += WG) {
    let e = exp(logTerm(offset, i) - peak);
    mass += e;
    moment += e * energy[offset + i];
  }
  first[lane] = mass;
  second[lane] = moment;
  workgroupBarrier();
  for (var stride = WG / 2u; stride > 0u; stride /= 2u) {
    if (lane < stride) {
      first[lane] += first[lane + stride];
      second[lane] += second[lane + stride];
    }
    workgroupBarrier();
  }
  let total = first[0];
  let inverse = 1.0 / total;
  for (var i = lane; i < terms; i += WG) {
    gamma[offset + i] = exp(logTerm(offset, i) - peak) * inverse;
  }
  if (lane == 0u) {
    logIntegral[b] = peak + log(total);
    weightedEnergy[b] = second[0] * inverse;
  }
}
`,
};
