// JPEG decode in pure TS (any runtime, synchronous). Output is always RGBA 8-bit, alpha 255.
// Supported:
// - baseline sequential (SOF0) and extended sequential Huffman with 8-bit samples (SOF1);
// - progressive Huffman (SOF2): spectral selection and successive approximation;
// - 1 component (grayscale) or 3 (YCbCr as in JFIF; RGB when an Adobe APP14 segment says
//   transform 0, or, with neither JFIF nor Adobe segment, when the component ids are 'R','G','B');
// - any sampling factors 1-4 (4:4:4, 4:2:2, 4:2:0, 4:4:0, ...); 2× ratios are upsampled with
//   libjpeg's default "fancy" triangle filter, other integer ratios by replication;
// - restart intervals (DRI / RSTn); after corrupt data, decoding resyncs at the next RSTn;
// - 8- and 16-bit quantisation tables; a float IDCT rounded and clamped to 0..255;
// - colour conversion: JFIF YCbCr → RGB in 16-bit fixed point (libjpeg's rounding).
// Unsupported (INVALID_ARGUMENT 'unsupported JPEG: …'): arithmetic coding (SOF9-15, DAC),
// 12-bit precision, lossless (SOF3), hierarchical (SOF5-7, DHP, EXP), 2 or 4 components
// (CMYK / YCCK), a height given later by a DNL marker.
// Corrupt or truncated files → INVALID_ARGUMENT 'not a readable JPEG: …' (data cut short
// inside a scan is an error; a missing EOI after complete scans is not); > 2^28 pixels →
// TOO_LARGE. Entropy-coded data interrupted by an unexpected marker is zero-filled, as
// libjpeg does, so a damaged file still decodes to an image of the declared size.
import { EdgeTuneError } from '../errors.js';
import type { RGBAImage } from './image.js';

const MAX_PIXELS = 1 << 28;

function corrupt(message: string): never {
  throw new EdgeTuneError('INVALID_ARGUMENT', `not a readable JPEG: ${message}`);
}

function unsupported(message: string): never {
  throw new EdgeTuneError('INVALID_ARGUMENT', `unsupported JPEG: ${message}`);
}

const hex = (m: number): string => `FF${m.toString(16).toUpperCase().padStart(2, '0')}`;

/** True when the bytes start with the SOI marker followed by another marker (FF D8 FF). */
export function isJPEG(bytes: Uint8Array): boolean {
  return bytes.length >= 3 && bytes[0] === 0xff && bytes[1] === 0xd8 && bytes[2] === 0xff;
}

/** ZIGZAG[k]: the row-major position in an 8×8 block of the k-th coefficient in zigzag order. */
const ZIGZAG = (() => {
  const zz = new Uint8Array(64);
  let k = 0;
  for (let s = 0; s < 15; s++) {
    // Anti-diagonal row + col = s, walked upwards on even s and downwards on odd s.
    const lo = Math.max(0, s - 7), hi = Math.min(s, 7);
    for (let i = 0; i <= hi - lo; i++) {
      const row = s % 2 ? lo + i : hi - i;
      zz[k++] = row * 8 + (s - row);
    }
  }
  return zz;
})();

/** IDCT_COS[x * 8 + u] = C(u)/2 · cos((2x + 1)uπ/16), C(0) = 1/√2, else 1 (T.81 A.3.3). */
const IDCT_COS = (() => {
  const t = new Float64Array(64);
  for (let x = 0; x < 8; x++) {
    for (let u = 0; u < 8; u++) t[x * 8 + u] = ((u === 0 ? Math.SQRT1_2 : 1) / 2) * Math.cos(((2 * x + 1) * u * Math.PI) / 16);
  }
  return t;
})();

/**
 * A Huffman table as a lookup on the next 16 bits of the stream: entry = (code length << 8) |
 * symbol, 0 where no code matches. Codes are assigned as in T.81 Annex C.
 */
function buildHuffman(counts: Uint8Array, symbols: Uint8Array): Uint16Array {
  const lut = new Uint16Array(65536);
  let code = 0, k = 0;
  for (let len = 1; len <= 16; len++) {
    for (let i = 0; i < counts[len - 1]!; i++) {
      if (code >= 1 << len) corrupt('a Huffman table has more codes than its code lengths allow');
      const span = 1 << (16 - len);
      lut.fill((len << 8) | symbols[k++]!, code * span, (code + 1) * span);
      code++;
    }
    code <<= 1;
  }
  return lut;
}

