#!/usr/bin/env node
// Writes models/tiny-vlm/tokenizer.json from the worlds' vocabulary (sdk/data/vocab.ts).
//   node scripts/make-tokenizer.mjs           write the file
//   node scripts/make-tokenizer.mjs --check   exit 1 when the committed file is out of date
import { readFileSync, writeFileSync, mkdirSync } from 'node:fs';
import { importTs } from './import-ts.mjs';

const FILE = 'models/tiny-vlm/tokenizer.json';
const { buildTokenizerJSON, Tokenizer } = await importTs('sdk/index.ts');
const json = buildTokenizerJSON();
const text = `${JSON.stringify(json, null, 2)}\n`;
const tok = Tokenizer.fromJSON(text); // validates what is written

if (process.argv.includes('--check')) {
  let old = '';
  try {
    old = readFileSync(FILE, 'utf8');
  } catch {}
  if (old !== text) {
    console.error(`${FILE} is out of date; run: node scripts/make-tokenizer.mjs`);
    process.exit(1);
  }
  console.log(`${FILE} is up to date (${tok.vocabSize} tokens)`);
} else {
  mkdirSync('models/tiny-vlm', { recursive: true });
  writeFileSync(FILE, text);
  const words = tok.vocabSize - tok.locOffset - tok.locCount;
  console.log(`wrote ${FILE}: ${tok.vocabSize} tokens (${tok.locOffset} special/reserved, ${tok.locCount} location tokens from id ${tok.locOffset}, ${words} punctuation and words)`);
}
