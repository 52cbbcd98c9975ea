// Float64 CPU references of LoRA and Dual-LoRA (DESIGN §1.2, §1.3), forward and backward, and
// central finite differences to check the references themselves.
import { matmulRef } from './reference.js';

type Arr = ArrayLike<number>;

export interface LoraRefInput {
  x: Arr; // (m, k)
  w: Arr; // (k, n)
  bias?: Arr; // (n)
  a: Arr; // (k, r)
  b: Arr; // (r, n)
  scale: number;
  m: number;
  k: number;
  n: number;
  r: number;
  /** Dropout factor per x element (0 or 1/(1−p)); absent: no dropout. */
  keep?: Arr;
}

export interface DualLoraRefInput extends LoraRefInput {
  t: Arr; // (k, r)
  gamma: Arr; // (r)
  beta: Arr; // (r)
  eps?: number;
}

const add = (x: Float64Array, y: Arr): Float64Array => {
  for (let i = 0; i < x.length; i++) x[i]! += y[i]!;
  return x;
};
const scaled = (x: Arr, s: number): Float64Array => Float64Array.from(x, (v) => v * s);
const dropped = (i: LoraRefInput): Float64Array => Float64Array.from(i.x, (v, j) => (i.keep ? v * i.keep[j]! : v));

/** Σ dy ⊙ y: the scalar loss whose gradient with respect to y is dy. */
export function lossRef(y: Arr, dy: Arr): number {
  let s = 0;
  for (let i = 0; i < y.length; i++) s += y[i]! * dy[i]!;
  return s;
}

export function loraForwardRef(i: LoraRefInput): { y: Float64Array; u: Float64Array } {
  const { m, k, n, r } = i;
  const u = matmulRef(dropped(i), i.a, m, k, r);
  const y = matmulRef(i.x, i.w, m, k, n, { bias: i.bias });
  add(y, scaled(matmulRef(u, i.b, m, r, n), i.scale));
  return { y, u };
}

export function loraBackwardRef(i: LoraRefInput, dy: Arr): { dx: Float64Array; da: Float64Array; db: Float64Array } {
  const { m, k, n, r, scale } = i;
  const { u } = loraForwardRef(i);
  const du = scaled(matmulRef(dy, i.b, m, n, r, { transB: true }), scale);
  const db = scaled(matmulRef(u, dy, r, m, n, { transA: true }), scale);
  const da = matmulRef(dropped(i), du, k, m, r, { transA: true });
  const dxa = matmulRef(du, i.a, m, r, k, { transB: true });
  if (i.keep) for (let j = 0; j < dxa.length; j++) dxa[j]! *= i.keep[j]!;
  const dx = add(matmulRef(dy, i.w, m, n, k, { transB: true }), dxa);
  return { dx, da, db };
}

export interface DualLoraRefState {
  y: Float64Array;
  u: Float64Array;
  v: Float64Array;
  xhat: Float64Array;
  nrm: Float64Array;
  h: Float64Array;
  rstd: Float64Array;
}

export function dualLoraForwardRef(i: DualLoraRefInput): DualLoraRefState {
  const { m, k, n, r } = i;
  const eps = i.eps ?? 1e-5;
  const u = matmulRef(dropped(i), i.a, m, k, r);
  const v = matmulRef(i.x, i.t, m, k, r);
  const xhat = new Float64Array(m * r);
  const nrm = new Float64Array(m * r);
  const h = new Float64Array(m * r);
  const rstd = new Float64Array(m);
  for (let row = 0; row < m; row++) {
    let mean = 0;
    for (let j = 0; j < r; j++) mean += u[row * r + j]!;
    mean /= r;
    let vr = 0;
    for (let j = 0; j < r; j++) vr += (u[row * r + j]! - mean) ** 2;
    rstd[row] = 1 / Math.sqrt(vr / r + eps);
    for (let j = 0; j < r; j++) {
      const e = row * r + j;
      xhat[e] = (u[e]! - mean) * rstd[row]!;
      nrm[e] = i.gamma[j]! * xhat[e]! + i.beta[j]!;
      h[e] = Math.max(v[e]!, 0) * nrm[e]!;
    }
  }
  const y = matmulRef(i.x, i.w, m, k, n, { bias: i.bias });
  add(y, scaled(matmulRef(h, i.b, m, r, n), i.scale));
  return { y, u, v, xhat, nrm, h, rstd };
}

export interface DualLoraRefGrads {
  dx: Float64Array;
  da: Float64Array;
  dt: Float64Array;
  db: Float64Array;
  dgamma: Float64Array;
  dbeta: Float64Array;
}

/**
 * The backward of DESIGN §1.3, with the gate's subgradient 1[v > 0] (0 at v = 0); `gateAtZero`
 * picks another value at v = 0 (to show a test can tell them apart).
 */
export function dualLoraBackwardRef(i: DualLoraRefInput, dy: Arr, gateAtZero = 0): DualLoraRefGrads {
  const { m, k, n, r, scale } = i;
  const f = dualLoraForwardRef(i);
  const dh = scaled(matmulRef(dy, i.b, m, n, r, { transB: true }), scale);
  const db = scaled(matmulRef(f.h, dy, r, m, n, { transA: true }), scale);
  const dz = new Float64Array(m * r);
  const du = new Float64Array(m * r);
  const dgamma = new Float64Array(r);
  const dbeta = new Float64Array(r);
  for (let row = 0; row < m; row++) {
    const dxh = new Float64Array(r);
    let c1 = 0, c2 = 0;
    for (let j = 0; j < r; j++) {
      const e = row * r + j;
      const gate = f.v[e]! > 0 ? 1 : f.v[e] === 0 ? gateAtZero : 0;
      dz[e] = dh[e]! * f.nrm[e]! * gate;
      const dn = dh[e]! * Math.max(f.v[e]!, 0);
      dgamma[j]! += dn * f.xhat[e]!;
      dbeta[j]! += dn;
      dxh[j] = dn * i.gamma[j]!;
      c1 += dxh[j]!;
      c2 += dxh[j]! * f.xhat[e]!;
    }
    c1 /= r;
    c2 /= r;
    for (let j = 0; j < r; j++) {
      const e = row * r + j;
      du[e] = f.rstd[row]! * (dxh[j]! - c1 - f.xhat[e]! * c2);
    }
  }
  const da = matmulRef(dropped(i), du, k, m, r, { transA: true });
  const dt = matmulRef(i.x, dz, k, m, r, { transA: true });
  const dxa = matmulRef(du, i.a, m, r, k, { transB: true });
  if (i.keep) for (let j = 0; j < dxa.length; j++) dxa[j]! *= i.keep[j]!;
  const dx = add(add(matmulRef(dy, i.w, m, n, k, { transB: true }), dxa), matmulRef(dz, i.t, m, r, k, { transB: true }));
  return { dx, da, dt, db, dgamma, dbeta };
}

/** Central differences of `loss` with respect to every element of `x` (perturbed in place). */
export function finiteDiff(loss: () => number, x: Float64Array, h = 1e-5): Float64Array {
  const g = new Float64Array(x.length);
  for (let i = 0; i < x.length; i++) {
    const v = x[i]!;
    x[i] = v + h;
    const lp = loss();
    x[i] = v - h;
    const lm = loss();
    x[i] = v;
    g[i] = (lp - lm) / (2 * h);
  }
  return g;
}

/** The dropout factors (0 or 1/(1−p)) of a keep mask. */
export function keepFactors(mask: ArrayLike<number>, p: number): Float64Array {
  return Float64Array.from(mask, (v) => (v ? 1 / (1 - p) : 0));
}
