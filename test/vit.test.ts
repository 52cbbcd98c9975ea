// ViT encoder + connector: every parameter's gradient against finite differences of a scalar
// L = Σ w ⊙ connector(vit(pixels)), full attention within each image, hidden states kept.
import { describe, expect, test } from 'vitest';
import { Tensor } from '../sdk/index.js';
import { Connector, mergeOrder, VisionEncoder, type VisionConfig } from '../sdk/nn/vit.js';
import type { Param } from '../sdk/nn/module.js';
import { randn, rng } from './helpers/reference.js';
import { testRuntime } from './helpers/runtime.js';

const CFG: VisionConfig = { imageSize: 8, patch: 4, d: 12, layers: 2, heads: 2, dFf: 20 };
const IMAGES = 2;
const D = 10;

async function setup(seed: number, cfg: VisionConfig = CFG, merge = 1) {
  const rt = await testRuntime();
  const vit = new VisionEncoder(rt, cfg, seed);
  const conn = new Connector(rt, { visionD: cfg.d, d: D, seed, merge, grid: cfg.imageSize / cfg.patch });
  const params: Param[] = [...vit.params('vision'), ...conn.params('connector')];
  params.forEach((p, i) => {
    const v = randn(p.value.size, seed * 100 + i, -0.4, 0.4);
    if (/norm/.test(p.name) && p.name.endsWith('weight')) for (let j = 0; j < v.length; j++) v[j] = 1 + v[j]!;
    p.value.write(v);
  });
  const n = cfg.imageSize;
  const pixels = Tensor.from(rt, randn(IMAGES * 3 * n * n, seed + 7), [IMAGES, 3, n, n]);
  const rows = IMAGES * vit.patches;
  const w = randn(conn.rowsPer(rows) * D, seed + 8);
  return { rt, vit, conn, params, pixels, rows, w };
}

async function loss(s: Awaited<ReturnType<typeof setup>>): Promise<number> {
  const batch = s.rt.batch('vit');
  const f = await s.vit.forward(batch, s.pixels);
  const y = await s.conn.forward(batch, f, s.rows);
  await batch.submit();
  const out = await y.read();
  let l = 0;
  for (let i = 0; i < out.length; i++) l += s.w[i]! * out[i]!;
  return l;
}

/** Pixel shuffle in float64 on the host: cell r's row is its m×m patches' features, dy-major. */
function mergeReference(f: Float32Array, images: number, grid: number, m: number, dv: number): Float64Array {
  const out = new Float64Array(f.length);
  const gm = grid / m;
  let o = 0;
  for (let b = 0; b < images; b++) for (let i = 0; i < gm; i++) for (let j = 0; j < gm; j++) for (let dy = 0; dy < m; dy++) for (let dx = 0; dx < m; dx++) {
    const src = (b * grid * grid + (i * m + dy) * grid + j * m + dx) * dv;
    for (let c = 0; c < dv; c++) out[o++] = f[src + c]!;
  }
  return out;
}

