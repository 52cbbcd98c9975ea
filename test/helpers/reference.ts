// Float64 CPU references and seeded data for kernel tests.

/** Mulberry32 (the SDK's seeded PRNG), so every test reproduces. */
import { mulberry32 as rng } from '../../sdk/nn/init.js';
export { rng };

/** n uniform values in [lo, hi). */
export function randn(n: number, seed: number, lo = -1, hi = 1): Float32Array {
  const r = rng(seed);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = lo + (hi - lo) * r();
  return out;
}

/** op(A)·op(B) (+bias) in float64, batched. */
export function matmulRef(
  a: ArrayLike<number>, b: ArrayLike<number>,
  m: number, k: number, n: number,
  o: { transA?: boolean; transB?: boolean; bias?: ArrayLike<number>; batch?: number } = {},
): Float64Array {
  const nb = o.batch ?? 1;
  const out = new Float64Array(nb * m * n);
  for (let bi = 0; bi < nb; bi++) {
    const ao = bi * m * k, bo = bi * k * n, co = bi * m * n;
    for (let i = 0; i < m; i++) {
      for (let j = 0; j < n; j++) {
        let s = o.bias ? o.bias[j]! : 0;
        for (let l = 0; l < k; l++) {
          const av = o.transA ? a[ao + l * m + i]! : a[ao + i * k + l]!;
          const bv = o.transB ? b[bo + j * k + l]! : b[bo + l * n + j]!;
          s += av * bv;
        }
        out[co + i * n + j] = s;
      }
    }
  }
  return out;
}

/** max |got − want| / max(1, max |want|): relative error against the reference's scale. */
export function relError(got: ArrayLike<number>, want: ArrayLike<number>): number {
  if (got.length !== want.length) throw new Error(`length ${got.length} != ${want.length}`);
  let scale = 1, err = 0;
  for (let i = 0; i < want.length; i++) scale = Math.max(scale, Math.abs(want[i]!));
  for (let i = 0; i < want.length; i++) {
    const d = Math.abs(got[i]! - want[i]!);
    err = Math.max(err, Number.isNaN(d) ? Infinity : d);
  }
  return err / scale;
}
