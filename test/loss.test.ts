// GEM loss and cross-entropy (shaders/loss.wgsl) against float64 references (DESIGN §1.4).
// Tolerances: gradients ≤ 1e-4 elementwise relative error (entries below 1e-3 of the largest
// compared at that scale, see maxRelErr); means of per-row values ≤ 1e-4 of the rows' mean
// magnitude (meanTol: GEM can be ~0 or negative while its rows are not).
import { describe, expect, it } from 'vitest';
import {
  IGNORE_INDEX, SOFT_TARGET, labelAnchors, logitsBytes, ops, recordGroundingLabels, recordLoss,
  type LossSchedule, type Runtime,
} from '../sdk/index.js';
import { testRuntime } from './helpers/runtime.js';
import { randn, rng } from './helpers/reference.js';
import {
  ceRow, gemFrozen, gemRow, labelRow, lossRef, lossRefPairs, maxRelErr, meanTol, rowPairs, softmaxes, type H, type Pairs,
} from './helpers/loss_ref.js';
import { expectRejects } from './helpers/errors.js';

const HS: H[] = ['linear', 'logsigmoid'];

/** Classes for every row, with rows in `ignore` set to −100. */
function hardTargets(rows: number, V: number, seed: number, ignore: number[] = []): Int32Array {
  const r = rng(seed);
  const t = new Int32Array(rows);
  for (let i = 0; i < rows; i++) t[i] = ignore.includes(i) ? IGNORE_INDEX : Math.floor(r() * V);
  return t;
}

/** Dense soft rows with `support` random columns each (float32 masses summing to 1); rows in `zero` all zero. */
function softTargets(rows: number, V: number, support: number, seed: number, zero: number[] = []): Float32Array {
  const r = rng(seed);
  const q = new Float32Array(rows * V);
  for (let i = 0; i < rows; i++) {
    if (zero.includes(i)) continue;
    const cols = new Set<number>();
    while (cols.size < Math.min(support, V)) cols.add(Math.floor(r() * V));
    const w = [...cols].map(() => 0.05 + r());
    const sum = w.reduce((a, b) => a + b, 0);
    [...cols].forEach((c, k) => (q[i * V + c] = w[k]! / sum));
  }
  return q;
}

describe('gemLoss / crossEntropy vs float64', () => {
  const cases = [
    { V: 7, rows: 6, support: 3, scale: 4 },
    { V: 1000, rows: 5, support: 40, scale: 6 },
    { V: 65537, rows: 3, support: 24, scale: 6 },
  ];
  for (const { V, rows, support, scale } of cases) {
    for (const kind of ['hard', 'soft'] as const) {
      it(`vocab ${V}, ${kind} targets, β ∈ {0.5, 0.7, 1}, both h, ignored rows`, async () => {
        const rt = await testRuntime();
        const logits = randn(rows * V, 11 + V, -scale, scale);
        const targets = kind === 'hard'
          ? hardTargets(rows, V, 5 + V, [1])
          : { soft: softTargets(rows, V, support, 7 + V, [rows - 1]) };
        for (const beta of [0.5, 0.7, 1]) {
          for (const h of HS) {
            const got = await ops.gemLoss(rt, { logits, rows, vocab: V, targets, beta, h });
            const want = lossRef(logits, rows, V, targets, beta, h);
            expect(got.count).toBe(want.count);
            expect(got.count).toBe(rows - 1);
            expect(Math.abs(got.loss - want.gem)).toBeLessThanOrEqual(meanTol(want.rowGem, want.count));
            expect(Math.abs(got.ce - want.ce)).toBeLessThanOrEqual(meanTol(want.rowCe, want.count));
            expect(maxRelErr(got.grad, want.grad)).toBeLessThanOrEqual(1e-4);
            // The ignored row has exactly zero gradient.
            const ig = kind === 'hard' ? 1 : rows - 1;
            expect(got.grad.subarray(ig * V, (ig + 1) * V).every((g) => g === 0)).toBe(true);
          }
        }
        const ce = await ops.crossEntropy(rt, { logits, rows, vocab: V, targets });
        const want = lossRef(logits, rows, V, targets, 1, 'linear');
        expect(Math.abs(ce.loss - want.ce)).toBeLessThanOrEqual(meanTol(want.rowCe, want.count));
        expect(maxRelErr(ce.grad, want.grad)).toBeLessThanOrEqual(1e-4);
      });
    }
  }
});

