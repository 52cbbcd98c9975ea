// The tiny VLM end to end on real general-world samples: the gradient through the image rows
// (vision encoder and connector against finite differences), overfitting a few samples until
// `ask` answers them, adapter mode leaving every base weight bit-identical, the pretraining
// run resuming from a checkpoint with the same losses, weights round trip, and bad input.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, test } from 'vitest';
import { EdgeTuneError } from '../sdk/errors.js';
import { formatAnswer, parseAnswer } from '../sdk/data/answer.js';
import { sampleSplit } from '../sdk/data/worlds.js';
import type { Sample } from '../sdk/data/types.js';
import { IGNORE_INDEX } from '../sdk/kernels/loss.js';
import type { Param } from '../sdk/nn/module.js';
import { IMAGE_ROW_ID, layoutSequence } from '../sdk/model/prompt.js';
import { VLM, type VlmConfig } from '../sdk/model/vlm.js';
import { pretrain } from '../sdk/train/vlm_pretrain.js';
import { vlmBatch, VlmTrainer } from '../sdk/train/vlm_trainer.js';
import { EncoderTrainer } from '../sdk/train/encoder_pretrain.js';
import { randn } from './helpers/reference.js';
import { softmaxes } from './helpers/loss_ref.js';
import { testRuntime } from './helpers/runtime.js';
import { batchLogits, checkGradients } from './helpers/vlm.js';
import { averageBoxes, DEFAULT_BOX_VIEWS, viewShifts } from '../sdk/model/box_views.js';

/** An RGBA image moved by (dx, dy) pixels, the edge pixels repeated into the gap. */
function shiftImage(img: Sample['image'], dx: number, dy: number): Sample['image'] {
  const { width: w, height: h } = img;
  const data = new Uint8ClampedArray(img.data.length);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      const sx = Math.min(w - 1, Math.max(0, x - dx)), sy = Math.min(h - 1, Math.max(0, y - dy));
      for (let c = 0; c < 4; c++) data[(y * w + x) * 4 + c] = img.data[(sy * w + sx) * 4 + c]!;
    }
  }
  return { width: w, height: h, data };
}

const VOCAB = 360;
const CFG: VlmConfig = {
  vision: { imageSize: 16, patch: 4, d: 16, layers: 1, heads: 2, dFf: 24 },
  decoder: { layers: 2, dModel: 32, heads: 2, kvHeads: 1, dFf: 48, vocab: VOCAB, ropeTheta: 10000, maxPositions: 64, tiedEmbeddings: true },
  imageMean: [0.5, 0.5, 0.5],
  imageStd: [0.5, 0.5, 0.5],
};

