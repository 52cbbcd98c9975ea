// Dense, the SwiGLU and GELU MLPs and their activations (shaders/activation.wgsl), residual add
// and the elementwise helpers (shaders/elementwise.wgsl): float64 references against finite
// differences, then ops and the nn layers against the references on ragged shapes.
import { describe, expect, it } from 'vitest';
import { Dense, GeluMlp, Linear, Residual, SwigluMlp, Tensor, ops, type LinearLike } from '../sdk/index.js';
import { recordCopy, recordScale } from '../sdk/kernels/elementwise.js';
import { grid2d } from '../sdk/kernels/grid.js';
import { Params } from '../sdk/gpu/launch.js';
import elementwise from '../shaders/elementwise.wgsl';
import { testRuntime } from './helpers/runtime.js';
import { expectCode, expectRejects } from './helpers/errors.js';
import { randn, relError } from './helpers/reference.js';
import {
  denseBackwardRef, denseRef, dotLoss, erf, finiteDiff, geluBackwardRef, geluMlpBackwardRef, geluMlpRef, geluRef,
  swigluBackwardRef, swigluMlpBackwardRef, swigluMlpRef, swigluRef,
} from './helpers/nn_ref.js';

const TOL = 1e-4;

describe('activation and MLP float64 references', () => {
  it('erf matches known values', () => {
    expect(erf(0)).toBe(0);
    expect(Math.abs(erf(0.5) - 0.5204998778130465)).toBeLessThan(1e-15);
    expect(Math.abs(erf(-1) + 0.8427007929497149)).toBeLessThan(1e-15);
    expect(Math.abs(erf(3) - 0.9999779095030014)).toBeLessThan(1e-15);
    // Both sides of the switch from the series (which loses a few digits to cancellation near
    // 2.5) to the continued fraction.
    expect(Math.abs(erf(2.4999) - 0.9995928300996666)).toBeLessThan(1e-13);
    expect(Math.abs(erf(2.5) - 0.999593047982555)).toBeLessThan(1e-13);
    expect(Math.abs(erf(1e-3) - 0.0011283787909692365)).toBeLessThan(1e-18);
  });

  it('swiglu, gelu, dense and both MLPs: gradients equal central differences of Σ dy⊙y', () => {
    const n = 11;
    const g = Float64Array.from(randn(n, 1, -6, 6)), u = Float64Array.from(randn(n, 2, -3, 3)), dh = randn(n, 3);
    const sw = swigluBackwardRef(g, u, dh);
    expect(relError(sw.dgate, finiteDiff(() => dotLoss(swigluRef(g, u), dh), g))).toBeLessThan(1e-7);
    expect(relError(sw.dup, finiteDiff(() => dotLoss(swigluRef(g, u), dh), u))).toBeLessThan(1e-7);
    expect(relError(geluBackwardRef(g, dh), finiteDiff(() => dotLoss(geluRef(g), dh), g))).toBeLessThan(1e-7);
    const m = 3, d = 4, f = 5;
    const x = Float64Array.from(randn(m * d, 4));
    const w = Float64Array.from(randn(d * f, 5)), b = Float64Array.from(randn(f, 6));
    const dy = randn(m * f, 7);
    const db = denseBackwardRef(x, w, dy, m, d, f);
    const dl = () => dotLoss(denseRef(x, w, b, m, d, f), dy);
    expect(relError(db.dx, finiteDiff(dl, x))).toBeLessThan(1e-7);
    expect(relError(db.dw, finiteDiff(dl, w))).toBeLessThan(1e-7);
    expect(relError(db.db, finiteDiff(dl, b))).toBeLessThan(1e-7);
    const sm = { x, wg: Float64Array.from(randn(d * f, 8)), wu: Float64Array.from(randn(d * f, 9)), wd: Float64Array.from(randn(f * d, 10)), m, d, f };
    const dyd = randn(m * d, 11);
    const sg = swigluMlpBackwardRef(sm, dyd);
    const sl = () => dotLoss(swigluMlpRef(sm), dyd);
    expect(relError(sg.dx, finiteDiff(sl, x))).toBeLessThan(1e-7);
    expect(relError(sg.dwg, finiteDiff(sl, sm.wg))).toBeLessThan(1e-7);
    expect(relError(sg.dwu, finiteDiff(sl, sm.wu))).toBeLessThan(1e-7);
    expect(relError(sg.dwd, finiteDiff(sl, sm.wd))).toBeLessThan(1e-7);
    const gm = { x, w1: sm.wg, b1: b, w2: sm.wd, b2: Float64Array.from(randn(d, 12)), m, d, f };
    const gg = geluMlpBackwardRef(gm, dyd);
    const gl = () => dotLoss(geluMlpRef(gm), dyd);
    expect(relError(gg.dx, finiteDiff(gl, x))).toBeLessThan(1e-7);
    expect(relError(gg.dw1, finiteDiff(gl, gm.w1))).toBeLessThan(1e-7);
    expect(relError(gg.db1, finiteDiff(gl, gm.b1))).toBeLessThan(1e-7);
    expect(relError(gg.dw2, finiteDiff(gl, gm.w2))).toBeLessThan(1e-7);
    expect(relError(gg.db2, finiteDiff(gl, gm.b2))).toBeLessThan(1e-7);
  });
});

