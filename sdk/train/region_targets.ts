// Dense targets on the image rows, for pretraining on the general world. Image row r of a
// sequence is merged cell (i, j) = (⌊r/g⌋, r mod g) of the g×g grid (g = √P, mergeOrder's
// raster order); it names the object with the most pixels in that cell among those whose
// pixels there are at least REGION_MIN_SHARE of the object or of the cell: its shape or
// colour word, or a location token of its box (RegionWord). Other rows have no target
// (IGNORE_INDEX). The prefix attends both ways, so the decoder reads those rows like any other;
// the loss at them gives the vision encoder a direct, dense signal ("what is here?") next to
// the answer's few tokens, and nothing changes at inference.
// regionMatches asks the rows a question-conditioned one instead: is this the object asked about?
import { EdgeTuneError } from '../errors.js';
import { COLOR_NAMES, generalShapeMask, SHAPES, type Shape } from '../data/general.js';
import { plural, textWords } from '../data/text.js';
import type { Sample, SceneObject } from '../data/types.js';
import { boxToTokenIds } from '../model/box_codec.js';
import { IGNORE_INDEX } from '../kernels/loss.js';
import type { Tokenizer } from '../model/tokenizer.js';

export const REGION_MIN_SHARE = 0.2;

/**
 * What an image row can name about the object covering it: its shape or colour word, or the
 * first or last location token of its box (patch2d: the top-left and bottom-right cells).
 */
export type RegionWord = 'shape' | 'color' | 'first' | 'last';

/** The words of regionWords by default: all four. */
export const REGION_WORDS: readonly RegionWord[] = ['shape', 'color', 'first', 'last'];

/**
 * (P,) the index in sample.objects of the object each image row names (−1 where none): the one
 * with the most pixels in the row's cell among those whose pixels there are at least
 * REGION_MIN_SHARE of the object or of the cell.
 */
export function regionObjects(sample: Sample, rows: number): Int32Array {
  const g = Math.round(Math.sqrt(rows));
  if (g * g !== rows) throw new EdgeTuneError('BAD_CONFIG', `region targets need a square grid of image rows, got ${rows}`);
  const size = sample.image.width;
  const out = new Int32Array(rows).fill(-1);
  const best = new Float64Array(rows);
  const cellOf = (p: number) => Math.min(g - 1, Math.floor((p * g) / size));
  const cellArea = (size / g) ** 2;
  sample.objects.forEach((o, index) => {
    const { cx, cy, r } = o.geometry;
    const shape = o.attributes.shape as Shape | undefined;
    if (shape === undefined || cx === undefined || cy === undefined || r === undefined) return;
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
    for (let k = 0; k < rows; k++) {
      const share = Math.max(per[k]! / total, per[k]! / cellArea);
      if (per[k]! > best[k]! && share >= REGION_MIN_SHARE) {
        best[k] = per[k]!;
        out[k] = index;
      }
    }
  });
  return out;
}

/** The id of `word` of an object (IGNORE_INDEX when it has no such attribute). */
function wordId(tok: Tokenizer, o: SceneObject, word: RegionWord): number {
  if (word === 'first' || word === 'last') {
    const ids = boxToTokenIds(o.box, tok.codec, tok.locOffset);
    return word === 'first' ? ids[0]! : ids[ids.length - 1]!;
  }
  const w = o.attributes[word];
  return typeof w === 'string' ? tok.tokenId(w) : IGNORE_INDEX;
}

/**
 * (P·K,) for K = words.length: row r's K ids at r·K … r·K + K − 1, `words` of the object it
 * names (regionObjects, or `objs` when the caller has them), IGNORE_INDEX for a row that names
 * none.
 */
export function regionWords(tok: Tokenizer, sample: Sample, rows: number, words: readonly RegionWord[] = REGION_WORDS, objs?: Int32Array): Int32Array {
  if (words.length === 0) throw new EdgeTuneError('INVALID_ARGUMENT', 'regionWords needs at least one word kind');
  objs ??= regionObjects(sample, rows);
  const K = words.length;
  const out = new Int32Array(rows * K).fill(IGNORE_INDEX);
  for (let r = 0; r < rows; r++) {
    const o = sample.objects[objs[r]!];
    if (o) for (let k = 0; k < K; k++) out[r * K + k] = wordId(tok, o, words[k]!);
  }
  return out;
}

/** (P,) target ids of the image rows of a general-world sample (IGNORE_INDEX where none): `word` of the object each names. */
export function regionTargets(tok: Tokenizer, sample: Sample, rows: number, word: RegionWord = 'shape'): Int32Array {
  return regionWords(tok, sample, rows, [word]);
}

/**
 * The object a general-world question asks about: the colour and shape words it names (a plural
 * shape counts as its shape: `how many stars …?`); null when it names neither (`what shape is
 * this?`, `describe the image.`).
 */
export function questionQuery(question: string): { color?: string; shape?: string } | null {
  const words = textWords(question);
  const color = words.find((w) => (COLOR_NAMES as readonly string[]).includes(w));
  const shape = SHAPES.find((s) => words.includes(s) || words.includes(plural(s)));
  if (color === undefined && shape === undefined) return null;
  return { ...(color !== undefined && { color }), ...(shape !== undefined && { shape }) };
}

/**
 * (objects,) the anchor row of each object of a sample: the row of the cell holding its centre
 * when that row names it (regionObjects), else the row naming it nearest to that cell (the first
 * in raster order on a tie); −1 when no row names it.
 */
export function anchorRows(sample: Sample, rows: number, objs: Int32Array = regionObjects(sample, rows)): Int32Array {
  const g = Math.round(Math.sqrt(rows));
  // Geometry is in image fractions.
  const cellOf = (p: number) => Math.max(0, Math.min(g - 1, Math.floor(p * g)));
  return Int32Array.from(sample.objects, (o, k) => {
    const { cx, cy } = o.geometry;
    if (cx === undefined || cy === undefined) return -1;
    const ci = cellOf(cy), cj = cellOf(cx);
    let best = -1, dist = Infinity;
    for (let r = 0; r < rows; r++) {
      if (objs[r] !== k) continue;
      const d = (Math.floor(r / g) - ci) ** 2 + (r % g - cj) ** 2;
      if (d < dist) {
        dist = d;
        best = r;
      }
    }
    return best;
  });
}

/**
 * (P,) question-conditioned targets of the image rows: `yes` on the rows whose object
 * (regionObjects) has every attribute the question names (questionQuery), `no` on all others,
 * background rows included; null when the question names no colour or shape. The prefix attends
 * both ways, so each row sees the question: the target asks it to compare the two, the step
 * every `what color / is there / how many / where` answer rests on. On a `how many …?` question
 * only each such object's anchor row (anchorRows) says yes, so that the answer is the number of
 * `yes` rows: an object covers one to four cells. `objs`: the sample's regionObjects, when the
 * caller has them.
 */
export function regionMatches(tok: Tokenizer, sample: Sample, rows: number, objs?: Int32Array): Int32Array | null {
  const q = questionQuery(sample.question);
  if (!q) return null;
  objs ??= regionObjects(sample, rows);
  const anchors = sample.type === 'count' ? anchorRows(sample, rows, objs) : null;
  const yes = tok.tokenId('yes'), no = tok.tokenId('no');
  return Int32Array.from(objs, (k, r) => {
    const a = sample.objects[k]?.attributes;
    const hit = a && (q.color === undefined || a.color === q.color) && (q.shape === undefined || a.shape === q.shape);
    return hit && (!anchors || anchors[k] === r) ? yes : no;
  });
}
