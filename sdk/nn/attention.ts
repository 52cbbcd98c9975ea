// Attention core: softmax(q kᵀ/√Dh + mask) v with grouped-query heads, and its KV cache.
// No projections and no RoPE: the model composes q/k/v/o Linears and RoPE around it.
//
//   const attn = new Attention(rt, { heads: Hq, kvHeads: Hkv, headDim: Dh });
//   o = await attn.forward(batch, q, k, v, { batch: B, seq: S, prefix, lengths })
//       q (B·S, Hq·Dh), k and v (B·S, Hkv·Dh): the projections' outputs, row-major, rows
//       b·S + position. Returns o (B·S, Hq·Dh), owned by the layer (reused per shape). While
//       `training`, keeps q, k, v (borrowed: they must stay alive until backward) and the
//       logsumexp of every score row.
//   { dq, dk, dv } = await attn.backward(batch, dout)
//       for dout = dL/do (B·S, Hq·Dh): dq like q, dk and dv like k and v (summed over the
//       query heads that share a kv head); owned by the layer. No parameters, so nothing is
//       added to any grad.
//   o = await attn.forwardCached(batch, q, k, v, cache, layer, { n, prefix })
//       generation: appends the n new k, v rows per entry (B·n, Hkv·Dh) to `cache` at its
//       length for `layer`, then attends the n new queries (B·n, Hq·Dh) to every cached key.
//       Equals the matching rows of a full forward over the whole sequence.
// Mask (per entry b): query position i sees key position j when j < len_b, i < len_b and
// (j ≤ i, or i < prefix_b and j < prefix_b): causal, plus full attention among the first
// prefix_b positions (image tokens + prompt, as PaliGemma), plus right padding (lengths).
// Padded query rows output 0. Head h uses kv head h / (Hq/Hkv).
// Memory: o and dq (B·S·Hq·Dh), dk, dv (B·S·Hkv·Dh), stats (2·B·S·Hq); no S×S matrix is ever
// stored: the backward recomputes the probabilities from q, k and the saved logsumexp.
import { EdgeTuneError, expectDim } from '../errors.js';
import type { Batch } from '../gpu/launch.js';
import type { Runtime } from '../gpu/runtime.js';
import { Tensor } from '../gpu/tensor.js';
import {
  attentionInfo, attentionStatsFloats, checkAttentionDims, recordAttentionBackward, recordAttentionForward,
  recordKvAppend, type AttentionSchedule,
} from '../kernels/attention.js';
import { Activations, expectSize, type Layer, type Param } from './module.js';

export interface AttentionOptions {
  heads: number;
  /** Default heads (no grouping). heads must be a multiple. */
  kvHeads?: number;
  headDim: number;
  /** Force a kernel schedule (default: the adapter's best). */
  schedule?: AttentionSchedule;
}

export interface AttentionMask {
  /** Full-attention prefix length, one for all entries or one each. Default 0 (causal). */
  prefix?: number | ArrayLike<number>;
  /** Valid positions per entry (right padding). Default all. */
  lengths?: ArrayLike<number>;
}

export interface KVCacheOptions {
  layers: number;
  batch: number;
  maxPositions: number;
  kvHeads: number;
  headDim: number;
}

/** Per-layer k and v of up to maxPositions positions per entry, (B·maxPositions, Hkv·Dh) each. */
export class KVCache {
  readonly rt: Runtime;
  readonly layers: number;
  readonly batch: number;
  readonly maxPositions: number;
  readonly kvHeads: number;
  readonly headDim: number;
  readonly k: Tensor[] = [];
  readonly v: Tensor[] = [];
  private readonly lengths: number[];

  constructor(rt: Runtime, o: KVCacheOptions) {
    if (!o || typeof o !== 'object') throw new EdgeTuneError('INVALID_ARGUMENT', 'KVCache needs { layers, batch, maxPositions, kvHeads, headDim }');
    this.rt = rt;
    this.layers = expectDim('layers', o.layers);
    this.batch = expectDim('batch', o.batch);
    this.maxPositions = expectDim('maxPositions', o.maxPositions);
    this.kvHeads = expectDim('kvHeads', o.kvHeads);
    this.headDim = expectDim('headDim', o.headDim);
    const shape = [this.batch * this.maxPositions, this.kvHeads * this.headDim];
    for (let l = 0; l < this.layers; l++) {
      this.k.push(Tensor.zeros(rt, shape));
      this.v.push(Tensor.zeros(rt, shape));
    }
    this.lengths = new Array<number>(this.layers).fill(0);
  }

