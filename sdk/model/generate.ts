// Generation with a KV cache: one prefill pass over the prompt, then one pass per new token.
// Greedy, or temperature / top-k sampling from a seeded PRNG; stops at a stop token or after
// maxNewTokens; returns every new token's log-probability under the model (log-softmax of the
// unscaled logits).
import { EdgeTuneError } from '../errors.js';
import { Tensor } from '../gpu/tensor.js';
import type { LlamaDecoder } from '../nn/decoder.js';
import { mulberry32 } from '../nn/init.js';

export interface GenerateOptions {
  maxNewTokens: number;
  /** Token ids that end generation (included in the output). */
  stop?: number[];
  /** 0 or absent: greedy. */
  temperature?: number;
  /** Sample among the k most likely tokens (default: all). */
  topK?: number;
  seed?: number;
  /** Full-attention prefix (image tokens + prompt) length within the prompt. */
  prefix?: number;
}

export interface Generated {
  tokens: number[];
  logprobs: number[];
  /** Logits (vocab) at every generated position, when `keepLogits`. */
  logits?: Float32Array[];
}

/** log-softmax(z)[i] in float64. */
export function logSoftmaxAt(z: Float32Array, i: number): number {
  let max = -Infinity;
  for (const v of z) if (v > max) max = v;
  let s = 0;
  for (const v of z) s += Math.exp(v - max);
  return z[i]! - max - Math.log(s);
}

/** Picks the next token from logits: argmax, or a temperature/top-k sample. */
export function pickToken(z: Float32Array, o: { temperature?: number; topK?: number }, rand: () => number): number {
  const T = o.temperature ?? 0;
  if (!(T > 0)) {
    let best = 0;
    for (let i = 1; i < z.length; i++) if (z[i]! > z[best]!) best = i;
    return best;
  }
  let idx = Array.from(z.keys());
  if (o.topK && o.topK < z.length) idx = idx.sort((a, b) => z[b]! - z[a]!).slice(0, o.topK);
  let max = -Infinity;
  for (const i of idx) max = Math.max(max, z[i]!);
  const w = idx.map((i) => Math.exp((z[i]! - max) / T));
  const total = w.reduce((a, b) => a + b, 0);
  let r = rand() * total;
  for (let j = 0; j < idx.length; j++) {
    r -= w[j]!;
    if (r <= 0) return idx[j]!;
  }
  return idx[idx.length - 1]!;
}

/**
 * Generates after a prompt given as token ids or as embeddings (P, d) — e.g. image features
 * followed by the question's token embeddings.
 */
export async function generate(model: LlamaDecoder, prompt: Int32Array | Tensor, o: GenerateOptions & { keepLogits?: boolean }): Promise<Generated> {
  const rt = model.rt;
  const d = model.cfg.dModel;
  const P = prompt instanceof Tensor ? prompt.size / d : prompt.length;
  if (!Number.isInteger(P) || P < 1) throw new EdgeTuneError('INVALID_ARGUMENT', 'generate needs a non-empty prompt');
  if (!(o.maxNewTokens >= 1)) throw new EdgeTuneError('INVALID_ARGUMENT', 'maxNewTokens must be at least 1');
  const total = Math.min(model.cfg.maxPositions, P + o.maxNewTokens);
  if (P >= model.cfg.maxPositions) throw new EdgeTuneError('TOO_LARGE', `a prompt of ${P} tokens leaves no room in the model's ${model.cfg.maxPositions} positions`);
  const cache = model.newCache(1, total);
  const rand = mulberry32(o.seed ?? 0);
  const out: Generated = { tokens: [], logprobs: [], logits: o.keepLogits ? [] : undefined };
  const stop = new Set(o.stop ?? []);
  const pos = Tensor.empty(rt, [P], { dtype: 'i32' });
  const pos1 = Tensor.empty(rt, [1], { dtype: 'i32' });
  try {
    // Prefill.
    pos.write(Int32Array.from({ length: P }, (_, i) => i));
    let batch = rt.batch('prefill');
    const x = prompt instanceof Tensor ? prompt : await model.embedTokens(batch, prompt);
    let logits = await model.forwardCached(batch, x, cache, { batch: 1, n: P, positions: pos, prefix: o.prefix });
    await batch.submit();
    let z = await rt.readF32(logits.buffer, model.cfg.vocab, (P - 1) * model.cfg.vocab);
    for (let t = P; ; t++) {
      const next = pickToken(z, o, rand);
      out.tokens.push(next);
      out.logprobs.push(logSoftmaxAt(z, next));
      out.logits?.push(z);
      if (stop.has(next) || out.tokens.length >= o.maxNewTokens || t >= total) break;
      pos1.write(Int32Array.of(t));
      batch = rt.batch('decode');
      const e = await model.embedTokens(batch, Int32Array.of(next));
      logits = await model.forwardCached(batch, e, cache, { batch: 1, n: 1, positions: pos1, prefix: o.prefix });
      await batch.submit();
      z = await rt.readF32(logits.buffer, model.cfg.vocab);
    }
    return out;
  } finally {
    cache.release();
    pos.release();
    pos1.release();
  }
}
