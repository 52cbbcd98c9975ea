// ops.loraForward / loraBackward / dualLoraForward / dualLoraBackward: host-array wrappers of
// shaders/lora.wgsl and shaders/dual_lora.wgsl (one batch per call).
// Inputs are checked on the host: inconsistent sizes throw SHAPE_MISMATCH, a NaN or ±Infinity
// anywhere in the inputs throws NON_FINITE (nothing is sent to the GPU).
import { EdgeTuneError, expectDim, expectFinite } from '../errors.js';
import type { Runtime } from '../gpu/runtime.js';
import { checkRank, loraStateLayout, recordLoraBackward, recordLoraForward, recordLoraProject, type LoraDims } from '../kernels/lora.js';
import { dualLoraStateLayout, recordDualLoraBackward, recordDualLoraForward, recordDualLoraProject } from '../kernels/dual_lora.js';
import { expectF32, withBuffers } from './host.js';

export interface LoraOptions extends LoraDims {
  /** x (m, in). */
  x: Float32Array;
  /** Frozen W (in, out). */
  w: Float32Array;
  /** Frozen bias (out). */
  bias?: Float32Array;
  /** A (in, r). */
  a: Float32Array;
  /** B (r, out). */
  b: Float32Array;
  /** s = alpha / r. */
  scale: number;
}

export interface LoraBackwardOptions extends Omit<LoraOptions, 'bias'> {
  /** dL/dy (m, out). */
  dy: Float32Array;
}

export interface DualLoraOptions extends LoraOptions {
  /** T (in, r). */
  t: Float32Array;
  /** LayerNorm γ, β (r). */
  gamma: Float32Array;
  beta: Float32Array;
  /** LayerNorm epsilon, default 1e-5. */
  eps?: number;
}

export interface DualLoraBackwardOptions extends Omit<DualLoraOptions, 'bias'> {
  dy: Float32Array;
}

function checkDims(op: string, o: LoraDims): LoraDims {
  if (!o || typeof o !== 'object') throw new EdgeTuneError('INVALID_ARGUMENT', `ops.${op} needs { m, inFeatures, outFeatures, rank, ... }`);
  const d = {
    m: expectDim('m', o.m),
    inFeatures: expectDim('inFeatures', o.inFeatures),
    outFeatures: expectDim('outFeatures', o.outFeatures),
    rank: expectDim('rank', o.rank),
  };
  checkRank(d.rank);
  return d;
}

function checkScalar(name: string, v: unknown): number {
  if (typeof v !== 'number') throw new EdgeTuneError('INVALID_ARGUMENT', `${name} must be a number, got ${typeof v}`);
  expectFinite(name, [v]);
  return v;
}

/** Checks each named array's length, then that all values are finite. */
function checkArrays(arrays: [string, unknown, number, string][]): Float32Array[] {
  const out = arrays.map(([name, x, len, shape]) => expectF32(name, x, len, shape));
  arrays.forEach(([name], i) => expectFinite(name, out[i]!));
  return out;
}

function checkSize(rt: Runtime, d: LoraDims): void {
  const big = 4 * Math.max(d.m * d.inFeatures, d.m * d.outFeatures, d.inFeatures * d.outFeatures);
  if (big > rt.limits.maxStorageBufferBindingSize) {
    throw new EdgeTuneError('TOO_LARGE', `a ${d.m}×${d.inFeatures}→${d.outFeatures} layer needs ${big}-byte buffers, over this device's ${rt.limits.maxStorageBufferBindingSize}-byte binding limit; split the rows`);
  }
}

const shapes = (d: LoraDims) => ({
  x: `m×in = ${d.m}×${d.inFeatures}`,
  w: `in×out = ${d.inFeatures}×${d.outFeatures}`,
  bias: `out = ${d.outFeatures}`,
  a: `in×r = ${d.inFeatures}×${d.rank}`,
  b: `r×out = ${d.rank}×${d.outFeatures}`,
  r: `r = ${d.rank}`,
  dy: `m×out = ${d.m}×${d.outFeatures}`,
});

