// `npm run bench -- lora`: one training step (forward + backward) of a LoRA and a Dual-LoRA
// layer (M = 512 tokens, 512 → 512, r = 8 and 32), fused kernels (nn Linear) beside the same
// computation as a chain of plain matmul dispatches plus the small elementwise kernels the
// unfused Dual-LoRA needs. Each step is one batch (one command encoder), submitted and awaited.
import { Linear, Params, Tensor, recordMatmul } from '../dist/edgetune.js';
import { timeIt } from './_time.mjs';

const M = 512, IN = 512, OUT = 512, REPS = 9;

// The unfused Dual-LoRA's elementwise kernels: LayerNorm + gate forward, their backward (one
// thread per row), and the column sums that give dγ, dβ (one thread per column).
const chainShader = {
  name: 'bench_lora_chain.wgsl',
  code: /* wgsl */ `
struct P { M: u32, R: u32, eps: f32, _p: u32 }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> U: array<f32>;
@group(0) @binding(2) var<storage, read> V: array<f32>;
@group(0) @binding(3) var<storage, read> GAMMA: array<f32>;
@group(0) @binding(4) var<storage, read> BETA: array<f32>;
@group(0) @binding(5) var<storage, read_write> H: array<f32>;
@group(0) @binding(6) var<storage, read_write> NRM: array<f32>;
@group(0) @binding(7) var<storage, read_write> XH: array<f32>;
@group(0) @binding(8) var<storage, read_write> RSTD: array<f32>;

// u, v (M,R) → x̂, n = γx̂+β, h = ReLU(v)·n (M,R), rstd (M)
@compute @workgroup_size(64)
fn ln_gate_forward(@builtin(global_invocation_id) gid: vec3<u32>) {
  let m = gid.x;
  if (m >= p.M) { return; }
  var mean = 0.0;
  for (var j = 0u; j < p.R; j++) { mean += U[m * p.R + j]; }
  mean /= f32(p.R);
  var vr = 0.0;
  for (var j = 0u; j < p.R; j++) { let d = U[m * p.R + j] - mean; vr += d * d; }
  let rs = inverseSqrt(vr / f32(p.R) + p.eps);
  RSTD[m] = rs;
  for (var j = 0u; j < p.R; j++) {
    let i = m * p.R + j;
    let xh = (U[i] - mean) * rs;
    let n = GAMMA[j] * xh + BETA[j];
    XH[i] = xh; NRM[i] = n; H[i] = max(V[i], 0.0) * n;
  }
}

@group(0) @binding(9) var<storage, read> DH: array<f32>;
@group(0) @binding(10) var<storage, read> NRMr: array<f32>;
@group(0) @binding(11) var<storage, read> XHr: array<f32>;
@group(0) @binding(12) var<storage, read> RSTDr: array<f32>;
@group(0) @binding(13) var<storage, read_write> DUZ: array<f32>;   // du (M,R) | dz (M,R)
@group(0) @binding(14) var<storage, read_write> PART: array<f32>;  // dn·x̂ | dn  (M, 2R)

// dh (M,R) → dz = dh·n·1[v>0], du = LN_backward(dh·ReLU(v)), and dn·x̂, dn for dγ, dβ
@compute @workgroup_size(64)
fn ln_gate_backward(@builtin(global_invocation_id) gid: vec3<u32>) {
  let m = gid.x;
  if (m >= p.M) { return; }
  var c1 = 0.0;
  var c2 = 0.0;
  for (var j = 0u; j < p.R; j++) {
    let i = m * p.R + j;
    let dn = DH[i] * max(V[i], 0.0);
    let dxh = dn * GAMMA[j];
    c1 += dxh; c2 += dxh * XHr[i];
    DUZ[p.M * p.R + i] = select(0.0, DH[i] * NRMr[i], V[i] > 0.0);
    PART[m * 2u * p.R + j] = dn * XHr[i];
    PART[m * 2u * p.R + p.R + j] = dn;
  }
  c1 /= f32(p.R); c2 /= f32(p.R);
  for (var j = 0u; j < p.R; j++) {
    let i = m * p.R + j;
    let dxh = DH[i] * max(V[i], 0.0) * GAMMA[j];
    DUZ[i] = RSTDr[m] * (dxh - c1 - XHr[i] * c2);
  }
}

@group(0) @binding(15) var<storage, read_write> DGAMMA: array<f32>;
@group(0) @binding(16) var<storage, read_write> DBETA: array<f32>;

// dγ += Σ_m dn·x̂, dβ += Σ_m dn
@compute @workgroup_size(64)
fn colsum(@builtin(global_invocation_id) gid: vec3<u32>) {
  let j = gid.x;
  if (j >= 2u * p.R) { return; }
  var s = 0.0;
  for (var m = 0u; m < p.M; m++) { s += PART[m * 2u * p.R + j]; }
  if (j < p.R) { DGAMMA[j] += s; } else { DBETA[j - p.R] += s; }
}
`,
};

