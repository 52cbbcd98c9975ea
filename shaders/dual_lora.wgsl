// Dual-LoRA (DESIGN §1.3), W and b frozen, s = alpha / r:
//   u = drop(x) A   (skill space)     n = LN_R(u) = γ ⊙ x̂ + β,  x̂ = (u − mean) · rstd
//   v = x T         (task space)      h = ReLU(v) ⊙ n
//   y = x W + b + s · h B
//   x (M,K): M = batch·tokens rows of K = in features; W (K,N); A, T (K,R); B (R,N); γ, β (R); R ≤ 64.
// The two big products (x W + b forward, g Wᵀ backward) are matmul.wgsl dispatches; this file
// holds the rank-R side:
//   dual_lora_forward_*      u, v, LN, gate, h; then y += s · h B     (y already holds x W + b;
//                            with N = 0 only the state is written, for a backward without a forward)
//   dual_lora_backward_*     dh = s · g Bᵀ; dz = dh ⊙ n ⊙ 1[v>0]; dn = dh ⊙ ReLU(v);
//                            du = LN_backward(dn); dγ, dβ partials per 16 rows;
//                            then dx = drop'(du Aᵀ) + dz Tᵀ (the g Wᵀ matmul accumulates onto it)
//   dual_lora_backward_norm  dγ += Σ partials, dβ += Σ partials
// dB += s · hᵀ g, dA += drop(x)ᵀ du and dT += xᵀ dz are matmuls with transA.
// The gate's subgradient at v = 0 is 0 (1[v>0]). LN backward per row: dx̂ = dn ⊙ γ,
// du = rstd · (dx̂ − mean(dx̂) − x̂ · mean(dx̂ ⊙ x̂)).
//
// State S (kept from forward to backward, one buffer, sections at p.off*, each a multiple of 4):
// h (M,R) at 0; n (M,R); x̂ (M,R); v (M,R); rstd (M); drop(x) (M,K) when dropout is on. Work
// buffer of the backward: du (M,R) at 0; dz (M,R); the dγ/dβ partials (p.nPart = ceil(M/16), 2, R).
//
// Schedules, defines and the unchecked hot loops as in lora.wgsl: *_tiled (any shape, GPUs; the
// LayerNorm row statistics meet in workgroup memory) and *_direct (K, N, R multiples of 4, CPU
// emulation; a thread owns 16 rows, so it does their LayerNorm alone, with no barrier). Junk
// rows past M are never stored, and read v = n = x̂ = 0 from the state in the tiled backward, so
// they add nothing to dγ, dβ; junk rank columns past R are zeroed before use.

struct Params {
  M: u32, K: u32, N: u32, R: u32,
  scale: f32, drop: u32, seedHash: u32, invKeep: f32,
  eps: f32, offN: u32, offXhat: u32, offV: u32,
  offRstd: u32, offXd: u32, offDz: u32, offPart: u32,
  nPart: u32, _pad0: u32, _pad1: u32, _pad2: u32,
}

const WG: u32 = KS * RQ * WR;   // tiled: threads per workgroup
const TM: u32 = 4u * WR;        // tiled: rows per workgroup

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> X: array<vec4<f32>>;          // x (M,K)
@group(0) @binding(2) var<storage, read> A: array<vec4<f32>>;          // A (K,R)
@group(0) @binding(3) var<storage, read> T: array<vec4<f32>>;          // T (K,R)
@group(0) @binding(4) var<storage, read> B: array<vec4<f32>>;          // B (R,N)
@group(0) @binding(5) var<storage, read> GAMMA: array<f32>;            // γ (R)
@group(0) @binding(6) var<storage, read> BETA: array<f32>;             // β (R)
@group(0) @binding(7) var<storage, read_write> S: array<vec4<f32>>;    // state (see above)
@group(0) @binding(8) var<storage, read_write> Y: array<vec4<f32>>;    // y (M,N)
@group(0) @binding(9) var<storage, read> G: array<vec4<f32>>;          // g = dL/dy (M,N)
@group(0) @binding(10) var<storage, read_write> WORK: array<vec4<f32>>; // du | dz | partials
@group(0) @binding(11) var<storage, read_write> DX: array<vec4<f32>>;  // dx (M,K)
@group(0) @binding(12) var<storage, read_write> DGAMMA: array<f32>;    // dγ (R), accumulated
@group(0) @binding(13) var<storage, read_write> DBETA: array<f32>;     // dβ (R), accumulated

// Tiled workgroup memory (at most 16 KiB per entry point at r = 64, the WebGPU default limit).
var<workgroup> redU: array<mat4x4<f32>, WG>;          // tiled phase 1 partial blocks (KS > 1): u or dh
var<workgroup> redV: array<mat4x4<f32>, WG>;          //   and v
var<workgroup> tileH: array<vec4<f32>, TM * RQ>;      // forward h / backward du: quad q of row l at l·RQ + q
var<workgroup> tileZ: array<vec4<f32>, TM * RQ>;      // backward dz
var<workgroup> rowS1: array<f32, TM * RQ>;            // per (row, column quad) partial row sums
var<workgroup> rowS2: array<f32, TM * RQ>;
var<workgroup> colS: array<vec4<f32>, 2u * WR * RQ>;  // backward dγ | dβ partials per (rq, cq)

// ---- loads (unchecked: callers pass in-range or clamped indices) ---------------------------
fn xs(i: u32) -> f32 { return X[i >> 2u][i & 3u]; }
fn as_(i: u32) -> f32 { return A[i >> 2u][i & 3u]; }
fn ts(i: u32) -> f32 { return T[i >> 2u][i & 3u]; }
fn bs(i: u32) -> f32 { return B[i >> 2u][i & 3u]; }
fn gs(i: u32) -> f32 { return G[i >> 2u][i & 3u]; }
fn sget(i: u32) -> f32 { return S[i >> 2u][i & 3u]; }
fn sset(i: u32, v: f32) { S[i >> 2u][i & 3u] = v; }
fn wset(i: u32, v: f32) { WORK[i >> 2u][i & 3u] = v; }

