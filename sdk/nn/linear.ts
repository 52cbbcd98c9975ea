// Linear: y = x W + b, W (in, out) and b (out) frozen (ONNX MatMul layout, DESIGN §1.1), with
// an optional adapter trained on the device:
//   'lora'       y += s · (drop(x) A) B                        A (in, r), B (r, out)      (§1.2)
//   'dual-lora'  y += s · (ReLU(x T) ⊙ LN_r(drop(x) A)) B      also T (in, r), γ, β (r)   (§1.3)
// x is (m, in) with m = batch · tokens; y is (m, out); s = alpha / r.
// As every layer of sdk/nn (module.ts): forward(batch, x, m) records y and keeps what backward
// needs (x and the rank-r state); backward(batch, dy) records dx and ADDS the adapter's gradients
// into their grad tensors, so micro-batches accumulate until the grads are zeroed. y, dx and the
// state are the layer's (an Activations cache, reused per shape). Init as PEFT: A, T ~
// U(−1/√in, 1/√in) from a seeded PRNG, B = 0, γ = 1, β = 0, so a fresh adapter leaves the layer
// equal to the base.
import { EdgeTuneError, expectDim } from '../errors.js';
import type { Runtime } from '../gpu/runtime.js';
import type { Batch } from '../gpu/launch.js';
import { Tensor } from '../gpu/tensor.js';
import { recordMatmul, type MatmulSchedule } from '../kernels/matmul.js';
import {
  checkRank, dropoutStepSeed, loraStateLayout, recordLoraBackward, recordLoraForward,
  type DropoutSpec, type LoraDims,
} from '../kernels/lora.js';
import { dualLoraStateLayout, recordDualLoraBackward, recordDualLoraForward } from '../kernels/dual_lora.js';
import { Activations, param, type Layer, type Param } from './module.js';
import { mulberry32, named, releaseGrads, valueOf } from './init.js';

export type AdapterKind = 'none' | 'lora' | 'dual-lora';

export interface LinearOptions {
  inFeatures: number;
  outFeatures: number;
  /** Frozen weight (in, out): host data (uploaded, owned) or a Tensor (borrowed). */
  weight: Float32Array | Tensor;
  /** Frozen bias (out). */
  bias?: Float32Array | Tensor;
  /** Default 'none'. */
  adapter?: AdapterKind;
  /** Rank r ≤ 64. Default 8 for LoRA (PEFT), 32 for Dual-LoRA (the authors' setting). */
  rank?: number;
  /** s = alpha / r. Default alpha = r for LoRA (s = 1, PEFT), 2r for Dual-LoRA (s = 2). */
  alpha?: number;
  /** Dropout probability on the A-branch input while training. Default 0. */
  dropout?: number;
  /** Seeds the adapter init and the dropout masks. Default 0. */
  seed?: number;
  /** Dual-LoRA LayerNorm epsilon. Default 1e-5. */
  eps?: number;
  /** Force a kernel schedule (default: the adapter's best). */
  schedule?: MatmulSchedule;
}

/** A trainable tensor and the tensor its gradient accumulates into. */
export interface NamedParam {
  name: string;
  param: Tensor;
  grad: Tensor;
}

interface Saved {
  x: Tensor;
  m: number;
  state: Tensor | null;
  dropout: DropoutSpec | undefined;
}

/** kaiming_uniform(a = √5) for an (in, r) factor, as PEFT: U(−1/√in, 1/√in). */
function kaimingUniform(n: number, fanIn: number, next: () => number): Float32Array {
  const bound = 1 / Math.sqrt(fanIn);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = (2 * next() - 1) * bound;
  return out;
}

export class Linear implements Layer {
  readonly rt: Runtime;
  readonly inFeatures: number;
  readonly outFeatures: number;
  readonly adapter: AdapterKind;
  readonly rank: number;
  readonly alpha: number;
  /** s = alpha / r (0 without an adapter). */
  readonly scale: number;
  readonly dropout: number;
  readonly seed: number;
  readonly eps: number;
  /** Frozen (no gradient). */
  readonly weight: Param;
  readonly bias: Param | null;
  /** Adapter values (absent for kinds that lack them); gradients via adapterParams() / params(). */
  readonly a?: Tensor;
  readonly t?: Tensor;
  readonly b?: Tensor;
  readonly gamma?: Tensor;
  readonly beta?: Tensor;
  /** Dropout is applied only while training. */
  training = true;
  private readonly schedule: MatmulSchedule | undefined;
  /** Adapter parameters by local name (a, t, b, gamma, beta), in that order. */
  private readonly adapterList: [string, Param][] = [];
  private readonly owned: Tensor[] = [];
  private readonly acts: Activations;
  private saved: Saved | null = null;
  /** Forward calls made while training with dropout (each draws a fresh mask). */
  private steps = 0;

