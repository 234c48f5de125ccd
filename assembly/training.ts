// Per-epoch decisions of the training loop: the rotation window for the next epoch and
// the convergence test. Arguments are validated by src/numerics.ts before these run.

/** 2π. */
const TWO_PI: f64 = 6.283185307179586;

/**
 * Half-width ε of the rotation window after `epoch` completed epochs (1, 2, …), radians:
 * ε = 2π (20/360 + 0.75^epoch). The window narrows from the full circle (ε ≥ π while
 * 0.75^epoch ≥ 0.444, i.e. for the first two epochs) towards ±20°.
 */
export function rotationWindowHalfWidth(epoch: i32): f64 {
  return TWO_PI * (20.0 / 360.0 + Math.pow(0.75, <f64>epoch));
}

/**
 * Sums responsibilities γ [images, classes, poses] over the classes and the poses that
 * share a rotation node, with poses laid out rotation-major as [rotations, poses /
 * rotations]. Returns [images, rotations]: each image's integrand marginalised over
 * (class, a, b, c), up to its normaliser.
 */
export function marginaliseRotations(gamma: Float64Array, images: i32, classes: i32, rotations: i32): Float64Array {
  const poses = gamma.length / (images * classes);
  const perRotation = poses / rotations;
  const marginal = new Float64Array(images * rotations);
  for (let b = 0; b < images; b++) {
    for (let k = 0; k < classes; k++) {
      const offset = (b * classes + k) * poses;
      for (let p = 0; p < rotations; p++) {
        let sum: f64 = 0;
        const start = offset + p * perRotation;
        for (let i = 0; i < perRotation; i++) sum += gamma[start + i];
        marginal[b * rotations + p] += sum;
      }
    }
  }
  return marginal;
}

/**
 * Returns, per image, the rotation node ψ* with the largest marginal weight, reduced to
 * [0, 2π). `marginal` and `nodes` are [images, rotations]; ties go to the first node.
 */
export function windowCentres(marginal: Float64Array, nodes: Float64Array, rotations: i32): Float64Array {
  const images = marginal.length / rotations;
  const centres = new Float64Array(images);
  for (let b = 0; b < images; b++) {
    let best = 0;
    for (let p = 1; p < rotations; p++) {
      if (marginal[b * rotations + p] > marginal[b * rotations + best]) best = p;
    }
    const psi = nodes[b * rotations + best];
    centres[b] = psi - TWO_PI * Math.floor(psi / TWO_PI);
  }
  return centres;
}

/**
 * Tests convergence on the last three epoch objectives e_{k−2}, e_{k−1}, e_k:
 * |(e_{k−1} − e_k) / e_k| + |(e_{k−2} − e_k) / e_k| ≤ tolerance.
 */
export function hasConverged(beforePrevious: f64, previous: f64, current: f64, tolerance: f64): bool {
  const change = Math.abs((previous - current) / current) + Math.abs((beforePrevious - current) / current);
  return change <= tolerance;
}
