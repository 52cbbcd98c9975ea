// Residual add: y = a + b (the skip connection around attention and the MLP).
//   forward   a, b (n) → y (n)
//   backward  dy → (da, db) = (dy, dy): nothing to compute; where a gradient fans in from
//             several branches, addInto sums it (acc += g).
import { EdgeTuneError } from '../errors.js';
import type { Runtime } from '../gpu/runtime.js';
import type { Batch } from '../gpu/launch.js';
import type { Tensor } from '../gpu/tensor.js';
import { recordAdd, recordAddInto } from '../kernels/elementwise.js';
import { Activations, type Layer, type Param } from './module.js';

export class Residual implements Layer {
  readonly rt: Runtime;
  private readonly acts: Activations;

  constructor(rt: Runtime) {
    this.rt = rt;
    this.acts = new Activations(rt);
  }

  params(): Param[] {
    return [];
  }

  /** Records y = a + b; y (shape of a) belongs to the layer. */
  async forward(batch: Batch, a: Tensor, b: Tensor): Promise<Tensor> {
    if (a.size !== b.size) throw new EdgeTuneError('SHAPE_MISMATCH', `residual add of ${a.size} and ${b.size} elements`);
    const y = this.acts.get('y', a.shape);
    await recordAdd(this.rt, batch, a.buffer, b.buffer, y.buffer, a.size);
    return y;
  }

  /** The gradient reaches both inputs unchanged: returns [dy, dy]. */
  async backward(_batch: Batch, dy: Tensor): Promise<[Tensor, Tensor]> {
    return [dy, dy];
  }

  /** Records acc += g (gradient fan-in; acc must not be g). */
  static async addInto(rt: Runtime, batch: Batch, acc: Tensor, g: Tensor): Promise<void> {
    if (acc.size !== g.size) throw new EdgeTuneError('SHAPE_MISMATCH', `addInto of ${g.size} elements into ${acc.size}`);
    if (acc.buffer === g.buffer) throw new EdgeTuneError('INVALID_ARGUMENT', 'addInto needs two different tensors');
    await recordAddInto(rt, batch, g.buffer, acc.buffer, acc.size);
  }

  release(): void {
    this.acts.clear();
  }
}
