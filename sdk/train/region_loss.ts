// A region head's cross-entropy against K words per row (regionWords): row r's target is the
// uniform distribution q_r over its n_r distinct words, so
//   CE_r = −(1/n_r) Σ_w log softmax(z_r)_w,   dCE_r/dz_r = softmax(z_r) − q_r,
// averaged over the rows with at least one word. K = 1 is a plain class per row; K > 1 goes to
// the loss kernel as an indexed soft table (one soft row per row with a word).
import { EdgeTuneError } from '../errors.js';
import type { Batch } from '../gpu/launch.js';
import type { Runtime } from '../gpu/runtime.js';
import { IGNORE_INDEX, recordLoss, SOFT_TARGET } from '../kernels/loss.js';
import type { Activations } from '../nn/module.js';

export interface RegionSoftTable {
  /** (rows) SOFT_TARGET + soft row, or IGNORE_INDEX. */
  targets: Int32Array;
  /** (softRows, K) vocabulary columns and their mass (0 for padding). */
  indices: Int32Array;
  values: Float32Array;
  softRows: number;
}

/** Words per row of a (rows·K) word table (SHAPE_MISMATCH unless rows divides it); `what` names the table in the message. */
export function wordsPerRow(words: Int32Array, rows: number, what = 'region words'): number {
  const K = words.length / rows;
  if (!(rows >= 1 && Number.isInteger(K) && K >= 1)) throw new EdgeTuneError('SHAPE_MISMATCH', `${what}: ${words.length} ids do not split into ${rows} rows of one or more words each`);
  return K;
}

/** wordsPerRow, and every id IGNORE_INDEX or inside [0, vocab) (OUT_OF_RANGE otherwise). */
export function checkRegionWords(words: Int32Array, rows: number, vocab: number, what = 'region words'): number {
  const K = wordsPerRow(words, rows, what);
  for (let i = 0; i < words.length; i++) {
    const id = words[i]!;
    if (id !== IGNORE_INDEX && !(Number.isInteger(id) && id >= 0 && id < vocab)) throw new EdgeTuneError('OUT_OF_RANGE', `${what}: row ${Math.floor(i / K)} has word ${id}, outside the vocabulary [0, ${vocab})`);
  }
  return K;
}

/** The soft table of a (rows·K) word table: each row's distinct words, equal mass. */
export function regionSoftTable(words: Int32Array, rows: number): RegionSoftTable {
  const K = wordsPerRow(words, rows);
  const targets = new Int32Array(rows).fill(IGNORE_INDEX);
  const indices: number[] = [], values: number[] = [];
  for (let r = 0; r < rows; r++) {
    const distinct = [...new Set(Array.from(words.subarray(r * K, r * K + K)).filter((w) => w !== IGNORE_INDEX))];
    if (distinct.length === 0) continue;
    targets[r] = SOFT_TARGET + indices.length / K;
    for (let k = 0; k < K; k++) {
      indices.push(distinct[k] ?? distinct[0]!);
      values.push(k < distinct.length ? 1 / distinct.length : 0);
    }
  }
  return { targets, indices: Int32Array.from(indices), values: Float32Array.from(values), softRows: indices.length / K };
}

export interface RegionLossArgs {
  /** rows × vocab logits of the region head. */
  logits: GPUBuffer;
  rows: number;
  vocab: number;
  /** (rows·K) ids, IGNORE_INDEX where none; K ≥ 1. */
  words: Int32Array;
  /** rows × vocab, written: d(mean CE)/d logits. */
  grad: GPUBuffer;
  /** ≥ 4 f32, written as recordLoss's `out`. */
  out: GPUBuffer;
}

/** Records the region CE; `key` names its buffers in `bufs`. */
export async function recordRegionLoss(rt: Runtime, batch: Batch, bufs: Activations, key: string, a: RegionLossArgs): Promise<void> {
  const K = checkRegionWords(a.words, a.rows, a.vocab);
  const targets = bufs.get(`${key}.targets`, [a.rows], 'i32');
  const common = { logits: a.logits, rows: a.rows, vocab: a.vocab, targets: targets.buffer, beta: 1, h: 'linear' as const, grad: a.grad, out: a.out };
  if (K === 1) {
    targets.write(a.words);
    await recordLoss(rt, batch, common);
    return;
  }
  const t = regionSoftTable(a.words, a.rows);
  targets.write(t.targets);
  // Fixed-size tables (every row may carry words), so the buffers are reused step after step.
  const indices = bufs.get(`${key}.indices`, [a.rows * K], 'u32');
  const values = bufs.get(`${key}.values`, [a.rows * K]);
  const idx = new Uint32Array(a.rows * K), val = new Float32Array(a.rows * K);
  idx.set(t.indices);
  val.set(t.values);
  indices.write(idx);
  values.write(val);
  await recordLoss(rt, batch, { ...common, soft: { values: values.buffer, indices: indices.buffer, rows: Math.max(1, t.softRows), width: K } });
}
