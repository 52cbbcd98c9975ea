// PNG encode and decode in pure TS (any runtime, synchronous).
// decodePNG: bit depths 1/2/4/8/16, colour types gray, RGB, palette, gray+alpha, RGBA, tRNS,
// all five filter types; not interlaced (Adam7 → INVALID_ARGUMENT). 16-bit samples keep
// their high byte. Output is always RGBA 8-bit.
// encodePNG: 8-bit RGBA, RGB or gray; per-row filter chosen by the usual minimum-sum-of-
// absolute-differences heuristic (or fixed); compression by the caller's zlib `deflate`
// (e.g. node:zlib's deflateSync) or, by default, stored blocks.
import { EdgeTuneError } from '../errors.js';
import { checkImage, type RGBAImage } from './image.js';
import { zlibInflate, zlibStore } from './inflate.js';

const SIGNATURE = [137, 80, 78, 71, 13, 10, 26, 10];
const MAX_PIXELS = 1 << 28;

let crcTable: Uint32Array | null = null;
export function crc32(data: Uint8Array, crc = 0): number {
  if (!crcTable) {
    crcTable = new Uint32Array(256);
    for (let n = 0; n < 256; n++) {
      let c = n;
      for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
      crcTable[n] = c >>> 0;
    }
  }
  let c = ~crc >>> 0;
  for (let i = 0; i < data.length; i++) c = crcTable[(c ^ data[i]!) & 255]! ^ (c >>> 8);
  return ~c >>> 0;
}

function corrupt(message: string): never {
  throw new EdgeTuneError('INVALID_ARGUMENT', `not a readable PNG: ${message}`);
}

/** True when the bytes start with the PNG signature. */
export function isPNG(bytes: Uint8Array): boolean {
  return bytes.length >= 8 && SIGNATURE.every((b, i) => bytes[i] === b);
}

function paeth(a: number, b: number, c: number): number {
  const p = a + b - c;
  const pa = Math.abs(p - a), pb = Math.abs(p - b), pc = Math.abs(p - c);
  return pa <= pb && pa <= pc ? a : pb <= pc ? b : c;
}

/** Reverses the filters in place; `raw` is height rows of (1 + rowBytes) bytes. */
function unfilter(raw: Uint8Array, height: number, rowBytes: number, bpp: number): Uint8Array {
  const out = new Uint8Array(height * rowBytes);
  for (let y = 0; y < height; y++) {
    const f = raw[y * (rowBytes + 1)]!;
    const src = y * (rowBytes + 1) + 1, dst = y * rowBytes, up = dst - rowBytes;
    for (let x = 0; x < rowBytes; x++) {
      const a = x >= bpp ? out[dst + x - bpp]! : 0;
      const b = y > 0 ? out[up + x]! : 0;
      const c = x >= bpp && y > 0 ? out[up + x - bpp]! : 0;
      const v = raw[src + x]!;
      switch (f) {
        case 0: out[dst + x] = v; break;
        case 1: out[dst + x] = v + a; break;
        case 2: out[dst + x] = v + b; break;
        case 3: out[dst + x] = v + ((a + b) >> 1); break;
        case 4: out[dst + x] = v + paeth(a, b, c); break;
        default: corrupt(`unknown filter type ${f} on row ${y}`);
      }
    }
  }
  return out;
}

const CHANNELS: Record<number, number> = { 0: 1, 2: 3, 3: 1, 4: 2, 6: 4 };
const DEPTHS: Record<number, number[]> = { 0: [1, 2, 4, 8, 16], 2: [8, 16], 3: [1, 2, 4, 8], 4: [8, 16], 6: [8, 16] };

