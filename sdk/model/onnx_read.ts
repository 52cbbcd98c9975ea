// Reading ONNX files: parse the ModelProto (onnx-proto), list the initializers by name with their
// dims, check the ops against what the engine runs, and load the decoder's weights from the
// initializers of decoder_model_merged.onnx (the engine runs that decoder itself, DESIGN §2).
// Name mapping (README: ONNX files of the model package): engine parameter `p` ↔ initializer `model.p`, same layout
// (W in×out, the MatMul B operand; embed_tokens.weight (vocab, d)).
import { EdgeTuneError } from '../errors.js';
import { ropeTable } from '../kernels/rope.js';
import type { LlamaDecoder } from '../nn/decoder.js';
import type { Param } from '../nn/module.js';
import type { onnx as OnnxNs } from 'onnx-proto';
import { BOOL, FLOAT, INT64, onnx } from './onnx_write.js';
import { CONNECTOR_PREFIX, DECODER_PREFIX, VISION_PREFIX } from './export.js';
import type { Connector, VisionEncoder } from '../nn/vit.js';

export interface OnnxInitializer {
  name: string;
  dims: number[];
  /** TensorProto.DataType: 1 float32, 7 int64, … */
  dataType: number;
  /** float32 initializers (others: null). */
  float: Float32Array | null;
  /** int64 initializers (others: null). */
  int64: BigInt64Array | null;
}

export interface OnnxModel {
  proto: OnnxNs.ModelProto;
  initializers: Map<string, OnnxInitializer>;
  /** Every node's op type, in graph order. */
  ops: string[];
  /** Graph inputs that are not initializers, and graph outputs. */
  inputs: string[];
  outputs: string[];
}

/** The ops decoder_model_merged.onnx may use for the engine to run it. */
export const DECODER_OPS: readonly string[] = [
  'MatMul', 'Add', 'Sub', 'Mul', 'Div', 'Sqrt', 'Neg', 'Pow', 'ReduceMean', 'Softmax', 'Sigmoid', 'Erf',
  'Reshape', 'Transpose', 'Concat', 'Gather', 'Slice', 'Unsqueeze', 'Expand', 'Shape', 'Cast', 'Range',
  'Equal', 'Less', 'LessOrEqual', 'And', 'Or', 'Where', 'Identity',
];

const HOW_TO_FIX = 're-export the model package (exportOnnxPackage) or download the file again';

function num(x: number | { toNumber(): number } | null | undefined): number {
  if (x == null) return 0;
  return typeof x === 'number' ? x : x.toNumber();
}

function bad(what: string, detail: string, cause?: unknown): EdgeTuneError {
  return new EdgeTuneError('BAD_ONNX', `${what} is not a valid ONNX model (${detail}); ${HOW_TO_FIX}`, cause ? { cause } : undefined);
}

function readInitializer(t: OnnxNs.ITensorProto, what: string): OnnxInitializer {
  const name = t.name ?? '';
  if (!name) throw bad(what, 'an initializer has no name');
  const dims = (t.dims ?? []).map((d) => num(d as number));
  if (dims.some((d) => !Number.isInteger(d) || d < 0)) throw bad(what, `initializer ${name} has dims [${dims.join(', ')}]`);
  const count = dims.reduce((a, b) => a * b, 1);
  const dataType = t.dataType ?? 0;
  const raw = t.rawData && t.rawData.length > 0 ? t.rawData : null;
  const init: OnnxInitializer = { name, dims, dataType, float: null, int64: null };
  if (t.dataLocation === onnx.TensorProto.DataLocation.EXTERNAL) throw bad(what, `initializer ${name} keeps its data in an external file, which is not supported`);
  if (dataType === FLOAT) {
    if (raw) {
      if (raw.length !== count * 4) throw bad(what, `initializer ${name} holds ${raw.length} bytes, its dims [${dims.join(', ')}] need ${count * 4}: the file is truncated or corrupt`);
      init.float = new Float32Array(new Uint8Array(raw).buffer);
    } else {
      const f = t.floatData ?? [];
      if (f.length !== count) throw bad(what, `initializer ${name} holds ${f.length} floats, its dims need ${count}`);
      init.float = Float32Array.from(f);
    }
  } else if (dataType === INT64) {
    if (raw) {
      if (raw.length !== count * 8) throw bad(what, `initializer ${name} holds ${raw.length} bytes, its dims need ${count * 8}`);
      init.int64 = new BigInt64Array(new Uint8Array(raw).buffer);
    } else {
      const f = t.int64Data ?? [];
      if (f.length !== count) throw bad(what, `initializer ${name} holds ${f.length} int64 values, its dims need ${count}`);
      init.int64 = BigInt64Array.from(f.map((v) => BigInt(num(v as number))));
    }
  } else if (dataType === 0 || dataType > 16) {
    throw bad(what, `initializer ${name} has the unknown data type ${dataType}`);
  } else if (dataType === BOOL && raw && raw.length !== count) {
    throw bad(what, `initializer ${name} holds ${raw.length} bytes, its dims need ${count}`);
  }
  return init;
}

