// Pretraining's encoder phase (EncoderTrainer): the gradients of the vision encoder (stem
// included) and of the region head against finite differences, a fixed batch learnt, nothing
// outside the encoder moving, its batches (shape words on the rows of single-shape scenes), and
// bad input. Then the head kept on in the VLM phase (VlmTrainerOptions.regionHead): the
// gradients of answer CE + region CE against finite differences.
import { describe, expect, test } from 'vitest';
import { IGNORE_INDEX } from '../sdk/kernels/loss.js';
import { buildTokenizerJSON } from '../sdk/data/vocab.js';
import { SHAPES } from '../sdk/data/general.js';
import { sampleSplit } from '../sdk/data/worlds.js';
import { Tokenizer } from '../sdk/model/tokenizer.js';
import { smokeVlmConfig, VLM, type VlmConfig } from '../sdk/model/vlm.js';
import { destroyHead, EncoderTrainer, regionHead, type EncoderBatch } from '../sdk/train/encoder_pretrain.js';
import { ENCODER_SAMPLE_OFFSET, encoderBatch, PRETRAIN_MIX, pretrainBatch } from '../sdk/train/vlm_pretrain.js';
import { REGION_WORDS, regionWords } from '../sdk/train/region_targets.js';
import { visionRowTargets, VlmTrainer } from '../sdk/train/vlm_trainer.js';
import type { Param } from '../sdk/nn/module.js';
import { randn, rng } from './helpers/reference.js';
import { checkGradients } from './helpers/vlm.js';
import { expectCode, expectRejects } from './helpers/errors.js';
import { testRuntime } from './helpers/runtime.js';

const tok = Tokenizer.fromJSON(buildTokenizerJSON());
/** A 2-stage stem on 20-pixel images: 5×5 tokens of d 12, ragged against every tile size. */
const CFG: VlmConfig = { ...smokeVlmConfig(tok.vocabSize), vision: { imageSize: 20, patch: 4, d: 12, layers: 1, heads: 2, dFf: 20, stem: [3, 5] } };

async function snapshot(ps: { name: string; value: { read(): Promise<Float32Array> } }[]): Promise<Map<string, Float32Array>> {
  const m = new Map<string, Float32Array>();
  for (const p of ps) m.set(p.name, await p.value.read());
  return m;
}

/** B images of random pixels, K targets per row, some of them (and some whole rows) without one. */
function randomBatch(vlm: VLM, B: number, seed: number, K = 1): EncoderBatch {
  const P = vlm.patches, V = vlm.cfg.decoder.vocab;
  const pixels = randn(B * 3 * vlm.cfg.vision.imageSize ** 2, seed, -1, 1);
  const r = rng(seed + 1);
  const targets = Int32Array.from({ length: B * P * K }, () => (r() < 0.3 ? IGNORE_INDEX : Math.floor(r() * V)));
  return { batch: B, pixels, targets };
}

/** Values larger than the init, so that every gradient stands well above float32 noise. */
function spread(params: Param[], seed: number): void {
  params.forEach((p, i) => {
    const v = randn(p.value.size, seed + i, -0.4, 0.4);
    if (/norm|layernorm/.test(p.name)) for (let j = 0; j < v.length; j++) v[j] = 1 + v[j]!;
    p.value.write(v);
  });
}

