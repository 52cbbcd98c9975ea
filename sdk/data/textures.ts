// Procedural surfaces for the inspection world: brushed metal, concrete, wood, leaf, brick.
// Each is drawn from value noise whose lattice is hashed from a seed, so a texture is a pure
// function of (surface, seed, size). Coordinates are scaled to a 64-pixel design size so that
// a surface looks the same at any resolution.
import { polylineMask, createMask, paintMask, type RGB, type RGBAImage, len2 } from './image.js';
import { hash32, Rng } from './rng.js';

export const SURFACES = ['brushed metal', 'concrete', 'wood', 'leaf', 'brick'] as const;
export type Surface = (typeof SURFACES)[number];

/** Hash of a lattice point to [0, 1). */
function lattice(seed: number, ix: number, iy: number): number {
  let h = Math.imul(ix | 0, 0x27d4eb2d) ^ Math.imul(iy | 0, 0x165667b1) ^ seed;
  h = Math.imul(h ^ (h >>> 15), 0x85ebca6b);
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35);
  return ((h ^ (h >>> 16)) >>> 0) / 4294967296;
}

/** Smooth value noise in [0, 1). */
export function valueNoise(seed: number, x: number, y: number): number {
  const ix = Math.floor(x), iy = Math.floor(y);
  const fx = x - ix, fy = y - iy;
  const sx = fx * fx * (3 - 2 * fx), sy = fy * fy * (3 - 2 * fy);
  const a = lattice(seed, ix, iy), b = lattice(seed, ix + 1, iy);
  const c = lattice(seed, ix, iy + 1), d = lattice(seed, ix + 1, iy + 1);
  const top = a + (b - a) * sx, bot = c + (d - c) * sx;
  return top + (bot - top) * sy;
}

/** Fractal sum of `octaves` value-noise layers, normalised to [0, 1). */
export function fbm(seed: number, x: number, y: number, octaves = 3): number {
  let s = 0, amp = 1, norm = 0, f = 1;
  for (let o = 0; o < octaves; o++) {
    s += amp * valueNoise(seed + o * 1013, x * f, y * f);
    norm += amp;
    amp *= 0.5;
    f *= 2;
  }
  return s / norm;
}

/**
 * fbm(seed, u, v, octaves) at every pixel (x, y) of a w×h image, where u = a·x + b·y + c and
 * v = d·x + e·y + f: the lattice values each octave needs are hashed once into a table, so
 * a pixel costs table reads instead of hashes. Returns the same values as fbm.
 */
export function fbmField(seed: number, w: number, h: number, m: readonly [number, number, number, number, number, number], octaves = 3): Float32Array {
  const out = new Float32Array(w * h);
  let amp = 1, norm = 0;
  for (let o = 0, f = 1; o < octaves; o++, f *= 2, amp *= 0.5) {
    const [a, b, c, d, e, g] = [m[0] * f, m[1] * f, m[2] * f, m[3] * f, m[4] * f, m[5] * f];
    const us = [c, a * (w - 1) + c, b * (h - 1) + c, a * (w - 1) + b * (h - 1) + c];
    const vs = [g, d * (w - 1) + g, e * (h - 1) + g, d * (w - 1) + e * (h - 1) + g];
    const u0 = Math.floor(Math.min(...us)), v0 = Math.floor(Math.min(...vs));
    const nu = Math.floor(Math.max(...us)) - u0 + 2, nv = Math.floor(Math.max(...vs)) - v0 + 2;
    const s = seed + o * 1013;
    const table = new Float32Array(nu * nv);
    for (let j = 0; j < nv; j++) for (let i = 0; i < nu; i++) table[j * nu + i] = lattice(s, u0 + i, v0 + j);
    for (let y = 0, k = 0; y < h; y++) {
      for (let x = 0; x < w; x++, k++) {
        const u = a * x + b * y + c, v = d * x + e * y + g;
        const iu = Math.floor(u), iv = Math.floor(v);
        const fx = u - iu, fy = v - iv;
        const sx = fx * fx * (3 - 2 * fx), sy = fy * fy * (3 - 2 * fy);
        const t = (iv - v0) * nu + (iu - u0);
        const p = table[t]!, q = table[t + 1]!, r = table[t + nu]!, z = table[t + nu + 1]!;
        const top = p + (q - p) * sx, bot = r + (z - r) * sx;
        out[k] = out[k]! + amp * (top + (bot - top) * sy);
      }
    }
    norm += amp;
  }
  for (let k = 0; k < out.length; k++) out[k] = out[k]! / norm;
  return out;
}

