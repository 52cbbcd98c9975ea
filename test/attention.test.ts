// Attention core (shaders/attention.wgsl): ops.attention / attentionBackward and the nn
// Attention layer against a float64 CPU reference (causal + prefix + padding mask, grouped-query
// heads), the reference's backward against central finite differences, the KV cache against
// full recomputation, and the argument errors.
import { describe, expect, it } from 'vitest';
import { Attention, KVCache, Tensor, ops } from '../sdk/index.js';
import { testRuntime } from './helpers/runtime.js';
import { randn, relError } from './helpers/reference.js';
import {
  attentionBackwardRef, attentionLossRef, attentionRef, finiteDiff, type AttentionRefInput,
} from './helpers/attention_ref.js';
import { expectCode, expectRejects } from './helpers/errors.js';

const TOL = 1e-4;

interface Case {
  batch: number;
  seq: number;
  heads: number;
  kvHeads: number;
  headDim: number;
  prefix: number | number[];
  lengths?: number[];
}

function problem(c: Case, seed: number) {
  const nq = c.batch * c.seq * c.heads * c.headDim;
  const nk = c.batch * c.seq * c.kvHeads * c.headDim;
  // Scores of a few units, so that the softmax is far from uniform.
  return {
    ...c,
    q: randn(nq, seed, -2, 2),
    k: randn(nk, seed + 1, -2, 2),
    v: randn(nk, seed + 2),
    dout: randn(nq, seed + 3),
  };
}

const name = (c: Case) =>
  `B=${c.batch} S=${c.seq} Hq/Hkv=${c.heads}/${c.kvHeads} Dh=${c.headDim} prefix=${String(c.prefix)}${c.lengths ? ` lengths=${c.lengths.join(',')}` : ''}`;

describe('attention float64 reference', () => {
  // The reference backward is what the GPU is checked against, so it is checked first.
  const cases: Case[] = [
    { batch: 2, seq: 6, heads: 4, kvHeads: 2, headDim: 4, prefix: [3, 0], lengths: [6, 4] },
    { batch: 1, seq: 5, heads: 3, kvHeads: 1, headDim: 3, prefix: 5 },
    { batch: 1, seq: 4, heads: 2, kvHeads: 2, headDim: 5, prefix: 0 },
  ];
  it.each(cases.map((c) => [name(c), c] as const))('backward equals central differences of Σ dout⊙o (%s)', (_, c) => {
    const p = problem(c, 7);
    const q = Float64Array.from(p.q), k = Float64Array.from(p.k), v = Float64Array.from(p.v);
    const inp: AttentionRefInput = { ...c, q, k, v };
    const loss = () => attentionLossRef(inp, p.dout);
    const g = attentionBackwardRef(inp, p.dout);
    expect(relError(g.dq, finiteDiff(loss, q))).toBeLessThan(1e-7);
    expect(relError(g.dk, finiteDiff(loss, k))).toBeLessThan(1e-7);
    expect(relError(g.dv, finiteDiff(loss, v))).toBeLessThan(1e-7);
  });

  it('the mask: prefix = S is bidirectional, padded rows are 0, a padded entry equals the shorter sequence', () => {
    const c: Case = { batch: 1, seq: 4, heads: 1, kvHeads: 1, headDim: 2, prefix: 4 };
    const p = problem(c, 3);
    // Row 0 with the full prefix sees all 4 keys: o_0 = Σ_j softmax_j(q_0·k_j/√2) v_j.
    const s = [0, 1, 2, 3].map((j) => (p.q[0]! * p.k[2 * j]! + p.q[1]! * p.k[2 * j + 1]!) / Math.SQRT2);
    const z = s.reduce((a, x) => a + Math.exp(x), 0);
    const o0 = [0, 1].map((d) => s.reduce((a, x, j) => a + (Math.exp(x) / z) * p.v[2 * j + d]!, 0));
    const o = attentionRef(p);
    expect(Math.abs(o[0]! - o0[0]!) + Math.abs(o[1]! - o0[1]!)).toBeLessThan(1e-12);
    const padded = attentionRef({ ...p, prefix: 0, lengths: [3] });
    const short = attentionRef({ ...p, seq: 3, prefix: 0, q: p.q.slice(0, 6), k: p.k.slice(0, 6), v: p.v.slice(0, 6) });
    expect(relError(padded.slice(0, 6), short)).toBe(0);
    expect(Array.from(padded.slice(6))).toEqual([0, 0]);
  });
});