/** Index of the next marker (FF followed by neither 00 nor FF) at or after p; ≥ length − 1 if none. */
function nextMarker(d: Uint8Array, p: number): number {
  while (p + 1 < d.length && !(d[p] === 0xff && d[p + 1] !== 0 && d[p + 1] !== 0xff)) p++;
  return p;
}

/**
 * Bits of entropy-coded data, most significant first, with FF 00 unstuffed. At a marker the
 * reader stops (leaving `pos` on it) and supplies zero bits, as libjpeg does; consuming bits
 * from beyond the end of the file is an error (the file is truncated).
 */
class BitReader {
  private acc = 0; // the n unread bits, right-aligned
  private n = 0;
  private fake = 0; // how many of those bits are padding past the end of the file
  atMarker = false;

  constructor(private readonly d: Uint8Array, public pos: number) {}

  private byte(): number {
    const d = this.d;
    if (this.atMarker) return 0;
    if (this.pos >= d.length || (d[this.pos] === 0xff && this.pos + 1 >= d.length)) {
      this.fake += 8; // past the end of the file
      return 0;
    }
    const b = d[this.pos]!;
    if (b !== 0xff) {
      this.pos++;
      return b;
    }
    if (d[this.pos + 1] === 0) {
      this.pos += 2; // a stuffed FF 00
      return 0xff;
    }
    this.atMarker = true;
    return 0;
  }

  private fill(k: number): void {
    while (this.n < k) {
      this.acc = (this.acc << 8) | this.byte();
      this.n += 8;
    }
  }

  private skip(k: number): void {
    if (this.n - k < this.fake) corrupt('truncated (the file ends inside the image data)');
    this.n -= k;
    this.acc &= (1 << this.n) - 1;
  }

  /** The next k bits (0 ≤ k ≤ 16) as an unsigned number. */
  bits(k: number): number {
    if (k === 0) return 0;
    this.fill(k);
    const v = this.acc >>> (this.n - k);
    this.skip(k);
    return v;
  }

  /** The value coded by a k-bit magnitude category (T.81 F.2.2.1, EXTEND). */
  signed(k: number): number {
    if (k === 0) return 0;
    const v = this.bits(k);
    return v < 1 << (k - 1) ? v - (1 << k) + 1 : v;
  }

  decode(lut: Uint16Array): number {
    this.fill(16);
    const e = lut[(this.acc >>> (this.n - 16)) & 0xffff]!;
    if (e === 0) corrupt('bad Huffman code in the image data');
    this.skip(e >> 8);
    return e & 255;
  }

  /** Drops the buffered bits (before a restart marker). */
  reset(): void {
    this.acc = this.n = this.fake = 0;
    this.atMarker = false;
  }
}

interface Component {
  id: number;
  h: number;
  v: number;
  tq: number;
  /** Size in samples: ⌈width·h/hmax⌉ × ⌈height·v/vmax⌉ (T.81 A.1.1). */
  w: number;
  hgt: number;
  /** Blocks per row and per column, rounded up to whole MCUs. */
  bw: number;
  bh: number;
  /** bw·bh blocks of 64 coefficients in row-major order (not zigzag). */
  coefs: Int16Array;
  /** The quantisation table (row-major), latched at the component's first scan. */
  quant: Uint16Array | null;
  pred: number;
}

interface Frame {
  width: number;
  height: number;
  progressive: boolean;
  comps: Component[];
  hmax: number;
  vmax: number;
  mcusX: number;
  mcusY: number;
}

interface ScanComponent {
  c: Component;
  dc: Uint16Array | null;
  ac: Uint16Array | null;
}

const u16 = (d: Uint8Array, i: number): number => (d[i]! << 8) | d[i + 1]!;