// x[e..e+3] of one row (e + 3 within the row).
fn xq(e: u32) -> vec4<f32> {
  if (VEC_K) { return X[e >> 2u]; }
  return vec4<f32>(xs(e), xs(e + 1u), xs(e + 2u), xs(e + 3u));
}
// A[k][j..j+3], T[k][j..j+3]; with a ragged R the last quad reads on (clamped at the end).
fn aq(k: u32, j: u32) -> vec4<f32> {
  let e = k * p.R + j;
  if (VEC_R) { return A[e >> 2u]; }
  let last = p.K * p.R - 1u;
  return vec4<f32>(as_(min(e, last)), as_(min(e + 1u, last)), as_(min(e + 2u, last)), as_(min(e + 3u, last)));
}
fn tq(k: u32, j: u32) -> vec4<f32> {
  let e = k * p.R + j;
  if (VEC_R) { return T[e >> 2u]; }
  let last = p.K * p.R - 1u;
  return vec4<f32>(ts(min(e, last)), ts(min(e + 1u, last)), ts(min(e + 2u, last)), ts(min(e + 3u, last)));
}
// B[j][n..n+3] from e = j·N + n; with a ragged N the last quad is clamped at the end.
fn bq(e: u32) -> vec4<f32> {
  if (VEC_N) { return B[e >> 2u]; }
  let last = p.R * p.N - 1u;
  return vec4<f32>(bs(min(e, last)), bs(min(e + 1u, last)), bs(min(e + 2u, last)), bs(min(e + 3u, last)));
}
// g[e..e+3] of one row (e + 3 within the row).
fn gq(e: u32) -> vec4<f32> {
  if (VEC_N) { return G[e >> 2u]; }
  return vec4<f32>(gs(e), gs(e + 1u), gs(e + 2u), gs(e + 3u));
}

// Offsets of rows r0..r0+3 of a (rows, width) matrix, rows clamped to the last one.
fn rowBase(r0: u32, rows: u32, width: u32) -> vec4<u32> {
  let l = rows - 1u;
  return vec4<u32>(min(r0, l), min(r0 + 1u, l), min(r0 + 2u, l), min(r0 + 3u, l)) * width;
}

// outer(b, a): column i = a[i] · b.
fn outer(bv: vec4<f32>, av: vec4<f32>) -> mat4x4<f32> {
  return mat4x4<f32>(av.x * bv, av.y * bv, av.z * bv, av.w * bv);
}

// Zeroes rank columns j0+c ≥ R (select, so that a NaN read past the end cannot survive).
fn maskCols(blk: mat4x4<f32>, j0: u32) -> mat4x4<f32> {
  if (VEC_R) { return blk; }
  let keep = vec4<u32>(j0, j0 + 1u, j0 + 2u, j0 + 3u) < vec4<u32>(p.R);
  let z = vec4<f32>(0.0);
  return mat4x4<f32>(select(z, blk[0], keep), select(z, blk[1], keep), select(z, blk[2], keep), select(z, blk[3], keep));
}
// 1 for the rank columns j0..j0+3 that exist, else 0.
fn colMask(j0: u32) -> vec4<f32> {
  return select(vec4<f32>(0.0), vec4<f32>(1.0), vec4<u32>(j0, j0 + 1u, j0 + 2u, j0 + 3u) < vec4<u32>(p.R));
}

// A state section (M,R) at `off`: row m, columns j0..j0+3 (0 outside).
fn stateQuad(off: u32, m: u32, j0: u32) -> vec4<f32> {
  var v = vec4<f32>(0.0);
  if (m >= p.M) { return v; }
  for (var c = 0u; c < 4u; c++) { if (j0 + c < p.R) { v[c] = sget(off + m * p.R + j0 + c); } }
  return v;
}
fn gammaQuad(j0: u32) -> vec4<f32> {
  var v = vec4<f32>(0.0);
  for (var c = 0u; c < 4u; c++) { if (j0 + c < p.R) { v[c] = GAMMA[j0 + c]; } }
  return v;
}
fn betaQuad(j0: u32) -> vec4<f32> {
  var v = vec4<f32>(0.0);
  for (var c = 0u; c < 4u; c++) { if (j0 + c < p.R) { v[c] = BETA[j0 + c]; } }
  return v;
}

// ---- dropout on the A-branch input (same hash and mask as lora.wgsl) ------------------------
fn hash32(v: u32) -> u32 {
  var x = v;
  x ^= x >> 16u; x *= 0x7feb352du; x ^= x >> 15u; x *= 0x846ca68bu; x ^= x >> 16u;
  return x;
}
fn keepScale(idx: u32) -> f32 {
  return select(0.0, p.invKeep, hash32(hash32(idx) ^ p.seedHash) >= p.drop);
}
fn keepQuad(idx: u32) -> vec4<f32> {
  return vec4<f32>(keepScale(idx), keepScale(idx + 1u), keepScale(idx + 2u), keepScale(idx + 3u));
}
fn dropBlock(m0: u32, k: u32, xm: mat4x4<f32>, store: bool) -> mat4x4<f32> {
  var d = xm;
  for (var i = 0u; i < 4u; i++) {
    let m = m0 + i;
    d[i] = xm[i] * keepQuad(m * p.K + k);
    if (store && m < p.M) {
      for (var c = 0u; c < 4u; c++) { sset(p.offXd + m * p.K + k + c, d[i][c]); }
    }
  }
  return d;
}
fn dropColumn(m0: u32, k: u32, xv: vec4<f32>, store: bool) -> vec4<f32> {
  var d = xv;
  for (var i = 0u; i < 4u; i++) {
    let m = m0 + i;
    d[i] = xv[i] * keepScale(m * p.K + k);
    if (store && m < p.M) { sset(p.offXd + m * p.K + k, d[i]); }
  }
  return d;
}

// y[m0+i][n..n+3] += s · blk[i] for the rows below M and the columns below N.
fn addY(m0: u32, n: u32, blk: mat4x4<f32>) {
  if (n >= p.N) { return; }
  for (var i = 0u; i < 4u; i++) {
    let m = m0 + i;
    if (m >= p.M) { break; }
    let idx = m * p.N + n;
    if (VEC_N) {
      Y[idx >> 2u] = Y[idx >> 2u] + p.scale * blk[i];
    } else {
      for (var c = 0u; c < 4u; c++) {
        if (n + c < p.N) { let e = idx + c; Y[e >> 2u][e & 3u] = Y[e >> 2u][e & 3u] + p.scale * blk[i][c]; }
      }
    }
  }
}

