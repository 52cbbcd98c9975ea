// Typed wrappers of shaders/lora.wgsl: LoRA forward and backward recorded into a Batch.
//   x (m, in), W (in, out), b (out), A (in, r), B (r, out), y = x W + b + s · (drop(x) A) B.
// The big products go through recordMatmul; the rank-r side is one fused dispatch per pass.
// Also the pieces dual_lora.ts shares: the rank-tile schedule and the dropout hash.
import shader from '../../shaders/lora.wgsl';
import { EdgeTuneError } from '../errors.js';
import type { Runtime } from '../gpu/runtime.js';
import { Params, type Batch } from '../gpu/launch.js';
import { pickSchedule, recordMatmul, type MatmulSchedule } from './matmul.js';

/** The largest adapter rank the kernels take (a workgroup holds a whole rank row). */
export const MAX_RANK = 64;

export interface LoraDims {
  /** Rows of x (batch · tokens). */
  m: number;
  inFeatures: number;
  outFeatures: number;
  rank: number;
}

/** Inverted dropout on the A-branch input: keep with probability 1 − p, scale kept by 1/(1 − p). */
export interface DropoutSpec {
  p: number;
  /** Mask seed of this forward; the backward must pass the same. */
  seed: number;
}

// ---- dropout mask (mirrors hash32 / keepScale in the shaders) ---------------------------------
/** lowbias32 (C. Wellons), as in shaders/lora.wgsl. */
export function hash32(v: number): number {
  let x = v >>> 0;
  x ^= x >>> 16;
  x = Math.imul(x, 0x7feb352d) >>> 0;
  x ^= x >>> 15;
  x = Math.imul(x, 0x846ca68b) >>> 0;
  x ^= x >>> 16;
  return x >>> 0;
}

/** The u32 threshold: an element is kept when its hash is ≥ it. */
export function dropThreshold(p: number): number {
  return Math.min(0xffffffff, Math.round(p * 2 ** 32));
}

/** The mask seed of forward call `step` of a layer seeded with `seed`. */
export function dropoutStepSeed(seed: number, step: number): number {
  return hash32((Math.imul(seed >>> 0, 0x9e3779b1) + step) >>> 0);
}

/** The keep mask drop(x) uses for an (m, k) input: 1 where kept (element m·k + j), else 0. */
export function dropoutMask(spec: DropoutSpec, m: number, k: number): Uint8Array {
  const out = new Uint8Array(m * k);
  const thr = dropThreshold(spec.p);
  const sh = hash32(spec.seed);
  for (let i = 0; i < out.length; i++) out[i] = (hash32(hash32(i) ^ sh) >>> 0) >= thr ? 1 : 0;
  return out;
}

export function checkDropout(d: DropoutSpec | undefined): DropoutSpec | undefined {
  if (!d || d.p === 0) return undefined;
  if (!(typeof d.p === 'number' && d.p > 0 && d.p < 1)) {
    throw new EdgeTuneError('INVALID_ARGUMENT', `dropout p must be in [0, 1), got ${String(d.p)}`);
  }
  if (!Number.isInteger(d.seed)) throw new EdgeTuneError('INVALID_ARGUMENT', `dropout seed must be an integer, got ${String(d.seed)}`);
  return d;
}

// ---- schedule -------------------------------------------------------------------------------
export interface RankTiling {
  /** 'direct': a thread owns 16 rows, no barriers (CPU emulation, K, N, r multiples of 4). */
  schedule: 'tiled' | 'direct';
  /** Rank quads, ceil(r/4). */
  RQ: number;
  /** Tiled: row quads per workgroup (a workgroup owns 4·WR = 16 rows). */
  WR: number;
  /** Tiled: split of phase 1's reduction among threads (partials meet in workgroup memory). */
  KS: number;
}

/**
 * CPU-emulated adapters take the direct schedule when K, N and r are multiples of 4, else the
 * tiled one without a split reduction (a barrier costs a coroutine switch per invocation). GPUs:
 * tiled, the reduction split to fill about 64 threads.
 */
