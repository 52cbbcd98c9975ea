// LoRA kernels (shaders/lora.wgsl), ops.loraForward/loraBackward and nn Linear against a float64
// CPU reference; the reference's gradients against central finite differences.
import { describe, expect, it } from 'vitest';
import { EdgeTuneError, Linear, Tensor, dropoutMask, dropoutStepSeed, ops } from '../sdk/index.js';
import { testRuntime } from './helpers/runtime.js';
import { randn, relError } from './helpers/reference.js';
import { finiteDiff, keepFactors, loraBackwardRef, loraForwardRef, lossRef, type LoraRefInput } from './helpers/lora_ref.js';
import { expectRejects } from './helpers/errors.js';

const TOL = 1e-4;

function problem(m: number, k: number, n: number, r: number, seed: number) {
  return {
    m, inFeatures: k, outFeatures: n, rank: r,
    x: randn(m * k, seed),
    w: randn(k * n, seed + 1, -0.5, 0.5),
    bias: randn(n, seed + 2),
    a: randn(k * r, seed + 3, -0.5, 0.5),
    b: randn(r * n, seed + 4, -0.5, 0.5),
    dy: randn(m * n, seed + 5),
    scale: 16 / r,
  };
}
type Problem = ReturnType<typeof problem>;
const refInput = (p: Problem): LoraRefInput => ({ ...p, k: p.inFeatures, n: p.outFeatures, r: p.rank });

describe('LoRA float64 reference', () => {
  // The reference backward is what the GPU is checked against, so it is checked first.
  it.each([1, 4, 8])('gradients equal central differences of Σ dy⊙y (r = %i, with dropout)', (r) => {
    const p = problem(5, 7, 6, r, 10 + r);
    const keep = keepFactors(dropoutMask({ p: 0.25, seed: 3 }, 5, 7), 0.25);
    for (const mask of [undefined, keep]) {
      const x = Float64Array.from(p.x), a = Float64Array.from(p.a), b = Float64Array.from(p.b);
      const inp = { ...refInput(p), x, a, b, keep: mask };
      const loss = () => lossRef(loraForwardRef(inp).y, p.dy);
      const g = loraBackwardRef(inp, p.dy);
      expect(relError(g.dx, finiteDiff(loss, x))).toBeLessThan(1e-7);
      expect(relError(g.da, finiteDiff(loss, a))).toBeLessThan(1e-7);
      expect(relError(g.db, finiteDiff(loss, b))).toBeLessThan(1e-7);
    }
  });
});

