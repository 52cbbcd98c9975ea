// Float64 CPU references of the nn layers (forward and analytic backward), and central finite
// differences in float64 to check the references themselves against L = Σ dy ⊙ y.
import { matmulRef } from './reference.js';

type Arr = ArrayLike<number>;
const f64 = (x: Arr): Float64Array => Float64Array.from(x);

/** Σ dy ⊙ y: the scalar loss whose gradient with respect to y is dy. */
export function dotLoss(y: Arr, dy: Arr): number {
  let s = 0;
  for (let i = 0; i < y.length; i++) s += y[i]! * dy[i]!;
  return s;
}

/**
 * Central differences of `loss` with respect to each element of `x` (changed in place and
 * restored). float64 throughout: with h = 1e-5 the truncation error is O(h²) ≈ 1e-10 relative
 * and the rounding error O(ε/h) ≈ 1e-11, far below the 1e-7 the reference checks ask.
 */
export function finiteDiff(loss: () => number, x: Float64Array, h = 1e-5): Float64Array {
  const g = new Float64Array(x.length);
  for (let i = 0; i < x.length; i++) {
    const v = x[i]!;
    x[i] = v + h;
    const up = loss();
    x[i] = v - h;
    const down = loss();
    x[i] = v;
    g[i] = (up - down) / (2 * h);
  }
  return g;
}

// ---- RMSNorm / LayerNorm ---------------------------------------------------------------------
export interface NormRefInput {
  kind: 'rms' | 'layer';
  x: Arr; // (rows, d)
  gamma: Arr; // (d)
  beta?: Arr; // (d), LayerNorm
  rows: number;
  d: number;
  eps: number;
}

export function normRef(i: NormRefInput): { y: Float64Array; mu: Float64Array; rstd: Float64Array } {
  const { rows, d } = i;
  const y = new Float64Array(rows * d);
  const mu = new Float64Array(rows);
  const rstd = new Float64Array(rows);
  for (let r = 0; r < rows; r++) {
    let m = 0;
    if (i.kind === 'layer') {
      for (let j = 0; j < d; j++) m += i.x[r * d + j]!;
      m /= d;
    }
    let v = 0;
    for (let j = 0; j < d; j++) v += (i.x[r * d + j]! - m) ** 2;
    const s = 1 / Math.sqrt(v / d + i.eps);
    mu[r] = m;
    rstd[r] = s;
    for (let j = 0; j < d; j++) y[r * d + j] = (i.x[r * d + j]! - m) * s * i.gamma[j]! + (i.kind === 'layer' ? i.beta![j]! : 0);
  }
  return { y, mu, rstd };
}

export function normBackwardRef(i: NormRefInput, dy: Arr): { dx: Float64Array; dgamma: Float64Array; dbeta: Float64Array } {
  const { rows, d } = i;
  const { mu, rstd } = normRef(i);
  const dx = new Float64Array(rows * d);
  const dgamma = new Float64Array(d);
  const dbeta = new Float64Array(d);
  for (let r = 0; r < rows; r++) {
    const xhat = (j: number) => (i.x[r * d + j]! - mu[r]!) * rstd[r]!;
    let sg = 0, sgx = 0;
    for (let j = 0; j < d; j++) {
      const g = dy[r * d + j]! * i.gamma[j]!;
      sg += g;
      sgx += g * xhat(j);
      dgamma[j] += dy[r * d + j]! * xhat(j);
      dbeta[j] += dy[r * d + j]!;
    }
    const mg = i.kind === 'layer' ? sg / d : 0;
    for (let j = 0; j < d; j++) dx[r * d + j] = rstd[r]! * (dy[r * d + j]! * i.gamma[j]! - mg - xhat(j) * (sgx / d));
  }
  return { dx, dgamma, dbeta };
}

// ---- token embedding -------------------------------------------------------------------------
export function embeddingRef(table: Arr, ids: ArrayLike<number>, d: number): Float64Array {
  const out = new Float64Array(ids.length * d);
  for (let t = 0; t < ids.length; t++) for (let j = 0; j < d; j++) out[t * d + j] = table[ids[t]! * d + j]!;
  return out;
}

