// The inspection world (held out, out of distribution; DESIGN §2.2): a textured surface
// (brushed metal, concrete, wood, leaf, brick) with 0-3 defects (crack, rust spot, hole,
// dent, scratch). A defect's severity is set by its size: each (kind, severity) has its own
// size range and the ranges of one kind leave gaps between them, so severity can be read off
// the image. Defects never touch each other (their coverage masks stay one pixel apart).
import { blobMask, circleMask, createImage, createMask, ellipseMask, maskBounds, paintMask, polylineMask, type Mask, type RGB, type RGBAImage, len2 } from './image.js';
import { Rng } from './rng.js';
import { counted, listPhrase, numberWord, plural } from './text.js';
import { drawSurface, fbm, SURFACES, type Surface, type SurfaceInfo } from './textures.js';
import type { LabeledBox, Sample, SceneObject } from './types.js';

export { SURFACES, type Surface };

export const DEFECTS = ['crack', 'rust spot', 'hole', 'dent', 'scratch'] as const;
export type Defect = (typeof DEFECTS)[number];
export const SEVERITIES = ['minor', 'moderate', 'severe'] as const;
export type Severity = (typeof SEVERITIES)[number];

/**
 * Size ranges as a fraction of the image side, per kind and severity: the length of a crack
 * or a scratch, the radius of a rust spot, a hole (without its rim) or a dent.
 */
export const DEFECT_SIZES: Record<Defect, Record<Severity, readonly [number, number]>> = {
  crack: { minor: [0.18, 0.26], moderate: [0.34, 0.46], severe: [0.56, 0.74] },
  'rust spot': { minor: [0.045, 0.065], moderate: [0.085, 0.11], severe: [0.135, 0.17] },
  hole: { minor: [0.028, 0.038], moderate: [0.05, 0.065], severe: [0.08, 0.1] },
  dent: { minor: [0.06, 0.08], moderate: [0.1, 0.125], severe: [0.15, 0.185] },
  scratch: { minor: [0.2, 0.3], moderate: [0.38, 0.5], severe: [0.6, 0.8] },
};

export const INSPECTION_TYPES = ['exists', 'kind', 'locate', 'count', 'surface', 'severity', 'caption'] as const;
export type InspectionType = (typeof INSPECTION_TYPES)[number];

/** Every word the inspection world can write (questions and answers), for the tokenizer. */
export function inspectionWords(): string[] {
  const fixed = 'is there a defect defects what this where the how many are severe surface describe image yes no on and an'.split(' ');
  const kinds = DEFECTS.flatMap((d) => [...d.split(' '), ...plural(d).split(' ')]);
  const surfaces = SURFACES.flatMap((s) => s.split(' '));
  return [...fixed, ...kinds, ...SEVERITIES, ...surfaces, 'zero', 'one', 'two', 'three'];
}

interface Spec {
  kind: Defect;
  severity: Severity;
}

interface DrawnDefect extends Spec {
  mask: Mask;
  cx: number;
  cy: number;
  paint(img: RGBAImage, base: RGB): void;
}

function clamp255(v: number): number {
  return v < 0 ? 0 : v > 255 ? 255 : v;
}