function rand(n, seed, scale) {
  let s = seed >>> 0;
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    out[i] = ((s / 4294967296) * 2 - 1) * scale;
  }
  return out;
}

/** The fused path: nn Linear. */
function fusedStep(rt, kind, r, data) {
  const lin = new Linear(rt, { inFeatures: IN, outFeatures: OUT, weight: data.w, bias: data.bias, adapter: kind, rank: r, alpha: 2 * r, seed: 1 });
  lin.b.write(data.b);
  let dispatches = 0;
  const step = async () => {
    const batch = rt.batch('fused');
    await lin.forward(batch, data.x, M);
    await lin.backward(batch, data.dy);
    dispatches = batch.size;
    await batch.submit();
  };
  const grads = async () => Object.fromEntries(await Promise.all(lin.adapterParams().map(async (p) => [p.name, await p.grad.read()])));
  const init = async () => ({ a: await lin.a.read(), t: lin.t ? await lin.t.read() : undefined });
  return { step, grads, init, dispatches: () => dispatches, release: () => lin.release() };
}

/** The same step as plain matmuls (+ elementwise kernels for Dual-LoRA). */
async function chainStep(rt, kind, r, data, init) {
  const s = 2;
  const buf = (n) => Tensor.zeros(rt, [n]);
  const A = Tensor.from(rt, init.a, [IN, r]);
  const T = init.t ? Tensor.from(rt, init.t, [IN, r]) : null;
  const B = Tensor.from(rt, data.b, [r, OUT]);
  const W = Tensor.from(rt, data.w, [IN, OUT]);
  const bias = Tensor.from(rt, data.bias, [OUT]);
  const gamma = Tensor.from(rt, new Float32Array(r).fill(1), [r]);
  const beta = buf(r);
  const [u, v, h, nrm, xh, rstd, dh, duz, part, y, dx] = [M * r, M * r, M * r, M * r, M * r, M, M * r, 2 * M * r, 2 * M * r, M * OUT, M * IN].map(buf);
  const g = { a: buf(IN * r), t: buf(IN * r), b: buf(r * OUT), gamma: buf(r), beta: buf(r) };
  const x = data.x.buffer, dy = data.dy.buffer;
  const P = new Params().u32(M).u32(r).f32(1e-5).u32(0);
  const lnF = await rt.pipelines.get(chainShader, 'ln_gate_forward');
  const lnB = await rt.pipelines.get(chainShader, 'ln_gate_backward');
  const cs = await rt.pipelines.get(chainShader, 'colsum');
  const mm = (batch, o) => recordMatmul(rt, batch, o);
  let dispatches = 0;
  const step = async () => {
    const batch = rt.batch('chain');
    if (kind === 'lora') {
      await mm(batch, { a: x, b: A.buffer, c: u.buffer, m: M, n: r, k: IN });
      await mm(batch, { a: x, b: W.buffer, c: y.buffer, bias: bias.buffer, m: M, n: OUT, k: IN });
      await mm(batch, { a: u.buffer, b: B.buffer, c: y.buffer, m: M, n: OUT, k: r, alpha: s, accumulate: true });
      await mm(batch, { a: dy, b: B.buffer, c: dh.buffer, m: M, n: r, k: OUT, transB: true, alpha: s });
      await mm(batch, { a: u.buffer, b: dy, c: g.b.buffer, m: r, n: OUT, k: M, transA: true, alpha: s, accumulate: true });
      await mm(batch, { a: x, b: dh.buffer, c: g.a.buffer, m: IN, n: r, k: M, transA: true, accumulate: true });
      await mm(batch, { a: dy, b: W.buffer, c: dx.buffer, m: M, n: IN, k: OUT, transB: true });
      await mm(batch, { a: dh.buffer, b: A.buffer, c: dx.buffer, m: M, n: IN, k: r, transB: true, accumulate: true });
    } else {
      await mm(batch, { a: x, b: A.buffer, c: u.buffer, m: M, n: r, k: IN });
      await mm(batch, { a: x, b: T.buffer, c: v.buffer, m: M, n: r, k: IN });
      batch.dispatch(lnF, P, [u.buffer, v.buffer, gamma.buffer, beta.buffer, h.buffer, nrm.buffer, xh.buffer, rstd.buffer], [Math.ceil(M / 64)]);
      await mm(batch, { a: x, b: W.buffer, c: y.buffer, bias: bias.buffer, m: M, n: OUT, k: IN });
      await mm(batch, { a: h.buffer, b: B.buffer, c: y.buffer, m: M, n: OUT, k: r, alpha: s, accumulate: true });
      await mm(batch, { a: dy, b: B.buffer, c: dh.buffer, m: M, n: r, k: OUT, transB: true, alpha: s });
      await mm(batch, { a: h.buffer, b: dy, c: g.b.buffer, m: r, n: OUT, k: M, transA: true, alpha: s, accumulate: true });
      const none = undefined;
      batch.dispatch(lnB, P, [none, v.buffer, gamma.buffer, none, none, none, none, none, dh.buffer, nrm.buffer, xh.buffer, rstd.buffer, duz.buffer, part.buffer], [Math.ceil(M / 64)]);
      batch.dispatch(cs, P, [none, none, none, none, none, none, none, none, none, none, none, none, none, part.buffer, g.gamma.buffer, g.beta.buffer], [Math.ceil((2 * r) / 64)]);
      await mm(batch, { a: x, b: duz.buffer, c: g.a.buffer, m: IN, n: r, k: M, transA: true, accumulate: true });
      await mm(batch, { a: x, b: duz.buffer, offsetB: M * r, c: g.t.buffer, m: IN, n: r, k: M, transA: true, accumulate: true });
      await mm(batch, { a: dy, b: W.buffer, c: dx.buffer, m: M, n: IN, k: OUT, transB: true });
      await mm(batch, { a: duz.buffer, b: A.buffer, c: dx.buffer, m: M, n: IN, k: r, transB: true, accumulate: true });
      await mm(batch, { a: duz.buffer, offsetA: M * r, b: T.buffer, c: dx.buffer, m: M, n: IN, k: r, transB: true, accumulate: true });
    }
    dispatches = batch.size;
    await batch.submit();
  };
  const grads = async () => {
    const out = { a: await g.a.read(), b: await g.b.read() };
    if (kind === 'dual-lora') Object.assign(out, { t: await g.t.read(), gamma: await g.gamma.read(), beta: await g.beta.read() });
    return out;
  };
  const all = [A, T, B, W, bias, gamma, beta, u, v, h, nrm, xh, rstd, dh, duz, part, y, dx, ...Object.values(g)].filter(Boolean);
  return { step, grads, dispatches: () => dispatches, release: () => all.forEach((t) => t.release()) };
}

