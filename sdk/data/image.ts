// RGBA images and pure-TS drawing (no canvas: the worlds render in Node and in workers).
//
// Drawing is two steps: a shape is first rasterised into a coverage Mask (values in [0, 1],
// antialiased from a signed distance in pixels: coverage = clamp(0.5 − d, 0, 1)), then
// painted onto the image with a colour. Keeping the mask lets a world report the exact
// pixels an object covers: its box is the bounding box of the pixels with coverage ≥ 0.5,
// i.e. of the pixels whose centre lies inside the shape.
//
// Pixel (i, j) covers [i, i+1) × [j, j+1); its centre is (i + 0.5, j + 0.5); y grows down.
import { EdgeTuneError, expectDim } from '../errors.js';

/** An RGBA image, 8 bits per channel, row-major, same layout as the DOM's ImageData. */
export interface RGBAImage {
  width: number;
  height: number;
  data: Uint8ClampedArray;
}

export type RGB = readonly [number, number, number];

/** Per-pixel coverage in [0, 1] plus the pixel rectangle [x0, x1) × [y0, y1) ever touched. */
export interface Mask {
  width: number;
  height: number;
  data: Float32Array;
  x0: number;
  y0: number;
  x1: number;
  y1: number;
}

/** Integer pixel rectangle [x0, x1) × [y0, y1). */
export interface PixelRect {
  x0: number;
  y0: number;
  x1: number;
  y1: number;
}

/** A width×height image filled with `color` (default opaque black; null: all bytes zero). */
export function createImage(width: number, height: number, color: RGB | null = [0, 0, 0]): RGBAImage {
  expectDim('width', width);
  expectDim('height', height);
  const img = { width, height, data: new Uint8ClampedArray(width * height * 4) };
  if (color) fill(img, color);
  return img;
}

/** Checks `{ width, height, data }` (zero size → INVALID_ARGUMENT) and returns it. */
export function checkImage(img: RGBAImage): RGBAImage {
  if (!img || typeof img !== 'object') throw new EdgeTuneError('INVALID_ARGUMENT', 'an image is { width, height, data } with RGBA bytes');
  const { width, height, data } = img;
  if (!Number.isInteger(width) || !Number.isInteger(height) || width < 1 || height < 1) {
    throw new EdgeTuneError('INVALID_ARGUMENT', `image size must be positive integers, got ${String(width)}×${String(height)}`);
  }
  if (!data || data.length !== width * height * 4) {
    throw new EdgeTuneError('SHAPE_MISMATCH', `image data has ${data?.length} bytes; ${width}×${height} RGBA needs ${width * height * 4}`);
  }
  return img;
}

export function fill(img: RGBAImage, [r, g, b]: RGB): void {
  // One 32-bit word per pixel, packed through a byte view so that endianness does not matter.
  const px = new Uint8ClampedArray([r, g, b, 255]);
  const d = img.data;
  if (d.byteOffset % 4 === 0) new Uint32Array(d.buffer, d.byteOffset, d.length >> 2).fill(new Uint32Array(px.buffer)[0]!);
  else for (let i = 0; i < d.length; i += 4) d.set(px, i);
}

/** Linear gradient from c0 to c1 along the direction `angle` (radians, 0 = left to right). */
export function linearGradient(img: RGBAImage, c0: RGB, c1: RGB, angle: number): void {
  const { width: w, height: h, data: d } = img;
  const ux = Math.cos(angle), uy = Math.sin(angle);
  // Project the corners so that t spans exactly [0, 1] over the image.
  const ts = [0, w].flatMap((x) => [0, h].map((y) => x * ux + y * uy));
  const tmin = Math.min(...ts), span = Math.max(...ts) - tmin || 1;
  const dr = c1[0] - c0[0], dg = c1[1] - c0[1], db = c1[2] - c0[2];
  const dt = ux / span;
  for (let y = 0; y < h; y++) {
    let t = (0.5 * ux + (y + 0.5) * uy - tmin) / span;
    for (let x = 0, i = y * w * 4; x < w; x++, i += 4, t += dt) {
      // t stays within [0, 1], so the values need no clamping; +0.5 | 0 rounds.
      d[i] = (c0[0] + dr * t + 0.5) | 0;
      d[i + 1] = (c0[1] + dg * t + 0.5) | 0;
      d[i + 2] = (c0[2] + db * t + 0.5) | 0;
      d[i + 3] = 255;
    }
  }
}