export function embeddingBackwardRef(dy: Arr, ids: ArrayLike<number>, vocab: number, d: number): Float64Array {
  const g = new Float64Array(vocab * d);
  for (let t = 0; t < ids.length; t++) for (let j = 0; j < d; j++) g[ids[t]! * d + j] += dy[t * d + j]!;
  return g;
}

// ---- RoPE (rotate_half) ------------------------------------------------------------------------
export function ropeRef(x: Arr, pos: ArrayLike<number>, heads: number, headDim: number, base: number, inverse = false): Float64Array {
  const rows = pos.length;
  const half = headDim / 2;
  const y = new Float64Array(rows * heads * headDim);
  for (let r = 0; r < rows; r++) {
    for (let h = 0; h < heads; h++) {
      const o = (r * heads + h) * headDim;
      for (let i = 0; i < half; i++) {
        const a = pos[r]! * Math.pow(base, (-2 * i) / headDim) * (inverse ? -1 : 1);
        const x1 = x[o + i]!, x2 = x[o + i + half]!;
        y[o + i] = x1 * Math.cos(a) - x2 * Math.sin(a);
        y[o + i + half] = x2 * Math.cos(a) + x1 * Math.sin(a);
      }
    }
  }
  return y;
}

// ---- activations -------------------------------------------------------------------------------
/** erf in float64: its Maclaurin series below 2.5, a continued fraction for erfc above. */
export function erf(x: number): number {
  const a = Math.abs(x);
  let r: number;
  if (a < 2.5) {
    let term = a, sum = a;
    for (let n = 1; n < 200 && Math.abs(term) > 1e-18 * Math.abs(sum); n++) {
      term *= (-a * a) / n;
      sum += term / (2 * n + 1);
    }
    r = (2 / Math.sqrt(Math.PI)) * sum;
  } else {
    // erfc(a) = exp(−a²)/√π · 1/(a + (1/2)/(a + 1/(a + (3/2)/(a + ...))))
    let f = a;
    for (let n = 120; n >= 1; n--) f = a + n / 2 / f;
    r = 1 - Math.exp(-a * a) / Math.sqrt(Math.PI) / f;
  }
  return x < 0 ? -r : r;
}

const sigmoid = (z: number) => 1 / (1 + Math.exp(-z));
const phi = (z: number) => 0.5 * (1 + erf(z / Math.SQRT2));

export function swigluRef(gate: Arr, up: Arr): Float64Array {
  return Float64Array.from(gate, (g, i) => g * sigmoid(g) * up[i]!);
}

export function swigluBackwardRef(gate: Arr, up: Arr, dh: Arr): { dgate: Float64Array; dup: Float64Array } {
  const dgate = Float64Array.from(gate, (g, i) => {
    const s = sigmoid(g);
    return dh[i]! * up[i]! * s * (1 + g * (1 - s));
  });
  const dup = Float64Array.from(gate, (g, i) => dh[i]! * g * sigmoid(g));
  return { dgate, dup };
}

export function geluRef(z: Arr): Float64Array {
  return Float64Array.from(z, (v) => v * phi(v));
}

export function geluBackwardRef(z: Arr, dy: Arr): Float64Array {
  return Float64Array.from(z, (v, i) => dy[i]! * (phi(v) + (v * Math.exp(-0.5 * v * v)) / Math.sqrt(2 * Math.PI)));
}

// ---- ViT patches -------------------------------------------------------------------------------
export function im2colRef(img: Arr, B: number, C: number, H: number, W: number, p: number): Float64Array {
  const gw = W / p, P = (H / p) * gw, K = C * p * p;
  const out = new Float64Array(B * P * K);
  for (let b = 0; b < B; b++)
    for (let pr = 0; pr < H / p; pr++)
      for (let pc = 0; pc < gw; pc++)
        for (let c = 0; c < C; c++)
          for (let ky = 0; ky < p; ky++)
            for (let kx = 0; kx < p; kx++)
              out[(b * P + pr * gw + pc) * K + c * p * p + ky * p + kx] = img[((b * C + c) * H + pr * p + ky) * W + pc * p + kx]!;
  return out;
}

