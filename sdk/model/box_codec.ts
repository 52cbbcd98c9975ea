// Box codecs: a box normalised to [0,1] ↔ location cells ↔ location token ids (DESIGN §1.5).
//   patch2d (Kosmos-2): a G×G grid, cell k = row·G + col; a box is 2 cells, the patch holding
//     the top-left corner (floor) and the one holding the bottom-right corner (ceil(x·G − 1),
//     so a corner on a border belongs to the cell that ends there). Decoding follows
//     transformers' patch_index_to_coordinate: patch centres, or the patches' outer edges when
//     both corners share a row or a column (else the box would be empty).
//   bins1d: N bins per coordinate, a box is 4 cells in the codec's order.
//     quantize 'floor' (DESIGN §1.5; Florence-2): cell = min(floor(c·N), N − 1), decoded at the
//       bin centre (cell + 0.5)/N.
//     quantize 'round' (PaliGemma, big_vision): cell = round(c·(N − 1)) half to even as
//       tf.round does, decoded at cell/(N − 1).
//     order 'yxyx' (PaliGemma: y0, x0, y1, x1, the default) or 'xyxy' (Florence-2).
// A token id is locOffset + cell.
import { EdgeTuneError } from '../errors.js';

export type LocCodec =
  | { kind: 'patch2d'; grid: number }
  | { kind: 'bins1d'; bins: number; quantize?: 'floor' | 'round'; order?: 'yxyx' | 'xyxy' };

/** A box in normalised image coordinates: (x0, y0) top-left, (x1, y1) bottom-right. */
export interface Box {
  x0: number;
  y0: number;
  x1: number;
  y1: number;
}

/** Kosmos-2: 32×32 patch tokens. */
export const KOSMOS2_CODEC: LocCodec = { kind: 'patch2d', grid: 32 };
/** PaliGemma: <loc0000>…<loc1023>, y0 x0 y1 x1, round(c·1023). */
export const PALIGEMMA_CODEC: LocCodec = { kind: 'bins1d', bins: 1024, quantize: 'round', order: 'yxyx' };
/** Florence-2: 1000 bins, x0 y0 x1 y1, floor(c·1000). */
export const FLORENCE2_CODEC: LocCodec = { kind: 'bins1d', bins: 1000, quantize: 'floor', order: 'xyxy' };

/** Checks a codec and returns its number of location cells (G² or N). */
export function locCells(codec: LocCodec): number {
  if (!codec || typeof codec !== 'object') throw new EdgeTuneError('INVALID_ARGUMENT', 'codec must be { kind: "patch2d", grid } or { kind: "bins1d", bins }');
  if (codec.kind === 'patch2d') {
    if (!Number.isInteger(codec.grid) || codec.grid < 1 || codec.grid > 4096) {
      throw new EdgeTuneError('INVALID_ARGUMENT', `patch2d grid must be an integer in [1, 4096], got ${String(codec.grid)}`);
    }
    return codec.grid * codec.grid;
  }
  if (codec.kind === 'bins1d') {
    if (!Number.isInteger(codec.bins) || codec.bins < 2 || codec.bins > 1 << 24) {
      throw new EdgeTuneError('INVALID_ARGUMENT', `bins1d bins must be an integer in [2, 2^24], got ${String(codec.bins)}`);
    }
    if (codec.quantize !== undefined && codec.quantize !== 'floor' && codec.quantize !== 'round') {
      throw new EdgeTuneError('INVALID_ARGUMENT', `bins1d quantize must be 'floor' or 'round', got ${String(codec.quantize)}`);
    }
    if (codec.order !== undefined && codec.order !== 'yxyx' && codec.order !== 'xyxy') {
      throw new EdgeTuneError('INVALID_ARGUMENT', `bins1d order must be 'yxyx' or 'xyxy', got ${String(codec.order)}`);
    }
    return codec.bins;
  }
  throw new EdgeTuneError('INVALID_ARGUMENT', `unknown codec kind ${String((codec as { kind?: unknown }).kind)}`);
}

