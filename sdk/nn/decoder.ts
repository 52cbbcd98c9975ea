// Llama-style decoder: token embedding → N × [RMSNorm → q,k,v → RoPE → attention (GQA, causal +
// full-attention prefix) → o → residual → RMSNorm → SwiGLU MLP → residual] → RMSNorm → LM head.
//   forward   embeds (T, d), T = B·S rows b·S + s → logits (T, vocab)
//   backward  dlogits (T, vocab) → dembeds (T, d); adds every trainable parameter's gradient
// Projections are LinearLike: a Dense (full training: W and b trainable) or, in adapter mode, a
// Linear that borrows the same frozen W and carries a LoRA / Dual-LoRA adapter (DESIGN §1.2–1.3).
// Parameter names follow Hugging Face Llama (`layers.0.self_attn.q_proj.weight`, …) so that ONNX
// export and PEFT import/export can map them one to one.
import { EdgeTuneError, expectDim } from '../errors.js';
import type { Batch } from '../gpu/launch.js';
import type { Runtime } from '../gpu/runtime.js';
import { Tensor } from '../gpu/tensor.js';
import { recordAdd, recordAddInto } from '../kernels/elementwise.js';
import { Attention, KVCache, type AttentionMask } from './attention.js';
import { Dense } from './dense.js';
import { Embedding } from './embedding.js';
import { LmHead } from './lm_head.js';
import { joinName } from './init.js';
import { Linear, type AdapterKind } from './linear.js';
import { SwigluMlp, type LinearLike, type LinearSpec } from './mlp.js';
import { Activations, setTrainable, type Layer, type Param } from './module.js';
import { RMSNorm } from './norm.js';
import { Rope, RopeTable } from './rope.js';

export interface DecoderConfig {
  layers: number;
  dModel: number;
  heads: number;
  kvHeads: number;
  dFf: number;
  vocab: number;
  ropeTheta: number;
  maxPositions: number;
  /** LM head shares the embedding table (default true). */
  tiedEmbeddings?: boolean;
  /** RMSNorm epsilon (default 1e-6). */
  normEps?: number;
}

export type ProjName = 'q_proj' | 'k_proj' | 'v_proj' | 'o_proj' | 'gate_proj' | 'up_proj' | 'down_proj';
export const ATTN_PROJ: ProjName[] = ['q_proj', 'k_proj', 'v_proj', 'o_proj'];
export const MLP_PROJ: ProjName[] = ['gate_proj', 'up_proj', 'down_proj'];

export interface AdapterConfig {
  kind: Exclude<AdapterKind, 'none'>;
  rank?: number;
  alpha?: number;
  dropout?: number;
  /** Which projections carry an adapter (default q_proj and v_proj, as the Dual-LoRA authors). */
  targets?: ProjName[];
  seed?: number;
}

/** An adapter Linear as a LinearLike whose params() are only the adapter's (the base Dense owns W). */
class AdapterProj implements LinearLike {
  readonly inner: Linear;
  constructor(inner: Linear) {
    this.inner = inner;
  }
  get inFeatures(): number {
    return this.inner.inFeatures;
  }
  get outFeatures(): number {
    return this.inner.outFeatures;
  }
  forward(batch: Batch, x: Tensor, m: number): Promise<Tensor> {
    return this.inner.forward(batch, x, m);
  }
  backward(batch: Batch, dy: Tensor): Promise<Tensor> {
    return this.inner.backward(batch, dy);
  }
  params(prefix = ''): Param[] {
    const scope = joinName(prefix, 'adapter');
    return this.inner.params(scope).filter((p) => p.name !== `${scope}.weight` && p.name !== `${scope}.bias`);
  }
  release(): void {
    this.inner.release();
  }
}

/** One transformer block. */
export class DecoderLayer implements Layer {
  readonly rt: Runtime;
  readonly cfg: DecoderConfig;
  readonly index: number;
  readonly inputNorm: RMSNorm;
  readonly postNorm: RMSNorm;
  /** The base projections (own the frozen-or-trainable weights). */
  readonly base: Record<ProjName, Dense>;
  /** What runs: the base Dense, or an adapter Linear borrowing its weight. */
  readonly proj: Record<ProjName, LinearLike>;
  mlp: SwigluMlp;
  readonly attn: Attention;
  readonly ropeQ: Rope;
  readonly ropeK: Rope;
  private readonly acts: Activations;
  private saved: { x: Tensor; rows: number } | null = null;

