// Token embedding, tied and untied LM head, ViT patch embedding (shaders/embedding.wgsl,
// patch_embed.wgsl, matmul.wgsl): the float64 references' gradients against finite differences,
// then ops and the nn layers against the references on ragged shapes.
import { describe, expect, it } from 'vitest';
import { Embedding, LmHead, PatchEmbed, Tensor, ops } from '../sdk/index.js';
import { testRuntime } from './helpers/runtime.js';
import { matmulRef, randn, relError, rng } from './helpers/reference.js';
import { convPatchRef, dotLoss, embeddingBackwardRef, embeddingRef, finiteDiff, im2colRef } from './helpers/nn_ref.js';

const TOL = 1e-4;

/** `n` ids in [0, vocab), drawn so that many repeat. */
function idsOf(n: number, vocab: number, seed: number): Int32Array {
  const r = rng(seed);
  return Int32Array.from({ length: n }, () => Math.floor(r() * vocab));
}

const bits = (x: Float32Array) => new Uint32Array(x.buffer, x.byteOffset, x.length);

describe('embedding and LM head float64 references', () => {
  it('gather, tied head: gradients equal central differences of Σ dy⊙y', () => {
    const V = 6, d = 5, T = 9;
    const ids = idsOf(T, V, 1);
    const table = Float64Array.from(randn(V * d, 2));
    const dy = randn(T * d, 3);
    const g = embeddingBackwardRef(dy, ids, V, d);
    expect(relError(g, finiteDiff(() => dotLoss(embeddingRef(table, ids, d), dy), table))).toBeLessThan(1e-7);
    // tied: logits = E[ids] Eᵀ; dE = scatter(dlogits E) + dlogitsᵀ h
    const dl = randn(T * V, 4);
    const loss = () => dotLoss(matmulRef(embeddingRef(table, ids, d), table, T, d, V, { transB: true }), dl);
    const h = embeddingRef(table, ids, d);
    const dh = matmulRef(dl, table, T, V, d);
    const dE = embeddingBackwardRef(dh, ids, V, d);
    const head = matmulRef(dl, h, V, T, d, { transA: true });
    for (let i = 0; i < dE.length; i++) dE[i] += head[i]!;
    expect(relError(dE, finiteDiff(loss, table))).toBeLessThan(1e-7);
  });

  it('patch embedding: im2col·W equals the Conv; dW, db, dpos equal central differences', () => {
    const B = 2, C = 3, H = 6, W = 9, p = 3, d = 4;
    const P = (H / p) * (W / p), K = C * p * p;
    const img = randn(B * C * H * W, 5);
    const convW = Float64Array.from(randn(d * K, 6)); // (d, C, p, p), the ONNX Conv layout
    const bias = Float64Array.from(randn(d, 7));
    const pos = Float64Array.from(randn(P * d, 8));
    const dy = randn(B * P * d, 9);
    const fwd = () => {
      const y = convPatchRef(img, convW, bias, B, C, H, W, p, d);
      for (let i = 0; i < y.length; i++) y[i] += pos[i % (P * d)]!;
      return y;
    };
    const patches = im2colRef(img, B, C, H, W, p);
    const ours = transpose(convW, d, K); // (K, d)
    const y = matmulRef(patches, ours, B * P, K, d, { bias });
    for (let i = 0; i < y.length; i++) y[i] += pos[i % (P * d)]!;
    expect(relError(y, fwd())).toBeLessThan(1e-12);
    const loss = () => dotLoss(fwd(), dy);
    const dW = matmulRef(patches, dy, K, B * P, d, { transA: true }); // (K, d)
    expect(relError(transpose(dW, K, d), finiteDiff(loss, convW))).toBeLessThan(1e-7);
    const db = new Float64Array(d), dpos = new Float64Array(P * d);
    for (let i = 0; i < dy.length; i++) {
      db[i % d] += dy[i]!;
      dpos[i % (P * d)] += dy[i]!;
    }
    expect(relError(db, finiteDiff(loss, bias))).toBeLessThan(1e-7);
    expect(relError(dpos, finiteDiff(loss, pos))).toBeLessThan(1e-7);
  });
});

function transpose(a: ArrayLike<number>, rows: number, cols: number): Float64Array {
  const out = new Float64Array(rows * cols);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) out[c * rows + r] = a[r * cols + c]!;
  return out;
}