/** Throws NON_FINITE / OUT_OF_RANGE unless `v` is a number in [0, 1]. */
export function expectUnit(name: string, v: number): number {
  if (typeof v !== 'number' || !Number.isFinite(v)) throw new EdgeTuneError('NON_FINITE', `${name} is ${String(v)}; coordinates must be finite numbers in [0, 1]`);
  if (v < 0 || v > 1) throw new EdgeTuneError('OUT_OF_RANGE', `${name} = ${v} lies outside [0, 1]; coordinates are normalised by the image size`);
  return v;
}

/** Rounds half to even (tf.round, numpy.round, WGSL round). */
export function roundHalfEven(v: number): number {
  const f = Math.floor(v);
  const d = v - f;
  if (d > 0.5) return f + 1;
  if (d < 0.5) return f;
  return f % 2 === 0 ? f : f + 1;
}

/**
 * The cell of one coordinate along one axis (n cells), as the codec quantises it.
 * `end`: the coordinate is a box's bottom-right corner (matters for patch2d on a border).
 */
function axisCell(codec: LocCodec, c: number, end: boolean): number {
  if (codec.kind === 'patch2d') {
    const G = codec.grid;
    const k = end ? Math.ceil(c * G - 1) : Math.floor(c * G);
    return Math.min(Math.max(k, 0), G - 1);
  }
  const N = codec.bins;
  if (codec.quantize === 'round') return Math.min(Math.max(roundHalfEven(c * (N - 1)), 0), N - 1);
  return Math.min(Math.max(Math.floor(c * N), 0), N - 1);
}

/** The position of a coordinate in cell units and the centre of cell k, per codec. */
export function axisScale(codec: LocCodec): { scale: number; shift: number } {
  if (codec.kind === 'bins1d' && codec.quantize === 'round') return { scale: codec.bins - 1, shift: 0 };
  return { scale: codec.kind === 'patch2d' ? codec.grid : codec.bins, shift: 0.5 };
}

/**
 * The hard cell of a point: (x, y) for patch2d, a scalar for bins1d. `end` marks a box's
 * bottom-right corner (Kosmos-2 quantises it with ceil(c·G − 1)).
 */
export function pointCell(codec: LocCodec, point: number | readonly [number, number], end = false): number {
  locCells(codec);
  if (codec.kind === 'patch2d') {
    if (typeof point === 'number') throw new EdgeTuneError('INVALID_ARGUMENT', 'a patch2d point is an (x, y) pair');
    const x = expectUnit('x', point[0]);
    const y = expectUnit('y', point[1]);
    return axisCell(codec, y, end) * codec.grid + axisCell(codec, x, end);
  }
  if (typeof point !== 'number') throw new EdgeTuneError('INVALID_ARGUMENT', 'a bins1d point is a scalar coordinate');
  return axisCell(codec, expectUnit('coordinate', point), end);
}

function checkBox(box: Box): Box {
  if (!box || typeof box !== 'object') throw new EdgeTuneError('INVALID_ARGUMENT', 'a box is { x0, y0, x1, y1 }');
  const { x0, y0, x1, y1 } = box;
  expectUnit('x0', x0);
  expectUnit('y0', y0);
  expectUnit('x1', x1);
  expectUnit('y1', y1);
  if (x1 < x0 || y1 < y0) throw new EdgeTuneError('INVALID_ARGUMENT', `box (${x0}, ${y0}, ${x1}, ${y1}) has x1 < x0 or y1 < y0`);
  return box;
}

/**
 * The location cells of a box: patch2d [top-left, bottom-right]; bins1d 4 cells in the
 * codec's order (PaliGemma's y0, x0, y1, x1 by default).
 */
export function encodeBox(box: Box, codec: LocCodec): number[] {
  locCells(codec);
  const { x0, y0, x1, y1 } = checkBox(box);
  if (codec.kind === 'patch2d') {
    const G = codec.grid;
    const c0 = axisCell(codec, x0, false), r0 = axisCell(codec, y0, false);
    // A zero-width box on a border would put the end cell before the start cell.
    const c1 = Math.max(axisCell(codec, x1, true), c0), r1 = Math.max(axisCell(codec, y1, true), r0);
    return [r0 * G + c0, r1 * G + c1];
  }
  const [a, b, c, d] = [axisCell(codec, x0, false), axisCell(codec, y0, false), axisCell(codec, x1, true), axisCell(codec, y1, true)];
  return codec.order === 'xyxy' ? [a, b, c, d] : [b, a, d, c];
}