/** Parses an ONNX file's bytes; BAD_ONNX for anything that is not a whole, well-formed model. */
export function parseOnnx(bytes: Uint8Array, what = 'the file'): OnnxModel {
  if (!(bytes instanceof Uint8Array) || bytes.length === 0) throw bad(what, 'it is empty');
  let proto: OnnxNs.ModelProto;
  try {
    proto = onnx.ModelProto.decode(bytes);
  } catch (e) {
    throw bad(what, `protobuf decoding failed: ${(e as Error).message}; the file may be truncated`, e);
  }
  const ir = num(proto.irVersion as number);
  if (ir < 3 || ir > 20) throw bad(what, `IR version ${ir}`);
  if (!proto.opsetImport?.length) throw bad(what, 'it imports no opset');
  const graph = proto.graph;
  if (!graph || !graph.node?.length) throw bad(what, 'it has no graph nodes');
  if (!graph.output?.length) throw bad(what, 'its graph has no outputs');
  const initializers = new Map<string, OnnxInitializer>();
  for (const t of graph.initializer ?? []) {
    const init = readInitializer(t, what);
    initializers.set(init.name, init);
  }
  const produced = new Set<string>([...initializers.keys(), ...(graph.input ?? []).map((v) => v.name ?? '')]);
  for (const n of graph.node) {
    if (!n.opType) throw bad(what, 'a node has no op type');
    for (const i of n.input ?? []) if (i && !produced.has(i)) throw bad(what, `node ${n.name ?? n.opType} reads ${i}, which nothing before it produces: the file is truncated or corrupt`);
    for (const o of n.output ?? []) produced.add(o);
  }
  for (const o of graph.output) if (!produced.has(o.name ?? '')) throw bad(what, `output ${o.name} is produced by no node`);
  return {
    proto,
    initializers,
    ops: graph.node.map((n) => n.opType!),
    inputs: (graph.input ?? []).map((v) => v.name ?? '').filter((n) => !initializers.has(n)),
    outputs: graph.output.map((v) => v.name ?? ''),
  };
}

/** UNSUPPORTED_OP for the first op outside `supported` (or outside the default ONNX domain). */
export function checkOps(model: OnnxModel, supported: readonly string[] = DECODER_OPS, what = 'the decoder'): void {
  for (const n of model.proto.graph!.node!) {
    const op = n.opType!;
    if ((n.domain && n.domain !== 'ai.onnx') || !supported.includes(op)) {
      throw new EdgeTuneError('UNSUPPORTED_OP', `${what} uses the op ${n.domain ? `${n.domain}::` : ''}${op} (node ${n.name ?? '?'}), which the engine does not run; supported: ${supported.join(', ')}. Export it with exportOnnxPackage or a Llama-family exporter that uses standard ops`);
    }
  }
}

