// Typed wrapper of shaders/matmul.wgsl: records one batched matmul into a Batch.
import shader from '../../shaders/matmul.wgsl';
import { EdgeTuneError } from '../errors.js';
import type { Runtime } from '../gpu/runtime.js';
import { Params, type Batch } from '../gpu/launch.js';

export type MatmulSchedule = 'tiled' | 'direct' | 'auto';

export interface MatmulArgs {
  /** op(A) is m×k: A is m×k, or k×m with transA. */
  a: GPUBuffer;
  /** op(B) is k×n: B is k×n, or n×k with transB. */
  b: GPUBuffer;
  /** Output m×n (per batch). */
  c: GPUBuffer;
  bias?: GPUBuffer;
  m: number;
  n: number;
  k: number;
  transA?: boolean;
  transB?: boolean;
  /** Number of independent products (workgroup z). Default 1. */
  batch?: number;
  /** Element strides between batch entries (default: dense; 0 broadcasts an operand). */
  strideA?: number;
  strideB?: number;
  strideC?: number;
  /** Element offsets into the buffers. */
  offsetA?: number;
  offsetB?: number;
  offsetC?: number;
  /** C = alpha·op(A)op(B) (+bias) (+C if accumulate). */
  alpha?: number;
  accumulate?: boolean;
  schedule?: MatmulSchedule;
}

/** Which schedule suits this adapter: barrier-free for CPU emulation, workgroup tiles for GPUs. */
export function pickSchedule(rt: Runtime, s: MatmulSchedule | undefined): 'tiled' | 'direct' {
  if (s && s !== 'auto') return s;
  return rt.adapter.software ? 'direct' : 'tiled';
}

export async function recordMatmul(rt: Runtime, batch: Batch, args: MatmulArgs): Promise<void> {
  const { m, n, k } = args;
  const nb = args.batch ?? 1;
  const transA = !!args.transA;
  const transB = !!args.transB;
  const strideA = args.strideA ?? m * k;
  const strideB = args.strideB ?? k * n;
  const strideC = args.strideC ?? m * n;
  const offA = args.offsetA ?? 0;
  const offB = args.offsetB ?? 0;
  const offC = args.offsetC ?? 0;
  const contA = transA ? m : k;
  const contB = transB ? k : n;
  const aligned = (...xs: number[]) => xs.every((x) => x % 4 === 0);
  const defines = {
    TRANS_A: transA,
    TRANS_B: transB,
    VEC_A: aligned(contA, strideA, offA),
    VEC_B: aligned(contB, strideB, offB),
    HAS_BIAS: !!args.bias,
    ACCUM: !!args.accumulate,
  };
  const schedule = pickSchedule(rt, args.schedule);
  if (nb > rt.limits.maxComputeWorkgroupsPerDimension) {
    throw new EdgeTuneError('TOO_LARGE', `matmul batch of ${nb} exceeds ${rt.limits.maxComputeWorkgroupsPerDimension}; split it`);
  }
  const buffers = [args.a, args.b, args.c, args.bias ?? rt.dummy];
  const params = (fastM: number, fastN: number) => new Params()
    .u32(m).u32(n).u32(k).u32(0)
    .u32(fastM).u32(fastN).u32(0).u32(0)
    .u32(strideA).u32(strideB).u32(strideC).u32(0)
    .u32(offA).u32(offB).u32(offC).f32(args.alpha ?? 1);
  if (schedule === 'tiled') {
    const pipeline = await rt.pipelines.get(shader, 'matmul_tiled', defines);
    batch.dispatch(pipeline, params(0, 0), buffers, [Math.ceil(n / 64), Math.ceil(m / 64), nb]);
    return;
  }
  // direct: unchecked 16×16 blocks over the aligned interior, checked 4×4 blocks elsewhere.
  const fast = defines.VEC_A && defines.VEC_B;
  const fastM = fast ? m - (m % 16) : 0;
  const fastN = fast ? n - (n % 16) : 0;
  if (fastM > 0 && fastN > 0) {
    const pipeline = await rt.pipelines.get(shader, 'matmul_direct', defines);
    batch.dispatch(pipeline, params(fastM, fastN), buffers, [Math.ceil(fastN / 64), Math.ceil(fastM / 64), nb]);
  }
  if (fastM < m || fastN < n) {
    const pipeline = await rt.pipelines.get(shader, 'matmul_direct_edge', defines);
    batch.dispatch(pipeline, params(fastM, fastN), buffers, [Math.ceil(n / 32), Math.ceil(m / 32), nb]);
  }
}