describe('ops.attention / attentionBackward against float64', () => {
  const cases: [Case, 'direct' | 'tiled' | undefined][] = [
    [{ batch: 1, seq: 1, heads: 4, kvHeads: 4, headDim: 8, prefix: 0 }, undefined],
    [{ batch: 2, seq: 5, heads: 4, kvHeads: 2, headDim: 12, prefix: 3, lengths: [5, 2] }, undefined],
    [{ batch: 1, seq: 19, heads: 6, kvHeads: 1, headDim: 16, prefix: 19 }, undefined],
    [{ batch: 2, seq: 33, heads: 4, kvHeads: 2, headDim: 8, prefix: 3, lengths: [33, 20] }, undefined],
    [{ batch: 2, seq: 19, heads: 4, kvHeads: 4, headDim: 12, prefix: 0, lengths: [7, 19] }, undefined],
    [{ batch: 1, seq: 33, heads: 6, kvHeads: 1, headDim: 12, prefix: 33 }, undefined],
    [{ batch: 2, seq: 1, heads: 6, kvHeads: 1, headDim: 16, prefix: 1, lengths: [1, 0] }, undefined],
    [{ batch: 2, seq: 33, heads: 4, kvHeads: 4, headDim: 16, prefix: [3, 33], lengths: [30, 33] }, undefined],
    [{ batch: 2, seq: 5, heads: 4, kvHeads: 2, headDim: 6, prefix: 3, lengths: [4, 5] }, undefined], // Dh % 4 ≠ 0: scalar loads
    // The workgroup-tile schedule GPUs get: several tiles of keys and several workgroups of rows.
    [{ batch: 2, seq: 70, heads: 4, kvHeads: 2, headDim: 8, prefix: [3, 40], lengths: [70, 51] }, 'tiled'],
    [{ batch: 1, seq: 19, heads: 6, kvHeads: 1, headDim: 16, prefix: 19 }, 'tiled'],
  ];
  it.each(cases.map(([c, s], i) => [`${name(c)}${s ? ` schedule=${s}` : ''}`, c, s, i] as const))('%s', async (_, c, schedule, i) => {
    const rt = await testRuntime();
    const p = problem(c, 100 + 10 * i);
    const o = await ops.attention(rt, { ...p, schedule });
    expect(relError(o, attentionRef(p))).toBeLessThan(TOL);
    const g = await ops.attentionBackward(rt, { ...p, schedule });
    const want = attentionBackwardRef(p, p.dout);
    expect(relError(g.dq, want.dq)).toBeLessThan(TOL);
    expect(relError(g.dk, want.dk)).toBeLessThan(TOL);
    expect(relError(g.dv, want.dv)).toBeLessThan(TOL);
  });

  it('a padded entry equals its shorter sequence alone; padding gets no output and no gradient', async () => {
    const rt = await testRuntime();
    const c: Case = { batch: 2, seq: 19, heads: 4, kvHeads: 2, headDim: 8, prefix: [3, 5], lengths: [19, 11] };
    const p = problem(c, 31);
    const o = await ops.attention(rt, p);
    const g = await ops.attentionBackward(rt, p);
    const wq = c.heads * c.headDim, wk = c.kvHeads * c.headDim, L = 11;
    const part = (x: Float32Array, w: number, from: number, to: number) => x.slice((19 + from) * w, (19 + to) * w);
    const alone = { ...c, batch: 1, seq: L, prefix: 5, lengths: undefined, q: part(p.q, wq, 0, L), k: part(p.k, wk, 0, L), v: part(p.v, wk, 0, L), dout: part(p.dout, wq, 0, L) };
    const o1 = await ops.attention(rt, alone);
    const g1 = await ops.attentionBackward(rt, alone);
    expect(relError(part(o, wq, 0, L), o1)).toBeLessThan(1e-6);
    expect(relError(part(g.dq, wq, 0, L), g1.dq)).toBeLessThan(1e-6);
    expect(relError(part(g.dk, wk, 0, L), g1.dk)).toBeLessThan(1e-6);
    expect(relError(part(g.dv, wk, 0, L), g1.dv)).toBeLessThan(1e-6);
    for (const [x, w] of [[o, wq], [g.dq, wq], [g.dk, wk], [g.dv, wk]] as const) {
      expect(part(x, w, L, 19).every((y) => y === 0)).toBe(true);
    }
  });

  it('the backward is deterministic (bit-identical on a second run)', async () => {
    const rt = await testRuntime();
    const p = problem({ batch: 2, seq: 33, heads: 4, kvHeads: 2, headDim: 8, prefix: 3, lengths: [33, 20] }, 41);
    const a = await ops.attentionBackward(rt, p);
    const b = await ops.attentionBackward(rt, p);
    expect(Array.from(b.dq)).toEqual(Array.from(a.dq));
    expect(Array.from(b.dk)).toEqual(Array.from(a.dk));
    expect(Array.from(b.dv)).toEqual(Array.from(a.dv));
  });

  it('rejects bad sizes, heads, masks and non-finite inputs', async () => {
    const rt = await testRuntime();
    const p = problem({ batch: 2, seq: 5, heads: 4, kvHeads: 2, headDim: 8, prefix: 0 }, 5);
    await expectRejects(ops.attention(rt, { ...p, q: p.q.slice(1) }), 'SHAPE_MISMATCH');
    await expectRejects(ops.attention(rt, { ...p, k: new Float32Array(p.q.length) }), 'SHAPE_MISMATCH');
    await expectRejects(ops.attentionBackward(rt, { ...p, dout: p.dout.slice(0, 8) }), 'SHAPE_MISMATCH');
    await expectRejects(ops.attention(rt, { ...p, kvHeads: 3 }), 'INVALID_ARGUMENT');
    await expectRejects(ops.attention(rt, { ...p, headDim: 0 }), 'INVALID_ARGUMENT');
    await expectRejects(ops.attention(rt, { ...p, lengths: [5] }), 'SHAPE_MISMATCH');
    await expectRejects(ops.attention(rt, { ...p, lengths: [5, 6] }), 'OUT_OF_RANGE');
    await expectRejects(ops.attention(rt, { ...p, prefix: 6 }), 'OUT_OF_RANGE');
    await expectRejects(ops.attention(rt, { ...p, prefix: [1, 2, 3] }), 'SHAPE_MISMATCH');
    const bad = p.k.slice();
    bad[17] = NaN;
    await expectRejects(ops.attention(rt, { ...p, k: bad }), 'NON_FINITE');
    const inf = p.dout.slice();
    inf[3] = -Infinity;
    await expectRejects(ops.attentionBackward(rt, { ...p, dout: inf }), 'NON_FINITE');
  });
});

