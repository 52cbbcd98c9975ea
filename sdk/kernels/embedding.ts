// Typed wrappers of shaders/embedding.wgsl: the token-embedding gather and its deterministic
// scatter-add gradient.  ids (tokens) int32; table, dtable (vocab, d); out, dy (tokens, d).
import shader from '../../shaders/embedding.wgsl';
import { EdgeTuneError } from '../errors.js';
import type { Runtime } from '../gpu/runtime.js';
import { Params, type Batch } from '../gpu/launch.js';
import { expectFloats, grid2d } from './grid.js';

const WG = 64;

export interface EmbeddingDims {
  tokens: number;
  vocab: number;
  d: number;
}

/** Throws OUT_OF_RANGE naming the first id outside [0, vocab). */
export function checkIds(ids: Int32Array, vocab: number, what = 'ids'): void {
  for (let i = 0; i < ids.length; i++) {
    const v = ids[i]!;
    if (v < 0 || v >= vocab) throw new EdgeTuneError('OUT_OF_RANGE', `${what}[${i}] = ${v} is not a token id in [0, ${vocab})`);
  }
}

const params = (a: EmbeddingDims) => new Params().u32(a.tokens).u32(a.vocab).u32(a.d).u32(0);
const defines = (a: EmbeddingDims) => ({ VEC: a.d % 4 === 0 });
const quadGroups = (rt: Runtime, a: EmbeddingDims) => grid2d(rt, Math.ceil((a.tokens * Math.ceil(a.d / 4)) / WG));

function check(a: EmbeddingDims & { ids: GPUBuffer }): void {
  expectFloats('embedding ids', a.ids, a.tokens);
  if (a.vocab * a.d >= 2 ** 32) throw new EdgeTuneError('TOO_LARGE', `a ${a.vocab}×${a.d} table exceeds the 32-bit indexing of the kernels`);
}

/** out[t] = table[ids[t]] (a zero row for an id outside [0, vocab)). */
export async function recordEmbeddingForward(rt: Runtime, batch: Batch, a: EmbeddingDims & { ids: GPUBuffer; table: GPUBuffer; out: GPUBuffer }): Promise<void> {
  if (a.tokens === 0) return;
  check(a);
  expectFloats('embedding table', a.table, a.vocab * a.d);
  expectFloats('embedding out', a.out, a.tokens * a.d);
  const pipe = await rt.pipelines.get(shader, 'embedding_forward', defines(a));
  batch.dispatch(pipe, params(a), [a.ids, a.table, a.out], quadGroups(rt, a));
}

/** Floats (u32) of the link scratch the backward needs. */
export const embeddingLinkSize = (tokens: number): number => 2 * tokens;

/**
 * dtable[v] += Σ_{t: ids[t] = v} dy[t], in token order. `link` is scratch of
 * embeddingLinkSize(tokens) elements (pooled if absent).
 */
export async function recordEmbeddingBackward(rt: Runtime, batch: Batch, a: EmbeddingDims & { ids: GPUBuffer; dy: GPUBuffer; dtable: GPUBuffer; link?: GPUBuffer }): Promise<void> {
  if (a.tokens === 0) return;
  check(a);
  expectFloats('embedding dy', a.dy, a.tokens * a.d);
  expectFloats('embedding dtable', a.dtable, a.vocab * a.d);
  let link = a.link;
  if (!link) {
    const tmp = rt.pool.acquire(embeddingLinkSize(a.tokens) * 4, 'embedding.link');
    batch.onDone(() => rt.pool.release(tmp));
    link = tmp;
  }
  expectFloats('embedding link', link, embeddingLinkSize(a.tokens));
  const linkPipe = await rt.pipelines.get(shader, 'embedding_link', defines(a));
  batch.dispatch(linkPipe, params(a), [a.ids, link], grid2d(rt, Math.ceil(a.tokens / WG)));
  const pipe = await rt.pipelines.get(shader, 'embedding_backward', defines(a));
  batch.dispatch(pipe, params(a), [a.ids, link, a.dy, a.dtable], quadGroups(rt, a));
}