describe('ops.embedding / embeddingBackward against float64', () => {
  const cases: [number, number, number][] = [[1, 3, 5], [7, 5, 48], [33, 10, 67], [300, 17, 8]];
  it.each(cases)('tokens=%i vocab=%i d=%i', async (T, V, d) => {
    const rt = await testRuntime();
    const ids = idsOf(T, V, T + V + d);
    const table = randn(V * d, T * 3 + d);
    const dy = randn(T * d, T * 5 + d);
    expect(relError(await ops.embedding(rt, table, ids, { vocab: V, d }), embeddingRef(table, ids, d))).toBeLessThan(TOL);
    const g = await ops.embeddingBackward(rt, dy, ids, { vocab: V, d });
    expect(relError(g, embeddingBackwardRef(dy, ids, V, d))).toBeLessThan(TOL);
  });

  it('the scatter-add is bit-for-bit reproducible with many repeated ids', async () => {
    const rt = await testRuntime();
    const T = 257, V = 3, d = 9;
    const ids = idsOf(T, V, 42);
    const dy = randn(T * d, 43, -100, 100);
    const a = await ops.embeddingBackward(rt, dy, ids, { vocab: V, d });
    const b = await ops.embeddingBackward(rt, dy, ids, { vocab: V, d });
    expect(bits(b)).toEqual(bits(a));
    // Token order: the same sum as a float32 left-to-right accumulation from zero.
    const want = new Float32Array(V * d);
    for (let t = 0; t < T; t++) for (let j = 0; j < d; j++) want[ids[t]! * d + j] = Math.fround(want[ids[t]! * d + j]! + dy[t * d + j]!);
    expect(bits(a)).toEqual(bits(want));
  });

  it('an id outside [0, vocab) from the host throws OUT_OF_RANGE', async () => {
    const rt = await testRuntime();
    const table = randn(4 * 3, 1);
    await expect(ops.embedding(rt, table, Int32Array.of(0, 4), { vocab: 4, d: 3 })).rejects.toMatchObject({ code: 'OUT_OF_RANGE' });
    await expect(ops.embeddingBackward(rt, randn(3, 2), Int32Array.of(-1), { vocab: 4, d: 3 })).rejects.toMatchObject({ code: 'OUT_OF_RANGE' });
    const emb = new Embedding(rt, { vocab: 4, d: 3, weight: table });
    await expect(emb.forward(rt.batch(), Int32Array.of(1, 2, 9))).rejects.toMatchObject({ code: 'OUT_OF_RANGE' });
    emb.release();
  });
});

describe('Embedding and LmHead layers', () => {
  it.each([[7, 11, 5], [33, 19, 67]])('tied: tokens=%i vocab=%i d=%i, dE gets the gather and the head gradients', async (T, V, d) => {
    const rt = await testRuntime();
    const ids = idsOf(T, V, 3 * T + V);
    const table = randn(V * d, T + 1);
    const dl = randn(T * V, T + 2);
    const emb = new Embedding(rt, { vocab: V, d, weight: table });
    const head = new LmHead(rt, { d, vocab: V, tied: emb.weight });
    expect(head.params('lm_head')).toEqual([]);
    expect(emb.params('model.embed_tokens').map((p) => p.name)).toEqual(['model.embed_tokens.weight']);
    const dlt = Tensor.from(rt, dl, [T, V]);
    const batch = rt.batch('tied');
    const h = await emb.forward(batch, ids);
    const logits = await head.forward(batch, h);
    const dh = await head.backward(batch, dlt);
    await emb.backward(batch, dh);
    await batch.submit();
    const hr = embeddingRef(table, ids, d);
    expect(relError(await logits.read(), matmulRef(hr, table, T, d, V, { transB: true }))).toBeLessThan(TOL);
    const dhr = matmulRef(dl, table, T, V, d);
    expect(relError(await dh.read(), dhr)).toBeLessThan(TOL);
    const dE = embeddingBackwardRef(dhr, ids, V, d);
    const part = matmulRef(dl, hr, V, T, d, { transA: true });
    for (let i = 0; i < dE.length; i++) dE[i] += part[i]!;
    expect(relError(await emb.weight.grad!.read(), dE)).toBeLessThan(TOL);
    head.release();
    emb.release();
    dlt.release();
  });

  it('untied: logits = h W, dh = dlogits Wᵀ, dW = hᵀ dlogits (W is d×vocab)', async () => {
    const rt = await testRuntime();
    const T = 9, V = 13, d = 6;
    const hx = randn(T * d, 1), w = randn(d * V, 2), dl = randn(T * V, 3);
    const head = new LmHead(rt, { d, vocab: V, weight: w });
    expect(head.params('lm_head').map((p) => p.name)).toEqual(['lm_head.weight']);
    const h = Tensor.from(rt, hx, [T, d]);
    const batch = rt.batch('untied');
    const logits = await head.forward(batch, h);
    const dh = await head.backward(batch, Tensor.from(rt, dl, [T, V]));
    await batch.submit();
    expect(relError(await logits.read(), matmulRef(hx, w, T, d, V))).toBeLessThan(TOL);
    expect(relError(await dh.read(), matmulRef(dl, w, T, V, d, { transB: true }))).toBeLessThan(TOL);
    expect(relError(await head.params()[0]!.grad!.read(), matmulRef(hx, dl, d, T, V, { transA: true }))).toBeLessThan(TOL);
    head.release();
    h.release();
  });

  it('ids on the GPU outside [0, vocab) read as zero rows and get no gradient', async () => {
    const rt = await testRuntime();
    const V = 4, d = 3;
    const table = randn(V * d, 5);
    const emb = new Embedding(rt, { vocab: V, d, weight: table });
    const ids = Tensor.from(rt, Int32Array.of(1, 7, -2, 1), [4]);
    const dy = Tensor.from(rt, new Float32Array(4 * d).fill(1), [4, d]);
    const batch = rt.batch('bad ids');
    const out = await emb.forward(batch, ids);
    await emb.backward(batch, dy);
    await batch.submit();
    const got = await out.read();
    expect(Array.from(got.slice(d, 3 * d))).toEqual(new Array(2 * d).fill(0));
    expect(relError(got.slice(0, d), table.slice(d, 2 * d))).toBe(0);
    const g = await emb.weight.grad!.read();
    expect(Array.from(g)).toEqual(Array.from({ length: V * d }, (_, i) => (Math.floor(i / d) === 1 ? 2 : 0)));
    emb.release();
  });
});

