// The hybrid ViT's convolutional stem (shaders/conv_stem.wgsl, nn/conv_stem.ts): float64
// references against finite differences, the kernels against the references on ragged shapes
// (odd sizes, channel counts that are not multiples of 4), then the ConvStem layer's forward and
// parameter gradients against the float64 stem.
import { describe, expect, it } from 'vitest';
import { Tensor } from '../sdk/index.js';
import { colsPitch, recordConvCols, recordConvColsBackward, recordMaxPool2, recordMaxPool2Backward } from '../sdk/kernels/conv_stem.js';
import { ConvStem } from '../sdk/nn/conv_stem.js';
import { testRuntime } from './helpers/runtime.js';
import { randn, relError } from './helpers/reference.js';
import { convColsBackwardRef, convColsRef, convSideRef, dotLoss, finiteDiff, maxPool2Ref, stemBackwardRef, stemRef, type StemRefInput } from './helpers/nn_ref.js';
import { expectCode } from './helpers/errors.js';

const TOL = 1e-4;
const f64 = (x: ArrayLike<number>) => Float64Array.from(x);

function stemInput(seed: number, B: number, size: number, channels: number[], downsample: 'pool' | 'stride' = 'pool', coords = false): StemRefInput {
  let cin = 3;
  const weights: Float64Array[] = [], biases: Float64Array[] = [];
  channels.forEach((c, s) => {
    weights.push(f64(randn(9 * (cin + (coords ? 2 : 0)) * c, seed + 2 * s, -0.5, 0.5)));
    biases.push(f64(randn(c, seed + 2 * s + 1, -0.2, 0.2)));
    cin = c;
  });
  return { pixels: randn(B * 3 * size * size, seed + 99), B, size, channels, weights, biases, downsample, coords };
}

/** The stem variants the layer tests run: downsampling and coordinate channels. */
const VARIANTS = [['pool', false], ['stride', false], ['pool', true], ['stride', true]] as const;

