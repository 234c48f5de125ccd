/** Synthetic templates for examples and tests. */

/**
 * Returns an N×N template, row-major, of four Gaussian blobs placed in the middle 40 % of
 * the box, with widths of 6–16 % of the box and heights in [−0.5, 1.5).
 * @param random uniform deviates in [0, 1), e.g. a seeded generator
 */
export function blobTemplate(size: number, random: () => number): Float32Array {
  const template = new Float32Array(size * size);
  for (let blob = 0; blob < 4; blob++) {
    const cx = size * (0.3 + 0.4 * random());
    const cy = size * (0.3 + 0.4 * random());
    const width = size * (0.06 + 0.1 * random());
    const height = 2 * random() - 0.5;
    for (let y = 0; y < size; y++) {
      for (let x = 0; x < size; x++) {
        template[y * size + x] += height * Math.exp(-((x - cx) ** 2 + (y - cy) ** 2) / (2 * width * width));
      }
    }
  }
  return template;
}

/** Mulberry32: a small seeded generator of uniform deviates in [0, 1). */
export function seededRandom(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Standard normal deviates from a uniform generator, by Box–Muller. */
export function normalDeviates(random: () => number): () => number {
  return () => {
    const u = 1 - random();
    const v = random();
    return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
  };
}
