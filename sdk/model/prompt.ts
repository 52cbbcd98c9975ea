// The VLM's sequence layout (README: The tiny VLM, sequence format):
//   [P image rows] [<bos> question tokens A:] [answer tokens <eos>] [<pad> …]
// The image rows come from the connector; their ids here are −1 (the embedding gives a zero row
// and no gradient there; the trainer copies the image features over them). Full attention
// covers the prefix = P + 1 + question + 1 (image, <bos>, question, A:); the answer is causal.
// Row i's target is id i+1 when i+1 lies in the answer (answer tokens and <eos>), else −100.
// A batch is right-padded to a common length S (the longest entry rounded up to `multiple`);
// `lengths` masks the padding out of attention and padded rows have no target.
import { EdgeTuneError } from '../errors.js';
import { IGNORE_INDEX } from '../kernels/loss.js';
import type { Tokenizer } from './tokenizer.js';

/** The id the layout puts on image rows (the embedding reads it as a zero row, no gradient). */
export const IMAGE_ROW_ID = -1;

/** Prompt ids after the image rows: <bos> question A:. INVALID_ARGUMENT for an empty question. */
export function promptIds(tok: Tokenizer, question: string): Int32Array {
  const q = tok.encodeQuestion(question);
  const out = new Int32Array(q.length + 2);
  out[0] = tok.bosId;
  out.set(q, 1);
  out[q.length + 1] = tok.tokenId(tok.special.answer);
  return out;
}

/** Answer ids: the answer text (location tokens included) then <eos>. */
export function answerIds(tok: Tokenizer, answer: string): Int32Array {
  return tok.encode(answer, { eos: true });
}

export interface VlmSequence {
  /** Ids of the whole sequence (image rows are IMAGE_ROW_ID). */
  ids: Int32Array;
  /** Next-token targets (−100 outside the answer). */
  targets: Int32Array;
  /** Full-attention prefix: P + prompt length. */
  prefix: number;
  length: number;
}

/** One entry's ids and targets (unpadded). */
export function layoutSequence(tok: Tokenizer, patches: number, question: string, answer: string): VlmSequence {
  const p = promptIds(tok, question);
  const a = answerIds(tok, answer);
  const n = patches + p.length + a.length;
  const ids = new Int32Array(n).fill(IMAGE_ROW_ID);
  ids.set(p, patches);
  ids.set(a, patches + p.length);
  const targets = new Int32Array(n).fill(IGNORE_INDEX);
  const first = patches + p.length; // first answer row
  for (let i = first - 1; i < n - 1; i++) targets[i] = ids[i + 1]!;
  return { ids, targets, prefix: patches + p.length, length: n };
}

export interface VlmBatchLayout {
  batch: number;
  seq: number;
  /** (B·S): image rows −1, padding <pad>. */
  ids: Int32Array;
  targets: Int32Array;
  prefix: number[];
  lengths: number[];
}

/** Right-pads entries to S = the longest rounded up to `multiple` (≤ maxPositions). */
export function layoutBatch(tok: Tokenizer, patches: number, items: { question: string; answer: string }[], maxPositions: number, multiple = 8): VlmBatchLayout {
  if (items.length === 0) throw new EdgeTuneError('EMPTY_DATASET', 'a VLM batch needs at least one sample');
  const seqs = items.map((it) => layoutSequence(tok, patches, it.question, it.answer));
  const longest = Math.max(...seqs.map((s) => s.length));
  if (longest > maxPositions) throw new EdgeTuneError('TOO_LARGE', `a sequence of ${longest} rows (${patches} image rows + prompt + answer) exceeds the model's ${maxPositions} positions`);
  const S = Math.min(maxPositions, Math.ceil(longest / multiple) * multiple);
  const B = seqs.length;
  const ids = new Int32Array(B * S).fill(tok.padId);
  const targets = new Int32Array(B * S).fill(IGNORE_INDEX);
  seqs.forEach((s, b) => {
    ids.set(s.ids, b * S);
    targets.set(s.targets, b * S);
  });
  return { batch: B, seq: S, ids, targets, prefix: seqs.map((s) => s.prefix), lengths: seqs.map((s) => s.length) };
}
