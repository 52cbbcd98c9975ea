// Dual-LoRA kernels (shaders/dual_lora.wgsl), ops.dualLoraForward/dualLoraBackward and nn Linear
// against a float64 CPU reference; the reference's gradients against central finite differences.
import { describe, expect, it } from 'vitest';
import { Linear, Tensor, dropoutMask, dropoutStepSeed, ops } from '../sdk/index.js';
import { testRuntime } from './helpers/runtime.js';
import { randn, relError } from './helpers/reference.js';
import {
  dualLoraBackwardRef, dualLoraForwardRef, finiteDiff, keepFactors, lossRef, type DualLoraRefGrads, type DualLoraRefInput,
} from './helpers/lora_ref.js';
import { expectRejects } from './helpers/errors.js';

const TOL = 1e-4;

function problem(m: number, k: number, n: number, r: number, seed: number) {
  return {
    m, inFeatures: k, outFeatures: n, rank: r,
    x: randn(m * k, seed),
    w: randn(k * n, seed + 1, -0.5, 0.5),
    bias: randn(n, seed + 2),
    a: randn(k * r, seed + 3, -0.5, 0.5),
    t: randn(k * r, seed + 4, -0.5, 0.5),
    b: randn(r * n, seed + 5, -0.5, 0.5),
    gamma: randn(r, seed + 6, 0.5, 1.5),
    beta: randn(r, seed + 7, -0.5, 0.5),
    dy: randn(m * n, seed + 8),
    scale: 2,
  };
}
type Problem = ReturnType<typeof problem>;
const refInput = (p: Problem): DualLoraRefInput => ({ ...p, k: p.inFeatures, n: p.outFeatures, r: p.rank });
const GRADS = ['dx', 'da', 'dt', 'db', 'dgamma', 'dbeta'] as const;

function expectGrads(got: Record<(typeof GRADS)[number], ArrayLike<number>>, want: DualLoraRefGrads, tol = TOL): void {
  for (const g of GRADS) expect(relError(got[g], want[g]), g).toBeLessThan(tol);
}

/** A Dual-LoRA Linear holding the problem's parameters. */
function layer(rt: Awaited<ReturnType<typeof testRuntime>>, p: Problem, extra: { dropout?: number; seed?: number; schedule?: 'direct' | 'tiled' } = {}): Linear {
  const lin = new Linear(rt, {
    inFeatures: p.inFeatures, outFeatures: p.outFeatures, weight: p.w, bias: p.bias,
    adapter: 'dual-lora', rank: p.rank, alpha: p.scale * p.rank, ...extra,
  });
  lin.a!.write(p.a);
  lin.t!.write(p.t);
  lin.b!.write(p.b);
  lin.gamma!.write(p.gamma);
  lin.beta!.write(p.beta);
  return lin;
}

async function gradsOf(lin: Linear): Promise<Record<string, Float32Array>> {
  const out: Record<string, Float32Array> = {};
  for (const q of lin.adapterParams()) out[`d${q.name}`] = await q.grad.read();
  return out;
}

describe('Dual-LoRA float64 reference', () => {
  it.each([1, 4, 8])('gradients equal central differences of Σ dy⊙y (r = %i, with dropout)', (r) => {
    const p = problem(5, 7, 6, r, 20 + r);
    const keep = keepFactors(dropoutMask({ p: 0.25, seed: 9 }, 5, 7), 0.25);
    for (const mask of [undefined, keep]) {
      const vars = {
        x: Float64Array.from(p.x), a: Float64Array.from(p.a), t: Float64Array.from(p.t), b: Float64Array.from(p.b),
        gamma: Float64Array.from(p.gamma), beta: Float64Array.from(p.beta),
      };
      const inp = { ...refInput(p), ...vars, keep: mask };
      // Central differences are only valid away from the ReLU kink.
      const v = dualLoraForwardRef(inp).v;
      expect(Math.min(...v.map(Math.abs))).toBeGreaterThan(1e-4);
      const loss = () => lossRef(dualLoraForwardRef(inp).y, p.dy);
      const g = dualLoraBackwardRef(inp, p.dy);
      const fd = {
        dx: finiteDiff(loss, vars.x), da: finiteDiff(loss, vars.a), dt: finiteDiff(loss, vars.t), db: finiteDiff(loss, vars.b),
        dgamma: finiteDiff(loss, vars.gamma), dbeta: finiteDiff(loss, vars.beta),
      };
      expectGrads(fd, g, 1e-6);
    }
  });
});

