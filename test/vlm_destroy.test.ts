// VLM.destroy(): every buffer that a model and its use took (parameters, activations, generation
// caches, adapters) goes back to the runtime's pool, whose free buffers are then destroyed; later
// calls throw DESTROYED; a model that VLM.load gave a runtime of its own destroys that runtime;
// a package that fails to load leaves nothing behind.
import { cpSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, test } from 'vitest';
import { buildTokenizerJSON, createImage, Tokenizer } from '../sdk/index.js';
import { formatAnswer } from '../sdk/data/answer.js';
import { sampleSplit } from '../sdk/data/worlds.js';
import { savePackage } from '../sdk/model/package.js';
import { smokeVlmConfig, VLM, type VlmConfig } from '../sdk/model/vlm.js';
import { vlmBatch, VlmTrainer } from '../sdk/train/vlm_trainer.js';
import { EncoderTrainer } from '../sdk/train/encoder_pretrain.js';
import { testRuntime } from './helpers/runtime.js';

const tok = Tokenizer.fromJSON(buildTokenizerJSON());

/** Every module kind: a two-stage stem with its skip, merged patches, a GQA decoder. */
const CFG: VlmConfig = {
  vision: { imageSize: 16, patch: 4, d: 16, layers: 1, heads: 2, dFf: 24, stem: [4, 8], stemSkip: 0 },
  decoder: { layers: 2, dModel: 32, heads: 2, kvHeads: 1, dFf: 48, vocab: tok.vocabSize, ropeTheta: 10000, maxPositions: 64, tiedEmbeddings: true },
  imageMean: [0.5, 0.5, 0.5],
  imageStd: [0.5, 0.5, 0.5],
  merge: 2,
};

function image() {
  const img = createImage(20, 12);
  for (let i = 0; i < img.data.length; i++) img.data[i] = (i * 53) % 256;
  return img;
}

function items(vlm: VLM) {
  return [0, 1].map((i) => {
    const s = sampleSplit('general', 'train', i, { size: 16, types: ['locate'] });
    return { image: s.image, question: s.question, answer: formatAnswer(s, vlm.tokenizer.codec) };
  });
}

describe('VLM.destroy', () => {
  test('on a shared runtime: every buffer goes back, the free ones are destroyed, later calls throw DESTROYED', async () => {
    const rt = await testRuntime();
    const before = rt.pool.liveBytes;
    const vlm = new VLM(rt, CFG, tok, 3);
    const held = rt.pool.liveBytes - before;
    expect(held).toBeGreaterThan(0);
    await vlm.ask(image(), 'where is the red circle?', { maxNewTokens: 6, boxViews: 2 });
    const mb = vlmBatch(vlm, items(vlm));
    const full = new VlmTrainer(vlm, { mode: 'full', lr: 1e-3 });
    await full.trainStep(mb);
    full.destroy();
    // Adapter mode last: its adapters are still on the model when it is destroyed.
    const trainer = new VlmTrainer(vlm, { mode: 'adapter', adapter: { kind: 'lora', rank: 4, targets: ['q_proj', 'v_proj'] }, lr: 1e-2 });
    await trainer.trainStep(mb);
    // Activations, caches and the adapters add to what the parameters hold.
    expect(rt.pool.liveBytes - before).toBeGreaterThan(held);
    const allocated = rt.pool.allocatedBytes;

    await vlm.destroy();
    expect(vlm.destroyed).toBe(true);
    await expect(trainer.trainStep(mb)).rejects.toMatchObject({ code: 'DESTROYED' });
    trainer.destroy();
    expect(rt.pool.liveBytes).toBe(before);
    expect(rt.pool.allocatedBytes).toBeLessThan(allocated);
    await expect(vlm.ask(image(), 'what shape is this?')).rejects.toMatchObject({ code: 'DESTROYED' });
    await expect(vlm.exportWeights()).rejects.toMatchObject({ code: 'DESTROYED' });
    expect(() => new VlmTrainer(vlm, { mode: 'full', lr: 1e-3 })).toThrow(expect.objectContaining({ code: 'DESTROYED' }));
    expect(() => new EncoderTrainer(vlm, { lr: 1e-3 })).toThrow(expect.objectContaining({ code: 'DESTROYED' }));
    expect(rt.pool.liveBytes).toBe(before);
    await vlm.destroy();

    // The shared runtime still works: a new model on it answers as a model of the same seed did.
    const again = new VLM(rt, CFG, tok, 3);
    const twin = new VLM(rt, CFG, tok, 3);
    const a = await again.ask(image(), 'what shape is this?', { maxNewTokens: 4 });
    const b = await twin.ask(image(), 'what shape is this?', { maxNewTokens: 4 });
    expect(a.tokens).toEqual(b.tokens);
    await again.destroy();
    await twin.destroy();
    expect(rt.pool.liveBytes).toBe(before);
  });

  test('VLM.load without a runtime: destroy() releases the onnxruntime-web session and destroys the runtime it made', async () => {
    const rt = await testRuntime();
    const src = new VLM(rt, smokeVlmConfig(tok.vocabSize), tok, 5);
    const dir = mkdtempSync(path.join(tmpdir(), 'edgetune-destroy-'));
    await savePackage(src, dir);
    await src.destroy();
    const vlm = await VLM.load(dir);
    expect(vlm.ownsRuntime).toBe(true);
    expect(vlm.rt).not.toBe(rt);
    expect(vlm.onnxVision).not.toBeNull();
    await vlm.ask(image(), 'what shape is this?', { maxNewTokens: 4 });
    await vlm.destroy();
    expect(vlm.onnxVision).toBeNull();
    await expect(vlm.rt.lost).resolves.toMatchObject({ reason: 'destroyed' });
    await expect(vlm.ask(image(), 'what shape is this?')).rejects.toMatchObject({ code: 'DESTROYED' });

    // A package that fails to load on a shared runtime leaves no buffer behind.
    const before = rt.pool.liveBytes;
    const corrupt = mkdtempSync(path.join(tmpdir(), 'edgetune-destroy-bad-'));
    cpSync(dir, corrupt, { recursive: true });
    const onnx = path.join(corrupt, 'decoder_model_merged.onnx');
    writeFileSync(onnx, readFileSync(onnx).subarray(0, 2000));
    await expect(VLM.load(corrupt, { runtime: rt })).rejects.toMatchObject({ code: 'BAD_ONNX' });
    expect(rt.pool.liveBytes).toBe(before);
  });
});
