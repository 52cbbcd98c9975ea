// RoPE: rotary position embeddings, the Llama / Hugging Face "rotate_half" convention.
//   RopeTable  cos/sin of p · θ_i, θ_i = base^(−2i/headDim), for p < maxPositions (float64 on the
//              host, rounded once): one per model, shared by every Rope.
//   Rope       forward   x (rows, heads·headDim), positions (rows) → y: each head's pairs
//                        (i, i + headDim/2) rotated by positions[row] · θ_i
//              backward  dy → dx: the inverse rotation
// Positions are per row, so that generation with a KV cache (one new row at position p) and a
// full-attention prefix use whatever positions they need. Positions given as an Int32Array are checked
// on the host (OUT_OF_RANGE); on the GPU, a position outside the table gives zeros.
// One Rope per use (q, k) with the same table; `inPlace` rotates x (and dy) in their buffers.
import { EdgeTuneError, expectDim } from '../errors.js';
import type { Runtime } from '../gpu/runtime.js';
import type { Batch } from '../gpu/launch.js';
import { Tensor } from '../gpu/tensor.js';
import { checkPositions, recordRope, ropeTable } from '../kernels/rope.js';
import { Activations, type Layer, type Param } from './module.js';
import { rowsOf } from './init.js';

export interface RopeTableOptions {
  headDim: number;
  maxPositions: number;
  /** rope_theta; default 10000. */
  base?: number;
}

export class RopeTable {
  readonly headDim: number;
  readonly maxPositions: number;
  readonly base: number;
  /** (2, maxPositions, headDim/2): cos then sin. */
  readonly table: Tensor;

  constructor(rt: Runtime, o: RopeTableOptions) {
    if (!o || typeof o !== 'object') throw new EdgeTuneError('INVALID_ARGUMENT', 'RopeTable needs { headDim, maxPositions }');
    this.headDim = expectDim('headDim', o.headDim);
    this.maxPositions = expectDim('maxPositions', o.maxPositions);
    this.base = o.base ?? 10000;
    const data = ropeTable(this.headDim, this.maxPositions, this.base);
    this.table = Tensor.from(rt, data, [2, this.maxPositions, this.headDim / 2]);
  }

  /** Positions start, start + 1, ... for each of `batch` sequences of `seq` tokens. */
  static sequential(batch: number, seq: number, start = 0): Int32Array {
    const out = new Int32Array(batch * seq);
    for (let b = 0; b < batch; b++) for (let s = 0; s < seq; s++) out[b * seq + s] = start + s;
    return out;
  }

  release(): void {
    this.table.release();
  }
}

export interface RopeOptions {
  table: RopeTable;
  heads: number;
  /** Rotate in the input's buffer (forward) and in dy's (backward). Default false. */
  inPlace?: boolean;
}

export class Rope implements Layer {
  readonly rt: Runtime;
  readonly table: RopeTable;
  readonly heads: number;
  readonly inPlace: boolean;
  private readonly acts: Activations;
  private saved: { positions: Tensor; rows: number } | null = null;

  constructor(rt: Runtime, o: RopeOptions) {
    if (!o || typeof o !== 'object' || !(o.table instanceof RopeTable)) throw new EdgeTuneError('INVALID_ARGUMENT', 'Rope needs { table: RopeTable, heads }');
    this.rt = rt;
    this.table = o.table;
    this.heads = expectDim('heads', o.heads);
    this.inPlace = !!o.inPlace;
    this.acts = new Activations(rt);
  }

  /** No parameters. */
  params(): Param[] {
    return [];
  }

  /** Records y = RoPE(x) at `positions` (rows): an Int32Array (checked, written now) or an int32 Tensor. */
  async forward(batch: Batch, x: Tensor, positions: Tensor | Int32Array): Promise<Tensor> {
    const rows = rowsOf('rope x', x, this.width);
    let pos: Tensor;
    if (positions instanceof Int32Array) {
      if (positions.length !== rows) throw new EdgeTuneError('SHAPE_MISMATCH', `positions has ${positions.length} entries but x has ${rows} rows`);
      checkPositions(positions, this.table.maxPositions);
      pos = this.acts.get('positions', [rows], 'i32');
      if (rows > 0) pos.write(positions);
    } else {
      if (positions.dtype !== 'i32' || positions.size !== rows) throw new EdgeTuneError('SHAPE_MISMATCH', `positions must be an int32 tensor of ${rows} entries`);
      pos = positions;
    }
    this.saved = { positions: pos, rows };
    return this.rotate(batch, x, rows, pos, false, 'y');
  }

  /** Records dx = RoPE⁻¹(dy) (returned: layer-owned, or dy itself when inPlace). */
  async backward(batch: Batch, dy: Tensor): Promise<Tensor> {
    const s = this.saved;
    if (!s) throw new EdgeTuneError('INVALID_ARGUMENT', 'Rope.backward needs a forward first');
    if (dy.size !== s.rows * this.width) throw new EdgeTuneError('SHAPE_MISMATCH', `Rope.backward: dy has ${dy.size} elements, the forward had ${s.rows}×${this.width}`);
    return this.rotate(batch, dy, s.rows, s.positions, true, 'dx');
  }

  release(): void {
    this.acts.clear();
    this.saved = null;
  }

  private get width(): number {
    return this.heads * this.table.headDim;
  }

  private async rotate(batch: Batch, x: Tensor, rows: number, pos: Tensor, inverse: boolean, slot: string): Promise<Tensor> {
    const y = this.inPlace ? x : this.acts.get(slot, [rows, this.width]);
    await recordRope(this.rt, batch, {
      rows, heads: this.heads, headDim: this.table.headDim, maxPositions: this.table.maxPositions,
      positions: pos.buffer, table: this.table.table.buffer, x: this.inPlace ? undefined : x.buffer, y: y.buffer, inverse,
    });
    return y;
  }
}