describe('ops.swiglu / gelu against float64', () => {
  it.each([1, 7, 33, 64, 1001])('n=%i, inputs in [−12, 12]', async (n) => {
    const rt = await testRuntime();
    const a = randn(n, n, -12, 12), b = randn(n, n + 1, -3, 3), dy = randn(n, n + 2);
    expect(relError(await ops.swiglu(rt, a, b), swigluRef(a, b))).toBeLessThan(TOL);
    const sb = await ops.swigluBackward(rt, a, b, dy);
    const sw = swigluBackwardRef(a, b, dy);
    expect(relError(sb.dgate, sw.dgate)).toBeLessThan(TOL);
    expect(relError(sb.dup, sw.dup)).toBeLessThan(TOL);
    expect(relError(await ops.gelu(rt, a), geluRef(a))).toBeLessThan(TOL);
    expect(relError(await ops.geluBackward(rt, a, dy), geluBackwardRef(a, dy))).toBeLessThan(TOL);
  });

  it('gelu keeps its relative accuracy in the left tail and saturates cleanly', async () => {
    const rt = await testRuntime();
    const z = Float32Array.of(-5, -3, -1e-3, 0, 1e-3, 3, 5, -40, 40, -200, 200);
    const got = await ops.gelu(rt, z);
    const want = geluRef(z);
    for (let i = 0; i < 7; i++) expect(Math.abs(got[i]! - want[i]!)).toBeLessThanOrEqual(2e-6 * Math.abs(want[i]!) + 1e-12);
    expect(Array.from(got.slice(7), Math.abs)).toEqual([0, 40, 0, 200]);
    expect(Array.from(await ops.swiglu(rt, Float32Array.of(-200, 200), Float32Array.of(1, 1)), Math.abs)).toEqual([0, 200]);
  });
});

