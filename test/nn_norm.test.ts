// RMSNorm and LayerNorm (shaders/norm.wgsl): the float64 reference's gradients against finite
// differences, then ops and the nn layers against the reference on ragged shapes, both schedules.
import { describe, expect, it } from 'vitest';
import { EdgeTuneError, LayerNorm, RMSNorm, Tensor, ops } from '../sdk/index.js';
import { testRuntime } from './helpers/runtime.js';
import { randn, relError } from './helpers/reference.js';
import { setTrainable } from '../sdk/nn/module.js';
import { dotLoss, finiteDiff, normBackwardRef, normRef, type NormRefInput } from './helpers/nn_ref.js';

const TOL = 1e-4;

function problem(kind: 'rms' | 'layer', rows: number, d: number, seed: number): NormRefInput & { dy: Float32Array } {
  return {
    kind, rows, d, eps: 1e-5,
    x: randn(rows * d, seed, -2, 2),
    gamma: randn(d, seed + 1, 0.5, 1.5),
    beta: randn(d, seed + 2),
    dy: randn(rows * d, seed + 3),
  };
}

describe('norm float64 reference', () => {
  it.each(['rms', 'layer'] as const)('%s: gradients equal central differences of Σ dy⊙y', (kind) => {
    const p = problem(kind, 3, 7, 5);
    const x = Float64Array.from(p.x), gamma = Float64Array.from(p.gamma), beta = Float64Array.from(p.beta!);
    const inp = { ...p, x, gamma, beta };
    const loss = () => dotLoss(normRef(inp).y, p.dy);
    const g = normBackwardRef(inp, p.dy);
    expect(relError(g.dx, finiteDiff(loss, x))).toBeLessThan(1e-7);
    expect(relError(g.dgamma, finiteDiff(loss, gamma))).toBeLessThan(1e-7);
    if (kind === 'layer') expect(relError(g.dbeta, finiteDiff(loss, beta))).toBeLessThan(1e-7);
  });
});

describe('ops.rmsNorm / layerNorm against float64', () => {
  const shapes: [number, number][] = [[1, 5], [7, 48], [33, 67], [300, 5], [2, 260]];
  for (const kind of ['rms', 'layer'] as const) {
    for (const schedule of ['row', 'workgroup'] as const) {
      it.each(shapes)(`${kind} ${schedule}: rows=%i d=%i`, async (rows, d) => {
        const rt = await testRuntime();
        const p = problem(kind, rows, d, rows * 131 + d);
        const o = { rows, d, eps: p.eps, schedule };
        const want = normRef(p);
        const wantG = normBackwardRef(p, p.dy);
        if (kind === 'rms') {
          expect(relError(await ops.rmsNorm(rt, p.x as Float32Array, p.gamma as Float32Array, o), want.y)).toBeLessThan(TOL);
          const g = await ops.rmsNormBackward(rt, p.x as Float32Array, p.gamma as Float32Array, p.dy, o);
          expect(relError(g.dx, wantG.dx)).toBeLessThan(TOL);
          expect(relError(g.dgamma, wantG.dgamma)).toBeLessThan(TOL);
        } else {
          const y = await ops.layerNorm(rt, p.x as Float32Array, p.gamma as Float32Array, p.beta as Float32Array, o);
          expect(relError(y, want.y)).toBeLessThan(TOL);
          const g = await ops.layerNormBackward(rt, p.x as Float32Array, p.gamma as Float32Array, p.beta as Float32Array, p.dy, o);
          expect(relError(g.dx, wantG.dx)).toBeLessThan(TOL);
          expect(relError(g.dgamma, wantG.dgamma)).toBeLessThan(TOL);
          expect(relError(g.dbeta, wantG.dbeta)).toBeLessThan(TOL);
        }
      });
    }
  }
});

