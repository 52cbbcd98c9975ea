// Box codecs (sdk/model/box_codec.ts): Kosmos-2 patch2d, PaliGemma / Florence-2 bins1d.
import { describe, expect, it } from 'vitest';
import {
  FLORENCE2_CODEC, KOSMOS2_CODEC, PALIGEMMA_CODEC, boxLabelPoints, boxToTokenIds, decodeBox, encodeBox,
  isLocToken, locCells, pointCell, tokenIdsToBox, type Box, type LocCodec,
} from '../sdk/index.js';
import { rng } from './helpers/reference.js';
import { expectCode } from './helpers/errors.js';

function randomBoxes(n: number, seed: number): Box[] {
  const r = rng(seed);
  const out: Box[] = [];
  for (let i = 0; i < n; i++) {
    const [a, b, c, d] = [r(), r(), r(), r()];
    out.push({ x0: Math.min(a, b), x1: Math.max(a, b), y0: Math.min(c, d), y1: Math.max(c, d) });
  }
  // Corners at 0, 1 and on cell borders of every codec used below.
  out.push({ x0: 0, y0: 0, x1: 1, y1: 1 }, { x0: 0.25, y0: 0.5, x1: 0.75, y1: 1 }, { x0: 0, y0: 0.125, x1: 0.5, y1: 0.625 });
  return out;
}

const maxCornerError = (a: Box, b: Box) => Math.max(Math.abs(a.x0 - b.x0), Math.abs(a.y0 - b.y0), Math.abs(a.x1 - b.x1), Math.abs(a.y1 - b.y1));

describe('patch2d (Kosmos-2)', () => {
  it('corners in the wrong order decode to the box they span (x0 ≤ x1, y0 ≤ y1)', () => {
    const G = 16, codec = { kind: 'patch2d', grid: G } as const;
    // (row 2, col 9) then (row 7, col 3): the second corner is left of the first.
    expect(decodeBox([2 * G + 9, 7 * G + 3], codec)).toEqual(decodeBox([2 * G + 3, 7 * G + 9], codec));
    // Bottom-right above and left of top-left: the same box as in order.
    expect(decodeBox([7 * G + 9, 2 * G + 3], codec)).toEqual(decodeBox([2 * G + 3, 7 * G + 9], codec));
    // One row: the cells' extent, whichever comes first.
    expect(decodeBox([4 * G + 5, 4 * G + 2], codec)).toEqual({ x0: 2 / G, y0: 4 / G, x1: 6 / G, y1: 5 / G });
    for (const c of [PALIGEMMA_CODEC, FLORENCE2_CODEC]) {
      const b = decodeBox([700, 600, 100, 200], c);
      expect(b.x0).toBeLessThanOrEqual(b.x1);
      expect(b.y0).toBeLessThanOrEqual(b.y1);
      expect(b).toEqual(decodeBox([100, 200, 700, 600], c));
    }
  });
  it("matches transformers' example: <patch_index_0044><patch_index_0863> on the 32×32 grid", () => {
    const box = decodeBox([44, 863], KOSMOS2_CODEC);
    expect(box).toEqual({ x0: 0.390625, y0: 0.046875, x1: 0.984375, y1: 0.828125 });
    expect(encodeBox(box, KOSMOS2_CODEC)).toEqual([44, 863]);
  });

  it('top-left corner by floor, bottom-right by ceil(c·G − 1): a corner on a border stays inside the box', () => {
    const G = 8;
    const codec: LocCodec = { kind: 'patch2d', grid: G };
    // x1 = 0.5 is the right edge of column 3; x0 = 0.25 the left edge of column 2.
    expect(encodeBox({ x0: 0.25, y0: 0.125, x1: 0.5, y1: 0.625 }, codec)).toEqual([1 * G + 2, 4 * G + 3]);
    expect(encodeBox({ x0: 0, y0: 0, x1: 1, y1: 1 }, codec)).toEqual([0, G * G - 1]);
    expect(pointCell(codec, [0.5, 0.625], true)).toBe(4 * G + 3);
    expect(pointCell(codec, [0.5, 0.625])).toBe(5 * G + 4);
  });

  it('encode → decode lands within half a cell (corners in different rows and columns)', () => {
    for (const G of [8, 32]) {
      const codec: LocCodec = { kind: 'patch2d', grid: G };
      let tested = 0;
      for (const box of randomBoxes(200, G)) {
        const [ul, lr] = encodeBox(box, codec);
        if (ul! % G === lr! % G || Math.floor(ul! / G) === Math.floor(lr! / G)) continue;
        tested++;
        expect(maxCornerError(decodeBox([ul!, lr!], codec), box)).toBeLessThanOrEqual(0.5 / G + 1e-12);
      }
      expect(tested).toBeGreaterThan(100);
    }
  });

  it('a box within one row or column decodes to the patches\' edges: it contains the box, within a cell', () => {
    const G = 16;
    const codec: LocCodec = { kind: 'patch2d', grid: G };
    for (const box of [{ x0: 0.3, y0: 0.1, x1: 0.31, y1: 0.8 }, { x0: 0.1, y0: 0.51, x1: 0.9, y1: 0.55 }, { x0: 0.4, y0: 0.4, x1: 0.41, y1: 0.41 }]) {
      const dec = decodeBox(encodeBox(box, codec), codec);
      expect(dec.x0 <= box.x0 && dec.y0 <= box.y0 && dec.x1 >= box.x1 && dec.y1 >= box.y1).toBe(true);
      expect(maxCornerError(dec, box)).toBeLessThanOrEqual(1 / G);
    }
  });
});

