// Answers with boxes as text (DESIGN §1.5): each box is `label <loc_a> <loc_b>` (patch2d: the
// top-left corner's patch, then the bottom-right corner's; bins1d: 4 tokens), several boxes
// are joined with ` ; `. Answers without boxes are their text as is.
import { EdgeTuneError } from '../errors.js';
import { decodeBox, encodeBox, locCells, type Box, type LocCodec } from '../model/box_codec.js';
import { locTokenCell, locTokenName } from '../model/tokenizer.js';
import type { LabeledBox } from './types.js';

// The only two places the worlds touch the box codec.
function boxCells(box: Box, codec: LocCodec): number[] {
  return encodeBox(box, codec);
}
function cellsBox(cells: number[], codec: LocCodec): Box {
  return decodeBox(cells, codec);
}

/** Location tokens per box under a codec. */
export function tokensPerBox(codec: LocCodec): number {
  locCells(codec);
  return codec.kind === 'patch2d' ? 2 : 4;
}

/** The text a model emits for an answer: `answer`, or its boxes with location tokens. */
export function formatAnswer(sample: { answer: string; boxes: readonly LabeledBox[] }, codec: LocCodec): string {
  if (sample.boxes.length === 0) return sample.answer;
  return sample.boxes.map((b) => [b.label, ...boxCells(b, codec).map((k) => locTokenName(codec, k))].filter((s) => s !== '').join(' ')).join(' ; ');
}

export interface ParsedAnswer {
  /** The answer without location tokens: the labels joined with ` ; ` when there are boxes. */
  text: string;
  boxes: LabeledBox[];
}

const LOC = /<loc_?\d+>/g;
const HAS_LOC = /<loc_?\d+>/;

/**
 * Reads an answer back. A text with no location token is a plain answer. Otherwise it is
 * segments split by `;`, each `label loc…loc` with exactly tokensPerBox(codec) location
 * tokens at its end. strict (default): a malformed segment → INVALID_ARGUMENT; otherwise
 * malformed segments are dropped (what a filter of generated answers wants).
 */
export function parseAnswer(text: string, codec: LocCodec, options: { strict?: boolean } = {}): ParsedAnswer {
  const strict = options.strict ?? true;
  const n = tokensPerBox(codec);
  if (typeof text !== 'string') throw new EdgeTuneError('INVALID_ARGUMENT', 'an answer is a string');
  if (!HAS_LOC.test(text)) return { text: text.trim(), boxes: [] };
  const boxes: LabeledBox[] = [];
  for (const raw of text.split(';')) {
    const seg = raw.replace(LOC, (t) => ` ${t} `).trim().split(/\s+/).filter((s) => s !== '');
    let first = seg.findIndex((t) => t.startsWith('<loc'));
    if (first < 0) first = seg.length;
    const label = seg.slice(0, first).join(' ');
    const cells = seg.slice(first).map((t) => locTokenCell(codec, t));
    const ok = cells.length === n && cells.every((k) => k >= 0);
    if (!ok) {
      if (strict) throw new EdgeTuneError('INVALID_ARGUMENT', `answer segment ${JSON.stringify(raw.trim())} is not "label" followed by ${n} location tokens of the ${codec.kind} codec`);
      continue;
    }
    boxes.push({ label, ...cellsBox(cells, codec) });
  }
  return { text: boxes.map((b) => b.label).join(' ; '), boxes };
}
