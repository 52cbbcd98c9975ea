// ops for the nn layers' kernels: host-array wrappers (Float32Array / Int32Array in, Float32Array
// out) of shaders/norm.wgsl, embedding.wgsl, rope.wgsl, activation.wgsl, patch_embed.wgsl and
// elementwise.wgsl. Each call uploads, records one batch, submits and reads back; the layers in
// sdk/nn keep data on the GPU instead. Sizes are checked on the host (SHAPE_MISMATCH), token ids
// and positions too (OUT_OF_RANGE). Backward ops take the forward's inputs and run the forward
// in the same batch when they need what it keeps.
import { EdgeTuneError, expectDim } from '../errors.js';
import type { Runtime } from '../gpu/runtime.js';
import type { Batch } from '../gpu/launch.js';
import { recordNormBackward, recordNormForward, type NormKind, type RowSchedule } from '../kernels/norm.js';
import { recordAdd, recordAddInto, recordColSum, recordCopy, recordFill, recordScale } from '../kernels/elementwise.js';
import { checkIds, recordEmbeddingBackward, recordEmbeddingForward } from '../kernels/embedding.js';
import { checkPositions, recordRope, ropeTable } from '../kernels/rope.js';
import { recordGeluBackward, recordGeluForward, recordSwigluBackward, recordSwigluForward } from '../kernels/activation.js';
import { patchShape, recordCol2im, recordIm2col, type PatchDims } from '../kernels/patch_embed.js';
import { expectF32, withBuffers } from './host.js';

type HostArray = Float32Array | Int32Array | Uint32Array;

/** Uploads `inputs`, records with fresh zeroed outputs of the given float counts, reads them back. */
async function run(rt: Runtime, label: string, inputs: HostArray[], outputs: number[], record: (batch: Batch, ins: GPUBuffer[], outs: GPUBuffer[]) => Promise<void>): Promise<Float32Array[]> {
  return withBuffers(rt, inputs, async (ins) => {
    const outs = outputs.map((n) => rt.pool.acquire(Math.max(n, 1) * 4, `${label}.out`));
    try {
      const batch = rt.batch(label);
      for (const o of outs) batch.clear(o);
      await record(batch, ins, outs);
      await batch.submit();
      return await Promise.all(outs.map((o, i) => rt.readF32(o, outputs[i]!)));
    } finally {
      for (const o of outs) rt.pool.release(o);
    }
  });
}

function options<T>(op: string, o: T | undefined, needs: string): T {
  if (!o || typeof o !== 'object') throw new EdgeTuneError('INVALID_ARGUMENT', `ops.${op} needs ${needs}`);
  return o;
}

// ---- RMSNorm / LayerNorm ------------------------------------------------------------------------
export interface NormOptions {
  rows: number;
  d: number;
  /** Default 1e-6 for RMSNorm (Llama), 1e-5 for LayerNorm (PyTorch). */
  eps?: number;
  /** Per-row schedule (default: the adapter's best). */
  schedule?: RowSchedule;
}

function normArgs(op: string, kind: NormKind, o: NormOptions) {
  options(op, o, '{ rows, d }');
  const rows = expectDim('rows', o.rows);
  const d = expectDim('d', o.d);
  return { kind, rows, d, eps: o.eps ?? (kind === 'rms' ? 1e-6 : 1e-5), schedule: o.schedule };
}

async function normOp(rt: Runtime, kind: NormKind, x: Float32Array, gamma: Float32Array, beta: Float32Array | undefined, dy: Float32Array | undefined, o: NormOptions): Promise<Float32Array[]> {
  const op = `${kind === 'rms' ? 'rmsNorm' : 'layerNorm'}${dy ? 'Backward' : ''}`;
  const a = normArgs(op, kind, o);
  const n = a.rows * a.d;
  expectF32('x', x, n, `rows×d = ${a.rows}×${a.d}`);
  expectF32('gamma', gamma, a.d, `d = ${a.d}`);
  if (kind === 'layer') expectF32('beta', beta, a.d, `d = ${a.d}`);
  if (dy) expectF32('dy', dy, n, `rows×d = ${a.rows}×${a.d}`);
  const inputs = [x, gamma, beta ?? gamma, ...(dy ? [dy] : [])];
  const outs = dy ? [n, a.d, kind === 'layer' ? a.d : 0] : [n];
  return run(rt, `ops.${op}`, inputs, outs, async (batch, [xb, gb, bb, dyb], [o0, o1, o2]) => {
    const stats = rt.pool.acquire(a.rows * 8, 'norm.stats');
    const y = dy ? rt.pool.acquire(n * 4, 'norm.y') : o0!;
    batch.onDone(() => rt.pool.release(stats));
    if (dy) batch.onDone(() => rt.pool.release(y));
    await recordNormForward(rt, batch, { ...a, x: xb!, gamma: gb!, beta: kind === 'layer' ? bb : undefined, y, stats });
    if (dy) await recordNormBackward(rt, batch, { ...a, x: xb!, gamma: gb!, stats, dy: dyb!, dx: o0, dgamma: o1, dbeta: kind === 'layer' ? o2 : undefined });
  });
}