/**
 * The box that cells decode to (inverse of encodeBox up to the quantisation). Corners given in
 * the wrong order (a generated bottom-right cell left of or above the top-left one) decode to
 * the box they span, so x0 ≤ x1 and y0 ≤ y1 always hold.
 */
export function decodeBox(cells: ArrayLike<number>, codec: LocCodec): Box {
  const n = locCells(codec);
  const want = codec.kind === 'patch2d' ? 2 : 4;
  if (!cells || cells.length !== want) throw new EdgeTuneError('SHAPE_MISMATCH', `a ${codec.kind} box is ${want} location cells, got ${cells?.length}`);
  for (let i = 0; i < want; i++) {
    const k = cells[i]!;
    if (!Number.isInteger(k) || k < 0 || k >= n) throw new EdgeTuneError('OUT_OF_RANGE', `location cell ${k} is outside [0, ${n})`);
  }
  if (codec.kind === 'patch2d') {
    const G = codec.grid;
    const cs = 1 / G;
    const [a, b] = [cells[0]!, cells[1]!];
    const ux = Math.min(a % G, b % G), lx = Math.max(a % G, b % G);
    const uy = Math.min(Math.floor(a / G), Math.floor(b / G)), ly = Math.max(Math.floor(a / G), Math.floor(b / G));
    if (ux === lx || uy === ly) {
      return { x0: ux * cs, y0: uy * cs, x1: (lx + 1) * cs, y1: (ly + 1) * cs };
    }
    return { x0: (ux + 0.5) * cs, y0: (uy + 0.5) * cs, x1: (lx + 0.5) * cs, y1: (ly + 0.5) * cs };
  }
  const N = codec.bins;
  const at = (k: number) => (codec.quantize === 'round' ? k / (N - 1) : (k + 0.5) / N);
  const [a, b, c, d] = [at(cells[0]!), at(cells[1]!), at(cells[2]!), at(cells[3]!)];
  const [x0, y0, x1, y1] = codec.order === 'xyxy' ? [a, b, c, d] : [b, a, d, c];
  return { x0: Math.min(x0, x1), y0: Math.min(y0, y1), x1: Math.max(x0, x1), y1: Math.max(y0, y1) };
}

function checkOffset(locOffset: number): number {
  if (!Number.isInteger(locOffset) || locOffset < 0) throw new EdgeTuneError('INVALID_ARGUMENT', `locOffset must be a non-negative integer, got ${String(locOffset)}`);
  return locOffset;
}

/** Token ids of a box: locOffset + each cell of encodeBox. */
export function boxToTokenIds(box: Box, codec: LocCodec, locOffset: number): number[] {
  checkOffset(locOffset);
  return encodeBox(box, codec).map((k) => locOffset + k);
}

/** The box of location token ids (OUT_OF_RANGE for an id that is not a location token). */
export function tokenIdsToBox(ids: ArrayLike<number>, codec: LocCodec, locOffset: number): Box {
  checkOffset(locOffset);
  return decodeBox(Array.from(ids, (id) => id - locOffset), codec);
}

/** True when token id is one of the codec's location tokens. */
export function isLocToken(id: number, codec: LocCodec, locOffset: number): boolean {
  return Number.isInteger(id) && id >= locOffset && id < locOffset + locCells(codec);
}

/**
 * What groundingLabels needs for the location tokens of a box, in token order: the points
 * ((x, y) pairs for patch2d, scalars for bins1d), which of them are bottom-right corners, and
 * their hard cells (identical to encodeBox).
 */
export function boxLabelPoints(box: Box, codec: LocCodec): { points: number[]; ends: boolean[]; cells: number[] } {
  const cells = encodeBox(box, codec);
  const { x0, y0, x1, y1 } = box;
  if (codec.kind === 'patch2d') return { points: [x0, y0, x1, y1], ends: [false, true], cells };
  const points = codec.order === 'xyxy' ? [x0, y0, x1, y1] : [y0, x0, y1, x1];
  return { points, ends: [false, false, true, true], cells };
}
