// The hybrid ViT's convolutional stem (shaders/conv_stem.wgsl, nn/conv_stem.ts): float64
// references against finite differences, the kernels against the references on ragged shapes
// (odd sizes, channel counts that are not multiples of 4), then the ConvStem layer's forward and
// parameter gradients against the float64 stem.
import { describe, expect, it } from 'vitest';
import { Tensor } from '../sdk/index.js';
import { recordConvCols, recordConvColsBackward, recordMaxPool2, recordMaxPool2Backward } from '../sdk/kernels/conv_stem.js';
import { ConvStem } from '../sdk/nn/conv_stem.js';
import { testRuntime } from './helpers/runtime.js';
import { randn, relError } from './helpers/reference.js';
import { convColsBackwardRef, convColsRef, dotLoss, finiteDiff, maxPool2Ref, stemBackwardRef, stemRef, type StemRefInput } from './helpers/nn_ref.js';
import { expectCode } from './helpers/errors.js';

const TOL = 1e-4;
const f64 = (x: ArrayLike<number>) => Float64Array.from(x);

function stemInput(seed: number, B: number, size: number, channels: number[]): StemRefInput {
  let cin = 3;
  const weights: Float64Array[] = [], biases: Float64Array[] = [];
  channels.forEach((c, s) => {
    weights.push(f64(randn(9 * cin * c, seed + 2 * s, -0.5, 0.5)));
    biases.push(f64(randn(c, seed + 2 * s + 1, -0.2, 0.2)));
    cin = c;
  });
  return { pixels: randn(B * 3 * size * size, seed + 99), B, size, channels, weights, biases };
}

describe('convolutional stem float64 references', () => {
  it('the columns backward is the adjoint of the columns: ⟨cols(x), g⟩ = ⟨x, colsᵀ(g)⟩', () => {
    const [B, C, H, W] = [2, 3, 5, 7];
    const x = f64(randn(B * H * W * C, 1)), g = f64(randn(B * H * W * 9 * C, 2));
    expect(Math.abs(dotLoss(convColsRef(x, 'rows', B, C, H, W), g) - dotLoss(x, convColsBackwardRef(g, B, C, H, W)))).toBeLessThan(1e-10);
  });

  it('stem gradients (every stage W and b) equal central differences of Σ dy⊙y', () => {
    const inp = stemInput(3, 2, 8, [3, 5]);
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
  it.each([['nchw'], ['rows']] as const)('3×3 columns of a %s map (5 channels, 7×9)', async (layout) => {
    const rt = await testRuntime();
    const [B, C, H, W] = [2, 5, 7, 9];
    const x = randn(B * C * H * W, 5);
    const xt = Tensor.from(rt, x, [x.length]), cols = Tensor.empty(rt, [B * H * W * 9 * C]);
    const batch = rt.batch('cols');
    await recordConvCols(rt, batch, { batch: B, channels: C, height: H, width: W }, layout, xt.buffer, cols.buffer);
    await batch.submit();
    expect(Array.from(await cols.read())).toEqual(Array.from(Float32Array.from(convColsRef(x, layout, B, C, H, W))));
    xt.release();
    cols.release();
  });

  it('columns backward (3 channels, 5×6) sums every window back onto its input', async () => {
    const rt = await testRuntime();
    const [B, C, H, W] = [3, 3, 5, 6];
    const g = randn(B * H * W * 9 * C, 6);
    const gt = Tensor.from(rt, g, [g.length]), dx = Tensor.empty(rt, [B * H * W * C]);
    const batch = rt.batch('cols backward');
    await recordConvColsBackward(rt, batch, { batch: B, channels: C, height: H, width: W }, gt.buffer, dx.buffer);
    await batch.submit();
    expect(relError(await dx.read(), convColsBackwardRef(g, B, C, H, W))).toBeLessThan(1e-6);
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
    t.release();
  });
});

describe('ConvStem against the float64 stem', () => {
  it('forward rows and every stage W, b gradient (two images of 12×12, stages of 5 and 6 channels)', async () => {
    const rt = await testRuntime();
    const inp = stemInput(11, 2, 12, [5, 6]);
    const stem = new ConvStem(rt, { imageSize: 12, channels: [5, 6] });
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