/** The initializer name of a decoder parameter. */
export function decoderInitializerName(param: string): string {
  return DECODER_PREFIX + param;
}

/**
 * Loads every base weight of `decoder` from the initializers of decoder_model_merged.onnx
 * (bytes or a parsed model). BAD_ONNX when the file is corrupt or holds no decoder,
 * UNSUPPORTED_OP for ops the engine does not run, BAD_CONFIG when the initializers (shapes,
 * layer count, LM head, RoPE tables) do not match the decoder's config. Nothing is written
 * unless every weight checks out.
 */
export function loadDecoderWeights(decoder: LlamaDecoder, file: Uint8Array | OnnxModel, what = 'decoder_model_merged.onnx'): void {
  const model = file instanceof Uint8Array ? parseOnnx(file, what) : file;
  checkOps(model, DECODER_OPS, what);
  const writes: [Param, Float32Array][] = [];
  for (const p of decoder.params()) {
    if (p.name.includes('.adapter.')) continue;
    const name = decoderInitializerName(p.name);
    const init = model.initializers.get(name);
    if (!init) {
      // Not a decoder file at all (e.g. embed_tokens.onnx) vs a decoder of another config.
      if (!model.initializers.has(decoderInitializerName('layers.0.input_layernorm.weight'))) throw bad(what, `it holds no decoder weights (no ${name})`);
      throw new EdgeTuneError('BAD_CONFIG', `${what}: it has no initializer ${name} for the decoder's ${p.name} (fewer layers, or a tied LM head, than config ${JSON.stringify(decoder.cfg)} says): the config.json does not match the ONNX file`);
    }
    const want = [...p.value.shape];
    if (!init.float) throw new EdgeTuneError('BAD_CONFIG', `${what}: initializer ${name} is not float32 (data type ${init.dataType})`);
    if (init.dims.length !== want.length || init.dims.some((d, i) => d !== want[i])) {
      throw new EdgeTuneError('BAD_CONFIG', `${what}: initializer ${name} has shape [${init.dims.join(', ')}] but the config ${JSON.stringify(decoder.cfg)} needs [${want.join(', ')}]: the config.json does not match the ONNX file`);
    }
    writes.push([p, init.float]);
  }
  // Every decoder initializer must belong to this config: extra layers or an untied head the
  // config does not have would otherwise be dropped without a word.
  const expected = new Set(decoder.params().filter((p) => !p.name.includes('.adapter.')).map((p) => decoderInitializerName(p.name)));
  for (const name of model.initializers.keys()) {
    if (name.startsWith(DECODER_PREFIX) && !expected.has(name)) {
      throw new EdgeTuneError('BAD_CONFIG', `${what}: initializer ${name} has no place in the decoder of config ${JSON.stringify(decoder.cfg)} (more layers, or an untied LM head, than the config says): the config.json does not match the ONNX file`);
    }
  }
  checkRopeTables(decoder, model, what);
  for (const [p, data] of writes) p.value.write(data);
}

/** BAD_CONFIG when the file's RoPE tables (rope.cos / rope.sin) are not those of the config's ropeTheta and maxPositions. */
function checkRopeTables(decoder: LlamaDecoder, model: OnnxModel, what: string): void {
  const cos = model.initializers.get('rope.cos'), sin = model.initializers.get('rope.sin');
  if (!cos || !sin) return;
  const { maxPositions: P, ropeTheta } = decoder.cfg;
  const dh = decoder.cfg.dModel / decoder.cfg.heads, half = dh / 2;
  const why = `${what}: its RoPE tables do not match the config's ropeTheta ${ropeTheta} and maxPositions ${P}: the config.json does not match the ONNX file`;
  for (const t of [cos, sin]) if (!t.float || t.dims.length !== 2 || t.dims[0] !== P || t.dims[1] !== dh) throw new EdgeTuneError('BAD_CONFIG', why);
  const tab = ropeTable(dh, P, ropeTheta);
  for (let p = 0; p < P; p++) {
    for (let i = 0; i < dh; i++) {
      const k = i % half;
      if (Math.abs(cos.float![p * dh + i]! - tab[p * half + k]!) > 1e-6 || Math.abs(sin.float![p * dh + i]! - tab[(P + p) * half + k]!) > 1e-6) {
        throw new EdgeTuneError('BAD_CONFIG', why);
      }
    }
  }
}

