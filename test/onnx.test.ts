// ONNX export and reading: the engine's decoder and ViT + connector against onnxruntime-web (wasm)
// running the exported files (with and without the KV cache, with a full-attention prefix and
// right padding), the engine loading the decoder back from the ONNX initializers, and bad files.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as ort from 'onnxruntime-web';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { Tensor, type Runtime } from '../sdk/index.js';
import { LlamaDecoder, type DecoderConfig } from '../sdk/nn/decoder.js';
import type { Param } from '../sdk/nn/module.js';
import { Connector, VisionEncoder, type VisionConfig } from '../sdk/nn/vit.js';
import { exportDecoder, exportOnnxPackage, exportVisionEncoder, type ExportedPackage } from '../sdk/model/export.js';
import { DECODER_OPS, loadDecoderWeights, loadVisionWeights, parseOnnx } from '../sdk/model/onnx_read.js';
import { onnx } from '../sdk/model/onnx_write.js';
import { randn, rng } from './helpers/reference.js';
import { testRuntime } from './helpers/runtime.js';

const DCFG: DecoderConfig = { layers: 2, dModel: 32, heads: 4, kvHeads: 2, dFf: 48, vocab: 40, ropeTheta: 10000, maxPositions: 32 };
const VCFG: VisionConfig = { imageSize: 16, patch: 4, d: 24, layers: 2, heads: 2, dFf: 40 };
const TOL = 1e-3;
const HD = DCFG.dModel / DCFG.heads;

ort.env.wasm.numThreads = 1;

/** U(−0.3, 0.3) weights, norms' γ around 1. */
function randomise(params: Param[], seed: number): void {
  params.forEach((p, i) => {
    const v = randn(p.value.size, seed + i, -0.3, 0.3);
    if (/norm/.test(p.name) && p.name.endsWith('weight')) for (let j = 0; j < v.length; j++) v[j] = 1 + v[j]!;
    p.value.write(v);
  });
}

function ids(n: number, seed: number): Int32Array {
  const r = rng(seed);
  return Int32Array.from({ length: n }, () => Math.floor(r() * DCFG.vocab));
}

const i64 = (a: ArrayLike<number>, dims: number[]) => new ort.Tensor('int64', BigInt64Array.from(Array.from(a, (x) => BigInt(x))), dims);
const f32 = (a: Float32Array, dims: number[]) => new ort.Tensor('float32', a, dims);

function maxDiff(a: ArrayLike<number>, b: ArrayLike<number>, rows?: (r: number) => boolean, width = 1): number {
  expect(a.length).toBe(b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) {
    if (rows && !rows(Math.floor(i / width))) continue;
    const d = Math.abs(a[i]! - b[i]!);
    if (!(d <= m)) m = Number.isNaN(d) ? Infinity : d;
  }
  return m;
}

let rt: Runtime;
let decoder: LlamaDecoder;
let vit: VisionEncoder;
let conn: Connector;
let dir: string;
let files: ExportedPackage;
let decoderBytes: Uint8Array;
let sessions: { decoder: ort.InferenceSession; embed: ort.InferenceSession; vision: ort.InferenceSession };
/** Parity figures, printed at the end (README: ONNX files, parity). */
const figures: Record<string, number> = {};

beforeAll(async () => {
  rt = await testRuntime();
  decoder = new LlamaDecoder(rt, DCFG, 1);
  randomise(decoder.params(), 1000);
  vit = new VisionEncoder(rt, VCFG, 2);
  conn = new Connector(rt, { visionD: VCFG.d, d: DCFG.dModel, seed: 3, merge: 2, grid: VCFG.imageSize / VCFG.patch });
  randomise([...vit.params(), ...conn.params()], 2000);
  dir = mkdtempSync(join(tmpdir(), 'edgetune-onnx-'));
  files = await exportOnnxPackage(dir, { decoder, vision: vit, connector: conn });
  decoderBytes = readFileSync(files.decoder);
  const open = (p: string) => ort.InferenceSession.create(readFileSync(p), { executionProviders: ['wasm'] });
  sessions = { decoder: await open(files.decoder), embed: await open(files.embed), vision: await open(files.vision!) };
});

afterAll(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
  console.log('onnx parity (max abs diff):', JSON.stringify(figures));
});