/** A direct convolution with kernel = stride = p: out[b, pr·gw + pc, o] = bias[o] + Σ w[o, c, ky, kx] · img. */
export function convPatchRef(img: Arr, convW: Arr, bias: Arr, B: number, C: number, H: number, W: number, p: number, d: number): Float64Array {
  const gw = W / p, P = (H / p) * gw;
  const out = new Float64Array(B * P * d);
  for (let b = 0; b < B; b++)
    for (let pr = 0; pr < H / p; pr++)
      for (let pc = 0; pc < gw; pc++)
        for (let o = 0; o < d; o++) {
          let s = bias[o]!;
          for (let c = 0; c < C; c++)
            for (let ky = 0; ky < p; ky++)
              for (let kx = 0; kx < p; kx++) s += convW[((o * C + c) * p + ky) * p + kx]! * img[((b * C + c) * H + pr * p + ky) * W + pc * p + kx]!;
          out[(b * P + pr * gw + pc) * d + o] = s;
        }
  return out;
}

// ---- Dense (y = x W + b) and the MLPs -----------------------------------------------------------
export function denseRef(x: Arr, w: Arr, b: Arr | undefined, m: number, k: number, n: number): Float64Array {
  return matmulRef(x, w, m, k, n, { bias: b });
}

export function denseBackwardRef(x: Arr, w: Arr, dy: Arr, m: number, k: number, n: number): { dx: Float64Array; dw: Float64Array; db: Float64Array } {
  const dx = matmulRef(dy, w, m, n, k, { transB: true });
  const dw = matmulRef(x, dy, k, m, n, { transA: true });
  const db = new Float64Array(n);
  for (let i = 0; i < m; i++) for (let j = 0; j < n; j++) db[j] += dy[i * n + j]!;
  return { dx, dw, db };
}

export interface SwigluMlpRef {
  x: Arr; wg: Arr; wu: Arr; wd: Arr; // (m,d) (d,f) (d,f) (f,d)
  m: number; d: number; f: number;
}

export function swigluMlpRef(i: SwigluMlpRef): Float64Array {
  const g = matmulRef(i.x, i.wg, i.m, i.d, i.f);
  const u = matmulRef(i.x, i.wu, i.m, i.d, i.f);
  return matmulRef(swigluRef(g, u), i.wd, i.m, i.f, i.d);
}

export function swigluMlpBackwardRef(i: SwigluMlpRef, dy: Arr) {
  const { m, d, f } = i;
  const g = matmulRef(i.x, i.wg, m, d, f);
  const u = matmulRef(i.x, i.wu, m, d, f);
  const h = swigluRef(g, u);
  const down = denseBackwardRef(h, i.wd, dy, m, f, d);
  const { dgate, dup } = swigluBackwardRef(g, u, down.dx);
  const gate = denseBackwardRef(i.x, i.wg, dgate, m, d, f);
  const upB = denseBackwardRef(i.x, i.wu, dup, m, d, f);
  const dx = Float64Array.from(gate.dx, (v, j) => v + upB.dx[j]!);
  return { dx, dwg: gate.dw, dwu: upB.dw, dwd: down.dw };
}

export interface GeluMlpRef {
  x: Arr; w1: Arr; b1: Arr; w2: Arr; b2: Arr; // (m,d) (d,f) (f) (f,d) (d)
  m: number; d: number; f: number;
}

export function geluMlpRef(i: GeluMlpRef): Float64Array {
  return matmulRef(geluRef(matmulRef(i.x, i.w1, i.m, i.d, i.f, { bias: i.b1 })), i.w2, i.m, i.f, i.d, { bias: i.b2 });
}

export function geluMlpBackwardRef(i: GeluMlpRef, dy: Arr) {
  const { m, d, f } = i;
  const z = matmulRef(i.x, i.w1, m, d, f, { bias: i.b1 });
  const fc2 = denseBackwardRef(geluRef(z), i.w2, dy, m, f, d);
  const fc1 = denseBackwardRef(i.x, i.w1, geluBackwardRef(z, fc2.dx), m, d, f);
  return { dx: fc1.dx, dw1: fc1.dw, db1: fc1.db, dw2: fc2.dw, db2: fc2.db };
}

