// The VLM's training step, all in ONE command encoder:
//   vision forward → connector → image rows copied into the decoder's input embeddings
//   (rows b·S + 0..P−1) → decoder → loss (CE or GEM; optional soft targets, e.g. grounding
//   labels) → decoder backward → token-embedding gradient → the image rows' gradient gathered →
//   connector backward → vision backward → global-norm clipping + AdamW → zero grads.
//   With a region head (pretraining: the encoder phase's head, kept on), the vision rows also
//   go through it: CE against the image rows' targets (mean over the rows with one), its
//   gradient added to the connector's before the vision backward.
//   full mode     vision encoder, connector and decoder all train (pretraining)
//   adapter mode  vision encoder, connector and decoder base frozen (no grads, no optimizer
//                 state, no vision/connector backward); only the decoder's adapters train
import { EdgeTuneError } from '../errors.js';
import type { Batch } from '../gpu/launch.js';
import type { Runtime } from '../gpu/runtime.js';
import { Tensor } from '../gpu/tensor.js';
import { IGNORE_INDEX, recordLoss, type SoftTable } from '../kernels/loss.js';
import { labelAnchors, recordGroundingLabels, type LabelKernel } from '../kernels/grounding_labels.js';
import { boxLabelPoints, locCells, type Box } from '../model/box_codec.js';
import { checkIds } from '../kernels/embedding.js';
import { Activations, paramsNamed, setTrainable, type Param } from '../nn/module.js';
import type { Dense } from '../nn/dense.js';
import { checkRegionHead, regionHeadParams } from './encoder_pretrain.js';
import { checkRegionWords, recordRegionLoss, wordsPerRow } from './region_loss.js';
import { recordAdd } from '../kernels/elementwise.js';
import { RopeTable } from '../nn/rope.js';
import { IMAGE_ROW_ID, layoutBatch, type VlmBatchLayout } from '../model/prompt.js';
import type { VLM } from '../model/vlm.js';
import { AdamW } from './optimizer.js';
import { learningRate } from './schedule.js';
import type { TrainerOptions } from './trainer.js';

/** One micro-batch: B images with one question-answer each. */
export interface VlmBatch extends VlmBatchLayout {
  /** Pixel values (B, 3, H, W), already normalised (VLM.pixelValues). */
  pixels: Float32Array;
  /** Hook for grounding soft targets: rows referenced by SOFT_TARGET + k in `targets`. */
  soft?: SoftTable;
  /** (B·P·K) the items' regionWords (else their imageTargets, K = 1; IGNORE_INDEX where none), for a region head. */
  regions?: Int32Array;
  /** The answers' location tokens (from the items' boxes), for distance-inverse soft targets. */
  grounding?: VlmGrounding;
}

/** Every location token of a micro-batch's answers: its anchor and hard cell (labelAnchors) and the logits row predicting it. */
export interface VlmGrounding {
  count: number;
  anchors: Float32Array;
  cells: Int32Array;
  rows: Int32Array;
}

export interface VlmItem {
  image: { width: number; height: number; data: Uint8ClampedArray };
  question: string;
  /** The answer text, location tokens included (formatAnswer). */
  answer: string;
  /** The boxes the answer's location tokens encode, in order (normalised): enables soft location targets. */
  boxes?: readonly Box[];
  /** (P,) targets of the image rows (IGNORE_INDEX where none; pretraining's region targets). */
  imageTargets?: Int32Array;
  /** (P·K) words of each image row for a region head (regionWords), K the same for every item; default imageTargets. */
  regionWords?: Int32Array;
}

