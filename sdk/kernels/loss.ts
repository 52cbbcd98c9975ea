// Typed wrapper of shaders/loss.wgsl: records cross-entropy / GEM (values and gradient) into a
// Batch. Everything stays on the GPU: the gradient goes into the caller's buffer (ready for the
// LM-head backward), the per-row values and the means stay in GPU buffers too.
import shader from '../../shaders/loss.wgsl';
import { EdgeTuneError, expectDim } from '../errors.js';
import type { Runtime } from '../gpu/runtime.js';
import { grid2d } from './grid.js';
import { Params, type Batch, type Binding } from '../gpu/launch.js';

/** A target row to skip (no loss, zero gradient, not counted in the mean). */
export const IGNORE_INDEX = -100;
/** `targets[r] = SOFT_TARGET + s` makes row s of the soft table the target of row r. */
export const SOFT_TARGET = 0x40000000;

export type GemH = 'linear' | 'logsigmoid';

/**
 * Soft targets as a table of `rows × width` entries. Entry e of row s carries mass
 * `values[s·width + e]` for vocabulary column `indices[s·width + e]` (u32) when `indices` is
 * given, else for column `offset + e` (a window: the location tokens, as written by
 * recordGroundingLabels). Zero entries are skipped; columns must be distinct within a row, and
 * each soft row may be the target of at most one logits row.
 */
export interface SoftTable {
  values: GPUBuffer;
  rows: number;
  width: number;
  indices?: GPUBuffer;
  offset?: number;
}

export interface LossArgs {
  /** rows × vocab logits (f32). */
  logits: GPUBuffer;
  rows: number;
  vocab: number;
  /** rows i32: a class, IGNORE_INDEX, or SOFT_TARGET + soft row. */
  targets: GPUBuffer;
  soft?: SoftTable;
  /** GEM temperature (default 0.7). β = 1 with h = 'linear' gives cross-entropy's gradient. */
  beta?: number;
  h?: GemH;
  /** rows × vocab f32, written: d(mean GEM)/d logits. */
  grad: GPUBuffer;
  /** ≥ 4 f32, written: [GEM mean, CE mean, count of rows with a target, 1/count]. */
  out: GPUBuffer;
  /** Optional rows × 2 f32, written: [GEM, CE] per row (0 where there is no target). */
  rowLoss?: GPUBuffer;
  /** Per-row passes: 'wide' (a workgroup per row), 'direct' (an invocation per row, no barriers); default by adapter. */
  schedule?: LossSchedule;
}

export type LossSchedule = 'wide' | 'direct' | 'auto';

/** Workgroup reductions on GPUs; barrier-free passes on CPU-emulated adapters (a barrier costs a coroutine switch per invocation there). */
export function lossSchedule(rt: Runtime, s: LossSchedule | undefined): 'wide' | 'direct' {
  if (s && s !== 'auto') return s;
  return rt.adapter.software ? 'direct' : 'wide';
}


function expectSize(name: string, buf: GPUBuffer, bytes: number): void {
  if (buf.size < bytes) {
    throw new EdgeTuneError('SHAPE_MISMATCH', `${name} has ${buf.size} bytes but needs ${bytes}`);
  }
}

/** Bytes of a rows × vocab f32 buffer as the kernels view it (whole vec4s). */
export function logitsBytes(rows: number, vocab: number): number {
  return Math.ceil((rows * vocab) / 4) * 16;
}

/**
 * Records the loss passes: loss_rows → loss_reduce → loss_grad (→ loss_scatter for indexed
 * soft rows), 3 or 4 dispatches. Temporaries are released when the batch completes.
 */