  constructor(rt: Runtime, cfg: DecoderConfig, index: number, table: RopeTable, seed: number) {
    this.rt = rt;
    this.cfg = cfg;
    this.index = index;
    const d = cfg.dModel;
    const hd = d / cfg.heads;
    const eps = cfg.normEps ?? 1e-6;
    this.inputNorm = new RMSNorm(rt, { d, eps });
    this.postNorm = new RMSNorm(rt, { d, eps });
    const dense = (i: number, o: number, k: number) => new Dense(rt, { inFeatures: i, outFeatures: o, bias: false, seed: seed * 131 + k });
    const kv = cfg.kvHeads * hd;
    this.base = {
      q_proj: dense(d, d, 1), k_proj: dense(d, kv, 2), v_proj: dense(d, kv, 3), o_proj: dense(d, d, 4),
      gate_proj: dense(d, cfg.dFf, 5), up_proj: dense(d, cfg.dFf, 6), down_proj: dense(cfg.dFf, d, 7),
    };
    this.proj = { ...this.base };
    this.mlp = this.makeMlp();
    this.attn = new Attention(rt, { heads: cfg.heads, kvHeads: cfg.kvHeads, headDim: hd });
    this.ropeQ = new Rope(rt, { table, heads: cfg.heads, inPlace: true });
    this.ropeK = new Rope(rt, { table, heads: cfg.kvHeads, inPlace: true });
    this.acts = new Activations(rt);
  }

  private makeMlp(): SwigluMlp {
    const cfg = this.cfg;
    return new SwigluMlp(this.rt, { d: cfg.dModel, dFf: cfg.dFf, linear: (s: LinearSpec) => this.proj[s.name as ProjName] });
  }

  params(prefix = ''): Param[] {
    const p = (s: string) => joinName(prefix, s);
    const out: Param[] = [...this.inputNorm.params(p('input_layernorm')), ...this.postNorm.params(p('post_attention_layernorm'))];
    for (const name of [...ATTN_PROJ, ...MLP_PROJ]) {
      const scope = ATTN_PROJ.includes(name) ? 'self_attn' : 'mlp';
      out.push(...this.base[name].params(p(`${scope}.${name}`)));
      const run = this.proj[name];
      if (run !== this.base[name]) out.push(...(run.params?.(p(`${scope}.${name}`)) ?? []));
    }
    return out;
  }

  /** Switches projections to adapters (or back to the plain base with `null`). */
  setAdapter(a: AdapterConfig | null, layerSeed: number): void {
    for (const name of [...ATTN_PROJ, ...MLP_PROJ]) {
      const cur = this.proj[name];
      if (cur instanceof AdapterProj) cur.release();
      this.proj[name] = this.base[name];
    }
    if (a) {
      const targets = a.targets ?? ['q_proj', 'v_proj'];
      targets.forEach((name, k) => {
        const base = this.base[name];
        if (!base) throw new EdgeTuneError('INVALID_ARGUMENT', `unknown adapter target ${name}; use ${[...ATTN_PROJ, ...MLP_PROJ].join(', ')}`);
        this.proj[name] = new AdapterProj(new Linear(this.rt, {
          inFeatures: base.inFeatures, outFeatures: base.outFeatures, weight: base.weight.value, bias: base.bias?.value,
          adapter: a.kind, rank: a.rank, alpha: a.alpha, dropout: a.dropout, seed: (a.seed ?? 0) * 1000003 + layerSeed * 97 + k,
        }));
      });
    }
    // A new MLP over the new projections; the old one's activations go back to the pool.
    this.mlp.clear();
    this.mlp = this.makeMlp();
  }

  /** x (T, d) → y (T, d). */
  async forward(batch: Batch, x: Tensor, shape: { batch: number; seq: number; positions: Tensor } & AttentionMask): Promise<Tensor> {
    const y = await this.block(batch, x, shape.batch * shape.seq, shape.positions, '', (q, k, v) => this.attn.forward(batch, q, k, v, shape));
    this.saved = { x, rows: shape.batch * shape.seq };
    return y;
  }

  /**
   * The block's forward for T rows; `attend` is full-sequence attention (training) or cached
   * attention (generation), and `slot` keeps the two paths' residual buffers apart.
   */
  private async block(batch: Batch, x: Tensor, T: number, positions: Tensor, slot: string, attend: (q: Tensor, k: Tensor, v: Tensor) => Promise<Tensor>): Promise<Tensor> {
    const d = this.cfg.dModel;
    const h = await this.inputNorm.forward(batch, x);
    let q = await this.proj.q_proj.forward(batch, h, T);
    let k = await this.proj.k_proj.forward(batch, h, T);
    const v = await this.proj.v_proj.forward(batch, h, T);
    q = await this.ropeQ.forward(batch, q, positions);
    k = await this.ropeK.forward(batch, k, positions);
    const o = await this.proj.o_proj.forward(batch, await attend(q, k, v), T);
    const x2 = this.acts.get(`${slot}x2`, [T, d]);
    await recordAdd(this.rt, batch, x.buffer, o.buffer, x2.buffer, T * d);
    const m = await this.mlp.forward(batch, await this.postNorm.forward(batch, x2), T);
    const y = this.acts.get(`${slot}y`, [T, d]);
    await recordAdd(this.rt, batch, x2.buffer, m.buffer, y.buffer, T * d);
    return y;
  }

