// Region targets (pretraining's dense signal on the image rows): which rows name which shape,
// on a hand-made scene and on real general-world samples (against each object's rendered
// mask), and how vlmBatch places them: rows b·S + r, a float64 CE over the engine's logits.
import { describe, expect, test } from 'vitest';
import { generalShapeMask } from '../sdk/data/general.js';
import { sampleSplit } from '../sdk/data/worlds.js';
import type { Sample } from '../sdk/data/types.js';
import { buildTokenizerJSON } from '../sdk/data/vocab.js';
import { IGNORE_INDEX } from '../sdk/kernels/loss.js';
import { formatAnswer } from '../sdk/data/answer.js';
import { Tokenizer } from '../sdk/model/tokenizer.js';
import { VLM, type VlmConfig } from '../sdk/model/vlm.js';
import { boxToTokenIds } from '../sdk/model/box_codec.js';
import { anchorRows, questionQuery, REGION_WORDS, regionMatches, regionObjects, regionTargets, regionWords, type RegionWord } from '../sdk/train/region_targets.js';
import { matchSample, PRETRAIN_REGION_WORDS, pretrainBatch, regionAttribute } from '../sdk/train/vlm_pretrain.js';
import { NUMBER_WORDS } from '../sdk/data/text.js';
import { vlmBatch, VlmTrainer } from '../sdk/train/vlm_trainer.js';
import { expectCode } from './helpers/errors.js';
import { ceRow } from './helpers/loss_ref.js';
import { testRuntime } from './helpers/runtime.js';
import { batchLogits } from './helpers/vlm.js';

const tok = Tokenizer.fromJSON(buildTokenizerJSON());

function scene(size: number, objects: { shape: string; cx: number; cy: number; r: number }[]): Sample {
  return {
    world: 'general', seed: 0, type: 'caption', question: 'describe the image.', answer: '', boxes: [],
    image: { width: size, height: size, data: new Uint8ClampedArray(size * size * 4) },
    objects: objects.map((o) => ({ label: o.shape, box: { label: o.shape, x0: 0, y0: 0, x1: 1, y1: 1 }, attributes: { shape: o.shape }, geometry: { cx: o.cx, cy: o.cy, r: o.r } })),
    scene: {},
  } as Sample;
}

