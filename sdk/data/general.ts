// The general world (pretraining domain, DESIGN §2.2): 1-4 shapes of several colours and
// sizes on a plain or graded background, never overlapping, each contrasting with the
// background. A sample first picks its question form, then plans a scene that makes the
// answer unambiguous (the shape asked about appears once, yes/no answers are balanced),
// then places and renders it, and reads boxes off the rendered coverage masks.
import { createImage, createMask, fill, linearGradient, maskBounds, paintMask, shapeMask, SHAPE_KINDS, type RGB, type RGBAImage, type ShapeKind, len2 } from './image.js';
import { Rng } from './rng.js';
import { counted, listPhrase, numberWord, plural } from './text.js';
import type { LabeledBox, Sample, SceneObject } from './types.js';

export const SHAPES = SHAPE_KINDS;
export type Shape = ShapeKind;

export const COLORS = {
  red: [215, 35, 35],
  green: [35, 165, 55],
  blue: [35, 75, 215],
  yellow: [245, 215, 30],
  orange: [245, 130, 20],
  purple: [135, 50, 180],
  black: [20, 20, 20],
  white: [245, 245, 245],
} as const satisfies Record<string, RGB>;
export type Color = keyof typeof COLORS;
export const COLOR_NAMES = Object.keys(COLORS) as Color[];

/** Shape radius ranges as a fraction of the image side. */
export const SIZES = { small: [0.07, 0.095], medium: [0.105, 0.14], large: [0.15, 0.2], xlarge: [0.22, 0.3] } as const;
export type Size = keyof typeof SIZES;
/** The sizes of the world; `xlarge` only appears in easy scenes. */
const SIZE_NAMES: readonly Size[] = ['small', 'medium', 'large'];

export const PLAIN_BACKGROUNDS = { white: [248, 248, 248], gray: [128, 128, 128], black: [12, 12, 12] } as const satisfies Record<string, RGB>;
export const BACKGROUND_NAMES = [...Object.keys(PLAIN_BACKGROUNDS), 'gradient'] as const;

export const GENERAL_TYPES = ['color', 'shape', 'count', 'exists', 'locate', 'caption'] as const;
export type GeneralType = (typeof GENERAL_TYPES)[number];

/** Every word the general world can write (questions and answers), for the tokenizer. */
export function generalWords(): string[] {
  const fixed = 'what color is the shape this how many are there where describe image a an and on background yes no'.split(' ');
  const nouns = SHAPES.flatMap((s) => [s, plural(s)]);
  return [...fixed, ...nouns, ...COLOR_NAMES, ...BACKGROUND_NAMES, 'zero', 'one', 'two', 'three', 'four'];
}

interface Spec {
  shape: Shape;
  color: Color;
  size: Size;
}

interface Placed extends Spec {
  cx: number; // normalised centre
  cy: number;
  r: number; // normalised size
  rgb: RGB;
}

interface Background {
  name: (typeof BACKGROUND_NAMES)[number];
  /** The colours the background spans (endpoints and midpoints for a gradient). */
  tones: RGB[];
  paint(img: RGBAImage): void;
}

/** A perceptual-ish RGB distance ("redmean"). */
export function colorDistance(a: RGB, b: RGB): number {
  const rm = (a[0] + b[0]) / 2;
  const dr = a[0] - b[0], dg = a[1] - b[1], db = a[2] - b[2];
  return Math.sqrt((2 + rm / 256) * dr * dr + 4 * dg * dg + (2 + (255 - rm) / 256) * db * db);
}

/** Minimum colorDistance between a shape colour and every tone of the background. */
export const MIN_CONTRAST = 150;

function jitter(rng: Rng, c: RGB, amount: number): RGB {
  return [c[0] + rng.int(-amount, amount), c[1] + rng.int(-amount, amount), c[2] + rng.int(-amount, amount)];
}

