// The synthetic worlds: determinism, splits, every question form with answers checked
// against the scene and the rendered pixels, answer formatting, image helpers.
import { describe, expect, test } from 'vitest';
import { FLORENCE2_CODEC, PALIGEMMA_CODEC, type LocCodec } from '../sdk/model/box_codec.js';
import { formatAnswer, parseAnswer } from '../sdk/data/answer.js';
import { COLORS, COLOR_NAMES, colorDistance, generalCaption, generalShapeMask, GENERAL_TYPES, SHAPES, type Color, type Shape } from '../sdk/data/general.js';
import { createImage, maskBounds, resizeImage, toPixelValues, type RGBAImage } from '../sdk/data/image.js';
import { DEFECTS, inspectionCaption, INSPECTION_TYPES, renderInspection, SEVERITIES } from '../sdk/data/inspection.js';
import { drawSurface, type Surface } from '../sdk/data/textures.js';
import { numberWord, plural, textWords } from '../sdk/data/text.js';
import type { LabeledBox, Sample } from '../sdk/data/types.js';
import { TINY_VLM_CODEC } from '../sdk/data/vocab.js';
import { sample, sampleSplit, seedSplit, SPLIT_SIZE, splitSeed, worldWords } from '../sdk/data/worlds.js';
import { expectCode } from './helpers/errors.js';

function samples(world: 'general' | 'inspection', n: number, types?: readonly string[], from = 0): Sample[] {
  return Array.from({ length: n }, (_, i) => sampleSplit(world, 'train', from + i, types ? { types } : {}));
}

function sameBox(a: LabeledBox, b: LabeledBox): void {
  expect([a.label, a.x0, a.y0, a.x1, a.y1]).toEqual([b.label, b.x0, b.y0, b.x1, b.y1]);
}

describe('determinism', () => {
  for (const world of ['general', 'inspection'] as const) {
    test(`${world}: same seed → identical bytes and text; different seeds differ`, () => {
      const seen = new Set<string>();
      for (const seed of [0, 1, 2, 12345, 2 ** 31 + 7, 0xffffffff]) {
        const a = sample(world, seed), b = sample(world, seed);
        expect(Buffer.from(a.image.data).equals(Buffer.from(b.image.data))).toBe(true);
        expect([a.question, a.answer, a.type]).toEqual([b.question, b.answer, b.type]);
        expect(a.boxes).toEqual(b.boxes);
        expect(a.objects).toEqual(b.objects);
        seen.add(Buffer.from(a.image.data).toString('base64'));
      }
      expect(seen.size).toBe(6);
    });
  }

  test('the world name is part of the seed', () => {
    const g = sample('general', 5), i = sample('inspection', 5);
    expect(g.world).toBe('general');
    expect(i.world).toBe('inspection');
    expect(Buffer.from(g.image.data).equals(Buffer.from(i.image.data))).toBe(false);
  });

  test('bad arguments', () => {
    expectCode(() => sample('kitchen' as 'general', 1), 'INVALID_ARGUMENT');
    expectCode(() => sample('general', -1), 'INVALID_ARGUMENT');
    expectCode(() => sample('general', 1.5), 'INVALID_ARGUMENT');
    expectCode(() => sample('general', 2 ** 32), 'INVALID_ARGUMENT');
    expectCode(() => sample('general', 1, { size: 8 }), 'INVALID_ARGUMENT');
    expectCode(() => sample('general', 1, { types: [] }), 'INVALID_ARGUMENT');
    expectCode(() => sample('general', 1, { types: ['surface'] }), 'INVALID_ARGUMENT');
  });
});

