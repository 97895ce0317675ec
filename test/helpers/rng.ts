/** A small seeded PRNG (mulberry32) so generated tests are reproducible by seed. */
export function rng(seed: number): () => number {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let x = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    x = (x + Math.imul(x ^ (x >>> 7), 61 | x)) ^ x;
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296;
  };
}

export const pickFrom = (r: () => number) => <T>(xs: readonly T[]): T => xs[Math.floor(r() * xs.length)]!;
