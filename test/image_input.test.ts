// Every image form `ask` accepts in Node (the browser forms are in test/browser.test.ts):
// RGBA objects, PNG and JPEG bytes (Uint8Array, ArrayBuffer, Blob), file paths; and the errors.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, test } from 'vitest';
import { decodeImage, readImage, MAX_IMAGE_PIXELS } from '../sdk/data/image_input.js';
import { decodeJPEG } from '../sdk/data/jpeg.js';
import { encodePNG } from '../sdk/data/png.js';
import { expectRejects } from './helpers/errors.js';
import { sampleSplit } from '../sdk/data/worlds.js';

const tmp = mkdtempSync(path.join(tmpdir(), 'edgetune-img-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
const JPG = 'test/fixtures/jpeg/baseline_420.jpg';

describe('readImage', () => {
  const img = sampleSplit('general', 'val', 2).image;
  const png = encodePNG(img);

  test('RGBA objects: as given, plain arrays copied into Uint8ClampedArray', async () => {
    expect((await readImage(img)).data).toBe(img.data); // no copy
    const plain = { width: 2, height: 1, data: [1, 2, 3, 255, 4, 5, 6, 255] };
    const r = await readImage(plain);
    expect(r.data).toBeInstanceOf(Uint8ClampedArray);
    expect(Array.from(r.data)).toEqual(plain.data);
  });

  test('PNG and JPEG bytes, ArrayBuffer, Blob and paths give the same pixels', async () => {
    const fromPng = await readImage(png);
    expect(Buffer.from(fromPng.data).equals(Buffer.from(img.data))).toBe(true);
    const ab = png.buffer.slice(png.byteOffset, png.byteOffset + png.byteLength) as ArrayBuffer;
    expect(Buffer.from((await readImage(ab)).data).equals(Buffer.from(img.data))).toBe(true);
    expect(Buffer.from((await readImage(new Blob([png]))).data).equals(Buffer.from(img.data))).toBe(true);
    const p = path.join(tmp, 'a.png');
    writeFileSync(p, png);
    expect(Buffer.from((await readImage(p)).data).equals(Buffer.from(img.data))).toBe(true);
    const jpeg = new Uint8Array(readFileSync(JPG));
    const want = decodeJPEG(jpeg);
    const got = await readImage(JPG);
    expect([got.width, got.height]).toEqual([want.width, want.height]);
    expect(Buffer.from(got.data).equals(Buffer.from(want.data))).toBe(true);
    expect(Buffer.from(decodeImage(jpeg).data).equals(Buffer.from(want.data))).toBe(true);
  });

  test('bad input: a clear EdgeTuneError', async () => {
    await expectRejects(readImage({ width: 0, height: 0, data: new Uint8ClampedArray(0) }), 'INVALID_ARGUMENT');
    await expectRejects(readImage({ width: 2, height: 2, data: new Uint8ClampedArray(3) }), 'SHAPE_MISMATCH');
    await expectRejects(readImage({ width: 1 << 15, height: 1 << 15, data: [] }), 'TOO_LARGE');
    expect((1 << 15) ** 2).toBeGreaterThan(MAX_IMAGE_PIXELS);
    await expectRejects(readImage(new TextEncoder().encode('GIF89a....')), 'INVALID_ARGUMENT');
    await expectRejects(readImage(path.join(tmp, 'missing.png')), 'INVALID_ARGUMENT');
    await expectRejects(readImage(png.subarray(0, 40)), 'INVALID_ARGUMENT');
    // A drawable (ImageBitmap, <img>, canvas) needs a 2D canvas, which Node has not.
    await expectRejects(readImage({ width: 4, height: 4 } as never), 'INVALID_ARGUMENT');
    await expectRejects(readImage(undefined as never), 'INVALID_ARGUMENT');
    await expectRejects(readImage(42 as never), 'INVALID_ARGUMENT');
  });
});
