// The tiny vision-language model (DESIGN §2.2; README: The tiny VLM):
//   pixels (B, 3, H, W) → VisionEncoder → (B·P, dv) → Connector → (B·P, d) → image rows of the
//   decoder's input → LlamaDecoder → logits.
// Sequence layout (sdk/model/prompt.ts): [P image rows] [<bos> question A:] [answer <eos>].
// `ask` answers a question about an image with KV-cache generation; boxes come back in the
// input image's pixel coordinates. Weights are saved as weights.json (config, names, shapes,
// offsets) + weights.bin (float32 little-endian), names under vision_model. /
// multi_modal_projector. / language_model. (the exporter maps them to ONNX initializers).
import { EdgeTuneError, expectDim } from '../errors.js';
import type { Batch } from '../gpu/launch.js';
import type { Runtime } from '../gpu/runtime.js';
import { Tensor } from '../gpu/tensor.js';
import { checkImage, toPixelValues, type RGBAImage } from '../data/image.js';
import { parseAnswer } from '../data/answer.js';
import type { LabeledBox } from '../data/types.js';
import { buildTokenizerJSON } from '../data/vocab.js';
import { LlamaDecoder, type DecoderConfig } from '../nn/decoder.js';
import { Activations, type Param } from '../nn/module.js';
import { Connector, VisionEncoder, type VisionConfig } from '../nn/vit.js';
import { generate } from './generate.js';
import { promptIds } from './prompt.js';
import { Tokenizer, type TokenizerJSON } from './tokenizer.js';

export interface VlmConfig {
  vision: VisionConfig;
  decoder: DecoderConfig;
  /** Per-channel normalisation of the pixels: (v/255 − mean) / std. */
  imageMean: [number, number, number];
  imageStd: [number, number, number];
}

/** The embedded model: 64×64 images in 8×8 patches (64 image rows), 4-layer decoder d = 128. */
export function tinyVlmConfig(vocab: number): VlmConfig {
  return {
    vision: { imageSize: 64, patch: 8, d: 96, layers: 3, heads: 4, dFf: 256 },
    decoder: { layers: 4, dModel: 128, heads: 4, kvHeads: 2, dFf: 344, vocab, ropeTheta: 10000, maxPositions: 128, tiedEmbeddings: true },
    imageMean: [0.5, 0.5, 0.5],
    imageStd: [0.5, 0.5, 0.5],
  };
}

/** A tiny configuration for tests and the smoke run: 16×16 images in 4×4 patches (16 rows). */
export function smokeVlmConfig(vocab: number): VlmConfig {
  return {
    vision: { imageSize: 16, patch: 4, d: 16, layers: 1, heads: 2, dFf: 32 },
    decoder: { layers: 2, dModel: 32, heads: 2, kvHeads: 1, dFf: 64, vocab, ropeTheta: 10000, maxPositions: 64, tiedEmbeddings: true },
    imageMean: [0.5, 0.5, 0.5],
    imageStd: [0.5, 0.5, 0.5],
  };
}

export interface AskOptions {
  maxNewTokens?: number;
  temperature?: number;
  topK?: number;
  seed?: number;
}

export interface AskResult {
  /** The answer without location tokens (for boxes: their labels joined with ` ; `). */
  text: string;
  /** The decoded answer as generated, location tokens included. */
  raw: string;
  /** Boxes in the input image's pixel coordinates. */
  boxes: LabeledBox[];
  /** Generated token ids (the final <eos> included when reached). */
  tokens: number[];
  /** Sum of the generated tokens' log-probabilities. */
  logprob: number;
}

interface WeightsIndex {
  format: 'edgetune-weights';
  version: 1;
  config: VlmConfig;
  tokenizer?: TokenizerJSON;
  tensors: { name: string; shape: number[]; offset: number }[];
}

export class VLM {
  readonly rt: Runtime;
  readonly cfg: VlmConfig;
  readonly tokenizer: Tokenizer;
  readonly vision: VisionEncoder;
  readonly connector: Connector;
  readonly decoder: LlamaDecoder;
  private readonly acts: Activations;

  constructor(rt: Runtime, cfg: VlmConfig, tokenizer?: Tokenizer, seed = 0) {
    this.rt = rt;
    this.cfg = cfg;
    this.tokenizer = tokenizer ?? Tokenizer.fromJSON(buildTokenizerJSON());
    if (cfg.decoder.vocab !== this.tokenizer.vocabSize) {
      throw new EdgeTuneError('BAD_CONFIG', `decoder vocab ${cfg.decoder.vocab} differs from the tokenizer's ${this.tokenizer.vocabSize} tokens`);
    }
    this.vision = new VisionEncoder(rt, cfg.vision, seed * 3 + 1);
    this.connector = new Connector(rt, { visionD: cfg.vision.d, d: cfg.decoder.dModel, seed: seed * 3 + 2 });
    this.decoder = new LlamaDecoder(rt, cfg.decoder, seed * 3 + 3);
    this.acts = new Activations(rt);
  }