const tmp = mkdtempSync(path.join(tmpdir(), 'edgetune-vlm-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

function item(vlm: VLM, s: Sample) {
  return { image: s.image, question: s.question, answer: formatAnswer(s, vlm.tokenizer.codec) };
}

function samples(types: string[], first = 0): Sample[] {
  return types.map((t, i) => sampleSplit('general', 'train', first + i, { size: 16, types: [t] }));
}

async function snapshot(ps: Param[]): Promise<Map<string, Float32Array>> {
  const m = new Map<string, Float32Array>();
  for (const p of ps) m.set(p.name, await p.value.read());
  return m;
}

describe('sequence layout', () => {
  test('image rows, prompt, answer, targets only on the answer', async () => {
    const rt = await testRuntime();
    const vlm = new VLM(rt, CFG);
    const tok = vlm.tokenizer;
    const s = layoutSequence(tok, 16, 'what color is the circle?', 'red');
    const q = tok.encode('what color is the circle?');
    expect(s.length).toBe(16 + 1 + q.length + 1 + 2);
    expect([...s.ids.subarray(0, 16)].every((x) => x === IMAGE_ROW_ID)).toBe(true);
    expect(s.ids[16]).toBe(tok.bosId);
    expect(s.ids[16 + q.length + 1]).toBe(tok.tokenId('A:'));
    expect(s.prefix).toBe(16 + q.length + 2);
    const t = [...s.targets];
    expect(t.filter((x) => x !== IGNORE_INDEX)).toEqual([tok.tokenId('red'), tok.eosId]);
    expect(t[s.prefix - 1]).toBe(tok.tokenId('red'));
    expect(t[s.length - 1]).toBe(IGNORE_INDEX);
  });
});

describe('soft location targets (grounding) in the VLM step', () => {
  test('rows point at the answers\' location tokens; mix 0 is the hard loss, mix > 0 a float64 soft CE', async () => {
    const rt = await testRuntime();
    const vlm = new VLM(rt, { ...CFG, merge: 2 });
    const tok = vlm.tokenizer;
    const ss = [...samples(['locate', 'color', 'locate'], 40)];
    const mb = vlmBatch(vlm, ss.map((s) => ({ ...item(vlm, s), boxes: s.boxes })));
    const g = mb.grounding!;
    const boxes = ss.reduce((n, s) => n + s.boxes.length, 0);
    expect(g.count).toBe(2 * boxes);
    for (let i = 0; i < g.count; i++) expect(tok.locCell(mb.targets[g.rows[i]!]!)).toBe(g.cells[i]);
    const wrong = { ...item(vlm, ss[0]!), boxes: [...ss[0]!.boxes, ...ss[0]!.boxes] };
    expect(() => vlmBatch(vlm, [wrong])).toThrow(expect.objectContaining({ code: 'INVALID_ARGUMENT' }));
    const kernel = { kind: 'gaussian', sigma: 0.7 } as const;
    const loss = async (grounding?: { kernel: typeof kernel; mix: number }) => {
      const tr = new VlmTrainer(vlm, { mode: 'full', lr: 1e-3, grounding });
      const r = await tr.evaluate(mb);
      tr.destroy();
      return r.ce;
    };
    const hard = await loss();
    expect(await loss({ kernel, mix: 0 })).toBeCloseTo(hard, 5);
    // Float64 reference of the mean CE with soft rows: logits from the engine, q' on the host.
    const tr = new VlmTrainer(vlm, { mode: 'full', lr: 1e-3 });
    const logits = await batchLogits(tr, mb);
    tr.destroy();
    const V = CFG.decoder.vocab, G = (tok.codec as { grid: number }).grid, mix = 0.5;
    const soft = new Map<number, number>();
    for (let i = 0; i < g.count; i++) soft.set(g.rows[i]!, i);
    let sum = 0, n = 0;
    for (let r = 0; r < mb.targets.length; r++) {
      const t = mb.targets[r]!;
      if (t === IGNORE_INDEX) continue;
      const row = Array.from(logits.subarray(r * V, (r + 1) * V), Number);
      const { lse } = softmaxes(row, 1);
      const i = soft.get(r);
      if (i === undefined) sum += lse - row[t]!;
      else {
        const h = g.cells[i]!, ax = g.anchors[2 * i]!, ay = g.anchors[2 * i + 1]!;
        const ux = (h % G) + 0.5 + ax, uy = Math.floor(h / G) + 0.5 + ay;
        const w = Array.from({ length: G * G }, (_, k) => Math.exp(-(((k % G) + 0.5 - ux) ** 2 + (Math.floor(k / G) + 0.5 - uy) ** 2) / (2 * 0.7 * 0.7)));
        const z = w.reduce((a, b) => a + b, 0);
        for (let k = 0; k < G * G; k++) {
          const q = (1 - mix) * (k === h ? 1 : 0) + (mix * w[k]!) / z;
          if (q > 0) sum += q * (lse - row[tok.locOffset + k]!);
        }
      }
      n++;
    }
    const got = await loss({ kernel, mix });
    expect(Math.abs(got - sum / n)).toBeLessThanOrEqual(1e-4 * Math.max(1, sum / n));
    expect(Math.abs(got - hard)).toBeGreaterThan(1e-3);
  });
});

describe('full-mode gradients through the image rows', () => {
  test('vision encoder and connector parameters against finite differences', async () => {
    const rt = await testRuntime();
    const vlm = new VLM(rt, CFG, undefined, 5);
    // Larger than the init, so that the image path's gradients stand well above float32 noise.
    vlm.params().forEach((p, i) => {
      const v = randn(p.value.size, 900 + i, -0.3, 0.3);
      if (/norm|layernorm/.test(p.name)) for (let j = 0; j < v.length; j++) v[j] = 1 + v[j]!;
      p.value.write(v);
    });
    const trainer = new VlmTrainer(vlm, { mode: 'full' });
    const mb = vlmBatch(vlm, samples(['color', 'locate']).map((s) => item(vlm, s)));
    const g = await trainer.gradients(mb);
    const names = [
      'vision_model.embeddings.patch_embedding.weight',
      'vision_model.embeddings.position_embedding.weight',
      'vision_model.encoder.layers.0.self_attn.q_proj.weight',
      'vision_model.encoder.layers.0.mlp.fc1.weight',
      'vision_model.post_layernorm.weight',
      'multi_modal_projector.linear_1.weight',
      'multi_modal_projector.linear_2.bias',
    ];
    const checked = await checkGradients(trainer.optimizer.params, g, names, async () => (await trainer.evaluate(mb)).ce, { eps: 1e-2, atol: 5e-4, seed: 17 });
    expect(checked).toBe(2 * names.length);
    trainer.destroy();
  });
});

describe('training and asking', () => {
  test('overfitting four samples makes ask return their answers', async () => {
    const rt = await testRuntime();
    const vlm = new VLM(rt, CFG, undefined, 1);
    // The two shape questions are the same text with different answers: only the image tells them apart.
    const picked = samples(['shape', 'shape', 'color', 'locate'], 40);
    expect(picked[0]!.question).toBe(picked[1]!.question);
    expect(picked[0]!.answer).not.toBe(picked[1]!.answer);
    const mb = vlmBatch(vlm, picked.map((s) => item(vlm, s)));
    const trainer = new VlmTrainer(vlm, { mode: 'full', lr: 3e-3, weightDecay: 0 });
    let first = 0, last = 0;
    for (let i = 0; i < 300; i++) {
      const r = await trainer.trainStep(mb);
      if (i === 0) first = r.loss;
      last = r.loss;
      if (i >= 100 && r.loss < 0.01) break;
    }
    expect(last).toBeLessThan(first / 20);
    trainer.destroy();
    for (const s of picked) {
      const a = await vlm.ask(s.image, s.question, { maxNewTokens: 8, boxViews: 0 });
      expect(a.tokens[a.tokens.length - 1]).toBe(vlm.tokenizer.eosId);
      expect(a.logprob).toBeLessThanOrEqual(0);
      if (s.boxes.length === 0) {
        expect(a.text).toBe(vlm.tokenizer.normalize(s.answer));
        expect(a.boxes).toEqual([]);
      } else {
        const want = parseAnswer(formatAnswer(s, vlm.tokenizer.codec), vlm.tokenizer.codec);
        expect(a.text).toBe(want.text);
        expect(a.boxes.length).toBe(want.boxes.length);
        // Pixel coordinates of the 16×16 input image.
        a.boxes.forEach((b, k) => {
          expect(b.label).toBe(want.boxes[k]!.label);
          for (const c of ['x0', 'y0', 'x1', 'y1'] as const) expect(b[c]).toBeCloseTo(want.boxes[k]![c] * 16, 5);
        });
      }
    }
    // Boxes from shifted views (the default): the same text and tokens, and each box the mean of
    // the boxes of the image's shifted copies, each asked about alone and moved back.
    const loc = picked[3]!;
    const plain = await vlm.ask(loc.image, loc.question, { maxNewTokens: 8, boxViews: 0 });
    const viewed = await vlm.ask(loc.image, loc.question, { maxNewTokens: 8 });
    expect(plain.boxes.length).toBeGreaterThan(0);
    expect(viewed.tokens).toEqual(plain.tokens);
    expect(viewed.text).toBe(plain.text);
    const moved = [];
    for (const [dx, dy] of viewShifts(DEFAULT_BOX_VIEWS, CFG.vision.patch)) {
      const v = await vlm.ask(shiftImage(loc.image, dx, dy), loc.question, { maxNewTokens: 8, boxViews: 0 });
      moved.push(v.boxes.map((b) => ({ label: b.label, x0: (b.x0 - dx) / 16, y0: (b.y0 - dy) / 16, x1: (b.x1 - dx) / 16, y1: (b.y1 - dy) / 16 })));
    }
    const want = averageBoxes(plain.boxes.map((b) => ({ label: b.label, x0: b.x0 / 16, y0: b.y0 / 16, x1: b.x1 / 16, y1: b.y1 / 16 })), moved);
    expect(viewed.boxes.length).toBe(want.length);
    viewed.boxes.forEach((b, k) => {
      expect(b.label).toBe(want[k]!.label);
      for (const c of ['x0', 'y0', 'x1', 'y1'] as const) expect(b[c]).toBeCloseTo(want[k]![c] * 16, 5);
    });
    // Any image size is resized: a 40×24 image gets an answer (and boxes in its own pixels).
    const big = { width: 40, height: 24, data: new Uint8ClampedArray(40 * 24 * 4).fill(200) };
    const a = await vlm.ask(big, picked[3]!.question, { maxNewTokens: 6 });
    expect(a.tokens.length).toBeGreaterThan(0);
    for (const b of a.boxes) expect(b.x1).toBeLessThanOrEqual(40 + 1e-6);
  });

  test('weights round trip through saveWeights / loadWeights', async () => {
    const rt = await testRuntime();
    const a = new VLM(rt, CFG, undefined, 3);
    const b = new VLM(rt, CFG, undefined, 4);
    await a.saveWeights(path.join(tmp, 'w'));
    await b.loadWeights(path.join(tmp, 'w'));
    const sa = await snapshot(a.baseParams()), sb = await snapshot(b.baseParams());
    for (const [n, v] of sa) expect(sb.get(n), n).toEqual(v);
    const c = await VLM.fromWeights(rt, path.join(tmp, 'w'));
    expect((await snapshot(c.baseParams())).get('language_model.embed_tokens.weight')).toEqual(sa.get('language_model.embed_tokens.weight'));
  });

  test('adapter mode: vision, connector and decoder base stay bit-identical', async () => {
    const rt = await testRuntime();
    const vlm = new VLM(rt, CFG, undefined, 2);
    const before = await snapshot(vlm.baseParams());
    const trainer = new VlmTrainer(vlm, { mode: 'adapter', adapter: { kind: 'lora', rank: 4, targets: ['q_proj', 'v_proj'] }, lr: 1e-2 });
    expect(trainer.optimizer.params.every((p) => p.name.includes('.adapter.'))).toBe(true);
    expect(vlm.vision.params().every((p) => !p.trainable && !p.grad)).toBe(true);
    const adapterBefore = await snapshot(trainer.optimizer.params);
    const mb = vlmBatch(vlm, samples(['color', 'exists']).map((s) => item(vlm, s)));
    for (let i = 0; i < 3; i++) expect((await trainer.trainStep(mb)).skipped).toBe(false);
    const after = await snapshot(vlm.baseParams());
    for (const [n, v] of before) expect(after.get(n), n).toEqual(v);
    let changed = 0;
    for (const p of trainer.optimizer.params) if (!(await p.value.read()).every((x, i) => x === adapterBefore.get(p.name)![i])) changed++;
    expect(changed).toBeGreaterThan(0);
    trainer.destroy();
  });
});

describe('pretraining', () => {
  test('a run resumed from a checkpoint of any phase reproduces the uninterrupted losses; the refine and locate phases leave the steps before them unchanged', async () => {
    const rt = await testRuntime();
    // Steps 1–3: the encoder phase; 4–7: the VLM's; 8–9: the refine phase; 10–11: the locate
    // phase. Checkpoints at 2 (encoder: its head and optimizer state), 4, 6, 8 (VLM) and 10 (locate).
    const base = { config: CFG, steps: 4, encoderSteps: 3, refineSteps: 2, locateSteps: 2, batch: 2, lr: 3e-3, checkpointEvery: 2, log: () => {} };
    const lines: string[] = [];
    const whole = await pretrain(rt, { ...base, out: path.join(tmp, 'whole'), logEvery: 1, log: (l) => lines.push(l) });
    expect(whole.step).toBe(11);
    expect([...whole.losses.keys()]).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]);
    expect(lines.filter((l) => / locate {2}loss/.test(l)).map((l) => l.split(' ')[1])).toEqual(['10/11', '11/11']);
    // The refine and locate phases leave the steps before them as a run without them has them.
    const unrefined = await pretrain(rt, { ...base, refineSteps: 0, locateSteps: 0, checkpointEvery: 0, out: path.join(tmp, 'unrefined') });
    expect(unrefined.step).toBe(7);
    for (let t = 1; t <= 7; t++) expect(unrefined.losses.get(t), `step ${t}`).toBe(whole.losses.get(t));
    const unlocated = await pretrain(rt, { ...base, locateSteps: 0, checkpointEvery: 0, out: path.join(tmp, 'unlocated') });
    expect(unlocated.step).toBe(9);
    for (let t = 1; t <= 9; t++) expect(unlocated.losses.get(t), `step ${t}`).toBe(whole.losses.get(t));
    // The locate phase trains the model: its weights differ from those at the end of the refine phase.
    const w9 = await snapshot(unlocated.vlm.baseParams()), w11 = await snapshot(whole.vlm.baseParams());
    expect([...w9].some(([n, v]) => v.some((x, i) => x !== w11.get(n)![i]))).toBe(true);
    // It depends on the weights alone: started from those a run wrote at the end of its refine
    // phase (as weights.json or as the model package), it gives the whole run's losses and weights.
    await unlocated.vlm.saveWeights(path.join(tmp, 'refined-w'));
    for (const from of [path.join(tmp, 'refined-w'), path.join(tmp, 'unlocated')]) {
      const log: string[] = [];
      const located = await pretrain(rt, { ...base, checkpointEvery: 0, locateFrom: from, out: path.join(tmp, 'located'), log: (l) => log.push(l) });
      expect(log[0]).toBe(`starting the locate phase at step 9 from the weights of ${from}`);
      expect([...located.losses.keys()]).toEqual([10, 11]);
      for (const t of [10, 11]) expect(located.losses.get(t), `step ${t} from ${from}`).toBe(whole.losses.get(t));
      const w = await snapshot(located.vlm.baseParams());
      for (const [n, v] of w11) expect(w.get(n), n).toEqual(v);
    }
    await expect(pretrain(rt, { ...base, locateFrom: path.join(tmp, 'refined-w'), resume: true, out: path.join(tmp, 'located') })).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
    await expect(pretrain(rt, { ...base, locateSteps: 0, locateFrom: path.join(tmp, 'refined-w'), out: path.join(tmp, 'located') })).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
    await expect(pretrain(rt, { ...base, locateFrom: path.join(tmp, 'no-such-model'), out: path.join(tmp, 'located') })).rejects.toBeInstanceOf(EdgeTuneError);
    for (const [cutAt, from] of [[3, 2], [5, 4], [8, 8], [11, 10]] as const) {
      const dir = path.join(tmp, `cut${cutAt}`);
      const cut = await pretrain(rt, { ...base, out: dir, stopAt: cutAt });
      expect(cut.step).toBe(cutAt);
      for (let t = 1; t <= cutAt; t++) expect(cut.losses.get(t), `step ${t}`).toBe(whole.losses.get(t));
      const lines: string[] = [];
      const resumed = await pretrain(rt, { ...base, out: dir, resume: true, log: (l) => lines.push(l) });
      expect(lines[0]).toBe(`resumed from ${dir}/checkpoint at step ${from}`);
      expect([...resumed.losses.keys()]).toEqual([3, 4, 5, 6, 7, 8, 9, 10, 11].filter((t) => t > from));
      for (const t of resumed.losses.keys()) expect(resumed.losses.get(t), `step ${t} after resuming at ${from}`).toBe(whole.losses.get(t));
      const w1 = await snapshot(whole.vlm.baseParams()), w2 = await snapshot(resumed.vlm.baseParams());
      for (const [n, v] of w1) expect(w2.get(n), n).toEqual(v);
    }
  });

  test('a stem skip stays zero until the locate phase (or the VLM phase without one), which leaves the steps before it as without the skip; resuming in it reproduces the run', async () => {
    const rt = await testRuntime();
    const SKIP: VlmConfig = { ...CFG, vision: { ...CFG.vision, stem: [4, 8], stemSkip: 0 } };
    const { stemSkip: _, ...plainVision } = SKIP.vision;
    // Step 1: the encoder phase; 2–4: the VLM's; 5: the refine phase; 6–7: the locate phase. Checkpoints at 2, 4 and 6.
    const base = { config: SKIP, steps: 3, encoderSteps: 1, refineSteps: 1, locateSteps: 2, batch: 2, lr: 3e-3, checkpointEvery: 2, logEvery: 1, log: () => {} };
    const lines: string[] = [];
    const whole = await pretrain(rt, { ...base, out: path.join(tmp, 'skip-whole'), log: (l) => lines.push(l) });
    expect(whole.step).toBe(7);
    expect(lines.filter((l) => / locate {2}loss/.test(l)).map((l) => l.split(' ')[1])).toEqual(['6/7', '7/7']);
    const skipOf = async (vlm: VLM) => (await snapshot(vlm.baseParams())).get('vision_model.embeddings.stem_skip.weight')!;
    expect((await skipOf(whole.vlm)).some((v) => v !== 0)).toBe(true);
    // Before the locate phase the skip is zero, and every loss is that of the model without it.
    const before = await pretrain(rt, { ...base, out: path.join(tmp, 'skip-cut'), stopAt: 5, checkpointEvery: 0 });
    expect(Array.from(await skipOf(before.vlm)).every((v) => v === 0)).toBe(true);
    const plain = await pretrain(rt, { ...base, config: { ...SKIP, vision: plainVision }, locateSteps: 0, checkpointEvery: 0, out: path.join(tmp, 'skip-plain') });
    expect(plain.step).toBe(5);
    for (let t = 1; t <= 5; t++) expect(plain.losses.get(t), `step ${t}`).toBe(whole.losses.get(t));
    // Cut in the locate phase (its checkpoint at 6) and in the VLM phase (at 4): the same losses and weights.
    for (const [cutAt, from] of [[7, 6], [5, 4]] as const) {
      const dir = path.join(tmp, `skip-cut${cutAt}`);
      await pretrain(rt, { ...base, out: dir, stopAt: cutAt });
      const log: string[] = [];
      const resumed = await pretrain(rt, { ...base, out: dir, resume: true, log: (l) => log.push(l) });
      expect(log[0]).toBe(`resumed from ${dir}/checkpoint at step ${from}`);
      expect([...resumed.losses.keys()]).toEqual([5, 6, 7].filter((t) => t > from));
      for (const t of resumed.losses.keys()) expect(resumed.losses.get(t), `step ${t} after resuming at ${from}`).toBe(whole.losses.get(t));
      const w1 = await snapshot(whole.vlm.baseParams()), w2 = await snapshot(resumed.vlm.baseParams());
      for (const [n, v] of w1) expect(w2.get(n), n).toEqual(v);
    }
    // Without a locate phase the skip trains from the VLM phase on: still zero after the encoder phase, not after a VLM step.
    const noLocate = { ...base, locateSteps: 0, checkpointEvery: 0 };
    expect(Array.from(await skipOf((await pretrain(rt, { ...noLocate, stopAt: 1, out: path.join(tmp, 'skip-enc') })).vlm)).every((v) => v === 0)).toBe(true);
    expect((await skipOf((await pretrain(rt, { ...noLocate, stopAt: 2, out: path.join(tmp, 'skip-vlm') })).vlm)).some((v) => v !== 0)).toBe(true);
    // Frozen names must be parameters, and only in full mode.
    const vlm = new VLM(rt, SKIP);
    expect(() => new VlmTrainer(vlm, { mode: 'full', frozen: ['vision_model.no_such.weight'] })).toThrow(expect.objectContaining({ code: 'INVALID_ARGUMENT' }));
    expect(() => new EncoderTrainer(vlm, { frozen: ['language_model.embed_tokens.weight'] })).toThrow(expect.objectContaining({ code: 'INVALID_ARGUMENT' }));
    expect(() => new VlmTrainer(vlm, { mode: 'adapter', adapter: { kind: 'lora', rank: 2, targets: ['q_proj'] }, frozen: ['vision_model.embeddings.stem_skip.weight'] })).toThrow(expect.objectContaining({ code: 'INVALID_ARGUMENT' }));
  });

  test('the encoder phase changes only the vision encoder', async () => {
    const rt = await testRuntime();
    const init = new VLM(rt, CFG, undefined, 0);
    const before = await snapshot(init.baseParams());
    const r = await pretrain(rt, { config: CFG, steps: 1, encoderSteps: 2, stopAt: 2, batch: 2, lr: 3e-3, checkpointEvery: 0, out: path.join(tmp, 'enc'), log: () => {} });
    expect(r.step).toBe(2);
    let moved = 0;
    for (const [n, v] of await snapshot(r.vlm.baseParams())) {
      const same = v.every((x, i) => x === before.get(n)![i]);
      if (n.startsWith('vision_model.')) moved += same ? 0 : 1;
      else expect(same, `${n} is outside the encoder`).toBe(true);
    }
    expect(moved).toBeGreaterThan(0);
  });
});