  /** Positions cached for `layer`. */
  length(layer = 0): number {
    this.checkLayer(layer);
    return this.lengths[layer]!;
  }

  /** Forgets every position (nothing is cleared on the GPU: rows are overwritten before use). */
  reset(): void {
    this.lengths.fill(0);
  }

  /** Records writing k, v (B·n, Hkv·Dh) at positions [length, length + n) of `layer`; advances its length. */
  async append(batch: Batch, layer: number, k: Tensor, v: Tensor, n: number): Promise<void> {
    this.checkLayer(layer);
    expectDim('n', n);
    const rows = this.batch * n * this.kvHeads * this.headDim;
    expectSize('KVCache.append: k', k, rows);
    expectSize('KVCache.append: v', v, rows);
    const t = this.lengths[layer]!;
    await recordKvAppend(this.rt, batch, {
      batch: this.batch, n, position: t, maxPositions: this.maxPositions, kvHeads: this.kvHeads, headDim: this.headDim,
      k: k.buffer, v: v.buffer, kCache: this.k[layer]!.buffer, vCache: this.v[layer]!.buffer,
    });
    this.lengths[layer] = t + n;
  }

  get bytes(): number {
    return 2 * this.layers * this.batch * this.maxPositions * this.kvHeads * this.headDim * 4;
  }

  release(): void {
    for (const t of [...this.k, ...this.v]) t.release();
    this.k.length = 0;
    this.v.length = 0;
  }

  private checkLayer(layer: number): void {
    if (!Number.isInteger(layer) || layer < 0 || layer >= this.layers) {
      throw new EdgeTuneError('OUT_OF_RANGE', `layer ${String(layer)} is outside the cache's ${this.layers} layers`);
    }
  }
}

interface Saved {
  q: Tensor;
  k: Tensor;
  v: Tensor;
  o: Tensor;
  stats: Tensor;
  info: Tensor;
  batch: number;
  seq: number;
}

export class Attention implements Layer {
  readonly rt: Runtime;
  readonly heads: number;
  readonly kvHeads: number;
  readonly headDim: number;
  /** While true, forward keeps what backward needs. */
  training = true;
  readonly acts: Activations;
  private readonly schedule: AttentionSchedule | undefined;
  private saved: Saved | null = null;

  constructor(rt: Runtime, o: AttentionOptions) {
    if (!o || typeof o !== 'object') throw new EdgeTuneError('INVALID_ARGUMENT', 'Attention needs { heads, kvHeads, headDim }');
    this.rt = rt;
    this.heads = expectDim('heads', o.heads);
    this.kvHeads = expectDim('kvHeads', o.kvHeads ?? o.heads);
    this.headDim = expectDim('headDim', o.headDim);
    if (this.heads % this.kvHeads !== 0) {
      throw new EdgeTuneError('INVALID_ARGUMENT', `heads (${this.heads}) must be a multiple of kvHeads (${this.kvHeads})`);
    }
    this.schedule = o.schedule;
    this.acts = new Activations(rt);
  }

  /** The core has no parameters. */
  params(_prefix = ''): Param[] {
    return [];
  }

  /** Records o = attention(q, k, v) over full sequences; returns o (B·S, Hq·Dh). */
  async forward(batch: Batch, q: Tensor, k: Tensor, v: Tensor, shape: { batch: number; seq: number } & AttentionMask): Promise<Tensor> {
    if (!shape || typeof shape !== 'object') throw new EdgeTuneError('INVALID_ARGUMENT', 'Attention.forward needs { batch, seq }');
    const B = expectDim('batch', shape.batch);
    const S = expectDim('seq', shape.seq);
    const dims = this.dims(B, S);
    checkAttentionDims(this.rt, dims);
    this.expectRows('q', q, B * S, this.heads);
    this.expectRows('k', k, B * S, this.kvHeads);
    this.expectRows('v', v, B * S, this.kvHeads);
    const infoHost = attentionInfo(B, S, shape.lengths, shape.prefix ?? 0);
    const o = this.acts.get('o', [B * S, this.heads * this.headDim]);
    const stats = this.acts.get('stats', [attentionStatsFloats(dims)]);
    const info = Tensor.from(this.rt, infoHost, [B, 2]);
    await recordAttentionForward(this.rt, batch, { ...dims, q: q.buffer, k: k.buffer, v: v.buffer, o: o.buffer, stats: stats.buffer, info: info.buffer });
    this.dropSaved(batch);
    if (this.training) this.saved = { q, k, v, o, stats, info, batch: B, seq: S };
    else batch.onDone(() => info.release());
    return o;
  }

