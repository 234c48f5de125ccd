import { beforeAll, describe, expect, it } from 'vitest';

import { GpuOptimiser } from '../gpu/update.js';
import { optimisers, resolveHyperParameters, type OptimiserPlugin } from '../plugins/optimisers.js';
import { reparameterisations } from '../plugins/reparameterisations.js';
import { openTestGpu } from './gpu.js';
import { makeNormal, makeRandom, testSeed } from './random.js';

let device: GPUDevice;
let seed: number;

beforeAll(async () => {
  device = (await openTestGpu()).device;
  seed = testSeed();
});

function storage(values: Float32Array<ArrayBuffer>, label: string): GPUBuffer {
  const buffer = device.createBuffer({
    label,
    size: values.byteLength,
    usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST | GPUBufferUsage.COPY_SRC,
  });
  device.queue.writeBuffer(buffer, 0, values);
  return buffer;
}

async function read(buffer: GPUBuffer): Promise<Float32Array> {
  const staging = device.createBuffer({ size: buffer.size, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
  const encoder = device.createCommandEncoder();
  encoder.copyBufferToBuffer(buffer, 0, staging, 0, buffer.size);
  device.queue.submit([encoder.finish()]);
  await staging.mapAsync(GPUMapMode.READ);
  const values = new Float32Array(staging.getMappedRange().slice(0));
  staging.destroy();
  return values;
}

/**
 * Runs `steps` updates of a plugin on the GPU and in float64 on the host from the same
 * start and gradients. Each step's gradient is uploaded fresh, and each step ends with
 * the Laplace term's soft threshold, as the training loop's does.
 */
async function compareSteps(plugin: OptimiserPlugin, steps: number) {
  const count = 300;
  const normal = makeNormal(makeRandom(seed));
  const theta = Float32Array.from({ length: count }, normal);
  const thetaBuffer = storage(theta, 'theta');
  const gradientBuffer = storage(new Float32Array(count), 'gradient');
  const hyper = resolveHyperParameters(plugin);
  const optimiser = new GpuOptimiser(device, plugin, hyper, thetaBuffer, gradientBuffer, count);
  const host = Float64Array.from(theta);
  const state = Array.from({ length: count }, () => new Float64Array(plugin.stateCount));
  const update = { learningRate: 0.05, gradientScale: 3, lambda: 0.2 };
  for (let t = 1; t <= steps; t++) {
    const gradient = Float32Array.from({ length: count }, normal);
    device.queue.writeBuffer(gradientBuffer, 0, gradient);
    optimiser.apply({ ...update, step: t });
    for (let i = 0; i < count; i++) {
      const moved = plugin.step(host[i], update.gradientScale * gradient[i], state[i], update.learningRate, t, hyper);
      host[i] = Math.sign(moved) * Math.max(Math.abs(moved) - update.learningRate * update.lambda, 0);
    }
  }
  const gpu = await read(thetaBuffer);
  optimiser.destroy();
  thetaBuffer.destroy();
  gradientBuffer.destroy();
  return { gpu, host, start: theta };
}

describe('optimiser plugins', () => {
  for (const name of ['sgd', 'momentum', 'nesterov', 'adam']) {
    it(`${name} kernel matches its host step`, async () => {
      const { gpu, host, start } = await compareSteps(optimisers.get(name), 6);
      let moved = 0;
      let worst = 0;
      for (let i = 0; i < host.length; i++) {
        moved = Math.max(moved, Math.abs(host[i] - start[i]));
        worst = Math.max(worst, Math.abs(gpu[i] - host[i]) / (1 + Math.abs(host[i])));
      }
      expect(moved, `seed ${seed}: the parameters moved`).toBeGreaterThan(0.05);
      // Six float32 steps of a few operations each: about 1e-6 relative; 2e-5 leaves room
      // for Adam's pow and sqrt, which WGSL computes to a few ulps.
      expect(worst, `seed ${seed}: GPU against host`).toBeLessThan(2e-5);
    });
  }

  it('scales each group of parameters', async () => {
    // Three groups of 100: the gradient and λ of group g are multiplied by scales[g].
    const plugin = optimisers.get('momentum');
    const hyper = resolveHyperParameters(plugin);
    const count = 300;
    const scales = [1, 4, 0.25];
    const normal = makeNormal(makeRandom(seed + 1));
    const theta = Float32Array.from({ length: count }, normal);
    const thetaBuffer = storage(theta, 'theta');
    const gradientBuffer = storage(new Float32Array(count), 'gradient');
    const optimiser = new GpuOptimiser(device, plugin, hyper, thetaBuffer, gradientBuffer, count, 3);

    const host = Float64Array.from(theta);
    const state = Array.from({ length: count }, () => new Float64Array(plugin.stateCount));
    for (let t = 1; t <= 3; t++) {
      const gradient = Float32Array.from({ length: count }, normal);
      device.queue.writeBuffer(gradientBuffer, 0, gradient);
      optimiser.apply({ learningRate: 0.05, gradientScale: 2, lambda: 0.3, step: t, groupScales: scales });
      for (let i = 0; i < count; i++) {
        const s = scales[Math.floor(i / 100)];
        const moved = plugin.step(host[i], s * 2 * gradient[i], state[i], 0.05, t, hyper);
        host[i] = Math.sign(moved) * Math.max(Math.abs(moved) - 0.05 * s * 0.3, 0);
      }
    }

    const gpu = await read(thetaBuffer);
    let worst = 0;
    for (let i = 0; i < count; i++) worst = Math.max(worst, Math.abs(gpu[i] - host[i]) / (1 + Math.abs(host[i])));
    expect(worst, `seed ${seed}: GPU against host`).toBeLessThan(2e-5);
    expect(() => optimiser.apply({ learningRate: 0.05, gradientScale: 1, lambda: 0, step: 4, groupScales: [1, 2] })).toThrow('2 group scales for 3 groups');
    optimiser.destroy();
    thetaBuffer.destroy();
    gradientBuffer.destroy();
  });

  it('resets the state of one group', async () => {
    // With momentum, a zero gradient still moves θ by the stored velocity, except where it was reset.
    const plugin = optimisers.get('momentum');
    const count = 200;
    const thetaBuffer = storage(new Float32Array(count), 'theta');
    const gradientBuffer = storage(new Float32Array(count).fill(1), 'gradient');
    const optimiser = new GpuOptimiser(device, plugin, resolveHyperParameters(plugin), thetaBuffer, gradientBuffer, count, 2);
    optimiser.apply({ learningRate: 0.1, gradientScale: 1, lambda: 0, step: 1 });
    const before = await read(thetaBuffer);
    optimiser.resetGroup(1);
    device.queue.writeBuffer(gradientBuffer, 0, new Float32Array(count));
    optimiser.apply({ learningRate: 0.1, gradientScale: 1, lambda: 0, step: 2 });
    const after = await read(thetaBuffer);
    expect(after[0], 'group 0 keeps moving').toBeGreaterThan(before[0]);
    expect(after[150], 'group 1 stops').toBe(before[150]);
    expect(() => optimiser.resetGroup(2)).toThrow('group 2 is not in 0 … 1');
    optimiser.destroy();
    thetaBuffer.destroy();
    gradientBuffer.destroy();
  });

  it('ascends a concave quadratic', () => {
    // f(x) = −(x − 3)² / 2, gradient 3 − x: every optimiser approaches 3.
    for (const name of optimisers.names()) {
      const plugin = optimisers.get(name);
      const hyper = resolveHyperParameters(plugin);
      const state = new Float64Array(plugin.stateCount);
      let x = 0;
      for (let t = 1; t <= 400; t++) x = plugin.step(x, 3 - x, state, 0.05, t, hyper);
      expect(Math.abs(x - 3), name).toBeLessThan(0.05);
    }
  });

  it('registers a user plugin', async () => {
    const signSgd: OptimiserPlugin = {
      name: 'sign-sgd',
      stateCount: 0,
      defaults: { scale: 1 },
      wgsl: 'return value + lr * H_scale * sign(grad);',
      step: (value, grad, _state, lr, _t, hyper) => value + lr * hyper.scale * Math.sign(grad),
    };
    optimisers.register(signSgd);
    expect(optimisers.get('sign-sgd')).toBe(signSgd);
    const { gpu, host } = await compareSteps(optimisers.get('sign-sgd'), 3);
    for (let i = 0; i < host.length; i++) expect(Math.abs(gpu[i] - host[i]), `element ${i}`).toBeLessThan(1e-5);
  });

  it('rejects unknown names and hyper-parameters', () => {
    expect(() => optimisers.get('lbfgs')).toThrow(/unknown optimiser 'lbfgs'; registered: sgd, momentum, nesterov, adam/);
    expect(() => resolveHyperParameters(optimisers.get('adam'), { beta3: 0.5 })).toThrow(/has no hyper-parameter 'beta3'/);
    expect(() => resolveHyperParameters(optimisers.get('momentum'), { momentum: Number.NaN })).toThrow(/momentum must be finite, got NaN/);
    expect(() => optimisers.register(optimisers.get('sgd'))).toThrow(/'sgd' is already registered/);
  });
});

describe('σ reparameterisations', () => {
  const bound = 7.5;
  for (const name of ['exp', 'softplus', 'sigmoid']) {
    it(`${name} inverts and differentiates`, () => {
      const plugin = reparameterisations.get(name);
      for (const sigma of [1e-3, 0.3, 1, 4, 7]) {
        const u = plugin.fromSigma(sigma, bound);
        expect(Math.abs(plugin.toSigma(u, bound) - sigma) / sigma, `σ = ${sigma}`).toBeLessThan(1e-12);
        const h = 1e-6 * Math.max(1, Math.abs(u));
        const numeric = (plugin.toSigma(u + h, bound) - plugin.toSigma(u - h, bound)) / (2 * h);
        expect(Math.abs(plugin.derivative(u, bound) - numeric) / numeric, `dσ/du at σ = ${sigma}`).toBeLessThan(1e-6);
      }
      for (const u of [-800, -40, 0, 40, 800]) {
        const sigma = plugin.toSigma(u, bound);
        expect(sigma, `σ(${u}) is positive`).toBeGreaterThan(0);
      }
    });
  }

  it('sigmoid reaches the data bound, not 1', () => {
    const plugin = reparameterisations.get('sigmoid');
    expect(plugin.toSigma(30, bound)).toBeGreaterThan(7.49);
    expect(plugin.toSigma(30, bound)).toBeLessThanOrEqual(bound + 1e-12);
  });
});
