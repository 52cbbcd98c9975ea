// Float64 CPU reference of grouped-query attention with the causal + prefix + padding mask
// (shaders/attention.wgsl), forward and analytic backward, and central finite differences of
// L = Σ dout ⊙ out to check the reference backward itself.

type Arr = ArrayLike<number>;

export interface AttentionRefInput {
  q: Arr; // (B·S, Hq·Dh)
  k: Arr; // (B·S, Hkv·Dh)
  v: Arr; // (B·S, Hkv·Dh)
  batch: number;
  seq: number;
  heads: number;
  kvHeads: number;
  headDim: number;
  /** Full-attention prefix, one for all entries or one per entry. Default 0. */
  prefix?: number | ArrayLike<number>;
  /** Valid positions per entry. Default seq. */
  lengths?: ArrayLike<number>;
}

/** Whether query position i of entry b attends key position j. */
export function attends(inp: AttentionRefInput, b: number, i: number, j: number): boolean {
  const len = inp.lengths ? inp.lengths[b]! : inp.seq;
  const pre = typeof inp.prefix === 'number' ? inp.prefix : inp.prefix ? inp.prefix[b]! : 0;
  if (i >= len || j >= len) return false;
  return j <= i || (i < pre && j < pre);
}

interface Probs {
  /** p[((b·Hq + h)·S + i)·S + j], 0 where masked (and for padded query rows). */
  p: Float64Array;
}

function probs(inp: AttentionRefInput): Probs {
  const { batch: B, seq: S, heads: H, kvHeads: HK, headDim: D } = inp;
  const G = H / HK;
  const scale = 1 / Math.sqrt(D);
  const p = new Float64Array(B * H * S * S);
  const s = new Float64Array(S);
  for (let b = 0; b < B; b++) {
    for (let h = 0; h < H; h++) {
      const hk = Math.floor(h / G);
      for (let i = 0; i < S; i++) {
        let mx = -Infinity;
        for (let j = 0; j < S; j++) {
          if (!attends(inp, b, i, j)) continue;
          let dot = 0;
          for (let d = 0; d < D; d++) dot += inp.q[((b * S + i) * H + h) * D + d]! * inp.k[((b * S + j) * HK + hk) * D + d]!;
          s[j] = scale * dot;
          mx = Math.max(mx, s[j]!);
        }
        if (mx === -Infinity) continue;
        let sum = 0;
        for (let j = 0; j < S; j++) if (attends(inp, b, i, j)) sum += Math.exp(s[j]! - mx);
        const row = ((b * H + h) * S + i) * S;
        for (let j = 0; j < S; j++) if (attends(inp, b, i, j)) p[row + j] = Math.exp(s[j]! - mx) / sum;
      }
    }
  }
  return { p };
}

/** o (B·S, Hq·Dh): rows of padded query positions are 0. */
export function attentionRef(inp: AttentionRefInput): Float64Array {
  const { batch: B, seq: S, heads: H, kvHeads: HK, headDim: D } = inp;
  const G = H / HK;
  const { p } = probs(inp);
  const o = new Float64Array(B * S * H * D);
  for (let b = 0; b < B; b++) {
    for (let h = 0; h < H; h++) {
      const hk = Math.floor(h / G);
      for (let i = 0; i < S; i++) {
        const row = ((b * H + h) * S + i) * S;
        const out = ((b * S + i) * H + h) * D;
        for (let j = 0; j < S; j++) {
          const pij = p[row + j]!;
          if (pij === 0) continue;
          for (let d = 0; d < D; d++) o[out + d]! += pij * inp.v[((b * S + j) * HK + hk) * D + d]!;
        }
      }
    }
  }
  return o;
}

/** dq, dk, dv of L = Σ dout ⊙ o (dk, dv summed over the query heads of each kv head). */
export function attentionBackwardRef(inp: AttentionRefInput, dout: Arr): { dq: Float64Array; dk: Float64Array; dv: Float64Array } {
  const { batch: B, seq: S, heads: H, kvHeads: HK, headDim: D } = inp;
  const G = H / HK;
  const scale = 1 / Math.sqrt(D);
  const { p } = probs(inp);
  const dq = new Float64Array(B * S * H * D);
  const dk = new Float64Array(B * S * HK * D);
  const dv = new Float64Array(B * S * HK * D);
  const dp = new Float64Array(S);
  for (let b = 0; b < B; b++) {
    for (let h = 0; h < H; h++) {
      const hk = Math.floor(h / G);
      for (let i = 0; i < S; i++) {
        const row = ((b * H + h) * S + i) * S;
        const qi = ((b * S + i) * H + h) * D;
        // dP_ij = dO_i · v_j; dS_ij = P_ij (dP_ij − Σ_k P_ik dP_ik).
        let sum = 0;
        for (let j = 0; j < S; j++) {
          dp[j] = 0;
          if (p[row + j] === 0) continue;
          const kj = ((b * S + j) * HK + hk) * D;
          for (let d = 0; d < D; d++) dp[j]! += dout[qi + d]! * inp.v[kj + d]!;
          sum += p[row + j]! * dp[j]!;
        }
        for (let j = 0; j < S; j++) {
          const pij = p[row + j]!;
          if (pij === 0) continue;
          const kj = ((b * S + j) * HK + hk) * D;
          const ds = pij * (dp[j]! - sum);
          for (let d = 0; d < D; d++) {
            dq[qi + d]! += scale * ds * inp.k[kj + d]!;
            dk[kj + d]! += scale * ds * inp.q[qi + d]!;
            dv[kj + d]! += pij * dout[qi + d]!;
          }
        }
      }
    }
  }
  return { dq, dk, dv };
}

/** Σ dout ⊙ o. */
export function attentionLossRef(inp: AttentionRefInput, dout: Arr): number {
  const o = attentionRef(inp);
  let s = 0;
  for (let i = 0; i < o.length; i++) s += o[i]! * dout[i]!;
  return s;
}

/** Central differences of `loss` with respect to every element of `x` (perturbed in place). */
export function finiteDiff(loss: () => number, x: Float64Array, h = 1e-5): Float64Array {
  const g = new Float64Array(x.length);
  for (let i = 0; i < x.length; i++) {
    const x0 = x[i]!;
    x[i] = x0 + h;
    const lp = loss();
    x[i] = x0 - h;
    const lm = loss();
    x[i] = x0;
    g[i] = (lp - lm) / (2 * h);
  }
  return g;
}