describe('ops.loraForward / loraBackward against float64', () => {
  const cases: [number, number, number, number, 'direct' | 'tiled' | undefined][] = [
    [37, 45, 29, 1, undefined],
    [37, 45, 29, 4, undefined],
    [37, 45, 29, 8, undefined],
    [37, 45, 29, 33, undefined],
    // in, out and r multiples of 4: the direct schedule on CPU emulation (rows still ragged)
    [37, 44, 28, 20, undefined], // r = 20: five rank quads, 4 + 1 in phase 1
    [19, 72, 68, 64, undefined],
    // the tiled schedule with a split reduction, as GPUs get it: ragged, and vec4-aligned
    [37, 45, 29, 8, 'tiled'],
    [21, 44, 36, 12, 'tiled'],
  ];
  it.each(cases)('m=%i in=%i out=%i r=%i schedule=%s', async (m, k, n, r, schedule) => {
    const rt = await testRuntime();
    const p = problem(m, k, n, r, m + k + n + r);
    // ops take the adapter's best schedule; the kernels are driven directly for a forced one.
    const want = loraForwardRef(refInput(p));
    const wantG = loraBackwardRef(refInput(p), p.dy);
    if (!schedule) {
      const y = await ops.loraForward(rt, p);
      expect(relError(y, want.y)).toBeLessThan(TOL);
      const g = await ops.loraBackward(rt, p);
      expect(relError(g.dx, wantG.dx)).toBeLessThan(TOL);
      expect(relError(g.da, wantG.da)).toBeLessThan(TOL);
      expect(relError(g.db, wantG.db)).toBeLessThan(TOL);
    } else {
      const lin = new Linear(rt, { inFeatures: k, outFeatures: n, weight: p.w, bias: p.bias, adapter: 'lora', rank: r, alpha: p.scale * r, schedule });
      lin.a!.write(p.a);
      lin.b!.write(p.b);
      const x = Tensor.from(rt, p.x, [m, k]);
      const dy = Tensor.from(rt, p.dy, [m, n]);
      const batch = rt.batch('test');
      const y = await lin.forward(batch, x, m);
      const dx = await lin.backward(batch, dy);
      await batch.submit();
      expect(relError(await y.read(), want.y)).toBeLessThan(TOL);
      expect(relError(await dx.read(), wantG.dx)).toBeLessThan(TOL);
      const grads = Object.fromEntries(lin.adapterParams().map((q) => [q.name, q.grad]));
      expect(relError(await grads.a!.read(), wantG.da)).toBeLessThan(TOL);
      expect(relError(await grads.b!.read(), wantG.db)).toBeLessThan(TOL);
      for (const t of [x, dy]) t.release();
      lin.release();
    }
  });

  it('rejects inconsistent sizes with SHAPE_MISMATCH', async () => {
    const rt = await testRuntime();
    const p = problem(6, 5, 7, 3, 1);
    await expectRejects(ops.loraForward(rt, { ...p, x: p.x.subarray(1) }), 'SHAPE_MISMATCH');
    await expectRejects(ops.loraForward(rt, { ...p, a: randn(5 * 4, 2) }), 'SHAPE_MISMATCH');
    await expectRejects(ops.loraForward(rt, { ...p, bias: randn(6, 2) }), 'SHAPE_MISMATCH');
    await expectRejects(ops.loraBackward(rt, { ...p, b: randn(3 * 6, 2) }), 'SHAPE_MISMATCH');
    await expectRejects(ops.loraBackward(rt, { ...p, dy: randn(6 * 6, 2) }), 'SHAPE_MISMATCH');
  });

  it('rejects NaN and Infinity in any input with NON_FINITE', async () => {
    const rt = await testRuntime();
    const p = problem(6, 5, 7, 3, 1);
    const poison = (x: Float32Array, i: number, v: number) => {
      const c = x.slice();
      c[i] = v;
      return c;
    };
    await expectRejects(ops.loraForward(rt, { ...p, x: poison(p.x, 7, NaN) }), 'NON_FINITE');
    await expectRejects(ops.loraForward(rt, { ...p, w: poison(p.w, 0, Infinity) }), 'NON_FINITE');
    await expectRejects(ops.loraForward(rt, { ...p, b: poison(p.b, 20, -Infinity) }), 'NON_FINITE');
    await expectRejects(ops.loraForward(rt, { ...p, scale: NaN }), 'NON_FINITE');
    await expectRejects(ops.loraBackward(rt, { ...p, dy: poison(p.dy, 41, NaN) }), 'NON_FINITE');
    await expectRejects(ops.loraBackward(rt, { ...p, a: poison(p.a, 14, NaN) }), 'NON_FINITE');
  });

  it('rejects a rank over 64 and empty sizes with INVALID_ARGUMENT', async () => {
    const rt = await testRuntime();
    const p = problem(2, 3, 4, 65, 1);
    await expectRejects(ops.loraForward(rt, p), 'INVALID_ARGUMENT');
    await expectRejects(ops.loraForward(rt, { ...problem(2, 3, 4, 2, 1), m: 0 }), 'INVALID_ARGUMENT');
  });
});

