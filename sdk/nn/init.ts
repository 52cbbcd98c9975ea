// Seeded initial values and parameter naming shared by the nn layers. Initial values are made
// on the host from a seeded PRNG, so that a model is the same on every device and run.
import { EdgeTuneError } from '../errors.js';
import type { Runtime } from '../gpu/runtime.js';
import { Tensor } from '../gpu/tensor.js';
import type { Param } from './module.js';

/** Mulberry32: a small seeded PRNG. */
export function mulberry32(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** n samples of N(0, std²) (Box–Muller), as the Llama / ViT initializer_range init. */
export function normalInit(n: number, std: number, seed: number): Float32Array {
  const next = mulberry32(seed);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i += 2) {
    const u = 1 - next();
    const v = next();
    const r = std * Math.sqrt(-2 * Math.log(u));
    out[i] = r * Math.cos(2 * Math.PI * v);
    if (i + 1 < n) out[i + 1] = r * Math.sin(2 * Math.PI * v);
  }
  return out;
}

/** `prefix.name`, or `name` at the top. */
export function joinName(prefix: string | undefined, name: string): string {
  return prefix ? `${prefix}.${name}` : name;
}

/**
 * A parameter's value: a given Tensor is borrowed (the caller keeps ownership), host data or the
 * default is uploaded and recorded in `owned`.
 */
export function valueOf(rt: Runtime, name: string, v: Float32Array | Tensor | undefined, shape: number[], init: () => Float32Array, owned: Tensor[]): Tensor {
  const n = shape.reduce((a, b) => a * b, 1);
  if (v instanceof Tensor) {
    if (v.size !== n) throw new EdgeTuneError('SHAPE_MISMATCH', `${name} has ${v.size} elements but [${shape.join(', ')}] needs ${n}`);
    return v;
  }
  if (v !== undefined && !(v instanceof Float32Array)) throw new EdgeTuneError('INVALID_ARGUMENT', `${name} must be a Float32Array or a Tensor`);
  const data = v ?? init();
  if (data.length !== n) throw new EdgeTuneError('SHAPE_MISMATCH', `${name} has ${data.length} elements but [${shape.join(', ')}] needs ${n}`);
  const t = Tensor.from(rt, data, shape);
  owned.push(t);
  return t;
}

/** rows = t.size / width, or SHAPE_MISMATCH when t is not whole rows. */
export function rowsOf(what: string, t: Tensor, width: number): number {
  if (t.size % width !== 0) throw new EdgeTuneError('SHAPE_MISMATCH', `${what} has ${t.size} elements, not a whole number of rows of ${width}`);
  return t.size / width;
}

/**
 * Names the layer's parameters `prefix.local` in place and lists them. The same Param objects
 * are returned every call, so that setTrainable, the optimizer and the layer share one state.
 */
export function named(prefix: string | undefined, entries: [string, Param | null][]): Param[] {
  const out: Param[] = [];
  for (const [local, p] of entries) {
    if (!p) continue;
    p.name = joinName(prefix, local);
    out.push(p);
  }
  return out;
}

/** Frees the gradients of `params` (their values are freed by whoever owns them). */
export function releaseGrads(params: (Param | null)[]): void {
  for (const p of params) {
    if (p?.grad) {
      p.grad.release();
      p.grad = null;
    }
  }
}