/**
 * Loads the ViT and connector weights from the initializers of vision_encoder.onnx (for training
 * through the vision tower or checking it); the patch weight comes back from the Conv layout
 * (dv, C, p, p) to the engine's (C·p², dv), a stem's 3×3 weights from (Cout, Cin, 3, 3) to
 * (9·Cin, Cout). BAD_ONNX / BAD_CONFIG as loadDecoderWeights.
 */
export function loadVisionWeights(vit: VisionEncoder, connector: Connector, file: Uint8Array | OnnxModel, what = 'vision_encoder.onnx'): void {
  const model = file instanceof Uint8Array ? parseOnnx(file, what) : file;
  // The stem's downsampling leaves no trace in the initializers: count the graph's MaxPool nodes.
  if (vit.stem) {
    const pools = model.ops.filter((op) => op === 'MaxPool').length;
    const want = vit.stem.downsample === 'pool' ? vit.stem.channels.length : 0;
    if (pools !== want) throw new EdgeTuneError('BAD_CONFIG', `${what}: the graph has ${pools} MaxPool nodes but a ${vit.stem.channels.length}-stage stem with vision.stemDownsample '${vit.stem.downsample}' has ${want}: the config.json does not match the ONNX file`);
  }
  const writes: [Param, Float32Array][] = [];
  const expected = new Set<string>();
  const take = (params: Param[], prefix: string) => {
    for (const p of params) {
      const name = prefix + p.name;
      expected.add(name);
      const init = model.initializers.get(name);
      if (!init) {
        if (!model.initializers.has(`${VISION_PREFIX}embeddings.patch_embedding.weight`)) throw bad(what, `it holds no vision encoder weights (no ${name})`);
        throw new EdgeTuneError('BAD_CONFIG', `${what}: it has no initializer ${name} (config ${JSON.stringify(vit.cfg)}): the config.json does not match the ONNX file`);
      }
      // Conv weights come back from (Cout, Cin, k, k): the patch projection (k = p) and the stem's 3×3 stages.
      const [rows, cols] = p.value.shape as [number, number];
      const convShape = p.name === 'embeddings.patch_embedding.weight' ? [cols, vit.embed.channels, vit.embed.patch, vit.embed.patch]
        : /^embeddings\.stem\.\d+\.weight$/.test(p.name) ? [cols, rows / 9, 3, 3] : null;
      const want = convShape ?? [...p.value.shape];
      if (!init.float || init.dims.length !== want.length || init.dims.some((d, i) => d !== want[i])) {
        throw new EdgeTuneError('BAD_CONFIG', `${what}: initializer ${name} has shape [${init.dims.join(', ')}] but the config needs [${want.join(', ')}]: the config.json does not match the ONNX file`);
      }
      let data = init.float;
      if (convShape) {
        data = new Float32Array(rows * cols);
        for (let r = 0; r < rows; r++) for (let o = 0; o < cols; o++) data[r * cols + o] = init.float[o * rows + r]!;
      }
      writes.push([p, data]);
    }
  };
  take(vit.params(), VISION_PREFIX);
  take(connector.params(), CONNECTOR_PREFIX);
  for (const name of model.initializers.keys()) {
    if ((name.startsWith(VISION_PREFIX) || name.startsWith(CONNECTOR_PREFIX)) && !expected.has(name)) {
      throw new EdgeTuneError('BAD_CONFIG', `${what}: initializer ${name} has no place in the vision encoder of config ${JSON.stringify(vit.cfg)}: the config.json does not match the ONNX file`);
    }
  }
  for (const [p, data] of writes) p.value.write(data);
}
