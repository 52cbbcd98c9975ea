// Typed wrappers of shaders/conv_stem.wgsl: the 3×3 convolution's columns (and their gradient
// back to the input rows) and 2×2 max pooling, forward and backward, for the hybrid ViT's stem.
import shader from '../../shaders/conv_stem.wgsl';
import { EdgeTuneError, expectDim } from '../errors.js';
import type { Runtime } from '../gpu/runtime.js';
import { Params, type Batch } from '../gpu/launch.js';
import { expectFloats, grid2d } from './grid.js';

const WG = 64;

export interface MapDims {
  batch: number;
  channels: number;
  height: number;
  width: number;
}

/** The stage input's layout: 'nchw' (the pixels) or 'rows' (B·H·W, C). */
export type MapLayout = 'nchw' | 'rows';

function check(d: MapDims): number {
  expectDim('batch', d.batch, true);
  expectDim('channels', d.channels);
  expectDim('height', d.height);
  expectDim('width', d.width);
  return d.batch * d.channels * d.height * d.width;
}

async function launch(rt: Runtime, batch: Batch, entry: string, d: MapDims, layout: MapLayout, threads: number, buffers: GPUBuffer[]): Promise<void> {
  if (threads === 0) return;
  const pipe = await rt.pipelines.get(shader, entry);
  const params = new Params().u32(d.batch).u32(d.channels).u32(d.height).u32(d.width).u32(layout === 'nchw' ? 0 : 1).u32(0).u32(0).u32(0);
  batch.dispatch(pipe, params, buffers, grid2d(rt, Math.ceil(threads / WG)));
}

/** cols (B·H·W, 9·C) of a 3×3, pad-1 convolution over x (layout: NCHW pixels or rows). */
export function recordConvCols(rt: Runtime, batch: Batch, d: MapDims, layout: MapLayout, x: GPUBuffer, cols: GPUBuffer): Promise<void> {
  const n = check(d);
  expectFloats('conv input', x, n);
  expectFloats('conv columns', cols, 9 * n);
  return launch(rt, batch, 'cols3x3', d, layout, 9 * n, [x, cols]);
}

/** dx (B·H·W, C) = the columns' gradient summed back onto the input rows (rows layout only). */
export function recordConvColsBackward(rt: Runtime, batch: Batch, d: MapDims, dcols: GPUBuffer, dx: GPUBuffer): Promise<void> {
  const n = check(d);
  expectFloats('conv column gradient', dcols, 9 * n);
  expectFloats('conv input gradient', dx, n);
  return launch(rt, batch, 'cols3x3_backward', d, 'rows', n, [dcols, dx]);
}

function pooled(d: MapDims): number {
  const n = check(d);
  if (d.height % 2 !== 0 || d.width % 2 !== 0) throw new EdgeTuneError('SHAPE_MISMATCH', `2×2 max pooling needs an even map, got ${d.height}×${d.width}`);
  return n / 4;
}

/** y (B·(H/2)·(W/2), C) = the maximum of each 2×2 window of a (B·H·W, C). */
export function recordMaxPool2(rt: Runtime, batch: Batch, d: MapDims, a: GPUBuffer, y: GPUBuffer): Promise<void> {
  const m = pooled(d);
  expectFloats('max-pool input', a, 4 * m);
  expectFloats('max-pool output', y, m);
  return launch(rt, batch, 'maxpool2_forward', d, 'rows', m, [a, y]);
}

/** da (B·H·W, C): dy at each window's first maximum of a, 0 elsewhere (written, not accumulated). */
export function recordMaxPool2Backward(rt: Runtime, batch: Batch, d: MapDims, a: GPUBuffer, dy: GPUBuffer, da: GPUBuffer): Promise<void> {
  const m = pooled(d);
  expectFloats('max-pool input', a, 4 * m);
  expectFloats('max-pool output gradient', dy, m);
  expectFloats('max-pool input gradient', da, 4 * m);
  return launch(rt, batch, 'maxpool2_backward', d, 'rows', 4 * m, [dy, da, a]);
}