describe('Dense', () => {
  it.each([[1, 5, 3, true], [7, 5, 13, false], [33, 67, 9, true]] as const)('m=%i in=%i out=%i bias=%s: forward, dx, dW, db accumulating', async (m, k, n, bias) => {
    const rt = await testRuntime();
    const x = randn(m * k, m + k), w = randn(k * n, n), b = randn(n, 3), dy = randn(m * n, 4);
    const dense = new Dense(rt, { inFeatures: k, outFeatures: n, bias, weight: w, biasValue: bias ? b : undefined });
    const xt = Tensor.from(rt, x, [m, k]);
    const dyt = Tensor.from(rt, dy, [m, n]);
    const batch = rt.batch('dense');
    const y = await dense.forward(batch, xt);
    const dx = await dense.backward(batch, dyt);
    await dense.backwardParams(batch, dyt);
    await batch.submit();
    expect(relError(await y.read(), denseRef(x, w, bias ? b : undefined, m, k, n))).toBeLessThan(TOL);
    const g = denseBackwardRef(x, w, dy, m, k, n);
    expect(relError(await dx.read(), g.dx)).toBeLessThan(TOL);
    const [pw, pb] = dense.params('proj');
    expect(pw!.name).toBe('proj.weight');
    expect(relError(await pw!.grad!.read(), g.dw.map((v) => 2 * v))).toBeLessThan(TOL);
    if (bias) expect(relError(await pb!.grad!.read(), g.db.map((v) => 2 * v))).toBeLessThan(TOL);
    else expect(pb).toBeUndefined();
    dense.release();
    xt.release();
    dyt.release();
  });

  it.each([[37, 27, 16, 28], [9, 5, 3, 8], [6, 45, 7, 48]] as const)('inPitch: m=%i in=%i out=%i over x rows of %i (zeros past in): forward, dx (m, pitch), dW, db accumulating', async (m, k, n, p) => {
    const rt = await testRuntime();
    const x = randn(m * k, m + 2 * k), w = randn(k * n, n + 1), b = randn(n, 5), dy = randn(m * n, 6);
    const xp = new Float32Array(m * p);
    for (let r = 0; r < m; r++) xp.set(x.subarray(r * k, (r + 1) * k), r * p);
    const dense = new Dense(rt, { inFeatures: k, outFeatures: n, weight: w, biasValue: b, inPitch: p });
    expect(dense.inPitch).toBe(p);
    const xt = Tensor.from(rt, xp, [m, p]);
    const dyt = Tensor.from(rt, dy, [m, n]);
    const batch = rt.batch('dense pitch');
    const y = await dense.forward(batch, xt);
    const dx = await dense.backward(batch, dyt);
    await dense.backwardParams(batch, dyt);
    await batch.submit();
    expect(relError(await y.read(), denseRef(x, w, b, m, k, n))).toBeLessThan(TOL);
    const g = denseBackwardRef(x, w, dy, m, k, n);
    const dxp = await dx.read();
    expect(dxp.length).toBe(m * p);
    const dxs = new Float32Array(m * k);
    for (let r = 0; r < m; r++) {
      dxs.set(dxp.subarray(r * p, r * p + k), r * k);
      for (let j = k; j < p; j++) expect(dxp[r * p + j]).toBe(0);
    }
    expect(relError(dxs, g.dx)).toBeLessThan(TOL);
    // The gradient is W's shape (in, out), added to twice.
    expect(relError(await dense.weight.grad!.read(), g.dw.map((v) => 2 * v))).toBeLessThan(TOL);
    expect(relError(await dense.bias!.grad!.read(), g.db.map((v) => 2 * v))).toBeLessThan(TOL);
    // W itself is untouched: the padded copy is the layer's own.
    expect(Array.from(await dense.weight.value.read())).toEqual(Array.from(w));
    dense.release();
    xt.release();
    dyt.release();
  });

  it('inPitch below inFeatures is INVALID_ARGUMENT; x must hold whole rows of the pitch', async () => {
    const rt = await testRuntime();
    expectCode(() => new Dense(rt, { inFeatures: 5, outFeatures: 2, inPitch: 4 }), 'INVALID_ARGUMENT');
    expectCode(() => new Dense(rt, { inFeatures: 5, outFeatures: 2, inPitch: 6.5 }), 'INVALID_ARGUMENT');
    const dense = new Dense(rt, { inFeatures: 5, outFeatures: 2, inPitch: 8 });
    const x = Tensor.from(rt, randn(10, 1), [2, 5]);
    await expectRejects(dense.forward(rt.batch('bad'), x), 'SHAPE_MISMATCH');
    x.release();
    dense.release();
  });

  it('frozen: dx only; a given Tensor weight is borrowed, not freed', async () => {
    const rt = await testRuntime();
    const w = Tensor.from(rt, randn(3 * 2, 1), [3, 2]);
    const dense = new Dense(rt, { inFeatures: 3, outFeatures: 2, weight: w, trainable: false });
    expect(dense.params().every((p) => p.grad === null && !p.trainable)).toBe(true);
    const batch = rt.batch('frozen');
    await dense.forward(batch, Tensor.from(rt, randn(6, 2), [2, 3]));
    const dx = await dense.backward(batch, Tensor.from(rt, randn(4, 3), [2, 2]));
    await batch.submit();
    expect(relError(await dx.read(), denseBackwardRef(randn(6, 2), await w.read(), randn(4, 3), 2, 3, 2).dx)).toBeLessThan(TOL);
    dense.release();
    expect((await w.read()).length).toBe(6);
  });
});