describe('nn Attention', () => {
  it('forward and backward on GPU tensors equal the reference (twice, reusing its buffers)', async () => {
    const rt = await testRuntime();
    const c: Case = { batch: 2, seq: 19, heads: 6, kvHeads: 1, headDim: 16, prefix: 4, lengths: [19, 13] };
    const attn = new Attention(rt, { heads: 6, kvHeads: 1, headDim: 16 });
    expect(attn.params('layers.0.attn')).toEqual([]);
    for (const seed of [51, 52]) {
      const p = problem(c, seed);
      const q = Tensor.from(rt, p.q, [38, 96]), k = Tensor.from(rt, p.k, [38, 16]), v = Tensor.from(rt, p.v, [38, 16]);
      const dout = Tensor.from(rt, p.dout, [38, 96]);
      const batch = rt.batch('test.attention');
      const o = await attn.forward(batch, q, k, v, c);
      const g = await attn.backward(batch, dout);
      await batch.submit();
      expect(relError(await o.read(), attentionRef(p))).toBeLessThan(TOL);
      const want = attentionBackwardRef(p, p.dout);
      expect(relError(await g.dq.read(), want.dq)).toBeLessThan(TOL);
      expect(relError(await g.dk.read(), want.dk)).toBeLessThan(TOL);
      expect(relError(await g.dv.read(), want.dv)).toBeLessThan(TOL);
      for (const t of [q, k, v, dout]) t.release();
    }
    attn.clear();
  });

  it('checks tensor sizes and that backward follows a training forward', async () => {
    const rt = await testRuntime();
    const attn = new Attention(rt, { heads: 4, kvHeads: 2, headDim: 8 });
    const q = Tensor.zeros(rt, [10, 32]), k = Tensor.zeros(rt, [10, 16]);
    const batch = rt.batch('test.attention.errors');
    await expectRejects(attn.backward(batch, q), 'INVALID_ARGUMENT');
    await expectRejects(attn.forward(batch, q, q, k, { batch: 2, seq: 5 }), 'SHAPE_MISMATCH');
    await expectRejects(attn.forward(batch, q, k, k, { batch: 2, seq: 6 }), 'SHAPE_MISMATCH');
    attn.training = false;
    await attn.forward(batch, q, k, k, { batch: 2, seq: 5 });
    await expectRejects(attn.backward(batch, q), 'INVALID_ARGUMENT');
    await batch.submit();
    expectCode(() => new Attention(rt, { heads: 6, kvHeads: 4, headDim: 8 }), 'INVALID_ARGUMENT');
    for (const t of [q, k]) t.release();
    attn.clear();
  });
});