describe('convolutional stem float64 references', () => {
  it.each([[1, 1], [2, 1], [2, 0]] as const)('the columns backward is the adjoint of the columns at stride %i, pad %i: ⟨cols(x), g⟩ = ⟨x, colsᵀ(g)⟩', (stride, pad) => {
    const [B, C, H, W] = [2, 3, 5, 7];
    const rows = B * convSideRef(H, stride) * convSideRef(W, stride);
    const x = f64(randn(B * H * W * C, 1)), g = f64(randn(rows * 9 * C, 2));
    expect(Math.abs(dotLoss(convColsRef(x, 'rows', B, C, H, W, stride, pad), g) - dotLoss(x, convColsBackwardRef(g, B, C, H, W, stride, pad)))).toBeLessThan(1e-10);
  });

  it.each([[1, 1], [2, 1], [2, 0]] as const)('with coordinate channels at stride %i, pad %i the columns are affine in x: ⟨cols(x) − cols(0), g⟩ = ⟨x, colsᵀ(g)⟩', (stride, pad) => {
    const [B, C, H, W] = [2, 3, 5, 7];
    const rows = B * convSideRef(H, stride) * convSideRef(W, stride);
    const x = f64(randn(B * H * W * C, 3)), g = f64(randn(rows * 9 * (C + 2), 4));
    const lin = dotLoss(convColsRef(x, 'rows', B, C, H, W, stride, pad, true), g) - dotLoss(convColsRef(new Float64Array(x.length), 'rows', B, C, H, W, stride, pad, true), g);
    expect(Math.abs(lin - dotLoss(x, convColsBackwardRef(g, B, C, H, W, stride, pad, true)))).toBeLessThan(1e-10);
  });

  it('coordinate columns: the centre tap reads the pixel\'s own column and row in (−1, 1), the padding reads 0 (1 channel, 4×6)', () => {
    const [B, C, H, W] = [1, 1, 4, 6];
    const cols = convColsRef(new Float64Array(H * W), 'rows', B, C, H, W, 1, 1, true);
    const K = 9 * (C + 2);
    for (let y = 0; y < H; y++) for (let x = 0; x < W; x++) {
      const r = (y * W + x) * K;
      expect(cols[r + 9 + 4]).toBeCloseTo((2 * x + 1) / W - 1, 12);
      expect(cols[r + 18 + 4]).toBeCloseTo((2 * y + 1) / H - 1, 12);
    }
    // Pixel (0, 0): its window's top-left tap lies in the padding; its bottom-right tap is pixel (1, 1).
    expect(cols[9 + 0]).toBe(0);
    expect(cols[18 + 0]).toBe(0);
    expect(cols[9 + 8]).toBeCloseTo(3 / W - 1, 12);
    expect(cols[18 + 8]).toBeCloseTo(3 / H - 1, 12);
    // The extremes stay inside (−1, 1): the last column is 1 − 1/W.
    expect(cols[(W - 1) * K + 9 + 4]).toBeCloseTo(1 - 1 / W, 12);
  });

  it('at stride 2 a leading pad of 0 moves every window one pixel on from pad 1 (3 channels, 6×8)', () => {
    const [B, C, H, W] = [1, 3, 6, 8];
    const x = f64(randn(B * C * H * W, 10));
    const p1 = convColsRef(x, 'nchw', B, C, H, W, 2, 1), p0 = convColsRef(x, 'nchw', B, C, H, W, 2, 0);
    const Wo = W / 2, K = 9 * C;
    // Column (ky, kx) at pad 0 is column (ky + 1, kx + 1) at pad 1 (ky, kx < 2); the last row and
    // column of each pad-0 window at the bottom and right edges read the padding after the map.
    for (let y = 0; y < H / 2; y++) for (let xx = 0; xx < Wo; xx++) for (let c = 0; c < C; c++) for (let ky = 0; ky < 2; ky++) for (let kx = 0; kx < 2; kx++) {
      expect(p0[(y * Wo + xx) * K + c * 9 + ky * 3 + kx]).toBe(p1[(y * Wo + xx) * K + c * 9 + (ky + 1) * 3 + kx + 1]);
    }
    expect(p0[((H / 2 - 1) * Wo + 0) * K + 2 * 3 + 0]).toBe(0);
    expect(p0[(0 * Wo + Wo - 1) * K + 0 * 3 + 2]).toBe(0);
  });

  it('a stride-2 column is the stride-1 column of every other pixel (3 channels, 7×6)', () => {
    const [B, C, H, W] = [2, 3, 7, 6];
    const x = f64(randn(B * C * H * W, 9));
    const full = convColsRef(x, 'nchw', B, C, H, W), half = convColsRef(x, 'nchw', B, C, H, W, 2);
    const Ho = convSideRef(H, 2), Wo = convSideRef(W, 2);
    expect([Ho, Wo]).toEqual([4, 3]);
    for (let b = 0; b < B; b++) for (let y = 0; y < Ho; y++) for (let xx = 0; xx < Wo; xx++) {
      const r = ((b * Ho + y) * Wo + xx) * 9 * C, f = ((b * H + 2 * y) * W + 2 * xx) * 9 * C;
      expect(Array.from(half.subarray(r, r + 9 * C))).toEqual(Array.from(full.subarray(f, f + 9 * C)));
    }
  });

  it.each(VARIANTS)('%s stem (coordinates: %s) gradients (every stage W and b) equal central differences of Σ dy⊙y', (ds, coords) => {
    const inp = stemInput(3, 2, 8, [3, 5], ds, coords);
    const dy = randn(2 * 2 * 2 * 5, 4);
    const g = stemBackwardRef(inp, dy);
    const L = () => dotLoss(stemRef(inp).y, dy);
    inp.channels.forEach((_, s) => {
      expect(relError(g.dW[s]!, finiteDiff(L, inp.weights[s]!)), `dW${s}`).toBeLessThan(1e-6);
      expect(relError(g.db[s]!, finiteDiff(L, inp.biases[s]!)), `db${s}`).toBeLessThan(1e-6);
    });
  });
});