/** Colour at a pixel (alpha ignored). */
export function getPixel(img: RGBAImage, x: number, y: number): RGB {
  const i = (y * img.width + x) * 4;
  return [img.data[i]!, img.data[i + 1]!, img.data[i + 2]!];
}

/** √(x² + y²); Math.hypot is several times slower in V8 and this is the inner loop. */
export function len2(x: number, y: number): number {
  return Math.sqrt(x * x + y * y);
}

// ---------------------------------------------------------------------------------------
// Masks

export function createMask(width: number, height: number): Mask {
  return { width, height, data: new Float32Array(width * height), x0: width, y0: height, x1: 0, y1: 0 };
}

/**
 * Rasterises a signed distance function (pixels, negative inside) over the pixel rectangle
 * around [bx0, bx1] × [by0, by1], max-combining coverage into the mask.
 */
export function rasterize(mask: Mask, sdf: (px: number, py: number) => number, bx0: number, by0: number, bx1: number, by1: number, soft = 0.5): void {
  const xa = Math.max(0, Math.floor(bx0 - 1)), xb = Math.min(mask.width, Math.ceil(bx1 + 1));
  const ya = Math.max(0, Math.floor(by0 - 1)), yb = Math.min(mask.height, Math.ceil(by1 + 1));
  if (xa >= xb || ya >= yb) return;
  const inv = 1 / (2 * soft);
  for (let y = ya; y < yb; y++) {
    const row = y * mask.width;
    for (let x = xa; x < xb; x++) {
      const d = sdf(x + 0.5, y + 0.5);
      if (d >= soft) continue;
      const c = d <= -soft ? 1 : (soft - d) * inv;
      if (c > mask.data[row + x]!) mask.data[row + x] = c;
    }
  }
  mask.x0 = Math.min(mask.x0, xa);
  mask.y0 = Math.min(mask.y0, ya);
  mask.x1 = Math.max(mask.x1, xb);
  mask.y1 = Math.max(mask.y1, yb);
}

/** Bounding rectangle of the pixels with coverage ≥ threshold, or null when there are none. */
export function maskBounds(mask: Mask, threshold = 0.5): PixelRect | null {
  let x0 = mask.width, y0 = mask.height, x1 = 0, y1 = 0;
  for (let y = mask.y0; y < mask.y1; y++) {
    for (let x = mask.x0; x < mask.x1; x++) {
      if (mask.data[y * mask.width + x]! >= threshold) {
        if (x < x0) x0 = x;
        if (x >= x1) x1 = x + 1;
        if (y < y0) y0 = y;
        if (y >= y1) y1 = y + 1;
      }
    }
  }
  return x1 > x0 ? { x0, y0, x1, y1 } : null;
}

/**
 * Paints `color` (a constant or a function of the pixel) over the image with alpha =
 * coverage · opacity.
 */
export function paintMask(img: RGBAImage, mask: Mask, color: RGB | ((x: number, y: number) => RGB), opacity = 1): void {
  const d = img.data, w = img.width;
  const fn = typeof color === 'function' ? color : null;
  for (let y = mask.y0; y < mask.y1; y++) {
    for (let x = mask.x0; x < mask.x1; x++) {
      const a = mask.data[y * w + x]! * opacity;
      if (a <= 0) continue;
      const c = fn ? fn(x, y) : (color as RGB);
      const i = (y * w + x) * 4;
      d[i] = d[i]! + (c[0] - d[i]!) * a;
      d[i + 1] = d[i + 1]! + (c[1] - d[i + 1]!) * a;
      d[i + 2] = d[i + 2]! + (c[2] - d[i + 2]!) * a;
    }
  }
}

// ---------------------------------------------------------------------------------------
// Shapes as signed distance functions (after Inigo Quilez's 2D SDFs), in pixels.
// Each takes the offset (px, py) from the shape's centre, y down, and its size r: the
// radius of the circle the shape roughly fills.

export const SHAPE_KINDS = ['circle', 'square', 'triangle', 'star', 'ring', 'cross', 'diamond', 'hexagon'] as const;
export type ShapeKind = (typeof SHAPE_KINDS)[number];