describe('GEM at β = 1, h = linear', () => {
  it("has exactly cross-entropy's gradient (hard and soft), softmax(z) − q", async () => {
    const rt = await testRuntime();
    const rows = 4, V = 1000;
    const logits = randn(rows * V, 3, -5, 5);
    for (const targets of [hardTargets(rows, V, 4, [2]), { soft: softTargets(rows, V, 9, 5) }]) {
      const gem = await ops.gemLoss(rt, { logits, rows, vocab: V, targets, beta: 1, h: 'linear' });
      const ce = await ops.crossEntropy(rt, { logits, rows, vocab: V, targets });
      expect(gem.grad).toEqual(ce.grad);
      expect(gem.ce).toBe(ce.loss);
      // softmax(z) − q, per row with a target, over the count.
      const want = new Float64Array(rows * V);
      let count = 0;
      for (let r = 0; r < rows; r++) if (rowPairs(targets, r, V)) count++;
      for (let r = 0; r < rows; r++) {
        const pr = rowPairs(targets, r, V);
        if (!pr) continue;
        const { s } = softmaxes(logits.subarray(r * V, (r + 1) * V), 1);
        for (let m = 0; m < V; m++) want[r * V + m] = s[m]! / count;
        for (const [k, q] of pr) want[r * V + k]! -= q / count;
      }
      expect(maxRelErr(ce.grad, want)).toBeLessThanOrEqual(1e-4);
    }
  });
});

describe('gradient vs central finite differences', () => {
  // DESIGN: s and w are constants. The float64 loss with them frozen at z0 is linear in z, so its
  // central differences equal the analytic gradient up to rounding; the GPU gradient must match.
  const V = 9, rows = 3;
  const logits = randn(rows * V, 21, -3, 3);
  const targetsOf = (kind: 'hard' | 'soft') => (kind === 'hard' ? hardTargets(rows, V, 22) : { soft: softTargets(rows, V, 4, 23) });
  for (const kind of ['hard', 'soft'] as const) {
    for (const h of HS) {
      it(`${kind} targets, h = ${h}, β = 0.7`, async () => {
        const rt = await testRuntime();
        const targets = targetsOf(kind);
        const beta = 0.7, eps = 1e-3;
        const got = await ops.gemLoss(rt, { logits, rows, vocab: V, targets, beta, h });
        for (let r = 0; r < rows; r++) {
          const z0 = Float64Array.from(logits.subarray(r * V, (r + 1) * V));
          const pr = rowPairs(targets, r, V)!;
          const { s } = softmaxes(z0, beta);
          const analytic = gemRow(z0, pr, beta, h).grad;
          const fd = new Float64Array(V);
          for (let m = 0; m < V; m++) {
            const zp = Float64Array.from(z0), zm = Float64Array.from(z0);
            zp[m]! += eps;
            zm[m]! -= eps;
            fd[m] = (gemFrozen(zp, z0, s, pr, h) - gemFrozen(zm, z0, s, pr, h)) / (2 * eps);
          }
          expect(maxRelErr(fd, analytic, 1e-6)).toBeLessThanOrEqual(1e-8);
          // GPU: the mean over `rows` rows, so row r's gradient is analytic / rows.
          const gpu = Array.from(got.grad.subarray(r * V, (r + 1) * V), (g) => g * rows);
          expect(maxRelErr(gpu, fd)).toBeLessThanOrEqual(1e-4);
        }
      });
    }
  }
  it('cross-entropy (not frozen: smooth) matches its finite differences', async () => {
    const rt = await testRuntime();
    const targets = targetsOf('soft');
    const got = await ops.crossEntropy(rt, { logits, rows, vocab: V, targets });
    for (let r = 0; r < rows; r++) {
      const z0 = Float64Array.from(logits.subarray(r * V, (r + 1) * V));
      const pr = rowPairs(targets, r, V)!;
      const eps = 1e-5;
      const fd = Array.from({ length: V }, (_, m) => {
        const zp = Float64Array.from(z0), zm = Float64Array.from(z0);
        zp[m]! += eps;
        zm[m]! -= eps;
        return (ceRow(zp, pr) - ceRow(zm, pr)) / (2 * eps);
      });
      const gpu = Array.from(got.grad.subarray(r * V, (r + 1) * V), (g) => g * rows);
      expect(maxRelErr(gpu, fd)).toBeLessThanOrEqual(1e-4);
    }
  });
});

