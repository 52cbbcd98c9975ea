// ops.crossEntropy, ops.gemLoss, ops.groundingLabels: host-array wrappers of
// shaders/loss.wgsl and shaders/grounding_labels.wgsl.
import { EdgeTuneError, expectDim, expectFinite } from '../errors.js';
import type { Runtime } from '../gpu/runtime.js';
import { IGNORE_INDEX, SOFT_TARGET, logitsBytes, recordLoss, type GemH, type LossSchedule, type SoftTable } from '../kernels/loss.js';
import { labelAnchors, recordGroundingLabels, type LabelKernel } from '../kernels/grounding_labels.js';
import { locCells, type LocCodec } from '../model/box_codec.js';
import { expectF32 } from './host.js';

/** Hard targets (a class per row, −100 = ignore) or soft ones (rows × vocab; a zero row = ignore). */
export type LossTargets = Int32Array | { soft: Float32Array };

export interface CrossEntropyArgs {
  /** rows × vocab, row-major. */
  logits: Float32Array;
  rows: number;
  vocab: number;
  targets: LossTargets;
  /** Force a schedule of the per-row passes (default: the adapter's best). */
  schedule?: LossSchedule;
}

export interface GemLossArgs extends CrossEntropyArgs {
  /** Temperature of s = softmax(z/β) (default 0.7). */
  beta?: number;
  /** 'linear' (default) or 'logsigmoid' (w_j = σ(0.01 (z_j − z_y))). */
  h?: GemH;
}

/** Sums of a soft row must be 1 within this (or exactly 0 to ignore the row). */
export const SOFT_SUM_TOLERANCE = 1e-4;

interface Packed {
  targets: Int32Array;
  soft?: { values: Float32Array; indices: Uint32Array; rows: number; width: number };
}

// Hard targets go as they are; soft rows are packed as (column, mass) lists of the width of the
// fullest row, so that the kernel's per-support-entry work is proportional to the support.
function packTargets(t: LossTargets, rows: number, V: number): Packed {
  if (t instanceof Int32Array) {
    if (t.length !== rows) throw new EdgeTuneError('SHAPE_MISMATCH', `targets has ${t.length} entries but rows = ${rows}`);
    for (let r = 0; r < rows; r++) {
      const y = t[r]!;
      if (y !== IGNORE_INDEX && (y < 0 || y >= V)) {
        throw new EdgeTuneError('OUT_OF_RANGE', `targets[${r}] = ${y} is not a class in [0, ${V}) nor ${IGNORE_INDEX} (ignore)`);
      }
    }
    return { targets: t };
  }
  if (!t || typeof t !== 'object' || !(t.soft instanceof Float32Array)) {
    throw new EdgeTuneError('INVALID_ARGUMENT', 'targets must be an Int32Array (a class per row, −100 = ignore) or { soft: Float32Array } (rows × vocab)');
  }
  const q = expectF32('targets.soft', t.soft, rows * V, `rows×vocab = ${rows}×${V}`);
  expectFinite('targets.soft', q);
  const nnz = new Int32Array(rows);
  let width = 1;
  for (let r = 0; r < rows; r++) {
    let sum = 0, n = 0;
    for (let j = r * V; j < (r + 1) * V; j++) {
      const v = q[j]!;
      if (v < 0) throw new EdgeTuneError('INVALID_ARGUMENT', `targets.soft[${j}] = ${v}; a soft target is a distribution (no negative mass)`);
      if (v !== 0) n++;
      sum += v;
    }
    if (n > 0 && Math.abs(sum - 1) > SOFT_SUM_TOLERANCE) {
      throw new EdgeTuneError('INVALID_ARGUMENT', `soft target row ${r} sums to ${sum}, not 1 (±${SOFT_SUM_TOLERANCE}); use a row of zeros to ignore it`);
    }
    nnz[r] = n;
    width = Math.max(width, n);
  }
  const targets = new Int32Array(rows);
  let nSoft = 0;
  for (let r = 0; r < rows; r++) targets[r] = nnz[r]! > 0 ? SOFT_TARGET + nSoft++ : IGNORE_INDEX;
  const values = new Float32Array(Math.max(1, nSoft) * width);
  const indices = new Uint32Array(Math.max(1, nSoft) * width);
  let s = 0;
  for (let r = 0; r < rows; r++) {
    if (nnz[r] === 0) continue;
    let e = s * width;
    for (let j = 0; j < V; j++) {
      const v = q[r * V + j]!;
      if (v !== 0) {
        values[e] = v;
        indices[e++] = j;
      }
    }
    s++;
  }
  return { targets, soft: nSoft > 0 ? { values, indices, rows: nSoft, width } : undefined };
}