describe.each([
  ['one row per patch', CFG, 1],
  ['2×2 patches merged per row', { ...CFG, imageSize: 16 }, 2],
  ['a convolutional stem (hybrid ViT: 12×12 → 3×3 tokens)', { ...CFG, imageSize: 12, patch: 4, stem: [5, 6] }, 1],
  ['a strided convolutional stem (12×12 → 3×3 tokens)', { ...CFG, imageSize: 12, patch: 4, stem: [5, 6], stemDownsample: 'stride' }, 1],
  ['a convolutional stem with coordinate channels (12×12 → 3×3 tokens)', { ...CFG, imageSize: 12, patch: 4, stem: [5, 6], stemCoords: true }, 1],
  ['a convolutional stem with a stem skip (24×24 → 3×3 tokens, each with 4×4 cells of the first stage)', { ...CFG, imageSize: 24, patch: 8, stem: [3, 5, 4], stemSkip: 0 }, 1],
] as const)('vision encoder and connector (%s)', (_, cfg, merge) => {
  test('every parameter gradient matches finite differences', async () => {
    const s = await setup(3, cfg, merge);
    for (const p of s.params) await p.grad!.write(new Float32Array(p.value.size));
    const batch = s.rt.batch('vit fwd+bwd');
    const f = await s.vit.forward(batch, s.pixels);
    await s.conn.forward(batch, f, s.rows);
    const dy = Tensor.from(s.rt, s.w, [s.conn.rowsPer(s.rows), D]);
    const df = await s.conn.backward(batch, dy);
    await s.vit.backward(batch, df);
    await batch.submit();
    expect(s.vit.hiddenStates.length).toBe(CFG.layers + 1);
    const r = rng(9);
    // Max pooling has kinks: a smaller step keeps the stem's windows on one side of them (with
    // coordinate channels neighbouring pixels differ less, and 2e-3 crossed one on a stem bias).
    const eps = 'stem' in cfg ? 1e-3 : 1e-2;
    for (const p of s.params) {
      const grad = await p.grad!.read();
      const value = await p.value.read();
      let arg = 0;
      for (let i = 1; i < grad.length; i++) if (Math.abs(grad[i]!) > Math.abs(grad[arg]!)) arg = i;
      for (const i of [arg, Math.floor(r() * grad.length)]) {
        const orig = value[i]!;
        value[i] = orig + eps;
        p.value.write(value);
        const lp = await loss(s);
        value[i] = orig - eps;
        p.value.write(value);
        const lm = await loss(s);
        value[i] = orig;
        p.value.write(value);
        const fd = (lp - lm) / (2 * eps);
        expect(Math.abs(fd - grad[i]!), `${p.name}[${i}] fd ${fd} analytic ${grad[i]}`).toBeLessThanOrEqual(2e-3 + 2e-2 * Math.abs(grad[i]!));
      }
    }
    dy.release();
  });

  test('images do not see each other (full attention within an image only)', async () => {
    const s = await setup(4, cfg, merge);
    const batch = s.rt.batch('vit');
    const f1 = await s.vit.forward(batch, s.pixels);
    await batch.submit();
    const both = await f1.read();
    const px = await s.pixels.read();
    px.fill(0.5, 3 * cfg.imageSize ** 2); // change the second image only
    s.pixels.write(px);
    const b2 = s.rt.batch('vit');
    const f2 = await s.vit.forward(b2, s.pixels);
    await b2.submit();
    const after = await f2.read();
    const first = s.vit.patches * cfg.d;
    expect(Array.from(after.subarray(0, first))).toEqual(Array.from(both.subarray(0, first)));
    expect(Array.from(after.subarray(first))).not.toEqual(Array.from(both.subarray(first)));
  });

  test('mergeOrder gathers the pixel shuffle of the float64 reference', () => {
    const grid = cfg.imageSize / cfg.patch, dv = 3, images = 2;
    const f = randn(images * grid * grid * dv, 5);
    const { order, inverse } = mergeOrder(grid, merge, images);
    const ref = mergeReference(f, images, grid, merge, dv);
    const got = new Float64Array(f.length);
    order.forEach((src, r) => { for (let c = 0; c < dv; c++) got[r * dv + c] = f[src * dv + c]!; });
    expect(Array.from(got)).toEqual(Array.from(ref));
    order.forEach((src, r) => expect(inverse[src]).toBe(r));
  });

  test('bad configs are refused', async () => {
    const rt = await testRuntime();
    expect(() => new Connector(rt, { visionD: 4, d: 4, merge: 2, grid: 3 })).toThrow(/cannot be merged/);
    expect(() => new VisionEncoder(rt, { ...CFG, imageSize: 10 })).toThrow(/multiple of the patch/);
    expect(() => new VisionEncoder(rt, { ...CFG, heads: 5 })).toThrow(/multiple of heads/);
    expect(() => new VisionEncoder(rt, { ...CFG, imageSize: 16, patch: 8, stem: [4, 4] })).toThrow(/vision.patch must be 4/);
    expect(() => new VisionEncoder(rt, { ...CFG, imageSize: 12, patch: 1, stem: [] })).toThrow(/at least one stage/);
  });
});