/** Builds a micro-batch from samples. */
export function vlmBatch(vlm: VLM, items: VlmItem[], multiple = 8): VlmBatch {
  const layout = layoutBatch(vlm.tokenizer, vlm.patches, items, vlm.cfg.decoder.maxPositions, multiple);
  const per = 3 * vlm.cfg.vision.imageSize ** 2;
  const pixels = new Float32Array(items.length * per);
  items.forEach((it, b) => pixels.set(vlm.pixelValues(it.image), b * per));
  const P = vlm.patches;
  const K = headWordsPerRow(items, P, vlm.tokenizer.vocabSize);
  const regions = items.some((it) => it.imageTargets || it.regionWords) ? new Int32Array(items.length * P * K).fill(IGNORE_INDEX) : undefined;
  items.forEach((it, b) => {
    if (it.regionWords) regions!.set(it.regionWords, b * P * K);
  });
  items.forEach((it, b) => {
    const t = it.imageTargets;
    if (!t) return;
    if (t.length !== P) throw new EdgeTuneError('SHAPE_MISMATCH', `entry ${b}: imageTargets has ${t.length} entries; the model has ${P} image rows`);
    for (let r = 0; r < P; r++) {
      const id = t[r]!;
      if (id === IGNORE_INDEX) continue;
      if (!(Number.isInteger(id) && id >= 0 && id < vlm.tokenizer.vocabSize)) throw new EdgeTuneError('OUT_OF_RANGE', `entry ${b}: image row ${r} has target ${id}, outside [0, ${vlm.tokenizer.vocabSize})`);
      layout.targets[b * layout.seq + r] = id;
      if (!it.regionWords) regions![(b * P + r) * K] = id;
    }
  });
  const mb: VlmBatch = { pixels, ...layout, regions };
  if (items.some((it) => it.boxes && it.boxes.length > 0)) mb.grounding = groundingOf(vlm, layout.targets, layout.seq, items);
  return mb;
}

/** Region words per image row of a micro-batch's items (checkRegionWords): that of their regionWords (the same for all), else 1. */
function headWordsPerRow(items: VlmItem[], P: number, vocab: number): number {
  let K = 0;
  items.forEach((it, b) => {
    if (!it.regionWords) return;
    const k = checkRegionWords(it.regionWords, P, vocab, `entry ${b}: regionWords`);
    if (K !== 0 && k !== K) throw new EdgeTuneError('SHAPE_MISMATCH', `entry ${b}: regionWords has ${k} words per image row, an earlier entry ${K}; every item needs the same`);
    K = k;
  });
  if (K > 1 && items.some((it) => it.imageTargets && !it.regionWords)) throw new EdgeTuneError('SHAPE_MISMATCH', `items with ${K} region words per row cannot mix with items that have only imageTargets`);
  return K || 1;
}

function groundingOf(vlm: VLM, targets: Int32Array, S: number, items: VlmItem[]): VlmGrounding {
  const tok = vlm.tokenizer, P = vlm.patches;
  const codec = tok.codec;
  const points: number[] = [], ends: boolean[] = [], cells: number[] = [], rows: number[] = [];
  items.forEach((it, b) => {
    const locRows: number[] = [];
    // The answer's rows come after the P image rows (whose region targets may be location tokens too).
    for (let r = b * S + P; r < (b + 1) * S; r++) if (tok.locCell(targets[r]!) >= 0) locRows.push(r);
    const boxes = it.boxes ?? [];
    const before = cells.length;
    for (const box of boxes) {
      const p = boxLabelPoints(box, codec);
      points.push(...p.points);
      ends.push(...p.ends);
      cells.push(...p.cells);
    }
    if (cells.length - before !== locRows.length) {
      throw new EdgeTuneError('INVALID_ARGUMENT', `entry ${b}: its answer has ${locRows.length} location tokens but its ${boxes.length} boxes need ${cells.length - before}`);
    }
    locRows.forEach((r, i) => {
      if (tok.locCell(targets[r]!) !== cells[before + i]) throw new EdgeTuneError('INVALID_ARGUMENT', `entry ${b}: location token ${i} of the answer does not encode its boxes`);
      rows.push(r);
    });
  });
  const a = labelAnchors(codec, points, { ends, cells });
  return { count: a.count, anchors: a.anchors, cells: a.cells, rows: Int32Array.from(rows) };
}

/**
 * Targets of the vision rows (B·g²·K, raster order, K per row) from those of the image rows
 * (B·(g/m)²·K): vision patch (i, j) takes the targets of the merged cell (⌊i/m⌋, ⌊j/m⌋) it
 * belongs to.
 */
export function visionRowTargets(regions: Int32Array, images: number, grid: number, merge: number, perRow = 1): Int32Array {
  if (merge === 1) return regions;
  const gm = grid / merge, P = gm * gm, Pv = grid * grid, K = perRow;
  const out = new Int32Array(images * Pv * K);
  for (let b = 0; b < images; b++) {
    for (let i = 0; i < grid; i++) {
      for (let j = 0; j < grid; j++) {
        const from = (b * P + Math.floor(i / merge) * gm + Math.floor(j / merge)) * K;
        out.set(regions.subarray(from, from + K), (b * Pv + i * grid + j) * K);
      }
    }
  }
  return out;
}