  constructor(rt: Runtime, opts: LinearOptions) {
    if (!opts || typeof opts !== 'object') throw new EdgeTuneError('INVALID_ARGUMENT', 'Linear needs { inFeatures, outFeatures, weight }');
    this.rt = rt;
    const k = (this.inFeatures = expectDim('inFeatures', opts.inFeatures));
    const n = (this.outFeatures = expectDim('outFeatures', opts.outFeatures));
    const kind = (this.adapter = opts.adapter ?? 'none');
    if (!['none', 'lora', 'dual-lora'].includes(kind)) {
      throw new EdgeTuneError('INVALID_ARGUMENT', `adapter must be 'none', 'lora' or 'dual-lora', got ${String(kind)}`);
    }
    if (opts.weight === undefined) throw new EdgeTuneError('INVALID_ARGUMENT', 'Linear needs its frozen weight (in, out)');
    const noInit = () => new Float32Array(0);
    this.schedule = opts.schedule;
    this.acts = new Activations(rt);
    this.weight = param(rt, 'weight', valueOf(rt, 'weight', opts.weight, [k, n], noInit, this.owned), false);
    this.bias = opts.bias === undefined ? null : param(rt, 'bias', valueOf(rt, 'bias', opts.bias, [n], noInit, this.owned), false);
    this.seed = opts.seed ?? 0;
    this.eps = opts.eps ?? 1e-5;
    if (kind === 'none') {
      this.rank = 0;
      this.alpha = 0;
      this.scale = 0;
      this.dropout = 0;
      return;
    }
    const r = (this.rank = expectDim('rank', opts.rank ?? (kind === 'lora' ? 8 : 32)));
    checkRank(r);
    this.alpha = opts.alpha ?? (kind === 'lora' ? r : 2 * r);
    if (!Number.isFinite(this.alpha)) throw new EdgeTuneError('INVALID_ARGUMENT', `alpha must be finite, got ${this.alpha}`);
    this.scale = this.alpha / r;
    this.dropout = opts.dropout ?? 0;
    if (!(this.dropout >= 0 && this.dropout < 1)) throw new EdgeTuneError('INVALID_ARGUMENT', `dropout must be in [0, 1), got ${this.dropout}`);
    if (!(this.eps > 0 && Number.isFinite(this.eps))) throw new EdgeTuneError('INVALID_ARGUMENT', `eps must be positive and finite, got ${this.eps}`);
    const next = mulberry32(this.seed);
    this.a = this.addAdapter('a', kaimingUniform(k * r, k, next), [k, r]);
    if (kind === 'dual-lora') this.t = this.addAdapter('t', kaimingUniform(k * r, k, next), [k, r]);
    this.b = this.addAdapter('b', new Float32Array(r * n), [r, n]);
    if (kind === 'dual-lora') {
      this.gamma = this.addAdapter('gamma', new Float32Array(r).fill(1), [r]);
      this.beta = this.addAdapter('beta', new Float32Array(r), [r]);
    }
  }

  /** Every parameter under `prefix` (module.ts): weight and bias frozen, then the adapter's. */
  params(prefix = ''): Param[] {
    return named(prefix, [['weight', this.weight], ['bias', this.bias], ...this.adapterList]);
  }

  /** The adapter's trainable tensors with their gradients, by local name (a, t, b, gamma, beta). */
  adapterParams(): NamedParam[] {
    return this.adapterList.map(([name, p]) => ({ name, param: p.value, grad: p.grad! }));
  }

  /** Records clearing every adapter gradient. */
  zeroGrad(batch: Batch): void {
    for (const [, p] of this.adapterList) batch.clear(p.grad!.buffer);
  }