async function runMlp(rt: Awaited<ReturnType<typeof testRuntime>>, mlp: SwigluMlp | GeluMlp, x: Float32Array, dy: Float32Array, m: number, d: number) {
  const xt = Tensor.from(rt, x, [m, d]);
  const dyt = Tensor.from(rt, dy, [m, d]);
  const batch = rt.batch('mlp');
  const y = await mlp.forward(batch, xt);
  const dx = await mlp.backward(batch, dyt);
  await batch.submit();
  const out = { y: await y.read(), dx: await dx.read() };
  xt.release();
  dyt.release();
  return out;
}

describe('SwigluMlp and GeluMlp', () => {
  it.each([[7, 5, 13], [33, 67, 21]])('SwiGLU m=%i d=%i dFf=%i: y, dx, dW of gate/up/down', async (m, d, f) => {
    const rt = await testRuntime();
    const mlp = new SwigluMlp(rt, { d, dFf: f, seed: 3, initStd: 0.3 });
    const ps = mlp.params('mlp');
    expect(ps.map((p) => p.name)).toEqual(['mlp.gate_proj.weight', 'mlp.up_proj.weight', 'mlp.down_proj.weight']);
    const [wg, wu, wd] = await Promise.all(ps.map((p) => p.value.read()));
    const x = randn(m * d, m), dy = randn(m * d, m + 1);
    const got = await runMlp(rt, mlp, x, dy, m, d);
    const ref = { x, wg: wg!, wu: wu!, wd: wd!, m, d, f };
    expect(relError(got.y, swigluMlpRef(ref))).toBeLessThan(TOL);
    const g = swigluMlpBackwardRef(ref, dy);
    expect(relError(got.dx, g.dx)).toBeLessThan(TOL);
    expect(relError(await ps[0]!.grad!.read(), g.dwg)).toBeLessThan(TOL);
    expect(relError(await ps[1]!.grad!.read(), g.dwu)).toBeLessThan(TOL);
    expect(relError(await ps[2]!.grad!.read(), g.dwd)).toBeLessThan(TOL);
    mlp.release();
  });

  it.each([[7, 5, 13], [33, 67, 21]])('GELU m=%i d=%i dFf=%i: y, dx, dW and db of fc1/fc2', async (m, d, f) => {
    const rt = await testRuntime();
    const mlp = new GeluMlp(rt, { d, dFf: f, seed: 4, initStd: 0.3 });
    const ps = mlp.params('mlp');
    expect(ps.map((p) => p.name)).toEqual(['mlp.fc1.weight', 'mlp.fc1.bias', 'mlp.fc2.weight', 'mlp.fc2.bias']);
    // Non-zero biases, so that the bias path is exercised.
    ps[1]!.value.write(randn(f, 5));
    ps[3]!.value.write(randn(d, 6));
    const [w1, b1, w2, b2] = await Promise.all(ps.map((p) => p.value.read()));
    const x = randn(m * d, m + 2), dy = randn(m * d, m + 3);
    const got = await runMlp(rt, mlp, x, dy, m, d);
    const ref = { x, w1: w1!, b1: b1!, w2: w2!, b2: b2!, m, d, f };
    expect(relError(got.y, geluMlpRef(ref))).toBeLessThan(TOL);
    const g = geluMlpBackwardRef(ref, dy);
    expect(relError(got.dx, g.dx)).toBeLessThan(TOL);
    const want = [g.dw1, g.db1, g.dw2, g.db2];
    for (let i = 0; i < 4; i++) expect(relError(await ps[i]!.grad!.read(), want[i]!)).toBeLessThan(TOL);
    mlp.release();
  });

  it('a LinearFactory slots in the adapter Linear: same y and dx while B = 0, adapter gradients', async () => {
    const rt = await testRuntime();
    const m = 7, d = 5, f = 9;
    const weights = { gate_proj: randn(d * f, 1), up_proj: randn(d * f, 2), down_proj: randn(f * d, 3) } as Record<string, Float32Array>;
    const linears: Linear[] = [];
    const mlp = new SwigluMlp(rt, {
      d, dFf: f,
      linear: (s) => {
        const lin = new Linear(rt, { inFeatures: s.inFeatures, outFeatures: s.outFeatures, weight: weights[s.name]!, adapter: 'lora', rank: 2, seed: s.seed });
        linears.push(lin);
        return lin;
      },
    });
    expect(linears.length).toBe(3);
    const x = randn(m * d, 7), dy = randn(m * d, 8);
    const ref = { x, wg: weights.gate_proj!, wu: weights.up_proj!, wd: weights.down_proj!, m, d, f };
    const got = await runMlp(rt, mlp, x, dy, m, d);
    expect(relError(got.y, swigluMlpRef(ref))).toBeLessThan(TOL);
    expect(relError(got.dx, swigluMlpBackwardRef(ref, dy).dx)).toBeLessThan(TOL);
    for (const lin of linears) {
      const dB = await lin.adapterParams().find((p) => p.name === 'b')!.grad.read();
      expect(dB.some((v) => v !== 0)).toBe(true);
    }
    mlp.release();
  });

  it('projections whose outputs belong to the caller are freed by the MLP: no buffer leaks across steps', async () => {
    const rt = await testRuntime();
    const m = 7, d = 5, f = 9;
    // A Dense that hands out fresh copies of its outputs, as a caller-owned projection does.
    const fresh = (dense: Dense): LinearLike => {
      const copy = async (batch: Parameters<LinearLike['forward']>[0], t: Tensor) => {
        const out = Tensor.empty(rt, t.shape);
        await recordCopy(rt, batch, t.buffer, out.buffer, t.size);
        return out;
      };
      return {
        inFeatures: dense.inFeatures, outFeatures: dense.outFeatures, callerOwnsOutputs: true,
        forward: async (batch, x, rows) => copy(batch, await dense.forward(batch, x, rows)),
        backward: async (batch, g) => copy(batch, await dense.backward(batch, g)),
        params: (prefix) => dense.params(prefix),
        release: () => dense.release(),
      } as LinearLike;
    };
    for (const Mlp of [SwigluMlp, GeluMlp]) {
      const mlp = new Mlp(rt, { d, dFf: f, seed: 5, initStd: 0.3, linear: (s) => fresh(new Dense(rt, { ...s, initStd: 0.3 })) });
      const ps = mlp.params();
      const vals = await Promise.all(ps.map((p) => p.value.read()));
      const x = randn(m * d, 9), dy = randn(m * d, 10);
      const want = Mlp === SwigluMlp
        ? { y: swigluMlpRef({ x, wg: vals[0]!, wu: vals[1]!, wd: vals[2]!, m, d, f }), dx: swigluMlpBackwardRef({ x, wg: vals[0]!, wu: vals[1]!, wd: vals[2]!, m, d, f }, dy).dx }
        : { y: geluMlpRef({ x, w1: vals[0]!, b1: vals[1]!, w2: vals[2]!, b2: vals[3]!, m, d, f }), dx: geluMlpBackwardRef({ x, w1: vals[0]!, b1: vals[1]!, w2: vals[2]!, b2: vals[3]!, m, d, f }, dy).dx };
      let live = 0;
      for (let step = 0; step < 3; step++) {
        const got = await runMlp(rt, mlp, x, dy, m, d);
        expect(relError(got.y, want.y)).toBeLessThan(TOL);
        expect(relError(got.dx, want.dx)).toBeLessThan(TOL);
        if (step === 1) live = rt.pool.liveBytes;
        if (step === 2) expect(rt.pool.liveBytes).toBe(live);
      }
      mlp.release();
    }
  });
});