function makeBackground(rng: Rng, easy = false): Background {
  if (easy || rng.chance(0.5)) {
    const name = easy ? 'gray' : rng.pick(['white', 'gray', 'black'] as const);
    const c = jitter(rng, PLAIN_BACKGROUNDS[name], name === 'gray' ? 8 : 5);
    return { name, tones: [c], paint: (img) => fill(img, c) };
  }
  // Two muted tones at least 60 grey levels apart.
  const tone = (L: number): RGB => {
    const t = jitter(rng, [L, L, L], 28);
    return [Math.min(255, Math.max(0, t[0])), Math.min(255, Math.max(0, t[1])), Math.min(255, Math.max(0, t[2]))];
  };
  const L0 = rng.float(25, 230);
  const L1 = L0 > 127 ? rng.float(Math.max(20, L0 - 190), L0 - 60) : rng.float(L0 + 60, Math.min(235, L0 + 190));
  const c0 = tone(L0), c1 = tone(L1);
  const angle = rng.float(0, 2 * Math.PI);
  const tones: RGB[] = [0, 0.25, 0.5, 0.75, 1].map((t) => [c0[0] + (c1[0] - c0[0]) * t, c0[1] + (c1[1] - c0[1]) * t, c0[2] + (c1[2] - c0[2]) * t]);
  return { name: 'gradient', tones, paint: (img) => linearGradient(img, c0, c1, angle) };
}

function contrasting(bg: Background): Color[] {
  return COLOR_NAMES.filter((c) => bg.tones.every((t) => colorDistance(COLORS[c], t) >= MIN_CONTRAST));
}

interface Plan {
  specs: Spec[];
  question: string;
  /** Called on the placed scene: the answer text and the boxes it points at. */
  answer(objects: SceneObject[]): { answer: string; boxes: LabeledBox[] };
}

function randomSpecOf(rng: Rng, colors: readonly Color[], not?: (s: Spec) => boolean, sizes: readonly Size[] = SIZE_NAMES): Spec {
  for (;;) {
    const s = { shape: rng.pick(SHAPES), color: rng.pick(colors), size: rng.pick(sizes) };
    if (!not || !not(s)) return s;
  }
}

/** The caption: groups of (shape, colour) in SHAPES then COLORS order, then the background. */
export function generalCaption(objects: readonly SceneObject[], background: string): string {
  const groups: string[] = [];
  for (const shape of SHAPES) {
    for (const color of COLOR_NAMES) {
      const n = objects.filter((o) => o.attributes.shape === shape && o.attributes.color === color).length;
      if (n > 0) groups.push(counted(n, `${color} ${shape}`));
    }
  }
  return `${listPhrase(groups)} on ${background === 'gradient' ? 'a gradient' : `a ${background}`} background`;
}

const EASY_SIZES: readonly Size[] = ['large', 'xlarge'];

function plan(type: GeneralType, rng: Rng, colors: readonly Color[], easy: boolean): Plan {
  const sizes = easy ? EASY_SIZES : SIZE_NAMES;
  const randomSpec = (r: Rng, c: readonly Color[], not?: (s: Spec) => boolean) => randomSpecOf(r, c, not, sizes);
  const others = (n: number, not: (s: Spec) => boolean) => Array.from({ length: n }, () => randomSpec(rng, colors, not));
  switch (type) {
    case 'color': {
      const t = randomSpec(rng, colors);
      return {
        // Easy scenes: the shape asked about is alone.
        specs: [t, ...others(easy ? 0 : rng.int(0, 3), (s) => s.shape === t.shape)],
        question: `what color is the ${t.shape}?`,
        answer: () => ({ answer: t.color, boxes: [] }),
      };
    }
    case 'shape': {
      const t = randomSpec(rng, colors);
      return { specs: [t], question: 'what shape is this?', answer: () => ({ answer: t.shape, boxes: [] }) };
    }
    case 'count': {
      const shape = rng.pick(SHAPES);
      const k = [0, 1, 2, 3, 4][rng.weighted([1, 2, 2, 2, 2])]!;
      const m = k === 0 ? rng.int(1, 3) : rng.int(0, 4 - k);
      const specs = [...others(k, (s) => s.shape !== shape), ...others(m, (s) => s.shape === shape)];
      return {
        specs,
        question: `how many ${plural(shape)} are there?`,
        answer: (objs) => ({ answer: numberWord(objs.filter((o) => o.attributes.shape === shape).length), boxes: [] }),
      };
    }
    case 'exists': {
      const t = randomSpec(rng, colors);
      const same = (s: Spec) => s.shape === t.shape && s.color === t.color;
      const yes = rng.chance(0.5);
      let specs: Spec[];
      if (yes) {
        specs = [t, ...others(rng.int(0, 2), same)];
      } else if (rng.chance(0.6)) {
        // A near miss: the same shape in another colour, or the same colour on another shape.
        const near = rng.chance(0.5) && colors.length > 1 ? { ...t, color: rng.pick(colors.filter((c) => c !== t.color)) } : { ...t, shape: rng.pick(SHAPES.filter((s) => s !== t.shape)) };
        specs = [near, ...others(rng.int(0, 2), same)];
      } else {
        specs = others(rng.int(1, 3), same);
      }
      return {
        specs: rng.shuffle(specs),
        question: `is there ${counted(1, `${t.color} ${t.shape}`)}?`,
        answer: (objs) => ({ answer: objs.some((o) => o.attributes.shape === t.shape && o.attributes.color === t.color) ? 'yes' : 'no', boxes: [] }),
      };
    }
    case 'locate': {
      const t = randomSpec(rng, colors);
      const label = `${t.color} ${t.shape}`;
      return {
        specs: rng.shuffle([t, ...others(rng.int(0, 3), (s) => s.shape === t.shape && s.color === t.color)]),
        question: `where is the ${label}?`,
        answer: (objs) => ({ answer: label, boxes: objs.filter((o) => o.label === label).map((o) => ({ ...o.box })) }),
      };
    }
    case 'caption': {
      return { specs: others(rng.int(1, 4), () => false), question: 'describe the image.', answer: () => ({ answer: '', boxes: [] }) };
    }
  }
}

