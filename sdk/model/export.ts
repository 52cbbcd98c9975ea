// ONNX export of the model package (DESIGN §2.1, README: ONNX files), standard opset-17 ops only:
//   vision_encoder.onnx         pixel_values (B,3,H,W) → image_features (B,N,d) (ViT + connector),
//                               hidden_states.0…L (B,N,dv): patch embedding, then every layer
//   embed_tokens.onnx           input_ids (B,S) int64 → inputs_embeds (B,S,d)
//   decoder_model_merged.onnx   inputs_embeds (B,S,d), attention_mask (B,T) int64, position_ids
//                               (B,S) int64, past_key_values.i.key/value (B,Hkv,past,Dh),
//                               prefix_length (B or 1) int64 ([0]: causal)
//                               → logits (B,S,vocab), present.i.key/value (B,Hkv,T,Dh)
// Weights are written as the engine holds them (W in×out, the MatMul B operand) under the engine's
// parameter names with a `model.` (decoder), `vision_model.` or `multi_modal_projector.` prefix;
// onnx_read.ts maps them back. The decoder's mask: key j is seen by query s (absolute position
// past + s) when attention_mask[b, j] = 1 and (j ≤ past + s, or both lie below prefix_length[b]),
// the engine's causal + full-attention prefix (sdk/nn/attention.ts).
import { EdgeTuneError } from '../errors.js';
import { ropeTable } from '../kernels/rope.js';
import type { LlamaDecoder } from '../nn/decoder.js';
import type { Param } from '../nn/module.js';
import type { Connector, VisionEncoder } from '../nn/vit.js';
import { BOOL, FLOAT, GraphBuilder, INT64 } from './onnx_write.js';

export const VISION_FILE = 'vision_encoder.onnx';
export const EMBED_FILE = 'embed_tokens.onnx';
export const DECODER_FILE = 'decoder_model_merged.onnx';
export const DECODER_PREFIX = 'model.';
export const VISION_PREFIX = 'vision_model.';
export const CONNECTOR_PREFIX = 'multi_modal_projector.';

/** Host copies of the base parameters (adapters left out), by engine name. */
async function hostWeights(params: Param[]): Promise<Map<string, { data: Float32Array; shape: number[] }>> {
  const out = new Map<string, { data: Float32Array; shape: number[] }>();
  for (const p of params) {
    if (p.name.includes('.adapter.')) continue;
    out.set(p.name, { data: await p.value.read(), shape: [...p.value.shape] });
  }
  return out;
}

/** Adds every weight as an initializer named prefix + engine name; returns name → initializer name. */
function addWeights(g: GraphBuilder, w: Map<string, { data: Float32Array; shape: number[] }>, prefix: string, skip: (n: string) => boolean = () => false): (n: string) => string {
  for (const [n, { data, shape }] of w) if (!skip(n)) g.floatInit(prefix + n, shape, data);
  return (n: string) => {
    if (!w.has(n)) throw new EdgeTuneError('INVALID_ARGUMENT', `export: the model has no parameter ${n}`);
    return prefix + n;
  };
}

/** y = x / sqrt(mean(x²) + eps) ⊙ γ over the last axis. */
function rmsNorm(g: GraphBuilder, x: string, gamma: string, eps: number): string {
  const ms = g.op('ReduceMean', [g.op('Mul', [x, x])], { axes: [-1], keepdims: 1 });
  return g.op('Mul', [g.op('Div', [x, g.op('Sqrt', [g.op('Add', [ms, g.scalar(eps)])])]), gamma]);
}

/** y = (x − μ) / sqrt(var + eps) ⊙ γ + β over the last axis. */
function layerNorm(g: GraphBuilder, x: string, gamma: string, beta: string, eps: number): string {
  const xc = g.op('Sub', [x, g.op('ReduceMean', [x], { axes: [-1], keepdims: 1 })]);
  const v = g.op('ReduceMean', [g.op('Mul', [xc, xc])], { axes: [-1], keepdims: 1 });
  return g.op('Add', [g.op('Mul', [g.op('Div', [xc, g.op('Sqrt', [g.op('Add', [v, g.scalar(eps)])])]), gamma]), beta]);
}

/** Exact GELU: 0.5 x (1 + erf(x / √2)). */
function gelu(g: GraphBuilder, x: string): string {
  const e = g.op('Erf', [g.op('Div', [x, g.scalar(Math.SQRT2)])]);
  return g.op('Mul', [g.op('Mul', [x, g.scalar(0.5)]), g.op('Add', [e, g.scalar(1)])]);
}