function parseFrame(seg: Uint8Array, progressive: boolean): Frame {
  if (seg.length < 6) corrupt('the frame header (SOF) is too short');
  const precision = seg[0]!, height = u16(seg, 1), width = u16(seg, 3), n = seg[5]!;
  if (precision !== 8) unsupported(`${precision}-bit precision (only 8-bit samples are supported)`);
  if (height === 0) unsupported('the height is given by a DNL marker after the first scan');
  if (width === 0) corrupt('the width is zero');
  if (width * height > MAX_PIXELS) throw new EdgeTuneError('TOO_LARGE', `JPEG is ${width}×${height}; at most 2^28 pixels are supported`);
  if (n === 0 || seg.length < 6 + 3 * n) corrupt('the frame header (SOF) is too short');
  if (n === 4) unsupported('4-component (CMYK / YCCK) images; convert it to RGB');
  if (n !== 1 && n !== 3) unsupported(`${n} colour components (1 or 3 are supported)`);
  const comps: Component[] = [];
  for (let i = 0; i < n; i++) {
    const id = seg[6 + 3 * i]!, hv = seg[7 + 3 * i]!, tq = seg[8 + 3 * i]!;
    const h = hv >> 4, v = hv & 15;
    if (h < 1 || h > 4 || v < 1 || v > 4) corrupt(`sampling factors ${h}×${v} are outside 1-4`);
    if (tq > 3) corrupt(`quantisation table ${tq} does not exist`);
    if (comps.some((c) => c.id === id)) corrupt(`component id ${id} appears twice`);
    comps.push({ id, h, v, tq, w: 0, hgt: 0, bw: 0, bh: 0, coefs: new Int16Array(0), quant: null, pred: 0 });
  }
  const hmax = Math.max(...comps.map((c) => c.h)), vmax = Math.max(...comps.map((c) => c.v));
  const mcusX = Math.ceil(width / (8 * hmax)), mcusY = Math.ceil(height / (8 * vmax));
  for (const c of comps) {
    c.w = Math.ceil((width * c.h) / hmax);
    c.hgt = Math.ceil((height * c.v) / vmax);
    c.bw = mcusX * c.h;
    c.bh = mcusY * c.v;
    c.coefs = new Int16Array(c.bw * c.bh * 64);
  }
  return { width, height, progressive, comps, hmax, vmax, mcusX, mcusY };
}

