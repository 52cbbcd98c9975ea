// The whole decoder and its trainer: every parameter's gradient against finite differences
// (full and adapter modes), KV-cache generation against full recomputation, overfitting a
// small batch, a frozen base staying bit-identical, and no pipelines after the first step.
import { describe, expect, test } from 'vitest';
import { Tensor } from '../sdk/index.js';
import { LlamaDecoder, type AdapterConfig, type DecoderConfig } from '../sdk/nn/decoder.js';
import type { Param } from '../sdk/nn/module.js';
import { RopeTable } from '../sdk/nn/rope.js';
import { generate } from '../sdk/model/generate.js';
import { Trainer, type TrainBatch } from '../sdk/train/trainer.js';
import { randn, relError, rng } from './helpers/reference.js';
import { testRuntime } from './helpers/runtime.js';

const CFG: DecoderConfig = { layers: 2, dModel: 32, heads: 4, kvHeads: 2, dFf: 40, vocab: 23, ropeTheta: 10000, maxPositions: 32 };

function tokens(n: number, seed: number, vocab = CFG.vocab): Int32Array {
  const r = rng(seed);
  return Int32Array.from({ length: n }, () => Math.floor(r() * vocab));
}

/** A micro-batch of next-token prediction; a few rows ignored. */
function lmBatch(B: number, S: number, seed: number): TrainBatch {
  const ids = tokens(B * S, seed);
  const targets = new Int32Array(B * S);
  for (let b = 0; b < B; b++) for (let s = 0; s < S; s++) targets[b * S + s] = s + 1 < S ? ids[b * S + s + 1]! : -100;
  return { batch: B, seq: S, ids, targets, prefix: 2 };
}

/** Randomises every parameter (larger than the init, so every gradient is well above noise). */
async function randomise(params: Param[], seed: number, scale = 0.35): Promise<void> {
  params.forEach((p, i) => {
    const v = randn(p.value.size, seed + i, -scale, scale);
    if (/norm|layernorm/.test(p.name) && !p.name.includes('adapter')) for (let j = 0; j < v.length; j++) v[j] = 1 + v[j]!;
    p.value.write(v);
  });
}

/** Analytic gradients of one micro-batch (without an optimizer step). */
async function gradients(trainer: Trainer, mb: TrainBatch): Promise<Map<string, Float32Array>> {
  const rt = trainer.rt;
  const out = Tensor.zeros(rt, [4]);
  const batch = rt.batch('grads');
  trainer.optimizer.zeroGrads(batch);
  await trainer.recordMicro(batch, mb, out);
  await batch.submit();
  const g = new Map<string, Float32Array>();
  for (const p of trainer.optimizer.params) g.set(p.name, await p.grad!.read());
  out.release();
  return g;
}

/** Central differences at a few coordinates of every trainable parameter. */
async function checkFiniteDifferences(trainer: Trainer, mb: TrainBatch, perParam: number, seed: number, eps = 2e-2): Promise<number> {
  const g = await gradients(trainer, mb);
  const r = rng(seed);
  let checked = 0;
  for (const p of trainer.optimizer.params) {
    const value = await p.value.read();
    const grad = g.get(p.name)!;
    // Largest-gradient coordinate plus random ones.
    let arg = 0;
    for (let i = 1; i < grad.length; i++) if (Math.abs(grad[i]!) > Math.abs(grad[arg]!)) arg = i;
    const coords = [arg, ...Array.from({ length: perParam - 1 }, () => Math.floor(r() * grad.length))];
    for (const i of coords) {
      const orig = value[i]!;
      value[i] = orig + eps;
      p.value.write(value);
      const lp = (await trainer.evaluate(mb)).ce;
      value[i] = orig - eps;
      p.value.write(value);
      const lm = (await trainer.evaluate(mb)).ce;
      value[i] = orig;
      p.value.write(value);
      const fd = (lp - lm) / (2 * eps);
      const an = grad[i]!;
      // float32 forward: the difference quotient carries ~1e-4 absolute noise.
      expect(Math.abs(fd - an), `${p.name}[${i}] fd ${fd} analytic ${an}`).toBeLessThanOrEqual(5e-4 + 3e-2 * Math.abs(an));
      checked++;
    }
  }
  return checked;
}