describe('stability', () => {
  it('logits of magnitude 1e4 (spread out, and all near +1e4)', async () => {
    const rt = await testRuntime();
    const rows = 4, V = 1000;
    const spread = randn(rows * V, 31, -1e4, 1e4);
    const high = randn(rows * V, 32, 1e4 - 3, 1e4 + 3);
    for (const logits of [spread, high]) {
      for (const targets of [hardTargets(rows, V, 33), { soft: softTargets(rows, V, 5, 34) }]) {
        for (const h of HS) {
          const got = await ops.gemLoss(rt, { logits, rows, vocab: V, targets, beta: 0.7, h });
          const want = lossRef(logits, rows, V, targets, 0.7, h);
          expect(Number.isFinite(got.loss) && Number.isFinite(got.ce)).toBe(true);
          expect(got.grad.every(Number.isFinite)).toBe(true);
          expect(Math.abs(got.loss - want.gem)).toBeLessThanOrEqual(meanTol(want.rowGem, want.count));
          expect(Math.abs(got.ce - want.ce)).toBeLessThanOrEqual(meanTol(want.rowCe, want.count));
          expect(maxRelErr(got.grad, want.grad)).toBeLessThanOrEqual(1e-4);
        }
      }
    }
  });

  it('65,537 rows (folded workgroup grids), confident rows: the target entry keeps its precision', async () => {
    const rt = await testRuntime();
    const rows = 65537, V = 3;
    const logits = randn(rows * V, 35, -3, 3);
    const r = rng(36);
    const targets = new Int32Array(rows).map((_, i) => (i % 97 === 0 ? IGNORE_INDEX : Math.floor(r() * V)));
    for (const h of HS) {
      const got = await ops.gemLoss(rt, { logits, rows, vocab: V, targets, h });
      const want = lossRef(logits, rows, V, targets, 0.7, h);
      expect(got.count).toBe(want.count);
      expect(Math.abs(got.loss - want.gem)).toBeLessThanOrEqual(meanTol(want.rowGem, want.count));
      expect(maxRelErr(got.grad, want.grad)).toBeLessThanOrEqual(1e-4);
    }
  });

  it('every row ignored: loss 0, count 0, zero gradient', async () => {
    const rt = await testRuntime();
    const rows = 3, V = 10;
    const logits = randn(rows * V, 41);
    for (const targets of [new Int32Array(rows).fill(IGNORE_INDEX), { soft: new Float32Array(rows * V) }]) {
      const got = await ops.gemLoss(rt, { logits, rows, vocab: V, targets });
      expect([got.loss, got.ce, got.count]).toEqual([0, 0, 0]);
      expect(got.grad.every((g) => g === 0)).toBe(true);
    }
  });
});

// ---- the engine's path: GPU buffers, hard rows + soft location rows in one batch -----------
interface KernelRun {
  out: Float32Array;
  rowLoss: Float32Array;
  grad: Float32Array;
  targets: Int32Array;
}

/**
 * Records grounding labels for the location rows (bins1d, window soft table at `locOffset`)
 * and the loss over all rows, in one batch; `indexed` also runs the loss on an indexed copy.
 */