function linear(g: GraphBuilder, x: string, w: string, b?: string): string {
  const y = g.op('MatMul', [x, w]);
  return b ? g.op('Add', [y, b]) : y;
}

/** (B, S, heads·Dh) → (B, heads, S, Dh). */
function splitHeads(g: GraphBuilder, x: string, heads: number, dh: number): string {
  return g.op('Transpose', [g.op('Reshape', [x, g.ints([0, 0, heads, dh])])], { perm: [0, 2, 1, 3] });
}

/** (B, heads, S, Dh) → (B, S, heads·Dh). */
function mergeHeads(g: GraphBuilder, x: string, width: number): string {
  return g.op('Reshape', [g.op('Transpose', [x], { perm: [0, 2, 1, 3] }), g.ints([0, 0, width])]);
}

/** softmax(q kᵀ / √Dh + mask) v for q (B,H,S,Dh), k and v (B,H,T,Dh), mask broadcasting to (B,H,S,T). */
function attend(g: GraphBuilder, q: string, k: string, v: string, dh: number, mask?: string): string {
  let s = g.op('Mul', [g.op('MatMul', [q, g.op('Transpose', [k], { perm: [0, 1, 3, 2] })]), g.scalar(1 / Math.sqrt(dh))]);
  if (mask) s = g.op('Add', [s, mask]);
  return g.op('MatMul', [g.op('Softmax', [s], { axis: -1 }), v]);
}

/** (B, Hkv, T, Dh) → (B, Hkv·G, T, Dh): kv head j serves query heads j·G … j·G + G − 1. */
function repeatKv(g: GraphBuilder, x: string, groups: number, heads: number, dh: number): string {
  if (groups === 1) return x;
  const e = g.op('Expand', [g.op('Unsqueeze', [x, g.ints([2])]), g.ints([1, 1, groups, 1, 1])]);
  return g.op('Reshape', [e, g.ints([0, heads, -1, dh])]);
}

