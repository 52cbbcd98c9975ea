// Block order of a grid: the row gather behind the connector's pixel shuffle and the stem skip's
// space-to-depth.
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