describe('encoder phase gradients', () => {
  test.each([1, 3])('stem, patch projection, ViT layer, post norm and region head against finite differences (%i words per row)', async (K) => {
    const rt = await testRuntime();
    const vlm = new VLM(rt, CFG, tok, 3);
    const trainer = new EncoderTrainer(vlm, { lr: 1e-3, seed: 4 });
    spread(trainer.optimizer.params, 700);
    const mb = randomBatch(vlm, 2, 11, K);
    const g = await trainer.gradients(mb);
    const names = [
      'vision_model.embeddings.stem.0.weight',
      'vision_model.embeddings.stem.1.bias',
      'vision_model.embeddings.patch_embedding.weight',
      'vision_model.encoder.layers.0.self_attn.k_proj.weight',
      'vision_model.encoder.layers.0.mlp.fc2.weight',
      'vision_model.post_layernorm.bias',
      'region_head.weight',
      'region_head.bias',
    ];
    const checked = await checkGradients(trainer.optimizer.params, g, names, () => trainer.evaluate(mb), { eps: 2e-3, atol: 1e-3, seed: 23 });
    expect(checked).toBe(2 * names.length);
    trainer.destroy();
  });

  /** CFG's 5×5 tokens one per image row, and a 4×4 grid merged 2×2 into 4 image rows. */
  const MERGED: VlmConfig = { ...CFG, vision: { ...CFG.vision, imageSize: 16 }, merge: 2 };
  test.each([['unmerged', CFG], ['merged 2×2', MERGED]] as const)('VLM phase with the region head (%s): answer CE + region CE against finite differences', async (_, cfg) => {
    const rt = await testRuntime();
    const vlm = new VLM(rt, cfg, tok, 6);
    const head = regionHead(vlm, 2);
    const trainer = new VlmTrainer(vlm, { mode: 'full', regionHead: head });
    expect(trainer.optimizer.params.filter((p) => p.name.startsWith('region_head.')).length).toBe(2);
    spread(trainer.optimizer.params, 800);
    const mb = pretrainBatch(vlm, 1, 2, ['color', 'locate']);
    expect(mb.regions && mb.regions.some((x) => x !== IGNORE_INDEX)).toBe(true);
    const g = await trainer.gradients(mb);
    const names = [
      'vision_model.embeddings.stem.0.weight',
      'vision_model.encoder.layers.0.mlp.fc1.weight',
      'multi_modal_projector.linear_1.weight',
      'language_model.layers.0.self_attn.q_proj.weight',
      'region_head.weight',
      'region_head.bias',
    ];
    const total = async () => {
      const e = await trainer.evaluate(mb);
      expect(e.regionCe).toBeGreaterThan(0);
      return e.ce + e.regionCe;
    };
    expect(await checkGradients(trainer.optimizer.params, g, names, total, { eps: 1e-3, atol: 1e-3, seed: 29 })).toBe(2 * names.length);
    // Without regions in the batch the head adds nothing.
    expect((await trainer.evaluate({ ...mb, regions: undefined })).regionCe).toBe(0);
    trainer.destroy();
    destroyHead(head);
  });

  test('a region head of the wrong size or outside full mode is refused', async () => {
    const rt = await testRuntime();
    const vlm = new VLM(rt, CFG, tok);
    const other = new VLM(rt, { ...CFG, vision: { ...CFG.vision, d: 16 } }, tok);
    const wrong = regionHead(other);
    expectCode(() => new VlmTrainer(vlm, { mode: 'full', regionHead: wrong }), 'SHAPE_MISMATCH');
    expectCode(() => new EncoderTrainer(vlm, { head: wrong }), 'SHAPE_MISMATCH');
    const right = regionHead(vlm);
    expectCode(() => new VlmTrainer(vlm, { mode: 'adapter', adapter: { kind: 'lora', rank: 2, targets: ['q_proj'] }, regionHead: right }), 'INVALID_ARGUMENT');
    destroyHead(wrong);
    destroyHead(right);
  });
});

describe('encoder phase training', () => {
  test('learns a fixed batch; connector and decoder stay bit-identical', async () => {
    const rt = await testRuntime();
    const vlm = new VLM(rt, CFG, tok, 5);
    const vision = vlm.params().filter((p) => p.name.startsWith('vision_model.'));
    const outside = vlm.params().filter((p) => !p.name.startsWith('vision_model.'));
    const before = await snapshot(outside);
    const visionBefore = await snapshot(vision);
    const trainer = new EncoderTrainer(vlm, { lr: 1e-2, weightDecay: 0 });
    expect(trainer.optimizer.params.map((p) => p.name).sort()).toEqual([...vision.map((p) => p.name), 'region_head.bias', 'region_head.weight'].sort());
    // Four region words per row (shape, colour, box start and end), on scenes of several objects.
    const size = vlm.cfg.vision.imageSize, K = REGION_WORDS.length;
    const ss = [0, 1, 2].map((i) => sampleSplit('general', 'train', i, { size, types: ['count'] }));
    const mb: EncoderBatch = { batch: 3, pixels: new Float32Array(3 * 3 * size * size), targets: new Int32Array(3 * vlm.vision.patches * K) };
    ss.forEach((s, b) => {
      mb.pixels.set(vlm.pixelValues(s.image), b * 3 * size * size);
      mb.targets.set(regionWords(tok, s, vlm.vision.patches), b * vlm.vision.patches * K);
    });
    const first = await trainer.evaluate(mb);
    let last = first;
    for (let i = 0; i < 40; i++) {
      const r = await trainer.trainStep(mb);
      expect(r.skipped).toBe(false);
      expect(r.step).toBe(i + 1);
      last = r.loss;
    }
    const after = await trainer.evaluate(mb);
    // The floor: a row with n distinct words cannot go below log n (its target is uniform over them).
    const floor = entropyFloor(mb.targets, REGION_WORDS.length);
    expect(after - floor).toBeLessThan(0.25 * (first - floor));
    expect(last - floor).toBeLessThan(0.5 * (first - floor));
    for (const [n, v] of await snapshot(outside)) expect(v, n).toEqual(before.get(n));
    let moved = 0;
    for (const [n, v] of await snapshot(vision)) if (!v.every((x, i) => x === visionBefore.get(n)![i])) moved++;
    expect(moved).toBe(vision.length);
    trainer.destroy();
  });

  test('encoderBatch: single-shape scenes, each row the shape word of its object, deterministic', async () => {
    const rt = await testRuntime();
    const vlm = new VLM(rt, smokeVlmConfig(tok.vocabSize), tok);
    const a = encoderBatch(vlm, 3, 4), b = encoderBatch(vlm, 3, 4), c = encoderBatch(vlm, 4, 4);
    expect(a.targets).toEqual(b.targets);
    expect(a.pixels).toEqual(b.pixels);
    expect(a.pixels).not.toEqual(c.pixels);
    const shapeIds = new Set(SHAPES.map((s) => tok.tokenId(s)));
    const P = vlm.vision.patches, size = vlm.cfg.vision.imageSize;
    expect(a.targets.length).toBe(4 * P);
    for (let k = 0; k < 4; k++) {
      const s = sampleSplit('general', 'train', ENCODER_SAMPLE_OFFSET + 2 * 4 + k, { size, types: ['shape'] });
      expect(s.objects.length).toBe(1);
      expect([...a.targets.subarray(k * P, (k + 1) * P)]).toEqual([...regionWords(tok, s, P, ['shape'])]);
      const rows = [...a.targets.subarray(k * P, (k + 1) * P)].filter((x) => x !== IGNORE_INDEX);
      expect(rows.length, `image ${k} has a labelled row`).toBeGreaterThan(0);
      // One object: one shape word on all of its rows.
      expect(new Set(rows).size).toBe(1);
      expect(shapeIds.has(rows[0]!)).toBe(true);
    }
  });
});