describe('RMSNorm / LayerNorm layers', () => {
  it.each([
    ['rms', 33, 67],
    ['layer', 33, 67],
    ['rms', 130, 48],
    ['layer', 130, 48],
  ] as const)('%s rows=%i d=%i: forward, dx, and γ/β gradients that accumulate over two backwards', async (kind, rows, d) => {
    const rt = await testRuntime();
    const p = problem(kind, rows, d, 77 + rows + d);
    const Layer = kind === 'rms' ? RMSNorm : LayerNorm;
    const norm = new Layer(rt, { d, eps: p.eps, weight: p.gamma as Float32Array, bias: kind === 'layer' ? (p.beta as Float32Array) : undefined });
    const x = Tensor.from(rt, p.x as Float32Array, [rows, d]);
    const dy = Tensor.from(rt, p.dy, [rows, d]);
    const batch = rt.batch('norm layer');
    const y = await norm.forward(batch, x);
    const dx = await norm.backward(batch, dy);
    await norm.backward(batch, dy);
    await batch.submit();
    const want = normRef(p);
    const wantG = normBackwardRef(p, p.dy);
    expect(relError(await y.read(), want.y)).toBeLessThan(TOL);
    expect(relError(await dx.read(), wantG.dx)).toBeLessThan(TOL);
    const params = norm.params('model.norm');
    expect(params.map((q) => q.name)).toEqual(kind === 'rms' ? ['model.norm.weight'] : ['model.norm.weight', 'model.norm.bias']);
    expect(relError(await params[0]!.grad!.read(), wantG.dgamma.map((v) => 2 * v))).toBeLessThan(TOL);
    if (kind === 'layer') expect(relError(await params[1]!.grad!.read(), wantG.dbeta.map((v) => 2 * v))).toBeLessThan(TOL);
    norm.release();
    x.release();
    dy.release();
  });

  it('γ/β gradients are bit-for-bit reproducible; a second step compiles no pipeline', async () => {
    const rt = await testRuntime();
    const rows = 300, d = 20;
    const p = problem('layer', rows, d, 9);
    const norm = new LayerNorm(rt, { d, eps: p.eps });
    const x = Tensor.from(rt, p.x as Float32Array, [rows, d]);
    const dy = Tensor.from(rt, p.dy, [rows, d]);
    const grads: Uint32Array[] = [];
    let compiled = 0;
    for (let step = 0; step < 2; step++) {
      const batch = rt.batch('step');
      for (const q of norm.params()) batch.clear(q.grad!.buffer);
      await norm.forward(batch, x);
      await norm.backward(batch, dy);
      await batch.submit();
      grads.push(new Uint32Array((await norm.weight.grad!.read()).buffer), new Uint32Array((await norm.bias!.grad!.read()).buffer));
      if (step === 0) compiled = rt.pipelines.compiled;
    }
    expect(rt.pipelines.compiled).toBe(compiled);
    expect(grads[2]).toEqual(grads[0]);
    expect(grads[3]).toEqual(grads[1]);
    expect(relError(new Float32Array(grads[0]!.buffer), normBackwardRef(p, p.dy).dgamma)).toBeLessThan(TOL);
    norm.release();
  });

  it('a frozen norm gives dx and no gradient; bad arguments throw', async () => {
    const rt = await testRuntime();
    const p = problem('rms', 7, 5, 3);
    const norm = new RMSNorm(rt, { d: 5, eps: p.eps, weight: p.gamma as Float32Array, trainable: false });
    expect(norm.weight.grad).toBeNull();
    const x = Tensor.from(rt, p.x as Float32Array, [7, 5]);
    const batch = rt.batch('frozen');
    await norm.forward(batch, x);
    const dx = await norm.backward(batch, Tensor.from(rt, p.dy, [7, 5]));
    await batch.submit();
    expect(relError(await dx.read(), normBackwardRef(p, p.dy).dx)).toBeLessThan(TOL);
    await expect(norm.forward(rt.batch(), Tensor.zeros(rt, [3, 4]))).rejects.toMatchObject({ code: 'SHAPE_MISMATCH' });
    expect(() => new LayerNorm(rt, { d: 4, eps: 0 })).toThrow(EdgeTuneError);
    await expect(ops.rmsNorm(rt, new Float32Array(6), new Float32Array(3), { rows: 3, d: 3 })).rejects.toMatchObject({ code: 'SHAPE_MISMATCH' });
    norm.release();
  });

  it.each([7, 300])('LayerNorm rows=%i with β frozen, then with γ frozen: the other gradient alone', async (rows) => {
    const rt = await testRuntime();
    const d = 6;
    const p = problem('layer', rows, d, 21);
    const want = normBackwardRef(p, p.dy);
    const x = Tensor.from(rt, p.x as Float32Array, [rows, d]);
    const dy = Tensor.from(rt, p.dy, [rows, d]);
    const norm = new LayerNorm(rt, { d, eps: p.eps, weight: p.gamma as Float32Array, bias: p.beta as Float32Array });
    for (const frozen of ['bias', 'weight'] as const) {
      setTrainable(rt, norm.weight, frozen !== 'weight');
      setTrainable(rt, norm.bias!, frozen !== 'bias');
      const batch = rt.batch('half frozen');
      await norm.forward(batch, x);
      await norm.backward(batch, dy);
      await batch.submit();
      if (frozen === 'bias') expect(relError(await norm.weight.grad!.read(), want.dgamma)).toBeLessThan(TOL);
      else expect(relError(await norm.bias!.grad!.read(), want.dbeta)).toBeLessThan(TOL);
    }
    norm.release();
  });
});
