// LM head: hidden states → logits over the vocabulary.
//   tied     logits = h · Eᵀ     E (vocab, d): the token embedding's table, shared
//   untied   logits = h · W      W (d, vocab): its own weight (ONNX MatMul layout)
//   forward   h (m, d) → logits (m, vocab)
//   backward  dlogits (m, vocab) → dh (m, d); trainable: tied dE += dlogitsᵀ h (into the
//             embedding's gradient), untied dW += hᵀ dlogits
import { EdgeTuneError, expectDim } from '../errors.js';
import type { Runtime } from '../gpu/runtime.js';
import type { Batch } from '../gpu/launch.js';
import type { Tensor } from '../gpu/tensor.js';
import { recordMatmul, type MatmulSchedule } from '../kernels/matmul.js';
import { Activations, type Layer, type Param } from './module.js';
import { Dense } from './dense.js';
import { rowsOf } from './init.js';

export interface LmHeadOptions {
  d: number;
  vocab: number;
  /** Tie to this (vocab, d) parameter, e.g. Embedding.weight. Its gradient (if any) is shared. */
  tied?: Param;
  /** Untied only: W (d, vocab), host data or a borrowed Tensor; default N(0, initStd²). */
  weight?: Float32Array | Tensor;
  /** Untied only: W gets a gradient. Default true. */
  trainable?: boolean;
  initStd?: number;
  seed?: number;
  schedule?: MatmulSchedule;
}

export class LmHead implements Layer {
  readonly rt: Runtime;
  readonly d: number;
  readonly vocab: number;
  /** The shared table when tied. */
  readonly tied: Param | null;
  /** The own projection when untied. */
  readonly dense: Dense | null;
  private readonly schedule: MatmulSchedule | undefined;
  private readonly acts: Activations;
  private saved: { h: Tensor; m: number } | null = null;

  constructor(rt: Runtime, o: LmHeadOptions) {
    if (!o || typeof o !== 'object') throw new EdgeTuneError('INVALID_ARGUMENT', 'LmHead needs { d, vocab }');
    this.rt = rt;
    this.d = expectDim('d', o.d);
    this.vocab = expectDim('vocab', o.vocab);
    this.schedule = o.schedule;
    this.acts = new Activations(rt);
    if (o.tied) {
      if (o.tied.value.size !== this.vocab * this.d) throw new EdgeTuneError('SHAPE_MISMATCH', `the tied table has ${o.tied.value.size} elements, vocab×d = ${this.vocab}×${this.d} needs ${this.vocab * this.d}`);
      this.tied = o.tied;
      this.dense = null;
    } else {
      this.tied = null;
      this.dense = new Dense(rt, { inFeatures: this.d, outFeatures: this.vocab, bias: false, weight: o.weight, trainable: o.trainable, initStd: o.initStd, seed: o.seed, schedule: o.schedule });
    }
  }

  /** Untied: `prefix.weight` (d, vocab). Tied: none (the embedding lists the shared table). */
  params(prefix = ''): Param[] {
    return this.dense ? this.dense.params(prefix) : [];
  }

  /** Records logits (m, vocab) for h (m, d); the logits belong to the layer. */
  async forward(batch: Batch, h: Tensor): Promise<Tensor> {
    const m = rowsOf('LmHead h', h, this.d);
    if (this.dense) return this.dense.forward(batch, h, m);
    const logits = this.acts.get('logits', [m, this.vocab]);
    await recordMatmul(this.rt, batch, { a: h.buffer, b: this.tied!.value.buffer, c: logits.buffer, m, n: this.vocab, k: this.d, transB: true, schedule: this.schedule });
    this.saved = { h, m };
    return logits;
  }

  /** Records dh for dlogits (m, vocab) (returned, layer-owned) and adds the weight gradient. */
  async backward(batch: Batch, dlogits: Tensor): Promise<Tensor> {
    if (this.dense) return this.dense.backward(batch, dlogits);
    const s = this.saved;
    if (!s) throw new EdgeTuneError('INVALID_ARGUMENT', 'LmHead.backward needs a forward first');
    if (dlogits.size !== s.m * this.vocab) throw new EdgeTuneError('SHAPE_MISMATCH', `LmHead.backward: dlogits has ${dlogits.size} elements but m×vocab = ${s.m}×${this.vocab} needs ${s.m * this.vocab}`);
    const E = this.tied!;
    const dh = this.acts.get('dh', [s.m, this.d]);
    await recordMatmul(this.rt, batch, { a: dlogits.buffer, b: E.value.buffer, c: dh.buffer, m: s.m, n: this.d, k: this.vocab, schedule: this.schedule });
    if (E.grad) await recordMatmul(this.rt, batch, { a: dlogits.buffer, b: s.h.buffer, c: E.grad.buffer, m: this.vocab, n: this.d, k: s.m, transA: true, accumulate: true, schedule: this.schedule });
    return dh;
  }

  release(): void {
    this.acts.clear();
    this.dense?.release();
    this.saved = null;
  }
}