function sdBox(px: number, py: number, bx: number, by: number): number {
  const dx = Math.abs(px) - bx, dy = Math.abs(py) - by;
  return len2(Math.max(dx, 0), Math.max(dy, 0)) + Math.min(Math.max(dx, dy), 0);
}

function sdTriangle(px: number, py: number, r: number): number {
  // Equilateral, pointing up, centroid at the origin, circumradius 1.1·r.
  const k = Math.sqrt(3);
  const h = (1.1 * r * k) / 2; // half side
  let x = Math.abs(px) - h;
  let y = -py + h / k;
  if (x + k * y > 0) [x, y] = [(x - k * y) / 2, (-k * x - y) / 2];
  x -= Math.min(Math.max(x, -2 * h), 0);
  return -len2(x, y) * Math.sign(y);
}

function sdStar5(px: number, py: number, r: number, rf: number): number {
  const k1x = 0.809016994375, k1y = -0.587785252292;
  const k2x = -k1x, k2y = k1y;
  let x = Math.abs(px), y = -py;
  let t = 2 * Math.max(k1x * x + k1y * y, 0);
  x -= t * k1x;
  y -= t * k1y;
  t = 2 * Math.max(k2x * x + k2y * y, 0);
  x -= t * k2x;
  y -= t * k2y;
  x = Math.abs(x);
  y -= r;
  const bax = rf * -k1y, bay = rf * k1x - 1;
  const h = Math.min(Math.max((x * bax + y * bay) / (bax * bax + bay * bay), 0), r);
  return len2(x - bax * h, y - bay * h) * Math.sign(y * bax - x * bay);
}

function sdRhombus(px: number, py: number, bx: number, by: number): number {
  const x = Math.abs(px), y = Math.abs(py);
  const h = Math.min(Math.max(((bx - 2 * x) * bx - (by - 2 * y) * by) / (bx * bx + by * by), -1), 1);
  const d = len2(x - 0.5 * bx * (1 - h), y - 0.5 * by * (1 + h));
  return d * Math.sign(x * by + y * bx - bx * by);
}

function sdHexagon(px: number, py: number, r: number): number {
  // Flat top and bottom, apothem r.
  const kx = -0.866025404, ky = 0.5, kz = 0.577350269;
  let x = Math.abs(px), y = Math.abs(py);
  const t = 2 * Math.min(kx * x + ky * y, 0);
  x -= t * kx;
  y -= t * ky;
  x -= Math.min(Math.max(x, -kz * r), kz * r);
  y -= r;
  return len2(x, y) * Math.sign(y);
}

/** Signed distance (pixels) from the offset (px, py) to a shape of size r centred at 0. */
export function shapeDistance(kind: ShapeKind, px: number, py: number, r: number): number {
  switch (kind) {
    case 'circle':
      return len2(px, py) - r;
    case 'square':
      return sdBox(px, py, 0.85 * r, 0.85 * r);
    case 'triangle':
      return sdTriangle(px, py - 0.275 * r, r); // centre the bounding box
    case 'star':
      return sdStar5(px, py - 0.1 * r, 1.1 * r, 0.45);
    case 'ring':
      return Math.abs(len2(px, py) - 0.74 * r) - 0.26 * r;
    case 'cross':
      return Math.min(sdBox(px, py, 0.95 * r, 0.3 * r), sdBox(px, py, 0.3 * r, 0.95 * r));
    case 'diamond':
      return sdRhombus(px, py, 0.8 * r, 1.1 * r);
    case 'hexagon':
      return sdHexagon(px, py, 0.9 * r);
  }
}

/** Adds a shape centred at (cx, cy) with size r (all in pixels) to the mask. */
export function shapeMask(mask: Mask, kind: ShapeKind, cx: number, cy: number, r: number): void {
  const e = 1.2 * r;
  rasterize(mask, (x, y) => shapeDistance(kind, x - cx, y - cy, r), cx - e, cy - e, cx + e, cy + e);
}

/** Adds a filled circle. */
export function circleMask(mask: Mask, cx: number, cy: number, r: number, soft = 0.5): void {
  rasterize(mask, (x, y) => len2(x - cx, y - cy) - r, cx - r - soft, cy - r - soft, cx + r + soft, cy + r + soft, soft);
}

