// ViT encoder (SigLIP-style, pre-norm, no class token) and the connector to the decoder width.
//   VisionEncoder  pixels (B, 3, H, W) → features (B·P, d), P = (H/p)·(W/p)
//                  patch embedding + positions → N × [LN → q,k,v → full attention → o → residual
//                  → LN → GELU MLP → residual] → LN. Every layer's output is kept
//                  (`hiddenStates`) for the later visual-cue-enhancement module.
//   Connector      features (B·P, dv) → (B·P/m², d): m×m patches merged (pixel shuffle), then
//                  Dense → GELU → Dense (LLaVA-style projector)
// backward(dy) returns nothing for the pixels; it adds every trainable parameter's gradient.
import { EdgeTuneError, expectDim } from '../errors.js';
import type { Batch } from '../gpu/launch.js';
import type { Runtime } from '../gpu/runtime.js';
import type { Tensor } from '../gpu/tensor.js';
import { recordAdd, recordAddInto } from '../kernels/elementwise.js';
import { recordGeluBackward, recordGeluForward } from '../kernels/activation.js';
import { Attention } from './attention.js';
import { Dense } from './dense.js';
import { joinName } from './init.js';
import { GeluMlp } from './mlp.js';
import { Activations, type Layer, type Param } from './module.js';
import { LayerNorm } from './norm.js';
import { ConvStem, type StemDownsample } from './conv_stem.js';
import { PatchEmbed } from './patch_embed.js';
import { BlockGather, mergeOrder } from './merge_order.js';
import { StemSkip } from './stem_skip.js';

export { mergeOrder };

export interface VisionConfig {
  imageSize: number;
  patch: number;
  d: number;
  layers: number;
  heads: number;
  /** MLP width (default 4d). */
  dFf?: number;
  /** LayerNorm epsilon (default 1e-6, SigLIP). */
  eps?: number;
  /**
   * Output channels of the stages of a convolutional stem (hybrid ViT: ConvStem). Each stage
   * halves the image, so `patch` must be 2^stages: the tokens are the cells of the stem's map.
   * Absent: plain patches.
   */
  stem?: number[];
  /**
   * How each stem stage halves its map: 'pool' (3×3 conv → GELU → 2×2 max pool; the default) or
   * 'stride' (stride-2 3×3 conv → GELU). Only with `stem`.
   */
  stemDownsample?: StemDownsample;
  /**
   * Two coordinate channels (each pixel's column and row) on the input of every stem convolution
   * (CoordConv), so that the tokens can tell where within their cell an object's edges are. Only
   * with `stem`; default false.
   */
  stemCoords?: boolean;
  /**
   * Stem skip (StemSkip): the output map of this stem stage (0-based, before the last) is
   * regrouped per token (each token's k×k cells side by side, k = 2^(stages − 1 − stemSkip)) and
   * projected by a zero-initialised W onto the tokens, so that they keep where inside their cell
   * things are (box corners on a grid finer than the tokens'). Only with `stem`; absent: none.
   */
  stemSkip?: number;
}

/**
 * Initial std of the token projection after a convolutional stem, and of a hybrid model's
 * connector. At 0.02 the tokens start so small that what attention adds to every row alike (its
 * output is the same for all rows while attention is uniform) drowns what tells the rows apart,
 * and per-row training signals stall (a 3-layer hybrid on per-cell shape targets: chance after
 * 750 steps at 0.02, 83% after 500 at 0.2).
 */
export const STEM_EMBED_STD = 0.2;
export const STEM_CONNECTOR_STD = 0.1;

export class VisionLayer implements Layer {
  readonly rt: Runtime;
  readonly d: number;
  readonly ln1: LayerNorm;
  readonly ln2: LayerNorm;
  readonly q: Dense;
  readonly k: Dense;
  readonly v: Dense;
  readonly o: Dense;
  readonly mlp: GeluMlp;
  readonly attn: Attention;
  private readonly acts: Activations;
  private rows = 0;
  private shape = { batch: 1, seq: 1 };

  constructor(rt: Runtime, cfg: VisionConfig, seed: number) {
    this.rt = rt;
    const d = (this.d = cfg.d);
    const eps = cfg.eps ?? 1e-6;
    this.ln1 = new LayerNorm(rt, { d, eps });
    this.ln2 = new LayerNorm(rt, { d, eps });
    const dense = (k: number) => new Dense(rt, { inFeatures: d, outFeatures: d, bias: true, seed: seed * 17 + k });
    this.q = dense(1);
    this.k = dense(2);
    this.v = dense(3);
    this.o = dense(4);
    this.mlp = new GeluMlp(rt, { d, dFf: cfg.dFf ?? 4 * d, seed: seed * 17 + 5 });
    this.attn = new Attention(rt, { heads: cfg.heads, headDim: d / cfg.heads });
    this.acts = new Activations(rt);
  }