describe('nn Linear with a LoRA adapter', () => {
  const m = 13, k = 22, n = 18, r = 8;

  it('starts equal to the base layer (B = 0), with PEFT init of A', async () => {
    const rt = await testRuntime();
    const p = problem(m, k, n, r, 77);
    const lin = new Linear(rt, { inFeatures: k, outFeatures: n, weight: p.w, bias: p.bias, adapter: 'lora', rank: r, seed: 5 });
    expect(lin.scale).toBe(1);
    const a = await lin.a!.read();
    const bound = 1 / Math.sqrt(k);
    expect(Math.max(...a.map(Math.abs))).toBeLessThanOrEqual(bound);
    expect(Math.max(...a.map(Math.abs))).toBeGreaterThan(bound / 2);
    expect(Array.from(await lin.b!.read()).every((v) => v === 0)).toBe(true);
    const x = Tensor.from(rt, p.x, [m, k]);
    const batch = rt.batch('test');
    const y = await lin.forward(batch, x, m);
    await batch.submit();
    const base = await ops.matmul(rt, p.x, p.w, { m, k, n, bias: p.bias });
    expect(Array.from(await y.read())).toEqual(Array.from(base));
    // The same seed gives the same init.
    const again = new Linear(rt, { inFeatures: k, outFeatures: n, weight: p.w, adapter: 'lora', rank: r, seed: 5 });
    expect(Array.from(await again.a!.read())).toEqual(Array.from(a));
    // Frozen weight and bias, then the adapter, named under a prefix.
    expect(lin.params('q_proj').map((q) => [q.name, q.trainable])).toEqual([
      ['q_proj.weight', false], ['q_proj.bias', false], ['q_proj.a', true], ['q_proj.b', true],
    ]);
    x.release();
    lin.release();
    again.release();
  });

  it('forward equals ops.loraForward; backward accumulates over two calls', async () => {
    const rt = await testRuntime();
    const p = problem(m, k, n, r, 91);
    const lin = new Linear(rt, { inFeatures: k, outFeatures: n, weight: p.w, bias: p.bias, adapter: 'lora', rank: r, alpha: 2 * r });
    lin.a!.write(p.a);
    lin.b!.write(p.b);
    const x = Tensor.from(rt, p.x, [m, k]);
    const dy = Tensor.from(rt, p.dy, [m, n]);
    const want = await ops.loraForward(rt, { ...p, scale: 2 });
    const wantG = await ops.loraBackward(rt, { ...p, scale: 2 });
    for (let step = 0; step < 2; step++) {
      const batch = rt.batch('step');
      const y = await lin.forward(batch, x, m);
      const dx = await lin.backward(batch, dy);
      await batch.submit();
      expect(Array.from(await y.read())).toEqual(Array.from(want));
      expect(relError(await dx.read(), wantG.dx)).toBeLessThan(TOL);
    }
    const [pa, pb] = lin.adapterParams();
    expect(pa!.name).toBe('a');
    expect(pb!.name).toBe('b');
    expect(relError(await pa!.grad.read(), wantG.da.map((v) => 2 * v))).toBeLessThan(TOL);
    expect(relError(await pb!.grad.read(), wantG.db.map((v) => 2 * v))).toBeLessThan(TOL);
    const batch = rt.batch('zero');
    lin.zeroGrad(batch);
    await batch.submit();
    expect(Array.from(await pb!.grad.read()).every((v) => v === 0)).toBe(true);
    for (const t of [x, dy]) t.release();
    lin.release();
  });

  // Both schedules: a ragged layer (tiled) and an aligned one (direct on CPU emulation).
  it.each([[13, 22, 18, 8], [21, 24, 20, 20]])('dropout is seeded and the backward uses the forward mask (m=%i in=%i out=%i r=%i)', async (m, k, n, r) => {
    const rt = await testRuntime();
    const p = problem(m, k, n, r, 123);
    const drop = 0.3, seed = 42;
    const make = (s: number) => {
      const lin = new Linear(rt, { inFeatures: k, outFeatures: n, weight: p.w, bias: p.bias, adapter: 'lora', rank: r, alpha: r, dropout: drop, seed: s });
      lin.a!.write(p.a);
      lin.b!.write(p.b);
      return lin;
    };
    const l1 = make(seed), l2 = make(seed), l3 = make(seed + 1);
    const x = Tensor.from(rt, p.x, [m, k]);
    const dy = Tensor.from(rt, p.dy, [m, n]);
    const batch = rt.batch('dropout');
    const y1 = await l1.forward(batch, x, m);
    const dx1 = await l1.backward(batch, dy);
    const y2 = await l2.forward(batch, x, m);
    const y3 = await l3.forward(batch, x, m);
    await batch.submit();
    const [y1h, y2h, y3h] = [await y1.read(), await y2.read(), await y3.read()];
    expect(Array.from(y2h)).toEqual(Array.from(y1h));
    expect(relError(y3h, y1h)).toBeGreaterThan(1e-3);
    // The mask of the first forward is reproducible on the host.
    const mask = dropoutMask({ p: drop, seed: dropoutStepSeed(seed, 0) }, m, k);
    const kept = mask.reduce((s, v) => s + v, 0) / mask.length;
    expect(kept).toBeGreaterThan(0.5);
    expect(kept).toBeLessThan(0.9);
    const inp = { ...refInput(p), scale: 1, keep: keepFactors(mask, drop) };
    expect(relError(y1h, loraForwardRef(inp).y)).toBeLessThan(TOL);
    const g = loraBackwardRef(inp, p.dy);
    expect(relError(await dx1.read(), g.dx)).toBeLessThan(TOL);
    const [pa, pb] = l1.adapterParams();
    expect(relError(await pa!.grad.read(), g.da)).toBeLessThan(TOL);
    expect(relError(await pb!.grad.read(), g.db)).toBeLessThan(TOL);
    // Eval mode: no dropout.
    l1.training = false;
    const b2 = rt.batch('eval');
    const ye = await l1.forward(b2, x, m);
    await b2.submit();
    expect(relError(await ye.read(), loraForwardRef({ ...inp, keep: undefined }).y)).toBeLessThan(TOL);
    for (const t of [x, dy]) t.release();
    for (const l of [l1, l2, l3]) l.release();
  });

  it('without an adapter is the plain layer, forward and backward', async () => {
    const rt = await testRuntime();
    const p = problem(m, k, n, 1, 7);
    const lin = new Linear(rt, { inFeatures: k, outFeatures: n, weight: p.w, bias: p.bias });
    expect(lin.adapterParams()).toEqual([]);
    const x = Tensor.from(rt, p.x, [m, k]);
    const dy = Tensor.from(rt, p.dy, [m, n]);
    const batch = rt.batch('plain');
    const y = await lin.forward(batch, x, m);
    const dx = await lin.backward(batch, dy);
    await batch.submit();
    const ref = loraBackwardRef({ ...refInput(p), b: new Float32Array(n) }, p.dy);
    expect(relError(await y.read(), loraForwardRef({ ...refInput(p), b: new Float32Array(n) }).y)).toBeLessThan(TOL);
    expect(relError(await dx.read(), ref.dx)).toBeLessThan(TOL);
    await expectRejects(lin.forward(rt.batch('bad'), x, m + 1), 'SHAPE_MISMATCH');
    await expectRejects(lin.backward(rt.batch('bad'), x), 'SHAPE_MISMATCH');
    const fresh = new Linear(rt, { inFeatures: k, outFeatures: n, weight: p.w, adapter: 'lora', rank: r });
    await expectRejects(fresh.backward(rt.batch('no forward'), dy), 'INVALID_ARGUMENT');
    expect(() => new Linear(rt, { inFeatures: k, outFeatures: n, weight: p.w, adapter: 'lora', rank: 65 })).toThrow(EdgeTuneError);
    expect(() => new Linear(rt, { inFeatures: k, outFeatures: n, weight: p.x })).toThrow(EdgeTuneError);
    for (const t of [x, dy]) t.release();
    lin.release();
    fresh.release();
  });
});
