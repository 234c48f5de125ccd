/** Seeded random inputs for the tests, so a failure reproduces from its seed. */
export { normalDeviates as makeNormal, seededRandom as makeRandom } from '../src/synthetic.js';

/** Returns a new seed per test run, or CLASSIFY2D_SEED where set; tests print it on failure. */
export function testSeed(): number {
  const fixed = process.env.CLASSIFY2D_SEED;
  return fixed ? Number(fixed) : Math.floor(Math.random() * 2 ** 31);
}
