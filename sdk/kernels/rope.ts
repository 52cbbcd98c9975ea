// Typed wrapper of shaders/rope.wgsl: rotary position embeddings (Llama / HF rotate_half) on
// q or k laid out (rows, heads·headDim), at per-row positions; the backward is the inverse
// rotation. The cos/sin table is made here, in float64.
import shader from '../../shaders/rope.wgsl';
import { EdgeTuneError, expectDim } from '../errors.js';
import type { Runtime } from '../gpu/runtime.js';
import { Params, type Batch } from '../gpu/launch.js';
import { aligned4, expectFloats, grid2d } from './grid.js';

const WG = 64;

/**
 * The (2, maxPositions, headDim/2) table: cos(p·θ_i) then sin(p·θ_i), θ_i = base^(−2i/headDim),
 * computed in float64 and rounded once to float32.
 */
export function ropeTable(headDim: number, maxPositions: number, base = 10000): Float32Array {
  expectDim('headDim', headDim);
  expectDim('maxPositions', maxPositions);
  if (headDim % 2 !== 0) throw new EdgeTuneError('INVALID_ARGUMENT', `RoPE needs an even headDim, got ${headDim}`);
  if (!(base > 0 && Number.isFinite(base))) throw new EdgeTuneError('INVALID_ARGUMENT', `RoPE base must be positive and finite, got ${base}`);
  const half = headDim / 2;
  const out = new Float32Array(2 * maxPositions * half);
  for (let i = 0; i < half; i++) {
    const theta = Math.pow(base, (-2 * i) / headDim);
    for (let q = 0; q < maxPositions; q++) {
      out[q * half + i] = Math.cos(q * theta);
      out[(maxPositions + q) * half + i] = Math.sin(q * theta);
    }
  }
  return out;
}

/** Throws OUT_OF_RANGE naming the first position outside [0, maxPositions). */
export function checkPositions(pos: Int32Array, maxPositions: number): void {
  for (let i = 0; i < pos.length; i++) {
    const v = pos[i]!;
    if (v < 0 || v >= maxPositions) throw new EdgeTuneError('OUT_OF_RANGE', `positions[${i}] = ${v} is outside [0, ${maxPositions}) (the RoPE table's maxPositions)`);
  }
}

export interface RopeArgs {
  rows: number;
  heads: number;
  headDim: number;
  maxPositions: number;
  /** (rows) int32 positions. */
  positions: GPUBuffer;
  /** ropeTable(headDim, maxPositions, base). */
  table: GPUBuffer;
  /** Source (rows, ·): omitted for an in-place rotation of `y`. */
  x?: GPUBuffer;
  y: GPUBuffer;
  /** Row strides (default heads·headDim) and element offsets, e.g. q inside a fused qkv row. */
  strideX?: number;
  offX?: number;
  strideY?: number;
  offY?: number;
  /** The backward: rotate by −θ. */
  inverse?: boolean;
}

/** Records y = RoPE(x) (or its inverse), out of place or in place. */
export async function recordRope(rt: Runtime, batch: Batch, a: RopeArgs): Promise<void> {
  const { rows, heads, headDim: H, maxPositions } = a;
  if (H % 2 !== 0) throw new EdgeTuneError('INVALID_ARGUMENT', `RoPE needs an even headDim, got ${H}`);
  if (rows === 0) return;
  const width = heads * H;
  const strideX = a.strideX ?? width, strideY = a.strideY ?? width;
  const offX = a.offX ?? 0, offY = a.offY ?? 0;
  if (strideX < width || strideY < width) throw new EdgeTuneError('INVALID_ARGUMENT', `row strides must be at least heads·headDim = ${width}`);
  expectFloats('rope positions', a.positions, rows);
  expectFloats('rope table', a.table, maxPositions * H);
  expectFloats('rope y', a.y, offY + (rows - 1) * strideY + width);
  if (a.x) expectFloats('rope x', a.x, offX + (rows - 1) * strideX + width);
  const half = H / 2;
  const defines = { VEC: aligned4(half, strideY, offY, ...(a.x ? [strideX, offX] : [])) };
  const pipe = await rt.pipelines.get(shader, a.x ? 'rope' : 'rope_inplace', defines);
  const params = new Params()
    .u32(rows).u32(heads).u32(H).u32(maxPositions)
    .u32(strideX).u32(offX).u32(strideY).u32(offY)
    .f32(a.inverse ? -1 : 1).u32(0).u32(0).u32(0);
  const threads = rows * heads * Math.ceil(half / 4);
  batch.dispatch(pipe, params, [a.positions, a.table, a.x, a.y], grid2d(rt, Math.ceil(threads / WG)));
}
