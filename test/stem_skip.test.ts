// The stem skip (nn/stem_skip.ts): a finer stem map regrouped per token (space-to-depth) and
// projected onto the tokens. Forward, dW and the map's gradient against float64 on ragged shapes
// (3×3 tokens, 2×2 and 4×4 cells each, channel counts and widths that are not multiples of 4);
// a zero W leaves the encoder bit for bit as without the skip, forward and gradients; bad
// configs and shapes are refused. The gradient through the whole encoder is checked against
// finite differences in test/vit.test.ts, the ONNX graph against the engine in test/onnx.test.ts.
import { describe, expect, it } from 'vitest';
import { Tensor } from '../sdk/index.js';
import { StemSkip } from '../sdk/nn/stem_skip.js';
import { VisionEncoder, type VisionConfig } from '../sdk/nn/vit.js';
import { testRuntime } from './helpers/runtime.js';
import { randn } from './helpers/reference.js';
import { expectCode } from './helpers/errors.js';

/** Float64 space-to-depth: token (b·g + I)·g + J's row is its k×k cells of the n×n map, (dy·k + dx)·C + c. */
function cellsRef(map: Float32Array, B: number, g: number, k: number, C: number): Float64Array {
  const n = g * k, out = new Float64Array(B * g * g * k * k * C);
  for (let b = 0; b < B; b++) for (let I = 0; I < g; I++) for (let J = 0; J < g; J++) for (let dy = 0; dy < k; dy++) for (let dx = 0; dx < k; dx++) for (let c = 0; c < C; c++) {
    out[((b * g + I) * g + J) * k * k * C + (dy * k + dx) * C + c] = map[((b * n + I * k + dy) * n + J * k + dx) * C + c]!;
  }
  return out;
}

const maxAbs = (a: ArrayLike<number>, b: ArrayLike<number>) => {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
};

describe('StemSkip against float64', () => {
  it.each([[3, 2, 5, 7], [3, 4, 3, 6], [2, 2, 9, 5]] as const)('grid %i, %i cells a side per token, %i channels → width %i: forward, dW and the map gradient', async (g, k, C, d) => {
    const rt = await testRuntime();
    const B = 2, rows = B * (g * k) ** 2, T = B * g * g, K = k * k * C;
    const skip = new StemSkip(rt, { grid: g, block: k, channels: C, d });
    const W = randn(K * d, 11 + k, -0.5, 0.5);
    skip.proj.weight.value.write(W);
    const mapData = randn(rows * C, 12 + C);
    const dyData = randn(T * d, 13 + d);
    const map = Tensor.from(rt, mapData, [rows, C]);
    const dy = Tensor.from(rt, dyData, [T, d]);
    const batch = rt.batch('stem skip');
    const y = await skip.forward(batch, map);
    const dmap = await skip.backward(batch, dy);
    await batch.submit();
    const cells = cellsRef(mapData, B, g, k, C);
    // y = cells · W
    const yRef = new Float64Array(T * d);
    for (let t = 0; t < T; t++) for (let o = 0; o < d; o++) {
      let s = 0;
      for (let i = 0; i < K; i++) s += cells[t * K + i]! * W[i * d + o]!;
      yRef[t * d + o] = s;
    }
    expect(maxAbs(await y.read(), yRef)).toBeLessThan(1e-4);
    // dW = cellsᵀ dy
    const dWRef = new Float64Array(K * d);
    for (let i = 0; i < K; i++) for (let o = 0; o < d; o++) {
      let s = 0;
      for (let t = 0; t < T; t++) s += cells[t * K + i]! * dyData[t * d + o]!;
      dWRef[i * d + o] = s;
    }
    expect(maxAbs(await skip.proj.weight.grad!.read(), dWRef)).toBeLessThan(1e-4);
    // dmap: dcells = dy Wᵀ, then every cell back to its place in the map (the adjoint of the gather).
    const dcells = new Float64Array(T * K);
    for (let t = 0; t < T; t++) for (let i = 0; i < K; i++) {
      let s = 0;
      for (let o = 0; o < d; o++) s += dyData[t * d + o]! * W[i * d + o]!;
      dcells[t * K + i] = s;
    }
    // ⟨cells(map), dcells⟩ is linear in the map: its gradient at each map entry is the entry of dcells it went to.
    const got = await dmap.read();
    const n = g * k;
    let worst = 0;
    for (let b = 0; b < B; b++) for (let yy = 0; yy < n; yy++) for (let xx = 0; xx < n; xx++) for (let c = 0; c < C; c++) {
      const I = Math.floor(yy / k), J = Math.floor(xx / k), dy_ = yy % k, dx_ = xx % k;
      const want = dcells[((b * g + I) * g + J) * K + (dy_ * k + dx_) * C + c]!;
      worst = Math.max(worst, Math.abs(got[((b * n + yy) * n + xx) * C + c]! - want));
    }
    expect(worst).toBeLessThan(1e-4);
    expect(skip.params('embeddings').map((p) => p.name)).toEqual(['embeddings.stem_skip.weight']);
    skip.release();
    map.release();
    dy.release();
  });

  it('refuses a map that is not whole images, and a backward before a forward', async () => {
    const rt = await testRuntime();
    const skip = new StemSkip(rt, { grid: 3, block: 2, channels: 5, d: 4 });
    const batch = rt.batch('stem skip errors');
    const dy = Tensor.zeros(rt, [9, 4]);
    await expect(skip.backward(batch, dy)).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
    const map = Tensor.zeros(rt, [35, 5]);
    await expect(skip.forward(batch, map)).rejects.toMatchObject({ code: 'SHAPE_MISMATCH' });
    await batch.submit();
    skip.release();
    map.release();
    dy.release();
  });
});