export function rankTiling(rt: Runtime, d: LoraDims, schedule?: MatmulSchedule): RankTiling {
  const RQ = Math.ceil(d.rank / 4);
  const aligned = d.inFeatures % 4 === 0 && d.outFeatures % 4 === 0 && d.rank % 4 === 0;
  if (pickSchedule(rt, schedule) === 'direct') return { schedule: aligned ? 'direct' : 'tiled', RQ, WR: 4, KS: 1 };
  return { schedule: 'tiled', RQ, WR: 4, KS: Math.max(1, Math.floor(16 / RQ)) };
}

/**
 * Shader defines for a tiling, shape and dropout. The direct schedule reads r at run time, so its
 * pipelines do not depend on the rank (RQ is then a placeholder).
 */
export function rankDefines(tl: RankTiling, d: LoraDims, dropout: boolean): Record<string, number | boolean> {
  return {
    RQ: tl.schedule === 'direct' ? 1 : tl.RQ, WR: tl.WR, KS: tl.KS,
    VEC_K: d.inFeatures % 4 === 0, VEC_N: d.outFeatures % 4 === 0, VEC_R: d.rank % 4 === 0,
    DROPOUT: dropout,
  };
}

/** The entry point of a pass under a tiling, e.g. lora_forward_direct. */
export function rankEntry(pass: string, tl: RankTiling): string {
  return `${pass}_${tl.schedule}`;
}

/** Workgroups: 16 rows per workgroup (tiled) or per thread, 4 threads a workgroup (direct). */
export function rankGroups(tl: RankTiling, m: number): number {
  return Math.ceil(m / (tl.schedule === 'direct' ? 64 : 4 * tl.WR));
}

/** Row blocks of 16 (one dγ/dβ partial each): the same under both schedules. */
export function rowBlocks(m: number): number {
  return Math.ceil(m / 16);
}

export const align4 = (n: number): number => Math.ceil(n / 4) * 4;

// ---- LoRA -----------------------------------------------------------------------------------
/** Layout of the state a LoRA forward keeps for its backward (offsets in floats). */
export function loraStateLayout(d: LoraDims, dropout: boolean): { u: number; xd: number; floats: number } {
  const xd = align4(d.m * d.rank);
  return { u: 0, xd, floats: xd + (dropout ? d.m * d.inFeatures : 0) };
}

export interface LoraKernelArgs extends LoraDims {
  x: GPUBuffer;
  a: GPUBuffer;
  /** s = alpha / r. */
  scale: number;
  /** The state buffer: loraStateLayout(...).floats floats. */
  state: GPUBuffer;
  dropout?: DropoutSpec;
  schedule?: MatmulSchedule;
}

export interface LoraForwardArgs extends LoraKernelArgs {
  w: GPUBuffer;
  bias?: GPUBuffer;
  b: GPUBuffer;
  /** Output (m, out). */
  y: GPUBuffer;
}

export interface LoraBackwardArgs extends LoraKernelArgs {
  w: GPUBuffer;
  b: GPUBuffer;
  /** dL/dy (m, out). */
  dy: GPUBuffer;
  /** Output (m, in), overwritten. */
  dx: GPUBuffer;
  /** Gradients (in, r) and (r, out), accumulated into. */
  da: GPUBuffer;
  db: GPUBuffer;
}

function rankParams(d: LoraDims, scale: number, dropout: DropoutSpec | undefined): Params {
  return new Params()
    .u32(d.m).u32(d.inFeatures).u32(d.outFeatures).u32(d.rank)
    .f32(scale)
    .u32(dropout ? dropThreshold(dropout.p) : 0)
    .u32(dropout ? hash32(dropout.seed) : 0)
    .f32(dropout ? 1 / (1 - dropout.p) : 1);
}

