// RMSNorm (Llama) and LayerNorm (ViT) over the last dimension, with learnable γ (and β).
//   forward   x (rows, d) → y (rows, d), rows = batch·tokens; keeps (μ, rstd) per row
//             RMSNorm    y = x / sqrt(mean(x²) + eps) ⊙ γ
//             LayerNorm  y = (x − μ) / sqrt(mean((x − μ)²) + eps) ⊙ γ + β
//   backward  dy → dx (rows, d); trainable: dγ (and dβ) added into the grads, reduced over rows
//             in a fixed order (reproducible bit for bit).
// The kernels are shaders/norm.wgsl (see there for the formulas of the backward).
import { EdgeTuneError, expectDim } from '../errors.js';
import type { Runtime } from '../gpu/runtime.js';
import type { Batch } from '../gpu/launch.js';
import type { Tensor } from '../gpu/tensor.js';
import { normGradScratch, recordNormBackward, recordNormForward, type NormKind, type RowSchedule } from '../kernels/norm.js';
import { Activations, param, type Layer, type Param } from './module.js';
import { named, releaseGrads, rowsOf, valueOf } from './init.js';

export interface NormOptions {
  d: number;
  /** Default 1e-6 for RMSNorm (Llama's rms_norm_eps), 1e-5 for LayerNorm (PyTorch's). */
  eps?: number;
  /** γ (and β) get gradients. Default true. */
  trainable?: boolean;
  /** γ (d): host data or a borrowed Tensor. Default ones. */
  weight?: Float32Array | Tensor;
  /** β (d), LayerNorm only. Default zeros. */
  bias?: Float32Array | Tensor;
  /** Per-row kernel schedule (default: the adapter's best). */
  schedule?: RowSchedule;
}

class Norm implements Layer {
  readonly rt: Runtime;
  readonly d: number;
  readonly eps: number;
  readonly kind: NormKind;
  readonly weight: Param;
  readonly bias: Param | null;
  private readonly schedule: RowSchedule | undefined;
  private readonly acts: Activations;
  private readonly owned: Tensor[] = [];
  private saved: { x: Tensor; rows: number; stats: Tensor } | null = null;

  constructor(rt: Runtime, kind: NormKind, o: NormOptions) {
    if (!o || typeof o !== 'object') throw new EdgeTuneError('INVALID_ARGUMENT', `${kind === 'rms' ? 'RMSNorm' : 'LayerNorm'} needs { d }`);
    this.rt = rt;
    this.kind = kind;
    const d = (this.d = expectDim('d', o.d));
    this.eps = o.eps ?? (kind === 'rms' ? 1e-6 : 1e-5);
    if (!(this.eps > 0 && Number.isFinite(this.eps))) throw new EdgeTuneError('INVALID_ARGUMENT', `eps must be positive and finite, got ${this.eps}`);
    const trainable = o.trainable ?? true;
    this.weight = param(rt, 'weight', valueOf(rt, 'weight', o.weight, [d], () => new Float32Array(d).fill(1), this.owned), trainable);
    this.bias = kind === 'layer' ? param(rt, 'bias', valueOf(rt, 'bias', o.bias, [d], () => new Float32Array(d), this.owned), trainable) : null;
    this.schedule = o.schedule;
    this.acts = new Activations(rt);
  }

  params(prefix = ''): Param[] {
    return named(prefix, [['weight', this.weight], ['bias', this.bias]]);
  }

  /** Records y = norm(x) for x (rows, d); y belongs to the layer (reused per shape). */
  async forward(batch: Batch, x: Tensor): Promise<Tensor> {
    const rows = rowsOf('norm x', x, this.d);
    const y = this.acts.get('y', [rows, this.d]);
    const stats = this.acts.get('stats', [rows, 2]);
    await recordNormForward(this.rt, batch, { ...this.dims(rows), x: x.buffer, gamma: this.weight.value.buffer, beta: this.bias?.value.buffer, y: y.buffer, stats: stats.buffer });
    this.saved = { x, rows, stats };
    return y;
  }

  /** Records dx for dy (rows, d) (returned, layer-owned); adds dγ (dβ) into the grads when trainable. */
  async backward(batch: Batch, dy: Tensor): Promise<Tensor> {
    const s = this.saved;
    if (!s) throw new EdgeTuneError('INVALID_ARGUMENT', 'norm backward needs a forward first');
    if (dy.size !== s.rows * this.d) throw new EdgeTuneError('SHAPE_MISMATCH', `norm backward: dy has ${dy.size} elements, the forward had ${s.rows}×${this.d}`);
    const dx = this.acts.get('dx', [s.rows, this.d]);
    const need = normGradScratch(s.rows, this.d);
    const dgamma = this.weight.grad?.buffer, dbeta = this.bias?.grad?.buffer;
    const grads = dgamma || dbeta ? { dgamma, dbeta, scratch: need > 0 ? this.acts.get('scratch', [need]).buffer : undefined } : {};
    await recordNormBackward(this.rt, batch, { ...this.dims(s.rows), x: s.x.buffer, gamma: this.weight.value.buffer, stats: s.stats.buffer, dy: dy.buffer, dx: dx.buffer, ...grads });
    return dx;
  }

  release(): void {
    this.acts.clear();
    releaseGrads([this.weight, this.bias]);
    for (const t of this.owned) t.release();
    this.owned.length = 0;
    this.saved = null;
  }

  private dims(rows: number) {
    return { kind: this.kind, rows, d: this.d, eps: this.eps, schedule: this.schedule };
  }
}

/** RMSNorm (Llama): y = x / sqrt(mean(x²) + eps) ⊙ γ. Parameter: weight (γ). */
export class RMSNorm extends Norm {
  constructor(rt: Runtime, o: NormOptions) {
    super(rt, 'rms', o);
  }
}

/** LayerNorm: y = (x − μ) / sqrt(var + eps) ⊙ γ + β. Parameters: weight (γ), bias (β). */
export class LayerNorm extends Norm {
  constructor(rt: Runtime, o: NormOptions) {
    super(rt, 'layer', o);
  }
}
