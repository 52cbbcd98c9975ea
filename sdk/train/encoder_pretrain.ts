// Pretraining's first phase: the vision encoder alone learns what is in each cell, in ONE
// command encoder per step:
//   pixels (B, 3, H, W) → vision encoder → features (B·P, dv) → region head (Dense dv → V)
//   → cross-entropy against each image row's region words (recordRegionLoss: the shape and colour
//     words and the box's location tokens of the object covering it; none where no object does)
//   → head backward → vision backward → global-norm clipping + AdamW over the encoder and the
//   head → zero grads.
// The head is scaffolding, not part of the model: pretraining keeps it on through the VLM phase
// (VlmTrainerOptions.regionHead) and then drops it. Only the vision encoder changes here;
// connector and decoder keep their init.
// Why: in the whole VLM the image rows reach the loss through the connector and the decoder,
// and a from-scratch encoder stays at chance on shapes there for the whole budget; with a
// linear head straight on its rows it learns them within a few hundred steps (README: The tiny
// VLM, "Encoder phase").
import { EdgeTuneError } from '../errors.js';
import type { Batch } from '../gpu/launch.js';
import type { Runtime } from '../gpu/runtime.js';
import type { Tensor } from '../gpu/tensor.js';
import { Dense } from '../nn/dense.js';
import { Activations, paramsNamed, setTrainable, type Param } from '../nn/module.js';
import type { VLM } from '../model/vlm.js';
import { AdamW, type AdamWOptions } from './optimizer.js';
import { learningRate, type LrSchedule } from './schedule.js';
import { checkRegionWords, recordRegionLoss } from './region_loss.js';

/** B images and the target ids of the vision encoder's rows. */
export interface EncoderBatch {
  batch: number;
  /** Pixel values (B, 3, H, W), already normalised (VLM.pixelValues). */
  pixels: Float32Array;
  /** (B·Pv·K) vocabulary ids, K ≥ 1 per row (regionWords), IGNORE_INDEX where none; Pv = vision.patches (before any merge). */
  targets: Int32Array;
}

export interface EncoderTrainerOptions extends AdamWOptions {
  /** Learning rate by step (default: a constant `lr`). */
  schedule?: LrSchedule;
  /** The region head (regionHead); the caller keeps it. Default: a new one, destroyed with the trainer. */
  head?: Dense;
  /** Init seed of a new region head (default 0). */
  seed?: number;
  /** Encoder parameters (by model name, vision_model.…) kept frozen: no gradient, no optimizer state. */
  frozen?: readonly string[];
}

export interface EncoderStepReport {
  step: number;
  loss: number;
  gradNorm: number;
  skipped: boolean;
  lr: number;
  /** Rows that carried a target. */
  targets: number;
}

/** Init std of the region head. */
export const REGION_HEAD_STD = 0.02;

/** A region head for `vlm`: Dense (vision d → vocab), N(0, REGION_HEAD_STD²), zero bias. */
export function regionHead(vlm: VLM, seed = 0): Dense {
  return new Dense(vlm.rt, { inFeatures: vlm.cfg.vision.d, outFeatures: vlm.cfg.decoder.vocab, bias: true, initStd: REGION_HEAD_STD, seed: seed * 13 + 5 });
}

/** A region head's parameters, under their checkpoint names (region_head.weight, region_head.bias). */
export function regionHeadParams(head: Dense): Param[] {
  return head.params('region_head');
}

/** A region head must map the model's vision width to its vocabulary. */
export function checkRegionHead(vlm: VLM, head: Dense): void {
  if (head.inFeatures !== vlm.cfg.vision.d || head.outFeatures !== vlm.cfg.decoder.vocab) {
    throw new EdgeTuneError('SHAPE_MISMATCH', `the region head maps ${head.inFeatures} → ${head.outFeatures}; this model needs ${vlm.cfg.vision.d} → ${vlm.cfg.decoder.vocab}`);
  }
}

export class EncoderTrainer {
  readonly rt: Runtime;
  readonly vlm: VLM;
  /** features (B·P, dv) → logits over the vocabulary (B·P, V). */
  readonly head: Dense;
  readonly optimizer: AdamW;
  readonly opts: EncoderTrainerOptions;
  private stepCount = 0;
  private readonly bufs: Activations;
  private readonly ownsHead: boolean;