describe('splits', () => {
  test('seed ranges are disjoint and invertible', () => {
    expect(splitSeed('train', 0)).toBe(0);
    expect(splitSeed('train', SPLIT_SIZE - 1)).toBeLessThan(splitSeed('val', 0));
    expect(splitSeed('val', SPLIT_SIZE - 1)).toBeLessThan(splitSeed('test', 0));
    expect(splitSeed('test', SPLIT_SIZE - 1)).toBeLessThanOrEqual(0xffffffff);
    for (const split of ['train', 'val', 'test'] as const) {
      for (const i of [0, 1, 1000, SPLIT_SIZE - 1]) expect(seedSplit(splitSeed(split, i))).toBe(split);
    }
    expectCode(() => splitSeed('train', SPLIT_SIZE), 'OUT_OF_RANGE');
    expectCode(() => splitSeed('val', -1), 'OUT_OF_RANGE');
    expectCode(() => splitSeed('test', 0.5), 'OUT_OF_RANGE');
    expectCode(() => splitSeed('holdout' as 'val', 0), 'INVALID_ARGUMENT');
  });

  test('no image appears in two splits', () => {
    for (const world of ['general', 'inspection'] as const) {
      const owner = new Map<string, string>();
      for (const split of ['train', 'val', 'test'] as const) {
        for (let i = 0; i < 150; i++) {
          const s = sampleSplit(world, split, i);
          expect(s.seed).toBe(splitSeed(split, i));
          const key = Buffer.from(s.image.data).toString('base64');
          const prev = owner.get(key);
          expect(prev === undefined || prev === split, `${world} ${split} ${i} repeats an image of ${prev}`).toBe(true);
          owner.set(key, split);
        }
      }
    }
  });
});

/** The nearest colour name of an RGB value. */
function nearestColor(rgb: readonly number[]): Color {
  let best: Color = 'red', bd = Infinity;
  for (const c of COLOR_NAMES) {
    const d = colorDistance(COLORS[c], rgb as [number, number, number]);
    if (d < bd) [best, bd] = [c, d];
  }
  return best;
}