// dx[m0+i][k..k+3] = drop'(a[i]) + z[i] for the rows below M and the columns below K.
fn putDX(m0: u32, k: u32, a: mat4x4<f32>, z: mat4x4<f32>) {
  if (k >= p.K) { return; }
  for (var i = 0u; i < 4u; i++) {
    let m = m0 + i;
    if (m >= p.M) { break; }
    let idx = m * p.K + k;
    var v = a[i];
    if (DROPOUT) { v *= keepQuad(idx); }
    v += z[i];
    if (VEC_K) {
      DX[idx >> 2u] = v;
    } else {
      for (var c = 0u; c < 4u; c++) {
        if (k + c < p.K) { let e = idx + c; DX[e >> 2u][e & 3u] = v[c]; }
      }
    }
  }
}

// ==== tiled schedule ===========================================================================
// The thread's 4×4 blocks of u = drop(x) A and v = x T (column i = row m0+i) over its share of K.
struct UV { u: mat4x4<f32>, v: mat4x4<f32> }
fn projectBlocks(m0: u32, j0: u32, ks: u32, storeXd: bool) -> UV {
  let rb = rowBase(m0, p.M, p.K);
  let k4 = p.K & ~3u;
  var au = mat4x4<f32>();
  var av = mat4x4<f32>();
  for (var k = ks * 4u; k < k4; k += 4u * KS) {
    let xm = mat4x4<f32>(xq(rb.x + k), xq(rb.y + k), xq(rb.z + k), xq(rb.w + k));
    var xa = xm;
    if (DROPOUT) { xa = dropBlock(m0, k, xm, storeXd); }
    au += mat4x4<f32>(aq(k, j0), aq(k + 1u, j0), aq(k + 2u, j0), aq(k + 3u, j0)) * xa;
    av += mat4x4<f32>(tq(k, j0), tq(k + 1u, j0), tq(k + 2u, j0), tq(k + 3u, j0)) * xm;
  }
  if (ks == 0u) {
    for (var k = k4; k < p.K; k++) {
      let xv = vec4<f32>(xs(rb.x + k), xs(rb.y + k), xs(rb.z + k), xs(rb.w + k));
      var xa = xv;
      if (DROPOUT) { xa = dropColumn(m0, k, xv, storeXd); }
      au += outer(aq(k, j0), xa);
      av += outer(tq(k, j0), xv);
    }
  }
  return UV(au, av);
}

// dh block (unscaled) = g[m0..m0+3, :] B[j0..j0+3, :]ᵀ over this thread's share of N.
fn gradBlock(m0: u32, j0: u32, ks: u32) -> mat4x4<f32> {
  let rg = rowBase(m0, p.M, p.N);
  let rbb = rowBase(j0, p.R, p.N);
  let n4 = p.N & ~3u;
  var acc = mat4x4<f32>();
  for (var n = ks * 4u; n < n4; n += 4u * KS) {
    let gm = mat4x4<f32>(gq(rg.x + n), gq(rg.y + n), gq(rg.z + n), gq(rg.w + n));
    let bm = mat4x4<f32>(bq(rbb.x + n), bq(rbb.y + n), bq(rbb.z + n), bq(rbb.w + n));
    acc += transpose(bm) * gm;   // column i, entry c: dot(B[j0+c][n..], g[m0+i][n..])
  }
  if (ks == 0u) {
    for (var n = n4; n < p.N; n++) {
      let gv = vec4<f32>(gs(rg.x + n), gs(rg.y + n), gs(rg.z + n), gs(rg.w + n));
      let bv = vec4<f32>(bs(rbb.x + n), bs(rbb.y + n), bs(rbb.z + n), bs(rbb.w + n));
      acc += outer(bv, gv);
    }
  }
  return acc;
}

// Sum of the row's partials over the RQ column quads.
fn rowSum1(l: u32) -> f32 {
  var s = 0.0;
  for (var q = 0u; q < RQ; q++) { s += rowS1[l * RQ + q]; }
  return s;
}
fn rowSum2(l: u32) -> f32 {
  var s = 0.0;
  for (var q = 0u; q < RQ; q++) { s += rowS2[l * RQ + q]; }
  return s;
}

fn tileBlockH(l0: u32, jq: u32) -> mat4x4<f32> {
  return mat4x4<f32>(tileH[l0 * RQ + jq], tileH[(l0 + 1u) * RQ + jq], tileH[(l0 + 2u) * RQ + jq], tileH[(l0 + 3u) * RQ + jq]);
}
fn tileBlockZ(l0: u32, jq: u32) -> mat4x4<f32> {
  return mat4x4<f32>(tileZ[l0 * RQ + jq], tileZ[(l0 + 1u) * RQ + jq], tileZ[(l0 + 2u) * RQ + jq], tileZ[(l0 + 3u) * RQ + jq]);
}

// Column c = A[k+c][j..j+3] (or T's), rows past K clamped to the last.
fn rowsOf(k: u32, j: u32, ofT: bool) -> mat4x4<f32> {
  let l = p.K - 1u;
  let r = vec4<u32>(min(k, l), min(k + 1u, l), min(k + 2u, l), min(k + 3u, l));
  if (ofT) { return mat4x4<f32>(tq(r.x, j), tq(r.y, j), tq(r.z, j), tq(r.w, j)); }
  return mat4x4<f32>(aq(r.x, j), aq(r.y, j), aq(r.z, j), aq(r.w, j));
}

