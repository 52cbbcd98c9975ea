// Typed wrappers of shaders/norm.wgsl: RMSNorm and LayerNorm forward, backward and the
// deterministic γ/β gradient reduction.
//   x, y, dy, dx (rows, d); γ, β (d); stats (rows, 2) = (μ, rstd) kept from forward.
import shader from '../../shaders/norm.wgsl';
import { EdgeTuneError } from '../errors.js';
import type { Runtime } from '../gpu/runtime.js';
import { Params, type Batch } from '../gpu/launch.js';
import { COL_SUM_CHUNK, recordColSum } from './elementwise.js';
import { expectFloats, grid2d } from './grid.js';

const WG = 64;

export type NormKind = 'rms' | 'layer';
/** 'row': one invocation per row (CPU-emulated adapters, short rows); 'workgroup': a workgroup per row (GPUs). */
export type RowSchedule = 'row' | 'workgroup' | 'auto';

/** The per-row schedule for rows of d features on this adapter. */
export function pickRowSchedule(rt: Runtime, d: number, s?: RowSchedule): 'row' | 'workgroup' {
  if (s && s !== 'auto') return s;
  return rt.adapter.software || d < 128 ? 'row' : 'workgroup';
}

export interface NormDims {
  kind: NormKind;
  rows: number;
  d: number;
  eps: number;
  schedule?: RowSchedule;
}

export interface NormForwardArgs extends NormDims {
  x: GPUBuffer;
  gamma: GPUBuffer;
  /** LayerNorm only. */
  beta?: GPUBuffer;
  y: GPUBuffer;
  /** (rows, 2) floats: (μ, rstd) per row, for the backward. */
  stats: GPUBuffer;
}

export interface NormBackwardArgs extends NormDims {
  x: GPUBuffer;
  gamma: GPUBuffer;
  stats: GPUBuffer;
  dy: GPUBuffer;
  /** dx (rows, d), written, or added into when `accumulate`. */
  dx?: GPUBuffer;
  accumulate?: boolean;
  /** dγ (d) and dβ (d, LayerNorm): gradients are ADDED into them. Absent: not computed (either may be). */
  dgamma?: GPUBuffer;
  dbeta?: GPUBuffer;
  /** Scratch of normGradScratch(rows, d) floats for the γ/β reduction; pooled if absent. */
  scratch?: GPUBuffer;
  /** Rows per invocation of the γ/β reduction (tests use small ones). */
  chunk?: number;
}

function check(a: NormDims): void {
  if (a.kind !== 'rms' && a.kind !== 'layer') throw new EdgeTuneError('INVALID_ARGUMENT', `norm kind must be 'rms' or 'layer', got ${String(a.kind)}`);
  if (!(a.eps > 0 && Number.isFinite(a.eps))) throw new EdgeTuneError('INVALID_ARGUMENT', `eps must be positive and finite, got ${a.eps}`);
}

function launch(rt: Runtime, a: NormDims, entry: 'forward' | 'backward'): { name: string; groups: [number, number] } {
  const s = pickRowSchedule(rt, a.d, a.schedule);
  const groups = s === 'row' ? Math.ceil(a.rows / WG) : a.rows;
  return { name: `norm_${entry}_${s === 'row' ? 'row' : 'wg'}`, groups: grid2d(rt, groups) };
}

const defines = (a: NormDims, extra: Record<string, boolean> = {}) => ({ LAYER: a.kind === 'layer', VEC: a.d % 4 === 0, ACCUM: false, DIRECT: false, ...extra });
const params = (a: NormDims, chunk = 0) => new Params().u32(a.rows).u32(a.d).f32(a.eps).u32(chunk);