export { f64 };

// ---- convolutional stem ------------------------------------------------------------------------
/** Element (b, c, y, x) of a map in NCHW ('nchw') or rows-of-channels ('rows') layout. */
function mapAt(layout: 'nchw' | 'rows', B: number, C: number, H: number, W: number) {
  return (b: number, c: number, y: number, x: number) => (layout === 'nchw' ? ((b * C + c) * H + y) * W + x : ((b * H + y) * W + x) * C + c);
}

/** Output side of a 3×3 pad-1 convolution at `stride` over a side of n. */
export const convSideRef = (n: number, stride: number) => Math.floor((n + 2 - 3) / stride) + 1;

/** Coordinate channel e (0: the column, 1: the row) at pixel (y, x) of an H×W map: (2·i + 1)/n − 1. */
export const coordRef = (e: number, y: number, x: number, H: number, W: number) => (e === 0 ? (2 * x + 1) / W - 1 : (2 * y + 1) / H - 1);

/**
 * cols (B·Ho·Wo, 9·C') of a 3×3 convolution at `stride` with `pad` zeros before the map over (B, C, H, W),
 * column c·9 + ky·3 + kx; with `coords` channels C and C + 1 are the coordinates (C' = C + 2).
 */
export function convColsRef(x: Arr, layout: 'nchw' | 'rows', B: number, C: number, H: number, W: number, stride = 1, pad = 1, coords = false): Float64Array {
  const at = mapAt(layout, B, C, H, W);
  const Ho = convSideRef(H, stride), Wo = convSideRef(W, stride), Ci = C + (coords ? 2 : 0);
  const out = new Float64Array(B * Ho * Wo * 9 * Ci);
  for (let b = 0; b < B; b++) for (let y = 0; y < Ho; y++) for (let xx = 0; xx < Wo; xx++) for (let c = 0; c < Ci; c++) for (let ky = 0; ky < 3; ky++) for (let kx = 0; kx < 3; kx++) {
    const sy = stride * y + ky - pad, sx = stride * xx + kx - pad;
    if (sy < 0 || sy >= H || sx < 0 || sx >= W) continue;
    out[((b * Ho + y) * Wo + xx) * 9 * Ci + c * 9 + ky * 3 + kx] = c < C ? x[at(b, c, sy, sx)]! : coordRef(c - C, sy, sx, H, W);
  }
  return out;
}

/** The adjoint of convColsRef in the rows layout: dx (B·H·W, C) from dcols (B·Ho·Wo, 9·C'); the coordinates' columns have no input. */
export function convColsBackwardRef(dcols: Arr, B: number, C: number, H: number, W: number, stride = 1, pad = 1, coords = false): Float64Array {
  const Ho = convSideRef(H, stride), Wo = convSideRef(W, stride), Ci = C + (coords ? 2 : 0);
  const dx = new Float64Array(B * H * W * C);
  for (let b = 0; b < B; b++) for (let y = 0; y < Ho; y++) for (let xx = 0; xx < Wo; xx++) for (let c = 0; c < C; c++) for (let ky = 0; ky < 3; ky++) for (let kx = 0; kx < 3; kx++) {
    const sy = stride * y + ky - pad, sx = stride * xx + kx - pad;
    if (sy < 0 || sy >= H || sx < 0 || sx >= W) continue;
    dx[((b * H + sy) * W + sx) * C + c] += dcols[((b * Ho + y) * Wo + xx) * 9 * Ci + c * 9 + ky * 3 + kx]!;
  }
  return dx;
}

