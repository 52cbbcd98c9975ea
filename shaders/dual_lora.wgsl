// Dual-LoRA (DESIGN §1.3), W and b frozen, s = alpha / r:
//   u = drop(x) A   (skill space)     n = LN_R(u) = γ ⊙ x̂ + β,  x̂ = (u − mean) · rstd
//   v = x T         (task space)      h = ReLU(v) ⊙ n
//   y = x W + b + s · h B
//   x (M,K): M = batch·tokens rows of K = in features; W (K,N); A, T (K,R); B (R,N); γ, β (R); R ≤ 64.
// The two big products (x W + b forward, g Wᵀ backward) are matmul.wgsl dispatches; this file
// holds the rank-R side:
//   dual_lora_forward        u, v, LN, gate, h; then y += s · h B       (y already holds x W + b;
//                            with N = 0 only the state is written, for a backward without a forward)
//   dual_lora_backward       dh = s · g Bᵀ; dz = dh ⊙ n ⊙ 1[v>0]; dn = dh ⊙ ReLU(v);
//                            du = LN_backward(dn); per-workgroup dγ, dβ partials;
//                            then dx = drop'(du Aᵀ) + dz Tᵀ (the g Wᵀ matmul accumulates onto it)
//   dual_lora_backward_norm  dγ += Σ partials, dβ += Σ partials
// dB += s · hᵀ g, dA += drop(x)ᵀ du and dT += xᵀ dz are matmuls with transA.
// The gate's subgradient at v = 0 is 0 (1[v>0]).
//
// State S (kept from forward to backward, one buffer, sections at p.off*): h (M,R) at 0; n (M,R);
// x̂ (M,R); v (M,R); rstd (M); drop(x) (M,K) when dropout is on. Work buffer of the backward:
// du (M,R) at 0; dz (M,R); the dγ/dβ partials (p.nPart, 2, R).
//
// Schedule and defines as in lora.wgsl: a workgroup owns TM = 4·WR rows and all R rank columns;
// phase 1 reduces over K (or N) in 4×4 register blocks split KS ways, then the LayerNorm row
// statistics meet in workgroup memory; phase 2 sweeps the workgroup's rows across all columns.
// Defines: RQ = ceil(R/4), WR, KS, VEC_K, VEC_N, VEC_R, DROPOUT.

struct Params {
  M: u32, K: u32, N: u32, R: u32,
  scale: f32, drop: u32, seedHash: u32, invKeep: f32,
  eps: f32, offN: u32, offXhat: u32, offV: u32,
  offRstd: u32, offXd: u32, offDz: u32, offPart: u32,
  nPart: u32, _pad0: u32, _pad1: u32, _pad2: u32,
}

const WG: u32 = KS * RQ * WR;   // threads per workgroup
const TM: u32 = 4u * WR;        // rows per workgroup

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> X: array<vec4<f32>>;        // x (M,K)
@group(0) @binding(2) var<storage, read> A: array<vec4<f32>>;        // A (K,R)
@group(0) @binding(3) var<storage, read> T: array<vec4<f32>>;        // T (K,R)
@group(0) @binding(4) var<storage, read> B: array<vec4<f32>>;        // B (R,N)
@group(0) @binding(5) var<storage, read> GAMMA: array<f32>;          // γ (R)
@group(0) @binding(6) var<storage, read> BETA: array<f32>;           // β (R)
@group(0) @binding(7) var<storage, read_write> S: array<f32>;        // state (see above)
@group(0) @binding(8) var<storage, read_write> Y: array<f32>;        // y (M,N)
@group(0) @binding(9) var<storage, read> G: array<vec4<f32>>;        // g = dL/dy (M,N)
@group(0) @binding(10) var<storage, read_write> WORK: array<f32>;    // du | dz | partials
@group(0) @binding(11) var<storage, read_write> DX: array<f32>;      // dx (M,K)
@group(0) @binding(12) var<storage, read_write> DGAMMA: array<f32>;  // dγ (R), accumulated
@group(0) @binding(13) var<storage, read_write> DBETA: array<f32>;   // dβ (R), accumulated

var<workgroup> red: array<mat4x4<f32>, 2u * WG>;      // phase 1 partial blocks (KS > 1)
var<workgroup> tileH: array<vec4<f32>, TM * RQ>;      // forward h / backward du: quad q of row l at l·RQ + q
var<workgroup> tileZ: array<vec4<f32>, TM * RQ>;      // backward dz
var<workgroup> rowS1: array<f32, TM * RQ>;            // per (row, column quad) partial row sums
var<workgroup> rowS2: array<f32, TM * RQ>;
var<workgroup> colS: array<vec4<f32>, 2u * WR * RQ>;  // backward dγ | dβ partials per (rq, cq)