/** y = x W + bias + scale · (x A) B  (m × out), in float32 on the GPU. */
export async function loraForward(rt: Runtime, o: LoraOptions): Promise<Float32Array> {
  const d = checkDims('loraForward', o);
  const s = shapes(d);
  const scale = checkScalar('scale', o.scale);
  const arrays: [string, unknown, number, string][] = [
    ['x', o.x, d.m * d.inFeatures, s.x], ['w', o.w, d.inFeatures * d.outFeatures, s.w],
    ['a', o.a, d.inFeatures * d.rank, s.a], ['b', o.b, d.rank * d.outFeatures, s.b],
  ];
  if (o.bias !== undefined) arrays.push(['bias', o.bias, d.outFeatures, s.bias]);
  const inputs = checkArrays(arrays);
  checkSize(rt, d);
  return withBuffers(rt, inputs, async ([x, w, a, b, bias]) => {
    const y = rt.pool.acquire(d.m * d.outFeatures * 4, 'lora.y');
    const state = rt.pool.acquire(loraStateLayout(d, false).floats * 4, 'lora.state');
    try {
      const batch = rt.batch('ops.loraForward');
      await recordLoraForward(rt, batch, { ...d, x: x!, w: w!, bias, a: a!, b: b!, scale, y, state });
      await batch.submit();
      return await rt.readF32(y, d.m * d.outFeatures);
    } finally {
      rt.pool.release(y);
      rt.pool.release(state);
    }
  });
}

/** Gradients of a LoRA layer for dL/dy = dy: dx (m×in), da (in×r), db (r×out). W is frozen. */
export async function loraBackward(rt: Runtime, o: LoraBackwardOptions): Promise<{ dx: Float32Array; da: Float32Array; db: Float32Array }> {
  const d = checkDims('loraBackward', o);
  const s = shapes(d);
  const scale = checkScalar('scale', o.scale);
  const inputs = checkArrays([
    ['x', o.x, d.m * d.inFeatures, s.x], ['w', o.w, d.inFeatures * d.outFeatures, s.w],
    ['a', o.a, d.inFeatures * d.rank, s.a], ['b', o.b, d.rank * d.outFeatures, s.b],
    ['dy', o.dy, d.m * d.outFeatures, s.dy],
  ]);
  checkSize(rt, d);
  return withBuffers(rt, inputs, async ([x, w, a, b, dy]) => {
    const state = rt.pool.acquire(loraStateLayout(d, false).floats * 4, 'lora.state');
    const dx = rt.pool.acquire(d.m * d.inFeatures * 4, 'lora.dx');
    const da = rt.pool.acquire(d.inFeatures * d.rank * 4, 'lora.da');
    const db = rt.pool.acquire(d.rank * d.outFeatures * 4, 'lora.db');
    try {
      const batch = rt.batch('ops.loraBackward');
      batch.clear(da).clear(db);
      const k = { ...d, x: x!, a: a!, scale, state };
      await recordLoraProject(rt, batch, k);
      await recordLoraBackward(rt, batch, { ...k, w: w!, b: b!, dy: dy!, dx, da, db });
      await batch.submit();
      return {
        dx: await rt.readF32(dx, d.m * d.inFeatures),
        da: await rt.readF32(da, d.inFeatures * d.rank),
        db: await rt.readF32(db, d.rank * d.outFeatures),
      };
    } finally {
      for (const buf of [state, dx, da, db]) rt.pool.release(buf);
    }
  });
}

function dualArrays(d: LoraDims, o: DualLoraBackwardOptions | DualLoraOptions, withDy: boolean): [string, unknown, number, string][] {
  const s = shapes(d);
  const arrays: [string, unknown, number, string][] = [
    ['x', o.x, d.m * d.inFeatures, s.x], ['w', o.w, d.inFeatures * d.outFeatures, s.w],
    ['a', o.a, d.inFeatures * d.rank, s.a], ['t', o.t, d.inFeatures * d.rank, s.a],
    ['b', o.b, d.rank * d.outFeatures, s.b],
    ['gamma', o.gamma, d.rank, s.r], ['beta', o.beta, d.rank, s.r],
  ];
  if (withDy) arrays.push(['dy', (o as DualLoraBackwardOptions).dy, d.m * d.outFeatures, s.dy]);
  return arrays;
}

