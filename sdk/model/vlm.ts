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
import { toPixelValues, type RGBAImage } from '../data/image.js';
import { readImage, type ImageInput } from '../data/image_input.js';
import type { OnnxVision } from './onnx_vision.js';
import { parseAnswer } from '../data/answer.js';
import type { LabeledBox } from '../data/types.js';
import { buildTokenizerJSON } from '../data/vocab.js';
import { LlamaDecoder, type DecoderConfig } from '../nn/decoder.js';
import { Activations, type Param } from '../nn/module.js';
import { normalInit } from '../nn/init.js';
import { Connector, STEM_CONNECTOR_STD, VisionEncoder, type VisionConfig } from '../nn/vit.js';
import { generate } from './generate.js';
import { averageBoxes, checkBoxViews, DEFAULT_BOX_VIEWS, shiftPlanes, viewShifts } from './box_views.js';
import { promptIds } from './prompt.js';
import { Tokenizer, type TokenizerJSON } from './tokenizer.js';

export interface VlmConfig {
  vision: VisionConfig;
  decoder: DecoderConfig;
  /** Per-channel normalisation of the pixels: (v/255 − mean) / std. */
  imageMean: [number, number, number];
  imageStd: [number, number, number];
  /** Patches merged per side by the connector (pixel shuffle; default 1): P/merge² image rows. */
  merge?: number;
}

/**
 * The embedded model: a hybrid ViT (a 4-stage convolutional stem turns 64×64 images into a 4×4
 * map: 16 tokens, one image row each; 3 transformer layers) and a 4-layer decoder, d = 128.
 */
export function tinyVlmConfig(vocab: number): VlmConfig {
  return {
    vision: { imageSize: 64, patch: 16, d: 96, layers: 3, heads: 4, dFf: 256, stem: [16, 32, 64, 96] },
    decoder: { layers: 4, dModel: 128, heads: 4, kvHeads: 2, dFf: 344, vocab, ropeTheta: 10000, maxPositions: 128, tiedEmbeddings: true },
    imageMean: [0.5, 0.5, 0.5],
    imageStd: [0.5, 0.5, 0.5],
  };
}

/** A tiny configuration for tests and the smoke run: 16×16 images through a 2-stage stem (4×4 tokens, 16 rows), a stem skip from its first stage. */
export function smokeVlmConfig(vocab: number): VlmConfig {
  return {
    vision: { imageSize: 16, patch: 4, d: 16, layers: 1, heads: 2, dFf: 32, stem: [4, 8], stemSkip: 0 },
    decoder: { layers: 2, dModel: 32, heads: 2, kvHeads: 1, dFf: 64, vocab, ropeTheta: 10000, maxPositions: 64, tiedEmbeddings: true },
    imageMean: [0.5, 0.5, 0.5],
    imageStd: [0.5, 0.5, 0.5],
  };
}

export interface LoadOptions {
  /** The runtime to run the decoder (and training) on; default createRuntime(). */
  runtime?: Runtime;
  /** Where ask() computes image features: 'onnx' (default: vision_encoder.onnx on onnxruntime-web) or 'engine' (the WGSL ViT). */
  vision?: 'onnx' | 'engine';
  /** onnxruntime-web execution providers for the vision encoder (default ['wasm']). */
  executionProviders?: string[];
}

export interface AskOptions {
  maxNewTokens?: number;
  temperature?: number;
  topK?: number;
  seed?: number;
  /**
   * When the answer has boxes, average them over this many shifted views of the image
   * (sdk/model/box_views.ts; default DEFAULT_BOX_VIEWS = 4; 0: the boxes as generated). Each view
   * is one more vision forward and generation; text, tokens and logprob are the unshifted image's.
   */
  boxViews?: number;
}

export interface AskResult {
  /** The answer without location tokens (for boxes: their labels joined with ` ; `). */
  text: string;
  /** The decoded answer as generated for the image as given, location tokens included (boxes may be refined: AskOptions.boxViews). */
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
  /** Where ask() takes its image features from when set (VLM.load: vision_encoder.onnx on onnxruntime-web). */
  onnxVision: OnnxVision | null = null;
  /** Set by VLM.load when it created the runtime: destroy() then destroys the runtime too. */
  ownsRuntime = false;
  private dead = false;

