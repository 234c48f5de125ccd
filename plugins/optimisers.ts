/**
 * Optimiser plugins. Each update ascends the objective ℓ: `grad` is ∂ℓ/∂parameter and
 * the step moves the parameter along it. A plugin gives the same update twice: as WGSL,
 * run element-wise on parameters that live on the GPU (the templates θ), and as a
 * float64 host function, used for scalar groups (σ) and as the WGSL's twin in tests.
 *
 * WGSL contract: `wgsl` is the body of
 *   fn update(i: u32, value: f32, grad: f32, lr: f32, t: f32) -> f32
 * returning the new value of element i at step t (1, 2, …). `readState(k, i)` and
 * `writeState(k, i, v)` access the plugin's state vector k < stateCount, zero at the
 * start, and every hyper-parameter is a WGSL constant `H_<name>`.
 */
import { Registry, type NamedPlugin } from './registry.js';

export type HyperParameters = Readonly<Record<string, number>>;

export interface OptimiserPlugin extends NamedPlugin {
  /** State vectors per parameter element: 0 for SGD, 1 for momentum, 2 for Adam. */
  readonly stateCount: number;
  /** Hyper-parameters with their defaults; a run's options may override each. */
  readonly defaults: HyperParameters;
  readonly wgsl: string;
  /**
   * Returns the new value of one element and updates its `state` (length stateCount)
   * in place, exactly as `wgsl` does in float32.
   */
  step(value: number, grad: number, state: Float64Array, lr: number, t: number, hyper: HyperParameters): number;
}

export const sgd: OptimiserPlugin = {
  name: 'sgd',
  stateCount: 0,
  defaults: {},
  wgsl: 'return value + lr * grad;',
  step: (value, grad, _state, lr) => value + lr * grad,
};

/** Heavy-ball momentum: v ← μ v + g, x ← x + lr v. */
export const momentum: OptimiserPlugin = {
  name: 'momentum',
  stateCount: 1,
  defaults: { momentum: 0.9 },
  wgsl: /* wgsl */ `
  let v = H_momentum * readState(0u, i) + grad;
  writeState(0u, i, v);
  return value + lr * v;`,
  step(value, grad, state, lr, _t, hyper) {
    state[0] = hyper.momentum * state[0] + grad;
    return value + lr * state[0];
  },
};

/** Nesterov momentum in the form PyTorch uses: v ← μ v + g, x ← x + lr (g + μ v). */
export const nesterov: OptimiserPlugin = {
  name: 'nesterov',
  stateCount: 1,
  defaults: { momentum: 0.9 },
  wgsl: /* wgsl */ `
  let v = H_momentum * readState(0u, i) + grad;
  writeState(0u, i, v);
  return value + lr * (grad + H_momentum * v);`,
  step(value, grad, state, lr, _t, hyper) {
    state[0] = hyper.momentum * state[0] + grad;
    return value + lr * (grad + hyper.momentum * state[0]);
  },
};

/** Adam (Kingma and Ba, 2015) with bias correction, ascending. */
export const adam: OptimiserPlugin = {
  name: 'adam',
  stateCount: 2,
  defaults: { beta1: 0.9, beta2: 0.999, epsilon: 1e-8 },
  wgsl: /* wgsl */ `
  let m = H_beta1 * readState(0u, i) + (1.0 - H_beta1) * grad;
  let s = H_beta2 * readState(1u, i) + (1.0 - H_beta2) * grad * grad;
  writeState(0u, i, m);
  writeState(1u, i, s);
  let mHat = m / (1.0 - pow(H_beta1, t));
  let sHat = s / (1.0 - pow(H_beta2, t));
  return value + lr * mHat / (sqrt(sHat) + H_epsilon);`,
  step(value, grad, state, lr, t, hyper) {
    state[0] = hyper.beta1 * state[0] + (1 - hyper.beta1) * grad;
    state[1] = hyper.beta2 * state[1] + (1 - hyper.beta2) * grad * grad;
    const mHat = state[0] / (1 - hyper.beta1 ** t);
    const sHat = state[1] / (1 - hyper.beta2 ** t);
    return value + (lr * mHat) / (Math.sqrt(sHat) + hyper.epsilon);
  },
};

/** Optimisers by name; `optimisers.register(plugin)` adds one. */
export const optimisers = new Registry<OptimiserPlugin>('optimiser');
for (const plugin of [sgd, momentum, nesterov, adam]) optimisers.register(plugin);

/** Merges overrides into a plugin's defaults, rejecting unknown names and non-finite values. */
export function resolveHyperParameters(plugin: OptimiserPlugin, overrides: Record<string, number> = {}): HyperParameters {
  const resolved: Record<string, number> = { ...plugin.defaults };
  for (const [name, value] of Object.entries(overrides)) {
    if (!(name in plugin.defaults)) {
      const known = Object.keys(plugin.defaults).join(', ') || 'none';
      throw new RangeError(`optimiser '${plugin.name}' has no hyper-parameter '${name}'; it takes: ${known}`);
    }
    if (!Number.isFinite(value)) {
      throw new RangeError(`optimiser '${plugin.name}': ${name} must be finite, got ${value}`);
    }
    resolved[name] = value;
  }
  return resolved;
}
