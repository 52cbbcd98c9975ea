// Typed wrappers of shaders/dual_lora.wgsl: Dual-LoRA forward and backward recorded into a Batch.
//   x (m, in), W (in, out), b (out), A, T (in, r), B (r, out), γ, β (r):
//   y = x W + b + s · (ReLU(x T) ⊙ LN_r(drop(x) A)) B.
// The big products go through recordMatmul; the rank-r side is one fused dispatch per pass
// (plus a tiny one that sums the per-workgroup dγ, dβ partials).
import shader from '../../shaders/dual_lora.wgsl';
import type { Runtime } from '../gpu/runtime.js';
import { Params, type Batch } from '../gpu/launch.js';
import { recordMatmul, type MatmulSchedule } from './matmul.js';
import {
  align4, checkDropout, checkRank, dropThreshold, hash32, rankDefines, rankEntry, rankGroups, rankTiling, rowBlocks,
  spareBuffer, type DropoutSpec, type LoraDims,
} from './lora.js';

/** The partials reduction does not depend on the tiling: one pipeline for every shape. */
const NORM_DEFINES = { RQ: 1, WR: 4, KS: 1, VEC_K: false, VEC_N: false, VEC_R: false, DROPOUT: false };

/** Layout of the state a Dual-LoRA forward keeps for its backward (offsets in floats). */
export interface DualLoraStateLayout {
  h: number;
  n: number;
  xhat: number;
  v: number;
  rstd: number;
  xd: number;
  floats: number;
}

export function dualLoraStateLayout(d: LoraDims, dropout: boolean): DualLoraStateLayout {
  const mr = align4(d.m * d.rank);
  const xd = 4 * mr + align4(d.m);
  return { h: 0, n: mr, xhat: 2 * mr, v: 3 * mr, rstd: 4 * mr, xd, floats: xd + (dropout ? d.m * d.inFeatures : 0) };
}

/** Layout of the backward's work buffer: du, dz (m, r) and one dγ/dβ partial pair per 16 rows. */
function workLayout(d: LoraDims): { dz: number; part: number; nPart: number; floats: number } {
  const mr = align4(d.m * d.rank);
  const nPart = rowBlocks(d.m);
  return { dz: mr, part: 2 * mr, nPart, floats: 2 * mr + nPart * 2 * d.rank };
}

export interface DualLoraKernelArgs extends LoraDims {
  x: GPUBuffer;
  a: GPUBuffer;
  t: GPUBuffer;
  gamma: GPUBuffer;
  beta: GPUBuffer;
  /** s = alpha / r. */
  scale: number;
  /** LayerNorm epsilon (DESIGN: 1e-5). */
  eps?: number;
  /** The state buffer: dualLoraStateLayout(...).floats floats. */
  state: GPUBuffer;
  dropout?: DropoutSpec;
  schedule?: MatmulSchedule;
}

export interface DualLoraForwardArgs extends DualLoraKernelArgs {
  w: GPUBuffer;
  bias?: GPUBuffer;
  b: GPUBuffer;
  /** Output (m, out). */
  y: GPUBuffer;
}

export interface DualLoraBackwardArgs extends DualLoraKernelArgs {
  w: GPUBuffer;
  b: GPUBuffer;
  /** dL/dy (m, out). */
  dy: GPUBuffer;
  /** Output (m, in), overwritten. */
  dx: GPUBuffer;
  /** Gradients, accumulated into: A, T (in, r), B (r, out), γ, β (r). */
  da: GPUBuffer;
  dt: GPUBuffer;
  db: GPUBuffer;
  dgamma: GPUBuffer;
  dbeta: GPUBuffer;
}

function dualParams(a: DualLoraKernelArgs, drop: DropoutSpec | undefined, work?: ReturnType<typeof workLayout>): Params {
  const st = dualLoraStateLayout(a, !!drop);
  return new Params()
    .u32(a.m).u32(a.inFeatures).u32(a.outFeatures).u32(a.rank)
    .f32(a.scale)
    .u32(drop ? dropThreshold(drop.p) : 0)
    .u32(drop ? hash32(drop.seed) : 0)
    .f32(drop ? 1 / (1 - drop.p) : 1)
    .f32(a.eps ?? 1e-5).u32(st.n).u32(st.xhat).u32(st.v)
    .u32(st.rstd).u32(st.xd).u32(work?.dz ?? 0).u32(work?.part ?? 0)
    .u32(work?.nPart ?? 0);
}

