// Boxes from shifted views (sdk/model/box_views.ts): the offsets, the shift of pixel planes
// against a direct per-pixel reference on ragged shapes, the averaging of matched boxes, and
// why it helps: boxes read off a coarse grid, averaged over views at other phases of that grid,
// land closer to the truth than any single view.
import { describe, expect, test } from 'vitest';
import { averageBoxes, checkBoxViews, MAX_BOX_VIEWS, shiftPlanes, viewShifts } from '../sdk/model/box_views.js';
import { expectCode } from './helpers/errors.js';
import { rng } from './helpers/reference.js';

describe('viewShifts', () => {
  test('offsets spread evenly over one token cell, centred on zero', () => {
    expect(viewShifts(4, 16)).toEqual([[-6, -6], [-2, -2], [2, 2], [6, 6]]);
    expect(viewShifts(1, 16)).toEqual([[0, 0]]);
    for (const [K, cell] of [[3, 16], [5, 12], [7, 16], [4, 4]] as const) {
      const o = viewShifts(K, cell).map(([dx, dy]) => {
        expect(dx).toBe(dy);
        return dx;
      });
      expect(o.length).toBe(K);
      // Consecutive offsets are cell/K apart up to rounding, so their phases cover the cell.
      for (let k = 1; k < K; k++) expect(Math.abs(o[k]! - o[k - 1]! - cell / K)).toBeLessThanOrEqual(1);
      expect(Math.abs(o.reduce((a, b) => a + b, 0) / K)).toBeLessThanOrEqual(0.5);
      expect(Math.max(...o.map(Math.abs))).toBeLessThanOrEqual(cell / 2);
    }
  });

  test('bad counts and cells', () => {
    expectCode(() => viewShifts(0, 16), 'INVALID_ARGUMENT');
    expectCode(() => viewShifts(2.5, 16), 'INVALID_ARGUMENT');
    expectCode(() => viewShifts(4, 0), 'INVALID_ARGUMENT');
    expect(checkBoxViews(0)).toBe(0);
    expect(checkBoxViews(MAX_BOX_VIEWS)).toBe(MAX_BOX_VIEWS);
    for (const v of [-1, 1.5, MAX_BOX_VIEWS + 1, Number.NaN]) expectCode(() => checkBoxViews(v), 'INVALID_ARGUMENT');
  });
});

describe('shiftPlanes', () => {
  test('moves every plane, repeating the edge pixels (ragged shapes, both signs)', () => {
    const u = rng(5);
    for (const [C, H, W] of [[3, 5, 7], [1, 9, 4], [2, 1, 6]] as const) {
      const px = Float32Array.from({ length: C * H * W }, () => u() - 0.5);
      for (const [dx, dy] of [[0, 0], [2, -1], [-3, 4], [9, 0], [-1, -12]] as const) {
        const got = shiftPlanes(px, C, H, W, dx, dy);
        for (let c = 0; c < C; c++) {
          for (let y = 0; y < H; y++) {
            for (let x = 0; x < W; x++) {
              const sx = Math.min(W - 1, Math.max(0, x - dx)), sy = Math.min(H - 1, Math.max(0, y - dy));
              expect(got[(c * H + y) * W + x]).toBe(px[(c * H + sy) * W + sx]);
            }
          }
        }
      }
      expect(shiftPlanes(px, C, H, W, 0, 0)).not.toBe(px);
    }
  });

  test('wrong sizes and fractional offsets', () => {
    const px = new Float32Array(3 * 4 * 4);
    expectCode(() => shiftPlanes(px, 3, 4, 5, 0, 0), 'SHAPE_MISMATCH');
    expectCode(() => shiftPlanes(px, 3, 4, 4, 0.5, 0), 'INVALID_ARGUMENT');
  });
});

describe('averageBoxes', () => {
  const box = (label: string, x0: number, y0: number, x1: number, y1: number) => ({ label, x0, y0, x1, y1 });

  test('each box is the mean of the views that have its label at its place', () => {
    const base = [box('red star', 0.1, 0.2, 0.3, 0.4), box('red star', 0.6, 0.6, 0.8, 0.9)];
    const views = [
      [box('red star', 0.2, 0.2, 0.4, 0.5), box('red star', 0.5, 0.7, 0.7, 0.8)],
      [box('blue star', 0.9, 0.9, 1, 1), box('red star', 0.7, 0.5, 0.9, 1.0)],
      [box('red star', 0.0, 0.1, 0.2, 0.3)],
    ];
    const got = averageBoxes(base, views);
    expect(got[0]!.label).toBe('red star');
    expect(got[0]!.x0).toBeCloseTo(0.1, 12);
    expect(got[0]!.y0).toBeCloseTo(0.15, 12);
    expect(got[0]!.x1).toBeCloseTo(0.3, 12);
    expect(got[0]!.y1).toBeCloseTo(0.4, 12);
    expect(got[1]!.x0).toBeCloseTo(0.6, 12);
    expect(got[1]!.y0).toBeCloseTo(0.6, 12);
    expect(got[1]!.x1).toBeCloseTo(0.8, 12);
    expect(got[1]!.y1).toBeCloseTo(0.9, 12);
  });

  test('a box no view matches stays; means are clamped to the image', () => {
    const base = [box('crack', 0.1, 0.1, 0.2, 0.2)];
    expect(averageBoxes(base, [[box('rust', 0, 0, 1, 1)], []])).toEqual(base);
    expect(averageBoxes(base, [])).toEqual(base);
    const out = averageBoxes(base, [[box('crack', -0.1, -0.05, 1.1, 0.5)]]);
    expect(out[0]).toEqual(box('crack', 0, 0, 1, 0.5));
    expect(averageBoxes([], [[box('crack', 0, 0, 1, 1)]])).toEqual([]);
  });

  test('views at spread phases of a coarse grid give boxes closer to the truth than one view', () => {
    // A reader that only sees which 16-px cell an edge falls in and answers on a 4-px grid (the
    // embedded model's case at its worst): the corner it reports is the cell's centre, rounded.
    const cell = 16, size = 64;
    const read = (v: number) => Math.floor(((Math.floor(v / cell) + 0.5) * cell) / 4) * 4;
    const u = rng(11);
    let one = 0, four = 0;
    for (let i = 0; i < 400; i++) {
      const x0 = 6 + u() * 30, w = 10 + u() * 16;
      const truth = [x0, x0 + w];
      const single = truth.map(read);
      const shifts = viewShifts(4, cell).map(([dx]) => dx);
      const mean = truth.map((t) => shifts.reduce((s, dx) => s + read(Math.min(size - 1, Math.max(0, t + dx))) - dx, 0) / shifts.length);
      one += Math.abs(single[0]! - truth[0]!) + Math.abs(single[1]! - truth[1]!);
      four += Math.abs(mean[0]! - truth[0]!) + Math.abs(mean[1]! - truth[1]!);
    }
    expect(four).toBeLessThan(one / 2);
  });
});
