// Stem skip: what a finer stem map says about where things are inside each token's cell. The
// stem's last poolings keep which feature fired in a window but not where, so a token of 16
// pixels cannot tell a box edge's 4-pixel cell; an earlier stage's map still has that grid. Each
// token's k×k cells of that map are concatenated (space-to-depth, mergeOrder's order) and
// projected, and the result is added to the token (VisionEncoder, `vision.stemSkip`).
//   forward   map (B·n·n, C), rows in raster order, n = g·k (stage s's output, ConvStem.stageOutput)
//             cells = gather(map, order)   (B·g·g, k²·C)   token (b·g + I)·g + J, column (dy·k + dx)·C + c
//             y = cells · W                (B·g·g, d)      W (k²·C, d), no bias, zero at init
//   backward  dcells = dy Wᵀ;  dW += cellsᵀ dy;  dmap = gather(dcells, inverse)   (B·n·n, C)
// W starts at zero, so a model with a skip starts as the one without it, bit for bit, and
// stays so while W is frozen.
import { EdgeTuneError, expectDim } from '../errors.js';
import type { Batch } from '../gpu/launch.js';
import type { Runtime } from '../gpu/runtime.js';
import type { Tensor } from '../gpu/tensor.js';
import { Dense } from './dense.js';
import { joinName } from './init.js';
import { BlockGather } from './merge_order.js';
import { Activations, type Layer, type Param } from './module.js';

export interface StemSkipOptions {
  /** Side of the token grid (g). */
  grid: number;
  /** Cells per token side (k): the map is (g·k)×(g·k). */
  block: number;
  /** Channels of the map (C). */
  channels: number;
  /** Width of the tokens (d). */
  d: number;
  trainable?: boolean;
}

export class StemSkip implements Layer {
  readonly rt: Runtime;
  readonly grid: number;
  readonly block: number;
  readonly channels: number;
  readonly d: number;
  /** W (k²·C, d), no bias. */
  readonly proj: Dense;
  private readonly acts: Activations;
  private readonly cells: BlockGather;
  private rows = -1;

  constructor(rt: Runtime, o: StemSkipOptions) {
    this.rt = rt;
    this.grid = expectDim('stem skip grid', o.grid);
    this.block = expectDim('stem skip block', o.block);
    this.channels = expectDim('stem skip channels', o.channels);
    this.d = expectDim('stem skip d', o.d);
    const k = this.block ** 2 * this.channels;
    this.proj = new Dense(rt, { inFeatures: k, outFeatures: this.d, bias: false, weight: new Float32Array(k * this.d), trainable: o.trainable ?? true });
    this.cells = new BlockGather(rt, this.grid * this.block, this.block);
    this.acts = new Activations(rt);
  }

  /** Map rows per image (n·n). */
  get mapRows(): number {
    return (this.grid * this.block) ** 2;
  }

  /** stem_skip.weight (k²·C, d), the ONNX MatMul layout. */
  params(prefix = ''): Param[] {
    return this.proj.params(joinName(prefix, 'stem_skip'));
  }

  /** map (B·n·n, C) → (B·g·g, d), layer-owned. */
  async forward(batch: Batch, map: Tensor): Promise<Tensor> {
    const per = this.mapRows * this.channels;
    if (map.size === 0 || map.size % per !== 0) throw new EdgeTuneError('SHAPE_MISMATCH', `the stem skip's map has ${map.size} elements, not a whole number of ${this.grid * this.block}×${this.grid * this.block}×${this.channels} maps`);
    const rows = (this.rows = map.size / this.channels);
    const cells = this.acts.get('cells', [rows, this.channels]);
    await this.cells.gather(batch, map, cells, rows, this.channels);
    return this.proj.forward(batch, cells, rows / this.block ** 2);
  }

  /** dy (B·g·g, d) → dmap (B·n·n, C), layer-owned; adds dW when trainable. */
  async backward(batch: Batch, dy: Tensor): Promise<Tensor> {
    if (this.rows < 0) throw new EdgeTuneError('INVALID_ARGUMENT', 'StemSkip.backward needs a forward first');
    const dcells = await this.proj.backward(batch, dy);
    const dmap = this.acts.get('dmap', [this.rows, this.channels]);
    // A permutation's gradient is the gather by its inverse.
    await this.cells.gather(batch, dcells, dmap, this.rows, this.channels, true);
    return dmap;
  }

  release(): void {
    this.acts.clear();
    this.proj.release();
    this.cells.release();
    this.rows = -1;
  }
}
