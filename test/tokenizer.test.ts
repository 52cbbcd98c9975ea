// The word-level tokenizer and the committed models/tiny-vlm/tokenizer.json.
import { readFileSync } from 'node:fs';
import { describe, expect, test } from 'vitest';
import { PALIGEMMA_CODEC } from '../sdk/model/box_codec.js';
import { Tokenizer, locTokenCell, locTokenName, type TokenizerJSON } from '../sdk/model/tokenizer.js';
import { formatAnswer, parseAnswer } from '../sdk/data/answer.js';
import { buildTokenizerJSON, TINY_VLM_CODEC } from '../sdk/data/vocab.js';
import { sampleSplit } from '../sdk/data/worlds.js';
import { expectCode } from './helpers/errors.js';

const FILE = 'models/tiny-vlm/tokenizer.json';
const text = readFileSync(FILE, 'utf8');
const tok = Tokenizer.fromJSON(text);

describe('tokenizer.json', () => {
  test('is what scripts/make-tokenizer.mjs writes today', () => {
    expect(JSON.parse(text)).toEqual(buildTokenizerJSON());
  });

  test('layout: special tokens, reserved slots, 16×16 location tokens, then words', () => {
    expect(tok.codec).toEqual({ kind: 'patch2d', grid: 16 });
    expect([tok.padId, tok.bosId, tok.eosId, tok.unkId, tok.imageId]).toEqual([0, 1, 2, 3, 4]);
    expect(tok.tokenId('<generate_qa>')).toBe(5);
    expect([tok.tokenId('Q:'), tok.tokenId('A:')]).toEqual([6, 7]);
    expect(tok.locOffset).toBe(24);
    expect(tok.locCount).toBe(256);
    expect(tok.tokenId('<loc_0>')).toBe(24);
    expect(tok.tokenId('<loc_255>')).toBe(24 + 255);
    expect(tok.locTokenId(17)).toBe(24 + 17);
    expect(tok.locCell(24 + 17)).toBe(17);
    expect(tok.locCell(tok.tokenId('circle'))).toBe(-1);
    expect(tok.vocabSize).toBeLessThan(512);
    // Inspection words are in the vocabulary although pretraining never writes them.
    for (const w of ['crack', 'rust', 'spot', 'hole', 'dent', 'scratch', 'severe', 'concrete', 'brushed', 'metal', 'wood', 'leaf', 'brick']) expect(tok.has(w)).toBe(true);
  });
});

describe('encode / decode', () => {
  test('2,000 samples of each world round-trip with no <unk>', () => {
    let n = 0;
    for (const world of ['general', 'inspection'] as const) {
      for (let i = 0; i < 2000; i++) {
        const s = sampleSplit(world, 'val', i);
        const answer = formatAnswer(s, TINY_VLM_CODEC);
        for (const t of [s.question, answer, `Q: ${s.question} A: ${answer}`]) {
          const ids = tok.encode(t);
          if (ids.includes(tok.unkId) || tok.decode(ids) !== t) expect(tok.decode(ids), `${world} ${i}`).toBe(t);
          n++;
        }
        if (s.boxes.length) {
          // Location tokens map to their cells.
          const ids = Array.from(tok.encode(answer)).filter((id) => tok.locCell(id) >= 0);
          expect(ids.length).toBe(2 * s.boxes.length);
        }
      }
    }
    expect(n).toBe(12_000);
  });

  test('normalisation: case, spacing, punctuation, glued tags', () => {
    expect(tok.normalize('  What COLOR is the Circle ?')).toBe('what color is the circle?');
    expect(tok.normalize('a red circle ,two blue squares and a star')).toBe('a red circle, two blue squares and a star');
    expect(tok.normalize('red circle<loc_1><loc_40>;blue star <loc_2> <loc_50>')).toBe('red circle <loc_1> <loc_40> ; blue star <loc_2> <loc_50>');
    expect(tok.pieces('<generate_qa>')).toEqual(['<generate_qa>']);
    expect(tok.pieces('Q: what shape is this? A: star')).toEqual(['Q:', 'what', 'shape', 'is', 'this', '?', 'A:', 'star']);
    // Markers are case-sensitive and only start a chunk.
    expect(tok.pieces('faq: a')).toEqual(['faq', ':', 'a']);
  });

  test('unknown words and tags become <unk>', () => {
    const ids = tok.encode('what colour is the zeppelin? <loc_9999>');
    expect(tok.decode(ids)).toBe('what <unk> is the <unk>? <unk>');
    expect(Array.from(ids).filter((id) => id === tok.unkId).length).toBe(3);
  });

  test('bos / eos and skipping special tokens', () => {
    const ids = tok.encode('is there a defect?', { bos: true, eos: true });
    expect(ids[0]).toBe(tok.bosId);
    expect(ids[ids.length - 1]).toBe(tok.eosId);
    expect(ids).toBeInstanceOf(Int32Array);
    expect(tok.decode(ids)).toBe('<bos> is there a defect? <eos>');
    expect(tok.decode([tok.imageId, tok.imageId, ...ids, tok.padId], { skipSpecial: true })).toBe('is there a defect?');
    expectCode(() => tok.decode([tok.vocabSize]), 'OUT_OF_RANGE');
    expectCode(() => tok.tokenId('zeppelin'), 'INVALID_ARGUMENT');
  });

  test('an empty question is INVALID_ARGUMENT', () => {
    expectCode(() => tok.encodeQuestion(''), 'INVALID_ARGUMENT');
    expectCode(() => tok.encodeQuestion('   \n'), 'INVALID_ARGUMENT');
    expectCode(() => tok.encodeQuestion(undefined as unknown as string), 'INVALID_ARGUMENT');
    expect(Array.from(tok.encodeQuestion('what shape is this?'))).toEqual(Array.from(tok.encode('what shape is this?')));
  });
});