  /** Records y = x W + b (+ the adapter) for x (m, in); y (m, out) is the layer's (reused per shape). */
  async forward(batch: Batch, x: Tensor, m: number): Promise<Tensor> {
    expectDim('m', m);
    if (x.size !== m * this.inFeatures) {
      throw new EdgeTuneError('SHAPE_MISMATCH', `Linear.forward: x has ${x.size} elements but m×in = ${m}×${this.inFeatures} needs ${m * this.inFeatures}`);
    }
    const rt = this.rt;
    const y = this.acts.get('y', [m, this.outFeatures]);
    const w = this.weight.value.buffer, bias = this.bias?.value.buffer;
    if (this.adapter === 'none') {
      await recordMatmul(rt, batch, { a: x.buffer, b: w, c: y.buffer, bias, m, n: this.outFeatures, k: this.inFeatures, schedule: this.schedule });
      this.saved = { x, m, state: null, dropout: undefined };
      return y;
    }
    const dims = this.dims(m);
    const dropout = this.training && this.dropout > 0 ? { p: this.dropout, seed: dropoutStepSeed(this.seed, this.steps++) } : undefined;
    const floats = this.adapter === 'lora' ? loraStateLayout(dims, !!dropout).floats : dualLoraStateLayout(dims, !!dropout).floats;
    const state = this.acts.get('state', [floats]);
    const common = {
      ...dims, x: x.buffer, w, bias, a: this.a!.buffer, b: this.b!.buffer,
      y: y.buffer, state: state.buffer, scale: this.scale, dropout, schedule: this.schedule,
    };
    if (this.adapter === 'lora') await recordLoraForward(rt, batch, common);
    else await recordDualLoraForward(rt, batch, { ...common, t: this.t!.buffer, gamma: this.gamma!.buffer, beta: this.beta!.buffer, eps: this.eps });
    this.saved = { x, m, state, dropout };
    return y;
  }

  /**
   * Records the backward of the last forward for dy = dL/dy (m, out): returns dx (m, in), the
   * layer's, and adds into the adapter gradients. The forward's x must be unchanged.
   */
  async backward(batch: Batch, dy: Tensor): Promise<Tensor> {
    const s = this.saved;
    if (!s) throw new EdgeTuneError('INVALID_ARGUMENT', 'Linear.backward needs a forward first');
    if (dy.size !== s.m * this.outFeatures) {
      throw new EdgeTuneError('SHAPE_MISMATCH', `Linear.backward: dy has ${dy.size} elements but m×out = ${s.m}×${this.outFeatures} needs ${s.m * this.outFeatures}`);
    }
    const rt = this.rt;
    const dx = this.acts.get('dx', [s.m, this.inFeatures]);
    const w = this.weight.value.buffer;
    if (this.adapter === 'none') {
      await recordMatmul(rt, batch, { a: dy.buffer, b: w, c: dx.buffer, m: s.m, n: this.inFeatures, k: this.outFeatures, transB: true, schedule: this.schedule });
      return dx;
    }
    const common = {
      ...this.dims(s.m), x: s.x.buffer, w, a: this.a!.buffer, b: this.b!.buffer,
      state: s.state!.buffer, dy: dy.buffer, dx: dx.buffer, scale: this.scale, dropout: s.dropout, schedule: this.schedule,
      da: this.gradOf('a'), db: this.gradOf('b'),
    };
    if (this.adapter === 'lora') await recordLoraBackward(rt, batch, common);
    else {
      await recordDualLoraBackward(rt, batch, {
        ...common, t: this.t!.buffer, gamma: this.gamma!.buffer, beta: this.beta!.buffer, eps: this.eps,
        dt: this.gradOf('t'), dgamma: this.gradOf('gamma'), dbeta: this.gradOf('beta'),
      });
    }
    return dx;
  }

  /** Frees the layer's activations, adapter, gradients and uploaded weights (borrowed tensors stay). */
  release(): void {
    this.acts.clear();
    releaseGrads(this.adapterList.map(([, p]) => p));
    for (const t of this.owned) t.release();
    this.owned.length = 0;
    this.saved = null;
  }

  private dims(m: number): LoraDims {
    return { m, inFeatures: this.inFeatures, outFeatures: this.outFeatures, rank: this.rank };
  }

  private gradOf(name: string): GPUBuffer {
    return this.adapterList.find(([n]) => n === name)![1].grad!.buffer;
  }

  private addAdapter(name: string, init: Float32Array, shape: number[]): Tensor {
    const t = Tensor.from(this.rt, init, shape);
    this.owned.push(t);
    this.adapterList.push([name, param(this.rt, name, t, true)]);
    return t;
  }
}