/** Draws one defect's mask at a random place; returns how to paint it. Units are pixels. */
function makeDefect(spec: Spec, rng: Rng, size: number): DrawnDefect {
  const [lo, hi] = DEFECT_SIZES[spec.kind][spec.severity];
  const s = rng.float(lo, hi) * size;
  const u = size / 64; // design pixel
  const mask = createMask(size, size);
  const reach = spec.kind === 'crack' || spec.kind === 'scratch' ? s / 2 + 2 * u : spec.kind === 'rust spot' ? s * 1.45 : spec.kind === 'hole' ? s * 1.3 : s * 1.2;
  const margin = reach + 1.5 * u;
  const cx = rng.float(margin, size - margin), cy = rng.float(margin, size - margin);
  const seed = rng.u32();
  switch (spec.kind) {
    case 'crack': {
      // Two random walks out of the centre, each s/2 long, so every vertex stays within s/2.
      const theta = rng.float(0, Math.PI);
      const steps = 5;
      const width = { minor: 1.4, moderate: 1.8, severe: 2.4 }[spec.severity] * u;
      const pts: number[] = [];
      const ws: number[] = [];
      for (const side of [-1, 1]) {
        let x = cx, y = cy, a = theta + (side < 0 ? Math.PI : 0);
        const arm: number[] = [];
        for (let i = 0; i < steps; i++) {
          a += rng.float(-0.55, 0.55);
          x += (Math.cos(a) * s) / 2 / steps;
          y += (Math.sin(a) * s) / 2 / steps;
          arm.push(x, y);
        }
        if (side < 0) {
          for (let i = arm.length - 2; i >= 0; i -= 2) pts.push(arm[i]!, arm[i + 1]!);
          pts.push(cx, cy);
        } else pts.push(...arm);
      }
      for (let i = 0; i < pts.length / 2; i++) ws.push(width * (0.7 + 0.3 * Math.sin((Math.PI * i) / (pts.length / 2 - 1))));
      polylineMask(mask, pts, width, ws);
      if (spec.severity !== 'minor') {
        // A branch from a vertex near the middle.
        const k = 2 * rng.int(steps - 2, steps + 2);
        const bx = pts[k]!, by = pts[k + 1]!;
        const a = theta + rng.pick([-1, 1]) * rng.float(0.5, 1.0) + (rng.chance(0.5) ? Math.PI : 0);
        const len = rng.float(0.15, 0.3) * s;
        const mx = bx + Math.cos(a) * len * 0.5 + rng.float(-1, 1) * u, my = by + Math.sin(a) * len * 0.5 + rng.float(-1, 1) * u;
        polylineMask(mask, [bx, by, mx, my, bx + Math.cos(a) * len, by + Math.sin(a) * len], width * 0.7, [width * 0.7, width * 0.6, width * 0.5].map((v) => Math.max(v, u)));
      }
      return { ...spec, mask, cx, cy, paint: (img, base) => paintMask(img, mask, [base[0] * 0.18, base[1] * 0.16, base[2] * 0.15], 0.92) };
    }
    case 'scratch': {
      // A groove: a bright line (the lit edge) with a darker line beside it (the shadow).
      const theta = rng.float(0, Math.PI);
      const dx = (Math.cos(theta) * s) / 2, dy = (Math.sin(theta) * s) / 2;
      const bend = rng.float(-0.06, 0.06) * s;
      const nx = -Math.sin(theta), ny = Math.cos(theta);
      // Nearly straight: the middle vertex is pushed sideways by `bend`.
      const line = (off: number) => [cx - dx + nx * off, cy - dy + ny * off, cx + nx * (bend + off), cy + ny * (bend + off), cx + dx + nx * off, cy + dy + ny * off];
      const w = { minor: 1.3, moderate: 1.5, severe: 1.8 }[spec.severity] * u;
      const shadow = createMask(size, size);
      polylineMask(shadow, line(0.9 * u), w, [w * 0.75, w, w * 0.75]);
      polylineMask(mask, line(0), w, [w * 0.75, w, w * 0.75]);
      const lit = createMask(size, size);
      polylineMask(lit, line(0), w, [w * 0.75, w, w * 0.75]);
      polylineMask(mask, line(0.9 * u), w, [w * 0.75, w, w * 0.75]);
      return {
        ...spec, mask, cx, cy,
        paint: (img, base) => {
          paintMask(img, shadow, [base[0] * 0.45, base[1] * 0.45, base[2] * 0.45], 0.6);
          paintMask(img, lit, [clamp255(base[0] + 110), clamp255(base[1] + 110), clamp255(base[2] + 110)], 0.95);
        },
      };
    }
    case 'rust spot': {
      const harmonics = [2, 3, 5].map((k) => [k, rng.float(0.06, 0.14), rng.float(0, 2 * Math.PI)] as const);
      blobMask(mask, cx, cy, s, harmonics);
      const tone = rng.float(-15, 15);
      return {
        ...spec, mask, cx, cy,
        paint: (img) =>
          paintMask(img, mask, (x, y) => {
            const t = fbm(seed, (x / u) * 0.35, (y / u) * 0.35, 2);
            return [120 + 95 * t + tone, 45 + 60 * t + tone * 0.5, 15 + 25 * t];
          }, 0.95),
      };
    }
    case 'hole': {
      circleMask(mask, cx, cy, s * 1.25);
      return {
        ...spec, mask, cx, cy,
        paint: (img, base) =>
          paintMask(img, mask, (x, y) => {
            const dx = x + 0.5 - cx, dy = y + 0.5 - cy;
            const d = len2(dx, dy);
            if (d <= s) {
              const k = 0.08 + 0.12 * (d / s);
              return [base[0] * k, base[1] * k, base[2] * k];
            }
            // The rim: lit on the lower right, shadowed on the upper left.
            const lit = (dx + dy) / (Math.SQRT2 * d);
            return [clamp255(base[0] + 70 * lit), clamp255(base[1] + 70 * lit), clamp255(base[2] + 70 * lit)];
          }),
      };
    }
    case 'dent': {
      const ry = s * rng.float(0.7, 1.0);
      ellipseMask(mask, cx, cy, s, ry, 0.2 * s);
      return {
        ...spec, mask, cx, cy,
        paint: (img) => {
          // A dent is a dimple: shade the pixels under the mask, dark on the upper left
          // (facing away from a light at the top left) and bright on the lower right.
          const d = img.data, w = img.width;
          for (let y = mask.y0; y < mask.y1; y++) {
            for (let x = mask.x0; x < mask.x1; x++) {
              const a = mask.data[y * w + x]!;
              if (a <= 0) continue;
              const nx = (x + 0.5 - cx) / s, ny = (y + 0.5 - cy) / ry;
              const shade = 95 * a * ((nx + ny) / Math.SQRT2) - 18 * a;
              const i = (y * w + x) * 4;
              d[i] = clamp255(d[i]! + shade);
              d[i + 1] = clamp255(d[i + 1]! + shade);
              d[i + 2] = clamp255(d[i + 2]! + shade);
            }
          }
        },
      };
    }
  }
}

