// ViT patch embedding: pixels (B, C, H, W) → tokens (B·P, d), P = (H/p)·(W/p) patches per image.
//   forward   patches = im2col(pixels)  (B·P, C·p²), channel-major within a patch
//             y = patches · W + b + pos[patch]      W (C·p², d), b (d), pos (P, d)
//             = a Conv(kernel = stride = p) with the Conv weight (d, C, p, p) reshaped to
//             (d, C·p²) and transposed, then learned position embeddings, as in ViT / SigLIP.
//   backward  dy (B·P, d): dW += patchesᵀ dy, db += Σ dy, dpos[p] += Σ_b dy[b·P + p]. The pixels
//             get no gradient (the image is the input); col2im in kernels/patch_embed.ts is the
//             inverse of im2col should one be needed.
import { EdgeTuneError, expectDim } from '../errors.js';
import type { Runtime } from '../gpu/runtime.js';
import type { Batch } from '../gpu/launch.js';
import type { Tensor } from '../gpu/tensor.js';
import type { MatmulSchedule } from '../kernels/matmul.js';
import { colSumScratch, recordAddInto, recordColSum } from '../kernels/elementwise.js';
import { patchShape, recordIm2col } from '../kernels/patch_embed.js';
import { Activations, param, type Layer, type Param } from './module.js';
import { Dense } from './dense.js';
import { named, normalInit, releaseGrads, valueOf } from './init.js';

export interface PatchEmbedOptions {
  /** Image height and width (multiples of `patch`). */
  height: number;
  width: number;
  patch: number;
  d: number;
  /** Default 3. */
  channels?: number;
  /** Parameters get gradients. Default true. */
  trainable?: boolean;
  /** W (C·p², d), b (d), pos (P, d): host data or borrowed Tensors. Defaults: N(0, initStd²), 0, N(0, initStd²). */
  weight?: Float32Array | Tensor;
  bias?: Float32Array | Tensor;
  position?: Float32Array | Tensor;
  initStd?: number;
  /** Initial std of the position embeddings (default initStd). */
  positionStd?: number;
  /**
   * The input is already token rows (B·P, channels), raster order: a convolutional stem's output
   * map (height × width cells). Needs patch 1; the projection is then a 1×1 Conv.
   */
  rows?: boolean;
  seed?: number;
  schedule?: MatmulSchedule;
}

export class PatchEmbed implements Layer {
  readonly rt: Runtime;
  readonly channels: number;
  readonly height: number;
  readonly width: number;
  readonly patch: number;
  readonly d: number;
  /** Patches per image. */
  readonly patches: number;
  readonly proj: Dense;
  readonly position: Param;
  /** The input is token rows (see PatchEmbedOptions.rows). */
  readonly rows: boolean;
  private readonly acts: Activations;
  private readonly owned: Tensor[] = [];
  private images = -1;

  constructor(rt: Runtime, o: PatchEmbedOptions) {
    if (!o || typeof o !== 'object') throw new EdgeTuneError('INVALID_ARGUMENT', 'PatchEmbed needs { height, width, patch, d }');
    this.rt = rt;
    this.channels = expectDim('channels', o.channels ?? 3);
    this.height = expectDim('height', o.height);
    this.width = expectDim('width', o.width);
    this.patch = expectDim('patch', o.patch);
    const d = (this.d = expectDim('d', o.d));
    this.rows = o.rows ?? false;
    if (this.rows && this.patch !== 1) throw new EdgeTuneError('BAD_CONFIG', `a patch embedding over token rows needs patch 1, got ${this.patch}`);
    const { patches, patchDim } = patchShape(this.dims(1));
    this.patches = patches;
    const seed = o.seed ?? 0;
    const trainable = o.trainable ?? true;
    this.proj = new Dense(rt, { inFeatures: patchDim, outFeatures: d, bias: true, weight: o.weight, biasValue: o.bias, trainable, initStd: o.initStd, seed, schedule: o.schedule });
    this.position = param(rt, 'position', valueOf(rt, 'position', o.position, [patches, d], () => normalInit(patches * d, o.positionStd ?? o.initStd ?? 0.02, seed + 1), this.owned), trainable);
    this.acts = new Activations(rt);
  }

  /** HF SigLIP names: patch_embedding.{weight,bias} (here (C·p², d)), position_embedding.weight. */
  params(prefix = ''): Param[] {
    const p = (s: string) => (prefix ? `${prefix}.${s}` : s);
    return [...this.proj.params(p('patch_embedding')), ...named(prefix, [['position_embedding.weight', this.position]])];
  }

  /** Records tokens (images·P, d) for pixels (images, C, H, W) (or token rows); the tokens belong to the layer. */
  async forward(batch: Batch, pixels: Tensor): Promise<Tensor> {
    const per = this.channels * this.height * this.width;
    if (pixels.size % per !== 0 || pixels.size === 0) throw new EdgeTuneError('SHAPE_MISMATCH', `pixels has ${pixels.size} elements, not a whole number of ${this.channels}×${this.height}×${this.width} images`);
    const B = (this.images = pixels.size / per);
    const rows = B * this.patches;
    let patches = pixels;
    if (!this.rows) {
      patches = this.acts.get('patches', [rows, this.channels * this.patch * this.patch]);
      await recordIm2col(this.rt, batch, this.dims(B), pixels.buffer, patches.buffer);
    }
    const y = await this.proj.forward(batch, patches, rows);
    await recordAddInto(this.rt, batch, this.position.value.buffer, y.buffer, rows * this.d, { period: this.patches * this.d });
    return y;
  }

  /** Records the parameter gradients for dy (images·P, d); the pixels get none. */
  async backward(batch: Batch, dy: Tensor): Promise<void> {
    if (this.images < 0) throw new EdgeTuneError('INVALID_ARGUMENT', 'PatchEmbed.backward needs a forward first');
    await this.proj.backwardParams(batch, dy);
    await this.positionGrad(batch, dy);
  }

  /** As backward, and returns the gradient of the token-row input (rows mode: the stem's output). */
  async backwardRows(batch: Batch, dy: Tensor): Promise<Tensor> {
    if (this.images < 0) throw new EdgeTuneError('INVALID_ARGUMENT', 'PatchEmbed.backward needs a forward first');
    if (!this.rows) throw new EdgeTuneError('INVALID_ARGUMENT', 'PatchEmbed.backwardRows needs token-row input (rows: true); pixels get no gradient');
    const dx = await this.proj.backward(batch, dy);
    await this.positionGrad(batch, dy);
    return dx;
  }

  /** dpos[p] += Σ_b dy[b·P + p]. */
  private async positionGrad(batch: Batch, dy: Tensor): Promise<void> {
    const g = this.position.grad;
    if (!g) return;
    const cols = this.patches * this.d;
    const need = colSumScratch(this.images, cols);
    await recordColSum(this.rt, batch, { x: dy.buffer, rows: this.images, cols, out: g.buffer, accumulate: true, scratch: need > 0 ? this.acts.get('scratch', [need]).buffer : undefined });
  }

  release(): void {
    this.acts.clear();
    this.proj.release();
    releaseGrads([this.position]);
    for (const t of this.owned) t.release();
    this.owned.length = 0;
  }

  private dims(batch: number) {
    return { batch, channels: this.channels, height: this.height, width: this.width, patch: this.patch };
  }
}
