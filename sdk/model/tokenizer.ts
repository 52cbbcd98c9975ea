// Word-level tokenizer of the embedded model (models/tiny-vlm/tokenizer.json).
//
// Pre-tokenisation, left to right over the text:
//   `<...>` tags               → that token (special and location tokens), <unk> if unknown
//   marker words such as `Q:`  → that token, when they start a whitespace-separated chunk
//                                (case-sensitive: they are special tokens)
//   one of ? . , ; : !         → a punctuation token
//   any other run of characters → lowercased, looked up as a word, <unk> if unknown
// Decoding joins tokens with one space, except that ? . , : ! attach to the token before.
// So decode(encode(t)) is t's normal form: lowercase, single spaces, `circle?`, `a, b`,
// `label <loc_3> <loc_40> ; label <loc_5> <loc_60>`.
//
// File format (version 1):
//   { version: 1,
//     model: { type: 'word', lowercase: true, punctuation: '?.,;:!', vocab: { token: id } },
//     special: { pad, bos, eos, unk, image, generate_qa, question, answer } (token strings),
//     locations: { codec: LocCodec, offset, count } }
// Ids are 0..V−1 without gaps. Location token k (cell k of the codec) is id offset + k, named
// `<loc_k>` for patch2d (Kosmos-2) and `<locNNNN>` (4 digits) for bins1d (PaliGemma).
import { EdgeTuneError } from '../errors.js';
import { locCells, type LocCodec } from './box_codec.js';

export interface TokenizerJSON {
  version: 1;
  model: { type: 'word'; lowercase: boolean; punctuation: string; vocab: Record<string, number> };
  special: SpecialTokens;
  locations: { codec: LocCodec; offset: number; count: number };
}

export interface SpecialTokens {
  pad: string;
  bos: string;
  eos: string;
  unk: string;
  image: string;
  /** Prompt of LEAML's QA generator (DESIGN §1.6), which answers `Q: … A: …`. */
  generate_qa: string;
  /** The markers the QA generator writes before a question and an answer. */
  question: string;
  answer: string;
}

const SPECIAL_KEYS = ['pad', 'bos', 'eos', 'unk', 'image', 'generate_qa', 'question', 'answer'] as const;
const NO_SPACE_BEFORE = new Set(['?', '.', ',', ':', '!']);

/** The name of location token `cell` under a codec. */
export function locTokenName(codec: LocCodec, cell: number): string {
  return codec.kind === 'patch2d' ? `<loc_${cell}>` : `<loc${String(cell).padStart(4, '0')}>`;
}

/** The cell of a location token name under a codec, or −1 when the name is not one. */
export function locTokenCell(codec: LocCodec, token: string): number {
  const m = codec.kind === 'patch2d' ? /^<loc_(\d+)>$/.exec(token) : /^<loc(\d{4,})>$/.exec(token);
  if (!m) return -1;
  const k = Number(m[1]);
  return k < locCells(codec) && locTokenName(codec, k) === token ? k : -1;
}

function bad(message: string): never {
  throw new EdgeTuneError('BAD_CONFIG', `tokenizer.json: ${message}`);
}

export class Tokenizer {
  readonly vocabSize: number;
  readonly locOffset: number;
  readonly locCount: number;
  readonly codec: LocCodec;
  readonly special: Readonly<SpecialTokens>;
  readonly padId: number;
  readonly bosId: number;
  readonly eosId: number;
  readonly unkId: number;
  readonly imageId: number;
  private readonly ids: Map<string, number>;
  private readonly tokens: string[];
  private readonly lowercase: boolean;
  private readonly punctuation: Set<string>;
  private readonly pattern: RegExp;
  private readonly json: TokenizerJSON;