/** Adds a filled axis-aligned ellipse with radii (rx, ry); `soft` widens the antialiased edge. */
export function ellipseMask(mask: Mask, cx: number, cy: number, rx: number, ry: number, soft = 0.5): void {
  const m = Math.min(rx, ry);
  // Scaled circle distance: exact on the axes, close enough elsewhere for small eccentricities.
  rasterize(mask, (x, y) => (len2((x - cx) / rx, (y - cy) / ry) - 1) * m, cx - rx - soft, cy - ry - soft, cx + rx + soft, cy + ry + soft, soft);
}

function segmentDistance(px: number, py: number, ax: number, ay: number, bx: number, by: number): number {
  const vx = bx - ax, vy = by - ay;
  const l2 = vx * vx + vy * vy;
  const t = l2 > 0 ? Math.min(Math.max(((px - ax) * vx + (py - ay) * vy) / l2, 0), 1) : 0;
  return len2(px - ax - t * vx, py - ay - t * vy);
}

/**
 * Adds a polyline of the given thickness (pixels). `points` is [x0, y0, x1, y1, ...];
 * `widths` optionally gives a thickness per vertex (linearly tapered along each segment).
 */
export function polylineMask(mask: Mask, points: readonly number[], thickness: number, widths?: readonly number[]): void {
  for (let i = 0; i + 3 < points.length; i += 2) {
    const ax = points[i]!, ay = points[i + 1]!, bx = points[i + 2]!, by = points[i + 3]!;
    const wa = widths ? widths[i / 2]! : thickness, wb = widths ? widths[i / 2 + 1]! : thickness;
    const half = Math.max(wa, wb) / 2;
    rasterize(
      mask,
      (x, y) => {
        const vx = bx - ax, vy = by - ay;
        const l2 = vx * vx + vy * vy;
        const t = l2 > 0 ? Math.min(Math.max(((x - ax) * vx + (y - ay) * vy) / l2, 0), 1) : 0;
        return segmentDistance(x, y, ax, ay, bx, by) - (wa + (wb - wa) * t) / 2;
      },
      Math.min(ax, bx) - half, Math.min(ay, by) - half, Math.max(ax, bx) + half, Math.max(ay, by) + half,
    );
  }
}

/**
 * Adds an irregular blob: a circle of radius r whose radius is modulated by a few angular
 * harmonics, r(θ) = r·(1 + Σ a_k sin(kθ + φ_k)). `harmonics` lists [k, a_k, φ_k] triples.
 */
export function blobMask(mask: Mask, cx: number, cy: number, r: number, harmonics: ReadonlyArray<readonly [number, number, number]>): void {
  let amp = 0;
  for (const [, a] of harmonics) amp += Math.abs(a);
  const e = r * (1 + amp) + 1;
  rasterize(
    mask,
    (x, y) => {
      const dx = x - cx, dy = y - cy;
      const th = Math.atan2(dy, dx);
      let s = 1;
      for (const [k, a, ph] of harmonics) s += a * Math.sin(k * th + ph);
      return len2(dx, dy) - r * s;
    },
    cx - e, cy - e, cx + e, cy + e,
  );
}

// ---------------------------------------------------------------------------------------
// Resizing and the vision encoder's input

export type Resample = 'nearest' | 'bilinear' | 'area';

/**
 * Samples the RGB channels of `img` on a w×h grid into a channel-first float array in
 * [0, 255]. bilinear follows align_corners = false (pixel centres map to pixel centres);
 * 'area' averages the source pixels each target pixel covers (use it to shrink).
 */
