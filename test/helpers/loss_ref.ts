// Float64 CPU references for the loss and grounding-label kernels (DESIGN §1.4, §1.5).
// Written straight from the definitions (sums over the support of the target), not from the
// shader's rearranged forms.

export type H = 'linear' | 'logsigmoid';
/** A row's target as (class, mass) pairs: hard y is [[y, 1]]; null = no target. */
export type Pairs = [number, number][] | null;

export const sigmoid = (x: number) => (x >= 0 ? 1 / (1 + Math.exp(-x)) : Math.exp(x) / (1 + Math.exp(x)));

/** The pairs of row r: Int32Array (−100 = none) or dense soft rows (all zero = none). */
export function rowPairs(targets: Int32Array | { soft: Float32Array }, r: number, V: number): Pairs {
  if (targets instanceof Int32Array) {
    const y = targets[r]!;
    return y === -100 ? null : [[y, 1]];
  }
  const out: [number, number][] = [];
  for (let j = 0; j < V; j++) {
    const q = targets.soft[r * V + j]!;
    if (q !== 0) out.push([j, q]);
  }
  return out.length ? out : null;
}

/** s = softmax(z/β) and log Σ exp(z) in float64. */
export function softmaxes(z: ArrayLike<number>, beta: number): { s: Float64Array; lse: number } {
  const V = z.length;
  let M = -Infinity;
  for (let j = 0; j < V; j++) M = Math.max(M, z[j]!);
  let z1 = 0, zb = 0;
  const s = new Float64Array(V);
  for (let j = 0; j < V; j++) {
    z1 += Math.exp(z[j]! - M);
    s[j] = Math.exp((z[j]! - M) / beta);
    zb += s[j]!;
  }
  for (let j = 0; j < V; j++) s[j]! /= zb;
  return { s, lse: M + Math.log(z1) };
}

const weight = (h: H, zj: number, zk: number) => (h === 'linear' ? 1 : sigmoid(0.01 * (zj - zk)));

/**
 * GEM with s and w evaluated at z0 and held constant (DESIGN §1.4), at logits z:
 * ℓ = Σ_k q_k Σ_j s0_j w_j(k; z0) (z_j − z_k). Linear in z; its gradient is GEM's gradient.
 */
export function gemFrozen(z: ArrayLike<number>, z0: ArrayLike<number>, s0: Float64Array, pairs: [number, number][], h: H): number {
  let l = 0;
  for (const [k, q] of pairs) {
    let a = 0;
    for (let j = 0; j < z.length; j++) a += s0[j]! * weight(h, z0[j]!, z0[k]!) * (z[j]! - z[k]!);
    l += q * a;
  }
  return l;
}

/** Cross-entropy −Σ_k q_k log softmax(z)_k. */
export function ceRow(z: ArrayLike<number>, pairs: [number, number][]): number {
  const { lse } = softmaxes(z, 1);
  let l = 0;
  for (const [k, q] of pairs) l += q * (lse - z[k]!);
  return l;
}

/** One row: GEM, CE and dGEM/dz (s, w constant): Σ_k q_k (s_m w_m(k) − [m = k] Σ_j s_j w_j(k)). */
export function gemRow(z: ArrayLike<number>, pairs: [number, number][], beta: number, h: H): { gem: number; ce: number; grad: Float64Array } {
  const V = z.length;
  const { s } = softmaxes(z, beta);
  const grad = new Float64Array(V);
  for (const [k, q] of pairs) {
    let B = 0;
    for (let m = 0; m < V; m++) {
      const sw = s[m]! * weight(h, z[m]!, z[k]!);
      grad[m]! += q * sw;
      B += sw;
    }
    grad[k]! -= q * B;
  }
  return { gem: gemFrozen(z, z, s, pairs, h), ce: ceRow(z, pairs), grad };
}

export interface LossRef {
  gem: number;
  ce: number;
  count: number;
  rowGem: Float64Array;
  rowCe: Float64Array;
  /** d(mean GEM)/dz. */
  grad: Float64Array;
}