describe('KV cache', () => {
  // Rows [from, to) of every entry of a (B·S, w) array, as (B·(to − from), w).
  function rows(x: Float32Array, B: number, S: number, w: number, from: number, to: number): Float32Array {
    const out = new Float32Array(B * (to - from) * w);
    for (let b = 0; b < B; b++) out.set(x.subarray((b * S + from) * w, (b * S + to) * w), b * (to - from) * w);
    return out;
  }

  const cases: [Case, number[], 'direct' | 'tiled' | undefined][] = [
    [{ batch: 2, seq: 19, heads: 4, kvHeads: 2, headDim: 8, prefix: [5, 3] }, [7, 1, 3, 1, 1, 6], undefined],
    [{ batch: 1, seq: 33, heads: 6, kvHeads: 1, headDim: 16, prefix: 0 }, [1, 1, 1, 10, 20], undefined],
    [{ batch: 2, seq: 19, heads: 4, kvHeads: 2, headDim: 8, prefix: [5, 3] }, [5, 1, 13], 'tiled'],
  ];
  it.each(cases.map(([c, steps, s]) => [`${name(c)} steps=${steps.join('+')}${s ? ` schedule=${s}` : ''}`, c, steps, s] as const))(
    'incremental decoding equals full recomputation within 1e-4 (%s)',
    async (_, c, steps, schedule) => {
      const rt = await testRuntime();
      const { batch: B, seq: S, heads: H, kvHeads: HK, headDim: D } = c;
      const attn = new Attention(rt, { heads: H, kvHeads: HK, headDim: D, schedule });
      attn.training = false;
      // Two layers with different data, interleaved, to check that the layers stay apart.
      const layers = [problem(c, 61), problem(c, 71)];
      const full: Float32Array[] = [];
      for (const p of layers) {
        const q = Tensor.from(rt, p.q, [B * S, H * D]), k = Tensor.from(rt, p.k, [B * S, HK * D]), v = Tensor.from(rt, p.v, [B * S, HK * D]);
        const batch = rt.batch('test.full');
        const o = await attn.forward(batch, q, k, v, c);
        await batch.submit();
        full.push(await o.read());
        for (const t of [q, k, v]) t.release();
      }
      // Room for more than S positions: the cache's rows per entry differ from the sequence's.
      const cache = new KVCache(rt, { layers: 2, batch: B, maxPositions: S + 3, kvHeads: HK, headDim: D });
      let t = 0;
      for (const n of steps) {
        for (let l = 0; l < 2; l++) {
          const p = layers[l]!;
          const q = Tensor.from(rt, rows(p.q, B, S, H * D, t, t + n), [B * n, H * D]);
          const k = Tensor.from(rt, rows(p.k, B, S, HK * D, t, t + n), [B * n, HK * D]);
          const v = Tensor.from(rt, rows(p.v, B, S, HK * D, t, t + n), [B * n, HK * D]);
          const batch = rt.batch('test.decode');
          const o = await attn.forwardCached(batch, q, k, v, cache, l, { n, prefix: c.prefix });
          await batch.submit();
          expect(cache.length(l)).toBe(t + n);
          const err = relError(await o.read(), rows(full[l]!, B, S, H * D, t, t + n));
          expect(err).toBeLessThan(TOL);
          for (const x of [q, k, v]) x.release();
        }
        t += n;
      }
      expect(t).toBe(S);
      cache.release();
      attn.clear();
    },
  );

  it('rejects a step inside an unfinished prefix, overflow and mismatched shapes', async () => {
    const rt = await testRuntime();
    const attn = new Attention(rt, { heads: 4, kvHeads: 2, headDim: 8 });
    const cache = new KVCache(rt, { layers: 1, batch: 1, maxPositions: 6, kvHeads: 2, headDim: 8 });
    const q = Tensor.zeros(rt, [3, 32]), k = Tensor.zeros(rt, [3, 16]);
    const batch = rt.batch('test.cache.errors');
    await expectRejects(attn.forwardCached(batch, q, k, k, cache, 0, { n: 3, prefix: 4 }), 'INVALID_ARGUMENT');
    await expectRejects(attn.forwardCached(batch, q, k, k, cache, 0, { n: 3, prefix: 7 }), 'OUT_OF_RANGE');
    await expectRejects(attn.forwardCached(batch, q, k, k, cache, 1, { n: 3 }), 'OUT_OF_RANGE');
    await expectRejects(attn.forwardCached(batch, q, q, k, cache, 0, { n: 3 }), 'SHAPE_MISMATCH');
    await attn.forwardCached(batch, q, k, k, cache, 0, { n: 3, prefix: 3 });
    await attn.forwardCached(batch, q, k, k, cache, 0, { n: 3, prefix: 3 });
    await expectRejects(attn.forwardCached(batch, q, k, k, cache, 0, { n: 1 }), 'OUT_OF_RANGE');
    await batch.submit();
    const other = new KVCache(rt, { layers: 1, batch: 1, maxPositions: 6, kvHeads: 1, headDim: 8 });
    await expectRejects(attn.forwardCached(rt.batch(), q, k, k, other, 0, { n: 1 }), 'SHAPE_MISMATCH');
    for (const x of [q, k]) x.release();
    cache.release();
    other.release();
  });
});