function checkEps(eps: unknown): number {
  if (eps === undefined) return 1e-5;
  if (typeof eps !== 'number' || !(eps > 0) || !Number.isFinite(eps)) {
    throw new EdgeTuneError('INVALID_ARGUMENT', `eps must be a positive finite number, got ${String(eps)}`);
  }
  return eps;
}

/** y = x W + bias + scale · (ReLU(x T) ⊙ LN(x A; γ, β)) B  (m × out), in float32 on the GPU. */
export async function dualLoraForward(rt: Runtime, o: DualLoraOptions): Promise<Float32Array> {
  const d = checkDims('dualLoraForward', o);
  const scale = checkScalar('scale', o.scale);
  const eps = checkEps(o.eps);
  const arrays = dualArrays(d, o, false);
  if (o.bias !== undefined) arrays.push(['bias', o.bias, d.outFeatures, shapes(d).bias]);
  const inputs = checkArrays(arrays);
  checkSize(rt, d);
  return withBuffers(rt, inputs, async ([x, w, a, t, b, gamma, beta, bias]) => {
    const y = rt.pool.acquire(d.m * d.outFeatures * 4, 'dual_lora.y');
    const state = rt.pool.acquire(dualLoraStateLayout(d, false).floats * 4, 'dual_lora.state');
    try {
      const batch = rt.batch('ops.dualLoraForward');
      await recordDualLoraForward(rt, batch, { ...d, x: x!, w: w!, bias, a: a!, t: t!, b: b!, gamma: gamma!, beta: beta!, scale, eps, y, state });
      await batch.submit();
      return await rt.readF32(y, d.m * d.outFeatures);
    } finally {
      rt.pool.release(y);
      rt.pool.release(state);
    }
  });
}

export interface DualLoraGrads {
  dx: Float32Array;
  da: Float32Array;
  dt: Float32Array;
  db: Float32Array;
  dgamma: Float32Array;
  dbeta: Float32Array;
}

/** Gradients of a Dual-LoRA layer for dL/dy = dy (DESIGN §1.3). W is frozen. */
export async function dualLoraBackward(rt: Runtime, o: DualLoraBackwardOptions): Promise<DualLoraGrads> {
  const d = checkDims('dualLoraBackward', o);
  const scale = checkScalar('scale', o.scale);
  const eps = checkEps(o.eps);
  const inputs = checkArrays(dualArrays(d, o, true));
  checkSize(rt, d);
  return withBuffers(rt, inputs, async ([x, w, a, t, b, gamma, beta, dy]) => {
    const { m, inFeatures: k, outFeatures: n, rank: r } = d;
    const state = rt.pool.acquire(dualLoraStateLayout(d, false).floats * 4, 'dual_lora.state');
    const dx = rt.pool.acquire(m * k * 4, 'dual_lora.dx');
    const grads = [k * r, k * r, r * n, r, r].map((len) => rt.pool.acquire(len * 4, 'dual_lora.grad'));
    const [da, dt, db, dgamma, dbeta] = grads as [GPUBuffer, GPUBuffer, GPUBuffer, GPUBuffer, GPUBuffer];
    try {
      const batch = rt.batch('ops.dualLoraBackward');
      for (const g of grads) batch.clear(g);
      const args = { ...d, x: x!, a: a!, t: t!, gamma: gamma!, beta: beta!, scale, eps, state };
      await recordDualLoraProject(rt, batch, args);
      await recordDualLoraBackward(rt, batch, { ...args, w: w!, b: b!, dy: dy!, dx, da, dt, db, dgamma, dbeta });
      await batch.submit();
      return {
        dx: await rt.readF32(dx, m * k),
        da: await rt.readF32(da, k * r),
        dt: await rt.readF32(dt, k * r),
        db: await rt.readF32(db, r * n),
        dgamma: await rt.readF32(dgamma, r),
        dbeta: await rt.readF32(dbeta, r),
      };
    } finally {
      for (const buf of [state, dx, ...grads]) rt.pool.release(buf);
    }
  });
}