// ---- loads ------------------------------------------------------------------------------
fn avail(start: u32, limit: u32, inside: bool) -> u32 {
  if (!inside || start >= limit) { return 0u; }
  return min(4u, limit - start);
}

fn quadX(e: u32, n: u32) -> vec4<f32> {
  if (VEC_K) { if (n >= 4u) { return X[e >> 2u]; } return vec4<f32>(0.0); }
  var v = vec4<f32>(0.0);
  for (var j = 0u; j < 4u; j++) { if (j < n) { let i = e + j; v[j] = X[i >> 2u][i & 3u]; } }
  return v;
}
fn quadA(e: u32, n: u32) -> vec4<f32> {
  if (VEC_R) { if (n >= 4u) { return A[e >> 2u]; } return vec4<f32>(0.0); }
  var v = vec4<f32>(0.0);
  for (var j = 0u; j < 4u; j++) { if (j < n) { let i = e + j; v[j] = A[i >> 2u][i & 3u]; } }
  return v;
}
fn quadT(e: u32, n: u32) -> vec4<f32> {
  if (VEC_R) { if (n >= 4u) { return T[e >> 2u]; } return vec4<f32>(0.0); }
  var v = vec4<f32>(0.0);
  for (var j = 0u; j < 4u; j++) { if (j < n) { let i = e + j; v[j] = T[i >> 2u][i & 3u]; } }
  return v;
}
fn quadB(e: u32, n: u32) -> vec4<f32> {
  if (VEC_N) { if (n >= 4u) { return B[e >> 2u]; } return vec4<f32>(0.0); }
  var v = vec4<f32>(0.0);
  for (var j = 0u; j < 4u; j++) { if (j < n) { let i = e + j; v[j] = B[i >> 2u][i & 3u]; } }
  return v;
}
fn quadG(e: u32, n: u32) -> vec4<f32> {
  if (VEC_N) { if (n >= 4u) { return G[e >> 2u]; } return vec4<f32>(0.0); }
  var v = vec4<f32>(0.0);
  for (var j = 0u; j < 4u; j++) { if (j < n) { let i = e + j; v[j] = G[i >> 2u][i & 3u]; } }
  return v;
}

fn loadX(m: u32, k: u32) -> vec4<f32> { return quadX(m * p.K + k, avail(k, p.K, m < p.M)); }   // x[m][k..k+3]
fn loadA(k: u32, j: u32) -> vec4<f32> { return quadA(k * p.R + j, avail(j, p.R, k < p.K)); }   // A[k][j..j+3]
fn loadT(k: u32, j: u32) -> vec4<f32> { return quadT(k * p.R + j, avail(j, p.R, k < p.K)); }   // T[k][j..j+3]
fn loadB(j: u32, n: u32) -> vec4<f32> { return quadB(j * p.N + n, avail(n, p.N, j < p.R)); }   // B[j][n..n+3]
fn loadG(m: u32, n: u32) -> vec4<f32> { return quadG(m * p.N + n, avail(n, p.N, m < p.M)); }   // g[m][n..n+3]

