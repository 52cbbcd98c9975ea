// Block order of a grid: the row gather behind the connector's pixel shuffle and the stem skip's
// space-to-depth.
import { EdgeTuneError } from '../errors.js';
import type { Batch } from '../gpu/launch.js';
import type { Runtime } from '../gpu/runtime.js';
import { Tensor } from '../gpu/tensor.js';
import { recordEmbeddingForward } from '../kernels/embedding.js';
/**
 * Block order of a g×g patch grid merged m×m (m divides g): entry r·m² + s of the result is
 * patch (i·m + dy)·g + (j·m + dx), where r = i·(g/m) + j is the merged cell and s = dy·m + dx.
 * Its inverse takes the merged rows back to raster order.
 */
export function mergeOrder(grid: number, m: number, images = 1): { order: Int32Array; inverse: Int32Array } {
  const P = grid * grid, gm = grid / m;
  const order = new Int32Array(images * P);
  const inverse = new Int32Array(images * P);
  for (let b = 0; b < images; b++) {
    for (let i = 0; i < gm; i++) for (let j = 0; j < gm; j++) for (let dy = 0; dy < m; dy++) for (let dx = 0; dx < m; dx++) {
      const at = b * P + (i * gm + j) * m * m + dy * m + dx;
      const src = b * P + (i * m + dy) * grid + (j * m + dx);
      order[at] = src;
      inverse[src] = at;
    }
  }
  return { order, inverse };
}

/**
 * mergeOrder's permutation on the GPU, per row count (allocated once per count): `gather` writes
 * out[r] = x[order[r]] (rows of d floats), or with `inverse` out[src] = x[inverse[src]], the
 * permutation's gradient. The connector's pixel shuffle and the stem skip's space-to-depth.
 */
export class BlockGather {
  private readonly rt: Runtime;
  private readonly orders = new Map<number, { order: Tensor; inverse: Tensor }>();
  /** Cells per side of the grid, and cells per side of a block. */
  constructor(rt: Runtime, readonly grid: number, readonly m: number) {
    this.rt = rt;
  }

  private tensors(rows: number): { order: Tensor; inverse: Tensor } {
    let o = this.orders.get(rows);
    if (!o) {
      const images = rows / this.grid ** 2;
      if (!Number.isInteger(images)) throw new EdgeTuneError('SHAPE_MISMATCH', `${rows} rows are not whole ${this.grid}×${this.grid} grids`);
      const m = mergeOrder(this.grid, this.m, images);
      o = { order: Tensor.from(this.rt, m.order, [rows]), inverse: Tensor.from(this.rt, m.inverse, [rows]) };
      this.orders.set(rows, o);
    }
    return o;
  }

  /** Records the gather of `rows` rows of d floats from x into out (by the inverse with `inverse`). */
  async gather(batch: Batch, x: Tensor, out: Tensor, rows: number, d: number, inverse = false): Promise<void> {
    const o = this.tensors(rows);
    await recordEmbeddingForward(this.rt, batch, { tokens: rows, vocab: rows, d, ids: (inverse ? o.inverse : o.order).buffer, table: x.buffer, out: out.buffer });
  }

  release(): void {
    for (const o of this.orders.values()) {
      o.order.release();
      o.inverse.release();
    }
    this.orders.clear();
  }
}