async function groundedBatch(rt: Runtime, o: {
  logits: Float32Array; rows: number; V: number; hard: Int32Array; locRows: number[]; points: number[];
  bins: number; locOffset: number; beta: number; h: H; schedule: LossSchedule;
}): Promise<KernelRun & { labels: Float32Array; hardCells: Int32Array }> {
  const { rows, V, bins, locOffset } = o;
  const codec = { kind: 'bins1d' as const, bins };
  const { count, anchors, cells } = labelAnchors(codec, o.points);
  const slots = new Int32Array(2 * count);
  slots.set(cells);
  slots.set(o.locRows, count);
  const bufs = {
    logits: rt.upload(o.logits), targets: rt.upload(o.hard), anchors: rt.upload(anchors), slots: rt.upload(slots),
    table: rt.pool.acquire(count * bins * 4), grad: rt.pool.acquire(logitsBytes(rows, V)),
    out: rt.pool.acquire(16), rowLoss: rt.pool.acquire(rows * 8),
  };
  try {
    const batch = rt.batch('test.grounded');
    await recordGroundingLabels(rt, batch, {
      codec, kernel: { kind: 'inverse', power: 1, eps: 0.25, radius: 2.5 }, mix: 0.9, count,
      anchors: bufs.anchors, slots: bufs.slots, out: bufs.table, targets: bufs.targets, schedule: o.schedule,
    });
    await recordLoss(rt, batch, {
      logits: bufs.logits, rows, vocab: V, targets: bufs.targets, beta: o.beta, h: o.h, schedule: o.schedule,
      soft: { values: bufs.table, rows: count, width: bins, offset: locOffset },
      grad: bufs.grad, out: bufs.out, rowLoss: bufs.rowLoss,
    });
    await batch.submit();
    return {
      out: await rt.readF32(bufs.out, 4), rowLoss: await rt.readF32(bufs.rowLoss, 2 * rows),
      grad: await rt.readF32(bufs.grad, rows * V), targets: await rt.readI32(bufs.targets, rows),
      labels: await rt.readF32(bufs.table, count * bins), hardCells: cells,
    };
  } finally {
    for (const b of Object.values(bufs)) rt.pool.release(b);
  }
}

/** Runs recordLoss on host arrays with an optional soft table. */
async function kernelLoss(rt: Runtime, o: {
  logits: Float32Array; rows: number; V: number; targets: Int32Array; beta: number; h: H; schedule: LossSchedule;
  soft?: { values: Float32Array; width: number; indices?: Uint32Array; offset?: number };
}): Promise<KernelRun> {
  const owned: GPUBuffer[] = [];
  const up = (x: Float32Array | Int32Array | Uint32Array) => (owned.push(rt.upload(x)), owned[owned.length - 1]!);
  const get = (bytes: number) => (owned.push(rt.pool.acquire(bytes)), owned[owned.length - 1]!);
  try {
    const grad = get(logitsBytes(o.rows, o.V)), out = get(16), rowLoss = get(o.rows * 8);
    const soft = o.soft && {
      values: up(o.soft.values), rows: o.soft.values.length / o.soft.width, width: o.soft.width,
      indices: o.soft.indices && up(o.soft.indices), offset: o.soft.offset,
    };
    const batch = rt.batch('test.kernel');
    await recordLoss(rt, batch, {
      logits: up(o.logits), rows: o.rows, vocab: o.V, targets: up(o.targets), soft, beta: o.beta, h: o.h,
      grad, out, rowLoss, schedule: o.schedule,
    });
    await batch.submit();
    return { out: await rt.readF32(out, 4), rowLoss: await rt.readF32(rowLoss, 2 * o.rows), grad: await rt.readF32(grad, o.rows * o.V), targets: o.targets };
  } finally {
    for (const b of owned) rt.pool.release(b);
  }
}