// dual_lora_forward_tiled: x (M,K), A, T (K,R), γ, β (R), B (R,N) → state; y (M,N) += s · h B.
// Workgroups: ceil(M / TM).
@compute @workgroup_size(WG)
fn dual_lora_forward_tiled(@builtin(local_invocation_index) t: u32, @builtin(workgroup_id) wid: vec3<u32>) {
  let mb = wid.x * TM;
  let ks = t % KS;
  let cq = (t / KS) % RQ;
  let rq = t / (KS * RQ);
  let m0 = mb + rq * 4u;
  let j0 = cq * 4u;
  var uv = projectBlocks(m0, j0, ks, cq == 0u);
  if (KS > 1u) {
    redU[t] = uv.u;
    redV[t] = uv.v;
    workgroupBarrier();
    if (ks == 0u) { for (var i = 1u; i < KS; i++) { uv.u += redU[t + i]; uv.v += redV[t + i]; } }
  }
  uv.u = maskCols(uv.u, j0);
  uv.v = maskCols(uv.v, j0);
  let live = ks == 0u;
  let mask = colMask(j0);
  let rf = f32(p.R);
  // Row means (columns past R hold 0, so plain sums are right; rows past M are junk, unused).
  if (live) {
    for (var i = 0u; i < 4u; i++) { rowS1[(rq * 4u + i) * RQ + cq] = dot(uv.u[i], vec4<f32>(1.0)); }
  }
  workgroupBarrier();
  var mean = vec4<f32>(0.0);
  if (live) {
    for (var i = 0u; i < 4u; i++) {
      mean[i] = rowSum1(rq * 4u + i) / rf;
      let d = (uv.u[i] - vec4<f32>(mean[i])) * mask;
      rowS2[(rq * 4u + i) * RQ + cq] = dot(d, d);
    }
  }
  workgroupBarrier();
  if (live) {
    let gq = gammaQuad(j0);
    let bq = betaQuad(j0);
    for (var i = 0u; i < 4u; i++) {
      let rstd = inverseSqrt(rowSum2(rq * 4u + i) / rf + p.eps);
      let xh = (uv.u[i] - vec4<f32>(mean[i])) * rstd * mask;
      let nv = gq * xh + bq;
      let h = max(uv.v[i], vec4<f32>(0.0)) * nv;
      tileH[(rq * 4u + i) * RQ + cq] = h;
      let m = m0 + i;
      if (m >= p.M) { continue; }
      if (cq == 0u) { sset(p.offRstd + m, rstd); }
      for (var c = 0u; c < 4u; c++) {
        if (j0 + c < p.R) {
          let idx = m * p.R + j0 + c;
          sset(idx, h[c]);
          sset(p.offN + idx, nv[c]);
          sset(p.offXhat + idx, xh[c]);
          sset(p.offV + idx, uv.v[i][c]);
        }
      }
    }
  }
  workgroupBarrier();
  // Phase 2: y[mb.., n..n+15] += s · tileH B, a 4-row × 16-column block per thread.
  let ng = (p.N + 15u) / 16u;
  for (var b = t; b < WR * ng; b += WG) {
    let n = (b % ng) * 16u;
    let l0 = (b / ng) * 4u;
    if (mb + l0 >= p.M) { break; }
    // The four column quads; those past N repeat the last one and are not stored.
    let nn = min(vec4<u32>(n) + vec4<u32>(0u, 4u, 8u, 12u), vec4<u32>(((p.N + 3u) / 4u - 1u) * 4u));
    var c0 = mat4x4<f32>(); var c1 = mat4x4<f32>(); var c2 = mat4x4<f32>(); var c3 = mat4x4<f32>();
    for (var jq = 0u; jq < RQ; jq++) {
      let h = tileBlockH(l0, jq);
      // Rank rows past R are clamped to the last; the tile is 0 in those columns.
      let jr = rowBase(jq * 4u, p.R, p.N);
      c0 += mat4x4<f32>(bq(jr.x + nn.x), bq(jr.y + nn.x), bq(jr.z + nn.x), bq(jr.w + nn.x)) * h;
      c1 += mat4x4<f32>(bq(jr.x + nn.y), bq(jr.y + nn.y), bq(jr.z + nn.y), bq(jr.w + nn.y)) * h;
      c2 += mat4x4<f32>(bq(jr.x + nn.z), bq(jr.y + nn.z), bq(jr.z + nn.z), bq(jr.w + nn.z)) * h;
      c3 += mat4x4<f32>(bq(jr.x + nn.w), bq(jr.y + nn.w), bq(jr.z + nn.w), bq(jr.w + nn.w)) * h;
    }
    addY(mb + l0, n, c0); addY(mb + l0, n + 4u, c1); addY(mb + l0, n + 8u, c2); addY(mb + l0, n + 12u, c3);
  }
}

// dual_lora_backward_tiled: g (M,N), B (R,N), γ (R), state (n, x̂, v, rstd), A, T (K,R) →
// work: du, dz (M,R), dγ/dβ partials (one row pair per workgroup); dx (M,K) overwritten.
// Workgroups: ceil(M / TM) = p.nPart.
@compute @workgroup_size(WG)
fn dual_lora_backward_tiled(@builtin(local_invocation_index) t: u32, @builtin(workgroup_id) wid: vec3<u32>) {
  let mb = wid.x * TM;
  let ks = t % KS;
  let cq = (t / KS) % RQ;
  let rq = t / (KS * RQ);
  let m0 = mb + rq * 4u;
  let j0 = cq * 4u;
  var dh = gradBlock(m0, j0, ks);
  if (KS > 1u) {
    redU[t] = dh;
    workgroupBarrier();
    if (ks == 0u) { for (var i = 1u; i < KS; i++) { dh += redU[t + i]; } }
  }
  dh = maskCols(dh * p.scale, j0);
  let live = ks == 0u;
  let mask = colMask(j0);
  let rf = f32(p.R);
  var dz = mat4x4<f32>();
  var dxh = mat4x4<f32>();
  var xh = mat4x4<f32>();
  var rstd = vec4<f32>(0.0);
  if (live) {
    let gq = gammaQuad(j0);
    var dg = vec4<f32>(0.0);
    var db = vec4<f32>(0.0);
    for (var i = 0u; i < 4u; i++) {
      let m = m0 + i;
      let v = stateQuad(p.offV, m, j0);
      let nv = stateQuad(p.offN, m, j0);
      xh[i] = stateQuad(p.offXhat, m, j0);
      if (m < p.M) { rstd[i] = sget(p.offRstd + m); }
      dz[i] = select(vec4<f32>(0.0), dh[i] * nv, v > vec4<f32>(0.0));
      let dn = dh[i] * max(v, vec4<f32>(0.0));
      dxh[i] = dn * gq;
      dg += dn * xh[i];
      db += dn;
      rowS1[(rq * 4u + i) * RQ + cq] = dot(dxh[i], vec4<f32>(1.0));
      rowS2[(rq * 4u + i) * RQ + cq] = dot(dxh[i], xh[i]);
    }
    colS[rq * RQ + cq] = dg;
    colS[(WR + rq) * RQ + cq] = db;
  }
  workgroupBarrier();
  if (live) {
    for (var i = 0u; i < 4u; i++) {
      let c1 = rowSum1(rq * 4u + i) / rf;
      let c2 = rowSum2(rq * 4u + i) / rf;
      let du = rstd[i] * (dxh[i] - vec4<f32>(c1) - xh[i] * c2) * mask;
      tileH[(rq * 4u + i) * RQ + cq] = du;
      tileZ[(rq * 4u + i) * RQ + cq] = dz[i];
      let m = m0 + i;
      if (m >= p.M) { continue; }
      for (var c = 0u; c < 4u; c++) {
        if (j0 + c < p.R) {
          wset(m * p.R + j0 + c, du[c]);
          wset(p.offDz + m * p.R + j0 + c, dz[i][c]);
        }
      }
    }
    if (rq == 0u) {
      var dg = vec4<f32>(0.0);
      var db = vec4<f32>(0.0);
      for (var r = 0u; r < WR; r++) { dg += colS[r * RQ + cq]; db += colS[(WR + r) * RQ + cq]; }
      let base = p.offPart + wid.x * 2u * p.R;
      for (var c = 0u; c < 4u; c++) {
        if (j0 + c < p.R) { wset(base + j0 + c, dg[c]); wset(base + p.R + j0 + c, db[c]); }
      }
    }
  }
  workgroupBarrier();
  // Phase 2: dx[mb.., k..k+7] = drop'(du Aᵀ) + dz Tᵀ, a 4-row × 8-column block per thread.
  let kg = (p.K + 7u) / 8u;
  for (var b = t; b < WR * kg; b += WG) {
    let k = (b % kg) * 8u;
    let l0 = (b / kg) * 4u;
    if (mb + l0 >= p.M) { break; }
    let kk = min(vec2<u32>(k, k + 4u), vec2<u32>(((p.K + 3u) / 4u - 1u) * 4u));
    var a0 = mat4x4<f32>(); var a1 = mat4x4<f32>(); var z0 = mat4x4<f32>(); var z1 = mat4x4<f32>();
    for (var jq = 0u; jq < RQ; jq++) {
      let h = tileBlockH(l0, jq);
      let z = tileBlockZ(l0, jq);
      let j = jq * 4u;
      a0 += transpose(rowsOf(kk.x, j, false)) * h;
      a1 += transpose(rowsOf(kk.y, j, false)) * h;
      z0 += transpose(rowsOf(kk.x, j, true)) * z;
      z1 += transpose(rowsOf(kk.y, j, true)) * z;
    }
    putDX(mb + l0, k, a0, z0);
    putDX(mb + l0, k + 4u, a1, z1);
  }
}