  constructor(rt: Runtime, cfg: VlmConfig, tokenizer?: Tokenizer, seed = 0) {
    this.rt = rt;
    this.cfg = cfg;
    this.tokenizer = tokenizer ?? Tokenizer.fromJSON(buildTokenizerJSON());
    if (cfg.decoder.vocab !== this.tokenizer.vocabSize) {
      throw new EdgeTuneError('BAD_CONFIG', `decoder vocab ${cfg.decoder.vocab} differs from the tokenizer's ${this.tokenizer.vocabSize} tokens`);
    }
    this.vision = new VisionEncoder(rt, cfg.vision, seed * 3 + 1);
    this.connector = new Connector(rt, { visionD: cfg.vision.d, d: cfg.decoder.dModel, seed: seed * 3 + 2, merge: cfg.merge ?? 1, grid: cfg.vision.imageSize / cfg.vision.patch, initStd: cfg.vision.stem ? STEM_CONNECTOR_STD : undefined });
    this.decoder = new LlamaDecoder(rt, cfg.decoder, seed * 3 + 3);
    this.acts = new Activations(rt);
    this.initLocationEmbeddings(seed);
  }

  /**
   * Gives the location tokens' embeddings a 2D layout at init: for patch2d cell (row, col), a
   * random row (std 0.02, as every token) plus low-frequency sines of row (first half) and col
   * (second half) of the same norm, so neighbouring cells start close and far ones apart.
   */
  private initLocationEmbeddings(seed: number): void {
    const codec = this.tokenizer.codec;
    if (codec.kind !== 'patch2d') return;
    const d = this.cfg.decoder.dModel, G = codec.grid, half = Math.floor(d / 2), freqs = Math.floor(half / 2);
    if (freqs === 0) return;
    const noise = normalInit(G * G * d, 0.02, seed * 5 + 7);
    const amp = 0.02;
    const rows = new Float32Array(G * G * d);
    for (let cell = 0; cell < G * G; cell++) {
      const r = Math.floor(cell / G), c = cell % G;
      const o = cell * d;
      for (let k = 0; k < freqs; k++) {
        const w = (Math.PI / G) * (1 + (k * 7) / Math.max(1, freqs - 1));
        rows[o + 2 * k] = amp * Math.sin(w * (r + 0.5));
        rows[o + 2 * k + 1] = amp * Math.cos(w * (r + 0.5));
        rows[o + half + 2 * k] = amp * Math.sin(w * (c + 0.5));
        rows[o + half + 2 * k + 1] = amp * Math.cos(w * (c + 0.5));
      }
      for (let j = 0; j < d; j++) rows[o + j] += noise[o + j]!;
    }
    const table = this.decoder.embed.weight.value;
    this.rt.device.queue.writeBuffer(table.buffer, this.tokenizer.locOffset * d * 4, rows);
  }

  /** Whether destroy() ran: the model's buffers are gone and every call throws DESTROYED. */
  get destroyed(): boolean {
    return this.dead;
  }

  /** Throws DESTROYED once destroy() ran (trainers call it before recording a step). */
  assertAlive(): void {
    if (this.dead) throw new EdgeTuneError('DESTROYED', 'this model was destroyed (vlm.destroy()); load it again with VLM.load to use it');
  }

  /**
   * Frees the model: its parameters, activations and caches go back to the runtime's pool, whose
   * free buffers are then destroyed (rt.pool.trim()), and the onnxruntime-web session is released.
   * A model that VLM.load gave its own runtime destroys that runtime. Afterwards every call throws
   * DESTROYED; a second destroy() does nothing. Trainers made on the model cannot be used after it.
   */
  async destroy(): Promise<void> {
    if (this.dead) return;
    this.dead = true;
    const session = this.onnxVision;
    this.onnxVision = null;
    this.vision.release();
    this.connector.release();
    this.decoder.release();
    this.acts.clear();
    if (this.ownsRuntime) this.rt.destroy();
    else this.rt.pool.trim();
    await session?.release();
  }

  /** Image rows per sequence (the vision patches after the connector's merge). */
  get patches(): number {
    return this.connector.rowsPer(this.vision.patches);
  }

  /** Every parameter with its exported name. */
  params(): Param[] {
    this.assertAlive();
    return [...this.vision.params('vision_model'), ...this.connector.params('multi_modal_projector'), ...this.decoder.params('language_model')];
  }

  /** Base parameters only (no adapter tensors): what saveWeights writes. */
  baseParams(): Param[] {
    return this.params().filter((p) => !p.name.includes('.adapter.'));
  }

  /** pixels (B, 3, H, W) → image rows (B·P/merge², d) in the decoder's width. */
  async encodeImages(batch: Batch, pixels: Tensor, images: number): Promise<Tensor> {
    this.assertAlive();
    const feats = await this.vision.forward(batch, pixels);
    return this.connector.forward(batch, feats, images * this.vision.patches);
  }

  /** The pixel values the vision encoder eats for any image (resized and normalised). */
  pixelValues(image: RGBAImage): Float32Array {
    return toPixelValues(image, this.cfg.vision.imageSize, this.cfg.imageMean, this.cfg.imageStd);
  }

