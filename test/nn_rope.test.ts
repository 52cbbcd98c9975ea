// RoPE (shaders/rope.wgsl), the Llama / HF rotate_half convention: the float64 reference's
// backward against finite differences, then ops and the Rope layer against the reference at
// arbitrary positions, in place and out of place, and inside a fused qkv row.
import { describe, expect, it } from 'vitest';
import { Rope, RopeTable, Tensor, ops } from '../sdk/index.js';
import { recordRope, ropeTable } from '../sdk/kernels/rope.js';
import { testRuntime } from './helpers/runtime.js';
import { randn, relError, rng } from './helpers/reference.js';
import { dotLoss, finiteDiff, ropeRef } from './helpers/nn_ref.js';

const TOL = 1e-4;

function positions(rows: number, max: number, seed: number): Int32Array {
  const r = rng(seed);
  return Int32Array.from({ length: rows }, () => Math.floor(r() * max));
}

/** HF's formulation, written independently: q·cos(emb) + rotate_half(q)·sin(emb), emb = cat(freqs, freqs). */
function hfRope(x: ArrayLike<number>, pos: ArrayLike<number>, heads: number, H: number, base: number): Float64Array {
  const half = H / 2;
  const out = new Float64Array(x.length);
  for (let r = 0; r < pos.length; r++) {
    for (let h = 0; h < heads; h++) {
      const o = (r * heads + h) * H;
      for (let j = 0; j < H; j++) {
        const emb = pos[r]! / Math.pow(base, (2 * (j % half)) / H);
        const rot = j < half ? -x[o + j + half]! : x[o + j - half]!;
        out[o + j] = x[o + j]! * Math.cos(emb) + rot * Math.sin(emb);
      }
    }
  }
  return out;
}

describe('RoPE float64 reference', () => {
  it('matches the HF rotate_half formula; the backward (inverse rotation) equals central differences', () => {
    const rows = 3, heads = 2, H = 6;
    const pos = Int32Array.of(0, 5, 1000);
    const x = Float64Array.from(randn(rows * heads * H, 1));
    const dy = randn(rows * heads * H, 2);
    expect(relError(ropeRef(x, pos, heads, H, 10000), hfRope(x, pos, heads, H, 10000))).toBeLessThan(1e-14);
    const g = ropeRef(dy, pos, heads, H, 10000, true);
    expect(relError(g, finiteDiff(() => dotLoss(ropeRef(x, pos, heads, H, 10000), dy), x))).toBeLessThan(1e-7);
  });
});

describe('ops.rope / ropeBackward against float64', () => {
  const cases: [number, number, number, number][] = [
    // rows, heads, headDim, base
    [1, 1, 2, 10000],
    [7, 3, 6, 10000], // headDim/2 = 3: scalar loads
    [33, 2, 16, 500000], // Llama 3's rope_theta; vec4 loads
    [5, 4, 10, 10000],
  ];
  it.each(cases)('rows=%i heads=%i headDim=%i base=%i, positions up to 4096', async (rows, heads, H, base) => {
    const rt = await testRuntime();
    const x = randn(rows * heads * H, rows + H);
    const pos = positions(rows, 4096, rows * heads);
    const o = { rows, heads, headDim: H, base, maxPositions: 4096 };
    expect(relError(await ops.rope(rt, x, pos, o), ropeRef(x, pos, heads, H, base))).toBeLessThan(TOL);
    expect(relError(await ops.ropeBackward(rt, x, pos, o), ropeRef(x, pos, heads, H, base, true))).toBeLessThan(TOL);
  });

  it('a position outside [0, maxPositions) throws OUT_OF_RANGE; an odd headDim throws', async () => {
    const rt = await testRuntime();
    await expect(ops.rope(rt, new Float32Array(8), Int32Array.of(0, 8), { rows: 2, heads: 1, headDim: 4, maxPositions: 8 })).rejects.toMatchObject({ code: 'OUT_OF_RANGE' });
    await expect(ops.rope(rt, new Float32Array(8), Int32Array.of(-1, 0), { rows: 2, heads: 1, headDim: 4 })).rejects.toMatchObject({ code: 'OUT_OF_RANGE' });
    await expect(ops.rope(rt, new Float32Array(6), Int32Array.of(0, 1), { rows: 2, heads: 1, headDim: 3 })).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
  });
});