// ==== direct schedule (K, N, R multiples of 4) =================================================
// Quad offsets of rows r0..r0+3 of an (M, w4 quads) matrix, clamped to the last row.
fn rowQuads(r0: u32, w4: u32) -> vec4<u32> { return rowBase(r0, p.M, w4); }
fn xBlock(ro: vec4<u32>, q: u32) -> mat4x4<f32> { return mat4x4<f32>(X[ro.x + q], X[ro.y + q], X[ro.z + q], X[ro.w + q]); }
fn gBlock(ro: vec4<u32>, q: u32) -> mat4x4<f32> { return mat4x4<f32>(G[ro.x + q], G[ro.y + q], G[ro.z + q], G[ro.w + q]); }
fn sBlock(ro: vec4<u32>, q: u32) -> mat4x4<f32> { return mat4x4<f32>(S[ro.x + q], S[ro.y + q], S[ro.z + q], S[ro.w + q]); }
fn wBlock(ro: vec4<u32>, q: u32) -> mat4x4<f32> { return mat4x4<f32>(WORK[ro.x + q], WORK[ro.y + q], WORK[ro.z + q], WORK[ro.w + q]); }
// Four consecutive quad rows from quad index e with row stride s (in quads).
fn aRows(e: u32, s: u32) -> mat4x4<f32> { return mat4x4<f32>(A[e], A[e + s], A[e + 2u * s], A[e + 3u * s]); }
fn tRows(e: u32, s: u32) -> mat4x4<f32> { return mat4x4<f32>(T[e], T[e + s], T[e + 2u * s], T[e + 3u * s]); }
fn bRows(e: u32, s: u32) -> mat4x4<f32> { return mat4x4<f32>(B[e], B[e + s], B[e + 2u * s], B[e + 3u * s]); }
// Rows m0.. of a block as quad q of the (M, w4 quads) matrix at quad offset o, below M.
fn putS(o: u32, m0: u32, w4: u32, q: u32, blk: mat4x4<f32>) {
  for (var i = 0u; i < 4u; i++) { if (m0 + i < p.M) { S[o + (m0 + i) * w4 + q] = blk[i]; } }
}
fn putW(o: u32, m0: u32, w4: u32, q: u32, blk: mat4x4<f32>) {
  for (var i = 0u; i < 4u; i++) { if (m0 + i < p.M) { WORK[o + (m0 + i) * w4 + q] = blk[i]; } }
}
fn gamma4(jq: u32) -> vec4<f32> { let j = jq * 4u; return vec4<f32>(GAMMA[j], GAMMA[j + 1u], GAMMA[j + 2u], GAMMA[j + 3u]); }
fn beta4(jq: u32) -> vec4<f32> { let j = jq * 4u; return vec4<f32>(BETA[j], BETA[j + 1u], BETA[j + 2u], BETA[j + 3u]); }

