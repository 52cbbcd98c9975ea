// Convolutional stem of the hybrid ViT (ViT paper §3.1 "hybrid"; early convolutions): k stages that
// each halve the map, so an H×W image becomes an (H/2ᵏ)×(W/2ᵏ) map whose cells are the encoder's
// tokens. A stage is 3×3 conv (pad 1) → GELU → 2×2 max pool ('pool', the default), or 3×3 conv at
// stride 2 → GELU ('stride': a quarter of the work; leading pad per stage in step(s)). With
// `coords` every convolution also reads two coordinate channels (CoordConv: the column and the row
// of each pixel of its input map, in (−1, 1)): pooling keeps which feature fired in a window but
// not where, and the coordinates let a stage say where an edge is within its cell, what box
// corners and the cell holding an object's centre need. Then Cₛ below reads Cₛ + 2.
// Shapes, per stage s (C₀ = 3, Hₛ = H/2ˢ; the columns' rows padded with zeros to a multiple of 4,
// colsPitch, and Wₛ with zero rows to match, inside the Dense: 27 → 28 on the first stage):
//   'pool'    cols = cols3x3(x)              (B·Hₛ·Wₛ, 9·Cₛ)      x: pixels (B, 3, H, W) or rows
//             z = cols · Wₛ + bₛ             (B·Hₛ·Wₛ, Cₛ₊₁)      Wₛ (9·Cₛ, Cₛ₊₁), the ONNX Conv
//             a = gelu(z);  y = maxpool2(a)  (B·Hₛ₊₁·Wₛ₊₁, Cₛ₊₁)  weight (Cₛ₊₁, Cₛ, 3, 3) transposed
//     backward da = maxpool2ᵀ(dy);  dz = gelu'(z) ⊙ da;  dWₛ += colsᵀ dz, dbₛ += Σ dz;
//             dx = cols3x3ᵀ(dz Wₛᵀ) for every stage but the first (the pixels need no gradient).
//   'stride'  cols = cols3x3(x, step(s))     (B·Hₛ₊₁·Wₛ₊₁, 9·Cₛ)
//             z = cols · Wₛ + bₛ;  y = gelu(z)  (B·Hₛ₊₁·Wₛ₊₁, Cₛ₊₁)
//     backward dz = gelu'(z) ⊙ dy;  dWₛ += colsᵀ dz, dbₛ += Σ dz;  dx = cols3x3ᵀ(dz Wₛᵀ, step(s)).
// The output rows (B·g·g, C_k), row (b·g + i)·g + j, are the tokens in raster order. Every
// stage's output map (rows (B·Hₛ₊₁·Wₛ₊₁, Cₛ₊₁), raster order) stays readable (stageOutput) for a
// branch that reads a finer map (StemSkip); backward then takes that map's gradient too.
import { EdgeTuneError, expectDim } from '../errors.js';
import type { Runtime } from '../gpu/runtime.js';
import type { Batch } from '../gpu/launch.js';
import type { Tensor } from '../gpu/tensor.js';
import { colsPitch, convInChannels, recordConvCols, recordConvColsBackward, recordMaxPool2, recordMaxPool2Backward, type ConvStep } from '../kernels/conv_stem.js';
import { recordGeluBackward, recordGeluForward } from '../kernels/activation.js';
import { recordAddInto } from '../kernels/elementwise.js';
import { Activations, type Layer, type Param } from './module.js';
import { Dense } from './dense.js';
import { normalInit } from './init.js';

export interface ConvStemOptions {
  /** Input image side (square), divisible by 2^stages. */
  imageSize: number;
  /** Output channels of each stage. */
  channels: readonly number[];
  /** Input channels (default 3). */
  inChannels?: number;
  /** How each stage halves the map: 'pool' (2×2 max pooling, the default) or 'stride' (a stride-2 convolution). */
  downsample?: StemDownsample;
  /** Two coordinate channels (column, row) on every convolution's input (CoordConv; default false). */
  coords?: boolean;
  trainable?: boolean;
  seed?: number;
}

export type StemDownsample = 'pool' | 'stride';

export class ConvStem implements Layer {
  readonly rt: Runtime;
  readonly imageSize: number;
  readonly inChannels: number;
  readonly channels: readonly number[];
  readonly downsample: StemDownsample;
  readonly coords: boolean;
  /** One Dense (9·Cₛ → Cₛ₊₁, bias; 9·(Cₛ + 2) with coordinates) per stage: the convolution on its columns. */
  readonly convs: Dense[];
  /** Side of the output map (imageSize / 2^stages). */
  readonly grid: number;
  private readonly acts: Activations;
  private images = -1;
  /** Each stage's pre-activation z (the Dense's output), for the GELU backward. */
  private zs: Tensor[] = [];
  /** Each stage's output map (after its pooling), from the last forward. */
  private outs: Tensor[] = [];