/** 2×2 max pooling of a (B·H·W, C): y and, per output, the input index of the window's first maximum. */
export function maxPool2Ref(a: Arr, B: number, C: number, H: number, W: number): { y: Float64Array; arg: Int32Array } {
  const Ho = H / 2, Wo = W / 2;
  const y = new Float64Array(B * Ho * Wo * C), arg = new Int32Array(y.length);
  for (let b = 0; b < B; b++) for (let i = 0; i < Ho; i++) for (let j = 0; j < Wo; j++) for (let c = 0; c < C; c++) {
    const o = ((b * Ho + i) * Wo + j) * C + c;
    let best = -1;
    for (const [dy, dx] of [[0, 0], [0, 1], [1, 0], [1, 1]] as const) {
      const k = ((b * H + 2 * i + dy) * W + 2 * j + dx) * C + c;
      if (best < 0 || a[k]! > a[best]!) best = k;
    }
    y[o] = a[best]!;
    arg[o] = best;
  }
  return { y, arg };
}

export interface StemRefInput {
  pixels: Arr;
  B: number;
  size: number;
  channels: readonly number[];
  /** Per stage: W (9·Cin', Cout) and b (Cout); Cin' = Cin + 2 with coords. */
  weights: Float64Array[];
  biases: Float64Array[];
  /** 'pool' (conv → GELU → 2×2 max pool; default) or 'stride' (stride-2 conv → GELU, leading pad 1 on even stages, 0 on odd). */
  downsample?: 'pool' | 'stride';
  /** Two coordinate channels on every convolution's input (CoordConv). */
  coords?: boolean;
}

/** The stem's forward in float64: rows (B·g·g, C_k), and what the backward needs. */
export function stemRef(i: StemRefInput) {
  let x: Float64Array = f64(i.pixels);
  let cin = 3, side = i.size;
  const stride = i.downsample === 'stride' ? 2 : 1;
  const extra = i.coords ? 2 : 0;
  const saved: { cols: Float64Array; z: Float64Array; arg: Int32Array | null; cin: number; side: number; pad: number }[] = [];
  i.channels.forEach((cout, s) => {
    const pad = stride === 2 ? 1 - (s % 2) : 1;
    const cols = convColsRef(x, s === 0 ? 'nchw' : 'rows', i.B, cin, side, side, stride, pad, i.coords);
    const rows = i.B * convSideRef(side, stride) ** 2;
    const z = matmulRef(cols, i.weights[s]!, rows, 9 * (cin + extra), cout, { bias: i.biases[s] });
    if (stride === 2) {
      saved.push({ cols, z, arg: null, cin, side, pad });
      x = geluRef(z);
    } else {
      const { y, arg } = maxPool2Ref(geluRef(z), i.B, cout, side, side);
      saved.push({ cols, z, arg, cin, side, pad });
      x = y;
    }
    cin = cout;
    side /= 2;
  });
  return { y: x, saved };
}

/** Analytic gradients of L = Σ dy ⊙ stem(pixels) for every stage's W and b. */
export function stemBackwardRef(i: StemRefInput, dy: Arr): { dW: Float64Array[]; db: Float64Array[] } {
  const { saved } = stemRef(i);
  const dW: Float64Array[] = [], db: Float64Array[] = [];
  let g: Float64Array = f64(dy);
  const extra = i.coords ? 2 : 0;
  for (let s = i.channels.length - 1; s >= 0; s--) {
    const { cols, z, arg, cin, side, pad } = saved[s]!;
    const stride = arg ? 1 : 2;
    const cout = i.channels[s]!, rows = i.B * convSideRef(side, stride) ** 2;
    let da = g;
    if (arg) {
      da = new Float64Array(rows * cout);
      arg.forEach((k, o) => (da[k] += g[o]!));
    }
    const dz = geluBackwardRef(z, da);
    dW[s] = matmulRef(cols, dz, 9 * (cin + extra), rows, cout, { transA: true });
    db[s] = new Float64Array(cout);
    for (let r = 0; r < rows; r++) for (let c = 0; c < cout; c++) db[s]![c] += dz[r * cout + c]!;
    if (s > 0) g = convColsBackwardRef(matmulRef(dz, i.weights[s]!, rows, cout, 9 * (cin + extra), { transB: true }), i.B, cin, side, side, stride, pad, i.coords);
  }
  return { dW, db };
}
