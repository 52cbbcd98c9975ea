// ops.matmul against a float64 CPU reference: ragged shapes, batches, every transpose
// variant, bias, both schedules; and the bad-argument errors.
import { describe, expect, test } from 'vitest';
import { directSplit, EdgeTuneError, ops } from '../sdk/index.js';
import { matmulRef, randn, relError } from './helpers/reference.js';
import { testRuntime } from './helpers/runtime.js';

type Case = [m: number, k: number, n: number, batch?: number];

// ≥ 20 shapes: tiny, ragged (not multiples of 4, 16 or 64), aligned, and one large ragged one.
const SHAPES: Case[] = [
  [1, 1, 1], [7, 13, 5], [33, 65, 17], [257, 129, 300], [1, 64, 1], [64, 1, 64],
  [3, 5, 2], [17, 17, 17], [16, 16, 16], [64, 64, 64], [65, 63, 66], [128, 36, 20],
  [20, 36, 128], [31, 4, 97], [100, 3, 7], [2, 300, 3], [48, 80, 96], [5, 5, 129],
  [129, 5, 5], [40, 24, 36], [9, 12, 4, 3], [33, 20, 18, 2], [16, 32, 48, 4],
];

const VARIANTS = [
  { transA: false, transB: false },
  { transA: true, transB: false },
  { transA: false, transB: true },
  { transA: true, transB: true },
];

async function check(m: number, k: number, n: number, o: { transA?: boolean; transB?: boolean; bias?: boolean; batch?: number; schedule?: 'tiled' | 'direct' }) {
  const rt = await testRuntime();
  const nb = o.batch ?? 1;
  const seed = m * 1000003 + k * 1009 + n * 7 + nb;
  const a = randn(nb * m * k, seed);
  const b = randn(nb * k * n, seed + 1);
  const bias = o.bias ? randn(n, seed + 2) : undefined;
  const got = await ops.matmul(rt, a, b, { m, k, n, transA: o.transA, transB: o.transB, bias, batch: nb, schedule: o.schedule });
  const want = matmulRef(a, b, m, k, n, { transA: o.transA, transB: o.transB, bias, batch: nb });
  expect(got.length).toBe(nb * m * n);
  expect(relError(got, want)).toBeLessThanOrEqual(1e-4);
}

describe('matmul, adapter schedule, every transpose variant', () => {
  for (const [m, k, n, nb] of SHAPES) {
    for (const v of VARIANTS) {
      test(`${nb ? `${nb}×` : ''}${m}×${k}×${n} transA=${v.transA} transB=${v.transB}`, () => check(m, k, n, { ...v, batch: nb }));
    }
  }
});

describe('matmul schedules agree with the reference', () => {
  // The tiled (workgroup-memory) schedule is the one real GPUs run; the direct one runs on
  // CPU-emulated adapters. Both are checked here whichever adapter runs the tests.
  const few: Case[] = [[1, 1, 1], [7, 13, 5], [33, 65, 17], [64, 64, 64], [70, 36, 81], [16, 32, 48, 3]];
  for (const schedule of ['tiled', 'direct'] as const) {
    for (const [m, k, n, nb] of few) {
      for (const v of VARIANTS) {
        test(`${schedule} ${nb ? `${nb}×` : ''}${m}×${k}×${n} ${v.transA ? 'Aᵀ' : 'A'}${v.transB ? 'Bᵀ' : 'B'}`, () => check(m, k, n, { ...v, batch: nb, schedule }));
      }
    }
  }
});

describe('direct schedule: interior, bottom rows and right columns, SIMD lanes along M or N', () => {
  // m×n products whose parts (directSplit) put their lanes each way: k = 12 takes the aligned
  // interior with every variant, k = 9 only as Aᵀ·B with m and n multiples of 4 (otherwise all
  // checked blocks).
  const SPLIT: [number, number][] = [[200, 20], [20, 200], [79, 18], [260, 79], [130, 8], [8, 130], [70, 81]];
  test('the cases cover each part with its lanes both ways', () => {
    const seen = new Set<string>();
    for (const [m, n] of SPLIT) {
      const d = directSplit(m, n, true);
      const right = d.workgroups - d.tilesIn - d.tilesBottom;
      if (d.tilesIn) seen.add(`interior ${d.lanes & 1}`);
      if (d.tilesBottom) seen.add(`bottom ${d.lanes & 2}`);
      if (right) seen.add(`right ${d.lanes & 4}`);
      expect(d.tilesIn * 64 * 64 + d.tilesBottom * 16 * 16 + right * 16 * 16).toBeGreaterThanOrEqual(m * n);
    }
    expect([...seen].sort()).toEqual(['bottom 0', 'bottom 2', 'interior 0', 'interior 1', 'right 0', 'right 4']);
  });
  for (const [m, n] of SPLIT) {
    for (const k of [12, 9]) {
      for (const v of VARIANTS) {
        test(`direct ${m}×${k}×${n} ${v.transA ? 'Aᵀ' : 'A'}${v.transB ? 'Bᵀ' : 'B'}`, () => check(m, k, n, { ...v, schedule: 'direct' }));
      }
    }
  }
});

