// Typed wrapper of shaders/grounding_labels.wgsl: distance-inverse (or Gaussian) soft targets
// over location tokens, written straight into the soft table the loss reads.
// The host does the float64 part (the hard cell, exactly as the box codec quantises, and the
// point's offset from that cell's centre); the GPU does the per-cell work.
import shader from '../../shaders/grounding_labels.wgsl';
import { EdgeTuneError, expectDim } from '../errors.js';
import type { Runtime } from '../gpu/runtime.js';
import { Params, type Batch } from '../gpu/launch.js';
import { lossSchedule, type LossSchedule } from './loss.js';
import { axisScale, expectUnit, locCells, pointCell, type LocCodec } from '../model/box_codec.js';

export type LabelKernel =
  | { kind: 'inverse'; power: number; eps: number; radius: number }
  | { kind: 'gaussian'; sigma: number };

const F32_MAX = 3.4e38;

function num(name: string, v: unknown, ok: (x: number) => boolean, want: string): number {
  if (typeof v !== 'number' || Number.isNaN(v) || !ok(v)) throw new EdgeTuneError('INVALID_ARGUMENT', `${name} must be ${want}, got ${String(v)}`);
  return v;
}

/** Checks a label kernel's parameters (INVALID_ARGUMENT). */
export function checkLabelKernel(kernel: LabelKernel): LabelKernel {
  if (!kernel || typeof kernel !== 'object') throw new EdgeTuneError('INVALID_ARGUMENT', "kernel must be { kind: 'inverse', power, eps, radius } or { kind: 'gaussian', sigma }");
  if (kernel.kind === 'inverse') {
    num('kernel.power', kernel.power, (x) => Number.isFinite(x) && x >= 0 && x <= 64, 'a number in [0, 64]');
    num('kernel.eps', kernel.eps, (x) => Number.isFinite(x) && x > 0, 'a positive number');
    num('kernel.radius', kernel.radius, (x) => x > 0, 'a positive number (Infinity for no cut-off)');
    return kernel;
  }
  if (kernel.kind === 'gaussian') {
    num('kernel.sigma', kernel.sigma, (x) => Number.isFinite(x) && x > 0, 'a positive number');
    return kernel;
  }
  throw new EdgeTuneError('INVALID_ARGUMENT', `unknown label kernel ${String((kernel as { kind?: unknown }).kind)}`);
}

/**
 * Hard cells and anchors (offset from the hard cell's centre, in cell units, count × 2) of
 * points: (x, y) pairs for patch2d, scalars for bins1d, normalised to [0, 1]. `ends[i]` marks a
 * box's bottom-right corner (see pointCell); `cells` overrides the hard cells (e.g. from
 * encodeBox).
 */
export function labelAnchors(
  codec: LocCodec,
  points: ArrayLike<number>,
  opts: { ends?: ArrayLike<boolean | number>; cells?: ArrayLike<number> } = {},
): { count: number; anchors: Float32Array; cells: Int32Array } {
  const n = locCells(codec);
  const dim = codec.kind === 'patch2d' ? 2 : 1;
  if (!points || typeof points.length !== 'number' || points.length % dim !== 0 || points.length === 0) {
    throw new EdgeTuneError('SHAPE_MISMATCH', `points must hold ${dim === 2 ? '(x, y) pairs' : 'scalars'}, got ${points?.length} numbers`);
  }
  const count = points.length / dim;
  if (opts.ends && opts.ends.length !== count) throw new EdgeTuneError('SHAPE_MISMATCH', `ends has ${opts.ends.length} entries for ${count} points`);
  if (opts.cells && opts.cells.length !== count) throw new EdgeTuneError('SHAPE_MISMATCH', `cells has ${opts.cells.length} entries for ${count} points`);
  const { scale, shift } = axisScale(codec);
  const anchors = new Float32Array(count * 2);
  const cells = new Int32Array(count);
  for (let i = 0; i < count; i++) {
    const end = !!opts.ends?.[i];
    if (dim === 2) {
      const x = expectUnit(`points[${2 * i}]`, points[2 * i]!);
      const y = expectUnit(`points[${2 * i + 1}]`, points[2 * i + 1]!);
      const h = opts.cells ? opts.cells[i]! : pointCell(codec, [x, y], end);
      if (!Number.isInteger(h) || h < 0 || h >= n) throw new EdgeTuneError('OUT_OF_RANGE', `cell ${h} is outside [0, ${n})`);
      const G = scale;
      cells[i] = h;
      anchors[2 * i] = x * G - ((h % G) + shift);
      anchors[2 * i + 1] = y * G - (Math.floor(h / G) + shift);
    } else {
      const x = expectUnit(`points[${i}]`, points[i]!);
      const h = opts.cells ? opts.cells[i]! : pointCell(codec, x, end);
      if (!Number.isInteger(h) || h < 0 || h >= n) throw new EdgeTuneError('OUT_OF_RANGE', `cell ${h} is outside [0, ${n})`);
      cells[i] = h;
      anchors[2 * i] = x * scale - (h + shift);
    }
  }
  return { count, anchors, cells };
}

