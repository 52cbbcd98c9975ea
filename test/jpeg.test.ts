// JPEG decoding against libjpeg-turbo's own decodes (committed fixtures made by
// scripts/make-jpeg-fixtures.sh: cjpeg for the .jpg, `djpeg -dct int` for the .ppm), plus
// truncated, corrupted, unsupported and non-JPEG inputs.
import { readFileSync } from 'node:fs';
import { describe, expect, test } from 'vitest';
import { EdgeTuneError } from '../sdk/errors.js';
import { createImage, type RGBAImage } from '../sdk/data/image.js';
import { decodeJPEG, isJPEG } from '../sdk/data/jpeg.js';
import { encodePNG } from '../sdk/data/png.js';
import { Rng } from '../sdk/data/rng.js';
import { expectCode } from './helpers/errors.js';

const dir = new URL('./fixtures/jpeg/', import.meta.url);
const load = (name: string): Uint8Array => new Uint8Array(readFileSync(new URL(name, dir)));

/** A binary PPM (P6) or PGM (P5) as djpeg writes it: width, height and RGB bytes. */
function readPNM(bytes: Uint8Array): { width: number; height: number; rgb: Uint8Array } {
  const fields: string[] = [];
  let p = 0;
  while (fields.length < 4) {
    while (/\s/.test(String.fromCharCode(bytes[p]!))) p++;
    let f = '';
    while (!/\s/.test(String.fromCharCode(bytes[p]!))) f += String.fromCharCode(bytes[p++]!);
    fields.push(f);
  }
  p++; // the single whitespace byte before the samples
  const [magic, w, h, max] = fields as [string, string, string, string];
  expect(['P5', 'P6']).toContain(magic);
  expect(max).toBe('255');
  const width = Number(w), height = Number(h), data = bytes.subarray(p);
  const rgb = new Uint8Array(width * height * 3);
  for (let i = 0; i < width * height; i++) {
    for (let c = 0; c < 3; c++) rgb[i * 3 + c] = magic === 'P6' ? data[i * 3 + c]! : data[i]!;
  }
  return { width, height, rgb };
}

// [fixture, width, height, colour]. Against djpeg's float IDCT the decoder should agree to
// within rounding (max |diff| ≤ 1; 0 when measured). Against its default integer IDCT
// ("islow", off by ±1 in a few % of samples), a ±1 in Y and one in Cb or Cr add up through
// the colour matrix to at most 3 in R, G or B; gray and RGB images stay within 2.
const FIXTURES: [string, number, number, 'ycc' | 'gray' | 'rgb'][] = [
  ['baseline_420', 37, 23, 'ycc'],
  ['baseline_420_separate_scans', 50, 41, 'ycc'],
  ['baseline_444', 50, 41, 'ycc'],
  ['baseline_422', 50, 41, 'ycc'],
  ['baseline_440', 37, 23, 'ycc'],
  ['progressive_420', 50, 41, 'ycc'],
  ['progressive_444_restart', 37, 23, 'ycc'],
  ['grayscale', 50, 41, 'gray'],
  ['grayscale_progressive', 37, 23, 'gray'],
  ['restart_420', 50, 41, 'ycc'],
  ['optimized_420', 50, 41, 'ycc'],
  ['rgb_adobe', 37, 23, 'rgb'],
  ['tiny_420', 3, 5, 'ycc'],
];

/** Either an image of the given size or an INVALID_ARGUMENT EdgeTuneError; what it was. */
function decodeOrInvalid(bytes: Uint8Array, width: number, height: number, what: string): 'image' | 'error' {
  try {
    const img = decodeJPEG(bytes);
    expect([img.width, img.height, img.data.length], what).toEqual([width, height, width * height * 4]);
    return 'image';
  } catch (e) {
    expect(e, `${what}: ${String(e)}`).toBeInstanceOf(EdgeTuneError);
    expect((e as EdgeTuneError).code, `${what}: ${String(e)}`).toBe('INVALID_ARGUMENT');
    return 'error';
  }
}

/** The offset of the SOF segment's marker (FF C0..C2) in a fixture. */
function sofOffset(bytes: Uint8Array): number {
  for (let p = 2; p + 1 < bytes.length;) {
    if (bytes[p + 1]! >= 0xc0 && bytes[p + 1]! <= 0xc2) return p;
    p += 2 + ((bytes[p + 2]! << 8) | bytes[p + 3]!);
  }
  throw new Error('no SOF');
}

/** Max and mean |diff| over the R, G and B values of a decode and a reference. */
function compare(img: RGBAImage, ref: { rgb: Uint8Array }): { max: number; mean: number } {
  let max = 0, sum = 0;
  const n = img.width * img.height;
  for (let i = 0; i < n; i++) {
    for (let c = 0; c < 3; c++) {
      const d = Math.abs(img.data[i * 4 + c]! - ref.rgb[i * 3 + c]!);
      max = Math.max(max, d);
      sum += d;
    }
  }
  return { max, mean: sum / (n * 3) };
}

