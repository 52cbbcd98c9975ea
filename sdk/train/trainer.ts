// Trainer: forward + loss + backward over micro-batches (gradient accumulation), then global-norm
// clipping and AdamW — all recorded into ONE command encoder per step. After the first step no
// pipeline is created and no activation buffer is allocated (same shapes reuse everything).
//   full mode     every parameter of the model trains
//   adapter mode  the base is frozen: no gradient, no optimizer state; only adapters train
// A step whose loss or gradient norm is not finite changes nothing and is reported `skipped`.
import { EdgeTuneError, expectDim } from '../errors.js';
import type { Batch } from '../gpu/launch.js';
import type { Runtime } from '../gpu/runtime.js';
import { Tensor } from '../gpu/tensor.js';
import { IGNORE_INDEX, recordLoss, SOFT_TARGET, type GemH, type SoftTable } from '../kernels/loss.js';
import { checkIds } from '../kernels/embedding.js';
import type { AdapterConfig, LlamaDecoder } from '../nn/decoder.js';
import { Activations } from '../nn/module.js';
import { RopeTable } from '../nn/rope.js';
import { AdamW, type AdamWOptions } from './optimizer.js';
import { learningRate, type LrSchedule } from './schedule.js';

/** One micro-batch of B sequences of S tokens (rows b·S + s). */
export interface TrainBatch {
  batch: number;
  seq: number;
  /** Input token ids (B·S). */
  ids: Int32Array;
  /** Target per row (B·S): the next token, −100 to ignore, or SOFT_TARGET + soft row. */
  targets: Int32Array;
  /** Optional soft targets referenced by `targets` (e.g. grounding labels, already on the GPU). */
  soft?: SoftTable;
  /** Full-attention prefix length (per entry or one for all). */
  prefix?: number | number[];
  /** Valid length per entry (right padding). */
  lengths?: number[];
  /**
   * Optional: replaces the rows given by `embedRows` of the token embeddings with these
   * embeddings (T', d) — image features from the connector. Their gradient is written to
   * `dembeds` when given.
   */
  embeds?: Tensor;
  embedRows?: { start: number; count: number }[];
}

export interface TrainerOptions extends AdamWOptions {
  mode: 'full' | 'adapter';
  adapter?: AdapterConfig;
  /** 'ce' (cross-entropy) or 'gem' (DESIGN §1.4). Default 'ce'. */
  loss?: 'ce' | 'gem';
  /** GEM temperature (default 0.7) and h (default 'linear'). */
  beta?: number;
  h?: GemH;
  /** Learning-rate schedule; overrides `lr` when given. */
  schedule?: LrSchedule;
}

export interface StepReport {
  step: number;
  /** The training loss (GEM or CE, mean over targeted rows and micro-batches). */
  loss: number;
  /** Cross-entropy beside it (equal to loss for 'ce'). */
  ce: number;
  gradNorm: number;
  skipped: boolean;
  lr: number;
  /** High-water mark of live pooled GPU memory during the step, and all pooled memory. */
  peakBytes: number;
  pooledBytes: number;
  /** Pipelines compiled during this step (0 after the first step). */
  newPipelines: number;
}

export class Trainer {
  readonly rt: Runtime;
  readonly model: LlamaDecoder;
  readonly opts: TrainerOptions;
  readonly optimizer: AdamW;
  private stepCount = 0;
  private readonly lossOut: Tensor[] = [];
  /** Host-written and scratch buffers by slot and shape (allocated once, reused every step). */
  private readonly bufs: Activations;

  constructor(rt: Runtime, model: LlamaDecoder, opts: TrainerOptions) {
    this.rt = rt;
    this.model = model;
    this.opts = opts;
    this.bufs = new Activations(rt);
    model.setMode(opts.mode, opts.adapter);
    this.optimizer = new AdamW(rt, model.params(), opts);
  }

  get step(): number {
    return this.stepCount;
  }

  /**
   * Records forward, loss and backward of one micro-batch; the loss lands in `out`. Host data
   * (ids, positions, targets) goes into buffers of micro-batch slot `slot`: writes reach the GPU
   * before the whole batch runs, so two micro-batches of one step must not share them.
   */
  async recordMicro(batch: Batch, mb: TrainBatch, out: Tensor, slot = 0): Promise<void> {
    const dlogits = await this.recordForwardLoss(batch, mb, out, slot);
    const dembeds = await this.model.backward(batch, dlogits);
    await this.model.backwardEmbeddings(batch, dembeds);
  }