// A state section (M,R) at `off`: row m, columns j0..j0+3 (0 outside).
fn stateQuad(off: u32, m: u32, j0: u32) -> vec4<f32> {
  var v = vec4<f32>(0.0);
  if (m >= p.M) { return v; }
  for (var c = 0u; c < 4u; c++) { if (j0 + c < p.R) { v[c] = S[off + m * p.R + j0 + c]; } }
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
// 1 for the rank columns j0..j0+3 that exist, else 0.
fn colMask(j0: u32) -> vec4<f32> {
  return select(vec4<f32>(0.0), vec4<f32>(1.0), vec4<u32>(j0, j0 + 1u, j0 + 2u, j0 + 3u) < vec4<u32>(p.R));
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
fn dropBlock(m0: u32, k: u32, xm: mat4x4<f32>, store: bool) -> mat4x4<f32> {
  var d = xm;
  for (var i = 0u; i < 4u; i++) {
    let m = m0 + i;
    for (var c = 0u; c < 4u; c++) {
      let idx = m * p.K + k + c;
      d[i][c] = xm[i][c] * keepScale(idx);
      if (store && m < p.M && k + c < p.K) { S[p.offXd + idx] = d[i][c]; }
    }
  }
  return d;
}

// ---- phase 1 ----------------------------------------------------------------------------------
// The thread's 4×4 blocks of u = drop(x) A and v = x T (column i = row m0+i) over its share of K.
struct UV { u: mat4x4<f32>, v: mat4x4<f32> }
fn projectBlocks(m0: u32, j0: u32, ks: u32, storeXd: bool) -> UV {
  var au = mat4x4<f32>();
  var av = mat4x4<f32>();
  for (var k = ks * 4u; k < p.K; k += 4u * KS) {
    let xm = mat4x4<f32>(loadX(m0, k), loadX(m0 + 1u, k), loadX(m0 + 2u, k), loadX(m0 + 3u, k));
    var xa = xm;
    if (DROPOUT) { xa = dropBlock(m0, k, xm, storeXd); }
    let am = mat4x4<f32>(loadA(k, j0), loadA(k + 1u, j0), loadA(k + 2u, j0), loadA(k + 3u, j0));
    let tm = mat4x4<f32>(loadT(k, j0), loadT(k + 1u, j0), loadT(k + 2u, j0), loadT(k + 3u, j0));
    au += am * xa;
    av += tm * xm;
  }
  return UV(au, av);
}

// dh block (unscaled) = g[m0..m0+3, :] B[j0..j0+3, :]ᵀ over this thread's share of N.
fn gradBlock(m0: u32, j0: u32, ks: u32) -> mat4x4<f32> {
  var acc = mat4x4<f32>();
  for (var n = ks * 4u; n < p.N; n += 4u * KS) {
    let gm = mat4x4<f32>(loadG(m0, n), loadG(m0 + 1u, n), loadG(m0 + 2u, n), loadG(m0 + 3u, n));
    let bm = mat4x4<f32>(loadB(j0, n), loadB(j0 + 1u, n), loadB(j0 + 2u, n), loadB(j0 + 3u, n));
    acc += transpose(bm) * gm;
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

// Phase 1 of the forward for workgroup rows mb..: u, v, LayerNorm, gate; h into the tile and
// h, n, x̂, v, rstd into the state.
fn projectTile(t: u32, mb: u32) {
  let ks = t % KS;
  let cq = (t / KS) % RQ;
  let rq = t / (KS * RQ);
  let m0 = mb + rq * 4u;
  let j0 = cq * 4u;
  var uv = projectBlocks(m0, j0, ks, cq == 0u);
  if (KS > 1u) {
    red[t] = uv.u;
    red[WG + t] = uv.v;
    workgroupBarrier();
    if (ks == 0u) { for (var i = 1u; i < KS; i++) { uv.u += red[t + i]; uv.v += red[WG + t + i]; } }
  }
  let live = ks == 0u;
  let mask = colMask(j0);
  let rf = f32(p.R);
  // Row means (columns past R hold 0, so plain sums are right).
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
      if (cq == 0u) { S[p.offRstd + m] = rstd; }
      for (var c = 0u; c < 4u; c++) {
        if (j0 + c < p.R) {
          let idx = m * p.R + j0 + c;
          S[idx] = h[c];
          S[p.offN + idx] = nv[c];
          S[p.offXhat + idx] = xh[c];
          S[p.offV + idx] = uv.v[i][c];
        }
      }
    }
  }
}

fn tileBlockH(l0: u32, jq: u32) -> mat4x4<f32> {
  return mat4x4<f32>(tileH[l0 * RQ + jq], tileH[(l0 + 1u) * RQ + jq], tileH[(l0 + 2u) * RQ + jq], tileH[(l0 + 3u) * RQ + jq]);
}
fn tileBlockZ(l0: u32, jq: u32) -> mat4x4<f32> {
  return mat4x4<f32>(tileZ[l0 * RQ + jq], tileZ[(l0 + 1u) * RQ + jq], tileZ[(l0 + 2u) * RQ + jq], tileZ[(l0 + 3u) * RQ + jq]);
}

// ---- entry points ---------------------------------------------------------------------------
// dual_lora_forward: x (M,K), A, T (K,R), γ, β (R), B (R,N) → state; y (M,N) += s · h B.
// Workgroups: ceil(M / TM).
@compute @workgroup_size(WG)
fn dual_lora_forward(@builtin(local_invocation_index) t: u32, @builtin(workgroup_id) wid: vec3<u32>) {
  let mb = wid.x * TM;
  projectTile(t, mb);
  workgroupBarrier();
  // Phase 2: y[mb.., n..n+3] += s · tileH B, sweeping all N quads.
  let nq = (p.N + 3u) / 4u;
  for (var b = t; b < WR * nq; b += WG) {
    let n = (b % nq) * 4u;
    let l0 = (b / nq) * 4u;
    if (mb + l0 >= p.M) { break; }
    var acc = mat4x4<f32>();
    for (var jq = 0u; jq < RQ; jq++) {
      let j = jq * 4u;
      let bm = mat4x4<f32>(loadB(j, n), loadB(j + 1u, n), loadB(j + 2u, n), loadB(j + 3u, n));
      acc += bm * tileBlockH(l0, jq);
    }
    for (var i = 0u; i < 4u; i++) {
      let m = mb + l0 + i;
      if (m >= p.M) { break; }
      for (var c = 0u; c < 4u; c++) {
        if (n + c < p.N) { let idx = m * p.N + n + c; Y[idx] = Y[idx] + p.scale * acc[i][c]; }
      }
    }
  }
}

// dual_lora_backward: g (M,N), B (R,N), γ (R), state (n, x̂, v, rstd), A, T (K,R) →
// work: du (M,R), dz (M,R), dγ/dβ partials (one row pair per workgroup); dx (M,K) overwritten.
// LN backward per row: dx̂ = dn ⊙ γ, du = rstd · (dx̂ − mean(dx̂) − x̂ · mean(dx̂ ⊙ x̂)).
// Workgroups: ceil(M / TM) = p.nPart.
@compute @workgroup_size(WG)
fn dual_lora_backward(@builtin(local_invocation_index) t: u32, @builtin(workgroup_id) wid: vec3<u32>) {
  let mb = wid.x * TM;
  let ks = t % KS;
  let cq = (t / KS) % RQ;
  let rq = t / (KS * RQ);
  let m0 = mb + rq * 4u;
  let j0 = cq * 4u;
  var dh = gradBlock(m0, j0, ks);
  if (KS > 1u) {
    red[t] = dh;
    workgroupBarrier();
    if (ks == 0u) { for (var i = 1u; i < KS; i++) { dh += red[t + i]; } }
  }
  dh *= p.scale;
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
      if (m < p.M) { rstd[i] = S[p.offRstd + m]; }
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
          WORK[m * p.R + j0 + c] = du[c];
          WORK[p.offDz + m * p.R + j0 + c] = dz[i][c];
        }
      }
    }
    if (rq == 0u) {
      var dg = vec4<f32>(0.0);
      var db = vec4<f32>(0.0);
      for (var r = 0u; r < WR; r++) { dg += colS[r * RQ + cq]; db += colS[(WR + r) * RQ + cq]; }
      let base = p.offPart + wid.x * 2u * p.R;
      for (var c = 0u; c < 4u; c++) {
        if (j0 + c < p.R) { WORK[base + j0 + c] = dg[c]; WORK[base + p.R + j0 + c] = db[c]; }
      }
    }
  }
  workgroupBarrier();
  // Phase 2: dx[mb.., k..k+3] = drop'(du Aᵀ) + dz Tᵀ, sweeping all K quads.
  let kq = (p.K + 3u) / 4u;
  for (var b = t; b < WR * kq; b += WG) {
    let k = (b % kq) * 4u;
    let l0 = (b / kq) * 4u;
    if (mb + l0 >= p.M) { break; }
    var accA = mat4x4<f32>();
    var accT = mat4x4<f32>();
    for (var jq = 0u; jq < RQ; jq++) {
      let j = jq * 4u;
      let am = mat4x4<f32>(loadA(k, j), loadA(k + 1u, j), loadA(k + 2u, j), loadA(k + 3u, j));
      let tm = mat4x4<f32>(loadT(k, j), loadT(k + 1u, j), loadT(k + 2u, j), loadT(k + 3u, j));
      accA += transpose(am) * tileBlockH(l0, jq);
      accT += transpose(tm) * tileBlockZ(l0, jq);
    }
    for (var i = 0u; i < 4u; i++) {
      let m = mb + l0 + i;
      if (m >= p.M) { break; }
      for (var c = 0u; c < 4u; c++) {
        if (k + c < p.K) {
          let idx = m * p.K + k + c;
          var a = accA[i][c];
          if (DROPOUT) { a *= keepScale(idx); }
          DX[idx] = a + accT[i][c];
        }
      }
    }
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
  for (var w = 0u; w < p.nPart; w++) { s += WORK[p.offPart + w * 2u * p.R + j]; }
  if (j < p.R) { DGAMMA[j] = DGAMMA[j] + s; } else { DBETA[j - p.R] = DBETA[j - p.R] + s; }
}
