// Typed wrappers of shaders/attention.wgsl: attention forward, backward and KV-cache append
// recorded into a Batch.
//   q (B·Sq, Hq·Dh), k, v (B·Sk, Hkv·Dh), o (B·Sq, Hq·Dh); stats (2·B·Sq·Hq): lse | D;
//   info (2·B) u32: per entry (valid length, full-attention prefix).
// Forward: 1 dispatch. Backward: 3 (D = rowsum(dO ⊙ o), dq, dk+dv). Nothing S×S is stored.
import shader from '../../shaders/attention.wgsl';
import { EdgeTuneError } from '../errors.js';
import type { Runtime } from '../gpu/runtime.js';
import { Params, type Batch } from '../gpu/launch.js';

export type AttentionSchedule = 'tiled' | 'direct' | 'auto';

/** The largest head dimension the kernels take (a thread keeps whole rows in registers). */
export const MAX_HEAD_DIM = 256;

export interface AttentionDims {
  /** Batch entries B. */
  batch: number;
  /** Query rows per entry (Sq). */
  seq: number;
  /** Key/value rows per entry in k and v (Sk): `seq` for a full sequence, the cache capacity when decoding. */
  keyRows?: number;
  /** Absolute position of query row 0 (the cache length before these rows when decoding). Default 0. */
  queryStart?: number;
  heads: number;
  kvHeads: number;
  headDim: number;
  schedule?: AttentionSchedule;
}

export interface AttentionForwardArgs extends AttentionDims {
  q: GPUBuffer;
  k: GPUBuffer;
  v: GPUBuffer;
  /** Output (B·Sq, Hq·Dh). */
  o: GPUBuffer;
  /** Output (2·B·Sq·Hq): logsumexp of each score row in the first half (the second is for D). */
  stats: GPUBuffer;
  /** (2·B) u32, see attentionInfo. */
  info: GPUBuffer;
}

export interface AttentionBackwardArgs extends AttentionForwardArgs {
  /** dL/do (B·Sq, Hq·Dh). */
  dout: GPUBuffer;
  /** Outputs, overwritten: dq like q, dk and dv like k and v. */
  dq: GPUBuffer;
  dk: GPUBuffer;
  dv: GPUBuffer;
}

export interface KvAppendArgs {
  batch: number;
  /** New rows per entry. */
  n: number;
  /** Cache row of the first new row. */
  position: number;
  /** Cache rows per entry. */
  maxPositions: number;
  kvHeads: number;
  headDim: number;
  /** New k, v (B·n, Hkv·Dh). */
  k: GPUBuffer;
  v: GPUBuffer;
  /** Caches (B·maxPositions, Hkv·Dh), written in rows [position, position + n). */
  kCache: GPUBuffer;
  vCache: GPUBuffer;
}

/** Floats of the stats buffer: lse and D for every (b, query row, head). */
export function attentionStatsFloats(d: { batch: number; seq: number; heads: number }): number {
  return 2 * d.batch * d.seq * d.heads;
}

/**
 * The info array: per entry b, (len_b, prefix_b). `lengths` are the valid positions of each
 * entry (keys and queries; default all `positions`); `prefix` the full-attention prefix, one
 * for all entries or one each (default 0: purely causal). Checked: counts (SHAPE_MISMATCH),
 * integers in [0, positions] (OUT_OF_RANGE).
 */
export function attentionInfo(batch: number, positions: number, lengths?: ArrayLike<number>, prefix: number | ArrayLike<number> = 0): Uint32Array {
  const check = (name: string, v: unknown): number => {
    if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v > positions) {
      throw new EdgeTuneError('OUT_OF_RANGE', `${name} must be an integer in [0, ${positions}], got ${String(v)}`);
    }
    return v;
  };
  if (lengths !== undefined && (lengths === null || typeof lengths !== 'object' || lengths.length !== batch)) {
    throw new EdgeTuneError('SHAPE_MISMATCH', `lengths must hold one valid length per batch entry (${batch}), got ${lengths === null || typeof lengths !== 'object' ? String(lengths) : `${lengths.length}`}`);
  }
  if (typeof prefix !== 'number' && (prefix === null || typeof prefix !== 'object' || prefix.length !== batch)) {
    throw new EdgeTuneError('SHAPE_MISMATCH', `prefix must be a number or hold one prefix length per batch entry (${batch})`);
  }
  const info = new Uint32Array(2 * batch);
  for (let b = 0; b < batch; b++) {
    info[2 * b] = lengths ? check(`lengths[${b}]`, lengths[b]) : positions;
    info[2 * b + 1] = check(typeof prefix === 'number' ? 'prefix' : `prefix[${b}]`, typeof prefix === 'number' ? prefix : prefix[b]);
  }
  return info;
}

