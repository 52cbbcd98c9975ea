// Typed wrapper of shaders/matmul.wgsl: records one batched matmul into a Batch.
import shader from '../../shaders/matmul.wgsl';
import { EdgeTuneError } from '../errors.js';
import type { Runtime } from '../gpu/runtime.js';
import { Params, type Batch } from '../gpu/launch.js';
import { grid2d } from './grid.js';

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

/**
 * Whether the direct schedule's lanes (4 consecutive threads along the grid's x, one SIMD group
 * on an emulated adapter) should run along M: when more of them would have a block to compute
 * there than along N. `bm`, `bn`: thread blocks along M and N.
 */
function lanesAlongM(bm: number, bn: number): boolean {
  const busy = (blocks: number) => blocks / (4 * Math.ceil(blocks / 4));
  return busy(bm) > busy(bn);
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
  const params = (d?: DirectSplit) => new Params()
    .u32(m).u32(n).u32(k).u32(0)
    .u32(d?.fastM ?? 0).u32(d?.fastN ?? 0).u32(d?.tilesIn ?? 0).u32(d?.tilesInN ?? 1)
    .u32(strideA).u32(strideB).u32(strideC).u32(0)
    .u32(offA).u32(offB).u32(offC).f32(args.alpha ?? 1)
    .u32(d?.tilesBottom ?? 0).u32(d?.tilesBottomN ?? 1).u32(d?.lanes ?? 0).u32(0);
  if (schedule === 'tiled') {
    const pipeline = await rt.pipelines.get(shader, 'matmul_tiled', defines);
    batch.dispatch(pipeline, params(), buffers, [Math.ceil(n / 64), Math.ceil(m / 64), nb]);
    return;
  }
  const d = directSplit(m, n, defines.VEC_A && defines.VEC_B);
  const pipeline = await rt.pipelines.get(shader, 'matmul_direct', defines);
  batch.dispatch(pipeline, params(d), buffers, [...grid2d(rt, d.workgroups), nb]);
}

/** How matmul_direct splits C: the interior, the bottom rows and the right columns (see the shader). */
interface DirectSplit {
  fastM: number;
  fastN: number;
  tilesIn: number;
  tilesInN: number;
  tilesBottom: number;
  tilesBottomN: number;
  /** Bit 0, 1, 2: the interior's, the bottom's, the right's SIMD lanes run along M (lanesAlongM). */
  lanes: number;
  workgroups: number;
}

/** The direct schedule's split of an m×n product: unchecked 16×16 blocks over the aligned interior (`fast`), checked 4×4 blocks elsewhere. */
export function directSplit(m: number, n: number, fast: boolean): DirectSplit {
  let fastM = fast ? m - (m % 16) : 0;
  let fastN = fast ? n - (n % 16) : 0;
  if (fastM === 0 || fastN === 0) fastM = fastN = 0;
  const tilesIn = Math.ceil(fastM / 64) * Math.ceil(fastN / 64);
  const tilesInN = Math.max(1, Math.ceil(fastN / 64));
  const rowsB = m - fastM;
  const tilesBottomN = Math.ceil(n / 16);
  const tilesBottom = Math.ceil(rowsB / 16) * tilesBottomN;
  const tilesRight = fastN < n ? fastM / 16 : 0;
  const lanes = (tilesIn > 0 && lanesAlongM(fastM / 16, fastN / 16) ? 1 : 0)
    | (tilesBottom > 0 && lanesAlongM(Math.ceil(rowsB / 4), Math.ceil(n / 4)) ? 2 : 0)
    | (tilesRight > 0 && lanesAlongM(fastM / 4, Math.ceil((n - fastN) / 4)) ? 4 : 0);
  return { fastM, fastN, tilesIn, tilesInN, tilesBottom, tilesBottomN, lanes, workgroups: tilesIn + tilesBottom + tilesRight };
}
