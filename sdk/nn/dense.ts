// Dense: y = x W + b with W (in, out) and b (out) (ONNX MatMul layout, DESIGN §1.1), frozen or
// trainable: the plain projection the MLPs, the patch embedding and the untied LM head use.
//   forward   x (m, in) → y (m, out)                         y = x W + b
//   backward  dy (m, out) → dx (m, in)                       dx = dy Wᵀ
//             trainable: dW += xᵀ dy, db += Σ_rows dy         (added into the grads)
// With inPitch = p > in, x is (m, p) whose last p − in columns are zero (the stem's columns, 27
// of them padded to 28): the products run over W padded with p − in zero rows, Wp (p, out), so
// that every operand's rows are whole vec4s: y = x Wp + b, dx = dy Wpᵀ (m, p), dW += (xᵀ dy)[:in].
import { EdgeTuneError, expectDim } from '../errors.js';
import type { Runtime } from '../gpu/runtime.js';
import type { Batch } from '../gpu/launch.js';
import { Tensor } from '../gpu/tensor.js';
import { recordMatmul, type MatmulSchedule } from '../kernels/matmul.js';
import { colSumScratch, recordAddInto, recordColSum, recordCopy } from '../kernels/elementwise.js';
import { Activations, param, type Layer, type Param } from './module.js';
import { named, normalInit, releaseGrads, rowsOf, valueOf } from './init.js';

export interface DenseOptions {
  inFeatures: number;
  outFeatures: number;
  /** Has a bias b (out). Default true. */
  bias?: boolean;
  /** W and b get gradients. Default true. */
  trainable?: boolean;
  /** W (in, out): host data (uploaded, owned) or a Tensor (borrowed). Default: N(0, initStd²). */
  weight?: Float32Array | Tensor;
  /** b (out). Default zeros. */
  biasValue?: Float32Array | Tensor;
  /** Default 0.02 (initializer_range of Llama and ViT configs). */
  initStd?: number;
  seed?: number;
  /** Force a matmul schedule (default: the adapter's best). */
  schedule?: MatmulSchedule;
  /** Floats between rows of x (default inFeatures); the columns past inFeatures must be zero. */
  inPitch?: number;
}

export class Dense implements Layer {
  readonly rt: Runtime;
  readonly inFeatures: number;
  readonly outFeatures: number;
  /** Floats between rows of x and dx (inFeatures unless padded). */
  readonly inPitch: number;
  readonly weight: Param;
  readonly bias: Param | null;
  private readonly schedule: MatmulSchedule | undefined;
  private readonly acts: Activations;
  private readonly owned: Tensor[] = [];
  /** Wp (inPitch, out) when inPitch > in: W, then zero rows. */
  private readonly padded: Tensor | null = null;
  private saved: { x: Tensor; m: number } | null = null;

  constructor(rt: Runtime, o: DenseOptions) {
    if (!o || typeof o !== 'object') throw new EdgeTuneError('INVALID_ARGUMENT', 'Dense needs { inFeatures, outFeatures }');
    this.rt = rt;
    const k = (this.inFeatures = expectDim('inFeatures', o.inFeatures));
    const n = (this.outFeatures = expectDim('outFeatures', o.outFeatures));
    const trainable = o.trainable ?? true;
    const std = o.initStd ?? 0.02;
    this.weight = param(rt, 'weight', valueOf(rt, 'weight', o.weight, [k, n], () => normalInit(k * n, std, o.seed ?? 0), this.owned), trainable);
    this.bias = (o.bias ?? true) ? param(rt, 'bias', valueOf(rt, 'bias', o.biasValue, [n], () => new Float32Array(n), this.owned), trainable) : null;
    this.schedule = o.schedule;
    this.inPitch = o.inPitch ?? k;
    if (!Number.isInteger(this.inPitch) || this.inPitch < k) throw new EdgeTuneError('INVALID_ARGUMENT', `Dense inPitch must be an integer of at least inFeatures = ${k}, got ${o.inPitch}`);
    if (this.inPitch > k) {
      // Its zero rows are written once here; each forward copies W over the rows above them.
      this.padded = Tensor.zeros(rt, [this.inPitch, n]);
      this.owned.push(this.padded);
    }
    this.acts = new Activations(rt);
  }

