// Typed wrapper of shaders/adamw.wgsl: gradient norm, clipping and the AdamW update.
import shader from '../../shaders/adamw.wgsl';
import { Params, type Batch } from '../gpu/launch.js';
import type { Runtime } from '../gpu/runtime.js';
import { grid2d } from './grid.js';

export const SUMSQ_CHUNK = 4096;
const WG = 64;

/** Workgroups of sumsq_partial for a tensor of n elements (= partial slots it writes). */
export function sumsqSlots(n: number): number {
  return Math.max(1, Math.ceil(n / SUMSQ_CHUNK));
}

/** partial[base .. base + sumsqSlots(n)) = chunk sums of g². */
export async function recordSumSq(rt: Runtime, batch: Batch, g: GPUBuffer, n: number, partial: GPUBuffer, base: number): Promise<void> {
  const pipe = await rt.pipelines.get(shader, 'sumsq_partial');
  batch.dispatch(pipe, new Params().u32(n).u32(base).u32(0).u32(0), [g, partial], [sumsqSlots(n)]);
}

/** stats = [‖g‖, scale, skip, Σg²] from `count` partials and an optional loss scalar. */
export async function recordClipPrepare(
  rt: Runtime, batch: Batch,
  o: { partial: GPUBuffer; count: number; loss?: GPUBuffer; stats: GPUBuffer; maxNorm: number; gradScale: number },
): Promise<void> {
  const pipe = await rt.pipelines.get(shader, 'clip_prepare');
  const params = new Params().u32(o.count).u32(o.loss ? 1 : 0).f32(o.maxNorm).f32(o.gradScale);
  batch.dispatch(pipe, params, [o.partial, o.loss ?? rt.dummy, o.stats], [1]);
}

export interface AdamWStep {
  lr: number;
  beta1: number;
  beta2: number;
  eps: number;
  weightDecay: number;
  /** 1-based step number, for bias correction. */
  t: number;
}

/** One AdamW update of p (n) from g, m, v, scaled by stats[1] and skipped when stats[2] ≠ 0. */
export async function recordAdamW(
  rt: Runtime, batch: Batch,
  b: { p: GPUBuffer; g: GPUBuffer; m: GPUBuffer; v: GPUBuffer; stats: GPUBuffer; n: number },
  s: AdamWStep,
): Promise<void> {
  const pipe = await rt.pipelines.get(shader, 'adamw_step');
  const bc1 = 1 - Math.pow(s.beta1, s.t);
  const bc2 = 1 - Math.pow(s.beta2, s.t);
  const params = new Params().u32(b.n).u32(0).f32(s.lr).f32(s.beta1).f32(s.beta2).f32(s.eps).f32(s.weightDecay).f32(bc1).f32(bc2);
  batch.dispatch(pipe, params, [b.p, b.g, b.m, b.v, b.stats], grid2d(rt, Math.ceil(b.n / WG)));
}
