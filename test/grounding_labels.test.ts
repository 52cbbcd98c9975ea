// Distance-inverse / Gaussian grounding labels (shaders/grounding_labels.wgsl) against their
// float64 definition (DESIGN §1.5), and the properties a label must have.
import { describe, expect, it } from 'vitest';
import {
  SOFT_TARGET, encodeBox, labelAnchors, ops, pointCell, recordGroundingLabels,
  type LabelKernel, type LocCodec,
} from '../sdk/index.js';
import { testRuntime } from './helpers/runtime.js';
import { rng } from './helpers/reference.js';
import { labelRow, maxRelErr } from './helpers/loss_ref.js';
import { expectRejects } from './helpers/errors.js';

const INV: LabelKernel = { kind: 'inverse', power: 1, eps: 0.1, radius: 2.5 };
const INV2: LabelKernel = { kind: 'inverse', power: 2, eps: 0.5, radius: Infinity };
const GAUSS: LabelKernel = { kind: 'gaussian', sigma: 1 };
const GAUSS_NARROW: LabelKernel = { kind: 'gaussian', sigma: 0.6 };

const cellsOf = (c: LocCodec) => (c.kind === 'patch2d' ? c.grid * c.grid : c.bins);
const dimOf = (c: LocCodec) => (c.kind === 'patch2d' ? 2 : 1);

/** Random points plus the special ones: 0, 1, cell borders, cell centres. */
function pointsFor(codec: LocCodec, n: number, seed: number): number[] {
  const r = rng(seed);
  const N = codec.kind === 'patch2d' ? codec.grid : codec.bins;
  const special = [0, 1, 0.5, 3 / N, 1 - 1 / N, (5 + 0.5) / N];
  const out: number[] = [];
  for (let i = 0; i < n; i++) out.push(r());
  if (codec.kind === 'patch2d') {
    const pts: number[] = [];
    for (let i = 0; i < n; i += 2) pts.push(out[i]!, out[i + 1] ?? r());
    for (const a of special) for (const b of [0, 1, 0.5, r()]) pts.push(a, b);
    return pts;
  }
  return [...out, ...special];
}

function hardCell(codec: LocCodec, pts: number[], i: number): number {
  return codec.kind === 'patch2d' ? pointCell(codec, [pts[2 * i]!, pts[2 * i + 1]!]) : pointCell(codec, pts[i]!);
}

/** Distance of cell k to point i, in cell units (float64). */
function dist(codec: LocCodec, pts: number[], i: number, k: number): number {
  if (codec.kind === 'patch2d') {
    const G = codec.grid;
    return Math.hypot((k % G) + 0.5 - pts[2 * i]! * G, Math.floor(k / G) + 0.5 - pts[2 * i + 1]! * G);
  }
  if (codec.quantize === 'round') return Math.abs(k - pts[i]! * (codec.bins - 1));
  return Math.abs(k + 0.5 - pts[i]! * codec.bins);
}

const CODECS: LocCodec[] = [
  { kind: 'patch2d', grid: 8 },
  { kind: 'patch2d', grid: 32 },
  { kind: 'bins1d', bins: 100 },
  { kind: 'bins1d', bins: 1024, quantize: 'round' },
];

describe('groundingLabels vs float64', () => {
  for (const codec of CODECS) {
    const name = codec.kind === 'patch2d' ? `patch2d ${codec.grid}×${codec.grid}` : `bins1d ${codec.bins} (${codec.quantize ?? 'floor'})`;
    it(`${name}: inverse and gaussian kernels, mix 1 and 0.7`, async () => {
      const rt = await testRuntime();
      const pts = pointsFor(codec, 12, 100 + cellsOf(codec));
      const n = pts.length / dimOf(codec), cells = cellsOf(codec);
      for (const kernel of [INV, INV2, GAUSS, GAUSS_NARROW]) {
        for (const mix of [1, 0.7]) {
          const got = await ops.groundingLabels(rt, { codec, points: pts, kernel, mix });
          expect(got.length).toBe(n * cells);
          for (let i = 0; i < n; i++) {
            const pos = codec.kind === 'patch2d' ? [pts[2 * i]!, pts[2 * i + 1]!] : [pts[i]!];
            const want = labelRow(codec, pos, hardCell(codec, pts, i), kernel, mix);
            const row = got.subarray(i * cells, (i + 1) * cells);
            expect(maxRelErr(row, want)).toBeLessThanOrEqual(1e-4);
            // Each row is a distribution.
            expect(Math.abs(row.reduce((a, b) => a + b, 0) - 1)).toBeLessThanOrEqual(1e-5);
            expect(row.every((v) => v >= 0)).toBe(true);
          }
        }
      }
    });
  }

  it('both schedules give the same labels', async () => {
    const rt = await testRuntime();
    for (const codec of [CODECS[1]!, CODECS[3]!]) {
      const points = pointsFor(codec, 6, 7);
      for (const kernel of [INV, GAUSS]) {
        const wide = await ops.groundingLabels(rt, { codec, points, kernel, mix: 0.8, schedule: 'wide' });
        const direct = await ops.groundingLabels(rt, { codec, points, kernel, mix: 0.8, schedule: 'direct' });
        expect(maxRelErr(wide, direct)).toBeLessThanOrEqual(1e-6);
      }
    }
  });
});