export interface VlmTrainerOptions extends TrainerOptions {
  /** Soft targets at the answers' location tokens (DESIGN §1.5) where a micro-batch has `grounding`. */
  grounding?: { kernel: LabelKernel; mix?: number };
  /**
   * Full mode: a head on the vision encoder's rows, (dv → vocab), trained with everything else;
   * its CE against the micro-batches' `regions` adds to the loss. Not part of the model.
   */
  regionHead?: Dense;
  /**
   * Full mode: parameters (by model name, e.g. `vision_model.embeddings.stem_skip.weight`) kept
   * frozen: no gradient and no optimizer state; gradients still flow through them to what is
   * before them. Pretraining freezes the stem skip until its locate phase.
   */
  frozen?: readonly string[];
}

export interface VlmStepReport {
  step: number;
  loss: number;
  ce: number;
  gradNorm: number;
  skipped: boolean;
  lr: number;
  /** Answer tokens that carried a target. */
  targets: number;
  /** The region head's CE (mean over micro-batches; 0 without one). */
  regionCe: number;
}

/** The parameters `opts.frozen` names (checked before the trainer changes anything). */
function frozenParams(vlm: VLM, opts: VlmTrainerOptions): Param[] {
  if (!opts.frozen?.length) return [];
  if (opts.mode !== 'full') throw new EdgeTuneError('INVALID_ARGUMENT', 'frozen names parameters to keep out of full-mode training; adapter mode freezes the whole base already');
  return paramsNamed(vlm.params(), opts.frozen, 'this model');
}

export class VlmTrainer {
  readonly rt: Runtime;
  readonly vlm: VLM;
  readonly opts: VlmTrainerOptions;
  readonly optimizer: AdamW;
  private stepCount = 0;
  /** Host-written and scratch buffers by slot and shape (allocated once, reused every step). */
  private readonly bufs: Activations;

  constructor(vlm: VLM, opts: VlmTrainerOptions) {
    vlm.assertAlive();
    if (opts.regionHead && opts.mode !== 'full') throw new EdgeTuneError('INVALID_ARGUMENT', 'a region head trains the vision encoder: it needs full mode');
    if (opts.regionHead) checkRegionHead(vlm, opts.regionHead);
    const frozen = frozenParams(vlm, opts);
    this.rt = vlm.rt;
    this.vlm = vlm;
    this.opts = opts;
    this.bufs = new Activations(vlm.rt);
    vlm.decoder.setMode(opts.mode, opts.adapter);
    for (const p of [...vlm.vision.params(), ...vlm.connector.params()]) setTrainable(this.rt, p, opts.mode === 'full');
    for (const p of frozen) setTrainable(this.rt, p, false);
    this.optimizer = new AdamW(this.rt, [...vlm.params(), ...(opts.regionHead ? regionHeadParams(opts.regionHead) : [])], opts);
  }

  get step(): number {
    return this.stepCount;
  }

  /** Sets the step counter (resuming from a checkpoint; the optimizer's t comes with its state). */
  set step(t: number) {
    this.stepCount = t;
  }

  private check(mb: VlmBatch): void {
    const v = this.vlm;
    v.assertAlive();
    const B = mb.batch, S = mb.seq, T = B * S, P = v.patches;
    const per = 3 * v.cfg.vision.imageSize ** 2;
    if (mb.pixels.length !== B * per) throw new EdgeTuneError('SHAPE_MISMATCH', `${B} images of ${v.cfg.vision.imageSize}² need ${B * per} pixel values, got ${mb.pixels.length}`);
    if (mb.ids.length !== T || mb.targets.length !== T) throw new EdgeTuneError('SHAPE_MISMATCH', `a ${B}×${S} batch needs ${T} ids and targets`);
    if (S > v.cfg.decoder.maxPositions) throw new EdgeTuneError('TOO_LARGE', `sequence of ${S} exceeds the model's ${v.cfg.decoder.maxPositions} positions`);
    if (S < P) throw new EdgeTuneError('SHAPE_MISMATCH', `sequence of ${S} is shorter than the ${P} image rows`);
    for (let b = 0; b < B; b++) {
      for (let s = 0; s < P; s++) if (mb.ids[b * S + s] !== IMAGE_ROW_ID) throw new EdgeTuneError('INVALID_ARGUMENT', `row ${b * S + s} is an image row; its id must be ${IMAGE_ROW_ID}`);
      checkIds(mb.ids.subarray(b * S + P, (b + 1) * S), v.cfg.decoder.vocab, `ids of entry ${b}`);
    }
  }

