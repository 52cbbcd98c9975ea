// Token embedding: a table (vocab, d) read by token id.
//   forward   ids (T) int32, T = batch·tokens → out (T, d)      out[t] = table[ids[t]]
//   backward  dy (T, d) → (no input gradient)                  trainable: dtable[v] += Σ_{ids[t]=v} dy[t]
// The scatter-add runs without atomics, in token order: reproducible bit for bit. Ids given as an
// Int32Array are checked on the host (OUT_OF_RANGE); ids already on the GPU are not, and an id
// outside [0, vocab) there reads as a zero row and gets no gradient.
// The table is the tied LM head's weight too (LmHead with `tied`).
import { EdgeTuneError, expectDim } from '../errors.js';
import type { Runtime } from '../gpu/runtime.js';
import type { Batch } from '../gpu/launch.js';
import type { Tensor } from '../gpu/tensor.js';
import { checkIds, embeddingLinkSize, recordEmbeddingBackward, recordEmbeddingForward } from '../kernels/embedding.js';
import { Activations, param, type Layer, type Param } from './module.js';
import { named, normalInit, releaseGrads, valueOf } from './init.js';

export interface EmbeddingOptions {
  vocab: number;
  d: number;
  /** The table gets a gradient. Default true. */
  trainable?: boolean;
  /** The table (vocab, d): host data or a borrowed Tensor. Default N(0, initStd²). */
  weight?: Float32Array | Tensor;
  /** Default 0.02. */
  initStd?: number;
  seed?: number;
}

export class Embedding implements Layer {
  readonly rt: Runtime;
  readonly vocab: number;
  readonly d: number;
  readonly weight: Param;
  private readonly acts: Activations;
  private readonly owned: Tensor[] = [];
  private saved: { ids: Tensor; tokens: number } | null = null;

  constructor(rt: Runtime, o: EmbeddingOptions) {
    if (!o || typeof o !== 'object') throw new EdgeTuneError('INVALID_ARGUMENT', 'Embedding needs { vocab, d }');
    this.rt = rt;
    const V = (this.vocab = expectDim('vocab', o.vocab));
    const d = (this.d = expectDim('d', o.d));
    this.weight = param(rt, 'weight', valueOf(rt, 'weight', o.weight, [V, d], () => normalInit(V * d, o.initStd ?? 0.02, o.seed ?? 0), this.owned), o.trainable ?? true);
    this.acts = new Activations(rt);
  }

  params(prefix = ''): Param[] {
    return named(prefix, [['weight', this.weight]]);
  }

  /**
   * Records out = table[ids] for ids (T): an Int32Array (checked, then written into a layer-owned
   * buffer when this is called) or an int32 Tensor. out (T, d) belongs to the layer.
   */
  async forward(batch: Batch, ids: Tensor | Int32Array): Promise<Tensor> {
    let idt: Tensor;
    if (ids instanceof Int32Array) {
      checkIds(ids, this.vocab);
      idt = this.acts.get('ids', [ids.length], 'i32');
      if (ids.length > 0) idt.write(ids);
    } else {
      if (ids.dtype !== 'i32') throw new EdgeTuneError('INVALID_ARGUMENT', `ids must be int32, got a ${ids.dtype} tensor`);
      idt = ids;
    }
    const tokens = idt.size;
    const out = this.acts.get('out', [tokens, this.d]);
    await recordEmbeddingForward(this.rt, batch, { tokens, vocab: this.vocab, d: this.d, ids: idt.buffer, table: this.weight.value.buffer, out: out.buffer });
    this.saved = { ids: idt, tokens };
    return out;
  }

  /** Records the table gradient for dy (T, d) when trainable (added into weight.grad). */
  async backward(batch: Batch, dy: Tensor): Promise<void> {
    const s = this.saved;
    if (!s) throw new EdgeTuneError('INVALID_ARGUMENT', 'Embedding.backward needs a forward first');
    if (dy.size !== s.tokens * this.d) throw new EdgeTuneError('SHAPE_MISMATCH', `Embedding.backward: dy has ${dy.size} elements but tokens×d = ${s.tokens}×${this.d} needs ${s.tokens * this.d}`);
    if (!this.weight.grad || s.tokens === 0) return;
    const link = this.acts.get('link', [embeddingLinkSize(s.tokens)], 'u32');
    await recordEmbeddingBackward(this.rt, batch, { tokens: s.tokens, vocab: this.vocab, d: this.d, ids: s.ids.buffer, dy: dy.buffer, dtable: this.weight.grad.buffer, link: link.buffer });
  }

  release(): void {
    this.acts.clear();
    releaseGrads([this.weight]);
    for (const t of this.owned) t.release();
    this.owned.length = 0;
    this.saved = null;
  }
}