/** Decodes PNG bytes into an RGBA image. Errors: INVALID_ARGUMENT (corrupt), TOO_LARGE. */
export function decodePNG(bytes: Uint8Array): RGBAImage {
  if (!(bytes instanceof Uint8Array)) corrupt('expected a Uint8Array');
  if (!isPNG(bytes)) corrupt('missing the PNG signature');
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let p = 8;
  let width = 0, height = 0, depth = 0, ctype = -1, interlace = 0;
  let palette: Uint8Array | null = null, trns: Uint8Array | null = null;
  const idat: Uint8Array[] = [];
  let ended = false;
  while (!ended) {
    if (p + 12 > bytes.length) corrupt('truncated (no IEND chunk)');
    const len = dv.getUint32(p);
    const type = String.fromCharCode(bytes[p + 4]!, bytes[p + 5]!, bytes[p + 6]!, bytes[p + 7]!);
    if (len > bytes.length - p - 12) corrupt(`chunk ${type} is truncated`);
    const body = bytes.subarray(p + 8, p + 8 + len);
    if (crc32(bytes.subarray(p + 4, p + 8 + len)) !== dv.getUint32(p + 8 + len)) corrupt(`CRC mismatch in chunk ${type}`);
    p += 12 + len;
    if (type === 'IHDR') {
      if (len !== 13) corrupt('IHDR has the wrong length');
      const h = new DataView(body.buffer, body.byteOffset, 13);
      width = h.getUint32(0);
      height = h.getUint32(4);
      depth = body[8]!;
      ctype = body[9]!;
      interlace = body[12]!;
      if (body[10] !== 0 || body[11] !== 0) corrupt('unknown compression or filter method');
    } else if (type === 'PLTE') palette = body;
    else if (type === 'tRNS') trns = body;
    else if (type === 'IDAT') idat.push(body);
    else if (type === 'IEND') ended = true;
    else if (!(type.charCodeAt(0) & 32)) corrupt(`unknown critical chunk ${type}`);
  }
  if (ctype < 0) corrupt('no IHDR chunk');
  if (!(ctype in CHANNELS) || !DEPTHS[ctype]!.includes(depth)) corrupt(`colour type ${ctype} with bit depth ${depth} is not valid PNG`);
  if (interlace !== 0) corrupt('interlaced (Adam7) PNGs are not supported; save it non-interlaced');
  if (width < 1 || height < 1) throw new EdgeTuneError('INVALID_ARGUMENT', `PNG has zero size (${width}×${height})`);
  if (width * height > MAX_PIXELS) throw new EdgeTuneError('TOO_LARGE', `PNG is ${width}×${height}; at most 2^28 pixels are supported`);
  if (ctype === 3 && !palette) corrupt('palette image without PLTE');
  if (idat.length === 0) corrupt('no IDAT chunk');
  const zlen = idat.reduce((s, c) => s + c.length, 0);
  const z = new Uint8Array(zlen);
  let o = 0;
  for (const c of idat) {
    z.set(c, o);
    o += c.length;
  }
  const channels = CHANNELS[ctype]!;
  const bitsPerPixel = channels * depth;
  const rowBytes = Math.ceil((width * bitsPerPixel) / 8);
  const bpp = Math.max(1, bitsPerPixel >> 3);
  const raw = zlibInflate(z, height * (rowBytes + 1));
  if (raw.length < height * (rowBytes + 1)) corrupt(`image data is ${raw.length} bytes, ${height * (rowBytes + 1)} expected`);
  const px = unfilter(raw, height, rowBytes, bpp);

  const out = new Uint8ClampedArray(width * height * 4);
  // The i-th sample of a row as stored (16-bit: both bytes; 1/2/4-bit: unpacked).
  const rawSample = (row: number, i: number): number => {
    const base = row * rowBytes;
    if (depth === 8) return px[base + i]!;
    if (depth === 16) return (px[base + 2 * i]! << 8) | px[base + 2 * i + 1]!;
    const perByte = 8 / depth;
    return (px[base + Math.floor(i / perByte)]! >> (8 - depth * ((i % perByte) + 1))) & ((1 << depth) - 1);
  };
  // Scaled to 8 bits: 16-bit keeps the high byte, 1/2/4-bit gray is stretched to 0..255.
  const to8 = (v: number): number => (depth === 16 ? v >> 8 : depth === 8 || ctype === 3 ? v : Math.round((v * 255) / ((1 << depth) - 1)));
  const key = (k: number): number => (trns ? (trns[2 * k]! << 8) | trns[2 * k + 1]! : -1);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const q = (y * width + x) * 4;
      if (ctype === 0 || ctype === 4) {
        const g = rawSample(y, x * channels);
        out[q] = out[q + 1] = out[q + 2] = to8(g);
        out[q + 3] = ctype === 4 ? to8(rawSample(y, x * 2 + 1)) : trns && trns.length >= 2 && g === key(0) ? 0 : 255;
      } else if (ctype === 2 || ctype === 6) {
        const r = rawSample(y, x * channels), g = rawSample(y, x * channels + 1), b = rawSample(y, x * channels + 2);
        out[q] = to8(r);
        out[q + 1] = to8(g);
        out[q + 2] = to8(b);
        const transparent = ctype === 2 && trns !== null && trns.length >= 6 && r === key(0) && g === key(1) && b === key(2);
        out[q + 3] = ctype === 6 ? to8(rawSample(y, x * 4 + 3)) : transparent ? 0 : 255;
      } else {
        const k = rawSample(y, x);
        if (3 * k + 2 >= palette!.length) corrupt(`palette index ${k} is outside the palette`);
        out[q] = palette![3 * k]!;
        out[q + 1] = palette![3 * k + 1]!;
        out[q + 2] = palette![3 * k + 2]!;
        out[q + 3] = trns && k < trns.length ? trns[k]! : 255;
      }
    }
  }
  return { width, height, data: out };
}