async function runLoss(rt: Runtime, args: CrossEntropyArgs, beta: number, h: GemH, name: string) {
  if (!args || typeof args !== 'object') throw new EdgeTuneError('INVALID_ARGUMENT', `ops.${name} needs { logits, rows, vocab, targets }`);
  const rows = expectDim('rows', args.rows);
  const V = expectDim('vocab', args.vocab);
  const logits = expectF32('logits', args.logits, rows * V, `rows×vocab = ${rows}×${V}`);
  expectFinite('logits', logits);
  const packed = packTargets(args.targets, rows, V);
  const owned: GPUBuffer[] = [];
  const up = (x: Float32Array | Int32Array | Uint32Array) => {
    const b = rt.upload(x);
    owned.push(b);
    return b;
  };
  const acquire = (bytes: number, label: string) => {
    const b = rt.pool.acquire(bytes, label);
    owned.push(b);
    return b;
  };
  try {
    const bytes = logitsBytes(rows, V);
    if (bytes > rt.limits.maxStorageBufferBindingSize) {
      throw new EdgeTuneError('TOO_LARGE', `${rows}×${V} logits need ${bytes} bytes, over this device's binding limit; split the rows`);
    }
    const logitsBuf = up(logits);
    const targetsBuf = up(packed.targets);
    let soft: SoftTable | undefined;
    if (packed.soft) {
      soft = { values: up(packed.soft.values), indices: up(packed.soft.indices), rows: packed.soft.rows, width: packed.soft.width };
    }
    const grad = acquire(bytes, `${name}.grad`);
    const out = acquire(16, `${name}.out`);
    const batch = rt.batch(`ops.${name}`);
    await recordLoss(rt, batch, { logits: logitsBuf, rows, vocab: V, targets: targetsBuf, soft, beta, h, grad, out, schedule: args.schedule });
    await batch.submit();
    const [o, g] = await Promise.all([rt.readF32(out, 4), rt.readF32(grad, rows * V)]);
    return { gem: o[0]!, ce: o[1]!, count: o[2]!, grad: g };
  } finally {
    for (const b of owned) rt.pool.release(b);
  }
}

/**
 * Mean cross-entropy over the rows that have a target, and its gradient w.r.t. the logits.
 * `count` is the number of rows that have a target.
 */
export async function crossEntropy(rt: Runtime, args: CrossEntropyArgs): Promise<{ loss: number; grad: Float32Array; count: number }> {
  const r = await runLoss(rt, args, 1, 'linear', 'crossEntropy');
  return { loss: r.ce, grad: r.grad, count: r.count };
}

/**
 * Mean GEM loss (DESIGN §1.4) over the rows that have a target, the mean cross-entropy beside
 * it (GEM can be negative), and GEM's gradient w.r.t. the logits (s and w held constant).
 */
export async function gemLoss(rt: Runtime, args: GemLossArgs): Promise<{ loss: number; ce: number; grad: Float32Array; count: number }> {
  const r = await runLoss(rt, args, args?.beta ?? 0.7, args?.h ?? 'linear', 'gemLoss');
  return { loss: r.gem, ce: r.ce, grad: r.grad, count: r.count };
}

export interface GroundingLabelsOptions {
  codec: LocCodec;
  /** Normalised to [0, 1]: (x, y) pairs for patch2d, scalars for bins1d. */
  points: ArrayLike<number>;
  kernel: LabelKernel;
  /** λ in q' = (1 − λ)·onehot(hard cell) + λ·q (default 1). */
  mix?: number;
  /** Per point: a box's bottom-right corner (Kosmos-2 puts a corner on a border in the cell before it). */
  ends?: ArrayLike<boolean | number>;
  /** Force a schedule (default: the adapter's best). */
  schedule?: LossSchedule;
}

/** Soft targets over the location cells, count × cells (each row sums to 1). */
export async function groundingLabels(rt: Runtime, opts: GroundingLabelsOptions): Promise<Float32Array> {
  if (!opts || typeof opts !== 'object') throw new EdgeTuneError('INVALID_ARGUMENT', 'ops.groundingLabels needs { codec, points, kernel }');
  const cells = locCells(opts.codec);
  const { count, anchors, cells: hard } = labelAnchors(opts.codec, opts.points, { ends: opts.ends });
  const anchorsBuf = rt.upload(anchors);
  const slots = rt.upload(hard);
  const out = rt.pool.acquire(count * cells * 4, 'groundingLabels.out');
  try {
    const batch = rt.batch('ops.groundingLabels');
    await recordGroundingLabels(rt, batch, { codec: opts.codec, kernel: opts.kernel, mix: opts.mix, count, anchors: anchorsBuf, slots, out, schedule: opts.schedule });
    await batch.submit();
    return await rt.readF32(out, count * cells);
  } finally {
    rt.pool.release(anchorsBuf);
    rt.pool.release(slots);
    rt.pool.release(out);
  }
}