describe('Rope layer', () => {
  it.each([false, true])('inPlace=%s: forward, backward, q·k depends on the relative position only', async (inPlace) => {
    const rt = await testRuntime();
    const heads = 2, H = 8, rows = 9;
    const table = new RopeTable(rt, { headDim: H, maxPositions: 64 });
    const rope = new Rope(rt, { table, heads, inPlace });
    const xs = randn(rows * heads * H, 3);
    const dys = randn(rows * heads * H, 4);
    const pos = positions(rows, 64, 5);
    const x = Tensor.from(rt, xs, [rows, heads * H]);
    const dy = Tensor.from(rt, dys, [rows, heads * H]);
    const batch = rt.batch('rope');
    const y = await rope.forward(batch, x, pos);
    const dx = await rope.backward(batch, dy);
    await batch.submit();
    expect(y === x).toBe(inPlace);
    expect(dx === dy).toBe(inPlace);
    expect(relError(await y.read(), ropeRef(xs, pos, heads, H, 10000))).toBeLessThan(TOL);
    expect(relError(await dx.read(), ropeRef(dys, pos, heads, H, 10000, true))).toBeLessThan(TOL);
    rope.release();
    table.release();
    x.release();
    dy.release();
  });

  it('the same q and k at positions shifted together give the same scores', async () => {
    const rt = await testRuntime();
    const H = 16;
    const table = new RopeTable(rt, { headDim: H, maxPositions: 2048 });
    const rope = new Rope(rt, { table, heads: 1 });
    const q = randn(H, 6), k = randn(H, 7);
    const x = Tensor.from(rt, Float32Array.from([...q, ...k, ...q, ...k]), [4, H]);
    const batch = rt.batch('shift');
    const y = await rope.forward(batch, x, Int32Array.of(12, 5, 1012, 1005));
    await batch.submit();
    const r = await y.read();
    const dot = (a: number, b: number) => r.slice(a * H, a * H + H).reduce((s, v, i) => s + v * r[b * H + i]!, 0);
    expect(Math.abs(dot(0, 1) - dot(2, 3))).toBeLessThan(1e-4);
    rope.release();
    table.release();
  });

  it('positions on the GPU outside the table give zeros; host positions are checked', async () => {
    const rt = await testRuntime();
    const table = new RopeTable(rt, { headDim: 4, maxPositions: 8 });
    const rope = new Rope(rt, { table, heads: 1 });
    const x = Tensor.from(rt, randn(8, 8), [2, 4]);
    const batch = rt.batch('bad positions');
    const y = await rope.forward(batch, x, Tensor.from(rt, Int32Array.of(3, 8), [2]));
    await batch.submit();
    expect(Array.from((await y.read()).slice(4), Math.abs)).toEqual([0, 0, 0, 0]);
    await expect(rope.forward(rt.batch(), x, Int32Array.of(3, 8))).rejects.toMatchObject({ code: 'OUT_OF_RANGE' });
    expect(Array.from(RopeTable.sequential(2, 3, 4))).toEqual([4, 5, 6, 4, 5, 6]);
    rope.release();
    table.release();
  });
});

describe('recordRope on q and k inside a fused qkv row', () => {
  it.each([[5, 2, 1, 6], [7, 2, 2, 8]])('rows=%i heads=%i kvHeads=%i headDim=%i: strided in place, only q and k change', async (rows, Hq, Hkv, H) => {
    const rt = await testRuntime();
    const width = (Hq + 2 * Hkv) * H;
    const qkv = randn(rows * width, rows + H);
    const pos = positions(rows, 32, 9);
    const buf = Tensor.from(rt, qkv, [rows, width]);
    const pb = Tensor.from(rt, pos, [rows]);
    const tb = Tensor.from(rt, ropeTable(H, 32), [2 * 32 * H / 2]);
    const batch = rt.batch('fused');
    const common = { rows, headDim: H, maxPositions: 32, positions: pb.buffer, table: tb.buffer, y: buf.buffer, strideY: width };
    await recordRope(rt, batch, { ...common, heads: Hq, offY: 0 });
    await recordRope(rt, batch, { ...common, heads: Hkv, offY: Hq * H });
    await batch.submit();
    const got = await buf.read();
    const slice = (a: ArrayLike<number>, off: number, w: number) => Float64Array.from({ length: rows * w }, (_, i) => a[Math.floor(i / w) * width + off + (i % w)]!);
    expect(relError(slice(got, 0, Hq * H), ropeRef(slice(qkv, 0, Hq * H), pos, Hq, H, 10000))).toBeLessThan(TOL);
    expect(relError(slice(got, Hq * H, Hkv * H), ropeRef(slice(qkv, Hq * H, Hkv * H), pos, Hkv, H, 10000))).toBeLessThan(TOL);
    expect(relError(slice(got, (Hq + Hkv) * H, Hkv * H), slice(qkv, (Hq + Hkv) * H, Hkv * H))).toBe(0);
    buf.release();
    pb.release();
    tb.release();
  });
});
