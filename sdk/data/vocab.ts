// The embedded model's vocabulary, built from everything both worlds can write. The
// inspection words are in it although pretraining (general world only) never uses them:
// adaptation later learns them without resizing the embedding table.
//
// Id layout: special tokens, 16 reserved <unused_k> slots (room for tokens that later
// features need, e.g. MMRL's representation tokens, without moving any id), the G×G
// location tokens, punctuation, then the words in sorted order.
import type { LocCodec } from '../model/box_codec.js';
import { locCells } from '../model/box_codec.js';
import { locTokenName, type SpecialTokens, type TokenizerJSON } from '../model/tokenizer.js';
import { worldWords } from './worlds.js';

/** Grid of the embedded model's patch2d location tokens: 16×16 = 256 tokens, 4 px cells at 64×64. */
export const TINY_VLM_GRID = 16;
export const TINY_VLM_CODEC: LocCodec = { kind: 'patch2d', grid: TINY_VLM_GRID };
export const PUNCTUATION = '?.,;:!';
export const RESERVED_TOKENS = 16;

export const SPECIAL_TOKENS: SpecialTokens = {
  pad: '<pad>',
  bos: '<bos>',
  eos: '<eos>',
  unk: '<unk>',
  image: '<image>',
  generate_qa: '<generate_qa>',
  question: 'Q:',
  answer: 'A:',
};

/** The tokenizer.json of the embedded model (scripts/make-tokenizer.mjs writes it). */
export function buildTokenizerJSON(codec: LocCodec = TINY_VLM_CODEC): TokenizerJSON {
  const tokens: string[] = Object.values(SPECIAL_TOKENS);
  for (let i = 0; i < RESERVED_TOKENS; i++) tokens.push(`<unused_${i}>`);
  const offset = tokens.length;
  const count = locCells(codec);
  for (let k = 0; k < count; k++) tokens.push(locTokenName(codec, k));
  tokens.push(...PUNCTUATION);
  const words = [...new Set([...worldWords('general'), ...worldWords('inspection')])].sort();
  tokens.push(...words);
  const vocab: Record<string, number> = {};
  tokens.forEach((t, i) => {
    if (t in vocab) throw new Error(`duplicate token ${t}`);
    vocab[t] = i;
  });
  return {
    version: 1,
    model: { type: 'word', lowercase: true, punctuation: PUNCTUATION, vocab },
    special: { ...SPECIAL_TOKENS },
    locations: { codec, offset, count },
  };
}