// dual_lora_forward_direct: as dual_lora_forward_tiled. One thread per 16 rows; workgroups:
// ceil(M / 64).
@compute @workgroup_size(4)
fn dual_lora_forward_direct(@builtin(global_invocation_id) gid: vec3<u32>) {
  let m0 = gid.x * 16u;
  if (m0 >= p.M) { return; }
  let k4 = p.K >> 2u;
  let r4 = p.R >> 2u;
  let n4 = p.N >> 2u;
  let oH = 0u; let oN = p.offN >> 2u; let oX = p.offXhat >> 2u; let oV = p.offV >> 2u;
  let x0 = rowQuads(m0, k4); let x1 = rowQuads(m0 + 4u, k4); let x2 = rowQuads(m0 + 8u, k4); let x3 = rowQuads(m0 + 12u, k4);
  // Phase 1: u = drop(x) A and v = x T (u goes to the x̂ section for now): two rank quads at a
  // time (16 accumulators: 16×8 of u and of v), then one at a time.
  var jq = 0u;
  for (; jq + 2u <= r4; jq += 2u) {
    var u00 = mat4x4<f32>(); var u01 = mat4x4<f32>(); var u10 = mat4x4<f32>(); var u11 = mat4x4<f32>();
    var u20 = mat4x4<f32>(); var u21 = mat4x4<f32>(); var u30 = mat4x4<f32>(); var u31 = mat4x4<f32>();
    var v00 = mat4x4<f32>(); var v01 = mat4x4<f32>(); var v10 = mat4x4<f32>(); var v11 = mat4x4<f32>();
    var v20 = mat4x4<f32>(); var v21 = mat4x4<f32>(); var v30 = mat4x4<f32>(); var v31 = mat4x4<f32>();
    for (var q = 0u; q < k4; q++) {
      let e = q * 4u * r4 + jq;   // quad index of A[4q][4jq]
      let wa0 = aRows(e, r4); let wa1 = aRows(e + 1u, r4);
      let wt0 = tRows(e, r4); let wt1 = tRows(e + 1u, r4);
      let b0 = xBlock(x0, q); let b1 = xBlock(x1, q); let b2 = xBlock(x2, q); let b3 = xBlock(x3, q);
      var d0 = b0; var d1 = b1; var d2 = b2; var d3 = b3;
      if (DROPOUT) {
        let keep = jq == 0u;   // drop(x) is stored once
        d0 = dropBlock(m0, 4u * q, b0, keep); d1 = dropBlock(m0 + 4u, 4u * q, b1, keep);
        d2 = dropBlock(m0 + 8u, 4u * q, b2, keep); d3 = dropBlock(m0 + 12u, 4u * q, b3, keep);
      }
      u00 += wa0 * d0; u01 += wa1 * d0; u10 += wa0 * d1; u11 += wa1 * d1;
      u20 += wa0 * d2; u21 += wa1 * d2; u30 += wa0 * d3; u31 += wa1 * d3;
      v00 += wt0 * b0; v01 += wt1 * b0; v10 += wt0 * b1; v11 += wt1 * b1;
      v20 += wt0 * b2; v21 += wt1 * b2; v30 += wt0 * b3; v31 += wt1 * b3;
    }
    putS(oX, m0, r4, jq, u00); putS(oX, m0, r4, jq + 1u, u01); putS(oX, m0 + 4u, r4, jq, u10); putS(oX, m0 + 4u, r4, jq + 1u, u11);
    putS(oX, m0 + 8u, r4, jq, u20); putS(oX, m0 + 8u, r4, jq + 1u, u21); putS(oX, m0 + 12u, r4, jq, u30); putS(oX, m0 + 12u, r4, jq + 1u, u31);
    putS(oV, m0, r4, jq, v00); putS(oV, m0, r4, jq + 1u, v01); putS(oV, m0 + 4u, r4, jq, v10); putS(oV, m0 + 4u, r4, jq + 1u, v11);
    putS(oV, m0 + 8u, r4, jq, v20); putS(oV, m0 + 8u, r4, jq + 1u, v21); putS(oV, m0 + 12u, r4, jq, v30); putS(oV, m0 + 12u, r4, jq + 1u, v31);
  }
  for (; jq < r4; jq++) {
    var u0 = mat4x4<f32>(); var u1 = mat4x4<f32>(); var u2 = mat4x4<f32>(); var u3 = mat4x4<f32>();
    var v0 = mat4x4<f32>(); var v1 = mat4x4<f32>(); var v2 = mat4x4<f32>(); var v3 = mat4x4<f32>();
    for (var q = 0u; q < k4; q++) {
      let e = q * 4u * r4 + jq;
      let wa = aRows(e, r4);
      let wt = tRows(e, r4);
      let b0 = xBlock(x0, q); let b1 = xBlock(x1, q); let b2 = xBlock(x2, q); let b3 = xBlock(x3, q);
      var d0 = b0; var d1 = b1; var d2 = b2; var d3 = b3;
      if (DROPOUT) {
        let keep = jq == 0u;
        d0 = dropBlock(m0, 4u * q, b0, keep); d1 = dropBlock(m0 + 4u, 4u * q, b1, keep);
        d2 = dropBlock(m0 + 8u, 4u * q, b2, keep); d3 = dropBlock(m0 + 12u, 4u * q, b3, keep);
      }
      u0 += wa * d0; u1 += wa * d1; u2 += wa * d2; u3 += wa * d3;
      v0 += wt * b0; v1 += wt * b1; v2 += wt * b2; v3 += wt * b3;
    }
    putS(oX, m0, r4, jq, u0); putS(oX, m0 + 4u, r4, jq, u1); putS(oX, m0 + 8u, r4, jq, u2); putS(oX, m0 + 12u, r4, jq, u3);
    putS(oV, m0, r4, jq, v0); putS(oV, m0 + 4u, r4, jq, v1); putS(oV, m0 + 8u, r4, jq, v2); putS(oV, m0 + 12u, r4, jq, v3);
  }
  // LayerNorm and gate, row by row (the thread's own rows, read back).
  let rf = f32(p.R);
  for (var i = 0u; i < 16u; i++) {
    let m = m0 + i;
    if (m >= p.M) { break; }
    let row = m * r4;
    var s1 = 0.0;
    for (var jq = 0u; jq < r4; jq++) { s1 += dot(S[oX + row + jq], vec4<f32>(1.0)); }
    let mean = s1 / rf;
    var s2 = 0.0;
    for (var jq = 0u; jq < r4; jq++) { let d = S[oX + row + jq] - vec4<f32>(mean); s2 += dot(d, d); }
    let rstd = inverseSqrt(s2 / rf + p.eps);
    sset(p.offRstd + m, rstd);
    for (var jq = 0u; jq < r4; jq++) {
      let xh = (S[oX + row + jq] - vec4<f32>(mean)) * rstd;
      let nv = gamma4(jq) * xh + beta4(jq);
      S[oX + row + jq] = xh;
      S[oN + row + jq] = nv;
      S[oH + row + jq] = max(S[oV + row + jq], vec4<f32>(0.0)) * nv;
    }
  }
  // Phase 2: y rows += s · h B, 16 columns at a time.
  let h0 = rowQuads(m0, r4); let h1 = rowQuads(m0 + 4u, r4); let h2 = rowQuads(m0 + 8u, r4); let h3 = rowQuads(m0 + 12u, r4);
  for (var n = 0u; n < n4; n += 4u) {
    let nn = min(vec4<u32>(n) + vec4<u32>(0u, 1u, 2u, 3u), vec4<u32>(n4 - 1u));   // past N: repeat, not stored
    var c00 = mat4x4<f32>(); var c01 = mat4x4<f32>(); var c02 = mat4x4<f32>(); var c03 = mat4x4<f32>();
    var c10 = mat4x4<f32>(); var c11 = mat4x4<f32>(); var c12 = mat4x4<f32>(); var c13 = mat4x4<f32>();
    var c20 = mat4x4<f32>(); var c21 = mat4x4<f32>(); var c22 = mat4x4<f32>(); var c23 = mat4x4<f32>();
    var c30 = mat4x4<f32>(); var c31 = mat4x4<f32>(); var c32 = mat4x4<f32>(); var c33 = mat4x4<f32>();
    for (var jq = 0u; jq < r4; jq++) {
      let g0 = sBlock(h0, jq); let g1 = sBlock(h1, jq); let g2 = sBlock(h2, jq); let g3 = sBlock(h3, jq);
      let e = jq * 4u * n4;   // quad index of B[4jq][0]
      let b0 = bRows(e + nn.x, n4); let b1 = bRows(e + nn.y, n4); let b2 = bRows(e + nn.z, n4); let b3 = bRows(e + nn.w, n4);
      c00 += b0 * g0; c01 += b1 * g0; c02 += b2 * g0; c03 += b3 * g0;
      c10 += b0 * g1; c11 += b1 * g1; c12 += b2 * g1; c13 += b3 * g1;
      c20 += b0 * g2; c21 += b1 * g2; c22 += b2 * g2; c23 += b3 * g2;
      c30 += b0 * g3; c31 += b1 * g3; c32 += b2 * g3; c33 += b3 * g3;
    }
    let n0 = n * 4u;
    addY(m0, n0, c00); addY(m0, n0 + 4u, c01); addY(m0, n0 + 8u, c02); addY(m0, n0 + 12u, c03);
    addY(m0 + 4u, n0, c10); addY(m0 + 4u, n0 + 4u, c11); addY(m0 + 4u, n0 + 8u, c12); addY(m0 + 4u, n0 + 12u, c13);
    addY(m0 + 8u, n0, c20); addY(m0 + 8u, n0 + 4u, c21); addY(m0 + 8u, n0 + 8u, c22); addY(m0 + 8u, n0 + 12u, c23);
    addY(m0 + 12u, n0, c30); addY(m0 + 12u, n0 + 4u, c31); addY(m0 + 12u, n0 + 8u, c32); addY(m0 + 12u, n0 + 12u, c33);
  }
}