  /** Checks and uploads a micro-batch, records forward and loss; returns d(loss)/d(logits). */
  private async recordForwardLoss(batch: Batch, mb: TrainBatch, out: Tensor, slot: number): Promise<Tensor> {
    const B = expectDim('batch', mb.batch);
    const S = expectDim('seq', mb.seq);
    const T = B * S;
    if (mb.ids.length !== T || mb.targets.length !== T) {
      throw new EdgeTuneError('SHAPE_MISMATCH', `a micro-batch of ${B}×${S} needs ${T} ids and targets, got ${mb.ids.length} and ${mb.targets.length}`);
    }
    if (S > this.model.cfg.maxPositions) throw new EdgeTuneError('TOO_LARGE', `sequence of ${S} exceeds the model's ${this.model.cfg.maxPositions} positions`);
    const m = this.model;
    const V = m.cfg.vocab;
    const positions = this.bufs.get(`positions.${slot}`, [T], 'i32');
    positions.write(RopeTable.sequential(B, S));
    const targets = this.bufs.get(`targets.${slot}`, [T], 'i32');
    targets.write(mb.targets);
    checkIds(mb.ids, V, 'ids');
    for (let i = 0; i < T; i++) {
      const t = mb.targets[i]!;
      const soft = t >= SOFT_TARGET && !!mb.soft && t - SOFT_TARGET < mb.soft.rows;
      if (t !== IGNORE_INDEX && !(t >= 0 && t < V) && !soft) {
        throw new EdgeTuneError('OUT_OF_RANGE', `targets[${i}] = ${t} is neither a token id in [0, ${V}), −100 (ignore) nor a soft-target row`);
      }
    }
    const ids = this.bufs.get(`ids.${slot}`, [T], 'i32');
    ids.write(mb.ids);
    const embeds = await m.embedTokens(batch, ids);
    if (mb.embeds && mb.embedRows) {
      let off = 0;
      for (const r of mb.embedRows) {
        batch.copy(mb.embeds.buffer, off * 4 * m.cfg.dModel, embeds.buffer, r.start * 4 * m.cfg.dModel, r.count * 4 * m.cfg.dModel);
        off += r.count;
      }
    }
    const logits = await m.forward(batch, embeds, { batch: B, seq: S, positions, prefix: mb.prefix, lengths: mb.lengths });
    const dlogits = this.bufs.get('dlogits', [T, V]);
    const gem = this.opts.loss === 'gem';
    await recordLoss(this.rt, batch, {
      logits: logits.buffer, rows: T, vocab: V, targets: targets.buffer, soft: mb.soft,
      beta: gem ? (this.opts.beta ?? 0.7) : 1, h: gem ? this.opts.h : 'linear', grad: dlogits.buffer, out: out.buffer,
    });
    return dlogits;
  }

  /** The reported loss from a loss kernel's [GEM mean, CE mean, …]: GEM for 'gem', else CE. */
  private lossValue(o: Float32Array): number {
    return this.opts.loss === 'gem' ? o[0]! : o[1]!;
  }

  /** One optimizer step over `micro` micro-batches (their gradients are averaged). */
  async trainStep(micro: TrainBatch | TrainBatch[]): Promise<StepReport> {
    const list = Array.isArray(micro) ? micro : [micro];
    if (list.length === 0) throw new EdgeTuneError('EMPTY_DATASET', 'trainStep needs at least one micro-batch');
    const rt = this.rt;
    const compiledBefore = rt.pipelines.compiled;
    rt.pool.resetPeak();
    while (this.lossOut.length < list.length) this.lossOut.push(Tensor.zeros(rt, [4]));
    const batch = rt.batch(`train step ${this.stepCount + 1}`);
    for (let i = 0; i < list.length; i++) await this.recordMicro(batch, list[i]!, this.lossOut[i]!, i);
    const t = this.stepCount + 1;
    const lr = this.opts.schedule ? learningRate(this.opts.schedule, t) : (this.opts.lr ?? 1e-3);
    await this.optimizer.record(batch, { lr, gradScale: 1 / list.length, loss: this.lossOut[list.length - 1]!.buffer });
    this.optimizer.zeroGrads(batch);
    await batch.submit();
    this.stepCount = t;
    const stats = await this.optimizer.readStats();
    let loss = 0, ce = 0;
    for (let i = 0; i < list.length; i++) {
      const o = await this.lossOut[i]!.read();
      loss += this.lossValue(o) / list.length;
      ce += o[1]! / list.length;
    }
    return {
      step: t, loss, ce, gradNorm: stats.gradNorm, skipped: stats.skipped || !Number.isFinite(loss), lr,
      peakBytes: rt.pool.peakBytes, pooledBytes: rt.pool.allocatedBytes, newPipelines: rt.pipelines.compiled - compiledBefore,
    };
  }

  /** Loss (and CE) of a micro-batch without changing anything. */
  async evaluate(mb: TrainBatch): Promise<{ loss: number; ce: number }> {
    const out = this.bufs.get('eval.out', [4]);
    const batch = this.rt.batch('eval');
    await this.recordForwardLoss(batch, mb, out, 0);
    await batch.submit();
    const o = await out.read();
    return { loss: this.lossValue(o), ce: o[1]! };
  }

  destroy(): void {
    this.optimizer.destroy();
    for (const t of this.lossOut) t.release();
    this.bufs.clear();
  }
}