  /** The weight the products read: Wp with inPitch, W without. */
  private get productWeight(): GPUBuffer {
    return (this.padded ?? this.weight.value).buffer;
  }

  params(prefix = ''): Param[] {
    return named(prefix, [['weight', this.weight], ['bias', this.bias]]);
  }

  /** Records y = x W + b for x (m, in); y (m, out) belongs to the layer (reused per shape). */
  async forward(batch: Batch, x: Tensor, m = rowsOf('Dense x', x, this.inPitch)): Promise<Tensor> {
    expectDim('m', m);
    const p = this.inPitch;
    if (x.size !== m * p) throw new EdgeTuneError('SHAPE_MISMATCH', `Dense.forward: x has ${x.size} elements but m rows of ${p} need ${m * p}`);
    const y = this.acts.get('y', [m, this.outFeatures]);
    if (this.padded) await recordCopy(this.rt, batch, this.weight.value.buffer, this.padded.buffer, this.inFeatures * this.outFeatures);
    await recordMatmul(this.rt, batch, { a: x.buffer, b: this.productWeight, c: y.buffer, bias: this.bias?.value.buffer, m, n: this.outFeatures, k: p, schedule: this.schedule });
    this.saved = { x, m };
    return y;
  }

  /** Records dx = dy Wᵀ (returned, layer-owned) and adds dW, db into the grads when trainable. */
  async backward(batch: Batch, dy: Tensor): Promise<Tensor> {
    const { m } = this.check(dy);
    const p = this.inPitch;
    const dx = this.acts.get('dx', [m, p]);
    await recordMatmul(this.rt, batch, { a: dy.buffer, b: this.productWeight, c: dx.buffer, m, n: p, k: this.outFeatures, transB: true, schedule: this.schedule });
    await this.backwardParams(batch, dy);
    return dx;
  }

  /** Only the parameter gradients (for a first layer, whose input needs none). */
  async backwardParams(batch: Batch, dy: Tensor): Promise<void> {
    const { x, m } = this.check(dy);
    const rt = this.rt;
    const W = this.weight, b = this.bias;
    if (W.grad && this.inPitch === this.inFeatures) {
      await recordMatmul(rt, batch, { a: x.buffer, b: dy.buffer, c: W.grad.buffer, m: this.inFeatures, n: this.outFeatures, k: m, transA: true, accumulate: true, schedule: this.schedule });
    } else if (W.grad) {
      // (xᵀ dy) over the padded rows, then its first `in` rows into the gradient: the sum
      // grad + (xᵀ dy) is the one the accumulating product computes, bit for bit.
      const g = this.acts.get('dW.padded', [this.inPitch, this.outFeatures]);
      await recordMatmul(rt, batch, { a: x.buffer, b: dy.buffer, c: g.buffer, m: this.inPitch, n: this.outFeatures, k: m, transA: true, schedule: this.schedule });
      await recordAddInto(rt, batch, g.buffer, W.grad.buffer, this.inFeatures * this.outFeatures);
    }
    if (b?.grad) {
      const need = colSumScratch(m, this.outFeatures);
      const scratch = need > 0 ? this.acts.get('db.scratch', [need]).buffer : undefined;
      await recordColSum(rt, batch, { x: dy.buffer, rows: m, cols: this.outFeatures, out: b.grad.buffer, accumulate: true, scratch });
    }
  }

  /** Frees the layer's activations and the parameters it uploaded (borrowed tensors stay). */
  release(): void {
    this.acts.clear();
    releaseGrads([this.weight, this.bias]);
    for (const t of this.owned) t.release();
    this.owned.length = 0;
    this.saved = null;
  }

  private check(dy: Tensor): { x: Tensor; m: number } {
    const s = this.saved;
    if (!s) throw new EdgeTuneError('INVALID_ARGUMENT', 'Dense.backward needs a forward first');
    if (dy.size !== s.m * this.outFeatures) throw new EdgeTuneError('SHAPE_MISMATCH', `Dense.backward: dy has ${dy.size} elements but m×out = ${s.m}×${this.outFeatures} needs ${s.m * this.outFeatures}`);
    return s;
  }
}