describe('decodeJPEG against djpeg', () => {
  for (const [name, width, height, colour] of FIXTURES) {
    test(name, () => {
      const img = decodeJPEG(load(`${name}.jpg`));
      expect([img.width, img.height, img.data.length]).toEqual([width, height, width * height * 4]);
      for (let i = 3; i < img.data.length; i += 4) if (img.data[i] !== 255) expect.fail(`alpha ${img.data[i]} at byte ${i}`);
      const checks: [string, string, number, number][] = [
        ['djpeg -dct int', `${name}.ppm`, colour === 'ycc' ? 3 : 2, 0.1],
        ['djpeg -dct float', `${name}.float.ppm`, 1, 0.01],
      ];
      for (const [what, file, maxTol, meanTol] of checks) {
        const ref = readPNM(load(file));
        expect([ref.width, ref.height]).toEqual([width, height]);
        const { max, mean } = compare(img, ref);
        const report = `${name} vs ${what}: max |diff| ${max}, mean |diff| ${mean.toFixed(4)}`;
        console.log(report);
        expect(max, report).toBeLessThanOrEqual(maxTol);
        expect(mean, report).toBeLessThanOrEqual(meanTol);
      }
    });
  }
});

describe('isJPEG', () => {
  test('recognises the SOI marker', () => {
    expect(isJPEG(load('baseline_420.jpg'))).toBe(true);
    expect(isJPEG(new Uint8Array([0xff, 0xd8, 0xff]))).toBe(true);
    expect(isJPEG(new Uint8Array([0xff, 0xd8]))).toBe(false);
    expect(isJPEG(new Uint8Array([0xff, 0xd9, 0xff, 0xe0]))).toBe(false);
    expect(isJPEG(new Uint8Array(0))).toBe(false);
    expect(isJPEG(encodePNG(createImage(2, 2)))).toBe(false);
  });
});

describe('bad input', () => {
  test('truncated files: an image of the right size or INVALID_ARGUMENT', () => {
    for (const [name, width, height] of FIXTURES) {
      const bytes = load(`${name}.jpg`);
      let errors = 0;
      for (let cut = 0; cut < bytes.length; cut += 97) {
        if (decodeOrInvalid(bytes.subarray(0, cut), width, height, `${name} cut at ${cut}`) === 'error') errors++;
      }
      expect(errors).toBeGreaterThan(0);
      // Without the EOI marker alone, the image is complete.
      expect(decodeOrInvalid(bytes.subarray(0, bytes.length - 2), width, height, `${name} without EOI`)).toBe('image');
    }
  });

  test('cut inside the scan data says truncated', () => {
    const bytes = load('baseline_444.jpg');
    const err = expectCode(() => decodeJPEG(bytes.subarray(0, bytes.length - 200)), 'INVALID_ARGUMENT');
    expect(err.message).toMatch(/not a readable JPEG: truncated/);
  });

  test('random byte corruption: an image of the right size or INVALID_ARGUMENT', () => {
    const rng = new Rng(20240611);
    for (const [name, width, height] of FIXTURES) {
      const bytes = load(`${name}.jpg`);
      // The frame's height and width bytes stay intact (a changed size is not an error).
      const dims = sofOffset(bytes) + 5;
      for (let trial = 0; trial < 60; trial++) {
        const bad = bytes.slice();
        const n = rng.int(1, 4);
        for (let j = 0; j < n; j++) {
          const at = rng.int(2, bad.length - 1);
          if (at >= dims && at < dims + 4) continue;
          bad[at] = rng.chance(0.3) ? 0xff : rng.int(0, 255);
        }
        decodeOrInvalid(bad, width, height, `${name} corruption trial ${trial}`);
      }
    }
  });

  test('arithmetic coding (SOF9) is unsupported', () => {
    // SOI, SOF9 (8-bit, 16×16, one component 1×1 using table 0), EOI.
    const sof9 = new Uint8Array([
      0xff, 0xd8,
      0xff, 0xc9, 0x00, 0x0b, 0x08, 0x00, 0x10, 0x00, 0x10, 0x01, 0x01, 0x11, 0x00,
      0xff, 0xd9,
    ]);
    expect(isJPEG(sof9)).toBe(true);
    expect(expectCode(() => decodeJPEG(sof9), 'INVALID_ARGUMENT').message).toMatch(/unsupported JPEG: arithmetic/);
  });

  test('other frame types and 12-bit samples are unsupported', () => {
    const bytes = load('baseline_444.jpg');
    const sof = sofOffset(bytes);
    for (const [marker, what] of [[0xc3, /lossless/], [0xc5, /hierarchical/], [0xca, /arithmetic/]] as const) {
      const bad = bytes.slice();
      bad[sof + 1] = marker;
      expect(expectCode(() => decodeJPEG(bad), 'INVALID_ARGUMENT').message).toMatch(what);
    }
    const twelve = bytes.slice();
    twelve[sof + 1] = 0xc1;
    twelve[sof + 4] = 12;
    expect(expectCode(() => decodeJPEG(twelve), 'INVALID_ARGUMENT').message).toMatch(/unsupported JPEG: 12-bit/);
  });

  test('oversized images are TOO_LARGE', () => {
    const bad = load('baseline_420.jpg').slice();
    bad.fill(0xff, sofOffset(bad) + 5, sofOffset(bad) + 9); // 65535 × 65535
    let err: unknown;
    try {
      decodeJPEG(bad);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(EdgeTuneError);
    expect((err as EdgeTuneError).code).toBe('TOO_LARGE');
  });

  test('a PNG and other non-JPEG input', () => {
    expect(expectCode(() => decodeJPEG(encodePNG(createImage(4, 3))), 'INVALID_ARGUMENT').message).toMatch(/not a readable JPEG/);
    expectCode(() => decodeJPEG(new Uint8Array(0)), 'INVALID_ARGUMENT');
    expectCode(() => decodeJPEG(new Uint8Array([0xff, 0xd8, 0xff, 0xd9])), 'INVALID_ARGUMENT');
    expectCode(() => decodeJPEG('not bytes' as unknown as Uint8Array), 'INVALID_ARGUMENT');
  });
});