  /** Image rows per sequence. */
  get patches(): number {
    return this.vision.patches;
  }

  /** Every parameter with its exported name. */
  params(): Param[] {
    return [...this.vision.params('vision_model'), ...this.connector.params('multi_modal_projector'), ...this.decoder.params('language_model')];
  }

  /** Base parameters only (no adapter tensors): what saveWeights writes. */
  baseParams(): Param[] {
    return this.params().filter((p) => !p.name.includes('.adapter.'));
  }

  /** pixels (B, 3, H, W) → image rows (B·P, d) in the decoder's width. */
  async encodeImages(batch: Batch, pixels: Tensor, images: number): Promise<Tensor> {
    const feats = await this.vision.forward(batch, pixels);
    return this.connector.forward(batch, feats, images * this.patches);
  }

  /** The pixel values the vision encoder eats for any image (resized and normalised). */
  pixelValues(image: RGBAImage): Float32Array {
    return toPixelValues(image, this.cfg.vision.imageSize, this.cfg.imageMean, this.cfg.imageStd);
  }

  /** Answers `question` about `image` ({ width, height, data RGBA }, any size). */
  async ask(image: RGBAImage, question: string, options: AskOptions = {}): Promise<AskResult> {
    checkImage(image);
    const prompt = promptIds(this.tokenizer, question);
    const maxNewTokens = options.maxNewTokens ?? 48;
    expectDim('maxNewTokens', maxNewTokens);
    const P = this.patches;
    const d = this.cfg.decoder.dModel;
    const n = P + prompt.length;
    if (n >= this.cfg.decoder.maxPositions) throw new EdgeTuneError('TOO_LARGE', `the question is too long: ${n} rows leave no room in the model's ${this.cfg.decoder.maxPositions} positions`);
    const pixels = this.acts.get('ask.pixels', [1, 3, this.cfg.vision.imageSize, this.cfg.vision.imageSize]);
    pixels.write(this.pixelValues(image));
    const ids = this.acts.get('ask.ids', [prompt.length], 'i32');
    ids.write(prompt);
    const rows = this.acts.get('ask.prompt', [n, d]);
    const batch = this.rt.batch('ask: image and prompt');
    const img = await this.encodeImages(batch, pixels, 1);
    const txt = await this.decoder.embedTokens(batch, ids);
    batch.copy(img.buffer, 0, rows.buffer, 0, P * d * 4);
    batch.copy(txt.buffer, 0, rows.buffer, P * d * 4, prompt.length * d * 4);
    await batch.submit();
    const g = await generate(this.decoder, rows, {
      maxNewTokens, stop: [this.tokenizer.eosId], prefix: n,
      temperature: options.temperature, topK: options.topK, seed: options.seed,
    });
    const raw = this.tokenizer.decode(g.tokens, { skipSpecial: true });
    const parsed = parseAnswer(raw, this.tokenizer.codec, { strict: false });
    const boxes = parsed.boxes.map((b) => ({ label: b.label, x0: b.x0 * image.width, y0: b.y0 * image.height, x1: b.x1 * image.width, y1: b.y1 * image.height }));
    return { text: parsed.boxes.length > 0 ? parsed.text : raw, raw, boxes, tokens: g.tokens, logprob: g.logprobs.reduce((a, b) => a + b, 0) };
  }

  /** The base weights as one float32 blob and its index (names, shapes, offsets in floats). */
  async exportWeights(): Promise<{ index: WeightsIndex; data: Float32Array }> {
    const ps = this.baseParams();
    let total = 0;
    const tensors = ps.map((p) => {
      const t = { name: p.name, shape: [...p.value.shape], offset: total };
      total += p.value.size;
      return t;
    });
    const data = new Float32Array(total);
    for (let i = 0; i < ps.length; i++) data.set(await ps[i]!.value.read(), tensors[i]!.offset);
    return { index: { format: 'edgetune-weights', version: 1, config: this.cfg, tokenizer: this.tokenizer.toJSON(), tensors }, data };
  }