  private constructor(json: TokenizerJSON) {
    this.json = json;
    const vocab = json.model.vocab;
    this.tokens = [];
    this.ids = new Map();
    for (const [tok, id] of Object.entries(vocab)) {
      if (!Number.isInteger(id) || id < 0) bad(`token ${JSON.stringify(tok)} has id ${String(id)}`);
      if (this.tokens[id] !== undefined) bad(`id ${id} is used by ${JSON.stringify(this.tokens[id])} and ${JSON.stringify(tok)}`);
      this.tokens[id] = tok;
      this.ids.set(tok, id);
    }
    this.vocabSize = this.tokens.length;
    for (let i = 0; i < this.vocabSize; i++) if (this.tokens[i] === undefined) bad(`ids must run 0..${this.vocabSize - 1} without gaps; ${i} is missing`);
    this.lowercase = json.model.lowercase;
    this.punctuation = new Set(json.model.punctuation);
    this.special = { ...json.special };
    const idOf = (key: keyof SpecialTokens) => {
      const id = this.ids.get(json.special[key]);
      if (id === undefined) bad(`special token ${key} = ${JSON.stringify(json.special[key])} is not in the vocabulary`);
      return id;
    };
    this.padId = idOf('pad');
    this.bosId = idOf('bos');
    this.eosId = idOf('eos');
    this.unkId = idOf('unk');
    this.imageId = idOf('image');
    idOf('generate_qa');
    idOf('question');
    idOf('answer');
    const loc = json.locations;
    this.codec = loc.codec;
    try {
      this.locCount = locCells(loc.codec);
    } catch (e) {
      bad(`locations.codec: ${(e as Error).message}`);
    }
    if (loc.count !== this.locCount) bad(`locations.count is ${loc.count} but the codec has ${this.locCount} cells`);
    this.locOffset = loc.offset;
    if (!Number.isInteger(loc.offset) || loc.offset < 0 || loc.offset + loc.count > this.vocabSize) bad(`locations [${loc.offset}, ${loc.offset + loc.count}) lie outside the vocabulary of ${this.vocabSize}`);
    for (let k = 0; k < this.locCount; k++) {
      const want = locTokenName(loc.codec, k);
      if (this.tokens[loc.offset + k] !== want) bad(`id ${loc.offset + k} should be ${want}, found ${JSON.stringify(this.tokens[loc.offset + k])}`);
    }
    // Markers are the special tokens that are not <tags> (Q:, A:).
    const esc = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
    const markers = SPECIAL_KEYS.map((k) => json.special[k]).filter((t) => !t.startsWith('<'));
    const punct = [...this.punctuation].map(esc).join('');
    const parts = ['<[^<>\\s]+>', ...markers.map((m) => `(?<!\\S)${esc(m)}`)];
    if (punct) parts.push(`[${punct}]`, `[^\\s<${punct}]+`, '<');
    else parts.push('[^\\s<]+', '<');
    this.pattern = new RegExp(parts.join('|'), 'g');
  }

  /** Builds a tokenizer from the parsed (or raw string) tokenizer.json; BAD_CONFIG if malformed. */
  static fromJSON(input: unknown): Tokenizer {
    let json: unknown = input;
    if (typeof input === 'string') {
      try {
        json = JSON.parse(input);
      } catch (e) {
        bad(`not JSON (${(e as Error).message})`);
      }
    }
    const j = json as Partial<TokenizerJSON> | null;
    if (!j || typeof j !== 'object') bad('expected an object');
    if (j.version !== 1) bad(`unsupported version ${String(j.version)} (this SDK reads version 1)`);
    if (!j.model || j.model.type !== 'word' || !j.model.vocab || typeof j.model.vocab !== 'object') bad("model must be { type: 'word', vocab: { token: id } }");
    if (typeof j.model.punctuation !== 'string' || typeof j.model.lowercase !== 'boolean') bad('model.punctuation must be a string and model.lowercase a boolean');
    if (!j.special || typeof j.special !== 'object') bad('special is missing');
    for (const k of SPECIAL_KEYS) if (typeof j.special[k] !== 'string' || !j.special[k]) bad(`special.${k} must be a token string`);
    if (!j.locations || typeof j.locations !== 'object') bad('locations is missing');
    return new Tokenizer(j as TokenizerJSON);
  }