  /** HF SigLIP names: layer_norm1, self_attn.{q,k,v,out}_proj, layer_norm2, mlp.fc1/fc2. */
  params(prefix = ''): Param[] {
    const p = (s: string) => joinName(prefix, s);
    return [
      ...this.ln1.params(p('layer_norm1')), ...this.q.params(p('self_attn.q_proj')), ...this.k.params(p('self_attn.k_proj')),
      ...this.v.params(p('self_attn.v_proj')), ...this.o.params(p('self_attn.out_proj')), ...this.ln2.params(p('layer_norm2')),
      ...this.mlp.params(p('mlp')),
    ];
  }

  /** x (B·P, d) → y (B·P, d); full attention within each image. */
  async forward(batch: Batch, x: Tensor, images: number, patches: number): Promise<Tensor> {
    const T = images * patches;
    this.rows = T;
    this.shape = { batch: images, seq: patches };
    const h = await this.ln1.forward(batch, x);
    const q = await this.q.forward(batch, h, T);
    const k = await this.k.forward(batch, h, T);
    const v = await this.v.forward(batch, h, T);
    const a = await this.attn.forward(batch, q, k, v, { ...this.shape, prefix: patches });
    const o = await this.o.forward(batch, a, T);
    const x2 = this.acts.get('x2', [T, this.d]);
    await recordAdd(this.rt, batch, x.buffer, o.buffer, x2.buffer, T * this.d);
    const m = await this.mlp.forward(batch, await this.ln2.forward(batch, x2), T);
    const y = this.acts.get('y', [T, this.d]);
    await recordAdd(this.rt, batch, x2.buffer, m.buffer, y.buffer, T * this.d);
    return y;
  }

  async backward(batch: Batch, dy: Tensor): Promise<Tensor> {
    const T = this.rows;
    const n = T * this.d;
    const rt = this.rt;
    const dn2 = await this.ln2.backward(batch, await this.mlp.backward(batch, dy));
    const dx2 = this.acts.get('dx2', [T, this.d]);
    await recordAdd(rt, batch, dy.buffer, dn2.buffer, dx2.buffer, n);
    const { dq, dk, dv } = await this.attn.backward(batch, await this.o.backward(batch, dx2));
    const dh = this.acts.get('dh', [T, this.d]);
    await recordAdd(rt, batch, (await this.q.backward(batch, dq)).buffer, (await this.k.backward(batch, dk)).buffer, dh.buffer, n);
    const dhv = await this.v.backward(batch, dv);
    const dh2 = this.acts.get('dh2', [T, this.d]);
    await recordAdd(rt, batch, dh.buffer, dhv.buffer, dh2.buffer, n);
    const dx = this.acts.get('dx', [T, this.d]);
    await recordAdd(rt, batch, dx2.buffer, (await this.ln1.backward(batch, dh2)).buffer, dx.buffer, n);
    return dx;
  }

  /** Frees the layer's activations and parameters. */
  release(): void {
    for (const l of [this.ln1, this.ln2, this.q, this.k, this.v, this.o, this.mlp]) l.release();
    this.attn.clear();
    this.acts.clear();
  }
}

export class VisionEncoder implements Layer {
  readonly rt: Runtime;
  readonly cfg: VisionConfig;
  readonly embed: PatchEmbed;
  /** The convolutional stem (cfg.stem), or null for plain patches. */
  readonly stem: ConvStem | null;
  /** The stem skip (cfg.stemSkip), or null. */
  readonly skip: StemSkip | null = null;
  readonly layers: VisionLayer[];
  readonly postNorm: LayerNorm;
  /** Outputs of the patch embedding and of every layer, from the last forward. */
  hiddenStates: Tensor[] = [];
  private images = 0;