export async function recordLoss(rt: Runtime, batch: Batch, args: LossArgs): Promise<void> {
  const rows = expectDim('rows', args.rows);
  const V = expectDim('vocab', args.vocab);
  const beta = args.beta ?? 0.7;
  const h = args.h ?? 'linear';
  if (typeof beta !== 'number' || !Number.isFinite(beta) || beta < 1e-3 || beta > 1e3) {
    throw new EdgeTuneError('INVALID_ARGUMENT', `beta must be a number in [0.001, 1000], got ${String(beta)}`);
  }
  if (h !== 'linear' && h !== 'logsigmoid') {
    throw new EdgeTuneError('INVALID_ARGUMENT', `h must be 'linear' or 'logsigmoid', got ${String(h)}`);
  }
  if (rows * V >= 2 ** 32) throw new EdgeTuneError('TOO_LARGE', `${rows}×${V} logits exceed 2^32 elements; split the rows`);
  const bytes = logitsBytes(rows, V);
  if (bytes > rt.limits.maxStorageBufferBindingSize) {
    throw new EdgeTuneError('TOO_LARGE', `${rows}×${V} logits need ${bytes} bytes, over this device's ${rt.limits.maxStorageBufferBindingSize}-byte binding limit; split the rows`);
  }
  expectSize('logits', args.logits, bytes);
  expectSize('grad', args.grad, bytes);
  expectSize('targets', args.targets, rows * 4);
  expectSize('out', args.out, 16);
  if (args.rowLoss) expectSize('rowLoss', args.rowLoss, rows * 8);
  const soft = args.soft;
  let nSoft = 0, W = 0, offset = 0;
  if (soft) {
    nSoft = expectDim('soft.rows', soft.rows);
    W = expectDim('soft.width', soft.width);
    offset = soft.offset ?? 0;
    if (!Number.isInteger(offset) || offset < 0 || (!soft.indices && offset + W > V)) {
      throw new EdgeTuneError('OUT_OF_RANGE', `the soft window [${offset}, ${offset + W}) must lie inside the vocabulary of ${V}`);
    }
    expectSize('soft.values', soft.values, nSoft * W * 4);
    if (soft.indices) expectSize('soft.indices', soft.indices, nSoft * W * 4);
  }
  const logsig = h === 'logsigmoid';
  const indexed = !!soft?.indices;
  const direct = lossSchedule(rt, args.schedule) === 'direct';
  const vec4 = V % 4 === 0;
  const flags = (beta === 1 ? 1 : 0) | (vec4 ? 2 : 0) | (indexed ? 4 : 0);
  // Direct: long strips per invocation (CPU emulation pays per invocation); wide: 4 quads per thread.
  const defines = { LOGSIG: logsig, HAS_SOFT: !!soft, QPT: direct ? 16 : 4 };
  const perGroup = 64 * 4 * defines.QPT;
  const [rowsP, reduceP, gradP, scatterP] = await Promise.all([
    rt.pipelines.get(shader, direct ? 'loss_rows_direct' : 'loss_rows', defines),
    rt.pipelines.get(shader, direct ? 'loss_reduce_direct' : 'loss_reduce', defines),
    rt.pipelines.get(shader, vec4 ? 'loss_grad4' : 'loss_grad', defines),
    indexed ? rt.pipelines.get(shader, 'loss_scatter', defines) : Promise.resolve(null),
  ]);
  // Scratch: per-row statistics (rows × 4), the owner row of each soft row; for logsigmoid also
  // B_k per soft entry, the support size of each soft row and its (q_k, z_k) list.
  const scratchBytes = (rows * 4 + nSoft + (logsig ? nSoft + 3 * nSoft * W : 0)) * 4;
  if (scratchBytes > rt.limits.maxStorageBufferBindingSize || nSoft * W * 4 > rt.limits.maxStorageBufferBindingSize) {
    throw new EdgeTuneError('TOO_LARGE', `${nSoft} soft rows of width ${W} need ${Math.max(scratchBytes, nSoft * W * 4)} bytes, over this device's binding limit; use fewer or narrower soft rows`);
  }
  const stats = rt.pool.acquire(scratchBytes, 'loss.scratch');
  const rowLoss = args.rowLoss ?? rt.pool.acquire(rows * 8, 'loss.rows');
  batch.onDone(() => {
    rt.pool.release(stats);
    if (rowLoss !== args.rowLoss) rt.pool.release(rowLoss);
  });
  const params = new Params().u32(rows).u32(V).u32(W).u32(nSoft).u32(offset).u32(flags).u32(0).u32(0).f32(1 / beta);
  const softVal = soft?.values ?? rt.dummy;
  const softIdx = soft?.indices ?? rt.dummy;
  const u = undefined;
  // Binding i+1 ← buffers[i]: logits, targets, softVal, softIdx, stats, rowLoss, out, grad, grad4.
  const b = (...xs: Binding[]) => xs;
  batch.dispatch(rowsP, params, b(args.logits, args.targets, softVal, softIdx, stats, rowLoss), grid2d(rt, direct ? Math.ceil(rows / 16) : rows));
  batch.dispatch(reduceP, params, b(u, u, u, u, stats, rowLoss, args.out), [1]);
  const gradBufs = vec4
    ? b(args.logits, args.targets, softVal, u, stats, u, args.out, u, args.grad)
    : b(args.logits, args.targets, softVal, u, stats, u, args.out, args.grad);
  const [gy, gz] = grid2d(rt, rows);
  batch.dispatch(gradP, params, gradBufs, [Math.ceil(V / perGroup), gy, gz]);
  if (scatterP) batch.dispatch(scatterP, params, b(u, args.targets, softVal, softIdx, stats, u, args.out, args.grad), grid2d(rt, Math.ceil((nSoft * W) / 64)));
}