describe('label properties', () => {
  it('peaks at the hard cell (strictly with mix < 1, also for points on borders)', async () => {
    const rt = await testRuntime();
    for (const codec of CODECS) {
      const pts = pointsFor(codec, 10, 200);
      const n = pts.length / dimOf(codec), cells = cellsOf(codec);
      for (const kernel of [INV, INV2, GAUSS]) {
        const got = await ops.groundingLabels(rt, { codec, points: pts, kernel, mix: 0.9 });
        for (let i = 0; i < n; i++) {
          const row = got.subarray(i * cells, (i + 1) * cells);
          const h = hardCell(codec, pts, i);
          let arg = 0;
          for (let k = 1; k < cells; k++) if (row[k]! > row[arg]!) arg = k;
          expect(arg).toBe(h);
          for (let k = 0; k < cells; k++) if (k !== h) expect(row[k]!).toBeLessThan(row[h]!);
        }
      }
    }
  });

  it('is symmetric about a point at a cell centre (mirror images and, in 2D, the transpose)', async () => {
    const rt = await testRuntime();
    const G = 16;
    const codec: LocCodec = { kind: 'patch2d', grid: G };
    const col = 7, row = 6;
    for (const kernel of [INV, INV2, GAUSS]) {
      const q = await ops.groundingLabels(rt, { codec, points: [(col + 0.5) / G, (row + 0.5) / G], kernel, mix: 0.75 });
      const at = (dc: number, dr: number) => q[(row + dr) * G + col + dc]!;
      for (let a = -5; a <= 5; a++) {
        for (let b = -5; b <= 5; b++) {
          expect(at(-a, b)).toBe(at(a, b));
          expect(at(a, -b)).toBe(at(a, b));
          expect(at(b, a)).toBe(at(a, b));
        }
      }
      const bins: LocCodec = { kind: 'bins1d', bins: 64 };
      const q1 = await ops.groundingLabels(rt, { codec: bins, points: [20.5 / 64], kernel, mix: 0.75 });
      for (let a = 1; a <= 15; a++) expect(q1[20 - a]).toBe(q1[20 + a]);
    }
  });

  it('is zero beyond the radius and positive within it (inverse kernel)', async () => {
    const rt = await testRuntime();
    for (const codec of CODECS) {
      for (const radius of [0.75, 1.5, 4]) {
        const kernel: LabelKernel = { kind: 'inverse', power: 1.5, eps: 0.2, radius };
        const pts = pointsFor(codec, 8, 300);
        const n = pts.length / dimOf(codec), cells = cellsOf(codec);
        const got = await ops.groundingLabels(rt, { codec, points: pts, kernel });
        for (let i = 0; i < n; i++) {
          for (let k = 0; k < cells; k++) {
            const d = dist(codec, pts, i, k);
            const v = got[i * cells + k]!;
            if (d > radius + 1e-5) expect(v).toBe(0);
            else if (d < radius - 1e-5) expect(v).toBeGreaterThan(0);
          }
        }
      }
    }
  });

  it('points at 0, at 1 and on borders take the codec\'s cell; a bottom-right corner on a border the cell before it', async () => {
    const rt = await testRuntime();
    const G = 8;
    const codec: LocCodec = { kind: 'patch2d', grid: G };
    // (0,0) → cell 0; (1,1) → the last cell; x = 0.5 on a border → column 4, or 3 as a box end.
    const pts = [0, 0, 1, 1, 0.5, 0.25, 0.5, 0.25];
    const ends = [false, false, false, true];
    const q = await ops.groundingLabels(rt, { codec, points: pts, kernel: GAUSS, mix: 0.5, ends });
    const argmax = (i: number) => {
      const row = q.subarray(i * G * G, (i + 1) * G * G);
      return row.indexOf(Math.max(...row));
    };
    expect([argmax(0), argmax(1), argmax(2), argmax(3)]).toEqual([0, G * G - 1, 2 * G + 4, 1 * G + 3]);
    // The end corner's cell is the one encodeBox gives the box's bottom-right token.
    expect(encodeBox({ x0: 0.1, y0: 0.1, x1: 0.5, y1: 0.25 }, codec)[1]).toBe(argmax(3));
    // On a border both neighbours are equally far: the label is symmetric between them.
    const r2 = q.subarray(2 * G * G, 3 * G * G);
    expect(r2[2 * G + 3]! + 0.5 * 1).toBeCloseTo(r2[2 * G + 4]!, 6);
    expect(r2[1 * G + 3]).toBe(r2[1 * G + 4]);
    const bins: LocCodec = { kind: 'bins1d', bins: 10 };
    const q1 = await ops.groundingLabels(rt, { codec: bins, points: [0, 1, 0.35], kernel: INV });
    expect([0, 1, 2].map((i) => { const r = q1.subarray(i * 10, i * 10 + 10); return r.indexOf(Math.max(...r)); })).toEqual([0, 9, 3]);
  });
});

