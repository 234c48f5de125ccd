import { describe, expect, it } from 'vitest';

import { resolveOptions } from '../src/options.js';

describe('reconstruction options', () => {
  it('fills in the defaults', () => {
    const options = resolveOptions({}, 64, 100);
    expect(options.rotations).toBe(36);
    expect(options.batchSize).toBe(5);
    expect(options.optimiserPlugin.name).toBe('nesterov');
    expect(options.hyperParameters).toEqual({ momentum: 0.9 });
    expect(options.reparameterisationPlugin.name).toBe('softplus');
    expect(options.shiftSd, '5 % of the box').toBeCloseTo(3.2, 12);
    expect(options.shiftRange, '⌊2 s⌋').toBe(6);
    expect(options.scheduleEvery).toBe(4);
    expect(options.scheduleFactor).toBe(0.1);
  });

  it('takes the default for an option given as undefined', () => {
    expect(resolveOptions({ rotations: undefined, maxEpochs: undefined }, 64, 100).rotations).toBe(36);
  });

  it('says when a rejected batch size is the default', () => {
    expect(() => resolveOptions({}, 64, 3)).toThrow(/option batchSize is 5 \(the default\); it must be at most the 3 images/);
  });

  const cases: [string, object, RegExp][] = [
    ['an unknown option', { epochs: 3 }, /unknown option 'epochs'; the options are: .*maxEpochs/],
    ['a fractional rotation count', { rotations: 2.5 }, /option rotations is 2.5; it must be an integer ≥ 1/],
    ['a batch larger than the stack', { batchSize: 200 }, /option batchSize is 200; it must be at most the 100 images/],
    ['a negative λ', { lambda: -1 }, /option lambda is -1; it must be a finite number ≥ 0/],
    ['a zero learning rate', { learningRateTheta: 0 }, /option learningRateTheta is 0; it must be a finite number > 0/],
    ['an unknown initialisation', { init: 'ones' }, /option init is "ones"; it must be 'random', 'zeros' or 'jensen'/],
    ['an unknown optimiser', { optimiser: 'lbfgs' }, /unknown optimiser 'lbfgs'; registered: sgd, momentum, nesterov, adam/],
    ['an unknown σ plugin', { reparameterisation: 'square' }, /unknown σ reparameterisation 'square'; registered: exp, softplus, sigmoid/],
    ['an unknown hyper-parameter', { optimiser: 'adam', optimiserOptions: { beta3: 1 } }, /optimiser 'adam' has no hyper-parameter 'beta3'/],
    ['scales without a scale range', { scales: 3, scaleHalfRange: 0 }, /option scaleHalfRange is 0; it must be > 0 when scales > 1/],
    ['a split batch that does not fit', { splitHalf: true, batchSize: 60 }, /option batchSize is 60; it must be at most the 50 images of a half stack/],
    ['a string seed', { seed: '3' }, /option seed is "3"; it must be an integer ≥ 0/],
    ['an infinite tolerance', { tolerance: Infinity }, /option tolerance is Infinity; it must be a finite number ≥ 0/],
    ['a shift range below its step', { shiftRange: 0.5 }, /option shiftRange is 0.5; it must be 0 or at least shiftStep \(1 pixels\)/],
  ];
  for (const [name, options, message] of cases) {
    it(`rejects ${name}`, () => {
      expect(() => resolveOptions(options, 64, 100)).toThrow(message);
    });
  }
});