export interface EncodePNGOptions {
  /** 'rgba' (default), 'rgb' (alpha dropped) or 'gray' (the mean of R, G and B). */
  color?: 'rgba' | 'rgb' | 'gray';
  /** A filter type 0-4 for every row, 'auto' (default, per-row heuristic), or one per row. */
  filter?: number | 'auto' | readonly number[];
  /** A zlib compressor (RFC 1950 stream out); default: stored blocks (no compression). */
  deflate?: (data: Uint8Array) => Uint8Array;
}

function chunk(type: string, body: Uint8Array): Uint8Array {
  const out = new Uint8Array(12 + body.length);
  const dv = new DataView(out.buffer);
  dv.setUint32(0, body.length);
  for (let i = 0; i < 4; i++) out[4 + i] = type.charCodeAt(i);
  out.set(body, 8);
  dv.setUint32(8 + body.length, crc32(out.subarray(4, 8 + body.length)));
  return out;
}

function filterRow(f: number, cur: Uint8Array, prev: Uint8Array | null, bpp: number, out: Uint8Array, at: number): void {
  out[at] = f;
  for (let x = 0; x < cur.length; x++) {
    const a = x >= bpp ? cur[x - bpp]! : 0, b = prev ? prev[x]! : 0, c = x >= bpp && prev ? prev[x - bpp]! : 0;
    const pred = f === 0 ? 0 : f === 1 ? a : f === 2 ? b : f === 3 ? (a + b) >> 1 : paeth(a, b, c);
    out[at + 1 + x] = (cur[x]! - pred) & 255;
  }
}

/** Encodes an RGBA image as an 8-bit PNG. */
export function encodePNG(img: RGBAImage, options: EncodePNGOptions = {}): Uint8Array {
  checkImage(img);
  const { width: w, height: h, data } = img;
  const color = options.color ?? 'rgba';
  const channels = color === 'rgba' ? 4 : color === 'rgb' ? 3 : 1;
  const rowBytes = w * channels;
  const raw = new Uint8Array(h * (rowBytes + 1));
  let prev: Uint8Array | null = null;
  const trial = new Uint8Array(rowBytes + 1);
  for (let y = 0; y < h; y++) {
    const cur = new Uint8Array(rowBytes);
    for (let x = 0; x < w; x++) {
      const s = (y * w + x) * 4;
      if (channels === 1) cur[x] = Math.round((data[s]! + data[s + 1]! + data[s + 2]!) / 3);
      else for (let c = 0; c < channels; c++) cur[x * channels + c] = data[s + c]!;
    }
    const at = y * (rowBytes + 1);
    const opt = options.filter ?? 'auto';
    if (opt === 'auto') {
      let best = Infinity;
      for (let f = 0; f < 5; f++) {
        filterRow(f, cur, prev, channels, trial, 0);
        let sum = 0;
        for (let i = 1; i < trial.length; i++) sum += trial[i]! < 128 ? trial[i]! : 256 - trial[i]!;
        if (sum < best) {
          best = sum;
          raw.set(trial, at);
        }
      }
    } else {
      const f = typeof opt === 'number' ? opt : opt[y % opt.length]!;
      if (!Number.isInteger(f) || f < 0 || f > 4) throw new EdgeTuneError('INVALID_ARGUMENT', `PNG filter type must be 0-4, got ${String(f)}`);
      filterRow(f, cur, prev, channels, raw, at);
    }
    prev = cur;
  }
  const ihdr = new Uint8Array(13);
  const dv = new DataView(ihdr.buffer);
  dv.setUint32(0, w);
  dv.setUint32(4, h);
  ihdr[8] = 8;
  ihdr[9] = color === 'rgba' ? 6 : color === 'rgb' ? 2 : 0;
  const z = (options.deflate ?? zlibStore)(raw);
  const parts = [new Uint8Array(SIGNATURE), chunk('IHDR', ihdr), chunk('IDAT', z), chunk('IEND', new Uint8Array(0))];
  const out = new Uint8Array(parts.reduce((s, c) => s + c.length, 0));
  let o = 0;
  for (const c of parts) {
    out.set(c, o);
    o += c.length;
  }
  return out;
}