describe('ops.dualLoraForward / dualLoraBackward against float64', () => {
  const cases: [number, number, number, number][] = [
    [37, 45, 29, 1],
    [37, 45, 29, 4],
    [37, 45, 29, 8],
    [37, 45, 29, 33],
    // in, out and r multiples of 4: the direct schedule on CPU emulation (rows still ragged)
    [37, 44, 28, 20], // r = 20: five rank quads, 2 + 2 + 1 (forward) and 4 + 1 (backward) in phase 1
    [19, 72, 68, 64],
  ];
  it.each(cases)('m=%i in=%i out=%i r=%i', async (m, k, n, r) => {
    const rt = await testRuntime();
    const p = problem(m, k, n, r, m + k + n + r);
    const y = await ops.dualLoraForward(rt, p);
    expect(relError(y, dualLoraForwardRef(refInput(p)).y)).toBeLessThan(TOL);
    expectGrads(await ops.dualLoraBackward(rt, p), dualLoraBackwardRef(refInput(p), p.dy));
  });

  // The tiled schedule with a split reduction, as GPUs get it (ragged, and vec4-aligned), run
  // here through nn Linear.
  it.each([[37, 45, 29, 8], [21, 44, 36, 12]])('schedule=tiled m=%i in=%i out=%i r=%i', async (m, k, n, r) => {
    const rt = await testRuntime();
    const p = problem(m, k, n, r, 3 * m + r);
    const lin = layer(rt, p, { schedule: 'tiled' });
    const x = Tensor.from(rt, p.x, [m, k]);
    const dy = Tensor.from(rt, p.dy, [m, n]);
    const batch = rt.batch('tiled');
    const y = await lin.forward(batch, x, m);
    const dx = await lin.backward(batch, dy);
    await batch.submit();
    expect(relError(await y.read(), dualLoraForwardRef(refInput(p)).y)).toBeLessThan(TOL);
    expectGrads({ dx: await dx.read(), ...(await gradsOf(lin)) } as never, dualLoraBackwardRef(refInput(p), p.dy));
    for (const tn of [x, dy]) tn.release();
    lin.release();
  });

  it('the ReLU gate at exactly v = 0 has subgradient 0', async () => {
    const rt = await testRuntime();
    const m = 9, k = 10, n = 7, r = 6;
    const p = problem(m, k, n, r, 5);
    // Small integers make v = x T exact in float32: many entries are exactly 0, and column 2
    // of T is zero so that whole column of v is.
    const ints = (len: number, seed: number, lo: number, hi: number) => Float32Array.from(randn(len, seed, lo, hi + 1), Math.floor);
    p.x = ints(m * k, 1, -2, 2);
    p.t = ints(k * r, 2, -1, 1);
    for (let i = 0; i < k; i++) p.t[i * r + 2] = 0;
    const ref = refInput(p);
    const v = dualLoraForwardRef(ref).v;
    const zeros = v.filter((e) => e === 0).length;
    expect(zeros).toBeGreaterThan(m);
    expect(v.some((e) => e > 0)).toBe(true);
    const want = dualLoraBackwardRef(ref, p.dy);
    const got = await ops.dualLoraBackward(rt, p);
    expectGrads(got, want);
    // dT's column 2 only sees v = 0, where the gate passes nothing back.
    for (let i = 0; i < k; i++) expect(got.dt[i * r + 2]).toBe(0);
    // A subgradient of 1 at v = 0 would give other dT and dx: the check can tell them apart.
    const one = dualLoraBackwardRef(ref, p.dy, 1);
    expect(relError(got.dt, one.dt)).toBeGreaterThan(1e-3);
    expect(relError(got.dx, one.dx)).toBeGreaterThan(1e-3);
  });

  it('with B = 0 equals the base layer x W + b bit for bit', async () => {
    const rt = await testRuntime();
    for (const [m, k, n, r] of [[37, 45, 29, 8], [13, 22, 18, 32]] as const) {
      const p = { ...problem(m, k, n, r, 11), b: new Float32Array(r * n) };
      const y = await ops.dualLoraForward(rt, p);
      const base = await ops.matmul(rt, p.x, p.w, { m, k, n, bias: p.bias });
      expect(Array.from(y)).toEqual(Array.from(base));
    }
  });

  it('rejects inconsistent sizes with SHAPE_MISMATCH and bad values with NON_FINITE', async () => {
    const rt = await testRuntime();
    const p = problem(6, 5, 7, 3, 1);
    await expectRejects(ops.dualLoraForward(rt, { ...p, t: randn(5 * 2, 1) }), 'SHAPE_MISMATCH');
    await expectRejects(ops.dualLoraForward(rt, { ...p, gamma: randn(4, 1) }), 'SHAPE_MISMATCH');
    await expectRejects(ops.dualLoraBackward(rt, { ...p, beta: randn(2, 1) }), 'SHAPE_MISMATCH');
    await expectRejects(ops.dualLoraBackward(rt, { ...p, w: randn(5 * 8, 1) }), 'SHAPE_MISMATCH');
    const nan = (x: Float32Array, i: number) => Float32Array.from(x, (e, j) => (j === i ? NaN : e));
    await expectRejects(ops.dualLoraForward(rt, { ...p, gamma: nan(p.gamma, 1) }), 'NON_FINITE');
    await expectRejects(ops.dualLoraForward(rt, { ...p, t: nan(p.t, 3) }), 'NON_FINITE');
    await expectRejects(ops.dualLoraBackward(rt, { ...p, beta: Float32Array.from(p.beta, () => Infinity) }), 'NON_FINITE');
    await expectRejects(ops.dualLoraBackward(rt, { ...p, dy: nan(p.dy, 0) }), 'NON_FINITE');
    await expectRejects(ops.dualLoraForward(rt, { ...p, eps: 0 }), 'INVALID_ARGUMENT');
  });
});