/** RMSNorm over the last dim (Llama): y = x / sqrt(mean(x²) + eps) ⊙ γ. x (rows, d), γ (d). */
export async function rmsNorm(rt: Runtime, x: Float32Array, gamma: Float32Array, o: NormOptions): Promise<Float32Array> {
  return (await normOp(rt, 'rms', x, gamma, undefined, undefined, o))[0]!;
}

/** RMSNorm backward for dy = dL/dy: dx (rows, d) and dγ (d). */
export async function rmsNormBackward(rt: Runtime, x: Float32Array, gamma: Float32Array, dy: Float32Array, o: NormOptions): Promise<{ dx: Float32Array; dgamma: Float32Array }> {
  const [dx, dgamma] = await normOp(rt, 'rms', x, gamma, undefined, dy, o);
  return { dx: dx!, dgamma: dgamma! };
}

/** LayerNorm over the last dim: y = (x − μ) / sqrt(var + eps) ⊙ γ + β (biased variance). */
export async function layerNorm(rt: Runtime, x: Float32Array, gamma: Float32Array, beta: Float32Array, o: NormOptions): Promise<Float32Array> {
  return (await normOp(rt, 'layer', x, gamma, beta, undefined, o))[0]!;
}

/** LayerNorm backward for dy = dL/dy: dx (rows, d), dγ (d), dβ (d). */
export async function layerNormBackward(rt: Runtime, x: Float32Array, gamma: Float32Array, beta: Float32Array, dy: Float32Array, o: NormOptions): Promise<{ dx: Float32Array; dgamma: Float32Array; dbeta: Float32Array }> {
  const [dx, dgamma, dbeta] = await normOp(rt, 'layer', x, gamma, beta, dy, o);
  return { dx: dx!, dgamma: dgamma!, dbeta: dbeta! };
}

// ---- token embedding ----------------------------------------------------------------------------
export interface EmbeddingOptions {
  vocab: number;
  d: number;
}

function embeddingArgs(op: string, ids: Int32Array, o: EmbeddingOptions) {
  options(op, o, '{ vocab, d }');
  const vocab = expectDim('vocab', o.vocab);
  const d = expectDim('d', o.d);
  if (!(ids instanceof Int32Array)) throw new EdgeTuneError('INVALID_ARGUMENT', `ids must be an Int32Array, got ${ids === null ? 'null' : typeof ids}`);
  checkIds(ids, vocab);
  return { vocab, d, tokens: ids.length };
}

/** Rows of `table` (vocab, d) by token id: (ids.length, d). An id outside [0, vocab) throws OUT_OF_RANGE. */
export async function embedding(rt: Runtime, table: Float32Array, ids: Int32Array, o: EmbeddingOptions): Promise<Float32Array> {
  const a = embeddingArgs('embedding', ids, o);
  expectF32('table', table, a.vocab * a.d, `vocab×d = ${a.vocab}×${a.d}`);
  if (a.tokens === 0) return new Float32Array(0);
  const [out] = await run(rt, 'ops.embedding', [table, ids], [a.tokens * a.d], async (batch, [tb, ib], [ob]) => {
    await recordEmbeddingForward(rt, batch, { ...a, ids: ib!, table: tb!, out: ob! });
  });
  return out!;
}

/** The table gradient (vocab, d) for dy = dL/dout (ids.length, d): Σ of dy rows per id, in token order. */
export async function embeddingBackward(rt: Runtime, dy: Float32Array, ids: Int32Array, o: EmbeddingOptions): Promise<Float32Array> {
  const a = embeddingArgs('embeddingBackward', ids, o);
  expectF32('dy', dy, a.tokens * a.d, `tokens×d = ${a.tokens}×${a.d}`);
  if (a.tokens === 0) return new Float32Array(a.vocab * a.d);
  const [dt] = await run(rt, 'ops.embeddingBackward', [dy, ids], [a.vocab * a.d], async (batch, [dyb, ib], [dtb]) => {
    await recordEmbeddingBackward(rt, batch, { ...a, ids: ib!, dy: dyb!, dtable: dtb! });
  });
  return dt!;
}