function sampleRGB(img: RGBAImage, w: number, h: number, mode: Resample): Float32Array {
  const { width: W, height: H, data: d } = img;
  const out = new Float32Array(3 * w * h);
  const plane = w * h;
  const sx = W / w, sy = H / h;
  if (mode === 'area') {
    for (let y = 0; y < h; y++) {
      const ya = y * sy, yb = ya + sy;
      for (let x = 0; x < w; x++) {
        const xa = x * sx, xb = xa + sx;
        let r = 0, g = 0, b = 0, wt = 0;
        for (let j = Math.floor(ya); j < Math.min(H, Math.ceil(yb)); j++) {
          const wy = Math.min(j + 1, yb) - Math.max(j, ya);
          for (let i = Math.floor(xa); i < Math.min(W, Math.ceil(xb)); i++) {
            const wgt = wy * (Math.min(i + 1, xb) - Math.max(i, xa));
            const k = (j * W + i) * 4;
            r += d[k]! * wgt;
            g += d[k + 1]! * wgt;
            b += d[k + 2]! * wgt;
            wt += wgt;
          }
        }
        const o = y * w + x;
        out[o] = r / wt;
        out[plane + o] = g / wt;
        out[2 * plane + o] = b / wt;
      }
    }
    return out;
  }
  for (let y = 0; y < h; y++) {
    const fy = Math.min(Math.max((y + 0.5) * sy - 0.5, 0), H - 1);
    for (let x = 0; x < w; x++) {
      const fx = Math.min(Math.max((x + 0.5) * sx - 0.5, 0), W - 1);
      const o = y * w + x;
      if (mode === 'nearest') {
        const k = (Math.min(Math.floor((y + 0.5) * sy), H - 1) * W + Math.min(Math.floor((x + 0.5) * sx), W - 1)) * 4;
        out[o] = d[k]!;
        out[plane + o] = d[k + 1]!;
        out[2 * plane + o] = d[k + 2]!;
        continue;
      }
      const x0 = Math.floor(fx), y0 = Math.floor(fy);
      const x1 = Math.min(x0 + 1, W - 1), y1 = Math.min(y0 + 1, H - 1);
      const ax = fx - x0, ay = fy - y0;
      const k00 = (y0 * W + x0) * 4, k01 = (y0 * W + x1) * 4, k10 = (y1 * W + x0) * 4, k11 = (y1 * W + x1) * 4;
      for (let c = 0; c < 3; c++) {
        const top = d[k00 + c]! + (d[k01 + c]! - d[k00 + c]!) * ax;
        const bot = d[k10 + c]! + (d[k11 + c]! - d[k10 + c]!) * ax;
        out[c * plane + o] = top + (bot - top) * ay;
      }
    }
  }
  return out;
}

function pickMode(img: RGBAImage, w: number, h: number, mode?: Resample): Resample {
  if (mode) return mode;
  return img.width > w || img.height > h ? 'area' : 'bilinear';
}

/** Resizes to w×h ('area' by default when shrinking, else 'bilinear'); the result is opaque. */
export function resizeImage(img: RGBAImage, w: number, h: number, mode?: Resample): RGBAImage {
  checkImage(img);
  expectDim('width', w);
  expectDim('height', h);
  const m = pickMode(img, w, h, mode);
  if (w === img.width && h === img.height && m !== 'area') return { width: w, height: h, data: new Uint8ClampedArray(img.data) };
  const f = sampleRGB(img, w, h, m);
  const out = createImage(w, h);
  const plane = w * h;
  for (let i = 0; i < plane; i++) {
    out.data[4 * i] = Math.round(f[i]!);
    out.data[4 * i + 1] = Math.round(f[plane + i]!);
    out.data[4 * i + 2] = Math.round(f[2 * plane + i]!);
  }
  return out;
}

/**
 * What the vision encoder eats: the image resized to size×size, channel-first (3, size,
 * size), each value (v/255 − mean[c]) / std[c]. Alpha is ignored. An image already at
 * `size` is used as is (no resampling).
 */
export function toPixelValues(img: RGBAImage, size: number, mean: readonly number[] = [0.5, 0.5, 0.5], std: readonly number[] = [0.5, 0.5, 0.5], mode?: Resample): Float32Array {
  checkImage(img);
  expectDim('size', size);
  if (mean.length !== 3 || std.length !== 3 || std.some((s) => !(s > 0)) || mean.some((m) => !Number.isFinite(m))) {
    throw new EdgeTuneError('INVALID_ARGUMENT', `mean and std must be 3 finite numbers (std > 0), got mean=${JSON.stringify(mean)} std=${JSON.stringify(std)}`);
  }
  const same = img.width === size && img.height === size;
  const f = sampleRGB(img, size, size, same ? 'nearest' : pickMode(img, size, size, mode));
  const plane = size * size;
  for (let c = 0; c < 3; c++) {
    const m = mean[c]!, inv = 1 / (255 * std[c]!), off = m / std[c]!;
    for (let i = c * plane; i < (c + 1) * plane; i++) f[i] = f[i]! * inv - off;
  }
  return f;
}