  constructor(rt: Runtime, cfg: VisionConfig, seed = 0) {
    for (const k of ['imageSize', 'patch', 'd', 'layers', 'heads'] as const) expectDim(k, cfg[k]);
    if (cfg.imageSize % cfg.patch !== 0) throw new EdgeTuneError('BAD_CONFIG', `image size ${cfg.imageSize} is not a multiple of the patch ${cfg.patch}`);
    if (cfg.d % cfg.heads !== 0) throw new EdgeTuneError('BAD_CONFIG', `d ${cfg.d} is not a multiple of heads ${cfg.heads}`);
    this.rt = rt;
    this.cfg = cfg;
    if (cfg.stem !== undefined) {
      if (!Array.isArray(cfg.stem) || cfg.stem.length === 0) throw new EdgeTuneError('BAD_CONFIG', `vision.stem must list the channels of at least one stage, got ${JSON.stringify(cfg.stem)}`);
      if (cfg.patch !== 2 ** cfg.stem.length) throw new EdgeTuneError('BAD_CONFIG', `a ${cfg.stem.length}-stage stem makes tokens of ${2 ** cfg.stem.length}×${2 ** cfg.stem.length} pixels: vision.patch must be ${2 ** cfg.stem.length}, got ${cfg.patch}`);
      this.stem = new ConvStem(rt, { imageSize: cfg.imageSize, channels: cfg.stem, downsample: cfg.stemDownsample, coords: cfg.stemCoords, seed: seed * 31 + 2 });
      const g = this.stem.grid;
      this.embed = new PatchEmbed(rt, { height: g, width: g, patch: 1, channels: this.stem.outChannels, rows: true, d: cfg.d, initStd: STEM_EMBED_STD, positionStd: 0.02, seed: seed * 31 + 1 });
      if (cfg.stemSkip !== undefined) {
        const s = cfg.stemSkip, last = cfg.stem.length - 1;
        if (!(Number.isInteger(s) && s >= 0 && s < last)) throw new EdgeTuneError('BAD_CONFIG', `vision.stemSkip names a stem stage before the last (0 … ${last - 1}), got ${JSON.stringify(s)}`);
        this.skip = new StemSkip(rt, { grid: g, block: this.stem.stageSide(s) / g, channels: cfg.stem[s]!, d: cfg.d });
      }
    } else {
      if (cfg.stemSkip !== undefined) throw new EdgeTuneError('BAD_CONFIG', 'vision.stemSkip needs a convolutional stem (vision.stem)');
      this.stem = null;
      this.embed = new PatchEmbed(rt, { height: cfg.imageSize, width: cfg.imageSize, patch: cfg.patch, d: cfg.d, seed: seed * 31 + 1 });
    }
    this.layers = Array.from({ length: cfg.layers }, (_, i) => new VisionLayer(rt, cfg, seed * 31 + 10 + i));
    this.postNorm = new LayerNorm(rt, { d: cfg.d, eps: cfg.eps ?? 1e-6 });
  }

  get patches(): number {
    return this.embed.patches;
  }

  params(prefix = ''): Param[] {
    const p = (s: string) => joinName(prefix, s);
    return [
      ...(this.stem ? this.stem.params(p('embeddings')) : []),
      ...this.embed.params(p('embeddings')),
      ...(this.skip ? this.skip.params(p('embeddings')) : []),
      ...this.layers.flatMap((l, i) => l.params(p(`encoder.layers.${i}`))),
      ...this.postNorm.params(p('post_layernorm')),
    ];
  }

  /** pixels (B, 3, H, W) → features (B·P, d). */
  async forward(batch: Batch, pixels: Tensor): Promise<Tensor> {
    const per = 3 * this.cfg.imageSize * this.cfg.imageSize;
    this.images = pixels.size / per;
    let x = await this.embed.forward(batch, this.stem ? await this.stem.forward(batch, pixels) : pixels);
    if (this.skip) {
      // hidden_states.0 = projection + positions + skip (the ONNX graph's order).
      const s = await this.skip.forward(batch, this.stem!.stageOutput(this.cfg.stemSkip!));
      await recordAddInto(this.rt, batch, s.buffer, x.buffer, x.size);
    }
    this.hiddenStates = [x];
    for (const l of this.layers) {
      x = await l.forward(batch, x, this.images, this.patches);
      this.hiddenStates.push(x);
    }
    return this.postNorm.forward(batch, x);
  }

  async backward(batch: Batch, dy: Tensor): Promise<void> {
    let d = await this.postNorm.backward(batch, dy);
    for (let i = this.layers.length - 1; i >= 0; i--) d = await this.layers[i]!.backward(batch, d);
    if (!this.stem) {
      await this.embed.backward(batch, d);
      return;
    }
    // Through the token projection to the stem: the stem's rows are the projection's input.
    const dRows = await this.embed.backwardRows(batch, d);
    const extra = this.skip ? { stage: this.cfg.stemSkip!, grad: await this.skip.backward(batch, d) } : undefined;
    await this.stem.backward(batch, dRows, extra);
  }