// dual_lora_backward_direct: as dual_lora_backward_tiled; thread t (16 rows) writes partial
// row pair t. Workgroups: ceil(M / 64).
@compute @workgroup_size(4)
fn dual_lora_backward_direct(@builtin(global_invocation_id) gid: vec3<u32>) {
  let m0 = gid.x * 16u;
  if (m0 >= p.M) { return; }
  let k4 = p.K >> 2u;
  let r4 = p.R >> 2u;
  let n4 = p.N >> 2u;
  let oN = p.offN >> 2u; let oX = p.offXhat >> 2u; let oV = p.offV >> 2u;
  let oZ = p.offDz >> 2u;
  let oP = (p.offPart >> 2u) + gid.x * 2u * r4;
  let g0 = rowQuads(m0, n4); let g1 = rowQuads(m0 + 4u, n4); let g2 = rowQuads(m0 + 8u, n4); let g3 = rowQuads(m0 + 12u, n4);
  // Phase 1: dh = s · g Bᵀ into the du section for now: four rank quads at a time in 16×16
  // blocks, then one at a time; this block's dγ, dβ partials start at 0.
  // transpose(column c = B[j+c][4q..]): column i, entry c = dot(B[j+c][4q..], g[row i][4q..]).
  for (var jq = 0u; jq < r4; jq++) {
    WORK[oP + jq] = vec4<f32>(0.0);
    WORK[oP + r4 + jq] = vec4<f32>(0.0);
  }
  var jq = 0u;
  for (; jq + 4u <= r4; jq += 4u) {
    var c00 = mat4x4<f32>(); var c01 = mat4x4<f32>(); var c02 = mat4x4<f32>(); var c03 = mat4x4<f32>();
    var c10 = mat4x4<f32>(); var c11 = mat4x4<f32>(); var c12 = mat4x4<f32>(); var c13 = mat4x4<f32>();
    var c20 = mat4x4<f32>(); var c21 = mat4x4<f32>(); var c22 = mat4x4<f32>(); var c23 = mat4x4<f32>();
    var c30 = mat4x4<f32>(); var c31 = mat4x4<f32>(); var c32 = mat4x4<f32>(); var c33 = mat4x4<f32>();
    let e = jq * 4u * n4;   // quad index of B[4jq][0]
    let s4 = 4u * n4;       // one rank quad further
    for (var q = 0u; q < n4; q++) {
      let w0 = transpose(bRows(e + q, n4)); let w1 = transpose(bRows(e + s4 + q, n4));
      let w2 = transpose(bRows(e + 2u * s4 + q, n4)); let w3 = transpose(bRows(e + 3u * s4 + q, n4));
      let b0 = gBlock(g0, q); let b1 = gBlock(g1, q); let b2 = gBlock(g2, q); let b3 = gBlock(g3, q);
      c00 += w0 * b0; c01 += w1 * b0; c02 += w2 * b0; c03 += w3 * b0;
      c10 += w0 * b1; c11 += w1 * b1; c12 += w2 * b1; c13 += w3 * b1;
      c20 += w0 * b2; c21 += w1 * b2; c22 += w2 * b2; c23 += w3 * b2;
      c30 += w0 * b3; c31 += w1 * b3; c32 += w2 * b3; c33 += w3 * b3;
    }
    let sc = p.scale;
    putW(0u, m0, r4, jq, c00 * sc); putW(0u, m0, r4, jq + 1u, c01 * sc); putW(0u, m0, r4, jq + 2u, c02 * sc); putW(0u, m0, r4, jq + 3u, c03 * sc);
    putW(0u, m0 + 4u, r4, jq, c10 * sc); putW(0u, m0 + 4u, r4, jq + 1u, c11 * sc); putW(0u, m0 + 4u, r4, jq + 2u, c12 * sc); putW(0u, m0 + 4u, r4, jq + 3u, c13 * sc);
    putW(0u, m0 + 8u, r4, jq, c20 * sc); putW(0u, m0 + 8u, r4, jq + 1u, c21 * sc); putW(0u, m0 + 8u, r4, jq + 2u, c22 * sc); putW(0u, m0 + 8u, r4, jq + 3u, c23 * sc);
    putW(0u, m0 + 12u, r4, jq, c30 * sc); putW(0u, m0 + 12u, r4, jq + 1u, c31 * sc); putW(0u, m0 + 12u, r4, jq + 2u, c32 * sc); putW(0u, m0 + 12u, r4, jq + 3u, c33 * sc);
  }
  for (; jq < r4; jq++) {
    var c0 = mat4x4<f32>(); var c1 = mat4x4<f32>(); var c2 = mat4x4<f32>(); var c3 = mat4x4<f32>();
    let e = jq * 4u * n4;
    for (var q = 0u; q < n4; q++) {
      let w = transpose(bRows(e + q, n4));
      c0 += w * gBlock(g0, q); c1 += w * gBlock(g1, q); c2 += w * gBlock(g2, q); c3 += w * gBlock(g3, q);
    }
    putW(0u, m0, r4, jq, c0 * p.scale); putW(0u, m0 + 4u, r4, jq, c1 * p.scale);
    putW(0u, m0 + 8u, r4, jq, c2 * p.scale); putW(0u, m0 + 12u, r4, jq, c3 * p.scale);
  }
  // Gate and LayerNorm backward, row by row: dz, du (over dh), and this block's dγ, dβ.
  let rf = f32(p.R);
  for (var i = 0u; i < 16u; i++) {
    let m = m0 + i;
    if (m >= p.M) { break; }
    let row = m * r4;
    var c1 = 0.0;
    var c2 = 0.0;
    for (var jq = 0u; jq < r4; jq++) {
      let dxh = WORK[row + jq] * max(S[oV + row + jq], vec4<f32>(0.0)) * gamma4(jq);
      c1 += dot(dxh, vec4<f32>(1.0));
      c2 += dot(dxh, S[oX + row + jq]);
    }
    c1 /= rf;
    c2 /= rf;
    let rs = sget(p.offRstd + m);
    for (var jq = 0u; jq < r4; jq++) {
      let dh = WORK[row + jq];
      let v = S[oV + row + jq];
      let xh = S[oX + row + jq];
      let dn = dh * max(v, vec4<f32>(0.0));
      WORK[oZ + row + jq] = select(vec4<f32>(0.0), dh * S[oN + row + jq], v > vec4<f32>(0.0));
      WORK[row + jq] = rs * (dn * gamma4(jq) - vec4<f32>(c1) - xh * c2);
      WORK[oP + jq] = WORK[oP + jq] + dn * xh;
      WORK[oP + r4 + jq] = WORK[oP + r4 + jq] + dn;
    }
  }
  // Phase 2: dx rows = drop'(du Aᵀ) + dz Tᵀ, 8 columns at a time (the thread's own du, dz rows).
  let d0 = rowQuads(m0, r4); let d1 = rowQuads(m0 + 4u, r4); let d2 = rowQuads(m0 + 8u, r4); let d3 = rowQuads(m0 + 12u, r4);
  let z0 = d0 + vec4<u32>(oZ); let z1 = d1 + vec4<u32>(oZ); let z2 = d2 + vec4<u32>(oZ); let z3 = d3 + vec4<u32>(oZ);
  for (var k = 0u; k < k4; k += 2u) {
    let kk = min(vec2<u32>(k, k + 1u), vec2<u32>(k4 - 1u)) * 4u * r4;   // quad index of A[4k'][0]
    var a00 = mat4x4<f32>(); var a01 = mat4x4<f32>(); var a10 = mat4x4<f32>(); var a11 = mat4x4<f32>();
    var a20 = mat4x4<f32>(); var a21 = mat4x4<f32>(); var a30 = mat4x4<f32>(); var a31 = mat4x4<f32>();
    var t00 = mat4x4<f32>(); var t01 = mat4x4<f32>(); var t10 = mat4x4<f32>(); var t11 = mat4x4<f32>();
    var t20 = mat4x4<f32>(); var t21 = mat4x4<f32>(); var t30 = mat4x4<f32>(); var t31 = mat4x4<f32>();
    for (var jq = 0u; jq < r4; jq++) {
      let u0 = wBlock(d0, jq); let u1 = wBlock(d1, jq); let u2 = wBlock(d2, jq); let u3 = wBlock(d3, jq);
      let y0 = wBlock(z0, jq); let y1 = wBlock(z1, jq); let y2 = wBlock(z2, jq); let y3 = wBlock(z3, jq);
      let am0 = transpose(aRows(kk.x + jq, r4)); let am1 = transpose(aRows(kk.y + jq, r4));
      let tm0 = transpose(tRows(kk.x + jq, r4)); let tm1 = transpose(tRows(kk.y + jq, r4));
      a00 += am0 * u0; a01 += am1 * u0; a10 += am0 * u1; a11 += am1 * u1;
      a20 += am0 * u2; a21 += am1 * u2; a30 += am0 * u3; a31 += am1 * u3;
      t00 += tm0 * y0; t01 += tm1 * y0; t10 += tm0 * y1; t11 += tm1 * y1;
      t20 += tm0 * y2; t21 += tm1 * y2; t30 += tm0 * y3; t31 += tm1 * y3;
    }
    let k0 = k * 4u;
    putDX(m0, k0, a00, t00); putDX(m0, k0 + 4u, a01, t01);
    putDX(m0 + 4u, k0, a10, t10); putDX(m0 + 4u, k0 + 4u, a11, t11);
    putDX(m0 + 8u, k0, a20, t20); putDX(m0 + 8u, k0 + 4u, a21, t21);
    putDX(m0 + 12u, k0, a30, t30); putDX(m0 + 12u, k0 + 4u, a31, t31);
  }
}

// dual_lora_backward_norm: partials (nPart, 2, R) → dγ (R) += Σ_w partials[w][0], dβ (R) += Σ_w
// partials[w][1]. One thread per parameter; workgroups: ceil(2R / 64). Independent of the
// tiling defines (compiled once, with any).
@compute @workgroup_size(64)
fn dual_lora_backward_norm(@builtin(global_invocation_id) gid: vec3<u32>) {
  let j = gid.x;
  if (j >= 2u * p.R) { return; }
  var s = 0.0;
  for (var w = 0u; w < p.nPart; w++) { let e = p.offPart + w * 2u * p.R + j; s += WORK[e >> 2u][e & 3u]; }
  if (j < p.R) { DGAMMA[j] = DGAMMA[j] + s; } else { DBETA[j - p.R] = DBETA[j - p.R] + s; }
}