  /** Records the backward of the last training forward for dout (B·S, Hq·Dh). */
  async backward(batch: Batch, dout: Tensor): Promise<{ dq: Tensor; dk: Tensor; dv: Tensor }> {
    const s = this.saved;
    if (!s) throw new EdgeTuneError('INVALID_ARGUMENT', 'Attention.backward needs a forward recorded while training');
    this.expectRows('dout', dout, s.batch * s.seq, this.heads);
    const rows = s.batch * s.seq;
    const dq = this.acts.get('dq', [rows, this.heads * this.headDim]);
    const dk = this.acts.get('dk', [rows, this.kvHeads * this.headDim]);
    const dv = this.acts.get('dv', [rows, this.kvHeads * this.headDim]);
    await recordAttentionBackward(this.rt, batch, {
      ...this.dims(s.batch, s.seq), q: s.q.buffer, k: s.k.buffer, v: s.v.buffer, o: s.o.buffer, stats: s.stats.buffer,
      info: s.info.buffer, dout: dout.buffer, dq: dq.buffer, dk: dk.buffer, dv: dv.buffer,
    });
    return { dq, dk, dv };
  }

  /**
   * Generation: appends k, v (B·n, Hkv·Dh) to `cache` for `layer`, then attends the n new
   * queries q (B·n, Hq·Dh) at positions [t, t + n) to every cached key (t = the layer's cache
   * length before). Returns o (B·n, Hq·Dh). A prefix must be appended whole before any
   * position past it: when t < prefix_b, t + n must reach prefix_b.
   */
  async forwardCached(batch: Batch, q: Tensor, k: Tensor, v: Tensor, cache: KVCache, layer: number, o: { n: number; prefix?: number | ArrayLike<number> }): Promise<Tensor> {
    if (!(cache instanceof KVCache)) throw new EdgeTuneError('INVALID_ARGUMENT', 'forwardCached needs a KVCache');
    if (cache.kvHeads !== this.kvHeads || cache.headDim !== this.headDim) {
      throw new EdgeTuneError('SHAPE_MISMATCH', `the cache holds ${cache.kvHeads} kv heads of ${cache.headDim}, the layer ${this.kvHeads} of ${this.headDim}`);
    }
    const n = expectDim('n', o?.n);
    const B = cache.batch;
    const t = cache.length(layer);
    if (t + n > cache.maxPositions) {
      throw new EdgeTuneError('OUT_OF_RANGE', `${t} cached + ${n} new positions exceed the cache's ${cache.maxPositions}`);
    }
    this.expectRows('q', q, B * n, this.heads);
    const infoHost = attentionInfo(B, cache.maxPositions, undefined, o.prefix ?? 0);
    for (let b = 0; b < B; b++) {
      infoHost[2 * b] = t + n;
      const pre = infoHost[2 * b + 1]!;
      if (t < pre && t + n < pre) {
        throw new EdgeTuneError('INVALID_ARGUMENT', `positions [${t}, ${t + n}) lie inside the ${pre}-long full-attention prefix of entry ${b}, whose later keys are not cached yet: append the prefix whole`);
      }
    }
    await cache.append(batch, layer, k, v, n);
    const dims = { ...this.dims(B, n), keyRows: cache.maxPositions, queryStart: t };
    const out = this.acts.get('decode.o', [B * n, this.heads * this.headDim]);
    const stats = this.acts.get('decode.stats', [attentionStatsFloats(dims)]);
    const info = Tensor.from(this.rt, infoHost, [B, 2]);
    await recordAttentionForward(this.rt, batch, {
      ...dims, q: q.buffer, k: cache.k[layer]!.buffer, v: cache.v[layer]!.buffer, o: out.buffer, stats: stats.buffer, info: info.buffer,
    });
    batch.onDone(() => info.release());
    return out;
  }

  /** Frees the activation buffers (the saved forward goes with them). */
  clear(): void {
    this.saved?.info.release();
    this.saved = null;
    this.acts.clear();
  }

  private dims(batch: number, seq: number) {
    return { batch, seq, heads: this.heads, kvHeads: this.kvHeads, headDim: this.headDim, schedule: this.schedule };
  }

  private expectRows(what: string, t: Tensor, rows: number, heads: number): void {
    expectSize(`Attention: ${what} (${rows} rows × ${heads}·${this.headDim})`, t, rows * heads * this.headDim);
  }

  private dropSaved(batch: Batch): void {
    const old = this.saved;
    this.saved = null;
    if (old) batch.onDone(() => old.info.release());
  }
}