/** The caption: groups of (kind, severity) in DEFECTS then SEVERITIES order, then the surface. */
export function inspectionCaption(objects: readonly SceneObject[], surface: string): string {
  const groups: string[] = [];
  for (const kind of DEFECTS) {
    for (const severity of SEVERITIES) {
      const n = objects.filter((o) => o.attributes.kind === kind && o.attributes.severity === severity).length;
      if (n > 0) groups.push(counted(n, `${severity} ${kind}`));
    }
  }
  return `${groups.length ? listPhrase(groups) : 'no defects'} on ${surface}`;
}

interface Plan {
  specs: Spec[];
  question: string;
  answer(objects: SceneObject[], surface: string): { answer: string; boxes: LabeledBox[] };
}

function plan(type: InspectionType, rng: Rng): Plan {
  const spec = (not?: Defect): Spec => ({ kind: rng.pick(not ? DEFECTS.filter((d) => d !== not) : DEFECTS), severity: rng.pick(SEVERITIES) });
  const many = (n: number, not?: Defect) => Array.from({ length: n }, () => spec(not));
  const of = (objs: SceneObject[], kind: Defect) => objs.filter((o) => o.attributes.kind === kind);
  switch (type) {
    case 'exists': {
      const yes = rng.chance(0.5);
      return { specs: yes ? many(rng.int(1, 3)) : [], question: 'is there a defect?', answer: (objs) => ({ answer: objs.length ? 'yes' : 'no', boxes: [] }) };
    }
    case 'kind':
      return { specs: [spec()], question: 'what defect is this?', answer: (objs) => ({ answer: objs[0]!.attributes.kind!, boxes: [] }) };
    case 'locate': {
      const t = spec();
      return {
        specs: rng.shuffle([t, ...many(rng.int(0, 2), t.kind)]),
        question: `where is the ${t.kind}?`,
        answer: (objs) => ({ answer: t.kind, boxes: of(objs, t.kind).map((o) => ({ ...o.box })) }),
      };
    }
    case 'count': {
      const kind = rng.pick(DEFECTS);
      const k = [0, 1, 2, 3][rng.weighted([1, 2, 2, 1])]!;
      const m = rng.int(0, 3 - k);
      return {
        specs: rng.shuffle([...Array.from({ length: k }, () => ({ kind, severity: rng.pick(SEVERITIES) })), ...many(m, kind)]),
        question: `how many ${plural(kind)} are there?`,
        answer: (objs) => ({ answer: numberWord(of(objs, kind).length), boxes: [] }),
      };
    }
    case 'surface':
      return { specs: many(rng.int(0, 3)), question: 'what is the surface?', answer: (_, surface) => ({ answer: surface, boxes: [] }) };
    case 'severity': {
      const t = spec();
      return {
        specs: rng.shuffle([t, ...many(rng.int(0, 2), t.kind)]),
        question: `how severe is the ${t.kind}?`,
        answer: (objs) => ({ answer: of(objs, t.kind)[0]!.attributes.severity!, boxes: [] }),
      };
    }
    case 'caption':
      return { specs: many(rng.int(0, 3)), question: 'describe the image.', answer: (objs, surface) => ({ answer: inspectionCaption(objs, surface), boxes: [] }) };
  }
}