describe('bins1d (PaliGemma, Florence-2)', () => {
  it('PaliGemma: y0 x0 y1 x1, round(c·1023) half to even, decoded at cell/1023', () => {
    const box = { x0: 0.1, y0: 0.2, x1: 0.3, y1: 0.4 };
    expect(encodeBox(box, PALIGEMMA_CODEC)).toEqual([205, 102, 409, 307]);
    // 0.5·1023 = 511.5 rounds to the even 512 (tf.round).
    expect(encodeBox({ x0: 0.5, y0: 0, x1: 1, y1: 1 }, PALIGEMMA_CODEC)).toEqual([0, 512, 1023, 1023]);
    expect(decodeBox([0, 512, 1023, 1023], PALIGEMMA_CODEC)).toEqual({ x0: 512 / 1023, y0: 0, x1: 1, y1: 1 });
  });

  it('Florence-2: x0 y0 x1 y1, floor(c·1000) clamped, decoded at the bin centre', () => {
    expect(encodeBox({ x0: 0.1, y0: 0.2, x1: 0.3, y1: 1 }, FLORENCE2_CODEC)).toEqual([100, 200, 300, 999]);
    expect(decodeBox([100, 200, 300, 999], FLORENCE2_CODEC)).toEqual({ x0: 100.5 / 1000, y0: 200.5 / 1000, x1: 300.5 / 1000, y1: 999.5 / 1000 });
  });

  it('encode → decode lands within half a cell (1/N for floor, 1/(N − 1) for round)', () => {
    for (const codec of [PALIGEMMA_CODEC, FLORENCE2_CODEC, { kind: 'bins1d', bins: 7 } as LocCodec, { kind: 'bins1d', bins: 7, quantize: 'round' } as LocCodec]) {
      const N = locCells(codec);
      const half = codec.kind === 'bins1d' && codec.quantize === 'round' ? 0.5 / (N - 1) : 0.5 / N;
      for (const box of randomBoxes(200, N)) {
        expect(maxCornerError(decodeBox(encodeBox(box, codec), codec), box)).toBeLessThanOrEqual(half + 1e-12);
      }
    }
  });
});

