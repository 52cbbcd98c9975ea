// The SDK bundle in headless Chromium: createRuntime on navigator.gpu (software WebGPU through
// SwiftShader) and a matmul checked against a float64 reference computed in the page; the
// embedded model loaded from a URL with onnxruntime-web in the page, asked about one image
// given as ImageData, canvas, ImageBitmap, <img> and Blob.
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import path from 'node:path';
import { openSdkPage, SDK_PAGE, type BrowserFixture } from './helpers/browser.js';
import { encodePNG } from '../sdk/data/png.js';
import { sampleSplit } from '../sdk/data/worlds.js';
import { VLM } from '../sdk/model/vlm.js';
import { testRuntime } from './helpers/runtime.js';

const MODEL = 'models/tiny-vlm';
let fx: BrowserFixture;
beforeAll(async () => {
  fx = await openSdkPage(SDK_PAGE, { '/model/': path.resolve(MODEL) });
}, 120_000);
afterAll(async () => {
  await fx?.close();
});

describe('in Chromium', () => {
  test('createRuntime uses navigator.gpu and ops.matmul is right', async () => {
    const r = await fx.page.evaluate(async () => {
      const sdk = (window as unknown as { sdk: typeof import('../sdk/index.js') }).sdk;
      const rt = await sdk.createRuntime();
      const m = 33, k = 65, n = 17;
      let s = 7;
      const rand = () => ((s = (s * 1103515245 + 12345) >>> 0) / 2 ** 32) - 0.5;
      const a = Float32Array.from({ length: m * k }, rand);
      const b = Float32Array.from({ length: n * k }, rand);
      const c = await sdk.ops.matmul(rt, a, b, { m, k, n, transB: true });
      let err = 0, scale = 1;
      for (let i = 0; i < m; i++) for (let j = 0; j < n; j++) {
        let ref = 0;
        for (let l = 0; l < k; l++) ref += a[i * k + l]! * b[j * k + l]!;
        scale = Math.max(scale, Math.abs(ref));
        err = Math.max(err, Math.abs(ref - c[i * n + j]!));
      }
      let code = '';
      try {
        await sdk.ops.matmul(rt, a, b, { m: 2, k, n });
      } catch (e) {
        code = (e as { code: string }).code;
      }
      return { adapter: rt.adapter, hasGpu: 'gpu' in navigator, rel: err / scale, code };
    });
    expect(r.hasGpu).toBe(true);
    expect(r.adapter.vendor.length + r.adapter.architecture.length + r.adapter.description.length).toBeGreaterThan(0);
    expect(r.rel).toBeLessThanOrEqual(1e-4);
    expect(r.code).toBe('SHAPE_MISMATCH');
  });

  test('a shader compile error names the file and line in the browser too', async () => {
    const msg = await fx.page.evaluate(async () => {
      const sdk = (window as unknown as { sdk: typeof import('../sdk/index.js') }).sdk;
      const rt = await sdk.createRuntime();
      try {
        await rt.pipelines.get({ name: 'oops.wgsl', code: '@compute @workgroup_size(1)\nfn main() {\n  let x = nope;\n}\n' }, 'main');
        return 'compiled';
      } catch (e) {
        return `${(e as { code: string }).code}: ${(e as Error).message}`;
      }
    });
    expect(msg).toMatch(/^SHADER_COMPILE: .*oops\.wgsl:3:/s);
  });

  test('in a dedicated worker too (navigator.gpu of WorkerGlobalScope)', async () => {
    const r = await fx.page.evaluate(async () => {
      const src = `
        import { createRuntime, ops } from '${location.origin}/edgetune.js';
        const rt = await createRuntime();
        const a = new Float32Array([1, 2, 3, 4, 5, 6]), b = new Float32Array([7, 8, 9, 10, 11, 12]);
        const c = await ops.matmul(rt, a, b, { m: 2, k: 3, n: 2 });
        postMessage({ c: Array.from(c), vendor: rt.adapter.vendor, arch: rt.adapter.architecture });`;
      const url = URL.createObjectURL(new Blob([src], { type: 'text/javascript' }));
      const w = new Worker(url, { type: 'module' });
      return new Promise<{ c: number[]; vendor: string; arch: string } | string>((resolve) => {
        w.onmessage = (e) => resolve(e.data);
        w.onerror = (e) => resolve(`worker error: ${e.message}`);
      });
    });
    expect(r).toEqual(expect.objectContaining({ c: [58, 64, 139, 154] }));
  });

  test('VLM.load(URL) with onnxruntime-web in the page: every image form gives the answer Node gives', async () => {
    const s = sampleSplit('general', 'test', 1);
    const png = encodePNG(s.image);
    const node = await (await VLM.load(MODEL, { runtime: await testRuntime() })).ask(s.image, s.question);
    const r = await fx.page.evaluate(async ({ w, h, pixels, png, q }) => {
      const sdk = (window as unknown as { sdk: typeof import('../sdk/index.js') }).sdk;
      const vlm = await sdk.VLM.load('/model/');
      const data = new ImageData(new Uint8ClampedArray(pixels), w, h);
      const canvas = document.createElement('canvas');
      canvas.width = w;
      canvas.height = h;
      canvas.getContext('2d')!.putImageData(data, 0, 0);
      const blob = new Blob([new Uint8Array(png)], { type: 'image/png' });
      const img = new Image();
      img.src = URL.createObjectURL(blob);
      const forms: Record<string, unknown> = { imageData: data, canvas, bitmap: await createImageBitmap(data), img, blob };
      const out: Record<string, { tokens: number[]; text: string; boxes: unknown[] }> = {};
      for (const [k, v] of Object.entries(forms)) {
        const a = await vlm.ask(v as ImageData, q);
        out[k] = { tokens: a.tokens, text: a.text, boxes: a.boxes };
      }
      let code = '';
      try {
        await vlm.ask({ width: 0, height: 0, data: new Uint8ClampedArray(0) }, q);
      } catch (e) {
        code = (e as { code: string }).code;
      }
      return { out, onnx: !!vlm.onnxVision, code };
    }, { w: s.image.width, h: s.image.height, pixels: Array.from(s.image.data), png: Array.from(png), q: s.question });
    expect(r.onnx).toBe(true);
    for (const [k, a] of Object.entries(r.out)) {
      expect(a.tokens, k).toEqual(node.tokens);
      expect(a.text, k).toBe(node.text);
    }
    expect(r.code).toBe('INVALID_ARGUMENT');
  });
});