describe('general world', () => {
  const all = samples('general', 900);

  test('easy scenes: a plain grey background, large and extra-large shapes, a colour question\'s shape alone', () => {
    const easy = Array.from({ length: 300 }, (_, i) => sample('general', 5000 + i, { easy: true }));
    expect(easy.every((s) => s.scene.background === 'gray')).toBe(true);
    const objs = easy.flatMap((s) => s.objects);
    const share = (ss: Sample[], size: string) => ss.flatMap((s) => s.objects).filter((o) => o.attributes.size === size).length / ss.flatMap((s) => s.objects).length;
    expect(share(easy, 'xlarge')).toBeGreaterThan(0.2);
    expect(share(easy, 'large')).toBeGreaterThan(0.2);
    // One-shape scenes always get a large or extra-large one (crowded ones fall back to smaller shapes).
    const alone = easy.filter((s) => s.type === 'color' || s.type === 'shape');
    expect(alone.length).toBeGreaterThan(50);
    expect(alone.every((s) => ['large', 'xlarge'].includes(s.objects[0]!.attributes.size as string))).toBe(true);
    expect(objs.length).toBeGreaterThan(300);
    expect(new Set(easy.map((s) => s.type)).size).toBe(GENERAL_TYPES.length);
    for (const s of easy) {
      if (s.type === 'color') expect(s.objects.length).toBe(1);
      if (s.type === 'color') expect(s.answer).toBe(s.objects[0]!.attributes.color);
      if (s.type === 'shape') expect(s.answer).toBe(s.objects[0]!.attributes.shape);
    }
    // The full world: other backgrounds, small shapes, never extra-large ones.
    expect(all.some((s) => s.scene.background === 'gradient')).toBe(true);
    expect(share(all, 'small')).toBeGreaterThan(0.1);
    expect(share(all, 'xlarge')).toBe(0);
  });

  test('every question form appears with the right answer', () => {
    const byType = new Map<string, Sample[]>();
    for (const s of all) byType.set(s.type, [...(byType.get(s.type) ?? []), s]);
    expect([...byType.keys()].sort()).toEqual([...GENERAL_TYPES].sort());
    for (const s of all) {
      const shapes = s.objects.map((o) => o.attributes.shape);
      expect(s.objects.length).toBeGreaterThanOrEqual(1);
      expect(s.objects.length).toBeLessThanOrEqual(4);
      switch (s.type) {
        case 'color': {
          const shape = /^what color is the (\w+)\?$/.exec(s.question)![1]!;
          const hits = s.objects.filter((o) => o.attributes.shape === shape);
          expect(hits.length).toBe(1);
          expect(s.answer).toBe(hits[0]!.attributes.color);
          break;
        }
        case 'shape':
          expect(s.question).toBe('what shape is this?');
          expect(s.objects.length).toBe(1);
          expect(s.answer).toBe(shapes[0]);
          break;
        case 'count': {
          const word = /^how many (\w+) are there\?$/.exec(s.question)![1]!;
          const shape = SHAPES.find((x) => plural(x) === word);
          expect(shape).toBeDefined();
          expect(s.answer).toBe(numberWord(shapes.filter((x) => x === shape).length));
          break;
        }
        case 'exists': {
          const [, color, shape] = /^is there an? (\w+) (\w+)\?$/.exec(s.question)!;
          const has = s.objects.some((o) => o.attributes.color === color && o.attributes.shape === shape);
          expect(s.answer).toBe(has ? 'yes' : 'no');
          break;
        }
        case 'locate': {
          const label = /^where is the (\w+ \w+)\?$/.exec(s.question)![1]!;
          const hits = s.objects.filter((o) => o.label === label);
          expect(hits.length).toBe(1);
          expect(s.answer).toBe(label);
          expect(s.boxes.length).toBe(1);
          sameBox(s.boxes[0]!, hits[0]!.box);
          break;
        }
        case 'caption':
          expect(s.question).toBe('describe the image.');
          expect(s.answer).toBe(generalCaption(s.objects, s.scene.background!));
          expect(s.answer).toMatch(/ on an? (white|gray|black|gradient) background$/);
          break;
      }
      if (s.type !== 'locate') expect(s.boxes).toEqual([]);
    }
  });

  test('yes/no answers are balanced', () => {
    const answers = samples('general', 400, ['exists']).map((s) => s.answer);
    const yes = answers.filter((a) => a === 'yes').length / answers.length;
    expect(yes).toBeGreaterThan(0.4);
    expect(yes).toBeLessThan(0.6);
  });

  test('a caption counts its shapes', () => {
    const s = samples('general', 200, ['caption']).find((x) => x.objects.length === 4 && new Set(x.objects.map((o) => o.label)).size < 4);
    expect(s).toBeDefined();
    expect(s!.answer).toMatch(/\b(two|three|four) /);
  });

  test('boxes are the tight bounds of each shape\'s pixels, shapes keep their colour and never overlap', () => {
    for (const s of all.slice(0, 300)) {
      const size = s.image.width;
      const masks = s.objects.map((o) => generalShapeMask({ shape: o.attributes.shape as Shape, cx: o.geometry.cx!, cy: o.geometry.cy!, r: o.geometry.r! }, size));
      s.objects.forEach((o, k) => {
        const b = maskBounds(masks[k]!)!;
        sameBox(o.box, { label: o.label, x0: b.x0 / size, y0: b.y0 / size, x1: b.x1 / size, y1: b.y1 / size });
        let inside = 0, outside = 0, overlap = 0;
        const wrong: string[] = [];
        for (let y = 0; y < size; y++) {
          for (let x = 0; x < size; x++) {
            const c = masks[k]!.data[y * size + x]!;
            if (c >= 0.5) {
              // Every covered pixel lies in the box, and no other shape covers it.
              if (!(x >= b.x0 && x < b.x1 && y >= b.y0 && y < b.y1)) outside++;
              masks.forEach((m, j) => j !== k && m.data[y * size + x] !== 0 && overlap++);
            }
            if (c === 1) {
              // A fully covered pixel has the shape's colour, unambiguously.
              const i = (y * size + x) * 4;
              const name = nearestColor([s.image.data[i]!, s.image.data[i + 1]!, s.image.data[i + 2]!]);
              if (name !== o.attributes.color) wrong.push(name);
              inside++;
            }
          }
        }
        expect([outside, overlap, wrong]).toEqual([0, 0, []]);
        expect(inside).toBeGreaterThan(4);
      });
    }
  });

  test('the scene does not depend on the image size', () => {
    for (let i = 0; i < 40; i++) {
      const a = sampleSplit('general', 'val', i, { size: 64 }), b = sampleSplit('general', 'val', i, { size: 128 });
      expect([b.question, b.answer]).toEqual([a.question, a.answer]);
      expect(b.image.width).toBe(128);
      expect(b.image.height).toBe(128);
      a.objects.forEach((o, k) => {
        for (const key of ['x0', 'y0', 'x1', 'y1'] as const) expect(Math.abs(o.box[key] - b.objects[k]!.box[key])).toBeLessThanOrEqual(2 / 64);
      });
    }
  });

  test('image sizes', () => {
    for (const size of [16, 32, 48, 64, 100]) {
      const s = sample('general', 3, { size });
      expect([s.image.width, s.image.height, s.image.data.length]).toEqual([size, size, size * size * 4]);
      for (let i = 3; i < s.image.data.length; i += 4) expect(s.image.data[i]).toBe(255);
    }
  });
});