describe('ViT patch embedding', () => {
  const cases: [number, number, number, number, number, number][] = [
    // B, C, H, W, p, d
    [2, 3, 6, 9, 3, 5], // ragged: scalar loads
    [3, 3, 8, 8, 4, 47], // p and W multiples of 4: vec4 loads
    [1, 1, 5, 5, 5, 7],
  ];
  it.each(cases)('B=%i C=%i H=%i W=%i p=%i d=%i: ops.im2col/col2im and the layer against the Conv', async (B, C, H, W, p, d) => {
    const rt = await testRuntime();
    const P = (H / p) * (W / p), K = C * p * p;
    const seed = B * 100 + H * 10 + d;
    const img = randn(B * C * H * W, seed);
    const dims = { batch: B, channels: C, height: H, width: W, patch: p };
    const patches = await ops.im2col(rt, img, dims);
    expect(relError(patches, im2colRef(img, B, C, H, W, p))).toBe(0);
    expect(relError(await ops.col2im(rt, patches, dims), img)).toBe(0);
    const convW = randn(d * K, seed + 1);
    const bias = randn(d, seed + 2);
    const pos = randn(P * d, seed + 3);
    const dy = randn(B * P * d, seed + 4);
    const layer = new PatchEmbed(rt, { channels: C, height: H, width: W, patch: p, d, weight: Float32Array.from(transpose(convW, d, K)), bias, position: pos });
    expect(layer.params('vision.embeddings').map((q) => q.name)).toEqual([
      'vision.embeddings.patch_embedding.weight', 'vision.embeddings.patch_embedding.bias', 'vision.embeddings.position_embedding.weight',
    ]);
    const pixels = Tensor.from(rt, img, [B, C, H, W]);
    const batch = rt.batch('patch');
    const y = await layer.forward(batch, pixels);
    await layer.backward(batch, Tensor.from(rt, dy, [B * P, d]));
    await batch.submit();
    const want = convPatchRef(img, convW, bias, B, C, H, W, p, d);
    for (let i = 0; i < want.length; i++) want[i] += pos[i % (P * d)]!;
    expect(relError(await y.read(), want)).toBeLessThan(TOL);
    const pr = im2colRef(img, B, C, H, W, p);
    const [gw, gb, gpos] = layer.params();
    expect(relError(await gw!.grad!.read(), matmulRef(pr, dy, K, B * P, d, { transA: true }))).toBeLessThan(TOL);
    const db = new Float64Array(d), dpos = new Float64Array(P * d);
    for (let i = 0; i < dy.length; i++) {
      db[i % d] += dy[i]!;
      dpos[i % (P * d)] += dy[i]!;
    }
    expect(relError(await gb!.grad!.read(), db)).toBeLessThan(TOL);
    expect(relError(await gpos!.grad!.read(), dpos)).toBeLessThan(TOL);
    layer.release();
    pixels.release();
  });

  it('an image that is not whole patches throws SHAPE_MISMATCH', async () => {
    const rt = await testRuntime();
    await expect(ops.im2col(rt, new Float32Array(3 * 7 * 8), { batch: 1, channels: 3, height: 7, width: 8, patch: 4 })).rejects.toMatchObject({ code: 'SHAPE_MISMATCH' });
    expect(() => new PatchEmbed(rt, { height: 10, width: 8, patch: 4, d: 4 })).toThrow(/whole number/);
  });
});