export function checkRank(rank: number): void {
  if (rank > MAX_RANK) throw new EdgeTuneError('INVALID_ARGUMENT', `adapter rank ${rank} is over the supported ${MAX_RANK}`);
}

function loraParams(a: LoraKernelArgs, drop: DropoutSpec | undefined): Params {
  return rankParams(a, a.scale, drop).u32(loraStateLayout(a, !!drop).xd);
}

/** y = x W + b + s · (drop(x) A) B; the state (u, drop(x)) is written for the backward. */
export async function recordLoraForward(rt: Runtime, batch: Batch, args: LoraForwardArgs): Promise<void> {
  checkRank(args.rank);
  const drop = checkDropout(args.dropout);
  const tl = rankTiling(rt, args, args.schedule);
  const pipe = await rt.pipelines.get(shader, rankEntry('lora_forward', tl), rankDefines(tl, args, !!drop));
  await recordMatmul(rt, batch, {
    a: args.x, b: args.w, c: args.y, bias: args.bias,
    m: args.m, n: args.outFeatures, k: args.inFeatures, schedule: args.schedule,
  });
  batch.dispatch(pipe, loraParams(args, drop), [args.x, args.a, args.b, args.state, args.y], [rankGroups(tl, args.m)]);
}

/**
 * Only the state of a forward (u, drop(x)): what a backward needs when y is not wanted. The
 * forward kernel with no output columns (one pipeline for both).
 */
export async function recordLoraProject(rt: Runtime, batch: Batch, args: LoraKernelArgs): Promise<void> {
  checkRank(args.rank);
  const drop = checkDropout(args.dropout);
  const tl = rankTiling(rt, args, args.schedule);
  const pipe = await rt.pipelines.get(shader, rankEntry('lora_forward', tl), rankDefines(tl, args, !!drop));
  const noY = spareBuffer(rt, batch);
  batch.dispatch(pipe, loraParams({ ...args, outFeatures: 0 }, drop), [args.x, args.a, rt.dummy, args.state, noY], [rankGroups(tl, args.m)]);
}

/** A 16-byte buffer to bind at an unused writable slot (distinct from every other binding). */
export function spareBuffer(rt: Runtime, batch: Batch): GPUBuffer {
  const buf = rt.pool.acquire(16, 'spare');
  batch.onDone(() => rt.pool.release(buf));
  return buf;
}

/**
 * Backward of recordLoraForward from its state: dx = dy Wᵀ + drop'(du Aᵀ) with du = s · dy Bᵀ;
 * da += drop(x)ᵀ du; db += s · uᵀ dy. Pass the forward's dropout spec.
 */
export async function recordLoraBackward(rt: Runtime, batch: Batch, args: LoraBackwardArgs): Promise<void> {
  checkRank(args.rank);
  const drop = checkDropout(args.dropout);
  const { m, inFeatures: k, outFeatures: n, rank: r } = args;
  const tl = rankTiling(rt, args, args.schedule);
  const pipe = await rt.pipelines.get(shader, rankEntry('lora_backward', tl), rankDefines(tl, args, !!drop));
  const layout = loraStateLayout(args, !!drop);
  const du = rt.pool.acquire(m * r * 4, 'lora.du');
  batch.onDone(() => rt.pool.release(du));
  const schedule = args.schedule;
  batch.dispatch(pipe, loraParams(args, drop), [undefined, args.a, args.b, undefined, undefined, args.dy, du, args.dx], [rankGroups(tl, m)]);
  await recordMatmul(rt, batch, { a: args.dy, b: args.w, c: args.dx, m, n: k, k: n, transB: true, accumulate: true, schedule });
  await recordMatmul(rt, batch, { a: args.state, b: args.dy, c: args.db, m: r, n, k: m, transA: true, alpha: args.scale, accumulate: true, schedule });
  await recordMatmul(rt, batch, {
    a: drop ? args.state : args.x, offsetA: drop ? layout.xd : 0, b: du, c: args.da,
    m: k, n: r, k: m, transA: true, accumulate: true, schedule,
  });
}