describe('conv_stem kernels against the references', () => {
  it.each([['nchw', 1, 1, false], ['rows', 1, 1, false], ['nchw', 2, 1, false], ['rows', 2, 1, false], ['nchw', 2, 0, false], ['rows', 2, 0, false], ['nchw', 1, 1, true], ['rows', 1, 1, true], ['nchw', 2, 1, true], ['rows', 2, 0, true]] as const)('3×3 columns of a %s map at stride %i, pad %i, coordinates %s (5 channels, 7×9)', async (layout, stride, pad, coords) => {
    const rt = await testRuntime();
    const [B, C, H, W] = [2, 5, 7, 9];
    const x = randn(B * C * H * W, 5);
    const rows = B * convSideRef(H, stride) * convSideRef(W, stride);
    const xt = Tensor.from(rt, x, [x.length]), cols = Tensor.empty(rt, [rows * 9 * (C + (coords ? 2 : 0))]);
    const batch = rt.batch('cols');
    await recordConvCols(rt, batch, { batch: B, channels: C, height: H, width: W }, layout, xt.buffer, cols.buffer, { stride, pad, coords });
    await batch.submit();
    // The coordinates are a division in f32 (within a few ulp of the float64 value); the pixels are copied exactly.
    const want = Float32Array.from(convColsRef(x, layout, B, C, H, W, stride, pad, coords));
    const got = await cols.read();
    if (!coords) expect(Array.from(got)).toEqual(Array.from(want));
    else expect(Math.max(...got.map((v, i) => Math.abs(v - want[i]!)))).toBeLessThan(1e-6);
    xt.release();
    cols.release();
  });

  it.each([['nchw', 1, 1, false, 28], ['rows', 2, 0, false, 31], ['nchw', 2, 1, true, 48]] as const)('3×3 columns of a %s map at stride %i, pad %i, coordinates %s into rows of pitch %i: the columns, then zeros (3 channels, 7×9)', async (layout, stride, pad, coords, pitch) => {
    const rt = await testRuntime();
    const [B, C, H, W] = [2, 3, 7, 9];
    const K = 9 * (C + (coords ? 2 : 0));
    const x = randn(B * C * H * W, 7);
    const rows = B * convSideRef(H, stride) * convSideRef(W, stride);
    // The buffer starts full of ones, so the padding must be written, not left as it was.
    const xt = Tensor.from(rt, x, [x.length]), cols = Tensor.from(rt, new Float32Array(rows * pitch).fill(1), [rows * pitch]);
    const batch = rt.batch('cols pitch');
    await recordConvCols(rt, batch, { batch: B, channels: C, height: H, width: W }, layout, xt.buffer, cols.buffer, { stride, pad, coords }, pitch);
    await batch.submit();
    const want = convColsRef(x, layout, B, C, H, W, stride, pad, coords);
    const got = await cols.read();
    for (let r = 0; r < rows; r++) {
      for (let j = 0; j < K; j++) expect(Math.abs(got[r * pitch + j]! - want[r * K + j]!)).toBeLessThan(1e-6);
      for (let j = K; j < pitch; j++) expect(got[r * pitch + j]).toBe(0);
    }
    xt.release();
    cols.release();
  });

  it.each([[1, 1, false, 28], [2, 0, true, 47]] as const)('columns backward at stride %i, pad %i (coordinates %s) reads rows of pitch %i and skips the padding', async (stride, pad, coords, pitch) => {
    const rt = await testRuntime();
    const [B, C, H, W] = [2, 3, 5, 6];
    const K = 9 * (C + (coords ? 2 : 0));
    const rows = B * convSideRef(H, stride) * convSideRef(W, stride);
    const g = randn(rows * K, 8);
    // Padding of large values: read by mistake, it would show in dx.
    const gp = new Float32Array(rows * pitch).fill(1e3);
    for (let r = 0; r < rows; r++) gp.set(g.subarray(r * K, (r + 1) * K), r * pitch);
    const gt = Tensor.from(rt, gp, [gp.length]), dx = Tensor.empty(rt, [B * H * W * C]);
    const batch = rt.batch('cols backward pitch');
    await recordConvColsBackward(rt, batch, { batch: B, channels: C, height: H, width: W }, gt.buffer, dx.buffer, { stride, pad, coords }, pitch);
    await batch.submit();
    expect(relError(await dx.read(), convColsBackwardRef(g, B, C, H, W, stride, pad, coords))).toBeLessThan(1e-6);
    gt.release();
    dx.release();
  });

  it('a column pitch below 9·C\' is INVALID_ARGUMENT', async () => {
    const rt = await testRuntime();
    const x = Tensor.empty(rt, [3 * 16]), cols = Tensor.empty(rt, [16 * 28]);
    expectCode(() => recordConvCols(rt, rt.batch('bad'), { batch: 1, channels: 3, height: 4, width: 4 }, 'nchw', x.buffer, cols.buffer, undefined, 26), 'INVALID_ARGUMENT');
    expect(colsPitch(27)).toBe(28);
    expect(colsPitch(144)).toBe(144);
    x.release();
    cols.release();
  });

  it.each([[1, 1, 5, 6, false], [2, 1, 5, 6, false], [2, 1, 7, 4, false], [2, 0, 5, 6, false], [2, 0, 7, 4, false], [1, 1, 5, 6, true], [2, 1, 7, 4, true], [2, 0, 5, 6, true]] as const)('columns backward at stride %i, pad %i (3 channels, %i×%i, coordinates %s) sums every window back onto its input', async (stride, pad, H, W, coords) => {
    const rt = await testRuntime();
    const [B, C] = [3, 3];
    const rows = B * convSideRef(H, stride) * convSideRef(W, stride);
    const g = randn(rows * 9 * (C + (coords ? 2 : 0)), 6);
    const gt = Tensor.from(rt, g, [g.length]), dx = Tensor.empty(rt, [B * H * W * C]);
    const batch = rt.batch('cols backward');
    await recordConvColsBackward(rt, batch, { batch: B, channels: C, height: H, width: W }, gt.buffer, dx.buffer, { stride, pad, coords });
    await batch.submit();
    expect(relError(await dx.read(), convColsBackwardRef(g, B, C, H, W, stride, pad, coords))).toBeLessThan(1e-6);
    gt.release();
    dx.release();
  });

  it('2×2 max pooling forward and backward (7 channels, 6×10, ties go to the first)', async () => {
    const rt = await testRuntime();
    const [B, C, H, W] = [2, 7, 6, 10];
    const a = randn(B * H * W * C, 7);
    // Ties: a whole window of equal values, and a window whose last two share the maximum.
    for (const [dy, dx] of [[0, 0], [0, 1], [1, 0], [1, 1]]) a[((0 * H + dy) * W + dx) * C + 2] = 0.25;
    a[((1 * H + 2) * W + 4) * C + 3] = -5; a[((1 * H + 2) * W + 5) * C + 3] = -5;
    a[((1 * H + 3) * W + 4) * C + 3] = 3; a[((1 * H + 3) * W + 5) * C + 3] = 3;
    const { y, arg } = maxPool2Ref(a, B, C, H, W);
    const dy = randn(y.length, 8);
    const at = Tensor.from(rt, a, [a.length]), yt = Tensor.empty(rt, [y.length]), dyt = Tensor.from(rt, dy, [dy.length]), da = Tensor.empty(rt, [a.length]);
    const d = { batch: B, channels: C, height: H, width: W };
    const batch = rt.batch('maxpool');
    await recordMaxPool2(rt, batch, d, at.buffer, yt.buffer);
    await recordMaxPool2Backward(rt, batch, d, at.buffer, dyt.buffer, da.buffer);
    await batch.submit();
    expect(Array.from(await yt.read())).toEqual(Array.from(Float32Array.from(y)));
    const want = new Float32Array(a.length);
    arg.forEach((k, o) => (want[k] = dy[o]!));
    const got = await da.read();
    expect(Array.from(got)).toEqual(Array.from(want));
    expect(got[((0 * H + 0) * W + 0) * C + 2]).toBe(dy[(0 * 5 + 0) * C + 2]);
    expect(got[((1 * H + 3) * W + 4) * C + 3]).toBe(dy[((1 * 3 + 1) * 5 + 2) * C + 3]);
    expect(got[((1 * H + 3) * W + 5) * C + 3]).toBe(0);
    for (const t of [at, yt, dyt, da]) t.release();
  });

  it('bad shapes are refused', async () => {
    const rt = await testRuntime();
    const t = Tensor.empty(rt, [64]);
    const batch = rt.batch('bad');
    expectCode(() => recordMaxPool2(rt, batch, { batch: 1, channels: 1, height: 3, width: 4 }, t.buffer, t.buffer), 'SHAPE_MISMATCH');
    expectCode(() => recordConvCols(rt, batch, { batch: 1, channels: 2, height: 4, width: 4 }, 'rows', t.buffer, t.buffer), 'SHAPE_MISMATCH');
    expectCode(() => new ConvStem(rt, { imageSize: 12, channels: [4, 4, 4] }), 'BAD_CONFIG');
    expectCode(() => new ConvStem(rt, { imageSize: 12, channels: [] }), 'BAD_CONFIG');
    expectCode(() => new ConvStem(rt, { imageSize: 12, channels: [4], downsample: 'avg' as 'pool' }), 'BAD_CONFIG');
    expectCode(() => new ConvStem(rt, { imageSize: 12, channels: [4], coords: 'yes' as unknown as boolean }), 'BAD_CONFIG');
    // With coordinates the columns of a 4×4 map of 2 channels are 16 rows of 36: more than the 64 given.
    expectCode(() => recordConvCols(rt, batch, { batch: 1, channels: 2, height: 4, width: 4 }, 'rows', t.buffer, t.buffer, { stride: 2, pad: 1, coords: true }), 'SHAPE_MISMATCH');
    expectCode(() => recordConvCols(rt, batch, { batch: 1, channels: 1, height: 4, width: 4 }, 'rows', t.buffer, t.buffer, { stride: 3 as 2, pad: 1 }), 'BAD_CONFIG');
    expectCode(() => recordConvCols(rt, batch, { batch: 1, channels: 1, height: 4, width: 4 }, 'rows', t.buffer, t.buffer, { stride: 1, pad: 0 }), 'BAD_CONFIG');
    // At stride 2 the columns of a 6×6 map are 3×3 rows of 9: 81 floats, more than the 64 given.
    expectCode(() => recordConvCols(rt, batch, { batch: 1, channels: 1, height: 6, width: 6 }, 'rows', t.buffer, t.buffer, { stride: 2, pad: 1 }), 'SHAPE_MISMATCH');
    t.release();
  });
});