/** Engine: token embeddings and logits of a full forward (B·S rows). */
async function engineFull(model: LlamaDecoder, tokens: Int32Array, B: number, S: number, mask: { prefix?: number[]; lengths?: number[] }) {
  const pos = Tensor.from(rt, Int32Array.from({ length: B * S }, (_, i) => i % S), [B * S]);
  const batch = rt.batch('full');
  const e = await model.embedTokens(batch, tokens);
  const logits = await model.forward(batch, e, { batch: B, seq: S, positions: pos, prefix: mask.prefix, lengths: mask.lengths });
  await batch.submit();
  const out = { embeds: await rt.readF32(e.buffer, B * S * DCFG.dModel), logits: await rt.readF32(logits.buffer, B * S * DCFG.vocab) };
  pos.release();
  return out;
}

function emptyPast(B: number): Record<string, ort.Tensor> {
  const feeds: Record<string, ort.Tensor> = {};
  for (let i = 0; i < DCFG.layers; i++) {
    for (const kv of ['key', 'value']) feeds[`past_key_values.${i}.${kv}`] = f32(new Float32Array(0), [B, DCFG.kvHeads, 0, HD]);
  }
  return feeds;
}

describe('decoder_model_merged.onnx against the engine', () => {
  test('embed_tokens.onnx gives the engine embeddings; full sequence with a prefix and padding', async () => {
    const B = 2, S = 10, prefix = [4, 6], lengths = [10, 8];
    const tok = ids(B * S, 5);
    const eng = await engineFull(decoder, tok, B, S, { prefix, lengths });
    const emb = await sessions.embed.run({ input_ids: i64(tok, [B, S]) });
    expect(maxDiff(emb.inputs_embeds!.data as Float32Array, eng.embeds)).toBe(0);
    const amask = Array.from({ length: B * S }, (_, i) => (i % S < lengths[Math.floor(i / S)]! ? 1 : 0));
    const out = await sessions.decoder.run({
      inputs_embeds: f32(eng.embeds, [B, S, DCFG.dModel]), attention_mask: i64(amask, [B, S]),
      position_ids: i64(Array.from({ length: B * S }, (_, i) => i % S), [B, S]), prefix_length: i64(prefix, [B]), ...emptyPast(B),
    });
    expect(out.logits!.dims).toEqual([B, S, DCFG.vocab]);
    expect(out['present.1.key']!.dims).toEqual([B, DCFG.kvHeads, S, HD]);
    // Padded query rows are undefined in both (the engine writes 0): compare the valid rows.
    const d = maxDiff(out.logits!.data as Float32Array, eng.logits, (r) => amask[r] === 1, DCFG.vocab);
    figures.decoderFullPrefix = d;
    expect(d).toBeLessThanOrEqual(TOL);
    // The prefix matters: a causal run differs from the engine's prefix run.
    const causal = await sessions.decoder.run({
      inputs_embeds: f32(eng.embeds, [B, S, DCFG.dModel]), attention_mask: i64(amask, [B, S]),
      position_ids: i64(Array.from({ length: B * S }, (_, i) => i % S), [B, S]), prefix_length: i64([0], [1]), ...emptyPast(B),
    });
    expect(maxDiff(causal.logits!.data as Float32Array, eng.logits, (r) => amask[r] === 1, DCFG.vocab)).toBeGreaterThan(1e-2);
  });

  test('prefix_length [0] (one for the whole batch) is the causal mask', async () => {
    const B = 1, S = 9;
    const tok = ids(S, 6);
    const eng = await engineFull(decoder, tok, B, S, {});
    const out = await sessions.decoder.run({
      inputs_embeds: f32(eng.embeds, [B, S, DCFG.dModel]), attention_mask: i64(new Array(S).fill(1), [B, S]),
      position_ids: i64(Array.from({ length: S }, (_, i) => i), [B, S]), prefix_length: i64([0], [1]), ...emptyPast(B),
    });
    const d = maxDiff(out.logits!.data as Float32Array, eng.logits);
    figures.decoderFullCausal = d;
    expect(d).toBeLessThanOrEqual(TOL);
  });

  test('KV cache: prefill with a prefix, then two single-token steps feeding present → past', async () => {
    const B = 2, P = 6, prefix = [3, 5];
    const cache = decoder.newCache(B);
    const all = ids(B * (P + 2), 7);
    const tokAt = (b: number, s: number) => all[b * (P + 2) + s]!;
    let past = emptyPast(B);
    let worst = 0;
    for (let step = 0; step < 3; step++) {
      const start = step === 0 ? 0 : P + step - 1;
      const n = step === 0 ? P : 1;
      const tok = Int32Array.from({ length: B * n }, (_, i) => tokAt(Math.floor(i / n), start + (i % n)));
      const posArr = Int32Array.from({ length: B * n }, (_, i) => start + (i % n));
      const pos = Tensor.from(rt, posArr, [B * n]);
      const batch = rt.batch('cached');
      const e = await decoder.embedTokens(batch, tok);
      const logits = await decoder.forwardCached(batch, e, cache, { batch: B, n, positions: pos, prefix });
      await batch.submit();
      const embeds = await rt.readF32(e.buffer, B * n * DCFG.dModel);
      const engLogits = await rt.readF32(logits.buffer, B * n * DCFG.vocab);
      pos.release();
      const T = start + n;
      const out = await sessions.decoder.run({
        inputs_embeds: f32(embeds, [B, n, DCFG.dModel]), attention_mask: i64(new Array(B * T).fill(1), [B, T]),
        position_ids: i64(posArr, [B, n]), prefix_length: i64(prefix, [B]), ...past,
      });
      const d = maxDiff(out.logits!.data as Float32Array, engLogits);
      worst = Math.max(worst, d);
      expect(d, `step ${step}`).toBeLessThanOrEqual(TOL);
      past = {};
      for (let i = 0; i < DCFG.layers; i++) {
        for (const kv of ['key', 'value']) {
          const t = out[`present.${i}.${kv}`]!;
          expect(t.dims).toEqual([B, DCFG.kvHeads, T, HD]);
          past[`past_key_values.${i}.${kv}`] = t;
        }
      }
    }
    figures.decoderCached = worst;
    cache.release();
  });

  test('an untied LM head: parity, reload, and a tied config refusing it', async () => {
    const cfg = { ...DCFG, tiedEmbeddings: false };
    const untied = new LlamaDecoder(rt, cfg, 4);
    randomise(untied.params(), 3000);
    expect(untied.params().some((p) => p.name === 'lm_head.weight')).toBe(true);
    const bytes = await exportDecoder(untied);
    const session = await ort.InferenceSession.create(bytes, { executionProviders: ['wasm'] });
    const B = 1, S = 7;
    const eng = await engineFull(untied, ids(S, 9), B, S, { prefix: [2] });
    const out = await session.run({
      inputs_embeds: f32(eng.embeds, [B, S, DCFG.dModel]), attention_mask: i64(new Array(S).fill(1), [B, S]),
      position_ids: i64(Array.from({ length: S }, (_, i) => i), [B, S]), prefix_length: i64([2], [1]), ...emptyPast(B),
    });
    figures.decoderUntied = maxDiff(out.logits!.data as Float32Array, eng.logits);
    expect(figures.decoderUntied).toBeLessThanOrEqual(TOL);
    const fresh = new LlamaDecoder(rt, cfg, 5);
    loadDecoderWeights(fresh, bytes);
    const again = await engineFull(fresh, ids(S, 9), B, S, { prefix: [2] });
    expect(Buffer.from(again.logits.buffer).equals(Buffer.from(eng.logits.buffer))).toBe(true);
    expect(() => loadDecoderWeights(new LlamaDecoder(rt, DCFG, 6), bytes)).toThrow(expect.objectContaining({ code: 'BAD_CONFIG', message: expect.stringMatching(/lm_head/) }));
    expect(() => loadDecoderWeights(new LlamaDecoder(rt, cfg, 7), decoderBytes)).toThrow(expect.objectContaining({ code: 'BAD_CONFIG', message: expect.stringMatching(/lm_head/) }));
    await session.release();
  });
});

