// The two MLPs, with the activation fused in one elementwise kernel (shaders/activation.wgsl):
//   SwigluMlp (Llama)  x (m, d) → y (m, d)    y = down(silu(gate(x)) ⊙ up(x)),  gate, up: d → dFf, down: dFf → d
//   GeluMlp (ViT)      x (m, d) → y (m, d)    y = fc2(gelu(fc1(x))),            fc1: d → dFf, fc2: dFf → d
//                      gelu is the exact erf form (ONNX Gelu, approximate = "none").
// backward: dy → dx, and each projection adds its own parameter gradients.
// The projections come from a LinearFactory: by default a Dense (frozen or trainable); an
// adapter-carrying Linear (sdk/nn/linear.ts) slots in through the same factory.
import { EdgeTuneError, expectDim } from '../errors.js';
import type { Runtime } from '../gpu/runtime.js';
import type { Batch } from '../gpu/launch.js';
import type { Tensor } from '../gpu/tensor.js';
import type { MatmulSchedule } from '../kernels/matmul.js';
import { recordAdd } from '../kernels/elementwise.js';
import { recordGeluBackward, recordGeluForward, recordSwigluBackward, recordSwigluForward } from '../kernels/activation.js';
import { Activations, type Layer, type Param } from './module.js';
import { Dense } from './dense.js';
import { rowsOf } from './init.js';

/** What an MLP needs of a projection: y = x W (+ b) over (m, in) → (m, out), and its backward. */
export interface LinearLike {
  readonly inFeatures: number;
  readonly outFeatures: number;
  forward(batch: Batch, x: Tensor, m: number): Promise<Tensor>;
  /** Returns dx and adds the projection's own parameter gradients. */
  backward(batch: Batch, dy: Tensor): Promise<Tensor>;
  params?(prefix?: string): Param[];
  /**
   * True when forward/backward return tensors the caller owns (fresh per call): the MLP then
   * releases them once used (dx at once, forward outputs at its next forward). Layers that follow
   * sdk/nn/module.ts own their outputs and leave this unset.
   */
  readonly callerOwnsOutputs?: boolean;
}

export interface LinearSpec {
  /** Hugging Face name of the projection: gate_proj, up_proj, down_proj (Llama); fc1, fc2 (ViT). */
  name: 'gate_proj' | 'up_proj' | 'down_proj' | 'fc1' | 'fc2';
  inFeatures: number;
  outFeatures: number;
  bias: boolean;
  /** A distinct seed per projection, for its initial values. */
  seed: number;
}

export type LinearFactory = (spec: LinearSpec) => LinearLike;

export interface MlpOptions {
  /** Model width (in and out). */
  d: number;
  /** Hidden width (Llama intermediate_size, ViT mlp_dim). */
  dFf: number;
  /** Makes the projections; default: a Dense per projection with the options below. */
  linear?: LinearFactory;
  /** Default Dense only: the projections get gradients. Default true. */
  trainable?: boolean;
  /** Default Dense only: biases (default false for SwiGLU as Llama, true for GELU as ViT). */
  bias?: boolean;
  /** Default Dense only: N(0, initStd²) weights, default 0.02. */
  initStd?: number;
  seed?: number;
  schedule?: MatmulSchedule;
}

/** The default factory: a Dense per projection. */
export function denseFactory(rt: Runtime, o: { trainable?: boolean; initStd?: number; schedule?: MatmulSchedule } = {}): LinearFactory {
  return (s) => new Dense(rt, { inFeatures: s.inFeatures, outFeatures: s.outFeatures, bias: s.bias, seed: s.seed, trainable: o.trainable, initStd: o.initStd, schedule: o.schedule });
}

/** Shared plumbing: projections by name, their params, outputs the MLP must release. */
abstract class Mlp implements Layer {
  readonly rt: Runtime;
  readonly d: number;
  readonly dFf: number;
  protected readonly acts: Activations;
  protected readonly proj: [LinearSpec['name'], LinearLike][];
  private held: Tensor[] = [];
  protected m = 0;

  constructor(rt: Runtime, o: MlpOptions, specs: [LinearSpec['name'], number, number][], defaultBias: boolean) {
    if (!o || typeof o !== 'object') throw new EdgeTuneError('INVALID_ARGUMENT', 'an MLP needs { d, dFf }');
    this.rt = rt;
    this.d = expectDim('d', o.d);
    this.dFf = expectDim('dFf', o.dFf);
    this.acts = new Activations(rt);
    const make = o.linear ?? denseFactory(rt, o);
    const seed = o.seed ?? 0;
    this.proj = specs.map(([name, i, n], k) => {
      const lin = make({ name, inFeatures: i, outFeatures: n, bias: o.bias ?? defaultBias, seed: seed * 7919 + k + 1 });
      if (lin.inFeatures !== i || lin.outFeatures !== n) {
        throw new EdgeTuneError('SHAPE_MISMATCH', `the factory's ${name} maps ${lin.inFeatures} → ${lin.outFeatures}, the MLP needs ${i} → ${n}`);
      }
      return [name, lin];
    });
  }

  params(prefix = ''): Param[] {
    return this.proj.flatMap(([name, lin]) => lin.params?.(prefix ? `${prefix}.${name}` : name) ?? []);
  }

  /** The projection named `name` (e.g. to reach an adapter). */
  projection(name: LinearSpec['name']): LinearLike {
    return this.proj.find(([n]) => n === name)![1];
  }