/** The decoder as decoder_model_merged.onnx (KV cache in and out, full-attention prefix_length). */
export async function exportDecoder(decoder: LlamaDecoder): Promise<Uint8Array> {
  const cfg = decoder.cfg;
  const d = cfg.dModel, H = cfg.heads, Hkv = cfg.kvHeads, dh = d / H, G = H / Hkv;
  const g = new GraphBuilder('edgetune_decoder');
  const W = addWeights(g, await hostWeights(decoder.params()), DECODER_PREFIX);
  const eps = decoder.norm.eps;

  const embeds = g.input('inputs_embeds', FLOAT, ['batch', 'sequence', d]);
  const amask = g.input('attention_mask', INT64, ['batch', 'total_sequence']);
  const pos = g.input('position_ids', INT64, ['batch', 'sequence']);
  const past: { k: string; v: string }[] = [];
  for (let i = 0; i < cfg.layers; i++) {
    past.push({
      k: g.input(`past_key_values.${i}.key`, FLOAT, ['batch', Hkv, 'past_sequence', dh]),
      v: g.input(`past_key_values.${i}.value`, FLOAT, ['batch', Hkv, 'past_sequence', dh]),
    });
  }
  // prefix_length (B) or (1): the full-attention prefix per entry; [0] is plain causal. A required
  // input: onnxruntime-web refuses to feed an initializer-backed (defaulted) input.
  const prefix = g.input('prefix_length', INT64, ['prefix_batch']);

  // Mask (B or 1, 1, S, T): 0 where seen, −1e9 elsewhere.
  const S = g.op('Gather', [g.op('Shape', [embeds]), g.ints([1], true)], { axis: 0 });
  const T = g.op('Gather', [g.op('Shape', [amask]), g.ints([1], true)], { axis: 0 });
  const pastLen = g.op('Sub', [T, S]);
  const one = g.ints([1], true), zero = g.ints([0], true);
  const qpos = g.op('Reshape', [g.op('Add', [g.op('Range', [zero, S, one]), pastLen]), g.ints([1, 1, -1, 1])]);
  const kpos = g.op('Reshape', [g.op('Range', [zero, T, one]), g.ints([1, 1, 1, -1])]);
  const pre = g.op('Reshape', [prefix, g.ints([-1, 1, 1, 1])]);
  const inPrefix = g.op('And', [g.op('Less', [qpos, pre]), g.op('Less', [kpos, pre])]);
  const seen = g.op('Or', [g.op('LessOrEqual', [kpos, qpos]), inPrefix]);
  const valid = g.op('Cast', [g.op('Reshape', [amask, g.ints([0, 1, 1, -1])])], { to: BOOL });
  const mask = g.op('Where', [g.op('And', [seen, valid]), g.scalar(0), g.scalar(-1e9)]);

  // RoPE: the engine's float32 cos/sin table, each half repeated to the head width, gathered by position.
  const half = dh / 2, P = cfg.maxPositions;
  const tab = ropeTable(dh, P, cfg.ropeTheta);
  const cosFull = new Float32Array(P * dh), sinFull = new Float32Array(P * dh);
  for (let p = 0; p < P; p++) {
    for (let i = 0; i < half; i++) {
      cosFull[p * dh + i] = cosFull[p * dh + half + i] = tab[p * half + i]!;
      sinFull[p * dh + i] = sinFull[p * dh + half + i] = tab[(P + p) * half + i]!;
    }
  }
  const posCos = g.op('Unsqueeze', [g.op('Gather', [g.floatInit('rope.cos', [P, dh], cosFull), pos], { axis: 0 }), g.ints([1])]);
  const posSin = g.op('Unsqueeze', [g.op('Gather', [g.floatInit('rope.sin', [P, dh], sinFull), pos], { axis: 0 }), g.ints([1])]);
  const axis3 = g.ints([3]);
  const rope = (x: string) => {
    const x1 = g.op('Slice', [x, g.ints([0]), g.ints([half]), axis3]);
    const x2 = g.op('Slice', [x, g.ints([half]), g.ints([dh]), axis3]);
    const rot = g.op('Concat', [g.op('Neg', [x2]), x1], { axis: -1 });
    return g.op('Add', [g.op('Mul', [x, posCos]), g.op('Mul', [rot, posSin])]);
  };

  let x = embeds;
  for (let i = 0; i < cfg.layers; i++) {
    const n = (s: string) => W(`layers.${i}.${s}`);
    const h = rmsNorm(g, x, n('input_layernorm.weight'), eps);
    const q = rope(splitHeads(g, linear(g, h, n('self_attn.q_proj.weight')), H, dh));
    const k = rope(splitHeads(g, linear(g, h, n('self_attn.k_proj.weight')), Hkv, dh));
    const v = splitHeads(g, linear(g, h, n('self_attn.v_proj.weight')), Hkv, dh);
    const kAll = g.op('Concat', [past[i]!.k, k], { axis: 2 }, `present.${i}.key`);
    const vAll = g.op('Concat', [past[i]!.v, v], { axis: 2 }, `present.${i}.value`);
    const a = attend(g, q, repeatKv(g, kAll, G, H, dh), repeatKv(g, vAll, G, H, dh), dh, mask);
    x = g.op('Add', [x, linear(g, mergeHeads(g, a, d), n('self_attn.o_proj.weight'))]);
    const h2 = rmsNorm(g, x, n('post_attention_layernorm.weight'), eps);
    const gate = linear(g, h2, n('mlp.gate_proj.weight'));
    const act = g.op('Mul', [g.op('Mul', [gate, g.op('Sigmoid', [gate])]), linear(g, h2, n('mlp.up_proj.weight'))]);
    x = g.op('Add', [x, linear(g, act, n('mlp.down_proj.weight'))]);
  }
  const hn = rmsNorm(g, x, W('norm.weight'), eps);
  const head = decoder.lmHead.dense ? W('lm_head.weight') : g.op('Transpose', [W('embed_tokens.weight')], { perm: [1, 0] });
  g.op('MatMul', [hn, head], {}, 'logits');

  g.output('logits', FLOAT, ['batch', 'sequence', cfg.vocab]);
  for (let i = 0; i < cfg.layers; i++) {
    g.output(`present.${i}.key`, FLOAT, ['batch', Hkv, 'total_sequence', dh]);
    g.output(`present.${i}.value`, FLOAT, ['batch', Hkv, 'total_sequence', dh]);
  }
  return g.toBytes(`edgetune Llama decoder: ${JSON.stringify(cfg)}`);
}

/** The token embedding as embed_tokens.onnx. */
export async function exportEmbedTokens(decoder: LlamaDecoder): Promise<Uint8Array> {
  const g = new GraphBuilder('edgetune_embed_tokens');
  const w = await hostWeights(decoder.params().filter((q) => q.name === 'embed_tokens.weight'));
  const table = addWeights(g, w, DECODER_PREFIX)('embed_tokens.weight');
  const ids = g.input('input_ids', INT64, ['batch', 'sequence']);
  g.op('Gather', [table, ids], { axis: 0 }, 'inputs_embeds');
  g.output('inputs_embeds', FLOAT, ['batch', 'sequence', decoder.cfg.dModel]);
  return g.toBytes('edgetune token embedding');
}

