// What every layer in sdk/nn shares. A layer is a forward/backward pair recorded into a
// Batch (one command encoder per training step):
//   y  = await layer.forward(batch, x, ...)   records the forward, keeps what backward needs;
//   dx = await layer.backward(batch, dy)      records the backward, returns dx and ADDS the
//                                             parameter gradients into param.grad (+=), so that
//                                             gradient accumulation is free; the trainer zeroes
//                                             grads after each optimizer step.
// Outputs and saved activations live in an Activations cache owned by the layer: they are
// allocated the first time a shape is seen and reused by every later step of that shape.
import { EdgeTuneError } from '../errors.js';
import { Tensor } from '../gpu/tensor.js';
import type { Runtime } from '../gpu/runtime.js';

export interface Param {
  /** Dotted path, e.g. `layers.0.attn.q.lora_a`. */
  name: string;
  value: Tensor;
  /** Gradient (same shape), allocated only for trainable parameters. */
  grad: Tensor | null;
  trainable: boolean;
}

export interface Layer {
  /** Every parameter of the layer, with full dotted names under `prefix`. */
  params(prefix?: string): Param[];
}

/** Makes a parameter; trainable ones get a zeroed gradient. */
export function param(rt: Runtime, name: string, value: Tensor, trainable: boolean): Param {
  return { name, value, grad: trainable ? Tensor.zeros(rt, value.shape) : null, trainable };
}

/** Switches a parameter's trainability, creating or freeing its gradient. */
export function setTrainable(rt: Runtime, p: Param, trainable: boolean): void {
  if (trainable && !p.grad) p.grad = Tensor.zeros(rt, p.value.shape);
  if (!trainable && p.grad) {
    p.grad.release();
    p.grad = null;
  }
  p.trainable = trainable;
}

/** The parameters among `params` that `names` name, in that order; INVALID_ARGUMENT for a name none has (`what`: where they were looked for). */
export function paramsNamed(params: Param[], names: readonly string[], what: string): Param[] {
  const byName = new Map(params.map((p) => [p.name, p]));
  return names.map((n) => {
    const p = byName.get(n);
    if (!p) throw new EdgeTuneError('INVALID_ARGUMENT', `frozen names ${JSON.stringify(n)}, which is not a parameter of ${what}`);
    return p;
  });
}

/** Per-layer activation buffers, planned per shape and reused across steps. */
export class Activations {
  private readonly rt: Runtime;
  private readonly slots = new Map<string, Tensor>();
  constructor(rt: Runtime) {
    this.rt = rt;
  }
  /** The tensor for `slot` with this shape (allocated once per shape, then reused). */
  get(slot: string, shape: readonly number[], dtype: 'f32' | 'i32' | 'u32' = 'f32'): Tensor {
    const key = `${slot}:${shape.join('x')}:${dtype}`;
    let t = this.slots.get(key);
    if (!t) {
      t = Tensor.empty(this.rt, shape, { dtype, label: slot });
      this.slots.set(key, t);
    }
    return t;
  }
  /** Frees every buffer (e.g. when the sequence shape changes for good). */
  clear(): void {
    for (const t of this.slots.values()) t.release();
    this.slots.clear();
  }
  get bytes(): number {
    let n = 0;
    for (const t of this.slots.values()) n += t.size * 4;
    return n;
  }
}

/** Throws SHAPE_MISMATCH unless tensor `t` has `size` elements. */
export function expectSize(what: string, t: Tensor, size: number): void {
  if (t.size !== size) throw new EdgeTuneError('SHAPE_MISMATCH', `${what} has ${t.size} elements, expected ${size} (shape [${t.shape.join(', ')}])`);
}