describe('residual add and elementwise helpers', () => {
  it.each([1, 7, 33, 64, 1001])('n=%i: add, addInto (broadcast), scale, fill', async (n) => {
    const rt = await testRuntime();
    const a = randn(n, n), b = randn(n, n + 1);
    expect(relError(await ops.add(rt, a, b), Float64Array.from(a, (v, i) => v + b[i]!))).toBeLessThan(1e-6);
    expect(relError(await ops.addInto(rt, a, b, -0.5), Float64Array.from(a, (v, i) => v - 0.5 * b[i]!))).toBeLessThan(1e-6);
    expect(relError(await ops.scale(rt, a, 3), Float64Array.from(a, (v) => 3 * v))).toBeLessThan(1e-6);
    expect(Array.from(await ops.fill(rt, n, 2.5))).toEqual(new Array(n).fill(2.5));
    if (n % 11 === 0) {
      const blk = randn(11, 9);
      expect(relError(await ops.addInto(rt, a, blk), Float64Array.from(a, (v, i) => v + blk[i % 11]!))).toBeLessThan(1e-6);
    }
  });

  it.each([[1, 5, 64], [7, 3, 64], [300, 9, 64], [300, 8, 16], [1000, 3, 4]])('colSum rows=%i cols=%i chunk=%i: one or two rounds, reproducible', async (rows, cols, chunk) => {
    const rt = await testRuntime();
    const x = randn(rows * cols, rows + cols);
    const want = new Float64Array(cols);
    for (let i = 0; i < x.length; i++) want[i % cols] += x[i]!;
    const got = await ops.colSum(rt, x, { rows, cols, chunk });
    expect(relError(got, want)).toBeLessThan(TOL);
    expect(await ops.colSum(rt, x, { rows, cols, chunk })).toEqual(got);
  });

  it('Residual: y = a + b, both inputs get dy, addInto sums a fan-in; copy and in-place scale', async () => {
    const rt = await testRuntime();
    const a = randn(15, 1), b = randn(15, 2), g = randn(15, 3);
    const res = new Residual(rt);
    const at = Tensor.from(rt, a, [3, 5]), bt = Tensor.from(rt, b, [3, 5]), gt = Tensor.from(rt, g, [3, 5]);
    const acc = Tensor.from(rt, b, [3, 5]);
    const copy = Tensor.zeros(rt, [20]);
    const batch = rt.batch('residual');
    const y = await res.forward(batch, at, bt);
    const [da, db] = await res.backward(batch, gt);
    await Residual.addInto(rt, batch, acc, gt);
    await recordCopy(rt, batch, at.buffer, copy.buffer, 13, 2, 5);
    await recordScale(rt, batch, -2, copy.buffer, 20);
    await batch.submit();
    expect(y.shape).toEqual([3, 5]);
    expect(relError(await y.read(), Float64Array.from(a, (v, i) => v + b[i]!))).toBeLessThan(1e-6);
    expect(da).toBe(gt);
    expect(db).toBe(gt);
    expect(relError(await acc.read(), Float64Array.from(b, (v, i) => v + g[i]!))).toBeLessThan(1e-6);
    const want = new Float64Array(20);
    for (let i = 0; i < 13; i++) want[5 + i] = -2 * a[2 + i]!;
    expect(relError(await copy.read(), want)).toBeLessThan(1e-6);
    await expect(Residual.addInto(rt, rt.batch(), acc, acc)).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
    res.release();
  });

  it('grids past the per-dimension limit fold into x·y; the kernels cover each element once', async () => {
    const rt = await testRuntime();
    const fake = (max: number) => ({ limits: { maxComputeWorkgroupsPerDimension: max } }) as unknown as typeof rt;
    expect(grid2d(fake(65535), 65535)).toEqual([65535, 1]);
    expect(grid2d(fake(65535), 65536)).toEqual([32768, 2]);
    expect(grid2d(fake(4), 11)).toEqual([4, 3]);
    expect(() => grid2d(fake(4), 17)).toThrow(/split/);
    // 2563 elements = 641 quads = 11 workgroups of 64, dispatched as 4×3 (one spare workgroup).
    const n = 2563;
    const x = Tensor.from(rt, randn(n, 1), [n]);
    const y = Tensor.from(rt, new Float32Array(n + 5).fill(7), [n + 5]);
    const pipe = await rt.pipelines.get(elementwise, 'ew_copy', { VEC: false, ACCUM: false });
    const batch = rt.batch('2d grid');
    batch.dispatch(pipe, new Params().u32(n).u32(0).u32(0).u32(n).f32(1).u32(0).u32(0).u32(0), [x.buffer, undefined, y.buffer], grid2d(fake(4), 11));
    await batch.submit();
    const got = await y.read();
    expect(Array.from(got.slice(0, n))).toEqual(Array.from(await x.read()));
    expect(Array.from(got.slice(n))).toEqual([7, 7, 7, 7, 7]);
    x.release();
    y.release();
  });
});