  /** Frees the encoder's activations and parameters. */
  release(): void {
    this.stem?.release();
    this.embed.release();
    this.skip?.release();
    for (const l of this.layers) l.release();
    this.postNorm.release();
    this.hiddenStates = [];
  }
}

/**
 * features (B·P, dv) → (B·P/m², d): the m×m neighbouring patches of each cell are concatenated
 * (pixel shuffle, in mergeOrder's order; m = 1 keeps every patch), then
 * y = fc2(gelu(fc1(x))), fc1: m²·dv → d, fc2: d → d (LLaVA-style projector).
 */
export class Connector implements Layer {
  readonly rt: Runtime;
  readonly fc1: Dense;
  readonly fc2: Dense;
  /** Patches merged per side. */
  readonly merge: number;
  /** Patches per side of the vision grid. */
  readonly grid: number;
  readonly visionD: number;
  private readonly acts: Activations;
  private saved: { z: Tensor; rows: number } | null = null;
  private readonly shuffle: BlockGather;
  /** initStd: of fc1 and fc2 (default 0.02). */
  constructor(rt: Runtime, o: { visionD: number; d: number; seed?: number; merge?: number; grid?: number; initStd?: number }) {
    this.rt = rt;
    this.merge = o.merge ?? 1;
    this.grid = o.grid ?? this.merge;
    this.visionD = o.visionD;
    expectDim('merge', this.merge);
    if (this.grid % this.merge !== 0) throw new EdgeTuneError('BAD_CONFIG', `a ${this.grid}×${this.grid} patch grid cannot be merged ${this.merge}×${this.merge}`);
    this.fc1 = new Dense(rt, { inFeatures: this.merge ** 2 * o.visionD, outFeatures: o.d, bias: true, initStd: o.initStd, seed: (o.seed ?? 0) * 13 + 1 });
    this.fc2 = new Dense(rt, { inFeatures: o.d, outFeatures: o.d, bias: true, initStd: o.initStd, seed: (o.seed ?? 0) * 13 + 2 });
    this.shuffle = new BlockGather(rt, this.grid, this.merge);
    this.acts = new Activations(rt);
  }
  /** Output rows per image (of P patches). */
  rowsPer(patches: number): number {
    return patches / this.merge ** 2;
  }
  /** LLaVA names: linear_1, linear_2. */
  params(prefix = ''): Param[] {
    return [...this.fc1.params(joinName(prefix, 'linear_1')), ...this.fc2.params(joinName(prefix, 'linear_2'))];
  }
  /** x (B·P, dv) → (B·P/m², d); `rows` = B·P, the feature rows. */
  async forward(batch: Batch, x: Tensor, rows: number): Promise<Tensor> {
    let input = x;
    const out = rows / this.merge ** 2;
    if (this.merge > 1) {
      input = this.acts.get('merged', [rows, this.visionD]);
      await this.shuffle.gather(batch, x, input, rows, this.visionD);
    }
    const z = await this.fc1.forward(batch, input, out);
    const a = this.acts.get('act', [out, this.fc1.outFeatures]);
    await recordGeluForward(this.rt, batch, { z: z.buffer, y: a.buffer, n: out * this.fc1.outFeatures });
    this.saved = { z, rows: out };
    return this.fc2.forward(batch, a, out);
  }
  /** dy (B·P/m², d) → dx (B·P, dv). */
  async backward(batch: Batch, dy: Tensor): Promise<Tensor> {
    if (!this.saved) throw new EdgeTuneError('INVALID_ARGUMENT', 'Connector.backward needs a forward first');
    const { z, rows } = this.saved;
    const da = await this.fc2.backward(batch, dy);
    const dz = this.acts.get('dz', [rows, this.fc1.outFeatures]);
    await recordGeluBackward(this.rt, batch, { z: z.buffer, dy: da.buffer, dz: dz.buffer, n: rows * this.fc1.outFeatures });
    const dm = await this.fc1.backward(batch, dz);
    if (this.merge === 1) return dm;
    // A permutation's gradient is the gather by its inverse.
    const patchRows = rows * this.merge ** 2;
    const dx = this.acts.get('dx', [patchRows, this.visionD]);
    await this.shuffle.gather(batch, dm, dx, patchRows, this.visionD, true);
    return dx;
  }

  /** Frees the connector's activations and parameters. */
  release(): void {
    this.fc1.release();
    this.fc2.release();
    this.shuffle.release();
    this.acts.clear();
    this.saved = null;
  }
}
