// Typed wrappers of shaders/elementwise.wgsl: add, add-into (fan-in, broadcast), scale, fill,
// copy, and the deterministic column sum that bias and norm gradients end with.
import shader from '../../shaders/elementwise.wgsl';
import { EdgeTuneError } from '../errors.js';
import type { Runtime } from '../gpu/runtime.js';
import { Params, type Batch } from '../gpu/launch.js';
import { aligned4, expectFloats, grid2d } from './grid.js';

const WG = 64;

/** Rows summed by one col_sum invocation; more rows take further rounds. */
export const COL_SUM_CHUNK = 64;

interface Ew {
  n: number;
  offX?: number;
  offY?: number;
  period?: number;
  s?: number;
}

async function ew(rt: Runtime, batch: Batch, entry: string, o: Ew, x: GPUBuffer | undefined, x2: GPUBuffer | undefined, y: GPUBuffer): Promise<void> {
  const { n } = o;
  const offX = o.offX ?? 0;
  const offY = o.offY ?? 0;
  const period = o.period ?? n;
  if (n === 0) return;
  if (x) expectFloats(`${entry} input`, x, offX + Math.min(period, n));
  if (x2) expectFloats(`${entry} input`, x2, offX + n);
  expectFloats(`${entry} output`, y, offY + n);
  const defines = { VEC: aligned4(n, offX, offY, period), ACCUM: false };
  const pipe = await rt.pipelines.get(shader, entry, defines);
  const params = new Params().u32(n).u32(offX).u32(offY).u32(period).f32(o.s ?? 1).u32(0).u32(0).u32(0);
  batch.dispatch(pipe, params, [x, x2, y], grid2d(rt, Math.ceil(n / 4 / WG)));
}

/** y = a + b (n elements). */
export function recordAdd(rt: Runtime, batch: Batch, a: GPUBuffer, b: GPUBuffer, y: GPUBuffer, n: number): Promise<void> {
  return ew(rt, batch, 'ew_add', { n }, a, b, y);
}

/**
 * y[offY + i] += s · x[offX + (i mod period)] for i < n: gradient fan-in (s = 1, period = n),
 * or a broadcast add of a (period)-long block (position embeddings). `y` must not be `x`.
 */
export function recordAddInto(rt: Runtime, batch: Batch, x: GPUBuffer, y: GPUBuffer, n: number, o: { s?: number; period?: number; offX?: number; offY?: number } = {}): Promise<void> {
  const period = o.period ?? n;
  if (!(Number.isInteger(period) && period > 0)) throw new EdgeTuneError('INVALID_ARGUMENT', `period must be a positive integer, got ${period}`);
  return ew(rt, batch, 'ew_axpy', { n, ...o, period }, x, undefined, y);
}

/** y = s · x, or y = s · y in place when `x` is omitted. */
export function recordScale(rt: Runtime, batch: Batch, s: number, y: GPUBuffer, n: number, x?: GPUBuffer): Promise<void> {
  return x ? ew(rt, batch, 'ew_scale', { n, s }, x, undefined, y) : ew(rt, batch, 'ew_scale_inplace', { n, s }, undefined, undefined, y);
}

/** y[offY .. offY + n) = value. */
export function recordFill(rt: Runtime, batch: Batch, y: GPUBuffer, n: number, value: number, offY = 0): Promise<void> {
  return ew(rt, batch, 'ew_fill', { n, s: value, offY }, undefined, undefined, y);
}

/** y[offY + i] = x[offX + i] for i < n, inside the compute pass (no pass break as a buffer copy). */
export function recordCopy(rt: Runtime, batch: Batch, x: GPUBuffer, y: GPUBuffer, n: number, offX = 0, offY = 0): Promise<void> {
  return ew(rt, batch, 'ew_copy', { n, offX, offY }, x, undefined, y);
}

export interface ColSumArgs {
  /** x (rows, cols), row stride `ld` (default cols), from element offX. */
  x: GPUBuffer;
  rows: number;
  cols: number;
  ld?: number;
  offX?: number;
  /** out (cols): the column sums, added into it when `accumulate`. */
  out: GPUBuffer;
  offOut?: number;
  accumulate?: boolean;
  /** Scratch of at least colSumScratch(rows, cols) floats; a pooled one is used if absent. */
  scratch?: GPUBuffer;
  /** Rows per invocation (tests use small chunks to exercise several rounds). */
  chunk?: number;
}

/**
 * Rows per invocation of the first round: at least `chunk`, and at least √rows so that one
 * more round (a single chunk over the partial rows) finishes the sum.
 */
function firstChunk(rows: number, chunk: number): number {
  return Math.max(chunk, Math.ceil(Math.sqrt(rows)));
}

/** Floats of scratch recordColSum needs for `rows` rows (0 when one round does). */
export function colSumScratch(rows: number, cols: number, chunk = COL_SUM_CHUNK): number {
  return rows <= chunk ? 0 : Math.ceil(rows / firstChunk(rows, chunk)) * cols;
}

/**
 * out (+)= Σ_rows x in a fixed order: one round when rows ≤ chunk; else a round of partial
 * sums over chunks of rows into scratch, then one round over the partials.
 */
export async function recordColSum(rt: Runtime, batch: Batch, a: ColSumArgs): Promise<void> {
  const chunk = a.chunk ?? COL_SUM_CHUNK;
  const ld = a.ld ?? a.cols;
  const offX = a.offX ?? 0;
  const offOut = a.offOut ?? 0;
  const { cols, rows } = a;
  if (cols === 0) return;
  if (!(Number.isInteger(chunk) && chunk >= 1)) throw new EdgeTuneError('INVALID_ARGUMENT', `chunk must be a positive integer, got ${chunk}`);
  if (rows === 0) {
    if (!a.accumulate) await recordFill(rt, batch, a.out, cols, 0, offOut);
    return;
  }
  expectFloats('col_sum input', a.x, offX + (rows - 1) * ld + cols);
  expectFloats('col_sum output', a.out, offOut + cols);
  const round = async (src: GPUBuffer, srcOff: number, srcLd: number, n: number, ch: number, dst: GPUBuffer, dstOff: number, accum: boolean) => {
    const pipe = await rt.pipelines.get(shader, 'col_sum', { VEC: aligned4(cols, srcOff, srcLd), ACCUM: accum });
    const params = new Params().u32(cols).u32(srcOff).u32(dstOff).u32(1).f32(1).u32(n).u32(ch).u32(srcLd);
    const threads = Math.ceil(n / ch) * Math.ceil(cols / 4);
    batch.dispatch(pipe, params, [src, undefined, dst], grid2d(rt, Math.ceil(threads / WG)));
  };
  if (rows <= chunk) return round(a.x, offX, ld, rows, chunk, a.out, offOut, !!a.accumulate);
  const first = firstChunk(rows, chunk);
  const partial = Math.ceil(rows / first);
  let scratch = a.scratch;
  if (!scratch) {
    const tmp = rt.pool.acquire(partial * cols * 4, 'col_sum.scratch');
    batch.onDone(() => rt.pool.release(tmp));
    scratch = tmp;
  }
  expectFloats('col_sum scratch', scratch, partial * cols);
  await round(a.x, offX, ld, rows, first, scratch, 0, false);
  await round(scratch, 0, cols, partial, partial, a.out, offOut, !!a.accumulate);
}
