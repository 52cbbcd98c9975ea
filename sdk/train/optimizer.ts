// AdamW with global-norm clipping over the trainable parameters. Optimizer state (m, v)
// exists only for trainable parameters: in adapter mode the frozen base has none.
// `record` adds the whole update to the step's batch; nothing is read back, and a step with
// a non-finite gradient norm or loss changes nothing (stats[2] = 1).
import { EdgeTuneError } from '../errors.js';
import type { Batch } from '../gpu/launch.js';
import type { Runtime } from '../gpu/runtime.js';
import { Tensor } from '../gpu/tensor.js';
import { recordAdamW, recordClipPrepare, recordSumSq, sumsqSlots } from '../kernels/adamw.js';
import type { Param } from '../nn/module.js';

export interface AdamWOptions {
  lr?: number;
  beta1?: number;
  beta2?: number;
  eps?: number;
  /** Decoupled weight decay (default 0.01), applied to parameters for which `decay(p)` holds. */
  weightDecay?: number;
  /** Which parameters decay (default: tensors of rank ≥ 2, i.e. not norms and biases). */
  decay?: (p: Param) => boolean;
  /** Clip the global gradient norm to this (default 1; 0 = no clipping). */
  maxGradNorm?: number;
}

export interface StepStats {
  /** Global gradient norm before clipping (of the scaled gradient: see gradScale). */
  gradNorm: number;
  /** True when the step was skipped because the norm or the loss was not finite. */
  skipped: boolean;
}

export class AdamW {
  readonly rt: Runtime;
  readonly params: Param[];
  readonly opts: Required<Omit<AdamWOptions, 'decay'>> & { decay: (p: Param) => boolean };
  private readonly m: Tensor[];
  private readonly v: Tensor[];
  private readonly partial: Tensor;
  private readonly slots: number[];
  /** [‖g‖, scale, skip, Σg²] of the last recorded step, on the GPU. */
  readonly stats: Tensor;
  /** Steps taken (recorded), for bias correction. */
  t = 0;

  constructor(rt: Runtime, params: Param[], opts: AdamWOptions = {}) {
    const trainable = params.filter((p) => p.trainable);
    if (trainable.length === 0) throw new EdgeTuneError('INVALID_ARGUMENT', 'AdamW got no trainable parameters; mark an adapter or the model trainable first');
    for (const p of trainable) if (!p.grad) throw new EdgeTuneError('INVALID_ARGUMENT', `parameter ${p.name} is trainable but has no gradient buffer`);
    this.rt = rt;
    this.params = trainable;
    this.opts = {
      lr: opts.lr ?? 1e-3,
      beta1: opts.beta1 ?? 0.9,
      beta2: opts.beta2 ?? 0.999,
      eps: opts.eps ?? 1e-8,
      weightDecay: opts.weightDecay ?? 0.01,
      maxGradNorm: opts.maxGradNorm ?? 1,
      decay: opts.decay ?? ((p: Param) => p.value.shape.length >= 2),
    };
    this.m = trainable.map((p) => Tensor.zeros(rt, p.value.shape));
    this.v = trainable.map((p) => Tensor.zeros(rt, p.value.shape));
    let base = 0;
    this.slots = trainable.map((p) => {
      const b = base;
      base += sumsqSlots(p.value.size);
      return b;
    });
    this.partial = Tensor.zeros(rt, [base]);
    this.stats = Tensor.zeros(rt, [4]);
  }

  /** Bytes of optimizer state (m, v) on the GPU. */
  get stateBytes(): number {
    return this.m.reduce((s, t) => s + t.size * 8, 0);
  }

  /**
   * Records norm, clipping and the update into `batch`. `gradScale` multiplies every gradient
   * first (1/accumulation steps); `loss` (a 1-element GPU buffer) makes a non-finite loss skip
   * the step too; `lr` overrides the base rate (for schedules).
   */
  async record(batch: Batch, o: { lr?: number; gradScale?: number; loss?: GPUBuffer } = {}): Promise<void> {
    this.t++;
    for (let i = 0; i < this.params.length; i++) {
      const p = this.params[i]!;
      await recordSumSq(this.rt, batch, p.grad!.buffer, p.value.size, this.partial.buffer, this.slots[i]!);
    }
    await recordClipPrepare(this.rt, batch, {
      partial: this.partial.buffer, count: this.partial.size, loss: o.loss, stats: this.stats.buffer,
      maxNorm: this.opts.maxGradNorm, gradScale: o.gradScale ?? 1,
    });
    const lr = o.lr ?? this.opts.lr;
    for (let i = 0; i < this.params.length; i++) {
      const p = this.params[i]!;
      await recordAdamW(this.rt, batch, {
        p: p.value.buffer, g: p.grad!.buffer, m: this.m[i]!.buffer, v: this.v[i]!.buffer, stats: this.stats.buffer, n: p.value.size,
      }, {
        lr, beta1: this.opts.beta1, beta2: this.opts.beta2, eps: this.opts.eps,
        weightDecay: this.opts.decay(p) ? this.opts.weightDecay : 0, t: this.t,
      });
    }
  }

  /** Records zeroing of every gradient (after the update, before the next accumulation). */
  zeroGrads(batch: Batch): void {
    for (const p of this.params) batch.clear(p.grad!.buffer);
  }

  /**
   * The gradients `record` adds to a zeroed accumulation, by parameter name, without an update
   * (checks); the gradients are zeroed again afterwards.
   */
  async gradients(label: string, record: (batch: Batch) => Promise<void>): Promise<Map<string, Float32Array>> {
    let batch = this.rt.batch(label);
    this.zeroGrads(batch);
    await record(batch);
    await batch.submit();
    const g = new Map<string, Float32Array>();
    for (const p of this.params) g.set(p.name, await p.grad!.read());
    batch = this.rt.batch(`${label}: zero grads`);
    this.zeroGrads(batch);
    await batch.submit();
    return g;
  }

  /** Reads the last step's norm and skip flag (a 16-byte readback). */
  async readStats(): Promise<StepStats> {
    const s = await this.stats.read();
    return { gradNorm: s[0]!, skipped: s[2] !== 0 };
  }

  /** Optimizer state for checkpoints: m and v of every parameter, by name. */
  async state(): Promise<{ t: number; m: Record<string, Float32Array>; v: Record<string, Float32Array> }> {
    const m: Record<string, Float32Array> = {};
    const v: Record<string, Float32Array> = {};
    for (let i = 0; i < this.params.length; i++) {
      m[this.params[i]!.name] = await this.m[i]!.read();
      v[this.params[i]!.name] = await this.v[i]!.read();
    }
    return { t: this.t, m, v };
  }

  /** Restores state saved by `state()`. */
  loadState(s: { t: number; m: Record<string, Float32Array>; v: Record<string, Float32Array> }): void {
    for (let i = 0; i < this.params.length; i++) {
      const name = this.params[i]!.name;
      const mi = s.m[name], vi = s.v[name];
      if (!mi || !vi) throw new EdgeTuneError('CORRUPT_ADAPTER', `optimizer state has no entry for ${name}`);
      this.m[i]!.write(mi);
      this.v[i]!.write(vi);
    }
    this.t = s.t;
  }

  destroy(): void {
    for (const t of [...this.m, ...this.v, this.partial, this.stats]) t.release();
  }
}
