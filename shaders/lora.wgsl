// LoRA (DESIGN §1.2):  y = x W + b + s · (x A) B,   s = alpha / r,   W and b frozen.
//   x (M,K): M = batch·tokens rows of K = in features;  W (K,N);  A (K,R);  B (R,N);  R ≤ 64.
// The two big products (x W + b forward, g Wᵀ backward) are matmul.wgsl dispatches; this file
// holds the rank-R side, one fused dispatch per pass:
//   lora_forward_*   u = drop(x) A, then y += s · u B        (y already holds x W + b;
//                    with N = 0 only the state is written, for a backward without a forward)
//   lora_backward_*  du = s · g Bᵀ, then dx = drop'(du Aᵀ)     (a matmul then adds g Wᵀ into dx;
//                    dB += s · uᵀ g and dA += drop(x)ᵀ du are matmuls with transA)
// State kept from forward to backward, one buffer S: u (M,R) at 0; drop(x) (M,K) at p.offXd when
// dropout is on (dA needs it). drop'(·) multiplies by the same keep mask and 1/(1−p).
//
// Two schedules (as matmul.wgsl), both phase 1 = the rank-R rows, phase 2 = their expansion:
//   *_tiled   any shape; the schedule for GPUs. A workgroup owns TM = 4·WR rows and all R rank
//             columns. Phase 1: thread (ks, cq, rq) accumulates the 4×4 block rows 4rq.., rank
//             columns 4cq.. over every KS-th quad of the long dimension (K forward, N backward);
//             the KS partial blocks meet in workgroup memory; the rank tile stays there for
//             phase 2, which sweeps the workgroup's rows across all columns in 4×16 blocks.
//   *_direct  K, N, R multiples of 4; the schedule for CPU-emulated adapters (SwiftShader), where
//             every load is a per-lane gather and a barrier switches coroutines. A thread owns 16
//             rows and does both phases for them with no workgroup memory and no barrier: phase 1
//             in 16×16 blocks (four rank quads; then 16×4 for the rest), written to the state (or
//             du); phase 2 reads those rows back (its own writes) in 16×16 blocks. 16×16 blocks
//             take 32 loads per 1024 multiply-adds, as matmul_direct.
// Hot loops carry no bounds checks: rows past M, rank rows past R and the last partial quad are
// clamped into range, so they read real (finite) values that are then dropped — rows past M are
// never stored, rank columns past R are zeroed (select, not multiply) before anything uses them,
// and the K % 4 (N % 4) tail is a separate rank-1 loop.
// Defines (prepended consts), tiled only: RQ = ceil(R/4) (the direct schedule reads R at run
// time, so one pipeline serves every rank), WR, row quads per workgroup, and KS, the reduction
// split; both: VEC_K, VEC_N, VEC_R: K, N, R are multiples of 4 (a quad is one aligned vec4
// load); DROPOUT.

struct Params {
  M: u32, K: u32, N: u32, R: u32,
  scale: f32,      // s
  drop: u32,       // dropout: an element is kept when its hash is ≥ drop (drop = p·2³²)
  seedHash: u32,   // hash32(seed) of this forward's mask
  invKeep: f32,    // 1 / (1 − p)
  offXd: u32, _pad0: u32, _pad1: u32, _pad2: u32,
}

const WG: u32 = KS * RQ * WR;   // tiled: threads per workgroup
const TM: u32 = 4u * WR;        // tiled: rows per workgroup

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> X: array<vec4<f32>>;        // x (M,K)
@group(0) @binding(2) var<storage, read> A: array<vec4<f32>>;        // A (K,R)
@group(0) @binding(3) var<storage, read> B: array<vec4<f32>>;        // B (R,N)
@group(0) @binding(4) var<storage, read_write> S: array<vec4<f32>>;  // state: u (M,R) | drop(x) (M,K)
@group(0) @binding(5) var<storage, read_write> Y: array<vec4<f32>>;  // y (M,N)
@group(0) @binding(6) var<storage, read> G: array<vec4<f32>>;        // g = dL/dy (M,N)
@group(0) @binding(7) var<storage, read_write> DU: array<vec4<f32>>; // du (M,R)
@group(0) @binding(8) var<storage, read_write> DX: array<vec4<f32>>; // dx (M,K)

