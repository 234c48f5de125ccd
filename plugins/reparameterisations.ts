/**
 * σ reparameterisations: σ = h(u) + 1e-12 keeps σ > 0 while the optimiser moves an
 * unconstrained u. `bound` is an upper bound on σ from the data: the pixel standard
 * deviation of the stack, which the noise σ cannot exceed. Only `sigmoid` uses it. It
 * scales h to (0, bound), so data whose noise exceeds 1 stay reachable.
 */
import { Registry, type NamedPlugin } from './registry.js';

/** Floor added to every σ so that σ > 0 even where h(u) underflows. */
export const SIGMA_FLOOR = 1e-12;

export interface ReparameterisationPlugin extends NamedPlugin {
  /** σ = h(u) + SIGMA_FLOOR. */
  toSigma(u: number, bound: number): number;
  /** dσ/du. */
  derivative(u: number, bound: number): number;
  /** The u with toSigma(u) = sigma; sigma must lie in the plugin's range. */
  fromSigma(sigma: number, bound: number): number;
}

export const exp: ReparameterisationPlugin = {
  name: 'exp',
  toSigma: (u) => Math.exp(u) + SIGMA_FLOOR,
  derivative: (u) => Math.exp(u),
  fromSigma: (sigma) => Math.log(sigma - SIGMA_FLOOR),
};

/** log(1 + e^u), evaluated without overflow for large u. */
function softplusOf(u: number): number {
  return u > 30 ? u + Math.log1p(Math.exp(-u)) : Math.log1p(Math.exp(u));
}

export const softplus: ReparameterisationPlugin = {
  name: 'softplus',
  toSigma: (u) => softplusOf(u) + SIGMA_FLOOR,
  derivative: (u) => 1 / (1 + Math.exp(-u)),
  // u = log(e^s − 1) = s + log(1 − e^−s), stable for large s.
  fromSigma: (sigma) => {
    const s = sigma - SIGMA_FLOOR;
    return s + Math.log(-Math.expm1(-s));
  },
};

export const sigmoid: ReparameterisationPlugin = {
  name: 'sigmoid',
  toSigma: (u, bound) => bound / (1 + Math.exp(-u)) + SIGMA_FLOOR,
  derivative: (u, bound) => {
    const p = 1 / (1 + Math.exp(-u));
    return bound * p * (1 - p);
  },
  fromSigma: (sigma, bound) => {
    const p = (sigma - SIGMA_FLOOR) / bound;
    return Math.log(p / (1 - p));
  },
};

/** σ reparameterisations by name; `reparameterisations.register(plugin)` adds one. */
export const reparameterisations = new Registry<ReparameterisationPlugin>('σ reparameterisation');
for (const plugin of [exp, softplus, sigmoid]) reparameterisations.register(plugin);