/** Barrier-free per-thread loops on CPU-emulated adapters, workgroup tiles on GPUs. */
export function pickAttentionSchedule(rt: Runtime, s: AttentionSchedule | undefined): 'tiled' | 'direct' {
  if (s && s !== 'auto') return s;
  return rt.adapter.software ? 'direct' : 'tiled';
}

interface Shape {
  R: number;
  WG: number;
  TILE: number;
}

/**
 * tiled: one row per thread, 64 threads, TILE rows of k/v (q/dO) staged per step, as many as
 * the workgroup memory holds (up to 32). direct: 8 rows per thread (each loaded key quad serves
 * 8 query rows), 4 threads (one SIMD group of the emulator); TILE is only the loop step. With
 * fewer than 4 rows (decoding a token) a thread takes 1 row, not 8 of which 7 would be idle.
 */
function shapeOf(rt: Runtime, schedule: 'tiled' | 'direct', dh4: number, rows: number): Shape {
  if (schedule === 'direct') return { R: rows < 4 ? 1 : 8, WG: 4, TILE: 64 };
  const budget = rt.limits.maxComputeWorkgroupStorageSize;
  let tile = 32;
  while (tile > 4 && 2 * tile * dh4 * 16 + tile * 16 > budget) tile /= 2;
  return { R: 1, WG: 64, TILE: tile };
}

function defines(d: AttentionDims, sh: Shape, schedule: 'tiled' | 'direct') {
  return { DH4: Math.ceil(d.headDim / 4), VEC: d.headDim % 4 === 0, R: sh.R, WG: sh.WG, TILE: sh.TILE, TILED: schedule === 'tiled' };
}

/** Checks the dimensions the kernels rely on; returns Sk and the query start. */
export function checkAttentionDims(rt: Runtime, d: AttentionDims): { sk: number; q0: number } {
  const sk = d.keyRows ?? d.seq;
  const q0 = d.queryStart ?? 0;
  for (const [name, v] of [['batch', d.batch], ['seq', d.seq], ['keyRows', sk], ['heads', d.heads], ['kvHeads', d.kvHeads], ['headDim', d.headDim]] as const) {
    if (!Number.isInteger(v) || v < 1) throw new EdgeTuneError('INVALID_ARGUMENT', `${name} must be a positive integer, got ${String(v)}`);
  }
  if (!Number.isInteger(q0) || q0 < 0) throw new EdgeTuneError('INVALID_ARGUMENT', `queryStart must be a non-negative integer, got ${String(q0)}`);
  if (d.heads % d.kvHeads !== 0) {
    throw new EdgeTuneError('INVALID_ARGUMENT', `heads (${d.heads}) must be a multiple of kvHeads (${d.kvHeads}) for grouped-query attention`);
  }
  if (d.headDim > MAX_HEAD_DIM) throw new EdgeTuneError('TOO_LARGE', `headDim ${d.headDim} exceeds the kernels' ${MAX_HEAD_DIM}`);
  const max = rt.limits.maxComputeWorkgroupsPerDimension;
  if (d.batch > max || d.heads > max) throw new EdgeTuneError('TOO_LARGE', `batch ${d.batch} or heads ${d.heads} exceeds ${max}; split the batch`);
  const big = 4 * Math.max(d.batch * d.seq * d.heads * d.headDim, d.batch * sk * d.kvHeads * d.headDim, attentionStatsFloats(d));
  if (big > rt.limits.maxStorageBufferBindingSize) {
    throw new EdgeTuneError('TOO_LARGE', `attention buffers of ${big} bytes exceed this device's ${rt.limits.maxStorageBufferBindingSize}-byte binding limit; split the batch`);
  }
  return { sk, q0 };
}