  abstract forward(batch: Batch, x: Tensor, m?: number): Promise<Tensor>;
  abstract backward(batch: Batch, dy: Tensor): Promise<Tensor>;

  /** Frees the MLP's own activations and outputs; the projections stay. */
  clear(): void {
    this.acts.clear();
    for (const t of this.held) t.release();
    this.held = [];
  }

  /** Frees the activations and the projections. */
  release(): void {
    this.clear();
    for (const [, lin] of this.proj) (lin as { release?: () => void }).release?.();
  }

  /** Starts a forward: rows of x, and frees the previous forward's caller-owned outputs. */
  protected begin(batch: Batch, x: Tensor, m: number | undefined): number {
    const rows = m ?? rowsOf('MLP x', x, this.d);
    expectDim('m', rows);
    if (x.size !== rows * this.d) throw new EdgeTuneError('SHAPE_MISMATCH', `MLP: x has ${x.size} elements but m×d = ${rows}×${this.d} needs ${rows * this.d}`);
    const old = this.held;
    this.held = [];
    if (old.length) batch.onDone(() => old.forEach((t) => t.release()));
    this.m = rows;
    return rows;
  }

  /** A projection's forward output, held until the next forward when the caller owns it. */
  protected async project(batch: Batch, lin: LinearLike, x: Tensor): Promise<Tensor> {
    const y = await lin.forward(batch, x, this.m);
    if (lin.callerOwnsOutputs) this.held.push(y);
    return y;
  }

  /**
   * A projection's dx. When the caller owns it: freed after this batch, or, when it is the MLP's
   * own dx (`returned`), held until the next forward like the forward outputs.
   */
  protected async projectBack(batch: Batch, lin: LinearLike, dy: Tensor, returned = false): Promise<Tensor> {
    if (this.m === 0) throw new EdgeTuneError('INVALID_ARGUMENT', 'MLP backward needs a forward first');
    const dx = await lin.backward(batch, dy);
    if (lin.callerOwnsOutputs) {
      if (returned) this.held.push(dx);
      else batch.onDone(() => dx.release());
    }
    return dx;
  }
}

/** Llama MLP: y = down_proj(silu(gate_proj(x)) ⊙ up_proj(x)). */
export class SwigluMlp extends Mlp {
  private gate: Tensor | null = null;
  private up: Tensor | null = null;

  constructor(rt: Runtime, o: MlpOptions) {
    super(rt, o, [['gate_proj', o?.d, o?.dFf], ['up_proj', o?.d, o?.dFf], ['down_proj', o?.dFf, o?.d]], false);
  }

  async forward(batch: Batch, x: Tensor, m?: number): Promise<Tensor> {
    const rows = this.begin(batch, x, m);
    const [[, gateP], [, upP], [, downP]] = this.proj;
    const gate = (this.gate = await this.project(batch, gateP!, x));
    const up = (this.up = await this.project(batch, upP!, x));
    const h = this.acts.get('h', [rows, this.dFf]);
    await recordSwigluForward(this.rt, batch, { gate: gate.buffer, up: up.buffer, h: h.buffer, n: rows * this.dFf });
    return this.project(batch, downP!, h);
  }

  async backward(batch: Batch, dy: Tensor): Promise<Tensor> {
    const [[, gateP], [, upP], [, downP]] = this.proj;
    const rows = this.m;
    const dh = await this.projectBack(batch, downP!, dy);
    const dgate = this.acts.get('dgate', [rows, this.dFf]);
    const dup = this.acts.get('dup', [rows, this.dFf]);
    await recordSwigluBackward(this.rt, batch, { gate: this.gate!.buffer, up: this.up!.buffer, dh: dh.buffer, dgate: dgate.buffer, dup: dup.buffer, n: rows * this.dFf });
    const dx1 = await this.projectBack(batch, gateP!, dgate);
    const dx2 = await this.projectBack(batch, upP!, dup);
    const dx = this.acts.get('dx', [rows, this.d]);
    await recordAdd(this.rt, batch, dx1.buffer, dx2.buffer, dx.buffer, rows * this.d);
    return dx;
  }
}

/** ViT MLP: y = fc2(gelu(fc1(x))), exact (erf) GELU. */
export class GeluMlp extends Mlp {
  private z: Tensor | null = null;

  constructor(rt: Runtime, o: MlpOptions) {
    super(rt, o, [['fc1', o?.d, o?.dFf], ['fc2', o?.dFf, o?.d]], true);
  }

  async forward(batch: Batch, x: Tensor, m?: number): Promise<Tensor> {
    const rows = this.begin(batch, x, m);
    const [[, fc1], [, fc2]] = this.proj;
    const z = (this.z = await this.project(batch, fc1!, x));
    const a = this.acts.get('act', [rows, this.dFf]);
    await recordGeluForward(this.rt, batch, { z: z.buffer, y: a.buffer, n: rows * this.dFf });
    return this.project(batch, fc2!, a);
  }

  async backward(batch: Batch, dy: Tensor): Promise<Tensor> {
    const [[, fc1], [, fc2]] = this.proj;
    const rows = this.m;
    const da = await this.projectBack(batch, fc2!, dy);
    const dz = this.acts.get('dz', [rows, this.dFf]);
    await recordGeluBackward(this.rt, batch, { z: this.z!.buffer, dy: da.buffer, dz: dz.buffer, n: rows * this.dFf });
    return this.projectBack(batch, fc1!, dz, true);
  }
}