describe('decoder gradients against finite differences', () => {
  test('full mode: every parameter', async () => {
    const rt = await testRuntime();
    const model = new LlamaDecoder(rt, CFG, 1);
    const trainer = new Trainer(rt, model, { mode: 'full' });
    await randomise(model.params(), 100);
    const n = await checkFiniteDifferences(trainer, lmBatch(2, 5, 7), 2, 3);
    expect(n).toBe(trainer.optimizer.params.length * 2);
    // embed, 2 × (2 norms + 7 projections), final norm (tied head).
    expect(trainer.optimizer.params.length).toBe(1 + 2 * 9 + 1);
    trainer.destroy();
  });

  for (const kind of ['lora', 'dual-lora'] as const) {
    test(`${kind} adapter mode: every adapter parameter`, async () => {
      const rt = await testRuntime();
      const model = new LlamaDecoder(rt, CFG, 2);
      await randomise(model.params(), 200);
      const adapter: AdapterConfig = { kind, rank: 3, targets: ['q_proj', 'v_proj', 'down_proj'] };
      const trainer = new Trainer(rt, model, { mode: 'adapter', adapter });
      // B = 0 at init would zero dA (and dT, dγ, dβ): give B values too.
      await randomise(trainer.optimizer.params, 300, 0.3);
      const names = trainer.optimizer.params.map((p) => p.name);
      expect(names.every((n) => n.includes('.adapter.'))).toBe(true);
      expect(names.length).toBe(2 * 3 * (kind === 'lora' ? 2 : 5));
      // A small step: the ReLU gate of Dual-LoRA has kinks that a wide difference may straddle.
      await checkFiniteDifferences(trainer, lmBatch(2, 4, 9), 1, 5, 4e-3);
      trainer.destroy();
    });
  }
});

describe('generation', () => {
  test('KV-cache generation equals full recomputation', async () => {
    const rt = await testRuntime();
    const model = new LlamaDecoder(rt, CFG, 3);
    await randomise(model.params(), 400, 0.3);
    const prompt = tokens(6, 11);
    const gen = await generate(model, prompt, { maxNewTokens: 8, keepLogits: true, prefix: 3 });
    expect(gen.tokens.length).toBe(8);
    // Full recomputation over prompt + generated tokens.
    const all = Int32Array.from([...prompt, ...gen.tokens]);
    const S = all.length;
    const positions = Tensor.from(rt, RopeTable.sequential(1, S), [S]);
    const batch = rt.batch('full');
    const e = await model.embedTokens(batch, all);
    const logits = await model.forward(batch, e, { batch: 1, seq: S, positions, prefix: 3 });
    await batch.submit();
    const full = await rt.readF32(logits.buffer, S * CFG.vocab);
    for (let j = 0; j < gen.tokens.length; j++) {
      const row = full.subarray((prompt.length - 1 + j) * CFG.vocab, (prompt.length + j) * CFG.vocab);
      let best = 0;
      for (let i = 1; i < row.length; i++) if (row[i]! > row[best]!) best = i;
      expect(gen.tokens[j]).toBe(best);
      const cached = gen.logits![j]!;
      for (let i = 0; i < CFG.vocab; i++) expect(Math.abs(cached[i]! - row[i]!)).toBeLessThanOrEqual(1e-4 * Math.max(1, Math.abs(row[i]!)));
      expect(gen.logprobs[j]).toBeLessThanOrEqual(0);
    }
    positions.release();
  });

  test('stop tokens end generation; sampling is seeded', async () => {
    const rt = await testRuntime();
    const model = new LlamaDecoder(rt, CFG, 4);
    await randomise(model.params(), 500, 0.3);
    const prompt = tokens(4, 12);
    const greedy = await generate(model, prompt, { maxNewTokens: 6 });
    const stopped = await generate(model, prompt, { maxNewTokens: 6, stop: [greedy.tokens[1]!] });
    expect(stopped.tokens).toEqual(greedy.tokens.slice(0, greedy.tokens.indexOf(greedy.tokens[1]!) + 1));
    const s1 = await generate(model, prompt, { maxNewTokens: 6, temperature: 1.5, topK: 5, seed: 9 });
    const s2 = await generate(model, prompt, { maxNewTokens: 6, temperature: 1.5, topK: 5, seed: 9 });
    expect(s1.tokens).toEqual(s2.tokens);
    expect(s1.logprobs).toEqual(s2.logprobs);
  });
});