/** Per-pixel white noise in [0, 1). */
function whiteField(seed: number, w: number, h: number): Float32Array {
  const out = new Float32Array(w * h);
  for (let y = 0, k = 0; y < h; y++) for (let x = 0; x < w; x++, k++) out[k] = lattice(seed, x, y);
  return out;
}

function put(img: RGBAImage, k: number, r: number, g: number, b: number): void {
  const i = k * 4;
  img.data[i] = r;
  img.data[i + 1] = g;
  img.data[i + 2] = b;
  img.data[i + 3] = 255;
}

/** The surface's mean colour, used by defects to pick contrasting tones. */
export interface SurfaceInfo {
  surface: Surface;
  base: RGB;
}

/** Paints a whole surface texture over `img`. */
export function drawSurface(img: RGBAImage, surface: Surface, seed: number): SurfaceInfo {
  const rng = Rng.derive(seed, 'surface', surface);
  const n = hash32(seed, 'noise');
  const { width: w, height: h } = img;
  const u = 64 / Math.max(w, h); // pixels → design units
  switch (surface) {
    case 'brushed metal': {
      const L = rng.float(135, 195), tint = rng.float(0, 14);
      const base: RGB = [L - tint * 0.5, L, L + tint];
      const vertical = rng.chance(0.3);
      const sheen = rng.float(0, Math.PI * 2), sheenAmp = rng.float(8, 22);
      // Streaks: noise stretched 30× along the brushing direction.
      const along = 0.04 * u, across = 1.3 * u;
      const streak = fbmField(n, w, h, vertical ? [0, along, 0, across, 0, 0] : [along, 0, 0, 0, across, 0], 3);
      const fine = whiteField(n ^ 0x5bd1e995, w, h);
      // A broad sheen across the brushing direction, one value per column (or row).
      const glow = Float32Array.from({ length: vertical ? h : w }, (_, i) => sheenAmp * Math.cos(((i * u) / 64) * Math.PI * 1.5 + sheen));
      for (let y = 0, k = 0; y < h; y++) {
        for (let x = 0; x < w; x++, k++) {
          const v = 55 * (streak[k]! - 0.5) + 10 * (fine[k]! - 0.5) + glow[vertical ? y : x]!;
          put(img, k, base[0] + v, base[1] + v, base[2] + v);
        }
      }
      return { surface, base };
    }
    case 'concrete': {
      const L = rng.float(115, 175), warm = rng.float(-6, 10);
      const base: RGB = [L + warm, L + warm * 0.4, L - warm * 0.6];
      const blotch = fbmField(n, w, h, [0.09 * u, 0, 0, 0, 0.09 * u, 0], 3);
      const speck = whiteField(n ^ 0x68e31da4, w, h);
      const pores = whiteField(n ^ 0x1b873593, w, h);
      for (let k = 0; k < w * h; k++) {
        const v = 38 * (blotch[k]! - 0.5) + 34 * (speck[k]! - 0.5) + (pores[k]! > 0.985 ? -28 : 0);
        put(img, k, base[0] + v, base[1] + v, base[2] + v);
      }
      return { surface, base };
    }
    case 'wood': {
      const light: RGB = [rng.float(185, 215), rng.float(135, 160), rng.float(80, 105)];
      const dark: RGB = [light[0] * 0.62, light[1] * 0.55, light[2] * 0.5];
      const angle = rng.float(-0.35, 0.35) + (rng.chance(0.5) ? 0 : Math.PI / 2);
      const ca = Math.cos(angle), sa = Math.sin(angle);
      // Ring centre far off the image, so rings read as curved grain lines.
      const cx = rng.float(-60, 120), cy = rng.pick([-1, 1]) * rng.float(90, 160) + 32;
      const freq = rng.float(0.45, 0.7);
      const warp = fbmField(n, w, h, [0.06 * u, 0, 0, 0, 0.06 * u, 0], 2);
      // along = (x·u − cx)·ca + (y·u − cy)·sa, across = −(x·u − cx)·sa + (y·u − cy)·ca
      const grain = fbmField(n ^ 0x2545f491, w, h, [0.05 * u * ca, 0.05 * u * sa, -0.05 * (cx * ca + cy * sa), -1.1 * u * sa, 1.1 * u * ca, 1.1 * (cx * sa - cy * ca)], 2);
      for (let y = 0, k = 0; y < h; y++) {
        for (let x = 0; x < w; x++, k++) {
          const dx = x * u - cx, dy = y * u - cy;
          const along = dx * ca + dy * sa, across = -dx * sa + dy * ca;
          const r = len2(along * 0.25, across);
          const ring = 0.5 + 0.5 * Math.sin((r + 4 * (warp[k]! - 0.5)) * freq);
          const t = Math.min(Math.max(ring * ring * 0.8 + (grain[k]! - 0.5) * 0.5, 0), 1);
          put(img, k, light[0] + (dark[0] - light[0]) * t, light[1] + (dark[1] - light[1]) * t, light[2] + (dark[2] - light[2]) * t);
        }
      }
      return { surface, base: [(light[0] + dark[0]) / 2, (light[1] + dark[1]) / 2, (light[2] + dark[2]) / 2] };
    }
    case 'leaf': {
      const base: RGB = [rng.float(45, 95), rng.float(125, 170), rng.float(35, 70)];
      const mottle = fbmField(n, w, h, [0.08 * u, 0, 0, 0, 0.08 * u, 0], 3);
      const fine = whiteField(n ^ 0x3c6ef372, w, h);
      for (let k = 0; k < w * h; k++) {
        const v = 40 * (mottle[k]! - 0.5) + 8 * (fine[k]! - 0.5);
        put(img, k, base[0] + v * 0.6, base[1] + v, base[2] + v * 0.5);
      }
      // Midrib across the image and side veins branching from it.
      const s = 1 / u;
      const vein: RGB = [Math.min(255, base[0] + 70), Math.min(255, base[1] + 65), Math.min(255, base[2] + 40)];
      const a = rng.float(0.35, 1.2) * (rng.chance(0.5) ? 1 : -1);
      const ox = rng.float(20, 44) * s, oy = rng.float(20, 44) * s;
      const dx = Math.cos(a), dy = Math.sin(a), L = 60 * s;
      const mid = createMask(w, h);
      polylineMask(mid, [ox - dx * L, oy - dy * L, ox + dx * L, oy + dy * L], 1.8 * s);
      const side = createMask(w, h);
      const gap = rng.float(9, 13) * s;
      for (let t = -L; t <= L; t += gap) {
        const px = ox + dx * t, py = oy + dy * t;
        for (const sign of [1, -1]) {
          const b = a + sign * 0.8;
          const len = rng.float(18, 30) * s;
          polylineMask(side, [px, py, px + Math.cos(b) * len, py + Math.sin(b) * len], 0.9 * s);
        }
      }
      paintMask(img, side, vein, 0.45);
      paintMask(img, mid, vein, 0.8);
      return { surface, base };
    }
    case 'brick': {
      const brick: RGB = [rng.float(150, 190), rng.float(60, 90), rng.float(45, 70)];
      const mortar: RGB = [rng.float(175, 205), rng.float(170, 195), rng.float(160, 185)];
      const bh = rng.float(10, 13), bw = bh * rng.float(2.2, 2.8), gap = 1.6;
      const ox = rng.float(0, bw), oy = rng.float(0, bh);
      const mottle = fbmField(n, w, h, [0.15 * u, 0, 0.15 * ox, 0, 0.15 * u, 0.15 * oy], 2);
      const fine = whiteField(n ^ 0x7feb352d, w, h);
      for (let y = 0, k = 0; y < h; y++) {
        for (let x = 0; x < w; x++, k++) {
          const X = x * u + ox, Y = y * u + oy;
          const row = Math.floor(Y / bh);
          const shift = row % 2 ? bw / 2 : 0;
          const col = Math.floor((X + shift) / bw);
          const inRow = Y - row * bh, inCol = X + shift - col * bw;
          if (inRow < gap || inCol < gap) {
            const v = 14 * (fine[k]! - 0.5);
            put(img, k, mortar[0] + v, mortar[1] + v, mortar[2] + v);
          } else {
            const tone = 28 * (lattice(n, row, col) - 0.5);
            const v = tone + 22 * (fine[k]! - 0.5) + 18 * (mottle[k]! - 0.5);
            put(img, k, brick[0] + v, brick[1] + v * 0.6, brick[2] + v * 0.5);
          }
        }
      }
      return { surface, base: brick };
    }
  }
}
