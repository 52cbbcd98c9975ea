// Typed wrappers of shaders/conv_stem.wgsl: the 3×3 convolution's columns at stride 1 or 2, with
// or without coordinate channels (and their gradient back to the input rows) and 2×2 max pooling,
// forward and backward, for the hybrid ViT's stem.
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

/** Side of a 3×3 convolution's output at `stride` over a side of n: ⌊(n − 1)/stride⌋ + 1, whatever the leading pad (the kernel pads after the map as the last window needs). */
function convOutSide(n: number, stride: number): number {
  return Math.floor((n - 1) / stride) + 1;
}

/**
 * A 3×3 convolution's stride (1 or 2) and leading padding (1, or 0 at stride 2: zeros after the map
 * only); with `coords` the input gets two coordinate channels after its C (CoordConv: each pixel's
 * column, then its row, as (2·i + 1)/n − 1), so the columns are 9·(C + 2) wide.
 */
export interface ConvStep {
  stride: 1 | 2;
  pad: 0 | 1;
  coords?: boolean;
}

/** Channels a convolution at `step` reads per input pixel: C, plus 2 with coordinates. */
export function convInChannels(channels: number, step: ConvStep): number {
  return channels + (step.coords ? 2 : 0);
}

const SAME: ConvStep = { stride: 1, pad: 1 };

/** cols3x3_backward's invocations per pixel: one per group of 4 channels. */
function channelGroups(channels: number): number {
  return Math.ceil(channels / 4);
}

/**
 * The row pitch that lets a matmul read K columns as vec4s: K rounded up to a multiple of 4 (the
 * tiny stem's first stage has 27 columns; a matmul over rows of 27 runs its bounds-checked scalar
 * path, several times slower on CPU-emulated adapters: `npm run bench -- stem`).
 */
export function colsPitch(k: number): number {
  return Math.ceil(k / 4) * 4;
}

function checkStep(c: ConvStep): ConvStep {
  if (c.stride !== 1 && c.stride !== 2) throw new EdgeTuneError('BAD_CONFIG', `the stem's 3×3 convolutions take stride 1 or 2, got ${c.stride}`);
  if (c.pad !== 1 && !(c.pad === 0 && c.stride === 2)) throw new EdgeTuneError('BAD_CONFIG', `the stem's 3×3 convolutions pad 1 before the map (or 0 at stride 2), got pad ${c.pad} at stride ${c.stride}`);
  return c;
}

async function launch(rt: Runtime, batch: Batch, entry: string, d: MapDims, layout: MapLayout, threads: number, buffers: GPUBuffer[], step = SAME, pitch = 0): Promise<void> {
  if (threads === 0) return;
  const pipe = await rt.pipelines.get(shader, entry);
  const params = new Params().u32(d.batch).u32(d.channels).u32(d.height).u32(d.width).u32(layout === 'nchw' ? 0 : 1).u32(step.stride).u32(step.pad).u32(step.coords ? 2 : 0)
    .u32(pitch).u32(0).u32(0).u32(0);
  batch.dispatch(pipe, params, buffers, grid2d(rt, Math.ceil(threads / WG)));
}

/** Output rows B·Ho·Wo of a 3×3 convolution at `stride` over the map d. */
function outRows(d: MapDims, stride: number): number {
  return d.batch * convOutSide(d.height, stride) * convOutSide(d.width, stride);
}

/** The columns' row pitch: `pitch` when given (at least the 9·C' columns), else 9·C'. */
function pitchOf(d: MapDims, step: ConvStep, pitch: number | undefined): number {
  const k = 9 * convInChannels(d.channels, step);
  if (pitch === undefined) return k;
  if (!Number.isInteger(pitch) || pitch < k) throw new EdgeTuneError('INVALID_ARGUMENT', `the columns' row pitch must be an integer of at least 9·C' = ${k}, got ${pitch}`);
  return pitch;
}

/**
 * cols (B·Ho·Wo, pitch) of a 3×3 convolution at `step` (stride 1 or 2, leading pad 1 or 0, C' = C or
 * C + 2 coordinate channels; default stride 1, pad 1, no coordinates) over x (layout: NCHW pixels
 * or rows); d is the input map (B, C, H, W). Each row holds the 9·C' columns, then zeros up to
 * `pitch` (default 9·C': none).
 */
export function recordConvCols(rt: Runtime, batch: Batch, d: MapDims, layout: MapLayout, x: GPUBuffer, cols: GPUBuffer, step = SAME, pitch?: number): Promise<void> {
  const n = check(d);
  checkStep(step);
  const kp = pitchOf(d, step, pitch);
  const rows = outRows(d, step.stride);
  expectFloats('conv input', x, n);
  expectFloats('conv columns', cols, kp * rows);
  return launch(rt, batch, 'cols3x3', d, layout, convInChannels(d.channels, step) * rows, [x, cols], step, kp);
}

/**
 * dx (B·H·W, C) = the columns' gradient (B·Ho·Wo, pitch) summed back onto the input rows (rows
 * layout only); the coordinate channels' columns and the pitch's padding are skipped.
 */
export function recordConvColsBackward(rt: Runtime, batch: Batch, d: MapDims, dcols: GPUBuffer, dx: GPUBuffer, step = SAME, pitch?: number): Promise<void> {
  const n = check(d);
  checkStep(step);
  const kp = pitchOf(d, step, pitch);
  expectFloats('conv column gradient', dcols, kp * outRows(d, step.stride));
  expectFloats('conv input gradient', dx, n);
  return launch(rt, batch, 'cols3x3_backward', d, 'rows', (n / d.channels) * channelGroups(d.channels), [dcols, dx], step, kp);
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
  return launch(rt, batch, 'maxpool2_backward', d, 'rows', m, [dy, da, a]);
}