  toJSON(): TokenizerJSON {
    return this.json;
  }

  /** The id of a token (exact name); INVALID_ARGUMENT when it is not in the vocabulary. */
  tokenId(token: string): number {
    const id = this.ids.get(token);
    if (id === undefined) throw new EdgeTuneError('INVALID_ARGUMENT', `token ${JSON.stringify(token)} is not in the vocabulary`);
    return id;
  }

  has(token: string): boolean {
    return this.ids.has(token);
  }

  /** The token of an id; OUT_OF_RANGE outside [0, vocabSize). */
  token(id: number): string {
    const t = Number.isInteger(id) ? this.tokens[id] : undefined;
    if (t === undefined) throw new EdgeTuneError('OUT_OF_RANGE', `token id ${String(id)} is outside [0, ${this.vocabSize})`);
    return t;
  }

  /** Id of location token `cell`. */
  locTokenId(cell: number): number {
    if (!Number.isInteger(cell) || cell < 0 || cell >= this.locCount) throw new EdgeTuneError('OUT_OF_RANGE', `location cell ${String(cell)} is outside [0, ${this.locCount})`);
    return this.locOffset + cell;
  }

  /** The cell of a location token id, or −1 when the id is not a location token. */
  locCell(id: number): number {
    return Number.isInteger(id) && id >= this.locOffset && id < this.locOffset + this.locCount ? id - this.locOffset : -1;
  }

  /** The token strings of a text (see the file comment for the rules). */
  pieces(text: string): string[] {
    if (typeof text !== 'string') throw new EdgeTuneError('INVALID_ARGUMENT', `text must be a string, got ${typeof text}`);
    const out: string[] = [];
    for (const m of text.matchAll(this.pattern)) {
      const s = m[0];
      if (s.startsWith('<') || this.ids.has(s)) out.push(s);
      else out.push(this.lowercase ? s.toLowerCase() : s);
    }
    return out;
  }

  /** Token ids of a text; unknown words become <unk>. */
  encode(text: string, options: { bos?: boolean; eos?: boolean } = {}): Int32Array {
    const pieces = this.pieces(text);
    const out = new Int32Array(pieces.length + (options.bos ? 1 : 0) + (options.eos ? 1 : 0));
    let n = 0;
    if (options.bos) out[n++] = this.bosId;
    for (const p of pieces) out[n++] = this.ids.get(p) ?? this.unkId;
    if (options.eos) out[n++] = this.eosId;
    return out;
  }

  /** Ids of a user's question: INVALID_ARGUMENT when it is empty or only whitespace. */
  encodeQuestion(question: string): Int32Array {
    if (typeof question !== 'string' || question.trim() === '') {
      throw new EdgeTuneError('INVALID_ARGUMENT', 'the question is empty; ask something, e.g. "what color is the circle?"');
    }
    return this.encode(question);
  }

  /**
   * Text of token ids. `skipSpecial` drops <pad>, <bos>, <eos>, <image> and <unused_*>
   * (location tokens, <unk> and the Q:/A: markers are kept).
   */
  decode(ids: ArrayLike<number>, options: { skipSpecial?: boolean } = {}): string {
    const skip = options.skipSpecial ? new Set([this.padId, this.bosId, this.eosId, this.imageId]) : null;
    let out = '';
    for (let i = 0; i < ids.length; i++) {
      const id = ids[i]!;
      const t = this.token(id);
      if (skip && (skip.has(id) || t.startsWith('<unused_'))) continue;
      out += out === '' || NO_SPACE_BEFORE.has(t) ? t : ` ${t}`;
    }
    return out;
  }

  /** The tokenizer's normal form of a text: decode(encode(text)). */
  normalize(text: string): string {
    return this.decode(this.encode(text));
  }
}
