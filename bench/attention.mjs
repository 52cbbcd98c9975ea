// `npm run bench -- attention`: the attention core with data already on the GPU.
//   training: forward + backward of B=1, S=256, Hq=4, Hkv=2, Dh=64 (causal, 32-token prefix);
//   decoding: one new token (append k/v + attend) at cache length 256, per layer call.
// Both schedules; `*` marks the one the SDK picks on this adapter.
import { Attention, KVCache, Tensor } from '../dist/edgetune.js';
import { timeIt } from './_time.mjs';

const B = 1, S = 256, HQ = 4, HKV = 2, DH = 64;

function fill(n, seed) {
  const out = new Float32Array(n);
  let s = seed >>> 0;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    out[i] = s / 2 ** 32 - 0.5;
  }
  return out;
}

export default async function (rt) {
  const auto = rt.adapter.software ? 'direct' : 'tiled';
  const q = Tensor.from(rt, fill(B * S * HQ * DH, 1), [B * S, HQ * DH]);
  const k = Tensor.from(rt, fill(B * S * HKV * DH, 2), [B * S, HKV * DH]);
  const v = Tensor.from(rt, fill(B * S * HKV * DH, 3), [B * S, HKV * DH]);
  const dout = Tensor.from(rt, fill(B * S * HQ * DH, 4), [B * S, HQ * DH]);
  const q1 = Tensor.from(rt, fill(B * HQ * DH, 5), [B, HQ * DH]);
  const k1 = Tensor.from(rt, fill(B * HKV * DH, 6), [B, HKV * DH]);
  const v1 = Tensor.from(rt, fill(B * HKV * DH, 7), [B, HKV * DH]);
  console.log(`B=${B} S=${S} Hq=${HQ} Hkv=${HKV} Dh=${DH}`);
  console.log('schedule   fwd ms   fwd+bwd ms   decode ms/token (cache 256)');
  for (const schedule of ['direct', 'tiled']) {
    const attn = new Attention(rt, { heads: HQ, kvHeads: HKV, headDim: DH, schedule });
    const shape = { batch: B, seq: S, prefix: 32 };
    const fwd = await timeIt(async () => {
      const batch = rt.batch('bench.attention.fwd');
      await attn.forward(batch, q, k, v, shape);
      await batch.submit();
    }, { warmup: 1, reps: 5 });
    const step = await timeIt(async () => {
      const batch = rt.batch('bench.attention.step');
      await attn.forward(batch, q, k, v, shape);
      await attn.backward(batch, dout);
      await batch.submit();
    }, { warmup: 1, reps: 5 });
    // Decode: the cache holds 256 positions before each timed token.
    const reps = 9;
    const cache = new KVCache(rt, { layers: 1, batch: B, maxPositions: S + 1, kvHeads: HKV, headDim: DH });
    const prefill = rt.batch('bench.attention.prefill');
    await cache.append(prefill, 0, k, v, S);
    await prefill.submit();
    const ts = [];
    for (let r = 0; r < reps; r++) {
      const batch = rt.batch('bench.attention.decode');
      await attn.forwardCached(batch, q1, k1, v1, cache, 0, { n: 1 });
      const t0 = performance.now();
      await batch.submit();
      ts.push(performance.now() - t0);
      // Back to 256 cached positions for the next token.
      cache.reset();
      const again = rt.batch('bench.attention.prefill');
      await cache.append(again, 0, k, v, S);
      await again.submit();
    }
    ts.sort((x, y) => x - y);
    const dec = ts[Math.floor(reps / 2)];
    const mark = schedule === auto ? '*' : ' ';
    console.log(`${mark}${schedule.padEnd(9)} ${fwd.toFixed(2).padStart(7)} ${step.toFixed(2).padStart(12)} ${dec.toFixed(3).padStart(14)}`);
    cache.release();
    attn.clear();
  }
  for (const t of [q, k, v, dout, q1, k1, v1]) t.release();
  console.log('(* = the schedule the SDK picks on this adapter; decode = append + attend, submit to done)');
}