describe('recordGroundingLabels into the loss targets', () => {
  it('writes rows at rowOffset and retargets only the given rows', async () => {
    const rt = await testRuntime();
    const codec: LocCodec = { kind: 'bins1d', bins: 32 };
    const points = [0.1, 0.55, 0.9];
    const { count, anchors, cells } = labelAnchors(codec, points);
    const rows = 8, locRows = [6, 1, 3], rowOffset = 2;
    const slots = Int32Array.from([...cells, ...locRows]);
    const targets = Int32Array.from([5, 6, 7, 8, -100, 9, 10, 11]);
    const table = new Float32Array((rowOffset + count + 1) * 32).fill(-1);
    const bufs = { anchors: rt.upload(anchors), slots: rt.upload(slots), targets: rt.upload(targets), table: rt.upload(table) };
    try {
      const batch = rt.batch('test.labels');
      await recordGroundingLabels(rt, batch, { codec, kernel: INV, mix: 1, count, anchors: bufs.anchors, slots: bufs.slots, out: bufs.table, rowOffset, targets: bufs.targets });
      await batch.submit();
      const t = await rt.readI32(bufs.targets, rows);
      const tab = await rt.readF32(bufs.table, table.length);
      expect(Array.from(t)).toEqual([5, SOFT_TARGET + 3, 7, SOFT_TARGET + 4, -100, 9, SOFT_TARGET + 2, 11]);
      const direct = await ops.groundingLabels(rt, { codec, points, kernel: INV });
      expect(Array.from(tab.subarray(rowOffset * 32, (rowOffset + count) * 32))).toEqual(Array.from(direct));
      // Rows outside [rowOffset, rowOffset + count) are untouched.
      expect(tab.subarray(0, rowOffset * 32).every((v) => v === -1)).toBe(true);
      expect(tab.subarray((rowOffset + count) * 32).every((v) => v === -1)).toBe(true);
    } finally {
      for (const b of Object.values(bufs)) rt.pool.release(b);
    }
  });
});

describe('argument checks', () => {
  const codec: LocCodec = { kind: 'patch2d', grid: 4 };
  it('OUT_OF_RANGE for a point outside [0, 1], NON_FINITE for NaN', async () => {
    const rt = await testRuntime();
    await expectRejects(ops.groundingLabels(rt, { codec, points: [0.5, 1.01], kernel: INV }), 'OUT_OF_RANGE');
    await expectRejects(ops.groundingLabels(rt, { codec, points: [-0.01, 0.5], kernel: INV }), 'OUT_OF_RANGE');
    await expectRejects(ops.groundingLabels(rt, { codec: { kind: 'bins1d', bins: 8 }, points: [2], kernel: GAUSS }), 'OUT_OF_RANGE');
    await expectRejects(ops.groundingLabels(rt, { codec, points: [NaN, 0.5], kernel: INV }), 'NON_FINITE');
  });
  it('SHAPE_MISMATCH for an odd number of patch2d coordinates or no points', async () => {
    const rt = await testRuntime();
    await expectRejects(ops.groundingLabels(rt, { codec, points: [0.5, 0.5, 0.5], kernel: INV }), 'SHAPE_MISMATCH');
    await expectRejects(ops.groundingLabels(rt, { codec, points: [], kernel: INV }), 'SHAPE_MISMATCH');
    await expectRejects(ops.groundingLabels(rt, { codec, points: [0.5, 0.5], kernel: INV, ends: [true, false] }), 'SHAPE_MISMATCH');
  });
  it('INVALID_ARGUMENT for bad kernels, mix or codec', async () => {
    const rt = await testRuntime();
    const bad: LabelKernel[] = [
      { kind: 'inverse', power: 1, eps: 0, radius: 2 },
      { kind: 'inverse', power: -1, eps: 0.1, radius: 2 },
      { kind: 'inverse', power: 1, eps: 0.1, radius: 0 },
      { kind: 'gaussian', sigma: 0 },
      { kind: 'gaussian', sigma: NaN },
      { kind: 'box' } as unknown as LabelKernel,
    ];
    for (const kernel of bad) await expectRejects(ops.groundingLabels(rt, { codec, points: [0.5, 0.5], kernel }), 'INVALID_ARGUMENT');
    await expectRejects(ops.groundingLabels(rt, { codec, points: [0.5, 0.5], kernel: INV, mix: 1.5 }), 'INVALID_ARGUMENT');
    await expectRejects(ops.groundingLabels(rt, { codec: { kind: 'patch2d', grid: 0 }, points: [0.5, 0.5], kernel: INV }), 'INVALID_ARGUMENT');
    await expectRejects(ops.groundingLabels(rt, { codec: { kind: 'bins1d', bins: 16, quantize: 'ceil' } as unknown as LocCodec, points: [0.5], kernel: INV }), 'INVALID_ARGUMENT');
  });
});
