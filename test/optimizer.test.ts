// AdamW, global-norm clipping and the LR schedule against float64 references.
import { describe, expect, test } from 'vitest';
import { Tensor } from '../sdk/index.js';
import { AdamW } from '../sdk/train/optimizer.js';
import { learningRate } from '../sdk/train/schedule.js';
import { param, type Param } from '../sdk/nn/module.js';
import { randn, relError } from './helpers/reference.js';
import { testRuntime } from './helpers/runtime.js';

interface RefState { p: Float64Array; m: Float64Array; v: Float64Array; decay: boolean }

/** float64 AdamW with global-norm clipping; returns the pre-clip norm. */
function refStep(states: RefState[], grads: Float64Array[], t: number, o: { lr: number; b1: number; b2: number; eps: number; wd: number; maxNorm: number; gradScale: number }): number {
  let s = 0;
  for (const g of grads) for (const x of g) s += x * x;
  const norm = Math.sqrt(s);
  const scaled = norm * o.gradScale;
  const scale = o.maxNorm > 0 && scaled > o.maxNorm ? (o.gradScale * o.maxNorm) / (scaled + 1e-6) : o.gradScale;
  const bc1 = 1 - o.b1 ** t, bc2 = 1 - o.b2 ** t;
  states.forEach((st, k) => {
    for (let i = 0; i < st.p.length; i++) {
      const g = scale * grads[k]![i]!;
      st.m[i] = o.b1 * st.m[i]! + (1 - o.b1) * g;
      st.v[i] = o.b2 * st.v[i]! + (1 - o.b2) * g * g;
      st.p[i] = st.p[i]! - o.lr * (st.m[i]! / bc1 / (Math.sqrt(st.v[i]! / bc2) + o.eps) + (st.decay ? o.wd : 0) * st.p[i]!);
    }
  });
  return norm;
}

async function makeParams(shapes: number[][], seed: number): Promise<Param[]> {
  const rt = await testRuntime();
  return shapes.map((shape, i) => {
    const n = shape.reduce((a, b) => a * b, 1);
    return param(rt, `p${i}`, Tensor.from(rt, randn(n, seed + i), shape), true);
  });
}