describe('region targets', () => {
  test('a hand-made scene: the cells holding each shape name it, empty cells have no target', () => {
    // 64 px, 4×4 cells of 16 px: a circle inside cell (0, 0), a star centred in cell (2, 2).
    const t = regionTargets(tok, scene(64, [{ shape: 'circle', cx: 0.125, cy: 0.125, r: 0.09 }, { shape: 'star', cx: 0.625, cy: 0.625, r: 0.15 }]), 16);
    expect(t.length).toBe(16);
    expect(t[0]).toBe(tok.tokenId('circle'));
    expect(t[2 * 4 + 2]).toBe(tok.tokenId('star'));
    for (const k of [1, 2, 3, 4, 8, 12, 3 * 4 + 0]) expect(t[k], `cell ${k}`).toBe(IGNORE_INDEX);
    const allowed = new Set([IGNORE_INDEX, tok.tokenId('circle'), tok.tokenId('star')]);
    for (const x of t) expect(allowed.has(x)).toBe(true);
  });

  test('anchorRows: the cell holding the centre, else the nearest cell naming the object; −1 for an object no row names', () => {
    // A large star centred in cell (1, 2); a circle centred in cell (2, 1), a cell the larger square (centred there too)
    // names, so the circle's anchor is the nearest cell naming it, (3, 1); a small circle hidden under the square.
    const s = scene(64, [
      { shape: 'star', cx: 0.6, cy: 0.4, r: 0.2 },
      { shape: 'circle', cx: 0.3, cy: 0.72, r: 0.1 },
      { shape: 'square', cx: 0.3, cy: 0.6, r: 0.2 },
      { shape: 'circle', cx: 0.3, cy: 0.6, r: 0.05 },
    ]);
    const objs = regionObjects(s, 16);
    const a = anchorRows(s, 16);
    expect(a[0]).toBe(1 * 4 + 2);
    expect(objs[a[0]!]).toBe(0);
    expect(objs[2 * 4 + 1]).toBe(2);
    expect(a[2]).toBe(2 * 4 + 1);
    expect(a[1]).toBe(3 * 4 + 1);
    // Each anchor names its object, and no cell naming the object is nearer to its centre's cell.
    s.objects.forEach((o, k) => {
      const rows = [...objs.keys()].filter((r) => objs[r] === k);
      if (rows.length === 0) return expect(a[k]).toBe(-1);
      expect(objs[a[k]!]).toBe(k);
      const ci = Math.floor(o.geometry.cy! * 4), cj = Math.floor(o.geometry.cx! * 4);
      const d = (r: number) => (Math.floor(r / 4) - ci) ** 2 + ((r % 4) - cj) ** 2;
      for (const r of rows) expect(d(r)).toBeGreaterThanOrEqual(d(a[k]!));
    });
    expect(a[3]).toBe(-1);
  });

  test('general-world samples: each target is the qualifying shape with the most pixels in its cell, every object is named', () => {
    for (let i = 0; i < 40; i++) {
      const s = sampleSplit('general', 'train', i, { size: 64 });
      const t = regionTargets(tok, s, 16);
      const per = s.objects.map((o) => {
        const m = generalShapeMask({ shape: o.attributes.shape as 'circle', cx: o.geometry.cx!, cy: o.geometry.cy!, r: o.geometry.r! }, 64);
        const cells = new Array<number>(16).fill(0);
        for (let y = 0; y < 64; y++) for (let x = 0; x < 64; x++) cells[(y >> 4) * 4 + (x >> 4)] += m.data[y * 64 + x]!;
        return { shape: o.attributes.shape as string, cells, total: cells.reduce((a, b) => a + b, 0) };
      });
      for (let k = 0; k < 16; k++) {
        const qualified = per.filter((o) => o.cells[k]! > 0 && Math.max(o.cells[k]! / o.total, o.cells[k]! / 256) >= 0.2);
        if (qualified.length === 0) expect(t[k], `sample ${i} cell ${k}`).toBe(IGNORE_INDEX);
        else expect(t[k], `sample ${i} cell ${k}`).toBe(tok.tokenId(qualified.reduce((a, b) => (b.cells[k]! > a.cells[k]! ? b : a)).shape));
      }
      for (const o of per) expect([...t]).toContain(tok.tokenId(o.shape));
    }
  });

  test("attribute 'color' names the same cells with the objects' colour words", () => {
    for (let i = 0; i < 20; i++) {
      const s = sampleSplit('general', 'train', i, { size: 64 });
      const shape = regionTargets(tok, s, 16), color = regionTargets(tok, s, 16, 'color');
      for (let k = 0; k < 16; k++) {
        if (shape[k] === IGNORE_INDEX) {
          expect(color[k]).toBe(IGNORE_INDEX);
          continue;
        }
        // The cell's object: the one whose shape word it got (shapes can repeat; then one of them).
        const colours = s.objects.filter((o) => tok.tokenId(o.attributes.shape!) === shape[k]).map((o) => tok.tokenId(o.attributes.color!));
        expect(colours).toContain(color[k]);
      }
    }
    expect(new Set(Array.from({ length: 16 }, (_, i) => regionAttribute(i)))).toEqual(new Set(REGION_WORDS));
  });

  test('regionWords: per row the shape, colour and box tokens of the object regionObjects picks', () => {
    for (let i = 0; i < 30; i++) {
      const s = sampleSplit('general', 'train', i, { size: 64 });
      const objs = regionObjects(s, 16);
      const w = regionWords(tok, s, 16);
      expect(w.length).toBe(16 * 4);
      const shape = regionTargets(tok, s, 16);
      for (let r = 0; r < 16; r++) {
        const row = [...w.subarray(4 * r, 4 * r + 4)];
        const o = s.objects[objs[r]!];
        if (!o) {
          expect(objs[r]).toBe(-1);
          expect(row).toEqual([IGNORE_INDEX, IGNORE_INDEX, IGNORE_INDEX, IGNORE_INDEX]);
          expect(shape[r]).toBe(IGNORE_INDEX);
          continue;
        }
        const box = boxToTokenIds(o.box, tok.codec, tok.locOffset);
        expect(row).toEqual([tok.tokenId(o.attributes.shape!), tok.tokenId(o.attributes.color!), box[0], box[box.length - 1]]);
        expect(shape[r]).toBe(row[0]);
        // The box tokens decode to the object's box (to the codec's cells).
        expect(tok.locCell(row[2]!)).toBeGreaterThanOrEqual(0);
        expect(tok.locCell(row[3]!)).toBeGreaterThanOrEqual(tok.locCell(row[2]!));
      }
      // A single word kind is regionTargets.
      expect([...regionWords(tok, s, 16, ['last'])]).toEqual([...regionTargets(tok, s, 16, 'last')]);
    }
    expectCode(() => regionWords(tok, sampleSplit('general', 'train', 0, { size: 64 }), 16, []), 'INVALID_ARGUMENT');
  });

  test('a grid that is not square → BAD_CONFIG', () => {
    expectCode(() => regionTargets(tok, scene(64, []), 12), 'BAD_CONFIG');
  });
});