/** Decodes one scan's entropy-coded data starting at `pos`; returns where it ended. */
function decodeScan(
  d: Uint8Array, pos: number, frame: Frame, scan: ScanComponent[],
  ss: number, se: number, ah: number, al: number, restartInterval: number,
): number {
  const bits = new BitReader(d, pos);
  let eobrun = 0;

  const sequential = (sc: ScanComponent, o: number): void => {
    const coefs = sc.c.coefs;
    const s = bits.decode(sc.dc!);
    if (s > 15) corrupt('bad DC difference category');
    sc.c.pred += bits.signed(s);
    coefs[o] = sc.c.pred;
    for (let k = 1; k < 64;) {
      const rs = bits.decode(sc.ac!), r = rs >> 4, s = rs & 15;
      if (s === 0) {
        if (r < 15) break; // end of block
        k += 16; // sixteen zeros
        continue;
      }
      k += r;
      if (k > 63) corrupt('AC coefficients run past the end of a block');
      coefs[o + ZIGZAG[k]!] = bits.signed(s);
      k++;
    }
  };

  const dcFirst = (sc: ScanComponent, o: number): void => {
    const s = bits.decode(sc.dc!);
    if (s > 15) corrupt('bad DC difference category');
    sc.c.pred += bits.signed(s);
    sc.c.coefs[o] = sc.c.pred * (1 << al);
  };

  const dcRefine = (sc: ScanComponent, o: number): void => {
    if (bits.bits(1)) sc.c.coefs[o] |= 1 << al;
  };

  const acFirst = (sc: ScanComponent, o: number): void => {
    if (eobrun > 0) {
      eobrun--;
      return;
    }
    const coefs = sc.c.coefs;
    for (let k = ss; k <= se;) {
      const rs = bits.decode(sc.ac!), r = rs >> 4, s = rs & 15;
      if (s === 0) {
        if (r < 15) {
          eobrun = (1 << r) - 1 + bits.bits(r); // this block ends here, and so do the next ones
          break;
        }
        k += 16;
        continue;
      }
      k += r;
      if (k > 63) corrupt('AC coefficients run past the end of a block');
      coefs[o + ZIGZAG[k]!] = bits.signed(s) * (1 << al);
      k++;
    }
  };

  // Successive approximation of AC coefficients (T.81 G.1.2.3): a coefficient that is already
  // nonzero gets one correction bit; a new one (±1 at this bit) is placed after r zeros that
  // have no history, skipping the nonzero coefficients in between.
  const acRefine = (sc: ScanComponent, o: number): void => {
    const coefs = sc.c.coefs, p1 = 1 << al, m1 = -p1;
    const correct = (z: number): void => {
      if (bits.bits(1) && (coefs[z]! & p1) === 0) coefs[z] += coefs[z]! >= 0 ? p1 : m1;
    };
    let k = ss;
    while (eobrun === 0 && k <= se) {
      const rs = bits.decode(sc.ac!);
      let r = rs >> 4;
      const s = rs & 15;
      let value = 0;
      if (s === 0) {
        if (r < 15) {
          eobrun = (1 << r) + bits.bits(r); // counts this block
          break;
        }
      } else {
        if (s !== 1) corrupt('bad refinement code');
        value = bits.bits(1) ? p1 : m1;
      }
      for (; k <= se; k++) {
        const z = o + ZIGZAG[k]!;
        if (coefs[z] !== 0) correct(z);
        else if (r === 0) {
          if (value) coefs[z] = value;
          k++;
          break;
        } else r--;
      }
    }
    if (eobrun > 0) {
      for (; k <= se; k++) {
        const z = o + ZIGZAG[k]!;
        if (coefs[z] !== 0) correct(z);
      }
      eobrun--;
    }
  };

  const block = !frame.progressive ? sequential : ss === 0 ? (ah === 0 ? dcFirst : dcRefine) : ah === 0 ? acFirst : acRefine;
  // One component alone is not interleaved: an MCU is one block, over the component's own extent.
  const single = scan.length === 1 ? scan[0]! : null;
  const mcusX = single ? Math.ceil(single.c.w / 8) : frame.mcusX;
  const mcusY = single ? Math.ceil(single.c.hgt / 8) : frame.mcusY;
  for (const sc of scan) sc.c.pred = 0;
  for (let m = 0; m < mcusX * mcusY; m++) {
    if (restartInterval > 0 && m > 0 && m % restartInterval === 0) {
      bits.reset();
      const p = nextMarker(d, bits.pos);
      if (p + 1 >= d.length) corrupt('truncated (the file ends inside the image data)');
      if (d[p + 1]! >= 0xd0 && d[p + 1]! <= 0xd7) bits.pos = p + 2;
      else {
        bits.pos = p; // not a restart: zeros until the end of the scan
        bits.atMarker = true;
      }
      eobrun = 0;
      for (const sc of scan) sc.c.pred = 0;
    }
    const mx = m % mcusX, my = (m - mx) / mcusX;
    if (single) block(single, (my * single.c.bw + mx) * 64);
    else {
      for (const sc of scan) {
        const c = sc.c;
        for (let v = 0; v < c.v; v++) {
          for (let h = 0; h < c.h; h++) block(sc, ((my * c.v + v) * c.bw + mx * c.h + h) * 64);
        }
      }
    }
  }
  return bits.pos;
}

