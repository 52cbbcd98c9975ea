// PNG encode/decode and the pure-TS inflate, against node:zlib and hand-built files.
import * as zlib from 'node:zlib';
import { describe, expect, test } from 'vitest';
import { createImage, type RGBAImage } from '../sdk/data/image.js';
import { zlibInflate, zlibStore } from '../sdk/data/inflate.js';
import { crc32, decodePNG, encodePNG } from '../sdk/data/png.js';
import { Rng } from '../sdk/data/rng.js';
import { sample } from '../sdk/data/worlds.js';
import { expectCode } from './helpers/errors.js';

function randomImage(w: number, h: number, seed: number, alpha = true): RGBAImage {
  const r = new Rng(seed);
  const img = createImage(w, h);
  for (let i = 0; i < img.data.length; i++) img.data[i] = i % 4 === 3 && !alpha ? 255 : r.int(0, 255);
  return img;
}

const same = (a: RGBAImage, b: RGBAImage) => a.width === b.width && a.height === b.height && Buffer.from(a.data).equals(Buffer.from(b.data));

describe('inflate', () => {
  const inputs: [string, Uint8Array][] = [
    ['empty', new Uint8Array(0)],
    ['random', Uint8Array.from(randomImage(50, 50, 1).data)],
    ['repetitive', Uint8Array.from({ length: 100_000 }, (_, i) => (i * 7) % 13 === 0 ? 255 : i % 5)],
    ['text', new TextEncoder().encode('what color is the circle? '.repeat(500))],
  ];
  const variants: [string, zlib.ZlibOptions][] = [
    ['level 0 (stored)', { level: 0 }],
    ['level 1', { level: 1 }],
    ['level 9', { level: 9 }],
    ['fixed Huffman', { strategy: zlib.constants.Z_FIXED }],
    ['Huffman only', { strategy: zlib.constants.Z_HUFFMAN_ONLY }],
    ['RLE', { strategy: zlib.constants.Z_RLE }],
  ];
  for (const [name, data] of inputs) {
    test(`${name}: node:zlib → zlibInflate`, () => {
      for (const [, opts] of variants) expect(Buffer.from(zlibInflate(zlib.deflateSync(data, opts))).equals(Buffer.from(data))).toBe(true);
      expect(Buffer.from(zlib.inflateSync(zlibStore(data))).equals(Buffer.from(data))).toBe(true);
      expect(Buffer.from(zlibInflate(zlibStore(data))).equals(Buffer.from(data))).toBe(true);
    });
  }

  test('stored output spans several blocks', () => {
    const big = Uint8Array.from({ length: 200_000 }, (_, i) => i & 255);
    expect(Buffer.from(zlibInflate(zlibStore(big))).equals(Buffer.from(big))).toBe(true);
  });

  test('corrupt streams', () => {
    const z = zlib.deflateSync(new TextEncoder().encode('a defect on concrete '.repeat(50)));
    expectCode(() => zlibInflate(z.subarray(0, z.length - 10)), 'INVALID_ARGUMENT');
    const bad = Uint8Array.from(z);
    bad[bad.length - 1]! ^= 1;
    expectCode(() => zlibInflate(bad), 'INVALID_ARGUMENT');
    expectCode(() => zlibInflate(Uint8Array.from([0x78, 0x9c, 0xff, 0xff, 0, 0, 0, 0])), 'INVALID_ARGUMENT');
    expectCode(() => zlibInflate(Uint8Array.from([1, 2, 3, 4, 5, 6])), 'INVALID_ARGUMENT');
  });
});

describe('encodePNG → decodePNG', () => {
  test('RGBA, RGB and gray with every filter, stored or compressed', () => {
    const img = randomImage(13, 9, 3);
    const opaque = randomImage(13, 9, 4, false);
    const gray = createImage(13, 9);
    for (let i = 0; i < gray.data.length; i += 4) gray.data.fill((i * 37) % 256, i, i + 3);
    for (const filter of [0, 1, 2, 3, 4, 'auto', [0, 1, 2, 3, 4]] as const) {
      for (const deflate of [undefined, (d: Uint8Array) => zlib.deflateSync(d)]) {
        expect(same(decodePNG(encodePNG(img, { filter, deflate })), img)).toBe(true);
        expect(same(decodePNG(encodePNG(opaque, { color: 'rgb', filter, deflate })), opaque)).toBe(true);
        expect(same(decodePNG(encodePNG(gray, { color: 'gray', filter, deflate })), gray)).toBe(true);
      }
    }
  });

  test('a world sample survives, and node:zlib reads our stream', () => {
    const s = sample('inspection', 11).image;
    const png = encodePNG(s);
    expect(same(decodePNG(png), s)).toBe(true);
    // The IDAT stream of a stored-block PNG is a valid zlib stream for node:zlib too.
    const idat = png.subarray(8 + 25 + 8, png.length - 12 - 4);
    expect(zlib.inflateSync(idat).length).toBe(64 * (64 * 4 + 1));
  });
});

