// Linear: y = x W + b, W (in, out) and b (out) frozen (ONNX MatMul layout, DESIGN §1.1), with
// an optional adapter trained on the device:
//   'lora'       y += s · (drop(x) A) B                        A (in, r), B (r, out)      (§1.2)
//   'dual-lora'  y += s · (ReLU(x T) ⊙ LN_r(drop(x) A)) B      also T (in, r), γ, β (r)   (§1.3)
// x is (m, in) with m = batch · tokens; y is (m, out); s = alpha / r.
// forward(batch, x, m) records y and keeps what backward needs (x and the rank-r state);
// backward(batch, dy) records dx and ADDS the adapter's gradients into its grad tensors, so
// several micro-batches accumulate until zeroGrad. Init as PEFT: A, T ~ U(−1/√in, 1/√in) from a
// seeded PRNG, B = 0, γ = 1, β = 0, so a fresh adapter leaves the layer equal to the base.
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
  state: GPUBuffer | null;
  dropout: DropoutSpec | undefined;
}

/** Mulberry32, for reproducible adapter init. */
function mulberry32(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** kaiming_uniform(a = √5) for an (in, r) factor, as PEFT: U(−1/√in, 1/√in). */
function kaimingUniform(n: number, fanIn: number, next: () => number): Float32Array {
  const bound = 1 / Math.sqrt(fanIn);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = (2 * next() - 1) * bound;
  return out;
}

export class Linear {
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
  readonly weight: Tensor;
  readonly bias: Tensor | undefined;
  /** Adapter parameters and gradients (absent for kinds that lack them). */
  readonly a?: Tensor;
  readonly t?: Tensor;
  readonly b?: Tensor;
  readonly gamma?: Tensor;
  readonly beta?: Tensor;
  /** Dropout is applied, and the state for backward kept, only while training. */
  training = true;
  private readonly schedule: MatmulSchedule | undefined;
  private readonly params: NamedParam[] = [];
  private readonly owned: Tensor[] = [];
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
    this.schedule = opts.schedule;
    this.weight = this.tensorOf('weight', opts.weight, [k, n]);
    this.bias = opts.bias === undefined ? undefined : this.tensorOf('bias', opts.bias, [n]);
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
    this.a = this.param('a', Tensor.from(rt, kaimingUniform(k * r, k, next), [k, r]));
    if (kind === 'dual-lora') this.t = this.param('t', Tensor.from(rt, kaimingUniform(k * r, k, next), [k, r]));
    this.b = this.param('b', Tensor.zeros(rt, [r, n]));
    if (kind === 'dual-lora') {
      this.gamma = this.param('gamma', Tensor.from(rt, new Float32Array(r).fill(1), [r]));
      this.beta = this.param('beta', Tensor.zeros(rt, [r]));
    }
  }

  /** The adapter's trainable tensors with their gradients, by name (a, t, b, gamma, beta). */
  adapterParams(): NamedParam[] {
    return [...this.params];
  }

  /** Records clearing every adapter gradient. */
  zeroGrad(batch: Batch): void {
    for (const p of this.params) batch.clear(p.grad.buffer);
  }

  /** Records y = x W + b (+ the adapter) for x (m, in); returns y (m, out), owned by the caller. */
  async forward(batch: Batch, x: Tensor, m: number): Promise<Tensor> {
    expectDim('m', m);
    if (x.size !== m * this.inFeatures) {
      throw new EdgeTuneError('SHAPE_MISMATCH', `Linear.forward: x has ${x.size} elements but m×in = ${m}×${this.inFeatures} needs ${m * this.inFeatures}`);
    }
    this.dropSaved(batch);
    const rt = this.rt;
    const y = Tensor.empty(rt, [m, this.outFeatures], { label: 'linear.y' });
    if (this.adapter === 'none') {
      await recordMatmul(rt, batch, { a: x.buffer, b: this.weight.buffer, c: y.buffer, bias: this.bias?.buffer, m, n: this.outFeatures, k: this.inFeatures, schedule: this.schedule });
      if (this.training) this.saved = { x, m, state: null, dropout: undefined };
      return y;
    }
    const dims = this.dims(m);
    const dropout = this.training && this.dropout > 0 ? { p: this.dropout, seed: dropoutStepSeed(this.seed, this.steps++) } : undefined;
    const floats = this.adapter === 'lora' ? loraStateLayout(dims, !!dropout).floats : dualLoraStateLayout(dims, !!dropout).floats;
    const state = rt.pool.acquire(floats * 4, 'linear.state');
    const common = {
      ...dims, x: x.buffer, w: this.weight.buffer, bias: this.bias?.buffer, a: this.a!.buffer, b: this.b!.buffer,
      y: y.buffer, state, scale: this.scale, dropout, schedule: this.schedule,
    };
    if (this.adapter === 'lora') await recordLoraForward(rt, batch, common);
    else await recordDualLoraForward(rt, batch, { ...common, t: this.t!.buffer, gamma: this.gamma!.buffer, beta: this.beta!.buffer, eps: this.eps });
    if (this.training) this.saved = { x, m, state, dropout };
    else batch.onDone(() => rt.pool.release(state));
    return y;
  }

  /**
   * Records the backward of the last training forward for dy = dL/dy (m, out): returns dx (m, in),
   * owned by the caller, and adds into the adapter gradients. The forward's x must still be alive.
   */
  async backward(batch: Batch, dy: Tensor): Promise<Tensor> {
    const s = this.saved;
    if (!s) throw new EdgeTuneError('INVALID_ARGUMENT', 'Linear.backward needs a forward recorded while training, and runs once per forward');
    if (dy.size !== s.m * this.outFeatures) {
      throw new EdgeTuneError('SHAPE_MISMATCH', `Linear.backward: dy has ${dy.size} elements but m×out = ${s.m}×${this.outFeatures} needs ${s.m * this.outFeatures}`);
    }
    const rt = this.rt;
    const dx = Tensor.empty(rt, [s.m, this.inFeatures], { label: 'linear.dx' });
    if (this.adapter === 'none') {
      await recordMatmul(rt, batch, { a: dy.buffer, b: this.weight.buffer, c: dx.buffer, m: s.m, n: this.inFeatures, k: this.outFeatures, transB: true, schedule: this.schedule });
    } else {
      const common = {
        ...this.dims(s.m), x: s.x.buffer, w: this.weight.buffer, a: this.a!.buffer, b: this.b!.buffer,
        state: s.state!, dy: dy.buffer, dx: dx.buffer, scale: this.scale, dropout: s.dropout, schedule: this.schedule,
        da: this.gradOf('a'), db: this.gradOf('b'),
      };
      if (this.adapter === 'lora') await recordLoraBackward(rt, batch, common);
      else {
        await recordDualLoraBackward(rt, batch, {
          ...common, t: this.t!.buffer, gamma: this.gamma!.buffer, beta: this.beta!.buffer, eps: this.eps,
          dt: this.gradOf('t'), dgamma: this.gradOf('gamma'), dbeta: this.gradOf('beta'),
        });
      }
    }
    this.dropSaved(batch);
    return dx;
  }

  /** Frees the layer's own buffers (parameters, gradients, uploaded weights, kept state). */
  release(): void {
    if (this.saved?.state) this.rt.pool.release(this.saved.state);
    this.saved = null;
    for (const t of this.owned) t.release();
    this.owned.length = 0;
  }

  private dims(m: number): LoraDims {
    return { m, inFeatures: this.inFeatures, outFeatures: this.outFeatures, rank: this.rank };
  }

  private gradOf(name: string): GPUBuffer {
    return this.params.find((p) => p.name === name)!.grad.buffer;
  }

  /** Releases the kept state once `batch` has run (the batch may still read it). */
  private dropSaved(batch: Batch): void {
    const st = this.saved?.state;
    if (st) batch.onDone(() => this.rt.pool.release(st));
    this.saved = null;
  }

  private param(name: string, t: Tensor): Tensor {
    const grad = Tensor.zeros(this.rt, t.shape);
    this.owned.push(t, grad);
    this.params.push({ name, param: t, grad });
    return t;
  }

  private tensorOf(name: string, v: Float32Array | Tensor, shape: number[]): Tensor {
    const n = shape.reduce((x, y) => x * y, 1);
    if (v instanceof Tensor) {
      if (v.size !== n) throw new EdgeTuneError('SHAPE_MISMATCH', `${name} has ${v.size} elements but [${shape.join(', ')}] needs ${n}`);
      return v;
    }
    if (!(v instanceof Float32Array)) throw new EdgeTuneError('INVALID_ARGUMENT', `${name} must be a Float32Array or a Tensor`);
    if (v.length !== n) throw new EdgeTuneError('SHAPE_MISMATCH', `${name} has ${v.length} elements but [${shape.join(', ')}] needs ${n}`);
    const t = Tensor.from(this.rt, v, shape);
    this.owned.push(t);
    return t;
  }
}
