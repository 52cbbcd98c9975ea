// ops.attention / attentionBackward: host-array wrappers of shaders/attention.wgsl (one batch per
// call). Inputs are checked on the host: inconsistent sizes throw SHAPE_MISMATCH, heads not a
// multiple of kvHeads INVALID_ARGUMENT, a NaN or ±Infinity in any input NON_FINITE.
import { EdgeTuneError, expectDim, expectFinite } from '../errors.js';
import type { Runtime } from '../gpu/runtime.js';
import {
  attentionInfo, attentionStatsFloats, checkAttentionDims, recordAttentionBackward, recordAttentionForward,
  type AttentionSchedule,
} from '../kernels/attention.js';
import { expectF32, withBuffers } from './host.js';

export interface AttentionOptions {
  /** (batch·seq, heads·headDim), row-major: the q projection's output. */
  q: Float32Array;
  /** (batch·seq, kvHeads·headDim). */
  k: Float32Array;
  v: Float32Array;
  batch: number;
  seq: number;
  heads: number;
  /** Key/value heads; heads must be a multiple (grouped-query attention). Default heads. */
  kvHeads?: number;
  headDim: number;
  /** Full-attention prefix: positions < prefix see each other (one for all entries, or one each). Default 0. */
  prefix?: number | ArrayLike<number>;
  /** Valid positions per entry (right padding); padded query rows output 0. Default seq. */
  lengths?: ArrayLike<number>;
  /** Force a kernel schedule (default: the adapter's best). */
  schedule?: AttentionSchedule;
}

export interface AttentionBackwardOptions extends AttentionOptions {
  /** dL/d(output), (batch·seq, heads·headDim). */
  dout: Float32Array;
}

function check(rt: Runtime, op: string, o: AttentionOptions, withDout: boolean) {
  if (!o || typeof o !== 'object') throw new EdgeTuneError('INVALID_ARGUMENT', `ops.${op} needs { q, k, v, batch, seq, heads, kvHeads, headDim }`);
  const d = {
    batch: expectDim('batch', o.batch),
    seq: expectDim('seq', o.seq),
    heads: expectDim('heads', o.heads),
    kvHeads: expectDim('kvHeads', o.kvHeads ?? o.heads),
    headDim: expectDim('headDim', o.headDim),
    schedule: o.schedule,
  };
  checkAttentionDims(rt, d);
  const rows = `${d.batch}·${d.seq}`;
  const qShape = `(batch·seq, heads·headDim) = (${rows}, ${d.heads}·${d.headDim})`;
  const kShape = `(batch·seq, kvHeads·headDim) = (${rows}, ${d.kvHeads}·${d.headDim})`;
  const nq = d.batch * d.seq * d.heads * d.headDim;
  const nk = d.batch * d.seq * d.kvHeads * d.headDim;
  const arrays: [string, Float32Array][] = [
    ['q', expectF32('q', o.q, nq, qShape)],
    ['k', expectF32('k', o.k, nk, kShape)],
    ['v', expectF32('v', o.v, nk, kShape)],
  ];
  if (withDout) arrays.push(['dout', expectF32('dout', (o as AttentionBackwardOptions).dout, nq, qShape)]);
  const info = attentionInfo(d.batch, d.seq, o.lengths, o.prefix ?? 0);
  for (const [name, x] of arrays) expectFinite(name, x);
  return { d, info, nq, nk, arrays: arrays.map(([, x]) => x) };
}

/** softmax(q kᵀ/√headDim + mask) v per head: (batch·seq, heads·headDim), in float32 on the GPU. */
export async function attention(rt: Runtime, o: AttentionOptions): Promise<Float32Array> {
  const { d, info, nq, arrays } = check(rt, 'attention', o, false);
  return withBuffers(rt, [...arrays, info], async ([q, k, v, inf]) => {
    const out = rt.pool.acquire(nq * 4, 'attention.o');
    const stats = rt.pool.acquire(attentionStatsFloats(d) * 4, 'attention.stats');
    try {
      const batch = rt.batch('ops.attention');
      await recordAttentionForward(rt, batch, { ...d, q: q!, k: k!, v: v!, o: out, stats, info: inf! });
      await batch.submit();
      return await rt.readF32(out, nq);
    } finally {
      rt.pool.release(out);
      rt.pool.release(stats);
    }
  });
}

/** Gradients of Σ dout ⊙ attention(q, k, v): dq like q; dk, dv like k, v (summed over each kv head's query heads). */
export async function attentionBackward(rt: Runtime, o: AttentionBackwardOptions): Promise<{ dq: Float32Array; dk: Float32Array; dv: Float32Array }> {
  const { d, info, nq, nk, arrays } = check(rt, 'attentionBackward', o, true);
  return withBuffers(rt, [...arrays, info], async ([q, k, v, dout, inf]) => {
    const out = rt.pool.acquire(nq * 4, 'attention.o');
    const stats = rt.pool.acquire(attentionStatsFloats(d) * 4, 'attention.stats');
    const dq = rt.pool.acquire(nq * 4, 'attention.dq');
    const dk = rt.pool.acquire(nk * 4, 'attention.dk');
    const dv = rt.pool.acquire(nk * 4, 'attention.dv');
    try {
      const batch = rt.batch('ops.attentionBackward');
      const args = { ...d, q: q!, k: k!, v: v!, o: out, stats, info: inf! };
      await recordAttentionForward(rt, batch, args);
      await recordAttentionBackward(rt, batch, { ...args, dout: dout!, dq, dk, dv });
      await batch.submit();
      return { dq: await rt.readF32(dq, nq), dk: await rt.readF32(dk, nk), dv: await rt.readF32(dv, nk) };
    } finally {
      for (const b of [out, stats, dq, dk, dv]) rt.pool.release(b);
    }
  });
}