export interface GroundingLabelsArgs {
  codec: LocCodec;
  kernel: LabelKernel;
  /** λ in q' = (1 − λ)·onehot + λ·q (default 1). */
  mix?: number;
  count: number;
  /** count × 2 f32 from labelAnchors. */
  anchors: GPUBuffer;
  /** i32: the hard cells (count), then — with `targets` — the logits row of each point (count). */
  slots: GPUBuffer;
  /** The soft table (rows of `cells` f32); rows rowOffset … rowOffset + count − 1 are written. */
  out: GPUBuffer;
  rowOffset?: number;
  /** rows i32 targets of the loss: row slots[count + i] becomes SOFT_TARGET + rowOffset + i. */
  targets?: GPUBuffer;
  /** 'wide' (a workgroup per point) or 'direct' (an invocation per point); default by adapter. */
  schedule?: LossSchedule;
}

export async function recordGroundingLabels(rt: Runtime, batch: Batch, args: GroundingLabelsArgs): Promise<void> {
  const cells = locCells(args.codec);
  const kernel = checkLabelKernel(args.kernel);
  const count = expectDim('count', args.count);
  const rowOffset = expectDim('rowOffset', args.rowOffset ?? 0, true);
  const mix = num('mix', args.mix ?? 1, (x) => x >= 0 && x <= 1, 'a number in [0, 1]');
  const need = (rowOffset + count) * cells * 4;
  if (args.out.size < need) throw new EdgeTuneError('SHAPE_MISMATCH', `out has ${args.out.size} bytes but rows up to ${rowOffset + count} of ${cells} cells need ${need}`);
  if (args.anchors.size < count * 8) throw new EdgeTuneError('SHAPE_MISMATCH', `anchors has ${args.anchors.size} bytes, needs ${count * 8}`);
  if (args.slots.size < count * (args.targets ? 8 : 4)) throw new EdgeTuneError('SHAPE_MISMATCH', `slots has ${args.slots.size} bytes, needs ${count * (args.targets ? 8 : 4)}`);
  const direct = lossSchedule(rt, args.schedule) === 'direct';
  const pipeline = await rt.pipelines.get(shader, direct ? 'grounding_labels_direct' : 'grounding_labels', {
    PATCH2D: args.codec.kind === 'patch2d',
    GAUSSIAN: kernel.kind === 'gaussian',
    WRITE_TARGETS: !!args.targets,
  });
  const inv = kernel.kind === 'inverse';
  const params = new Params()
    .u32(count).u32(cells).u32(args.codec.kind === 'patch2d' ? args.codec.grid : cells).u32(rowOffset)
    .f32(inv ? kernel.power : 0).f32(inv ? kernel.eps : 0).f32(inv ? Math.min(kernel.radius, F32_MAX) : 0)
    .f32(inv ? 0 : 1 / (2 * kernel.sigma * kernel.sigma))
    .f32(mix);
  const n = direct ? Math.ceil(count / 16) : count;
  const groups: [number, number] = n <= 65535 ? [n, 1] : [65535, Math.ceil(n / 65535)];
  batch.dispatch(pipeline, params, [args.anchors, args.slots, args.out, args.targets ?? rt.dummy], groups);
}