describe('vision_encoder.onnx against the engine', () => {
  test('image features (patches merged 2×2) and every hidden state', async () => {
    const B = 2, N = vit.patches, R = conn.rowsPer(N);
    const px = randn(B * 3 * VCFG.imageSize * VCFG.imageSize, 11, -1, 1);
    const pixels = Tensor.from(rt, px, [B, 3, VCFG.imageSize, VCFG.imageSize]);
    const batch = rt.batch('vit');
    const f = await vit.forward(batch, pixels);
    const y = await conn.forward(batch, f, B * N);
    await batch.submit();
    const feats = await rt.readF32(y.buffer, B * R * DCFG.dModel);
    const hidden = await Promise.all(vit.hiddenStates.map((h) => rt.readF32(h.buffer, B * N * VCFG.d)));
    pixels.release();
    const out = await sessions.vision.run({ pixel_values: f32(px, [B, 3, VCFG.imageSize, VCFG.imageSize]) });
    expect(out.image_features!.dims).toEqual([B, R, DCFG.dModel]);
    figures.imageFeatures = maxDiff(out.image_features!.data as Float32Array, feats);
    expect(figures.imageFeatures).toBeLessThanOrEqual(TOL);
    expect(hidden.length).toBe(VCFG.layers + 1);
    hidden.forEach((h, i) => {
      const o = out[`hidden_states.${i}`]!;
      expect(o.dims).toEqual([B, N, VCFG.d]);
      const d = maxDiff(o.data as Float32Array, h);
      figures[`hiddenStates${i}`] = d;
      expect(d, `hidden_states.${i}`).toBeLessThanOrEqual(TOL);
    });
  });
});

