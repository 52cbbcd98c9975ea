// The model package: save a VLM as config.json + tokenizer.json + ONNX files, load it back with
// VLM.load (weights from the ONNX initializers), and the errors of a bad package.
import { mkdtempSync, readFileSync, writeFileSync, cpSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, test } from 'vitest';
import { buildTokenizerJSON, createImage, Tokenizer } from '../sdk/index.js';
import { VLM, smokeVlmConfig } from '../sdk/model/vlm.js';
import { savePackage } from '../sdk/model/package.js';
import { randn } from './helpers/reference.js';
import { testRuntime } from './helpers/runtime.js';

async function savedModel() {
  const rt = await testRuntime();
  const tok = Tokenizer.fromJSON(buildTokenizerJSON());
  const vlm = new VLM(rt, smokeVlmConfig(tok.vocabSize), tok, 5);
  vlm.params().forEach((p, i) => p.value.write(randn(p.value.size, 900 + i, -0.3, 0.3)));
  const dir = mkdtempSync(path.join(tmpdir(), 'edgetune-pkg-'));
  await savePackage(vlm, dir);
  return { rt, vlm, dir };
}

function image() {
  const img = createImage(20, 12);
  for (let i = 0; i < img.data.length; i++) img.data[i] = (i * 37) % 256;
  return img;
}

describe('model package', () => {
  test('VLM.load gives the same answers as the saved model, image features from onnxruntime-web', async () => {
    const { rt, vlm, dir } = await savedModel();
    const loaded = await VLM.load(dir, { runtime: rt });
    expect(loaded.onnxVision).not.toBeNull();
    const engine = await VLM.load(dir, { runtime: rt, vision: 'engine' });
    expect(engine.onnxVision).toBeNull();
    const c = await engine.ask(image(), 'what shape is this?', { maxNewTokens: 6 });
    const a = await vlm.ask(image(), 'what shape is this?', { maxNewTokens: 6 });
    const b = await loaded.ask(image(), 'what shape is this?', { maxNewTokens: 6 });
    expect(b.tokens).toEqual(a.tokens);
    expect(Math.abs(b.logprob - a.logprob)).toBeLessThan(1e-4);
    expect(c.tokens).toEqual(a.tokens);
    expect(c.logprob).toBe(a.logprob);
    await expect(VLM.load(dir, { runtime: rt, vision: 'gpu' as never })).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
    for (const [p, q] of loaded.params().map((p, i) => [p, vlm.params()[i]!] as const)) {
      expect(p.name).toBe(q.name);
      expect(Array.from(await p.value.read())).toEqual(Array.from(await q.value.read()));
    }
  });

  test('an unknown family, a corrupt ONNX file, a config that does not match, a missing file', async () => {
    const { rt, dir } = await savedModel();
    const copy = (edit: (d: string) => void) => {
      const d = mkdtempSync(path.join(tmpdir(), 'edgetune-bad-'));
      cpSync(dir, d, { recursive: true });
      edit(d);
      return d;
    };
    const cfgOf = (d: string) => JSON.parse(readFileSync(path.join(d, 'config.json'), 'utf8'));
    const unknown = copy((d) => writeFileSync(path.join(d, 'config.json'), JSON.stringify({ ...cfgOf(d), family: 'gpt-17' })));
    await expect(VLM.load(unknown, { runtime: rt })).rejects.toMatchObject({ code: 'UNKNOWN_FAMILY' });
    const corrupt = copy((d) => writeFileSync(path.join(d, 'decoder_model_merged.onnx'), readFileSync(path.join(d, 'decoder_model_merged.onnx')).subarray(0, 1000)));
    await expect(VLM.load(corrupt, { runtime: rt })).rejects.toMatchObject({ code: 'BAD_ONNX' });
    const mismatch = copy((d) => {
      const c = cfgOf(d);
      c.decoder.dFf += 8;
      writeFileSync(path.join(d, 'config.json'), JSON.stringify(c));
    });
    await expect(VLM.load(mismatch, { runtime: rt })).rejects.toMatchObject({ code: 'BAD_CONFIG' });
    await expect(VLM.load(path.join(dir, 'nowhere'), { runtime: rt })).rejects.toMatchObject({ code: 'BAD_CONFIG' });
    const notJson = copy((d) => writeFileSync(path.join(d, 'config.json'), '{ nope'));
    await expect(VLM.load(notJson, { runtime: rt })).rejects.toThrow(/not valid JSON/);
  });
});