  /** dy (T, d) → dx (T, d). */
  async backward(batch: Batch, dy: Tensor): Promise<Tensor> {
    if (!this.saved) throw new EdgeTuneError('INVALID_ARGUMENT', 'DecoderLayer.backward needs a forward first');
    const T = this.saved.rows;
    const n = T * this.cfg.dModel;
    const rt = this.rt;
    // y = x2 + mlp(norm2(x2)):  dx2 = dy + norm2ᵀ(mlpᵀ(dy))
    const dh2 = await this.mlp.backward(batch, dy);
    const dn2 = await this.postNorm.backward(batch, dh2);
    const dx2 = this.acts.get('dx2', [T, this.cfg.dModel]);
    await recordAdd(rt, batch, dy.buffer, dn2.buffer, dx2.buffer, n);
    // x2 = x + o(attn(rope(q(h)), rope(k(h)), v(h))), h = norm1(x)
    const da = await this.proj.o_proj.backward(batch, dx2);
    const { dq, dk, dv } = await this.attn.backward(batch, da);
    const dqr = await this.ropeQ.backward(batch, dq);
    const dkr = await this.ropeK.backward(batch, dk);
    const dh = this.acts.get('dh', [T, this.cfg.dModel]);
    const dhq = await this.proj.q_proj.backward(batch, dqr);
    await recordAdd(rt, batch, dhq.buffer, (await this.proj.k_proj.backward(batch, dkr)).buffer, dh.buffer, n);
    await recordAddInto(rt, batch, (await this.proj.v_proj.backward(batch, dv)).buffer, dh.buffer, n);
    const dn1 = await this.inputNorm.backward(batch, dh);
    const dx = this.acts.get('dx', [T, this.cfg.dModel]);
    await recordAdd(rt, batch, dx2.buffer, dn1.buffer, dx.buffer, n);
    return dx;
  }

  /** Generation: the n new rows per entry against the cache; returns y (B·n, d). */
  forwardCached(batch: Batch, x: Tensor, cache: KVCache, o: { batch: number; n: number; positions: Tensor; prefix?: number }): Promise<Tensor> {
    return this.block(batch, x, o.batch * o.n, o.positions, 'gen.', (q, k, v) => this.attn.forwardCached(batch, q, k, v, cache, this.index, { n: o.n, prefix: o.prefix }));
  }

  /** Frees the layer's activations, adapters and parameters. */
  release(): void {
    for (const name of [...ATTN_PROJ, ...MLP_PROJ]) {
      const run = this.proj[name];
      if (run instanceof AdapterProj) run.release();
      this.base[name].release();
    }
    // The MLP's projections are this.proj's, released above: its own activations remain.
    this.mlp.clear();
    for (const l of [this.inputNorm, this.postNorm, this.ropeQ, this.ropeK]) l.release();
    this.attn.clear();
    this.acts.clear();
    this.saved = null;
  }
}

/** The whole decoder. */
export class LlamaDecoder implements Layer {
  readonly rt: Runtime;
  readonly cfg: DecoderConfig;
  readonly embed: Embedding;
  readonly layers: DecoderLayer[];
  readonly norm: RMSNorm;
  /** LM head: tied to the embedding table (default), or its own (d, vocab) weight. */
  readonly lmHead: LmHead;
  readonly rope: RopeTable;
  private forwarded = false;
  adapter: AdapterConfig | null = null;