/** Mean over rows with a word of log (distinct words in the row). */
function entropyFloor(words: Int32Array, K: number): number {
  let sum = 0, n = 0;
  for (let r = 0; r < words.length / K; r++) {
    const d = new Set([...words.subarray(r * K, (r + 1) * K)].filter((x) => x !== IGNORE_INDEX)).size;
    if (d === 0) continue;
    sum += Math.log(d);
    n++;
  }
  return n ? sum / n : 0;
}

test('visionRowTargets: each vision patch takes the target of its merged cell', () => {
  // 2 images, a 4×4 grid merged 2×2: image rows 0 1 / 2 3.
  const regions = Int32Array.from([10, 11, 12, 13, 20, IGNORE_INDEX, 22, 23]);
  const v = visionRowTargets(regions, 2, 4, 2);
  expect([...v.subarray(0, 16)]).toEqual([10, 10, 11, 11, 10, 10, 11, 11, 12, 12, 13, 13, 12, 12, 13, 13]);
  expect([...v.subarray(16, 20)]).toEqual([20, 20, IGNORE_INDEX, IGNORE_INDEX]);
  expect(visionRowTargets(regions, 2, 2, 1)).toBe(regions);
  // Two words per row: each patch takes both of its cell's.
  const two = visionRowTargets(Int32Array.from([1, 2, 3, 4, 5, 6, 7, 8]), 1, 4, 2, 2);
  expect([...two.subarray(0, 8)]).toEqual([1, 2, 1, 2, 3, 4, 3, 4]);
  expect([...two.subarray(24, 32)]).toEqual([5, 6, 5, 6, 7, 8, 7, 8]);
});

describe('bad input', () => {
  test('empty batch, wrong sizes, targets outside the vocabulary', async () => {
    const rt = await testRuntime();
    const vlm = new VLM(rt, CFG, tok);
    const trainer = new EncoderTrainer(vlm);
    const mb = randomBatch(vlm, 2, 3);
    await expectRejects(trainer.trainStep({ batch: 0, pixels: new Float32Array(0), targets: new Int32Array(0) }), 'EMPTY_DATASET');
    await expectRejects(trainer.trainStep({ ...mb, pixels: mb.pixels.subarray(1) }), 'SHAPE_MISMATCH');
    await expectRejects(trainer.trainStep({ ...mb, targets: mb.targets.subarray(1) }), 'SHAPE_MISMATCH');
    const bad = mb.targets.slice();
    bad[2] = vlm.cfg.decoder.vocab;
    await expectRejects(trainer.trainStep({ ...mb, targets: bad }), 'OUT_OF_RANGE');
    bad[2] = -1;
    await expectRejects(trainer.evaluate({ ...mb, targets: bad }), 'OUT_OF_RANGE');
    expect(trainer.step).toBe(0);
    trainer.destroy();
  });
});