function checkRun(got: KernelRun, want: ReturnType<typeof lossRefPairs>, rows: number): void {
  expect(got.out[2]).toBe(want.count);
  expect(got.out[3]).toBeCloseTo(1 / want.count, 7);
  expect(Math.abs(got.out[0]! - want.gem)).toBeLessThanOrEqual(meanTol(want.rowGem, want.count));
  expect(Math.abs(got.out[1]! - want.ce)).toBeLessThanOrEqual(meanTol(want.rowCe, want.count));
  for (let r = 0; r < rows; r++) {
    expect(Math.abs(got.rowLoss[2 * r]! - want.rowGem[r]!)).toBeLessThanOrEqual(1e-4 * Math.max(1, Math.abs(want.rowGem[r]!)));
    expect(Math.abs(got.rowLoss[2 * r + 1]! - want.rowCe[r]!)).toBeLessThanOrEqual(1e-4 * Math.max(1, Math.abs(want.rowCe[r]!)));
  }
  expect(maxRelErr(got.grad, want.grad)).toBeLessThanOrEqual(1e-4);
}

describe('recordLoss on GPU buffers (engine path)', () => {
  // Both schedules: 'wide' is what GPUs run (a workgroup per row), 'direct' what CPU emulation runs.
  for (const schedule of ['direct', 'wide'] as const) {
    for (const h of HS) {
      it(`${schedule}: grounding labels into the soft table + GEM over hard, location and ignored rows (h = ${h})`, async () => {
        const rt = await testRuntime();
        const rows = 6, V = 300, bins = 64, locOffset = 200;
        const logits = randn(rows * V, 51, -4, 4);
        const hard = hardTargets(rows, V, 52, [3]);
        const locRows = [1, 4], points = [0.3, 0.97];
        const got = await groundedBatch(rt, { logits, rows, V, hard, locRows, points, bins, locOffset, beta: 0.7, h, schedule });
        // The location rows now name their soft rows; the others kept their targets.
        for (let r = 0; r < rows; r++) {
          const i = locRows.indexOf(r);
          expect(got.targets[r]).toBe(i >= 0 ? SOFT_TARGET + i : hard[r]);
        }
        // The labels match their float64 definition; the loss reference uses the labels as written.
        for (let i = 0; i < points.length; i++) {
          const q = labelRow({ kind: 'bins1d', bins }, [points[i]!], got.hardCells[i]!, { kind: 'inverse', power: 1, eps: 0.25, radius: 2.5 }, 0.9);
          expect(maxRelErr(got.labels.subarray(i * bins, (i + 1) * bins), q)).toBeLessThanOrEqual(1e-5);
        }
        const want = lossRefPairs(logits, rows, V, (r): Pairs => {
          const i = locRows.indexOf(r);
          if (i < 0) return hard[r] === IGNORE_INDEX ? null : [[hard[r]!, 1]];
          const q = got.labels.subarray(i * bins, (i + 1) * bins);
          return [...q].flatMap((v, k): [number, number][] => (v ? [[locOffset + k, v]] : []));
        }, 0.7, h);
        checkRun(got, want, rows);
      });
      it(`${schedule}: indexed soft rows mixed with hard rows, vocab 7 and 1000 (h = ${h})`, async () => {
        const rt = await testRuntime();
        for (const V of [7, 1000]) {
          const rows = 5;
          const logits = randn(rows * V, 60 + V, -5, 5);
          const targets = hardTargets(rows, V, 61, [4]);
          // Rows 0 and 2 take soft rows 1 and 0: columns in any order, some zero entries.
          const width = 4;
          const indices = Uint32Array.from([V - 1, 0, 3, 5, 2, 1, 6, 4]);
          const values = Float32Array.from([0.5, 0.25, 0, 0.25, 0.6, 0, 0, 0.4]);
          targets[0] = SOFT_TARGET + 1;
          targets[2] = SOFT_TARGET + 0;
          const got = await kernelLoss(rt, { logits, rows, V, targets, beta: 0.5, h, schedule, soft: { values, width, indices } });
          const want = lossRefPairs(logits, rows, V, (r): Pairs => {
            const t = targets[r]!;
            if (t === IGNORE_INDEX) return null;
            if (t < SOFT_TARGET) return [[t, 1]];
            const s = t - SOFT_TARGET;
            const pr: [number, number][] = [];
            for (let e = 0; e < width; e++) if (values[s * width + e]) pr.push([indices[s * width + e]!, values[s * width + e]!]);
            return pr;
          }, 0.5, h);
          checkRun(got, want, rows);
        }
      });
    }
  }
});