/** y = x W + b + s · h B; the state (h, n, x̂, v, rstd, drop(x)) is written for the backward. */
export async function recordDualLoraForward(rt: Runtime, batch: Batch, args: DualLoraForwardArgs): Promise<void> {
  checkRank(args.rank);
  const drop = checkDropout(args.dropout);
  const tl = rankTiling(rt, args, args.schedule);
  const pipe = await rt.pipelines.get(shader, rankEntry('dual_lora_forward', tl), rankDefines(tl, args, !!drop));
  await recordMatmul(rt, batch, {
    a: args.x, b: args.w, c: args.y, bias: args.bias,
    m: args.m, n: args.outFeatures, k: args.inFeatures, schedule: args.schedule,
  });
  batch.dispatch(pipe, dualParams(args, drop), [args.x, args.a, args.t, args.b, args.gamma, args.beta, args.state, args.y], [rankGroups(tl, args.m)]);
}

/**
 * Only the state of a forward: what a backward needs when y is not wanted. The forward kernel
 * with no output columns (one pipeline for both).
 */
export async function recordDualLoraProject(rt: Runtime, batch: Batch, args: DualLoraKernelArgs): Promise<void> {
  checkRank(args.rank);
  const drop = checkDropout(args.dropout);
  const tl = rankTiling(rt, args, args.schedule);
  const pipe = await rt.pipelines.get(shader, rankEntry('dual_lora_forward', tl), rankDefines(tl, args, !!drop));
  const noY = spareBuffer(rt, batch);
  batch.dispatch(pipe, dualParams({ ...args, outFeatures: 0 }, drop), [args.x, args.a, args.t, rt.dummy, args.gamma, args.beta, args.state, noY], [rankGroups(tl, args.m)]);
}

/**
 * Backward of recordDualLoraForward from its state (DESIGN §1.3): dx overwritten; da, dt, db,
 * dgamma, dbeta accumulated. Pass the forward's dropout spec.
 */
export async function recordDualLoraBackward(rt: Runtime, batch: Batch, args: DualLoraBackwardArgs): Promise<void> {
  checkRank(args.rank);
  const drop = checkDropout(args.dropout);
  const { m, inFeatures: k, outFeatures: n, rank: r, schedule } = args;
  const tl = rankTiling(rt, args, schedule);
  const defines = rankDefines(tl, args, !!drop);
  const pipe = await rt.pipelines.get(shader, rankEntry('dual_lora_backward', tl), defines);
  const norm = await rt.pipelines.get(shader, 'dual_lora_backward_norm', NORM_DEFINES);
  const st = dualLoraStateLayout(args, !!drop);
  const wl = workLayout(args);
  const work = rt.pool.acquire(wl.floats * 4, 'dual_lora.work');
  batch.onDone(() => rt.pool.release(work));
  const params = dualParams(args, drop, wl);
  batch.dispatch(pipe, params, [
    undefined, args.a, args.t, args.b, args.gamma, undefined, args.state, undefined, args.dy, work, args.dx,
  ], [rankGroups(tl, m)]);
  batch.dispatch(norm, params, [
    undefined, undefined, undefined, undefined, undefined, undefined, undefined, undefined, undefined, work, undefined, args.dgamma, args.dbeta,
  ], [Math.ceil((2 * r) / 64)]);
  await recordMatmul(rt, batch, { a: args.dy, b: args.w, c: args.dx, m, n: k, k: n, transB: true, accumulate: true, schedule });
  await recordMatmul(rt, batch, { a: args.state, offsetA: st.h, b: args.dy, c: args.db, m: r, n, k: m, transA: true, alpha: args.scale, accumulate: true, schedule });
  await recordMatmul(rt, batch, {
    a: drop ? args.state : args.x, offsetA: drop ? st.xd : 0, b: work, c: args.da,
    m: k, n: r, k: m, transA: true, accumulate: true, schedule,
  });
  await recordMatmul(rt, batch, { a: args.x, b: work, offsetB: wl.dz, c: args.dt, m: k, n: r, k: m, transA: true, accumulate: true, schedule });
}
