// Evaluation metrics: exact match, IoU, token F1 and their aggregation over world samples.
import { describe, expect, test } from 'vitest';
import { sampleSplit } from '../sdk/index.js';
import { evaluate, iou, normaliseAnswer, tokenF1 } from '../sdk/model/eval.js';

describe('evaluation', () => {
  test('IoU of boxes', () => {
    const a = { x0: 0, y0: 0, x1: 0.5, y1: 0.5 };
    expect(iou(a, a)).toBe(1);
    expect(iou(a, { x0: 0.5, y0: 0.5, x1: 1, y1: 1 })).toBe(0);
    expect(iou(a, { x0: 0.25, y0: 0, x1: 0.75, y1: 0.5 })).toBeCloseTo(1 / 3, 12);
  });

  test('token F1 and normalisation', () => {
    expect(normaliseAnswer(' A Red  Circle. ')).toBe('a red circle');
    expect(tokenF1('a red circle', 'a red circle')).toBe(1);
    expect(tokenF1('a blue circle', 'a red circle')).toBeCloseTo(2 / 3, 12);
    expect(tokenF1('', 'a red circle')).toBe(0);
  });

  test('perfect predictions score 1, wrong ones 0, per type', () => {
    const samples = Array.from({ length: 60 }, (_, i) => sampleSplit('general', 'test', i));
    const perfect = evaluate(samples, samples.map((s) => ({ text: s.answer, boxes: s.boxes })));
    expect(perfect.exactMatch).toBe(1);
    expect(perfect.iouAt50).toBe(1);
    expect(perfect.meanIoU).toBe(1);
    expect(perfect.captionF1).toBe(1);
    expect(Object.values(perfect.byType).every((t) => t.score === 1)).toBe(true);
    const wrong = evaluate(samples, samples.map(() => ({ text: 'zebra', boxes: [{ label: 'x', x0: 0.98, y0: 0.98, x1: 1, y1: 1 }] })));
    expect(wrong.exactMatch).toBe(0);
    expect(wrong.iouAt50).toBe(0);
    expect(wrong.captionF1).toBe(0);
    expect(Object.values(wrong.byType).reduce((n, t) => n + t.n, 0)).toBe(60);
  });
});