describe('inspection world', () => {
  const all = samples('inspection', 700);

  test('every question form appears with the right answer', () => {
    expect([...new Set(all.map((s) => s.type))].sort()).toEqual([...INSPECTION_TYPES].sort());
    for (const s of all) {
      const kinds = s.objects.map((o) => o.attributes.kind);
      expect(s.objects.length).toBeLessThanOrEqual(3);
      const of = (kind: string) => s.objects.filter((o) => o.attributes.kind === kind);
      switch (s.type) {
        case 'exists':
          expect(s.question).toBe('is there a defect?');
          expect(s.answer).toBe(s.objects.length ? 'yes' : 'no');
          break;
        case 'kind':
          expect(s.question).toBe('what defect is this?');
          expect(kinds.length).toBe(1);
          expect(s.answer).toBe(kinds[0]);
          break;
        case 'locate': {
          const kind = /^where is the (.+)\?$/.exec(s.question)![1]!;
          expect(of(kind).length).toBe(1);
          expect(s.answer).toBe(kind);
          expect(s.boxes.length).toBe(1);
          sameBox(s.boxes[0]!, of(kind)[0]!.box);
          break;
        }
        case 'count': {
          const word = /^how many (.+) are there\?$/.exec(s.question)![1]!;
          const kind = DEFECTS.find((d) => plural(d) === word)!;
          expect(kind).toBeDefined();
          expect(s.answer).toBe(numberWord(of(kind).length));
          break;
        }
        case 'surface':
          expect(s.question).toBe('what is the surface?');
          expect(s.answer).toBe(s.scene.surface);
          break;
        case 'severity': {
          const kind = /^how severe is the (.+)\?$/.exec(s.question)![1]!;
          expect(of(kind).length).toBe(1);
          expect(s.answer).toBe(of(kind)[0]!.attributes.severity);
          expect(SEVERITIES).toContain(s.answer);
          break;
        }
        case 'caption':
          expect(s.question).toBe('describe the image.');
          expect(s.answer).toBe(inspectionCaption(s.objects, s.scene.surface!));
          if (s.objects.length === 0) expect(s.answer).toBe(`no defects on ${s.scene.surface}`);
          break;
      }
      if (s.type !== 'locate') expect(s.boxes).toEqual([]);
    }
  });

  test('yes/no answers are balanced and every surface, kind and severity occurs', () => {
    const answers = samples('inspection', 300, ['exists']).map((s) => s.answer);
    const yes = answers.filter((a) => a === 'yes').length / answers.length;
    expect(yes).toBeGreaterThan(0.4);
    expect(yes).toBeLessThan(0.6);
    expect(new Set(all.map((s) => s.scene.surface)).size).toBe(5);
    const pairs = new Set(all.flatMap((s) => s.objects.map((o) => `${o.attributes.kind}/${o.attributes.severity}`)));
    expect(pairs.size).toBe(DEFECTS.length * SEVERITIES.length);
  });

  test('boxes are the tight bounds of each defect\'s pixels, and defects are visible', () => {
    for (let i = 0; i < 250; i++) {
      const { sample: s, masks, surfaceSeed } = renderInspection(splitSeed('train', i), 64, INSPECTION_TYPES);
      const again = sampleSplit('inspection', 'train', i);
      expect(Buffer.from(s.image.data).equals(Buffer.from(again.image.data))).toBe(true);
      expect({ ...s, image: null }).toEqual({ ...again, image: null });
      const plain = createImage(64, 64);
      drawSurface(plain, s.scene.surface as Surface, surfaceSeed);
      s.objects.forEach((o, k) => {
        const b = maskBounds(masks[k]!)!;
        sameBox(o.box, { label: o.label, x0: b.x0 / 64, y0: b.y0 / 64, x1: b.x1 / 64, y1: b.y1 / 64 });
        let diff = 0, n = 0, touching = 0;
        for (let y = b.y0; y < b.y1; y++) {
          for (let x = b.x0; x < b.x1; x++) {
            if (masks[k]!.data[y * 64 + x]! < 0.5) continue;
            const q = (y * 64 + x) * 4;
            for (let c = 0; c < 3; c++) diff += Math.abs(s.image.data[q + c]! - plain.data[q + c]!);
            n += 3;
            // Defects never touch each other.
            masks.forEach((m, j) => j !== k && m.data[y * 64 + x] !== 0 && touching++);
          }
        }
        expect(touching).toBe(0);
        expect(n).toBeGreaterThan(0);
        expect(diff / n, `${o.label} in sample ${i}`).toBeGreaterThan(15);
      });
      if (s.objects.length === 0) expect(Buffer.from(s.image.data).equals(Buffer.from(plain.data))).toBe(true);
    }
  });

  test('severity grows with size', () => {
    const sizes = new Map<string, number[]>();
    for (const s of samples('inspection', 600, ['kind', 'severity'], 10_000)) {
      for (const o of s.objects) {
        const key = `${o.attributes.kind}/${o.attributes.severity}`;
        sizes.set(key, [...(sizes.get(key) ?? []), Math.max(o.box.x1 - o.box.x0, o.box.y1 - o.box.y0)]);
      }
    }
    const mean = (k: string) => sizes.get(k)!.reduce((a, b) => a + b, 0) / sizes.get(k)!.length;
    for (const kind of DEFECTS) {
      expect(mean(`${kind}/minor`)).toBeLessThan(mean(`${kind}/moderate`));
      expect(mean(`${kind}/moderate`)).toBeLessThan(mean(`${kind}/severe`));
    }
  });
});