/** Means over the rows that have a target; the gradient carries 1/count. `pairs(r)` is row r's target. */
export function lossRefPairs(logits: Float32Array, rows: number, V: number, pairs: (r: number) => Pairs, beta: number, h: H): LossRef {
  const rowGem = new Float64Array(rows);
  const rowCe = new Float64Array(rows);
  const grad = new Float64Array(rows * V);
  let count = 0;
  for (let r = 0; r < rows; r++) {
    const pr = pairs(r);
    if (!pr) continue;
    count++;
    const z = Float64Array.from(logits.subarray(r * V, (r + 1) * V));
    const row = gemRow(z, pr, beta, h);
    rowGem[r] = row.gem;
    rowCe[r] = row.ce;
    grad.set(row.grad, r * V);
  }
  let gem = 0, ce = 0;
  for (let r = 0; r < rows; r++) {
    gem += rowGem[r]!;
    ce += rowCe[r]!;
  }
  const inv = count ? 1 / count : 0;
  for (let i = 0; i < grad.length; i++) grad[i]! *= inv;
  return { gem: gem * inv, ce: ce * inv, count, rowGem, rowCe, grad };
}

/** lossRefPairs for ops-style targets (Int32Array or dense soft rows). */
export function lossRef(logits: Float32Array, rows: number, V: number, targets: Int32Array | { soft: Float32Array }, beta: number, h: H): LossRef {
  return lossRefPairs(logits, rows, V, (r) => rowPairs(targets, r, V), beta, h);
}

/**
 * Tolerance for a mean of per-row values: 1e-4 relative to the mean magnitude of the rows (GEM
 * can be near zero or negative while its rows are not, so relative-to-result is meaningless).
 */
export function meanTol(rowValues: Float64Array, count: number, rtol = 1e-4): number {
  let s = 0;
  for (const v of rowValues) s += Math.abs(v);
  return rtol * Math.max(1, count ? s / count : 0);
}

/**
 * Max over elements of |got − want| / max(|want|, floor·max|want|): elementwise relative error,
 * with entries far below the largest one compared at floor × that scale.
 */
export function maxRelErr(got: ArrayLike<number>, want: ArrayLike<number>, floor = 1e-3): number {
  if (got.length !== want.length) throw new Error(`length ${got.length} != ${want.length}`);
  let scale = 0;
  for (let i = 0; i < want.length; i++) scale = Math.max(scale, Math.abs(want[i]!));
  const f = Math.max(floor * scale, 1e-30);
  let err = 0;
  for (let i = 0; i < want.length; i++) {
    const d = Math.abs(got[i]! - want[i]!) / Math.max(Math.abs(want[i]!), f);
    err = Math.max(err, Number.isNaN(d) ? Infinity : d);
  }
  return err;
}

// ---- grounding labels -----------------------------------------------------------------------
export type RefCodec = { kind: 'patch2d'; grid: number } | { kind: 'bins1d'; bins: number; quantize?: 'floor' | 'round' };
export type RefKernel = { kind: 'inverse'; power: number; eps: number; radius: number } | { kind: 'gaussian'; sigma: number };

/** q' over the cells for one point (pos: [x, y] or [x]) with hard cell `hard`, from DESIGN §1.5. */
export function labelRow(codec: RefCodec, pos: number[], hard: number, kernel: RefKernel, mix: number): Float64Array {
  const n = codec.kind === 'patch2d' ? codec.grid * codec.grid : codec.bins;
  const w = new Float64Array(n);
  for (let k = 0; k < n; k++) {
    let d: number;
    if (codec.kind === 'patch2d') {
      const G = codec.grid;
      d = Math.hypot((k % G) + 0.5 - pos[0]! * G, Math.floor(k / G) + 0.5 - pos[1]! * G);
    } else if (codec.quantize === 'round') {
      d = Math.abs(k - pos[0]! * (codec.bins - 1));
    } else {
      d = Math.abs(k + 0.5 - pos[0]! * codec.bins);
    }
    w[k] = kernel.kind === 'gaussian' ? Math.exp(-(d * d) / (2 * kernel.sigma ** 2)) : d <= kernel.radius ? 1 / (d + kernel.eps) ** kernel.power : 0;
  }
  const sum = w.reduce((a, b) => a + b, 0);
  for (let k = 0; k < n; k++) w[k] = (1 - mix) * (k === hard ? 1 : 0) + mix * (sum > 0 ? w[k]! / sum : k === hard ? 1 : 0);
  return w;
}
