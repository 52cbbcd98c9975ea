// Typed wrapper of shaders/patch_embed.wgsl: image (B, C, H, W) ⇄ patches (B·P, C·p·p), the
// channel-major order of a Conv with kernel = stride = p.
import shader from '../../shaders/patch_embed.wgsl';
import { EdgeTuneError, expectDim } from '../errors.js';
import type { Runtime } from '../gpu/runtime.js';
import { Params, type Batch } from '../gpu/launch.js';
import { expectFloats, grid2d } from './grid.js';

const WG = 64;

export interface PatchDims {
  batch: number;
  channels: number;
  height: number;
  width: number;
  patch: number;
}

/** Checks the dims; returns P (patches per image) and the patch vector length C·p². */
export function patchShape(d: PatchDims): { patches: number; patchDim: number } {
  expectDim('batch', d.batch, true);
  const C = expectDim('channels', d.channels);
  const H = expectDim('height', d.height);
  const W = expectDim('width', d.width);
  const p = expectDim('patch', d.patch);
  if (H % p !== 0 || W % p !== 0) throw new EdgeTuneError('SHAPE_MISMATCH', `image ${H}×${W} is not a whole number of ${p}×${p} patches`);
  return { patches: (H / p) * (W / p), patchDim: C * p * p };
}

async function launch(rt: Runtime, batch: Batch, entry: 'im2col' | 'col2im', d: PatchDims, src: GPUBuffer, dst: GPUBuffer): Promise<void> {
  const { patches, patchDim } = patchShape(d);
  const n = d.batch * d.channels * d.height * d.width;
  if (n === 0) return;
  expectFloats(entry === 'im2col' ? 'image' : 'patches', src, n);
  expectFloats(entry === 'im2col' ? 'patches' : 'image', dst, d.batch * patches * patchDim);
  const pipe = await rt.pipelines.get(shader, entry, { VEC: d.patch % 4 === 0 && d.width % 4 === 0 });
  const params = new Params().u32(d.batch).u32(d.channels).u32(d.height).u32(d.width).u32(d.patch).u32(0).u32(0).u32(0);
  const threads = (n / d.patch) * Math.ceil(d.patch / 4);
  batch.dispatch(pipe, params, [src, dst], grid2d(rt, Math.ceil(threads / WG)));
}

/** patches (B·P, C·p²) from image (B, C, H, W). */
export function recordIm2col(rt: Runtime, batch: Batch, d: PatchDims, image: GPUBuffer, patches: GPUBuffer): Promise<void> {
  return launch(rt, batch, 'im2col', d, image, patches);
}

/** image (B, C, H, W) from patches (B·P, C·p²): the gradient of im2col. */
export function recordCol2im(rt: Runtime, batch: Batch, d: PatchDims, patches: GPUBuffer, image: GPUBuffer): Promise<void> {
  return launch(rt, batch, 'col2im', d, patches, image);
}