var<workgroup> red: array<mat4x4<f32>, WG>;       // tiled phase 1 partial blocks (KS > 1)
var<workgroup> tile: array<vec4<f32>, TM * RQ>;   // tiled rank tile: quad q of local row l at l·RQ + q

// ---- loads (unchecked: callers pass in-range or clamped indices) ---------------------------
fn xs(i: u32) -> f32 { return X[i >> 2u][i & 3u]; }
fn as_(i: u32) -> f32 { return A[i >> 2u][i & 3u]; }
fn bs(i: u32) -> f32 { return B[i >> 2u][i & 3u]; }
fn gs(i: u32) -> f32 { return G[i >> 2u][i & 3u]; }

// x[e..e+3] of one row (e + 3 within the row).
fn xq(e: u32) -> vec4<f32> {
  if (VEC_K) { return X[e >> 2u]; }
  return vec4<f32>(xs(e), xs(e + 1u), xs(e + 2u), xs(e + 3u));
}
// A[k][j..j+3]; with a ragged R the last quad reads on into the next row (clamped at the end).
fn aq(k: u32, j: u32) -> vec4<f32> {
  let e = k * p.R + j;
  if (VEC_R) { return A[e >> 2u]; }
  let last = p.K * p.R - 1u;
  return vec4<f32>(as_(min(e, last)), as_(min(e + 1u, last)), as_(min(e + 2u, last)), as_(min(e + 3u, last)));
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

// outer(b, a): column i = a[i] · b (a rank-1 update of a block whose column i is row i).
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

// ---- dropout on the A-branch input ---------------------------------------------------------
// lowbias32 (C. Wellons): a stateless hash, so the backward regenerates the forward's mask.
// sdk/kernels/lora.ts mirrors it on the host (tests and references).
fn hash32(v: u32) -> u32 {
  var x = v;
  x ^= x >> 16u; x *= 0x7feb352du; x ^= x >> 15u; x *= 0x846ca68bu; x ^= x >> 16u;
  return x;
}
// The factor drop(x) applies to element idx = m·K + k: 1/(1−p) if kept, else 0.
fn keepScale(idx: u32) -> f32 {
  return select(0.0, p.invKeep, hash32(hash32(idx) ^ p.seedHash) >= p.drop);
}
fn keepQuad(idx: u32) -> vec4<f32> {
  return vec4<f32>(keepScale(idx), keepScale(idx + 1u), keepScale(idx + 2u), keepScale(idx + 3u));
}

// drop(x) of a block (column i = x[m0+i][k..k+3]); with `store`, also writes it to the state.
fn dropBlock(m0: u32, k: u32, xm: mat4x4<f32>, store: bool) -> mat4x4<f32> {
  var d = xm;
  for (var i = 0u; i < 4u; i++) {
    let m = m0 + i;
    d[i] = xm[i] * keepQuad(m * p.K + k);
    if (store && m < p.M) {
      for (var c = 0u; c < 4u; c++) { let e = p.offXd + m * p.K + k + c; S[e >> 2u][e & 3u] = d[i][c]; }
    }
  }
  return d;
}
// drop(x) of one column k of the block (the K % 4 tail).
fn dropColumn(m0: u32, k: u32, xv: vec4<f32>, store: bool) -> vec4<f32> {
  var d = xv;
  for (var i = 0u; i < 4u; i++) {
    let m = m0 + i;
    d[i] = xv[i] * keepScale(m * p.K + k);
    if (store && m < p.M) { let e = p.offXd + m * p.K + k; S[e >> 2u][e & 3u] = d[i]; }
  }
  return d;
}

// Stores rows m0.. of a 4×4 block (column i = row m0+i) into the (M,R) u of the state, or into
// du, below M and R (tiled: R may be ragged).
fn putRankS(m0: u32, j0: u32, blk: mat4x4<f32>) {
  for (var i = 0u; i < 4u; i++) {
    for (var c = 0u; c < 4u; c++) {
      if (m0 + i < p.M && j0 + c < p.R) { let e = (m0 + i) * p.R + j0 + c; S[e >> 2u][e & 3u] = blk[i][c]; }
    }
  }
}
fn putRankDU(m0: u32, j0: u32, blk: mat4x4<f32>) {
  for (var i = 0u; i < 4u; i++) {
    for (var c = 0u; c < 4u; c++) {
      if (m0 + i < p.M && j0 + c < p.R) { let e = (m0 + i) * p.R + j0 + c; DU[e >> 2u][e & 3u] = blk[i][c]; }
    }
  }
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

// dx[m0+i][k..k+3] = drop'(blk[i]) for the rows below M and the columns below K.
fn putDX(m0: u32, k: u32, blk: mat4x4<f32>) {
  if (k >= p.K) { return; }
  for (var i = 0u; i < 4u; i++) {
    let m = m0 + i;
    if (m >= p.M) { break; }
    let idx = m * p.K + k;
    var v = blk[i];
    if (DROPOUT) { v *= keepQuad(idx); }
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
// Sums the KS partial blocks of one (cq, rq); the result is valid in the ks = 0 thread.
// Threads t .. t+KS−1 hold the partials of the same block.
fn combine(t: u32, ks: u32, acc: mat4x4<f32>) -> mat4x4<f32> {
  if (KS == 1u) { return acc; }
  red[t] = acc;
  workgroupBarrier();
  var s = acc;
  if (ks == 0u) { for (var i = 1u; i < KS; i++) { s += red[t + i]; } }
  return s;
}

// u block = drop(x)[m0..m0+3, :] A[:, j0..j0+3] over this thread's share of K (column i = row
// m0+i; rows past M hold junk, columns past R are not yet masked).
fn projectBlock(m0: u32, j0: u32, ks: u32, storeXd: bool) -> mat4x4<f32> {
  let rb = rowBase(m0, p.M, p.K);
  let k4 = p.K & ~3u;
  var acc = mat4x4<f32>();
  for (var k = ks * 4u; k < k4; k += 4u * KS) {
    var xm = mat4x4<f32>(xq(rb.x + k), xq(rb.y + k), xq(rb.z + k), xq(rb.w + k));
    if (DROPOUT) { xm = dropBlock(m0, k, xm, storeXd); }
    let am = mat4x4<f32>(aq(k, j0), aq(k + 1u, j0), aq(k + 2u, j0), aq(k + 3u, j0));
    acc += am * xm;   // column i: Σ_c A[k+c][j0..] · x[m0+i][k+c]
  }
  if (ks == 0u) {
    for (var k = k4; k < p.K; k++) {
      var xv = vec4<f32>(xs(rb.x + k), xs(rb.y + k), xs(rb.z + k), xs(rb.w + k));
      if (DROPOUT) { xv = dropColumn(m0, k, xv, storeXd); }
      acc += outer(aq(k, j0), xv);
    }
  }
  return acc;
}

// du block (unscaled) = g[m0..m0+3, :] B[j0..j0+3, :]ᵀ over this thread's share of N.
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

// The tile block of local rows l0..l0+3, rank quad jq (column i = row l0+i).
fn tileBlock(l0: u32, jq: u32) -> mat4x4<f32> {
  return mat4x4<f32>(tile[l0 * RQ + jq], tile[(l0 + 1u) * RQ + jq], tile[(l0 + 2u) * RQ + jq], tile[(l0 + 3u) * RQ + jq]);
}

// lora_forward_tiled: x (M,K), A (K,R), B (R,N) → state u (M,R) [+ drop(x) (M,K)];
// y (M,N) += s · u B. Workgroups: ceil(M / TM).
@compute @workgroup_size(WG)
fn lora_forward_tiled(@builtin(local_invocation_index) t: u32, @builtin(workgroup_id) wid: vec3<u32>) {
  let mb = wid.x * TM;
  let ks = t % KS;
  let cq = (t / KS) % RQ;
  let rq = t / (KS * RQ);
  let m0 = mb + rq * 4u;
  let j0 = cq * 4u;
  let u = maskCols(combine(t, ks, projectBlock(m0, j0, ks, cq == 0u)), j0);
  if (ks == 0u) {
    for (var i = 0u; i < 4u; i++) { tile[(rq * 4u + i) * RQ + cq] = u[i]; }
    putRankS(m0, j0, u);
  }
  workgroupBarrier();
  // Phase 2: y[mb.., n..n+15] += s · tile B, a 4-row × 16-column block per thread.
  let ng = (p.N + 15u) / 16u;
  for (var b = t; b < WR * ng; b += WG) {
    let n = (b % ng) * 16u;
    let l0 = (b / ng) * 4u;
    if (mb + l0 >= p.M) { break; }
    // The four column quads; those past N repeat the last one and are not stored.
    let nn = min(vec4<u32>(n) + vec4<u32>(0u, 4u, 8u, 12u), vec4<u32>(((p.N + 3u) / 4u - 1u) * 4u));
    var c0 = mat4x4<f32>(); var c1 = mat4x4<f32>(); var c2 = mat4x4<f32>(); var c3 = mat4x4<f32>();
    for (var jq = 0u; jq < RQ; jq++) {
      let h = tileBlock(l0, jq);
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

// lora_backward_tiled: g (M,N), B (R,N), A (K,R) → du = s · g Bᵀ (M,R); dx = drop'(du Aᵀ)
// (M,K), overwritten (the g Wᵀ matmul accumulates onto it afterwards). Workgroups: ceil(M / TM).
@compute @workgroup_size(WG)
fn lora_backward_tiled(@builtin(local_invocation_index) t: u32, @builtin(workgroup_id) wid: vec3<u32>) {
  let mb = wid.x * TM;
  let ks = t % KS;
  let cq = (t / KS) % RQ;
  let rq = t / (KS * RQ);
  let m0 = mb + rq * 4u;
  let j0 = cq * 4u;
  let du = maskCols(combine(t, ks, gradBlock(m0, j0, ks)) * p.scale, j0);
  if (ks == 0u) {
    for (var i = 0u; i < 4u; i++) { tile[(rq * 4u + i) * RQ + cq] = du[i]; }
    putRankDU(m0, j0, du);
  }
  workgroupBarrier();
  // Phase 2: dx[mb.., k..k+15] = drop'(tile Aᵀ), a 4-row × 16-column block per thread.
  let kg = (p.K + 15u) / 16u;
  for (var b = t; b < WR * kg; b += WG) {
    let k = (b % kg) * 16u;
    let l0 = (b / kg) * 4u;
    if (mb + l0 >= p.M) { break; }
    let kk = min(vec4<u32>(k) + vec4<u32>(0u, 4u, 8u, 12u), vec4<u32>(((p.K + 3u) / 4u - 1u) * 4u));
    var c0 = mat4x4<f32>(); var c1 = mat4x4<f32>(); var c2 = mat4x4<f32>(); var c3 = mat4x4<f32>();
    for (var jq = 0u; jq < RQ; jq++) {
      let h = tileBlock(l0, jq);
      let j = jq * 4u;
      // transpose(column c = A[k+c][j..j+3]): column i, entry c = dot(A[k+c][j..], du[row i][j..])
      c0 += transpose(arows(kk.x, j)) * h;
      c1 += transpose(arows(kk.y, j)) * h;
      c2 += transpose(arows(kk.z, j)) * h;
      c3 += transpose(arows(kk.w, j)) * h;
    }
    putDX(mb + l0, k, c0); putDX(mb + l0, k + 4u, c1); putDX(mb + l0, k + 8u, c2); putDX(mb + l0, k + 12u, c3);
  }
}

// Column c = A[k+c][j..j+3], rows past K clamped to the last.
fn arows(k: u32, j: u32) -> mat4x4<f32> {
  let l = p.K - 1u;
  return mat4x4<f32>(aq(min(k, l), j), aq(min(k + 1u, l), j), aq(min(k + 2u, l), j), aq(min(k + 3u, l), j));
}

// ==== direct schedule (K, N, R multiples of 4) =================================================
// Row quads in quads (vec4 indices): offsets of rows r0..r0+3 of a (M, w4 quads) matrix, clamped.
fn rowQuads(r0: u32, w4: u32) -> vec4<u32> { return rowBase(r0, p.M, w4); }

// The block of a quad matrix at row-quad offsets ro, quad column q (column i = row i's quad).
fn xBlock(ro: vec4<u32>, q: u32) -> mat4x4<f32> { return mat4x4<f32>(X[ro.x + q], X[ro.y + q], X[ro.z + q], X[ro.w + q]); }
fn gBlock(ro: vec4<u32>, q: u32) -> mat4x4<f32> { return mat4x4<f32>(G[ro.x + q], G[ro.y + q], G[ro.z + q], G[ro.w + q]); }
fn sBlock(ro: vec4<u32>, q: u32) -> mat4x4<f32> { return mat4x4<f32>(S[ro.x + q], S[ro.y + q], S[ro.z + q], S[ro.w + q]); }
fn duBlock(ro: vec4<u32>, q: u32) -> mat4x4<f32> { return mat4x4<f32>(DU[ro.x + q], DU[ro.y + q], DU[ro.z + q], DU[ro.w + q]); }
// Four consecutive quad rows of A or B from quad index e with row stride s (in quads).
fn aRows(e: u32, s: u32) -> mat4x4<f32> { return mat4x4<f32>(A[e], A[e + s], A[e + 2u * s], A[e + 3u * s]); }
fn bRows(e: u32, s: u32) -> mat4x4<f32> { return mat4x4<f32>(B[e], B[e + s], B[e + 2u * s], B[e + 3u * s]); }

// Writes rows m0.. of a block (column i = row m0+i) as quad q of an (M, w4 quads) matrix.
fn putS(m0: u32, w4: u32, q: u32, blk: mat4x4<f32>) {
  for (var i = 0u; i < 4u; i++) { if (m0 + i < p.M) { S[(m0 + i) * w4 + q] = blk[i]; } }
}
fn putDU(m0: u32, w4: u32, q: u32, blk: mat4x4<f32>) {
  for (var i = 0u; i < 4u; i++) { if (m0 + i < p.M) { DU[(m0 + i) * w4 + q] = blk[i]; } }
}

// lora_forward_direct: as lora_forward_tiled. One thread per 16 rows; workgroups: ceil(M / 64).
@compute @workgroup_size(4)
fn lora_forward_direct(@builtin(global_invocation_id) gid: vec3<u32>) {
  let m0 = gid.x * 16u;
  if (m0 >= p.M) { return; }
  let k4 = p.K >> 2u;
  let r4 = p.R >> 2u;
  let n4 = p.N >> 2u;
  let x0 = rowQuads(m0, k4); let x1 = rowQuads(m0 + 4u, k4); let x2 = rowQuads(m0 + 8u, k4); let x3 = rowQuads(m0 + 12u, k4);
  // Phase 1: u rows = drop(x) A (column i of c_rc = row m0+4r+i, rank quad jq+c): four rank
  // quads at a time in 16×16 blocks (32 loads per 1024 multiply-adds), then one at a time.
  var jq = 0u;
  for (; jq + 4u <= r4; jq += 4u) {
    var c00 = mat4x4<f32>(); var c01 = mat4x4<f32>(); var c02 = mat4x4<f32>(); var c03 = mat4x4<f32>();
    var c10 = mat4x4<f32>(); var c11 = mat4x4<f32>(); var c12 = mat4x4<f32>(); var c13 = mat4x4<f32>();
    var c20 = mat4x4<f32>(); var c21 = mat4x4<f32>(); var c22 = mat4x4<f32>(); var c23 = mat4x4<f32>();
    var c30 = mat4x4<f32>(); var c31 = mat4x4<f32>(); var c32 = mat4x4<f32>(); var c33 = mat4x4<f32>();
    for (var q = 0u; q < k4; q++) {
      let e = q * 4u * r4 + jq;   // quad index of A[4q][4jq]
      let w0 = aRows(e, r4); let w1 = aRows(e + 1u, r4); let w2 = aRows(e + 2u, r4); let w3 = aRows(e + 3u, r4);
      var b0 = xBlock(x0, q); var b1 = xBlock(x1, q); var b2 = xBlock(x2, q); var b3 = xBlock(x3, q);
      if (DROPOUT) {
        let keep = jq == 0u;   // drop(x) is stored once
        b0 = dropBlock(m0, 4u * q, b0, keep); b1 = dropBlock(m0 + 4u, 4u * q, b1, keep);
        b2 = dropBlock(m0 + 8u, 4u * q, b2, keep); b3 = dropBlock(m0 + 12u, 4u * q, b3, keep);
      }
      c00 += w0 * b0; c01 += w1 * b0; c02 += w2 * b0; c03 += w3 * b0;
      c10 += w0 * b1; c11 += w1 * b1; c12 += w2 * b1; c13 += w3 * b1;
      c20 += w0 * b2; c21 += w1 * b2; c22 += w2 * b2; c23 += w3 * b2;
      c30 += w0 * b3; c31 += w1 * b3; c32 += w2 * b3; c33 += w3 * b3;
    }
    putS(m0, r4, jq, c00); putS(m0, r4, jq + 1u, c01); putS(m0, r4, jq + 2u, c02); putS(m0, r4, jq + 3u, c03);
    putS(m0 + 4u, r4, jq, c10); putS(m0 + 4u, r4, jq + 1u, c11); putS(m0 + 4u, r4, jq + 2u, c12); putS(m0 + 4u, r4, jq + 3u, c13);
    putS(m0 + 8u, r4, jq, c20); putS(m0 + 8u, r4, jq + 1u, c21); putS(m0 + 8u, r4, jq + 2u, c22); putS(m0 + 8u, r4, jq + 3u, c23);
    putS(m0 + 12u, r4, jq, c30); putS(m0 + 12u, r4, jq + 1u, c31); putS(m0 + 12u, r4, jq + 2u, c32); putS(m0 + 12u, r4, jq + 3u, c33);
  }
  for (; jq < r4; jq++) {
    var c0 = mat4x4<f32>(); var c1 = mat4x4<f32>(); var c2 = mat4x4<f32>(); var c3 = mat4x4<f32>();
    for (var q = 0u; q < k4; q++) {
      let w = aRows(q * 4u * r4 + jq, r4);   // column c = A[4q+c][4jq..]
      var b0 = xBlock(x0, q); var b1 = xBlock(x1, q); var b2 = xBlock(x2, q); var b3 = xBlock(x3, q);
      if (DROPOUT) {
        let keep = jq == 0u;
        b0 = dropBlock(m0, 4u * q, b0, keep); b1 = dropBlock(m0 + 4u, 4u * q, b1, keep);
        b2 = dropBlock(m0 + 8u, 4u * q, b2, keep); b3 = dropBlock(m0 + 12u, 4u * q, b3, keep);
      }
      c0 += w * b0; c1 += w * b1; c2 += w * b2; c3 += w * b3;
    }
    putS(m0, r4, jq, c0); putS(m0 + 4u, r4, jq, c1); putS(m0 + 8u, r4, jq, c2); putS(m0 + 12u, r4, jq, c3);
  }
  // Phase 2: y rows += s · u B, 16 columns at a time (this thread's own u rows, read back).
  let u0 = rowQuads(m0, r4); let u1 = rowQuads(m0 + 4u, r4); let u2 = rowQuads(m0 + 8u, r4); let u3 = rowQuads(m0 + 12u, r4);
  for (var n = 0u; n < n4; n += 4u) {
    let nn = min(vec4<u32>(n) + vec4<u32>(0u, 1u, 2u, 3u), vec4<u32>(n4 - 1u));   // past N: repeat, not stored
    var c00 = mat4x4<f32>(); var c01 = mat4x4<f32>(); var c02 = mat4x4<f32>(); var c03 = mat4x4<f32>();
    var c10 = mat4x4<f32>(); var c11 = mat4x4<f32>(); var c12 = mat4x4<f32>(); var c13 = mat4x4<f32>();
    var c20 = mat4x4<f32>(); var c21 = mat4x4<f32>(); var c22 = mat4x4<f32>(); var c23 = mat4x4<f32>();
    var c30 = mat4x4<f32>(); var c31 = mat4x4<f32>(); var c32 = mat4x4<f32>(); var c33 = mat4x4<f32>();
    for (var jq = 0u; jq < r4; jq++) {
      let h0 = sBlock(u0, jq); let h1 = sBlock(u1, jq); let h2 = sBlock(u2, jq); let h3 = sBlock(u3, jq);
      let e = jq * 4u * n4;   // quad index of B[4jq][0]
      let b0 = bRows(e + nn.x, n4); let b1 = bRows(e + nn.y, n4); let b2 = bRows(e + nn.z, n4); let b3 = bRows(e + nn.w, n4);
      c00 += b0 * h0; c01 += b1 * h0; c02 += b2 * h0; c03 += b3 * h0;
      c10 += b0 * h1; c11 += b1 * h1; c12 += b2 * h1; c13 += b3 * h1;
      c20 += b0 * h2; c21 += b1 * h2; c22 += b2 * h2; c23 += b3 * h2;
      c30 += b0 * h3; c31 += b1 * h3; c32 += b2 * h3; c33 += b3 * h3;
    }
    let n0 = n * 4u;
    addY(m0, n0, c00); addY(m0, n0 + 4u, c01); addY(m0, n0 + 8u, c02); addY(m0, n0 + 12u, c03);
    addY(m0 + 4u, n0, c10); addY(m0 + 4u, n0 + 4u, c11); addY(m0 + 4u, n0 + 8u, c12); addY(m0 + 4u, n0 + 12u, c13);
    addY(m0 + 8u, n0, c20); addY(m0 + 8u, n0 + 4u, c21); addY(m0 + 8u, n0 + 8u, c22); addY(m0 + 8u, n0 + 12u, c23);
    addY(m0 + 12u, n0, c30); addY(m0 + 12u, n0 + 4u, c31); addY(m0 + 12u, n0 + 8u, c32); addY(m0 + 12u, n0 + 12u, c33);
  }
}

// lora_backward_direct: as lora_backward_tiled. One thread per 16 rows; workgroups: ceil(M / 64).
@compute @workgroup_size(4)
fn lora_backward_direct(@builtin(global_invocation_id) gid: vec3<u32>) {
  let m0 = gid.x * 16u;
  if (m0 >= p.M) { return; }
  let k4 = p.K >> 2u;
  let r4 = p.R >> 2u;
  let n4 = p.N >> 2u;
  let g0 = rowQuads(m0, n4); let g1 = rowQuads(m0 + 4u, n4); let g2 = rowQuads(m0 + 8u, n4); let g3 = rowQuads(m0 + 12u, n4);
  // Phase 1: du rows = s · g Bᵀ: four rank quads at a time in 16×16 blocks, then one at a time.
  // transpose(column c = B[j+c][4q..]): column i, entry c = dot(B[j+c][4q..], g[row i][4q..]).
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
    putDU(m0, r4, jq, c00 * sc); putDU(m0, r4, jq + 1u, c01 * sc); putDU(m0, r4, jq + 2u, c02 * sc); putDU(m0, r4, jq + 3u, c03 * sc);
    putDU(m0 + 4u, r4, jq, c10 * sc); putDU(m0 + 4u, r4, jq + 1u, c11 * sc); putDU(m0 + 4u, r4, jq + 2u, c12 * sc); putDU(m0 + 4u, r4, jq + 3u, c13 * sc);
    putDU(m0 + 8u, r4, jq, c20 * sc); putDU(m0 + 8u, r4, jq + 1u, c21 * sc); putDU(m0 + 8u, r4, jq + 2u, c22 * sc); putDU(m0 + 8u, r4, jq + 3u, c23 * sc);
    putDU(m0 + 12u, r4, jq, c30 * sc); putDU(m0 + 12u, r4, jq + 1u, c31 * sc); putDU(m0 + 12u, r4, jq + 2u, c32 * sc); putDU(m0 + 12u, r4, jq + 3u, c33 * sc);
  }
  for (; jq < r4; jq++) {
    var c0 = mat4x4<f32>(); var c1 = mat4x4<f32>(); var c2 = mat4x4<f32>(); var c3 = mat4x4<f32>();
    let e = jq * 4u * n4;
    for (var q = 0u; q < n4; q++) {
      let w = transpose(bRows(e + q, n4));
      c0 += w * gBlock(g0, q); c1 += w * gBlock(g1, q); c2 += w * gBlock(g2, q); c3 += w * gBlock(g3, q);
    }
    putDU(m0, r4, jq, c0 * p.scale); putDU(m0 + 4u, r4, jq, c1 * p.scale);
    putDU(m0 + 8u, r4, jq, c2 * p.scale); putDU(m0 + 12u, r4, jq, c3 * p.scale);
  }
  // Phase 2: dx rows = drop'(du Aᵀ), 16 columns at a time (this thread's own du rows).
  let d0 = rowQuads(m0, r4); let d1 = rowQuads(m0 + 4u, r4); let d2 = rowQuads(m0 + 8u, r4); let d3 = rowQuads(m0 + 12u, r4);
  for (var k = 0u; k < k4; k += 4u) {
    let kk = min(vec4<u32>(k) + vec4<u32>(0u, 1u, 2u, 3u), vec4<u32>(k4 - 1u)) * 4u * r4;   // quad index of A[4k'][0]
    var c00 = mat4x4<f32>(); var c01 = mat4x4<f32>(); var c02 = mat4x4<f32>(); var c03 = mat4x4<f32>();
    var c10 = mat4x4<f32>(); var c11 = mat4x4<f32>(); var c12 = mat4x4<f32>(); var c13 = mat4x4<f32>();
    var c20 = mat4x4<f32>(); var c21 = mat4x4<f32>(); var c22 = mat4x4<f32>(); var c23 = mat4x4<f32>();
    var c30 = mat4x4<f32>(); var c31 = mat4x4<f32>(); var c32 = mat4x4<f32>(); var c33 = mat4x4<f32>();
    for (var jq = 0u; jq < r4; jq++) {
      let h0 = duBlock(d0, jq); let h1 = duBlock(d1, jq); let h2 = duBlock(d2, jq); let h3 = duBlock(d3, jq);
      // transpose(column c = A[k'+c][4jq..]): column i, entry c = dot(A[k'+c][4jq..], du[row i][4jq..])
      let a0 = transpose(aRows(kk.x + jq, r4)); let a1 = transpose(aRows(kk.y + jq, r4));
      let a2 = transpose(aRows(kk.z + jq, r4)); let a3 = transpose(aRows(kk.w + jq, r4));
      c00 += a0 * h0; c01 += a1 * h0; c02 += a2 * h0; c03 += a3 * h0;
      c10 += a0 * h1; c11 += a1 * h1; c12 += a2 * h1; c13 += a3 * h1;
      c20 += a0 * h2; c21 += a1 * h2; c22 += a2 * h2; c23 += a3 * h2;
      c30 += a0 * h3; c31 += a1 * h3; c32 += a2 * h3; c33 += a3 * h3;
    }
    let k0 = k * 4u;
    putDX(m0, k0, c00); putDX(m0, k0 + 4u, c01); putDX(m0, k0 + 8u, c02); putDX(m0, k0 + 12u, c03);
    putDX(m0 + 4u, k0, c10); putDX(m0 + 4u, k0 + 4u, c11); putDX(m0 + 4u, k0 + 8u, c12); putDX(m0 + 4u, k0 + 12u, c13);
    putDX(m0 + 8u, k0, c20); putDX(m0 + 8u, k0 + 4u, c21); putDX(m0 + 8u, k0 + 8u, c22); putDX(m0 + 8u, k0 + 12u, c23);
    putDX(m0 + 12u, k0, c30); putDX(m0 + 12u, k0 + 4u, c31); putDX(m0 + 12u, k0 + 8u, c32); putDX(m0 + 12u, k0 + 12u, c33);
  }
}