/** Dequantises and inverse-transforms a component into samples, bw·8 per row. */
function componentSamples(c: Component): Uint8Array {
  const stride = c.bw * 8;
  const out = new Uint8Array(stride * c.bh * 8);
  if (!c.quant) return out.fill(128); // never in a scan: every coefficient is zero
  const q = c.quant, f = new Float64Array(64), t = new Float64Array(64);
  const rows = Math.ceil(c.hgt / 8), cols = Math.ceil(c.w / 8);
  for (let by = 0; by < rows; by++) {
    for (let bx = 0; bx < cols; bx++) {
      const o = (by * c.bw + bx) * 64, at = by * 8 * stride + bx * 8;
      let ac = false;
      for (let i = 0; i < 64; i++) {
        f[i] = c.coefs[o + i]! * q[i]!;
        if (i > 0 && f[i] !== 0) ac = true;
      }
      if (!ac) {
        // Only a DC term: a flat block (the 1/8 is C(0)²/4 of the 2-D transform).
        const v = Math.min(255, Math.max(0, Math.round(f[0]! / 8 + 128)));
        for (let y = 0; y < 8; y++) out.fill(v, at + y * stride, at + y * stride + 8);
        continue;
      }
      // Rows: t[v][x] = Σ_u C[x][u] F[v][u]; then columns: s[y][x] = Σ_v C[y][v] t[v][x].
      for (let v = 0; v < 8; v++) {
        let zero = true;
        for (let u = 0; u < 8; u++) if (f[v * 8 + u] !== 0) zero = false;
        for (let x = 0; x < 8; x++) {
          let sum = 0;
          if (!zero) for (let u = 0; u < 8; u++) sum += IDCT_COS[x * 8 + u]! * f[v * 8 + u]!;
          t[v * 8 + x] = sum;
        }
      }
      for (let y = 0; y < 8; y++) {
        for (let x = 0; x < 8; x++) {
          let sum = 0;
          for (let v = 0; v < 8; v++) sum += IDCT_COS[y * 8 + v]! * t[v * 8 + x]!;
          out[at + y * stride + x] = Math.min(255, Math.max(0, Math.round(sum + 128)));
        }
      }
    }
  }
  return out;
}

/**
 * The component's samples at full resolution (width × height). Halved dimensions use
 * libjpeg's default triangle filter (3/4 of the nearer sample, 1/4 of the next, with its
 * rounding biases and edge replication), so results match djpeg; other ratios replicate.
 */
function upsample(c: Component, s: Uint8Array, frame: Frame): Uint8Array {
  const { width, height, hmax, vmax } = frame;
  const stride = c.bw * 8, cw = c.w, ch = c.hgt;
  const hr = hmax / c.h, vr = vmax / c.v;
  const out = new Uint8Array(width * height);
  const at = (x: number, y: number): number => s[y * stride + x]!;
  for (let y = 0; y < height; y++) {
    const o = y * width;
    if (hr === 1 && vr === 1) out.set(s.subarray(y * stride, y * stride + width), o);
    else if (hr === 2 && vr === 1 && cw > 2) {
      for (let x = 0; x < width; x++) {
        const i = x >> 1, near = 3 * at(i, y);
        out[o + x] = x & 1 ? (near + at(Math.min(i + 1, cw - 1), y) + 2) >> 2 : (near + at(Math.max(i - 1, 0), y) + 1) >> 2;
      }
    } else if (hr === 1 && vr === 2) {
      const i = y >> 1, far = y & 1 ? Math.min(i + 1, ch - 1) : Math.max(i - 1, 0), bias = y & 1 ? 2 : 1;
      for (let x = 0; x < width; x++) out[o + x] = (3 * at(x, i) + at(x, far) + bias) >> 2;
    } else if (hr === 2 && vr === 2 && cw > 2) {
      const i = y >> 1, far = y & 1 ? Math.min(i + 1, ch - 1) : Math.max(i - 1, 0);
      const col = (j: number): number => 3 * at(j, i) + at(j, far);
      for (let x = 0; x < width; x++) {
        const j = x >> 1, near = 3 * col(j);
        out[o + x] = x & 1 ? (near + col(Math.min(j + 1, cw - 1)) + 7) >> 4 : (near + col(Math.max(j - 1, 0)) + 8) >> 4;
      }
    } else {
      const row = Math.floor((y * c.v) / vmax) * stride;
      for (let x = 0; x < width; x++) out[o + x] = s[row + Math.floor((x * c.h) / hmax)]!;
    }
  }
  return out;
}

// JFIF YCbCr → RGB in 16-bit fixed point: R = Y + 1.402 Cr', G = Y − 0.34414 Cb' − 0.71414 Cr',
// B = Y + 1.772 Cb' (Cb' = Cb − 128, Cr' = Cr − 128), each rounded to nearest.
const FIX = (x: number): number => Math.floor(x * 65536 + 0.5);
const HALF = 1 << 15;
const CR_R = new Int32Array(256), CB_B = new Int32Array(256), CR_G = new Int32Array(256), CB_G = new Int32Array(256);
for (let i = 0; i < 256; i++) {
  const x = i - 128;
  CR_R[i] = (FIX(1.402) * x + HALF) >> 16;
  CB_B[i] = (FIX(1.772) * x + HALF) >> 16;
  CR_G[i] = -FIX(0.71414) * x;
  CB_G[i] = -FIX(0.34414) * x + HALF;
}