describe('location tokens of both codecs', () => {
  test('names', () => {
    expect(locTokenName(TINY_VLM_CODEC, 37)).toBe('<loc_37>');
    expect(locTokenName(PALIGEMMA_CODEC, 37)).toBe('<loc0037>');
    expect(locTokenCell(TINY_VLM_CODEC, '<loc_37>')).toBe(37);
    expect(locTokenCell(TINY_VLM_CODEC, '<loc_256>')).toBe(-1);
    expect(locTokenCell(TINY_VLM_CODEC, '<loc_037>')).toBe(-1);
    expect(locTokenCell(PALIGEMMA_CODEC, '<loc1023>')).toBe(1023);
    expect(locTokenCell(PALIGEMMA_CODEC, '<loc_5>')).toBe(-1);
  });

  test('a bins1d vocabulary encodes PaliGemma-style answers', () => {
    const pali = Tokenizer.fromJSON(buildTokenizerJSON(PALIGEMMA_CODEC));
    expect(pali.locCount).toBe(1024);
    expect(pali.tokenId('<loc0000>')).toBe(pali.locOffset);
    const s = Array.from({ length: 50 }, (_, i) => sampleSplit('general', 'test', i, { types: ['locate'] }))[0]!;
    const answer = formatAnswer(s, PALIGEMMA_CODEC);
    expect(answer).toMatch(/^\w+ \w+ <loc\d{4}> <loc\d{4}> <loc\d{4}> <loc\d{4}>$/);
    const ids = pali.encode(answer);
    expect(ids.includes(pali.unkId)).toBe(false);
    expect(parseAnswer(pali.decode(ids), PALIGEMMA_CODEC).boxes.length).toBe(1);
  });
});

describe('bad tokenizer files → BAD_CONFIG', () => {
  const good = (): TokenizerJSON => JSON.parse(text);
  test.each([
    ['not JSON', () => '{'],
    ['wrong version', () => ({ ...good(), version: 2 })],
    ['no vocab', () => ({ ...good(), model: { type: 'word' } })],
    ['missing special token', () => ({ ...good(), special: { ...good().special, bos: '<start>' } })],
    ['gap in ids', () => {
      const j = good();
      delete j.model.vocab['zero'];
      j.model.vocab['zzz'] = 100_000;
      return j;
    }],
    ['duplicate id', () => {
      const j = good();
      j.model.vocab['zzz'] = 0;
      return j;
    }],
    ['location token misplaced', () => {
      const j = good();
      j.locations.offset += 1;
      return j;
    }],
    ['location count off', () => {
      const j = good();
      j.locations.count = 100;
      return j;
    }],
    ['bad codec', () => ({ ...good(), locations: { ...good().locations, codec: { kind: 'patch2d', grid: 0 } } })],
  ])('%s', (_, make) => {
    expectCode(() => Tokenizer.fromJSON(make()), 'BAD_CONFIG');
  });

  test('toJSON gives the file back', () => {
    expect(Tokenizer.fromJSON(tok.toJSON()).vocabSize).toBe(tok.vocabSize);
    expect(tok.toJSON()).toEqual(JSON.parse(text));
  });
});
