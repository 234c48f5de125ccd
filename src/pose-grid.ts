/** Turns a pose-grid spec and each image's rotation centre into the engine's batch fields. */
import type { BatchInput } from '../gpu/batch.js';
import type { Numerics, PoseGridSpec } from './numerics.js';

export type GridFields = Pick<BatchInput, 'rotations' | 'shiftsX' | 'shiftsY' | 'scales' | 'logWeights'>;

/**
 * Returns the grid fields of a batch: rotation nodes [B, rotations] as centre_b + offset_p
 * (radians), the shift and scale nodes, and log(w P) of every pose.
 * @param centres rotation centre ψ* of each image of the batch, radians; 0 on the full circle.
 */
export function gridFields(numerics: Numerics, spec: PoseGridSpec, centres: ArrayLike<number>): GridFields {
  const grid = numerics.poseGrid(spec);
  const offsets = grid.rotationOffsets;
  const rotations = new Float64Array(centres.length * offsets.length);
  for (let b = 0; b < centres.length; b++) {
    for (let p = 0; p < offsets.length; p++) rotations[b * offsets.length + p] = centres[b] + offsets[p];
  }
  return {
    rotations,
    shiftsX: grid.shiftX,
    shiftsY: grid.shiftY,
    scales: grid.scale,
    logWeights: grid.logWeights,
  };
}