describe('a vision encoder with a stem skip', () => {
  const CFG: VisionConfig = { imageSize: 24, patch: 8, d: 12, layers: 1, heads: 2, dFf: 20, stem: [3, 5, 6] };

  it.each([0, 1])('a zero W (its initial value) leaves features and every other gradient bit for bit as without it (skip from stage %i)', async (stage) => {
    const rt = await testRuntime();
    const plain = new VisionEncoder(rt, CFG, 5);
    const skipped = new VisionEncoder(rt, { ...CFG, stemSkip: stage }, 5);
    expect(skipped.skip!.block).toBe(stage === 0 ? 4 : 2);
    expect(Array.from(await skipped.skip!.proj.weight.value.read()).every((v) => v === 0)).toBe(true);
    const px = randn(2 * 3 * 24 * 24, 6);
    const run = async (v: VisionEncoder) => {
      const pixels = Tensor.from(rt, px, [2, 3, 24, 24]);
      const batch = rt.batch('vit');
      const f = await v.forward(batch, pixels);
      const dy = Tensor.from(rt, randn(f.size, 7), [...f.shape]);
      await v.backward(batch, dy);
      await batch.submit();
      const out = { f: await f.read(), grads: new Map<string, Float32Array>() };
      for (const p of v.params()) if (p.grad) out.grads.set(p.name, await p.grad.read());
      pixels.release();
      dy.release();
      return out;
    };
    const a = await run(plain), b = await run(skipped);
    expect(Buffer.from(b.f.buffer).equals(Buffer.from(a.f.buffer))).toBe(true);
    for (const [name, grad] of a.grads) expect(Buffer.from(b.grads.get(name)!.buffer).equals(Buffer.from(grad.buffer)), name).toBe(true);
    // The skip's own gradient is not zero: it learns from the first step.
    expect(b.grads.get('embeddings.stem_skip.weight')!.some((v) => v !== 0)).toBe(true);
  });

  it('refuses a skip from the last stage, from no stage, or without a stem; the stem refuses a misplaced extra gradient', async () => {
    const rt = await testRuntime();
    for (const s of [2, -1, 0.5, '1']) expectCode(() => new VisionEncoder(rt, { ...CFG, stemSkip: s as number }), 'BAD_CONFIG');
    expectCode(() => new VisionEncoder(rt, { imageSize: 8, patch: 4, d: 8, layers: 1, heads: 2, stemSkip: 0 }), 'BAD_CONFIG');
    const v = new VisionEncoder(rt, CFG, 1);
    const pixels = Tensor.from(rt, randn(3 * 24 * 24, 2), [1, 3, 24, 24]);
    const batch = rt.batch('stem');
    const rows = await v.stem!.forward(batch, pixels);
    expect(v.stem!.stageOutput(1).shape).toEqual([36, 5]);
    const wrong = Tensor.zeros(rt, [35, 5]);
    await expect(v.stem!.backward(batch, rows, { stage: 1, grad: wrong })).rejects.toMatchObject({ code: 'SHAPE_MISMATCH' });
    await expect(v.stem!.backward(batch, rows, { stage: 2, grad: rows })).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
    await batch.submit();
    expectCode(() => v.stem!.stageOutput(3), 'INVALID_ARGUMENT');
    pixels.release();
    wrong.release();
  });
});