describe('vocabulary', () => {
  const punct = new Set(['?', '.', ',', ';']);
  const isLoc = (w: string) => /^<loc_\d+>$/.test(w);

  test('each world writes only its own words; inspection words never appear in the general world', () => {
    const general = new Set(worldWords('general')), inspection = new Set(worldWords('inspection'));
    const inspectionOnly = [...inspection].filter((w) => !general.has(w));
    expect(inspectionOnly).toEqual(expect.arrayContaining(['defect', 'crack', 'rust', 'hole', 'dent', 'scratch', 'severe', 'concrete', 'wood', 'leaf', 'metal']));
    for (const [world, words] of [['general', general], ['inspection', inspection]] as const) {
      const unknown = new Set<string>(), leaked = new Set<string>();
      for (const s of samples(world, 1000, undefined, 50_000)) {
        for (const w of [...textWords(s.question), ...textWords(formatAnswer(s, TINY_VLM_CODEC))]) {
          if (!(words.has(w) || punct.has(w) || isLoc(w))) unknown.add(w);
          if (world === 'general' && inspectionOnly.includes(w)) leaked.add(w);
        }
      }
      expect([world, [...unknown], [...leaked]]).toEqual([world, [], []]);
    }
  });
});

describe('answers with boxes', () => {
  const codecs: LocCodec[] = [TINY_VLM_CODEC, { kind: 'patch2d', grid: 32 }, PALIGEMMA_CODEC, FLORENCE2_CODEC];

  test('the text form is `label <loc_a> <loc_b>`', () => {
    const s = samples('general', 50, ['locate'])[0]!;
    const text = formatAnswer(s, TINY_VLM_CODEC);
    expect(text).toMatch(/^\w+ \w+ <loc_\d+> <loc_\d+>$/);
    const [a, b] = [...text.matchAll(/<loc_(\d+)>/g)].map((m) => Number(m[1]));
    const { x0, y0, x1, y1 } = s.boxes[0]!;
    // Top-left corner's patch, then bottom-right corner's patch, k = row·16 + col.
    expect(a).toBe(Math.floor(y0 * 16) * 16 + Math.floor(x0 * 16));
    expect(b).toBe(Math.ceil(y1 * 16 - 1) * 16 + Math.ceil(x1 * 16 - 1));
    expect(formatAnswer(samples('general', 1, ['color'])[0]!, TINY_VLM_CODEC)).toMatch(/^\w+$/);
  });

  let located: Sample[] = [];
  const getLocated = () => (located.length ? located : (located = [...samples('general', 300, ['locate']), ...samples('inspection', 300, ['locate'])]));
  for (const codec of codecs) {
    test(`format → parse round trip (${codec.kind} ${codec.kind === 'patch2d' ? codec.grid : codec.bins})`, () => {
      const n = codec.kind === 'patch2d' ? codec.grid : codec.bins;
      const cell = 1 / n;
      for (const s of getLocated()) {
        const parsed = parseAnswer(formatAnswer(s, codec), codec);
        expect(parsed.text).toBe(s.answer);
        expect(parsed.boxes.length).toBe(1);
        const [p, b] = [parsed.boxes[0]!, s.boxes[0]!];
        expect(p.label).toBe(b.label);
        if (codec.kind === 'patch2d') {
          // Patch centres: within half a cell, or one cell when both corners share a row or column.
          const degenerate = Math.floor(b.x0 * n) === Math.ceil(b.x1 * n - 1) || Math.floor(b.y0 * n) === Math.ceil(b.y1 * n - 1);
          const tol = (degenerate ? 1 : 0.5) * cell + 1e-9;
          for (const k of ['x0', 'y0', 'x1', 'y1'] as const) expect(Math.abs(p[k] - b[k]), `${k} of ${JSON.stringify(b)}`).toBeLessThanOrEqual(tol);
        } else {
          for (const k of ['x0', 'y0', 'x1', 'y1'] as const) expect(Math.abs(p[k] - b[k])).toBeLessThanOrEqual(codec.quantize === 'round' ? 0.5 / (n - 1) + 1e-9 : cell + 1e-9);
        }
      }
    });
  }

  test('several boxes are joined with ` ; `', () => {
    const boxes = [
      { label: 'crack', x0: 0.1, y0: 0.2, x1: 0.4, y1: 0.5 },
      { label: 'rust spot', x0: 0.6, y0: 0.6, x1: 0.9, y1: 0.95 },
    ];
    const text = formatAnswer({ answer: 'crack', boxes }, TINY_VLM_CODEC);
    expect(text).toBe('crack <loc_49> <loc_118> ; rust spot <loc_153> <loc_254>');
    const parsed = parseAnswer(text, TINY_VLM_CODEC);
    expect(parsed.text).toBe('crack ; rust spot');
    expect(parsed.boxes.map((b) => b.label)).toEqual(['crack', 'rust spot']);
    // Glued tokens parse too.
    expect(parseAnswer('crack<loc_49><loc_118>', TINY_VLM_CODEC).boxes[0]!.label).toBe('crack');
  });

  test('plain answers and malformed ones', () => {
    expect(parseAnswer('yes', TINY_VLM_CODEC)).toEqual({ text: 'yes', boxes: [] });
    expectCode(() => parseAnswer('crack <loc_3>', TINY_VLM_CODEC), 'INVALID_ARGUMENT');
    expectCode(() => parseAnswer('crack <loc_3> <loc_999>', TINY_VLM_CODEC), 'INVALID_ARGUMENT');
    expectCode(() => parseAnswer('crack <loc_3> <loc_4> here', TINY_VLM_CODEC), 'INVALID_ARGUMENT');
    const lenient = parseAnswer('crack <loc_3> ; dent <loc_17> <loc_34>', TINY_VLM_CODEC, { strict: false });
    expect(lenient.boxes.map((b) => b.label)).toEqual(['dent']);
  });
});