  constructor(rt: Runtime, o: ConvStemOptions) {
    if (!o || typeof o !== 'object' || !Array.isArray(o.channels) || o.channels.length === 0) throw new EdgeTuneError('BAD_CONFIG', 'a convolutional stem needs { imageSize, channels: [C₁, …] } with at least one stage');
    this.rt = rt;
    this.imageSize = expectDim('imageSize', o.imageSize);
    this.inChannels = expectDim('inChannels', o.inChannels ?? 3);
    o.channels.forEach((c, i) => expectDim(`stem channels[${i}]`, c));
    this.channels = [...o.channels];
    const ds = o.downsample ?? 'pool';
    if (ds !== 'pool' && ds !== 'stride') throw new EdgeTuneError('BAD_CONFIG', `a convolutional stem halves its map by 'pool' or 'stride', got ${JSON.stringify(ds)}`);
    this.downsample = ds;
    if (o.coords !== undefined && typeof o.coords !== 'boolean') throw new EdgeTuneError('BAD_CONFIG', `a convolutional stem's coords is true or false, got ${JSON.stringify(o.coords)}`);
    this.coords = o.coords ?? false;
    const k = this.channels.length;
    if (this.imageSize % 2 ** k !== 0) throw new EdgeTuneError('BAD_CONFIG', `a ${k}-stage stem halves the image ${k} times: the image size ${this.imageSize} must be a multiple of ${2 ** k}`);
    this.grid = this.imageSize / 2 ** k;
    const seed = o.seed ?? 0;
    // He init, N(0, 2/fan_in) over the stage's input channels: activations keep their scale
    // through the stages. With PyTorch's Conv2d default, 1/(3·fan_in), they shrink ~6× per stage
    // and a 4-stage stem sits at chance on shapes for hundreds of steps longer (README: The tiny VLM).
    // The coordinate channels' rows of W start at zero (after the image's or previous stage's
    // 9·Cₛ rows, drawn as without them): the stem starts as the plain one, whose features do not
    // depend on where a shape is. With He-initialised coordinate rows the encoder phase was still
    // at chance on shapes at step 430 of 533 (README: The tiny VLM, "Coordinate channels").
    this.convs = this.channels.map((c, s) => {
      const cin = this.stageInChannels(s), k = 9 * this.convInChannels(s);
      const weight = new Float32Array(k * c);
      weight.set(normalInit(9 * cin * c, Math.sqrt(2 / (9 * cin)), seed * 7 + s));
      return new Dense(rt, { inFeatures: k, outFeatures: c, bias: true, trainable: o.trainable ?? true, weight, inPitch: colsPitch(k) });
    });
    this.acts = new Activations(rt);
  }

  /** Input channels of stage s: the image's for the first, the previous stage's output after. */
  stageInChannels(s: number): number {
    return s === 0 ? this.inChannels : this.channels[s - 1]!;
  }

  /** Channels stage s's convolution reads per pixel: its input's, plus the 2 coordinates with `coords`. */
  convInChannels(s: number): number {
    return convInChannels(this.stageInChannels(s), this.step(s));
  }

  /** Channels of the output rows. */
  get outChannels(): number {
    return this.channels[this.channels.length - 1]!;
  }

  /** stem.{s}.weight (9·Cₛ, Cₛ₊₁) (9·(Cₛ + 2) rows with coordinates), stem.{s}.bias. */
  params(prefix = ''): Param[] {
    const p = (s: string) => (prefix ? `${prefix}.${s}` : s);
    return this.convs.flatMap((c, s) => c.params(p(`stem.${s}`)));
  }

  private dims(s: number) {
    const side = this.imageSize / 2 ** s;
    return { batch: this.images, channels: this.stageInChannels(s), height: side, width: side };
  }

  /**
   * Stage s's convolution: stride 1, pad 1 before a pooling; at stride 2 the leading pad alternates,
   * 1 on even stages, 0 on odd ones. A stride-2 window with pad 1 is centred half an input pixel
   * before its 2×2 block, with pad 0 half a pixel after; alternating, the tokens' windows end up
   * (−0.5 + 1 − 2 + 4) = 2.5 pixels from their cell's centre after 4 stages instead of 7.5.
   */
  step(s: number): ConvStep {
    const coords = this.coords;
    return this.downsample === 'stride' ? { stride: 2, pad: s % 2 === 0 ? 1 : 0, coords } : { stride: 1, pad: 1, coords };
  }

  /** Rows of stage s's convolution output: B·Hₛ·Wₛ before its pooling, B·Hₛ₊₁·Wₛ₊₁ at stride 2. */
  private convRows(s: number): number {
    const d = this.dims(s);
    return (d.batch * d.height * d.width) / this.step(s).stride ** 2;
  }

