// Evaluation of answers against world samples (issue 6 quality figures):
//   exact match   over question types without boxes, captions left out (normalised text)
//   iouAt50       share of location answers whose first box has IoU ≥ 0.5 with the truth
//   meanIoU       mean IoU over location answers (0 when no box was produced)
//   captionF1     token F1 of captions
// `byType` gives each type's own rate (exact match, or IoU ≥ 0.5 for 'locate', F1 for captions).
import type { LabeledBox, Sample } from '../data/types.js';

export interface Prediction {
  text: string;
  /** Boxes normalised to [0, 1] (divide pixel boxes by the image size). */
  boxes: LabeledBox[];
}

export interface EvalReport {
  n: number;
  exactMatch: number;
  iouAt50: number;
  meanIoU: number;
  captionF1: number;
  byType: Record<string, { n: number; score: number }>;
}

export function normaliseAnswer(s: string): string {
  return s.toLowerCase().replace(/[.?!,;]/g, ' ').replace(/\s+/g, ' ').trim();
}

export function iou(a: { x0: number; y0: number; x1: number; y1: number }, b: { x0: number; y0: number; x1: number; y1: number }): number {
  const ix = Math.max(0, Math.min(a.x1, b.x1) - Math.max(a.x0, b.x0));
  const iy = Math.max(0, Math.min(a.y1, b.y1) - Math.max(a.y0, b.y0));
  const inter = ix * iy;
  const area = (r: typeof a) => Math.max(0, r.x1 - r.x0) * Math.max(0, r.y1 - r.y0);
  const union = area(a) + area(b) - inter;
  return union > 0 ? inter / union : 0;
}

/** Token F1 between two texts (bags of words). */
export function tokenF1(pred: string, truth: string): number {
  const p = normaliseAnswer(pred).split(' ').filter(Boolean);
  const t = normaliseAnswer(truth).split(' ').filter(Boolean);
  if (p.length === 0 || t.length === 0) return p.length === t.length ? 1 : 0;
  const counts = new Map<string, number>();
  for (const w of t) counts.set(w, (counts.get(w) ?? 0) + 1);
  let common = 0;
  for (const w of p) {
    const c = counts.get(w) ?? 0;
    if (c > 0) {
      common++;
      counts.set(w, c - 1);
    }
  }
  if (common === 0) return 0;
  const precision = common / p.length, recall = common / t.length;
  return (2 * precision * recall) / (precision + recall);
}

/** Scores predictions against their samples. */
export function evaluate(samples: Sample[], preds: Prediction[]): EvalReport {
  const byType: Record<string, { n: number; sum: number }> = {};
  let em = 0, emN = 0, hit = 0, iouSum = 0, locN = 0, f1 = 0, capN = 0;
  samples.forEach((s, i) => {
    const p = preds[i]!;
    let score: number;
    if (s.type === 'caption') {
      score = tokenF1(p.text, s.answer);
      f1 += score;
      capN++;
    } else if (s.boxes.length > 0) {
      const v = p.boxes.length > 0 ? iou(p.boxes[0]!, s.boxes[0]!) : 0;
      iouSum += v;
      score = v >= 0.5 ? 1 : 0;
      hit += score;
      locN++;
    } else {
      score = normaliseAnswer(p.text) === normaliseAnswer(s.answer) ? 1 : 0;
      em += score;
      emN++;
    }
    const t = (byType[s.type] ??= { n: 0, sum: 0 });
    t.n++;
    t.sum += score;
  });
  const rate = (a: number, b: number) => (b > 0 ? a / b : 0);
  return {
    n: samples.length,
    exactMatch: rate(em, emN),
    iouAt50: rate(hit, locN),
    meanIoU: rate(iouSum, locN),
    captionF1: rate(f1, capN),
    byType: Object.fromEntries(Object.entries(byType).map(([k, v]) => [k, { n: v.n, score: v.sum / v.n }])),
  };
}