// ----- hand-built PNGs: an independent writer (filters, chunks) used only by the tests -----

function be32(v: number): number[] {
  return [(v >>> 24) & 255, (v >>> 16) & 255, (v >>> 8) & 255, v & 255];
}

function pngChunk(type: string, body: Uint8Array | number[]): number[] {
  const b = Uint8Array.from(body);
  const typed = Uint8Array.from([...type].map((c) => c.charCodeAt(0)).concat(Array.from(b)));
  const crc = (zlib as unknown as { crc32?: (d: Uint8Array) => number }).crc32?.(typed) ?? crc32(typed);
  return [...be32(b.length), ...typed, ...be32(crc)];
}

/** Filters raw rows (bytes per row `rb`, bytes per pixel `bpp`) with the given type per row. */
function filterRows(rows: number[][], bpp: number, types: number[]): number[] {
  const out: number[] = [];
  rows.forEach((row, y) => {
    const up = y > 0 ? rows[y - 1]! : row.map(() => 0);
    const t = types[y % types.length]!;
    out.push(t);
    row.forEach((v, x) => {
      const a = x >= bpp ? row[x - bpp]! : 0, b = up[x]!, c = x >= bpp ? up[x - bpp]! : 0;
      let pred = 0;
      if (t === 1) pred = a;
      else if (t === 2) pred = b;
      else if (t === 3) pred = Math.floor((a + b) / 2);
      else if (t === 4) {
        const p = a + b - c, pa = Math.abs(p - a), pb = Math.abs(p - b), pc = Math.abs(p - c);
        pred = pa <= pb && pa <= pc ? a : pb <= pc ? b : c;
      }
      out.push((v - pred + 256) % 256);
    });
  });
  return out;
}

function handPNG(w: number, h: number, depth: number, ctype: number, rows: number[][], opts: { plte?: number[]; trns?: number[]; zopts?: zlib.ZlibOptions; interlace?: number } = {}): Uint8Array {
  const channels = { 0: 1, 2: 3, 3: 1, 4: 2, 6: 4 }[ctype]!;
  const bpp = Math.max(1, (channels * depth) >> 3);
  const raw = filterRows(rows, bpp, [0, 1, 2, 3, 4]);
  const idat = zlib.deflateSync(Uint8Array.from(raw), opts.zopts);
  const bytes = [137, 80, 78, 71, 13, 10, 26, 10, ...pngChunk('IHDR', [...be32(w), ...be32(h), depth, ctype, 0, 0, opts.interlace ?? 0])];
  if (opts.plte) bytes.push(...pngChunk('PLTE', opts.plte));
  if (opts.trns) bytes.push(...pngChunk('tRNS', opts.trns));
  bytes.push(...pngChunk('tEXt', [...new TextEncoder().encode('Comment\0edgetune test')]));
  // Split the data over two IDAT chunks.
  const half = Math.floor(idat.length / 2);
  bytes.push(...pngChunk('IDAT', Array.from(idat.subarray(0, half))), ...pngChunk('IDAT', Array.from(idat.subarray(half))), ...pngChunk('IEND', []));
  return Uint8Array.from(bytes);
}