  /** pixels (B, C, H, W) → rows (B·g·g, C_k), layer-owned. */
  async forward(batch: Batch, pixels: Tensor): Promise<Tensor> {
    const per = this.inChannels * this.imageSize ** 2;
    if (pixels.size % per !== 0 || pixels.size === 0) throw new EdgeTuneError('SHAPE_MISMATCH', `pixels has ${pixels.size} elements, not a whole number of ${this.inChannels}×${this.imageSize}×${this.imageSize} images`);
    this.images = pixels.size / per;
    let x = pixels;
    this.zs = [];
    this.outs = [];
    for (let s = 0; s < this.convs.length; s++) {
      const d = this.dims(s);
      const rows = this.convRows(s);
      const conv = this.convs[s]!;
      const cols = this.acts.get(`cols${s}`, [rows, conv.inPitch]);
      await recordConvCols(this.rt, batch, d, s === 0 ? 'nchw' : 'rows', x.buffer, cols.buffer, this.step(s), conv.inPitch);
      const z = await conv.forward(batch, cols, rows);
      this.zs.push(z);
      const cout = this.channels[s]!;
      const a = this.acts.get(`a${s}`, [rows, cout]);
      await recordGeluForward(this.rt, batch, { z: z.buffer, y: a.buffer, n: rows * cout });
      if (this.downsample === 'stride') x = a;
      else {
        const y = this.acts.get(`y${s}`, [rows / 4, cout]);
        await recordMaxPool2(this.rt, batch, { ...d, channels: cout }, a.buffer, y.buffer);
        x = y;
      }
      this.outs.push(x);
    }
    return x;
  }

  /** Side of stage s's output map (imageSize / 2^(s+1)). */
  stageSide(s: number): number {
    return this.imageSize / 2 ** (s + 1);
  }

  /** Stage s's output map from the last forward: rows (B·n·n, Cₛ₊₁), n = stageSide(s), raster order; layer-owned. */
  stageOutput(s: number): Tensor {
    const t = this.outs[s];
    if (!t) throw new EdgeTuneError('INVALID_ARGUMENT', `ConvStem.stageOutput(${s}) needs a forward first, and a stage in 0 … ${this.convs.length - 1}`);
    return t;
  }

  /**
   * Records the parameter gradients for dy (B·g·g, C_k); the pixels get none. `extra` adds the
   * gradient of an earlier stage's output map (a branch that read stageOutput(stage)), in the
   * same layout, before that stage's backward.
   */
  async backward(batch: Batch, dy: Tensor, extra?: { stage: number; grad: Tensor }): Promise<void> {
    if (this.images < 0) throw new EdgeTuneError('INVALID_ARGUMENT', 'ConvStem.backward needs a forward first');
    if (extra) {
      const last = this.convs.length - 1;
      if (!(Number.isInteger(extra.stage) && extra.stage >= 0 && extra.stage < last)) throw new EdgeTuneError('INVALID_ARGUMENT', `ConvStem.backward: an extra gradient goes to a stage before the last (0 … ${last - 1}), got ${extra.stage}`);
      const want = this.images * this.stageSide(extra.stage) ** 2 * this.channels[extra.stage]!;
      if (extra.grad.size !== want) throw new EdgeTuneError('SHAPE_MISMATCH', `ConvStem.backward: stage ${extra.stage}'s output gradient has ${extra.grad.size} elements, its map ${want}`);
    }
    let g = dy;
    for (let s = this.convs.length - 1; s >= 0; s--) {
      // g is this stage's own dx buffer here (s < last): the branch's gradient adds into it.
      if (extra && extra.stage === s) await recordAddInto(this.rt, batch, extra.grad.buffer, g.buffer, extra.grad.size);
      const d = this.dims(s);
      const rows = this.convRows(s);
      const cout = this.channels[s]!;
      let da = g;
      if (this.downsample === 'pool') {
        const a = this.acts.get(`a${s}`, [rows, cout]);
        da = this.acts.get(`da${s}`, [rows, cout]);
        await recordMaxPool2Backward(this.rt, batch, { ...d, channels: cout }, a.buffer, g.buffer, da.buffer);
      }
      const conv = this.convs[s]!;
      const dz = this.acts.get(`dz${s}`, [rows, cout]);
      await recordGeluBackward(this.rt, batch, { z: this.zs[s]!.buffer, dy: da.buffer, dz: dz.buffer, n: rows * cout });
      if (s === 0) {
        await conv.backwardParams(batch, dz);
        break;
      }
      const dcols = await conv.backward(batch, dz);
      const dx = this.acts.get(`dx${s}`, [d.batch * d.height * d.width, d.channels]);
      await recordConvColsBackward(this.rt, batch, d, dcols.buffer, dx.buffer, this.step(s), conv.inPitch);
      g = dx;
    }
  }

  release(): void {
    this.acts.clear();
    for (const c of this.convs) c.release();
    this.images = -1;
    this.zs = [];
    this.outs = [];
  }
}