/** Places specs without overlaps (bounding circles 20% larger, plus a gap); null on failure. */
function place(specs: readonly Spec[], rng: Rng): Placed[] | null {
  const out: Placed[] = [];
  for (const spec of specs) {
    let done = false;
    for (let tries = 0; tries < 60 && !done; tries++) {
      const size = tries < 20 ? spec.size : tries < 40 ? (spec.size === 'xlarge' ? 'large' : spec.size) : 'small';
      const [lo, hi] = SIZES[size];
      const r = rng.float(lo, hi);
      const e = 1.2 * r + 0.015;
      const cx = rng.float(e, 1 - e), cy = rng.float(e, 1 - e);
      if (out.every((p) => len2(p.cx - cx, p.cy - cy) >= 1.2 * (p.r + r) + 0.03)) {
        out.push({ ...spec, size, cx, cy, r, rgb: jitter(rng, COLORS[spec.color], 12) });
        done = true;
      }
    }
    if (!done) return null;
  }
  return out;
}

/** Renders one shape's coverage mask (exported for tests: a box must match these pixels). */
export function generalShapeMask(p: { shape: Shape; cx: number; cy: number; r: number }, size: number) {
  const mask = createMask(size, size);
  shapeMask(mask, p.shape, p.cx * size, p.cy * size, p.r * size);
  return mask;
}

export function generalSample(seed: number, size: number, types: readonly string[], easy = false): Sample {
  const rng = Rng.derive(seed, 'general');
  const type = rng.pick(types) as GeneralType;
  for (;;) {
    const bg = makeBackground(rng, easy);
    const colors = contrasting(bg);
    if (colors.length < 4) continue;
    const p = plan(type, rng, colors, easy);
    const placed = place(p.specs, rng);
    if (!placed) continue;
    const image = createImage(size, size, null);
    bg.paint(image);
    const objects: SceneObject[] = [];
    let visible = true;
    for (const s of placed) {
      const mask = generalShapeMask(s, size);
      paintMask(image, mask, s.rgb);
      const b = maskBounds(mask);
      if (!b) {
        visible = false;
        break;
      }
      const label = `${s.color} ${s.shape}`;
      objects.push({
        label,
        box: { label, x0: b.x0 / size, y0: b.y0 / size, x1: b.x1 / size, y1: b.y1 / size },
        attributes: { shape: s.shape, color: s.color, size: s.size },
        geometry: { cx: s.cx, cy: s.cy, r: s.r },
      });
    }
    if (!visible) continue;
    const { answer, boxes } = type === 'caption' ? { answer: generalCaption(objects, bg.name), boxes: [] } : p.answer(objects);
    return { world: 'general', seed, type, image, question: p.question, answer, boxes, objects, scene: { background: bg.name } };
  }
}