describe('vision_encoder.onnx of a hybrid ViT (convolutional stem) against the engine', () => {
  // 20×20 images, stages of 5 and 7 channels → a 5×5 map of tokens, one decoder row each.
  const SCFG: VisionConfig = { imageSize: 20, patch: 4, d: 24, layers: 2, heads: 2, dFf: 40, stem: [5, 7] };
  const N = 25;
  const build = (seed: number, cfg = SCFG) => ({ v: new VisionEncoder(rt, cfg, seed), c: new Connector(rt, { visionD: cfg.d, d: DCFG.dModel, seed: seed + 1, grid: 5 }) });
  async function engine(v: VisionEncoder, c: Connector, px: Float32Array, B: number) {
    const pixels = Tensor.from(rt, px, [B, 3, SCFG.imageSize, SCFG.imageSize]);
    const batch = rt.batch('hybrid vit');
    const y = await c.forward(batch, await v.forward(batch, pixels), B * N);
    await batch.submit();
    const out = { feats: await rt.readF32(y.buffer, B * N * DCFG.dModel), hidden: await Promise.all(v.hiddenStates.map((h) => rt.readF32(h.buffer, B * N * SCFG.d))) };
    pixels.release();
    return out;
  }

  test.each([['pool', false, null], ['stride', false, null], ['pool', true, null], ['pool', false, 0], ['stride', false, 0]] as const)('%s stem (Conv → GELU → MaxPool, or stride-2 Conv → GELU; coordinate channels: %s; stem skip from stage %s), then the ViT: features and hidden states; the weights load back', async (ds, coords, skip) => {
    const cfg: VisionConfig = { ...SCFG, stemDownsample: ds, stemCoords: coords, ...(skip !== null && { stemSkip: skip }) };
    const { v, c } = build(20, cfg);
    expect(v.patches).toBe(N);
    randomise([...v.params(), ...c.params()], 3000);
    const bytes = await exportVisionEncoder(v, c);
    const model = parseOnnx(bytes, 'hybrid');
    const ops = new Set(model.ops);
    expect(ops.has('Conv') && ops.has('Erf')).toBe(true);
    expect(model.ops.filter((op) => op === 'MaxPool').length).toBe(ds === 'pool' ? 2 : 0);
    // Coordinates: each stage's Conv reads its input concatenated with the expanded coordinate channels.
    expect(model.ops.filter((op) => op === 'Expand').length).toBe(coords ? 2 : 0);
    const session = await ort.InferenceSession.create(bytes, { executionProviders: ['wasm'] });
    const B = 2;
    const px = randn(B * 3 * SCFG.imageSize ** 2, 21, -1, 1);
    const eng = await engine(v, c, px, B);
    const out = await session.run({ pixel_values: f32(px, [B, 3, SCFG.imageSize, SCFG.imageSize]) });
    expect(out.image_features!.dims).toEqual([B, N, DCFG.dModel]);
    const key = (coords ? 'coordHybrid' : ds === 'pool' ? 'hybrid' : 'stridedHybrid') + (skip !== null ? 'Skip' : '');
    figures[`${key}ImageFeatures`] = maxDiff(out.image_features!.data as Float32Array, eng.feats);
    expect(figures[`${key}ImageFeatures`]).toBeLessThanOrEqual(TOL);
    eng.hidden.forEach((h, i) => {
      const d = maxDiff(out[`hidden_states.${i}`]!.data as Float32Array, h);
      figures[`${key}HiddenStates${i}`] = d;
      expect(d, `hidden_states.${i}`).toBeLessThanOrEqual(TOL);
    });
    const back = build(30, cfg);
    loadVisionWeights(back.v, back.c, model);
    const again = await engine(back.v, back.c, px, B);
    expect(Buffer.from(again.feats.buffer).equals(Buffer.from(eng.feats.buffer))).toBe(true);
    // A config whose stem differs from the file's: BAD_CONFIG, naming the mismatch.
    expect(() => loadVisionWeights(build(40, { ...cfg, stem: [5, 6] }).v, back.c, model)).toThrow(expect.objectContaining({ code: 'BAD_CONFIG' }));
    // The same weights under the other downsampling: BAD_CONFIG, naming the MaxPool count.
    expect(() => loadVisionWeights(build(41, { ...cfg, stemDownsample: ds === 'pool' ? 'stride' : 'pool' }).v, back.c, model)).toThrow(/MaxPool/);
    // With and without coordinate channels the stem's weights differ in shape: BAD_CONFIG.
    expect(() => loadVisionWeights(build(42, { ...cfg, stemCoords: !coords }).v, back.c, model)).toThrow(expect.objectContaining({ code: 'BAD_CONFIG' }));
    // With and without the stem skip: its initializer is missing or has no place.
    const { stemSkip: _, ...noSkip } = cfg;
    expect(() => loadVisionWeights(build(43, skip === null ? { ...cfg, stemSkip: 0 } : noSkip).v, back.c, model)).toThrow(/stem_skip/);
    expect(() => loadVisionWeights(vit, conn, model)).toThrow(expect.objectContaining({ code: 'BAD_CONFIG' }));
  });
});