/** Decodes JPEG bytes into an RGBA image. Errors: INVALID_ARGUMENT (corrupt or unsupported), TOO_LARGE. */
export function decodeJPEG(bytes: Uint8Array): RGBAImage {
  if (!(bytes instanceof Uint8Array)) corrupt('expected a Uint8Array');
  if (!isJPEG(bytes)) corrupt('missing the SOI marker (FF D8)');
  try {
    return decode(bytes);
  } catch (e) {
    // A declared size under the limit can still be more than this runtime can allocate.
    if (e instanceof RangeError) throw new EdgeTuneError('TOO_LARGE', `JPEG needs more memory than is available (${e.message})`, { cause: e });
    throw e;
  }
}

function decode(bytes: Uint8Array): RGBAImage {
  const quant: (Uint16Array | undefined)[] = [];
  const dcTables: (Uint16Array | undefined)[] = [], acTables: (Uint16Array | undefined)[] = [];
  let frame: Frame | null = null;
  let restartInterval = 0, adobeTransform = -1, jfif = false, scans = 0;
  let pos = 2;
  for (;;) {
    pos = nextMarker(bytes, pos);
    if (pos + 1 >= bytes.length) {
      if (frame && scans > 0) break; // no EOI, but every scan before it was complete
      corrupt('truncated (no image data before the end of the file)');
    }
    const marker = bytes[pos + 1]!;
    pos += 2;
    if (marker === 0xd9) break; // EOI
    if ((marker >= 0xd0 && marker <= 0xd7) || marker === 0x01) continue; // RSTn, TEM: no segment
    if (marker === 0xd8) corrupt('a second SOI marker');
    if (pos + 2 > bytes.length) corrupt(`segment ${hex(marker)} is truncated`);
    const len = u16(bytes, pos);
    if (len < 2 || pos + len > bytes.length) corrupt(`segment ${hex(marker)} is truncated`);
    const seg = bytes.subarray(pos + 2, pos + len);
    pos += len;
    if (marker === 0xc0 || marker === 0xc1 || marker === 0xc2) {
      if (frame) corrupt('more than one frame header (SOF)');
      frame = parseFrame(seg, marker === 0xc2);
    } else if (marker === 0xc3) unsupported('lossless (SOF3)');
    else if ((marker >= 0xc5 && marker <= 0xc7) || marker === 0xde || marker === 0xdf) unsupported(`hierarchical (${hex(marker)})`);
    else if (marker === 0xcc || (marker >= 0xc9 && marker <= 0xcf)) unsupported(`arithmetic coding (${hex(marker)})`);
    else if (marker === 0xc8) unsupported('a JPG extension frame (FFC8)');
    else if (marker === 0xdb) {
      // DQT: one or more tables, each Pq/Tq then 64 values (8- or 16-bit) in zigzag order.
      for (let p = 0; p < seg.length;) {
        const pq = seg[p]! >> 4, tq = seg[p]! & 15, size = pq ? 128 : 64;
        if (pq > 1 || tq > 3 || p + 1 + size > seg.length) corrupt('bad quantisation table (DQT)');
        const t = new Uint16Array(64);
        for (let k = 0; k < 64; k++) t[ZIGZAG[k]!] = pq ? u16(seg, p + 1 + 2 * k) : seg[p + 1 + k]!;
        quant[tq] = t;
        p += 1 + size;
      }
    } else if (marker === 0xc4) {
      // DHT: one or more tables, each Tc/Th, 16 code-length counts, then the symbols.
      for (let p = 0; p < seg.length;) {
        const tc = seg[p]! >> 4, th = seg[p]! & 15;
        if (tc > 1 || th > 3 || p + 17 > seg.length) corrupt('bad Huffman table (DHT)');
        const counts = seg.subarray(p + 1, p + 17);
        const total = counts.reduce((a, b) => a + b, 0);
        if (total > 256 || p + 17 + total > seg.length) corrupt('bad Huffman table (DHT)');
        (tc ? acTables : dcTables)[th] = buildHuffman(counts, seg.subarray(p + 17, p + 17 + total));
        p += 17 + total;
      }
    } else if (marker === 0xdd) {
      if (seg.length < 2) corrupt('bad restart interval (DRI)');
      restartInterval = u16(seg, 0);
    } else if (marker === 0xe0) {
      if (seg.length >= 5 && String.fromCharCode(...seg.subarray(0, 5)) === 'JFIF\0') jfif = true;
    } else if (marker === 0xee) {
      if (seg.length >= 12 && String.fromCharCode(...seg.subarray(0, 5)) === 'Adobe') adobeTransform = seg[11]!;
    } else if (marker === 0xda) {
      if (!frame) corrupt('a scan (SOS) before the frame header (SOF)');
      const n = seg[0] ?? 0;
      if (n < 1 || n > 4 || seg.length < 4 + 2 * n) corrupt('bad scan header (SOS)');
      const ss = seg[1 + 2 * n]!, se = seg[2 + 2 * n]!, ah = seg[3 + 2 * n]! >> 4, al = seg[3 + 2 * n]! & 15;
      if (frame.progressive) {
        const bad = ss > se || se > 63 || (ss === 0 && se !== 0) || (ss > 0 && n !== 1) || al > 13 || (ah !== 0 && ah !== al + 1);
        if (bad) corrupt(`bad progressive scan parameters (Ss=${ss} Se=${se} Ah=${ah} Al=${al})`);
      }
      const scan: ScanComponent[] = [];
      for (let i = 0; i < n; i++) {
        const id = seg[1 + 2 * i]!, td = seg[2 + 2 * i]! >> 4, ta = seg[2 + 2 * i]! & 15;
        const c = frame.comps.find((k) => k.id === id) ?? corrupt(`the scan names component ${id}, which the frame lacks`);
        if (scan.some((sc) => sc.c === c)) corrupt(`component ${id} appears twice in a scan`);
        const needDC = !frame.progressive || (ss === 0 && ah === 0), needAC = !frame.progressive || ss > 0;
        const dc = needDC ? (dcTables[td] ?? corrupt(`DC Huffman table ${td} is missing`)) : null;
        const ac = needAC ? (acTables[ta] ?? corrupt(`AC Huffman table ${ta} is missing`)) : null;
        if (!c.quant) c.quant = quant[c.tq]?.slice() ?? corrupt(`quantisation table ${c.tq} is missing`);
        scan.push({ c, dc, ac });
      }
      if (n > 1 && scan.reduce((a, sc) => a + sc.c.h * sc.c.v, 0) > 10) corrupt('more than 10 blocks per MCU');
      pos = decodeScan(bytes, pos, frame, scan, ss, se, ah, al, restartInterval);
      scans++;
    }
    // Other segments (APPn, COM, DNL, ...) carry nothing the decoder needs.
  }
  if (!frame) corrupt('no frame header (SOF)');
  if (scans === 0) corrupt('no scan (SOS) before EOI');

  const { width, height } = frame;
  const planes = frame.comps.map((c) => upsample(c, componentSamples(c), frame));
  const ids = frame.comps.map((c) => c.id).join();
  const rgb = planes.length === 3 && (jfif ? false : adobeTransform >= 0 ? adobeTransform === 0 : ids === '82,71,66');
  const out = new Uint8ClampedArray(width * height * 4);
  for (let i = 0, q = 0; i < width * height; i++, q += 4) {
    const y = planes[0]![i]!;
    if (planes.length === 1) out[q] = out[q + 1] = out[q + 2] = y;
    else if (rgb) {
      out[q] = y;
      out[q + 1] = planes[1]![i]!;
      out[q + 2] = planes[2]![i]!;
    } else {
      const cb = planes[1]![i]!, cr = planes[2]![i]!;
      out[q] = y + CR_R[cr]!;
      out[q + 1] = y + ((CB_G[cb]! + CR_G[cr]!) >> 16);
      out[q + 2] = y + CB_B[cb]!;
    }
    out[q + 3] = 255;
  }
  return { width, height, data: out };
}