/** Records y = norm(x) and keeps stats for the backward. */
export async function recordNormForward(rt: Runtime, batch: Batch, a: NormForwardArgs): Promise<void> {
  check(a);
  const { rows, d } = a;
  if (rows === 0) return;
  expectFloats('norm x', a.x, rows * d);
  expectFloats('norm y', a.y, rows * d);
  expectFloats('norm stats', a.stats, rows * 2);
  expectFloats('norm gamma', a.gamma, d);
  if (a.kind === 'layer') {
    if (!a.beta) throw new EdgeTuneError('INVALID_ARGUMENT', 'LayerNorm needs beta');
    expectFloats('norm beta', a.beta, d);
  }
  const l = launch(rt, a, 'forward');
  const pipe = await rt.pipelines.get(shader, l.name, defines(a));
  batch.dispatch(pipe, params(a), [a.x, a.gamma, a.beta ?? rt.dummy, a.y, a.stats], l.groups);
}

/** Rows per invocation of the γ/β reduction: at least `chunk`, and √rows so that one col_sum round ends it. */
function paramChunk(rows: number, chunk: number): number {
  return Math.max(chunk, Math.ceil(Math.sqrt(rows)));
}

/** Floats of scratch the γ/β reduction needs (0 when one pass does). */
export function normGradScratch(rows: number, d: number, chunk = COL_SUM_CHUNK): number {
  const c = Math.ceil(rows / paramChunk(rows, chunk));
  return c > 1 ? c * 2 * d : 0;
}

/** Records dx (and/or dγ, dβ) for dy; the parameter gradients are added into. */
export async function recordNormBackward(rt: Runtime, batch: Batch, a: NormBackwardArgs): Promise<void> {
  check(a);
  const { rows, d } = a;
  if (rows === 0) return;
  expectFloats('norm x', a.x, rows * d);
  expectFloats('norm dy', a.dy, rows * d);
  expectFloats('norm stats', a.stats, rows * 2);
  expectFloats('norm gamma', a.gamma, d);
  if (a.dx) {
    expectFloats('norm dx', a.dx, rows * d);
    const l = launch(rt, a, 'backward');
    const pipe = await rt.pipelines.get(shader, l.name, defines(a, { ACCUM: !!a.accumulate }));
    batch.dispatch(pipe, params(a), [a.x, a.gamma, a.stats, a.dy, a.dx], l.groups);
  }
  const layer = a.kind === 'layer';
  if (!a.dgamma && !(layer && a.dbeta)) return;
  // One of γ, β frozen: the other's sums go to a throwaway buffer.
  const spare = (): GPUBuffer => {
    const tmp = rt.pool.acquire(d * 4, 'norm.unused-grad');
    batch.onDone(() => rt.pool.release(tmp));
    return tmp;
  };
  const dgamma = a.dgamma ?? spare();
  const dbeta = layer ? (a.dbeta ?? spare()) : undefined;
  expectFloats('norm dgamma', dgamma, d);
  if (dbeta) expectFloats('norm dbeta', dbeta, d);
  const chunk = paramChunk(rows, a.chunk ?? COL_SUM_CHUNK);
  const parts = Math.ceil(rows / chunk);
  const direct = parts === 1;
  let out = dgamma;
  if (!direct) {
    const need = parts * 2 * d;
    if (a.scratch) {
      expectFloats('norm scratch', a.scratch, need);
      out = a.scratch;
    } else {
      const tmp = rt.pool.acquire(need * 4, 'norm.partials');
      batch.onDone(() => rt.pool.release(tmp));
      out = tmp;
    }
  }
  const pipe = await rt.pipelines.get(shader, 'norm_param_grad', defines(a, { DIRECT: direct }));
  const threads = parts * Math.ceil(d / 4);
  batch.dispatch(pipe, params(a, chunk), [a.x, undefined, a.stats, a.dy, out, direct && layer ? dbeta : rt.dummy], grid2d(rt, Math.ceil(threads / WG)));
  if (direct) return;
  if (a.dgamma) await recordColSum(rt, batch, { x: out, rows: parts, cols: d, ld: 2 * d, out: a.dgamma, accumulate: true, chunk: parts });
  if (a.dbeta && layer) await recordColSum(rt, batch, { x: out, rows: parts, cols: d, ld: 2 * d, offX: d, out: a.dbeta, accumulate: true, chunk: parts });
}
