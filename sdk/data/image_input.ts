// Every image form the SDK accepts, read into RGBA 8-bit ({ width, height, data }):
//   { width, height, data }         RGBA (ImageData is one), anywhere
//   ImageBitmap, HTMLImageElement,  browsers and workers: drawn onto an OffscreenCanvas (or a
//   HTMLCanvasElement, OffscreenCanvas,  <canvas> where there is none) and read back
//   VideoFrame
//   Blob                            browsers: its bytes
//   Uint8Array / ArrayBuffer        PNG or JPEG bytes, anywhere
//   string                          a PNG or JPEG path (Node) or URL (fetch)
// Zero-size images and bytes that are neither PNG nor JPEG → INVALID_ARGUMENT; more than
// MAX_IMAGE_PIXELS → TOO_LARGE.
import { EdgeTuneError } from '../errors.js';
import { readBytes } from '../io.js';
import { checkImage, type RGBAImage } from './image.js';
import { decodeJPEG, isJPEG } from './jpeg.js';
import { decodePNG, isPNG } from './png.js';

/** Something drawable by a 2D canvas context (ImageBitmap, <img>, <canvas>, OffscreenCanvas, VideoFrame). */
export interface Drawable {
  width?: number;
  height?: number;
  naturalWidth?: number;
  naturalHeight?: number;
  displayWidth?: number;
  displayHeight?: number;
}

export type ImageInput = RGBAImage | { width: number; height: number; data: ArrayLike<number> } | Drawable | Blob | Uint8Array | ArrayBuffer | string;

/** The largest image accepted (pixels). */
export const MAX_IMAGE_PIXELS = 1 << 28;

function checkSize(w: number, h: number): void {
  if (w * h > MAX_IMAGE_PIXELS) throw new EdgeTuneError('TOO_LARGE', `the image is ${w}×${h}, over ${MAX_IMAGE_PIXELS} pixels; downscale it first`);
}

/** PNG or JPEG bytes → RGBA. */
export function decodeImage(bytes: Uint8Array): RGBAImage {
  if (isPNG(bytes)) return decodePNG(bytes);
  if (isJPEG(bytes)) return decodeJPEG(bytes);
  throw new EdgeTuneError('INVALID_ARGUMENT', `the image bytes are neither PNG nor JPEG (they start ${Array.from(bytes.subarray(0, 4), (b) => b.toString(16).padStart(2, '0')).join(' ')}); pass PNG or JPEG bytes, or RGBA pixels as { width, height, data }`);
}

function isPixels(x: unknown): x is { width: number; height: number; data: ArrayLike<number> } {
  return typeof x === 'object' && x !== null && 'data' in x && 'width' in x && 'height' in x;
}

function drawableSize(d: Drawable): [number, number] {
  const w = d.naturalWidth ?? d.displayWidth ?? d.width ?? 0;
  const h = d.naturalHeight ?? d.displayHeight ?? d.height ?? 0;
  return [w, h];
}

type Ctx2D = { drawImage(img: unknown, x: number, y: number): void; getImageData(x: number, y: number, w: number, h: number): { data: Uint8ClampedArray } };

function canvas2d(w: number, h: number): Ctx2D {
  const g = globalThis as { OffscreenCanvas?: new (w: number, h: number) => { getContext(k: '2d', o?: object): Ctx2D | null }; document?: { createElement(t: 'canvas'): { width: number; height: number; getContext(k: '2d', o?: object): Ctx2D | null } } };
  let ctx: Ctx2D | null = null;
  if (g.OffscreenCanvas) ctx = new g.OffscreenCanvas(w, h).getContext('2d', { willReadFrequently: true });
  else if (g.document) {
    const c = g.document.createElement('canvas');
    c.width = w;
    c.height = h;
    ctx = c.getContext('2d', { willReadFrequently: true });
  }
  if (!ctx) throw new EdgeTuneError('INVALID_ARGUMENT', 'drawing an image needs a 2D canvas (OffscreenCanvas or document); pass RGBA pixels as { width, height, data } or PNG/JPEG bytes instead');
  return ctx;
}

/** Reads any accepted image form into RGBA 8-bit. */
export async function readImage(input: ImageInput): Promise<RGBAImage> {
  if (input === null || input === undefined) throw new EdgeTuneError('INVALID_ARGUMENT', 'no image given');
  if (typeof input === 'string') return decodeImage(await readBytes(input, 'INVALID_ARGUMENT', 'pass a PNG or JPEG path or URL'));
  if (input instanceof Uint8Array) return decodeImage(input);
  if (input instanceof ArrayBuffer) return decodeImage(new Uint8Array(input));
  const g = globalThis as { Blob?: typeof Blob };
  if (g.Blob && input instanceof g.Blob) return decodeImage(new Uint8Array(await input.arrayBuffer()));
  if (isPixels(input)) {
    const { width, height } = input;
    if (!(Number.isInteger(width) && Number.isInteger(height) && width > 0 && height > 0)) {
      throw new EdgeTuneError('INVALID_ARGUMENT', `the image is ${String(width)}×${String(height)}: it needs a positive integer width and height`);
    }
    checkSize(width, height);
    const data = input.data instanceof Uint8ClampedArray ? input.data : Uint8ClampedArray.from(input.data as ArrayLike<number>);
    return checkImage({ width, height, data });
  }
  if (typeof input === 'object') {
    const el = input as Drawable & { complete?: boolean; decode?: () => Promise<void> };
    // An <img> still loading: wait for it.
    if (el.complete === false && typeof el.decode === 'function') {
      try {
        await el.decode();
      } catch (cause) {
        throw new EdgeTuneError('INVALID_ARGUMENT', 'the <img> element could not be decoded; check its src', { cause });
      }
    }
    const [w, h] = drawableSize(el);
    if (!(w > 0 && h > 0)) throw new EdgeTuneError('INVALID_ARGUMENT', `the image is ${w}×${h}: it needs a positive width and height (has the <img> loaded?)`);
    checkSize(w, h);
    const ctx = canvas2d(w, h);
    ctx.drawImage(el, 0, 0);
    return checkImage({ width: w, height: h, data: ctx.getImageData(0, 0, w, h).data });
  }
  throw new EdgeTuneError('INVALID_ARGUMENT', `cannot read an image from ${typeof input}; pass ImageData, ImageBitmap, an <img> or canvas, { width, height, data }, PNG/JPEG bytes or a path/URL`);
}
