// Dense targets on the image rows, for pretraining on the general world. Image row r of a
// sequence is merged cell (i, j) = (⌊r/g⌋, r mod g) of the g×g grid (g = √P, mergeOrder's
// raster order); its target is the shape (or colour) word of the object with the most pixels
// in that cell among those whose pixels there are at least REGION_MIN_SHARE of the object or
// of the cell. Other rows have no target (IGNORE_INDEX). The prefix attends both ways, so the
// decoder reads those rows like any other; the loss at them gives the vision encoder a direct,
// dense signal ("what is here?") next to the answer's few tokens, and nothing changes at
// inference.
import { EdgeTuneError } from '../errors.js';
import { generalShapeMask, type Shape } from '../data/general.js';
import type { Sample } from '../data/types.js';
import { IGNORE_INDEX } from '../kernels/loss.js';
import type { Tokenizer } from '../model/tokenizer.js';

export const REGION_MIN_SHARE = 0.2;

/**
 * (P,) target ids of the image rows of a general-world sample (IGNORE_INDEX where none): the
 * word of each qualifying object's `attribute` ('shape' or 'color').
 */
export function regionTargets(tok: Tokenizer, sample: Sample, rows: number, attribute: 'shape' | 'color' = 'shape'): Int32Array {
  const g = Math.round(Math.sqrt(rows));
  if (g * g !== rows) throw new EdgeTuneError('BAD_CONFIG', `region targets need a square grid of image rows, got ${rows}`);
  const size = sample.image.width;
  const out = new Int32Array(rows).fill(IGNORE_INDEX);
  const best = new Float64Array(rows);
  const cellOf = (p: number) => Math.min(g - 1, Math.floor((p * g) / size));
  const cellArea = (size / g) ** 2;
  for (const o of sample.objects) {
    const { cx, cy, r } = o.geometry;
    const shape = o.attributes.shape as Shape | undefined;
    const word = o.attributes[attribute];
    if (shape === undefined || typeof word !== 'string' || cx === undefined || cy === undefined || r === undefined) continue;
    const m = generalShapeMask({ shape, cx, cy, r }, size);
    const per = new Float64Array(rows);
    let total = 0;
    for (let y = 0; y < size; y++) {
      for (let x = 0; x < size; x++) {
        const c = m.data[y * size + x]!;
        if (c > 0) {
          per[cellOf(y) * g + cellOf(x)]! += c;
          total += c;
        }
      }
    }
    const id = tok.tokenId(word);
    for (let k = 0; k < rows; k++) {
      const share = Math.max(per[k]! / total, per[k]! / cellArea);
      if (per[k]! > best[k]! && share >= REGION_MIN_SHARE) {
        best[k] = per[k]!;
        out[k] = id;
      }
    }
  }
  return out;
}