describe('images', () => {
  function img(w: number, h: number, f: (x: number, y: number) => [number, number, number]): RGBAImage {
    const out = createImage(w, h);
    for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) out.data.set([...f(x, y), 255], (y * w + x) * 4);
    return out;
  }

  test('toPixelValues is channel-first and normalised per channel', () => {
    const im = img(2, 2, (x, y) => [255 * x, 255 * y, 51]);
    const v = toPixelValues(im, 2, [0.5, 0.5, 0.2], [0.5, 0.25, 0.1]);
    expect(v.length).toBe(12);
    const expected = [-1, 1, -1, 1, -2, -2, 2, 2, 0, 0, 0, 0];
    v.forEach((x, i) => expect(x).toBeCloseTo(expected[i]!, 5));
    // Default mean/std 0.5 maps [0, 255] to [-1, 1].
    const d = toPixelValues(im, 2);
    expect(Math.min(...d)).toBeCloseTo(-1, 6);
    expect(Math.max(...d)).toBeCloseTo(1, 6);
  });

  test('resizing: bilinear, nearest, area', () => {
    const im = img(2, 1, (x) => [x * 200, 0, 0]);
    const up = toPixelValues(im, 4, [0, 0, 0], [1 / 255, 1 / 255, 1 / 255], 'bilinear');
    // 4×4 from 2 wide: x centres map to 0.25·… → [0, 50, 150, 200] per row (align_corners = false, clamped).
    expect(Array.from(up.subarray(0, 4)).map((x) => Math.round(x))).toEqual([0, 50, 150, 200]);
    const near = toPixelValues(im, 4, [0, 0, 0], [1 / 255, 1 / 255, 1 / 255], 'nearest');
    expect(Array.from(near.subarray(0, 4))).toEqual([0, 0, 200, 200]);
    const big = img(4, 4, (x, y) => [x * 10 + y, 0, 0]);
    const down = resizeImage(big, 2, 2);
    // Each target pixel averages a 2×2 block: 5.5, 25.5, 7.5, 27.5 (rounded half up).
    expect([0, 1, 2, 3].map((i) => down.data[i * 4])).toEqual([6, 26, 8, 28]);
    expect(toPixelValues(sample('general', 9, { size: 128 }).image, 64).length).toBe(3 * 64 * 64);
  });

  test('bad images', () => {
    expectCode(() => toPixelValues({ width: 0, height: 4, data: new Uint8ClampedArray(0) }, 4), 'INVALID_ARGUMENT');
    expectCode(() => toPixelValues({ width: 2, height: 2, data: new Uint8ClampedArray(3) }, 4), 'SHAPE_MISMATCH');
    expectCode(() => toPixelValues(createImage(2, 2), 0), 'INVALID_ARGUMENT');
    expectCode(() => toPixelValues(createImage(2, 2), 2, [0.5, 0.5, 0.5], [0.5, 0, 0.5]), 'INVALID_ARGUMENT');
  });
});
