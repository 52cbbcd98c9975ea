// ViT encoder + connector: every parameter's gradient against finite differences of a scalar
// L = Σ w ⊙ connector(vit(pixels)), full attention within each image, hidden states kept.
import { describe, expect, test } from 'vitest';
import { Tensor } from '../sdk/index.js';
import { Connector, VisionEncoder, type VisionConfig } from '../sdk/nn/vit.js';
import type { Param } from '../sdk/nn/module.js';
import { randn, rng } from './helpers/reference.js';
import { testRuntime } from './helpers/runtime.js';

const CFG: VisionConfig = { imageSize: 8, patch: 4, d: 12, layers: 2, heads: 2, dFf: 20 };
const IMAGES = 2;
const D = 10;

async function setup(seed: number) {
  const rt = await testRuntime();
  const vit = new VisionEncoder(rt, CFG, seed);
  const conn = new Connector(rt, { visionD: CFG.d, d: D, seed });
  const params: Param[] = [...vit.params('vision'), ...conn.params('connector')];
  params.forEach((p, i) => {
    const v = randn(p.value.size, seed * 100 + i, -0.4, 0.4);
    if (/norm/.test(p.name) && p.name.endsWith('weight')) for (let j = 0; j < v.length; j++) v[j] = 1 + v[j]!;
    p.value.write(v);
  });
  const pixels = Tensor.from(rt, randn(IMAGES * 3 * 64, seed + 7), [IMAGES, 3, 8, 8]);
  const rows = IMAGES * vit.patches;
  const w = randn(rows * D, seed + 8);
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

describe('vision encoder and connector', () => {
  test('every parameter gradient matches finite differences', async () => {
    const s = await setup(3);
    for (const p of s.params) await p.grad!.write(new Float32Array(p.value.size));
    const batch = s.rt.batch('vit fwd+bwd');
    const f = await s.vit.forward(batch, s.pixels);
    await s.conn.forward(batch, f, s.rows);
    const dy = Tensor.from(s.rt, s.w, [s.rows, D]);
    const df = await s.conn.backward(batch, dy);
    await s.vit.backward(batch, df);
    await batch.submit();
    expect(s.vit.hiddenStates.length).toBe(CFG.layers + 1);
    const r = rng(9);
    const eps = 1e-2;
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
    const s = await setup(4);
    const batch = s.rt.batch('vit');
    const f1 = await s.vit.forward(batch, s.pixels);
    await batch.submit();
    const both = await f1.read();
    const px = await s.pixels.read();
    px.fill(0.5, 3 * 64); // change the second image only
    s.pixels.write(px);
    const b2 = s.rt.batch('vit');
    const f2 = await s.vit.forward(b2, s.pixels);
    await b2.submit();
    const after = await f2.read();
    const first = s.vit.patches * CFG.d;
    expect(Array.from(after.subarray(0, first))).toEqual(Array.from(both.subarray(0, first)));
    expect(Array.from(after.subarray(first))).not.toEqual(Array.from(both.subarray(first)));
  });

  test('bad configs are refused', async () => {
    const rt = await testRuntime();
    expect(() => new VisionEncoder(rt, { ...CFG, imageSize: 10 })).toThrow(/multiple of the patch/);
    expect(() => new VisionEncoder(rt, { ...CFG, heads: 5 })).toThrow(/multiple of heads/);
  });
});