describe('bad input', () => {
  test('empty question and zero-size image → INVALID_ARGUMENT', async () => {
    const rt = await testRuntime();
    const vlm = new VLM(rt, CFG);
    const img = sampleSplit('general', 'val', 0, { size: 16 }).image;
    const code = async (p: Promise<unknown>) => {
      try {
        await p;
        return 'none';
      } catch (e) {
        expect(e).toBeInstanceOf(EdgeTuneError);
        return (e as EdgeTuneError).code;
      }
    };
    expect(await code(vlm.ask(img, ''))).toBe('INVALID_ARGUMENT');
    expect(await code(vlm.ask(img, '   '))).toBe('INVALID_ARGUMENT');
    expect(await code(vlm.ask(img, 'where is the red star?', { boxViews: -1 }))).toBe('INVALID_ARGUMENT');
    expect(await code(vlm.ask(img, 'where is the red star?', { boxViews: 2.5 }))).toBe('INVALID_ARGUMENT');
    expect(await code(vlm.ask({ width: 0, height: 0, data: new Uint8ClampedArray(0) }, 'what shape is this?'))).toBe('INVALID_ARGUMENT');
    expect(await code(vlm.ask({ width: 16, height: 0, data: new Uint8ClampedArray(0) }, 'what shape is this?'))).toBe('INVALID_ARGUMENT');
    expect(await code(vlm.ask(img, 'what shape is this?', { maxNewTokens: 0 }))).toBe('INVALID_ARGUMENT');
    expect(() => new VLM(rt, { ...CFG, decoder: { ...CFG.decoder, vocab: 100 } })).toThrow(EdgeTuneError);
  });
});