  /**
   * Answers `question` about `image`: ImageData, ImageBitmap, <img>, canvas, { width, height,
   * data RGBA }, PNG/JPEG bytes, or a path/URL (sdk/data/image_input.ts); any size. The image
   * features come from onnxruntime-web when the model was loaded from a package (`onnxVision`),
   * else from the engine's ViT.
   */
  async ask(input: ImageInput, question: string, options: AskOptions = {}): Promise<AskResult> {
    this.assertAlive();
    const prompt = promptIds(this.tokenizer, question);
    const image = await readImage(input);
    const maxNewTokens = options.maxNewTokens ?? 48;
    expectDim('maxNewTokens', maxNewTokens);
    const views = checkBoxViews(options.boxViews ?? DEFAULT_BOX_VIEWS);
    const n = this.patches + prompt.length;
    if (n >= this.cfg.decoder.maxPositions) throw new EdgeTuneError('TOO_LARGE', `the question is too long: ${n} rows leave no room in the model's ${this.cfg.decoder.maxPositions} positions`);
    const px = this.pixelValues(image);
    const g = await this.answerPixels(px, prompt, maxNewTokens, options);
    const { raw, parsed } = this.readAnswer(g.tokens);
    let found = parsed.boxes;
    if (found.length > 0 && views > 0) {
      // Boxes from shifted views (sdk/model/box_views.ts): each view's boxes moved back, then averaged.
      const size = this.cfg.vision.imageSize;
      const moved: LabeledBox[][] = [];
      for (const [dx, dy] of viewShifts(views, this.cfg.vision.patch)) {
        const v = await this.answerPixels(shiftPlanes(px, 3, size, size, dx, dy), prompt, maxNewTokens, options);
        moved.push(this.readAnswer(v.tokens).parsed.boxes.map((b) => ({ label: b.label, x0: b.x0 - dx / size, y0: b.y0 - dy / size, x1: b.x1 - dx / size, y1: b.y1 - dy / size })));
      }
      found = averageBoxes(found, moved);
    }
    const boxes = found.map((b) => ({ label: b.label, x0: b.x0 * image.width, y0: b.y0 * image.height, x1: b.x1 * image.width, y1: b.y1 * image.height }));
    return { text: parsed.boxes.length > 0 ? parsed.text : raw, raw, boxes, tokens: g.tokens, logprob: g.logprobs.reduce((a, b) => a + b, 0) };
  }

  /** Generated tokens as text (special tokens dropped) and that text parsed for boxes (non-strict). */
  private readAnswer(tokens: number[]) {
    const raw = this.tokenizer.decode(tokens, { skipSpecial: true });
    return { raw, parsed: parseAnswer(raw, this.tokenizer.codec, { strict: false }) };
  }

  /** Generates the answer to a prompt about one image's pixel values (the model's size, normalised). */
  private async answerPixels(px: Float32Array, prompt: Int32Array, maxNewTokens: number, options: AskOptions) {
    const P = this.patches;
    const d = this.cfg.decoder.dModel;
    const n = P + prompt.length;
    const ids = this.acts.get('ask.ids', [prompt.length], 'i32');
    ids.write(prompt);
    const rows = this.acts.get('ask.prompt', [n, d]);
    const batch = this.rt.batch('ask: image and prompt');
    if (this.onnxVision) {
      const f = await this.onnxVision.features(px, 1);
      if (f.data.length !== P * d) throw new EdgeTuneError('BAD_CONFIG', `vision_encoder.onnx gives image features [${f.dims.join(', ')}]; the config needs [1, ${P}, ${d}]`);
      this.rt.device.queue.writeBuffer(rows.buffer, 0, f.data as Float32Array<ArrayBuffer>);
    } else {
      const pixels = this.acts.get('ask.pixels', [1, 3, this.cfg.vision.imageSize, this.cfg.vision.imageSize]);
      pixels.write(px);
      const img = await this.encodeImages(batch, pixels, 1);
      batch.copy(img.buffer, 0, rows.buffer, 0, P * d * 4);
    }
    const txt = await this.decoder.embedTokens(batch, ids);
    batch.copy(txt.buffer, 0, rows.buffer, P * d * 4, prompt.length * d * 4);
    await batch.submit();
    return generate(this.decoder, rows, {
      maxNewTokens, stop: [this.tokenizer.eosId], prefix: n,
      temperature: options.temperature, topK: options.topK, seed: options.seed,
    });
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
    this.assertAlive();
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
  static async load(source: string, options: LoadOptions = {}): Promise<VLM> {
    const { loadPackage } = await import('./package.js');
    const { createRuntime } = await import('../gpu/runtime.js');
    if (options.runtime) return loadPackage(options.runtime, source, options);
    // A runtime of its own: destroyed with the model, or at once when loading fails.
    const rt = await createRuntime();
    try {
      const vlm = await loadPackage(rt, source, options);
      vlm.ownsRuntime = true;
      return vlm;
    } catch (e) {
      rt.destroy();
      throw e;
    }
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