describe('decodePNG on hand-built files (every filter type on successive rows)', () => {
  const W = 7, H = 10;
  const r = new Rng(99);
  const px = Array.from({ length: H }, () => Array.from({ length: W }, () => [r.int(0, 255), r.int(0, 255), r.int(0, 255), r.int(0, 255)]));

  function expectPixels(img: RGBAImage, want: (x: number, y: number) => number[]): void {
    expect([img.width, img.height]).toEqual([W, H]);
    for (let y = 0; y < H; y++) for (let x = 0; x < W; x++) expect(Array.from(img.data.subarray((y * W + x) * 4, (y * W + x) * 4 + 4))).toEqual(want(x, y));
  }

  test('RGBA 8-bit', () => {
    const png = handPNG(W, H, 8, 6, px.map((row) => row.flat()));
    expectPixels(decodePNG(png), (x, y) => px[y]![x]!);
  });

  test('RGB 8-bit, fixed Huffman, with a tRNS colour key', () => {
    const key = px[2]![3]!.slice(0, 3);
    const png = handPNG(W, H, 8, 2, px.map((row) => row.flatMap((p) => p.slice(0, 3))), { zopts: { strategy: zlib.constants.Z_FIXED }, trns: key.flatMap((v) => [0, v]) });
    expectPixels(decodePNG(png), (x, y) => {
      const p = px[y]![x]!.slice(0, 3);
      return [...p, p.every((v, i) => v === key[i]) ? 0 : 255];
    });
  });

  test('gray 8-bit and gray + alpha', () => {
    expectPixels(decodePNG(handPNG(W, H, 8, 0, px.map((row) => row.map((p) => p[0]!)))), (x, y) => {
      const g = px[y]![x]![0]!;
      return [g, g, g, 255];
    });
    expectPixels(decodePNG(handPNG(W, H, 8, 4, px.map((row) => row.flatMap((p) => [p[0]!, p[3]!])))), (x, y) => {
      const g = px[y]![x]![0]!;
      return [g, g, g, px[y]![x]![3]!];
    });
  });

  test('RGBA 16-bit keeps the high byte', () => {
    const rows = px.map((row) => row.flatMap((p) => p.flatMap((v) => [v, (v * 7) & 255])));
    expectPixels(decodePNG(handPNG(W, H, 16, 6, rows)), (x, y) => px[y]![x]!);
  });

  test('palette 8-bit and 4-bit with tRNS, gray 1-bit', () => {
    const plte = Array.from({ length: 16 }, (_, k) => [k * 16, 255 - k * 16, (k * 40) & 255]).flat();
    const trns = [0, 128];
    const idx = px.map((row) => row.map((p) => p[0]! & 15));
    const want = (x: number, y: number) => {
      const k = idx[y]![x]!;
      return [k * 16, 255 - k * 16, (k * 40) & 255, k < 2 ? trns[k]! : 255];
    };
    expectPixels(decodePNG(handPNG(W, H, 8, 3, idx, { plte, trns })), want);
    // 4-bit: two indices per byte, high nibble first, the row padded to a whole byte.
    const packed = idx.map((row) => Array.from({ length: Math.ceil(W / 2) }, (_, i) => (row[2 * i]! << 4) | (row[2 * i + 1] ?? 0)));
    expectPixels(decodePNG(handPNG(W, H, 4, 3, packed, { plte, trns })), want);
    const bits = px.map((row) => row.map((p) => p[1]! & 1));
    const packed1 = bits.map((row) => [row.reduce((acc, b, i) => acc | (b << (7 - i)), 0)]);
    expectPixels(decodePNG(handPNG(W, H, 1, 0, packed1)), (x, y) => {
      const g = bits[y]![x]! * 255;
      return [g, g, g, 255];
    });
  });

  test('bad files', () => {
    const good = handPNG(W, H, 8, 6, px.map((row) => row.flat()));
    expectCode(() => decodePNG(good.subarray(0, 40)), 'INVALID_ARGUMENT');
    expectCode(() => decodePNG(new TextEncoder().encode('GIF89a not a png at all')), 'INVALID_ARGUMENT');
    const flipped = Uint8Array.from(good);
    flipped[40]! ^= 0x10; // inside IHDR's CRC-covered bytes or the next chunk
    expectCode(() => decodePNG(flipped), 'INVALID_ARGUMENT');
    expectCode(() => decodePNG(handPNG(W, H, 8, 6, px.map((row) => row.flat()), { interlace: 1 })), 'INVALID_ARGUMENT');
    expectCode(() => decodePNG(handPNG(W, H, 8, 3, px.map((row) => row.map((p) => p[0]!)), { plte: [0, 0, 0] })), 'INVALID_ARGUMENT');
    expectCode(() => encodePNG({ width: 0, height: 0, data: new Uint8ClampedArray(0) }), 'INVALID_ARGUMENT');
  });
});
