/** Seeded random inputs for the tests, so a failure reproduces from its seed. */

/** Mulberry32: a 32-bit generator, plenty for test inputs. */
export function makeRandom(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Standard normal deviates by Box–Muller. */
export function makeNormal(random: () => number): () => number {
  return () => {
    const u = 1 - random();
    const v = random();
    return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
  };
}

/** A seed per test run unless CLASSIFY2D_SEED fixes it; tests print it on failure. */
export function testSeed(): number {
  const fixed = process.env.CLASSIFY2D_SEED;
  return fixed ? Number(fixed) : Math.floor(Math.random() * 2 ** 31);
}