describe('argument checks', () => {
  const rows = 2, V = 5;
  const logits = randn(rows * V, 71);
  it('NON_FINITE for a non-finite logit or soft target', async () => {
    const rt = await testRuntime();
    const bad = logits.slice();
    bad[3] = NaN;
    await expectRejects(ops.gemLoss(rt, { logits: bad, rows, vocab: V, targets: new Int32Array([0, 1]) }), 'NON_FINITE');
    bad[3] = Infinity;
    await expectRejects(ops.crossEntropy(rt, { logits: bad, rows, vocab: V, targets: new Int32Array([0, 1]) }), 'NON_FINITE');
    const q = softTargets(rows, V, 2, 72);
    q[1] = Infinity;
    await expectRejects(ops.gemLoss(rt, { logits, rows, vocab: V, targets: { soft: q } }), 'NON_FINITE');
  });
  it('INVALID_ARGUMENT for a soft row that is not a distribution, a bad β or h', async () => {
    const rt = await testRuntime();
    const q = softTargets(rows, V, 2, 73);
    const off = q.slice();
    for (let j = 0; j < V; j++) off[j]! *= 1.001;
    await expectRejects(ops.gemLoss(rt, { logits, rows, vocab: V, targets: { soft: off } }), 'INVALID_ARGUMENT');
    const neg = new Float32Array(rows * V);
    neg[0] = 1.5;
    neg[1] = -0.5;
    await expectRejects(ops.gemLoss(rt, { logits, rows, vocab: V, targets: { soft: neg } }), 'INVALID_ARGUMENT');
    // Within ±1e-4 is accepted.
    const near = q.slice();
    for (let j = 0; j < V; j++) if (near[j]) { near[j]! += 5e-5; break; }
    await expect(ops.gemLoss(rt, { logits, rows, vocab: V, targets: { soft: near } })).resolves.toBeTruthy();
    await expectRejects(ops.gemLoss(rt, { logits, rows, vocab: V, targets: new Int32Array([0, 1]), beta: 0 }), 'INVALID_ARGUMENT');
    await expectRejects(ops.gemLoss(rt, { logits, rows, vocab: V, targets: new Int32Array([0, 1]), beta: NaN }), 'INVALID_ARGUMENT');
    await expectRejects(ops.gemLoss(rt, { logits, rows, vocab: V, targets: new Int32Array([0, 1]), h: 'relu' as H }), 'INVALID_ARGUMENT');
  });
  it('OUT_OF_RANGE for a target index outside [0, vocab) other than −100', async () => {
    const rt = await testRuntime();
    for (const y of [V, -1, -101, SOFT_TARGET]) {
      await expectRejects(ops.gemLoss(rt, { logits, rows, vocab: V, targets: new Int32Array([0, y]) }), 'OUT_OF_RANGE');
    }
  });
  it('SHAPE_MISMATCH / INVALID_ARGUMENT for wrong shapes and types', async () => {
    const rt = await testRuntime();
    await expectRejects(ops.gemLoss(rt, { logits: logits.subarray(1), rows, vocab: V, targets: new Int32Array([0, 1]) }), 'SHAPE_MISMATCH');
    await expectRejects(ops.gemLoss(rt, { logits, rows, vocab: V, targets: new Int32Array([0]) }), 'SHAPE_MISMATCH');
    await expectRejects(ops.gemLoss(rt, { logits, rows, vocab: V, targets: { soft: new Float32Array(3) } }), 'SHAPE_MISMATCH');
    await expectRejects(ops.gemLoss(rt, { logits, rows: 0, vocab: V, targets: new Int32Array(0) }), 'INVALID_ARGUMENT');
    await expectRejects(ops.gemLoss(rt, { logits, rows, vocab: V, targets: [0, 1] as unknown as Int32Array }), 'INVALID_ARGUMENT');
  });
});