/** The coordinate channels of an n×n map (NCHW, (2, n, n)): each pixel's column, then its row, as (2·i + 1)/n − 1. */
export function stemCoordinates(n: number): Float32Array {
  const out = new Float32Array(2 * n * n);
  for (let y = 0; y < n; y++) for (let x = 0; x < n; x++) {
    out[y * n + x] = (2 * x + 1) / n - 1;
    out[n * n + y * n + x] = (2 * y + 1) / n - 1;
  }
  return out;
}

/** The ViT and the connector as vision_encoder.onnx (image_features and every hidden state). */
export async function exportVisionEncoder(vit: VisionEncoder, connector: Connector): Promise<Uint8Array> {
  const cfg = vit.cfg;
  const dv = cfg.d, p = vit.embed.patch, C = vit.embed.channels, N = vit.patches, heads = cfg.heads, dh = dv / heads;
  const g = new GraphBuilder('edgetune_vision_encoder');
  const vw = await hostWeights(vit.params());
  // Conv weights (Cout, Cin, k, k) from the engine's (Cin·k², Cout), channel-major within a window:
  // the patch projection (k = p) and the stem's 3×3 convolutions.
  const toConv = (name: string, cin: number, k: number) => {
    const w = vw.get(name)!;
    const rows = cin * k * k, cout = w.data.length / rows;
    const conv = new Float32Array(w.data.length);
    for (let r = 0; r < rows; r++) for (let o = 0; o < cout; o++) conv[o * rows + r] = w.data[r * cout + o]!;
    vw.set(name, { data: conv, shape: [cout, cin, k, k] });
  };
  toConv('embeddings.patch_embedding.weight', C, p);
  const stem = vit.stem;
  stem?.channels.forEach((_, s) => toConv(`embeddings.stem.${s}.weight`, stem.convInChannels(s), 3));
  const V = addWeights(g, vw, VISION_PREFIX);
  const Cn = addWeights(g, await hostWeights(connector.params()), CONNECTOR_PREFIX);

  const pixels = g.input('pixel_values', FLOAT, ['batch', stem ? stem.inChannels : C, cfg.imageSize, cfg.imageSize]);
  // The stem: per stage Conv 3×3 (pad 1) → GELU → MaxPool 2×2, or Conv 3×3 at stride 2 → GELU
  // with the stage's leading pad (ConvStem.step: 1, or 0 with 1 after; ONNX pads are [top, left, bottom, right]).
  // With coordinates, each Conv's input is first concatenated with the constant coordinate channels
  // of its map (stem_coords.s, (1, 2, n, n): column, row, (2·i + 1)/n − 1), expanded to the batch.
  let map = pixels;
  let skipMap = '';
  const batchDim = stem?.coords ? g.op('Slice', [g.op('Shape', [pixels]), g.ints([0]), g.ints([1])]) : '';
  stem?.channels.forEach((_, s) => {
    const { stride, pad } = stem.step(s);
    if (stem.coords) {
      const n = cfg.imageSize / 2 ** s;
      const coords = g.floatInit(`stem_coords.${s}`, [1, 2, n, n], stemCoordinates(n));
      const shape = g.op('Concat', [batchDim, g.ints([2, n, n])], { axis: 0 });
      map = g.op('Concat', [map, g.op('Expand', [coords, shape])], { axis: 1 });
    }
    const z = g.op('Conv', [map, V(`embeddings.stem.${s}.weight`), V(`embeddings.stem.${s}.bias`)], { kernel_shape: [3, 3], pads: [pad, pad, 1, 1], ...(stride === 2 ? { strides: [2, 2] } : {}) });
    map = stride === 2 ? gelu(g, z) : g.op('MaxPool', [gelu(g, z)], { kernel_shape: [2, 2], strides: [2, 2] });
    if (s === cfg.stemSkip) skipMap = map;
  });
  const patches = g.op('Conv', [map, V('embeddings.patch_embedding.weight'), V('embeddings.patch_embedding.bias')], { kernel_shape: [p, p], strides: [p, p] });
  const tokens = g.op('Transpose', [g.op('Reshape', [patches, g.ints([0, dv, -1])])], { perm: [0, 2, 1] });
  let x = g.op('Add', [tokens, V('embeddings.position_embedding.weight')], {}, vit.skip ? undefined : 'hidden_states.0');
  if (vit.skip) {
    // The stem skip: stage stemSkip's map (B, C, g·k, g·k) → (B, C, g, k, g, k) → (B, g, g, k, k, C)
    // → (B, g·g, k²·C), each token's k×k cells side by side (StemSkip's column order), then · W.
    const { grid: gs, block: k, channels: c } = vit.skip;
    const cells = g.op('Reshape', [g.op('Transpose', [g.op('Reshape', [skipMap, g.ints([0, c, gs, k, gs, k])])], { perm: [0, 2, 4, 3, 5, 1] }), g.ints([0, gs * gs, k * k * c])]);
    x = g.op('Add', [x, g.op('MatMul', [cells, V('embeddings.stem_skip.weight')])], {}, 'hidden_states.0');
  }
  const eps = vit.postNorm.eps;
  vit.layers.forEach((layer, i) => {
    const n = (s: string) => V(`encoder.layers.${i}.${s}`);
    const h = layerNorm(g, x, n('layer_norm1.weight'), n('layer_norm1.bias'), layer.ln1.eps);
    const proj = (s: string) => splitHeads(g, linear(g, h, n(`self_attn.${s}.weight`), n(`self_attn.${s}.bias`)), heads, dh);
    const a = attend(g, proj('q_proj'), proj('k_proj'), proj('v_proj'), dh);
    x = g.op('Add', [x, linear(g, mergeHeads(g, a, dv), n('self_attn.out_proj.weight'), n('self_attn.out_proj.bias'))]);
    const h2 = layerNorm(g, x, n('layer_norm2.weight'), n('layer_norm2.bias'), layer.ln2.eps);
    const m = linear(g, gelu(g, linear(g, h2, n('mlp.fc1.weight'), n('mlp.fc1.bias'))), n('mlp.fc2.weight'), n('mlp.fc2.bias'));
    x = g.op('Add', [x, m], {}, `hidden_states.${i + 1}`);
  });
  const f = layerNorm(g, x, V('post_layernorm.weight'), V('post_layernorm.bias'), eps);
  // Pixel shuffle: (B, g·g, dv) → (B, g/m, m, g/m, m, dv) → (B, g/m, g/m, m, m, dv) → (B, P/m², m²·dv).
  const m = connector.merge, gs = connector.grid;
  const merged = m === 1 ? f : g.op('Reshape', [g.op('Transpose', [g.op('Reshape', [f, g.ints([0, gs / m, m, gs / m, m, dv])])], { perm: [0, 1, 3, 2, 4, 5] }), g.ints([0, N / (m * m), m * m * dv])]);
  const c1 = gelu(g, linear(g, merged, Cn('linear_1.weight'), Cn('linear_1.bias')));
  g.op('Add', [g.op('MatMul', [c1, Cn('linear_2.weight')]), Cn('linear_2.bias')], {}, 'image_features');

  g.output('image_features', FLOAT, ['batch', N / (m * m), connector.fc2.outFeatures]);
  for (let i = 0; i <= cfg.layers; i++) g.output(`hidden_states.${i}`, FLOAT, ['batch', N, dv]);
  return g.toBytes(`edgetune ViT + connector: ${JSON.stringify(cfg)}`);
}

export interface ExportedPackage {
  vision?: string;
  embed: string;
  decoder: string;
}

/**
 * Writes the ONNX files of the package into `dir` (Node: created when missing). The vision file
 * is written when a vision encoder and its connector are given. Returns the paths.
 */
export async function exportOnnxPackage(dir: string, m: { decoder: LlamaDecoder; vision?: VisionEncoder; connector?: Connector }): Promise<ExportedPackage> {
  if (!!m.vision !== !!m.connector) throw new EdgeTuneError('INVALID_ARGUMENT', 'export the vision encoder together with its connector (give both or neither)');
  const fs = await import('node:fs/promises');
  const path = await import('node:path');
  await fs.mkdir(dir, { recursive: true });
  const out: ExportedPackage = { embed: path.join(dir, EMBED_FILE), decoder: path.join(dir, DECODER_FILE) };
  await fs.writeFile(out.decoder, await exportDecoder(m.decoder));
  await fs.writeFile(out.embed, await exportEmbedTokens(m.decoder));
  if (m.vision && m.connector) {
    out.vision = path.join(dir, VISION_FILE);
    await fs.writeFile(out.vision, await exportVisionEncoder(m.vision, m.connector));
  }
  return out;
}