// ---- RoPE ---------------------------------------------------------------------------------------
export interface RopeOptions {
  rows: number;
  heads: number;
  headDim: number;
  /** θ_i = base^(−2i/headDim); default 10000 (Llama's rope_theta). */
  base?: number;
  /** Size of the cos/sin table; positions must lie in [0, maxPositions). Default: max position + 1. */
  maxPositions?: number;
}

async function ropeOp(rt: Runtime, op: string, x: Float32Array, positions: Int32Array, o: RopeOptions, inverse: boolean): Promise<Float32Array> {
  options(op, o, '{ rows, heads, headDim }');
  const rows = expectDim('rows', o.rows);
  const heads = expectDim('heads', o.heads);
  const headDim = expectDim('headDim', o.headDim);
  expectF32('x', x, rows * heads * headDim, `rows×heads×headDim = ${rows}×${heads}×${headDim}`);
  if (!(positions instanceof Int32Array) || positions.length !== rows) throw new EdgeTuneError('SHAPE_MISMATCH', `positions must be an Int32Array of rows = ${rows} entries`);
  const maxPositions = expectDim('maxPositions', o.maxPositions ?? Math.max(1, ...positions.map((v) => v + 1)));
  checkPositions(positions, maxPositions);
  const table = ropeTable(headDim, maxPositions, o.base ?? 10000);
  const [y] = await run(rt, `ops.${op}`, [x, positions, table], [x.length], async (batch, [xb, pb, tb], [yb]) => {
    await recordRope(rt, batch, { rows, heads, headDim, maxPositions, positions: pb!, table: tb!, x: xb, y: yb!, inverse });
  });
  return y!;
}

/** RoPE (Llama / HF rotate_half) of x (rows, heads·headDim) at per-row positions. */
export function rope(rt: Runtime, x: Float32Array, positions: Int32Array, o: RopeOptions): Promise<Float32Array> {
  return ropeOp(rt, 'rope', x, positions, o, false);
}

/** RoPE backward: dx = dy rotated back (by −θ). */
export function ropeBackward(rt: Runtime, dy: Float32Array, positions: Int32Array, o: RopeOptions): Promise<Float32Array> {
  return ropeOp(rt, 'ropeBackward', dy, positions, o, true);
}

// ---- activations --------------------------------------------------------------------------------
function sameLength(arrays: [string, Float32Array][]): number {
  const [first, a0] = arrays[0]!;
  if (!(a0 instanceof Float32Array)) throw new EdgeTuneError('INVALID_ARGUMENT', `${first} must be a Float32Array`);
  for (const [name, a] of arrays) expectF32(name, a, a0.length, `the length of ${first} (${a0.length})`);
  return a0.length;
}

/** h = silu(gate) ⊙ up, elementwise. */
export async function swiglu(rt: Runtime, gate: Float32Array, up: Float32Array): Promise<Float32Array> {
  const n = sameLength([['gate', gate], ['up', up]]);
  const [h] = await run(rt, 'ops.swiglu', [gate, up], [n], (batch, [g, u], [hb]) => recordSwigluForward(rt, batch, { gate: g!, up: u!, h: hb!, n }));
  return h!;
}

/** SwiGLU backward for dh = dL/dh: dgate and dup. */
export async function swigluBackward(rt: Runtime, gate: Float32Array, up: Float32Array, dh: Float32Array): Promise<{ dgate: Float32Array; dup: Float32Array }> {
  const n = sameLength([['gate', gate], ['up', up], ['dh', dh]]);
  const [dgate, dup] = await run(rt, 'ops.swigluBackward', [gate, up, dh], [n, n], (batch, [g, u, d], [dg, du]) =>
    recordSwigluBackward(rt, batch, { gate: g!, up: u!, dh: d!, dgate: dg!, dup: du!, n }));
  return { dgate: dgate!, dup: dup! };
}

/** y = gelu(z) = z Φ(z), the exact (erf) form. */
export async function gelu(rt: Runtime, z: Float32Array): Promise<Float32Array> {
  const n = sameLength([['z', z]]);
  const [y] = await run(rt, 'ops.gelu', [z], [n], (batch, [zb], [yb]) => recordGeluForward(rt, batch, { z: zb!, y: yb!, n }));
  return y!;
}

/** GELU backward: dz = dy ⊙ gelu'(z). */
export async function geluBackward(rt: Runtime, z: Float32Array, dy: Float32Array): Promise<Float32Array> {
  const n = sameLength([['z', z], ['dy', dy]]);
  const [dz] = await run(rt, 'ops.geluBackward', [z, dy], [n], (batch, [zb, dyb], [dzb]) => recordGeluBackward(rt, batch, { z: zb!, dy: dyb!, dz: dzb!, n }));
  return dz!;
}