const CFG: VlmConfig = {
  vision: { imageSize: 16, patch: 4, d: 16, layers: 1, heads: 2, dFf: 24 },
  decoder: { layers: 2, dModel: 32, heads: 2, kvHeads: 1, dFf: 48, vocab: 360, ropeTheta: 10000, maxPositions: 64, tiedEmbeddings: true },
  imageMean: [0.5, 0.5, 0.5],
  imageStd: [0.5, 0.5, 0.5],
  merge: 2,
};

describe('image-row targets in a VLM batch', () => {
  test('land on rows b·S + r; the CE is a float64 mean over them and the answers', async () => {
    const rt = await testRuntime();
    const vlm = new VLM(rt, CFG);
    const P = vlm.patches;
    expect(P).toBe(4);
    const ss = [0, 1, 2].map((i) => sampleSplit('general', 'train', i, { size: 16, types: ['count', 'color', 'caption'] }));
    const targets = ss.map((_, b) => Int32Array.from({ length: P }, (_, r) => ((b + r) % 2 === 0 ? tok.tokenId(['circle', 'star', 'ring'][b]!) : IGNORE_INDEX)));
    const items = ss.map((s, b) => ({ image: s.image, question: s.question, answer: formatAnswer(s, tok.codec), imageTargets: targets[b] }));
    const mb = vlmBatch(vlm, items);
    const plain = vlmBatch(vlm, items.map(({ imageTargets: _, ...it }) => it));
    for (let b = 0; b < 3; b++) {
      for (let r = 0; r < P; r++) expect(mb.targets[b * mb.seq + r]).toBe(targets[b]![r]);
      expect([...mb.targets.subarray(b * mb.seq + P, (b + 1) * mb.seq)]).toEqual([...plain.targets.subarray(b * mb.seq + P, (b + 1) * mb.seq)]);
    }
    const tr = new VlmTrainer(vlm, { mode: 'full', lr: 1e-3 });
    const logits = await batchLogits(tr, mb);
    const V = CFG.decoder.vocab;
    let sum = 0, n = 0;
    mb.targets.forEach((t, r) => {
      if (t === IGNORE_INDEX) return;
      sum += ceRow(logits.subarray(r * V, (r + 1) * V), [[t, 1]]);
      n++;
    });
    const r = await tr.evaluate(mb);
    tr.destroy();
    expect(Math.abs(r.ce - sum / n)).toBeLessThanOrEqual(1e-4 * Math.max(1, sum / n));
  });

  test('pretraining batches carry region targets unless turned off; bad targets → typed errors', async () => {
    const rt = await testRuntime();
    const vlm = new VLM(rt, CFG);
    const on = pretrainBatch(vlm, 1, 4, ['count', 'locate']);
    const off = pretrainBatch(vlm, 1, 4, ['count', 'locate'], () => false, false);
    const imageRows = (mb: typeof on) => Array.from({ length: 4 }, (_, b) => [...mb.targets.subarray(b * mb.seq, b * mb.seq + 4)]).flat();
    expect(imageRows(on).some((t) => t !== IGNORE_INDEX)).toBe(true);
    expect(imageRows(off).every((t) => t === IGNORE_INDEX)).toBe(true);
    const s = sampleSplit('general', 'train', 0, { size: 16 });
    const it = { image: s.image, question: s.question, answer: formatAnswer(s, tok.codec) };
    expectCode(() => vlmBatch(vlm, [{ ...it, imageTargets: new Int32Array(3) }]), 'SHAPE_MISMATCH');
    expectCode(() => vlmBatch(vlm, [{ ...it, imageTargets: Int32Array.of(0, 1, 360, 2) }]), 'OUT_OF_RANGE');
    expectCode(() => vlmBatch(vlm, [{ ...it, regionWords: new Int32Array(6) }]), 'SHAPE_MISMATCH');
    expectCode(() => vlmBatch(vlm, [{ ...it, regionWords: new Int32Array(8) }, { ...it, regionWords: new Int32Array(12) }]), 'SHAPE_MISMATCH');
    expectCode(() => vlmBatch(vlm, [{ ...it, regionWords: new Int32Array(8) }, { ...it, imageTargets: new Int32Array(4) }]), 'SHAPE_MISMATCH');
    expectCode(() => vlmBatch(vlm, [{ ...it, regionWords: Int32Array.of(0, 1, 2, 3, 4, 5, 6, -1) }]), 'OUT_OF_RANGE');
  });

  test('pretraining batches: the region head gets all four words per row, the decoder rows one of them; location tokens on image rows are not answer tokens', async () => {
    const rt = await testRuntime();
    const vlm = new VLM(rt, CFG);
    const P = vlm.patches, K = REGION_WORDS.length;
    let sawLoc = false, matched = 0;
    for (let t = 1; t <= 3; t++) {
      const mb = pretrainBatch(vlm, t, 6, ['locate', 'color']);
      expect(mb.regions!.length).toBe(6 * P * K);
      for (let b = 0; b < 6; b++) {
        const i = (t - 1) * 6 + b;
        const s = sampleSplit('general', 'train', i, { size: 16, types: ['locate', 'color'] });
        const w = regionWords(tok, s, P);
        expect([...mb.regions!.subarray(b * P * K, (b + 1) * P * K)]).toEqual([...w]);
        const a = REGION_WORDS.indexOf(regionAttribute(i));
        const m = matchSample(i, PRETRAIN_REGION_WORDS.match!) ? regionMatches(tok, s, P) : null;
        if (m) matched++;
        for (let r = 0; r < P; r++) {
          const id = mb.targets[b * mb.seq + r]!;
          expect(id).toBe(m ? m[r] : w[r * K + a]);
          if (id !== IGNORE_INDEX && tok.locCell(id) >= 0) sawLoc = true;
        }
      }
      // Grounding rows are the answers' location tokens only: after the image rows, as many as the boxes need.
      const g = mb.grounding!;
      for (const r of g.rows) expect(r % mb.seq).toBeGreaterThanOrEqual(P);
      expect(g.rows.length).toBe(g.count);
    }
    expect(sawLoc).toBe(true);
    // Some samples' decoder rows answer whether they show the object asked about, others name a word.
    expect(matched).toBeGreaterThan(0);
    expect(matched).toBeLessThan(18);
    // Other choices: decoder rows shape or colour, the head their word (K = 1); or the head two words.
    const two = pretrainBatch(vlm, 1, 6, ['locate', 'color'], () => false, true, { rows: ['shape', 'color'], head: null });
    const pair = pretrainBatch(vlm, 1, 6, ['locate', 'color'], () => false, true, { rows: ['color'], head: ['last', 'shape'] });
    expect(two.regions!.length).toBe(6 * P);
    expect(pair.regions!.length).toBe(6 * P * 2);
    for (let b = 0; b < 6; b++) {
      const s = sampleSplit('general', 'train', b, { size: 16, types: ['locate', 'color'] });
      const attr = regionAttribute(b, ['shape', 'color']);
      expect(['shape', 'color']).toContain(attr);
      expect([...two.regions!.subarray(b * P, (b + 1) * P)]).toEqual([...regionTargets(tok, s, P, attr)]);
      expect([...two.targets.subarray(b * two.seq, b * two.seq + P)]).toEqual([...regionTargets(tok, s, P, attr)]);
      expect([...pair.regions!.subarray(b * P * 2, (b + 1) * P * 2)]).toEqual([...regionWords(tok, s, P, ['last', 'shape'])]);
      expect([...pair.targets.subarray(b * pair.seq, b * pair.seq + P)]).toEqual([...regionTargets(tok, s, P, 'color')]);
    }
    expectCode(() => regionAttribute(0, []), 'INVALID_ARGUMENT');
    // match: 1 puts match targets on every sample whose question names a colour or shape.
    const all = pretrainBatch(vlm, 1, 6, ['locate', 'color'], () => false, true, { rows: ['shape'], head: null, match: 1 });
    for (let b = 0; b < 6; b++) {
      const s = sampleSplit('general', 'train', b, { size: 16, types: ['locate', 'color'] });
      expect([...all.targets.subarray(b * all.seq, b * all.seq + P)]).toEqual([...regionMatches(tok, s, P)!]);
      expect([...all.regions!.subarray(b * P, (b + 1) * P)]).toEqual([...regionTargets(tok, s, P, 'shape')]);
    }
    // countMatch: every `how many …?` sample takes match targets (its anchors), the others keep the draw of match.
    const draw = { rows: ['shape'] as RegionWord[], head: null, match: 0 };
    const counts = pretrainBatch(vlm, 1, 8, ['count', 'color'], () => false, true, { ...draw, countMatch: true });
    const plain = pretrainBatch(vlm, 1, 8, ['count', 'color'], () => false, true, draw);
    let countN = 0;
    for (let b = 0; b < 8; b++) {
      const s = sampleSplit('general', 'train', b, { size: 16, types: ['count', 'color'] });
      const rows = (mb: typeof counts) => [...mb.targets.subarray(b * mb.seq, b * mb.seq + P)];
      expect(rows(plain)).toEqual([...regionTargets(tok, s, P, 'shape')]);
      if (s.type === 'count') {
        countN++;
        expect(rows(counts)).toEqual([...regionMatches(tok, s, P)!]);
      } else expect(rows(counts)).toEqual(rows(plain));
    }
    expect(countN).toBeGreaterThan(0);
    expect(countN).toBeLessThan(8);
  });

  test('questionQuery: the colour and shape words of every general-world question form', () => {
    expect(questionQuery('what color is the star?')).toEqual({ shape: 'star' });
    expect(questionQuery('how many crosses are there?')).toEqual({ shape: 'cross' });
    expect(questionQuery('is there a red circle?')).toEqual({ color: 'red', shape: 'circle' });
    expect(questionQuery('where is the white ring?')).toEqual({ color: 'white', shape: 'ring' });
    expect(questionQuery('what shape is this?')).toBeNull();
    expect(questionQuery('describe the image.')).toBeNull();
  });

  test('regionMatches: yes exactly on the rows whose object has what the question names, checked against the answers', () => {
    const yes = tok.tokenId('yes'), no = tok.tokenId('no');
    const seen = new Set<string>();
    let counted = 0, countN = 0;
    for (let i = 0; i < 240; i++) {
      const s = sampleSplit('general', 'val', i, { size: 64 });
      const m = regionMatches(tok, s, 16);
      if (s.type === 'shape' || s.type === 'caption') {
        expect(m).toBeNull();
        continue;
      }
      seen.add(s.type);
      const objs = regionObjects(s, 16);
      const q = questionQuery(s.question)!;
      const anchors = anchorRows(s, 16, objs);
      const named = new Set<number>();
      let yesRows = 0;
      for (let r = 0; r < 16; r++) {
        const o = s.objects[objs[r]!];
        const hit = !!o && (q.color === undefined || o.attributes.color === q.color) && (q.shape === undefined || o.attributes.shape === q.shape);
        // A count question: yes on each such object's anchor row only.
        const want = hit && (s.type !== 'count' || anchors[objs[r]!] === r);
        expect(m![r]).toBe(want ? yes : no);
        if (hit) named.add(objs[r]!);
        if (want) yesRows++;
      }
      // Rows only say yes for objects the answer is about: none when there is none, never more objects than the count.
      if (s.type === 'exists' && s.answer === 'no') expect(named.size).toBe(0);
      if (s.type === 'count') {
        expect(named.size).toBeLessThanOrEqual(NUMBER_WORDS.indexOf(s.answer as (typeof NUMBER_WORDS)[number]));
        expect(yesRows).toBe(named.size);
        counted += yesRows === NUMBER_WORDS.indexOf(s.answer as (typeof NUMBER_WORDS)[number]) ? 1 : 0;
        countN++;
      }
      if (s.type === 'color') for (const k of named) expect(s.objects[k]!.attributes.color).toBe(s.answer);
      if (s.type === 'locate') for (const k of named) expect(s.objects[k]!.label).toBe(s.answer.split(' ').slice(0, 2).join(' '));
    }
    expect([...seen].sort()).toEqual(['color', 'count', 'exists', 'locate']);
    // Nearly every count answer is the number of yes rows (an object no row names is the exception).
    expect(counted / countN).toBeGreaterThan(0.9);
    expect(matchSample(3, 0)).toBe(false);
    expect(matchSample(3, 1)).toBe(true);
    expectCode(() => matchSample(0, 1.5), 'INVALID_ARGUMENT');
    expectCode(() => matchSample(0, Number.NaN), 'INVALID_ARGUMENT');
  });
});