  /**
   * Records forward and loss (into `out`) of a micro-batch; with `backward`, also every
   * gradient. Host data goes into buffers of slot `slot` (one per micro-batch of a step).
   * Returns the logits (valid until the next forward).
   */
  async recordMicro(batch: Batch, mb: VlmBatch, out: Tensor, o: { slot?: number; backward?: boolean } = {}): Promise<Tensor> {
    this.check(mb);
    const slot = o.slot ?? 0;
    const v = this.vlm;
    const rt = this.rt;
    const B = mb.batch, S = mb.seq, T = B * S, P = v.patches, d = v.cfg.decoder.dModel, V = v.cfg.decoder.vocab;
    const im = v.cfg.vision.imageSize;
    const pixels = this.bufs.get(`pixels.${slot}`, [B, 3, im, im]);
    pixels.write(mb.pixels);
    const ids = this.bufs.get(`ids.${slot}`, [T], 'i32');
    ids.write(mb.ids);
    const positions = this.bufs.get(`positions.${slot}`, [T], 'i32');
    positions.write(RopeTable.sequential(B, S));
    const targets = this.bufs.get(`targets.${slot}`, [T], 'i32');
    targets.write(mb.targets);
    const feats = await v.vision.forward(batch, pixels);
    const Pv = v.vision.patches;
    const img = await v.connector.forward(batch, feats, B * Pv);
    const embeds = await v.decoder.embedTokens(batch, ids);
    for (let b = 0; b < B; b++) batch.copy(img.buffer, b * P * d * 4, embeds.buffer, b * S * d * 4, P * d * 4);
    const logits = await v.decoder.forward(batch, embeds, { batch: B, seq: S, positions, prefix: mb.prefix, lengths: mb.lengths });
    const gem = this.opts.loss === 'gem';
    const dlogits = this.bufs.get('dlogits', [T, V]);
    let soft = mb.soft;
    const g = mb.grounding;
    if (this.opts.grounding && g && g.count > 0) {
      if (soft) throw new EdgeTuneError('INVALID_ARGUMENT', 'a micro-batch has either its own soft table or grounding, not both');
      // Capacity in powers of two: a few buffer sizes serve every step.
      const cap = 2 ** Math.ceil(Math.log2(Math.max(16, g.count)));
      const cellsN = locCells(v.tokenizer.codec);
      const anchors = this.bufs.get(`ground.anchors.${slot}`, [cap, 2]);
      const an = new Float32Array(2 * cap);
      an.set(g.anchors);
      anchors.write(an);
      const slots = this.bufs.get(`ground.slots.${slot}`, [2 * cap], 'i32');
      const sl = new Int32Array(2 * cap);
      sl.set(g.cells);
      sl.set(g.rows, g.count);
      slots.write(sl);
      const table = this.bufs.get(`ground.soft.${slot}`, [cap, cellsN]);
      await recordGroundingLabels(rt, batch, {
        codec: v.tokenizer.codec, kernel: this.opts.grounding.kernel, mix: this.opts.grounding.mix, count: g.count,
        anchors: anchors.buffer, slots: slots.buffer, out: table.buffer, targets: targets.buffer,
      });
      soft = { values: table.buffer, rows: g.count, width: cellsN, offset: v.tokenizer.locOffset };
    }
    await recordLoss(rt, batch, {
      logits: logits.buffer, rows: T, vocab: V, targets: targets.buffer, soft,
      beta: gem ? (this.opts.beta ?? 0.7) : 1, h: gem ? this.opts.h : 'linear', grad: dlogits.buffer, out: out.buffer,
    });
    const head = this.opts.regionHead;
    let dfeatHead: Tensor | null = null;
    if (head && mb.regions) {
      const K = wordsPerRow(mb.regions, B * P);
      const words = visionRowTargets(mb.regions, B, v.connector.grid, v.connector.merge, K);
      const hl = await head.forward(batch, feats, B * Pv);
      const dhl = this.bufs.get('dregion', [B * Pv, V]);
      await recordRegionLoss(rt, batch, this.bufs, `regions.${slot}`, { logits: hl.buffer, rows: B * Pv, vocab: V, words, grad: dhl.buffer, out: this.regionOut(slot).buffer });
      if (o.backward !== false) dfeatHead = await head.backward(batch, dhl);
    }
    if (o.backward === false) return logits;
    const dembeds = await v.decoder.backward(batch, dlogits);
    // Image rows have id −1: the embedding gradient skips them.
    await v.decoder.backwardEmbeddings(batch, dembeds);
    if (this.opts.mode !== 'full') return logits;
    const dimg = this.bufs.get('dimg', [B * P, d]);
    for (let b = 0; b < B; b++) batch.copy(dembeds.buffer, b * S * d * 4, dimg.buffer, b * P * d * 4, P * d * 4);
    let dfeat = await v.connector.backward(batch, dimg);
    if (dfeatHead) {
      const sum = this.bufs.get('dfeat', [B * Pv, v.cfg.vision.d]);
      await recordAdd(rt, batch, dfeat.buffer, dfeatHead.buffer, sum.buffer, sum.size);
      dfeat = sum;
    }
    await v.vision.backward(batch, dfeat);
    return logits;
  }