describe('nn Linear with a Dual-LoRA adapter', () => {
  const m = 13, k = 22, n = 18, r = 8;

  it('defaults to r = 32, s = 2, B = 0, γ = 1, β = 0 and starts equal to the base layer', async () => {
    const rt = await testRuntime();
    const p = problem(m, k, n, 32, 3);
    const lin = new Linear(rt, { inFeatures: k, outFeatures: n, weight: p.w, bias: p.bias, adapter: 'dual-lora', seed: 1 });
    expect([lin.rank, lin.scale]).toEqual([32, 2]);
    expect(lin.adapterParams().map((q) => q.name)).toEqual(['a', 't', 'b', 'gamma', 'beta']);
    expect(Array.from(await lin.gamma!.read()).every((e) => e === 1)).toBe(true);
    expect(Array.from(await lin.beta!.read()).every((e) => e === 0)).toBe(true);
    const [a, t] = [await lin.a!.read(), await lin.t!.read()];
    expect(Math.max(...a.map(Math.abs), ...t.map(Math.abs))).toBeLessThanOrEqual(1 / Math.sqrt(k));
    expect(relError(a, t)).toBeGreaterThan(0.1);
    const x = Tensor.from(rt, p.x, [m, k]);
    const batch = rt.batch('init');
    const y = await lin.forward(batch, x, m);
    await batch.submit();
    expect(Array.from(await y.read())).toEqual(Array.from(await ops.matmul(rt, p.x, p.w, { m, k, n, bias: p.bias })));
    x.release();
    lin.release();
  });

  it('forward equals ops.dualLoraForward; backward accumulates over two calls', async () => {
    const rt = await testRuntime();
    const p = problem(m, k, n, r, 17);
    const lin = layer(rt, p);
    const x = Tensor.from(rt, p.x, [m, k]);
    const dy = Tensor.from(rt, p.dy, [m, n]);
    const want = await ops.dualLoraForward(rt, p);
    const wantG = await ops.dualLoraBackward(rt, p);
    for (let step = 0; step < 2; step++) {
      const batch = rt.batch('step');
      const y = await lin.forward(batch, x, m);
      const dx = await lin.backward(batch, dy);
      await batch.submit();
      expect(Array.from(await y.read())).toEqual(Array.from(want));
      expect(relError(await dx.read(), wantG.dx)).toBeLessThan(TOL);
    }
    const got = await gradsOf(lin);
    for (const g of ['da', 'dt', 'db', 'dgamma', 'dbeta'] as const) {
      expect(relError(got[g]!, wantG[g].map((e) => 2 * e)), g).toBeLessThan(TOL);
    }
    for (const tn of [x, dy]) tn.release();
    lin.release();
  });

  // Both schedules: a ragged layer (tiled) and an aligned one (direct on CPU emulation).
  it.each([[13, 22, 18, 8], [21, 24, 20, 20]])('dropout (A branch only) is seeded and the backward uses the forward mask (m=%i in=%i out=%i r=%i)', async (m, k, n, r) => {
    const rt = await testRuntime();
    const p = problem(m, k, n, r, 29);
    const drop = 0.2, seed = 8;
    const l1 = layer(rt, p, { dropout: drop, seed }), l2 = layer(rt, p, { dropout: drop, seed });
    const x = Tensor.from(rt, p.x, [m, k]);
    const dy = Tensor.from(rt, p.dy, [m, n]);
    const ref = (step: number) => ({ ...refInput(p), keep: keepFactors(dropoutMask({ p: drop, seed: dropoutStepSeed(seed, step) }, m, k), drop) });
    const g0 = dualLoraBackwardRef(ref(0), p.dy), g1 = dualLoraBackwardRef(ref(1), p.dy);
    // Two steps of l1 (the second forward draws a new mask), one of l2 (same seed: same mask).
    const ys: Float32Array[] = [];
    for (const [step, g] of [g0, g1].entries()) {
      const batch = rt.batch(`dropout ${step}`);
      const y = await l1.forward(batch, x, m);
      const dx = await l1.backward(batch, dy);
      await batch.submit();
      ys.push(await y.read());
      expect(relError(ys[step]!, dualLoraForwardRef(ref(step)).y)).toBeLessThan(TOL);
      expect(relError(await dx.read(), g.dx)).toBeLessThan(TOL);
    }
    expect(relError(ys[1]!, ys[0]!)).toBeGreaterThan(1e-3);
    const batch = rt.batch('same seed');
    const z0 = await l2.forward(batch, x, m);
    await batch.submit();
    expect(Array.from(await z0.read())).toEqual(Array.from(ys[0]!));
    const got = await gradsOf(l1);
    for (const g of ['da', 'dt', 'db', 'dgamma', 'dbeta'] as const) {
      expect(relError(got[g]!, g0[g].map((e, i) => e + g1[g][i]!)), g).toBeLessThan(TOL);
    }
    for (const tn of [x, dy]) tn.release();
    l1.release();
    l2.release();
  });
});