describe('AdamW', () => {
  const shapes = [[37, 29], [10001], [5], [3, 7, 11]];

  for (const maxNorm of [0, 1e9, 0.5]) {
    test(`3 steps match float64 AdamW (maxGradNorm=${maxNorm}, gradScale 0.5)`, async () => {
      const rt = await testRuntime();
      const params = await makeParams(shapes, 11);
      const o = { lr: 1e-2, b1: 0.9, b2: 0.99, eps: 1e-8, wd: 0.1, maxNorm, gradScale: 0.5 };
      const opt = new AdamW(rt, params, { lr: o.lr, beta1: o.b1, beta2: o.b2, eps: o.eps, weightDecay: o.wd, maxGradNorm: maxNorm });
      const ref: RefState[] = [];
      for (const p of params) {
        ref.push({ p: Float64Array.from(await p.value.read()), m: new Float64Array(p.value.size), v: new Float64Array(p.value.size), decay: p.value.shape.length >= 2 });
      }
      for (let t = 1; t <= 3; t++) {
        const grads = params.map((p, i) => randn(p.value.size, 100 * t + i, -2, 2));
        grads.forEach((g, i) => params[i]!.grad!.write(g));
        const batch = rt.batch('adamw');
        await opt.record(batch, { gradScale: o.gradScale });
        await batch.submit();
        const norm = refStep(ref, grads.map((g) => Float64Array.from(g)), t, o);
        const stats = await opt.readStats();
        expect(stats.skipped).toBe(false);
        expect(Math.abs(stats.gradNorm - norm) / norm).toBeLessThan(1e-5);
      }
      for (let i = 0; i < params.length; i++) {
        expect(relError(await params[i]!.value.read(), ref[i]!.p)).toBeLessThan(1e-5);
      }
      opt.destroy();
    });
  }

  test('clipping caps the applied gradient norm', async () => {
    // With maxNorm tiny, the first Adam step moves each weight by ≈ lr·sign(g) regardless,
    // so check the recorded scale instead: scale·‖g‖ = maxNorm.
    const rt = await testRuntime();
    const params = await makeParams([[100]], 3);
    const g = randn(100, 4, -5, 5);
    params[0]!.grad!.write(g);
    const opt = new AdamW(rt, params, { maxGradNorm: 0.25 });
    const batch = rt.batch();
    await opt.record(batch);
    await batch.submit();
    const s = await opt.stats.read();
    expect(s[1]! * s[0]!).toBeCloseTo(0.25, 5);
    opt.destroy();
  });

  for (const where of ['gradient', 'loss'] as const) {
    test(`a non-finite ${where} skips the step and changes nothing`, async () => {
      const rt = await testRuntime();
      const params = await makeParams([[9, 5], [300]], 21);
      const before = await Promise.all(params.map((p) => p.value.read()));
      params.forEach((p, i) => p.grad!.write(randn(p.value.size, 50 + i)));
      if (where === 'gradient') {
        const g = randn(300, 7);
        g[123] = Number.NaN;
        params[1]!.grad!.write(g);
      }
      const loss = Tensor.from(rt, new Float32Array([where === 'loss' ? Number.POSITIVE_INFINITY : 1.5]), [1]);
      const opt = new AdamW(rt, params);
      const batch = rt.batch();
      await opt.record(batch, { loss: loss.buffer });
      await batch.submit();
      expect((await opt.readStats()).skipped).toBe(true);
      for (let i = 0; i < params.length; i++) expect(Array.from(await params[i]!.value.read())).toEqual(Array.from(before[i]!));
      const state = await opt.state();
      expect(state.m.p0!.every((x) => x === 0)).toBe(true);
      opt.destroy();
      loss.release();
    });
  }

  test('frozen parameters get no state and are not touched', async () => {
    const rt = await testRuntime();
    const frozen = param(rt, 'frozen', Tensor.from(rt, randn(64, 1), [8, 8]), false);
    const live = param(rt, 'live', Tensor.from(rt, randn(8, 2), [8]), true);
    const opt = new AdamW(rt, [frozen, live]);
    expect(opt.params.map((p) => p.name)).toEqual(['live']);
    expect(opt.stateBytes).toBe(8 * 8);
    expect(frozen.grad).toBeNull();
    opt.destroy();
  });

  test('zeroGrads clears every gradient', async () => {
    const rt = await testRuntime();
    const params = await makeParams([[33]], 8);
    params[0]!.grad!.write(randn(33, 9));
    const opt = new AdamW(rt, params);
    const batch = rt.batch();
    opt.zeroGrads(batch);
    await batch.submit();
    expect((await params[0]!.grad!.read()).every((x) => x === 0)).toBe(true);
    opt.destroy();
  });

  test('no trainable parameters is an error', async () => {
    const rt = await testRuntime();
    const frozen = param(rt, 'frozen', Tensor.from(rt, randn(4, 1), [4]), false);
    expect(() => new AdamW(rt, [frozen])).toThrow(/no trainable parameters/);
  });
});

describe('learning-rate schedule', () => {
  const s = { lr: 1e-3, warmup: 10, total: 110, minLr: 1e-5 };
  test('linear warmup reaches the peak at the end of warmup', () => {
    expect(learningRate(s, 1)).toBeCloseTo(1e-4, 12);
    expect(learningRate(s, 5)).toBeCloseTo(5e-4, 12);
    expect(learningRate(s, 10)).toBeCloseTo(1e-3, 12);
  });
  test('cosine decay: half way is the midpoint, the end is minLr', () => {
    expect(learningRate(s, 60)).toBeCloseTo((1e-3 + 1e-5) / 2, 12);
    expect(learningRate(s, 110)).toBeCloseTo(1e-5, 12);
    expect(learningRate(s, 500)).toBeCloseTo(1e-5, 12);
  });
  test('a second cycle (then) restarts after total with its own warmup and cosine; the first cycle is unchanged', () => {
    const r = { ...s, then: { lr: 4e-4, warmup: 4, total: 20, minLr: 4e-5 } };
    for (let t = 1; t <= 110; t++) expect(learningRate(r, t)).toBe(learningRate(s, t));
    expect(learningRate(r, 111)).toBeCloseTo(1e-4, 12);
    expect(learningRate(r, 114)).toBeCloseTo(4e-4, 12);
    expect(learningRate(r, 122)).toBeCloseTo((4e-4 + 4e-5) / 2, 12);
    expect(learningRate(r, 130)).toBeCloseTo(4e-5, 12);
    expect(learningRate(r, 900)).toBeCloseTo(4e-5, 12);
  });
  test('monotone after warmup', () => {
    for (let t = 11; t < 110; t++) expect(learningRate(s, t + 1)).toBeLessThanOrEqual(learningRate(s, t));
  });
});
