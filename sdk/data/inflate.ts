// zlib (RFC 1950) / DEFLATE (RFC 1951) in pure TS, synchronous, for PNG in any runtime
// (Node, browsers, workers) without node:zlib or the async DecompressionStream.
// Inflate handles stored, fixed-Huffman and dynamic-Huffman blocks; deflate only writes
// stored blocks (callers wanting compression pass their own, e.g. node:zlib's deflateSync).
import { EdgeTuneError } from '../errors.js';

function corrupt(message: string): never {
  throw new EdgeTuneError('INVALID_ARGUMENT', `corrupt zlib stream: ${message}`);
}

const LEN_BASE = [3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 15, 17, 19, 23, 27, 31, 35, 43, 51, 59, 67, 83, 99, 115, 131, 163, 195, 227, 258];
const LEN_EXTRA = [0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0];
const DIST_BASE = [1, 2, 3, 4, 5, 7, 9, 13, 17, 25, 33, 49, 65, 97, 129, 193, 257, 385, 513, 769, 1025, 1537, 2049, 3073, 4097, 6145, 8193, 12289, 16385, 24577];
const DIST_EXTRA = [0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13];
const CL_ORDER = [16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15];

/** LSB-first bit reader; reading past the end counts as truncation. */
class BitReader {
  pos: number;
  private buf = 0;
  private cnt = 0;
  private padded = 0;
  constructor(private readonly data: Uint8Array, start: number) {
    this.pos = start;
  }
  private fill(n: number): void {
    while (this.cnt < n) {
      let byte = 0;
      if (this.pos < this.data.length) byte = this.data[this.pos++]!;
      else this.padded++;
      this.buf |= byte << this.cnt;
      this.cnt += 8;
    }
  }
  private check(): void {
    if (this.cnt < this.padded * 8) corrupt('truncated');
  }
  bits(n: number): number {
    if (n === 0) return 0;
    this.fill(n);
    const v = this.buf & ((1 << n) - 1);
    this.buf >>>= n;
    this.cnt -= n;
    this.check();
    return v;
  }
  /** Decodes one symbol with a table from buildTable. */
  symbol(t: HuffTable): number {
    this.fill(t.maxLen);
    const e = t.table[this.buf & ((1 << t.maxLen) - 1)]!;
    if (e < 0) corrupt('invalid Huffman code');
    const len = e & 15;
    this.buf >>>= len;
    this.cnt -= len;
    this.check();
    return e >> 4;
  }
  /** Drops bits up to the next byte boundary; returns the byte position. */
  align(): number {
    const drop = this.cnt & 7;
    this.buf >>>= drop;
    this.cnt -= drop;
    // Give back whole buffered bytes.
    const back = this.cnt >> 3;
    this.pos -= back;
    this.buf = 0;
    this.cnt = 0;
    if (this.padded > back) corrupt('truncated');
    this.pos += this.padded;
    this.padded = 0;
    return this.pos;
  }
}

interface HuffTable {
  table: Int32Array; // index: the next maxLen bits (LSB first); entry: symbol << 4 | length, −1 invalid
  maxLen: number;
}

function buildTable(lengths: ArrayLike<number>, n: number): HuffTable {
  let maxLen = 1;
  const count = new Int32Array(16);
  for (let i = 0; i < n; i++) {
    count[lengths[i]!]!++;
    if (lengths[i]! > maxLen) maxLen = lengths[i]!;
  }
  count[0] = 0;
  const next = new Int32Array(16);
  let code = 0;
  for (let len = 1; len < 16; len++) {
    code = (code + count[len - 1]!) << 1;
    next[len] = code;
    if (count[len]! > 1 << len) corrupt('over-subscribed Huffman code');
  }
  const table = new Int32Array(1 << maxLen).fill(-1);
  for (let sym = 0; sym < n; sym++) {
    const len = lengths[sym]!;
    if (len === 0) continue;
    let c = next[len]!++;
    if (c >= 1 << len) corrupt('over-subscribed Huffman code');
    let rev = 0;
    for (let i = 0; i < len; i++) {
      rev = (rev << 1) | (c & 1);
      c >>= 1;
    }
    for (let i = rev; i < table.length; i += 1 << len) table[i] = (sym << 4) | len;
  }
  return { table, maxLen };
}

let fixed: { lit: HuffTable; dist: HuffTable } | null = null;
function fixedTables() {
  if (!fixed) {
    const l = new Uint8Array(288);
    l.fill(8, 0, 144);
    l.fill(9, 144, 256);
    l.fill(7, 256, 280);
    l.fill(8, 280, 288);
    fixed = { lit: buildTable(l, 288), dist: buildTable(new Uint8Array(30).fill(5), 30) };
  }
  return fixed;
}

class Output {
  buf: Uint8Array;
  n = 0;
  constructor(size: number) {
    this.buf = new Uint8Array(Math.max(size, 1024));
  }
  reserve(k: number): void {
    if (this.n + k <= this.buf.length) return;
    const b = new Uint8Array(Math.max(this.buf.length * 2, this.n + k));
    b.set(this.buf.subarray(0, this.n));
    this.buf = b;
  }
}

