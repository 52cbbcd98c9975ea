// The model package (DESIGN §2.1): config.json, tokenizer.json and the three ONNX files.
//   savePackage(vlm, dir)       Node: writes every file (the ONNX files hold the weights)
//   loadPackage(rt, source)     a directory (Node) or a URL (fetch): builds the model from
//                               config.json and tokenizer.json and loads the decoder's weights
//                               from decoder_model_merged.onnx's initializers, the vision
//                               encoder's and connector's from vision_encoder.onnx; ask()
//                               takes its image features from vision_encoder.onnx run by
//                               onnxruntime-web unless { vision: 'engine' }.
// Errors: an unknown `family` → UNKNOWN_FAMILY; missing or unreadable files and configs that do
// not match the ONNX → BAD_CONFIG; corrupt ONNX → BAD_ONNX.
import { EdgeTuneError } from '../errors.js';
import { isRemote, readBytes } from '../io.js';
import type { Runtime } from '../gpu/runtime.js';
import { DECODER_FILE, exportOnnxPackage, VISION_FILE } from './export.js';
import { loadDecoderWeights, loadVisionWeights, parseOnnx } from './onnx_read.js';
import { Tokenizer } from './tokenizer.js';
import { VLM, type LoadOptions, type VlmConfig } from './vlm.js';
import { OnnxVision } from './onnx_vision.js';

export const FAMILY = 'edgetune-tiny-vlm';
export const FAMILIES: readonly string[] = [FAMILY];

export interface PackageConfig extends VlmConfig {
  family: string;
  /** The box codec of the location tokens (from the tokenizer). */
  boxCodec: unknown;
}

function readFile(source: string, name: string): Promise<Uint8Array> {
  return readBytes(name, 'BAD_CONFIG', isRemote(source) ? 'check the model URL' : `is ${source} a model package?`, source);
}

function parseJson(bytes: Uint8Array, what: string): unknown {
  try {
    return JSON.parse(new TextDecoder().decode(bytes));
  } catch (cause) {
    throw new EdgeTuneError('BAD_CONFIG', `${what} is not valid JSON (${(cause as Error).message}); re-export the model package`, { cause });
  }
}

/** Node: writes config.json, tokenizer.json and the ONNX files of `vlm` into `dir`. */
export async function savePackage(vlm: VLM, dir: string): Promise<void> {
  const fs = await import('node:fs/promises');
  const path = await import('node:path');
  await exportOnnxPackage(dir, { decoder: vlm.decoder, vision: vlm.vision, connector: vlm.connector });
  const config: PackageConfig = { family: FAMILY, ...vlm.cfg, boxCodec: vlm.tokenizer.codec };
  await fs.writeFile(path.join(dir, 'tokenizer.json'), JSON.stringify(vlm.tokenizer.toJSON()));
  await fs.writeFile(path.join(dir, 'config.json'), JSON.stringify(config, null, 2));
}

/**
 * Reads a package's weights from the initializers of its decoder and vision ONNX files into `vlm`
 * (BAD_ONNX for a corrupt file, BAD_CONFIG for one that does not match the model); returns the
 * vision file's bytes.
 */
export async function loadPackageWeights(vlm: VLM, source: string): Promise<Uint8Array> {
  loadDecoderWeights(vlm.decoder, parseOnnx(await readFile(source, DECODER_FILE), DECODER_FILE));
  const visionBytes = await readFile(source, VISION_FILE);
  loadVisionWeights(vlm.vision, vlm.connector, parseOnnx(visionBytes, VISION_FILE));
  return visionBytes;
}

/** Builds the VLM of a model package (directory or URL) with the weights of its ONNX files. */
export async function loadPackage(rt: Runtime, source: string, options: Pick<LoadOptions, 'vision' | 'executionProviders'> = {}): Promise<VLM> {
  if (typeof source !== 'string' || source.length === 0) throw new EdgeTuneError('INVALID_ARGUMENT', 'VLM.load needs a directory or a URL');
  const cfg = parseJson(await readFile(source, 'config.json'), 'config.json') as Partial<PackageConfig>;
  if (!cfg || typeof cfg !== 'object') throw new EdgeTuneError('BAD_CONFIG', 'config.json must hold an object');
  if (!FAMILIES.includes(cfg.family as string)) {
    throw new EdgeTuneError('UNKNOWN_FAMILY', `config.json names the model family ${JSON.stringify(cfg.family)}; this version of edgetune runs ${FAMILIES.join(', ')}`);
  }
  if (!cfg.vision || !cfg.decoder || !cfg.imageMean || !cfg.imageStd) {
    throw new EdgeTuneError('BAD_CONFIG', 'config.json lacks vision, decoder, imageMean or imageStd; re-export the model package');
  }
  const tokenizer = Tokenizer.fromJSON(parseJson(await readFile(source, 'tokenizer.json'), 'tokenizer.json'));
  if (cfg.merge !== undefined && !(Number.isInteger(cfg.merge) && cfg.merge >= 1)) throw new EdgeTuneError('BAD_CONFIG', `config.json: merge must be a positive integer, got ${JSON.stringify(cfg.merge)}`);
  const vlm = new VLM(rt, { vision: cfg.vision, decoder: cfg.decoder, imageMean: cfg.imageMean, imageStd: cfg.imageStd, merge: cfg.merge }, tokenizer);
  try {
    const visionBytes = await loadPackageWeights(vlm, source);
    if ((options.vision ?? 'onnx') === 'onnx') vlm.onnxVision = await OnnxVision.create(visionBytes, vlm.cfg.vision.imageSize, options.executionProviders);
    else if (options.vision !== 'engine') throw new EdgeTuneError('INVALID_ARGUMENT', `vision must be 'onnx' or 'engine', got ${JSON.stringify(options.vision)}`);
    return vlm;
  } catch (e) {
    // A package that fails to load leaves nothing on the GPU.
    await vlm.destroy();
    throw e;
  }
}