describe('ConvStem against the float64 stem', () => {
  it('coordinate channels start with zero weights: the initial stem computes what the plain one does (same seed)', async () => {
    const rt = await testRuntime();
    const plain = new ConvStem(rt, { imageSize: 12, channels: [5, 6], seed: 4 });
    const coord = new ConvStem(rt, { imageSize: 12, channels: [5, 6], coords: true, seed: 4 });
    for (let s = 0; s < 2; s++) {
      const w0 = await plain.convs[s]!.weight.value.read(), w1 = await coord.convs[s]!.weight.value.read();
      const data = 9 * plain.stageInChannels(s) * plain.channels[s]!;
      expect(w1.length).toBe(data + 18 * plain.channels[s]!);
      expect(Array.from(w1.subarray(0, data))).toEqual(Array.from(w0));
      expect(w1.subarray(data).every((v) => v === 0)).toBe(true);
    }
    const pixels = Tensor.from(rt, randn(2 * 3 * 144, 31), [2, 3, 12, 12]);
    const batch = rt.batch('stem init');
    const y0 = await plain.forward(batch, pixels), y1 = await coord.forward(batch, pixels);
    await batch.submit();
    expect(relError(await y1.read(), f64(await y0.read()))).toBeLessThan(1e-6);
    pixels.release();
    plain.release();
    coord.release();
  });

  it.each(VARIANTS)('%s, coordinates %s: forward rows and every stage W, b gradient (two images of 12×12, stages of 5 and 6 channels)', async (ds, coords) => {
    const rt = await testRuntime();
    const inp = stemInput(11, 2, 12, [5, 6], ds, coords);
    const stem = new ConvStem(rt, { imageSize: 12, channels: [5, 6], downsample: ds, coords });
    expect(stem.convs.map((c) => c.inFeatures)).toEqual(coords ? [45, 63] : [27, 45]);
    stem.convs.forEach((c, s) => {
      c.weight.value.write(Float32Array.from(inp.weights[s]!));
      c.bias!.value.write(Float32Array.from(inp.biases[s]!));
      c.weight.grad!.write(new Float32Array(c.weight.value.size));
      c.bias!.grad!.write(new Float32Array(c.bias!.value.size));
    });
    const ref = stemRef(inp);
    const dy = randn(ref.y.length, 12);
    const pixels = Tensor.from(rt, Float32Array.from(inp.pixels), [2, 3, 12, 12]);
    const dyt = Tensor.from(rt, dy, [ref.y.length / 6, 6]);
    const batch = rt.batch('stem');
    const y = await stem.forward(batch, pixels);
    await stem.backward(batch, dyt);
    await batch.submit();
    expect(stem.grid).toBe(3);
    expect(y.shape).toEqual([2 * 9, 6]);
    expect(relError(await y.read(), ref.y)).toBeLessThan(TOL);
    const g = stemBackwardRef(inp, dy);
    for (let s = 0; s < 2; s++) {
      expect(relError(await stem.convs[s]!.weight.grad!.read(), g.dW[s]!), `dW${s}`).toBeLessThan(TOL);
      expect(relError(await stem.convs[s]!.bias!.grad!.read(), g.db[s]!), `db${s}`).toBeLessThan(TOL);
    }
    pixels.release();
    dyt.release();
    stem.release();
  });
});