describe('training', () => {
  test('200 steps overfit a small batch', async () => {
    const rt = await testRuntime();
    const model = new LlamaDecoder(rt, { ...CFG, layers: 2 }, 5);
    const trainer = new Trainer(rt, model, { mode: 'full', lr: 1e-2, weightDecay: 0, schedule: { lr: 1e-2, warmup: 10, total: 200, minLr: 1e-3 } });
    const mb = lmBatch(2, 8, 13);
    let first = 0, last = 0;
    for (let i = 0; i < 200; i++) {
      const r = await trainer.trainStep(mb);
      if (i === 0) first = r.loss;
      last = r.loss;
      expect(r.skipped).toBe(false);
    }
    expect(first).toBeGreaterThan(2.5);
    expect(last).toBeLessThan(0.05);
    trainer.destroy();
  }, 600_000);

  test('adapter mode leaves every base weight bit-identical and trains the adapter', async () => {
    const rt = await testRuntime();
    const model = new LlamaDecoder(rt, CFG, 6);
    const before = new Map<string, Float32Array>();
    for (const p of model.params()) before.set(p.name, await p.value.read());
    const trainer = new Trainer(rt, model, { mode: 'adapter', adapter: { kind: 'lora', rank: 4 }, lr: 1e-2 });
    const mb = lmBatch(2, 6, 14);
    const first = await trainer.trainStep(mb);
    let last = first;
    for (let i = 0; i < 10; i++) last = await trainer.trainStep(mb);
    expect(last.loss).toBeLessThan(first.loss);
    for (const p of model.params()) {
      if (p.name.includes('.adapter.')) continue;
      expect(p.grad, p.name).toBeNull();
      const now = await p.value.read();
      expect(Buffer.from(now.buffer).equals(Buffer.from(before.get(p.name)!.buffer)), p.name).toBe(true);
    }
    expect(trainer.optimizer.stateBytes).toBeLessThan(model.params().filter((p) => !p.name.includes('.adapter.')).reduce((s, p) => s + p.value.size * 4, 0));
    trainer.destroy();
  });

  for (const mode of ['full', 'adapter'] as const) {
    test(`${mode} mode, after the first step: no new pipelines, no new memory`, async () => {
      const rt = await testRuntime();
      const model = new LlamaDecoder(rt, CFG, 7);
      const trainer = new Trainer(rt, model, { mode, adapter: { kind: 'dual-lora', rank: 4 } });
      const a = lmBatch(2, 6, 15), b = lmBatch(2, 6, 16);
      const r1 = await trainer.trainStep([a, b]);
      const r2 = await trainer.trainStep([a, b]);
      const r3 = await trainer.trainStep([a, b]);
      expect(r1.peakBytes).toBeGreaterThan(0);
      expect(r2.newPipelines).toBe(0);
      expect(r3.newPipelines).toBe(0);
      expect(r3.pooledBytes).toBe(r2.pooledBytes);
      expect(r3.step).toBe(3);
      trainer.destroy();
    });
  }

  test('gradient accumulation: two micro-batches in one encoder add their gradients', async () => {
    const rt = await testRuntime();
    const model = new LlamaDecoder(rt, CFG, 9);
    await randomise(model.params(), 600, 0.3);
    const trainer = new Trainer(rt, model, { mode: 'full' });
    const a = lmBatch(2, 5, 18), b = lmBatch(2, 5, 19);
    const ga = await gradients(trainer, a);
    const gb = await gradients(trainer, b);
    const out = [Tensor.zeros(rt, [4]), Tensor.zeros(rt, [4])];
    const batch = rt.batch('both');
    trainer.optimizer.zeroGrads(batch);
    await trainer.recordMicro(batch, a, out[0]!, 0);
    await trainer.recordMicro(batch, b, out[1]!, 1);
    await batch.submit();
    for (const p of trainer.optimizer.params) {
      const both = await p.grad!.read();
      const sum = ga.get(p.name)!.map((x, i) => x + gb.get(p.name)![i]!);
      expect(relError(both, sum), p.name).toBeLessThan(1e-4);
    }
    out.forEach((t) => t.release());
    trainer.destroy();
  });

  test('bad targets and ids are refused before anything runs', async () => {
    const rt = await testRuntime();
    const trainer = new Trainer(rt, new LlamaDecoder(rt, CFG, 10), { mode: 'full' });
    const mb = lmBatch(1, 4, 20);
    await expect(trainer.trainStep({ ...mb, targets: Int32Array.of(1, 2, 3, CFG.vocab) })).rejects.toMatchObject({ code: 'OUT_OF_RANGE' });
    await expect(trainer.trainStep({ ...mb, ids: Int32Array.of(1, -2, 3, 4) })).rejects.toMatchObject({ code: 'OUT_OF_RANGE' });
    await expect(trainer.trainStep({ ...mb, ids: Int32Array.of(1, 2) })).rejects.toMatchObject({ code: 'SHAPE_MISMATCH' });
    await expect(trainer.trainStep([])).rejects.toMatchObject({ code: 'EMPTY_DATASET' });
    trainer.destroy();
  });

  test('a non-finite loss skips the step and changes nothing', async () => {
    const rt = await testRuntime();
    const model = new LlamaDecoder(rt, CFG, 8);
    const trainer = new Trainer(rt, model, { mode: 'full' });
    const w = model.layers[0]!.base.q_proj.weight.value;
    const v = await w.read();
    v[5] = Number.NaN;
    w.write(v);
    const before = await Promise.all(model.params().map((p) => p.value.read()));
    const r = await trainer.trainStep(lmBatch(1, 5, 17));
    expect(r.skipped).toBe(true);
    const after = await Promise.all(model.params().map((p) => p.value.read()));
    after.forEach((x, i) => expect(Buffer.from(x.buffer).equals(Buffer.from(before[i]!.buffer))).toBe(true));
    trainer.destroy();
  });
});
