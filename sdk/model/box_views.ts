// Boxes from shifted views (ask's `boxViews`). A hybrid ViT's tokens are cells of `patch`
// pixels (16 for the embedded model) after max pools, which keep what fired in a window but not
// where; its location tokens are cells of 4 pixels. So a token cannot say where inside its cell
// an edge lies, and a generated corner is off by about a location cell whichever way the edge
// happens to sit in its token (README: Quality, where the boxes go wrong). When an answer has
// boxes, ask() asks again about K copies of the image moved by offsets spread evenly over one
// token cell, moves each copy's boxes back and averages them: every copy sees each edge at
// another phase of the token grid, and the mean of K such estimates is finer than any one of
// them (dithering). The answer's text, tokens and log-probability stay those of the image as
// given; only its boxes are refined.
//   viewShifts    K → K offsets (dx, dy) in whole pixels, (k + ½)·cell/K − cell/2 on both axes
//   shiftPlanes   (C, H, W) planes moved by (dx, dy), the edge pixels repeated into the gap
//   averageBoxes  the answer's boxes, each the mean of the views' boxes with its label at its place
import { EdgeTuneError } from '../errors.js';
import type { LabeledBox } from '../data/types.js';

/** Views ask() averages boxes over by default (0: the boxes as generated). */
export const DEFAULT_BOX_VIEWS = 4;
/** At most this many views (each is one more vision forward and generation). */
export const MAX_BOX_VIEWS = 16;

/** Checks a `boxViews` option: an integer in [0, MAX_BOX_VIEWS]. */
export function checkBoxViews(views: number): number {
  if (!Number.isInteger(views) || views < 0 || views > MAX_BOX_VIEWS) {
    throw new EdgeTuneError('INVALID_ARGUMENT', `boxViews must be an integer in [0, ${MAX_BOX_VIEWS}] (0: boxes as generated), got ${String(views)}`);
  }
  return views;
}

/**
 * The offsets of K views, in whole pixels: (k + ½)·cell/K − cell/2 for k = 0 … K−1 on both axes
 * (rounded), so that their phases against a token grid of `cell` pixels are spread evenly and
 * their mean is about zero. K = 4, cell 16: −6, −2, 2, 6.
 */
export function viewShifts(views: number, cell: number): [number, number][] {
  if (!Number.isInteger(views) || views < 1) throw new EdgeTuneError('INVALID_ARGUMENT', `viewShifts needs a positive number of views, got ${String(views)}`);
  if (!Number.isInteger(cell) || cell < 1) throw new EdgeTuneError('INVALID_ARGUMENT', `viewShifts needs a token cell of at least one pixel, got ${String(cell)}`);
  return Array.from({ length: views }, (_, k) => {
    const o = Math.round(((k + 0.5) * cell) / views - cell / 2) || 0;
    return [o, o];
  });
}

/**
 * (C, H, W) planes moved by (dx, dy) whole pixels (content moves right and down for positive
 * offsets); the pixels the content leaves take the nearest edge pixel's value.
 */
export function shiftPlanes(px: Float32Array, channels: number, height: number, width: number, dx: number, dy: number): Float32Array {
  if (px.length !== channels * height * width) throw new EdgeTuneError('SHAPE_MISMATCH', `shiftPlanes: ${px.length} values are not ${channels}×${height}×${width} planes`);
  if (!Number.isInteger(dx) || !Number.isInteger(dy)) throw new EdgeTuneError('INVALID_ARGUMENT', `shiftPlanes moves by whole pixels, got (${dx}, ${dy})`);
  const out = new Float32Array(px.length);
  const clamp = (v: number, n: number) => (v < 0 ? 0 : v >= n ? n - 1 : v);
  for (let c = 0; c < channels; c++) {
    const plane = c * height * width;
    for (let y = 0; y < height; y++) {
      const row = plane + clamp(y - dy, height) * width;
      for (let x = 0; x < width; x++) out[plane + y * width + x] = px[row + clamp(x - dx, width)]!;
    }
  }
  return out;
}

/**
 * The answer's boxes (normalised), each replaced by the mean of the views' boxes that have its
 * label at its index (the views' boxes already moved back into the image's frame); a box that
 * no view matches stays as it is. Coordinates are clamped to [0, 1].
 */
export function averageBoxes(base: readonly LabeledBox[], views: readonly (readonly LabeledBox[])[]): LabeledBox[] {
  const unit = (v: number) => Math.min(1, Math.max(0, v));
  return base.map((b, j) => {
    const same = views.map((v) => v[j]).filter((v): v is LabeledBox => v !== undefined && v.label === b.label);
    if (same.length === 0) return { ...b };
    const mean = (k: 'x0' | 'y0' | 'x1' | 'y1') => unit(same.reduce((s, v) => s + v[k], 0) / same.length);
    return { label: b.label, x0: mean('x0'), y0: mean('y0'), x1: mean('x1'), y1: mean('y1') };
  });
}