function maxRel(a, b) {
  let scale = 1e-30, err = 0;
  for (let i = 0; i < a.length; i++) scale = Math.max(scale, Math.abs(b[i]));
  for (let i = 0; i < a.length; i++) err = Math.max(err, Math.abs(a[i] - b[i]));
  return err / scale;
}

export default async (rt) => {
  const data = {
    x: Tensor.from(rt, rand(M * IN, 1, 1), [M, IN]),
    dy: Tensor.from(rt, rand(M * OUT, 2, 1), [M, OUT]),
    w: rand(IN * OUT, 3, 0.05),
    bias: rand(OUT, 4, 0.1),
  };
  const gflop = (kind, r) => {
    const big = 2 * 2 * M * IN * OUT; // x W and dy Wᵀ
    const ranks = (kind === 'lora' ? 6 : 9) * 2 * M * Math.max(IN, OUT) * r;
    return (big + ranks) / 1e9;
  };
  console.log(`M=${M} tokens, ${IN}→${OUT}, s = 2; one step = forward + backward in one batch; ms, median (fastest) of ${REPS}, the two paths alternating`);
  console.log('layer      rank        fused (dispatches)      chain of matmuls (dispatches)   chain/fused   fused GFLOP/s');
  for (const kind of ['lora', 'dual-lora']) {
    for (const r of [8, 32]) {
      data.b = rand(r * OUT, 5 + r, 0.1);
      const fused = fusedStep(rt, kind, r, data);
      const chain = await chainStep(rt, kind, r, data, await fused.init());
      // Warm up (compiles every pipeline), then check that both compute the same gradients.
      await fused.step();
      await chain.step();
      const [gf, gc] = [await fused.grads(), await chain.grads()];
      const diff = Math.max(...Object.keys(gc).map((k) => maxRel(gf[k], gc[k])));
      const size = Math.max(...Object.values(gc).map((g) => Math.max(...g.map(Math.abs))));
      if (!(size > 0)) throw new Error('bench: the gradients are all zero; nothing was compared');
      const tf = [], tc = [];
      for (let i = 0; i < REPS; i++) {
        tf.push(await timeIt(fused.step, { warmup: 0, reps: 1 }));
        tc.push(await timeIt(chain.step, { warmup: 0, reps: 1 }));
      }
      const sorted = (t) => [...t].sort((a, b) => a - b);
      const [sf, sc] = [sorted(tf), sorted(tc)];
      const [f, c] = [sf[REPS >> 1], sc[REPS >> 1]];
      const cell = (med, min, n) => `${med.toFixed(1).padStart(7)} (${min.toFixed(1).padStart(6)}) [${n}]`;
      console.log(
        `${kind.padEnd(10)} r=${String(r).padEnd(3)} ${cell(f, sf[0], fused.dispatches()).padStart(26)} ${cell(c, sc[0], chain.dispatches()).padStart(34)}` +
        `${(c / f).toFixed(2).padStart(13)}×${(gflop(kind, r) / (f / 1000)).toFixed(2).padStart(14)}   grads agree to ${diff.toExponential(1)}`,
      );
      fused.release();
      chain.release();
    }
  }
  data.x.release();
  data.dy.release();
};