  constructor(rt: Runtime, cfg: DecoderConfig, seed = 0) {
    for (const k of ['layers', 'dModel', 'heads', 'kvHeads', 'dFf', 'vocab', 'maxPositions'] as const) expectDim(k, cfg[k]);
    if (cfg.dModel % cfg.heads !== 0) throw new EdgeTuneError('BAD_CONFIG', `dModel ${cfg.dModel} is not a multiple of heads ${cfg.heads}`);
    if (cfg.heads % cfg.kvHeads !== 0) throw new EdgeTuneError('BAD_CONFIG', `heads ${cfg.heads} is not a multiple of kvHeads ${cfg.kvHeads}`);
    if ((cfg.dModel / cfg.heads) % 2 !== 0) throw new EdgeTuneError('BAD_CONFIG', `head dim ${cfg.dModel / cfg.heads} must be even for RoPE`);
    this.rt = rt;
    this.cfg = cfg;
    this.embed = new Embedding(rt, { vocab: cfg.vocab, d: cfg.dModel, seed: seed * 7 + 1 });
    this.rope = new RopeTable(rt, { headDim: cfg.dModel / cfg.heads, maxPositions: cfg.maxPositions, base: cfg.ropeTheta });
    this.layers = Array.from({ length: cfg.layers }, (_, i) => new DecoderLayer(rt, cfg, i, this.rope, seed * 1009 + i + 11));
    this.norm = new RMSNorm(rt, { d: cfg.dModel, eps: cfg.normEps ?? 1e-6 });
    this.lmHead = new LmHead(rt, cfg.tiedEmbeddings === false
      ? { d: cfg.dModel, vocab: cfg.vocab, seed: seed * 7 + 3 }
      : { d: cfg.dModel, vocab: cfg.vocab, tied: this.embed.weight });
  }

  params(prefix = ''): Param[] {
    const p = (s: string) => joinName(prefix, s);
    return [
      ...this.embed.params(p('embed_tokens')),
      ...this.layers.flatMap((l, i) => l.params(p(`layers.${i}`))),
      ...this.norm.params(p('norm')),
      ...this.lmHead.params(p('lm_head')),
    ];
  }

  /**
   * 'full': every base parameter trains, no adapter. 'adapter': the base is frozen (no
   * gradients, no optimizer state) and only the adapter's parameters train.
   */
  setMode(mode: 'full' | 'adapter', adapter?: AdapterConfig): void {
    if (mode === 'adapter' && !adapter) throw new EdgeTuneError('INVALID_ARGUMENT', "adapter mode needs an adapter config, e.g. { kind: 'lora', rank: 8 }");
    this.adapter = mode === 'adapter' ? adapter! : null;
    this.layers.forEach((l, i) => l.setAdapter(this.adapter, i));
    for (const q of this.params()) {
      const isAdapter = q.name.includes('.adapter.');
      setTrainable(this.rt, q, mode === 'full' ? true : isAdapter);
    }
  }

  /** Token ids (T) → embeddings (T, d), owned by the embedding layer. */
  embedTokens(batch: Batch, ids: Tensor | Int32Array): Promise<Tensor> {
    return this.embed.forward(batch, ids);
  }

  /** embeds (T, d) → logits (T, vocab). */
  async forward(batch: Batch, embeds: Tensor, shape: { batch: number; seq: number; positions: Tensor } & AttentionMask): Promise<Tensor> {
    let x = embeds;
    for (const l of this.layers) x = await l.forward(batch, x, shape);
    const logits = await this.lmHead.forward(batch, await this.norm.forward(batch, x));
    this.forwarded = true;
    return logits;
  }

  /** dlogits (T, vocab) → dembeds (T, d); the token-embedding gradient is NOT included (see backwardEmbeddings). */
  async backward(batch: Batch, dlogits: Tensor): Promise<Tensor> {
    if (!this.forwarded) throw new EdgeTuneError('INVALID_ARGUMENT', 'LlamaDecoder.backward needs a forward first');
    let dx = await this.norm.backward(batch, await this.lmHead.backward(batch, dlogits));
    for (let i = this.layers.length - 1; i >= 0; i--) dx = await this.layers[i]!.backward(batch, dx);
    return dx;
  }

  /** Adds the token-embedding gradient for the rows that came from token ids (after backward). */
  async backwardEmbeddings(batch: Batch, dembeds: Tensor): Promise<void> {
    if (this.embed.weight.grad) await this.embed.backward(batch, dembeds);
  }

  /** Generation step: x (B·n, d) new rows → logits (B·n, vocab), appending to the cache. */
  async forwardCached(batch: Batch, x: Tensor, cache: KVCache, o: { batch: number; n: number; positions: Tensor; prefix?: number }): Promise<Tensor> {
    let h = x;
    for (const l of this.layers) h = await l.forwardCached(batch, h, cache, o);
    return this.lmHead.forward(batch, await this.norm.forward(batch, h));
  }

  newCache(batch: number, maxPositions = this.cfg.maxPositions): KVCache {
    const hd = this.cfg.dModel / this.cfg.heads;
    return new KVCache(this.rt, { layers: this.cfg.layers, batch, maxPositions, kvHeads: this.cfg.kvHeads, headDim: hd });
  }

  /** Frees every layer's activations, adapters and parameters, and the RoPE table. */
  release(): void {
    this.embed.release();
    for (const l of this.layers) l.release();
    this.norm.release();
    this.lmHead.release();
    this.rope.release();
  }
}
