// ops.matmul: host-array wrapper of shaders/matmul.wgsl.
import { EdgeTuneError, expectDim } from '../errors.js';
import type { Runtime } from '../gpu/runtime.js';
import { recordMatmul, type MatmulSchedule } from '../kernels/matmul.js';
import { expectF32, withBuffers } from './host.js';

export interface MatmulOptions {
  m: number;
  k: number;
  n: number;
  /** `a` is k×m (per batch) instead of m×k. */
  transA?: boolean;
  /** `b` is n×k (per batch) instead of k×n. */
  transB?: boolean;
  /** Added to every row of the result (length n). */
  bias?: Float32Array;
  /** Number of stacked products; a, b and the result hold `batch` matrices each. */
  batch?: number;
  /** Force a schedule (default: the adapter's best). */
  schedule?: MatmulSchedule;
}

/** op(a)·op(b) (+bias), row-major, in float32 on the GPU. */
export async function matmul(rt: Runtime, a: Float32Array, b: Float32Array, opts: MatmulOptions): Promise<Float32Array> {
  if (!opts || typeof opts !== 'object') throw new EdgeTuneError('INVALID_ARGUMENT', 'ops.matmul needs { m, k, n }');
  const m = expectDim('m', opts.m);
  const k = expectDim('k', opts.k);
  const n = expectDim('n', opts.n);
  const nb = expectDim('batch', opts.batch ?? 1);
  const t = nb > 1 ? `${nb}×` : '';
  expectF32('a', a, nb * m * k, opts.transA ? `${t}k×m = ${t}${k}×${m}` : `${t}m×k = ${t}${m}×${k}`);
  expectF32('b', b, nb * k * n, opts.transB ? `${t}n×k = ${t}${n}×${k}` : `${t}k×n = ${t}${k}×${n}`);
  if (opts.bias !== undefined) expectF32('bias', opts.bias, n, `n = ${n}`);
  const outBytes = nb * m * n * 4;
  if (outBytes > rt.limits.maxStorageBufferBindingSize) {
    throw new EdgeTuneError('TOO_LARGE', `the ${nb}×${m}×${n} result needs ${outBytes} bytes, over this device's ${rt.limits.maxStorageBufferBindingSize}-byte binding limit; split the product`);
  }
  const inputs = [a, b, ...(opts.bias ? [opts.bias] : [])];
  return withBuffers(rt, inputs, async ([ab, bb, biasb]) => {
    const c = rt.pool.acquire(outBytes, 'matmul.c');
    try {
      const batch = rt.batch('ops.matmul');
      await recordMatmul(rt, batch, {
        a: ab!, b: bb!, c, bias: biasb, m, n, k, batch: nb,
        transA: opts.transA, transB: opts.transB, schedule: opts.schedule,
      });
      await batch.submit();
      return await rt.readF32(c, nb * m * n);
    } finally {
      rt.pool.release(c);
    }
  });
}