  /** The region head's loss statistics of micro-batch slot `slot` (recordLoss's `out`). */
  private regionOut(slot: number): Tensor {
    return this.bufs.get(`region.out.${slot}`, [4]);
  }

  /** One optimizer step over one or more micro-batches (gradients averaged). */
  async trainStep(micro: VlmBatch | VlmBatch[]): Promise<VlmStepReport> {
    const list = Array.isArray(micro) ? micro : [micro];
    if (list.length === 0) throw new EdgeTuneError('EMPTY_DATASET', 'trainStep needs at least one micro-batch');
    const outs = list.map((_, i) => this.bufs.get(`loss.${i}`, [4]));
    const batch = this.rt.batch(`vlm train step ${this.stepCount + 1}`);
    for (let i = 0; i < list.length; i++) await this.recordMicro(batch, list[i]!, outs[i]!, { slot: i });
    const t = this.stepCount + 1;
    const lr = this.opts.schedule ? learningRate(this.opts.schedule, t) : (this.opts.lr ?? 1e-3);
    await this.optimizer.record(batch, { lr, gradScale: 1 / list.length, loss: outs[list.length - 1]!.buffer });
    this.optimizer.zeroGrads(batch);
    await batch.submit();
    this.stepCount = t;
    const stats = await this.optimizer.readStats();
    let loss = 0, ce = 0, regionCe = 0;
    for (const o of outs) {
      const r = await o.read();
      loss += (this.opts.loss === 'gem' ? r[0]! : r[1]!) / list.length;
      ce += r[1]! / list.length;
    }
    if (this.opts.regionHead) for (let i = 0; i < list.length; i++) if (list[i]!.regions) regionCe += (await this.regionOut(i).read())[1]! / list.length;
    const targets = list.reduce((s, mb) => s + mb.targets.reduce((n, x) => n + (x >= 0 ? 1 : 0), 0), 0);
    return { step: t, loss, ce, gradNorm: stats.gradNorm, skipped: stats.skipped || !Number.isFinite(loss) || !Number.isFinite(regionCe), lr, targets, regionCe };
  }

  /** Loss and CE of a micro-batch, and the region head's CE (0 without one); nothing changes. */
  async evaluate(mb: VlmBatch): Promise<{ loss: number; ce: number; regionCe: number }> {
    const out = this.bufs.get('eval.out', [4]);
    const batch = this.rt.batch('vlm eval');
    await this.recordMicro(batch, mb, out, { slot: 0, backward: false });
    await batch.submit();
    const r = await out.read();
    const regionCe = this.opts.regionHead && mb.regions ? (await this.regionOut(0).read())[1]! : 0;
    return { loss: this.opts.loss === 'gem' ? r[0]! : r[1]!, ce: r[1]!, regionCe };
  }

  /** The gradients of one micro-batch, by parameter name (grads zeroed before and after). */
  async gradients(mb: VlmBatch): Promise<Map<string, Float32Array>> {
    const out = this.bufs.get('grads.out', [4]);
    return this.optimizer.gradients('vlm grads', async (batch) => {
      await this.recordMicro(batch, mb, out, { slot: 0 });
    });
  }

  destroy(): void {
    this.optimizer.destroy();
    this.bufs.clear();
  }
}