  /** Writes exportWeights() into the parameters of this model (names and shapes must match). */
  importWeights(index: WeightsIndex, data: Float32Array): void {
    if (index?.format !== 'edgetune-weights' || index.version !== 1) throw new EdgeTuneError('BAD_CONFIG', 'not an edgetune weights index (format edgetune-weights, version 1)');
    const byName = new Map(index.tensors.map((t) => [t.name, t]));
    for (const p of this.baseParams()) {
      const t = byName.get(p.name);
      if (!t) throw new EdgeTuneError('BAD_CONFIG', `the weights have no tensor ${p.name}`);
      if (t.shape.join('x') !== p.value.shape.join('x')) throw new EdgeTuneError('SHAPE_MISMATCH', `${p.name}: weights have shape [${t.shape.join(', ')}], the model [${p.value.shape.join(', ')}]`);
      if (t.offset < 0 || t.offset + p.value.size > data.length) throw new EdgeTuneError('BAD_CONFIG', `${p.name} lies outside the weights data`);
      p.value.write(data.subarray(t.offset, t.offset + p.value.size));
    }
  }

  /** Node: writes weights.json and weights.bin into `dir`. */
  async saveWeights(dir: string): Promise<void> {
    const { index, data } = await this.exportWeights();
    await writeBlobFiles(dir, 'weights', index, data);
  }

  /** Node: reads weights.json and weights.bin from `dir` into this model. */
  async loadWeights(dir: string): Promise<void> {
    const { json, data } = await readBlobFiles(dir, 'weights');
    this.importWeights(json as WeightsIndex, data);
  }

  /**
   * A model package (config.json, tokenizer.json, the ONNX files): a directory in Node or a URL.
   * The weights come from the ONNX files' initializers.
   */
  static async load(source: string, options: { runtime?: Runtime } = {}): Promise<VLM> {
    const { loadPackage } = await import('./package.js');
    const { createRuntime } = await import('../gpu/runtime.js');
    return loadPackage(options.runtime ?? (await createRuntime()), source);
  }

  /** Node: a model built from the config (and tokenizer) saved in `dir`, with its weights. */
  static async fromWeights(rt: Runtime, dir: string): Promise<VLM> {
    const { json, data } = await readBlobFiles(dir, 'weights');
    const index = json as WeightsIndex;
    if (index?.format !== 'edgetune-weights') throw new EdgeTuneError('BAD_CONFIG', `${dir}/weights.json is not an edgetune weights index`);
    const vlm = new VLM(rt, index.config, index.tokenizer ? Tokenizer.fromJSON(index.tokenizer) : undefined);
    vlm.importWeights(index, data);
    return vlm;
  }
}

/** Node: `${name}.json` and `${name}.bin` (float32 little-endian) in dir, written atomically. */
export async function writeBlobFiles(dir: string, name: string, json: unknown, data: Float32Array): Promise<void> {
  const fs = await import('node:fs/promises');
  await fs.mkdir(dir, { recursive: true });
  const bytes = new Uint8Array(data.length * 4);
  const view = new DataView(bytes.buffer);
  for (let i = 0; i < data.length; i++) view.setFloat32(i * 4, data[i]!, true);
  await fs.writeFile(`${dir}/${name}.bin.tmp`, bytes);
  await fs.writeFile(`${dir}/${name}.json.tmp`, JSON.stringify(json));
  await fs.rename(`${dir}/${name}.bin.tmp`, `${dir}/${name}.bin`);
  await fs.rename(`${dir}/${name}.json.tmp`, `${dir}/${name}.json`);
}

/** Node: reads what writeBlobFiles wrote; BAD_CONFIG when missing or corrupt. */
export async function readBlobFiles(dir: string, name: string): Promise<{ json: unknown; data: Float32Array }> {
  const fs = await import('node:fs/promises');
  let text: string, bytes: Uint8Array;
  try {
    text = await fs.readFile(`${dir}/${name}.json`, 'utf8');
    bytes = await fs.readFile(`${dir}/${name}.bin`);
  } catch (e) {
    throw new EdgeTuneError('BAD_CONFIG', `cannot read ${dir}/${name}.json and .bin: ${(e as Error).message}`, { cause: e });
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new EdgeTuneError('BAD_CONFIG', `${dir}/${name}.json is not JSON: ${(e as Error).message}`, { cause: e });
  }
  if (bytes.length % 4 !== 0) throw new EdgeTuneError('BAD_CONFIG', `${dir}/${name}.bin has ${bytes.length} bytes, not whole float32s`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const data = new Float32Array(bytes.length / 4);
  for (let i = 0; i < data.length; i++) data[i] = view.getFloat32(i * 4, true);
  return { json, data };
}