/** Inflates raw DEFLATE data starting at `start`; returns the output and the end position. */
export function inflateRaw(data: Uint8Array, start = 0, sizeHint = 0): { out: Uint8Array; end: number } {
  const br = new BitReader(data, start);
  const out = new Output(sizeHint || data.length * 4);
  for (;;) {
    const final = br.bits(1);
    const type = br.bits(2);
    if (type === 0) {
      let p = br.align();
      if (p + 4 > data.length) corrupt('truncated');
      const len = data[p]! | (data[p + 1]! << 8), nlen = data[p + 2]! | (data[p + 3]! << 8);
      if ((len ^ 0xffff) !== nlen) corrupt('stored block length check failed');
      p += 4;
      if (p + len > data.length) corrupt('truncated');
      out.reserve(len);
      out.buf.set(data.subarray(p, p + len), out.n);
      out.n += len;
      br.pos = p + len;
    } else if (type === 1 || type === 2) {
      let lit: HuffTable, dist: HuffTable;
      if (type === 1) ({ lit, dist } = fixedTables());
      else {
        const hlit = br.bits(5) + 257, hdist = br.bits(5) + 1, hclen = br.bits(4) + 4;
        const cl = new Uint8Array(19);
        for (let i = 0; i < hclen; i++) cl[CL_ORDER[i]!] = br.bits(3);
        const clt = buildTable(cl, 19);
        const lens = new Uint8Array(hlit + hdist);
        for (let i = 0; i < hlit + hdist; ) {
          const sym = br.symbol(clt);
          if (sym < 16) lens[i++] = sym;
          else {
            let rep: number, val = 0;
            if (sym === 16) {
              if (i === 0) corrupt('repeat with no previous length');
              val = lens[i - 1]!;
              rep = 3 + br.bits(2);
            } else if (sym === 17) rep = 3 + br.bits(3);
            else rep = 11 + br.bits(7);
            if (i + rep > hlit + hdist) corrupt('code lengths overflow');
            lens.fill(val, i, i + rep);
            i += rep;
          }
        }
        if (lens[256] === 0) corrupt('no end-of-block code');
        lit = buildTable(lens.subarray(0, hlit), hlit);
        dist = buildTable(lens.subarray(hlit), hdist);
      }
      for (;;) {
        const sym = br.symbol(lit);
        if (sym < 256) {
          out.reserve(1);
          out.buf[out.n++] = sym;
        } else if (sym === 256) break;
        else {
          const li = sym - 257;
          if (li >= 29) corrupt('bad length symbol');
          const len = LEN_BASE[li]! + br.bits(LEN_EXTRA[li]!);
          const di = br.symbol(dist);
          if (di >= 30) corrupt('bad distance symbol');
          const d = DIST_BASE[di]! + br.bits(DIST_EXTRA[di]!);
          if (d > out.n) corrupt('distance before the start of the output');
          out.reserve(len);
          const b = out.buf;
          for (let k = 0; k < len; k++, out.n++) b[out.n] = b[out.n - d]!;
        }
      }
    } else corrupt('reserved block type');
    if (final) break;
  }
  return { out: out.buf.subarray(0, out.n), end: br.align() };
}

export function adler32(data: Uint8Array): number {
  let a = 1, b = 0;
  for (let i = 0; i < data.length; ) {
    const end = Math.min(i + 5552, data.length);
    for (; i < end; i++) {
      a += data[i]!;
      b += a;
    }
    a %= 65521;
    b %= 65521;
  }
  return ((b << 16) | a) >>> 0;
}

/** Inflates a zlib stream (header, DEFLATE data, Adler-32), checking the checksum. */
export function zlibInflate(data: Uint8Array, sizeHint = 0): Uint8Array {
  if (data.length < 6) corrupt('truncated');
  const cmf = data[0]!, flg = data[1]!;
  if ((cmf & 15) !== 8 || ((cmf << 8) | flg) % 31 !== 0) corrupt('bad header');
  if (flg & 32) corrupt('preset dictionaries are not supported');
  const { out, end } = inflateRaw(data, 2, sizeHint);
  if (end + 4 > data.length) corrupt('truncated (no checksum)');
  const want = ((data[end]! << 24) | (data[end + 1]! << 16) | (data[end + 2]! << 8) | data[end + 3]!) >>> 0;
  if (adler32(out) !== want) corrupt('Adler-32 checksum mismatch');
  return out;
}

/** A zlib stream of stored (uncompressed) blocks: valid everywhere, no compression. */
export function zlibStore(data: Uint8Array): Uint8Array {
  const blocks = Math.max(1, Math.ceil(data.length / 65535));
  const out = new Uint8Array(2 + data.length + blocks * 5 + 4);
  out[0] = 0x78;
  out[1] = 0x01;
  let p = 2;
  for (let b = 0; b < blocks; b++) {
    const s = b * 65535, len = Math.min(65535, data.length - s);
    out[p++] = b === blocks - 1 ? 1 : 0;
    out[p++] = len & 255;
    out[p++] = len >> 8;
    out[p++] = ~len & 255;
    out[p++] = (~len >> 8) & 255;
    out.set(data.subarray(s, s + len), p);
    p += len;
  }
  const a = adler32(data);
  out[p++] = a >>> 24;
  out[p++] = (a >>> 16) & 255;
  out[p++] = (a >>> 8) & 255;
  out[p++] = a & 255;
  return out;
}