function params(d: AttentionDims, sk: number, q0: number, n = 0): Params {
  return new Params()
    .u32(d.batch).u32(d.seq).u32(sk).u32(q0)
    .u32(d.heads).u32(d.kvHeads).u32(d.heads / d.kvHeads).u32(d.headDim)
    .f32(1 / Math.sqrt(d.headDim)).u32(n).u32(0).u32(0);
}

/** o = softmax(scale · q kᵀ + mask) v, and the logsumexp of each score row into stats. */
export async function recordAttentionForward(rt: Runtime, batch: Batch, a: AttentionForwardArgs): Promise<void> {
  const { sk, q0 } = checkAttentionDims(rt, a);
  const schedule = pickAttentionSchedule(rt, a.schedule);
  const sh = shapeOf(rt, schedule, Math.ceil(a.headDim / 4), a.seq);
  const pipeline = await rt.pipelines.get(shader, 'attn_forward', defines(a, sh, schedule));
  batch.dispatch(pipeline, params(a, sk, q0), [a.q, a.k, a.v, a.o, a.stats, a.info], [Math.ceil(a.seq / (sh.WG * sh.R)), a.heads, a.batch]);
}

/**
 * dq, dk, dv for dL/do = dout, from the forward's q, k, v, o and stats (whose second half it
 * fills with D). dk and dv sum over the query heads sharing a kv head. Overwrites dq, dk, dv.
 */
export async function recordAttentionBackward(rt: Runtime, batch: Batch, a: AttentionBackwardArgs): Promise<void> {
  const { sk, q0 } = checkAttentionDims(rt, a);
  const schedule = pickAttentionSchedule(rt, a.schedule);
  const sh = shapeOf(rt, schedule, Math.ceil(a.headDim / 4), a.seq);
  const def = defines(a, sh, schedule);
  const [prep, dq, dkv] = await Promise.all([
    rt.pipelines.get(shader, 'attn_backward_prep', def),
    rt.pipelines.get(shader, 'attn_backward_dq', def),
    rt.pipelines.get(shader, 'attn_backward_dkv', def),
  ]);
  const pr = params(a, sk, q0);
  // Bindings: 1 q, 2 k, 3 v, 4 o(write), 5 stats, 6 info, 7 dO, 8 o(read), 9 dq, 10 dk, 11 dv.
  batch.dispatch(prep, pr, [undefined, undefined, undefined, undefined, a.stats, undefined, a.dout, a.o], [Math.ceil((a.seq * a.heads) / 64), 1, a.batch]);
  batch.dispatch(dq, pr, [a.q, a.k, a.v, undefined, a.stats, a.info, a.dout, undefined, a.dq], [Math.ceil(a.seq / (sh.WG * sh.R)), a.heads, a.batch]);
  batch.dispatch(dkv, pr, [a.q, a.k, a.v, undefined, a.stats, a.info, a.dout, undefined, undefined, a.dk, a.dv], [Math.ceil(sk / (sh.WG * sh.R)), a.kvHeads, a.batch]);
}

/** Copies n new k, v rows per entry into the caches at rows [position, position + n). */
export async function recordKvAppend(rt: Runtime, batch: Batch, a: KvAppendArgs): Promise<void> {
  if (a.position + a.n > a.maxPositions) {
    throw new EdgeTuneError('OUT_OF_RANGE', `appending ${a.n} rows at position ${a.position} overflows the cache of ${a.maxPositions} positions`);
  }
  // The module's other constants are irrelevant to the copy: one fixed specialisation.
  const pipeline = await rt.pipelines.get(shader, 'kv_append', { DH4: 1, VEC: false, R: 1, WG: 1, TILE: 4, TILED: false });
  const pr = new Params()
    .u32(a.batch).u32(a.n).u32(a.maxPositions).u32(a.position)
    .u32(a.kvHeads).u32(a.kvHeads).u32(1).u32(a.headDim)
    .f32(1).u32(a.n).u32(0).u32(0);
  const groups = Math.min(1024, Math.ceil((a.n * a.kvHeads * a.headDim) / 64));
  batch.dispatch(pipeline, pr, [undefined, a.k, a.v, undefined, undefined, undefined, undefined, undefined, undefined, a.kCache, a.vCache], [groups, 1, a.batch]);
}