// ---- ViT patches --------------------------------------------------------------------------------
/** Patches (B·P, C·p²) of images (B, C, H, W), channel-major: a Conv with kernel = stride = p, as a matmul. */
export async function im2col(rt: Runtime, image: Float32Array, d: PatchDims): Promise<Float32Array> {
  options('im2col', d, '{ batch, channels, height, width, patch }');
  const { patches, patchDim } = patchShape(d);
  const n = d.batch * d.channels * d.height * d.width;
  expectF32('image', image, n, `B×C×H×W = ${d.batch}×${d.channels}×${d.height}×${d.width}`);
  if (n === 0) return new Float32Array(0);
  const [out] = await run(rt, 'ops.im2col', [image], [d.batch * patches * patchDim], (batch, [ib], [ob]) => recordIm2col(rt, batch, d, ib!, ob!));
  return out!;
}

/** Images (B, C, H, W) from patches (B·P, C·p²): the inverse of im2col, i.e. its gradient. */
export async function col2im(rt: Runtime, patchRows: Float32Array, d: PatchDims): Promise<Float32Array> {
  options('col2im', d, '{ batch, channels, height, width, patch }');
  const { patches, patchDim } = patchShape(d);
  const n = d.batch * d.channels * d.height * d.width;
  expectF32('patches', patchRows, d.batch * patches * patchDim, `B·P×C·p² = ${d.batch * patches}×${patchDim}`);
  if (n === 0) return new Float32Array(0);
  const [out] = await run(rt, 'ops.col2im', [patchRows], [n], (batch, [pb], [ob]) => recordCol2im(rt, batch, d, pb!, ob!));
  return out!;
}

// ---- elementwise --------------------------------------------------------------------------------
/** a + b, elementwise. */
export async function add(rt: Runtime, a: Float32Array, b: Float32Array): Promise<Float32Array> {
  const n = sameLength([['a', a], ['b', b]]);
  const [y] = await run(rt, 'ops.add', [a, b], [n], (batch, [ab, bb], [yb]) => recordAdd(rt, batch, ab!, bb!, yb!, n));
  return y!;
}

/** y + s · x[i mod x.length]: x broadcast over y in blocks of its length (s default 1). */
export async function addInto(rt: Runtime, y: Float32Array, x: Float32Array, s = 1): Promise<Float32Array> {
  if (!(y instanceof Float32Array) || !(x instanceof Float32Array)) throw new EdgeTuneError('INVALID_ARGUMENT', 'ops.addInto takes Float32Arrays');
  if (x.length === 0 || y.length % x.length !== 0) throw new EdgeTuneError('SHAPE_MISMATCH', `y (${y.length}) is not a whole number of blocks of x (${x.length})`);
  const [out] = await run(rt, 'ops.addInto', [y, x], [y.length], async (batch, [yb, xb], [ob]) => {
    await recordCopy(rt, batch, yb!, ob!, y.length);
    await recordAddInto(rt, batch, xb!, ob!, y.length, { s, period: x.length });
  });
  return out!;
}

/** s · x. */
export async function scale(rt: Runtime, x: Float32Array, s: number): Promise<Float32Array> {
  const n = sameLength([['x', x]]);
  const [y] = await run(rt, 'ops.scale', [x], [n], (batch, [xb], [yb]) => recordScale(rt, batch, s, yb!, n, xb));
  return y!;
}

/** n copies of value. */
export async function fill(rt: Runtime, n: number, value: number): Promise<Float32Array> {
  expectDim('n', n, true);
  if (n === 0) return new Float32Array(0);
  const [y] = await run(rt, 'ops.fill', [], [n], (batch, _ins, [yb]) => recordFill(rt, batch, yb!, n, value));
  return y!;
}

/** Column sums of x (rows, cols): a deterministic reduction over rows. */
export async function colSum(rt: Runtime, x: Float32Array, o: { rows: number; cols: number; chunk?: number }): Promise<Float32Array> {
  options('colSum', o, '{ rows, cols }');
  const rows = expectDim('rows', o.rows, true);
  const cols = expectDim('cols', o.cols);
  expectF32('x', x, rows * cols, `rows×cols = ${rows}×${cols}`);
  const [y] = await run(rt, 'ops.colSum', rows > 0 ? [x] : [new Float32Array(4)], [cols], (batch, [xb], [yb]) => recordColSum(rt, batch, { x: xb!, rows, cols, out: yb!, chunk: o.chunk }));
  return y!;
}