describe('reading ONNX', () => {
  test('the ViT and connector load back from vision_encoder.onnx: identical features', async () => {
    const bytes = readFileSync(files.vision!);
    const v2 = new VisionEncoder(rt, VCFG, 12);
    const c2 = new Connector(rt, { visionD: VCFG.d, d: DCFG.dModel, seed: 13, merge: 2, grid: VCFG.imageSize / VCFG.patch });
    loadVisionWeights(v2, c2, bytes);
    const px = randn(3 * VCFG.imageSize * VCFG.imageSize, 14);
    const run = async (v: VisionEncoder, c: Connector) => {
      const pixels = Tensor.from(rt, px, [1, 3, VCFG.imageSize, VCFG.imageSize]);
      const batch = rt.batch('vit');
      const y = await c.forward(batch, await v.forward(batch, pixels), v.patches);
      await batch.submit();
      const out = await rt.readF32(y.buffer, c.rowsPer(v.patches) * DCFG.dModel);
      pixels.release();
      return out;
    };
    const a = await run(vit, conn), b = await run(v2, c2);
    expect(Buffer.from(b.buffer).equals(Buffer.from(a.buffer))).toBe(true);
    expect(() => loadVisionWeights(new VisionEncoder(rt, { ...VCFG, layers: 1 }, 15), c2, bytes)).toThrow(expect.objectContaining({ code: 'BAD_CONFIG' }));
    expect(() => loadVisionWeights(new VisionEncoder(rt, { ...VCFG, patch: 8 }, 16), c2, bytes)).toThrow(expect.objectContaining({ code: 'BAD_CONFIG' }));
    expect(() => loadVisionWeights(v2, c2, decoderBytes)).toThrow(expect.objectContaining({ code: 'BAD_ONNX' }));
  });

  test('the engine loads the decoder from the ONNX initializers: identical logits', async () => {
    const model = parseOnnx(decoderBytes);
    expect(model.ops.every((op) => DECODER_OPS.includes(op))).toBe(true);
    expect(model.initializers.get('model.layers.0.self_attn.k_proj.weight')!.dims).toEqual([DCFG.dModel, DCFG.kvHeads * HD]);
    expect(model.inputs).toContain('inputs_embeds');
    const fresh = new LlamaDecoder(rt, DCFG, 77);
    loadDecoderWeights(fresh, decoderBytes);
    for (const p of decoder.params()) {
      const q = fresh.params().find((x) => x.name === p.name)!;
      expect(Buffer.from((await q.value.read()).buffer).equals(Buffer.from((await p.value.read()).buffer)), p.name).toBe(true);
    }
    const tok = ids(16, 8);
    const a = await engineFull(decoder, tok, 2, 8, { prefix: [3, 3] });
    const b = await engineFull(fresh, tok, 2, 8, { prefix: [3, 3] });
    expect(Buffer.from(b.logits.buffer).equals(Buffer.from(a.logits.buffer))).toBe(true);
  });

  test('random bytes and truncated files are BAD_ONNX', () => {
    const r = rng(21);
    const junk = Uint8Array.from({ length: 4096 }, () => Math.floor(r() * 256));
    expect(() => parseOnnx(junk)).toThrow(expect.objectContaining({ code: 'BAD_ONNX' }));
    for (let seed = 0; seed < 20; seed++) {
      const q = rng(100 + seed);
      const bytes = Uint8Array.from({ length: 16 + seed * 97 }, () => Math.floor(q() * 256));
      expect(() => parseOnnx(bytes), `junk ${seed}`).toThrow(expect.objectContaining({ code: 'BAD_ONNX' }));
    }
    expect(() => parseOnnx(new Uint8Array(0))).toThrow(expect.objectContaining({ code: 'BAD_ONNX' }));
    const fresh = new LlamaDecoder(rt, DCFG, 78);
    for (let k = 1; k < 64; k++) {
      const cut = decoderBytes.subarray(0, Math.floor((decoderBytes.length * k) / 64));
      expect(() => parseOnnx(cut), `cut at ${k}/64`).toThrow(expect.objectContaining({ code: 'BAD_ONNX' }));
    }
    for (const frac of [0.1, 0.5, 0.9, 0.999]) {
      const cut = decoderBytes.subarray(0, Math.floor(decoderBytes.length * frac));
      expect(() => loadDecoderWeights(fresh, cut), `cut at ${frac}`).toThrow(expect.objectContaining({ code: 'BAD_ONNX', message: expect.stringMatching(/re-export/) }));
    }
    // The embedding file has no decoder weights.
    expect(() => loadDecoderWeights(fresh, readFileSync(files.embed))).toThrow(expect.objectContaining({ code: 'BAD_ONNX' }));
  });

  test('an initializer shape that does not match the config is BAD_CONFIG; foreign ops are UNSUPPORTED_OP', async () => {
    const other = new LlamaDecoder(rt, { ...DCFG, dFf: 40 }, 79);
    expect(() => loadDecoderWeights(other, decoderBytes)).toThrow(expect.objectContaining({ code: 'BAD_CONFIG', message: expect.stringMatching(/gate_proj/) }));
    const wider = new LlamaDecoder(rt, { ...DCFG, vocab: 41 }, 80);
    expect(() => loadDecoderWeights(wider, decoderBytes)).toThrow(expect.objectContaining({ code: 'BAD_CONFIG' }));
    // More layers in the file than in the config, or fewer; a different rope_theta.
    expect(() => loadDecoderWeights(new LlamaDecoder(rt, { ...DCFG, layers: 3 }, 84), decoderBytes)).toThrow(expect.objectContaining({ code: 'BAD_CONFIG', message: expect.stringMatching(/layers\.2\./) }));
    expect(() => loadDecoderWeights(new LlamaDecoder(rt, { ...DCFG, layers: 1 }, 82), decoderBytes)).toThrow(expect.objectContaining({ code: 'BAD_CONFIG', message: expect.stringMatching(/layers\.1\./) }));
    expect(() => loadDecoderWeights(new LlamaDecoder(rt, { ...DCFG, ropeTheta: 500 }, 83), decoderBytes)).toThrow(expect.objectContaining({ code: 'BAD_CONFIG', message: expect.stringMatching(/RoPE/) }));
    // A contrib op (as in optimised exports) the engine does not run.
    const proto = onnx.ModelProto.decode(await exportDecoder(decoder));
    const node = proto.graph!.node.find((n) => n.opType === 'Softmax')!;
    node.opType = 'FusedSoftmax';
    node.domain = 'com.microsoft';
    const patched = onnx.ModelProto.encode(proto).finish();
    expect(() => loadDecoderWeights(new LlamaDecoder(rt, DCFG, 81), patched)).toThrow(expect.objectContaining({ code: 'UNSUPPORTED_OP', message: expect.stringMatching(/FusedSoftmax/) }));
  });
});
