// The region head's loss (recordRegionLoss): K words per row → CE against the uniform
// distribution over each row's distinct words, mean over rows with a word; value and gradient
// against a float64 reference on ragged shapes (rows and vocab not multiples of 4).
import { describe, expect, test } from 'vitest';
import { IGNORE_INDEX, SOFT_TARGET } from '../sdk/kernels/loss.js';
import { Activations } from '../sdk/nn/module.js';
import { recordRegionLoss, regionSoftTable } from '../sdk/train/region_loss.js';
import { expectRejects, expectCode } from './helpers/errors.js';
import { lossRefPairs, maxRelErr, meanTol, type Pairs } from './helpers/loss_ref.js';
import { randn, rng } from './helpers/reference.js';
import { testRuntime } from './helpers/runtime.js';

/** (rows·K) words: random ids, some repeated within a row, some IGNORE, row `empty` all IGNORE. */
function words(rows: number, K: number, V: number, seed: number, empty: number): Int32Array {
  const r = rng(seed);
  const w = new Int32Array(rows * K);
  for (let i = 0; i < rows * K; i++) {
    const x = r();
    w[i] = Math.floor(i / K) === empty || x < 0.15 ? IGNORE_INDEX : x < 0.3 && i % K > 0 ? w[i - 1]! : Math.floor(r() * V);
  }
  return w;
}

/** Row r's target as (class, mass): its distinct words, equal mass. */
function pairsOf(w: Int32Array, K: number): (r: number) => Pairs {
  return (r) => {
    const d = [...new Set([...w.subarray(r * K, r * K + K)].filter((x) => x !== IGNORE_INDEX))];
    return d.length ? d.map((c) => [c, 1 / d.length] as [number, number]) : null;
  };
}

/** recordRegionLoss on the same buffers once per word table, in order: each call's out and gradient. */
async function run(logits: Float32Array, rows: number, V: number, tables: Int32Array[]): Promise<{ out: Float32Array; grad: Float32Array }[]> {
  const rt = await testRuntime();
  const bufs = new Activations(rt);
  const z = bufs.get('z', [rows, V]);
  z.write(logits);
  const grad = bufs.get('grad', [rows, V]);
  const out = bufs.get('out', [4]);
  const results = [];
  for (const w of tables) {
    const batch = rt.batch('test.region');
    await recordRegionLoss(rt, batch, bufs, 'r', { logits: z.buffer, rows, vocab: V, words: w, grad: grad.buffer, out: out.buffer });
    await batch.submit();
    results.push({ out: await out.read(), grad: await grad.read() });
  }
  bufs.clear();
  return results;
}

/** Count, mean CE and gradient against the float64 reference of K words per row. */
function expectReference(got: { out: Float32Array; grad: Float32Array }, logits: Float32Array, rows: number, V: number, w: Int32Array, K: number): void {
  const want = lossRefPairs(logits, rows, V, pairsOf(w, K), 1, 'linear');
  expect(want.count).toBeGreaterThan(0);
  expect(got.out[2]).toBe(want.count);
  expect(Math.abs(got.out[1]! - want.ce)).toBeLessThanOrEqual(meanTol(want.rowCe, want.count));
  expect(maxRelErr(got.grad, want.grad)).toBeLessThanOrEqual(1e-4);
}

describe('region loss vs float64', () => {
  for (const { rows, K, V } of [{ rows: 13, K: 1, V: 37 }, { rows: 13, K: 4, V: 37 }, { rows: 29, K: 3, V: 361 }]) {
    test(`${rows} rows × ${K} words, vocab ${V}`, async () => {
      const logits = randn(rows * V, 3 + rows + K, -4, 4);
      const w = words(rows, K, V, 17 + K, 2);
      const [got] = await run(logits, rows, V, [w]);
      expectReference(got!, logits, rows, V, w, K);
      // A row without words has no gradient.
      expect(got!.grad.subarray(2 * V, 3 * V).every((x) => x === 0)).toBe(true);
    });
  }

  test('the same buffers serve a second call with fewer soft rows (no stale rows)', async () => {
    const rows = 11, K = 4, V = 23;
    const logits = randn(rows * V, 9, -3, 3);
    const full = words(rows, K, V, 5, -1);
    const sparse = full.map((x, i) => (Math.floor(i / K) % 3 === 0 ? x : IGNORE_INDEX));
    const got = await run(logits, rows, V, [full, sparse]);
    expectReference(got[0]!, logits, rows, V, full, K);
    expectReference(got[1]!, logits, rows, V, sparse, K);
  });
});

describe('region soft table', () => {
  test('distinct words, equal mass, IGNORE rows skipped', () => {
    const I = IGNORE_INDEX;
    const t = regionSoftTable(Int32Array.from([5, 5, 7, I, I, I, 3, I, 9]), 3);
    expect([...t.targets]).toEqual([SOFT_TARGET, I, SOFT_TARGET + 1]);
    expect(t.softRows).toBe(2);
    expect([...t.values]).toEqual([0.5, 0.5, 0, 0.5, 0.5, 0]);
    expect([...t.indices.subarray(0, 2)]).toEqual([5, 7]);
    expect([...t.indices.subarray(3, 5)]).toEqual([3, 9]);
  });

  test('bad input: words that do not split into rows, words outside the vocabulary', async () => {
    expectCode(() => regionSoftTable(new Int32Array(7), 3), 'SHAPE_MISMATCH');
    expectCode(() => regionSoftTable(new Int32Array(0), 3), 'SHAPE_MISMATCH');
    const rt = await testRuntime();
    const bufs = new Activations(rt);
    const z = bufs.get('z', [2, 5]);
    const out = bufs.get('out', [4]);
    const batch = rt.batch('test.region.bad');
    await expectRejects(recordRegionLoss(rt, batch, bufs, 'r', { logits: z.buffer, rows: 2, vocab: 5, words: Int32Array.from([1, 5]), grad: z.buffer, out: out.buffer }), 'OUT_OF_RANGE');
    await expectRejects(recordRegionLoss(rt, batch, bufs, 'r', { logits: z.buffer, rows: 2, vocab: 5, words: Int32Array.from([1, 2, 3]), grad: z.buffer, out: out.buffer }), 'SHAPE_MISMATCH');
    bufs.clear();
  });
});