describe('token ids and label points', () => {
  it('boxToTokenIds / tokenIdsToBox add and remove the location-token offset', () => {
    const box = { x0: 0.1, y0: 0.2, x1: 0.3, y1: 0.4 };
    const ids = boxToTokenIds(box, PALIGEMMA_CODEC, 256000);
    expect(ids).toEqual([256205, 256102, 256409, 256307]);
    expect(tokenIdsToBox(ids, PALIGEMMA_CODEC, 256000)).toEqual(decodeBox([205, 102, 409, 307], PALIGEMMA_CODEC));
    expect(isLocToken(256000, PALIGEMMA_CODEC, 256000)).toBe(true);
    expect(isLocToken(257023, PALIGEMMA_CODEC, 256000)).toBe(true);
    expect(isLocToken(257024, PALIGEMMA_CODEC, 256000)).toBe(false);
    expect(isLocToken(255999, PALIGEMMA_CODEC, 256000)).toBe(false);
    expectCode(() => tokenIdsToBox([256000, 1, 256002, 256003], PALIGEMMA_CODEC, 256000), 'OUT_OF_RANGE');
    expectCode(() => boxToTokenIds(box, KOSMOS2_CODEC, -1), 'INVALID_ARGUMENT');
  });

  it('boxLabelPoints gives the points in token order with cells equal to encodeBox', () => {
    const box = { x0: 0.25, y0: 0.1, x1: 0.5, y1: 0.75 };
    for (const codec of [KOSMOS2_CODEC, PALIGEMMA_CODEC, FLORENCE2_CODEC]) {
      const { points, ends, cells } = boxLabelPoints(box, codec);
      expect(cells).toEqual(encodeBox(box, codec));
      const dim = codec.kind === 'patch2d' ? 2 : 1;
      expect(points.length).toBe(cells.length * dim);
      for (let i = 0; i < cells.length; i++) {
        const p = dim === 2 ? ([points[2 * i]!, points[2 * i + 1]!] as [number, number]) : points[i]!;
        expect(pointCell(codec, p, ends[i])).toBe(cells[i]);
      }
    }
  });
});

describe('argument checks', () => {
  it('OUT_OF_RANGE / NON_FINITE for coordinates, INVALID_ARGUMENT for inverted boxes and bad codecs', () => {
    expectCode(() => encodeBox({ x0: 0, y0: 0, x1: 1.2, y1: 1 }, KOSMOS2_CODEC), 'OUT_OF_RANGE');
    expectCode(() => encodeBox({ x0: -0.1, y0: 0, x1: 1, y1: 1 }, PALIGEMMA_CODEC), 'OUT_OF_RANGE');
    expectCode(() => encodeBox({ x0: NaN, y0: 0, x1: 1, y1: 1 }, PALIGEMMA_CODEC), 'NON_FINITE');
    expectCode(() => encodeBox({ x0: 0.6, y0: 0, x1: 0.5, y1: 1 }, KOSMOS2_CODEC), 'INVALID_ARGUMENT');
    expectCode(() => encodeBox({ x0: 0, y0: 0, x1: 1, y1: 1 }, { kind: 'patch2d', grid: 2.5 }), 'INVALID_ARGUMENT');
    expectCode(() => encodeBox({ x0: 0, y0: 0, x1: 1, y1: 1 }, { kind: 'bins1d', bins: 1 }), 'INVALID_ARGUMENT');
    expectCode(() => encodeBox({ x0: 0, y0: 0, x1: 1, y1: 1 }, { kind: 'hex' } as unknown as LocCodec), 'INVALID_ARGUMENT');
    expectCode(() => decodeBox([1, 2, 3], PALIGEMMA_CODEC), 'SHAPE_MISMATCH');
    expectCode(() => decodeBox([0, 1024], KOSMOS2_CODEC), 'OUT_OF_RANGE');
    expectCode(() => decodeBox([0, 1.5], KOSMOS2_CODEC), 'OUT_OF_RANGE');
  });
});