/** True when any pixel the mask touches lies within one pixel of an occupied one. */
function collides(mask: Mask, occupied: Uint8Array): boolean {
  for (let y = mask.y0; y < mask.y1; y++) {
    for (let x = mask.x0; x < mask.x1; x++) if (mask.data[y * mask.width + x]! > 0 && occupied[y * mask.width + x]) return true;
  }
  return false;
}

function occupy(mask: Mask, occupied: Uint8Array): void {
  const { width: w, height: h } = mask;
  for (let y = mask.y0; y < mask.y1; y++) {
    for (let x = mask.x0; x < mask.x1; x++) {
      if (mask.data[y * w + x]! <= 0) continue;
      for (let j = Math.max(0, y - 1); j <= Math.min(h - 1, y + 1); j++) for (let i = Math.max(0, x - 1); i <= Math.min(w - 1, x + 1); i++) occupied[j * w + i] = 1;
    }
  }
}

/** Renders a sample and keeps, for tests, each defect's coverage mask and the surface's seed. */
export function renderInspection(seed: number, size: number, types: readonly string[]): { sample: Sample; masks: Mask[]; surfaceSeed: number } {
  const rng = Rng.derive(seed, 'inspection');
  const type = rng.pick(types) as InspectionType;
  for (;;) {
    const surface = rng.pick(SURFACES);
    const p = plan(type, rng);
    const occupied = new Uint8Array(size * size);
    const drawn: DrawnDefect[] = [];
    for (const spec of p.specs) {
      for (let tries = 0; tries < 30; tries++) {
        const d = makeDefect(spec, rng, size);
        if (maskBounds(d.mask) && !collides(d.mask, occupied)) {
          occupy(d.mask, occupied);
          drawn.push(d);
          break;
        }
      }
    }
    if (drawn.length !== p.specs.length) continue;
    const image = createImage(size, size);
    const surfaceSeed = rng.u32();
    const info: SurfaceInfo = drawSurface(image, surface, surfaceSeed);
    const objects: SceneObject[] = drawn.map((d) => {
      d.paint(image, info.base);
      const b = maskBounds(d.mask)!;
      const box = { label: d.kind, x0: b.x0 / size, y0: b.y0 / size, x1: b.x1 / size, y1: b.y1 / size };
      return { label: d.kind, box, attributes: { kind: d.kind, severity: d.severity }, geometry: { cx: d.cx / size, cy: d.cy / size } };
    });
    const { answer, boxes } = p.answer(objects, surface);
    const sample: Sample = { world: 'inspection', seed, type, image, question: p.question, answer, boxes, objects, scene: { surface } };
    return { sample, masks: drawn.map((d) => d.mask), surfaceSeed };
  }
}

export function inspectionSample(seed: number, size: number, types: readonly string[]): Sample {
  return renderInspection(seed, size, types).sample;
}