describe('bias epilogue', () => {
  for (const schedule of ['tiled', 'direct'] as const) {
    test(`${schedule} 33×65×17 + bias`, () => check(33, 65, 17, { bias: true, schedule }));
    test(`${schedule} 64×32×48 Bᵀ + bias, batched`, () => check(64, 32, 48, { bias: true, transB: true, batch: 2, schedule }));
  }
});

describe('matmul bad arguments', () => {
  const a = new Float32Array(6);
  const b = new Float32Array(12);
  async function code(p: Promise<unknown>): Promise<string> {
    try {
      await p;
    } catch (e) {
      expect(e).toBeInstanceOf(EdgeTuneError);
      return (e as EdgeTuneError).code;
    }
    throw new Error('expected an EdgeTuneError');
  }
  test('a of the wrong size', async () => {
    const rt = await testRuntime();
    expect(await code(ops.matmul(rt, new Float32Array(5), b, { m: 2, k: 3, n: 4 }))).toBe('SHAPE_MISMATCH');
  });
  test('b of the wrong size', async () => {
    const rt = await testRuntime();
    expect(await code(ops.matmul(rt, a, new Float32Array(13), { m: 2, k: 3, n: 4 }))).toBe('SHAPE_MISMATCH');
  });
  test('bias of the wrong size', async () => {
    const rt = await testRuntime();
    expect(await code(ops.matmul(rt, a, b, { m: 2, k: 3, n: 4, bias: new Float32Array(3) }))).toBe('SHAPE_MISMATCH');
  });
  test('batch that does not match the data', async () => {
    const rt = await testRuntime();
    expect(await code(ops.matmul(rt, a, b, { m: 2, k: 3, n: 4, batch: 2 }))).toBe('SHAPE_MISMATCH');
  });
  test('the message names the expected shape', async () => {
    const rt = await testRuntime();
    await expect(ops.matmul(rt, new Float32Array(7), b, { m: 3, k: 2, n: 6, transA: true })).rejects.toThrow(/a has 7 elements but k×m = 2×3 needs 6/);
    await expect(ops.matmul(rt, a, new Float32Array(11), { m: 3, k: 2, n: 6 })).rejects.toThrow(/b has 11 elements but k×n = 2×6 needs 12/);
  });
  test('non-integer, zero or negative dimensions', async () => {
    const rt = await testRuntime();
    expect(await code(ops.matmul(rt, a, b, { m: 2.5, k: 3, n: 4 }))).toBe('INVALID_ARGUMENT');
    expect(await code(ops.matmul(rt, a, b, { m: 0, k: 3, n: 4 }))).toBe('INVALID_ARGUMENT');
    expect(await code(ops.matmul(rt, a, b, { m: 2, k: -3, n: 4 }))).toBe('INVALID_ARGUMENT');
  });
  test('not a Float32Array', async () => {
    const rt = await testRuntime();
    expect(await code(ops.matmul(rt, [1, 2, 3, 4, 5, 6] as unknown as Float32Array, b, { m: 2, k: 3, n: 4 }))).toBe('INVALID_ARGUMENT');
    expect(await code(ops.matmul(rt, a, b, undefined as unknown as { m: number; k: number; n: number }))).toBe('INVALID_ARGUMENT');
  });
  test('a result larger than a binding can hold', async () => {
    const rt = await testRuntime();
    const big = Math.ceil(Math.sqrt(rt.limits.maxStorageBufferBindingSize / 4)) + 16;
    expect(await code(ops.matmul(rt, new Float32Array(big), new Float32Array(big), { m: big, k: 1, n: big }))).toBe('TOO_LARGE');
  });
});