  constructor(vlm: VLM, opts: EncoderTrainerOptions = {}) {
    vlm.assertAlive();
    if (opts.head) checkRegionHead(vlm, opts.head);
    this.rt = vlm.rt;
    this.vlm = vlm;
    this.opts = opts;
    this.bufs = new Activations(vlm.rt);
    // The encoder's parameters under the model's names (vision_model.…), as checkpoints know them.
    const own = new Set(vlm.vision.params().map((p) => p.value));
    const all = vlm.params().filter((p) => own.has(p.value));
    const frozen = new Set(paramsNamed(all, opts.frozen ?? [], 'the vision encoder'));
    const vision = all.filter((p) => !frozen.has(p));
    for (const p of all) setTrainable(this.rt, p, vision.includes(p));
    this.ownsHead = !opts.head;
    this.head = opts.head ?? regionHead(vlm, opts.seed ?? 0);
    this.optimizer = new AdamW(this.rt, [...vision, ...regionHeadParams(this.head)], opts);
  }

  get step(): number {
    return this.stepCount;
  }

  /** Sets the step counter (resuming from a checkpoint; the optimizer's t comes with its state). */
  set step(t: number) {
    this.stepCount = t;
  }

  private check(mb: EncoderBatch): void {
    const v = this.vlm;
    const B = mb.batch, P = v.vision.patches, V = v.cfg.decoder.vocab;
    if (!(Number.isInteger(B) && B >= 1)) throw new EdgeTuneError('EMPTY_DATASET', `an encoder batch needs at least one image, got ${String(B)}`);
    const per = 3 * v.cfg.vision.imageSize ** 2;
    if (mb.pixels.length !== B * per) throw new EdgeTuneError('SHAPE_MISMATCH', `${B} images of ${v.cfg.vision.imageSize}² need ${B * per} pixel values, got ${mb.pixels.length}`);
    checkRegionWords(mb.targets, B * P, V, `the targets of ${B} images of ${P} rows`);
  }

  /** Records forward and loss (into `out`); with `backward`, the gradients of the encoder and the head. */
  private async record(batch: Batch, mb: EncoderBatch, out: Tensor, backward: boolean): Promise<void> {
    this.vlm.assertAlive();
    this.check(mb);
    const v = this.vlm;
    const B = mb.batch, P = v.vision.patches, V = v.cfg.decoder.vocab, im = v.cfg.vision.imageSize;
    const pixels = this.bufs.get('pixels', [B, 3, im, im]);
    pixels.write(mb.pixels);
    const feats = await v.vision.forward(batch, pixels);
    const logits = await this.head.forward(batch, feats, B * P);
    const dlogits = this.bufs.get('dlogits', [B * P, V]);
    await recordRegionLoss(this.rt, batch, this.bufs, 'region', { logits: logits.buffer, rows: B * P, vocab: V, words: mb.targets, grad: dlogits.buffer, out: out.buffer });
    if (!backward) return;
    await v.vision.backward(batch, await this.head.backward(batch, dlogits));
  }

  /** One optimizer step; returns the step's mean cross-entropy. */
  async trainStep(mb: EncoderBatch): Promise<EncoderStepReport> {
    const out = this.bufs.get('loss', [4]);
    const batch = this.rt.batch(`encoder step ${this.stepCount + 1}`);
    await this.record(batch, mb, out, true);
    const t = this.stepCount + 1;
    const lr = this.opts.schedule ? learningRate(this.opts.schedule, t) : (this.opts.lr ?? 1e-3);
    await this.optimizer.record(batch, { lr, loss: out.buffer });
    this.optimizer.zeroGrads(batch);
    await batch.submit();
    this.stepCount = t;
    const stats = await this.optimizer.readStats();
    const r = await out.read();
    return { step: t, loss: r[1]!, gradNorm: stats.gradNorm, skipped: stats.skipped || !Number.isFinite(r[1]!), lr, targets: r[2]! };
  }

  /** Mean cross-entropy of a batch; nothing changes. */
  async evaluate(mb: EncoderBatch): Promise<number> {
    const out = this.bufs.get('eval.out', [4]);
    const batch = this.rt.batch('encoder eval');
    await this.record(batch, mb, out, false);
    await batch.submit();
    return (await out.read())[1]!;
  }

  /** Gradients of one batch by parameter name (grads zeroed before and after). */
  async gradients(mb: EncoderBatch): Promise<Map<string, Float32Array>> {
    const out = this.bufs.get('grads.out', [4]);
    return this.optimizer.gradients('encoder grads', (batch) => this.record(batch, mb, out, true));
  }

  destroy(): void {
    this.optimizer.destroy();
    if (this.ownsHead) destroyHead(this.head);
    this.bufs.clear();
  }
}

/** Frees a region head's weights and gradients. */
export function destroyHead(head: Dense): void {
  for (const p of regionHeadParams(head)) {
    p.value.release();
    p.grad?.release();
  }
}
